//! Per-model latency of the AU model zoo (full-size paper configurations) at
//! batch 1 and 16, on the CPU (burn Flex) and on wgpu, next to the PyTorch
//! CPU references of the same networks measured in the same run
//! (tools/bench_models.py; needs torch, torchvision and face-alignment).
//!
//! `cargo bench --bench models`. Env: AUSCOPE_BENCH_BATCHES (default "1,16"),
//! AUSCOPE_BENCH_ITERS (default 3).
//!
//! tools/model_reference.py has PyTorch versions of the four whole models and
//! of their backbones; each row compares burn with the same network in PyTorch.

mod common;

use std::collections::HashMap;

use auscope_core::models::backbones::efficientnet::EfficientNetConfig;
use auscope_core::models::backbones::inception::InceptionConfig;
use auscope_core::models::backbones::iresnet::IResNetConfig;
use auscope_core::models::blocks::{Trace, gap};
use auscope_core::models::fan::FanConfig;
use auscope_core::models::{AuModel, ModelKind, ModelSpec};
use auscope_core::{Compute, DeviceChoice};
use burn::nn::LinearConfig;
use burn::tensor::{Device, Distribution, Tensor};

fn input(b: usize, side: usize, d: &Device) -> Tensor<4> {
    Tensor::random([b, 3, side, side], Distribution::Uniform(0.0, 1.0), d)
}

fn main() {
    let batches: Vec<usize> = std::env::var("AUSCOPE_BENCH_BATCHES")
        .unwrap_or_else(|_| "1,16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let iters: usize = std::env::var("AUSCOPE_BENCH_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let batch_arg = batches.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",");
    let torch: HashMap<String, HashMap<String, f64>> = common::python_json("tools/bench_models.py", &["--iters", &iters.to_string(), "--batches", &batch_arg]);

    let mut devices: Vec<(String, Device)> = vec![("cpu (Flex)".into(), Device::flex())];
    // wgpu only on a hardware adapter: on a software one (llvmpipe) the
    // full-size models take minutes per forward (see docs/benchmarks.md).
    match Compute::init(DeviceChoice::Auto) {
        Ok(c) if c.fallback_reason.is_none() => devices.push((c.name.clone(), c.device.clone())),
        Ok(c) => eprintln!("wgpu column skipped: {}", c.fallback_reason.unwrap_or_default()),
        Err(e) => eprintln!("wgpu column skipped: {e}"),
    }

    println!("| network | batch | device | burn ms | PyTorch CPU ms | burn / PyTorch |");
    println!("|---|---|---|---|---|---|");
    for (dev_name, d) in &devices {
        for &b in &batches {
            // Whole models, paper configurations (no PyTorch counterpart).
            for kind in ModelKind::ALL {
                let model = AuModel::new(ModelSpec::paper(kind), d).expect("model");
                let side = model.spec.input().size;
                let x = input(b, side, d);
                let ms = common::mean_ms(iters, d, || {
                    let out = model.forward(x.clone(), &mut Trace::none());
                    let _ = out.probs.into_data();
                });
                let key = match kind {
                    ModelKind::FanTrans => "fan_trans",
                    ModelKind::Transau => "transau",
                    ModelKind::Piap => "piap",
                    ModelKind::LrpArlFf => "lrp_arl_ff",
                };
                let t = torch.get(key).and_then(|m| m.get(&b.to_string())).copied();
                let (tc, ratio) = match t {
                    Some(t) => (format!("{t:.1}"), format!("{:.2}", ms / t)),
                    None => ("n/a".into(), "n/a".into()),
                };
                println!("| {} (whole model) | {b} | {dev_name} | {ms:.1} | {tc} | {ratio} |", kind.title());
            }
            // Backbones, against PyTorch.
            let mut rows: Vec<(&str, f64)> = Vec::new();
            {
                let fan = FanConfig::fan4().init(d);
                let x = input(b, 256, d);
                rows.push(("fan4", common::mean_ms(iters, d, || {
                    let _ = fan.forward(x.clone(), &mut Trace::none()).heatmaps.pop().map(|h| h.into_data());
                })));
            }
            {
                let inc = InceptionConfig { transform_input: false }.init(d);
                let x = input(b, 224, d);
                rows.push(("inception_v3_mixed6e", common::mean_ms(iters, d, || {
                    let _ = inc.forward(x.clone(), "", &mut Trace::none()).into_data();
                })));
            }
            {
                let b1 = EfficientNetConfig::b1(3).init(d);
                let fc = LinearConfig::new(1280, 12).init(d);
                let x = input(b, 224, d);
                rows.push(("efficientnet_b1", common::mean_ms(iters, d, || {
                    let _ = fc.forward(gap(b1.forward(x.clone(), "", &mut Trace::none()))).into_data();
                })));
            }
            {
                let ir = IResNetConfig::depth(100).expect("100").init(d);
                let x = input(b, 112, d);
                rows.push(("iresnet100", common::mean_ms(iters, d, || {
                    let _ = ir.forward(x.clone(), "", &mut Trace::none()).1.into_data();
                })));
            }
            for (name, ms) in rows {
                let t = torch.get(name).and_then(|m| m.get(&b.to_string())).copied();
                let (tc, ratio) = match t {
                    Some(t) => (format!("{t:.1}"), format!("{:.2}", ms / t)),
                    None => ("n/a".into(), "n/a".into()),
                };
                println!("| {name} | {b} | {dev_name} | {ms:.1} | {tc} | {ratio} |");
            }
        }
    }
}
