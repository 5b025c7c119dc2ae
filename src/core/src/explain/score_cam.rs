//! Score-CAM (Wang et al., "Score-CAM: Score-Weighted Visual Explanations
//! for Convolutional Neural Networks", CVPR-W 2020), batched, for all AUs
//! from the same forward passes.
//!
//! For the chosen layer's activations A (K channels): each channel is
//! upsampled to the input size (bilinear, corners aligned, as
//! pytorch-grad-cam's `UpsamplingBilinear2d`), min-max normalised, and
//! multiplied into the input; the K masked inputs run through the model in
//! batches. The channel weights are the softmax over channels of each AU's
//! score; the map is ReLU(sum_k w_k A_k), min-max normalised.
//!
//! Choices: the score is the AU's logit (multi-label sigmoid outputs; the
//! paper's softmax class score does not apply). The paper subtracts the
//! baseline score f(X_b); softmax over channels is shift-invariant, so that
//! changes nothing and is skipped, as pytorch-grad-cam does. The map stays
//! at the layer's resolution; drawing upsamples it (half-pixel bilinear,
//! as pytorch-grad-cam's final `cv2.resize`).

use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor};

use super::{Explainer, ExplainInput, Explanation, MapStack, Method, network};
use crate::error::CoreError;
use crate::models::{AuModel, Predictor, Trace};

/// Masked inputs per forward pass.
pub const DEFAULT_BATCH: usize = 32;

pub struct ScoreCam {
    /// None: the model's first CAM layer.
    pub layer: Option<String>,
    pub batch: usize,
}

impl Explainer for ScoreCam {
    fn method(&self) -> Method {
        Method::ScoreCam
    }

    fn unsupported(&self, model: &Predictor) -> Option<String> {
        let m = match network(model, Method::ScoreCam) {
            Ok(m) => m,
            Err(why) => return Some(why),
        };
        let layers = m.cam_layers();
        match &self.layer {
            Some(l) if !layers.contains(l) => Some(no_such_layer(m, l)),
            None if layers.is_empty() => Some(format!("{} exposes no conv layer", m.kind().title())),
            _ => None,
        }
    }

    fn explain(&self, model: &Predictor, input: &ExplainInput, device: &Device) -> Result<Explanation, CoreError> {
        let m = network(model, Method::ScoreCam).map_err(CoreError::Explain)?;
        let x = m.spec.input().to_tensor(std::slice::from_ref(&input.crop), device)?;
        let (layer, activation) = match &self.layer {
            Some(l) => (l.clone(), layer_activation(m, x.clone(), l)?),
            None => default_layer(m, x.clone())?,
        };
        let maps = cams_for(m, x, activation, self.batch)?;
        let note = format!(
            "Score-CAM on {layer} ({}x{}): softmax over channels of each AU's logit, min-max normalised per AU",
            maps.width, maps.height
        );
        Ok(Explanation::of_maps(Method::ScoreCam, input, maps, note))
    }
}

/// Maps coarser than this (per side) are too blocky to read.
pub const MIN_DEFAULT_SIDE: usize = 7;

/// The deepest CAM layer whose activation is at least
/// [`MIN_DEFAULT_SIDE`] on each side (the paper's 7x7 for ResNet-50 at
/// 224 px); if none is, the finest one. Small configurations (the demo
/// weights) would otherwise get a 2x2 map from their last layer. Returns
/// the layer with its activation for `x`, so Score-CAM need not run it again.
pub fn default_layer(model: &AuModel, x: Tensor<4>) -> Result<(String, Tensor<4>), CoreError> {
    let mut finest: Option<(usize, String, Tensor<4>)> = None;
    for layer in model.cam_layers() {
        let mut trace = Trace::layer(&layer);
        model.forward(x.clone(), &mut trace);
        let Some(a) = trace.activation else { continue };
        let [_, _, h, w] = a.dims();
        if h.min(w) >= MIN_DEFAULT_SIDE {
            return Ok((layer, a));
        }
        if finest.as_ref().is_none_or(|(s, _, _)| h * w > *s) {
            finest = Some((h * w, layer, a));
        }
    }
    finest.map(|(_, l, a)| (l, a)).ok_or_else(|| CoreError::Explain(format!("{} exposes no conv layer", model.kind().title())))
}

/// What a request for a layer the model does not have says.
fn no_such_layer(model: &AuModel, layer: &str) -> String {
    format!("{} has no layer '{layer}' (layers: {})", model.kind().title(), model.cam_layers().join(", "))
}

/// The activation of `layer` for `x`.
fn layer_activation(model: &AuModel, x: Tensor<4>, layer: &str) -> Result<Tensor<4>, CoreError> {
    let mut trace = Trace::layer(layer);
    model.forward(x, &mut trace);
    trace.activation.ok_or_else(|| CoreError::Explain(no_such_layer(model, layer)))
}

/// Score-CAM of every AU of `model` for the single input `x` ([1, 3, S, S])
/// at `layer`.
pub fn model_score_cam(model: &AuModel, x: Tensor<4>, layer: &str, batch: usize) -> Result<MapStack, CoreError> {
    let activation = layer_activation(model, x.clone(), layer)?;
    cams_for(model, x, activation, batch)
}

/// [`score_cam`] on `model`'s logits, as one map per AU.
fn cams_for(model: &AuModel, x: Tensor<4>, activation: Tensor<4>, batch: usize) -> Result<MapStack, CoreError> {
    let cams = score_cam(x, activation, batch, |masked| model.forward(masked, &mut Trace::none()).logits)?;
    MapStack::from_maps(cams, model.aus().to_vec())
}

/// The method itself, for any network: `x` [1, C, S, S], `activation`
/// [1, K, h, w] (the chosen layer's output for `x`), `scores` maps a batch
/// of masked inputs [b, C, S, S] to target scores [b, N]. Returns the N maps
/// [N, h, w], each ReLU'd and min-max normalised (all zero if the ReLU
/// leaves nothing).
pub fn score_cam(
    x: Tensor<4>,
    activation: Tensor<4>,
    batch: usize,
    mut scores: impl FnMut(Tensor<4>) -> Tensor<2>,
) -> Result<Tensor<3>, CoreError> {
    let [bx, _, sh, sw] = x.dims();
    let [ba, k, h, w] = activation.dims();
    if bx != 1 || ba != 1 {
        return Err(CoreError::Explain(format!("Score-CAM explains one input at a time (got {bx} inputs, {ba} activations)")));
    }
    if k == 0 || h * w < 2 {
        return Err(CoreError::Explain(format!("the layer's activation is {k}x{h}x{w}; Score-CAM needs a spatial map")));
    }
    let batch = batch.max(1);
    let upsample = InterpolateOptions::new(InterpolateMode::Bilinear).with_align_corners(true).with_output_size([sh, sw]);
    let mut all = Vec::with_capacity(k.div_ceil(batch));
    for start in (0..k).step_by(batch) {
        let len = batch.min(k - start);
        let a = activation.clone().narrow(1, start, len).reshape([len, 1, h, w]);
        let up = interpolate(a, upsample.clone());
        let flat = up.clone().reshape([len, sh * sw]);
        let (lo, hi) = (flat.clone().min_dim(1), flat.max_dim(1));
        let mask = (up - lo.clone().reshape([len, 1, 1, 1])) / (hi - lo + 1e-8).reshape([len, 1, 1, 1]);
        all.push(scores(x.clone() * mask).detach());
    }
    let s = Tensor::cat(all, 0); // [K, N]
    let n = s.dims()[1];
    let weights = softmax(s, 0); // over channels, per AU
    let a = activation.reshape([k, h * w]);
    let cam = relu(weights.transpose().matmul(a)); // [N, h*w]
    let lo = cam.clone().min_dim(1);
    let shifted = cam - lo;
    let hi = shifted.clone().max_dim(1);
    Ok((shifted / (hi + 1e-7)).reshape([n, h, w]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    /// A model that only looks at the mouth: its score is the mean of the
    /// input over the lower-middle patch of a 4x4 grid. Its "layer" has one
    /// channel per grid patch (a one-hot patch indicator), so Score-CAM must
    /// put the whole weight on the mouth patch.
    #[test]
    fn a_model_that_looks_only_at_the_mouth_lights_up_the_mouth() {
        let device = Device::flex();
        let (s, g) = (32usize, 4usize);
        let cell = s / g;
        let mouth = (3usize, 1usize); // row, column of the patch
        let x = Tensor::<4>::ones([1, 1, s, s], &device);
        let mut act = vec![0.0f32; g * g * g * g];
        for k in 0..g * g {
            act[k * g * g + k] = 1.0;
        }
        let activation = Tensor::<4>::from_data(TensorData::new(act, [1, g * g, g, g]), &device);
        let mut region = vec![0.0f32; s * s];
        for y in mouth.0 * cell..(mouth.0 + 1) * cell {
            for xx in mouth.1 * cell..(mouth.1 + 1) * cell {
                region[y * s + xx] = 1.0;
            }
        }
        let region = Tensor::<4>::from_data(TensorData::new(region, [1, 1, s, s]), &device);
        let n_region = (cell * cell) as f32;
        let mut calls = 0;
        let cams = score_cam(x, activation, 5, |masked| {
            calls += 1;
            let b = masked.dims()[0];
            // Two outputs: the mouth score (x10 so the softmax is sharp) and
            // a constant (every channel equal -> uniform weights).
            let mouth = (masked * region.clone()).reshape([b, s * s]).sum_dim(1) / n_region * 10.0;
            Tensor::cat(vec![mouth, Tensor::zeros([b, 1], &device)], 1)
        })
        .expect("score-cam");
        assert_eq!(calls, 4, "16 channels in batches of 5");
        assert_eq!(cams.dims(), [2, g, g]);
        let v = super::super::read(cams).expect("read");
        let mouth_map = &v[..g * g];
        let best = mouth_map.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i);
        assert_eq!(best, Some(mouth.0 * g + mouth.1), "the peak is on the mouth: {mouth_map:?}");
        assert!((mouth_map[mouth.0 * g + mouth.1] - 1.0).abs() < 1e-5);
        let elsewhere = mouth_map.iter().enumerate().filter(|(i, _)| *i != mouth.0 * g + mouth.1).map(|(_, v)| *v).fold(0.0, f32::max);
        assert!(elsewhere < 0.2, "other patches stay dark: {mouth_map:?}");
        // Uniform weights over one-hot patches: a flat map, which min-max
        // normalisation sends to 0 everywhere.
        assert!(v[g * g..].iter().all(|&x| x.abs() < 1e-5), "{:?}", &v[g * g..]);
    }

    #[test]
    fn a_layer_without_space_is_refused() {
        let device = Device::flex();
        let x = Tensor::<4>::ones([1, 3, 8, 8], &device);
        let a = Tensor::<4>::ones([1, 4, 1, 1], &device);
        let e = score_cam(x, a, 8, |m| m.reshape([1, 3 * 8 * 8])).expect_err("1x1 layer");
        assert!(e.to_string().contains("spatial"), "{e}");
    }
}
