//! PIAP-DF (Tang et al., 2021): pixel-interest (PI) maps from a DW-UNet
//! generator, an EfficientNet-B1 AU encoder, the PI decoder of stage 3 and
//! the anti-person-specific (AP) encoder. The deployed model is the B1 AU
//! encoder; which stage's structure is built is configuration.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::backbones::efficientnet::{EfficientNet, EfficientNetConfig};
use super::blocks::{DwSepConv, Trace, conv, gap, max_pool};
use super::output::{AuOutput, ModelMaps};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiapStage {
    /// Stage 2: generator PI maps x grayscale -> 12-channel B1.
    Stage2,
    /// Stage 3: RGB B1 + PI decoder from the 1280x7x7 features.
    Stage3,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PiapConfig {
    pub stage: PiapStage,
    pub encoder: EfficientNetConfig,
    /// DW-UNet widths of its five levels (UNet: 64..1024; bilinear halves the
    /// bottom). Choice: the UNet of Ronneberger et al. with every 3x3 conv
    /// depthwise-separable.
    pub unet_widths: [usize; 5],
    /// PI decoder widths after each 2x upsampling (5 steps: 7 -> 224).
    /// Choice: 256, 128, 64, 32, 16.
    pub decoder_widths: [usize; 5],
    /// Side of the RGB crop (256); the stage-3 encoder sees it resized to
    /// `encoder_size` (224, which gives the paper's 1280x7x7 features).
    pub input_size: usize,
    pub encoder_size: usize,
    /// Build the AP encoder (training only).
    pub ap_encoder: bool,
}

impl PiapConfig {
    pub fn paper(stage: PiapStage) -> Self {
        let in_ch = if stage == PiapStage::Stage2 { 12 } else { 3 };
        Self {
            stage,
            encoder: EfficientNetConfig::b1(in_ch),
            unet_widths: [64, 128, 256, 512, 1024],
            decoder_widths: [256, 128, 64, 32, 16],
            input_size: 256,
            encoder_size: 224,
            ap_encoder: false,
        }
    }

    pub fn tiny(stage: PiapStage) -> Self {
        let in_ch = if stage == PiapStage::Stage2 { 12 } else { 3 };
        Self {
            stage,
            encoder: EfficientNetConfig::tiny(in_ch, 7),
            // 8 channels at full resolution, not 4: with 4 ReLU features
            // under the 1x1 logit conv, stage 1 often ended with every
            // feature weighted one way, so the region pixels sat at the
            // bias and below 0.5 (held-out IoU 0 while the loss fell; about
            // half of the seeds). With 8, 12 of 12 seeds reached 76-87%.
            unet_widths: [8, 16, 16, 32, 32],
            decoder_widths: [16, 8, 8, 8, 8],
            input_size: 64,
            encoder_size: 64,
            ap_encoder: false,
        }
    }

    pub fn init(&self, n_au: usize, device: &Device) -> Piap {
        let mut enc = self.encoder.clone();
        enc.in_channels = match self.stage {
            PiapStage::Stage2 => n_au,
            PiapStage::Stage3 => 3,
        };
        let feat = enc.out_channels();
        let w = self.unet_widths;
        let double = |a: usize, b: usize, mid: usize| DoubleConv { c1: DwSepConv::new(a, mid, device), c2: DwSepConv::new(mid, b, device) };
        let bottom = w[4] / 2;
        let unet = DwUnet {
            inc: double(3, w[0], w[0]),
            down: vec![
                double(w[0], w[1], w[1]),
                double(w[1], w[2], w[2]),
                double(w[2], w[3], w[3]),
                double(w[3], bottom, bottom),
            ],
            up: vec![
                double(w[3] + bottom, w[2], (w[3] + bottom) / 2),
                double(w[2] * 2, w[1], w[2]),
                double(w[1] * 2, w[0], w[1]),
                double(w[0] * 2, w[0], w[0]),
            ],
            outc: conv(w[0], n_au, [1, 1], 1, [0, 0], 1, true, device),
        };
        let mut dec = Vec::new();
        let mut c = feat;
        for &d in &self.decoder_widths {
            dec.push(DwSepConv::new(c, d, device));
            c = d;
        }
        Piap {
            generator: (self.stage == PiapStage::Stage2).then_some(unet),
            encoder: enc.init(device),
            fc: LinearConfig::new(feat, n_au).init(device),
            decoder: (self.stage == PiapStage::Stage3).then(|| PiDecoder {
                layers: dec,
                out: conv(c, n_au, [1, 1], 1, [0, 0], 1, true, device),
            }),
            ap: self.ap_encoder.then(|| {
                let mut ap = self.encoder.clone();
                ap.in_channels = 3;
                ap.init(device)
            }),
            encoder_size: self.encoder_size,
        }
    }
}

#[derive(Module, Debug)]
pub struct DoubleConv {
    pub c1: DwSepConv,
    pub c2: DwSepConv,
}

impl DoubleConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.c2.forward(self.c1.forward(x))
    }
}

/// UNet with depthwise-separable convs (PIAP-DF stage 1): RGB -> N_AU PI
/// map logits at input resolution.
#[derive(Module, Debug)]
pub struct DwUnet {
    pub inc: DoubleConv,
    pub down: Vec<DoubleConv>,
    pub up: Vec<DoubleConv>,
    pub outc: Conv2d,
}

/// Bilinear resize with aligned corners (torch's `F.interpolate(...,
/// align_corners=True)`), written as two matrix products: burn's wgpu
/// backend has no backward for bilinear `interpolate`, and PIAP trains
/// through these resizes.
pub fn resize(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    if [h, w] == size {
        return x;
    }
    let device = x.device();
    let rows = Tensor::<2>::from_data(TensorData::new(interpolation_matrix(h, size[0]), [size[0], h]), &device);
    let cols = Tensor::<2>::from_data(TensorData::new(interpolation_matrix(w, size[1]), [size[1], w]), &device).transpose();
    let x = x.reshape([b * c, h, w]);
    let y = rows.unsqueeze::<3>().expand([b * c, size[0], h]).matmul(x);
    let y = y.matmul(cols.unsqueeze::<3>().expand([b * c, w, size[1]]));
    y.reshape([b, c, size[0], size[1]])
}

/// Row-major [n_out, n_in]: each output sample as a blend of its two
/// neighbouring inputs, with the end samples of both grids aligned.
fn interpolation_matrix(n_in: usize, n_out: usize) -> Vec<f32> {
    let mut m = vec![0.0f32; n_out * n_in];
    for i in 0..n_out {
        let src = if n_out > 1 { i as f32 * (n_in - 1) as f32 / (n_out - 1) as f32 } else { 0.0 };
        let i0 = (src.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        let f = src - i0 as f32;
        m[i * n_in + i0] += 1.0 - f;
        m[i * n_in + i1] += f;
    }
    m
}

impl DwUnet {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut skips = vec![self.inc.forward(x)];
        for d in &self.down {
            let last = skips.last().cloned().expect("inc output");
            skips.push(d.forward(max_pool(last, 2, 2, 0, false)));
        }
        let mut x = skips.pop().expect("bottom");
        for u in &self.up {
            let skip = skips.pop().expect("skip per level");
            let [_, _, h, w] = skip.dims();
            // Upsample (bilinear, align_corners like the reference UNet) to
            // the skip's size: x2, or the odd size pooling floored.
            let up = resize(x, [h, w]);
            x = u.forward(Tensor::cat(vec![skip, up], 1));
        }
        self.outc.forward(x)
    }
}

/// Stage-3 decoder: 5 x (2x bilinear upsampling, DW conv) from 7x7, a 1x1
/// conv to N_AU maps, resized to the input side.
#[derive(Module, Debug)]
pub struct PiDecoder {
    pub layers: Vec<DwSepConv>,
    pub out: Conv2d,
}

#[derive(Module, Debug)]
pub struct Piap {
    pub generator: Option<DwUnet>,
    pub encoder: EfficientNet,
    pub fc: Linear,
    pub decoder: Option<PiDecoder>,
    pub ap: Option<EfficientNet>,
    /// Side the RGB encoders see (stage 3 and AP).
    #[module(skip)]
    pub encoder_size: usize,
}

#[derive(Debug, Clone)]
pub struct PiapOutputs {
    pub logits: Tensor<2>,
    /// v_AU: pooled encoder features [B, 1280] (AP loss).
    pub features: Tensor<2>,
    /// PI map logits [B, N_AU, H, W] (generator in stage 2, decoder in 3).
    pub pi_logits: Tensor<4>,
    pub maps: ModelMaps,
}

const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

pub fn imagenet_normalize(x: Tensor<4>) -> Tensor<4> {
    let ch: Vec<Tensor<4>> = (0..3)
        .map(|i| x.clone().narrow(1, i, 1).sub_scalar(IMAGENET_MEAN[i]).div_scalar(IMAGENET_STD[i]))
        .collect();
    Tensor::cat(ch, 1)
}

impl Piap {
    pub fn cam_layers(&self) -> Vec<String> {
        let mut v = vec!["encoder.head".to_string()];
        v.extend((1..=self.encoder.stages.len()).rev().map(|s| format!("encoder.stage{s}")));
        v
    }

    /// Input: RGB in [0, 1], [B, 3, S, S].
    pub fn forward_all(&self, x: Tensor<4>, trace: &mut Trace) -> PiapOutputs {
        let [_, _, h, w] = x.dims();
        let (feat, gen_logits) = match &self.generator {
            Some(g) => {
                let pi = g.forward(x.clone());
                // Hadamard product of the PI maps with the grayscale image
                // (ITU-R 601 luma), normalised with ImageNet's mean/std grey.
                let gray = x.clone().narrow(1, 0, 1).mul_scalar(0.299)
                    + x.clone().narrow(1, 1, 1).mul_scalar(0.587)
                    + x.narrow(1, 2, 1).mul_scalar(0.114);
                let gray = gray.sub_scalar(0.449).div_scalar(0.226);
                let input = sigmoid(pi.clone()) * gray;
                (self.encoder.forward(input, "encoder.", trace), Some(pi))
            }
            None => (self.encoder.forward(self.rgb_encoder_input(x), "encoder.", trace), None),
        };
        let pooled = gap(feat.clone());
        let logits = self.fc.forward(pooled.clone());
        let pi_logits = match (gen_logits, &self.decoder) {
            (Some(p), _) => p,
            (None, Some(dec)) => {
                let mut y = feat;
                for l in &dec.layers {
                    let [_, _, hh, ww] = y.dims();
                    y = l.forward(resize(y, [hh * 2, ww * 2]));
                }
                resize(dec.out.forward(y), [h, w])
            }
            (None, None) => unreachable!("stage 2 has a generator, stage 3 a decoder"),
        };
        PiapOutputs {
            logits,
            features: pooled,
            pi_logits: pi_logits.clone(),
            maps: ModelMaps { pi_maps: Some(sigmoid(pi_logits)), ..ModelMaps::default() },
        }
    }

    pub fn forward(&self, x: Tensor<4>, trace: &mut Trace) -> AuOutput {
        let out = self.forward_all(x, trace);
        AuOutput::from_logits(out.logits, out.maps)
    }

    /// v_P of the AP encoder (for L_AP, eq. 4), if built.
    pub fn ap_features(&self, x: Tensor<4>) -> Option<Tensor<2>> {
        let ap = self.ap.as_ref()?;
        Some(gap(ap.forward(self.rgb_encoder_input(x), "ap.", &mut Trace::none())))
    }

    /// RGB in [0, 1] at any side -> `encoder_size`, ImageNet-normalised.
    fn rgb_encoder_input(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let s = self.encoder_size;
        imagenet_normalize(if (h, w) == (s, s) { x } else { resize(x, [s, s]) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use burn::tensor::module::interpolate;
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

    #[test]
    fn matrix_resize_is_bilinear_with_aligned_corners() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 3, 7, 5], Distribution::Uniform(-1.0, 1.0), &device);
        for size in [[14, 10], [4, 9], [7, 5], [1, 3]] {
            let ours = resize(x.clone(), size).into_data().try_to_vec::<f32>().expect("f32");
            let opts = InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(true).with_output_size(size);
            let burn = interpolate(x.clone(), opts).into_data().try_to_vec::<f32>().expect("f32");
            let max = ours.iter().zip(&burn).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(max < 1e-5, "{size:?}: max difference {max}");
        }
    }
}
