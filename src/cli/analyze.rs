//! `auscope analyze`: videos and image folders to one CSV each (or into
//! each one's project with `--project`), through the core's analysis
//! engine, with a progress bar per file and in total.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use auscope_core::analysis::corpus::{FileOutcome, Input, ModelInfo, Settings, Shard, analyse_file, collect_inputs};
use auscope_core::analysis::project::{ProjectOutcome, analyse_into_project};
use auscope_core::analysis::table::{ModelColumns, Table};
use auscope_core::annotations::analysed::StoredModel;
use auscope_core::annotations::store::Store;
use auscope_core::analysis::{Engine, EngineConfig, TrackerConfig};
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::models::{ModelFiles, PredictorKind, open_predictor};
use auscope_core::{Compute, DeviceChoice};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(clap::Args)]
pub struct Args {
    /// Videos, images, or folders (each video in a folder, and its images as one sequence).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// A model, optionally with its weights: NAME or NAME=WEIGHTS.bpk. Repeat
    /// for several; the first one's decisions fill the AUxx_c columns.
    #[arg(long = "model", required = true)]
    pub models: Vec<String>,
    /// Output folder: <name>.csv and <name>.json per input.
    #[arg(long, required_unless_present = "project", conflicts_with = "project")]
    pub out: Option<PathBuf>,
    /// Store the results in each input's project (<input>.auscope next to
    /// it, as the window's "Analyse video") instead of CSV files.
    #[arg(long)]
    pub project: bool,
    /// Files analysed at a time.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Only this part of the (sorted) inputs: I/N, 0 <= I < N, e.g. $SLURM_ARRAY_TASK_ID/4.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Also write the 478-point mesh (mesh_x_i, mesh_y_i, mesh_z_i).
    #[arg(long)]
    pub landmarks478: bool,
    /// Run the face detector every K frames to find faces that entered (0: only when a face is lost).
    #[arg(long, default_value_t = TrackerConfig::default().detect_every)]
    pub detect_every: usize,
    #[arg(long, default_value = "full")]
    pub detector: DetectorKind,
    /// No progress bars (one line per file instead).
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: Args, device: DeviceChoice) -> anyhow::Result<()> {
    let found = collect_inputs(&args.inputs)?;
    for s in &found.skipped {
        eprintln!("skipped {s}");
    }
    let files: Vec<Input> = match args.shard {
        Some(s) => s.take(found.files),
        None => found.files,
    };
    if files.is_empty() {
        anyhow::bail!("no video or image to analyse");
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create the output folder {}", out.display()))?;
    }
    let compute = Compute::init(device)?;
    eprintln!("device: {}", compute.status_line());
    let mut models = Vec::new();
    let mut infos = Vec::new();
    let mut stored = Vec::new();
    for spec in &args.models {
        let (name, weights) = match spec.split_once('=') {
            Some((n, w)) => (n, Some(PathBuf::from(w))),
            None => (spec.as_str(), None),
        };
        let kind = PredictorKind::parse(name)?;
        let files = ModelFiles { weights: weights.as_deref(), ..Default::default() };
        let model = open_predictor(kind, files, &compute.device).with_context(|| format!("model {spec}"))?;
        super::announce_weights(&model, kind, &files);
        stored.push(StoredModel { who: kind.stored_name(weights.as_deref()), aus: model.aus().to_vec(), weights: model.source() });
        infos.push((ModelInfo { name: kind.name().into(), weights: model.source() }, ModelColumns { name: kind.name().into(), aus: model.aus().to_vec() }));
        models.push(model);
    }
    let pipeline = FacePipeline::new(args.detector, &compute.device).context("loading face models")?;
    let config = EngineConfig { tracker: TrackerConfig { detect_every: args.detect_every, ..Default::default() }, batch_faces: if compute.gpu_device().is_some() { 16 } else { 1 }, ..Default::default() };
    let settings = Settings {
        models: infos.iter().map(|(i, _)| i.clone()).collect(),
        detector: args.detector,
        tracker: config.tracker,
        table: Table { models: infos.into_iter().map(|(_, c)| c).collect(), landmarks478: args.landmarks478 },
    };
    let engine = Engine::new(pipeline, models, compute.device.clone(), config);

    let bars = MultiProgress::with_draw_target(if args.quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() });
    let total = bars.add(ProgressBar::new(files.len() as u64));
    total.set_style(ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} files  {elapsed_precise} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> "));
    total.set_prefix("total");
    let file_style = ProgressStyle::with_template("{prefix:>20.dim} [{bar:30}] {pos}/{len} frames {per_sec} eta {eta}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let say = |line: String| {
        if args.quiet {
            eprintln!("{line}");
        } else {
            bars.suspend(|| eprintln!("{line}"));
        }
    };
    std::thread::scope(|scope| {
        for j in 0..args.jobs.clamp(1, files.len()) {
            let (engine, files, next, failures, bars, total, file_style, settings, say, out, stored) =
                (&engine, &files, &next, &failures, &bars, &total, &file_style, &settings, &say, args.out.as_deref(), &stored);
            let detector = args.detector;
            let worker = std::thread::Builder::new().name(format!("auscope-analyze-{j}")).spawn_scoped(scope, move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = files.get(i) else { break };
                    let bar = bars.insert_before(total, ProgressBar::new(0));
                    bar.set_style(file_style.clone());
                    bar.set_prefix(input.name.clone());
                    let show = |done: usize, all: usize| {
                        bar.set_length(all as u64);
                        bar.set_position(done as u64);
                        true
                    };
                    let outcome = match out {
                        Some(out) => analyse_file(engine, input, out, settings, &mut |p| show(p.done, p.total)).map(|o| csv_line(input, out, o)),
                        None => Store::open_for_media(&input.path)
                            .and_then(|mut store| {
                                let o = analyse_into_project(engine, &input.path, &mut store, stored, detector, &mut |c| show(c.done, c.total))?;
                                Ok(project_line(input, &store, o))
                            }),
                    };
                    bar.finish_and_clear();
                    bars.remove(&bar);
                    match outcome {
                        Ok(line) => say(line),
                        Err(e) => {
                            let line = format!("{}: {e}", input.path.display());
                            say(format!("error: {line}"));
                            if let Ok(mut f) = failures.lock() {
                                f.push(line);
                            }
                        }
                    }
                    total.inc(1);
                }
            });
            if let Err(e) = worker {
                say(format!("error: cannot start a worker thread: {e}"));
            }
        }
    });
    total.finish_and_clear();
    let failures = failures.into_inner().unwrap_or_default();
    if !failures.is_empty() {
        anyhow::bail!("{} of {} file(s) failed:\n  {}", failures.len(), files.len(), failures.join("\n  "));
    }
    Ok(())
}

/// What a CSV run did, in one line.
fn csv_line(input: &Input, out: &Path, outcome: FileOutcome) -> String {
    match outcome {
        FileOutcome::Done { sidecar, resumed_from } => {
            let mut line = format!("{}: {} frames -> {}", input.path.display(), sidecar.frames, out.join(format!("{}.csv", input.name)).display());
            if let Some(f) = resumed_from {
                line += &format!(" (resumed at frame {f})");
            }
            if sidecar.failed_frames > 0 {
                line += &format!("; {} frame(s) could not be analysed (rows with success 0)", sidecar.failed_frames);
            }
            if let Some(at) = sidecar.broke_off_at {
                line += &format!("; warning: the video breaks off at frame {at} (truncated or corrupt file?)");
            }
            line
        }
        FileOutcome::AlreadyDone(_) => format!("{}: already analysed with these settings, skipped", input.path.display()),
        FileOutcome::Stopped { at } => format!("{}: stopped at frame {at}; run again to resume", input.path.display()),
    }
}

/// What a run into a project did, in one line.
fn project_line(input: &Input, store: &Store, outcome: ProjectOutcome) -> String {
    let project = store.path().display();
    match outcome {
        ProjectOutcome::Done { frames, .. } => format!("{}: {frames} frames -> {project}{}", input.path.display(), outcome.details()),
        ProjectOutcome::AlreadyDone { frames } => format!("{}: already analysed into {project} with these settings ({frames} frames), skipped", input.path.display()),
        ProjectOutcome::Stopped { at } => format!("{}: stopped at frame {at}; run again to resume", input.path.display()),
    }
}
