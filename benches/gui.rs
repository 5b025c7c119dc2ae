//! The window's frame time while an explanation overlay is shown, against
//! the same window without one, measured in the same run. One frame = one
//! egui pass (`Harness::step`) plus its wgpu draw read back to memory
//! (`Harness::render`; the read-back is the same in every row). Window
//! 1100x700, single_face.jpg, PIAP demo weights, predefined PI map AU12.
//!
//! Rows: no overlay (the reference); the overlay drawn by
//! shaders/overlay.wgsl (the app's path); the CPU-coloured texture fallback
//! (no wgpu renderer); side by side with a map in each viewer.
//!
//! A second table: models on burn's wgpu device, which egui renders with
//! too (lavapipe here), PIAP's learned PI maps: the overlay drawn from the
//! model's own buffer against the same map uploaded from its host copy,
//! shown still and switched to another AU every frame (a new map to bind or
//! upload each frame). Each row of this table is the best of 3 runs.
//!
//! A third table: the review window on a video, idle against the same
//! while a fine-tune job trains in the background (its own thread).
//!
//! `cargo bench --bench gui`. Needs ../shared/data. Without a GPU, wgpu runs
//! on lavapipe (a CPU rasteriser), so absolute times are the CPU's; the
//! ratios are what to compare. Env: AUSCOPE_BENCH_FRAMES (default 60).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use auscope_app::app::AuscopeApp;
use auscope_app::worker::Worker;
use auscope_core::explain::Method;
use auscope_core::models::{ModelKind, PredictorKind};
use burn::tensor::Device;
use eframe::egui::Vec2;
use egui_kittest::Harness;

fn shared(rel: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(rel);
    assert!(path.exists(), "needs ../shared/data (missing {})", path.display());
    path
}

fn harness(gpu: bool) -> Harness<'static, AuscopeApp> {
    harness_on(gpu, shared("faces/single_face.jpg"))
}

fn harness_on(gpu: bool, image: PathBuf) -> Harness<'static, AuscopeApp> {
    let mut h = Harness::builder().with_size(Vec2::new(1100.0, 700.0)).wgpu().build_eframe(move |cc| {
        let ctx = cc.egui_ctx.clone();
        let worker = Worker::spawn(Device::flex(), Box::new(move || ctx.request_repaint())).expect("worker");
        let app = AuscopeApp::new(worker, "bench".into(), Some(image));
        if gpu { app.with_gpu(cc.wgpu_render_state.as_ref()) } else { app }
    });
    h.state_mut().set_show_timings(false);
    wait(&mut h, "frame", AuscopeApp::has_frame);
    h.state_mut().set_model(Some(PredictorKind::Net(ModelKind::Piap)), None);
    wait(&mut h, "model", |a| a.model().is_some());
    h
}

fn wait(h: &mut Harness<'_, AuscopeApp>, what: &str, done: impl Fn(&AuscopeApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..3 {
        h.step();
    }
}

/// Mean ms per frame (step + render) over `frames`, after 5 warm-up frames.
fn frame_ms(h: &mut Harness<'_, AuscopeApp>, frames: usize) -> f64 {
    frame_ms_with(h, frames, |_, _| {})
}

/// The same, calling `before(h, i)` ahead of frame i (timed with it).
fn frame_ms_with(h: &mut Harness<'_, AuscopeApp>, frames: usize, mut before: impl FnMut(&mut Harness<'_, AuscopeApp>, usize)) -> f64 {
    for i in 0..5 {
        before(h, i);
        h.step();
        h.render().expect("render");
    }
    let start = Instant::now();
    for i in 0..frames {
        before(h, i);
        h.step();
        h.render().expect("render");
    }
    start.elapsed().as_secs_f64() * 1e3 / frames as f64
}

/// Table 2: models and egui on one wgpu device; maps drawn in place or uploaded.
fn shared_device(frames: usize) -> Option<Vec<(&'static str, f64)>> {
    let compute = match auscope_core::Compute::init(auscope_core::DeviceChoice::Wgpu) {
        Ok(c) => c,
        Err(e) => {
            println!("(no wgpu adapter, table 2 skipped: {e})");
            return None;
        }
    };
    let gpu = compute.gpu_device()?.clone();
    let setup = auscope_app::gpu::wgpu_configuration(&compute).wgpu_setup;
    let device = compute.device.clone();
    let image = shared("faces/single_face.jpg");
    let model_device = gpu.clone();
    let mut h = Harness::builder().with_size(Vec2::new(1100.0, 700.0)).wgpu_setup(setup).build_eframe(move |cc| {
        let ctx = cc.egui_ctx.clone();
        let worker = Worker::spawn(device, Box::new(move || ctx.request_repaint())).expect("worker");
        AuscopeApp::new(worker, "bench".into(), Some(image)).with_gpu(cc.wgpu_render_state.as_ref()).with_model_device(Some(&model_device))
    });
    h.state_mut().set_show_timings(false);
    wait(&mut h, "frame", AuscopeApp::has_frame);
    h.state_mut().set_model(Some(PredictorKind::Net(ModelKind::Piap)), None);
    // The AUs too: the worker's first forward pass on lavapipe would share
    // the cores with the reference row.
    wait(&mut h, "model and AUs", |a| a.model().is_some() && a.selected_aus().is_some());
    // Rows are short and noisy on 2 cores shared with lavapipe: each is
    // the best of 3 runs of frames/3.
    let best = |h: &mut Harness<'_, AuscopeApp>, f: &mut dyn FnMut(&mut Harness<'_, AuscopeApp>, usize)| {
        (0..3).map(|_| frame_ms_with(h, (frames / 3).max(1), &mut *f)).fold(f64::INFINITY, f64::min)
    };
    let mut rows = vec![("no overlay (reference)", best(&mut h, &mut |_, _| {}))];
    h.state_mut().set_explain(Some(Method::PiMapLearned), Some("AU12"));
    wait(&mut h, "explanation", |a| a.explanation().is_some());
    let aus = h.state().model().map(|m| m.aus.clone()).unwrap_or_default();
    let mut switching = |h: &mut Harness<'_, AuscopeApp>, i: usize| h.state_mut().set_explain(Some(Method::PiMapLearned), Some(&aus[i % aus.len()]));
    for (shared, still, switched) in [
        (true, "learned PI map, from burn's buffer", "AU switched each frame, burn's buffer"),
        (false, "learned PI map, uploaded", "AU switched each frame, uploaded"),
    ] {
        h.state_mut().set_model_device(shared.then_some(&gpu));
        h.state_mut().set_explain(Some(Method::PiMapLearned), Some("AU12"));
        wait(&mut h, "map", |a| a.map_source() == Some(if shared { "drawn from the model's GPU buffer" } else { "uploaded from the CPU" }));
        rows.push((still, best(&mut h, &mut |_, _| {})));
        rows.push((switched, best(&mut h, &mut switching)));
    }
    Some(rows)
}

fn main() {
    let frames: usize = std::env::var("AUSCOPE_BENCH_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let mut rows: Vec<(&str, f64)> = Vec::new();

    let mut h = harness(true);
    rows.push(("no overlay (reference)", frame_ms(&mut h, frames)));
    h.state_mut().set_explain(Some(Method::PiMap), Some("AU12"));
    wait(&mut h, "explanation", |a| a.explanation().is_some());
    rows.push(("PI map overlay, WGSL shader", frame_ms(&mut h, frames)));
    h.state_mut().set_compare(true, None);
    h.state_mut().set_compare_explain(Some(Method::PiMap), Some("AU6"));
    wait(&mut h, "right explanation", |a| a.compare_explanation().is_some());
    rows.push(("side by side, two shader overlays", frame_ms(&mut h, frames)));
    drop(h);

    let mut cpu = harness(false);
    cpu.state_mut().set_explain(Some(Method::PiMap), Some("AU12"));
    wait(&mut cpu, "explanation", |a| a.explanation().is_some());
    rows.push(("PI map overlay, CPU texture fallback", frame_ms(&mut cpu, frames)));

    println!("GUI frame time (egui pass + wgpu draw + read-back), 1100x700, {frames} frames, models on the CPU");
    print_rows(&rows);
    if let Some(rows) = shared_device(frames) {
        println!();
        println!("Models on wgpu, egui on the same device (PIAP demo, learned PI maps), {frames} frames");
        print_rows(&rows);
    }

    let (idle, busy, steps) = during_finetune(frames);
    println!();
    println!("GUI frame time while a fine-tune trains (PIAP demo, single_face.mp4, 8 corrected frames)");
    println!("{:<38} {:>10} {:>12}", "case", "ms/frame", "x idle");
    println!("{:<38} {idle:>10.2} {:>12.2}", "review window, idle (reference)", 1.0);
    println!("{:<38} {busy:>10.2} {:>12.2}", "same, fine-tune running", busy / idle);
    println!("training steps the job made meanwhile: {steps}");
}

fn print_rows(rows: &[(&str, f64)]) {
    println!("{:<38} {:>10} {:>12}", "case", "ms/frame", "x reference");
    let reference = rows[0].1;
    for (name, ms) in rows {
        println!("{name:<38} {ms:>10.2} {:>12.2}", ms / reference);
    }
}

/// Frame time of the review window on a video, idle and while its
/// fine-tune job trains on another thread (long enough to outlast the
/// measurement, then cancelled).
fn during_finetune(frames: usize) -> (f64, f64, usize) {
    use auscope_core::annotations::store::{Change, Store};
    use auscope_core::annotations::{LabelKey, LabelValue};
    use egui_kittest::kittest::Queryable;
    let dir = std::env::temp_dir().join(format!("auscope-bench-review-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let clip = dir.join("clip.mp4");
    std::fs::copy(shared("video/single_face.mp4"), &clip).expect("copy");
    let mut store = Store::open_for_media(&clip).expect("project");
    let changes: Vec<Change> = (0..8)
        .map(|k| Change { key: LabelKey { frame: k * 9, face: 0, au: "AU12".into() }, value: Some(LabelValue::coded(k < 4, None)) })
        .collect();
    store.edit("bench", "labels", &changes).expect("labels");
    drop(store);
    let mut h = harness_on(true, clip);
    h.state_mut().review_mut().set_coder("bench");
    wait(&mut h, "AUs and labels", |a| a.selected_aus().is_some() && !a.review().loading());
    let idle = frame_ms(&mut h, frames);
    h.state_mut().review_mut().finetune.epochs = 10_000;
    h.step();
    h.get_by_label("Fine-tune on my corrections").click_accesskit();
    wait(&mut h, "training", |a| a.review().finetune.steps() > 0);
    let before = h.state().review().finetune.steps();
    let busy = frame_ms(&mut h, frames);
    let steps = h.state().review().finetune.steps() - before;
    h.state_mut().review_mut().finetune.cancel();
    wait(&mut h, "cancelled", |a| !a.review().finetune.running());
    drop(h);
    let _ = std::fs::remove_dir_all(&dir);
    (idle, busy, steps)
}
