//! The per-frame CSV `auscope analyze` writes: OpenFace 2.x
//! FeatureExtraction's columns where they mean the same thing, in its names
//! and order, then auscope's own (docs/analysis.md lists every column).
//!
//! - `frame` (1-based), `face_id` (the track id; -1 on a row that says a
//!   frame had no face), `timestamp` (seconds from the first frame),
//!   `confidence` (the landmarker's face presence), `success` (1 when a
//!   face was found), `x_0..x_67`, `y_0..y_67` (iBUG-68 landmarks in frame
//!   pixels), `AUxx_r` (only for models that predict intensity: none of the
//!   shipped ones do, and an intensity is never made up from a
//!   probability), `AUxx_c` (the first model's occurrence, p >= 0.5).
//! - auscope's: `detected` (1 when the detector ran on the frame, 0 when
//!   the face was tracked), `box_x, box_y, box_w, box_h` (the face box the
//!   AU models crop around), `p_<model>_AUxx` for every model, and with
//!   `landmarks478` the mesh as `mesh_x_i, mesh_y_i, mesh_z_i`.

use super::engine::FrameResult;

/// Occurrence threshold for `AUxx_c`.
pub const OCCURRENCE: f32 = 0.5;

/// One model's columns.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelColumns {
    pub name: String,
    pub aus: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Table {
    pub models: Vec<ModelColumns>,
    pub landmarks478: bool,
}

/// `blendshape-baseline` -> `blendshape_baseline`: column names readers can
/// use as identifiers.
fn ident(name: &str) -> String {
    name.replace('-', "_")
}

impl Table {
    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = ["frame", "face_id", "timestamp", "confidence", "success"].iter().map(|s| s.to_string()).collect();
        h.extend((0..68).map(|i| format!("x_{i}")));
        h.extend((0..68).map(|i| format!("y_{i}")));
        if let Some(first) = self.models.first() {
            h.extend(first.aus.iter().map(|au| format!("{au}_c")));
        }
        h.extend(["detected", "box_x", "box_y", "box_w", "box_h"].iter().map(|s| s.to_string()));
        for m in &self.models {
            h.extend(m.aus.iter().map(|au| format!("p_{}_{au}", ident(&m.name))));
        }
        if self.landmarks478 {
            for axis in ["x", "y", "z"] {
                h.extend((0..478).map(|i| format!("mesh_{axis}_{i}")));
            }
        }
        h
    }

    /// The rows of one frame: one per face, or one `success 0` row when the
    /// frame has none (or failed).
    pub fn rows(&self, result: &FrameResult, timestamp_s: f64) -> Vec<Vec<String>> {
        let width = self.header().len();
        let lead = |face_id: i64, conf: f32, success: u8| {
            vec![(result.index + 1).to_string(), face_id.to_string(), format!("{timestamp_s:.3}"), format!("{conf:.3}"), success.to_string()]
        };
        if result.faces.is_empty() {
            let mut row = lead(-1, 0.0, 0);
            row.resize(width, "0".into());
            return vec![row];
        }
        result
            .faces
            .iter()
            .map(|f| {
                let face = &f.face;
                let mut row = lead(face.track.map_or(-1, i64::from), face.presence, 1);
                row.extend(face.landmarks68.iter().map(|p| format!("{:.1}", p[0])));
                row.extend(face.landmarks68.iter().map(|p| format!("{:.1}", p[1])));
                if let (Some(first), Some(p)) = (self.models.first(), f.aus.first()) {
                    row.extend((0..first.aus.len()).map(|a| u8::from(p.get(a).is_some_and(|&v| v >= OCCURRENCE)).to_string()));
                }
                let b = face.box_xywh();
                row.push(u8::from(result.times.detected).to_string());
                row.extend(b.iter().map(|v| format!("{v:.1}")));
                for (m, p) in self.models.iter().zip(&f.aus) {
                    row.extend((0..m.aus.len()).map(|a| format!("{:.4}", p.get(a).copied().unwrap_or(0.0))));
                }
                if self.landmarks478 {
                    for axis in 0..3 {
                        row.extend((0..478).map(|i| format!("{:.2}", face.landmarks478.get(i).map_or(0.0, |p| p[axis]))));
                    }
                }
                row.resize(width, "0".into());
                row
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::engine::{AnalysedFace, StageTimes};
    use crate::face::{Detection, Face};
    use crate::frame::Roi;

    #[test]
    fn rows_follow_the_header_and_say_when_no_face() {
        let t = Table { models: vec![ModelColumns { name: "blendshape-baseline".into(), aus: vec!["AU01".into(), "AU12".into()] }], landmarks478: false };
        let h = t.header();
        assert_eq!(&h[..5], ["frame", "face_id", "timestamp", "confidence", "success"]);
        assert_eq!(h[5], "x_0");
        assert_eq!(h[5 + 68], "y_0");
        assert_eq!(h[5 + 136], "AU01_c");
        assert_eq!(h.last().map(String::as_str), Some("p_blendshape_baseline_AU12"));
        let face = Face {
            detection: Detection { score: 0.9, bbox: [10.0, 20.0, 50.0, 80.0], keypoints: [[0.0; 2]; 6] },
            roi: Roi { center: [0.0, 0.0], side: 1.0, angle: 0.0 },
            landmarks478: vec![[1.0, 2.0, 3.0]; 478],
            landmarks68: vec![[1.0, 2.0]; 68],
            presence: 0.97,
            track: Some(3),
        };
        let r = FrameResult { index: 4, frame: None, faces: vec![AnalysedFace { face, aus: vec![vec![0.2, 0.7]] }], error: None, times: StageTimes::default() };
        let rows = t.rows(&r, 0.1333);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].len(), h.len());
        assert_eq!(&rows[0][..5], ["5", "3", "0.133", "0.970", "1"]);
        assert_eq!(&rows[0][5 + 136..5 + 138], ["0", "1"]);
        assert_eq!(&rows[0][5 + 139..5 + 143], ["10.0", "20.0", "40.0", "60.0"]);
        let empty = FrameResult { index: 0, frame: None, faces: vec![], error: None, times: StageTimes::default() };
        let rows = t.rows(&empty, 0.0);
        assert_eq!(&rows[0][..5], ["1", "-1", "0.000", "0.000", "0"]);
        assert_eq!(rows[0].len(), h.len());
    }
}
