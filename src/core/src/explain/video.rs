//! AU correlation over a whole video (FAN-Trans Figure 5): a model's AU
//! occurrences on every Nth frame, optionally labels (a label file's, or a
//! coder's in the video's project), their AU x AU Pearson matrices and the
//! distance between them.
//!
//! Choices: the largest face of each frame is the one coded (one-subject
//! videos, as in BP4D/DISFA); predictions enter as occurrences (p >= 0.5),
//! like the labels they are compared with; label intensities (`AUxx_r`
//! without `AUxx_c`) count as present from A (>= 1). With labels, both
//! matrices cover the AUs the model and the file share, over the frames
//! both have.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use std::ops::ControlFlow;

use super::Matrix;
use crate::analysis::Engine;
use super::correlation::{Rows, correlations};
use crate::annotations::store::{Store, project_path};
use crate::error::CoreError;
use crate::source::FrameSource;
use crate::training::data::{Dataset, au_name};

/// 0/1 labels per 0-based frame.
pub type FrameLabels = BTreeMap<usize, Vec<f32>>;
/// 0/1 labels per (frame, face).
pub type FaceLabels = BTreeMap<(usize, usize), Vec<f32>>;

/// A model's AU probabilities on the sampled frames of a video.
#[derive(Debug, Clone)]
pub struct VideoAus {
    pub aus: Vec<String>,
    /// Per frame index with a face: the largest face's probabilities.
    pub frames: BTreeMap<usize, Vec<f32>>,
    /// Per frame index with a face: which face that is (the face pipeline's order).
    pub faces: BTreeMap<usize, usize>,
    /// Sampled frames without a face, or that failed to decode.
    pub skipped: Vec<String>,
}

/// Run the engine's first model on frames 0, every, 2 every, ... of
/// `source`, and on the frames of `also` (e.g. the frames a coder
/// labelled); consecutive frames are tracked. `progress(done, total)`
/// returning false stops early (cancel): Ok(None).
pub fn predict_video(
    source: Box<dyn FrameSource>,
    engine: &Engine,
    every: usize,
    also: &[usize],
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Option<VideoAus>, CoreError> {
    let count = source.info().frame_count;
    let mut indices: Vec<usize> = (0..count).step_by(every.max(1)).chain(also.iter().copied().filter(|&f| f < count)).collect();
    indices.sort_unstable();
    indices.dedup();
    let aus = engine.models().first().map(|m| m.aus().to_vec()).ok_or_else(|| CoreError::Model("no AU model to predict with".into()))?;
    let mut out = VideoAus { aus, frames: BTreeMap::new(), faces: BTreeMap::new(), skipped: Vec::new() };
    let total = indices.len();
    if !progress(0, total) {
        return Ok(None);
    }
    let mut done = 0;
    let summary = engine.run(source, indices, engine.tracker(), &mut |r, _| {
        done += 1;
        if let Some(e) = &r.error {
            out.skipped.push(format!("frame {}: {e}", r.index));
        } else {
            match crate::face::largest_index(r.faces.iter().map(|f| &f.face)) {
                Some(k) => {
                    out.frames.insert(r.index, r.faces[k].aus.first().cloned().unwrap_or_default());
                    out.faces.insert(r.index, k);
                }
                None => out.skipped.push(format!("frame {}: no face", r.index)),
            }
        }
        if progress(done, total) { ControlFlow::Continue(()) } else { ControlFlow::Break(()) }
    })?;
    if summary.stopped {
        return Ok(None);
    }
    if let Some(at) = summary.broke_off_at {
        out.skipped.push(format!("the video breaks off at frame {at}"));
    }
    Ok(Some(out))
}

/// Per-frame labels of `media` from a label file: an OpenFace CSV (a
/// `frame` column, 1-based) or auscope's generic CSV (`path`, `frame`, rows
/// of other media ignored). Returns the AUs of `wanted` the file has, and
/// per 0-based frame their 0/1 labels.
pub fn labels_for_video(csv: &Path, media: &Path, wanted: &[String]) -> Result<(Vec<String>, FrameLabels), CoreError> {
    let bad = |m: String| CoreError::Data(format!("{}: {m}", csv.display()));
    let mut rd = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(csv).map_err(|e| bad(e.to_string()))?;
    let header = rd.headers().map_err(|e| bad(e.to_string()))?.clone();
    let has: Vec<String> = header.iter().filter_map(|h| au_name(h).map(|(n, _)| n)).collect();
    let aus: Vec<String> = wanted.iter().filter(|a| has.contains(a)).cloned().collect();
    if aus.is_empty() {
        return Err(bad(format!("no AU column the model predicts ({}); columns: {}", wanted.join(", "), header.iter().collect::<Vec<_>>().join(", "))));
    }
    let is = |name: &str| header.iter().any(|h| h.eq_ignore_ascii_case(name));
    let data = if is("path") {
        let mut d = Dataset::from_csv(csv, &aus, 1.0)?;
        let name = media.file_name();
        d.samples.retain(|s| s.media.file_name() == name);
        d
    } else if is("frame") {
        Dataset::from_openface(csv, media, "video", &aus, 1.0)?
    } else {
        return Err(bad("neither an OpenFace CSV (a 'frame' column) nor auscope's label CSV (a 'path' column)".into()));
    };
    Ok((aus, data.samples.into_iter().map(|s| (s.frame, s.labels)).collect()))
}

/// A coder's labels from the video's project (`<media>.auscope`): the AUs of
/// `wanted` the coder labelled anywhere, and per (frame, face) their 0/1
/// labels on the faces where the coder labelled all of them. Faces left
/// partly unlabelled are not used, as when training on projects (the
/// review window's Enter labels the rest with the model's decisions).
/// A missing project is an error and is not created.
pub fn coder_labels_for_video(media: &Path, wanted: &[String], coder: &str) -> Result<(Vec<String>, FaceLabels), CoreError> {
    let project = project_path(media);
    if !project.is_file() {
        return Err(CoreError::Data(format!("{} has no project file, so no labels by '{coder}'", media.display())));
    }
    let coded = Store::open(&project)?.coded_faces(wanted, Some(coder))?;
    let labelled: BTreeSet<usize> = coded.values().flat_map(|l| l.keys().copied()).collect();
    if labelled.is_empty() {
        return Err(CoreError::Data(format!("'{coder}' labelled none of the model's AUs ({}) in this video", wanted.join(", "))));
    }
    let aus: Vec<String> = labelled.iter().map(|&j| wanted[j].clone()).collect();
    let faces: FaceLabels = coded
        .into_iter()
        .filter(|(_, l)| labelled.iter().all(|j| l.contains_key(j)))
        .map(|(key, l)| (key, labelled.iter().map(|j| f32::from(u8::from(l[j]))).collect()))
        .collect();
    if faces.is_empty() {
        return Err(CoreError::Data(format!(
            "no face where '{coder}' labelled all of {} (Enter in the review labels the rest with the model's decisions)",
            aus.join(", ")
        )));
    }
    Ok((aus, faces))
}

/// Per-frame rows of `faces` (from [`coder_labels_for_video`]) for the face
/// each frame's prediction is of.
pub fn labels_of_predicted_faces(pred: &VideoAus, faces: &FaceLabels) -> FrameLabels {
    pred.faces.iter().filter_map(|(&frame, &face)| Some((frame, faces.get(&(frame, face))?.clone()))).collect()
}

/// The correlation matrices of a video's predictions (and labels).
#[derive(Debug, Clone)]
pub struct VideoCorrelation {
    pub matrices: Vec<Matrix>,
    /// Element-wise Euclidean distance of the two matrices (with labels).
    pub distance: Option<f32>,
    /// Frames the matrices are over.
    pub frames: usize,
}

/// Pearson matrices of the predictions, and with `labels` (AUs, per-frame
/// rows from [`labels_for_video`]) of both over the frames and AUs they
/// share. Fails with fewer than 2 frames in common.
pub fn video_correlation(pred: &VideoAus, labels: Option<&(Vec<String>, FrameLabels)>) -> Result<VideoCorrelation, CoreError> {
    let occurrence = |p: &[f32], keep: &[usize]| keep.iter().map(|&k| if p[k] >= 0.5 { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
    match labels {
        None => {
            let all: Vec<usize> = (0..pred.aus.len()).collect();
            let rows: Vec<Vec<f32>> = pred.frames.values().map(|p| occurrence(p, &all)).collect();
            if rows.len() < 2 {
                return Err(CoreError::Explain(format!("AU correlation needs at least 2 frames with a face, the video gave {}", rows.len())));
            }
            let (matrices, _) = correlations(&pred.aus, Rows { name: "predictions", rows: &rows }, None);
            Ok(VideoCorrelation { matrices, distance: None, frames: rows.len() })
        }
        Some((aus, by_frame)) => {
            let keep: Vec<usize> = aus.iter().filter_map(|a| pred.aus.iter().position(|p| p == a)).collect();
            let (mut p_rows, mut l_rows) = (Vec::new(), Vec::new());
            for (frame, p) in &pred.frames {
                if let Some(l) = by_frame.get(frame) {
                    p_rows.push(occurrence(p, &keep));
                    l_rows.push(l.clone());
                }
            }
            if p_rows.len() < 2 {
                return Err(CoreError::Explain(format!(
                    "the labels and the predictions share {} frame(s); correlation needs at least 2 (are they this video's labels, of the face the model sees?)",
                    p_rows.len()
                )));
            }
            let (matrices, distance) = correlations(aus, Rows { name: "predictions", rows: &p_rows }, Some(Rows { name: "labels", rows: &l_rows }));
            Ok(VideoCorrelation { matrices, distance, frames: p_rows.len() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aus(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn predictions_and_labels_meet_on_shared_frames_and_aus() {
        let pred = VideoAus {
            aus: aus(&["AU06", "AU12", "AU24"]),
            frames: [(0, vec![0.9, 0.8, 0.1]), (5, vec![0.1, 0.2, 0.9]), (10, vec![0.7, 0.9, 0.0]), (15, vec![0.2, 0.1, 0.0])].into(),
            faces: BTreeMap::new(),
            skipped: Vec::new(),
        };
        // The file lacks AU24 and frame 15; AU12's labels are AU06's.
        let labels = (aus(&["AU06", "AU12"]), [(0, vec![1.0, 1.0]), (5, vec![0.0, 0.0]), (10, vec![1.0, 1.0]), (20, vec![0.0, 0.0])].into());
        let c = video_correlation(&pred, Some(&labels)).expect("correlation");
        assert_eq!(c.frames, 3);
        assert_eq!(c.matrices.len(), 2);
        assert_eq!(c.matrices[0].labels, aus(&["AU06", "AU12"]));
        assert_eq!(c.distance, Some(0.0), "the predictions' occurrences match the labels");
        let alone = video_correlation(&pred, None).expect("predictions only");
        assert_eq!((alone.frames, alone.matrices.len(), alone.matrices[0].labels.len()), (4, 1, 3));
        let elsewhere = (aus(&["AU06"]), [(99, vec![1.0])].into());
        let err = video_correlation(&pred, Some(&elsewhere)).expect_err("no shared frames").to_string();
        assert!(err.contains("share 0 frame"), "{err}");
    }

    #[test]
    fn a_coders_labels_follow_the_predicted_face_and_a_missing_project_is_not_made() {
        let media = std::env::temp_dir().join(format!("auscope-video-{}.mp4", std::process::id()));
        let err = coder_labels_for_video(&media, &aus(&["AU12"]), "alice").expect_err("no project").to_string();
        assert!(err.contains("no project file"), "{err}");
        assert!(!project_path(&media).exists(), "refusing created nothing");
        // Frame 0's prediction is of face 1, frame 5's of face 0.
        let pred = VideoAus {
            aus: aus(&["AU12"]),
            frames: [(0, vec![0.9]), (5, vec![0.1])].into(),
            faces: [(0, 1), (5, 0)].into(),
            skipped: Vec::new(),
        };
        let faces = [((0, 0), vec![0.0]), ((0, 1), vec![1.0]), ((5, 1), vec![1.0])].into();
        assert_eq!(labels_of_predicted_faces(&pred, &faces), [(0, vec![1.0])].into());
    }
}
