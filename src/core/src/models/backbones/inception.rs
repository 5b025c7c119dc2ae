//! torchvision's Inception3 up to `Mixed_6e`: 768 x 12 x 12 at 224 input,
//! the intermediate layer TransAU takes (the last with >= 12x12 resolution).
//! Field names are torchvision's, so its checkpoints load as they are; the
//! layers after Mixed_6e (AuxLogits, Mixed_7*, fc) are skipped on import.

#![allow(non_snake_case)]

use burn::module::Module;
use burn::nn::BatchNorm;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::models::blocks::{Trace, avg_pool, bn, conv, max_pool};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InceptionConfig {
    /// torchvision's `transform_input`: re-normalise ImageNet-normalised
    /// input to the [-1, 1] range Google's weights expect (true for
    /// torchvision's pretrained weights).
    pub transform_input: bool,
}

/// torchvision `BasicConv2d`: conv (no bias) -> BN (eps 1e-3) -> ReLU.
#[derive(Module, Debug)]
pub struct BasicConv2d {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl BasicConv2d {
    fn new(cin: usize, cout: usize, k: [usize; 2], stride: usize, pad: [usize; 2], device: &Device) -> Self {
        Self { conv: conv(cin, cout, k, stride, pad, 1, false, device), bn: bn(cout, 1e-3, device) }
    }
    fn k(cin: usize, cout: usize, k: usize, stride: usize, pad: usize, device: &Device) -> Self {
        Self::new(cin, cout, [k, k], stride, [pad, pad], device)
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv.forward(x)))
    }
}

#[derive(Module, Debug)]
pub struct InceptionA {
    pub branch1x1: BasicConv2d,
    pub branch5x5_1: BasicConv2d,
    pub branch5x5_2: BasicConv2d,
    pub branch3x3dbl_1: BasicConv2d,
    pub branch3x3dbl_2: BasicConv2d,
    pub branch3x3dbl_3: BasicConv2d,
    pub branch_pool: BasicConv2d,
}

impl InceptionA {
    fn new(cin: usize, pool: usize, d: &Device) -> Self {
        Self {
            branch1x1: BasicConv2d::k(cin, 64, 1, 1, 0, d),
            branch5x5_1: BasicConv2d::k(cin, 48, 1, 1, 0, d),
            branch5x5_2: BasicConv2d::k(48, 64, 5, 1, 2, d),
            branch3x3dbl_1: BasicConv2d::k(cin, 64, 1, 1, 0, d),
            branch3x3dbl_2: BasicConv2d::k(64, 96, 3, 1, 1, d),
            branch3x3dbl_3: BasicConv2d::k(96, 96, 3, 1, 1, d),
            branch_pool: BasicConv2d::k(cin, pool, 1, 1, 0, d),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b5 = self.branch5x5_2.forward(self.branch5x5_1.forward(x.clone()));
        let b3 = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2.forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = self.branch_pool.forward(avg_pool(x, 3, 1, 1));
        Tensor::cat(vec![b1, b5, b3, bp], 1)
    }
}

#[derive(Module, Debug)]
pub struct InceptionB {
    pub branch3x3: BasicConv2d,
    pub branch3x3dbl_1: BasicConv2d,
    pub branch3x3dbl_2: BasicConv2d,
    pub branch3x3dbl_3: BasicConv2d,
}

impl InceptionB {
    fn new(cin: usize, d: &Device) -> Self {
        Self {
            branch3x3: BasicConv2d::k(cin, 384, 3, 2, 0, d),
            branch3x3dbl_1: BasicConv2d::k(cin, 64, 1, 1, 0, d),
            branch3x3dbl_2: BasicConv2d::k(64, 96, 3, 1, 1, d),
            branch3x3dbl_3: BasicConv2d::k(96, 96, 3, 2, 0, d),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.branch3x3.forward(x.clone());
        let bd = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2.forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = max_pool(x, 3, 2, 0, false);
        Tensor::cat(vec![b3, bd, bp], 1)
    }
}

#[derive(Module, Debug)]
pub struct InceptionC {
    pub branch1x1: BasicConv2d,
    pub branch7x7_1: BasicConv2d,
    pub branch7x7_2: BasicConv2d,
    pub branch7x7_3: BasicConv2d,
    pub branch7x7dbl_1: BasicConv2d,
    pub branch7x7dbl_2: BasicConv2d,
    pub branch7x7dbl_3: BasicConv2d,
    pub branch7x7dbl_4: BasicConv2d,
    pub branch7x7dbl_5: BasicConv2d,
    pub branch_pool: BasicConv2d,
}

impl InceptionC {
    fn new(cin: usize, c7: usize, d: &Device) -> Self {
        let row = |a, b| BasicConv2d::new(a, b, [1, 7], 1, [0, 3], d);
        let col = |a, b| BasicConv2d::new(a, b, [7, 1], 1, [3, 0], d);
        Self {
            branch1x1: BasicConv2d::k(cin, 192, 1, 1, 0, d),
            branch7x7_1: BasicConv2d::k(cin, c7, 1, 1, 0, d),
            branch7x7_2: row(c7, c7),
            branch7x7_3: col(c7, 192),
            branch7x7dbl_1: BasicConv2d::k(cin, c7, 1, 1, 0, d),
            branch7x7dbl_2: col(c7, c7),
            branch7x7dbl_3: row(c7, c7),
            branch7x7dbl_4: col(c7, c7),
            branch7x7dbl_5: row(c7, 192),
            branch_pool: BasicConv2d::k(cin, 192, 1, 1, 0, d),
        }
    }
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b7 = self.branch7x7_3.forward(self.branch7x7_2.forward(self.branch7x7_1.forward(x.clone())));
        let mut bd = self.branch7x7dbl_1.forward(x.clone());
        for l in [&self.branch7x7dbl_2, &self.branch7x7dbl_3, &self.branch7x7dbl_4, &self.branch7x7dbl_5] {
            bd = l.forward(bd);
        }
        let bp = self.branch_pool.forward(avg_pool(x, 3, 1, 1));
        Tensor::cat(vec![b1, b7, bd, bp], 1)
    }
}

#[derive(Module, Debug)]
pub struct InceptionTrunk {
    pub Conv2d_1a_3x3: BasicConv2d,
    pub Conv2d_2a_3x3: BasicConv2d,
    pub Conv2d_2b_3x3: BasicConv2d,
    pub Conv2d_3b_1x1: BasicConv2d,
    pub Conv2d_4a_3x3: BasicConv2d,
    pub Mixed_5b: InceptionA,
    pub Mixed_5c: InceptionA,
    pub Mixed_5d: InceptionA,
    pub Mixed_6a: InceptionB,
    pub Mixed_6b: InceptionC,
    pub Mixed_6c: InceptionC,
    pub Mixed_6d: InceptionC,
    pub Mixed_6e: InceptionC,
    #[module(skip)]
    pub transform_input: bool,
}

pub const INCEPTION_CHANNELS: usize = 768;

impl InceptionConfig {
    pub fn init(&self, d: &Device) -> InceptionTrunk {
        InceptionTrunk {
            Conv2d_1a_3x3: BasicConv2d::k(3, 32, 3, 2, 0, d),
            Conv2d_2a_3x3: BasicConv2d::k(32, 32, 3, 1, 0, d),
            Conv2d_2b_3x3: BasicConv2d::k(32, 64, 3, 1, 1, d),
            Conv2d_3b_1x1: BasicConv2d::k(64, 80, 1, 1, 0, d),
            Conv2d_4a_3x3: BasicConv2d::k(80, 192, 3, 1, 0, d),
            Mixed_5b: InceptionA::new(192, 32, d),
            Mixed_5c: InceptionA::new(256, 64, d),
            Mixed_5d: InceptionA::new(288, 64, d),
            Mixed_6a: InceptionB::new(288, d),
            Mixed_6b: InceptionC::new(768, 128, d),
            Mixed_6c: InceptionC::new(768, 160, d),
            Mixed_6d: InceptionC::new(768, 160, d),
            Mixed_6e: InceptionC::new(768, 192, d),
            transform_input: self.transform_input,
        }
    }
}

impl InceptionTrunk {
    /// Input: ImageNet-normalised RGB [B, 3, H, W].
    pub fn forward(&self, x: Tensor<4>, prefix: &str, trace: &mut Trace) -> Tensor<4> {
        let x = if self.transform_input {
            // torchvision Inception3._transform_input.
            let ch = |i: usize, std: f32, mean: f32| {
                x.clone().narrow(1, i, 1).mul_scalar(std / 0.5).add_scalar((mean - 0.5) / 0.5)
            };
            Tensor::cat(vec![ch(0, 0.229, 0.485), ch(1, 0.224, 0.456), ch(2, 0.225, 0.406)], 1)
        } else {
            x
        };
        let x = self.Conv2d_1a_3x3.forward(x);
        let x = self.Conv2d_2a_3x3.forward(x);
        let x = self.Conv2d_2b_3x3.forward(x);
        let x = max_pool(x, 3, 2, 0, false);
        let x = self.Conv2d_3b_1x1.forward(x);
        let x = self.Conv2d_4a_3x3.forward(x);
        let x = max_pool(x, 3, 2, 0, false);
        let x = self.Mixed_5b.forward(x);
        let x = self.Mixed_5c.forward(x);
        let x = self.Mixed_5d.forward(x);
        trace.offer(&format!("{prefix}Mixed_5d"), &x);
        let x = self.Mixed_6a.forward(x);
        let x = self.Mixed_6b.forward(x);
        let x = self.Mixed_6c.forward(x);
        let x = self.Mixed_6d.forward(x);
        let x = self.Mixed_6e.forward(x);
        trace.offer(&format!("{prefix}Mixed_6e"), &x);
        x
    }
}
