//! The face crops the AU models take, each with its crop-from-frame transform
//! so maps computed on the crop can be drawn back onto the frame.

use image::{DynamicImage, RgbImage};

use crate::face::Face;
use crate::frame::{Roi, to_gray_image, to_rgb_image, warp};

/// Side of the square crop relative to the detector box's longer side.
/// BlazeFace boxes stop at the brows and the lower lip line; 1.25x brings in
/// the forehead and chin the AU regions need. FAN-Trans takes such an
/// unaligned, box-based crop (no rotation), so all three specs do.
pub const BOX_MARGIN: f32 = 1.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CropSpec {
    /// 256x256 RGB: FAN, FAN-Trans, PIAP.
    Rgb256,
    /// 224x224 grayscale: TransAU.
    Gray224,
    /// 112x112 RGB: IResNet (LRP-ARL-FF).
    Rgb112,
}

impl CropSpec {
    pub const ALL: [CropSpec; 3] = [CropSpec::Rgb256, CropSpec::Gray224, CropSpec::Rgb112];

    pub fn size(self) -> usize {
        match self {
            CropSpec::Rgb256 => 256,
            CropSpec::Gray224 => 224,
            CropSpec::Rgb112 => 112,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CropSpec::Rgb256 => "256x256 RGB (FAN-Trans, PIAP)",
            CropSpec::Gray224 => "224x224 gray (TransAU)",
            CropSpec::Rgb112 => "112x112 RGB (IResNet)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FaceCrop {
    pub spec: CropSpec,
    pub image: DynamicImage,
    /// The square region of the frame the crop shows.
    pub roi: Roi,
}

/// The upright square around the detector box that model crops show.
pub fn model_roi(face: &Face) -> Roi {
    let b = face.detection.bbox;
    let side = (b[2] - b[0]).max(b[3] - b[1]) * BOX_MARGIN;
    Roi {
        center: [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0],
        side,
        angle: 0.0,
    }
}

pub fn crop_face(image: &RgbImage, face: &Face, spec: CropSpec) -> FaceCrop {
    let (rgb, roi) = crop_rgb(image, face, spec.size());
    let image = match spec {
        CropSpec::Gray224 => DynamicImage::ImageLuma8(to_gray_image(&rgb)),
        CropSpec::Rgb256 | CropSpec::Rgb112 => DynamicImage::ImageRgb8(rgb),
    };
    FaceCrop { spec, image, roi }
}

/// The upright box crop at any side (the AU models' input sizes are
/// configuration), with the region of the frame it shows.
pub fn crop_rgb(image: &RgbImage, face: &Face, size: usize) -> (RgbImage, Roi) {
    let roi = model_roi(face);
    (to_rgb_image(&warp(image, &roi, size), size), roi)
}
