//! Transformer pieces: multi-head self-attention that returns its attention
//! maps (with FAN-Trans' attention drop and TransAU's relative positions),
//! timm's pre-norm `Block`, and PyTorch's post-norm `TransformerEncoderLayer`.

use burn::module::{Module, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu, sigmoid, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// How FAN-Trans drops AU-to-AU attention (paper section 3.2 and the
/// ablation in 4.2: F, R, C and the learned binary mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionDrop {
    /// (a) F: the full attention map.
    Full,
    /// (b) R: keep the `keep` largest entries of each row.
    Row { keep: usize },
    /// (c) C: keep the `keep` largest entries of each column.
    Column { keep: usize },
    /// (d) A learned binary mask shared by the heads of a block, trained with
    /// the straight-through estimator: forward uses `sigmoid(m) > 0.5`,
    /// backward the sigmoid's gradient. The mask multiplies the softmaxed map
    /// without renormalising (eq. 3 multiplies, it does not renormalise).
    Learned,
}

/// Logit the learned mask starts at: sigmoid(2) = 0.88, so every connection
/// starts open and training has to push a connection down to drop it.
const MASK_INIT: f32 = 2.0;

#[derive(Module, Debug)]
pub struct Attention {
    pub qkv: Linear,
    pub proj: Linear,
    /// Learned drop mask logits [T, T] (only for [`AttentionDrop::Learned`]).
    pub drop_mask: Option<Param<Tensor<2>>>,
    /// Relative position tables [2 * max_rel + 1, head_dim] for keys and
    /// values (Shaw et al. 2018), only for TransAU.
    pub rel_k: Option<Param<Tensor<2>>>,
    pub rel_v: Option<Param<Tensor<2>>>,
    #[module(skip)]
    pub heads: usize,
    #[module(skip)]
    pub drop: AttentionDrop,
    #[module(skip)]
    pub max_rel: usize,
}

/// What one attention layer computed: the (post-drop) map of every head and
/// the binary mask applied, if any.
#[derive(Debug, Clone)]
pub struct AttentionMaps {
    /// [B, heads, T, T]
    pub attention: Tensor<4>,
    /// [T, T] binary (learned drop) or [B, T, T] data-dependent (row/column).
    pub mask: Option<Tensor<3>>,
}

impl Attention {
    pub fn new(
        dim: usize,
        heads: usize,
        qkv_bias: bool,
        tokens: usize,
        drop: AttentionDrop,
        max_rel: Option<usize>,
        device: &Device,
    ) -> Self {
        let head_dim = dim / heads;
        let rel = |n: usize| {
            Param::from_tensor(Tensor::random(
                [2 * n + 1, head_dim],
                burn::tensor::Distribution::Normal(0.0, 0.02),
                device,
            ))
        };
        Self {
            qkv: LinearConfig::new(dim, dim * 3).with_bias(qkv_bias).init(device),
            proj: LinearConfig::new(dim, dim).init(device),
            drop_mask: (drop == AttentionDrop::Learned)
                .then(|| Param::from_tensor(Tensor::full([tokens, tokens], MASK_INIT, device))),
            rel_k: max_rel.map(rel),
            rel_v: max_rel.map(rel),
            heads,
            drop,
            max_rel: max_rel.unwrap_or(0),
        }
    }

    /// The learned mask with straight-through gradients: binary values,
    /// sigmoid gradients.
    pub fn learned_mask(&self) -> Option<Tensor<2>> {
        self.drop_mask.as_ref().map(|m| {
            let soft = sigmoid(m.val());
            let hard = soft.clone().greater_elem(0.5).float();
            hard - soft.clone().detach() + soft
        })
    }

    /// Relative-position table gathered to [T, T, head_dim].
    fn rel_table(&self, table: &Param<Tensor<2>>, t: usize, device: &Device) -> Tensor<3> {
        let n = self.max_rel as i64;
        let idx: Vec<i64> = (0..t as i64)
            .flat_map(|i| (0..t as i64).map(move |j| (j - i).clamp(-n, n) + n))
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [t * t]), device);
        let [_, d] = table.dims();
        table.val().select(0, idx).reshape([t, t, d])
    }

    pub fn forward(&self, x: Tensor<3>) -> (Tensor<3>, AttentionMaps) {
        let [b, t, dim] = x.dims();
        let h = self.heads;
        let hd = dim / h;
        let device = x.device();
        let qkv = self.qkv.forward(x).reshape([b, t, 3, h, hd]).permute([2, 0, 3, 1, 4]);
        let q = qkv.clone().narrow(0, 0, 1).reshape([b, h, t, hd]);
        let k = qkv.clone().narrow(0, 1, 1).reshape([b, h, t, hd]);
        let v = qkv.narrow(0, 2, 1).reshape([b, h, t, hd]);
        let scale = (hd as f64).powf(-0.5);
        let mut logits = q.clone().matmul(k.swap_dims(2, 3));
        if let Some(rk) = &self.rel_k {
            // q_i . r_{j-i}: batched over i as [T, B*H, hd] x [T, hd, T].
            let r = self.rel_table(rk, t, &device).swap_dims(1, 2);
            let qi = q.permute([2, 0, 1, 3]).reshape([t, b * h, hd]);
            let rel = qi.matmul(r).reshape([t, b, h, t]).permute([1, 2, 0, 3]);
            logits = logits + rel;
        }
        let mut attn = softmax(logits.mul_scalar(scale), 3);
        let mut mask: Option<Tensor<3>> = None;
        match self.drop {
            AttentionDrop::Full => {}
            AttentionDrop::Learned => {
                if let Some(m) = self.learned_mask() {
                    attn = attn * m.clone().reshape([1, 1, t, t]);
                    mask = Some(m.reshape([1, t, t]));
                }
            }
            AttentionDrop::Row { keep } | AttentionDrop::Column { keep } => {
                let dim_sel = if matches!(self.drop, AttentionDrop::Row { .. }) { 3 } else { 2 };
                let keep = keep.clamp(1, t);
                let kth = attn.clone().topk(keep, dim_sel).narrow(dim_sel, keep - 1, 1);
                let m = attn.clone().greater_equal(kth).float();
                attn = attn * m.clone();
                mask = Some(m.mean_dim(1).reshape([b, t, t]));
            }
        }
        let mut out = attn.clone().matmul(v);
        if let Some(rv) = &self.rel_v {
            let r = self.rel_table(rv, t, &device);
            let ai = attn.clone().permute([2, 0, 1, 3]).reshape([t, b * h, t]);
            let rel = ai.matmul(r).reshape([t, b, h, hd]).permute([1, 2, 0, 3]);
            out = out + rel;
        }
        let out = out.swap_dims(1, 2).reshape([b, t, dim]);
        (
            self.proj.forward(out),
            AttentionMaps {
                attention: attn,
                mask,
            },
        )
    }
}

#[derive(Module, Debug)]
pub struct Mlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

/// timm's ViT `Block`: pre-norm MHSA + GELU MLP (ratio 4), LayerNorm eps 1e-6.
#[derive(Module, Debug)]
pub struct PreNormBlock {
    pub norm1: LayerNorm,
    pub attn: Attention,
    pub norm2: LayerNorm,
    pub mlp: Mlp,
}

impl PreNormBlock {
    pub fn new(dim: usize, tokens: usize, drop: AttentionDrop, device: &Device) -> Self {
        // timm: heads = dim // 64 (FAN-Trans 4.1), at least one.
        let heads = (dim / 64).max(1);
        Self {
            norm1: LayerNormConfig::new(dim).with_epsilon(1e-6).init(device),
            attn: Attention::new(dim, heads, true, tokens, drop, None, device),
            norm2: LayerNormConfig::new(dim).with_epsilon(1e-6).init(device),
            mlp: Mlp {
                fc1: LinearConfig::new(dim, dim * 4).init(device),
                fc2: LinearConfig::new(dim * 4, dim).init(device),
            },
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> (Tensor<3>, AttentionMaps) {
        let (a, maps) = self.attn.forward(self.norm1.forward(x.clone()));
        let x = x + a;
        let m = self.mlp.fc2.forward(gelu(self.mlp.fc1.forward(self.norm2.forward(x.clone()))));
        (x + m, maps)
    }
}

/// PyTorch's `nn.TransformerEncoderLayer` (post-norm, ReLU FFN, eps 1e-5),
/// optionally with relative positions in the attention (TransAU). Its
/// `self_attn.in_proj_*`/`out_proj` keys map to `self_attn.qkv`/`proj`.
#[derive(Module, Debug)]
pub struct PostNormLayer {
    pub self_attn: Attention,
    pub linear1: Linear,
    pub linear2: Linear,
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
}

impl PostNormLayer {
    pub fn new(
        dim: usize,
        heads: usize,
        ffn: usize,
        tokens: usize,
        max_rel: Option<usize>,
        device: &Device,
    ) -> Self {
        Self {
            self_attn: Attention::new(dim, heads, true, tokens, AttentionDrop::Full, max_rel, device),
            linear1: LinearConfig::new(dim, ffn).init(device),
            linear2: LinearConfig::new(ffn, dim).init(device),
            norm1: LayerNormConfig::new(dim).init(device),
            norm2: LayerNormConfig::new(dim).init(device),
        }
    }

    pub fn forward(&self, x: Tensor<3>) -> (Tensor<3>, AttentionMaps) {
        let (a, maps) = self.self_attn.forward(x.clone());
        let x = self.norm1.forward(x + a);
        let f = self.linear2.forward(relu(self.linear1.forward(x.clone())));
        (self.norm2.forward(x + f), maps)
    }

    /// `nn.TransformerEncoderLayer` key -> ours.
    pub fn pytorch_remap() -> Vec<(String, String)> {
        vec![
            (r"\.self_attn\.in_proj_weight$".into(), ".self_attn.qkv.weight".into()),
            (r"\.self_attn\.in_proj_bias$".into(), ".self_attn.qkv.bias".into()),
            (r"\.self_attn\.out_proj\.".into(), ".self_attn.proj.".into()),
        ]
    }
}
