//! Analysing a video into its project: the engine's results for every
//! frame stored in the project file (`annotations::analysed`), committed
//! about every half second together with the run's progress and tracker
//! state, so a killed run loses at most the frames in flight and goes on
//! from there with the same ids and numbers. The window's "Analyse video"
//! and `auscope analyze --project` both run this.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::engine::{Engine, FrameResult};
use super::tracker::{Tracker, TrackerConfig};
use crate::annotations::analysed::{AnalysisProgress, Start, StoredFace, StoredFrame, StoredModel};
use crate::annotations::store::Store;
use crate::error::CoreError;
use crate::face::DetectorKind;
use crate::source::open_source;

/// Commit at most this often (and at the end).
const COMMIT_SECS: f64 = 0.5;

/// What decides the faces of a run.
#[derive(Debug, Clone, Serialize)]
struct FaceSettings {
    detector: DetectorKind,
    tracker: TrackerConfig,
}

/// What decides all the numbers of a run.
#[derive(Debug, Clone, Serialize)]
struct RunSettings<'a> {
    faces: &'a FaceSettings,
    models: &'a [StoredModel],
}

/// Frames just stored, for the caller's progress and live display.
pub struct Committed<'a> {
    pub done: usize,
    pub total: usize,
    pub frames: &'a [StoredFrame],
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProjectOutcome {
    Done { frames: usize, failed: usize, resumed_from: Option<usize>, broke_off_at: Option<usize> },
    /// Analysed before with the same settings; nothing was run.
    AlreadyDone { frames: usize },
    /// The caller stopped it; the next run with the same settings resumes.
    Stopped { at: usize },
}

impl ProjectOutcome {
    /// What a user should know beyond the frame count of a finished run:
    /// where it resumed, failed frames, where the video broke off.
    pub fn details(&self) -> String {
        let ProjectOutcome::Done { failed, resumed_from, broke_off_at, .. } = self else { return String::new() };
        let mut d = String::new();
        if let Some(f) = resumed_from {
            d += &format!(" (resumed at frame {f})");
        }
        if *failed > 0 {
            d += &format!("; {failed} frame(s) could not be analysed");
        }
        if let Some(at) = broke_off_at {
            d += &format!("; warning: the video breaks off at frame {at} (truncated or corrupt file?)");
        }
        d
    }
}

/// A frame's result as stored.
pub fn stored_frame(result: &FrameResult, timestamp: f64) -> StoredFrame {
    StoredFrame {
        frame: result.index,
        timestamp,
        detected: result.times.detected,
        error: result.error.clone(),
        faces: result
            .faces
            .iter()
            .map(|f| StoredFace {
                track: f.face.track.unwrap_or(0),
                score: f.face.detection.score,
                presence: f.face.presence,
                bbox: f.face.box_xywh(),
                landmarks: f.face.landmarks478.clone(),
                aus: f.aus.clone(),
            })
            .collect(),
    }
}

/// Analyse `media` with `engine` into `store`. `models` names the engine's
/// models (same order). `progress` gets each commit and returning false
/// stops the run (resumable).
pub fn analyse_into_project(
    engine: &Engine,
    media: &Path,
    store: &mut Store,
    models: &[StoredModel],
    detector: DetectorKind,
    progress: &mut dyn FnMut(Committed) -> bool,
) -> Result<ProjectOutcome, CoreError> {
    if models.len() != engine.models().len() {
        return Err(CoreError::Model(format!("{} model names for {} models", models.len(), engine.models().len())));
    }
    let source = open_source(media)?;
    let info = source.info().clone();
    let total = info.frame_count;
    let faces = FaceSettings { detector, tracker: engine.config().tracker };
    let face_settings = serde_json::to_string(&faces).unwrap_or_default();
    let settings = serde_json::to_string(&RunSettings { faces: &faces, models }).unwrap_or_default();
    let (mut state, tracker, resumed_from) = match store.begin_analysis(&settings, &face_settings, models, total)? {
        Start::Finished(p) => return Ok(ProjectOutcome::AlreadyDone { frames: p.next }),
        Start::Resume(p) => {
            let tracker: Tracker = serde_json::from_str(&p.tracker).unwrap_or_else(|_| engine.tracker());
            let at = p.next;
            (p, tracker, Some(at))
        }
        Start::Fresh(p) => (p, engine.tracker(), None),
    };
    let times: Vec<f64> = (0..total).map(|i| source.time_s(i).unwrap_or_else(|| info.fps.map_or(0.0, |f| i as f64 / f))).collect();
    let frames: Vec<usize> = (state.next..total).collect();
    let mut pending: Vec<StoredFrame> = Vec::new();
    let mut last_commit = Instant::now();
    let mut failure: Option<CoreError> = None;
    let mut stopped = false;
    let mut commit = |pending: &mut Vec<StoredFrame>, state: &AnalysisProgress, store: &mut Store| -> Result<bool, CoreError> {
        store.put_analysed(pending, state)?;
        let go_on = progress(Committed { done: state.next, total, frames: pending });
        pending.clear();
        Ok(go_on)
    };
    let summary = engine.run(source, frames, tracker, &mut |result: FrameResult, tracker: &Tracker| {
        pending.push(stored_frame(&result, times.get(result.index).copied().unwrap_or(0.0)));
        state.next = result.index + 1;
        state.failed += usize::from(result.error.is_some());
        if last_commit.elapsed().as_secs_f64() < COMMIT_SECS {
            return ControlFlow::Continue(());
        }
        last_commit = Instant::now();
        state.tracker = serde_json::to_string(tracker).unwrap_or_default();
        match commit(&mut pending, &state, store) {
            Ok(true) => ControlFlow::Continue(()),
            Ok(false) => {
                stopped = true;
                ControlFlow::Break(())
            }
            Err(e) => {
                failure = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if stopped {
        return Ok(ProjectOutcome::Stopped { at: state.next });
    }
    // The run went to the end (or to where the video broke off).
    state.broke_off_at = summary.broke_off_at;
    if state.failed == state.next && state.next > 0 {
        store.put_analysed(&pending, &state)?;
        return Err(CoreError::Video { path: media.to_path_buf(), reason: "no frame could be analysed".into() });
    }
    state.finished = true;
    // The tracker after the last frame is not needed once finished.
    state.tracker.clear();
    commit(&mut pending, &state, store)?;
    Ok(ProjectOutcome::Done { frames: state.next, failed: state.failed, resumed_from, broke_off_at: summary.broke_off_at })
}
