//! Training steps per second of each architecture, through auscope's own
//! trainer (batch from prepared face crops, augmentation, the paper's loss,
//! backward, Adam(W) update), on the CPU (burn Flex) and on wgpu, next to
//! the same step in PyTorch CPU measured in the same run
//! (tools/bench_train.py; needs torch, torchvision and face-alignment).
//!
//! `cargo bench --bench training`. Configurations: the tiny presets (the size
//! of the shipped demo weights); TransAU on Inception3 at 96 px, the network
//! tools/model_reference.py has in PyTorch. Env: AUSCOPE_BENCH_BATCH
//! (default 16), AUSCOPE_BENCH_STEPS (default 5, after 1 warm-up step),
//! AUSCOPE_BENCH_WGPU=any to time wgpu on a software adapter too (llvmpipe;
//! by default wgpu is timed only on a hardware GPU).

mod common;

use std::collections::HashMap;
use std::time::Instant;

use auscope_core::analysis::Engine;
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::models::backbones::inception::InceptionConfig;
use auscope_core::models::transau::{TransAuBackbone, TransAuConfig};
use auscope_core::models::{ArchConfig, AuModel, ModelKind, ModelSpec};
use auscope_core::training::data::{Dataset, Sample};
use auscope_core::training::prepare::{Prepared, prepare};
use auscope_core::training::trainer::{RunFiles, TrainEvent, TrainJob, TrainOutcome, TrainParams, Trainer};
use burn::tensor::Device;

const FACES: [&str; 5] = ["single_face.jpg", "0-f1-su-ph.jpg", "45-m7-di-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg"];

fn spec(kind: ModelKind) -> ModelSpec {
    let mut spec = ModelSpec::tiny(kind);
    if kind == ModelKind::Transau {
        spec.arch = ArchConfig::Transau(TransAuConfig {
            backbone: TransAuBackbone::InceptionV3(InceptionConfig { transform_input: false }),
            input_size: 96,
            ..TransAuConfig::tiny()
        });
    }
    spec
}

/// The five face photos, prepared at `size`, with arbitrary fixed labels.
fn faces(size: usize, n_au: usize, engine: &Engine) -> Vec<Prepared> {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/faces");
    assert!(dir.exists(), "shared data missing: {}", dir.display());
    let samples = FACES
        .iter()
        .enumerate()
        .map(|(i, f)| Sample { media: dir.join(f), frame: 0, subject: f.to_string(), labels: (0..n_au).map(|a| ((i + a) % 3 == 0) as u8 as f32).collect(), face: None })
        .collect();
    let data = Dataset { aus: vec![String::new(); n_au], samples, skipped: 0 };
    let (faces, _) = prepare(&data, &[0, 1, 2, 3, 4], size, engine, &mut |_, _| {}).expect("prepare");
    faces
}

/// Steps per second after one warm-up step, timed between the trainer's
/// step events.
fn steps_per_second(spec: &ModelSpec, faces: &[Prepared], device: &Device, batch: usize, steps: usize) -> Result<f64, String> {
    let mut params = TrainParams::paper(spec);
    params.epochs = 1;
    params.batch_size = batch;
    let train: Vec<Prepared> = faces.iter().cycle().take(batch * (steps + 1)).cloned().collect();
    let dir = std::env::temp_dir().join(format!("auscope-bench-train-{}", std::process::id()));
    let model = AuModel::new(spec.clone(), device).map_err(|e| e.to_string())?;
    let job = TrainJob::spawn(Trainer { model, params, train, test: Vec::new(), out: RunFiles { dir: dir.clone() }, resume: false, device: device.clone(), aux: Default::default() })
        .map_err(|e| e.to_string())?;
    let mut times = Vec::new();
    let outcome = loop {
        match job.events.recv() {
            Ok(TrainEvent::Step { .. }) => times.push(Instant::now()),
            Ok(TrainEvent::Finished(o)) => break o,
            Ok(_) => {}
            Err(_) => return Err("the training thread stopped".into()),
        }
    };
    job.join();
    let _ = std::fs::remove_dir_all(&dir);
    if let TrainOutcome::Failed(e) = outcome {
        return Err(e);
    }
    if times.len() < 2 {
        return Err(format!("only {} steps reported", times.len()));
    }
    Ok((times.len() - 1) as f64 / times[times.len() - 1].duration_since(times[0]).as_secs_f64())
}

fn main() {
    let batch: usize = std::env::var("AUSCOPE_BENCH_BATCH").ok().and_then(|s| s.parse().ok()).unwrap_or(16);
    let steps: usize = std::env::var("AUSCOPE_BENCH_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let torch: HashMap<String, f64> = common::python_json("tools/bench_train.py", &["--batch", &batch.to_string(), "--steps", &steps.to_string()]);

    let devices = common::bench_devices();
    let engine = Engine::faces_only(FacePipeline::new(DetectorKind::Full, &Device::flex()).expect("face models"));

    println!("batch {batch}, {steps} steps after 1 warm-up step");
    println!("| architecture | input | device | burn steps/s | PyTorch CPU steps/s | burn / PyTorch |");
    println!("|---|---:|---|---:|---:|---:|");
    for kind in ModelKind::ALL {
        let spec = spec(kind);
        let size = spec.input().size;
        let faces = faces(size, spec.aus.len(), &engine);
        let reference = torch.get(kind.name().replace('-', "_").as_str()).copied();
        for (name, device) in &devices {
            let (burn, ratio) = match steps_per_second(&spec, &faces, device, batch, steps) {
                Ok(s) => (format!("{s:.2}"), reference.map_or("n/a".into(), |r| format!("{:.2}x", s / r))),
                Err(e) => (format!("failed: {e}"), "n/a".into()),
            };
            let reference = reference.map_or("n/a".into(), |r| format!("{r:.2}"));
            println!("| {} | {size} | {name} | {burn} | {reference} | {ratio} |", kind.title());
        }
    }
}
