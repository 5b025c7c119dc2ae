//! LRP + ARL + FF (ABAW5 entry): IResNet backbone, local region perception
//! with LANets, an AU relation graph (ME-GraphAU's FGG: per-sample top-k
//! neighbours) and feature fusion with backbone logits, either a fixed
//! weight or a weight token through a 2-layer transformer encoder.

use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::backbones::iresnet::{IResNet, IResNetConfig};
use super::blocks::{Trace, bn, conv};
use super::output::{AttentionLayerMaps, AuOutput, ModelMaps};
use super::transformer::PostNormLayer;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// logits = w * backbone + (1 - w) * AU.
    Fixed { weight: f32 },
    /// [weight token, backbone token, AU tokens] -> encoder -> the weight
    /// token's FC + sigmoid gives a per-AU fusion weight (Choice: per AU).
    Transformer { layers: usize, dim: usize, heads: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrpArlFfConfig {
    pub backbone: IResNetConfig,
    /// Number of LANets (paper: "several"). Choice: 8.
    pub lanets: usize,
    /// LANet channel compression r. Choice: 16.
    pub reduction: usize,
    /// AU node width (ME-GraphAU: backbone channels / 2).
    pub node_dim: usize,
    /// Neighbours per node in the per-sample graph (ME-GraphAU: 4).
    pub neighbors: usize,
    pub fusion: Fusion,
}

impl LrpArlFfConfig {
    pub fn paper() -> Self {
        Self {
            backbone: IResNetConfig::depth(100).expect("depth 100 exists"),
            lanets: 8,
            reduction: 16,
            node_dim: 256,
            neighbors: 4,
            fusion: Fusion::Transformer { layers: 2, dim: 256, heads: 4 },
        }
    }

    pub fn tiny() -> Self {
        Self {
            backbone: IResNetConfig::tiny(),
            lanets: 2,
            reduction: 4,
            node_dim: 16,
            neighbors: 3,
            fusion: Fusion::Transformer { layers: 2, dim: 16, heads: 2 },
        }
    }

    pub fn init(&self, n_au: usize, device: &Device) -> LrpArlFf {
        let c = self.backbone.widths[3];
        let d = self.node_dim;
        let lin = |a: usize, b: usize| LinearBlock { fc: LinearConfig::new(a, b).init(device), bn: bn(b, 1e-5, device) };
        let (fusion_fixed, fusion) = match &self.fusion {
            Fusion::Fixed { weight } => (Some(*weight), None),
            Fusion::Transformer { layers, dim, heads } => (
                None,
                Some(FusionEncoder {
                    weight_token: Param::from_tensor(Tensor::random([1, 1, *dim], Distribution::Normal(0.0, 0.02), device)),
                    backbone_proj: LinearConfig::new(self.backbone.embedding, *dim).init(device),
                    au_proj: LinearConfig::new(d, *dim).init(device),
                    layers: (0..*layers).map(|_| PostNormLayer::new(*dim, *heads, dim * 2, n_au + 2, None, device)).collect(),
                    head: LinearConfig::new(*dim, n_au).init(device),
                }),
            ),
        };
        LrpArlFf {
            backbone: self.backbone.init(device),
            lanets: (0..self.lanets)
                .map(|_| LaNet {
                    conv1: conv(c, (c / self.reduction).max(1), [1, 1], 1, [0, 0], 1, true, device),
                    conv2: conv((c / self.reduction).max(1), 1, [1, 1], 1, [0, 0], 1, true, device),
                })
                .collect(),
            global_linear: lin(c, d),
            class_linears: (0..n_au).map(|_| lin(d, d)).collect(),
            gnn: Gnn {
                u: LinearConfig::new(d, d).init(device),
                v: LinearConfig::new(d, d).init(device),
                bnv: bn(n_au, 1e-5, device),
            },
            au_weight: Param::from_tensor(Tensor::random([n_au, d], Distribution::Normal(0.0, (1.0 / d as f64).sqrt()), device)),
            au_bias: Param::from_tensor(Tensor::zeros([n_au], device)),
            backbone_head: LinearConfig::new(self.backbone.embedding, n_au).init(device),
            fusion,
            fixed_weight: fusion_fixed.unwrap_or(0.5),
            neighbors: self.neighbors,
        }
    }
}

/// LANet: 1x1 conv c -> c/r, ReLU, 1x1 conv -> 1.
#[derive(Module, Debug)]
pub struct LaNet {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
}

/// ME-GraphAU's `LinearBlock`: FC, BatchNorm1d over features, ReLU.
#[derive(Module, Debug)]
pub struct LinearBlock {
    pub fc: Linear,
    pub bn: BatchNorm,
}

impl LinearBlock {
    /// x: [B, T, C_in] -> [B, T, C_out]
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let y = self.fc.forward(x).swap_dims(1, 2);
        relu(self.bn.forward(y)).swap_dims(1, 2)
    }
}

/// ME-GraphAU's FGG graph layer: per sample, each node links to its k most
/// similar nodes (dot product, no gradient), symmetric normalisation
/// D^-1/2 A D^-1/2, x' = ReLU(x + BN(A V x + U x)).
#[derive(Module, Debug)]
pub struct Gnn {
    pub u: Linear,
    pub v: Linear,
    pub bnv: BatchNorm,
}

impl Gnn {
    fn forward(&self, x: Tensor<3>, k: usize) -> (Tensor<3>, Tensor<3>) {
        let [b, n, _] = x.dims();
        let xd = x.clone().detach();
        let si = xd.clone().matmul(xd.swap_dims(1, 2));
        let k = k.clamp(1, n);
        let thr = si.clone().topk(k, 2).narrow(2, k - 1, 1);
        let adj = si.greater_equal(thr).float();
        let deg = adj.clone().sum_dim(2).powf_scalar(-0.5); // [B, N, 1]
        let a = deg.clone() * adj.clone() * deg.reshape([b, 1, n]);
        let agg = a.matmul(self.v.forward(x.clone()));
        (relu(x.clone() + self.bnv.forward(agg + self.u.forward(x))), adj)
    }
}

#[derive(Module, Debug)]
pub struct FusionEncoder {
    pub weight_token: Param<Tensor<3>>,
    pub backbone_proj: Linear,
    pub au_proj: Linear,
    pub layers: Vec<PostNormLayer>,
    pub head: Linear,
}

#[derive(Module, Debug)]
pub struct LrpArlFf {
    pub backbone: IResNet,
    pub lanets: Vec<LaNet>,
    pub global_linear: LinearBlock,
    pub class_linears: Vec<LinearBlock>,
    pub gnn: Gnn,
    /// Per-AU FC on the node features -> AU logits.
    pub au_weight: Param<Tensor<2>>,
    pub au_bias: Param<Tensor<1>>,
    pub backbone_head: Linear,
    pub fusion: Option<FusionEncoder>,
    #[module(skip)]
    pub fixed_weight: f32,
    #[module(skip)]
    pub neighbors: usize,
}

#[derive(Debug, Clone)]
pub struct LrpArlFfOutputs {
    pub logits: Tensor<2>,
    pub backbone_logits: Tensor<2>,
    pub au_logits: Tensor<2>,
    /// The per-sample AU graph [B, N, N] (binary).
    pub graph: Tensor<3>,
    pub maps: ModelMaps,
}

impl LrpArlFf {
    pub const CAM_LAYERS: [&'static str; 3] = ["lrp", "backbone.layer4", "backbone.layer3"];

    /// Input: RGB normalised to [-1, 1] (insightface), [B, 3, 112, 112].
    pub fn forward_all(&self, x: Tensor<4>, trace: &mut Trace) -> LrpArlFfOutputs {
        let (fmap, emb) = self.backbone.forward(x, "backbone.", trace);
        let [b, c, h, w] = fmap.dims();
        let scores: Vec<Tensor<4>> = self.lanets.iter().map(|l| l.conv2.forward(relu(l.conv1.forward(fmap.clone())))).collect();
        let att = sigmoid(Tensor::cat(scores, 1).max_dim(1));
        let f = fmap * att.clone();
        trace.offer("lrp", &f);
        let tokens = self.global_linear.forward(f.reshape([b, c, h * w]).swap_dims(1, 2));
        let nodes: Vec<Tensor<3>> = self.class_linears.iter().map(|l| l.forward(tokens.clone()).mean_dim(1)).collect();
        let nodes = Tensor::cat(nodes, 1); // [B, N, d]
        let (nodes, graph) = self.gnn.forward(nodes, self.neighbors);
        let [_, n, d] = nodes.dims();
        let au_logits = (nodes.clone() * self.au_weight.val().reshape([1, n, d])).sum_dim(2).reshape([b, n])
            + self.au_bias.val().reshape([1, n]);
        let backbone_logits = self.backbone_head.forward(emb.clone());
        let mut attention = Vec::new();
        let weight = match &self.fusion {
            None => Tensor::full([b, n], self.fixed_weight, &au_logits.device()),
            Some(fe) => {
                let [_, _, dim] = fe.weight_token.dims();
                let bt = fe.backbone_proj.forward(emb).reshape([b, 1, dim]);
                let at = fe.au_proj.forward(nodes);
                let mut t = Tensor::cat(vec![fe.weight_token.val().expand([b, 1, dim]), bt, at], 1);
                for (i, l) in fe.layers.iter().enumerate() {
                    let (y, m) = l.forward(t);
                    attention.push(AttentionLayerMaps { name: format!("fusion layer {}", i + 1), attention: m.attention, mask: None });
                    t = y;
                }
                sigmoid(fe.head.forward(t.narrow(1, 0, 1).reshape([b, dim])))
            }
        };
        let logits = weight.clone() * backbone_logits.clone() + (weight.clone().neg().add_scalar(1.0)) * au_logits.clone();
        LrpArlFfOutputs {
            logits,
            backbone_logits,
            au_logits,
            graph,
            maps: ModelMaps { lanet_attention: Some(att), attention, fusion_weight: Some(weight), ..ModelMaps::default() },
        }
    }

    pub fn forward(&self, x: Tensor<4>, trace: &mut Trace) -> AuOutput {
        let out = self.forward_all(x, trace);
        AuOutput::from_logits(out.logits, out.maps)
    }
}
