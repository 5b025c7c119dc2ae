//! `auscope labels …` and `auscope finetune`: a media file's project
//! (labels, agreement, model versions) from the command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use auscope_core::annotations::agreement::{agreement, alpha_over, ef_ratio, event_agreement};
use auscope_core::annotations::events::EventSpan;
use auscope_core::annotations::plain::Timing;
use auscope_core::annotations::proposals::{Hysteresis, model_events, model_labels, proposals};
use auscope_core::annotations::store::{Store, project_path};
use auscope_core::annotations::{Label, Source, elan, intensity_letter, openface, plain};
use auscope_core::face::DetectorKind;
use auscope_core::models::ModelKind;
use auscope_core::training::finetune::{FinetuneEvent, FinetuneJob, FinetuneOutcome, FinetuneSpec, adopt, list_versions};
use auscope_core::training::trainer::TrainEvent;
use auscope_core::{Compute, DeviceChoice};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum LabelsCommand {
    /// Read labels into a project: an OpenFace CSV (as a model's, or with
    /// --coder as a coder's), auscope's plain CSV/JSON or events CSV, or an
    /// ELAN .eaf file's AU events.
    Import {
        #[arg(long)]
        project: PathBuf,
        /// The label file: .csv (OpenFace or auscope), .json (auscope) or .eaf (ELAN).
        file: PathBuf,
        /// Store an OpenFace CSV under this name (default "OpenFace").
        #[arg(long = "as", default_value = "OpenFace")]
        name: String,
        /// An OpenFace CSV holds this coder's labels, not a model's.
        #[arg(long)]
        coder: bool,
        /// Frame rate for an .eaf file when the project's media is missing.
        #[arg(long)]
        fps: Option<f64>,
    },
    /// Write labels: .csv or .json (auscope's plain format, every source
    /// unless narrowed; the JSON carries the coders' events too), with
    /// --openface an OpenFace CSV of one source, with --events the coders'
    /// AU events as CSV, or to an .eaf file the events for ELAN.
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
        /// Write the coders' AU events (a CSV of onset, apex, offset, intensity).
        #[arg(long)]
        events: bool,
        /// Frame rate for OpenFace's timestamp column or an .eaf file when
        /// neither the project nor its media has one (default 30).
        #[arg(long)]
        fps: Option<f64>,
    },
    /// Reliability between label sources, each given as SOURCE:NAME
    /// (coder:alice, model:piap), two or more: per AU Krippendorff's alpha
    /// over all of them (nominal for occurrence, ordinal for intensity);
    /// per pair Cohen's kappa, F1 and alpha over frames, the Ekman-Friesen
    /// agreement ratio, and event agreement for onset, apex and offset
    /// within a tolerance (a model's events are its proposals).
    Agreement {
        #[arg(long)]
        project: PathBuf,
        #[arg(required = true, num_args = 2..)]
        sources: Vec<String>,
        /// Event tolerance in frames (default: half a second of the media).
        #[arg(long)]
        tolerance: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// A coder's AU events (every coder's without --coder).
    Events {
        #[arg(long)]
        project: PathBuf,
        #[arg(long)]
        coder: Option<String>,
    },
    /// A model's proposed AU events from its stored probabilities (two
    /// thresholds with hysteresis, a minimum length, apex at the peak),
    /// less those the coder rejected or already coded; --accept makes them
    /// the coder's events (one undo step).
    Propose {
        #[arg(long)]
        project: PathBuf,
        /// The stored model version (auscope labels list shows them).
        #[arg(long)]
        model: String,
        #[arg(long)]
        coder: String,
        #[arg(long)]
        accept: bool,
        /// Probability that starts an event.
        #[arg(long, default_value_t = 0.6)]
        on: f32,
        /// Probability below which it ends.
        #[arg(long, default_value_t = 0.4)]
        off: f32,
        #[arg(long, default_value_t = 3)]
        min_frames: usize,
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
    let store = match Store::media_of(&file) {
        Some(media) if media.exists() => Store::open_for_media(&media)?,
        _ => Store::open(&file)?,
    };
    if let Some(u) = store.upgraded() {
        eprintln!("upgraded {} from project format {} to {} (the old one is kept as {})", store.path().display(), u.from, auscope_core::annotations::store::FORMAT, u.backup.display());
    }
    Ok(store)
}

fn media_timing(store: &Store, fps: Option<f64>) -> Option<Timing> {
    Timing::of_project(store, fps)
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
        LabelsCommand::Import { project, file, name, coder, fps } => {
            let mut store = open_project(&project, true)?;
            let source = if coder { Source::Coder } else { Source::Model };
            let timing = media_timing(&store, fps);
            eprintln!("{}", plain::import_any(&mut store, &file, (source, &name), timing)?);
            Ok(())
        }
        LabelsCommand::Export { project, out, source, who, openface: as_openface, events, fps } => {
            let store = open_project(&project, false)?;
            let source = source.as_deref().map(parse_source).transpose()?;
            let eaf = out.extension().is_some_and(|e| e.eq_ignore_ascii_case("eaf"));
            let (n, what) = if as_openface {
                let (Some(source), Some(who)) = (source, who.as_deref()) else {
                    anyhow::bail!("--openface writes one source: give --source and --who");
                };
                (openface::export(&store, source, who, fps.unwrap_or(30.0), &out)?, "frames")
            } else if eaf {
                let timing = media_timing(&store, fps);
                let fps = timing.map_or(fps.unwrap_or(30.0), |t| t.fps);
                let media = Store::media_of(store.path());
                (elan::export(&store, who.as_deref(), fps, media.as_deref(), &out)?, "events")
            } else if events {
                (plain::export_events(&store, who.as_deref(), &out)?, "events")
            } else {
                (plain::export(&store, source, who.as_deref(), &out)?, "labels")
            };
            eprintln!("wrote {n} {what} to {}", out.display());
            Ok(())
        }
        LabelsCommand::Agreement { project, sources, tolerance, json } => {
            let store = open_project(&project, false)?;
            let tolerance = tolerance.unwrap_or_else(|| media_timing(&store, None).map_or(15, |t| (t.fps / 2.0).round() as usize));
            let mut read: Vec<(String, Vec<Label>, Vec<EventSpan>)> = Vec::new();
            for name in &sources {
                let (source, who) = source_who(name)?;
                let (labels, events) = match source {
                    Source::Coder => (store.labels(Some(source), Some(&who))?, store.events(Some(&who))?.into_iter().map(|e| e.span).collect()),
                    Source::Model => (model_labels(&store, &who)?, model_events(&store, &who, &Hysteresis::default()).unwrap_or_default()),
                };
                if labels.is_empty() {
                    anyhow::bail!("{name} has no labels in {} (auscope labels list shows who has)", store.path().display());
                }
                read.push((name.clone(), labels, events));
            }
            let alpha = alpha_over(&read.iter().map(|r| r.1.as_slice()).collect::<Vec<_>>());
            let mut pairs = Vec::new();
            for i in 0..read.len() {
                for j in i + 1..read.len() {
                    let (a, b) = (&read[i], &read[j]);
                    let aus = agreement(&a.1, &b.1);
                    if aus.is_empty() {
                        anyhow::bail!("{} and {} share no labelled frame, face and AU", a.0, b.0);
                    }
                    pairs.push(serde_json::json!({
                        "a": a.0, "b": b.0, "ef_ratio": ef_ratio(&a.1, &b.1), "aus": aus, "events": event_agreement(&a.2, &b.2, tolerance),
                    }));
                }
            }
            if json {
                let out = serde_json::json!({"sources": sources, "tolerance_frames": tolerance, "alpha": alpha, "pairs": pairs});
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(());
            }
            let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
            if read.len() > 2 {
                println!("Krippendorff's alpha over {}:", sources.join(", "));
                println!("{:<6} {:>6} {:>8} {:>8}", "AU", "faces", "alpha", "alpha-I");
                for r in &alpha {
                    println!("{:<6} {:>6} {:>8} {:>8}", r.au, r.units, f(r.alpha), f(r.alpha_intensity));
                }
            }
            for p in &pairs {
                println!("\n{} against {} (events within {tolerance} frames):", p["b"].as_str().unwrap_or(""), p["a"].as_str().unwrap_or(""));
                println!(
                    "{:<6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
                    "AU", "n", "F1", "kappa", "alpha", "alpha-I", "events", "onset", "apex", "offset"
                );
                let events = p["events"].as_array().cloned().unwrap_or_default();
                for r in p["aus"].as_array().into_iter().flatten() {
                    let au = r["au"].as_str().unwrap_or("");
                    let e = events.iter().find(|e| e["au"] == au);
                    let ev = |k: &str| e.and_then(|e| e[k].as_f64()).map_or("-".to_string(), |v| format!("{v:.3}"));
                    let count = e.map_or("-".to_string(), |e| format!("{}/{}", e["a_events"], e["b_events"]));
                    println!(
                        "{:<6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
                        au,
                        r["n"],
                        f(r["f1"].as_f64()),
                        f(r["kappa"].as_f64()),
                        f(r["alpha"].as_f64()),
                        f(r["alpha_intensity"].as_f64()),
                        count,
                        ev("onset"),
                        ev("apex"),
                        ev("offset")
                    );
                }
                println!("Ekman-Friesen agreement ratio: {}", f(p["ef_ratio"].as_f64()));
            }
            Ok(())
        }
        LabelsCommand::Events { project, coder } => {
            let store = open_project(&project, false)?;
            let events = store.events(coder.as_deref())?;
            println!("{:>6} {:<12} {:>6} {:<6} {:>7} {:>7} {:>7} {:>9}  origin", "id", "coder", "person", "AU", "onset", "apex", "offset", "intensity");
            for e in &events {
                let s = &e.span;
                let i = s.intensity.and_then(intensity_letter).map_or("-".to_string(), String::from);
                println!("{:>6} {:<12} {:>6} {:<6} {:>7} {:>7} {:>7} {:>9}  {}", e.id, e.who, s.person, s.au, s.onset, s.apex, s.offset, i, s.origin.as_deref().unwrap_or("by hand"));
            }
            eprintln!("{} events", events.len());
            Ok(())
        }
        LabelsCommand::Propose { project, model, coder, accept, on, off, min_frames } => {
            if !(0.0..=1.0).contains(&off) || off > on || on > 1.0 {
                anyhow::bail!("thresholds: 0 <= --off <= --on <= 1 (got --on {on}, --off {off})");
            }
            let mut store = open_project(&project, false)?;
            let list = proposals(&store, &model, &coder, &Hysteresis { on, off, min_frames: min_frames.max(1) })?;
            for s in &list {
                println!("person {:>3} {}", s.person, s.describe());
            }
            if accept && !list.is_empty() {
                let n = list.len();
                store.add_events(&coder, &format!("accept {n} proposals of {model}"), list)?;
                eprintln!("accepted {n} proposals of {model} as {coder}'s events");
            } else {
                eprintln!("{} proposals of {model} for {coder}{}", list.len(), if accept { "" } else { " (--accept makes them the coder's)" });
            }
            Ok(())
        }
        LabelsCommand::List { project } => {
            let store = open_project(&project, false)?;
            println!("project {}", store.path().display());
            for source in [Source::Model, Source::Coder] {
                for who in store.who(source)? {
                    let n = store.labels(Some(source), Some(&who))?.len();
                    let events = if source == Source::Coder { store.events(Some(&who))?.len() } else { 0 };
                    let events = if events > 0 { format!(", {events} events") } else { String::new() };
                    println!("{}:{who}  {n} labels{events}", source.name());
                }
            }
            for m in store.analysed_models()? {
                println!("model:{}  stored analysis of {} AUs", m.who, m.aus.len());
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
