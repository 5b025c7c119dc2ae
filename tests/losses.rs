//! The training losses against PyTorch (tests/fixtures/losses.json, written
//! by tools/loss_reference.py): values and input gradients to 1e-4 relative.

mod common;

use auscope_core::training::losses::*;
use burn::tensor::{Device, Tensor, TensorData};
use common::*;

struct Ref {
    v: serde_json::Value,
    device: Device,
}

impl Ref {
    fn load() -> Self {
        Self { v: read_json(&fixture("losses.json")), device: Device::flex().autodiff() }
    }
    fn input(&self, key: &str) -> Vec<f32> {
        let x = &self.v["inputs"][key];
        match x.as_array().and_then(|a| a.first()).map(|f| f.is_array()) {
            Some(true) => x.as_array().expect("rows").iter().flat_map(floats).collect(),
            _ => floats(x),
        }
    }
    fn t2(&self, key: &str, shape: [usize; 2]) -> Tensor<2> {
        Tensor::from_data(TensorData::new(self.input(key), shape), &self.device)
    }
    fn leaf2(&self, key: &str, shape: [usize; 2]) -> Tensor<2> {
        self.t2(key, shape).require_grad()
    }
    /// Compare value and the gradient w.r.t. `leaf`.
    fn check<const D: usize>(&self, name: &str, loss: Tensor<1>, leaf: &Tensor<D>) {
        let want = &self.v[name];
        let value = loss.clone().into_scalar::<f32>();
        let wv = want["value"].as_f64().expect("value") as f32;
        assert!((value - wv).abs() <= 1e-4 * wv.abs().max(1.0), "{name}: {value} vs torch {wv}");
        let grads = loss.backward();
        let g = leaf.grad(&grads).expect("grad").into_data().try_to_vec::<f32>().expect("f32");
        let wg = floats(&want["grad"]);
        assert_eq!(g.len(), wg.len(), "{name}: grad size");
        let scale = wg.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let diff = g.iter().zip(&wg).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff <= 1e-4 * scale, "{name}: grad max |diff| {diff} (max |grad| {scale})");
    }
}

const B: usize = 6;
const N: usize = 5;

#[test]
fn class_weights_match_the_papers_formulas() {
    let r = Ref::load();
    let occ = occurrence_weights(&r.input("rates"));
    let sb = soft_balance_weights(&r.input("counts"), 0.7);
    for (got, want) in [(occ, floats(&r.v["occurrence_weights"])), (sb, floats(&r.v["soft_balance_weights"]))] {
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "{got:?} vs {want:?}");
        }
    }
    // A rarer AU weighs more; one never seen positive weighs like the most
    // frequent, not like an AU at rate 1e-3.
    let w = occurrence_weights(&[0.1, 0.5]);
    assert!(w[0] > w[1]);
    let w = occurrence_weights(&[0.1, 0.5, 0.0]);
    assert!((w[2] - w[1]).abs() < 1e-6 && w[0] > w[1], "{w:?}");
    // One positive in 277 weighs like 5%, not 1/277: with AU01 at 1/277
    // and AU12 at 0.68 the unclamped weights were 10.9 and 0.06.
    let w = occurrence_weights(&[1.0 / 277.0, 0.05, 0.68]);
    assert!((w[0] - w[1]).abs() < 1e-6, "{w:?}");
    assert!((w[0] / w[2] - 0.68 / 0.05).abs() < 1e-3, "{w:?}");
}

#[test]
fn fan_trans_losses_match_pytorch() {
    let r = Ref::load();
    let w = occurrence_weights(&r.input("rates"));
    let y = r.t2("y", [B, N]);
    let x1 = r.leaf2("x1", [B, N]);
    r.check("weighted_bce", weighted_bce(x1.clone(), y.clone(), &w), &x1);
    let x1 = r.leaf2("x1", [B, N]);
    let xe = r.leaf2("xe", [B, N]);
    r.check("okd_kl", okd_kl(xe.clone(), x1.clone()), &x1);
    let x1 = r.leaf2("x1", [B, N]);
    let loss = fan_trans_loss(x1.clone(), r.t2("x2", [B, N]), r.t2("xe", [B, N]), y, &w, 0.2);
    r.check("fan_trans", loss, &x1);
    // The ensemble target is detached: no gradient flows into it from KL.
    let xe = r.leaf2("xe", [B, N]);
    let g = okd_kl(xe.clone(), r.t2("x1", [B, N])).backward();
    assert!(xe.grad(&g).is_none_or(|t| t.abs().max().into_scalar::<f32>() == 0.0));
}

#[test]
fn transau_losses_match_pytorch() {
    let r = Ref::load();
    let w = soft_balance_weights(&r.input("counts"), 0.7);
    let y = r.t2("y", [B, N]);
    let x1 = r.leaf2("x1", [B, N]);
    r.check("tversky", weighted_tversky(x1.clone(), y.clone(), &w, 0.25, 0.75), &x1);
    let x1 = r.leaf2("x1", [B, N]);
    r.check("wce_tversky", wce_tversky(x1.clone(), y.clone(), &w), &x1);

    let shape = r.v["inputs"]["maps_shape"].as_array().expect("shape").iter().map(|v| v.as_u64().expect("dim") as usize).collect::<Vec<_>>();
    let s4 = [shape[0], shape[1], shape[2], shape[3]];
    let mp = Tensor::<4>::from_data(TensorData::new(r.input("maps_p"), s4), &r.device).require_grad();
    let mt = Tensor::<4>::from_data(TensorData::new(r.input("maps_t"), s4), &r.device);
    r.check("huber", huber(mp.clone(), mt.clone(), 0.5), &mp);

    let d = r.v["inputs"]["dim"].as_u64().expect("dim") as usize;
    let emb = Tensor::<3>::from_data(TensorData::new(r.input("emb"), [B, N, d]), &r.device).require_grad();
    let cen = Tensor::<2>::from_data(TensorData::new(r.input("cen"), [N, d]), &r.device);
    r.check("center_contrastive", center_contrastive(emb.clone(), cen.clone(), y.clone()), &emb);
    let updated = update_centers(cen, emb, y, 0.5).into_data().try_to_vec::<f32>().expect("f32");
    let want = floats(&r.v["center_update"]);
    let diff = updated.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(diff < 1e-5, "center update off by {diff}");
}

#[test]
fn piap_and_abaw_losses_match_pytorch() {
    let r = Ref::load();
    let shape = [B, N, 3, 3];
    let mp = Tensor::<4>::from_data(TensorData::new(r.input("maps_p"), shape), &r.device).require_grad();
    let mt = Tensor::<4>::from_data(TensorData::new(r.input("maps_t"), shape), &r.device);
    r.check("map_bce", map_bce(mp.clone(), mt), &mp);
    let va = r.leaf2("va", [B, 8]);
    r.check("ap", ap_orthogonality(r.t2("vp", [B, 8]), va.clone()), &va);
    let y = r.t2("y", [B, N]);
    let x1 = r.leaf2("x1", [B, N]);
    r.check("circle", circle_multilabel(x1.clone(), y.clone()), &x1);
    let x1 = r.leaf2("x1", [B, N]);
    r.check("bce_circle", bce_circle(x1.clone(), y), &x1);
}

#[test]
fn discrete_feedback_follows_eq_10() {
    assert_eq!(discrete_feedback(0.3, 0.5), 1.0);
    assert_eq!(discrete_feedback(-2.0, 0.5), -0.1);
    assert_eq!(discrete_feedback(0.0, 0.5), -0.1);
    assert_eq!(discrete_feedback(5.0, 0.01), 0.0, "disabled 5% of the time");
}
