//! AU labels of one media file: a SQLite project file next to the media
//! ([`store::Store`]), OpenFace CSV import/export ([`openface`]), plain
//! CSV/JSON ([`plain`]), agreement between label sources ([`agreement`])
//! the analysis engine's stored per-frame results ([`analysed`]) and the
//! review window's data ([`review`]).
//!
//! A label is per (frame, face, AU) and per source: a model's prediction
//! (who = the model's name) or a coder's label (who = the coder's name).
//! Coders' edits are undoable transactions; predictions are not.

pub mod agreement;
pub mod analysed;
pub mod elan;
pub mod events;
pub mod proposals;
pub mod openface;
pub mod plain;
pub mod review;
pub mod store;

use serde::{Deserialize, Serialize};

/// Where a label comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Model,
    Coder,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Model => "model",
            Source::Coder => "coder",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "model" => Some(Source::Model),
            "coder" => Some(Source::Coder),
            _ => None,
        }
    }
}

/// One AU of one face in one frame (frames 0-based, faces by index).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelKey {
    pub frame: usize,
    pub face: usize,
    pub au: String,
}

/// A label's content.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelValue {
    pub occurrence: bool,
    /// FACS intensity 1..=5 (A..E); None: not coded.
    pub intensity: Option<u8>,
    /// A model's score: a probability, or an intensity estimate such as
    /// OpenFace's AUxx_r (0..5). None for coders.
    pub score: Option<f64>,
}

impl LabelValue {
    /// A coder's label: present or absent, intensity optional (present when given).
    pub fn coded(occurrence: bool, intensity: Option<u8>) -> Self {
        let intensity = intensity.filter(|i| (1..=5).contains(i));
        LabelValue { occurrence: occurrence || intensity.is_some(), intensity, score: None }
    }

    /// A model's probability, present at 0.5.
    pub fn predicted(p: f32) -> Self {
        LabelValue { occurrence: p >= 0.5, intensity: None, score: Some(p as f64) }
    }
}

/// FACS intensity letter of 1..=5.
pub fn intensity_letter(i: u8) -> Option<char> {
    (1..=5).contains(&i).then(|| (b'A' + i - 1) as char)
}

/// One stored label.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub key: LabelKey,
    pub source: Source,
    /// Coder or model name.
    pub who: String,
    pub value: LabelValue,
    /// When it was written, Unix milliseconds.
    pub time_ms: i64,
}
