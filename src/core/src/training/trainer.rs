//! The trainer: one architecture's paper procedure on burn autodiff, as a
//! job with progress events, cancellation, atomic checkpoints, resume, and a
//! stop on NaN or divergence that keeps the last good weights.
//!
//! Procedures (docs/training.md):
//! - FAN-Trans: frozen FAN; weighted BCE on one-to-one, one-to-many and the
//!   ensemble + 0.2 KL(ensemble || branch) (eqs. 7-10); AdamW, no weight
//!   decay, lr 1e-4 decayed every 4 epochs.
//! - TransAU: 0.33 E_att + 0.33 E_infer (WCE + weighted Tversky, soft-balance
//!   weights) + 0.15 Huber attention-map loss + 0.15 centre contrastive loss
//!   with centres updated after each mini-batch (eq. 1); Adam lr 1e-4.
//! - PIAP stage 3: alpha L_AU + (1 - alpha) L_PI (eq. 3) with the predefined
//!   PI maps as targets, plus L_AP (eq. 4) when the model has its AP encoder
//!   (eq. 6 weights alpha, beta, gamma below).
//! - LRP-ARL-FF: BCE + circle loss (eq. 3), one stage.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use burn::module::Module;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::data::{Augment, Rng, Transform};
use super::losses;
use super::metrics::{Evaluation, evaluate};
use super::prepare::Prepared;
use super::regions::region_maps;
use crate::error::CoreError;
use crate::models::blocks::Trace;
use crate::models::{AuModel, ModelSpec, Net, weights};

/// Optimiser of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// FAN-Trans: AdamW without weight decay.
    Adamw,
    /// TransAU, PIAP, LRP-ARL-FF.
    Adam,
}

/// Hyper-parameters of one run (saved next to its weights as run.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Multiply lr by `lr_gamma` every `lr_step_epochs` (0: never).
    pub lr_step_epochs: usize,
    pub lr_gamma: f64,
    pub optimizer: Optimizer,
    pub augment: Augment,
    pub seed: u64,
    /// FAN-Trans: keep the FAN frozen (the paper does).
    pub freeze_backbone: bool,
    /// FAN-Trans OKD weight (eq. 10).
    pub okd_lambda: f32,
    /// PIAP eq. 6: weights of L_AU, L_PI, L_AP (L_AP only with an AP encoder).
    pub piap_weights: [f32; 3],
    /// Stop when a step's loss exceeds this multiple of the first epoch's mean.
    pub divergence_factor: f32,
}

impl TrainParams {
    /// The paper's procedure for an architecture.
    pub fn paper(spec: &ModelSpec) -> Self {
        use crate::models::ModelKind::*;
        let kind = spec.kind();
        Self {
            epochs: match kind { FanTrans => 12, Transau => 20, _ => 12 },
            batch_size: 16,
            lr: 1e-4,
            lr_step_epochs: if kind == FanTrans { 4 } else { 0 },
            lr_gamma: 0.1,
            optimizer: if kind == FanTrans { Optimizer::Adamw } else { Optimizer::Adam },
            augment: Augment::paper(),
            seed: 0,
            freeze_backbone: true,
            okd_lambda: 0.2,
            // Not given by PIAP-DF; L_AU dominates, as its eq. 3 alpha does.
            piap_weights: [0.6, 0.3, 0.1],
            divergence_factor: 50.0,
        }
    }
}

/// What the job reports; `Step` events are dropped when the receiver lags,
/// all others are delivered.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    Started { steps_per_epoch: usize, epochs: usize, resumed_from: usize },
    Step { epoch: usize, step: usize, loss: f32 },
    Epoch { epoch: usize, train_loss: f32, eval: Option<Evaluation> },
    Checkpoint(PathBuf),
    Finished(TrainOutcome),
}

#[derive(Debug, Clone)]
pub enum TrainOutcome {
    Done { epochs: usize, weights: PathBuf, eval: Option<Evaluation> },
    Cancelled { weights: Option<PathBuf> },
    /// The loss went NaN or diverged; `weights` are the last good ones.
    Diverged { epoch: usize, step: usize, loss: f32, weights: Option<PathBuf> },
    Failed(String),
}

/// Resume state written with each checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    epochs_done: usize,
    rng: Rng,
    first_epoch_loss: Option<f32>,
    centers: Option<Vec<f32>>,
}

/// A run's files in its output folder.
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn weights(&self) -> PathBuf { self.dir.join("model.bpk") }
    fn optim(&self) -> PathBuf { self.dir.join("optimizer.bpk") }
    fn state(&self) -> PathBuf { self.dir.join("state.json") }
    pub fn run(&self) -> PathBuf { self.dir.join("run.json") }
    pub fn metrics(&self) -> PathBuf { self.dir.join("metrics.json") }
}

/// Write via a temporary file and rename, so a crash never leaves a torn file.
fn atomic_write(path: &Path, write: impl FnOnce(&Path) -> Result<(), CoreError>) -> Result<(), CoreError> {
    let tmp = path.with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| CoreError::Io { path: path.to_path_buf(), reason: e.to_string() })
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> CoreError {
    CoreError::Io { path: path.to_path_buf(), reason: e.to_string() }
}

/// Batches of model inputs (plus per-face landmarks) from prepared faces.
fn batch(model: &ModelSpec, items: &[&Prepared], transforms: &[Transform], device: &Device) -> Result<(Tensor<4>, Tensor<2>, Vec<Vec<[f32; 2]>>), CoreError> {
    let input = model.input();
    let mut crops = Vec::with_capacity(items.len());
    let mut lms = Vec::with_capacity(items.len());
    for (p, t) in items.iter().zip(transforms) {
        let (buf, lm) = p.view(input.size, t);
        crops.push(crate::frame::to_rgb_image(&buf, input.size));
        lms.push(lm);
    }
    let x = input.to_tensor(&crops, device)?;
    let n = model.aus.len();
    let y: Vec<f32> = items.iter().flat_map(|p| p.labels.iter().copied()).collect();
    let y = Tensor::<2>::from_data(TensorData::new(y, [items.len(), n]), device);
    Ok((x, y, lms))
}

/// Class statistics of the training labels.
struct ClassStats {
    occurrence: Vec<f32>,
    soft_balance: Vec<f32>,
}

impl ClassStats {
    fn new(train: &[Prepared]) -> Self {
        let labels: Vec<Vec<f32>> = train.iter().map(|p| p.labels.clone()).collect();
        let rates = losses::positive_rates(&labels);
        let counts: Vec<f32> = rates.iter().map(|r| r * labels.len() as f32).collect();
        Self { occurrence: losses::occurrence_weights(&rates), soft_balance: losses::soft_balance_weights(&counts, 0.7) }
    }
}

/// The procedure's loss for one batch. `centers` is TransAU's per-AU centre
/// matrix [N, D], updated in place after the step.
#[allow(clippy::too_many_arguments)]
fn batch_loss(
    net: &Net,
    spec: &ModelSpec,
    params: &TrainParams,
    stats: &ClassStats,
    x: Tensor<4>,
    y: Tensor<2>,
    items: &[&Prepared],
    landmarks: &[Vec<[f32; 2]>],
    centers: &mut Option<Tensor<2>>,
) -> (Tensor<1>, Option<(Tensor<3>, Tensor<2>)>) {
    let mut trace = Trace::none();
    let device = x.device();
    match net {
        Net::FanTrans(m) => {
            let o = m.forward_all(x, &mut trace);
            (losses::fan_trans_loss(o.one_to_one, o.one_to_many, o.ensemble, y, &stats.occurrence, params.okd_lambda), None)
        }
        Net::Transau(m) => {
            let o = m.forward_all(x, &mut trace);
            let [b, n, h, _] = o.attention_maps.dims();
            // Ground-truth maps: sigma 3 px at the 224 px input, in map pixels.
            // Labels come from the host copy, not a read-back of `y`.
            let sigma = 3.0 * h as f32 / spec.input().size as f32;
            let gt: Vec<f32> = landmarks
                .iter()
                .zip(items)
                .flat_map(|(lm, p)| region_maps(&spec.aus, lm, h, sigma.max(0.5), Some(&p.labels)))
                .collect();
            let gt = Tensor::<4>::from_data(TensorData::new(gt, [b, n, h, h]), &device);
            let d = o.embeddings.dims()[2];
            let c = centers.get_or_insert_with(|| Tensor::<2>::zeros([n, d], &device.clone().inner())).clone();
            let loss = losses::wce_tversky(o.attention_logits, y.clone(), &stats.soft_balance) * 0.33
                + losses::wce_tversky(o.logits, y.clone(), &stats.soft_balance) * 0.33
                + losses::huber(o.attention_maps, gt, 0.5) * 0.15
                + losses::center_contrastive(o.embeddings.clone(), c.autodiff(), y.clone()) * 0.15;
            (loss, Some((o.embeddings, y)))
        }
        Net::Piap(m) => {
            let ap = m.ap_features(x.clone());
            let o = m.forward_all(x, &mut trace);
            let [b, n, h, w] = o.pi_logits.dims();
            let side = h.max(w);
            let target: Vec<f32> = landmarks.iter().flat_map(|lm| region_maps(&spec.aus, lm, side, 0.0, None)).collect();
            let target = Tensor::<4>::from_data(TensorData::new(target, [b, n, side, side]), &device);
            let [wa, wp, wg] = params.piap_weights;
            let l_au = losses::weighted_bce(o.logits, y, &vec![1.0; n]);
            let l_pi = losses::map_bce(o.pi_logits, target);
            let loss = match ap {
                Some(vp) => l_au * wa + l_pi * wp + losses::ap_orthogonality(vp.detach(), o.features) * wg,
                None => l_au * (wa / (wa + wp)) + l_pi * (wp / (wa + wp)),
            };
            (loss, None)
        }
        Net::LrpArlFf(m) => {
            let o = m.forward_all(x, &mut trace);
            (losses::bce_circle(o.logits, y), None)
        }
    }
}

/// Probabilities of the model on prepared faces (no augmentation).
pub fn predict_prepared(model: &AuModel, items: &[Prepared], batch_size: usize, device: &Device) -> Result<Vec<Vec<f32>>, CoreError> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(batch_size.max(1)) {
        let refs: Vec<&Prepared> = chunk.iter().collect();
        let (x, _, _) = batch(&model.spec, &refs, &vec![Transform::IDENTITY; refs.len()], device)?;
        let probs = model.forward(x, &mut Trace::none()).probs.into_data().try_to_vec::<f32>().map_err(|e| CoreError::Training(format!("{e:?}")))?;
        out.extend(probs.chunks(model.spec.aus.len()).map(|c| c.to_vec()));
    }
    Ok(out)
}

/// Evaluate a model on prepared faces against their labels.
pub fn evaluate_prepared(model: &AuModel, items: &[Prepared], batch_size: usize, device: &Device) -> Result<Evaluation, CoreError> {
    let probs = predict_prepared(model, items, batch_size, device)?;
    let labels: Vec<Vec<f32>> = items.iter().map(|p| p.labels.clone()).collect();
    Ok(evaluate(&model.spec.aus, &probs, &labels))
}

/// A training run, ready to go.
pub struct Trainer {
    pub model: AuModel,
    pub params: TrainParams,
    pub train: Vec<Prepared>,
    pub test: Vec<Prepared>,
    pub out: RunFiles,
    /// Continue from the checkpoint in `out` if there is one.
    pub resume: bool,
    pub device: Device,
}

fn send(tx: &SyncSender<TrainEvent>, ev: TrainEvent) {
    let _ = tx.send(ev);
}

impl Trainer {
    /// Run to the end, reporting on `tx` and checking `cancel` between steps.
    pub fn run(self, tx: &SyncSender<TrainEvent>, cancel: &AtomicBool) -> TrainOutcome {
        match self.run_inner(tx, cancel) {
            Ok(o) => o,
            Err(e) => TrainOutcome::Failed(e.to_string()),
        }
    }

    fn run_inner(self, tx: &SyncSender<TrainEvent>, cancel: &AtomicBool) -> Result<TrainOutcome, CoreError> {
        let Trainer { model, params, train, test, out, resume, device } = self;
        if train.is_empty() {
            return Err(CoreError::Training("no training faces (every sample was skipped)".into()));
        }
        std::fs::create_dir_all(&out.dir).map_err(|e| io_err(&out.dir, e))?;
        let run_json = serde_json::json!({ "model": model.spec, "params": params, "train_faces": train.len(), "test_faces": test.len() });
        atomic_write(&out.run(), |p| std::fs::write(p, serde_json::to_string_pretty(&run_json).unwrap_or_default()).map_err(|e| io_err(p, e)))?;

        let ad = device.clone().autodiff();
        let spec = model.spec.clone();
        let mut state = State { epochs_done: 0, rng: Rng(params.seed), first_epoch_loss: None, centers: None };
        let mut net = model.net;
        let mut optim: ModuleOptimizer = match params.optimizer {
            Optimizer::Adamw => AdamWConfig::new().with_weight_decay(0.0).init(),
            Optimizer::Adam => AdamConfig::new().init(),
        };
        let mut resumed_from = 0;
        if resume && out.state().exists() && out.weights().exists() {
            let text = std::fs::read_to_string(out.state()).map_err(|e| io_err(&out.state(), e))?;
            state = serde_json::from_str(&text).map_err(|e| CoreError::Training(format!("{}: {e}", out.state().display())))?;
            let saved = weights::load(&out.weights(), Some(spec.kind()), &device)?;
            if saved.spec != spec {
                return Err(CoreError::Training(format!("{} holds a different model configuration; use a new output folder", out.dir.display())));
            }
            net = saved.net;
            if out.optim().exists() {
                optim = optim.load(out.optim()).map_err(|e| CoreError::Training(format!("{}: {e}", out.optim().display())))?;
            }
            resumed_from = state.epochs_done;
        }
        // `train()` turns autodiff and the training flags (BatchNorm batch
        // statistics) on; a fork alone keeps the module as it was.
        let mut net = net.fork(&ad).train();
        if let (Net::FanTrans(m), true) = (&mut net, params.freeze_backbone) {
            m.fan = m.fan.clone().freeze();
        }
        let stats = ClassStats::new(&train);
        let mut centers: Option<Tensor<2>> = state.centers.as_ref().map(|c| {
            let n = spec.aus.len();
            Tensor::<2>::from_data(TensorData::new(c.clone(), [n, c.len() / n]), &device)
        });
        let bs = params.batch_size.max(1);
        let steps_per_epoch = train.len().div_ceil(bs);
        send(tx, TrainEvent::Started { steps_per_epoch, epochs: params.epochs, resumed_from });
        let mut saved: Option<PathBuf> = out.weights().exists().then(|| out.weights());
        let mut last_eval = None;

        for epoch in state.epochs_done..params.epochs {
            let decays = if params.lr_step_epochs > 0 { epoch / params.lr_step_epochs } else { 0 };
            let lr = params.lr * params.lr_gamma.powi(decays as i32);
            let mut order: Vec<usize> = (0..train.len()).collect();
            state.rng.shuffle(&mut order);
            let mut total = 0.0f64;
            for (step, chunk) in order.chunks(bs).enumerate() {
                if cancel.load(Ordering::Relaxed) {
                    return Ok(TrainOutcome::Cancelled { weights: saved });
                }
                let items: Vec<&Prepared> = chunk.iter().map(|&i| &train[i]).collect();
                let transforms: Vec<Transform> = items.iter().map(|_| params.augment.draw(&mut state.rng)).collect();
                let (x, y, lms) = batch(&spec, &items, &transforms, &ad)?;
                let (loss, cc) = batch_loss(&net, &spec, &params, &stats, x, y, &items, &lms, &mut centers);
                let value = loss.clone().into_scalar::<f32>();
                let limit = state.first_epoch_loss.map(|f| f * params.divergence_factor);
                if !value.is_finite() || limit.is_some_and(|l| value > l) {
                    return Ok(TrainOutcome::Diverged { epoch, step, loss: value, weights: saved });
                }
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(lr, net, grads);
                if let (Some((emb, y)), Some(c)) = (cc, centers.as_mut()) {
                    *c = losses::update_centers(c.clone(), emb, y, 0.5);
                }
                total += value as f64;
                if let Err(TrySendError::Disconnected(_)) = tx.try_send(TrainEvent::Step { epoch, step, loss: value }) {
                    // Nobody listens any more: stop as if cancelled.
                    return Ok(TrainOutcome::Cancelled { weights: saved });
                }
            }
            let train_loss = (total / steps_per_epoch as f64) as f32;
            state.first_epoch_loss.get_or_insert(train_loss);
            state.epochs_done = epoch + 1;
            // Checkpoint: weights, optimizer, then state (the commit point).
            let current = AuModel { spec: spec.clone(), net: net.valid(), source: out.weights().display().to_string() };
            atomic_write(&out.weights(), |p| weights::save(&current, p))?;
            atomic_write(&out.optim(), |p| optim.save(p).map_err(|e| io_err(p, e)))?;
            state.centers = match &centers {
                Some(c) => Some(c.clone().into_data().try_to_vec::<f32>().map_err(|e| CoreError::Training(format!("{e:?}")))?),
                None => None,
            };
            atomic_write(&out.state(), |p| std::fs::write(p, serde_json::to_string(&state).unwrap_or_default()).map_err(|e| io_err(p, e)))?;
            saved = Some(out.weights());
            send(tx, TrainEvent::Checkpoint(out.weights()));
            let eval = if test.is_empty() { None } else { Some(evaluate_prepared(&current, &test, bs, &device)?) };
            if let Some(e) = &eval {
                atomic_write(&out.metrics(), |p| std::fs::write(p, serde_json::to_string_pretty(e).unwrap_or_default()).map_err(|err| io_err(p, err)))?;
            }
            last_eval = eval.clone();
            send(tx, TrainEvent::Epoch { epoch, train_loss, eval });
        }
        Ok(TrainOutcome::Done { epochs: params.epochs, weights: out.weights(), eval: last_eval })
    }
}

/// A trainer on its own named thread.
pub struct TrainJob {
    pub events: Receiver<TrainEvent>,
    cancel: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TrainJob {
    pub fn spawn(trainer: Trainer) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(256);
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let thread = std::thread::Builder::new().name("auscope-train".into()).spawn(move || {
            let outcome = trainer.run(&tx, &flag);
            send(&tx, TrainEvent::Finished(outcome));
        })?;
        Ok(Self { events: rx, cancel, thread: Some(thread) })
    }

    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Wait for the thread (after `Finished`).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
