//! The analysis engine against Google's MediaPipe FaceLandmarker on the same
//! video, in the same run, at 1 and 2 CPU cores (both sides pinned with the
//! same CPU set): end-to-end time per frame of the blendshape baseline, each
//! MediaPipe port's network alone against LiteRT, a paper network added,
//! the fidelity of the blendshape baseline's AU scores to MediaPipe's, a
//! GPU row when a hardware adapter exists, and resident memory over a long
//! video.
//!
//! `cargo bench --bench engine`. Needs ../shared/data, ffmpeg, and for the
//! reference columns `pip install mediapipe ai-edge-litert` (else "n/a").
//! AUSCOPE_BENCH_MINUTES sets the long video's length (default 3; the
//! flat-memory check of docs/benchmarks.md used 60).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use auscope_core::analysis::corpus::{Input, ModelInfo, Settings, analyse_file};
use auscope_core::analysis::table::{ModelColumns, Table};
use auscope_core::analysis::{Engine, EngineConfig};
use auscope_core::face::detector::{DetectorKind, FaceDetector};
use auscope_core::face::landmarker::{self, Landmarker};
use auscope_core::face::{FacePipeline, blendshapes::BlendshapeNet};
use auscope_core::frame::warp;
use auscope_core::models::teacher::BlendshapeTeacher;
use auscope_core::models::{ModelFiles, ModelKind, Predictor, PredictorKind, open_predictor};
use auscope_core::source::open_source;
use auscope_core::{Compute, DeviceChoice};
use burn::tensor::Device;

fn cpu_list(n: usize) -> String {
    (0..n).map(|c| c.to_string()).collect::<Vec<_>>().join(",")
}

#[derive(serde::Deserialize, Default)]
struct MediaPipeRun {
    frames: usize,
    ms_per_frame: f64,
    blendshapes: Vec<Option<Vec<f32>>>,
    #[serde(default)]
    images: std::collections::BTreeMap<String, Option<Vec<f32>>>,
}

fn mediapipe(shared: &Path, video: &Path, cpus: usize, image: Option<&Path>) -> Option<MediaPipeRun> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", &cpu_list(cpus), "python3", "tools/bench_mediapipe.py", "--task"])
        .arg(shared.join("data/mediapipe/face_landmarker.task"))
        .arg("--video")
        .arg(video)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(i) = image {
        cmd.arg("--image").arg(i);
    }
    let out = cmd.output().ok().filter(|o| o.status.success());
    let parsed = out.and_then(|o| serde_json::from_slice(&o.stdout).ok());
    if parsed.is_none() {
        eprintln!("MediaPipe column: n/a (python3 tools/bench_mediapipe.py failed; pip install mediapipe)");
    }
    parsed
}

#[derive(serde::Deserialize, Default)]
struct LiteRt {
    detect_full_ms: f64,
    detect_short_ms: f64,
    landmarks_ms: f64,
    blendshapes_ms: f64,
}

fn litert(shared: &Path, cpus: usize) -> Option<LiteRt> {
    let out = Command::new("taskset")
        .args(["-c", &cpu_list(cpus), "python3", "tools/bench_tflite.py", "--shared"])
        .arg(shared)
        .args(["--threads", &cpus.to_string(), "--iters", "50"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    let parsed = out.and_then(|o| serde_json::from_slice(&o.stdout).ok());
    if parsed.is_none() {
        eprintln!("LiteRT column: n/a (python3 tools/bench_tflite.py failed; pip install ai-edge-litert)");
    }
    parsed
}

fn engine(models: Vec<Predictor>, device: &Device, batch_faces: usize) -> Engine {
    let pipeline = FacePipeline::new(DetectorKind::Full, device).expect("face models");
    Engine::new(pipeline, models, device.clone(), EngineConfig { batch_faces, ..Default::default() })
}

fn teacher(device: &Device) -> Predictor {
    Predictor::Teacher(BlendshapeTeacher::new(&BlendshapeTeacher::all_aus(), device).expect("teacher"))
}

/// One engine pass over `video`: ms per frame, and the first face's AUs per frame.
fn run(engine: &Engine, video: &Path) -> (f64, Vec<Option<Vec<f32>>>) {
    let source = open_source(video).expect("video");
    let n = source.info().frame_count;
    let mut aus = Vec::with_capacity(n);
    let start = Instant::now();
    engine
        .run(source, (0..n).collect(), engine.tracker(), &mut |r, _| {
            aus.push(r.faces.first().and_then(|f| f.aus.first().cloned()));
            ControlFlow::Continue(())
        })
        .expect("run");
    let _ = engine.device().sync();
    (start.elapsed().as_secs_f64() * 1e3 / n as f64, aus)
}

fn mean_ms(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_secs_f64() * 1e3 / iters as f64
}

fn ratio(a: f64, b: Option<f64>) -> String {
    b.filter(|b| *b > 0.0).map_or("n/a".into(), |b| format!("{:.2}x", a / b))
}

fn opt(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}"))
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// What one pinned child process measures.
#[derive(serde::Serialize, serde::Deserialize)]
struct Measured {
    e2e_ms: f64,
    aus: Vec<Option<Vec<f32>>>,
    /// (network, ms)
    networks: Vec<(String, f64)>,
    /// The blendshape baseline + PIAP, ms per frame.
    with_piap_ms: f64,
}

/// Run in a child pinned to the CPU set (`taskset`), so every thread pool it
/// makes, rayon's included, sizes itself to those cores.
fn measure(video: &Path) -> Measured {
    let cpu = Device::flex();
    let e = engine(vec![teacher(&cpu)], &cpu, 1);
    run(&e, video); // warm-up
    let (e2e_ms, aus) = run(&e, video);
    let frames = open_source(video).expect("video").info().frame_count;
    let image = open_source(video).expect("video").frame(frames / 2).expect("frame").image;
    let full = FaceDetector::new(DetectorKind::Full, &cpu).expect("detector");
    let short = FaceDetector::new(DetectorKind::Short, &cpu).expect("detector");
    let lm = Landmarker::new(&cpu).expect("landmarker");
    let bs = BlendshapeNet::new(&cpu).expect("blendshapes");
    let full_in = warp(&image, &FaceDetector::letterbox(&image), 192);
    let short_in = warp(&image, &FaceDetector::letterbox(&image), 128);
    let det = full.detect(&image).expect("detect");
    let roi = landmarker::roi_from_detection(det.first().expect("a face in the clip"));
    let crop = warp(&image, &roi, landmarker::INPUT);
    let mesh = lm.landmarks(&image, &[roi]).expect("landmarks").remove(0).points;
    let networks = vec![
        ("detect_full".to_string(), mean_ms(50, || drop(full.run_network(&full_in)))),
        ("detect_short".to_string(), mean_ms(50, || drop(short.run_network(&short_in)))),
        ("landmarks".to_string(), mean_ms(50, || drop(lm.run_network(std::slice::from_ref(&crop))))),
        ("blendshapes".to_string(), mean_ms(50, || drop(bs.blendshapes(&[mesh.as_slice()])))),
    ];
    let piap = open_predictor(PredictorKind::Net(ModelKind::Piap), ModelFiles::default(), &cpu).expect("PIAP demo");
    let both = engine(vec![teacher(&cpu), piap], &cpu, 1);
    run(&both, video);
    let (with_piap_ms, _) = run(&both, video);
    Measured { e2e_ms, aus, networks, with_piap_ms }
}

fn child(cores: usize, video: &Path) -> Measured {
    let exe = std::env::current_exe().expect("bench executable");
    let out = Command::new("taskset")
        .args(["-c", &cpu_list(cores)])
        .arg(exe)
        .env("AUSCOPE_BENCH_CHILD", video)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the pinned child");
    assert!(out.status.success(), "pinned child failed");
    serde_json::from_slice(&out.stdout).expect("child JSON")
}

fn main() {
    if let Ok(video) = std::env::var("AUSCOPE_BENCH_CHILD") {
        let m = measure(Path::new(&video));
        println!("{}", serde_json::to_string(&m).expect("json"));
        return;
    }
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let video = shared.join("data/video/WolfgangLanger_Pexels.mp4");
    let surprise = shared.join("data/faces/0-f1-su-ph.jpg");
    assert!(video.exists(), "needs ../shared/data (missing {})", video.display());
    let cpu = Device::flex();
    let frames = open_source(&video).expect("video").info().frame_count;
    println!("auscope analysis engine vs MediaPipe FaceLandmarker (VIDEO mode), {} ({frames} frames, 640x360)", video.file_name().and_then(|n| n.to_str()).unwrap_or(""));
    println!();

    // End to end: decode, detection/tracking, landmarks, blendshapes.
    let runs: Vec<(usize, Option<MediaPipeRun>, Option<LiteRt>, Measured)> =
        [1, 2].into_iter().map(|cores| (cores, mediapipe(&shared, &video, cores, Some(&surprise)), litert(&shared, cores), child(cores, &video))).collect();
    println!("| cores | MediaPipe ms/frame | auscope blendshape baseline ms/frame | auscope / MediaPipe | auscope fps |");
    println!("|---:|---:|---:|---:|---:|");
    for (cores, mp, _, m) in &runs {
        let mp = mp.as_ref().map(|m| m.ms_per_frame);
        println!("| {cores} | {} | {:.2} | {} | {:.1} |", opt(mp), m.e2e_ms, ratio(m.e2e_ms, mp), 1e3 / m.e2e_ms);
    }
    println!("2 cores vs 1: {:.2}x faster (MediaPipe: {})", runs[0].3.e2e_ms / runs[1].3.e2e_ms, match (&runs[0].1, &runs[1].1) {
        (Some(a), Some(b)) => format!("{:.2}x", a.ms_per_frame / b.ms_per_frame),
        _ => "n/a".into(),
    });
    println!();

    // Each port's network alone, against LiteRT at the same thread count.
    println!("| network | cores | auscope ms | LiteRT ms | auscope / LiteRT |");
    println!("|---|---:|---:|---:|---:|");
    for (cores, _, lite, m) in &runs {
        for (key, name) in [("detect_full", "face detector, full range (192)"), ("detect_short", "face detector, short range (128)"), ("landmarks", "face landmarker (256)"), ("blendshapes", "blendshapes (146x2)")] {
            let ms = m.networks.iter().find(|(k, _)| k == key).map_or(f64::NAN, |(_, v)| *v);
            let r = lite.as_ref().map(|l| match key {
                "detect_full" => l.detect_full_ms,
                "detect_short" => l.detect_short_ms,
                "landmarks" => l.landmarks_ms,
                _ => l.blendshapes_ms,
            });
            println!("| {name} | {cores} | {ms:.2} | {} | {} |", opt(r), ratio(ms, r));
        }
    }
    println!();
    let piap_ms = runs[1].3.with_piap_ms;
    println!("blendshape baseline + PIAP (shipped demo), 2 cores: {piap_ms:.2} ms/frame = {:.1} frames/s", 1e3 / piap_ms);
    println!();
    let reference = runs[0].1.as_ref();
    let ours = &runs[0].3.aus;

    // Fidelity: our AU scores against MediaPipe's blendshapes through our table.
    if let Some(mp) = reference {
        let t = BlendshapeTeacher::new(&BlendshapeTeacher::all_aus(), &cpu).expect("teacher");
        println!("Fidelity to MediaPipe ({} frames with a face in both): per AU, decision (p >= 0.5) agreement and mean |difference|", mp.frames);
        println!("| AU | agreement | mean abs diff |");
        println!("|---|---:|---:|");
        let pairs: Vec<(Vec<f32>, Vec<f32>)> = ours.iter().zip(&mp.blendshapes).filter_map(|(a, b)| Some((a.clone()?, t.map(b.as_ref()?)))).collect();
        let mut worst: f64 = 1.0;
        let mut diffs = 0.0;
        for (j, au) in t.aus().iter().enumerate() {
            let agree = pairs.iter().filter(|(a, b)| (a[j] >= 0.5) == (b[j] >= 0.5)).count() as f64 / pairs.len().max(1) as f64;
            let mad = pairs.iter().map(|(a, b)| (a[j] - b[j]).abs() as f64).sum::<f64>() / pairs.len().max(1) as f64;
            worst = worst.min(agree);
            diffs += mad;
            println!("| {au} | {agree:.3} | {mad:.4} |");
        }
        println!("lowest agreement {worst:.3}; mean abs difference over AUs {:.4}", diffs / t.aus().len() as f64);
        let still = engine(vec![teacher(&cpu)], &cpu, 1);
        let img = open_source(&surprise).expect("image").frame(0).expect("frame");
        let r = still.frame(&mut still.tracker(), &img);
        let au01 = r.faces.first().and_then(|f| f.aus.first()).map(|p| p[0]);
        let mp01 = mp.images.values().next().cloned().flatten().map(|b| t.map(&b)[0]);
        println!("posed surprise photo, AU01: auscope {} MediaPipe {}", opt(au01.map(f64::from)), opt(mp01.map(f64::from)));
        println!();
    }

    // GPU: 16 faces a frame (a 4x4 grid of the clip), batch 16.
    match Compute::init(DeviceChoice::Auto) {
        Ok(c) if c.gpu_device().is_some() => {
            let dir = std::env::temp_dir().join(format!("auscope-bench-grid-{}", std::process::id()));
            std::fs::create_dir_all(&dir).ok();
            let grid = dir.join("grid.mp4");
            let v = video.to_str().unwrap_or("");
            let ok = Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-i", v, "-filter_complex"])
                .arg("[0:v]scale=320:180,split=4[a][b][c][d];[a][b][c][d]hstack=4,split=4[r1][r2][r3][r4];[r1][r2][r3][r4]vstack=4")
                .args(["-frames:v", "120"])
                .arg(&grid)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                let piap_gpu = open_predictor(PredictorKind::Net(ModelKind::Piap), ModelFiles::default(), &c.device).expect("PIAP");
                let g = engine(vec![teacher(&c.device), piap_gpu], &c.device, 16);
                run(&g, &grid);
                let (ms_gpu, aus) = run(&g, &grid);
                let faces = aus.len() as f64 * 16.0;
                let piap_cpu = open_predictor(PredictorKind::Net(ModelKind::Piap), ModelFiles::default(), &cpu).expect("PIAP");
                let cpu_engine = engine(vec![teacher(&cpu), piap_cpu], &cpu, 16);
                let (ms_cpu, _) = run(&cpu_engine, &grid);
                println!("16 faces a frame, batch 16, blendshape baseline + PIAP: {} {:.0} faces/s; CPU (2 cores) {:.0} faces/s ({} frames)", c.name, faces / (ms_gpu * aus.len() as f64 / 1e3), faces / (ms_cpu * aus.len() as f64 / 1e3), aus.len());
            }
        }
        Ok(c) => println!("GPU row skipped: {}", c.fallback_reason.unwrap_or_default()),
        Err(e) => println!("GPU row skipped: {e}"),
    }
    println!();

    // Resident memory over a long video (a loop of the clip, stream-copied).
    let minutes: f64 = std::env::var("AUSCOPE_BENCH_MINUTES").ok().and_then(|m| m.parse().ok()).unwrap_or(3.0);
    let dir = std::env::temp_dir().join(format!("auscope-bench-long-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok();
    let long = dir.join("long.mp4");
    let loops = (minutes * 60.0 / 15.7).ceil() as usize;
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-stream_loop", &loops.saturating_sub(1).to_string(), "-i"])
        .arg(&video)
        .args(["-c", "copy"])
        .arg(&long)
        .status()
        .is_ok_and(|s| s.success());
    if made {
        let e = engine(vec![teacher(&cpu)], &cpu, 1);
        let settings = Settings {
            models: vec![ModelInfo { name: "blendshape-baseline".into(), weights: "embedded".into() }],
            detector: DetectorKind::Full,
            tracker: e.config().tracker,
            table: Table { models: vec![ModelColumns { name: "blendshape-baseline".into(), aus: BlendshapeTeacher::all_aus() }], landmarks478: false },
        };
        let input = Input { path: long.clone(), name: "long".into() };
        let mut samples: Vec<(usize, f64)> = Vec::new();
        let start = Instant::now();
        let mut last = Instant::now();
        let outcome = analyse_file(&e, &input, &dir.join("out"), &settings, &mut |p| {
            if last.elapsed().as_secs_f64() > 2.0 || p.done == 1 {
                last = Instant::now();
                samples.push((p.done, rss_mb()));
            }
            true
        });
        let secs = start.elapsed().as_secs_f64();
        let total = open_source(&long).map(|s| s.info().frame_count).unwrap_or(0);
        println!("long video: {minutes} min, {total} frames, analysed to CSV in {secs:.0} s ({:.1} frames/s): {}", total as f64 / secs, if outcome.is_ok() { "ok" } else { "FAILED" });
        println!("| frames done | resident MB |");
        println!("|---:|---:|");
        let step = (samples.len() / 8).max(1);
        for (done, mb) in samples.iter().step_by(step).chain(samples.last()) {
            println!("| {done} | {mb:.0} |");
        }
        let peak = samples.iter().map(|s| s.1).fold(0.0, f64::max);
        println!("peak resident {peak:.0} MB");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
