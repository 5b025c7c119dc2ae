//! insightface's IResNet (arcface_torch `iresnet.py`): the face-recognition
//! backbone of LRP-ARL-FF (IResNet100 in the paper). 112x112 input ->
//! 512 x 7 x 7 features and a 512-d embedding.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, Linear, LinearConfig, PRelu, PReluConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::models::blocks::{Trace, bn, conv, conv_k};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IResNetConfig {
    /// Blocks per stage: 100 -> [3, 13, 30, 3], 50 -> [3, 4, 14, 3],
    /// 34 -> [3, 4, 6, 3], 18 -> [2, 2, 2, 2].
    pub layers: [usize; 4],
    /// Stage widths (insightface: 64, 128, 256, 512).
    pub widths: [usize; 4],
    /// Embedding size (512).
    pub embedding: usize,
    /// Input side (112): the FC takes widths[3] x (side / 16)^2.
    pub input_size: usize,
}

impl IResNetConfig {
    pub fn depth(depth: usize) -> Option<Self> {
        let layers = match depth {
            18 => [2, 2, 2, 2],
            34 => [3, 4, 6, 3],
            50 => [3, 4, 14, 3],
            100 => [3, 13, 30, 3],
            200 => [6, 26, 60, 6],
            _ => return None,
        };
        Some(Self { layers, widths: [64, 128, 256, 512], embedding: 512, input_size: 112 })
    }

    pub fn tiny() -> Self {
        Self { layers: [1, 1, 1, 1], widths: [8, 16, 16, 32], embedding: 32, input_size: 32 }
    }

    pub fn feature_side(&self) -> usize {
        self.input_size / 16
    }

    pub fn init(&self, device: &Device) -> IResNet {
        let mut inplanes = self.widths[0];
        let mut stages = Vec::new();
        for (s, &n) in self.layers.iter().enumerate() {
            let planes = self.widths[s];
            let mut blocks = Vec::new();
            for i in 0..n {
                let (cin, stride) = if i == 0 { (inplanes, 2) } else { (planes, 1) };
                blocks.push(IBasicBlock {
                    bn1: bn(cin, 1e-5, device),
                    conv1: conv_k(cin, planes, 3, 1, false, device),
                    bn2: bn(planes, 1e-5, device),
                    prelu: PReluConfig::new().with_num_parameters(planes).init(device),
                    conv2: conv_k(planes, planes, 3, stride, false, device),
                    bn3: bn(planes, 1e-5, device),
                    downsample: (i == 0).then(|| IDownsample {
                        conv: conv(cin, planes, [1, 1], stride, [0, 0], 1, false, device),
                        bn: bn(planes, 1e-5, device),
                    }),
                });
            }
            inplanes = planes;
            stages.push(blocks);
        }
        let side = self.feature_side();
        let mut it = stages.into_iter();
        IResNet {
            conv1: conv_k(3, self.widths[0], 3, 1, false, device),
            bn1: bn(self.widths[0], 1e-5, device),
            prelu: PReluConfig::new().with_num_parameters(self.widths[0]).init(device),
            layer1: it.next().unwrap_or_default(),
            layer2: it.next().unwrap_or_default(),
            layer3: it.next().unwrap_or_default(),
            layer4: it.next().unwrap_or_default(),
            bn2: bn(self.widths[3], 1e-5, device),
            fc: LinearConfig::new(self.widths[3] * side * side, self.embedding).init(device),
            features: bn(self.embedding, 1e-5, device),
        }
    }
}

#[derive(Module, Debug)]
pub struct IDownsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct IBasicBlock {
    pub bn1: BatchNorm,
    pub conv1: Conv2d,
    pub bn2: BatchNorm,
    pub prelu: PRelu,
    pub conv2: Conv2d,
    pub bn3: BatchNorm,
    pub downsample: Option<IDownsample>,
}

impl IBasicBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = self.bn1.forward(x.clone());
        let out = self.conv1.forward(out);
        let out = self.prelu.forward(self.bn2.forward(out));
        let out = self.bn3.forward(self.conv2.forward(out));
        let id = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x)),
            None => x,
        };
        out + id
    }
}

#[derive(Module, Debug)]
pub struct IResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub prelu: PRelu,
    pub layer1: Vec<IBasicBlock>,
    pub layer2: Vec<IBasicBlock>,
    pub layer3: Vec<IBasicBlock>,
    pub layer4: Vec<IBasicBlock>,
    pub bn2: BatchNorm,
    pub fc: Linear,
    /// BatchNorm1d on the embedding.
    pub features: BatchNorm,
}

impl IResNet {
    /// Returns (feature map after `bn2` [B, 512, 7, 7], embedding [B, 512]).
    pub fn forward(&self, x: Tensor<4>, prefix: &str, trace: &mut Trace) -> (Tensor<4>, Tensor<2>) {
        let mut x = self.prelu.forward(self.bn1.forward(self.conv1.forward(x)));
        for (i, layer) in [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .enumerate()
        {
            for b in layer {
                x = b.forward(x);
            }
            trace.offer(&format!("{prefix}layer{}", i + 1), &x);
        }
        let fmap = self.bn2.forward(x);
        let [b, c, h, w] = fmap.dims();
        let emb = self.features.forward(self.fc.forward(fmap.clone().reshape([b, c * h * w])));
        (fmap, emb)
    }

    pub fn pytorch_remap(prefix: &str) -> Vec<(String, String)> {
        let p = regex::escape(prefix);
        vec![
            (format!(r"^{p}(layer\d\.\d+)\.downsample\.0\."), format!("{prefix}${{1}}.downsample.conv.")),
            (format!(r"^{p}(layer\d\.\d+)\.downsample\.1\."), format!("{prefix}${{1}}.downsample.bn.")),
            (r"prelu\.weight$".into(), "prelu.alpha".into()),
        ]
    }
}
