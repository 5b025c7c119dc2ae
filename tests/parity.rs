//! The burn ports of MediaPipe's networks against the original TFLite models
//! (fixtures written by tools/mediapipe_reference.py).

mod common;

use auscope_core::face::FacePipeline;
use auscope_core::face::blendshapes::BlendshapeNet;
use auscope_core::face::detector::{DetectorKind, FaceDetector};
use auscope_core::face::ibug68::IBUG68_FROM_MESH;
use auscope_core::face::landmarker::Landmarker;
use auscope_core::frame::load_image;
use burn::tensor::Device;
use common::*;

fn input_hwc(png: &str) -> Vec<f32> {
    let img = image::open(fixture(png)).expect("fixture png").to_rgb8();
    img.as_raw().iter().map(|&v| v as f32).collect()
}

fn detector_network(kind: DetectorKind, name: &str, device: &Device) {
    let det = FaceDetector::new(kind, device).expect("detector");
    let outputs = det
        .run_network(&input_hwc(&format!("mediapipe/net_blazeface_{name}.png")))
        .expect("forward");
    let reference = read_json(&fixture(&format!("mediapipe/net_blazeface_{name}.json")));
    let scores = outputs
        .iter()
        .find(|o| o.shape.last() == Some(&1))
        .expect("scores");
    let boxes = outputs
        .iter()
        .find(|o| o.shape.last() == Some(&16))
        .expect("boxes");
    let ref_scores = floats(&reference["scores"]);
    assert_eq!(scores.values.len(), ref_scores.len());
    let worst = scores
        .values
        .iter()
        .zip(&ref_scores)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-3,
        "{name}: score logits differ by {worst} (relative)"
    );
    let top = reference["top_anchors"].as_array().expect("top");
    for (k, idx) in top.iter().enumerate() {
        let i = idx.as_u64().expect("index") as usize;
        let want = floats(&reference["top_regressors"][k]);
        for (j, w) in want.iter().enumerate() {
            let got = boxes.values[i * 16 + j];
            assert!(
                (got - w).abs() <= 1e-3 * w.abs().max(1.0),
                "{name}: anchor {i} value {j}: {got} vs {w}"
            );
        }
    }
}

#[test]
fn blazeface_short_network_matches_tflite() {
    detector_network(DetectorKind::Short, "short", &Device::flex());
}

#[test]
fn blazeface_full_network_matches_tflite() {
    detector_network(DetectorKind::Full, "full", &Device::flex());
}

#[test]
fn landmarker_network_matches_tflite() {
    let lm = Landmarker::new(&Device::flex()).expect("landmarker");
    let outputs = lm
        .run_network(&[input_hwc("mediapipe/net_face_landmarker.png")])
        .expect("forward");
    let reference = read_json(&fixture("mediapipe/net_face_landmarker.json"));
    for name in ["Identity", "Identity_1"] {
        let got = &outputs.iter().find(|o| o.name == name).expect(name).values;
        let want = floats(&reference[name]);
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // Landmark coordinates are in 256-px input space: 0.02 px is far below annotation noise.
            assert!(
                (g - w).abs() <= 0.02f32.max(1e-3 * w.abs()),
                "{name}[{i}]: {g} vs {w}"
            );
        }
    }
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

/// Whole pipeline on real photos: same faces (IoU >= 0.95), landmarks within
/// 1% of the face box size, for both detectors.
#[test]
fn pipeline_matches_mediapipe_on_real_faces() {
    let device = Device::flex();
    for (kind, key) in [(DetectorKind::Full, "full"), (DetectorKind::Short, "short")] {
        let pipeline = FacePipeline::new(kind, &device).expect("pipeline");
        for name in [
            "single_face.jpg",
            "multi_face.jpg",
            "free-mountain-vector-01.jpg",
            "0-f1-su-ph.jpg",
            "45-m7-di-ph.jpg",
        ] {
            let stem = name.rsplit_once('.').map(|(s, _)| s).unwrap_or(name);
            let reference = read_json(&fixture(&format!("mediapipe/faces_{stem}.json")));
            let want = reference[key].as_array().expect("faces");
            let faces = pipeline
                .faces(&load_image(&face_image(name)).expect("image"))
                .expect("faces");
            assert_eq!(faces.len(), want.len(), "{key} {name}: face count");
            for w in want {
                let wbox: [f32; 4] = floats(&w["box"]).try_into().expect("box");
                let face = faces
                    .iter()
                    .max_by(|a, b| {
                        iou(a.detection.bbox, wbox).total_cmp(&iou(b.detection.bbox, wbox))
                    })
                    .expect("a face");
                let overlap = iou(face.detection.bbox, wbox);
                assert!(overlap >= 0.95, "{key} {name}: box IoU {overlap}");
                // Below presence 0.5 the crop holds no face (MediaPipe reports
                // no landmarks there) and its points mean nothing.
                if w["presence"].as_f64().expect("presence") < 0.5 {
                    continue;
                }
                let size = (wbox[2] - wbox[0]).max(wbox[3] - wbox[1]);
                let wl = w["landmarks478"].as_array().expect("landmarks");
                let errors: Vec<f32> = face
                    .landmarks478
                    .iter()
                    .zip(wl)
                    .map(|(got, want)| {
                        let want = floats(want);
                        ((got[0] - want[0]).powi(2) + (got[1] - want[1]).powi(2)).sqrt()
                    })
                    .collect();
                // Default (full-range) detector: every one of the 68 points within
                // 1.5% of the box. Both sides sample 8-bit crops as MediaPipe
                // does; the reference rounds with OpenCV's own code and f64
                // regions, ours with f32 regions, and a level's difference at
                // some pixels moves single points by up to ~1.1%. Short-range
                // on the group photo gives marginal, loose detections (scores
                // 0.55-0.64) whose weighted-NMS groups sit at the IoU 0.3
                // boundary, where f32 and f64 can differ by one member: 2% there.
                let limit = if kind == DetectorKind::Full {
                    0.015
                } else {
                    0.02
                };
                for (k, &i) in IBUG68_FROM_MESH.iter().enumerate() {
                    let err = errors[i];
                    assert!(
                        err <= limit * size,
                        "{key} {name}: iBUG point {k} off by {err:.2} px (box {size:.0} px)"
                    );
                }
                let mean = errors.iter().sum::<f32>() / errors.len() as f32;
                assert!(
                    mean <= 0.01 * size,
                    "{key} {name}: mean landmark error {mean:.2} px (box {size:.0} px)"
                );
            }
        }
    }
}

/// The blendshape network, fed MediaPipe's own landmarks, gives the TFLite
/// model's 52 scores; end to end (our landmarks) the AU-relevant scores
/// stay close.
#[test]
fn blendshapes_match_tflite() {
    let device = Device::flex();
    let net = BlendshapeNet::new(&device).expect("blendshape model");
    assert_eq!(net.names().len(), 52);
    assert_eq!(net.names()[9], "eyeBlinkLeft");
    let pipeline = FacePipeline::new(DetectorKind::Full, &device).expect("pipeline");
    let mut checked = 0;
    for stem in ["single_face", "multi_face", "0-f1-su-ph", "45-m7-di-ph"] {
        let reference = read_json(&fixture(&format!("mediapipe/faces_{stem}.json")));
        let want = reference["full"].as_array().expect("faces");
        let meshes: Vec<Vec<[f32; 3]>> = want
            .iter()
            .map(|w| {
                w["landmarks478"]
                    .as_array()
                    .expect("landmarks")
                    .iter()
                    .map(|p| floats(p).try_into().expect("xyz"))
                    .collect()
            })
            .collect();
        let refs: Vec<&[[f32; 3]]> = meshes.iter().map(|m| m.as_slice()).collect();
        let got = net.blendshapes(&refs).expect("blendshapes");
        for (g, w) in got.iter().zip(want) {
            let w = floats(&w["blendshapes52"]);
            let diff = g.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(diff <= 1e-4, "{stem}: network max |diff| {diff}");
            checked += 1;
        }
        // End to end: our detector + landmarker + blendshapes. Landmarks
        // agree to ~1% of the box, so scores move a little; 0.08 holds.
        let image = load_image(&face_image(&format!("{stem}.jpg"))).expect("image");
        let faces = pipeline.faces(&image).expect("faces");
        for w in want {
            let wbox: [f32; 4] = floats(&w["box"]).try_into().expect("box");
            let face = faces
                .iter()
                .max_by(|a, b| iou(a.detection.bbox, wbox).total_cmp(&iou(b.detection.bbox, wbox)))
                .expect("face");
            let got = &net.blendshapes(&[face.landmarks478.as_slice()]).expect("blendshapes")[0];
            let w = floats(&w["blendshapes52"]);
            let diff = got.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(diff <= 0.08, "{stem}: end-to-end max |diff| {diff}");
        }
    }
    assert_eq!(checked, 8);
}

/// The wgpu backend (lavapipe on CI) computes what Flex computes.
#[test]
fn wgpu_backend_matches_cpu() {
    let compute = match auscope_core::Compute::init(auscope_core::DeviceChoice::Wgpu) {
        Ok(c) => c,
        Err(e) => panic!("wgpu must be available for this test (install mesa-vulkan-drivers): {e}"),
    };
    let image = load_image(&face_image("single_face.jpg")).expect("image");
    let cpu = FacePipeline::new(DetectorKind::Full, &Device::flex())
        .expect("cpu")
        .faces(&image)
        .expect("cpu faces");
    let gpu = FacePipeline::new(DetectorKind::Full, &compute.device)
        .expect("gpu")
        .faces(&image)
        .expect("gpu faces");
    assert_eq!(cpu.len(), 1);
    assert_eq!(gpu.len(), 1);
    assert!(iou(cpu[0].detection.bbox, gpu[0].detection.bbox) > 0.99);
    for (a, b) in cpu[0].landmarks68.iter().zip(&gpu[0].landmarks68) {
        assert!(
            (a[0] - b[0]).abs() < 0.5 && (a[1] - b[1]).abs() < 0.5,
            "{a:?} vs {b:?}"
        );
    }
}
