//! TransAU (Jacob & Stenger, "Facial Action Unit Detection With
//! Transformers", CVPR 2021): backbone features -> ROI attention branch (one
//! map per AU, ABN-style) -> per-AU embedding branches -> transformer encoder
//! with relative positions -> 2-layer MLP. "Choice:" marks what the paper
//! leaves open.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::backbones::efficientnet::{EfficientNet, EfficientNetConfig};
use super::backbones::inception::{INCEPTION_CHANNELS, InceptionConfig, InceptionTrunk};
use super::backbones::resnet::{ResNet, ResNetConfig};
use super::blocks::{Act, ConvBn, Trace, conv, gap};
use super::output::{AttentionLayerMaps, AuOutput, ModelMaps};
use super::transformer::PostNormLayer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransAuBackbone {
    /// The paper's best: InceptionV3 up to Mixed_6e (12x12 at 224).
    InceptionV3(InceptionConfig),
    /// ResNet50 up to layer3 (14x14 at 224).
    Resnet(ResNetConfig),
    /// EfficientNet-B0 up to stage 5 (14x14 at 224).
    Efficientnet(EfficientNetConfig),
}

impl TransAuBackbone {
    fn channels(&self) -> usize {
        match self {
            Self::InceptionV3(_) => INCEPTION_CHANNELS,
            Self::Resnet(c) => c.out_channels(),
            Self::Efficientnet(c) => c.out_channels(),
        }
    }

    /// Side of the feature map for a square input of side `n`.
    fn feature_side(&self, n: usize) -> usize {
        let down = |n: usize, k: usize, s: usize, p: usize| (n + 2 * p - k) / s + 1;
        match self {
            Self::InceptionV3(_) => {
                let n = down(n, 3, 2, 0);
                let n = down(n, 3, 1, 0);
                let n = down(n, 3, 2, 0);
                let n = down(n, 3, 1, 0);
                let n = down(n, 3, 2, 0);
                down(n, 3, 2, 0)
            }
            Self::Resnet(c) => {
                let mut n = down(down(n, 7, 2, 3), 3, 2, 1);
                for _ in 1..c.stages {
                    n = down(n, 3, 2, 1);
                }
                n
            }
            Self::Efficientnet(c) => {
                // Stem and the stride-2 stages (2, 3, 4, 6) among those kept.
                let kernels = [3, 3, 5, 3, 5, 5, 3];
                let strides = [1, 2, 2, 2, 1, 2, 1];
                let mut n = down(n, 3, 2, 1);
                for s in 0..c.stages {
                    if strides[s] == 2 {
                        n = down(n, kernels[s], 2, kernels[s] / 2);
                    }
                }
                n
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransAuConfig {
    pub backbone: TransAuBackbone,
    /// Side of the grayscale input (224).
    pub input_size: usize,
    /// Width of the attention branch's convs. Choice: 256, two 3x3 convs.
    pub attention_channels: usize,
    /// Width of each per-AU branch's 3x3 convs. Choice: 128.
    pub branch_channels: usize,
    /// AU embedding size = transformer width. Choice: 256.
    pub embed_dim: usize,
    /// Encoder layers (paper: 3 is best).
    pub layers: usize,
    pub heads: usize,
    pub ffn_dim: usize,
    /// Hidden width of the 2-layer MLP classifier. Choice: 512.
    pub mlp_hidden: usize,
}

impl TransAuConfig {
    pub fn paper() -> Self {
        Self {
            backbone: TransAuBackbone::InceptionV3(InceptionConfig { transform_input: false }),
            input_size: 224,
            attention_channels: 256,
            branch_channels: 128,
            embed_dim: 256,
            layers: 3,
            heads: 8,
            ffn_dim: 1024,
            mlp_hidden: 512,
        }
    }

    pub fn tiny() -> Self {
        Self {
            backbone: TransAuBackbone::Resnet(ResNetConfig::tiny(3)),
            input_size: 64,
            attention_channels: 16,
            branch_channels: 8,
            embed_dim: 32,
            layers: 2,
            heads: 4,
            ffn_dim: 64,
            mlp_hidden: 32,
        }
    }

    pub fn feature_side(&self) -> usize {
        self.backbone.feature_side(self.input_size)
    }

    pub fn init(&self, n_au: usize, device: &Device) -> TransAu {
        let c = self.backbone.channels();
        let a = self.attention_channels;
        let bch = self.branch_channels;
        let side = self.feature_side();
        let half = side.div_ceil(2);
        let flat = (bch / 4) * half * half;
        let (inception, resnet, efficientnet) = match &self.backbone {
            TransAuBackbone::InceptionV3(cfg) => (Some(cfg.init(device)), None, None),
            TransAuBackbone::Resnet(cfg) => (None, Some(cfg.init(3, device)), None),
            TransAuBackbone::Efficientnet(cfg) => (None, None, Some(cfg.init(device))),
        };
        TransAu {
            inception,
            resnet,
            efficientnet,
            att_conv1: ConvBn::k(c, a, 3, 1, Act::Relu, device),
            att_conv2: ConvBn::k(a, a, 3, 1, Act::Relu, device),
            att_maps: ConvBn::k(a, n_au, 1, 1, Act::None, device),
            att_out: conv(n_au, n_au, [1, 1], 1, [0, 0], 1, true, device),
            branches: (0..n_au)
                .map(|_| AuBranch {
                    conv1: ConvBn::k(c, bch, 3, 1, Act::Relu, device),
                    conv2: ConvBn::k(bch, bch, 3, 2, Act::Relu, device),
                    reduce: conv(bch, bch / 4, [1, 1], 1, [0, 0], 1, true, device),
                    fc: LinearConfig::new(flat, self.embed_dim).init(device),
                })
                .collect(),
            encoder: (0..self.layers)
                .map(|_| {
                    PostNormLayer::new(self.embed_dim, self.heads, self.ffn_dim, n_au, Some(n_au - 1), device)
                })
                .collect(),
            fc1: LinearConfig::new(n_au * self.embed_dim, self.mlp_hidden).init(device),
            fc2: LinearConfig::new(self.mlp_hidden, n_au).init(device),
        }
    }
}

/// One per-AU embedding branch: a few convs, a 1x1 conv and an FC (3.3).
#[derive(Module, Debug)]
pub struct AuBranch {
    pub conv1: ConvBn,
    pub conv2: ConvBn,
    pub reduce: Conv2d,
    pub fc: Linear,
}

#[derive(Module, Debug)]
pub struct TransAu {
    pub inception: Option<InceptionTrunk>,
    pub resnet: Option<ResNet>,
    pub efficientnet: Option<EfficientNet>,
    pub att_conv1: ConvBn,
    pub att_conv2: ConvBn,
    /// 1x1 conv to N_AU maps (+BN); the attention maps are their sigmoid.
    pub att_maps: ConvBn,
    /// 1x1 conv N_AU -> N_AU, then GAP: the attention-branch logits.
    pub att_out: Conv2d,
    pub branches: Vec<AuBranch>,
    pub encoder: Vec<PostNormLayer>,
    pub fc1: Linear,
    pub fc2: Linear,
}

/// Everything TransAU's joint loss needs (eq. 1).
#[derive(Debug, Clone)]
pub struct TransAuOutputs {
    pub logits: Tensor<2>,
    /// Attention-branch logits (E_att).
    pub attention_logits: Tensor<2>,
    /// [B, N_AU, h, w] in [0, 1] (E_att_map).
    pub attention_maps: Tensor<4>,
    /// [B, N_AU, D] per-AU embeddings before the encoder (E_CC).
    pub embeddings: Tensor<3>,
    pub maps: ModelMaps,
}

impl TransAu {
    pub fn cam_layers(cfg: &TransAuConfig) -> Vec<String> {
        let mut v = match &cfg.backbone {
            TransAuBackbone::InceptionV3(_) => vec!["backbone.Mixed_6e".into(), "backbone.Mixed_5d".into()],
            TransAuBackbone::Resnet(c) => ResNet::cam_layers(c, "backbone."),
            TransAuBackbone::Efficientnet(c) => (1..=c.stages).rev().map(|s| format!("backbone.stage{s}")).collect(),
        };
        v.push("attention".into());
        v
    }

    fn backbone(&self, x: Tensor<4>, trace: &mut Trace) -> Tensor<4> {
        if let Some(m) = &self.inception {
            m.forward(x, "backbone.", trace)
        } else if let Some(m) = &self.resnet {
            m.forward(x, "backbone.", trace)
        } else if let Some(m) = &self.efficientnet {
            m.forward(x, "backbone.", trace)
        } else {
            unreachable!("TransAu is built with exactly one backbone")
        }
    }

    /// Input: the grayscale crop replicated to 3 channels, ImageNet-normalised.
    pub fn forward_all(&self, x: Tensor<4>, trace: &mut Trace) -> TransAuOutputs {
        let f = self.backbone(x, trace);
        let b = f.dims()[0];
        let a = self.att_conv2.forward(self.att_conv1.forward(f.clone()));
        let m = self.att_maps.forward(a);
        let maps = sigmoid(m.clone());
        trace.offer("attention", &maps);
        let attention_logits = gap(self.att_out.forward(m));
        let n = maps.dims()[1];
        let embeddings: Vec<Tensor<3>> = self
            .branches
            .iter()
            .enumerate()
            .map(|(i, br)| {
                let ai = maps.clone().narrow(1, i, 1);
                let e = br.conv2.forward(br.conv1.forward(f.clone() * ai));
                let e = relu(br.reduce.forward(e));
                let [_, ce, he, we] = e.dims();
                br.fc.forward(e.reshape([b, ce * he * we])).unsqueeze_dim::<3>(1)
            })
            .collect();
        let embeddings = Tensor::cat(embeddings, 1);
        let mut x = embeddings.clone();
        let mut attention = Vec::new();
        for (i, layer) in self.encoder.iter().enumerate() {
            let (y, am) = layer.forward(x);
            attention.push(AttentionLayerMaps {
                name: format!("encoder layer {}", i + 1),
                attention: am.attention,
                mask: None,
            });
            x = y;
        }
        let [_, _, d] = x.dims();
        let logits = self.fc2.forward(relu(self.fc1.forward(x.reshape([b, n * d]))));
        TransAuOutputs {
            logits,
            attention_logits: attention_logits.clone(),
            attention_maps: maps.clone(),
            embeddings,
            maps: ModelMaps {
                roi_attention: Some(maps),
                attention,
                attention_branch: Some(sigmoid(attention_logits)),
                ..ModelMaps::default()
            },
        }
    }

    pub fn forward(&self, x: Tensor<4>, trace: &mut Trace) -> AuOutput {
        let out = self.forward_all(x, trace);
        AuOutput::from_logits(out.logits, out.maps)
    }
}

