//! FAN-Trans (Yang et al., WACV 2023): FAN features -> conv module -> per-AU
//! tokens -> two transformer branches (one-to-one and one-to-many TopK
//! classifiers) mixed by an ensemble weight generator for online knowledge
//! distillation. Choices where the paper is silent are marked "Choice:".

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::blocks::{Trace, bn, conv, conv_k, gap, max_pool};
use super::fan::{Fan, FanConfig};
use super::output::{AttentionLayerMaps, AuOutput, ModelMaps};
use super::transformer::{AttentionDrop, PreNormBlock};

/// How the FAN heat-maps are reduced to the one plane multiplied into H1, H2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeatmapAggregate {
    Sum,
    Max,
}

/// Which output is the prediction at inference (paper: only one branch is
/// deployed; the ensemble is the OKD target during training).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanTransDeploy {
    OneToOne,
    OneToMany,
    Ensemble,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanTransConfig {
    pub fan: FanConfig,
    /// C: channels after the conv module = token dimension.
    /// Choice: 512 (the paper does not give C; heads = C / 64 = 8).
    pub dim: usize,
    /// Transformer blocks per branch (paper: 5).
    pub blocks: usize,
    pub attention_drop: AttentionDrop,
    /// k of the one-to-many TopK (paper: "TopK", value not given). Choice: 3.
    pub top_k: usize,
    pub aggregate: HeatmapAggregate,
    pub deploy: FanTransDeploy,
    pub input_size: usize,
}

impl FanTransConfig {
    pub fn paper() -> Self {
        Self {
            fan: FanConfig::fan4(),
            dim: 512,
            blocks: 5,
            attention_drop: AttentionDrop::Learned,
            top_k: 3,
            aggregate: HeatmapAggregate::Max,
            deploy: FanTransDeploy::OneToMany,
            input_size: 256,
        }
    }

    pub fn tiny() -> Self {
        Self {
            fan: FanConfig::tiny(),
            dim: 64,
            blocks: 2,
            input_size: 64,
            ..Self::paper()
        }
    }

    /// Number of conv-module output positions: (input / 4 / 4)^2.
    fn positions(&self) -> usize {
        let s = self.input_size / 16;
        s * s
    }

    pub fn init(&self, n_au: usize, device: &Device) -> FanTrans {
        let f = self.fan.features;
        // F_a = [LF, H1 * HM, H2 * HM] (with a single stack, H1 only).
        let used = self.fan.stacks.min(2);
        let c_a = f * (1 + used);
        let c = self.dim;
        let convs = (0..4)
            .map(|_| ConvBnRelu {
                conv: conv_k(c, c, 3, 1, false, device),
                bn: bn(c, 1e-5, device),
            })
            .collect();
        let branch = || Branch {
            blocks: (0..self.blocks)
                .map(|_| PreNormBlock::new(c, n_au, self.attention_drop, device))
                .collect(),
            norm: burn::nn::LayerNormConfig::new(c).with_epsilon(1e-6).init(device),
        };
        FanTrans {
            fan: self.fan.init(device),
            reduce: ConvBnRelu {
                conv: conv(c_a, c, [1, 1], 1, [0, 0], 1, false, device),
                bn: bn(c, 1e-5, device),
            },
            convs,
            assign: LinearConfig::new(self.positions(), n_au).init(device),
            pos_embed: Param::from_tensor(Tensor::random(
                [1, n_au, c],
                Distribution::Normal(0.0, 0.02),
                device,
            )),
            one_to_one: branch(),
            one_to_many: branch(),
            o2o_weight: Param::from_tensor(Tensor::random(
                [n_au, c],
                Distribution::Normal(0.0, (1.0 / c as f64).sqrt()),
                device,
            )),
            o2o_bias: Param::from_tensor(Tensor::zeros([n_au], device)),
            o2m: LinearConfig::new(c, n_au).init(device),
            ens_a: ConvBnRelu {
                conv: conv(c, c / 4, [1, 1], 1, [0, 0], 1, false, device),
                bn: bn(c / 4, 1e-5, device),
            },
            ens_b: ConvBnRelu {
                conv: Conv2dConfig::new([c, c / 4], [3, 3])
                    .with_dilation([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(2, 2, 2, 2))
                    .with_bias(false)
                    .init(device),
                bn: bn(c / 4, 1e-5, device),
            },
            ens_fc: LinearConfig::new(c / 2, 2).init(device),
            top_k: self.top_k,
            aggregate: self.aggregate,
            deploy: self.deploy,
        }
    }
}

#[derive(Module, Debug)]
pub struct ConvBnRelu {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBnRelu {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct Branch {
    pub blocks: Vec<PreNormBlock>,
    pub norm: burn::nn::LayerNorm,
}

#[derive(Module, Debug)]
pub struct FanTrans {
    /// Pre-trained and frozen in the paper; the trainer freezes it.
    pub fan: Fan,
    /// 1x1 conv C_a -> C.
    pub reduce: ConvBnRelu,
    /// Four 3x3 convs; then a 4x4 max-pool (64 -> 16).
    pub convs: Vec<ConvBnRelu>,
    /// Eq. 1: linear map from the 256 spatial positions to the N_AU tokens.
    pub assign: Linear,
    pub pos_embed: Param<Tensor<3>>,
    pub one_to_one: Branch,
    pub one_to_many: Branch,
    /// Eq. 4: one FC per AU token -> its AU's logit.
    pub o2o_weight: Param<Tensor<2>>,
    pub o2o_bias: Param<Tensor<1>>,
    /// Eq. 5: the transformation matrix W' (C -> N_AU) applied to each token.
    pub o2m: Linear,
    /// Ensemble weight generator: two splits with different receptive fields
    /// (Choice: 1x1 conv and 3x3 dilation-2 conv, each to C/4 + GAP),
    /// concatenated, FC -> 2, softmax.
    pub ens_a: ConvBnRelu,
    pub ens_b: ConvBnRelu,
    pub ens_fc: Linear,
    #[module(skip)]
    pub top_k: usize,
    #[module(skip)]
    pub aggregate: HeatmapAggregate,
    #[module(skip)]
    pub deploy: FanTransDeploy,
}

/// All outputs of a FAN-Trans forward pass (training needs all three).
#[derive(Debug, Clone)]
pub struct FanTransOutputs {
    pub one_to_one: Tensor<2>,
    pub one_to_many: Tensor<2>,
    pub ensemble: Tensor<2>,
    /// Softmaxed ensemble weights [B, 2].
    pub ensemble_weights: Tensor<2>,
    pub maps: ModelMaps,
}

impl Branch {
    fn forward(&self, mut x: Tensor<3>, name: &str, maps: &mut Vec<AttentionLayerMaps>) -> Tensor<3> {
        for (i, blk) in self.blocks.iter().enumerate() {
            let (y, m) = blk.forward(x);
            maps.push(AttentionLayerMaps {
                name: format!("{name} block {}", i + 1),
                attention: m.attention,
                mask: m.mask,
            });
            x = y;
        }
        self.norm.forward(x)
    }
}

impl FanTrans {
    pub const CAM_LAYERS: [&'static str; 3] = ["conv_module", "fan.conv4", "reduce"];

    pub fn forward_all(&self, x: Tensor<4>, trace: &mut Trace) -> FanTransOutputs {
        let feats = self.fan.forward(x, trace);
        let hm = feats.heatmaps.last().cloned().expect("FAN has at least one stack");
        let b = hm.dims()[0];
        let plane = match self.aggregate {
            HeatmapAggregate::Sum => hm.clone().sum_dim(1),
            HeatmapAggregate::Max => hm.clone().max_dim(1),
        };
        let n_used = feats.stack_features.len().min(2);
        let mut parts = vec![feats.low.clone()];
        for hf in &feats.stack_features[feats.stack_features.len() - n_used..] {
            parts.push(hf.clone() * plane.clone());
        }
        let fa = Tensor::cat(parts, 1);
        let mut fc = self.reduce.forward(fa);
        trace.offer("reduce", &fc);
        for c in &self.convs {
            fc = c.forward(fc);
        }
        let fc = max_pool(fc, 4, 4, 0, false);
        trace.offer("conv_module", &fc);
        let [_, c, hs, ws] = fc.dims();
        // Eq. 1: [B, C, HW] x W (HW -> N) -> [B, C, N] -> tokens [B, N, C].
        let tokens = self
            .assign
            .forward(fc.clone().reshape([b, c, hs * ws]))
            .swap_dims(1, 2)
            + self.pos_embed.val();
        let n = tokens.dims()[1];
        let mut attention = Vec::new();
        let t1 = self.one_to_one.forward(tokens.clone(), "one-to-one", &mut attention);
        let t2 = self.one_to_many.forward(tokens, "one-to-many", &mut attention);
        let z1 = (t1 * self.o2o_weight.val().reshape([1, n, c])).sum_dim(2).reshape([b, n])
            + self.o2o_bias.val().reshape([1, n]);
        // Eqs. 5-6: E = T W' ([B, N tokens, N AUs]); AU i averages the k
        // largest evidences in column i.
        let e = self.o2m.forward(t2);
        let k = self.top_k.clamp(1, n);
        let z2 = e.topk(k, 1).mean_dim(1).reshape([b, n]);
        let wa = gap(self.ens_a.forward(fc.clone()));
        let wb = gap(self.ens_b.forward(fc));
        let ew = softmax(self.ens_fc.forward(Tensor::cat(vec![wa, wb], 1)), 1);
        let ens = z1.clone() * ew.clone().narrow(1, 0, 1) + z2.clone() * ew.clone().narrow(1, 1, 1);
        FanTransOutputs {
            one_to_one: z1,
            one_to_many: z2,
            ensemble: ens,
            ensemble_weights: ew,
            maps: ModelMaps {
                fan_heatmaps: Some(hm),
                attention,
                ..ModelMaps::default()
            },
        }
    }

    pub fn forward(&self, x: Tensor<4>, trace: &mut Trace) -> AuOutput {
        let out = self.forward_all(x, trace);
        let logits = match self.deploy {
            FanTransDeploy::OneToOne => out.one_to_one,
            FanTransDeploy::OneToMany => out.one_to_many,
            FanTransDeploy::Ensemble => out.ensemble,
        };
        AuOutput::from_logits(logits, out.maps)
    }
}
