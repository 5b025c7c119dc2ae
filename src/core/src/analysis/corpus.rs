//! Analysing files into CSVs: which inputs a list of paths names, which
//! of them a shard takes, and one file's run with its CSV written as it goes,
//! resumable after a kill, and renamed into place only when complete.
//!
//! For `DIR/<name>.csv` a run keeps `DIR/<name>.csv.partial` (the rows so
//! far) and `DIR/<name>.resume.json` (where to go on: frame, bytes of the
//! partial that are whole, the tracker). When the file is done the partial
//! becomes `<name>.csv` and `<name>.json` (the sidecar) says what made it.

use std::io::{Seek, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::engine::{Engine, FrameResult, RunSummary};
use super::table::Table;
use super::tracker::{Tracker, TrackerConfig};
use crate::error::CoreError;
use crate::face::DetectorKind;
use crate::files::{atomic_write, io_err};
use crate::source::{IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, open_source};

/// One input: a video, or a folder of images analysed as one sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub path: PathBuf,
    /// The output's base name (the file or folder name without extension).
    pub name: String,
}

/// What a list of paths holds.
#[derive(Debug, Default)]
pub struct Inputs {
    pub files: Vec<Input>,
    /// Paths passed over, each with the reason (not media, unreadable).
    pub skipped: Vec<String>,
}

fn ext(p: &Path) -> String {
    p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "input".into())
}

/// Expand paths: a video or image is one input; a folder gives each video in
/// it, and its images together as one sequence (named after the folder).
/// Other files are skipped with a reason; names must be unique (they name
/// the outputs), and the result is sorted so every shard sees one order.
pub fn collect_inputs(paths: &[PathBuf]) -> Result<Inputs, CoreError> {
    let mut out = Inputs::default();
    for path in paths {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                out.skipped.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if !meta.is_dir() {
            let e = ext(path);
            if VIDEO_EXTENSIONS.contains(&e.as_str()) || IMAGE_EXTENSIONS.contains(&e.as_str()) {
                out.files.push(Input { path: path.clone(), name: stem(path) });
            } else {
                out.skipped.push(format!("{}: not a video or image", path.display()));
            }
            continue;
        }
        let entries = std::fs::read_dir(path).map_err(|e| CoreError::Io { path: path.clone(), reason: e.to_string() })?;
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        files.sort();
        let mut images = false;
        for f in files {
            let e = ext(&f);
            if VIDEO_EXTENSIONS.contains(&e.as_str()) {
                out.files.push(Input { name: stem(&f), path: f });
            } else if IMAGE_EXTENSIONS.contains(&e.as_str()) {
                images = true;
            } else {
                out.skipped.push(format!("{}: not a video or image", f.display()));
            }
        }
        if images {
            out.files.push(Input { path: path.clone(), name: path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "images".into()) });
        }
    }
    out.files.sort_by(|a, b| a.path.cmp(&b.path));
    out.files.dedup_by(|a, b| a.path == b.path);
    let mut names: Vec<(&str, &Path)> = out.files.iter().map(|f| (f.name.as_str(), f.path.as_path())).collect();
    names.sort();
    for w in names.windows(2) {
        if w[0].0 == w[1].0 {
            return Err(CoreError::Data(format!(
                "{} and {} would both write {}.csv; analyse them into different --out folders",
                w[0].1.display(),
                w[1].1.display(),
                w[0].0
            )));
        }
    }
    Ok(out)
}

/// `I/N`: the I-th of N parts (0-based, as Slurm's `--array=0-(N-1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("--shard {s:?}: expected I/N with 0 <= I < N, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// This shard's inputs: every N-th of the sorted list, from the I-th.
    pub fn take(&self, files: Vec<Input>) -> Vec<Input> {
        files.into_iter().enumerate().filter(|(i, _)| i % self.count == self.index).map(|(_, f)| f).collect()
    }
}

/// Everything that decides a file's numbers: a finished CSV made with other
/// settings is made again, and a resume must use the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub models: Vec<ModelInfo>,
    pub detector: DetectorKind,
    pub tracker: TrackerConfig,
    pub table: Table,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub weights: String,
}

/// `<name>.json` beside a finished CSV.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sidecar {
    pub auscope: String,
    pub input: PathBuf,
    pub settings: Settings,
    pub frames: usize,
    pub fps: Option<f64>,
    pub failed_frames: usize,
    /// A video that broke off: the first frame not analysed.
    pub broke_off_at: Option<usize>,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    settings: Settings,
    /// The next frame to analyse.
    next: usize,
    /// Bytes of the partial CSV written before `next` (the header included).
    bytes: u64,
    failed: usize,
    tracker: Tracker,
}

/// The files of one output.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub csv: PathBuf,
    pub sidecar: PathBuf,
    pub partial: PathBuf,
    pub resume: PathBuf,
}

impl Outputs {
    pub fn new(dir: &Path, name: &str) -> Self {
        Outputs {
            csv: dir.join(format!("{name}.csv")),
            sidecar: dir.join(format!("{name}.json")),
            partial: dir.join(format!("{name}.csv.partial")),
            resume: dir.join(format!("{name}.resume.json")),
        }
    }

    /// The sidecar of a finished CSV made with `settings`, if there is one.
    pub fn finished(&self, settings: &Settings) -> Option<Sidecar> {
        if !self.csv.is_file() {
            return None;
        }
        let s: Sidecar = serde_json::from_slice(&std::fs::read(&self.sidecar).ok()?).ok()?;
        (s.settings == *settings).then_some(s)
    }
}

/// How one file's analysis went.
#[derive(Debug)]
pub enum FileOutcome {
    Done { sidecar: Sidecar, resumed_from: Option<usize> },
    /// Finished before with the same settings.
    AlreadyDone(Sidecar),
    /// The progress callback asked to stop; the partial and resume files stay.
    Stopped { at: usize },
}

/// Progress of one file.
#[derive(Debug, Clone, Copy)]
pub struct FileProgress {
    pub done: usize,
    pub total: usize,
}

/// Write `bytes` to `path`, synced to disk, whole or not at all.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CoreError> {
    atomic_write(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| io_err(tmp, e))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| io_err(tmp, e))
    })
}

/// Records as CSV bytes.
fn csv_bytes<R: AsRef<[u8]>>(rows: impl IntoIterator<Item = impl IntoIterator<Item = R>>) -> Result<Vec<u8>, CoreError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        w.write_record(row).map_err(|e| CoreError::Data(e.to_string()))?;
    }
    w.into_inner().map_err(|e| CoreError::Data(e.to_string()))
}

/// Checkpoint the resume state at most this often.
const CHECKPOINT_SECS: f64 = 1.0;

/// Analyse `input` into `out_dir` (see the module doc). `progress` returning
/// false stops the run at the next frame, resumable.
pub fn analyse_file(
    engine: &Engine,
    input: &Input,
    out_dir: &Path,
    settings: &Settings,
    progress: &mut dyn FnMut(FileProgress) -> bool,
) -> Result<FileOutcome, CoreError> {
    let out = Outputs::new(out_dir, &input.name);
    if let Some(done) = out.finished(settings) {
        return Ok(FileOutcome::AlreadyDone(done));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| io_err(out_dir, e))?;
    let source = open_source(&input.path)?;
    let info = source.info().clone();
    let times: Vec<f64> = (0..info.frame_count).map(|i| source.time_s(i).unwrap_or_else(|| info.fps.map_or(0.0, |f| i as f64 / f))).collect();
    let header = settings.table.header();

    // Resume where a killed run stopped, if it used the same settings.
    let resume: Option<ResumeState> = std::fs::read(&out.resume)
        .ok()
        .and_then(|b| serde_json::from_slice::<ResumeState>(&b).ok())
        .filter(|r| r.settings == *settings && std::fs::metadata(&out.partial).is_ok_and(|m| m.len() >= r.bytes));
    let (mut file, start, mut bytes, mut failed, tracker) = match resume {
        Some(r) => {
            let mut f = std::fs::OpenOptions::new().write(true).open(&out.partial).map_err(|e| io_err(&out.partial, e))?;
            f.set_len(r.bytes).map_err(|e| io_err(&out.partial, e))?;
            f.seek(std::io::SeekFrom::End(0)).map_err(|e| io_err(&out.partial, e))?;
            (f, Some(r.next), r.bytes, r.failed, r.tracker)
        }
        None => {
            let mut f = std::fs::File::create(&out.partial).map_err(|e| io_err(&out.partial, e))?;
            let head = csv_bytes([&header])?;
            f.write_all(&head).map_err(|e| io_err(&out.partial, e))?;
            (f, None, head.len() as u64, 0, engine.tracker())
        }
    };
    let first = start.unwrap_or(0);
    let frames: Vec<usize> = (first..info.frame_count).collect();
    let total = info.frame_count;
    let mut write_error: Option<CoreError> = None;
    let mut last_checkpoint = Instant::now();
    let mut next = first;
    let mut stopped = false;
    let mut buf = std::io::BufWriter::new(&mut file);
    let summary: RunSummary = engine.run(source, frames, tracker, &mut |result: FrameResult, tracker: &Tracker| {
        let ts = times.get(result.index).copied().unwrap_or(0.0);
        let chunk = match csv_bytes(settings.table.rows(&result, ts)) {
            Ok(c) => c,
            Err(e) => {
                write_error = Some(e);
                return ControlFlow::Break(());
            }
        };
        if let Err(e) = buf.write_all(&chunk) {
            write_error = Some(io_err(&out.partial, e));
            return ControlFlow::Break(());
        }
        bytes += chunk.len() as u64;
        failed += usize::from(result.error.is_some());
        next = result.index + 1;
        if last_checkpoint.elapsed().as_secs_f64() >= CHECKPOINT_SECS {
            last_checkpoint = Instant::now();
            let state = ResumeState { settings: settings.clone(), next, bytes, failed, tracker: tracker.clone() };
            let saved = buf.flush().map_err(|e| io_err(&out.partial, e)).and_then(|_| write_synced(&out.resume, &serde_json::to_vec(&state).unwrap_or_default()));
            if let Err(e) = saved {
                write_error = Some(e);
                return ControlFlow::Break(());
            }
        }
        if progress(FileProgress { done: next, total }) {
            ControlFlow::Continue(())
        } else {
            stopped = true;
            ControlFlow::Break(())
        }
    })?;
    if let Some(e) = write_error {
        return Err(e);
    }
    buf.flush().map_err(|e| io_err(&out.partial, e))?;
    drop(buf);
    if stopped {
        return Ok(FileOutcome::Stopped { at: next });
    }
    file.sync_all().map_err(|e| io_err(&out.partial, e))?;
    drop(file);
    if failed == total && total > 0 {
        return Err(CoreError::Video { path: input.path.clone(), reason: "no frame could be analysed".into() });
    }
    let sidecar = Sidecar {
        auscope: env!("CARGO_PKG_VERSION").into(),
        input: input.path.clone(),
        settings: settings.clone(),
        frames: next,
        fps: info.fps,
        failed_frames: failed,
        broke_off_at: summary.broke_off_at,
        columns: header,
    };
    let json = serde_json::to_vec_pretty(&sidecar).map_err(|e| CoreError::Data(e.to_string()))?;
    std::fs::rename(&out.partial, &out.csv).map_err(|e| io_err(&out.csv, e))?;
    write_synced(&out.sidecar, &json)?;
    let _ = std::fs::remove_file(&out.resume);
    Ok(FileOutcome::Done { sidecar, resumed_from: start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_sorted_list_without_overlap() {
        let files: Vec<Input> = (0..7).map(|i| Input { path: format!("/v/{i}.mp4").into(), name: i.to_string() }).collect();
        let mut all = Vec::new();
        for i in 0..3 {
            let s: Shard = format!("{i}/3").parse().unwrap_or(Shard { index: 0, count: 1 });
            all.extend(s.take(files.clone()).into_iter().map(|f| f.name));
        }
        all.sort();
        assert_eq!(all, ["0", "1", "2", "3", "4", "5", "6"]);
        assert!("3/3".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
    }

    #[test]
    fn folders_give_their_videos_and_one_image_sequence_and_skip_the_rest() {
        let dir = std::env::temp_dir().join(format!("auscope-corpus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).ok();
        for f in ["a.mp4", "b.MOV", "c.jpg", "d.png", "notes.txt"] {
            std::fs::write(dir.join(f), b"x").ok();
        }
        let got = collect_inputs(std::slice::from_ref(&dir)).unwrap_or_default();
        let names: Vec<&str> = got.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"a") && names.contains(&"b"));
        assert_eq!(got.skipped.len(), 1);
        assert!(got.skipped[0].contains("notes.txt"), "{:?}", got.skipped);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
