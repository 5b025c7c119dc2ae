//! OpenFace 2.x CSVs in and out: `frame` (1-based), `timestamp`,
//! `confidence`, `success`, `AUxx_r` (intensity estimate 0..5) and `AUxx_c`
//! (occurrence 0/1). Other columns (gaze, pose, landmarks) are ignored on
//! import. Imported rows become one source's labels in the store (a model's,
//! who = the name given, e.g. "OpenFace"); export writes a source's labels
//! with the same column names, all `_r` columns then all `_c` columns, as
//! OpenFace does.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use super::store::{FrameInfo, Store};
use super::{Label, LabelKey, LabelValue, Source};
use crate::error::CoreError;
use crate::training::data::au_name;

fn bad(path: &Path, m: impl std::fmt::Display) -> CoreError {
    CoreError::LabelFile { path: path.to_path_buf(), reason: m.to_string() }
}

/// What an import read.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub frames: usize,
    pub aus: Vec<String>,
    /// Columns that are neither OpenFace's known ones nor AUs (ignored).
    pub ignored: Vec<String>,
}

impl Imported {
    /// One line for a user: what was read and what was ignored.
    pub fn summary(&self) -> String {
        let mut s = format!("imported {} frames with {} AUs ({})", self.frames, self.aus.len(), self.aus.join(", "));
        if !self.ignored.is_empty() {
            s += &format!("; ignored {} unknown column(s): {}", self.ignored.len(), self.ignored.join(", "));
        }
        s
    }
}

/// Import an OpenFace CSV as `who`'s labels of face 0. Rows with success 0
/// keep their frame facts but no labels. The whole file is read and checked
/// before anything is written (a malformed file changes nothing).
pub fn import(store: &mut Store, csv: &Path, who: &str) -> Result<Imported, CoreError> {
    import_as(store, csv, Source::Model, who)
}

/// [`import`] as `source`'s labels: a coder's labels kept in OpenFace's
/// columns import as the coder's (not undoable).
pub fn import_as(store: &mut Store, csv: &Path, source: Source, who: &str) -> Result<Imported, CoreError> {
    let mut rd = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(csv).map_err(|e| bad(csv, e))?;
    let header = rd.headers().map_err(|e| bad(csv, e))?.clone();
    let col = |n: &str| header.iter().position(|h| h.eq_ignore_ascii_case(n));
    let frame_col = col("frame").ok_or_else(|| bad(csv, "no 'frame' column: not an OpenFace CSV"))?;
    let (ts, conf, succ) = (col("timestamp"), col("confidence"), col("success"));
    // Per AU: its _r and _c columns.
    let mut au_cols: BTreeMap<String, (Option<usize>, Option<usize>)> = BTreeMap::new();
    let mut ignored = Vec::new();
    let known = |h: &str| {
        let h = h.to_ascii_lowercase();
        ["frame", "face_id", "timestamp", "confidence", "success"].contains(&h.as_str())
            || ["gaze_", "pose_", "x_", "y_", "z_", "p_", "eye_lmk"].iter().any(|p| h.starts_with(p))
    };
    for (i, h) in header.iter().enumerate() {
        match au_name(h) {
            Some((au, Some('r'))) => au_cols.entry(au).or_default().0 = Some(i),
            Some((au, Some('c'))) => au_cols.entry(au).or_default().1 = Some(i),
            _ if known(h) => {}
            _ => ignored.push(h.to_string()),
        }
    }
    if au_cols.is_empty() {
        return Err(bad(csv, "no AUxx_r or AUxx_c column"));
    }
    let mut frames = Vec::new();
    let mut labels = Vec::new();
    for (line, rec) in rd.records().enumerate() {
        let line = line + 2;
        let rec = rec.map_err(|e| bad(csv, format!("line {line}: {e}")))?;
        let num = |i: usize, what: &str| -> Result<f64, CoreError> {
            let cell = rec.get(i).unwrap_or("");
            cell.parse::<f64>().map_err(|_| bad(csv, format!("line {line}: {what} '{cell}' is not a number")))
        };
        let frame = num(frame_col, "frame")?;
        if frame < 1.0 || frame.fract() != 0.0 {
            return Err(bad(csv, format!("line {line}: frame {frame} is not a 1-based frame number")));
        }
        let frame = frame as usize - 1;
        let info = FrameInfo {
            timestamp: ts.map(|i| num(i, "timestamp")).transpose()?.unwrap_or(0.0),
            confidence: conf.map(|i| num(i, "confidence")).transpose()?.unwrap_or(1.0),
            success: succ.map(|i| num(i, "success")).transpose()?.is_none_or(|s| s != 0.0),
        };
        frames.push((frame, info));
        if !info.success {
            continue;
        }
        for (au, (r, c)) in &au_cols {
            let score = r.map(|i| num(i, au)).transpose()?;
            let occurrence = match c {
                Some(i) => num(*i, au)? >= 0.5,
                None => score.is_some_and(|s| s >= 1.0),
            };
            labels.push((LabelKey { frame, face: 0, au: au.clone() }, LabelValue { occurrence, intensity: None, score }));
        }
    }
    store.put_frames(&frames)?;
    let labels: Vec<Label> = labels
        .into_iter()
        .map(|(key, value)| Label { key, source, who: who.to_string(), value, time_ms: 0 })
        .collect();
    store.put_labels(&labels)?;
    Ok(Imported { frames: frames.len(), aus: au_cols.keys().cloned().collect(), ignored })
}

/// Write `source`/`who`'s labels of face 0 as an OpenFace CSV. Frames come
/// from the store's frame facts (an import) or, failing those, from the
/// labelled frames with timestamps at `fps`. `_r` columns are written for
/// AUs with scores (a coder's intensity 1..5 when there is no score).
pub fn export(store: &Store, source: Source, who: &str, fps: f64, out: &Path) -> Result<usize, CoreError> {
    let labels = store.labels(Some(source), Some(who))?;
    let mut by_frame: BTreeMap<usize, BTreeMap<String, LabelValue>> = BTreeMap::new();
    for l in labels.into_iter().filter(|l| l.key.face == 0) {
        by_frame.entry(l.key.frame).or_default().insert(l.key.au, l.value);
    }
    let aus: BTreeSet<String> = by_frame.values().flat_map(|m| m.keys().cloned()).collect();
    let with_r: BTreeSet<String> =
        aus.iter().filter(|a| by_frame.values().any(|m| m.get(*a).is_some_and(|v| v.score.is_some() || v.intensity.is_some()))).cloned().collect();
    let mut frames: BTreeMap<usize, FrameInfo> = store.frames()?.into_iter().collect();
    for f in by_frame.keys() {
        frames.entry(*f).or_insert(FrameInfo { timestamp: *f as f64 / fps.max(1e-9), confidence: 1.0, success: true });
    }
    let io = |e: std::io::Error| CoreError::Io { path: out.to_path_buf(), reason: e.to_string() };
    let mut w = std::io::BufWriter::new(std::fs::File::create(out).map_err(io)?);
    let mut head = vec!["frame".to_string(), "timestamp".into(), "confidence".into(), "success".into()];
    head.extend(with_r.iter().map(|a| format!("{a}_r")));
    head.extend(aus.iter().map(|a| format!("{a}_c")));
    writeln!(w, "{}", head.join(", ")).map_err(io)?;
    for (f, info) in &frames {
        let empty = BTreeMap::new();
        let m = by_frame.get(f).unwrap_or(&empty);
        let mut row = vec![(f + 1).to_string(), info.timestamp.to_string(), info.confidence.to_string(), (info.success as u8).to_string()];
        row.extend(with_r.iter().map(|a| {
            let v = m.get(a);
            v.and_then(|v| v.score.or(v.intensity.map(f64::from))).unwrap_or(0.0).to_string()
        }));
        row.extend(aus.iter().map(|a| (m.get(a).is_some_and(|v| v.occurrence) as u8).to_string()));
        writeln!(w, "{}", row.join(", ")).map_err(io)?;
    }
    w.flush().map_err(io)?;
    Ok(frames.len())
}
