//! MediaPipe's 478-point face landmarker (face_landmarks_detector.tflite from
//! face_landmarker.task) on burn, with the ROI logic of MediaPipe's face
//! landmarker graph: the rect from the detection box, rotated so the eyes
//! (keypoints 0 and 1) are level, enlarged 1.5x and made square.

use burn::tensor::Device;
use image::RgbImage;

use crate::embedded::FACE_LANDMARKER;
use crate::error::CoreError;
use crate::face::detector::Detection;
use crate::frame::{Border, Roi, warp_like_mediapipe};
use crate::graph::{Graph, GraphOutput};

pub const INPUT: usize = 256;
pub const ROI_SCALE: f32 = 1.5;
pub const NUM_LANDMARKS: usize = 478;

/// The landmarker's crop for a detection (DetectionsToRects + RectTransformation).
pub fn roi_from_detection(det: &Detection) -> Roi {
    roi_from_box(det.bbox, det.keypoints[0], det.keypoints[1])
}

/// MediaPipe's region for a box: rotated so the line `from` -> `to` is
/// level (DetectionsToRects), enlarged 1.5x and made square on its longer
/// side (RectTransformation).
pub fn roi_from_box(b: [f32; 4], [x0, y0]: [f32; 2], [x1, y1]: [f32; 2]) -> Roi {
    let angle = -(-(y1 - y0)).atan2(x1 - x0);
    let angle = (angle + std::f32::consts::PI).rem_euclid(2.0 * std::f32::consts::PI)
        - std::f32::consts::PI;
    let side = (b[2] - b[0]).max(b[3] - b[1]) * ROI_SCALE;
    Roi {
        center: [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0],
        side,
        angle,
    }
}

/// Landmarks of one face in frame pixels; z is relative depth in pixels.
#[derive(Debug, Clone)]
pub struct Landmarks {
    pub points: Vec<[f32; 3]>,
    /// Probability that the crop holds a face (sigmoid of the presence logit).
    pub presence: f32,
}

pub struct Landmarker {
    graph: Graph,
}

impl Landmarker {
    pub fn new(device: &Device) -> Result<Self, CoreError> {
        Ok(Landmarker {
            graph: Graph::from_bytes(FACE_LANDMARKER.graph_json, FACE_LANDMARKER.weights, device)?,
        })
    }

    pub fn device(&self) -> &Device {
        self.graph.device()
    }

    /// Raw outputs for already-sampled 256x256 crops (HWC, 0..255), one batch.
    pub fn run_network(&self, crops: &[Vec<f32>]) -> Result<Vec<GraphOutput>, CoreError> {
        self.graph.forward_hwc(crops, INPUT, 1.0 / 255.0, 0.0)
    }

    /// Landmarks for each ROI, all faces in one batch.
    pub fn landmarks(&self, image: &RgbImage, rois: &[Roi]) -> Result<Vec<Landmarks>, CoreError> {
        if rois.is_empty() {
            return Ok(Vec::new());
        }
        let crops: Vec<Vec<f32>> = rois.iter().map(|r| warp_like_mediapipe(image, r, INPUT, Border::Replicate)).collect();
        let outputs = self.run_network(&crops)?;
        let coords = outputs
            .iter()
            .find(|o| o.name == "Identity")
            .ok_or_else(|| CoreError::Graph("landmarker has no landmark output".into()))?;
        let presence = outputs
            .iter()
            .find(|o| o.name == "Identity_1")
            .ok_or_else(|| CoreError::Graph("landmarker has no presence output".into()))?;
        let per_face = NUM_LANDMARKS * 3;
        Ok(rois
            .iter()
            .enumerate()
            .map(|(f, roi)| {
                let raw = &coords.values[f * per_face..(f + 1) * per_face];
                let points = raw
                    .chunks_exact(3)
                    .map(|p| {
                        let [x, y] =
                            roi.frame_from_crop([p[0] / INPUT as f32, p[1] / INPUT as f32]);
                        [x, y, p[2] / INPUT as f32 * roi.side]
                    })
                    .collect();
                let logit = presence.values.get(f).copied().unwrap_or(f32::NEG_INFINITY);
                Landmarks {
                    points,
                    presence: 1.0 / (1.0 + (-logit).exp()),
                }
            })
            .collect())
    }
}
