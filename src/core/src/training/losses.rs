//! The papers' losses on burn tensors (autodiff-friendly). Each is checked
//! against PyTorch in tests/losses.rs (values from tools/loss_reference.py).
//!
//! Shapes: `logits`, `targets` are [B, N_AU]; targets are 0/1 floats.

use burn::tensor::activation::{log_sigmoid, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};

/// The lowest positive rate [`occurrence_weights`] weighs by.
pub const MIN_OCCURRENCE_RATE: f32 = 0.05;

/// FAN-Trans eq. 9 class weights "based on AU occurrence" (its ref. [17],
/// JAA-Net): w_i = N (1/r_i) / sum_j (1/r_j), r_i the positive rate of AU i
/// in the training set, clamped to [MIN_OCCURRENCE_RATE, 1].
///
/// Choices (the paper trains on BP4D/DISFA, where every AU occurs often
/// enough that these cases do not arise):
/// - An AU with no positive in the training set (its weight would be 1/0)
///   gets the weight of the most frequent AU.
/// - Rates are clamped from below at 5% ([`MIN_OCCURRENCE_RATE`]). Without
///   it, an AU with one positive in 277 faces took 90% of the loss weight
///   and FAN-Trans learned nothing else: the shipped demo weights gave every
///   face the training base rates (AU12 0.68 with a spread of 0.006 over
///   the training faces). With the clamp the same run separates AU12 with
///   AUC 0.97 on the training faces and 0.92 held out. BP4D's and DISFA's
///   rarest AUs sit near 5%, so the papers' protocols are barely touched.
pub fn occurrence_weights(pos_rate: &[f32]) -> Vec<f32> {
    let present = pos_rate.iter().copied().filter(|&r| r > 0.0).fold(0.0f32, f32::max);
    let fallback = if present > 0.0 { present } else { 1.0 };
    let inv: Vec<f32> = pos_rate.iter().map(|&r| 1.0 / if r > 0.0 { r } else { fallback }.clamp(MIN_OCCURRENCE_RATE, 1.0)).collect();
    let sum: f32 = inv.iter().sum();
    let n = pos_rate.len() as f32;
    inv.iter().map(|v| n * v / sum).collect()
}

/// TransAU's soft-balance class weights (section 3.2, lambda 0.7):
/// P_n_i = n_i / sum n_j, P_s_i = (1 / (N P_n_i))^lambda P_n_i,
/// w_i = sum_j P_s_j / P_s_i. `counts` are positives per AU (clamped to 1).
pub fn soft_balance_weights(counts: &[f32], lambda: f32) -> Vec<f32> {
    let n = counts.len() as f32;
    let c: Vec<f32> = counts.iter().map(|v| v.max(1.0)).collect();
    let total: f32 = c.iter().sum();
    let ps: Vec<f32> = c
        .iter()
        .map(|v| {
            let pn = v / total;
            (1.0 / (n * pn)).powf(lambda) * pn
        })
        .collect();
    let sum: f32 = ps.iter().sum();
    ps.iter().map(|p| sum / p).collect()
}

fn row(weights: &[f32], device: &Device) -> Tensor<2> {
    Tensor::<1>::from_data(TensorData::new(weights.to_vec(), [weights.len()]), device).unsqueeze::<2>()
}

/// Element-wise BCE from logits, stable: -(y log s(x) + (1-y) log s(-x)).
fn bce_elements(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<2> {
    let pos = log_sigmoid(logits.clone());
    let neg = log_sigmoid(logits.neg());
    (targets.clone() * pos + (targets.neg() + 1.0) * neg).neg()
}

/// Weighted BCE (FAN-Trans eq. 9; TransAU's WCE with soft-balance weights):
/// mean over the batch of (1/N) sum_i w_i BCE_i. Plain BCE (ABAW5 eq. 1)
/// is this with all weights 1.
pub fn weighted_bce(logits: Tensor<2>, targets: Tensor<2>, weights: &[f32]) -> Tensor<1> {
    let w = row(weights, &logits.device());
    (bce_elements(logits, targets) * w).mean()
}

/// Online KD (FAN-Trans eq. 8): KL(ensemble || student) between the two
/// Bernoulli distributions of each AU, mean over AUs and batch. The
/// ensemble target is detached: it teaches, it is not pulled toward the
/// students (as in ONE, the OKD method the paper builds on).
pub fn okd_kl(ensemble_logits: Tensor<2>, student_logits: Tensor<2>) -> Tensor<1> {
    let t = ensemble_logits.detach();
    let pt = sigmoid(t.clone());
    let (lt_pos, lt_neg) = (log_sigmoid(t.clone()), log_sigmoid(t.neg()));
    let (ls_pos, ls_neg) = (log_sigmoid(student_logits.clone()), log_sigmoid(student_logits.neg()));
    (pt.clone() * (lt_pos - ls_pos) + (pt.neg() + 1.0) * (lt_neg - ls_neg)).mean()
}

/// FAN-Trans eq. 10: weighted BCE on the one-to-one, one-to-many and
/// ensemble outputs, plus lambda (0.2) times the KL of each branch to the
/// ensemble.
pub fn fan_trans_loss(
    one_to_one: Tensor<2>,
    one_to_many: Tensor<2>,
    ensemble: Tensor<2>,
    targets: Tensor<2>,
    weights: &[f32],
    lambda: f32,
) -> Tensor<1> {
    let cls = weighted_bce(one_to_one.clone(), targets.clone(), weights)
        + weighted_bce(one_to_many.clone(), targets.clone(), weights)
        + weighted_bce(ensemble.clone(), targets, weights);
    let kd = okd_kl(ensemble.clone(), one_to_one) + okd_kl(ensemble, one_to_many);
    cls + kd * lambda
}

/// Weighted Tversky loss (TransAU eq. 4, alpha 0.25, beta 0.75). The paper
/// writes it per image, where a negative AU's term is the constant 1; we
/// sum TP/FP/FN over the mini-batch per AU (as Salehi et al.'s Tversky
/// loss does), then take (1/N) sum_i w_i (aFP + bFN + e) / (TP + aFP + bFN + e)
/// with e = 1.
pub fn weighted_tversky(logits: Tensor<2>, targets: Tensor<2>, weights: &[f32], alpha: f32, beta: f32) -> Tensor<1> {
    let eps = 1.0;
    let p = sigmoid(logits);
    let tp = (p.clone() * targets.clone()).sum_dim(0);
    let fp = (p.clone() * (targets.clone().neg() + 1.0)).sum_dim(0);
    let fne = ((p.neg() + 1.0) * targets).sum_dim(0);
    let num = fp * alpha + fne * beta + eps;
    let den = tp + num.clone();
    let w = row(weights, &num.device());
    (num / den * w).mean()
}

/// TransAU's label loss for one output: WCE + WTL.
pub fn wce_tversky(logits: Tensor<2>, targets: Tensor<2>, weights: &[f32]) -> Tensor<1> {
    weighted_bce(logits.clone(), targets.clone(), weights) + weighted_tversky(logits, targets, weights, 0.25, 0.75)
}

/// Huber loss (TransAU eq. 2, delta 0.5), mean over elements.
pub fn huber<const D: usize>(pred: Tensor<D>, target: Tensor<D>, delta: f32) -> Tensor<1> {
    let d = (pred - target).abs();
    let quad = d.clone().clamp_max(delta);
    let lin = d - quad.clone();
    (quad.clone() * quad * 0.5 + lin * delta).mean()
}

/// Center contrastive loss (TransAU eq. 5): per image, the squared distance
/// of each active AU's embedding to its centre over that of the inactive
/// AUs; mean over the batch. `embeddings` [B, N, D], `centers` [N, D].
/// A small epsilon keeps an all-active image finite.
pub fn center_contrastive(embeddings: Tensor<3>, centers: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let d2 = (embeddings - centers.unsqueeze::<3>()).powf_scalar(2.0).sum_dim(2).squeeze_dim::<2>(2);
    let active = (d2.clone() * targets.clone()).sum_dim(1);
    let inactive = (d2 * (targets.neg() + 1.0)).sum_dim(1);
    (active / (inactive + 1e-6)).mean()
}

/// The centre update after each mini-batch (center loss, Wen et al. 2016,
/// which eq. 5 varies): C_i <- C_i - a * sum_b y_bi (C_i - f_bi) / (1 + sum_b y_bi).
/// Plain tensors, no gradient.
pub fn update_centers(centers: Tensor<2>, embeddings: Tensor<3>, targets: Tensor<2>, rate: f32) -> Tensor<2> {
    let f = embeddings.detach().without_autodiff();
    let c = centers.without_autodiff();
    let y = targets.without_autodiff().unsqueeze_dim::<3>(2); // [B, N, 1]
    let diff = (c.clone().unsqueeze::<3>() - f) * y.clone(); // [B, N, D]
    let num = diff.sum_dim(0).squeeze_dim::<2>(0);
    let den = y.sum_dim(0).squeeze_dim::<2>(0) + 1.0; // [N, 1]
    c - num / den * rate
}

/// Mean BCE between logits and (soft) target maps, e.g. PI maps (PIAP eq. 1).
pub fn map_bce<const D: usize>(logits: Tensor<D>, targets: Tensor<D>) -> Tensor<1> {
    let pos = log_sigmoid(logits.clone());
    let neg = log_sigmoid(logits.neg());
    (targets.clone() * pos + (targets.neg() + 1.0) * neg).neg().mean()
}

/// PIAP's anti person-specific loss (eq. 4):
/// -mean_n log(1 - |cos(v_P, v_AU)|). `v_p`, `v_au` are [B, D].
pub fn ap_orthogonality(v_p: Tensor<2>, v_au: Tensor<2>) -> Tensor<1> {
    let dot = (v_p.clone() * v_au.clone()).sum_dim(1);
    let norms = v_p.powf_scalar(2.0).sum_dim(1).sqrt() * v_au.powf_scalar(2.0).sum_dim(1).sqrt();
    let cos = (dot / (norms + 1e-8)).abs().clamp_max(1.0 - 1e-6);
    (cos.neg() + 1.0).log().neg().mean()
}

/// Multi-label circle loss (ABAW5 eq. 2), mean over the batch:
/// log(1 + sum_neg e^{s_i}) + log(1 + sum_pos e^{-s_j}), s the logits.
pub fn circle_multilabel(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let device = logits.device();
    // Push each set's excluded entries to -1e12 and add the "1" as a zero
    // column, so each term is one stable logsumexp.
    let neg = logits.clone() - targets.clone() * 1e12;
    let pos = logits.neg() - (targets.neg() + 1.0) * 1e12;
    let zero = Tensor::<2>::zeros([b, 1], &device);
    let lse = |x: Tensor<2>| {
        let x = Tensor::cat(vec![zero.clone(), x], 1);
        let m = x.clone().max_dim(1).detach();
        (x - m.clone()).exp().sum_dim(1).log() + m
    };
    (lse(neg) + lse(pos)).mean()
}

/// ABAW5 eq. 3: BCE + circle loss.
pub fn bce_circle(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let ones = vec![1.0; logits.dims()[1]];
    weighted_bce(logits.clone(), targets.clone(), &ones) + circle_multilabel(logits, targets)
}

/// PIAP-DF's discrete feedback (eq. 10): h(fb) = 1 if fb > 0 else -0.1,
/// times sigma, which is 0 with 5% probability (`draw` in [0, 1)).
pub fn discrete_feedback(fb: f32, draw: f32) -> f32 {
    let sigma = if draw < 0.05 { 0.0 } else { 1.0 };
    sigma * if fb > 0.0 { 1.0 } else { -0.1 }
}

/// Positive rate of each AU in a label matrix (rows = samples).
pub fn positive_rates(labels: &[Vec<f32>]) -> Vec<f32> {
    let n = labels.first().map_or(0, |r| r.len());
    let mut pos = vec![0.0f32; n];
    for r in labels {
        for (p, v) in pos.iter_mut().zip(r) {
            if *v >= 0.5 {
                *p += 1.0;
            }
        }
    }
    let total = labels.len().max(1) as f32;
    pos.iter().map(|p| p / total).collect()
}
