//! Labels as plain CSV or JSON: one row per (frame, face, AU, source, who),
//! so any tool can read them and nothing is lost on the way back in.
//!
//! CSV columns: `frame,face,au,source,who,occurrence,intensity,score,time_ms`
//! (frame and face 0-based; intensity a FACS letter A-E or empty; score
//! empty for coders). JSON: `{"format":1,"media":M,"labels":[{...}]}` with
//! the same fields. Import refuses a file whose columns differ and names the
//! line of a malformed row; imported labels are not undoable edits.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::store::Store;
use super::{Label, LabelKey, LabelValue, Source, intensity_letter};
use crate::error::CoreError;

pub const COLUMNS: [&str; 9] = ["frame", "face", "au", "source", "who", "occurrence", "intensity", "score", "time_ms"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub frame: usize,
    pub face: usize,
    pub au: String,
    pub source: Source,
    pub who: String,
    pub occurrence: u8,
    pub intensity: Option<char>,
    pub score: Option<f64>,
    pub time_ms: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct JsonFile {
    format: u32,
    media: Option<String>,
    labels: Vec<Row>,
}

impl Row {
    fn of(l: &Label) -> Self {
        Row {
            frame: l.key.frame,
            face: l.key.face,
            au: l.key.au.clone(),
            source: l.source,
            who: l.who.clone(),
            occurrence: l.value.occurrence as u8,
            intensity: l.value.intensity.and_then(intensity_letter),
            score: l.value.score,
            time_ms: l.time_ms,
        }
    }

    fn label(&self) -> Result<Label, String> {
        let intensity = match self.intensity {
            None => None,
            Some(c @ 'A'..='E') => Some(c as u8 - b'A' + 1),
            Some(c) => return Err(format!("intensity '{c}' is not a FACS letter A-E")),
        };
        if self.occurrence > 1 {
            return Err(format!("occurrence {} is not 0 or 1", self.occurrence));
        }
        if crate::training::data::au_name(&self.au).is_none() {
            return Err(format!("'{}' is not an AU name", self.au));
        }
        Ok(Label {
            key: LabelKey { frame: self.frame, face: self.face, au: self.au.clone() },
            source: self.source,
            who: self.who.clone(),
            value: LabelValue { occurrence: self.occurrence == 1, intensity, score: self.score },
            time_ms: self.time_ms,
        })
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> CoreError {
    CoreError::Io { path: path.to_path_buf(), reason: e.to_string() }
}

fn bad(path: &Path, e: impl std::fmt::Display) -> CoreError {
    CoreError::Data(format!("{}: {e}", path.display()))
}

enum Format {
    Csv,
    Json,
}

fn format_of(path: &Path) -> Result<Format, CoreError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("json") => Ok(Format::Json),
        _ => Err(bad(path, "label files end in .csv or .json")),
    }
}

/// Write the labels of `source`/`who` (None: all) to `out` (.csv or .json);
/// returns how many.
pub fn export(store: &Store, source: Option<Source>, who: Option<&str>, out: &Path) -> Result<usize, CoreError> {
    format_of(out)?;
    let labels = store.labels(source, who)?;
    write(&labels, store.meta("media")?, out)?;
    Ok(labels.len())
}

/// Write labels to `out` (.csv or .json) in the plain format.
pub fn write(labels: &[Label], media: Option<String>, out: &Path) -> Result<(), CoreError> {
    let rows: Vec<Row> = labels.iter().map(Row::of).collect();
    match format_of(out)? {
        Format::Csv => {
            let mut w = csv::Writer::from_path(out).map_err(|e| io(out, e))?;
            for r in &rows {
                w.serialize(r).map_err(|e| io(out, e))?;
            }
            if rows.is_empty() {
                w.write_record(COLUMNS).map_err(|e| io(out, e))?;
            }
            w.flush().map_err(|e| io(out, e))?;
        }
        Format::Json => {
            let file = JsonFile { format: 1, media, labels: rows };
            let text = serde_json::to_string_pretty(&file).map_err(|e| io(out, e))?;
            std::fs::write(out, text).map_err(|e| io(out, e))?;
        }
    }
    Ok(())
}

/// True for a .json file or a CSV whose header has auscope's `source` and
/// `who` columns (OpenFace CSVs have neither).
pub fn is_plain(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return true;
    }
    let Ok(mut rd) = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path) else { return false };
    rd.headers().is_ok_and(|h| h.iter().any(|c| c == "source") && h.iter().any(|c| c == "who"))
}

/// Read a plain label file, checking every row before anything is written.
pub fn read(path: &Path) -> Result<Vec<Label>, CoreError> {
    let rows: Vec<(usize, Row)> = match format_of(path)? {
        Format::Csv => {
            let mut rd = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(|e| io(path, e))?;
            let header: Vec<String> = rd.headers().map_err(|e| bad(path, e))?.iter().map(str::to_string).collect();
            if header != COLUMNS {
                let unknown: Vec<&String> = header.iter().filter(|h| !COLUMNS.contains(&h.as_str())).collect();
                let missing: Vec<&&str> = COLUMNS.iter().filter(|c| !header.iter().any(|h| h == *c)).collect();
                return Err(bad(
                    path,
                    format!(
                        "not an auscope label CSV: the columns must be {} (unknown: {unknown:?}, missing: {missing:?}); for OpenFace output use the OpenFace import",
                        COLUMNS.join(",")
                    ),
                ));
            }
            let mut out = Vec::new();
            for (i, r) in rd.deserialize::<Row>().enumerate() {
                out.push((i + 2, r.map_err(|e| bad(path, format!("line {}: {e}", i + 2)))?));
            }
            out
        }
        Format::Json => {
            let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
            let file: JsonFile = serde_json::from_str(&text).map_err(|e| bad(path, e))?;
            if file.format > 1 {
                return Err(bad(path, format!("label format {} is newer than this auscope reads (1)", file.format)));
            }
            file.labels.into_iter().enumerate().map(|(i, r)| (i + 1, r)).collect()
        }
    };
    rows.into_iter().map(|(line, r)| r.label().map_err(|e| bad(path, format!("row {line}: {e}")))).collect()
}

/// Import a plain label file into `store` (one transaction); returns how many.
pub fn import(store: &mut Store, path: &Path) -> Result<usize, CoreError> {
    let labels = read(path)?;
    store.put_labels(&labels)?;
    Ok(labels.len())
}

/// Import a label file of either kind: auscope's plain CSV/JSON (see
/// [`is_plain`]), else an OpenFace CSV as `openface_as`'s labels. Returns
/// what was read, in words.
pub fn import_any(store: &mut Store, path: &Path, openface_as: (Source, &str)) -> Result<String, CoreError> {
    if is_plain(path) {
        let n = import(store, path)?;
        Ok(format!("imported {n} labels from {}", path.display()))
    } else {
        let (source, who) = openface_as;
        Ok(format!("{} (as {} \"{who}\")", super::openface::import_as(store, path, source, who)?.summary(), source.name()))
    }
}
