//! Building blocks shared by the architectures. Field names follow PyTorch's
//! so that most checkpoint keys load without remapping.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::{relu, sigmoid, silu};
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor};

/// A 2-D convolution as `nn.Conv2d(cin, cout, k, stride, padding, groups, bias)`.
#[allow(clippy::too_many_arguments)]
pub fn conv(
    cin: usize,
    cout: usize,
    kernel: [usize; 2],
    stride: usize,
    padding: [usize; 2],
    groups: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    Conv2dConfig::new([cin, cout], kernel)
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(
            padding[0], padding[1], padding[0], padding[1],
        ))
        .with_groups(groups)
        .with_bias(bias)
        .init(device)
}

/// Square-kernel convolution with "same"-style padding `k / 2`.
pub fn conv_k(cin: usize, cout: usize, k: usize, stride: usize, bias: bool, device: &Device) -> Conv2d {
    conv(cin, cout, [k, k], stride, [k / 2, k / 2], 1, bias, device)
}

pub fn bn(channels: usize, eps: f64, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).with_epsilon(eps).init(device)
}

pub fn max_pool(x: Tensor<4>, kernel: usize, stride: usize, padding: usize, ceil: bool) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([kernel, kernel])
            .with_stride([stride, stride])
            .with_padding([padding, padding])
            .with_ceil_mode(ceil),
    )
}

/// `F.avg_pool2d(x, kernel, stride, padding)` with PyTorch's default
/// `count_include_pad=True`.
pub fn avg_pool(x: Tensor<4>, kernel: usize, stride: usize, padding: usize) -> Tensor<4> {
    avg_pool2d(
        x,
        AvgPoolOptions::new([kernel, kernel])
            .with_stride([stride, stride])
            .with_padding([padding, padding])
            .with_count_include_pad(true)
            .with_ceil_mode(false),
    )
}

/// Global average pooling to `[B, C]`.
pub fn gap(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    Relu,
    Silu,
    Sigmoid,
}

impl Act {
    pub fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Act::None => x,
            Act::Relu => relu(x),
            Act::Silu => silu(x),
            Act::Sigmoid => sigmoid(x),
        }
    }
}

/// Conv -> BatchNorm -> activation, laid out as torchvision's
/// `Conv2dNormActivation` would be if its children had names: `conv`, `bn`
/// (the remapping tables translate `.0.`/`.1.` to these).
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    #[module(skip)]
    pub act: Act,
}

impl ConvBn {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cin: usize,
        cout: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
        groups: usize,
        eps: f64,
        act: Act,
        device: &Device,
    ) -> Self {
        Self {
            conv: conv(cin, cout, kernel, stride, padding, groups, false, device),
            bn: bn(cout, eps, device),
            act,
        }
    }

    /// Square kernel, padding `k / 2`, no groups.
    pub fn k(cin: usize, cout: usize, k: usize, stride: usize, act: Act, device: &Device) -> Self {
        Self::new(cin, cout, [k, k], stride, [k / 2, k / 2], 1, 1e-5, act, device)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.act.apply(self.bn.forward(self.conv.forward(x)))
    }
}

/// Depthwise-separable convolution (depthwise kxk, pointwise 1x1, BN, ReLU):
/// the unit that DW-UNet and the PIAP PI decoder are built from.
#[derive(Module, Debug)]
pub struct DwSepConv {
    pub depthwise: Conv2d,
    pub pointwise: Conv2d,
    pub bn: BatchNorm,
}

impl DwSepConv {
    pub fn new(cin: usize, cout: usize, device: &Device) -> Self {
        Self {
            depthwise: conv(cin, cin, [3, 3], 1, [1, 1], cin, false, device),
            pointwise: conv(cin, cout, [1, 1], 1, [0, 0], 1, false, device),
            bn: bn(cout, 1e-5, device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.pointwise.forward(self.depthwise.forward(x))))
    }
}

/// Collects the activation of one named layer during a forward pass, for
/// explainers such as Score-CAM. Layers offer their output; only the
/// requested one is kept (a clone of a tensor handle, no copy).
#[derive(Debug, Default)]
pub struct Trace {
    want: Option<String>,
    pub activation: Option<Tensor<4>>,
}

impl Trace {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn layer(name: &str) -> Self {
        Self {
            want: Some(name.to_string()),
            activation: None,
        }
    }

    pub fn offer(&mut self, name: &str, x: &Tensor<4>) {
        if self.want.as_deref() == Some(name) {
            self.activation = Some(x.clone());
        }
    }
}
