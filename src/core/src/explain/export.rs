//! Writing an explanation to disk: per map an overlay PNG of the frame and
//! the raw map as `.npy`; per matrix a PNG and its `.npy`. The CLI and the
//! window's Export both write through here, so their files match.

use std::path::Path;

use image::RgbImage;
use serde::Serialize;

use super::Explanation;
use super::render::{OverlayStyle, matrix_image, overlay, write_npy};
use crate::error::CoreError;
use crate::frame::Roi;

/// One written pair of files, as `explain.json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ExportEntry {
    pub frame: usize,
    pub face: usize,
    /// The AU, landmark or matrix name.
    pub label: String,
    pub png: String,
    pub npy: String,
    /// Shape of the raw array.
    pub shape: Vec<usize>,
    /// For matrices: row/column labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Vec<String>>,
    /// The crop in frame pixels (centre, side, angle): where the map lies.
    pub roi: Roi,
}

/// `explain.json`: what was explained, and the files written.
#[derive(Debug, Clone, Serialize)]
pub struct ExportIndex {
    pub input: String,
    /// The model's name (e.g. "piap") and its weights' source.
    pub model: String,
    pub weights: String,
    pub method: super::Method,
    pub layer: Option<String>,
    pub note: String,
    pub files: Vec<ExportEntry>,
    /// Frames or faces that could not be explained, with the reason.
    pub skipped: Vec<String>,
}

impl ExportIndex {
    /// Write `explain.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<std::path::PathBuf, CoreError> {
        let path = dir.join("explain.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| CoreError::Explain(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| CoreError::Io { path: path.clone(), reason: e.to_string() })?;
        Ok(path)
    }
}

/// Which maps of an explanation to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapSelection<'a> {
    All,
    /// One map by label (an AU, "L34", "all").
    One(&'a str),
    /// None: matrices only.
    None,
}

/// Write `e` (explaining face `face` of frame `frame`, shown on `image`) to
/// `dir`, names starting with `base`. Fails on a label the explanation does
/// not have, listing those it has.
#[allow(clippy::too_many_arguments)]
pub fn write_explanation(
    dir: &Path,
    base: &str,
    image: &RgbImage,
    e: &Explanation,
    maps_wanted: MapSelection,
    style: &OverlayStyle,
    frame: usize,
    face: usize,
) -> Result<Vec<ExportEntry>, CoreError> {
    let mut out = Vec::new();
    let io = |p: &Path, err: String| CoreError::Io { path: p.to_path_buf(), reason: err };
    let save_png = |img: &RgbImage, name: &str| -> Result<String, CoreError> {
        let p = dir.join(name);
        img.save(&p).map_err(|err| io(&p, err.to_string()))?;
        Ok(name.to_string())
    };
    if let Some(maps) = &e.maps {
        let wanted: Vec<usize> = match maps_wanted {
            MapSelection::One(label) => vec![maps.index_of(label).ok_or_else(|| {
                CoreError::Explain(format!("{} has no map '{label}' (maps: {})", e.method.name(), maps.labels.join(", ")))
            })?],
            MapSelection::All => (0..maps.labels.len()).collect(),
            MapSelection::None => Vec::new(),
        };
        for i in wanted {
            let label = &maps.labels[i];
            let name = format!("{base}_{label}");
            let png = save_png(&overlay(image, maps.map(i), maps.width, maps.height, &e.roi, style), &format!("{name}.png"))?;
            let npy = format!("{name}.npy");
            write_npy(&dir.join(&npy), &[maps.height, maps.width], maps.map(i))?;
            out.push(ExportEntry { frame, face, label: label.clone(), png, npy, shape: vec![maps.height, maps.width], tokens: None, roi: e.roi });
        }
    }
    for (j, m) in e.matrices.iter().enumerate() {
        let n = m.labels.len();
        let name = format!("{base}_m{j:02}_{}", slug(&m.name));
        let png = save_png(&matrix_image(m, 16, style.colormap), &format!("{name}.png"))?;
        let npy = format!("{name}.npy");
        write_npy(&dir.join(&npy), &[n, n], &m.values)?;
        out.push(ExportEntry { frame, face, label: m.name.clone(), png, npy, shape: vec![n, n], tokens: Some(m.labels.clone()), roi: e.roi });
    }
    Ok(out)
}

/// A file-name-safe form of a name.
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_name_safe() {
        assert_eq!(slug("Layer 1 / head 3 (drop mask)"), "layer-1-head-3-drop-mask");
        assert_eq!(slug("AU12"), "au12");
    }
}
