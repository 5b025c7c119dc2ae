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
    let area = |f: &Face| f.box_xywh()[2] * f.box_xywh()[3];
    faces.iter().max_by(|a, b| area(a).total_cmp(&area(b)))
}

/// Detector plus landmarker on one device.
pub struct FacePipeline {
    pub detector: FaceDetector,
    pub landmarker: Landmarker,
}

impl FacePipeline {
    pub fn new(kind: DetectorKind, device: &Device) -> Result<Self, CoreError> {
        Ok(FacePipeline {
            detector: FaceDetector::new(kind, device)?,
            landmarker: Landmarker::new(device)?,
        })
    }

    /// The device the face models run on.
    pub fn landmarker_device(&self) -> &Device {
        self.landmarker.device()
    }

    /// Every face in the image, best score first.
    pub fn faces(&self, image: &RgbImage) -> Result<Vec<Face>, CoreError> {
        let detections = self.detector.detect(image)?;
        let rois: Vec<Roi> = detections
            .iter()
            .map(landmarker::roi_from_detection)
            .collect();
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
            })
            .collect())
    }
}
