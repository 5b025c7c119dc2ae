//! FAN: the stacked-hourglass face alignment network (Bulat & Tzimiropoulos,
//! "How far are we from solving the 2D & 3D face alignment problem?", 2017).
//! 2DFAN4 has 4 stacks; the number is configuration. The structure mirrors
//! `face_alignment/models.py` (ConvBlock, HourGlass, FAN) so its checkpoints
//! load with the key table in [`Fan::pytorch_remap`].

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::blocks::{Trace, avg_pool, bn, conv, conv_k};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanConfig {
    /// Hourglass stacks (2DFAN4: 4).
    pub stacks: usize,
    /// Recursion depth of each hourglass (face-alignment: 4).
    pub depth: usize,
    /// Feature width of the hourglasses (face-alignment: 256).
    pub features: usize,
    /// Landmark heat-maps (68).
    pub landmarks: usize,
}

impl FanConfig {
    /// 2DFAN4 as released with face-alignment.
    pub fn fan4() -> Self {
        Self {
            stacks: 4,
            depth: 4,
            features: 256,
            landmarks: 68,
        }
    }

    /// A narrow two-stack FAN for fast CPU tests.
    pub fn tiny() -> Self {
        Self {
            stacks: 2,
            depth: 2,
            features: 32,
            landmarks: 68,
        }
    }

    pub fn init(&self, device: &Device) -> Fan {
        let f = self.features;
        let stacks = (0..self.stacks)
            .map(|i| FanStack {
                hg: HourGlass::new(self.depth, f, device),
                top: ConvBlock::new(f, f, device),
                conv_last: conv(f, f, [1, 1], 1, [0, 0], 1, true, device),
                bn_end: bn(f, 1e-5, device),
                l: conv(f, self.landmarks, [1, 1], 1, [0, 0], 1, true, device),
                back: (i + 1 < self.stacks).then(|| FanBack {
                    bl: conv(f, f, [1, 1], 1, [0, 0], 1, true, device),
                    al: conv(self.landmarks, f, [1, 1], 1, [0, 0], 1, true, device),
                }),
            })
            .collect();
        Fan {
            conv1: conv_k(3, f / 4, 7, 2, true, device),
            bn1: bn(f / 4, 1e-5, device),
            conv2: ConvBlock::new(f / 4, f / 2, device),
            conv3: ConvBlock::new(f / 2, f / 2, device),
            conv4: ConvBlock::new(f / 2, f, device),
            stacks,
        }
    }
}

/// face-alignment's `ConvBlock`: three pre-activation 3x3 convolutions of
/// widths out/2, out/4, out/4, concatenated, plus a (BN, ReLU, 1x1) shortcut
/// when the width changes.
#[derive(Module, Debug)]
pub struct ConvBlock {
    pub bn1: BatchNorm,
    pub conv1: Conv2d,
    pub bn2: BatchNorm,
    pub conv2: Conv2d,
    pub bn3: BatchNorm,
    pub conv3: Conv2d,
    pub downsample_bn: Option<BatchNorm>,
    pub downsample_conv: Option<Conv2d>,
}

impl ConvBlock {
    pub fn new(cin: usize, cout: usize, device: &Device) -> Self {
        let (h, q) = (cout / 2, cout / 4);
        let down = cin != cout;
        Self {
            bn1: bn(cin, 1e-5, device),
            conv1: conv_k(cin, h, 3, 1, false, device),
            bn2: bn(h, 1e-5, device),
            conv2: conv_k(h, q, 3, 1, false, device),
            bn3: bn(q, 1e-5, device),
            conv3: conv_k(q, q, 3, 1, false, device),
            downsample_bn: down.then(|| bn(cin, 1e-5, device)),
            downsample_conv: down.then(|| conv(cin, cout, [1, 1], 1, [0, 0], 1, false, device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out1 = self.conv1.forward(relu(self.bn1.forward(x.clone())));
        let out2 = self.conv2.forward(relu(self.bn2.forward(out1.clone())));
        let out3 = self.conv3.forward(relu(self.bn3.forward(out2.clone())));
        let cat = Tensor::cat(vec![out1, out2, out3], 1);
        let residual = match (&self.downsample_bn, &self.downsample_conv) {
            (Some(b), Some(c)) => c.forward(relu(b.forward(x))),
            _ => x,
        };
        cat + residual
    }
}

/// One hourglass level `l` (face-alignment names its blocks `b1_l`, `b2_l`,
/// `b3_l`, and `b2_plus_1` at the bottom).
#[derive(Module, Debug)]
pub struct HourGlassLevel {
    pub b1: ConvBlock,
    pub b2: ConvBlock,
    pub b3: ConvBlock,
}

#[derive(Module, Debug)]
pub struct HourGlass {
    /// `levels[l - 1]` is level `l`; the recursion starts at the top level.
    pub levels: Vec<HourGlassLevel>,
    pub b2_plus: ConvBlock,
}

impl HourGlass {
    fn new(depth: usize, f: usize, device: &Device) -> Self {
        Self {
            levels: (0..depth)
                .map(|_| HourGlassLevel {
                    b1: ConvBlock::new(f, f, device),
                    b2: ConvBlock::new(f, f, device),
                    b3: ConvBlock::new(f, f, device),
                })
                .collect(),
            b2_plus: ConvBlock::new(f, f, device),
        }
    }

    fn forward_level(&self, level: usize, x: Tensor<4>) -> Tensor<4> {
        let blocks = &self.levels[level - 1];
        let up1 = blocks.b1.forward(x.clone());
        let low1 = blocks.b2.forward(avg_pool(x, 2, 2, 0));
        let low2 = if level > 1 {
            self.forward_level(level - 1, low1)
        } else {
            self.b2_plus.forward(low1)
        };
        let low3 = blocks.b3.forward(low2);
        let [_, _, h, w] = low3.dims();
        let up2 = interpolate(
            low3,
            InterpolateOptions::new(InterpolateMode::Nearest).with_output_size([h * 2, w * 2]),
        );
        up1 + up2
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_level(self.levels.len(), x)
    }
}

#[derive(Module, Debug)]
pub struct FanBack {
    pub bl: Conv2d,
    pub al: Conv2d,
}

#[derive(Module, Debug)]
pub struct FanStack {
    pub hg: HourGlass,
    pub top: ConvBlock,
    pub conv_last: Conv2d,
    pub bn_end: BatchNorm,
    pub l: Conv2d,
    /// The re-injection convs `bl`/`al` exist for all but the last stack.
    pub back: Option<FanBack>,
}

#[derive(Module, Debug)]
pub struct Fan {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: ConvBlock,
    pub conv3: ConvBlock,
    pub conv4: ConvBlock,
    pub stacks: Vec<FanStack>,
}

/// What FAN-Trans takes from the FAN.
#[derive(Debug, Clone)]
pub struct FanFeatures {
    /// Low-level features LF: the output of `conv4`, [B, F, H/4, W/4].
    pub low: Tensor<4>,
    /// Per stack, the features after `conv_last`/`bn_end`/ReLU (H1, H2 are
    /// the last two), [B, F, H/4, W/4].
    pub stack_features: Vec<Tensor<4>>,
    /// Per stack, the 68 heat-maps; the last is the FAN's prediction.
    pub heatmaps: Vec<Tensor<4>>,
}

impl Fan {
    /// Input: RGB in [0, 1], [B, 3, H, W] with H, W multiples of 4 * 2^depth.
    pub fn forward(&self, x: Tensor<4>, trace: &mut Trace) -> FanFeatures {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        let x = avg_pool(self.conv2.forward(x), 2, 2, 0);
        let x = self.conv3.forward(x);
        let low = self.conv4.forward(x);
        trace.offer("fan.conv4", &low);
        let mut previous = low.clone();
        let mut stack_features = Vec::new();
        let mut heatmaps = Vec::new();
        for (i, s) in self.stacks.iter().enumerate() {
            let hg = s.hg.forward(previous.clone());
            let ll = s.top.forward(hg);
            let ll = relu(s.bn_end.forward(s.conv_last.forward(ll)));
            trace.offer(&format!("fan.stack{i}"), &ll);
            let out = s.l.forward(ll.clone());
            if let Some(back) = &s.back {
                previous = previous + back.bl.forward(ll.clone()) + back.al.forward(out.clone());
            }
            stack_features.push(ll);
            heatmaps.push(out);
        }
        FanFeatures {
            low,
            stack_features,
            heatmaps,
        }
    }

    /// face-alignment key -> our key, as (regex, replacement) pairs applied in
    /// order to every checkpoint key.
    pub fn pytorch_remap(cfg: &FanConfig, prefix: &str) -> Vec<(String, String)> {
        let p = regex::escape(prefix);
        let mut v = vec![
            (r"\.downsample\.0\.".into(), ".downsample_bn.".into()),
            (r"\.downsample\.2\.".into(), ".downsample_conv.".into()),
        ];
        for (name, field) in [
            ("top_m_", "top"),
            ("conv_last", "conv_last"),
            ("bn_end", "bn_end"),
            ("l", "l"),
            ("m", "hg"),
        ] {
            v.push((
                format!(r"^{p}{name}(\d+)\."),
                format!("{prefix}stacks.${{1}}.{field}."),
            ));
        }
        for name in ["bl", "al"] {
            v.push((
                format!(r"^{p}{name}(\d+)\."),
                format!("{prefix}stacks.${{1}}.back.{name}."),
            ));
        }
        for level in 1..=cfg.depth {
            for b in ["b1", "b2", "b3"] {
                v.push((
                    format!(r"\.hg\.{b}_{level}\."),
                    format!(".hg.levels.{}.{b}.", level - 1),
                ));
            }
        }
        v.push((r"\.hg\.b2_plus_1\.".into(), ".hg.b2_plus.".into()));
        v
    }
}
