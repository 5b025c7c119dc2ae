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
    let start = Instant::now();
    while !harness.state().has_frame() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no frame shown within 2 minutes"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the layout settle (texture upload, crop panel).
    for _ in 0..4 {
        harness.step();
    }
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
