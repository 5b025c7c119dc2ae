//! The window as a user sees it, through egui_kittest on wgpu (lavapipe on CI).

mod common;

use std::time::{Duration, Instant};

use auscope_app::app::AuscopeApp;
use auscope_app::correlation_job::LabelSource;
use auscope_app::worker::Worker;
use burn::tensor::Device;
use common::*;
use eframe::egui::Vec2;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn harness_with(path: std::path::PathBuf) -> Harness<'static, AuscopeApp> {
    let mut harness = Harness::builder()
        .with_size(Vec2::new(1100.0, 700.0))
        .wgpu()
        .build_eframe(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let worker = Worker::spawn(Device::flex(), Box::new(move || ctx.request_repaint()))
                .expect("worker");
            AuscopeApp::new(worker, "CPU (burn Flex) — test".into(), Some(path)).with_gpu(cc.wgpu_render_state.as_ref())
        });
    // The coder's name is on screen; not the machine's $USER.
    harness.state_mut().review_mut().set_coder("tester");
    harness
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
        assert!(start.elapsed() < Duration::from_secs(300), "{what}: not within 5 minutes{}", harness.state().error().map(|e| format!(" (error: {e})")).unwrap_or_default());
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

/// single_face.jpg on screen (timings hidden) with `kind` on its demo weights.
fn single_face_with(kind: auscope_core::models::ModelKind) -> Harness<'static, AuscopeApp> {
    let mut harness = harness_with(face_image("single_face.jpg"));
    harness.state_mut().set_show_timings(false);
    wait_for_frame(&mut harness);
    harness.state_mut().set_model(Some(auscope_core::models::PredictorKind::Net(kind)), None);
    step_until(&mut harness, "model loaded", |app| app.model().is_some());
    harness
}

/// Mean absolute RGB difference of two renders inside `rect` (pixels).
fn region_diff(a: &image::RgbaImage, b: &image::RgbaImage, rect: [u32; 4]) -> f64 {
    let [x0, y0, x1, y1] = rect;
    let mut sum = 0.0f64;
    let mut n = 0.0f64;
    for y in y0..y1.min(a.height()) {
        for x in x0..x1.min(a.width()) {
            let (p, q) = (a.get_pixel(x, y).0, b.get_pixel(x, y).0);
            sum += (0..3).map(|k| (p[k] as f64 - q[k] as f64).abs()).sum::<f64>() / 3.0;
            n += 1.0;
        }
    }
    sum / n.max(1.0)
}

#[test]
fn an_explanation_map_is_blended_on_the_face_by_the_gpu_overlay() {
    use auscope_core::explain::Method;
    use auscope_core::explain::render::Colormap;
    use auscope_core::models::ModelKind;
    let mut harness = single_face_with(ModelKind::Piap);
    // Predefined PI maps: landmark regions, so the picture is deterministic.
    harness.state_mut().set_explain(Some(Method::PiMap), Some("AU12"));
    harness.state_mut().set_overlay_style(0.0, Colormap::Turbo);
    step_until(&mut harness, "explanation", |app| app.explanation().is_some());
    let e = harness.state().explanation().expect("explanation");
    let maps = e.maps.as_ref().expect("maps");
    assert!(maps.index_of("AU12").is_some());
    let clear = harness.render().expect("render");
    harness.state_mut().set_overlay_style(0.8, Colormap::Turbo);
    for _ in 0..3 {
        harness.step();
    }
    let blended = harness.render().expect("render");
    // The viewer is the left ~800 px; the face is in its middle. With
    // opacity 0.8 the crop's pixels change a lot, the far corner of the
    // viewer not at all.
    let face = region_diff(&clear, &blended, [300, 150, 600, 450]);
    let corner = region_diff(&clear, &blended, [0, 60, 60, 100]);
    assert!(face > 20.0, "the overlay changed the face region by only {face:.1}");
    assert!(corner < 1.0, "the overlay leaked outside the crop: {corner:.1}");
    harness.get_by_label_contains("predefined PI maps");
    harness.snapshot("overlay_pi_map_au12");
}

#[test]
fn the_matrix_panel_shows_transau_attention_between_aus() {
    use auscope_core::explain::Method;
    use auscope_core::models::ModelKind;
    let mut harness = single_face_with(ModelKind::Transau);
    harness.state_mut().set_explain(Some(Method::AuAttention), None);
    step_until(&mut harness, "explanation", |app| app.explanation().is_some());
    let e = harness.state().explanation().expect("explanation");
    assert!(!e.matrices.is_empty());
    let m = &e.matrices[0];
    assert_eq!(m.labels.len(), 12);
    // Softmax attention: every row sums to 1.
    for r in 0..12 {
        let s: f32 = m.values[r * 12..(r + 1) * 12].iter().sum();
        assert!((s - 1.0).abs() < 1e-3, "row {r} sums to {s}");
    }
    assert!(m.name.contains("mean over heads"), "{}", m.name);
    harness.get_by_label_contains("transformer attention, rows = queries");
    harness.snapshot("matrix_transau_attention");
}

#[test]
fn methods_a_model_cannot_give_are_disabled_with_a_reason() {
    use auscope_core::explain::Method;
    use auscope_core::models::ModelKind;
    let harness = single_face_with(ModelKind::Piap);
    let info = harness.state().model().expect("model").clone();
    let why = |m: Method| info.methods.iter().find(|(x, _)| *x == m).and_then(|(_, w)| w.clone());
    assert!(why(Method::ScoreCam).is_none() && why(Method::PiMapLearned).is_none() && why(Method::PiMap).is_none());
    assert!(why(Method::FanHeatmap).expect("no FAN").contains("FAN-Trans"));
    assert!(why(Method::AuAttention).expect("no transformer").contains("no transformer"));
    assert!(why(Method::RoiAttention).expect("no ROI maps").contains("TransAU"));
}

/// The models on burn's wgpu device and egui rendering with the same
/// device (lavapipe on CI): the overlay shader reads the map from the
/// model's own buffer, and draws the same pixels as from an upload.
#[test]
fn a_map_computed_on_the_gpu_is_drawn_from_the_models_buffer() {
    use auscope_core::explain::Method;
    use auscope_core::explain::render::Colormap;
    use auscope_core::models::{ModelKind, PredictorKind};
    let compute = auscope_core::Compute::init(auscope_core::DeviceChoice::Wgpu)
        .unwrap_or_else(|e| panic!("wgpu must be available (install mesa-vulkan-drivers): {e}"));
    let gpu = compute.gpu_device().expect("models on wgpu").clone();
    let setup = auscope_app::gpu::wgpu_configuration(&compute).wgpu_setup;
    let device = compute.device.clone();
    let mut harness = Harness::builder()
        .with_size(Vec2::new(1100.0, 700.0))
        .wgpu_setup(setup)
        .build_eframe(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let worker = Worker::spawn(device, Box::new(move || ctx.request_repaint())).expect("worker");
            AuscopeApp::new(worker, "GPU — test".into(), Some(face_image("single_face.jpg")))
                .with_gpu(cc.wgpu_render_state.as_ref())
                .with_model_device(Some(&gpu))
        });
    harness.state_mut().set_show_timings(false);
    wait_for_frame(&mut harness);
    harness.state_mut().set_model(Some(PredictorKind::Net(ModelKind::Piap)), None);
    step_until(&mut harness, "model loaded", |app| app.model().is_some());
    // PIAP's learned PI maps: the network's own output, on the GPU.
    harness.state_mut().set_explain(Some(Method::PiMapLearned), Some("AU12"));
    harness.state_mut().set_overlay_style(0.0, Colormap::Turbo);
    step_until(&mut harness, "explanation", |app| app.explanation().is_some());
    let e = harness.state().explanation().expect("explanation");
    let maps = e.maps.as_ref().expect("maps");
    let on_gpu = maps.device.as_ref().expect("the maps stay on the GPU");
    assert_eq!(on_gpu.tensor().dims(), [maps.labels.len(), maps.height, maps.width]);
    assert_eq!(harness.state().map_source(), Some("drawn from the model's GPU buffer"));
    let clear = harness.render().expect("render");
    harness.state_mut().set_overlay_style(0.8, Colormap::Turbo);
    for _ in 0..3 {
        harness.step();
    }
    let shared = harness.render().expect("render");
    let face = [300, 150, 600, 450];
    let changed = region_diff(&clear, &shared, face);
    assert!(changed > 5.0, "the overlay changed the face region by only {changed:.1}");
    // The same map uploaded from its host copy: the same pixels.
    harness.state_mut().set_model_device(None);
    for _ in 0..3 {
        harness.step();
    }
    assert_eq!(harness.state().map_source(), Some("uploaded from the CPU"));
    let uploaded = harness.render().expect("render");
    let diff = region_diff(&shared, &uploaded, [0, 0, 1100, 700]);
    assert!(diff < 0.01, "drawing from burn's buffer and from an upload differ by {diff:.3}");
}

#[test]
fn two_models_explain_the_same_face_side_by_side() {
    use auscope_core::explain::Method;
    use auscope_core::models::{ModelKind, PredictorKind};
    let mut harness = single_face_with(ModelKind::Piap);
    harness.state_mut().set_explain(Some(Method::PiMapLearned), Some("AU12"));
    harness.state_mut().set_compare(true, Some(PredictorKind::Net(ModelKind::Transau)));
    step_until(&mut harness, "left explanation", |app| app.explanation().is_some());
    // The right viewer without a map, then with TransAU's ROI attention.
    for _ in 0..3 {
        harness.step();
    }
    let plain = harness.render().expect("render");
    harness.state_mut().set_compare_explain(Some(Method::RoiAttention), Some("AU12"));
    step_until(&mut harness, "right explanation", |app| app.compare_explanation().is_some());
    for _ in 0..3 {
        harness.step();
    }
    let both = harness.render().expect("render");
    let (left, right) = (harness.state().explanation().expect("left"), harness.state().compare_explanation().expect("right"));
    assert_eq!((left.method, right.method), (Method::PiMapLearned, Method::RoiAttention));
    assert!(right.maps.as_ref().is_some_and(|m| m.index_of("AU12").is_some()));
    harness.get_by_label_contains("PIAP: PI maps (learned), AU12");
    harness.get_by_label_contains("TransAU: ROI attention (TransAU), AU12");
    // Each viewer draws its own map: the right face changes, the left one
    // keeps its overlay (the two GPU slots do not share a texture).
    // Viewers: ~400 px each between the 300 px face panel and the window's right.
    let left_face = region_diff(&plain, &both, [150, 200, 300, 380]);
    let right_face = region_diff(&plain, &both, [560, 200, 700, 380]);
    assert!(right_face > 10.0, "the right overlay changed its face by only {right_face:.1}");
    assert!(left_face < 1.0, "the left viewer changed when the right map came: {left_face:.1}");
    harness.snapshot("side_by_side_piap_transau");
}

#[test]
fn the_explanation_on_screen_exports_as_png_and_npy() {
    use auscope_core::explain::Method;
    use auscope_core::models::ModelKind;
    let mut harness = single_face_with(ModelKind::Piap);
    harness.state_mut().set_explain(Some(Method::PiMap), Some("AU12"));
    step_until(&mut harness, "explanation", |app| app.explanation().is_some());
    let dir = scratch("gui-export");
    let files = harness.state().export_explanation(0, &dir).expect("export");
    let maps = harness.state().explanation().expect("explanation").maps.clone().expect("maps");
    assert_eq!(files.len(), 2 * maps.labels.len() + 1, "a PNG and a .npy per map, and explain.json");
    assert!(files.iter().all(|f| f.exists()), "{files:?}");
    let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("explain.json")).expect("index")).expect("json");
    assert_eq!(index["method"], "pi-map");
    assert_eq!(index["model"], "piap");
    let au12 = index["files"].as_array().expect("files").iter().find(|f| f["label"] == "AU12").expect("AU12 listed").clone();
    let png = image::open(dir.join(au12["png"].as_str().expect("png"))).expect("overlay png");
    assert_eq!((png.width(), png.height()), (harness.state().frame_size().expect("frame")));
    let npy = std::fs::read(dir.join(au12["npy"].as_str().expect("npy"))).expect("npy");
    let header = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let values: Vec<f32> = npy[10 + header..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(values, maps.map(maps.index_of("AU12").expect("AU12")), "the .npy holds the map on screen");
    // Without a method there is nothing to export, and the app says so.
    harness.state_mut().set_explain(None, None);
    let err = harness.state().export_explanation(0, &dir).expect_err("nothing to export");
    assert!(err.contains("nothing to export"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Start the video correlation with `labels` and return the error it must end in.
fn correlation_refused(harness: &mut Harness<'_, AuscopeApp>, labels: LabelSource) -> String {
    harness.state_mut().start_video_correlation(4, Some(labels));
    step_until(harness, "refusal", |app| matches!(app.video_correlation(), Some(Err(_))));
    harness.state().video_correlation().expect("result").clone().expect_err("refused")
}

#[test]
fn au_correlation_over_a_video_compares_predictions_with_a_label_file() {
    use auscope_core::models::{ModelKind, PredictorKind};
    let mut harness = harness_with(video("single_face.mp4"));
    wait_for_frame(&mut harness);
    harness.state_mut().set_model(Some(PredictorKind::Net(ModelKind::Piap)), None);
    step_until(&mut harness, "model loaded", |app| app.model().is_some());
    // Labels of every 4th frame: AU12 on in the first half, AU06 with it on
    // every other labelled frame; AU24 and the rest are not in the file.
    let dir = scratch("gui-correlation");
    let csv = dir.join("labels.csv");
    let mut text = String::from("path,subject,frame,AU06,AU12\n");
    for (k, f) in (0..72).step_by(4).enumerate() {
        text += &format!("{},s1,{f},{},{}\n", video("single_face.mp4").display(), (k % 2 == 0) as u8, (f < 36) as u8);
    }
    std::fs::write(&csv, text).expect("csv");
    harness.state_mut().start_video_correlation(4, Some(LabelSource::File(csv)));
    step_until(&mut harness, "correlation", |app| app.video_correlation().is_some());
    let (c, skipped) = harness.state().video_correlation().expect("result").clone().expect("correlation");
    assert_eq!(c.matrices.len(), 2, "predictions and labels");
    assert_eq!(c.matrices[1].labels, vec!["AU06".to_string(), "AU12".to_string()], "the AUs model and file share");
    assert_eq!(c.frames + skipped.len(), 18, "every 4th of 72 frames: {skipped:?}");
    let d = c.distance.expect("distance");
    assert!(d.is_finite() && d >= 0.0, "{d}");
    // The labels' own AU06-AU12 correlation: half the AU06-on frames have AU12.
    let l = &c.matrices[1].values;
    assert!((l[0] - 1.0).abs() < 1e-5 && l[1].abs() < 0.5, "{l:?}");
    for _ in 0..3 {
        harness.step();
    }
    harness.get_by_label_contains("Distance (element-wise Euclidean)");

    // A file without the model's AUs is refused with the reason.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "path,subject,frame,smile\nx.mp4,s1,0,1\n").expect("csv");
    let err = correlation_refused(&mut harness, LabelSource::File(bad));
    assert!(err.contains("no AU column the model predicts"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn au_correlation_over_a_video_compares_predictions_with_a_coders_labels() {
    use auscope_core::annotations::store::{Change, Store, project_path};
    use auscope_core::annotations::{LabelKey, LabelValue};
    use auscope_core::models::{ModelKind, PredictorKind};
    let dir = scratch("gui-correlation-coder");
    let clip = dir.join("clip.mp4");
    std::fs::copy(video("single_face.mp4"), &clip).expect("copy the clip");
    // The coder labelled every 6th frame fully (AU06 on every other one,
    // AU12 in the first half), and frame 3 only partly.
    let label = |frame: usize, au: &str, on: bool| Change { key: LabelKey { frame, face: 0, au: au.into() }, value: Some(LabelValue::coded(on, None)) };
    let mut changes = vec![label(3, "AU12", true)];
    for (k, f) in (0..72).step_by(6).enumerate() {
        changes.push(label(f, "AU06", k % 2 == 0));
        changes.push(label(f, "AU12", f < 36));
    }
    Store::open_for_media(&clip).expect("project").edit("tester", "labels", &changes).expect("labels");

    let mut harness = harness_with(clip.clone());
    wait_for_frame(&mut harness);
    harness.state_mut().set_model(Some(PredictorKind::Net(ModelKind::Piap)), None);
    step_until(&mut harness, "model loaded", |app| app.model().is_some());
    assert_eq!(harness.state().review().coder(), "tester");
    harness.get_by_label("tester's labels");
    // Every 4th frame: the coder's frames (multiples of 6) are predicted too.
    harness.state_mut().start_video_correlation(4, Some(LabelSource::Coder("tester".into())));
    step_until(&mut harness, "correlation", |app| app.video_correlation().is_some());
    let (c, skipped) = harness.state().video_correlation().expect("result").clone().expect("correlation");
    assert!(skipped.is_empty(), "{skipped:?}");
    assert_eq!(c.matrices.len(), 2, "predictions and labels");
    assert_eq!(c.matrices[1].labels, vec!["AU06".to_string(), "AU12".to_string()], "the AUs the coder labelled");
    assert_eq!(c.frames, 12, "the 12 fully labelled frames; frame 3 is partial");
    // Hand-computed: AU06 and AU12 overlap on 3 of 12 frames, each on 6: r = 0.
    let l = &c.matrices[1].values;
    assert!((l[0] - 1.0).abs() < 1e-5 && l[1].abs() < 1e-5, "{l:?}");
    assert!(c.distance.is_some_and(|d| d.is_finite()));
    for _ in 0..3 {
        harness.step();
    }
    harness.get_by_label("Labels: tester's labels in this project");

    // A coder without labels is refused with the reason.
    let err = correlation_refused(&mut harness, LabelSource::Coder("nobody".into()));
    assert!(err.contains("'nobody' labelled none of the model's AUs"), "{err}");
    assert!(project_path(&clip).is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_coder_corrects_an_au_by_key_and_a_fine_tune_lists_a_new_version() {
    use auscope_core::annotations::Source;
    use auscope_core::annotations::store::{Store, project_path};
    use auscope_core::models::{ModelKind, PredictorKind};
    use eframe::egui::{Key, Modifiers};
    let dir = scratch("gui-review");
    let clip = dir.join("clip.mp4");
    std::fs::copy(video("single_face.mp4"), &clip).expect("copy the clip");
    let mut harness = harness_with(clip.clone());
    harness.state_mut().set_show_timings(false);
    harness.state_mut().review_mut().set_coder("alice");
    wait_for_frame(&mut harness);
    assert!(!project_path(&clip).exists(), "looking at a video creates no project file");
    harness.state_mut().set_model(Some(PredictorKind::Net(ModelKind::Piap)), None);
    step_until(&mut harness, "AUs shown", |app| app.selected_aus().is_some());
    let aus = harness.state().model().expect("model").aus.clone();
    let au12 = aus.iter().position(|a| a == "AU12").expect("PIAP detects AU12");
    step_until(&mut harness, "labels read", |app| !app.review().loading());
    let p12 = harness.state().selected_aus().expect("probabilities")[au12];
    harness.get_by_label_contains("label (alice)");

    // The row's number key flips the shown decision and saves it at once.
    const DIGITS: [Key; 9] = [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6, Key::Num7, Key::Num8, Key::Num9];
    harness.key_press(DIGITS[au12]);
    harness.step();
    harness.step();
    let coded = |clip: &std::path::Path| Store::open(&project_path(clip)).expect("project").labels(Some(Source::Coder), Some("alice")).expect("labels");
    let labels = coded(&clip);
    assert_eq!(labels.len(), 1, "{labels:?}");
    assert_eq!((labels[0].key.frame, labels[0].key.au.as_str()), (0, "AU12"));
    assert_eq!(labels[0].value.occurrence, p12 < 0.5, "the key flips the model's decision (p = {p12})");
    harness.get_by_label(if p12 < 0.5 { "present" } else { "absent" });
    // Undo and redo from the keyboard.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert!(coded(&clip).is_empty(), "undone");
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Y);
    harness.step();
    assert_eq!(coded(&clip).len(), 1, "redone");

    // Accept the model on three more frames (Enter), then fine-tune one epoch.
    for frame in [20, 40, 60] {
        harness.state_mut().seek(frame);
        step_until(&mut harness, "frame shown", |app| app.shown_frame() == Some(frame) && app.selected_aus().is_some());
        harness.key_press(Key::Enter);
        harness.step();
    }
    let labels = coded(&clip);
    assert_eq!(labels.len(), 1 + 3 * aus.len(), "frame 0's AU12 and every AU of three frames");
    harness.state_mut().review_mut().finetune.epochs = 1;
    harness.step();
    harness.get_by_label("Fine-tune on my corrections").click_accesskit();
    step_until(&mut harness, "fine-tune started", |app| app.review().finetune.running() || app.review().finetune.result.is_some());
    step_until(&mut harness, "fine-tune finished", |app| !app.review().finetune.running() && app.review().finetune.result.is_some());
    let version = harness.state().review().finetune.result.clone().expect("result").expect("fine-tune succeeded");
    assert_eq!(version.name, "v1");
    assert_eq!((version.train_faces, version.held_out_faces), (3, 1));
    assert!(version.weights().exists());
    assert_eq!(harness.state().review().finetune.versions.len(), 1, "the new version is listed");
    harness.get_by_label_contains("F1 on the held-out corrections");
    harness.get_by_label("v1");
    // Adopt it: the app switches to the version's weights.
    harness.get_by_label("Adopt").click_accesskit();
    step_until(&mut harness, "version in use", |app| app.model_request().and_then(|m| m.weights.clone()) == Some(version.weights()));
    harness.get_by_label("v1 (in use)");
    harness.get_by_label("Roll back").click_accesskit();
    step_until(&mut harness, "base weights again", |app| app.model_request().is_some_and(|m| m.weights.is_none()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn edits_a_newer_project_refuses_stay_in_memory_and_are_written_to_a_label_file() {
    use auscope_core::annotations::plain;
    use auscope_core::annotations::store::{Store, project_path};
    use auscope_core::models::{ModelKind, PredictorKind};
    use eframe::egui::Key;
    let dir = scratch("gui-newer-project");
    let clip = dir.join("clip.mp4");
    std::fs::copy(video("single_face.mp4"), &clip).expect("copy the clip");
    let project = project_path(&clip);
    Store::open(&project).expect("project").set_meta("format", "99").expect("meta");
    let before = std::fs::read(&project).expect("read");
    let mut harness = harness_with(clip.clone());
    wait_for_frame(&mut harness);
    harness.state_mut().set_model(Some(PredictorKind::Net(ModelKind::Piap)), None);
    step_until(&mut harness, "AUs shown", |app| app.selected_aus().is_some());
    let problem = harness.state().review().problem().unwrap_or_default().to_string();
    assert!(problem.contains("newer auscope"), "{problem}");
    harness.get_by_label_contains("made by a newer auscope");
    // An edit shows and waits in memory.
    harness.key_press(Key::Num1);
    harness.step();
    harness.step();
    assert_eq!(harness.state().review().unsaved(), 1);
    harness.get_by_label("1 edit(s) not saved yet (kept in memory)");
    // Leaving the media writes it to a label file next to the clip.
    harness.state_mut().open(face_image("single_face.jpg"));
    step_until(&mut harness, "other media", |app| app.review().unsaved() == 0);
    let rescued: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("clip.mp4.unsaved-")))
        .collect();
    assert_eq!(rescued.len(), 1, "{rescued:?}");
    let labels = plain::read(&rescued[0]).expect("a plain label file");
    assert_eq!(labels.len(), 1);
    assert_eq!((labels[0].key.frame, labels[0].key.au.as_str(), labels[0].who.as_str()), (0, "AU01", "tester"));
    assert_eq!(std::fs::read(&project).expect("read"), before, "the newer project is left unchanged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn analysing_a_video_keeps_every_frame_in_the_project_and_a_coder_merges_two_tracks() {
    use auscope_core::annotations::store::{Store, project_path};
    use auscope_core::models::PredictorKind;
    let dir = scratch("gui-analyse");
    // A face, a second of empty scene, the face again: two tracks.
    let clip = dir.join("twice.mp4");
    let one = video("single_face.mp4").display().to_string();
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i", &one, "-f", "lavfi", "-i", "color=black:s=640x360:r=30:d=1", "-i", &one, "-filter_complex"])
        .arg("[0:v]setsar=1[a];[1:v]setsar=1[b];[2:v]setsar=1[c];[a][b][c]concat=n=3:v=1[v]")
        .args(["-map", "[v]", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .output()
        .expect("ffmpeg");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut harness = harness_with(clip.clone());
    harness.state_mut().set_show_timings(false);
    wait_for_frame(&mut harness);
    harness.state_mut().set_model(Some(PredictorKind::BlendshapeBaseline), None);
    step_until(&mut harness, "AUs shown", |app| app.selected_aus().is_some());
    step_until(&mut harness, "labels read", |app| !app.review().loading());
    harness.get_by_label("Analyse video").click_accesskit();
    step_until(&mut harness, "analysis started", |app| app.review().analysing());
    step_until(&mut harness, "analysis finished", |app| !app.review().analysing() && !app.review().loading());
    let frames = harness.state().frame_count();
    harness.get_by_label_contains(&format!("analysed {frames} frames"));
    harness.get_by_label_contains(&format!("Analysed with blendshape-baseline: {frames} frames"));
    let store = Store::open(&project_path(&clip)).expect("project");
    let progress = store.analysis().expect("read").expect("analysed");
    assert!(progress.finished && progress.next == frames, "{progress:?}");
    let people = harness.state().review().index().people();
    assert_eq!(people.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1], "the face that came back is a new track: {people:?}");
    drop(harness);

    // Opened again: the whole timeline is there before any frame is predicted.
    let mut harness = harness_with(clip.clone());
    harness.state_mut().set_show_timings(false);
    wait_for_frame(&mut harness);
    harness.state_mut().set_model(Some(PredictorKind::BlendshapeBaseline), None);
    step_until(&mut harness, "labels read", |app| app.review().index().predictions.len() >= 140 && !app.review().loading());
    // On a frame of the second track, the coder says it is the first person.
    harness.state_mut().seek(frames - 10);
    step_until(&mut harness, "frame shown", |app| app.shown_frame() == Some(frames - 10) && app.selected_aus().is_some());
    harness.get_by_label_contains("person 1");
    harness.get_by_label("Same person as…").click_accesskit();
    harness.step();
    harness.step();
    harness.get_by_label_contains("person 0 (").click_accesskit();
    harness.step();
    harness.step();
    assert_eq!(Store::open(&project_path(&clip)).expect("project").identities().expect("ids"), std::collections::BTreeMap::from([(1, 0)]));
    harness.get_by_label_contains("Person 0 (track 1, merged)");
    assert_eq!(harness.state().review().index().people().len(), 1, "one person now");
    harness.get_by_label("Separate").click_accesskit();
    harness.step();
    assert!(Store::open(&project_path(&clip)).expect("project").identities().expect("ids").is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
