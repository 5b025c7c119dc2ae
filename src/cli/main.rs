//! `auscope`: the headless command line.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::report::{FaceJson, FacesReport, FrameFaces};
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
