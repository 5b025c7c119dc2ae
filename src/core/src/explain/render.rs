//! Explanations as pictures and arrays on the CPU: colour maps, the
//! crop-to-frame overlay (the same arithmetic as shaders/overlay.wgsl, which
//! the GUI runs on the GPU), matrix images, and .npy float arrays.

use std::io::Write;
use std::path::Path;

use image::{Rgb, RgbImage};
use serde::Serialize;

use super::Matrix;
use crate::error::CoreError;
use crate::frame::Roi;

/// Colour maps, from the `colorous` crate (matplotlib's viridis, Google's
/// turbo) and plain gray.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Colormap {
    #[default]
    Viridis,
    Turbo,
    Gray,
}

impl Colormap {
    pub const ALL: [Colormap; 3] = [Colormap::Viridis, Colormap::Turbo, Colormap::Gray];

    pub fn name(self) -> &'static str {
        match self {
            Colormap::Viridis => "viridis",
            Colormap::Turbo => "turbo",
            Colormap::Gray => "gray",
        }
    }

    /// The colour of `t` in [0, 1] (clamped).
    pub fn color(self, t: f32) -> [u8; 3] {
        let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
        match self {
            Colormap::Viridis => colorous::VIRIDIS.eval_continuous(t as f64).as_array(),
            Colormap::Turbo => colorous::TURBO.eval_continuous(t as f64).as_array(),
            Colormap::Gray => {
                let g = (t * 255.0).round() as u8;
                [g, g, g]
            }
        }
    }

    /// 256 RGBA entries, entry i = colour(i / 255): the GPU's lookup texture.
    pub fn lut(self) -> Vec<[u8; 4]> {
        (0..256).map(|i| {
            let [r, g, b] = self.color(i as f32 / 255.0);
            [r, g, b, 255]
        }).collect()
    }

    /// The LUT entry the shader picks for `t`.
    pub fn lut_color(self, t: f32) -> [u8; 3] {
        let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
        self.color((t * 255.0).round() / 255.0)
    }
}

impl std::str::FromStr for Colormap {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| CoreError::Explain(format!("unknown colour map '{s}' (viridis, turbo, gray)")))
    }
}

/// How a map is drawn: value range mapped onto the colour map, opacity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverlayStyle {
    pub colormap: Colormap,
    pub opacity: f32,
    /// Values at or below range[0] get the first colour, at or above
    /// range[1] the last.
    pub range: [f32; 2],
}

impl Default for OverlayStyle {
    fn default() -> Self {
        Self { colormap: Colormap::Viridis, opacity: 0.5, range: [0.0, 1.0] }
    }
}

impl OverlayStyle {
    pub fn normalise(&self, v: f32) -> f32 {
        let span = (self.range[1] - self.range[0]).max(1e-12);
        ((v - self.range[0]) / span).clamp(0.0, 1.0)
    }
}

/// Bilinear sample of a `w` x `h` map at normalised coordinates (u, v),
/// pixel centres at (i + 0.5) / w, clamped at the edges: what a GPU's
/// linear sampler with clamp-to-edge and cv2.resize do.
pub fn sample(map: &[f32], w: usize, h: usize, u: f32, v: f32) -> f32 {
    let x = (u * w as f32 - 0.5).clamp(0.0, (w - 1) as f32);
    let y = (v * h as f32 - 0.5).clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| map[yy * w + xx];
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// A map resized to `out_w` x `out_h` (half-pixel bilinear, as cv2.resize).
pub fn upsample(map: &[f32], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(out_w * out_h);
    for j in 0..out_h {
        for i in 0..out_w {
            out.push(sample(map, w, h, (i as f32 + 0.5) / out_w as f32, (j as f32 + 0.5) / out_h as f32));
        }
    }
    out
}

/// The frame with `map` (over the crop `roi`) blended on it: inside the
/// crop, pixel = (1 - opacity) * frame + opacity * colour(map).
pub fn overlay(frame: &RgbImage, map: &[f32], w: usize, h: usize, roi: &Roi, style: &OverlayStyle) -> RgbImage {
    let mut out = frame.clone();
    let a = style.opacity.clamp(0.0, 1.0);
    // Only the crop's bounding box can change.
    let corners = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]].map(|c| roi.frame_from_crop(c));
    let lo = |k: usize| corners.iter().map(|c| c[k]).fold(f32::INFINITY, f32::min).floor().max(0.0) as u32;
    let hi = |k: usize, lim: u32| (corners.iter().map(|c| c[k]).fold(f32::NEG_INFINITY, f32::max).ceil().max(0.0) as u32).min(lim);
    for y in lo(1)..hi(1, frame.height()) {
        for x in lo(0)..hi(0, frame.width()) {
            let [u, v] = roi.crop_from_frame([x as f32 + 0.5, y as f32 + 0.5]);
            if !(0.0..=1.0).contains(&u) || !(0.0..=1.0).contains(&v) {
                continue;
            }
            let c = style.colormap.lut_color(style.normalise(sample(map, w, h, u, v)));
            let p = out.get_pixel_mut(x, y);
            for (v, c) in p.0.iter_mut().zip(c) {
                *v = ((1.0 - a) * *v as f32 + a * c as f32).round() as u8;
            }
        }
    }
    out
}

/// A matrix as an image, `cell` pixels per entry (labels go in the index
/// file next to it).
pub fn matrix_image(m: &Matrix, cell: u32, colormap: Colormap) -> RgbImage {
    let n = m.labels.len() as u32;
    let style = OverlayStyle { colormap, opacity: 1.0, range: m.range };
    RgbImage::from_fn(n * cell, n * cell, |x, y| {
        let (r, c) = ((y / cell) as usize, (x / cell) as usize);
        let v = m.values.get(r * n as usize + c).copied().unwrap_or(0.0);
        Rgb(colormap.lut_color(style.normalise(v)))
    })
}

/// Write a little-endian f32 array in NumPy's .npy format (version 1.0):
/// magic, header dict padded to a multiple of 64 bytes, raw data. Written
/// by hand: the format is a dozen lines, and the npy crates pull in a
/// parser we do not need.
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), CoreError> {
    let io = |e: std::io::Error| CoreError::Io { path: path.to_path_buf(), reason: e.to_string() };
    if shape.iter().product::<usize>() != data.len() {
        return Err(CoreError::Explain(format!("{} values for shape {shape:?}", data.len())));
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    f.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    f.write_all(&(header.len() as u16).to_le_bytes()).map_err(io)?;
    f.write_all(header.as_bytes()).map_err(io)?;
    for v in data {
        f.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    f.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_hits_pixel_centres_and_clamps_at_edges() {
        let m = [0.0, 1.0, 2.0, 3.0]; // 2x2
        assert_eq!(sample(&m, 2, 2, 0.25, 0.25), 0.0);
        assert_eq!(sample(&m, 2, 2, 0.75, 0.75), 3.0);
        assert_eq!(sample(&m, 2, 2, 0.5, 0.25), 0.5);
        assert_eq!(sample(&m, 2, 2, 0.0, 0.0), 0.0, "clamped");
        let up = upsample(&m, 2, 2, 4, 4);
        assert_eq!(up.len(), 16);
        assert_eq!(up[0], 0.0);
        assert_eq!(up[15], 3.0);
    }

    #[test]
    fn an_overlay_changes_only_the_crop_and_follows_the_map() {
        let frame = RgbImage::from_pixel(40, 30, Rgb([100, 100, 100]));
        let roi = Roi { center: [20.0, 15.0], side: 10.0, angle: 0.0 };
        // Left half 0, right half 1.
        let map = [0.0, 1.0, 0.0, 1.0];
        let style = OverlayStyle { colormap: Colormap::Gray, opacity: 1.0, range: [0.0, 1.0] };
        let out = overlay(&frame, &map, 2, 2, &roi, &style);
        assert_eq!(out.get_pixel(0, 0).0, [100, 100, 100], "outside the crop");
        assert_eq!(out.get_pixel(15, 15).0, [0, 0, 0], "left edge of the crop: 0");
        assert_eq!(out.get_pixel(24, 15).0, [255, 255, 255], "right edge: 1");
        let half = overlay(&frame, &map, 2, 2, &roi, &OverlayStyle { opacity: 0.5, ..style });
        assert_eq!(half.get_pixel(24, 15).0, [178, 178, 178], "(100 + 255) / 2 rounded");
    }

    #[test]
    fn colour_maps_run_dark_to_bright() {
        for c in Colormap::ALL {
            let lum = |p: [u8; 3]| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32;
            if c != Colormap::Turbo {
                assert!(lum(c.color(1.0)) > lum(c.color(0.0)) + 100.0, "{c:?}");
            }
            assert_eq!(c.lut().len(), 256);
            assert_eq!(c.lut_color(0.5), c.color(128.0 / 255.0));
        }
        assert_eq!(Colormap::Viridis.color(0.0), [68, 1, 84]);
    }

    #[test]
    fn npy_files_have_numpy_headers() {
        let dir = std::env::temp_dir().join(format!("auscope-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("a.npy");
        write_npy(&p, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).expect("write");
        let bytes = std::fs::read(&p).expect("read");
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let hl = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hl]).expect("ascii");
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert_eq!(bytes.len(), 10 + hl + 24);
        assert_eq!(f32::from_le_bytes(bytes[10 + hl + 20..].try_into().expect("4 bytes")), 5.0);
        assert!(write_npy(&p, &[4], &[1.0]).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
