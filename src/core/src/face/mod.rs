//! Faces in a frame: detection, 478 landmarks, the 68-point iBUG subset, and
//! the crops the AU models see.

pub mod blendshapes;
pub mod crop;
pub mod detector;
pub mod ibug68;
pub mod landmarker;

use burn::tensor::Device;
use image::RgbImage;

use crate::error::CoreError;
use crate::frame::Roi;
pub use crop::{CropSpec, FaceCrop};
pub use detector::{Detection, DetectorKind, FaceDetector};
pub use landmarker::Landmarker;

/// One face, everything in frame pixels.
#[derive(Debug, Clone)]
pub struct Face {
    pub detection: Detection,
    /// The landmarker's rotated crop.
    pub roi: Roi,
    pub landmarks478: Vec<[f32; 3]>,
    pub landmarks68: Vec<[f32; 2]>,
    pub presence: f32,
    /// The face's identity across frames (the analysis engine's track id);
    /// None where no tracker ran.
    pub track: Option<u32>,
}

impl Face {
    /// Detector box as [x, y, width, height].
    pub fn box_xywh(&self) -> [f32; 4] {
        let b = self.detection.bbox;
        [b[0], b[1], b[2] - b[0], b[3] - b[1]]
    }
}

/// The face with the largest detector box (by area), if any.
pub fn largest(faces: &[Face]) -> Option<&Face> {
    largest_index(faces.iter()).map(|i| &faces[i])
}

/// The position of the face with the largest detector box (by area).
pub fn largest_index<'a>(faces: impl Iterator<Item = &'a Face>) -> Option<usize> {
    let area = |f: &Face| f.box_xywh()[2] * f.box_xywh()[3];
    faces.enumerate().max_by(|a, b| area(a.1).total_cmp(&area(b.1))).map(|(i, _)| i)
}

/// Detector plus landmarker on one device.
pub struct FacePipeline {
    pub detector: FaceDetector,
    /// MediaPipe's own face landmarker detects with the short-range model;
    /// with the full-range detector, this one places the landmark region of
    /// the faces both find, so they start from the region MediaPipe uses.
    pub region_detector: Option<FaceDetector>,
    pub landmarker: Landmarker,
}

impl FacePipeline {
    pub fn new(kind: DetectorKind, device: &Device) -> Result<Self, CoreError> {
        let region_detector = match kind {
            DetectorKind::Full => Some(FaceDetector::new(DetectorKind::Short, device)?),
            DetectorKind::Short => None,
        };
        Ok(FacePipeline {
            detector: FaceDetector::new(kind, device)?,
            region_detector,
            landmarker: Landmarker::new(device)?,
        })
    }

    /// The device the face models run on.
    pub fn landmarker_device(&self) -> &Device {
        self.landmarker.device()
    }

    /// Every face the detector finds, with the landmark region each starts
    /// from: the region detector's where it finds the same face (IoU > 0.5),
    /// else the detector's own.
    pub fn detect(&self, image: &RgbImage) -> Result<Vec<(Detection, Roi)>, CoreError> {
        let detections = self.detector.detect(image)?;
        let guides = match &self.region_detector {
            Some(d) => d.detect(image)?,
            None => Vec::new(),
        };
        Ok(detections
            .into_iter()
            .map(|d| {
                let guide = guides
                    .iter()
                    .map(|g| (g, detector::iou(&g.bbox, &d.bbox)))
                    .filter(|(_, v)| *v > 0.5)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(g, _)| g);
                let roi = landmarker::roi_from_detection(guide.unwrap_or(&d));
                (d, roi)
            })
            .collect())
    }

    /// Every face in the image, best score first (one still image, no tracking).
    pub fn faces(&self, image: &RgbImage) -> Result<Vec<Face>, CoreError> {
        let (detections, rois): (Vec<Detection>, Vec<Roi>) = self.detect(image)?.into_iter().unzip();
        let marks = self.landmarker.landmarks(image, &rois)?;
        Ok(detections
            .into_iter()
            .zip(rois)
            .zip(marks)
            .map(|((detection, roi), lm)| Face {
                landmarks68: ibug68::ibug68(&lm.points),
                detection,
                roi,
                landmarks478: lm.points,
                presence: lm.presence,
                track: None,
            })
            .collect())
    }
}
