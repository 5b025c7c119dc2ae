//! torchvision's EfficientNet (B0, B1), optionally cut after a stage.
//! TransAU's EfficientNet-B0 option stops after stage 5 (112 x 14 x 14 at
//! 224 input); PIAP uses the whole B1 with the 1280-channel head, with a
//! 12-channel stem for its stage 2.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::{sigmoid, silu};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::models::blocks::{Act, ConvBn, Trace, conv, gap};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EfficientNetConfig {
    /// B0: 1.0, B1: 1.0.
    pub width_mult: f64,
    /// B0: 1.0, B1: 1.1.
    pub depth_mult: f64,
    pub in_channels: usize,
    /// Keep stages 1..=stages (7 = all); the 1x1 head exists only with all.
    pub stages: usize,
}

/// (expand ratio, kernel, stride, in, out, layers) of EfficientNet-B0.
const BASE: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
];

/// torchvision `_make_divisible(v, 8)`.
fn divisible(v: f64) -> usize {
    let d = 8.0;
    let mut n = ((v + d / 2.0) / d).floor() * d;
    n = n.max(d);
    if n < 0.9 * v {
        n += d;
    }
    n as usize
}

impl EfficientNetConfig {
    pub fn b0(stages: usize) -> Self {
        Self { width_mult: 1.0, depth_mult: 1.0, in_channels: 3, stages }
    }
    pub fn b1(in_channels: usize) -> Self {
        Self { width_mult: 1.0, depth_mult: 1.1, in_channels, stages: 7 }
    }
    /// Quarter width, half depth: for fast tests.
    pub fn tiny(in_channels: usize, stages: usize) -> Self {
        Self { width_mult: 0.25, depth_mult: 0.5, in_channels, stages }
    }

    fn ch(&self, c: usize) -> usize {
        divisible(c as f64 * self.width_mult)
    }

    pub fn out_channels(&self) -> usize {
        if self.stages == 7 {
            4 * self.ch(320)
        } else {
            self.ch(BASE[self.stages - 1].4)
        }
    }

    pub fn init(&self, device: &Device) -> EfficientNet {
        let stem_out = self.ch(32);
        let mut stages = Vec::new();
        for &(e, k, s, cin, cout, n) in BASE.iter().take(self.stages) {
            let (cin, cout) = (self.ch(cin), self.ch(cout));
            let n = (n as f64 * self.depth_mult).ceil() as usize;
            let blocks = (0..n)
                .map(|i| {
                    let bin = if i == 0 { cin } else { cout };
                    let stride = if i == 0 { s } else { 1 };
                    let exp = bin * e;
                    let sq = (bin / 4).max(1);
                    MbConv {
                        expand: (e != 1).then(|| ConvBn::k(bin, exp, 1, 1, Act::Silu, device)),
                        dw: ConvBn::new(exp, exp, [k, k], stride, [k / 2, k / 2], exp, 1e-5, Act::Silu, device),
                        se: Se {
                            fc1: conv(exp, sq, [1, 1], 1, [0, 0], 1, true, device),
                            fc2: conv(sq, exp, [1, 1], 1, [0, 0], 1, true, device),
                        },
                        project: ConvBn::k(exp, cout, 1, 1, Act::None, device),
                        residual: stride == 1 && bin == cout,
                    }
                })
                .collect();
            stages.push(blocks);
        }
        let last = self.ch(320);
        EfficientNet {
            stem: ConvBn::k(self.in_channels, stem_out, 3, 2, Act::Silu, device),
            stages,
            head: (self.stages == 7).then(|| ConvBn::k(last, 4 * last, 1, 1, Act::Silu, device)),
        }
    }

    /// torchvision key -> ours (`features.S.I.block.J.K` -> named fields).
    pub fn pytorch_remap(&self, prefix: &str) -> Vec<(String, String)> {
        let p = regex::escape(prefix);
        let mut v = vec![
            (format!(r"^{p}features\.0\.0\."), format!("{prefix}stem.conv.")),
            (format!(r"^{p}features\.0\.1\."), format!("{prefix}stem.bn.")),
            (format!(r"^{p}features\.8\.0\."), format!("{prefix}head.conv.")),
            (format!(r"^{p}features\.8\.1\."), format!("{prefix}head.bn.")),
        ];
        for (s, &(e, ..)) in BASE.iter().enumerate() {
            let names: &[&str] = if e == 1 { &["dw", "se", "project"] } else { &["expand", "dw", "se", "project"] };
            for (j, name) in names.iter().enumerate() {
                let (from, to) = if *name == "se" {
                    (format!(r"^{p}features\.{}\.(\d+)\.block\.{j}\.", s + 1), format!("{prefix}stages.{s}.${{1}}.se."))
                } else {
                    (format!(r"^{p}features\.{}\.(\d+)\.block\.{j}\.0\.", s + 1), format!("{prefix}stages.{s}.${{1}}.{name}.conv."))
                };
                v.push((from, to));
                if *name != "se" {
                    v.push((
                        format!(r"^{p}features\.{}\.(\d+)\.block\.{j}\.1\.", s + 1),
                        format!("{prefix}stages.{s}.${{1}}.{name}.bn."),
                    ));
                }
            }
        }
        v
    }
}

#[derive(Module, Debug)]
pub struct Se {
    pub fc1: Conv2d,
    pub fc2: Conv2d,
}

#[derive(Module, Debug)]
pub struct MbConv {
    pub expand: Option<ConvBn>,
    pub dw: ConvBn,
    pub se: Se,
    pub project: ConvBn,
    #[module(skip)]
    pub residual: bool,
}

impl MbConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = match &self.expand {
            Some(e) => e.forward(x.clone()),
            None => x.clone(),
        };
        h = self.dw.forward(h);
        let [b, c, _, _] = h.dims();
        let s = gap(h.clone()).reshape([b, c, 1, 1]);
        let s = sigmoid(self.se.fc2.forward(silu(self.se.fc1.forward(s))));
        h = self.project.forward(h * s);
        if self.residual { h + x } else { h }
    }
}

#[derive(Module, Debug)]
pub struct EfficientNet {
    pub stem: ConvBn,
    pub stages: Vec<Vec<MbConv>>,
    pub head: Option<ConvBn>,
}

impl EfficientNet {
    pub fn forward(&self, x: Tensor<4>, prefix: &str, trace: &mut Trace) -> Tensor<4> {
        let mut x = self.stem.forward(x);
        for (i, stage) in self.stages.iter().enumerate() {
            for b in stage {
                x = b.forward(x);
            }
            trace.offer(&format!("{prefix}stage{}", i + 1), &x);
        }
        if let Some(h) = &self.head {
            x = h.forward(x);
            trace.offer(&format!("{prefix}head"), &x);
        }
        x
    }
}
