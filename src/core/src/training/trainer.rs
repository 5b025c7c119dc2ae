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
//!
//! Other stages of a run ([`Stage`]): FAN distillation on the landmarker's
//! 68-point heat-maps; PIAP stage 1 (DW-UNet on the predefined PI maps) and
//! stage 2 (generator x grayscale -> 12-channel B1 on L_AU); PIAP-DF's
//! teacher/student loop with discrete feedback.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::data::{Augment, Rng, Transform};
use super::losses;
use super::metrics::{Evaluation, evaluate};
use super::prepare::Prepared;
use super::regions::region_maps;
use crate::error::CoreError;
use crate::files::{atomic_write, io_err};
use crate::jobs::Job;
use crate::models::blocks::Trace;
use crate::models::piap::PiapStage;
use crate::models::{ArchConfig, AuModel, ModelSpec, Net, weights};

/// Optimiser of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Optimizer {
    /// FAN-Trans: AdamW without weight decay.
    Adamw,
    /// TransAU, PIAP, LRP-ARL-FF.
    Adam,
}

/// What a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The architecture's AU procedure (PIAP: stage 3 on a stage-3 model,
    /// stage 2 on a stage-2 model).
    #[default]
    Au,
    /// FAN-Trans: train the FAN alone on 68 Gaussian heat-maps at the
    /// landmarker's points (our substitute for a face-alignment checkpoint).
    FanDistill,
    /// PIAP stage 1: the DW-UNet learns the predefined PI maps (eq. 1).
    PiGenerator,
    /// PIAP stage 2: PI maps x grayscale -> 12-channel B1 on L_AU (eq. 2);
    /// the generator keeps training.
    PiJoint,
    /// PIAP-DF: teacher/student with discrete feedback (eqs. 7-11).
    DiscreteFeedback,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Au => "au",
            Stage::FanDistill => "fan-distill",
            Stage::PiGenerator => "pi-generator",
            Stage::PiJoint => "pi-joint",
            Stage::DiscreteFeedback => "discrete-feedback",
        }
    }

    /// PIAP stages 1-2 train the stage-2 structure (with the generator).
    pub fn wants_piap_stage2(self) -> bool {
        matches!(self, Stage::PiGenerator | Stage::PiJoint)
    }

    /// Whether this stage can train this model.
    pub fn check(self, spec: &ModelSpec) -> Result<(), CoreError> {
        let ok = match (self, &spec.arch) {
            (Stage::Au, _) => true,
            (Stage::FanDistill, ArchConfig::FanTrans(_)) => true,
            (Stage::PiGenerator | Stage::PiJoint, ArchConfig::Piap(c)) => c.stage == PiapStage::Stage2,
            (Stage::DiscreteFeedback, ArchConfig::Piap(c)) => c.stage == PiapStage::Stage3,
            _ => false,
        };
        if ok {
            return Ok(());
        }
        let needs = match self {
            Stage::Au => unreachable!(),
            Stage::FanDistill => "a FAN-Trans model",
            Stage::PiGenerator | Stage::PiJoint => "a stage-2 PIAP model (with the DW-UNet generator)",
            Stage::DiscreteFeedback => "a stage-3 PIAP model",
        };
        Err(CoreError::Training(format!("stage '{}' needs {needs}, not a {} model", self.name(), spec.kind().title())))
    }
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
    #[serde(default)]
    pub stage: Stage,
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
            stage: Stage::Au,
        }
    }
}

/// What the job reports; `Step` events are dropped when the receiver lags,
/// all others are delivered.
#[derive(Debug, Clone)]
pub enum TrainEvent {
    Started { steps_per_epoch: usize, epochs: usize, resumed_from: usize },
    Step { epoch: usize, step: usize, loss: f32 },
    /// `eval`: AU metrics on the held-out faces; `score`: the stage's own
    /// held-out measure where it trains no AU head (FAN distillation, PIAP
    /// stage 1).
    Epoch { epoch: usize, train_loss: f32, eval: Option<Evaluation>, score: Option<StageScore> },
    Checkpoint(PathBuf),
    Finished(TrainOutcome),
}

/// A held-out measure of a stage without an AU head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StageScore {
    pub name: &'static str,
    pub value: f32,
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
    /// PIAP-DF's teacher and its optimiser.
    pub fn teacher(&self) -> PathBuf { self.dir.join("teacher.bpk") }
    fn teacher_optim(&self) -> PathBuf { self.dir.join("teacher-optimizer.bpk") }
    pub fn metrics(&self) -> PathBuf { self.dir.join("metrics.json") }
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

/// What a batch's loss needs besides the network and the batch.
struct LossContext<'a> {
    spec: &'a ModelSpec,
    params: &'a TrainParams,
    stats: &'a ClassStats,
    /// PIAP stage 3 and DF: the fixed stage-2 network whose generator maps
    /// are the PI targets (None: the predefined landmark regions).
    pi_generator: Option<&'a Net>,
}

/// Gaussian heat-maps (peak 1) at each landmark, [K * side * side] per face.
/// Sigma: 1 px of a 64 px map (the FAN papers' targets), at least 1 px.
fn heatmap_targets(landmarks: &[Vec<[f32; 2]>], k: usize, side: usize) -> Vec<f32> {
    let sigma = (side as f32 / 64.0).max(1.0);
    let mut out = Vec::with_capacity(landmarks.len() * k * side * side);
    for lm in landmarks {
        for j in 0..k {
            let [px, py] = lm.get(j).copied().unwrap_or([f32::NAN; 2]);
            let (cx, cy) = (px * side as f32 - 0.5, py * side as f32 - 0.5);
            for y in 0..side {
                for x in 0..side {
                    let d2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                    let v = (-d2 / (2.0 * sigma * sigma)).exp();
                    out.push(if v.is_finite() { v } else { 0.0 });
                }
            }
        }
    }
    out
}

/// The predefined PI maps (landmark regions, binary) of a batch, [B, N, side, side].
fn predefined_pi_maps(aus: &[String], landmarks: &[Vec<[f32; 2]>], side: usize, device: &Device) -> Tensor<4> {
    let maps: Vec<f32> = landmarks.iter().flat_map(|lm| region_maps(aus, lm, side, 0.0, None)).collect();
    Tensor::<4>::from_data(TensorData::new(maps, [landmarks.len(), aus.len(), side, side]), device)
}

/// The procedure's loss for one batch. `centers` is TransAU's per-AU centre
/// matrix [N, D], updated in place after the step.
fn batch_loss(
    net: &Net,
    ctx: &LossContext,
    x: Tensor<4>,
    y: Tensor<2>,
    items: &[&Prepared],
    landmarks: &[Vec<[f32; 2]>],
    centers: &mut Option<Tensor<2>>,
) -> (Tensor<1>, Option<(Tensor<3>, Tensor<2>)>) {
    let (spec, params, stats) = (ctx.spec, ctx.params, ctx.stats);
    let mut trace = Trace::none();
    let device = x.device();
    match net {
        Net::FanTrans(m) if params.stage == Stage::FanDistill => {
            let heatmaps = m.fan.forward(x, &mut trace).heatmaps;
            let [b, k, side, _] = heatmaps[0].dims();
            let target = Tensor::<4>::from_data(TensorData::new(heatmap_targets(landmarks, k, side), [b, k, side, side]), &device);
            // Intermediate supervision: every stack against the same targets,
            // summed (stacked hourglass, Newell et al.; FAN trains the same
            // way). Choice: the squared error is weighted 1 + 10 * target, so
            // the few pixels near a landmark are not drowned by the background;
            // with plain MSE a small FAN sits for hundreds of steps on all-zero
            // maps.
            let weight = target.clone().mul_scalar(10.0).add_scalar(1.0);
            let loss = heatmaps
                .into_iter()
                .map(|h| {
                    let d = h - target.clone();
                    (d.clone() * d * weight.clone()).mean()
                })
                .reduce(|a, b| a + b)
                .expect("FAN has at least one stack");
            (loss, None)
        }
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
        Net::Piap(m) if m.generator.is_some() => {
            let n = spec.aus.len();
            if params.stage == Stage::PiGenerator {
                // Stage 1 (eq. 1): the generator alone against the predefined maps.
                let logits = m.generator.as_ref().expect("checked").forward(x);
                let side = logits.dims()[2];
                (losses::map_bce(logits, predefined_pi_maps(&spec.aus, landmarks, side, &device)), None)
            } else {
                // Stage 2 (eq. 2): L_AU through generator and encoder both.
                let o = m.forward_all(x, &mut trace);
                (losses::weighted_bce(o.logits, y, &vec![1.0; n]), None)
            }
        }
        Net::Piap(m) => {
            let ap = m.ap_features(x.clone());
            let generated = match ctx.pi_generator {
                Some(Net::Piap(g)) => g.generator.as_ref().map(|g| sigmoid(g.forward(x.clone())).detach()),
                _ => None,
            };
            let o = m.forward_all(x, &mut trace);
            let [_, n, h, w] = o.pi_logits.dims();
            let target = generated.unwrap_or_else(|| predefined_pi_maps(&spec.aus, landmarks, h.max(w), &device));
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

/// A copy of the gradients of `module`'s parameters (the optimiser consumes
/// the original).
fn copy_grads(module: &Net, grads: &GradientsParams) -> GradientsParams {
    struct Copy<'a> {
        from: &'a GradientsParams,
        to: GradientsParams,
    }
    impl ModuleVisitor for Copy<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.from.get::<D>(param.id) {
                self.to.register::<D>(param.id, g);
            }
        }
    }
    let mut v = Copy { from: grads, to: GradientsParams::new() };
    module.visit(&mut v);
    v.to
}

/// The dot product of two gradients of `module`'s parameters (PIAP-DF eq. 10's
/// feedback g_xi',l . g_xi,u), summed over every parameter both hold.
fn grad_dot(module: &Net, a: &GradientsParams, b: &GradientsParams) -> f32 {
    struct Dot<'a> {
        a: &'a GradientsParams,
        b: &'a GradientsParams,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Dot<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let (Some(x), Some(y)) = (self.a.get::<D>(param.id), self.b.get::<D>(param.id)) {
                let d = (x * y).sum();
                self.sum = Some(match self.sum.take() {
                    Some(s) => s + d,
                    None => d,
                });
            }
        }
    }
    let mut v = Dot { a, b, sum: None };
    module.visit(&mut v);
    v.sum.map_or(0.0, |s| s.into_scalar::<f32>())
}

/// Hard pseudo-labels G_p from the teacher's current prediction. Choice:
/// thresholded at 0.5 (MPL samples them; PIAP-DF does not say).
fn pseudo_labels(teacher: &Net, x: Tensor<4>) -> Tensor<2> {
    teacher.forward(x, &mut Trace::none()).probs.detach().greater_equal_elem(0.5).float()
}

/// Unaugmented batches of `items` (model inputs and crop-space landmarks),
/// for evaluation.
fn plain_batches<'a>(
    spec: &'a ModelSpec,
    items: &'a [Prepared],
    bs: usize,
    device: &'a Device,
) -> impl Iterator<Item = Result<(Tensor<4>, Vec<Vec<[f32; 2]>>), CoreError>> + 'a {
    items.chunks(bs.max(1)).map(move |chunk| {
        let refs: Vec<&Prepared> = chunk.iter().collect();
        batch(spec, &refs, &vec![Transform::IDENTITY; refs.len()], device).map(|(x, _, lms)| (x, lms))
    })
}

/// FAN distillation's held-out measure: mean distance of each heat-map's
/// arg-max to its landmark, in % of the crop side.
fn landmark_error(net: &Net, spec: &ModelSpec, items: &[Prepared], bs: usize, device: &Device) -> Result<Option<StageScore>, CoreError> {
    let Net::FanTrans(m) = net else { return Ok(None) };
    let (mut total, mut count) = (0.0f64, 0usize);
    for b in plain_batches(spec, items, bs, device) {
        let (x, lms) = b?;
        let hm = m.fan.forward(x, &mut Trace::none()).heatmaps.pop().expect("FAN has at least one stack");
        let [b, k, side, _] = hm.dims();
        let arg = hm.reshape([b, k, side * side]).argmax(2).into_data().convert::<i64>().try_to_vec::<i64>().map_err(|e| CoreError::Training(format!("{e:?}")))?;
        for (i, lm) in lms.iter().enumerate() {
            for (j, p) in lm.iter().enumerate().take(k) {
                let a = arg[i * k + j] as usize;
                let (x, y) = (((a % side) as f32 + 0.5) / side as f32, ((a / side) as f32 + 0.5) / side as f32);
                total += (((x - p[0]).powi(2) + (y - p[1]).powi(2)).sqrt() * 100.0) as f64;
                count += 1;
            }
        }
    }
    Ok((count > 0).then(|| StageScore { name: "landmark error (% of crop)", value: (total / count as f64) as f32 }))
}

/// PIAP stage 1's held-out measure: mean IoU of the generator's maps (at 0.5)
/// with the predefined maps, in %.
fn pi_map_iou(net: &Net, spec: &ModelSpec, items: &[Prepared], bs: usize, device: &Device) -> Result<Option<StageScore>, CoreError> {
    let Net::Piap(m) = net else { return Ok(None) };
    let Some(g) = &m.generator else { return Ok(None) };
    let (mut total, mut count) = (0.0f64, 0usize);
    for b in plain_batches(spec, items, bs, device) {
        let (x, lms) = b?;
        let pred = sigmoid(g.forward(x)).into_data().try_to_vec::<f32>().map_err(|e| CoreError::Training(format!("{e:?}")))?;
        let n = spec.aus.len();
        let side = ((pred.len() / lms.len() / n) as f64).sqrt() as usize;
        for (i, lm) in lms.iter().enumerate() {
            let target = region_maps(&spec.aus, lm, side, 0.0, None);
            for a in 0..n {
                let off = (i * n + a) * side * side;
                let (mut inter, mut union) = (0usize, 0usize);
                for (p, t) in pred[off..off + side * side].iter().zip(&target[a * side * side..(a + 1) * side * side]) {
                    let (p, t) = (*p >= 0.5, *t >= 0.5);
                    inter += (p && t) as usize;
                    union += (p || t) as usize;
                }
                if union > 0 {
                    total += inter as f64 / union as f64 * 100.0;
                    count += 1;
                }
            }
        }
    }
    Ok((count > 0).then(|| StageScore { name: "PI-map IoU (%)", value: (total / count as f64) as f32 }))
}

/// Probabilities of the model on prepared faces (no augmentation).
pub fn predict_prepared(model: &AuModel, items: &[Prepared], batch_size: usize, device: &Device) -> Result<Vec<Vec<f32>>, CoreError> {
    let mut out = Vec::with_capacity(items.len());
    for b in plain_batches(&model.spec, items, batch_size, device) {
        let (x, _) = b?;
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

/// What some stages need besides the labelled faces.
#[derive(Default)]
pub struct Auxiliary {
    /// PIAP stage 3 and DF: a trained stage-2 PIAP whose generator gives the
    /// PI targets (PI Generator 1). None: the predefined landmark regions.
    pub pi_generator: Option<AuModel>,
    /// PIAP-DF: faces without labels, drawn as x_u next to the training faces
    /// (the paper also feeds labelled frames in as unlabelled ones).
    pub unlabeled: Vec<Prepared>,
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
    pub aux: Auxiliary,
}

fn send(tx: &SyncSender<TrainEvent>, ev: TrainEvent) {
    let _ = tx.send(ev);
}

fn new_optimizer(params: &TrainParams) -> ModuleOptimizer {
    match params.optimizer {
        Optimizer::Adamw => AdamWConfig::new().with_weight_decay(0.0).init(),
        Optimizer::Adam => AdamConfig::new().init(),
    }
}

fn load_optimizer(optim: ModuleOptimizer, path: &Path) -> Result<ModuleOptimizer, CoreError> {
    if !path.exists() {
        return Ok(optim);
    }
    optim.load(path).map_err(|e| CoreError::Training(format!("{}: {e}", path.display())))
}

/// Saves checkpoints and measures the held-out faces after each epoch.
struct EpochEnd<'a> {
    spec: &'a ModelSpec,
    out: &'a RunFiles,
    test: &'a [Prepared],
    stage: Stage,
    bs: usize,
    device: &'a Device,
}

impl EpochEnd<'_> {
    fn model(&self, net: &Net, path: PathBuf) -> AuModel {
        AuModel { spec: self.spec.clone(), net: net.valid(), source: path.display().to_string() }
    }

    /// Weights and optimiser (and PIAP-DF's teacher) first, the state last:
    /// the state file is the commit point of a checkpoint.
    fn save(&self, net: &Net, optim: &ModuleOptimizer, teacher: Option<(&Net, &ModuleOptimizer)>, state: &mut State, centers: &Option<Tensor<2>>) -> Result<AuModel, CoreError> {
        let current = self.model(net, self.out.weights());
        atomic_write(&self.out.weights(), |p| weights::save(&current, p))?;
        atomic_write(&self.out.optim(), |p| optim.save(p).map_err(|e| io_err(p, e)))?;
        if let Some((t, o)) = teacher {
            let tm = self.model(t, self.out.teacher());
            atomic_write(&self.out.teacher(), |p| weights::save(&tm, p))?;
            atomic_write(&self.out.teacher_optim(), |p| o.save(p).map_err(|e| io_err(p, e)))?;
        }
        state.centers = match centers {
            Some(c) => Some(c.clone().into_data().try_to_vec::<f32>().map_err(|e| CoreError::Training(format!("{e:?}")))?),
            None => None,
        };
        atomic_write(&self.out.state(), |p| std::fs::write(p, serde_json::to_string(&state).unwrap_or_default()).map_err(|e| io_err(p, e)))?;
        Ok(current)
    }

    /// AU metrics, or the stage's own measure where it trains no AU head;
    /// written to metrics.json.
    fn held_out(&self, model: &AuModel) -> Result<(Option<Evaluation>, Option<StageScore>), CoreError> {
        if self.test.is_empty() {
            return Ok((None, None));
        }
        let (eval, score) = match self.stage {
            Stage::FanDistill => (None, landmark_error(&model.net, self.spec, self.test, self.bs, self.device)?),
            Stage::PiGenerator => (None, pi_map_iou(&model.net, self.spec, self.test, self.bs, self.device)?),
            _ => (Some(evaluate_prepared(model, self.test, self.bs, self.device)?), None),
        };
        let json = match (&eval, &score) {
            (Some(e), _) => serde_json::to_string_pretty(e).unwrap_or_default(),
            (None, Some(s)) => serde_json::to_string_pretty(&serde_json::json!({ "stage": self.stage.name(), s.name: s.value })).unwrap_or_default(),
            (None, None) => return Ok((None, None)),
        };
        atomic_write(&self.out.metrics(), |p| std::fs::write(p, &json).map_err(|err| io_err(p, err)))?;
        Ok((eval, score))
    }
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
        let Trainer { model, params, train, test, out, resume, device, aux } = self;
        if train.is_empty() {
            return Err(CoreError::Training("no training faces (every sample was skipped)".into()));
        }
        params.stage.check(&model.spec)?;
        if let Some(g) = &aux.pi_generator {
            let ok = matches!(&g.net, Net::Piap(p) if p.generator.is_some()) && g.spec.input().size == model.spec.input().size && g.spec.aus == model.spec.aus;
            if !ok {
                return Err(CoreError::Training(format!(
                    "{}: the PI generator must be a stage-2 PIAP with the same AUs and input size as the model",
                    g.source
                )));
            }
        }
        std::fs::create_dir_all(&out.dir).map_err(|e| io_err(&out.dir, e))?;
        let run_json = serde_json::json!({
            "model": model.spec, "params": params, "train_faces": train.len(), "test_faces": test.len(),
            "pi_generator": aux.pi_generator.as_ref().map(|g| g.source.clone()), "unlabeled_faces": aux.unlabeled.len(),
        });
        atomic_write(&out.run(), |p| std::fs::write(p, serde_json::to_string_pretty(&run_json).unwrap_or_default()).map_err(|e| io_err(p, e)))?;

        let ad = device.clone().autodiff();
        let spec = model.spec.clone();
        let mut state = State { epochs_done: 0, rng: Rng(params.seed), first_epoch_loss: None, centers: None };
        let df = params.stage == Stage::DiscreteFeedback;
        // PIAP-DF: the given model is copied to Teacher and Student.
        let mut teacher_net = if df { Some(model.net.clone()) } else { None };
        let mut net = if df { weights::duplicate(&model, &device)?.net } else { model.net };
        let mut optim = new_optimizer(&params);
        let mut teacher_optim = new_optimizer(&params);
        let mut resumed_from = 0;
        if resume && out.state().exists() && out.weights().exists() && (!df || out.teacher().exists()) {
            let text = std::fs::read_to_string(out.state()).map_err(|e| io_err(&out.state(), e))?;
            state = serde_json::from_str(&text).map_err(|e| CoreError::Training(format!("{}: {e}", out.state().display())))?;
            let saved = weights::load(&out.weights(), Some(spec.kind()), &device)?;
            if saved.spec != spec {
                return Err(CoreError::Training(format!("{} holds a different model configuration; use a new output folder", out.dir.display())));
            }
            net = saved.net;
            optim = load_optimizer(optim, &out.optim())?;
            if df {
                teacher_net = Some(weights::load(&out.teacher(), Some(spec.kind()), &device)?.net);
                teacher_optim = load_optimizer(teacher_optim, &out.teacher_optim())?;
            }
            resumed_from = state.epochs_done;
        }
        // `train()` turns autodiff and the training flags (BatchNorm batch
        // statistics) on; a fork alone keeps the module as it was.
        let mut net = net.fork(&ad).train();
        let mut teacher = teacher_net.map(|t| t.fork(&ad).train());
        if let (Net::FanTrans(m), true) = (&mut net, params.freeze_backbone && params.stage == Stage::Au) {
            m.fan = m.fan.clone().freeze();
        }
        // Fixed, on the autodiff device without gradients.
        let pi_generator = aux.pi_generator.map(|g| g.net.fork(&ad));
        let stats = ClassStats::new(&train);
        let ctx = LossContext { spec: &spec, params: &params, stats: &stats, pi_generator: pi_generator.as_ref() };
        let mut centers: Option<Tensor<2>> = state.centers.as_ref().map(|c| {
            let n = spec.aus.len();
            Tensor::<2>::from_data(TensorData::new(c.clone(), [n, c.len() / n]), &device)
        });
        let bs = params.batch_size.max(1);
        let steps_per_epoch = train.len().div_ceil(bs);
        // PIAP-DF's x_u pool: the training faces (labels unused) and the extra
        // unlabelled faces.
        let pool: Vec<&Prepared> = train.iter().chain(&aux.unlabeled).collect();
        let end = EpochEnd { spec: &spec, out: &out, test: &test, stage: params.stage, bs, device: &device };
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
                let value = if let Some(t) = teacher.take() {
                    let u: Vec<&Prepared> = (0..items.len()).map(|_| pool[(state.rng.next_u64() % pool.len() as u64) as usize]).collect();
                    let tu: Vec<Transform> = u.iter().map(|_| params.augment.draw(&mut state.rng)).collect();
                    let (xu, _, lmu) = batch(&spec, &u, &tu, &ad)?;
                    let draw = state.rng.unit();
                    let (student, t, loss) = df_step(net, t, &mut optim, &mut teacher_optim, &ctx, lr, (x, y, &items, &lms), (xu, &u, &lmu), draw);
                    net = student;
                    teacher = Some(t);
                    loss
                } else {
                    let (loss, cc) = batch_loss(&net, &ctx, x, y, &items, &lms, &mut centers);
                    let value = loss.clone().into_scalar::<f32>();
                    if value.is_finite() {
                        let grads = GradientsParams::from_grads(loss.backward(), &net);
                        net = optim.step(lr, net, grads);
                        if let (Some((emb, y)), Some(c)) = (cc, centers.as_mut()) {
                            *c = losses::update_centers(c.clone(), emb, y, 0.5);
                        }
                    }
                    value
                };
                let limit = state.first_epoch_loss.map(|f| f * params.divergence_factor);
                if !value.is_finite() || limit.is_some_and(|l| value > l) {
                    return Ok(TrainOutcome::Diverged { epoch, step, loss: value, weights: saved });
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
            let current = end.save(&net, &optim, teacher.as_ref().map(|t| (t, &teacher_optim)), &mut state, &centers)?;
            saved = Some(out.weights());
            send(tx, TrainEvent::Checkpoint(out.weights()));
            let (eval, score) = end.held_out(&current)?;
            last_eval = eval.clone();
            send(tx, TrainEvent::Epoch { epoch, train_loss, eval, score });
        }
        Ok(TrainOutcome::Done { epochs: params.epochs, weights: out.weights(), eval: last_eval })
    }
}

/// One PIAP-DF step (eqs. 7-11); returns the student, the teacher and the
/// student's loss on the labelled batch (what DF minimises, eq. 12).
/// Choices: both networks step with the run's optimiser (Adam) where the
/// paper writes plain SGD; the feedback uses the raw gradients.
#[allow(clippy::type_complexity)]
fn df_step(
    student: Net,
    teacher: Net,
    optim_s: &mut ModuleOptimizer,
    optim_t: &mut ModuleOptimizer,
    ctx: &LossContext,
    lr: f64,
    labelled: (Tensor<4>, Tensor<2>, &[&Prepared], &[Vec<[f32; 2]>]),
    unlabelled: (Tensor<4>, &[&Prepared], &[Vec<[f32; 2]>]),
    draw: f32,
) -> (Net, Net, f32) {
    let (xl, yl, il, ll) = labelled;
    let (xu, iu, lu) = unlabelled;
    let mut none = None;
    // G_p: the teacher's pseudo-labels on x_u.
    let yp = pseudo_labels(&teacher, xu.clone());
    // (7)-(8): the student learns the pseudo-labels; keep g_xi,u.
    let (l_su, _) = batch_loss(&student, ctx, xu.clone(), yp.clone(), iu, lu, &mut none);
    let g_su = GradientsParams::from_grads(l_su.backward(), &student);
    let g_su_kept = copy_grads(&student, &g_su);
    let student = optim_s.step(lr, student, g_su);
    // (9)-(10): the updated student's gradient on labelled data; feedback.
    let (l_sl, _) = batch_loss(&student, ctx, xl.clone(), yl.clone(), il, ll, &mut none);
    let value = l_sl.clone().into_scalar::<f32>();
    if !value.is_finite() {
        return (student, teacher, value);
    }
    let g_sl = GradientsParams::from_grads(l_sl.backward(), &student);
    let fb = grad_dot(&student, &g_sl, &g_su_kept);
    let fb_d = losses::discrete_feedback(fb, draw);
    // (11): theta' = theta - eta (fb_D g_theta,u + g_theta,l), as the
    // gradient of fb_D * L(teacher(x_u), G_p) + L(teacher(x_l), G_l).
    let (l_tu, _) = batch_loss(&teacher, ctx, xu, yp, iu, lu, &mut none);
    let (l_tl, _) = batch_loss(&teacher, ctx, xl, yl, il, ll, &mut none);
    let l_t = l_tu * fb_d + l_tl;
    let g_t = GradientsParams::from_grads(l_t.backward(), &teacher);
    let teacher = optim_t.step(lr, teacher, g_t);
    (student, teacher, value)
}

/// A training run on its own thread (`auscope-train`), with its events.
pub type TrainJob = Job<TrainEvent>;

impl Job<TrainEvent> {
    pub fn spawn(trainer: Trainer) -> std::io::Result<Self> {
        Job::start("auscope-train", 256, move |tx, cancel| {
            // A panic inside burn (e.g. an op a backend lacks) ends the run as
            // Failed with its message instead of a silent dead thread.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| trainer.run(tx, cancel))).unwrap_or_else(|p| {
                let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                TrainOutcome::Failed(format!("the training step crashed: {msg}"))
            });
            send(tx, TrainEvent::Finished(outcome));
        })
    }
}
