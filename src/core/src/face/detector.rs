//! BlazeFace (MediaPipe face detection), short- and full-range, on burn.
//!
//! Post-processing follows MediaPipe's graphs: SSD anchors
//! (SsdAnchorsCalculator), box/keypoint decoding with sigmoid scores
//! (TensorsToDetectionsCalculator) and weighted non-maximum suppression
//! (NonMaxSuppressionCalculator, WEIGHTED, IoU 0.3). The image is letterboxed
//! into the square input with black borders, as ImageToTensorCalculator does
//! with keep_aspect_ratio.

use burn::tensor::Device;
use image::RgbImage;

use crate::embedded::{BLAZEFACE_FULL, BLAZEFACE_SHORT, EmbeddedGraph};
use crate::error::CoreError;
use crate::frame::{Border, Roi, warp_like_mediapipe};
use crate::graph::{Graph, GraphOutput};

/// Which BlazeFace model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// 128x128 input, faces within ~2 m (selfie distance).
    Short,
    /// 192x192 input, faces within ~5 m: group photos, the default.
    #[default]
    Full,
}

impl std::str::FromStr for DetectorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "short" => Ok(Self::Short),
            "full" => Ok(Self::Full),
            other => Err(format!("unknown detector {other:?} (short or full)")),
        }
    }
}

struct Spec {
    graph: EmbeddedGraph,
    input: usize,
    strides: &'static [usize],
    /// interpolated_scale_aspect_ratio == 1 adds a second anchor per cell and layer.
    two_per_layer: bool,
}

impl DetectorKind {
    fn spec(self) -> Spec {
        match self {
            DetectorKind::Short => Spec {
                graph: BLAZEFACE_SHORT,
                input: 128,
                strides: &[8, 16, 16, 16],
                two_per_layer: true,
            },
            DetectorKind::Full => Spec {
                graph: BLAZEFACE_FULL,
                input: 192,
                strides: &[4],
                two_per_layer: false,
            },
        }
    }
}

pub const MIN_SCORE: f32 = 0.5;
pub const NMS_IOU: f32 = 0.3;
/// Raw scores are clipped before the sigmoid, as MediaPipe's score_clipping_thresh.
const SCORE_CLIP: f32 = 100.0;

/// One face found by the detector, in frame pixels.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Detection {
    pub score: f32,
    /// [x_min, y_min, x_max, y_max]
    pub bbox: [f32; 4],
    /// Right eye, left eye, nose tip, mouth centre, right ear, left ear
    /// (the subject's right and left).
    pub keypoints: [[f32; 2]; 6],
}

/// SSD anchor centres in normalised input coordinates (fixed_anchor_size: w = h = 1).
pub fn anchors(input: usize, strides: &[usize], two_per_layer: bool) -> Vec<[f32; 2]> {
    let mut out = Vec::new();
    let mut layer = 0;
    while layer < strides.len() {
        let stride = strides[layer];
        let mut repeats = 0;
        while layer < strides.len() && strides[layer] == stride {
            repeats += if two_per_layer { 2 } else { 1 };
            layer += 1;
        }
        let cells = input.div_ceil(stride);
        for y in 0..cells {
            for x in 0..cells {
                let c = [
                    (x as f32 + 0.5) / cells as f32,
                    (y as f32 + 0.5) / cells as f32,
                ];
                out.extend(std::iter::repeat_n(c, repeats));
            }
        }
    }
    out
}

/// Intersection over union of two [x0, y0, x1, y1] boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// MediaPipe's weighted NMS: each kept detection is the score-weighted mean
/// of every remaining detection overlapping the best one, with the best's score.
pub fn weighted_nms(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = Vec::new();
    while let Some(top) = dets.first().cloned() {
        let (group, rest): (Vec<Detection>, Vec<Detection>) = dets
            .into_iter()
            .partition(|d| iou(&d.bbox, &top.bbox) > iou_threshold);
        let total: f32 = group.iter().map(|d| d.score).sum();
        let mut merged = Detection {
            score: top.score,
            bbox: [0.0; 4],
            keypoints: [[0.0; 2]; 6],
        };
        for d in &group {
            let w = d.score / total;
            for j in 0..4 {
                merged.bbox[j] += d.bbox[j] * w;
            }
            for (m, k) in merged.keypoints.iter_mut().zip(&d.keypoints) {
                m[0] += k[0] * w;
                m[1] += k[1] * w;
            }
        }
        kept.push(merged);
        dets = rest;
    }
    kept
}

pub struct FaceDetector {
    graph: Graph,
    input: usize,
    anchors: Vec<[f32; 2]>,
}

impl FaceDetector {
    pub fn new(kind: DetectorKind, device: &Device) -> Result<Self, CoreError> {
        let spec = kind.spec();
        let graph = Graph::from_bytes(spec.graph.graph_json, spec.graph.weights, device)?;
        let anchors = anchors(spec.input, spec.strides, spec.two_per_layer);
        Ok(FaceDetector {
            graph,
            input: spec.input,
            anchors,
        })
    }

    /// The square that letterboxes the whole frame.
    pub fn letterbox(image: &RgbImage) -> Roi {
        let (w, h) = (image.width() as f32, image.height() as f32);
        Roi {
            center: [w / 2.0, h / 2.0],
            side: w.max(h),
            angle: 0.0,
        }
    }

    /// Raw network outputs for an already-sampled input (HWC, 0..255).
    pub fn run_network(&self, input_hwc: &[f32]) -> Result<Vec<GraphOutput>, CoreError> {
        self.graph.forward_hwc(&[input_hwc.to_vec()], self.input, 1.0 / 127.5, -1.0)
    }

    /// Detect every face in the frame.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<Detection>, CoreError> {
        let letterbox = Self::letterbox(image);
        let input = warp_like_mediapipe(image, &letterbox, self.input, Border::Zero);
        let outputs = self.run_network(&input)?;
        let scores = outputs
            .iter()
            .find(|o| o.shape.last() == Some(&1))
            .ok_or_else(|| CoreError::Graph("detector has no score output".into()))?;
        let boxes = outputs
            .iter()
            .find(|o| o.shape.last() == Some(&16))
            .ok_or_else(|| CoreError::Graph("detector has no box output".into()))?;
        Ok(weighted_nms(
            self.decode(&scores.values, &boxes.values, &letterbox),
            NMS_IOU,
        ))
    }

    /// Anchor decoding, then letterbox removal to frame pixels.
    fn decode(&self, scores: &[f32], boxes: &[f32], letterbox: &Roi) -> Vec<Detection> {
        let size = self.input as f32;
        let to_frame = |p: [f32; 2]| letterbox.frame_from_crop(p);
        let mut dets = Vec::new();
        for (i, (&raw, anchor)) in scores.iter().zip(&self.anchors).enumerate() {
            let score = 1.0 / (1.0 + (-raw.clamp(-SCORE_CLIP, SCORE_CLIP)).exp());
            if score < MIN_SCORE {
                continue;
            }
            let r = &boxes[i * 16..(i + 1) * 16];
            let (cx, cy) = (r[0] / size + anchor[0], r[1] / size + anchor[1]);
            let (bw, bh) = (r[2] / size, r[3] / size);
            let p0 = to_frame([cx - bw / 2.0, cy - bh / 2.0]);
            let p1 = to_frame([cx + bw / 2.0, cy + bh / 2.0]);
            let mut keypoints = [[0.0; 2]; 6];
            for (k, kp) in keypoints.iter_mut().enumerate() {
                *kp = to_frame([
                    r[4 + 2 * k] / size + anchor[0],
                    r[5 + 2 * k] / size + anchor[1],
                ]);
            }
            dets.push(Detection {
                score,
                bbox: [p0[0], p0[1], p1[0], p1[1]],
                keypoints,
            });
        }
        dets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_counts_match_the_models() {
        assert_eq!(anchors(128, &[8, 16, 16, 16], true).len(), 896);
        assert_eq!(anchors(192, &[4], false).len(), 2304);
        // First anchors of the short model: two per cell in a 16x16 grid.
        let a = anchors(128, &[8, 16, 16, 16], true);
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[0], a[1]);
        assert_eq!(a[512], [0.5 / 8.0, 0.5 / 8.0]);
    }

    fn det(score: f32, x: f32) -> Detection {
        Detection {
            score,
            bbox: [x, 0.0, x + 10.0, 10.0],
            keypoints: [[x, 0.0]; 6],
        }
    }

    #[test]
    fn weighted_nms_blends_overlaps_and_keeps_separate_faces() {
        let out = weighted_nms(vec![det(0.6, 2.0), det(0.9, 0.0), det(0.8, 50.0)], 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        // (0.9*0 + 0.6*2) / 1.5
        assert!((out[0].bbox[0] - 0.8).abs() < 1e-6, "{:?}", out[0].bbox);
        assert_eq!(out[1].bbox[0], 50.0);
    }
}
