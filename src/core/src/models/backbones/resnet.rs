//! torchvision's ResNet (Bottleneck blocks), cut after a chosen stage.
//! TransAU uses ResNet50 up to `layer3` (1024 x 14 x 14 at 224 input, the
//! last stage with at least 12x12 resolution).

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::models::blocks::{Trace, bn, conv, conv_k, max_pool};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResNetConfig {
    /// Bottleneck blocks per stage (ResNet50: [3, 4, 6, 3]).
    pub layers: [usize; 4],
    /// Width of the stem and of the first stage's bottleneck (64).
    pub width: usize,
    /// Keep stages 1..=stages (TransAU: 3).
    pub stages: usize,
}

impl ResNetConfig {
    pub fn resnet50(stages: usize) -> Self {
        Self { layers: [3, 4, 6, 3], width: 64, stages }
    }

    pub fn tiny(stages: usize) -> Self {
        Self { layers: [1, 1, 1, 1], width: 8, stages }
    }

    pub fn out_channels(&self) -> usize {
        self.width * 4 * (1 << (self.stages - 1))
    }

    /// Output stride of the last kept stage.
    pub fn stride(&self) -> usize {
        4 * (1 << (self.stages - 1))
    }

    pub fn init(&self, in_channels: usize, device: &Device) -> ResNet {
        let mut inplanes = self.width;
        let mut stages: Vec<Vec<Bottleneck>> = Vec::new();
        for (s, &n) in self.layers.iter().enumerate().take(self.stages) {
            let planes = self.width << s;
            let stride = if s == 0 { 1 } else { 2 };
            let mut blocks = Vec::new();
            for i in 0..n {
                let st = if i == 0 { stride } else { 1 };
                let down = (i == 0 && (st != 1 || inplanes != planes * 4)).then(|| Downsample {
                    conv: conv(inplanes, planes * 4, [1, 1], st, [0, 0], 1, false, device),
                    bn: bn(planes * 4, 1e-5, device),
                });
                blocks.push(Bottleneck {
                    conv1: conv(inplanes, planes, [1, 1], 1, [0, 0], 1, false, device),
                    bn1: bn(planes, 1e-5, device),
                    conv2: conv_k(planes, planes, 3, st, false, device),
                    bn2: bn(planes, 1e-5, device),
                    conv3: conv(planes, planes * 4, [1, 1], 1, [0, 0], 1, false, device),
                    bn3: bn(planes * 4, 1e-5, device),
                    downsample: down,
                });
                inplanes = planes * 4;
            }
            stages.push(blocks);
        }
        let mut it = stages.into_iter();
        ResNet {
            conv1: conv_k(in_channels, self.width, 7, 2, false, device),
            bn1: bn(self.width, 1e-5, device),
            layer1: it.next().unwrap_or_default(),
            layer2: it.next().unwrap_or_default(),
            layer3: it.next().unwrap_or_default(),
            layer4: it.next().unwrap_or_default(),
        }
    }
}

#[derive(Module, Debug)]
pub struct Downsample {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

#[derive(Module, Debug)]
pub struct Bottleneck {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Conv2d,
    pub bn3: BatchNorm,
    pub downsample: Option<Downsample>,
}

impl Bottleneck {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(self.conv1.forward(x.clone())));
        let out = relu(self.bn2.forward(self.conv2.forward(out)));
        let out = self.bn3.forward(self.conv3.forward(out));
        let id = match &self.downsample {
            Some(d) => d.bn.forward(d.conv.forward(x)),
            None => x,
        };
        relu(out + id)
    }
}

#[derive(Module, Debug)]
pub struct ResNet {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub layer1: Vec<Bottleneck>,
    pub layer2: Vec<Bottleneck>,
    pub layer3: Vec<Bottleneck>,
    pub layer4: Vec<Bottleneck>,
}

impl ResNet {
    pub fn forward(&self, x: Tensor<4>, prefix: &str, trace: &mut Trace) -> Tensor<4> {
        let mut x = max_pool(relu(self.bn1.forward(self.conv1.forward(x))), 3, 2, 1, false);
        for (i, layer) in [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
            .into_iter()
            .enumerate()
        {
            if layer.is_empty() {
                break;
            }
            for b in layer {
                x = b.forward(x);
            }
            trace.offer(&format!("{prefix}layer{}", i + 1), &x);
        }
        x
    }

    pub fn cam_layers(cfg: &ResNetConfig, prefix: &str) -> Vec<String> {
        (1..=cfg.stages).rev().map(|i| format!("{prefix}layer{i}")).collect()
    }

    pub fn pytorch_remap(prefix: &str) -> Vec<(String, String)> {
        let p = regex::escape(prefix);
        vec![
            (format!(r"^{p}(layer\d\.\d+)\.downsample\.0\."), format!("{prefix}${{1}}.downsample.conv.")),
            (format!(r"^{p}(layer\d\.\d+)\.downsample\.1\."), format!("{prefix}${{1}}.downsample.bn.")),
        ]
    }
}
