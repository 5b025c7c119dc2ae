//! What every AU model returns: per-AU logits and probabilities plus the maps
//! the explainers draw. Tensors stay on the model's device.

use burn::tensor::Tensor;

#[derive(Debug, Clone)]
pub struct AuOutput {
    /// [B, N_AU]
    pub logits: Tensor<2>,
    /// sigmoid(logits), [B, N_AU]
    pub probs: Tensor<2>,
    pub maps: ModelMaps,
}

impl AuOutput {
    pub fn from_logits(logits: Tensor<2>, maps: ModelMaps) -> Self {
        Self { probs: burn::tensor::activation::sigmoid(logits.clone()), logits, maps }
    }
}

/// One attention layer: every head's map over the layer's tokens.
#[derive(Debug, Clone)]
pub struct AttentionLayerMaps {
    /// e.g. "one-to-many block 3", "encoder layer 1", "fusion layer 2".
    pub name: String,
    /// [B, heads, T, T], after any attention drop.
    pub attention: Tensor<4>,
    /// The binary drop mask: [1, T, T] learned, or [B, T, T] (mean over
    /// heads) for the row/column variants.
    pub mask: Option<Tensor<3>>,
}

/// The maps a model exposes; `None`/empty where the architecture has none.
#[derive(Debug, Clone, Default)]
pub struct ModelMaps {
    /// FAN landmark heat-maps [B, 68, H/4, W/4] (FAN-Trans).
    pub fan_heatmaps: Option<Tensor<4>>,
    /// TransAU's per-AU ROI attention maps [B, N_AU, h, w], in [0, 1].
    pub roi_attention: Option<Tensor<4>>,
    /// PI maps [B, N_AU, H, W] in [0, 1] (PIAP: generator or decoder).
    pub pi_maps: Option<Tensor<4>>,
    /// Transformer attention, per layer (FAN-Trans, TransAU, LRP-ARL-FF's
    /// fusion encoder). Token order: the model's AUs, except the fusion
    /// encoder, whose tokens are [weight, backbone, AU...].
    pub attention: Vec<AttentionLayerMaps>,
    /// LANet attention [B, 1, h, w] in [0, 1] (LRP-ARL-FF).
    pub lanet_attention: Option<Tensor<4>>,
    /// LRP-ARL-FF fusion weight of the backbone logits, [B, N_AU].
    pub fusion_weight: Option<Tensor<2>>,
    /// TransAU's attention-branch predictions [B, N_AU] (probabilities).
    pub attention_branch: Option<Tensor<2>>,
}
