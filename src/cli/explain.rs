//! `auscope explain`: overlays and raw arrays per face and AU.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::Context;
use auscope_core::analysis::Engine;
use auscope_core::explain::export::{ExportIndex, MapSelection, write_explanation};
use auscope_core::explain::render::{Colormap, OverlayStyle};
use auscope_core::explain::{ExplainOptions, Method, explain, input_for, unavailable};
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::models::{ModelFiles, PredictorKind, open_predictor};
use auscope_core::source::open_source;
use auscope_core::{Compute, DeviceChoice};

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

pub fn run(input: &Path, kind: PredictorKind, files: ModelFiles, args: &Args, device: DeviceChoice) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.opacity) {
        anyhow::bail!("--opacity must be between 0 and 1");
    }
    let source = open_source(input)?;
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
    let mut index = ExportIndex {
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
    // The engine finds the faces (tracked where frames follow each other);
    // the model explains, not predicts, so the engine carries none.
    let engine = Engine::faces_only(pipeline);
    let which = match (&args.au, args.method) {
        (Some(au), _) => MapSelection::One(au),
        // FAN heat-maps: the aggregate unless a landmark is asked for.
        (None, Method::FanHeatmap) => MapSelection::One("all"),
        (None, _) => MapSelection::All,
    };
    let mut failed: Option<anyhow::Error> = None;
    engine.run(source, (0..count).step_by(args.every.max(1)).collect(), engine.tracker(), &mut |r, _| {
        let frame_index = r.index;
        let (Some(frame), None) = (&r.frame, &r.error) else {
            let e = r.error.clone().unwrap_or_default();
            eprintln!("frame {frame_index}: {e}");
            index.skipped.push(format!("frame {frame_index}: {e}"));
            return ControlFlow::Continue(());
        };
        if r.faces.is_empty() {
            index.skipped.push(format!("frame {frame_index}: no face"));
        }
        for (k, face) in r.faces.iter().map(|f| &f.face).enumerate() {
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
            match write_explanation(&args.out, &base, &frame.image, &e, which, &style, frame_index, k) {
                Ok(written) => {
                    println!("frame {frame_index} face {k}: {} file pairs ({})", written.len(), e.note);
                    index.files.extend(written);
                }
                Err(e) => {
                    failed = Some(e.into());
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let path = index.write(&args.out)?;
    eprintln!("wrote {} overlays and arrays, listed in {}", index.files.len(), path.display());
    if index.files.is_empty() {
        anyhow::bail!("nothing was explained: {}", index.skipped.join("; "));
    }
    Ok(())
}
