//! Per-frame cost of the foundation pipeline: video decode, BlazeFace
//! detection and 478-point landmarks, on the CPU (burn Flex) and on wgpu,
//! next to the original TFLite models measured in the same run.
//!
//! `cargo bench --bench pipeline` (release build). Needs ../shared/data; the
//! TFLite column needs `pip install ai-edge-litert numpy` (else "n/a").

use std::path::PathBuf;
use std::time::Instant;

use auscope_core::face::detector::{DetectorKind, FaceDetector};
use auscope_core::face::landmarker::{self, Landmarker};
use auscope_core::frame::{Roi, warp};
use auscope_core::source::open_source;
use auscope_core::{Compute, DeviceChoice};
use burn::tensor::Device;

const ITERS: usize = 20;

fn mean_ms(iters: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: kernel compilation, autotune, caches
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_secs_f64() * 1e3 / iters as f64
}

struct Row {
    stage: &'static str,
    cpu: f64,
    gpu: Option<f64>,
    reference: Option<f64>,
}

fn main() {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared");
    let video = shared.join("data/video/single_face.mp4");
    assert!(
        video.exists(),
        "needs ../shared/data (missing {})",
        video.display()
    );

    let mut source = open_source(&video).expect("video");
    let frames = source.info().frame_count;
    let start = Instant::now();
    let mut images = Vec::new();
    for i in 0..frames {
        images.push(source.frame(i).expect("frame").image);
    }
    let decode_ms = start.elapsed().as_secs_f64() * 1e3 / frames as f64;
    let image = images[frames / 2].clone();

    let gpu = Compute::init(DeviceChoice::Wgpu).ok();
    let mut devices: Vec<(String, Device)> = vec![("cpu".into(), Device::flex())];
    if let Some(c) = &gpu {
        devices.push((c.name.clone(), c.device.clone()));
    }
    let mut full = Vec::new();
    let mut short = Vec::new();
    let mut marks = Vec::new();
    for (_, device) in &devices {
        let det_full = FaceDetector::new(DetectorKind::Full, device).expect("detector");
        let det_short = FaceDetector::new(DetectorKind::Short, device).expect("detector");
        let lm = Landmarker::new(device).expect("landmarker");
        let face = det_full
            .detect(&image)
            .expect("detect")
            .into_iter()
            .next()
            .expect("a face");
        let roi: Roi = landmarker::roi_from_detection(&face);
        full.push(mean_ms(ITERS, || {
            drop(det_full.detect(&image).expect("detect"))
        }));
        short.push(mean_ms(ITERS, || {
            drop(det_short.detect(&image).expect("detect"))
        }));
        marks.push(mean_ms(ITERS, || {
            drop(lm.landmarks(&image, &[roi]).expect("landmarks"))
        }));
    }
    let warp_ms = mean_ms(ITERS, || {
        drop(warp(&image, &FaceDetector::letterbox(&image), 192))
    });

    let reference = std::process::Command::new("python3")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/bench_tflite.py"))
        .arg("--shared")
        .arg(&shared)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok());
    let r = |key: &str| reference.as_ref().and_then(|v| v[key].as_f64());

    let rows = [
        Row {
            stage: "video decode (640x360, ffmpeg)",
            cpu: decode_ms,
            gpu: None,
            reference: None,
        },
        Row {
            stage: "crop/letterbox warp (192)",
            cpu: warp_ms,
            gpu: None,
            reference: None,
        },
        Row {
            stage: "detect, full-range (192)",
            cpu: full[0],
            gpu: full.get(1).copied(),
            reference: r("detect_full_ms"),
        },
        Row {
            stage: "detect, short-range (128)",
            cpu: short[0],
            gpu: short.get(1).copied(),
            reference: r("detect_short_ms"),
        },
        Row {
            stage: "landmarks, 1 face (256)",
            cpu: marks[0],
            gpu: marks.get(1).copied(),
            reference: r("landmarks_ms"),
        },
    ];
    println!(
        "auscope pipeline benchmark, mean ms per frame over {ITERS} runs (frame {}x{})",
        image.width(),
        image.height()
    );
    println!(
        "wgpu device: {}",
        gpu.as_ref()
            .map_or("unavailable".into(), |c| c.name.clone())
    );
    println!(
        "burn columns: whole stage (crop, network, read-back, decoding); reference: MediaPipe TFLite via ai-edge-litert, CPU, 2 threads, network only{}",
        if reference.is_none() {
            " (unavailable)"
        } else {
            ""
        }
    );
    println!();
    println!(
        "| stage | burn cpu (Flex) ms | burn wgpu ms | TFLite ms | cpu / TFLite | wgpu / TFLite |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    };
    for row in rows {
        println!(
            "| {} | {:.2} | {} | {} | {} | {} |",
            row.stage,
            row.cpu,
            fmt(row.gpu),
            fmt(row.reference),
            ratio(Some(row.cpu), row.reference),
            ratio(row.gpu, row.reference)
        );
    }
}
