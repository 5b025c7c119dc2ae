//! The JSON that `auscope faces --json` prints.

use serde::Serialize;

use crate::face::Face;

#[derive(Debug, Serialize)]
pub struct FacesReport {
    pub frames: Vec<FrameFaces>,
}

#[derive(Debug, Serialize)]
pub struct FrameFaces {
    pub index: usize,
    pub faces: Vec<FaceJson>,
    /// Set when this frame could not be read; the run goes on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FaceJson {
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks68: Vec<[f32; 2]>,
}

impl From<&Face> for FaceJson {
    fn from(f: &Face) -> Self {
        FaceJson {
            bbox: f.box_xywh(),
            score: f.detection.score,
            landmarks68: f.landmarks68.clone(),
        }
    }
}

/// The JSON that `auscope infer --json` prints.
#[derive(Debug, Serialize)]
pub struct AuReport {
    pub model: String,
    /// The weights file, or "random init" when none was given.
    pub weights: String,
    pub frames: Vec<AuFrame>,
}

#[derive(Debug, Serialize)]
pub struct AuFrame {
    pub index: usize,
    pub faces: Vec<AuFace>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AuFace {
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// AU name -> probability, in AU order.
    pub aus: std::collections::BTreeMap<String, f32>,
}
