//! The trainer learns: on a small labelled fixture (real faces with painted
//! marks as the "AUs"), CPU training lowers the loss and lifts mean F1 far
//! above a constant predictor. Also: CSV data, subject folds, checkpoints,
//! resume and a clear error on malformed labels.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::sync_channel;

use auscope_core::analysis::Engine;
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::frame::load_image;
use auscope_core::models::{AuModel, ModelKind, ModelSpec};
use auscope_core::training::data::{Augment, Dataset};
use auscope_core::training::prepare::prepare;
use auscope_core::training::trainer::{Optimizer, RunFiles, TrainEvent, TrainOutcome, TrainParams, Trainer, evaluate_prepared};
use burn::tensor::Device;
use common::*;

/// Writes images + labels.csv: two AUs, "AU12" = a white disc on the mouth,
/// "AU04" = a black bar over the brows, drawn independently at random.
fn write_fixture(dir: &std::path::Path, per_subject: usize) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let device = Device::flex();
    let pipeline = FacePipeline::new(DetectorKind::Full, &device).expect("pipeline");
    let mut csv = String::from("path,subject,AU04,AU12\n");
    let mut seed = 12345u64;
    let mut coin = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % 2 == 1
    };
    for (s, name) in ["single_face.jpg", "0-f1-su-ph.jpg", "45-m7-di-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg"].iter().enumerate() {
        let base = load_image(&face_image(name)).expect("image");
        let face = pipeline.faces(&base).expect("faces").into_iter().next().expect("a face");
        let lm = &face.landmarks68;
        let r = (face.box_xywh()[2] * 0.12).max(3.0);
        for k in 0..per_subject {
            let (brow, mouth) = (coin(), coin());
            let mut img = base.clone();
            let mut paint = |cx: f32, cy: f32, rx: f32, ry: f32, v: u8| {
                for y in (cy - ry).max(0.0) as u32..((cy + ry) as u32).min(img.height()) {
                    for x in (cx - rx).max(0.0) as u32..((cx + rx) as u32).min(img.width()) {
                        if ((x as f32 - cx) / rx).powi(2) + ((y as f32 - cy) / ry).powi(2) <= 1.0 {
                            img.put_pixel(x, y, image::Rgb([v, v, v]));
                        }
                    }
                }
            };
            if mouth {
                paint(lm[62][0], lm[62][1], r, r, 255);
            }
            if brow {
                let c = [(lm[21][0] + lm[22][0]) / 2.0, (lm[21][1] + lm[22][1]) / 2.0];
                paint(c[0], c[1], 2.5 * r, 0.5 * r, 0);
            }
            let file = format!("s{s}_{k}.png");
            img.save(dir.join(&file)).expect("save");
            csv += &format!("{file},subject{s},{},{}\n", brow as u8, mouth as u8);
        }
    }
    let path = dir.join("labels.csv");
    std::fs::write(&path, csv).expect("csv");
    path
}

fn tiny_lrp() -> ModelSpec {
    let mut spec = ModelSpec::tiny(ModelKind::LrpArlFf);
    spec.aus = vec!["AU04".into(), "AU12".into()];
    spec
}

fn params(epochs: usize) -> TrainParams {
    let mut p = TrainParams::paper(&tiny_lrp());
    p.epochs = epochs;
    p.batch_size = 8;
    p.lr = 2e-3;
    p.optimizer = Optimizer::Adam;
    p.augment = Augment { rotation_deg: 5.0, flip: true, scale: [0.95, 1.05], shift_px: 4.0 };
    p
}

#[test]
fn training_lowers_the_loss_and_beats_a_constant_predictor() {
    let dir = scratch("train-learn");
    let csv = write_fixture(&dir, 8);
    let spec = tiny_lrp();
    let data = Dataset::from_csv(&csv, &spec.aus, 0.5).expect("dataset");
    assert_eq!(data.samples.len(), 40);
    assert_eq!(data.subjects().len(), 5);
    let (train_idx, test_idx) = data.subject_folds(5, 0).expect("folds");
    assert!(test_idx.iter().all(|&i| data.samples[i].subject == "subject0"), "subject-exclusive");
    assert!(train_idx.iter().all(|&i| data.samples[i].subject != "subject0"));

    let device = Device::flex();
    let pipeline = FacePipeline::new(DetectorKind::Full, &device).expect("pipeline");
    let all: Vec<usize> = (0..data.samples.len()).collect();
    let (faces, report) = prepare(&data, &all, spec.input().size, &Engine::faces_only(pipeline), &mut |_, _| {}).expect("prepare");
    assert_eq!(report.prepared, 40, "{report:?}");

    let model = AuModel::new(spec.clone(), &device).expect("model");
    let before = evaluate_prepared(&model, &faces, 16, &device).expect("eval");
    let (tx, rx) = sync_channel(1024);
    let trainer = Trainer {
        model,
        params: params(12),
        train: faces.clone(),
        test: Vec::new(),
        out: RunFiles { dir: dir.join("run") },
        resume: false,
        device: device.clone(),
        aux: Default::default(),
    };
    let outcome = trainer.run(&tx, &AtomicBool::new(false));
    let TrainOutcome::Done { weights, .. } = outcome else { panic!("training failed: {outcome:?}") };
    let losses: Vec<f32> = rx.try_iter().filter_map(|e| match e { TrainEvent::Epoch { train_loss, .. } => Some(train_loss), _ => None }).collect();
    assert_eq!(losses.len(), 12);
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.6 * first, "loss {first} -> {last}: {losses:?}");

    let trained = auscope_core::models::weights::load(&weights, Some(ModelKind::LrpArlFf), &device).expect("load");
    let after = evaluate_prepared(&trained, &faces, 16, &device).expect("eval");
    // Constant "always present" scores F1 = 2p / (1 + p) per AU (p = positive rate).
    let labels = data.labels(&all);
    let constant: f32 = (0..2)
        .map(|j| {
            let p = labels.iter().filter(|r| r[j] > 0.5).count() as f32 / labels.len() as f32;
            2.0 * p / (1.0 + p)
        })
        .sum::<f32>()
        / 2.0;
    assert!(after.mean_f1 >= constant + 0.2 && after.mean_f1 >= 0.85, "mean F1 {} (before {}, constant {constant})\n{}", after.mean_f1, before.mean_f1, after.table());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn checkpoints_resume_and_bad_labels_are_reported() {
    let dir = scratch("train-resume");
    let csv = write_fixture(&dir, 2);
    let spec = tiny_lrp();
    let data = Dataset::from_csv(&csv, &spec.aus, 0.5).expect("dataset");
    let device = Device::flex();
    let pipeline = FacePipeline::new(DetectorKind::Full, &device).expect("pipeline");
    let all: Vec<usize> = (0..data.samples.len()).collect();
    let (faces, _) = prepare(&data, &all, spec.input().size, &Engine::faces_only(pipeline), &mut |_, _| {}).expect("prepare");
    let run = |epochs: usize, resume: bool| {
        let (tx, rx) = sync_channel(1024);
        let t = Trainer {
            model: AuModel::new(spec.clone(), &device).expect("model"),
            params: params(epochs),
            train: faces.clone(),
            test: faces[..4].to_vec(),
            out: RunFiles { dir: dir.join("run") },
            resume,
            device: device.clone(),
            aux: Default::default(),
        };
        let o = t.run(&tx, &AtomicBool::new(false));
        (o, rx.try_iter().collect::<Vec<_>>())
    };
    let (o, _) = run(1, false);
    assert!(matches!(o, TrainOutcome::Done { .. }), "{o:?}");
    let files = RunFiles { dir: dir.join("run") };
    assert!(files.weights().exists() && files.run().exists() && files.metrics().exists());
    let (o, events) = run(3, true);
    assert!(matches!(o, TrainOutcome::Done { epochs: 3, .. }), "{o:?}");
    assert!(matches!(events[0], TrainEvent::Started { resumed_from: 1, .. }), "resumes after epoch 1");
    let epochs: Vec<usize> = events.iter().filter_map(|e| match e { TrainEvent::Epoch { epoch, .. } => Some(*epoch), _ => None }).collect();
    assert_eq!(epochs, vec![1, 2]);
    // A cancelled run stops at once and keeps the last checkpoint.
    let (tx, _rx) = sync_channel(1024);
    let t = Trainer { model: AuModel::new(spec.clone(), &device).expect("model"), params: params(5), train: faces.clone(), test: Vec::new(), out: RunFiles { dir: dir.join("run") }, resume: true, device: device.clone(), aux: Default::default() };
    let o = t.run(&tx, &AtomicBool::new(true));
    assert!(matches!(o, TrainOutcome::Cancelled { weights: Some(_) }), "{o:?}");
    // A run whose loss is NaN from the first step stops with the last good weights.
    let mut bad = params(5);
    bad.lr = f64::NAN;
    let (tx, _rx) = sync_channel(1024);
    let t = Trainer { model: AuModel::new(spec.clone(), &device).expect("model"), params: bad, train: faces.clone(), test: Vec::new(), out: RunFiles { dir: dir.join("run2") }, resume: false, device: device.clone(), aux: Default::default() };
    let o = t.run(&tx, &AtomicBool::new(false));
    assert!(matches!(o, TrainOutcome::Diverged { step: 1, weights: None, .. } | TrainOutcome::Diverged { epoch: 0, .. }), "{o:?}");

    // Malformed CSV: the line and the cell are named.
    std::fs::write(dir.join("bad.csv"), "path,subject,AU04,AU12\na.png,s1,1,0\nb.png,s1,yes,0\n").expect("write");
    let e = Dataset::from_csv(&dir.join("bad.csv"), &spec.aus, 0.5).expect_err("bad csv");
    assert!(e.to_string().contains("line 3") && e.to_string().contains("'yes'"), "{e}");
    std::fs::write(dir.join("nocol.csv"), "path,subject,AU04\na.png,s1,1\n").expect("write");
    let e = Dataset::from_csv(&dir.join("nocol.csv"), &spec.aus, 0.5).expect_err("missing AU");
    assert!(e.to_string().contains("no column for AU12"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
