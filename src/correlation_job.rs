//! "AU correlation over the video" as a background job on its own named
//! thread, with its own decoder, face models and model copy, so frames keep
//! coming while it runs. Progress and the result come back over a bounded
//! channel, which the UI polls (it repaints while a job runs); dropping the
//! job (or `cancel`) stops it between frames.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use auscope_core::analysis::{Engine, EngineConfig};
use auscope_core::explain::video::{
    FaceLabels, FrameLabels, VideoCorrelation, coder_labels_for_video, labels_for_video, labels_of_predicted_faces, predict_video, video_correlation,
};
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::jobs::Job;
use auscope_core::models::{ModelFiles, open_predictor};
use auscope_core::source::open_source;
use burn::tensor::Device;

use crate::worker::ModelRequest;

/// What to correlate.
#[derive(Debug, Clone)]
pub struct CorrelationSpec {
    pub video: PathBuf,
    pub model: ModelRequest,
    pub detector: DetectorKind,
    /// Every Nth frame.
    pub every: usize,
    /// Labels to compare the predictions with (None: predictions only).
    pub labels: Option<LabelSource>,
}

/// Where the labels of a video correlation come from.
#[derive(Debug, Clone, PartialEq)]
pub enum LabelSource {
    /// An OpenFace or auscope label CSV of this video.
    File(PathBuf),
    /// A coder's labels in this video's project (`<video>.auscope`).
    Coder(String),
}

/// Labels read before the frames: per frame (a file), or per (frame, face)
/// until the predictions say which face each frame's is (a coder's).
enum Labels {
    Frames(Vec<String>, FrameLabels),
    Faces(Vec<String>, FaceLabels),
}

pub enum JobEvent {
    Progress { done: usize, total: usize },
    /// The matrices, and the sampled frames left out (no face, decode error).
    Done(Result<(VideoCorrelation, Vec<String>), String>),
}

/// A video pass on its own thread (`auscope-correlation`), with its events.
pub type CorrelationJob = Job<JobEvent>;

/// Start the pass `spec` describes on `device`.
pub fn spawn(spec: CorrelationSpec, device: Device) -> std::io::Result<CorrelationJob> {
    Job::start("auscope-correlation", 16, move |tx, stop| {
        let result = run(&spec, &device, stop, &mut |done, total| {
            // Progress may be dropped when the UI is behind; the result is not.
            let _ = tx.try_send(JobEvent::Progress { done, total });
        });
        if let Some(event) = result {
            let _ = tx.send(event);
        }
    })
}

/// The final event; None when cancelled.
fn run(spec: &CorrelationSpec, device: &Device, stop: &AtomicBool, progress: &mut dyn FnMut(usize, usize)) -> Option<JobEvent> {
    let fail = |e: String| Some(JobEvent::Done(Err(e)));
    let prepared = (|| {
        let model = open_predictor(spec.model.kind, ModelFiles { weights: spec.model.weights.as_deref(), ..ModelFiles::default() }, device)?;
        // The labels first, so a wrong file fails before minutes of frames.
        let labels = match &spec.labels {
            None => None,
            Some(LabelSource::File(csv)) => labels_for_video(csv, &spec.video, model.aus()).map(|(a, l)| Some(Labels::Frames(a, l)))?,
            Some(LabelSource::Coder(coder)) => coder_labels_for_video(&spec.video, model.aus(), coder).map(|(a, l)| Some(Labels::Faces(a, l)))?,
        };
        let source = open_source(&spec.video)?;
        let pipeline = FacePipeline::new(spec.detector, device)?;
        let engine = Engine::new(pipeline, vec![model], device.clone(), EngineConfig::default());
        Ok::<_, auscope_core::CoreError>((engine, labels, source))
    })();
    let (engine, labels, source) = match prepared {
        Ok(p) => p,
        Err(e) => return fail(e.to_string()),
    };
    // A coder's frames are predicted too, whatever the step.
    let coded: Vec<usize> = match &labels {
        Some(Labels::Faces(_, faces)) => faces.keys().map(|&(frame, _)| frame).collect(),
        _ => Vec::new(),
    };
    let predicted = predict_video(source, &engine, spec.every, &coded, &mut |done, total| {
        progress(done, total);
        !stop.load(Ordering::Relaxed)
    });
    match predicted {
        Ok(None) => None,
        Err(e) => fail(e.to_string()),
        Ok(Some(p)) => {
            let labels = labels.map(|l| match l {
                Labels::Frames(aus, by_frame) => (aus, by_frame),
                Labels::Faces(aus, by_face) => {
                    let by_frame = labels_of_predicted_faces(&p, &by_face);
                    (aus, by_frame)
                }
            });
            Some(JobEvent::Done(video_correlation(&p, labels.as_ref()).map(|c| (c, p.skipped)).map_err(|e| e.to_string())))
        }
    }
}
