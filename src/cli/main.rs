//! `auscope`: the headless command line.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::models::{AuModel, ModelFiles, ModelKind, PredictorKind, open_model, open_predictor, weights};
use auscope_core::training::config::{TrainConfig, load_dataset, unlabeled_dataset};
use auscope_core::training::prepare::prepare;
use auscope_core::training::trainer::{Auxiliary, RunFiles, TrainEvent, TrainJob, TrainOutcome, Trainer, evaluate_prepared};
use auscope_core::analysis::{AnalysedFace, Engine, EngineConfig};
use auscope_core::report::{AuFace, FaceJson};
use auscope_core::source::open_source;
use auscope_core::{Compute, DeviceChoice};
use clap::{Parser, Subcommand};

mod analyze;
mod explain;
mod project;

#[derive(Parser)]
#[command(
    name = "auscope",
    version,
    about = "Facial action unit detection and explanation"
)]
struct Cli {
    /// Compute device: auto (GPU if a hardware adapter exists, else CPU), wgpu, or cpu.
    #[arg(long, global = true, default_value = "auto")]
    device: DeviceChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect faces and their 68 landmarks in an image, a folder of images or a video.
    Faces {
        /// Image, folder or video (mp4, mov, avi, mkv).
        input: PathBuf,
        /// Print JSON: {"frames":[{"index":N,"faces":[{"box":[x,y,w,h],"score":S,"landmarks68":[[x,y],...]}]}]}
        #[arg(long)]
        json: bool,
        /// BlazeFace model: full (faces up to ~5 m, default) or short (close-ups).
        #[arg(long, default_value = "full")]
        detector: DetectorKind,
    },
    /// Run an AU model on every face of an image, a folder of images or a video.
    Infer {
        /// Image, folder or video (mp4, mov, avi, mkv).
        input: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON: {"model":M,"weights":W,"frames":[{"index":N,"faces":[{"box":[x,y,w,h],"aus":{"AU01":p,...}}]}]}
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "full")]
        detector: DetectorKind,
    },
    /// Analyse videos and image folders into one CSV per input (OpenFace's
    /// columns plus each model's AU probabilities; docs/analysis.md), with
    /// tracking and face identities; resumable, shardable.
    Analyze(analyze::Args),
    /// Train a model as a config file describes (docs/training.md): the
    /// paper's procedure, subject-exclusive folds, checkpoints in `out`.
    Train {
        #[arg(long)]
        config: PathBuf,
        /// Start over instead of resuming from the checkpoint in `out`.
        #[arg(long)]
        fresh: bool,
    },
    /// Evaluate weights on the held-out fold of a training config: per-AU
    /// F1, precision, recall, AUC, and the AU correlation distance.
    Eval {
        #[arg(long)]
        config: PathBuf,
        /// Weights to evaluate (default: model.bpk in the config's `out`).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Print the evaluation as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Explain a model's decisions: per face an overlay PNG and a raw float
    /// array (.npy) per AU (maps) or per matrix (au-attention), plus
    /// explain.json describing them.
    Explain {
        /// Image, folder or video (mp4, mov, avi, mkv).
        input: PathBuf,
        #[command(flatten)]
        model: ModelArgs,
        /// score-cam, fan-heatmap, pi-map (predefined), pi-map-learned,
        /// roi-attention, lanet-attention or au-attention.
        #[arg(long)]
        method: auscope_core::explain::Method,
        /// Only this map: an AU (AU12), or for fan-heatmap a landmark (L34)
        /// or "all" (fan-heatmap's default). Default: every AU.
        #[arg(long)]
        au: Option<String>,
        /// Score-CAM layer (default: the model's first; an unknown name lists them).
        #[arg(long)]
        layer: Option<String>,
        /// viridis, turbo or gray.
        #[arg(long, default_value = "viridis")]
        colormap: auscope_core::explain::render::Colormap,
        /// Overlay opacity, 0 to 1.
        #[arg(long, default_value_t = 0.5)]
        opacity: f32,
        /// Explain every n-th frame of a video.
        #[arg(long, default_value_t = 1)]
        every: usize,
        /// Output folder (created).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "full")]
        detector: DetectorKind,
    },
    /// A media file's labels (its project file `<media>.auscope`): import,
    /// export, agreement between sources, who labelled what.
    Labels {
        #[command(subcommand)]
        command: project::LabelsCommand,
    },
    /// Fine-tune a model on a project's coder-corrected frames: before/after
    /// per-AU F1 on held-out corrected frames, saved as a new model version
    /// next to the project (docs/annotations.md).
    Finetune {
        /// The project file (`<media>.auscope`) or its media file.
        #[arg(long)]
        project: PathBuf,
        /// fan-trans, transau, piap or lrp-arl-ff.
        #[arg(long)]
        model: String,
        /// Base weights (.bpk); default: the shipped demo weights.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// Only this coder's corrections (default: every coder's).
        #[arg(long)]
        coder: Option<String>,
        #[arg(long, default_value_t = 5)]
        epochs: usize,
        /// Fraction of the corrected faces held out (the last ones in frame order).
        #[arg(long, default_value_t = 0.2)]
        held_out: f32,
        /// Add the blendshape teacher's pseudo-labels of every Nth uncorrected frame.
        #[arg(long)]
        teacher_every: Option<usize>,
        /// Adopt the new version for this media (the app then uses it).
        #[arg(long)]
        adopt: bool,
    },
    /// Convert weights: a PyTorch checkpoint (+ config) to an auscope .bpk that
    /// carries its config, or a .bpk to a PyTorch-layout .safetensors.
    Convert {
        #[command(flatten)]
        model: ModelArgs,
        /// Output: .bpk (auscope) or .safetensors (PyTorch layout).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Which AU model, and the files it is built from.
#[derive(clap::Args)]
struct ModelArgs {
    /// fan-trans, transau, piap or lrp-arl-ff (infer also: blendshape-baseline).
    #[arg(long)]
    model: String,
    /// Weights: an auscope .bpk file, or a PyTorch checkpoint of the whole
    /// model (.safetensors, .pth, .pt). With no weights, config or backbone
    /// weights the model runs on its shipped demo weights and says so.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// A PyTorch checkpoint of the backbone alone (face-alignment FAN,
    /// torchvision Inception3/ResNet/EfficientNet, insightface IResNet).
    #[arg(long)]
    backbone_weights: Option<PathBuf>,
    /// Model config (JSON; a network built from it starts from random weights
    /// unless --weights is given); default with a PyTorch checkpoint: the
    /// paper's full-size configuration.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Key table for checkpoints from other code: JSON [["regex","replacement"],...],
    /// applied to every checkpoint key before auscope's own tables.
    #[arg(long)]
    key_map: Option<PathBuf>,
}

impl ModelArgs {
    fn files(&self) -> ModelFiles<'_> {
        ModelFiles {
            config: self.config.as_deref(),
            weights: self.weights.as_deref(),
            backbone_weights: self.backbone_weights.as_deref(),
            key_map: self.key_map.as_deref(),
        }
    }
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Faces {
            input,
            json,
            detector,
        } => faces(&input, json, detector, cli.device),
        Command::Infer {
            input,
            model,
            json,
            detector,
        } => infer(&input, &model.model, model.files(), json, detector, cli.device),
        Command::Explain { input, model, method, au, layer, colormap, opacity, every, out, detector } => {
            let kind = PredictorKind::parse(&model.model)?;
            let args = explain::Args { method, au, layer, colormap, opacity, every, out, detector };
            explain::run(&input, kind, model.files(), &args, cli.device)
        }
        Command::Analyze(args) => analyze::run(args, cli.device),
        Command::Convert { model, out } => convert(&model.model, model.files(), &out),
        Command::Train { config, fresh } => train(&config, fresh, cli.device),
        Command::Eval { config, weights, json } => eval(&config, weights.as_deref(), json, cli.device),
        Command::Labels { command } => project::labels(command),
        Command::Finetune { project, model, weights, coder, epochs, held_out, teacher_every, adopt } => project::finetune(
            project::FinetuneArgs { project, model, weights, coder, epochs, held_out, teacher_every, adopt },
            cli.device,
        ),
    }
}

/// The config's model, dataset split and prepared faces.
struct PreparedRun {
    config: TrainConfig,
    spec: auscope_core::models::ModelSpec,
    train: Vec<auscope_core::training::prepare::Prepared>,
    test: Vec<auscope_core::training::prepare::Prepared>,
    compute: Compute,
    engine: Engine,
}

/// A progress line on stderr for face preparation, every 25 frames.
fn progress(what: &str) -> impl FnMut(usize, usize) {
    let what = what.to_string();
    move |done, total| {
        if done % 25 == 0 || done == total {
            eprint!("\r{what}: {done}/{total} frames");
        }
    }
}

fn prepare_run(path: &std::path::Path, device: DeviceChoice) -> anyhow::Result<PreparedRun> {
    let config = TrainConfig::load(path)?;
    let spec = config.spec()?;
    let compute = Compute::init(device)?;
    eprintln!("device: {}", compute.status_line());
    let engine = Engine::faces_only(FacePipeline::new(DetectorKind::Full, &compute.device).context("loading face models")?);
    let data = load_dataset(&config.data, &spec.aus, &engine)?;
    eprintln!("data: {} labelled frames of {} subjects ({} rows skipped: missing or not-coded labels, or no face)", data.samples.len(), data.subjects().len(), data.skipped);
    let (train_idx, test_idx) = data.subject_folds(config.folds, config.fold)?;
    let size = spec.input().size;
    let (train, r1) = prepare(&data, &train_idx, size, &engine, &mut progress("preparing training faces"))?;
    eprintln!();
    let (test, r2) = prepare(&data, &test_idx, size, &engine, &mut progress("preparing held-out faces"))?;
    eprintln!();
    for r in [&r1, &r2] {
        if r.no_face > 0 {
            eprintln!("warning: {} frames without a face were left out", r.no_face);
        }
        for u in &r.unreadable {
            eprintln!("warning: {u}");
        }
    }
    eprintln!("fold {} of {}: {} training faces, {} held-out faces", config.fold, config.folds, train.len(), test.len());
    Ok(PreparedRun { config, spec, train, test, compute, engine })
}

fn train(path: &std::path::Path, fresh: bool, device: DeviceChoice) -> anyhow::Result<()> {
    let p = prepare_run(path, device)?;
    let params = p.config.params(&p.spec);
    let model = match &p.config.init_weights {
        Some(w) => weights::load(w, Some(p.spec.kind()), &p.compute.device)?,
        None => {
            // The initial weights come from the run's seed too, so a rerun
            // starts from the same network (burn's generator is per backend,
            // not per model).
            p.compute.device.seed(params.seed);
            AuModel::new(p.spec.clone(), &p.compute.device)?
        }
    };
    let pi_generator = match &p.config.pi_generator {
        Some(g) => Some(weights::load(g, Some(ModelKind::Piap), &p.compute.device).context("loading the PI generator")?),
        None => None,
    };
    let unlabeled = if p.config.unlabeled.is_empty() {
        Vec::new()
    } else {
        let data = unlabeled_dataset(&p.config.unlabeled, p.config.unlabeled_every, &p.spec.aus)?;
        let all: Vec<usize> = (0..data.samples.len()).collect();
        let (faces, report) = prepare(&data, &all, p.spec.input().size, &p.engine, &mut progress("preparing unlabelled faces"))?;
        eprintln!();
        if report.no_face > 0 {
            eprintln!("warning: {} unlabelled frames without a face were left out", report.no_face);
        }
        faces
    };
    let job = TrainJob::spawn(Trainer {
        model,
        params,
        train: p.train,
        test: p.test,
        out: RunFiles { dir: p.config.out.clone() },
        resume: !fresh,
        device: p.compute.device.clone(),
        aux: Auxiliary { pi_generator, unlabeled },
    })?;
    let mut steps = 0;
    let outcome = loop {
        let Ok(ev) = job.events.recv() else { anyhow::bail!("the training thread stopped without a result") };
        match ev {
            TrainEvent::Started { steps_per_epoch, epochs, resumed_from } => {
                steps = steps_per_epoch;
                if resumed_from > 0 {
                    eprintln!("resuming after epoch {resumed_from} of {epochs}");
                }
            }
            TrainEvent::Step { epoch, step, loss } => {
                let filled = (step + 1) * 30 / steps.max(1);
                eprint!("\repoch {:>3} [{:<30}] {}/{} loss {loss:.4}", epoch + 1, "#".repeat(filled), step + 1, steps);
            }
            TrainEvent::Epoch { epoch, train_loss, eval, score } => {
                eprintln!("\repoch {:>3} done: mean training loss {train_loss:.4}{:40}", epoch + 1, "");
                if let Some(e) = eval {
                    eprint!("{}", e.table());
                }
                if let Some(s) = score {
                    eprintln!("held-out {}: {:.2}", s.name, s.value);
                }
            }
            TrainEvent::Checkpoint(path) => eprintln!("checkpoint: {}", path.display()),
            TrainEvent::Finished(o) => break o,
        }
    };
    job.join();
    match outcome {
        TrainOutcome::Done { weights, .. } => {
            eprintln!("done: {}", weights.display());
            Ok(())
        }
        TrainOutcome::Cancelled { .. } => anyhow::bail!("cancelled"),
        TrainOutcome::Diverged { epoch, step, loss, weights } => anyhow::bail!(
            "training stopped at epoch {} step {}: loss {loss} (NaN or diverging); last good weights: {}",
            epoch + 1,
            step + 1,
            weights.map_or("none (no epoch finished)".to_string(), |w| w.display().to_string())
        ),
        TrainOutcome::Failed(e) => anyhow::bail!(e),
    }
}

fn eval(path: &std::path::Path, weights_path: Option<&std::path::Path>, json: bool, device: DeviceChoice) -> anyhow::Result<()> {
    let p = prepare_run(path, device)?;
    let w = weights_path.map(|w| w.to_path_buf()).unwrap_or_else(|| RunFiles { dir: p.config.out.clone() }.weights());
    let model = weights::load(&w, Some(p.spec.kind()), &p.compute.device)?;
    if model.spec.aus != p.spec.aus {
        anyhow::bail!("{}: the weights detect {:?}, the config asks for {:?}", w.display(), model.spec.aus, p.spec.aus);
    }
    if p.test.is_empty() {
        anyhow::bail!("the held-out fold has no faces");
    }
    let e = evaluate_prepared(&model, &p.test, 16, &p.compute.device)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", e.table());
    }
    Ok(())
}

/// Stream every frame of `input` through `engine`: text per frame unless
/// `json`, else one JSON object written as the frames come (`head` are its
/// leading fields, then `"frames":[...]`), progress on stderr, and a failed
/// frame reported and kept with its error. Fails only when no frame could
/// be processed.
fn stream_frames<T: serde::Serialize>(
    input: &std::path::Path,
    engine: &Engine,
    json: bool,
    head: &[(&str, String)],
    item: impl Fn(&AnalysedFace) -> T,
    show: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    let source = open_source(input)?;
    let count = source.info().frame_count;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        write!(out, "{{")?;
        for (k, v) in head {
            write!(out, "{}:{},", serde_json::to_string(k)?, serde_json::to_string(v)?)?;
        }
        write!(out, "\"frames\":[")?;
    }
    let mut failed = 0;
    let mut first = true;
    let mut write_err: Option<std::io::Error> = None;
    let summary = engine.run(source, (0..count).collect(), engine.tracker(), &mut |r, _| {
        let items: Vec<T> = r.faces.iter().map(&item).collect();
        if let Some(e) = &r.error {
            failed += 1;
            eprintln!("frame {}: {e}", r.index);
        }
        let written = if json {
            let frame = FrameItems { index: r.index, faces: items, error: r.error.clone() };
            let sep = if std::mem::take(&mut first) { "" } else { "," };
            serde_json::to_string(&frame).map_err(std::io::Error::other).and_then(|s| write!(out, "{sep}{s}"))
        } else if r.error.is_none() {
            let mut text = format!("frame {}: {} face(s)\n", r.index, items.len());
            for i in &items {
                text += &format!("  {}\n", show(i));
            }
            out.write_all(text.as_bytes())
        } else {
            Ok(())
        };
        if let Err(e) = written {
            write_err = Some(e);
            return std::ops::ControlFlow::Break(());
        }
        if count > 1 && (r.index + 1) % 25 == 0 {
            eprintln!("{}/{count} frames", r.index + 1);
        }
        std::ops::ControlFlow::Continue(())
    })?;
    if let Some(e) = write_err {
        return Err(e.into());
    }
    if json {
        writeln!(out, "]}}")?;
    }
    out.flush()?;
    if let Some(at) = summary.broke_off_at {
        eprintln!("warning: {} breaks off at frame {at} of {count}", input.display());
    }
    if failed == summary.frames {
        anyhow::bail!("no frame of {} could be processed", input.display());
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct FrameItems<T> {
    index: usize,
    faces: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn faces(
    input: &std::path::Path,
    json: bool,
    detector: DetectorKind,
    device: DeviceChoice,
) -> anyhow::Result<()> {
    let compute = Compute::init(device)?;
    eprintln!("device: {}", compute.status_line());
    let pipeline = FacePipeline::new(detector, &compute.device).context("loading face models")?;
    let engine = Engine::new(pipeline, Vec::new(), compute.device.clone(), EngineConfig::default());
    stream_frames(input, &engine, json, &[], |f| FaceJson::from(&f.face), |f: &FaceJson| {
        let b = f.bbox;
        format!("face {} box x={:.0} y={:.0} w={:.0} h={:.0} score={:.3}", f.id.map_or("-".into(), |i| i.to_string()), b[0], b[1], b[2], b[3], f.score)
    })
}

fn convert(model: &str, files: ModelFiles, out: &std::path::Path) -> anyhow::Result<()> {
    let kind = ModelKind::parse(model)?;
    if files.weights.is_none() && files.backbone_weights.is_none() {
        anyhow::bail!("nothing to convert: give --weights and/or --backbone-weights");
    }
    let device = burn::tensor::Device::flex();
    let model = open_model(kind, files, &device)?;
    match out.extension().and_then(|e| e.to_str()) {
        Some("bpk") => weights::save(&model, out)?,
        Some("safetensors") => weights::export_pytorch(&model, out)?,
        _ => anyhow::bail!("{}: the output must end in .bpk or .safetensors", out.display()),
    }
    eprintln!("wrote {} ({} weights from {})", out.display(), kind.title(), model.source);
    Ok(())
}

/// Say on stderr when a model runs on demo or random weights.
fn announce_weights(model: &auscope_core::models::Predictor, kind: PredictorKind, files: &ModelFiles) {
    if model.is_demo() {
        eprintln!(
            "note: no --weights: {} runs on its shipped demo weights (trained on blendshape-teacher pseudo-labels, \
             not on FACS-coded data; see models/README.md)",
            kind.title()
        );
    }
    if model.is_random() {
        eprintln!(
            "warning: no --weights: {} runs on randomly initialised weights{}; its probabilities mean nothing",
            kind.title(),
            if files.backbone_weights.is_some() { " (apart from the backbone)" } else { "" }
        );
    }
}

fn infer(
    input: &std::path::Path,
    model_name: &str,
    files: ModelFiles,
    json: bool,
    detector: DetectorKind,
    device: DeviceChoice,
) -> anyhow::Result<()> {
    let kind = PredictorKind::parse(model_name)?;
    // Refuse an unreadable input before loading any model.
    drop(open_source(input)?);
    let compute = Compute::init(device)?;
    eprintln!("device: {}", compute.status_line());
    let model = open_predictor(kind, files, &compute.device)?;
    announce_weights(&model, kind, &files);
    let aus = model.aus().to_vec();
    let weights = model.source();
    let pipeline = FacePipeline::new(detector, &compute.device).context("loading face models")?;
    let config = EngineConfig { batch_faces: if compute.gpu_device().is_some() { 16 } else { 1 }, ..Default::default() };
    let engine = Engine::new(pipeline, vec![model], compute.device.clone(), config);
    let head = [("model", kind.name().to_string()), ("weights", weights)];
    stream_frames(
        input,
        &engine,
        json,
        &head,
        |f| AuFace { id: f.face.track, bbox: f.face.box_xywh(), aus: aus.iter().cloned().zip(f.aus.first().cloned().unwrap_or_default()).collect() },
        |f: &AuFace| {
            let aus: Vec<String> = f.aus.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
            let b = f.bbox;
            format!("face {} box {:.0},{:.0},{:.0},{:.0}: {}", f.id.map_or("-".into(), |i| i.to_string()), b[0], b[1], b[2], b[3], aus.join(" "))
        },
    )
}
