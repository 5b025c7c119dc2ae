//! Fine-tune an AU model on a project's coder-corrected frames, as a job:
//! prepare the corrected faces, score the base model on a held-out part,
//! train (the architecture's own procedure, [`Trainer`]), score the result,
//! and keep it as a new model version next to the project with its config
//! and metrics. A version can be adopted (the app then uses it for this
//! media) and rolled back.
//!
//! Choices (docs/annotations.md):
//! - A corrected face is one the coder labelled at least one AU of. Its AUs
//!   the coder left alone take the base model's decision (p >= 0.5): what
//!   the coder saw and let stand. Training on them keeps the other AUs where
//!   they were.
//! - Held out: the last `held_out` fraction (at least one) of the corrected
//!   faces in frame order, so neighbouring frames, which look alike, rarely
//!   straddle the split. Before/after F1 count only the AUs the coder
//!   labelled on those faces.
//! - Optionally the blendshape teacher's pseudo-labels of every Nth frame
//!   the coder did not correct join the training faces.
//! - Versions live in `<project>-models/<model>/v<N>/` (model.bpk, run.json,
//!   metrics.json, finetune.json); the adopted one and the adoption history
//!   are in the project's metadata.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::config::pseudo_label;
use crate::analysis::Engine;
use super::data::{Dataset, Sample};
use super::metrics::{Evaluation, evaluate};
use super::prepare::{Prepared, prepare};
use crate::files::io_err;
use super::trainer::{Auxiliary, RunFiles, TrainEvent, TrainJob, TrainOutcome, TrainParams, Trainer, predict_prepared};
use crate::annotations::store::{Store, now_ms};
use crate::error::CoreError;
use crate::jobs::Job;
use crate::face::{DetectorKind, FacePipeline};
use crate::models::{ModelFiles, ModelKind, open_model, weights};

/// What to fine-tune, on what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneSpec {
    /// The project file (`<media>.auscope`).
    pub project: PathBuf,
    pub media: PathBuf,
    /// Whose corrections; None: every coder's (the latest edit of a label wins).
    pub coder: Option<String>,
    pub kind: ModelKind,
    /// The base weights; None: the shipped demo weights.
    pub weights: Option<PathBuf>,
    pub epochs: usize,
    /// Fraction of the corrected faces held out for before/after F1.
    pub held_out: f32,
    /// Teacher pseudo-labels on every Nth uncorrected frame (None: none).
    pub teacher_every: Option<usize>,
    pub seed: u64,
    pub detector: DetectorKind,
}

impl FinetuneSpec {
    /// The defaults for a project: all coders, 5 epochs, 20 % held out.
    pub fn new(project: PathBuf, media: PathBuf, kind: ModelKind, weights: Option<PathBuf>) -> Self {
        FinetuneSpec { project, media, coder: None, kind, weights, epochs: 5, held_out: 0.2, teacher_every: None, seed: 0, detector: DetectorKind::default() }
    }
}

/// A fine-tuned model, as saved in its folder's finetune.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub name: String,
    #[serde(skip)]
    pub dir: PathBuf,
    pub model: ModelKind,
    /// The weights it started from.
    pub base: String,
    pub coder: Option<String>,
    pub created_ms: i64,
    pub epochs: usize,
    pub train_faces: usize,
    pub teacher_faces: usize,
    pub held_out_faces: usize,
    /// The base model and this version on the held-out corrected faces.
    pub before: Evaluation,
    pub after: Evaluation,
}

impl Version {
    pub fn weights(&self) -> PathBuf {
        RunFiles { dir: self.dir.clone() }.weights()
    }
}

#[derive(Debug, Clone)]
pub enum FinetuneEvent {
    /// What the job is doing, in words.
    Status(String),
    Preparing { done: usize, total: usize },
    /// The trainer's progress (never its `Finished`).
    Train(TrainEvent),
    Finished(FinetuneOutcome),
}

#[derive(Debug, Clone)]
pub enum FinetuneOutcome {
    Done(Box<Version>),
    Cancelled,
    Failed(String),
}

/// `<project>-models/<model>/`.
pub fn versions_dir(project: &Path, kind: ModelKind) -> PathBuf {
    let mut name = project.file_name().unwrap_or_default().to_os_string();
    name.push("-models");
    project.with_file_name(name).join(kind.name())
}

/// The saved versions of `kind`, oldest first. Folders without a readable
/// finetune.json (an interrupted run) are left out.
pub fn list_versions(project: &Path, kind: ModelKind) -> Vec<Version> {
    let dir = versions_dir(project, kind);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut out: Vec<(u32, Version)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u32 = name.strip_prefix('v')?.parse().ok()?;
            let text = std::fs::read_to_string(e.path().join("finetune.json")).ok()?;
            let mut v: Version = serde_json::from_str(&text).ok()?;
            v.dir = e.path();
            v.name = name;
            Some((n, v))
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    out.into_iter().map(|(_, v)| v).collect()
}

fn adopted_key(kind: ModelKind) -> String {
    format!("model.{}.adopted", kind.name())
}

fn history_key(kind: ModelKind) -> String {
    format!("model.{}.history", kind.name())
}

/// The adopted version of `kind` for this project (None: the base weights).
pub fn adopted(store: &Store, kind: ModelKind) -> Result<Option<String>, CoreError> {
    Ok(store.meta(&adopted_key(kind))?.filter(|v| !v.is_empty()))
}

/// The adopted version's weights, if it still exists.
pub fn adopted_weights(store: &Store, kind: ModelKind) -> Result<Option<PathBuf>, CoreError> {
    let Some(name) = adopted(store, kind)? else { return Ok(None) };
    Ok(list_versions(store.path(), kind).into_iter().find(|v| v.name == name).map(|v| v.weights()))
}

/// Adopt `version` (None: back to the base weights); the previous choice
/// goes on the history that [`roll_back`] returns to.
pub fn adopt(store: &mut Store, kind: ModelKind, version: Option<&str>) -> Result<(), CoreError> {
    if let Some(v) = version
        && !list_versions(store.path(), kind).iter().any(|x| x.name == v)
    {
        return Err(CoreError::Training(format!("no version {v} of {} in this project", kind.name())));
    }
    let mut history = history(store, kind)?;
    history.push(adopted(store, kind)?.unwrap_or_default());
    store.set_meta(&history_key(kind), &serde_json::to_string(&history).unwrap_or_default())?;
    store.set_meta(&adopted_key(kind), version.unwrap_or(""))
}

fn history(store: &Store, kind: ModelKind) -> Result<Vec<String>, CoreError> {
    Ok(store.meta(&history_key(kind))?.and_then(|h| serde_json::from_str(&h).ok()).unwrap_or_default())
}

/// Return to what was adopted before the current choice; returns it (None:
/// the base weights). With no history, the base weights.
pub fn roll_back(store: &mut Store, kind: ModelKind) -> Result<Option<String>, CoreError> {
    let mut history = history(store, kind)?;
    let previous = history.pop().unwrap_or_default();
    store.set_meta(&history_key(kind), &serde_json::to_string(&history).unwrap_or_default())?;
    store.set_meta(&adopted_key(kind), &previous)?;
    Ok(Some(previous).filter(|p| !p.is_empty()))
}

/// Split corrected faces (in frame order) into training and held-out keys.
pub fn split(keys: &[(usize, usize)], held_out: f32) -> Result<(Vec<(usize, usize)>, Vec<(usize, usize)>), CoreError> {
    if keys.len() < 2 {
        return Err(CoreError::Training(format!(
            "fine-tuning needs at least 2 corrected faces (one to train on, one to test on); this project has {}. Correct more frames first",
            keys.len()
        )));
    }
    let hold = ((keys.len() as f32 * held_out.clamp(0.0, 0.9)).round() as usize).clamp(1, keys.len() - 1);
    let (train, test) = keys.split_at(keys.len() - hold);
    Ok((train.to_vec(), test.to_vec()))
}

/// Per-AU metrics over the labels the coder gave only (`mask`); AUs the
/// coder did not label on these faces are left out.
pub fn masked_evaluation(aus: &[String], probs: &[Vec<f32>], labels: &[Vec<f32>], mask: &[Vec<bool>]) -> Evaluation {
    let mut e = evaluate(aus, probs, labels);
    e.per_au = (0..aus.len())
        .filter_map(|j| {
            let rows: Vec<usize> = (0..probs.len()).filter(|&i| mask[i][j]).collect();
            if rows.is_empty() {
                return None;
            }
            let p: Vec<Vec<f32>> = rows.iter().map(|&i| vec![probs[i][j]]).collect();
            let l: Vec<Vec<f32>> = rows.iter().map(|&i| vec![labels[i][j]]).collect();
            evaluate(&aus[j..=j], &p, &l).per_au.into_iter().next()
        })
        .collect();
    e.mean_f1 = e.per_au.iter().map(|m| m.f1).sum::<f32>() / e.per_au.len().max(1) as f32;
    let aucs: Vec<f32> = e.per_au.iter().filter_map(|m| m.auc).collect();
    e.mean_auc = (!aucs.is_empty()).then(|| aucs.iter().sum::<f32>() / aucs.len() as f32);
    e
}

/// A fine-tune on its own named thread.
/// A fine-tune on its own thread (`auscope-finetune`), with its events.
pub type FinetuneJob = Job<FinetuneEvent>;

impl Job<FinetuneEvent> {
    pub fn spawn(spec: FinetuneSpec, device: Device) -> std::io::Result<Self> {
        Job::start("auscope-finetune", 256, move |tx, cancel| {
            let outcome = match run(&spec, &device, tx, cancel) {
                Ok(o) => o,
                Err(e) => FinetuneOutcome::Failed(e.to_string()),
            };
            let _ = tx.send(FinetuneEvent::Finished(outcome));
        })
    }
}

/// Faces of `samples` prepared at `size`, reporting progress.
fn prepare_faces(data: &Dataset, size: usize, engine: &Engine, tx: &SyncSender<FinetuneEvent>, cancel: &AtomicBool) -> Result<Option<Vec<Prepared>>, CoreError> {
    let all: Vec<usize> = (0..data.samples.len()).collect();
    let mut stopped = false;
    let (faces, _) = prepare(data, &all, size, engine, &mut |done, total| {
        stopped |= cancel.load(Ordering::Relaxed);
        let _ = tx.try_send(FinetuneEvent::Preparing { done, total });
    })?;
    Ok((!stopped).then_some(faces))
}

fn run(spec: &FinetuneSpec, device: &Device, tx: &SyncSender<FinetuneEvent>, cancel: &AtomicBool) -> Result<FinetuneOutcome, CoreError> {
    let status = |s: String| {
        let _ = tx.send(FinetuneEvent::Status(s));
    };
    let base = open_model(spec.kind, ModelFiles { weights: spec.weights.as_deref(), ..ModelFiles::default() }, device)?;
    let aus = base.spec.aus.clone();
    let store = Store::open(&spec.project)?;
    let corrected = store.coded_faces(&aus, spec.coder.as_deref())?;
    drop(store);
    let keys: Vec<(usize, usize)> = corrected.keys().copied().collect();
    let (train_keys, test_keys) = split(&keys, spec.held_out)?;
    status(format!("{} corrected faces: {} to train on, {} held out", keys.len(), train_keys.len(), test_keys.len()));

    let engine = Engine::faces_only(FacePipeline::new(spec.detector, device)?);
    let sample = |&(frame, face): &(usize, usize)| Sample { media: spec.media.clone(), frame, subject: "project".into(), labels: vec![0.0; aus.len()], face: Some(face) };
    let data = Dataset { aus: aus.clone(), samples: train_keys.iter().chain(&test_keys).map(sample).collect(), skipped: 0 };
    let size = base.spec.input().size;
    let Some(mut faces) = prepare_faces(&data, size, &engine, tx, cancel)? else { return Ok(FinetuneOutcome::Cancelled) };
    // Labels: the coder's where given, else the base model's decision.
    let base_probs = predict_prepared(&base, &faces, 16, device)?;
    let mut masks = Vec::with_capacity(faces.len());
    for (f, probs) in faces.iter_mut().zip(&base_probs) {
        let s = &data.samples[f.sample];
        let coded = &corrected[&(s.frame, s.face.unwrap_or(0))];
        f.labels = (0..aus.len()).map(|j| coded.get(&j).map_or(probs[j] >= 0.5, |&o| o) as u8 as f32).collect();
        masks.push((0..aus.len()).map(|j| coded.contains_key(&j)).collect::<Vec<bool>>());
    }
    let n_train = train_keys.len();
    let is_test: Vec<bool> = faces.iter().map(|f| f.sample >= n_train).collect();
    let pick = |want: bool| -> Vec<usize> { (0..faces.len()).filter(|&i| is_test[i] == want).collect() };
    let (train_idx, test_idx) = (pick(false), pick(true));
    if train_idx.is_empty() || test_idx.is_empty() {
        return Err(CoreError::Training("no face was found in the corrected frames of one side of the split; correct frames where the face is detected".into()));
    }
    let rows = |idx: &[usize], v: &dyn Fn(usize) -> Vec<f32>| -> Vec<Vec<f32>> { idx.iter().map(|&i| v(i)).collect() };
    let test_labels = rows(&test_idx, &|i| faces[i].labels.clone());
    let test_masks: Vec<Vec<bool>> = test_idx.iter().map(|&i| masks[i].clone()).collect();
    let before = masked_evaluation(&aus, &rows(&test_idx, &|i| base_probs[i].clone()), &test_labels, &test_masks);

    let mut train: Vec<Prepared> = Vec::new();
    let mut test: Vec<Prepared> = Vec::new();
    for (i, f) in faces.into_iter().enumerate() {
        if is_test[i] { test.push(f) } else { train.push(f) }
    }
    let mut teacher_faces = 0;
    if let Some(every) = spec.teacher_every {
        status("teacher pseudo-labels for the frames not corrected".into());
        let mut extra = pseudo_label(std::slice::from_ref(&spec.media), every, &aus, &engine)?;
        extra.samples.retain(|s| !keys.iter().any(|k| k.0 == s.frame));
        let Some(more) = prepare_faces(&extra, size, &engine, tx, cancel)? else { return Ok(FinetuneOutcome::Cancelled) };
        teacher_faces = more.len();
        train.extend(more);
    }

    // Train into a partial folder; it becomes v<N> only when complete.
    let root = versions_dir(&spec.project, spec.kind);
    std::fs::create_dir_all(&root).map_err(|e| io_err(&root, e))?;
    let next = list_versions(&spec.project, spec.kind).len() + 1;
    let name = (next..).map(|n| format!("v{n}")).find(|n| !root.join(n).exists()).unwrap_or_default();
    let partial = root.join(format!("{name}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let mut params = TrainParams::paper(&base.spec);
    params.epochs = spec.epochs.max(1);
    params.seed = spec.seed;
    params.batch_size = params.batch_size.min(train.len()).max(1);
    // The step decay of FAN-Trans is for 12-epoch runs from scratch.
    params.lr_step_epochs = 0;
    let trained_from = base.source.clone();
    let held_out_faces = test.len();
    let held = test.clone();
    let train_faces = train.len() - teacher_faces;
    let trainer = Trainer {
        model: weights::duplicate(&base, device)?,
        params,
        train,
        test,
        out: RunFiles { dir: partial.clone() },
        resume: false,
        device: device.clone(),
        aux: Auxiliary::default(),
    };
    status(format!("training {} for {} epochs", spec.kind.title(), spec.epochs.max(1)));
    let outcome = {
        let job = TrainJob::spawn(trainer).map_err(|e| CoreError::Training(format!("could not start training: {e}")))?;
        loop {
            if cancel.load(Ordering::Relaxed) {
                job.cancel();
            }
            match job.events.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(TrainEvent::Finished(o)) => {
                    job.join();
                    break o;
                }
                Ok(ev @ TrainEvent::Step { .. }) => {
                    let _ = tx.try_send(FinetuneEvent::Train(ev));
                }
                Ok(ev) => {
                    let _ = tx.send(FinetuneEvent::Train(ev));
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break TrainOutcome::Failed("the training thread stopped without a result".into()),
            }
        }
    };
    let weights_path = match outcome {
        TrainOutcome::Done { weights, .. } => weights,
        TrainOutcome::Cancelled { .. } => {
            let _ = std::fs::remove_dir_all(&partial);
            return Ok(FinetuneOutcome::Cancelled);
        }
        TrainOutcome::Diverged { epoch, step, loss, .. } => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(CoreError::Training(format!("training diverged (epoch {} step {}, loss {loss}); no version was saved", epoch + 1, step + 1)));
        }
        TrainOutcome::Failed(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(CoreError::Training(e));
        }
    };
    status("scoring the new version on the held-out faces".into());
    let tuned = weights::load(&weights_path, Some(spec.kind), device)?;
    let after = masked_evaluation(&aus, &predict_prepared(&tuned, &held, 16, device)?, &test_labels, &test_masks);
    let version = Version {
        name: name.clone(),
        dir: root.join(&name),
        model: spec.kind,
        base: trained_from,
        coder: spec.coder.clone(),
        created_ms: now_ms(),
        epochs: spec.epochs.max(1),
        train_faces,
        teacher_faces,
        held_out_faces,
        before,
        after,
    };
    let json = serde_json::to_string_pretty(&version).map_err(|e| CoreError::Training(e.to_string()))?;
    let meta = partial.join("finetune.json");
    std::fs::write(&meta, json).map_err(|e| io_err(&meta, e))?;
    // The optimiser and resume state are of no use once the version is done.
    for f in ["optimizer.bpk", "state.json"] {
        let _ = std::fs::remove_file(partial.join(f));
    }
    std::fs::rename(&partial, &version.dir).map_err(|e| io_err(&version.dir, e))?;
    Ok(FinetuneOutcome::Done(Box::new(version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_holds_out_the_last_corrected_faces() {
        let keys: Vec<(usize, usize)> = (0..10).map(|f| (f * 3, 0)).collect();
        let (train, test) = split(&keys, 0.2).expect("split");
        assert_eq!(test, vec![(24, 0), (27, 0)]);
        assert_eq!(train.len(), 8);
        let (train, test) = split(&keys[..2], 0.2).expect("two faces");
        assert_eq!((train.len(), test.len()), (1, 1));
        let err = split(&keys[..1], 0.2).expect_err("one face is too few").to_string();
        assert!(err.contains("at least 2 corrected faces"), "{err}");
    }

    #[test]
    fn masked_evaluation_counts_only_coded_labels() {
        let aus = vec!["AU06".to_string(), "AU12".to_string()];
        let probs = vec![vec![0.9, 0.9], vec![0.1, 0.9], vec![0.8, 0.2]];
        let labels = vec![vec![1.0, 1.0], vec![0.0, 0.0], vec![0.0, 0.0]];
        // AU06 coded on all three; AU12 only on the first (a hit).
        let mask = vec![vec![true, true], vec![true, false], vec![true, false]];
        let e = masked_evaluation(&aus, &probs, &labels, &mask);
        assert_eq!(e.per_au.len(), 2);
        // AU06: tp 1, fp 1 -> F1 2/3; AU12: tp 1 -> 1.
        assert!((e.per_au[0].f1 - 2.0 / 3.0).abs() < 1e-6);
        assert!((e.per_au[1].f1 - 1.0).abs() < 1e-6);
        assert!((e.mean_f1 - 5.0 / 6.0).abs() < 1e-6);
        let none = masked_evaluation(&aus, &probs, &labels, &[vec![true, false], vec![false, false], vec![true, false]]);
        assert_eq!(none.per_au.iter().map(|m| m.au.as_str()).collect::<Vec<_>>(), vec!["AU06"]);
    }
}
