//! The faces `auscope faces --json` and `auscope infer --json` print, one
//! frame at a time: `{"frames":[{"index":N,"faces":[...]}]}`.

use serde::Serialize;

use crate::face::Face;

/// One face of `auscope faces --json`.
#[derive(Debug, Serialize)]
pub struct FaceJson {
    /// The face's track id: the same face keeps it from frame to frame.
    pub id: Option<u32>,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks68: Vec<[f32; 2]>,
}

impl From<&Face> for FaceJson {
    fn from(f: &Face) -> Self {
        FaceJson {
            id: f.track,
            bbox: f.box_xywh(),
            score: f.detection.score,
            landmarks68: f.landmarks68.clone(),
        }
    }
}

/// One face of `auscope infer --json`.
#[derive(Debug, Serialize)]
pub struct AuFace {
    /// The face's track id.
    pub id: Option<u32>,
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// AU name -> probability, in AU order.
    pub aus: std::collections::BTreeMap<String, f32>,
}
