//! `auscope explain`: overlays and raw arrays per face and AU.

use std::path::{Path, PathBuf};

use anyhow::Context;
use auscope_core::explain::render::{Colormap, OverlayStyle, matrix_image, overlay, write_npy};
use auscope_core::explain::{ExplainOptions, Explanation, Method, explain, input_for, unavailable};
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::models::{ModelFiles, PredictorKind, open_predictor};
use auscope_core::source::open_source;
use auscope_core::{Compute, DeviceChoice};
use serde::Serialize;

pub struct Args {
    pub method: Method,
    pub au: Option<String>,
    pub layer: Option<String>,
    pub colormap: Colormap,
    pub opacity: f32,
    pub every: usize,
    pub out: PathBuf,
    pub detector: DetectorKind,
}

/// One written pair of files, as explain.json lists it.
#[derive(Serialize)]
struct Entry {
    frame: usize,
    face: usize,
    /// The AU, landmark or matrix name.
    label: String,
    png: String,
    npy: String,
    /// Shape of the raw array.
    shape: Vec<usize>,
    /// For matrices: row/column labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens: Option<Vec<String>>,
    /// The crop in frame pixels (centre, side, angle): where the map lies.
    roi: auscope_core::frame::Roi,
}

#[derive(Serialize)]
struct Index {
    input: String,
    model: String,
    weights: String,
    method: Method,
    layer: Option<String>,
    note: String,
    files: Vec<Entry>,
    /// Frames or faces that could not be explained, with the reason.
    skipped: Vec<String>,
}

pub fn run(input: &Path, kind: PredictorKind, files: ModelFiles, args: &Args, device: DeviceChoice) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.opacity) {
        anyhow::bail!("--opacity must be between 0 and 1");
    }
    let mut source = open_source(input)?;
    let compute = Compute::init(device)?;
    eprintln!("device: {}", compute.status_line());
    let model = open_predictor(kind, files, &compute.device)?;
    super::announce_weights(&model, kind, &files);
    let options = ExplainOptions { layer: args.layer.clone() };
    if let Some(why) = unavailable(args.method, &options, &model, None) {
        anyhow::bail!("{}: {why}", args.method.name());
    }
    let pipeline = FacePipeline::new(args.detector, &compute.device).context("loading face models")?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let stem = input.file_stem().and_then(|s| s.to_str()).unwrap_or("input").to_string();
    let style = OverlayStyle { colormap: args.colormap, opacity: args.opacity, range: [0.0, 1.0] };
    let mut index = Index {
        input: input.display().to_string(),
        model: kind.name().into(),
        weights: model.source(),
        method: args.method,
        layer: args.layer.clone(),
        note: String::new(),
        files: Vec::new(),
        skipped: Vec::new(),
    };
    let count = source.info().frame_count;
    for frame_index in (0..count).step_by(args.every.max(1)) {
        let frame = match source.frame(frame_index) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("frame {frame_index}: {e}");
                index.skipped.push(format!("frame {frame_index}: {e}"));
                continue;
            }
        };
        let faces = pipeline.faces(&frame.image)?;
        if faces.is_empty() {
            index.skipped.push(format!("frame {frame_index}: no face"));
        }
        for (k, face) in faces.iter().enumerate() {
            let input = input_for(&model, &frame.image, face);
            let e = match explain(args.method, &options, &model, &input, &compute.device) {
                Ok(e) => e,
                Err(err) => {
                    eprintln!("frame {frame_index} face {k}: {err}");
                    index.skipped.push(format!("frame {frame_index} face {k}: {err}"));
                    continue;
                }
            };
            index.note = e.note.clone();
            let base = format!("{stem}_f{frame_index:05}_face{k}_{}", args.method.name());
            let written = write_face(&args.out, &base, &frame.image, &e, args, &style, frame_index, k)?;
            println!("frame {frame_index} face {k}: {} file pairs ({})", written.len(), e.note);
            index.files.extend(written);
        }
    }
    let path = args.out.join("explain.json");
    std::fs::write(&path, serde_json::to_string_pretty(&index)?).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {} overlays and arrays, listed in {}", index.files.len(), path.display());
    if index.files.is_empty() {
        anyhow::bail!("nothing was explained: {}", index.skipped.join("; "));
    }
    Ok(())
}

/// The files of one face; fails on an --au the explanation does not have.
#[allow(clippy::too_many_arguments)]
fn write_face(
    dir: &Path,
    base: &str,
    image: &image::RgbImage,
    e: &Explanation,
    args: &Args,
    style: &OverlayStyle,
    frame: usize,
    face: usize,
) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let save_png = |img: &image::RgbImage, name: &str| -> anyhow::Result<String> {
        let p = dir.join(name);
        img.save(&p).with_context(|| format!("writing {}", p.display()))?;
        Ok(name.to_string())
    };
    if let Some(maps) = &e.maps {
        let wanted: Vec<usize> = match (&args.au, args.method) {
            (Some(au), _) => vec![maps.index_of(au).ok_or_else(|| {
                anyhow::anyhow!("{} has no map '{au}' (maps: {})", args.method.name(), maps.labels.join(", "))
            })?],
            (None, Method::FanHeatmap) => vec![0],
            (None, _) => (0..maps.labels.len()).collect(),
        };
        for i in wanted {
            let label = &maps.labels[i];
            let name = format!("{base}_{label}");
            let png = save_png(&overlay(image, maps.map(i), maps.width, maps.height, &e.roi, style), &format!("{name}.png"))?;
            let npy = format!("{name}.npy");
            write_npy(&dir.join(&npy), &[maps.height, maps.width], maps.map(i))?;
            out.push(Entry { frame, face, label: label.clone(), png, npy, shape: vec![maps.height, maps.width], tokens: None, roi: e.roi });
        }
    }
    for (j, m) in e.matrices.iter().enumerate() {
        let n = m.labels.len();
        let name = format!("{base}_m{j:02}_{}", slug(&m.name));
        let png = save_png(&matrix_image(m, 16, args.colormap), &format!("{name}.png"))?;
        let npy = format!("{name}.npy");
        write_npy(&dir.join(&npy), &[n, n], &m.values)?;
        out.push(Entry { frame, face, label: m.name.clone(), png, npy, shape: vec![n, n], tokens: Some(m.labels.clone()), roi: e.roi });
    }
    Ok(out)
}

/// A file-name-safe form of a matrix name.
fn slug(s: &str) -> String {
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
