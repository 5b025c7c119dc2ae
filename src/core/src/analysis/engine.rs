//! The analysis engine: frames -> faces (detected or tracked) -> landmarks
//! -> AU models -> results, for every caller (CLI, window, correlation,
//! fine-tune, training preparation).
//!
//! A run is a pipeline of named threads behind bounded channels: the
//! decoder reads ahead, the face stage detects or tracks and runs the
//! landmarker (sequential by nature: each frame's regions come from the
//! last frame's landmarks), and the caller's thread runs the AU models,
//! batching the faces of the frames that are ready, and hands each result
//! to the caller's sink in frame order.

use std::ops::ControlFlow;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};
use std::time::Instant;

use burn::tensor::Device;
use image::RgbImage;

use super::tracker::{Tracker, TrackerConfig};
use crate::error::CoreError;
use crate::face::{Face, FacePipeline};
use crate::frame::Frame;
use crate::models::Predictor;
use crate::source::FrameSource;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    pub tracker: TrackerConfig,
    /// Frames decoded ahead of the face stage.
    pub decode_ahead: usize,
    /// Most faces batched through the AU models at once (across frames).
    pub batch_faces: usize,
    /// A run on a video stops after this many frames in a row fail to
    /// decode (the file breaks off).
    pub max_failed_in_a_row: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { tracker: TrackerConfig::default(), decode_ahead: 8, batch_faces: 16, max_failed_in_a_row: 8 }
    }
}

/// One face of a frame with each model's AU probabilities.
#[derive(Debug, Clone)]
pub struct AnalysedFace {
    pub face: Face,
    /// Per model (the engine's order), per AU (the model's order).
    pub aus: Vec<Vec<f32>>,
}

/// Per-stage time of one frame, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    pub decode_ms: f64,
    pub faces_ms: f64,
    pub models_ms: f64,
    /// Whether the detector ran on this frame.
    pub detected: bool,
}

#[derive(Debug, Clone)]
pub struct FrameResult {
    pub index: usize,
    /// The decoded frame (None when decoding failed).
    pub frame: Option<Frame>,
    pub faces: Vec<AnalysedFace>,
    /// Why this frame has no result (decoding or a model failed); the run goes on.
    pub error: Option<String>,
    pub times: StageTimes,
}

/// How a run ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    pub frames: usize,
    pub failed: usize,
    /// The sink stopped the run.
    pub stopped: bool,
    /// Set when a video broke off: frames from here on were not analysed.
    pub broke_off_at: Option<usize>,
}

/// What the face stage hands on: the frame, its faces, the tracker after it.
struct Faced {
    frame: Result<Frame, String>,
    index: usize,
    faces: Result<Vec<Face>, String>,
    tracker: Tracker,
    times: StageTimes,
}

pub struct Engine {
    pipeline: FacePipeline,
    models: Vec<Predictor>,
    device: Device,
    config: EngineConfig,
}

impl Engine {
    pub fn new(pipeline: FacePipeline, models: Vec<Predictor>, device: Device, config: EngineConfig) -> Self {
        Self { pipeline, models, device, config }
    }

    /// Faces and landmarks only, on the pipeline's device.
    pub fn faces_only(pipeline: FacePipeline) -> Self {
        let device = pipeline.landmarker_device().clone();
        Self::new(pipeline, Vec::new(), device, EngineConfig::default())
    }

    /// Swap the AU models (the window's Model menu).
    pub fn set_models(&mut self, models: Vec<Predictor>) {
        self.models = models;
    }

    /// Swap the face models (the window's detector choice).
    pub fn set_pipeline(&mut self, pipeline: FacePipeline) {
        self.pipeline = pipeline;
    }

    pub fn models(&self) -> &[Predictor] {
        &self.models
    }

    pub fn pipeline(&self) -> &FacePipeline {
        &self.pipeline
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// A tracker with this engine's settings.
    pub fn tracker(&self) -> Tracker {
        Tracker::new(self.config.tracker)
    }

    /// The faces of frame `index`: tracked from the last frame where
    /// `tracker` holds tracks for it, else detected; and whether the
    /// detector ran. Each face carries its track id.
    pub fn faces(&self, tracker: &mut Tracker, index: usize, image: &RgbImage) -> Result<(Vec<Face>, bool), CoreError> {
        let detect = tracker.plan(index);
        let detections = if detect { Some(self.pipeline.detect(image)?) } else { None };
        let regions = tracker.regions(detections.as_deref());
        let rois: Vec<_> = regions.iter().map(|r| r.roi).collect();
        let marks = self.pipeline.landmarker.landmarks(image, &rois)?;
        Ok((tracker.update(index, detect, regions, marks.into_iter().map(|m| (m.points, m.presence)).collect()), detect))
    }

    /// Every model's AU probabilities for faces from one or more frames, in
    /// one batch per model: per face, per model.
    pub fn aus(&self, faces: &[(&RgbImage, &Face)]) -> Result<Vec<Vec<Vec<f32>>>, CoreError> {
        let mut out: Vec<Vec<Vec<f32>>> = vec![Vec::with_capacity(self.models.len()); faces.len()];
        for model in &self.models {
            for (row, p) in out.iter_mut().zip(model.predict_batch(faces, &self.device)?) {
                row.push(p);
            }
        }
        Ok(out)
    }

    /// Analyse one frame on the caller's thread (the window's viewer).
    pub fn frame(&self, tracker: &mut Tracker, frame: &Frame) -> FrameResult {
        let t0 = Instant::now();
        let faced = self.faces(tracker, frame.id.index, &frame.image);
        let faces_ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut times = StageTimes { faces_ms, ..Default::default() };
        match faced {
            Ok((faces, detected)) => {
                times.detected = detected;
                let t1 = Instant::now();
                let pairs: Vec<(&RgbImage, &Face)> = faces.iter().map(|f| (frame.image.as_ref(), f)).collect();
                let aus = self.aus(&pairs);
                times.models_ms = t1.elapsed().as_secs_f64() * 1e3;
                match aus {
                    Ok(aus) => FrameResult { index: frame.id.index, frame: Some(frame.clone()), faces: faces.into_iter().zip(aus).map(|(face, aus)| AnalysedFace { face, aus }).collect(), error: None, times },
                    Err(e) => FrameResult { index: frame.id.index, frame: Some(frame.clone()), faces: Vec::new(), error: Some(e.to_string()), times },
                }
            }
            Err(e) => FrameResult { index: frame.id.index, frame: Some(frame.clone()), faces: Vec::new(), error: Some(e.to_string()), times },
        }
    }

    /// Analyse `frames` of `source` (ascending; consecutive frames are
    /// tracked), starting from `tracker` (a fresh one, or one saved by an
    /// interrupted run). `sink` gets each result in order with the tracker
    /// state after that frame, and may stop the run.
    pub fn run(
        &self,
        source: Box<dyn FrameSource>,
        frames: Vec<usize>,
        tracker: Tracker,
        sink: &mut dyn FnMut(FrameResult, &Tracker) -> ControlFlow<()>,
    ) -> Result<RunSummary, CoreError> {
        let ahead = self.config.decode_ahead.max(1);
        // Images of a folder are separate stills, never tracked across.
        let stills = source.info().kind != crate::source::SourceKind::Video;
        std::thread::scope(|scope| {
            let (frame_tx, frame_rx) = sync_channel::<(usize, Result<Frame, String>, f64)>(ahead);
            let mut source = source;
            std::thread::Builder::new()
                .name("auscope-decode".into())
                .spawn_scoped(scope, move || {
                    for index in frames {
                        let t = Instant::now();
                        let frame = source.frame(index).map_err(|e| e.to_string());
                        if frame_tx.send((index, frame, t.elapsed().as_secs_f64() * 1e3)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| CoreError::Model(format!("cannot start the decoding thread: {e}")))?;
            let (faced_tx, faced_rx) = sync_channel::<Faced>(ahead);
            std::thread::Builder::new()
                .name("auscope-faces".into())
                .spawn_scoped(scope, move || {
                    let mut tracker = tracker;
                    for (index, frame, decode_ms) in frame_rx {
                        let t = Instant::now();
                        if stills {
                            tracker.forget();
                        }
                        let (faces, detected) = match &frame {
                            Ok(f) => match self.faces(&mut tracker, index, &f.image) {
                                Ok((faces, d)) => (Ok(faces), d),
                                Err(e) => (Err(e.to_string()), true),
                            },
                            Err(e) => (Err(e.clone()), false),
                        };
                        let times = StageTimes { decode_ms, faces_ms: t.elapsed().as_secs_f64() * 1e3, models_ms: 0.0, detected };
                        if faced_tx.send(Faced { frame, index, faces, tracker: tracker.clone(), times }).is_err() {
                            return;
                        }
                    }
                })
                .map_err(|e| CoreError::Model(format!("cannot start the face thread: {e}")))?;
            Ok(self.models_stage(faced_rx, sink))
        })
    }

    /// The caller's thread: batch the ready frames' faces through the
    /// models, then hand the results on in order.
    fn models_stage(&self, faced: Receiver<Faced>, sink: &mut dyn FnMut(FrameResult, &Tracker) -> ControlFlow<()>) -> RunSummary {
        let mut summary = RunSummary::default();
        let mut failed_in_a_row = 0;
        while let Ok(first) = faced.recv() {
            let mut batch = vec![first];
            let mut faces_in_batch = batch[0].faces.as_ref().map_or(0, |f| f.len());
            while faces_in_batch < self.config.batch_faces {
                match faced.try_recv() {
                    Ok(next) => {
                        faces_in_batch += next.faces.as_ref().map_or(0, |f| f.len());
                        batch.push(next);
                    }
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            let t = Instant::now();
            let pairs: Vec<(&RgbImage, &Face)> = batch
                .iter()
                .filter_map(|b| match (&b.frame, &b.faces) {
                    (Ok(frame), Ok(faces)) => Some(faces.iter().map(move |f| (frame.image.as_ref(), f))),
                    _ => None,
                })
                .flatten()
                .collect();
            let aus = self.aus(&pairs);
            let per_frame_ms = t.elapsed().as_secs_f64() * 1e3 / batch.len() as f64;
            let mut aus = aus.map(|v| v.into_iter());
            for b in batch {
                let mut times = b.times;
                times.models_ms = per_frame_ms;
                let decode_failed = b.frame.is_err();
                let frame = b.frame.ok();
                let result = match (b.faces, &mut aus) {
                    (Ok(faces), Ok(rows)) => {
                        let faces: Vec<AnalysedFace> = faces.into_iter().map(|face| AnalysedFace { aus: rows.next().unwrap_or_default(), face }).collect();
                        FrameResult { index: b.index, frame, faces, error: None, times }
                    }
                    (Ok(_), Err(e)) => FrameResult { index: b.index, frame, faces: Vec::new(), error: Some(e.to_string()), times },
                    (Err(e), _) => FrameResult { index: b.index, frame, faces: Vec::new(), error: Some(e), times },
                };
                summary.frames += 1;
                if result.error.is_some() {
                    summary.failed += 1;
                }
                failed_in_a_row = if decode_failed { failed_in_a_row + 1 } else { 0 };
                if failed_in_a_row >= self.config.max_failed_in_a_row.max(1) {
                    summary.broke_off_at = Some(b.index + 1 - failed_in_a_row);
                    return summary;
                }
                if sink(result, &b.tracker).is_break() {
                    summary.stopped = true;
                    return summary;
                }
            }
        }
        summary
    }
}
