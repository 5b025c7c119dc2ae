//! Frames and the geometry that maps between a frame and a face crop.

use std::path::Path;
use std::sync::Arc;

use burn::tensor::{Device, Tensor, TensorData};
use image::{GrayImage, RgbImage};

use crate::error::CoreError;

/// Where a frame comes from: its index within its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FrameId {
    pub index: usize,
}

/// One decoded RGB frame. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: FrameId,
    pub image: Arc<RgbImage>,
}

/// Largest side accepted, so a hostile file cannot exhaust memory.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Decode an image file to RGB (grayscale and alpha images are converted;
/// alpha is dropped). Errors name the file and the reason.
pub fn load_image(path: &Path) -> Result<RgbImage, CoreError> {
    // The header is read first (cheaply) so an oversized image is refused
    // before any pixel memory is allocated.
    let (width, height) = image_reader(path)?
        .into_dimensions()
        .map_err(|e| CoreError::Image {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE {
        return Err(CoreError::TooLarge {
            path: path.to_owned(),
            width,
            height,
            limit: MAX_IMAGE_SIDE,
        });
    }
    let mut reader = image_reader(path)?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(2 << 30);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| CoreError::Image {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(decoded.to_rgb8())
}

/// A reader with its format guessed from the file's content, not its name.
fn image_reader(
    path: &Path,
) -> Result<image::ImageReader<std::io::BufReader<std::fs::File>>, CoreError> {
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| CoreError::Io {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// A rotated square region of a frame, in frame pixels: what a face crop shows.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Roi {
    pub center: [f32; 2],
    pub side: f32,
    /// Radians; the crop's x axis points along (cos, sin) in the frame.
    pub angle: f32,
}

impl Roi {
    /// Map a point in normalised crop coordinates ([0,1]^2) to frame pixels.
    pub fn frame_from_crop(&self, [u, v]: [f32; 2]) -> [f32; 2] {
        let (s, c) = self.angle.sin_cos();
        let (x, y) = ((u - 0.5) * self.side, (v - 0.5) * self.side);
        [
            self.center[0] + c * x - s * y,
            self.center[1] + s * x + c * y,
        ]
    }

    /// Map a frame pixel to normalised crop coordinates; inverse of `frame_from_crop`.
    pub fn crop_from_frame(&self, [px, py]: [f32; 2]) -> [f32; 2] {
        let (s, c) = self.angle.sin_cos();
        let (x, y) = (px - self.center[0], py - self.center[1]);
        [
            (c * x + s * y) / self.side + 0.5,
            (-s * x + c * y) / self.side + 0.5,
        ]
    }
}

/// Bilinear-sample `roi` of `image` into an `out x out` RGB buffer (HWC, 0..255).
/// Pixel centres sit at +0.5; samples outside the frame read as black. The
/// AU models' crops; the MediaPipe networks take [`warp_like_mediapipe`].
// Built per instruction set so `floor` is one instruction, not a libm call.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub fn warp(image: &RgbImage, roi: &Roi, out: usize) -> Vec<f32> {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let raw = image.as_raw();
    let (s, c) = roi.angle.sin_cos();
    let mut buf = Vec::with_capacity(out * out * 3);
    // A source texel's offset; None outside the frame.
    let at = |x: i64, y: i64| -> Option<usize> { (x >= 0 && y >= 0 && x < w && y < h).then(|| ((y * w + x) * 3) as usize) };
    for j in 0..out {
        let t = (j as f32 + 0.5) / out as f32 - 0.5;
        for i in 0..out {
            let u = (i as f32 + 0.5) / out as f32 - 0.5;
            let px = roi.center[0] + (c * u - s * t) * roi.side - 0.5;
            let py = roi.center[1] + (s * u + c * t) * roi.side - 0.5;
            let (x0, y0) = (px.floor(), py.floor());
            let (fx, fy) = (px - x0, py - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let weights = [(1.0 - fx) * (1.0 - fy), fx * (1.0 - fy), (1.0 - fx) * fy, fx * fy];
            let mut rgb = [0.0f32; 3];
            if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                // Inside: all four texels, no checks.
                let o = ((y0 * w + x0) * 3) as usize;
                let row = (w * 3) as usize;
                for (ch, v) in rgb.iter_mut().enumerate() {
                    *v = raw[o + ch] as f32 * weights[0] + raw[o + 3 + ch] as f32 * weights[1] + raw[o + row + ch] as f32 * weights[2] + raw[o + row + 3 + ch] as f32 * weights[3];
                }
            } else {
                for (k, (dx, dy)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
                    if let Some(o) = at(x0 + dx, y0 + dy) {
                        for (ch, v) in rgb.iter_mut().enumerate() {
                            *v += raw[o + ch] as f32 * weights[k];
                        }
                    }
                }
            }
            buf.extend(rgb);
        }
    }
    buf
}


/// What a crop reads outside the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Border {
    /// Black (MediaPipe's letterbox for the detector).
    Zero,
    /// The nearest edge pixel (OpenCV's BORDER_REPLICATE: MediaPipe's
    /// default, the landmarker's crop).
    Replicate,
}

/// `roi` sampled as MediaPipe's CPU ImageToTensorCalculator does it, so the
/// ported networks see the pixels the originals see: OpenCV's
/// warpPerspective from the region's corners to the output's (pixel centres
/// at integer coordinates), bilinear with 1/32-pixel fixed-point weights,
/// rounded to 8 bits. HWC values 0..255.
pub fn warp_like_mediapipe(image: &RgbImage, roi: &Roi, out: usize, border: Border) -> Vec<f32> {
    let mut buf = vec![0.0f32; out * out * 3];
    for (j, row) in buf.chunks_exact_mut(out * 3).enumerate() {
        warp_row(image, roi, out, border, j, row);
    }
    buf
}

// Built per instruction set so `floor` is one instruction, not a libm call.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
fn warp_row(image: &RgbImage, roi: &Roi, out: usize, border: Border, j: usize, row: &mut [f32]) {
    let (w, h) = (image.width() as i64, image.height() as i64);
    let raw = image.as_raw();
    let (s, c) = (roi.angle as f64).sin_cos();
    let side = roi.side as f64;
    let (cx, cy) = (roi.center[0] as f64, roi.center[1] as f64);
    let texel = |x: i64, y: i64| -> Option<usize> {
        match border {
            Border::Replicate => Some(((y.clamp(0, h - 1) * w + x.clamp(0, w - 1)) * 3) as usize),
            Border::Zero => (x >= 0 && y >= 0 && x < w && y < h).then(|| ((y * w + x) * 3) as usize),
        }
    };
    // OpenCV's inverse map: frame = M (i, j, 1), as warpPerspective computes it.
    let k = side / out as f64;
    let (m00, m01, m02) = (c * k, -s * k, cx - (c - s) * side / 2.0);
    let (m10, m11, m12) = (s * k, c * k, cy - (s + c) * side / 2.0);
    let (row_x, row_y) = (m01 * j as f64 + m02, m11 * j as f64 + m12);
    let stride = (w * 3) as usize;
    for (i, px_out) in row.chunks_exact_mut(3).enumerate() {
        let px = m00 * i as f64 + row_x;
        let py = m10 * i as f64 + row_y;
        // OpenCV: coordinates in 1/32 pixel, rounded; weights in 1/1024.
        let (xf, yf) = ((px * 32.0 + 0.5).floor() as i64, (py * 32.0 + 0.5).floor() as i64);
        let (x0, y0) = (xf >> 5, yf >> 5);
        let (fx, fy) = (xf & 31, yf & 31);
        let weights = [(32 - fx) * (32 - fy), fx * (32 - fy), (32 - fx) * fy, fx * fy];
        if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
            // All four texels inside: two 6-byte runs, no checks per texel.
            let o = ((y0 * w + x0) * 3) as usize;
            let (top, bottom) = (&raw[o..o + 6], &raw[o + stride..o + stride + 6]);
            let wt = weights.map(|x| x as u32);
            for ch in 0..3 {
                let a = top[ch] as u32 * wt[0] + top[ch + 3] as u32 * wt[1] + bottom[ch] as u32 * wt[2] + bottom[ch + 3] as u32 * wt[3];
                px_out[ch] = ((a + 512) >> 10) as f32;
            }
            continue;
        }
        let mut acc = [0i64; 3];
        for (k, (dx, dy)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
            if let Some(o) = texel(x0 + dx, y0 + dy) {
                for (ch, a) in acc.iter_mut().enumerate() {
                    *a += raw[o + ch] as i64 * weights[k];
                }
            }
        }
        for (d, a) in px_out.iter_mut().zip(acc) {
            *d = ((a + 512) >> 10).clamp(0, 255) as f32;
        }
    }
}

/// Stack HWC crops of side `size` into an NCHW tensor, mapping 0..255 to
/// `scale * v + offset`.
pub fn crops_to_tensor(
    crops: &[Vec<f32>],
    size: usize,
    scale: f32,
    offset: f32,
    device: &Device,
) -> Tensor<4> {
    let n = crops.len();
    let mut data = Vec::with_capacity(n * 3 * size * size);
    for crop in crops {
        for ch in 0..3 {
            data.extend(crop.chunks_exact(3).map(|px| px[ch] * scale + offset));
        }
    }
    Tensor::from_data(TensorData::new(data, [n, 3, size, size]), device)
}

/// Round a sampled HWC buffer back to an 8-bit RGB image.
pub fn to_rgb_image(buf: &[f32], size: usize) -> RgbImage {
    let bytes = buf
        .iter()
        .map(|v| v.round().clamp(0.0, 255.0) as u8)
        .collect();
    RgbImage::from_raw(size as u32, size as u32, bytes)
        .unwrap_or_else(|| RgbImage::new(size as u32, size as u32))
}

/// ITU-R BT.601 luma, as OpenCV's and PIL's RGB->gray conversions compute it.
pub fn to_gray_image(rgb: &RgbImage) -> GrayImage {
    GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let p = rgb.get_pixel(x, y).0;
        let l = 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
        image::Luma([l.round().clamp(0.0, 255.0) as u8])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roi_maps_round_trip() {
        let roi = Roi {
            center: [100.0, 50.0],
            side: 40.0,
            angle: 0.3,
        };
        let p = roi.frame_from_crop([0.2, 0.9]);
        let q = roi.crop_from_frame(p);
        assert!(
            (q[0] - 0.2).abs() < 1e-5 && (q[1] - 0.9).abs() < 1e-5,
            "{q:?}"
        );
        assert_eq!(roi.frame_from_crop([0.5, 0.5]), [100.0, 50.0]);
    }

    #[test]
    fn warp_identity_reproduces_pixels() {
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([(x * 30) as u8, (y * 30) as u8, 7]));
        let roi = Roi {
            center: [4.0, 4.0],
            side: 8.0,
            angle: 0.0,
        };
        let out = warp(&img, &roi, 8);
        for (i, px) in out.chunks_exact(3).enumerate() {
            let (x, y) = (i % 8, i / 8);
            assert_eq!(px, &[(x * 30) as f32, (y * 30) as f32, 7.0]);
        }
    }

    #[test]
    fn warp_outside_is_black() {
        let img = RgbImage::from_pixel(4, 4, image::Rgb([255, 255, 255]));
        let roi = Roi {
            center: [100.0, 100.0],
            side: 4.0,
            angle: 0.0,
        };
        assert!(warp(&img, &roi, 4).iter().all(|&v| v == 0.0));
    }
}
