//! The stages beyond the AU procedures: FAN distillation on the landmarker's
//! heat-maps, PIAP stages 1-3 chained through their weights, and PIAP-DF's
//! teacher/student loop with checkpoints and resume.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::sync_channel;

use auscope_core::analysis::Engine;
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::frame::load_image;
use auscope_core::models::piap::PiapStage;
use auscope_core::models::{ArchConfig, AuModel, ModelKind, ModelSpec, weights};
use auscope_core::training::data::{Augment, Dataset, Sample};
use auscope_core::training::prepare::{Prepared, prepare};
use auscope_core::training::trainer::{Auxiliary, Optimizer, RunFiles, Stage, TrainEvent, TrainOutcome, TrainParams, Trainer, evaluate_prepared};
use burn::tensor::Device;
use common::*;

const FACES: [&str; 5] = ["single_face.jpg", "0-f1-su-ph.jpg", "45-m7-di-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg"];

/// `per_face` copies of each face photo, "AU12" = a white disc painted on
/// the mouth of every other copy (so the AU is learnable from pixels).
fn faces(dir: &Path, per_face: usize, size: usize) -> Vec<Prepared> {
    std::fs::create_dir_all(dir).expect("dir");
    let device = Device::flex();
    let pipeline = FacePipeline::new(DetectorKind::Full, &device).expect("pipeline");
    let mut data = Dataset { aus: vec!["AU12".into()], samples: Vec::new(), skipped: 0 };
    for (s, name) in FACES.iter().enumerate() {
        let base = load_image(&face_image(name)).expect("image");
        let face = pipeline.faces(&base).expect("faces").into_iter().next().expect("a face");
        let (m, r) = (face.landmarks68[62], (face.box_xywh()[2] * 0.12).max(3.0));
        for k in 0..per_face {
            let mut img = base.clone();
            let on = k % 2 == 1;
            if on {
                for (x, y, p) in img.enumerate_pixels_mut() {
                    if (x as f32 - m[0]).powi(2) + (y as f32 - m[1]).powi(2) <= r * r {
                        *p = image::Rgb([255, 255, 255]);
                    }
                }
            }
            let file = dir.join(format!("f{s}_{k}.png"));
            img.save(&file).expect("save");
            data.samples.push(Sample { media: file, frame: 0, subject: format!("s{s}"), labels: vec![on as u8 as f32], face: None });
        }
    }
    let all: Vec<usize> = (0..data.samples.len()).collect();
    let (faces, report) = prepare(&data, &all, size, &Engine::faces_only(pipeline), &mut |_, _| {}).expect("prepare");
    assert_eq!(report.prepared, FACES.len() * per_face, "{report:?}");
    faces
}

fn params(spec: &ModelSpec, stage: Stage, epochs: usize) -> TrainParams {
    let mut p = TrainParams::paper(spec);
    p.stage = stage;
    p.epochs = epochs;
    p.batch_size = 8;
    p.lr = 3e-3;
    p.optimizer = Optimizer::Adam;
    p.augment = Augment { rotation_deg: 5.0, flip: true, scale: [0.95, 1.05], shift_px: 4.0 };
    p
}

struct Run {
    outcome: TrainOutcome,
    events: Vec<TrainEvent>,
}

impl Run {
    fn losses(&self) -> Vec<f32> {
        self.events.iter().filter_map(|e| match e { TrainEvent::Epoch { train_loss, .. } => Some(*train_loss), _ => None }).collect()
    }
    fn scores(&self) -> Vec<f32> {
        self.events.iter().filter_map(|e| match e { TrainEvent::Epoch { score: Some(s), .. } => Some(s.value), _ => None }).collect()
    }
    fn weights(&self) -> std::path::PathBuf {
        match &self.outcome {
            TrainOutcome::Done { weights, .. } => weights.clone(),
            other => panic!("training did not finish: {other:?}"),
        }
    }
}

/// burn's CPU generator is one per process: the two tests take turns, and
/// each seeds it before drawing its networks, so every run starts from the
/// same weights. (Unseeded, the PIAP chain's stage 3 now and then missed
/// its F1 bar from an unlucky start.)
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial(seed: u64) -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    Device::flex().seed(seed);
    guard
}

fn train(model: AuModel, params: TrainParams, train: &[Prepared], test: &[Prepared], out: &Path, resume: bool, aux: Auxiliary) -> Run {
    let (tx, rx) = sync_channel(4096);
    let t = Trainer { model, params, train: train.to_vec(), test: test.to_vec(), out: RunFiles { dir: out.to_path_buf() }, resume, device: Device::flex(), aux };
    let outcome = t.run(&tx, &AtomicBool::new(false));
    Run { outcome, events: rx.try_iter().collect() }
}

#[test]
fn fan_distillation_puts_the_heatmaps_on_the_landmarks() {
    let _turn = serial(1);
    let dir = scratch("stage-fan");
    let mut spec = ModelSpec::tiny(ModelKind::FanTrans);
    spec.aus = vec!["AU12".into()];
    let faces = faces(&dir, 4, spec.input().size);
    let device = Device::flex();
    let mut p = params(&spec, Stage::FanDistill, 40);
    p.batch_size = 4;
    let run = train(AuModel::new(spec.clone(), &device).expect("model"), p, &faces, &faces, &dir.join("run"), false, Auxiliary::default());
    run.weights();
    let err = run.scores();
    assert_eq!(err.len(), 40, "one landmark error per epoch");
    let (first, last) = (err[0], err[err.len() - 1]);
    // 16 x 16 heat-maps: one cell is 6.25% of the crop.
    assert!(last < 20.0 && last < 0.5 * first, "landmark error {first:.1}% -> {last:.1}%: {err:?}");
    let json = read_json(&dir.join("run/metrics.json"));
    assert_eq!(json["stage"], "fan-distill");
    // Distillation is refused for a model without a FAN.
    let lrp = ModelSpec::tiny(ModelKind::LrpArlFf);
    let r = train(AuModel::new(lrp.clone(), &device).expect("model"), params(&lrp, Stage::FanDistill, 1), &faces, &[], &dir.join("bad"), false, Auxiliary::default());
    assert!(matches!(&r.outcome, TrainOutcome::Failed(e) if e.contains("fan-distill") && e.contains("FAN-Trans")), "{:?}", r.outcome);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn piap_stages_chain_from_generator_to_discrete_feedback() {
    let _turn = serial(1);
    let dir = scratch("stage-piap");
    let device = Device::flex();
    let mut s3 = ModelSpec::tiny(ModelKind::Piap);
    s3.aus = vec!["AU12".into()];
    let mut s2 = s3.clone();
    let ArchConfig::Piap(c) = &mut s2.arch else { unreachable!() };
    c.stage = PiapStage::Stage2;
    let faces = faces(&dir, 6, s3.input().size);

    // Stage 1: the DW-UNet learns the predefined PI maps.
    let mut p1 = params(&s2, Stage::PiGenerator, 30);
    p1.batch_size = 4;
    let r1 = train(AuModel::new(s2.clone(), &device).expect("model"), p1, &faces, &faces, &dir.join("s1"), false, Auxiliary::default());
    let iou = r1.scores();
    assert!(iou[iou.len() - 1] > 40.0 && iou[iou.len() - 1] > iou[0] + 15.0, "PI-map IoU {iou:?}");

    // Stage 2 from generator 0: generator x grayscale -> 12-channel B1 on L_AU.
    let g0 = weights::load(&r1.weights(), Some(ModelKind::Piap), &device).expect("stage-1 weights");
    let r2 = train(g0, params(&s2, Stage::PiJoint, 8), &faces, &faces, &dir.join("s2"), false, Auxiliary::default());
    let l2 = r2.losses();
    assert!(l2[l2.len() - 1] < l2[0], "stage-2 loss {l2:?}");
    let g1 = weights::load(&r2.weights(), Some(ModelKind::Piap), &device).expect("stage-2 weights");
    assert!(r2.events.iter().any(|e| matches!(e, TrainEvent::Epoch { eval: Some(_), .. })), "stage 2 is evaluated on AUs");

    // Stage 3 on generator-1 maps; a stage-3 model is no PI generator.
    let aux = || Auxiliary { pi_generator: Some(weights::load(&r2.weights(), Some(ModelKind::Piap), &device).expect("g1")), unlabeled: Vec::new() };
    // Enough steps (150) that the F1 bar holds whatever order the CPU's
    // threads sum in; 48 steps passed only some of the time.
    let mut p3 = params(&s3, Stage::Au, 20);
    p3.batch_size = 4;
    let r3 = train(AuModel::new(s3.clone(), &device).expect("model"), p3, &faces, &faces, &dir.join("s3"), false, aux());
    let stage3 = weights::load(&r3.weights(), Some(ModelKind::Piap), &device).expect("stage-3 weights");
    let f1 = evaluate_prepared(&stage3, &faces, 16, &device).expect("eval").mean_f1;
    assert!(f1 >= 0.8, "stage-3 F1 {f1}");
    let run_json = read_json(&dir.join("s3/run.json"));
    assert!(run_json["pi_generator"].as_str().is_some_and(|s| s.ends_with("model.bpk")), "{run_json}");
    let wrong = Auxiliary { pi_generator: Some(weights::load(&r3.weights(), None, &device).expect("s3")), unlabeled: Vec::new() };
    let r = train(AuModel::new(s3.clone(), &device).expect("model"), params(&s3, Stage::Au, 1), &faces, &[], &dir.join("bad"), false, wrong);
    assert!(matches!(&r.outcome, TrainOutcome::Failed(e) if e.contains("stage-2")), "{:?}", r.outcome);
    drop(g1);

    // DF: teacher and student start from stage 3; the student stays good,
    // the teacher is checkpointed, and a second run resumes both.
    let unlabeled: Vec<Prepared> = faces.iter().step_by(3).cloned().collect();
    let df = |epochs: usize, resume: bool| {
        let aux = Auxiliary { unlabeled: unlabeled.clone(), ..aux() };
        let model = weights::load(&r3.weights(), Some(ModelKind::Piap), &device).expect("stage 3");
        let mut p = params(&s3, Stage::DiscreteFeedback, epochs);
        p.lr = 3e-4;
        train(model, p, &faces, &faces, &dir.join("df"), resume, aux)
    };
    let r4 = df(2, false);
    let student = weights::load(&r4.weights(), Some(ModelKind::Piap), &device).expect("student");
    let f1_df = evaluate_prepared(&student, &faces, 16, &device).expect("eval").mean_f1;
    assert!(f1_df >= 0.8, "DF student F1 {f1_df} (stage 3: {f1})");
    assert!(dir.join("df/teacher.bpk").exists() && dir.join("df/teacher-optimizer.bpk").exists());
    let r5 = df(3, true);
    assert!(matches!(r5.events[0], TrainEvent::Started { resumed_from: 2, .. }), "{:?}", r5.events[0]);
    assert_eq!(r5.losses().len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
