//! Score-CAM cost: all AUs of one face, as a multiple of one forward pass,
//! on the CPU (burn Flex) and on wgpu (hardware adapters only, unless
//! AUSCOPE_BENCH_WGPU=any), next to pytorch-grad-cam's ScoreCAM on the same
//! networks in PyTorch CPU, measured in the same run
//! (tools/bench_scorecam.py; needs torch, torchvision, face-alignment and
//! grad-cam). pytorch-grad-cam scores one target per pass, so all 12 AUs
//! take 12 calls; ours scores all AUs from the same masked passes.
//!
//! `cargo bench --bench explain`. Networks: the tiny presets (the size of
//! the shipped demo weights), weights random (timing does not depend on
//! them), layers: FAN-Trans fan.conv4 (32 ch, 16x16), PIAP encoder.stage3
//! (16 ch, 8x8), LRP-ARL-FF backbone.layer3 (16 ch, 4x4). Env:
//! AUSCOPE_BENCH_REPEATS (default 3).

mod common;

use std::collections::HashMap;

use auscope_core::explain::score_cam::{DEFAULT_BATCH, model_score_cam};
use auscope_core::models::{AuModel, ModelKind, ModelSpec, Trace};
use burn::tensor::{Distribution, Tensor};

#[derive(serde::Deserialize, Default)]
struct TorchTimes {
    forward_ms: f64,
    score_cam_all_ms: f64,
}

fn main() {
    let repeats: usize = std::env::var("AUSCOPE_BENCH_REPEATS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let torch: HashMap<String, TorchTimes> =
        common::python_json("tools/bench_scorecam.py", &["--repeats", &repeats.to_string(), "--threads", "2"]);
    let devices = common::bench_devices();
    println!("Score-CAM, all 12 AUs of one face (batch {DEFAULT_BATCH} masked inputs per pass), {repeats} repeats");
    println!(
        "{:<11} {:<28} {:>10} {:>12} {:>9} | {:>10} {:>14} {:>9} | {:>12}",
        "model", "device", "fwd ms", "cam all ms", "x fwd", "torch fwd", "grad-cam ms", "x fwd", "grad-cam/ours"
    );
    for (kind, key, layer) in [
        (ModelKind::FanTrans, "fan_trans", "fan.conv4"),
        (ModelKind::Piap, "piap", "encoder.stage3"),
        (ModelKind::LrpArlFf, "lrp_arl_ff", "backbone.layer3"),
    ] {
        for (name, device) in &devices {
            let model = AuModel::new(ModelSpec::tiny(kind), device).expect("model");
            let s = model.spec.input().size;
            let x = Tensor::<4>::random([1, 3, s, s], Distribution::Uniform(0.0, 1.0), device);
            let fwd = common::mean_ms(repeats * 5, device, || {
                let _ = model.forward(x.clone(), &mut Trace::none()).probs.into_data();
            });
            let cam = common::mean_ms(repeats, device, || {
                model_score_cam(&model, x.clone(), layer, DEFAULT_BATCH).expect("score-cam");
            });
            let t = torch.get(key);
            let (tf, tc) = t.map_or((f64::NAN, f64::NAN), |t| (t.forward_ms, t.score_cam_all_ms));
            println!(
                "{:<11} {:<28} {:>10.2} {:>12.1} {:>9.1} | {:>10.2} {:>14.1} {:>9.1} | {:>12.2}",
                kind.name(),
                name,
                fwd,
                cam,
                cam / fwd,
                tf,
                tc,
                tc / tf,
                tc / cam
            );
        }
    }
}
