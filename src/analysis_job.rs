//! The window's "Analyse video" as a background job on its own named thread
//! (`auscope-analysis`) with its own decoder, face models, model copy and
//! project connection: the core's `analyse_into_project`, which stores
//! every frame in the project and resumes where a killed run stopped. Each
//! commit's faces come back over a bounded channel, so the timeline fills
//! in as it goes; dropping the job (or `cancel`) stops it at the next
//! commit, resumable.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use auscope_core::analysis::project::{ProjectOutcome, analyse_into_project};
use auscope_core::analysis::{Engine, EngineConfig};
use auscope_core::annotations::analysed::{FaceSummary, StoredModel};
use auscope_core::annotations::review::FaceKey;
use auscope_core::annotations::store::Store;
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::jobs::Job;
use auscope_core::models::{ModelFiles, open_predictor};
use burn::tensor::Device;

use crate::worker::ModelRequest;

#[derive(Debug, Clone)]
pub struct AnalysisSpec {
    pub video: PathBuf,
    pub model: ModelRequest,
    pub detector: DetectorKind,
}

/// One analysed face as the review keeps it.
pub type StoredRow = (FaceKey, FaceSummary, Vec<f32>);

pub enum AnalysisEvent {
    /// Frames stored so far, and the faces of the ones just stored.
    Stored { done: usize, total: usize, rows: Vec<StoredRow> },
    Finished(Result<ProjectOutcome, String>),
}

pub type AnalysisJob = Job<AnalysisEvent>;

/// Start analysing `spec.video` into its project on `device`.
pub fn spawn(spec: AnalysisSpec, device: Device) -> std::io::Result<AnalysisJob> {
    Job::start("auscope-analysis", 8, move |tx, stop| {
        let result = (|| {
            let files = ModelFiles { weights: spec.model.weights.as_deref(), ..ModelFiles::default() };
            let model = open_predictor(spec.model.kind, files, &device)?;
            let stored = StoredModel { who: spec.model.kind.stored_name(spec.model.weights.as_deref()), aus: model.aus().to_vec(), weights: model.source() };
            let pipeline = FacePipeline::new(spec.detector, &device)?;
            let engine = Engine::new(pipeline, vec![model], device.clone(), EngineConfig::default());
            let mut store = Store::open_for_media(&spec.video)?;
            analyse_into_project(&engine, &spec.video, &mut store, &[stored], spec.detector, &mut |c| {
                let rows = c
                    .frames
                    .iter()
                    .flat_map(|f| {
                        f.faces.iter().enumerate().map(move |(i, face)| {
                            ((f.frame, i), FaceSummary { track: face.track, score: face.score, bbox: face.bbox }, face.aus.first().cloned().unwrap_or_default())
                        })
                    })
                    .collect();
                // The rows must arrive: block while the window catches up;
                // a window gone (receiver dropped) stops the run.
                tx.send(AnalysisEvent::Stored { done: c.done, total: c.total, rows }).is_ok() && !stop.load(Ordering::Relaxed)
            })
        })();
        let _ = tx.send(AnalysisEvent::Finished(result.map_err(|e| e.to_string())));
    })
}
