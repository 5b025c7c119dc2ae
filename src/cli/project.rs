//! `auscope labels …` and `auscope finetune`: a media file's project
//! (labels, agreement, model versions) from the command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use auscope_core::annotations::agreement::agreement;
use auscope_core::annotations::store::{Store, project_path};
use auscope_core::annotations::{Source, openface, plain};
use auscope_core::face::DetectorKind;
use auscope_core::models::ModelKind;
use auscope_core::training::finetune::{FinetuneEvent, FinetuneJob, FinetuneOutcome, FinetuneSpec, adopt, list_versions};
use auscope_core::training::trainer::TrainEvent;
use auscope_core::{Compute, DeviceChoice};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum LabelsCommand {
    /// Read labels into a project: an OpenFace CSV (as a model's, or with
    /// --coder as a coder's) or auscope's plain CSV/JSON.
    Import {
        #[arg(long)]
        project: PathBuf,
        /// The label file: .csv (OpenFace or auscope) or .json (auscope).
        file: PathBuf,
        /// Store an OpenFace CSV under this name (default "OpenFace").
        #[arg(long = "as", default_value = "OpenFace")]
        name: String,
        /// An OpenFace CSV holds this coder's labels, not a model's.
        #[arg(long)]
        coder: bool,
    },
    /// Write labels: .csv or .json (auscope's plain format, every source
    /// unless narrowed), or with --openface an OpenFace CSV of one source.
    Export {
        #[arg(long)]
        project: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// model or coder.
        #[arg(long)]
        source: Option<String>,
        /// The model or coder name.
        #[arg(long)]
        who: Option<String>,
        /// Write OpenFace's columns (needs --source and --who).
        #[arg(long)]
        openface: bool,
        /// Frame rate for OpenFace's timestamp column when the project has none.
        #[arg(long, default_value_t = 30.0)]
        fps: f64,
    },
    /// Per-AU F1 and Cohen's kappa between two label sources, each given as
    /// SOURCE:NAME (coder:alice, model:piap).
    Agreement {
        #[arg(long)]
        project: PathBuf,
        a: String,
        b: String,
        #[arg(long)]
        json: bool,
    },
    /// Who labelled what in a project.
    List {
        #[arg(long)]
        project: PathBuf,
    },
}

/// A project given as its file or as its media file.
fn open_project(path: &Path, create: bool) -> anyhow::Result<Store> {
    let file = if path.extension().is_some_and(|e| e == "auscope") { path.to_path_buf() } else { project_path(path) };
    if !create && !file.exists() {
        anyhow::bail!("{}: no such project (a media file's labels live in <media>.auscope; `auscope labels import` or the window's review creates it)", file.display());
    }
    match Store::media_of(&file) {
        Some(media) if media.exists() => Ok(Store::open_for_media(&media)?),
        _ => Ok(Store::open(&file)?),
    }
}

fn parse_source(s: &str) -> anyhow::Result<Source> {
    Source::parse(s).with_context(|| format!("'{s}' is not a label source (model or coder)"))
}

fn source_who(s: &str) -> anyhow::Result<(Source, String)> {
    let (source, who) = s.split_once(':').with_context(|| format!("'{s}': give SOURCE:NAME, e.g. coder:alice or model:piap"))?;
    Ok((parse_source(source)?, who.to_string()))
}

pub fn labels(cmd: LabelsCommand) -> anyhow::Result<()> {
    match cmd {
        LabelsCommand::Import { project, file, name, coder } => {
            let mut store = open_project(&project, true)?;
            let source = if coder { Source::Coder } else { Source::Model };
            eprintln!("{}", plain::import_any(&mut store, &file, (source, &name))?);
            Ok(())
        }
        LabelsCommand::Export { project, out, source, who, openface: as_openface, fps } => {
            let store = open_project(&project, false)?;
            let source = source.as_deref().map(parse_source).transpose()?;
            let n = if as_openface {
                let (Some(source), Some(who)) = (source, who.as_deref()) else {
                    anyhow::bail!("--openface writes one source: give --source and --who");
                };
                openface::export(&store, source, who, fps, &out)?
            } else {
                plain::export(&store, source, who.as_deref(), &out)?
            };
            eprintln!("wrote {n} {} to {}", if as_openface { "frames" } else { "labels" }, out.display());
            Ok(())
        }
        LabelsCommand::Agreement { project, a, b, json } => {
            let store = open_project(&project, false)?;
            let (sa, wa) = source_who(&a)?;
            let (sb, wb) = source_who(&b)?;
            let la = store.labels(Some(sa), Some(&wa))?;
            let lb = store.labels(Some(sb), Some(&wb))?;
            for (l, name) in [(&la, &a), (&lb, &b)] {
                if l.is_empty() {
                    anyhow::bail!("{name} has no labels in {} (auscope labels list shows who has)", store.path().display());
                }
            }
            let rows = agreement(&la, &lb);
            if rows.is_empty() {
                anyhow::bail!("{a} and {b} share no labelled frame, face and AU");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{:<6} {:>6} {:>7} {:>7}   ({b} against {a})", "AU", "n", "F1", "kappa");
                let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
                for r in rows {
                    println!("{:<6} {:>6} {:>7} {:>7}", r.au, r.n, f(r.f1), f(r.kappa));
                }
            }
            Ok(())
        }
        LabelsCommand::List { project } => {
            let store = open_project(&project, false)?;
            println!("project {}", store.path().display());
            for source in [Source::Model, Source::Coder] {
                for who in store.who(source)? {
                    let n = store.labels(Some(source), Some(&who))?.len();
                    println!("{}:{who}  {n} labels", source.name());
                }
            }
            Ok(())
        }
    }
}

pub struct FinetuneArgs {
    pub project: PathBuf,
    pub model: String,
    pub weights: Option<PathBuf>,
    pub coder: Option<String>,
    pub epochs: usize,
    pub held_out: f32,
    pub teacher_every: Option<usize>,
    pub adopt: bool,
}

pub fn finetune(args: FinetuneArgs, device: DeviceChoice) -> anyhow::Result<()> {
    let store = open_project(&args.project, false)?;
    let project = store.path().to_path_buf();
    let media = Store::media_of(&project).context("the project file's name must be <media>.auscope")?;
    if !media.exists() {
        anyhow::bail!("{}: the project's media {} is missing", project.display(), media.display());
    }
    drop(store);
    let kind = ModelKind::parse(&args.model).map_err(|_| anyhow::anyhow!("'{}' cannot be fine-tuned (fan-trans, transau, piap, lrp-arl-ff)", args.model))?;
    let compute = Compute::init(device)?;
    eprintln!("device: {}", compute.status_line());
    let mut spec = FinetuneSpec::new(project.clone(), media, kind, args.weights);
    spec.coder = args.coder;
    spec.epochs = args.epochs;
    spec.held_out = args.held_out;
    spec.teacher_every = args.teacher_every;
    spec.detector = DetectorKind::default();
    let job = FinetuneJob::spawn(spec, compute.device.clone())?;
    let mut steps = 0;
    let outcome = loop {
        let Ok(ev) = job.events.recv() else { anyhow::bail!("the fine-tune thread stopped without a result") };
        match ev {
            FinetuneEvent::Status(s) => eprintln!("\r{s}{:30}", ""),
            FinetuneEvent::Preparing { done, total } => eprint!("\rpreparing faces: {done}/{total}"),
            FinetuneEvent::Train(TrainEvent::Started { steps_per_epoch, .. }) => {
                eprintln!();
                steps = steps_per_epoch;
            }
            FinetuneEvent::Train(TrainEvent::Step { epoch, step, loss }) => eprint!("\repoch {:>3} step {}/{} loss {loss:.4}", epoch + 1, step + 1, steps),
            FinetuneEvent::Train(TrainEvent::Epoch { epoch, train_loss, .. }) => eprintln!("\repoch {:>3} done: mean training loss {train_loss:.4}{:30}", epoch + 1, ""),
            FinetuneEvent::Train(_) => {}
            FinetuneEvent::Finished(o) => break o,
        }
    };
    job.join();
    match outcome {
        FinetuneOutcome::Done(v) => {
            println!("new version {} of {} in {}", v.name, kind.name(), v.dir.display());
            println!("held-out corrected faces: {} (F1 over the AUs the coder labelled there)", v.held_out_faces);
            println!("{:<6} {:>8} {:>8}", "AU", "before", "after");
            for (b, a) in v.before.per_au.iter().zip(&v.after.per_au) {
                println!("{:<6} {:>8.3} {:>8.3}", b.au, b.f1, a.f1);
            }
            println!("{:<6} {:>8.3} {:>8.3}", "mean", v.before.mean_f1, v.after.mean_f1);
            if args.adopt {
                let mut store = Store::open(&project)?;
                adopt(&mut store, kind, Some(&v.name))?;
                println!("adopted {}: the app now uses it for this media", v.name);
            } else {
                println!("versions: {}", list_versions(&project, kind).iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", "));
            }
            Ok(())
        }
        FinetuneOutcome::Cancelled => anyhow::bail!("cancelled"),
        FinetuneOutcome::Failed(e) => anyhow::bail!(e),
    }
}
