//! Why a model decided: maps over the face crop (Score-CAM, FAN heat-maps,
//! PI maps, ROI and LANet attention) and AU x AU matrices (transformer
//! attention, drop masks, correlations). One [`Explainer`] per method, one
//! file each; [`render`] turns results into PNG overlays and float arrays,
//! [`cache::ExplainCache`] keeps recent results per (frame, face, model,
//! method, layer).
//!
//! Maps are stored at the resolution the model produced them, values in
//! [0, 1], over the model's square crop; [`Explanation::roi`] maps the crop
//! back onto the frame (the GUI's shader and [`render::overlay`] do the same
//! bilinear upsampling and warp).

pub mod au_attention;
pub mod cache;
pub mod correlation;
pub mod export;
pub mod fan_heatmap;
pub mod pi_map;
pub mod render;
pub mod roi_attention;
pub mod score_cam;
pub mod video;

use burn::tensor::{Device, Tensor};
use image::RgbImage;
use serde::Serialize;

use crate::error::CoreError;
use crate::face::Face;
use crate::frame::Roi;
use crate::models::{AuModel, ModelMaps, Net, Predictor, Trace};
use crate::shared_buffer::DeviceValues;

/// Faces narrower than this (detector box, frame pixels) are refused: their
/// crops are mostly upsampling blur, and maps over them mean little.
pub const MIN_FACE_PX: f32 = 32.0;

/// The explanation methods, by their CLI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    ScoreCam,
    FanHeatmap,
    /// Predefined PI maps: the AU regions of assets/au_regions.json drawn
    /// from the face's 68 landmarks (any model, even the blendshape baseline).
    PiMap,
    /// PI maps learned by PIAP's generator / decoder.
    PiMapLearned,
    RoiAttention,
    LanetAttention,
    AuAttention,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::ScoreCam,
        Method::FanHeatmap,
        Method::PiMap,
        Method::PiMapLearned,
        Method::RoiAttention,
        Method::LanetAttention,
        Method::AuAttention,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::ScoreCam => "score-cam",
            Method::FanHeatmap => "fan-heatmap",
            Method::PiMap => "pi-map",
            Method::PiMapLearned => "pi-map-learned",
            Method::RoiAttention => "roi-attention",
            Method::LanetAttention => "lanet-attention",
            Method::AuAttention => "au-attention",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Method::ScoreCam => "Score-CAM",
            Method::FanHeatmap => "FAN heat-maps",
            Method::PiMap => "PI maps (predefined)",
            Method::PiMapLearned => "PI maps (learned)",
            Method::RoiAttention => "ROI attention (TransAU)",
            Method::LanetAttention => "LANet attention",
            Method::AuAttention => "AU attention matrices",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|m| m.name()).collect();
            CoreError::Explain(format!("unknown method '{s}' (methods: {})", names.join(", ")))
        })
    }

    /// True for methods whose result is matrices rather than maps.
    pub fn is_matrix(self) -> bool {
        self == Method::AuAttention
    }
}

impl std::str::FromStr for Method {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// One face as an explainer sees it: the model's crop and its landmarks.
#[derive(Debug, Clone)]
pub struct ExplainInput {
    /// The model's square input crop.
    pub crop: RgbImage,
    /// Where the crop lies in the frame.
    pub roi: Roi,
    /// The 68 iBUG landmarks in crop-normalised coordinates ([0, 1]^2).
    pub landmarks: Vec<[f32; 2]>,
    /// Width of the detector box, frame pixels.
    pub face_px: f32,
}

impl ExplainInput {
    /// The crop of `face` at `size` (the model's input size).
    pub fn new(image: &RgbImage, face: &Face, size: usize) -> Self {
        let (crop, roi) = crate::face::crop::crop_rgb(image, face, size);
        let landmarks = face.landmarks68.iter().map(|&p| roi.crop_from_frame(p)).collect();
        Self { crop, roi, landmarks, face_px: face.box_xywh()[2] }
    }
}

/// The explainer input for `face` at the crop size `model` takes (the
/// blendshape baseline takes no crop; its predefined PI maps use 256).
pub fn input_for(model: &Predictor, image: &RgbImage, face: &Face) -> ExplainInput {
    let size = match model {
        Predictor::Net(m) => m.spec.input().size,
        Predictor::Teacher(_) => 256,
    };
    ExplainInput::new(image, face, size)
}

/// Per-label maps of one face, row-major, values in [0, 1].
#[derive(Debug, Clone, Serialize)]
pub struct MapStack {
    /// One per map: an AU ("AU12"), a landmark ("L34"), or "all".
    pub labels: Vec<String>,
    pub width: usize,
    pub height: usize,
    /// [labels, height, width]
    pub data: Vec<f32>,
    /// The same values where the model computed them, when that is the GPU:
    /// the window's shader draws from there (no upload). `data` is their
    /// host copy, for hover values, export and CPU drawing.
    #[serde(skip)]
    pub device: Option<DeviceValues<3>>,
}

/// Equal values; where they live does not count.
impl PartialEq for MapStack {
    fn eq(&self, other: &Self) -> bool {
        (&self.labels, self.width, self.height, &self.data) == (&other.labels, other.width, other.height, &other.data)
    }
}

impl MapStack {
    pub fn new(labels: Vec<String>, width: usize, height: usize, data: Vec<f32>) -> Result<Self, CoreError> {
        if data.len() != labels.len() * width * height {
            return Err(CoreError::Explain(format!(
                "{} values for {} maps of {width}x{height}",
                data.len(),
                labels.len()
            )));
        }
        Ok(Self { labels, width, height, data, device: None })
    }

    pub fn map(&self, i: usize) -> &[f32] {
        let n = self.width * self.height;
        &self.data[i * n..(i + 1) * n]
    }

    pub fn index_of(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// [B, K, H, W] (B = 1 expected) -> the first item's maps, clamped to
    /// [0, 1].
    fn from_tensor(t: Tensor<4>, labels: Vec<String>) -> Result<Self, CoreError> {
        let [_, k, h, w] = t.dims();
        if k != labels.len() {
            return Err(CoreError::Explain(format!("{k} maps for {} labels", labels.len())));
        }
        Self::from_maps(t.narrow(0, 0, 1).clamp(0.0, 1.0).reshape([k, h, w]), labels)
    }

    /// [K, H, W] maps, kept on their device when that is the GPU.
    fn from_maps(t: Tensor<3>, labels: Vec<String>) -> Result<Self, CoreError> {
        let [_, h, w] = t.dims();
        let device = DeviceValues::of(&t);
        Ok(Self { device, ..Self::new(labels, w, h, read(t)?)? })
    }
}

/// A square matrix with row/column labels (AU x AU attention, masks,
/// correlations).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    /// e.g. "one-to-many block 2, head 3", "mean over heads".
    pub name: String,
    pub labels: Vec<String>,
    /// [n, n], row-major: row = query token, column = key token.
    pub values: Vec<f32>,
    /// The range the colour bar spans.
    pub range: [f32; 2],
}

/// What an explainer returns for one face.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub method: Method,
    pub roi: Roi,
    pub maps: Option<MapStack>,
    pub matrices: Vec<Matrix>,
    /// What the values mean, for the UI and the CLI's index file.
    pub note: String,
}

/// Options that change an explanation (part of the cache key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ExplainOptions {
    /// Score-CAM's layer; None: the model's first [`AuModel::cam_layers`].
    pub layer: Option<String>,
}

/// One explanation method.
pub trait Explainer {
    fn method(&self) -> Method;
    /// Why this model cannot give this explanation (None: it can).
    fn unsupported(&self, model: &Predictor) -> Option<String>;
    fn explain(&self, model: &Predictor, input: &ExplainInput, device: &Device) -> Result<Explanation, CoreError>;
}

/// The explainer of a method.
pub fn explainer(method: Method, options: &ExplainOptions) -> Box<dyn Explainer> {
    match method {
        Method::ScoreCam => Box::new(score_cam::ScoreCam { layer: options.layer.clone(), batch: score_cam::DEFAULT_BATCH }),
        Method::FanHeatmap => Box::new(fan_heatmap::FanHeatmap),
        Method::PiMap => Box::new(pi_map::PredefinedPiMap),
        Method::PiMapLearned => Box::new(pi_map::LearnedPiMap),
        Method::RoiAttention => Box::new(roi_attention::RoiAttention),
        Method::LanetAttention => Box::new(roi_attention::LanetAttention),
        Method::AuAttention => Box::new(au_attention::AuAttention),
    }
}

/// Why a face `width` px wide (detector box) gets no maps from `method`
/// (None: it does; matrices do not depend on the face size).
pub fn face_too_small(method: Method, width: f32) -> Option<String> {
    (width < MIN_FACE_PX && !method.is_matrix())
        .then(|| format!("the face is {width:.0} px wide; maps need at least {MIN_FACE_PX:.0} px"))
}

/// Why `method` cannot be shown for this model and face (None: it can):
/// what the overlay menu greys out, with its reason.
pub fn unavailable(method: Method, options: &ExplainOptions, model: &Predictor, face: Option<&Face>) -> Option<String> {
    face.and_then(|f| face_too_small(method, f.box_xywh()[2]))
        .or_else(|| explainer(method, options).unsupported(model))
}

/// Explain one face: checks what [`unavailable`] checks, then runs.
pub fn explain(
    method: Method,
    options: &ExplainOptions,
    model: &Predictor,
    input: &ExplainInput,
    device: &Device,
) -> Result<Explanation, CoreError> {
    let e = explainer(method, options);
    if let Some(why) = e.unsupported(model).or_else(|| face_too_small(method, input.face_px)) {
        return Err(CoreError::Explain(why));
    }
    e.explain(model, input, device)
}

impl Explanation {
    /// An explanation made of maps over `input`'s crop.
    fn of_maps(method: Method, input: &ExplainInput, maps: MapStack, note: String) -> Self {
        Self { method, roi: input.roi, maps: Some(maps), matrices: Vec::new(), note }
    }
}

/// A map the network computes in its forward pass (learned PI maps, ROI or
/// LANet attention): `pick` takes it from the outputs; `labels` None means
/// one map per AU. The note reads "`what` (WxH), `values`".
#[allow(clippy::too_many_arguments)]
fn network_maps(
    model: &Predictor,
    input: &ExplainInput,
    device: &Device,
    method: Method,
    pick: impl FnOnce(ModelMaps) -> Option<Tensor<4>>,
    labels: Option<Vec<String>>,
    what: &str,
    values: &str,
) -> Result<Explanation, CoreError> {
    let m = network(model, method).map_err(CoreError::Explain)?;
    let t = pick(forward_maps(m, input, device)?)
        .ok_or_else(|| CoreError::Explain(format!("{} returned no {what}", m.kind().title())))?;
    let maps = MapStack::from_tensor(t, labels.unwrap_or_else(|| m.aus().to_vec()))?;
    let note = format!("{what} ({}x{}), {values}", maps.width, maps.height);
    Ok(Explanation::of_maps(method, input, maps, note))
}

/// The network behind a predictor, or why there is none.
fn network(model: &Predictor, method: Method) -> Result<&AuModel, String> {
    match model {
        Predictor::Net(m) => Ok(m),
        Predictor::Teacher(_) => Err(format!(
            "{} needs a network; the blendshape baseline maps landmarks to AUs without one",
            method.title()
        )),
    }
}

/// The deployed forward pass on one crop: its maps.
fn forward_maps(model: &AuModel, input: &ExplainInput, device: &Device) -> Result<ModelMaps, CoreError> {
    let x = model.spec.input().to_tensor(std::slice::from_ref(&input.crop), device)?;
    Ok(model.forward(x, &mut Trace::none()).maps)
}

/// The network of an architecture, if `model` is one.
fn net_of(model: &Predictor) -> Option<&Net> {
    match model {
        Predictor::Net(m) => Some(&m.net),
        Predictor::Teacher(_) => None,
    }
}

/// A tensor's values on the host.
fn read<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, CoreError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| CoreError::Explain(format!("reading a map: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_round_trip_their_names() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.name()).expect("parses"), m);
        }
        let e = Method::parse("gradcam").expect_err("unknown");
        assert!(e.to_string().contains("score-cam"), "{e}");
    }

    #[test]
    fn a_face_too_small_is_refused_and_a_big_one_is_explained() {
        let device = Device::flex();
        let model = Predictor::Net(AuModel::new(crate::models::ModelSpec::tiny(crate::models::ModelKind::Piap), &device).expect("model"));
        let mut input = ExplainInput {
            crop: RgbImage::new(64, 64),
            roi: Roi { center: [50.0, 50.0], side: 20.0, angle: 0.0 },
            landmarks: vec![[0.5, 0.5]; 68],
            face_px: 16.0,
        };
        let e = explain(Method::PiMapLearned, &ExplainOptions::default(), &model, &input, &device).expect_err("16 px face");
        assert!(e.to_string().contains("16 px wide"), "{e}");
        input.face_px = 64.0;
        let e = explain(Method::PiMapLearned, &ExplainOptions::default(), &model, &input, &device).expect("64 px face");
        let maps = e.maps.expect("maps");
        assert_eq!(maps.labels.len(), 12);
        assert!(maps.data.iter().all(|v| (0.0..=1.0).contains(v)));
        let e = explain(Method::FanHeatmap, &ExplainOptions::default(), &model, &input, &device).expect_err("PIAP has no FAN");
        assert!(e.to_string().contains("FAN-Trans"), "{e}");
    }

    #[test]
    fn a_map_stack_checks_its_size() {
        assert!(MapStack::new(vec!["AU12".into()], 2, 2, vec![0.0; 4]).is_ok());
        assert!(MapStack::new(vec!["AU12".into()], 2, 2, vec![0.0; 5]).is_err());
    }
}
