//! What the app and CLI run on a face: one of the four AU networks, or the
//! landmark-based blendshape baseline. One name space for both.

use burn::tensor::Device;
use image::RgbImage;

use super::teacher::BlendshapeTeacher;
use super::{AuModel, ModelFiles, ModelKind, open_model};
use crate::error::CoreError;
use crate::face::Face;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PredictorKind {
    Net(ModelKind),
    BlendshapeBaseline,
}

impl PredictorKind {
    pub const BLENDSHAPE_NAME: &'static str = "blendshape-baseline";

    pub fn all() -> Vec<PredictorKind> {
        let mut v: Vec<_> = ModelKind::ALL.into_iter().map(PredictorKind::Net).collect();
        v.push(PredictorKind::BlendshapeBaseline);
        v
    }

    pub fn name(self) -> &'static str {
        match self {
            PredictorKind::Net(k) => k.name(),
            PredictorKind::BlendshapeBaseline => Self::BLENDSHAPE_NAME,
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            PredictorKind::Net(k) => k.title(),
            PredictorKind::BlendshapeBaseline => "Blendshape baseline",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        if s == Self::BLENDSHAPE_NAME {
            return Ok(PredictorKind::BlendshapeBaseline);
        }
        ModelKind::parse(s).map(PredictorKind::Net).map_err(|_| {
            CoreError::Model(format!(
                "unknown model '{s}' (models: fan-trans, transau, piap, lrp-arl-ff, {})",
                Self::BLENDSHAPE_NAME
            ))
        })
    }

    /// The name a model's results are stored under in a project: the kind,
    /// plus the version folder or file name when it does not run on its
    /// base weights (`piap`, `piap:v3`, `piap:mine.bpk`).
    pub fn stored_name(self, weights: Option<&std::path::Path>) -> String {
        let Some(p) = weights else { return self.name().to_string() };
        let file = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = if file == "model.bpk" { p.parent().and_then(|d| d.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or(file) } else { file };
        format!("{}:{name}", self.name())
    }
}

#[derive(Debug)]
pub enum Predictor {
    Net(AuModel),
    Teacher(BlendshapeTeacher),
}

impl Predictor {
    pub fn kind(&self) -> PredictorKind {
        match self {
            Predictor::Net(m) => PredictorKind::Net(m.kind()),
            Predictor::Teacher(_) => PredictorKind::BlendshapeBaseline,
        }
    }

    pub fn aus(&self) -> &[String] {
        match self {
            Predictor::Net(m) => m.aus(),
            Predictor::Teacher(t) => t.aus(),
        }
    }

    /// Where the weights came from.
    pub fn source(&self) -> String {
        match self {
            Predictor::Net(m) => m.source.clone(),
            Predictor::Teacher(_) => "MediaPipe face_blendshapes (embedded) + auscope AU mapping".into(),
        }
    }

    /// True when the network runs on random initialisation.
    pub fn is_random(&self) -> bool {
        matches!(self, Predictor::Net(m) if m.source == "random init")
    }

    /// True for the shipped demo weights (trained on teacher pseudo-labels).
    pub fn is_demo(&self) -> bool {
        matches!(self, Predictor::Net(m) if m.source.starts_with(super::DEMO_SOURCE))
    }

    pub fn num_params(&self) -> usize {
        match self {
            Predictor::Net(m) => m.num_params(),
            Predictor::Teacher(_) => 0,
        }
    }

    /// AU probabilities for faces of several frames in one batch (one row
    /// per face, in order): the engine batches across frames this way.
    pub fn predict_batch(&self, faces: &[(&RgbImage, &Face)], device: &Device) -> Result<Vec<Vec<f32>>, CoreError> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Predictor::Net(m) => {
                let size = m.spec.input().size;
                let crops: Vec<RgbImage> = faces.iter().map(|(image, f)| crate::face::crop::crop_rgb(image, f, size).0).collect();
                m.predict(&crops, device)
            }
            Predictor::Teacher(t) => t.predict_meshes(faces.iter().map(|(_, f)| f.landmarks478.as_slice())),
        }
    }
}

/// Open a network (see [`open_model`]) or the blendshape baseline (which
/// takes no files).
pub fn open_predictor(kind: PredictorKind, files: ModelFiles, device: &Device) -> Result<Predictor, CoreError> {
    match kind {
        PredictorKind::Net(k) => open_model(k, files, device).map(Predictor::Net),
        PredictorKind::BlendshapeBaseline => {
            if files.weights.is_some() || files.config.is_some() || files.backbone_weights.is_some() {
                return Err(CoreError::Model("the blendshape baseline takes no weights or config files".into()));
            }
            BlendshapeTeacher::new(&BlendshapeTeacher::all_aus(), device).map(Predictor::Teacher)
        }
    }
}
