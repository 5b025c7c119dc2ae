//! Labels as plain CSV or JSON: one row per (frame, face, AU, source, who),
//! so any tool can read them and nothing is lost on the way back in.
//!
//! CSV columns: `frame,face,au,source,who,occurrence,intensity,score,time_ms`
//! (frame and face 0-based; intensity a FACS letter A-E or empty; score
//! empty for coders; time_ms the edit time, empty or absent for a label
//! with none, read as 0, older than any edit made here).
//!
//! AU events have a CSV of their own: `who,person,au,onset,apex,offset,intensity,origin,time_ms`
//! (frames 0-based and inclusive, intensity A-E or empty, origin empty for
//! events marked by hand).
//!
//! JSON: `{"format":2,"media":M,"labels":[{...}],"events":[{...}]}` with
//! the same fields (format 1, without events, reads too). Import refuses a
//! file whose columns differ and names the line of a malformed row; it
//! writes nothing unless every row is good; imports are not undoable edits.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::events::EventSpan;
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
    #[serde(default, deserialize_with = "edit_time")]
    pub time_ms: i64,
}

/// A label from another tool often has no edit time: empty (CSV), null or
/// absent (JSON) reads as 0 rather than refusing the row.
fn edit_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.unwrap_or(0))
}

pub const EVENT_COLUMNS: [&str; 9] = ["who", "person", "au", "onset", "apex", "offset", "intensity", "origin", "time_ms"];

/// One AU event as the plain files keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    pub who: String,
    pub person: u32,
    pub au: String,
    pub onset: usize,
    pub apex: usize,
    pub offset: usize,
    pub intensity: Option<char>,
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default, deserialize_with = "edit_time")]
    pub time_ms: i64,
}

impl EventRow {
    fn of(e: &super::events::Event) -> Self {
        EventRow {
            who: e.who.clone(),
            person: e.span.person,
            au: e.span.au.clone(),
            onset: e.span.onset,
            apex: e.span.apex,
            offset: e.span.offset,
            intensity: e.span.intensity.and_then(intensity_letter),
            origin: e.span.origin.clone().filter(|o| !o.is_empty()),
            time_ms: e.time_ms,
        }
    }

    fn span(&self) -> Result<(String, EventSpan), String> {
        let intensity = match self.intensity {
            None => None,
            Some(c @ 'A'..='E') => Some(c as u8 - b'A' + 1),
            Some(c) => return Err(format!("intensity '{c}' is not a FACS letter A-E")),
        };
        let span = EventSpan {
            person: self.person,
            au: self.au.clone(),
            onset: self.onset,
            apex: self.apex,
            offset: self.offset,
            intensity,
            origin: self.origin.clone().filter(|o| !o.is_empty()),
        };
        match span.problem(None) {
            Some(p) => Err(p),
            None => Ok((self.who.clone(), span)),
        }
    }
}

/// The JSON format this version writes and the newest it reads.
const JSON_FORMAT: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct JsonFile {
    format: u32,
    media: Option<String>,
    labels: Vec<Row>,
    #[serde(default)]
    events: Vec<EventRow>,
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
    CoreError::LabelFile { path: path.to_path_buf(), reason: e.to_string() }
}

enum Format {
    Csv,
    Json,
}

fn format_of(path: &Path) -> Result<Format, CoreError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("json") => Ok(Format::Json),
        _ => Err(bad(path, "label files end in .csv or .json (ELAN files in .eaf)")),
    }
}

/// Write the labels of `source`/`who` (None: all) to `out` (.csv or
/// .json; the JSON carries the coders' events too); returns how many labels.
pub fn export(store: &Store, source: Option<Source>, who: Option<&str>, out: &Path) -> Result<usize, CoreError> {
    format_of(out)?;
    let labels = store.labels(source, who)?;
    let events = if source.is_none_or(|s| s == Source::Coder) { store.events(who)? } else { Vec::new() };
    write(&labels, &events, store.meta("media")?, out)?;
    Ok(labels.len())
}

/// Write the events of `who` (None: every coder) to an events CSV; how many.
pub fn export_events(store: &Store, who: Option<&str>, out: &Path) -> Result<usize, CoreError> {
    if !matches!(format_of(out)?, Format::Csv) {
        return Err(bad(out, "an events file is a .csv (the .json label file carries events too)"));
    }
    let events = store.events(who)?;
    let mut w = csv::Writer::from_path(out).map_err(|e| io(out, e))?;
    for e in &events {
        w.serialize(EventRow::of(e)).map_err(|e| io(out, e))?;
    }
    if events.is_empty() {
        w.write_record(EVENT_COLUMNS).map_err(|e| io(out, e))?;
    }
    w.flush().map_err(|e| io(out, e))?;
    Ok(events.len())
}

/// Write labels (and, in JSON, events) to `out` (.csv or .json) in the plain format.
pub fn write(labels: &[Label], events: &[super::events::Event], media: Option<String>, out: &Path) -> Result<(), CoreError> {
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
            let file = JsonFile { format: JSON_FORMAT, media, labels: rows, events: events.iter().map(EventRow::of).collect() };
            let text = serde_json::to_string_pretty(&file).map_err(|e| io(out, e))?;
            std::fs::write(out, text).map_err(|e| io(out, e))?;
        }
    }
    Ok(())
}

/// True for a .json file or a CSV whose header has auscope's `source` and
/// `who` columns (OpenFace CSVs have neither), or is an events CSV.
pub fn is_plain(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        return true;
    }
    let Ok(mut rd) = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path) else { return false };
    rd.headers().is_ok_and(|h| (h.iter().any(|c| c == "source") || h.iter().any(|c| c == "onset")) && h.iter().any(|c| c == "who"))
}

/// What a plain file holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contents {
    pub labels: Vec<Label>,
    /// (coder, event).
    pub events: Vec<(String, EventSpan)>,
}

fn is_events_csv(path: &Path) -> bool {
    let Ok(mut rd) = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path) else { return false };
    rd.headers().is_ok_and(|h| h.iter().any(|c| c == "onset"))
}

fn read_events_csv(path: &Path) -> Result<Vec<(String, EventSpan)>, CoreError> {
    let mut rd = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(|e| io(path, e))?;
    let header: Vec<String> = rd.headers().map_err(|e| bad(path, e))?.iter().map(str::to_string).collect();
    if header != EVENT_COLUMNS {
        return Err(bad(path, format!("not an auscope events CSV: the columns must be {}", EVENT_COLUMNS.join(","))));
    }
    let mut out = Vec::new();
    for (i, r) in rd.deserialize::<EventRow>().enumerate() {
        let r = r.map_err(|e| bad(path, format!("line {}: {e}", i + 2)))?;
        out.push(r.span().map_err(|e| bad(path, format!("line {}: {e}", i + 2)))?);
    }
    Ok(out)
}

/// Read a plain label or events file, checking every row before anything is written.
pub fn read_all(path: &Path) -> Result<Contents, CoreError> {
    if matches!(format_of(path)?, Format::Csv) && is_events_csv(path) {
        return Ok(Contents { labels: Vec::new(), events: read_events_csv(path)? });
    }
    let mut events = Vec::new();
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
            if file.format > JSON_FORMAT {
                return Err(bad(path, format!("label format {} is newer than this auscope reads ({JSON_FORMAT})", file.format)));
            }
            for (i, e) in file.events.iter().enumerate() {
                events.push(e.span().map_err(|e| bad(path, format!("event {}: {e}", i + 1)))?);
            }
            file.labels.into_iter().enumerate().map(|(i, r)| (i + 1, r)).collect()
        }
    };
    let labels = rows.into_iter().map(|(line, r)| r.label().map_err(|e| bad(path, format!("row {line}: {e}")))).collect::<Result<_, _>>()?;
    Ok(Contents { labels, events })
}

/// Read a plain label file's labels, checking every row.
pub fn read(path: &Path) -> Result<Vec<Label>, CoreError> {
    Ok(read_all(path)?.labels)
}

/// Import a plain label or events file into `store`; `frames`: the
/// media's length, when known (events past it are refused). Labels go in
/// first, then events (which also write the frames they cover); a bad
/// event leaves the labels out too. Returns a summary.
pub fn import(store: &mut Store, path: &Path, frames: Option<usize>) -> Result<String, CoreError> {
    let c = read_all(path)?;
    if let Some((who, p)) = c.events.iter().find_map(|(w, s)| s.problem(frames).map(|p| (w, p))) {
        return Err(bad(path, format!("{who}'s {p}; nothing was imported")));
    }
    store.put_labels(&c.labels)?;
    if !c.events.is_empty() {
        store.put_events(&c.events, frames).map_err(|e| bad(path, e))?;
    }
    let events = if c.events.is_empty() { String::new() } else { format!(" and {} events", c.events.len()) };
    Ok(format!("imported {} labels{events} from {}", c.labels.len(), path.display()))
}

/// The media's timing, for files that place events in time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub fps: f64,
    /// Frames in the media, when known.
    pub frames: Option<usize>,
}

impl Timing {
    /// The timing of a project's media (`<media>.auscope`'s media, when it
    /// is there): its frame rate, else `fps`, and its length. None: no
    /// frame rate known.
    pub fn of_project(store: &Store, fps: Option<f64>) -> Option<Timing> {
        let info = Store::media_of(store.path())
            .filter(|m| m.exists())
            .and_then(|m| crate::source::open_source(&m).ok())
            .map(|s| s.info().clone());
        let fps = fps.or(info.as_ref().and_then(|i| i.fps))?;
        Some(Timing { fps, frames: info.map(|i| i.frame_count) })
    }
}

/// Import a label file of any kind: ELAN .eaf (needs `timing`), auscope's
/// plain CSV/JSON or events CSV (see [`is_plain`]), else an OpenFace CSV
/// as `openface_as`'s labels. Returns what was read, in words.
pub fn import_any(store: &mut Store, path: &Path, openface_as: (Source, &str), timing: Option<Timing>) -> Result<String, CoreError> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("eaf")) {
        let Some(t) = timing else {
            return Err(bad(path, "an ELAN file places events in time: the project's media (for its frame rate) is needed"));
        };
        super::elan::import(store, path, t.fps, t.frames)
    } else if is_plain(path) {
        import(store, path, timing.and_then(|t| t.frames))
    } else {
        let (source, who) = openface_as;
        Ok(format!("{} (as {} \"{who}\")", super::openface::import_as(store, path, source, who)?.summary(), source.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("auscope-plain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn a_row_without_an_edit_time_imports_as_time_zero() {
        let head = COLUMNS.join(",");
        let csv = temp("no-time.csv", &format!("{head}\n3,0,AU12,coder,ann,1,B,,\n4,0,AU06,coder,ann,0,,,1700\n"));
        let labels = read(&csv).expect("rows without time_ms import");
        assert_eq!(labels.iter().map(|l| l.time_ms).collect::<Vec<_>>(), [0, 1700]);
        assert_eq!(labels[0].value.intensity, Some(2));
        let json = temp(
            "no-time.json",
            r#"{"format":1,"media":null,"labels":[
                {"frame":1,"face":0,"au":"AU01","source":"coder","who":"ann","occurrence":1,"intensity":null,"score":null},
                {"frame":2,"face":0,"au":"AU01","source":"coder","who":"ann","occurrence":0,"intensity":null,"score":null,"time_ms":null}]}"#,
        );
        assert_eq!(read(&json).expect("json without time_ms").iter().map(|l| l.time_ms).collect::<Vec<_>>(), [0, 0]);
    }

    #[test]
    fn errors_name_the_label_file_and_the_line() {
        let head = COLUMNS.join(",");
        let csv = temp("bad-line.csv", &format!("{head}\n0,0,AU12,coder,ann,1,,,0\n1,0,AU12,coder,ann,yes,,,0\n"));
        let e = read(&csv).expect_err("a malformed row").to_string();
        assert!(e.starts_with(&format!("label file {}: line 3", csv.display())), "{e}");
        assert!(!e.contains("training data"), "{e}");
        let letter = temp("bad-letter.csv", &format!("{head}\n0,0,AU12,coder,ann,1,F,,0\n"));
        let e = read(&letter).expect_err("intensity F").to_string();
        assert!(e.starts_with("label file ") && e.contains("bad-letter.csv: row 2: intensity 'F'"), "{e}");
    }

    #[test]
    fn events_round_trip_through_csv_and_json() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(&dir.path().join("a.mp4.auscope")).expect("store");
        let mut a = EventSpan::new(1, "AU12", 5, 9);
        a.intensity = Some(2);
        a.origin = Some("model:piap".into());
        store.put_events(&[("ann".into(), a.clone()), ("bob".into(), EventSpan::new(0, "AU04", 0, 2))], None).expect("events");
        let csv = dir.path().join("events.csv");
        assert_eq!(export_events(&store, None, &csv).expect("export"), 2);
        let json = dir.path().join("all.json");
        export(&store, None, None, &json).expect("json");
        for file in [&csv, &json] {
            let c = read_all(file).expect("read");
            assert_eq!(c.events, vec![("ann".to_string(), a.clone()), ("bob".to_string(), EventSpan::new(0, "AU04", 0, 2))], "{}", file.display());
        }
        assert!(read_all(&json).expect("read").labels.len() == 8);
        // Into a fresh project: the events and the frames they cover.
        let mut fresh = Store::open(&dir.path().join("b.mp4.auscope")).expect("store");
        let said = import(&mut fresh, &csv, Some(100)).expect("import");
        assert!(said.contains("0 labels and 2 events"), "{said}");
        assert_eq!(fresh.labels(Some(Source::Coder), None).expect("labels").len(), 8);
        // An event past the end of the media is refused by name; nothing goes in.
        let mut other = Store::open(&dir.path().join("c.mp4.auscope")).expect("store");
        let e = import(&mut other, &csv, Some(8)).expect_err("past the end").to_string();
        assert!(e.contains("events.csv") && e.contains("past the media's last frame 7"), "{e}");
        assert!(other.events(None).expect("events").is_empty() && other.labels(None, None).expect("labels").is_empty());
        // Apex outside the event: the line is named.
        let bad_csv = dir.path().join("bad.csv");
        std::fs::write(&bad_csv, format!("{}\nann,0,AU12,5,12,9,,,\n", EVENT_COLUMNS.join(","))).expect("write");
        let e = read_all(&bad_csv).expect_err("apex out").to_string();
        assert!(e.contains("bad.csv: line 2") && e.contains("not in order"), "{e}");
    }
}
