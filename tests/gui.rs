//! The window as a user sees it, through egui_kittest on wgpu (lavapipe on CI).

mod common;

use std::time::{Duration, Instant};

use auscope_app::app::AuscopeApp;
use auscope_app::worker::Worker;
use burn::tensor::Device;
use common::*;
use eframe::egui::Vec2;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn harness_with(path: std::path::PathBuf) -> Harness<'static, AuscopeApp> {
    Harness::builder()
        .with_size(Vec2::new(1100.0, 700.0))
        .wgpu()
        .build_eframe(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let worker = Worker::spawn(Device::flex(), Box::new(move || ctx.request_repaint()))
                .expect("worker");
            AuscopeApp::new(worker, "CPU (burn Flex) — test".into(), Some(path))
        })
}

/// Step the UI until the background worker has delivered a frame.
fn wait_for_frame(harness: &mut Harness<'_, AuscopeApp>) {
    step_until(harness, "frame shown", AuscopeApp::has_frame);
}

#[test]
fn opening_an_image_shows_faces_and_landmarks() {
    let mut harness = harness_with(face_image("single_face.jpg"));
    harness.state_mut().set_show_timings(false); // timings vary run to run
    wait_for_frame(&mut harness);
    assert_eq!(harness.state().face_count(), Some(1));
    harness.get_by_label("1 face(s)");
    harness.snapshot("viewer_single_face_landmarks");
}

#[test]
fn a_corrupt_file_shows_an_error_and_the_app_stays_usable() {
    let dir = scratch("gui-bad");
    let bad = dir.join("broken.png");
    std::fs::write(&bad, b"not a png").expect("write");
    let mut harness = harness_with(bad);
    let start = Instant::now();
    while harness.state().error().is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "no error shown");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let error = harness.state().error().unwrap_or_default().to_string();
    assert!(error.contains("broken.png"), "{error}");
    harness.step();
    harness.get_by_label_contains("broken.png");
    // Still usable: a good file opens after the bad one.
    harness.state_mut().open(face_image("single_face.jpg"));
    wait_for_frame(&mut harness);
    assert_eq!(harness.state().face_count(), Some(1));
}

/// Step until `done` holds (the worker decodes and runs models in the
/// background), then let the layout settle (texture upload, panels).
fn step_until(harness: &mut Harness<'_, AuscopeApp>, what: &str, done: impl Fn(&AuscopeApp) -> bool) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(start.elapsed() < Duration::from_secs(300), "{what}: not within 5 minutes");
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..4 {
        harness.step();
    }
}

#[test]
fn choosing_a_model_shows_au_probabilities_and_says_the_weights_are_a_demo() {
    use auscope_core::models::{ModelKind, PredictorKind};
    let mut harness = harness_with(face_image("single_face.jpg"));
    wait_for_frame(&mut harness);
    harness.get_by_label("No AU model (Model menu).");
    harness.state_mut().set_model(Some(PredictorKind::Net(ModelKind::Piap)), None);
    step_until(&mut harness, "model loaded", |app| app.model().is_some());
    step_until(&mut harness, "AUs shown", |app| app.selected_aus().is_some());
    let probs = harness.state().selected_aus().unwrap_or_default();
    assert_eq!(probs.len(), 12);
    assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)));
    harness.get_by_label("AUs: PIAP");
    harness.get_by_label_contains("Demo weights");
    harness.get_by_label("AU12");

    // Weights of another model: an error, and the PIAP model stays.
    let dir = scratch("gui-weights");
    let d = Device::flex();
    let other = auscope_core::models::AuModel::new(
        auscope_core::models::ModelSpec::tiny(ModelKind::Transau),
        &d,
    )
    .expect("model");
    let bpk = dir.join("transau.bpk");
    auscope_core::models::weights::save(&other, &bpk).expect("save");
    harness.state_mut().set_model(Some(PredictorKind::Net(ModelKind::Piap)), Some(bpk));
    step_until(&mut harness, "error shown", |app| app.error().is_some());
    let error = harness.state().error().unwrap_or_default().to_string();
    assert!(error.contains("these are TransAU weights, not PIAP weights"), "{error}");
    assert_eq!(harness.state().model().map(|m| m.kind), Some(PredictorKind::Net(ModelKind::Piap)));
}
