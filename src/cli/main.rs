//! `auscope`: the headless command line.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::models::{ModelKind, open_model};
use auscope_core::report::{AuFace, AuFrame, AuReport, FaceJson, FacesReport, FrameFaces};
use auscope_core::source::open_source;
use auscope_core::{Compute, DeviceChoice};
use clap::{Parser, Subcommand};

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
        /// fan-trans, transau, piap or lrp-arl-ff.
        #[arg(long)]
        model: String,
        /// Weights: an auscope .bpk file, or a PyTorch checkpoint of the whole
        /// model (.safetensors, .pth, .pt). Without it the model runs on random
        /// weights and says so.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// A PyTorch checkpoint of the backbone alone (face-alignment FAN,
        /// torchvision Inception3/ResNet/EfficientNet, insightface IResNet).
        #[arg(long)]
        backbone_weights: Option<PathBuf>,
        /// Model config (JSON); default: the paper's full-size configuration.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON: {"model":M,"weights":W,"frames":[{"index":N,"faces":[{"box":[x,y,w,h],"aus":{"AU01":p,...}}]}]}
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "full")]
        detector: DetectorKind,
    },
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
            weights,
            backbone_weights,
            config,
            json,
            detector,
        } => infer(
            &input,
            InferArgs {
                model: &model,
                weights: weights.as_deref(),
                backbone_weights: backbone_weights.as_deref(),
                config: config.as_deref(),
            },
            json,
            detector,
            cli.device,
        ),
    }
}

fn faces(
    input: &std::path::Path,
    json: bool,
    detector: DetectorKind,
    device: DeviceChoice,
) -> anyhow::Result<()> {
    let mut source = open_source(input)?;
    let compute = Compute::init(device)?;
    eprintln!("device: {}", compute.status_line());
    let pipeline = FacePipeline::new(detector, &compute.device).context("loading face models")?;
    let count = source.info().frame_count;
    let mut report = FacesReport {
        frames: Vec::with_capacity(count),
    };
    let mut failed = 0;
    for index in 0..count {
        let result = source
            .frame(index)
            .and_then(|frame| pipeline.faces(&frame.image));
        let entry = match result {
            Ok(faces) => FrameFaces {
                index,
                faces: faces.iter().map(FaceJson::from).collect(),
                error: None,
            },
            Err(e) => {
                failed += 1;
                eprintln!("frame {index}: {e}");
                FrameFaces {
                    index,
                    faces: Vec::new(),
                    error: Some(e.to_string()),
                }
            }
        };
        if !json {
            println!("frame {index}: {} face(s)", entry.faces.len());
            for f in &entry.faces {
                let b = f.bbox;
                println!(
                    "  box x={:.0} y={:.0} w={:.0} h={:.0} score={:.3}",
                    b[0], b[1], b[2], b[3], f.score
                );
            }
        }
        report.frames.push(entry);
        if count > 1 && (index + 1) % 25 == 0 {
            eprintln!("{}/{count} frames", index + 1);
        }
    }
    if json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    }
    if failed == count {
        anyhow::bail!("no frame of {} could be read", input.display());
    }
    Ok(())
}

struct InferArgs<'a> {
    model: &'a str,
    weights: Option<&'a std::path::Path>,
    backbone_weights: Option<&'a std::path::Path>,
    config: Option<&'a std::path::Path>,
}

fn infer(
    input: &std::path::Path,
    args: InferArgs,
    json: bool,
    detector: DetectorKind,
    device: DeviceChoice,
) -> anyhow::Result<()> {
    let kind = ModelKind::parse(args.model)?;
    let mut source = open_source(input)?;
    let compute = Compute::init(device)?;
    eprintln!("device: {}", compute.status_line());
    let model = open_model(kind, args.config, args.weights, args.backbone_weights, &compute.device)?;
    if args.weights.is_none() {
        eprintln!(
            "warning: no --weights: {} runs on randomly initialised weights; its probabilities mean nothing",
            kind.title()
        );
    }
    let pipeline = FacePipeline::new(detector, &compute.device).context("loading face models")?;
    let count = source.info().frame_count;
    let mut report = AuReport {
        model: kind.name().to_string(),
        weights: model.source.clone(),
        frames: Vec::with_capacity(count),
    };
    let mut failed = 0;
    for index in 0..count {
        let result = source.frame(index).and_then(|frame| {
            let faces = pipeline.faces(&frame.image)?;
            let probs = model.predict_faces(&frame.image, &faces, &compute.device)?;
            Ok(faces
                .iter()
                .zip(probs)
                .map(|(f, p)| AuFace {
                    bbox: f.box_xywh(),
                    aus: model.aus().iter().cloned().zip(p).collect(),
                })
                .collect::<Vec<_>>())
        });
        let entry = match result {
            Ok(faces) => AuFrame { index, faces, error: None },
            Err(e) => {
                failed += 1;
                eprintln!("frame {index}: {e}");
                AuFrame { index, faces: Vec::new(), error: Some(e.to_string()) }
            }
        };
        if !json {
            println!("frame {index}: {} face(s)", entry.faces.len());
            for f in &entry.faces {
                let aus: Vec<String> = f.aus.iter().map(|(k, v)| format!("{k}={v:.2}")).collect();
                println!("  box {:.0},{:.0},{:.0},{:.0}: {}", f.bbox[0], f.bbox[1], f.bbox[2], f.bbox[3], aus.join(" "));
            }
        }
        report.frames.push(entry);
        if count > 1 && (index + 1) % 25 == 0 {
            eprintln!("{}/{count} frames", index + 1);
        }
    }
    if json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    }
    if failed == count {
        anyhow::bail!("no frame of {} could be processed", input.display());
    }
    Ok(())
}
