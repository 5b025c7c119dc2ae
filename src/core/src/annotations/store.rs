//! The project file: SQLite (bundled) next to the media, e.g.
//! `clip.mp4.auscope`. Every change is one transaction, committed before
//! the call returns, in SQLite's WAL mode with `synchronous = FULL`, so a
//! process killed at any moment loses no committed edit.
//!
//! Tables: `meta` (format version, media), `labels` (one row per frame,
//! face, AU, source and who), `frames` (per-frame OpenFace facts:
//! timestamp, confidence, success), `steps` / `step_rows` (the coder's undo
//! history: each row's value before and after, as JSON), and the analysis
//! engine's stored results (see [`super::analysed`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, params};

use super::{Label, LabelKey, LabelValue, Source};
use crate::error::CoreError;

/// A coder's labels per (frame, face): AU index -> occurrence.
pub type CodedFaces = BTreeMap<(usize, usize), BTreeMap<usize, bool>>;

/// The project format this version writes and the newest it reads.
/// Format 2 added AU events ([`super::events`]); a format-1 project is
/// upgraded in place when opened for writing, after a backup copy.
pub const FORMAT: i64 = 2;

/// Per-frame facts of an imported tracker (OpenFace): kept for export.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameInfo {
    pub timestamp: f64,
    pub confidence: f64,
    pub success: bool,
}

/// One label change of a coder's edit: `value` None removes the label.
#[derive(Debug, Clone)]
pub struct Change {
    pub key: LabelKey,
    pub value: Option<LabelValue>,
}

pub struct Store {
    pub(super) conn: Connection,
    path: PathBuf,
    read_only: bool,
    /// The backup written when this open upgraded an older project.
    upgraded: Option<Upgrade>,
}

/// An older project upgraded on open: its format and the copy kept of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Upgrade {
    pub from: i64,
    pub backup: PathBuf,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// The project file of `media`: `<media>.auscope` next to it.
pub fn project_path(media: &Path) -> PathBuf {
    let mut name = media.file_name().unwrap_or_default().to_os_string();
    name.push(".auscope");
    media.with_file_name(name)
}

impl Store {
    /// Open or create the project at `path`. A read-only file (or folder)
    /// opens read-only: labels can be read, edits are refused with a clear
    /// error. A file from a newer auscope is refused and left untouched.
    pub fn open(path: &Path) -> Result<Store, CoreError> {
        let err = |e: &dyn std::fmt::Display| describe(path, e);
        let rw = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE);
        let (conn, read_only) = match rw {
            Ok(c) => match c.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => (c, false),
                Err(e) if is_read_only(&e) => (Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| err(&e))?, true),
                Err(e) => return Err(err(&e)),
            },
            Err(e) if path.exists() => match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
                Ok(c) => (c, true),
                Err(_) => return Err(err(&e)),
            },
            Err(e) => return Err(err(&e)),
        };
        // Wait briefly for another writer, then say it is locked.
        conn.busy_timeout(std::time::Duration::from_millis(1500)).map_err(|e| err(&e))?;
        let mut store = Store { conn, path: path.to_path_buf(), read_only, upgraded: None };
        let format = store.check_format()?;
        if !store.read_only && let Some(from) = format.filter(|&f| f < FORMAT) {
            store.upgraded = Some(store.backup_before_upgrade(from)?);
        }
        if !store.read_only {
            store.conn.pragma_update(None, "synchronous", "FULL").map_err(|e| err(&e))?;
            // A long analysis writes hundreds of MB; the log need not stay that big.
            store.conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024).map_err(|e| err(&e))?;
            store.create()?;
            if store.upgraded.is_some() {
                store.conn.execute("UPDATE meta SET value = ?1 WHERE key = 'format'", [FORMAT.to_string()]).map_err(|e| err(&e))?;
            }
        }
        Ok(store)
    }

    /// A consistent copy of the project as it is (WAL included) beside it,
    /// `<project>.format<N>-backup`, before an upgrade changes it.
    fn backup_before_upgrade(&self, from: i64) -> Result<Upgrade, CoreError> {
        let name = self.path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let backup = (1..)
            .map(|n: u32| self.path.with_file_name(if n == 1 { format!("{name}.format{from}-backup") } else { format!("{name}.format{from}-backup-{n}") }))
            .find(|p| !p.exists())
            .expect("a free name");
        self.conn.execute("VACUUM INTO ?1", [backup.to_string_lossy()]).map_err(|e| {
            CoreError::Project(format!(
                "{}: project format {from} needs an upgrade to {FORMAT}, but its backup {} could not be written ({e}); the project was not changed",
                self.path.display(),
                backup.display()
            ))
        })?;
        Ok(Upgrade { from, backup })
    }

    /// The upgrade this open made of an older project (None: none).
    pub fn upgraded(&self) -> Option<&Upgrade> {
        self.upgraded.as_ref()
    }

    /// The project of a media file (`<media>.auscope`), recording the
    /// media's file name in it when it is new.
    pub fn open_for_media(media: &Path) -> Result<Store, CoreError> {
        let mut store = Store::open(&project_path(media))?;
        if !store.read_only && store.meta("media")?.is_none() {
            let name = media.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            store.set_meta("media", &name)?;
        }
        Ok(store)
    }

    /// The media file a project belongs to: the one its name was made from
    /// (`clip.mp4` for `clip.mp4.auscope`).
    pub fn media_of(project: &Path) -> Option<PathBuf> {
        let name = project.file_name()?.to_str()?;
        name.strip_suffix(".auscope").map(|m| project.with_file_name(m))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file cannot be written (edits are refused).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub(super) fn err(&self, e: &dyn std::fmt::Display) -> CoreError {
        describe(&self.path, e)
    }

    /// The project's format (None: a new, empty file).
    fn check_format(&self) -> Result<Option<i64>, CoreError> {
        if !self.has_table("meta")? {
            let tables: i64 = self.conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).map_err(|e| self.err(&e))?;
            if tables > 0 {
                return Err(CoreError::Project(format!("{}: an SQLite file, but not an auscope project; it was not changed", self.path.display())));
            }
            return Ok(None);
        }
        let format: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(&e))?;
        let format: i64 = format.and_then(|f| f.parse().ok()).unwrap_or(0);
        if format > FORMAT {
            return Err(CoreError::Project(format!(
                "{}: made by a newer auscope (project format {format}; this version reads up to {FORMAT}). Open it with a newer auscope; the file was not changed",
                self.path.display()
            )));
        }
        Ok(Some(format))
    }

    fn create(&mut self) -> Result<(), CoreError> {
        self.conn
            .execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT OR IGNORE INTO meta VALUES ('format', '2');
                 CREATE TABLE IF NOT EXISTS labels (
                     frame INTEGER NOT NULL, face INTEGER NOT NULL, au TEXT NOT NULL,
                     source TEXT NOT NULL CHECK (source IN ('model', 'coder')), who TEXT NOT NULL,
                     occurrence INTEGER NOT NULL, intensity INTEGER, score REAL, time_ms INTEGER NOT NULL,
                     PRIMARY KEY (frame, face, au, source, who));
                 CREATE TABLE IF NOT EXISTS frames (
                     frame INTEGER PRIMARY KEY, timestamp REAL NOT NULL, confidence REAL NOT NULL, success INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS steps (
                     step INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT NOT NULL, who TEXT NOT NULL,
                     undone INTEGER NOT NULL DEFAULT 0, time_ms INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS step_rows (
                     step INTEGER NOT NULL, frame INTEGER NOT NULL, face INTEGER NOT NULL, au TEXT NOT NULL,
                     before TEXT, after TEXT);
                 COMMIT;",
            )
            .map_err(|e| self.err(&e))?;
        self.conn.execute_batch(super::analysed::SCHEMA).map_err(|e| self.err(&e))?;
        self.conn.execute_batch(super::events::SCHEMA).map_err(|e| self.err(&e))?;
        if !self.has_table("coded_faces")? {
            // Projects from before the summary: made once from the labels.
            self.conn
                .execute_batch(&format!(
                    "BEGIN;
                     CREATE TABLE coded_faces (who TEXT NOT NULL, frame INTEGER NOT NULL, face INTEGER NOT NULL, labels TEXT NOT NULL,
                         PRIMARY KEY (who, frame, face)) WITHOUT ROWID;
                     INSERT INTO coded_faces SELECT who, frame, face, {CODED} FROM labels WHERE source = 'coder' GROUP BY who, frame, face;
                     COMMIT;"
                ))
                .map_err(|e| self.err(&e))?;
        }
        Ok(())
    }

    pub(super) fn writable(&self) -> Result<(), CoreError> {
        if self.read_only {
            return Err(CoreError::Project(format!(
                "{} is read-only: the edit was not saved (make the file writable, or save the project elsewhere)",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// A metadata value (e.g. "media").
    pub fn meta(&self, key: &str) -> Result<Option<String>, CoreError> {
        self.conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(|e| self.err(&e))
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), CoreError> {
        self.writable()?;
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?1, ?2)", [key, value]).map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// A coder's edit of one or more labels as one transaction and one undo
    /// step; it clears what could be redone.
    pub fn edit(&mut self, coder: &str, what: &str, changes: &[Change]) -> Result<(), CoreError> {
        self.writable()?;
        let path = self.path.clone();
        let e = |x: rusqlite::Error| describe(&path, &x);
        let tx = self.conn.transaction().map_err(e)?;
        let step = begin_step(&tx, coder, what).map_err(e)?;
        for c in changes {
            let before = read_value(&tx, &c.key, Source::Coder, coder).map_err(e)?;
            write_value(&tx, &c.key, Source::Coder, coder, c.value.as_ref()).map_err(e)?;
            record_row(&tx, step, &c.key, before.as_ref(), c.value.as_ref()).map_err(e)?;
        }
        super::events::cut_for_frame_edits(&tx, step, coder, changes).map_err(e)?;
        refresh_coded(&tx, changes.iter().map(|c| (coder, c.key.frame, c.key.face))).map_err(e)?;
        tx.commit().map_err(e)
    }

    /// Undo `coder`'s last edit; false when there is none.
    pub fn undo(&mut self, coder: &str) -> Result<bool, CoreError> {
        Ok(self.replay(coder, true)?.is_some())
    }

    /// Redo `coder`'s last undone edit; false when there is none.
    pub fn redo(&mut self, coder: &str) -> Result<bool, CoreError> {
        Ok(self.replay(coder, false)?.is_some())
    }

    /// Undo (`undo`) or redo `coder`'s last step; the label values it wrote
    /// (None: nothing to undo or redo).
    pub fn replay(&mut self, coder: &str, undo: bool) -> Result<Option<Vec<Change>>, CoreError> {
        self.writable()?;
        let path = self.path.clone();
        let e = |x: rusqlite::Error| describe(&path, &x);
        let tx = self.conn.transaction().map_err(e)?;
        let pick = if undo {
            "SELECT step FROM steps WHERE who = ?1 AND undone = 0 ORDER BY step DESC LIMIT 1"
        } else {
            "SELECT step FROM steps WHERE who = ?1 AND undone = 1 ORDER BY step ASC LIMIT 1"
        };
        let Some(step): Option<i64> = tx.query_row(pick, [coder], |r| r.get(0)).optional().map_err(e)? else {
            return Ok(None);
        };
        let rows: Vec<(LabelKey, Option<String>)> = {
            let column = if undo { "before" } else { "after" };
            let mut q = tx
                .prepare(&format!("SELECT frame, face, au, {column} FROM step_rows WHERE step = ?1 ORDER BY rowid {}", if undo { "DESC" } else { "ASC" }))
                .map_err(e)?;
            let it = q
                .query_map([step], |r| Ok((LabelKey { frame: r.get::<_, i64>(0)? as usize, face: r.get::<_, i64>(1)? as usize, au: r.get(2)? }, r.get(3)?)))
                .map_err(e)?;
            it.collect::<Result<_, _>>().map_err(e)?
        };
        let mut changes = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            let value: Option<LabelValue> = value.and_then(|v| serde_json::from_str(&v).ok());
            write_value(&tx, &key, Source::Coder, coder, value.as_ref()).map_err(e)?;
            changes.push(Change { key, value });
        }
        refresh_coded(&tx, changes.iter().map(|c| (coder, c.key.frame, c.key.face))).map_err(e)?;
        super::events::replay_events(&tx, step, coder, undo).map_err(e)?;
        tx.execute("UPDATE steps SET undone = ?1 WHERE step = ?2", params![undo as i64, step]).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(Some(changes))
    }

    /// A model's (or an imported tracker's) labels, written in one
    /// transaction, replacing its earlier ones for the same keys. Not undoable.
    pub fn put_predictions(&mut self, who: &str, labels: &[(LabelKey, LabelValue)]) -> Result<(), CoreError> {
        self.put(labels.iter().map(|(k, v)| (k, Source::Model, who, v)))
    }

    /// Labels of any source written as they are (an import), one
    /// transaction, not undoable.
    pub fn put_labels(&mut self, labels: &[Label]) -> Result<(), CoreError> {
        self.put(labels.iter().map(|l| (&l.key, l.source, l.who.as_str(), &l.value)))
    }

    /// Write label rows in one transaction, outside the undo history.
    fn put<'a>(&mut self, rows: impl Iterator<Item = (&'a LabelKey, Source, &'a str, &'a LabelValue)>) -> Result<(), CoreError> {
        self.writable()?;
        let path = self.path.clone();
        let e = |x: rusqlite::Error| describe(&path, &x);
        let tx = self.conn.transaction().map_err(e)?;
        let mut coded: std::collections::BTreeSet<(&str, usize, usize)> = std::collections::BTreeSet::new();
        for (k, source, who, v) in rows {
            write_value(&tx, k, source, who, Some(v)).map_err(e)?;
            if source == Source::Coder {
                coded.insert((who, k.frame, k.face));
            }
        }
        refresh_coded(&tx, coded.into_iter()).map_err(e)?;
        tx.commit().map_err(e)
    }

    /// Per-frame facts from an imported tracker.
    pub fn put_frames(&mut self, frames: &[(usize, FrameInfo)]) -> Result<(), CoreError> {
        self.writable()?;
        let path = self.path.clone();
        let e = |x: rusqlite::Error| describe(&path, &x);
        let tx = self.conn.transaction().map_err(e)?;
        for (f, i) in frames {
            tx.execute("INSERT OR REPLACE INTO frames VALUES (?1, ?2, ?3, ?4)", params![*f as i64, i.timestamp, i.confidence, i.success as i64]).map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    pub fn frames(&self) -> Result<Vec<(usize, FrameInfo)>, CoreError> {
        let mut q = self.conn.prepare("SELECT frame, timestamp, confidence, success FROM frames ORDER BY frame").map_err(|e| self.err(&e))?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as usize, FrameInfo { timestamp: r.get(1)?, confidence: r.get(2)?, success: r.get::<_, i64>(3)? != 0 })))
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    /// Labels, optionally of one source and one coder/model, in key order.
    pub fn labels(&self, source: Option<Source>, who: Option<&str>) -> Result<Vec<Label>, CoreError> {
        self.select_labels(None, source, who)
    }

    /// The labels of one frame (all sources).
    pub fn frame_labels(&self, frame: usize) -> Result<Vec<Label>, CoreError> {
        self.select_labels(Some(frame), None, None)
    }

    /// Labels with each given filter, in key order.
    fn select_labels(&self, frame: Option<usize>, source: Option<Source>, who: Option<&str>) -> Result<Vec<Label>, CoreError> {
        let mut q = self
            .conn
            .prepare(
                "SELECT frame, face, au, source, who, occurrence, intensity, score, time_ms FROM labels
                 WHERE (?1 IS NULL OR frame = ?1) AND (?2 IS NULL OR source = ?2) AND (?3 IS NULL OR who = ?3)
                 ORDER BY frame, face, au, source, who",
            )
            .map_err(|e| self.err(&e))?;
        let rows = q.query_map(params![frame.map(|f| f as i64), source.map(Source::name), who], row_label).map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    /// Call `f(frame, face, au, value)` for every label of `source` by
    /// `who`, in no particular order, without an allocation per row: the
    /// window's way of reading a whole project. A coder's labels come from
    /// the per-face summary (one row a face instead of one an AU).
    pub fn for_each_label(&self, source: Source, who: &str, f: &mut dyn FnMut(usize, usize, &str, LabelValue)) -> Result<(), CoreError> {
        use rusqlite::types::ValueRef;
        let e = |x: rusqlite::Error| self.err(&x);
        let int = |v: ValueRef| match v {
            ValueRef::Integer(i) => Some(i),
            _ => None,
        };
        if source == Source::Coder && self.has_table("coded_faces")? {
            let mut q = self.conn.prepare("SELECT frame, face, labels FROM coded_faces WHERE who = ?1").map_err(e)?;
            let mut rows = q.query([who]).map_err(e)?;
            while let Some(r) = rows.next().map_err(e)? {
                let (frame, face) = (int(r.get_ref_unwrap(0)).unwrap_or(0) as usize, int(r.get_ref_unwrap(1)).unwrap_or(0) as usize);
                let ValueRef::Text(text) = r.get_ref_unwrap(2) else { continue };
                for (au, value) in std::str::from_utf8(text).unwrap_or_default().split(',').filter_map(parse_coded) {
                    f(frame, face, au, value);
                }
            }
            return Ok(());
        }
        let mut q = self.conn.prepare("SELECT frame, face, au, occurrence, intensity, score FROM labels WHERE source = ?1 AND who = ?2").map_err(e)?;
        let mut rows = q.query(params![source.name(), who]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let score = match r.get_ref_unwrap(5) {
                ValueRef::Real(v) => Some(v),
                ValueRef::Integer(v) => Some(v as f64),
                _ => None,
            };
            let value = LabelValue { occurrence: int(r.get_ref_unwrap(3)).unwrap_or(0) != 0, intensity: int(r.get_ref_unwrap(4)).map(|i| i as u8), score };
            let ValueRef::Text(au) = r.get_ref_unwrap(2) else { continue };
            f(int(r.get_ref_unwrap(0)).unwrap_or(0) as usize, int(r.get_ref_unwrap(1)).unwrap_or(0) as usize, std::str::from_utf8(au).unwrap_or_default(), value);
        }
        Ok(())
    }

    pub(super) fn has_table(&self, name: &str) -> Result<bool, CoreError> {
        let n: i64 = self.conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [name], |r| r.get(0)).map_err(|e| self.err(&e))?;
        Ok(n > 0)
    }

    /// The faces a coder labelled: per (frame, face), the occurrence of each
    /// AU of `aus` (by index) they labelled, their latest label winning
    /// (None: any coder's latest). Fine-tuning, training on projects and
    /// the video correlation read coder labels through this.
    pub fn coded_faces(&self, aus: &[String], coder: Option<&str>) -> Result<CodedFaces, CoreError> {
        let mut latest: BTreeMap<(usize, usize, usize), (i64, bool)> = BTreeMap::new();
        for l in self.labels(Some(Source::Coder), coder)? {
            let Some(j) = aus.iter().position(|a| *a == l.key.au) else { continue };
            let slot = latest.entry((l.key.frame, l.key.face, j)).or_insert((l.time_ms, l.value.occurrence));
            if l.time_ms >= slot.0 {
                *slot = (l.time_ms, l.value.occurrence);
            }
        }
        let mut out = CodedFaces::new();
        for ((frame, face, j), (_, occ)) in latest {
            out.entry((frame, face)).or_default().insert(j, occ);
        }
        Ok(out)
    }

    /// The names that labelled as `source`.
    pub fn who(&self, source: Source) -> Result<Vec<String>, CoreError> {
        let mut q = self.conn.prepare("SELECT DISTINCT who FROM labels WHERE source = ?1 ORDER BY who").map_err(|e| self.err(&e))?;
        let rows = q.query_map([source.name()], |r| r.get(0)).map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }
}

fn row_label(r: &rusqlite::Row) -> rusqlite::Result<Label> {
    Ok(Label {
        key: LabelKey { frame: r.get::<_, i64>(0)? as usize, face: r.get::<_, i64>(1)? as usize, au: r.get(2)? },
        source: Source::parse(&r.get::<_, String>(3)?).unwrap_or(Source::Model),
        who: r.get(4)?,
        value: LabelValue { occurrence: r.get::<_, i64>(5)? != 0, intensity: r.get::<_, Option<i64>>(6)?.map(|i| i as u8), score: r.get(7)? },
        time_ms: r.get(8)?,
    })
}

/// A new undo step of `coder` (clearing what they could redo); its number.
pub(super) fn begin_step(tx: &Transaction, coder: &str, what: &str) -> rusqlite::Result<i64> {
    tx.execute("DELETE FROM step_rows WHERE step IN (SELECT step FROM steps WHERE undone = 1 AND who = ?1)", [coder])?;
    tx.execute("DELETE FROM step_events WHERE step IN (SELECT step FROM steps WHERE undone = 1 AND who = ?1)", [coder])?;
    tx.execute("DELETE FROM steps WHERE undone = 1 AND who = ?1", [coder])?;
    tx.execute("INSERT INTO steps (what, who, time_ms) VALUES (?1, ?2, ?3)", params![what, coder, now_ms()])?;
    Ok(tx.last_insert_rowid())
}

/// One label's value before and after, in undo step `step`.
pub(super) fn record_row(tx: &Transaction, step: i64, key: &LabelKey, before: Option<&LabelValue>, after: Option<&LabelValue>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO step_rows VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![step, key.frame as i64, key.face as i64, key.au, json(before), json(after)],
    )?;
    Ok(())
}

pub(super) fn read_value(tx: &Transaction, k: &LabelKey, source: Source, who: &str) -> rusqlite::Result<Option<LabelValue>> {
    tx.query_row(
        "SELECT occurrence, intensity, score FROM labels WHERE frame = ?1 AND face = ?2 AND au = ?3 AND source = ?4 AND who = ?5",
        params![k.frame as i64, k.face as i64, k.au, source.name(), who],
        |r| Ok(LabelValue { occurrence: r.get::<_, i64>(0)? != 0, intensity: r.get::<_, Option<i64>>(1)?.map(|i| i as u8), score: r.get(2)? }),
    )
    .optional()
}

pub(super) fn write_value(tx: &Transaction, k: &LabelKey, source: Source, who: &str, v: Option<&LabelValue>) -> rusqlite::Result<()> {
    match v {
        Some(v) => tx.execute(
            "INSERT OR REPLACE INTO labels VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![k.frame as i64, k.face as i64, k.au, source.name(), who, v.occurrence as i64, v.intensity.map(|i| i as i64), v.score, now_ms()],
        )?,
        None => tx.execute(
            "DELETE FROM labels WHERE frame = ?1 AND face = ?2 AND au = ?3 AND source = ?4 AND who = ?5",
            params![k.frame as i64, k.face as i64, k.au, source.name(), who],
        )?,
    };
    Ok(())
}

/// One face's coder labels as the summary keeps them: `AU12=1B,AU04=0`
/// (occurrence 1/0, then the intensity letter when coded).
const CODED: &str = "group_concat(au || '=' || occurrence || CASE WHEN intensity BETWEEN 1 AND 5 THEN char(64 + intensity) ELSE '' END, ',')";

fn parse_coded(item: &str) -> Option<(&str, LabelValue)> {
    let (au, v) = item.split_once('=')?;
    let mut c = v.chars();
    let occurrence = c.next()? == '1';
    let intensity = c.next().filter(|l| ('A'..='E').contains(l)).map(|l| l as u8 - b'A' + 1);
    Some((au, LabelValue { occurrence, intensity, score: None }))
}

/// Bring the per-face summary of coder labels in step with the labels of
/// the (coder, frame, face)s just written, in the same transaction.
pub(super) fn refresh_coded<'a>(tx: &Transaction, faces: impl Iterator<Item = (&'a str, usize, usize)>) -> rusqlite::Result<()> {
    let faces: std::collections::BTreeSet<(&str, usize, usize)> = faces.collect();
    let mut clear = tx.prepare_cached("DELETE FROM coded_faces WHERE who = ?1 AND frame = ?2 AND face = ?3")?;
    let mut fill = tx.prepare_cached(&format!(
        "INSERT INTO coded_faces SELECT who, frame, face, {CODED} FROM labels
         WHERE frame = ?2 AND face = ?3 AND source = 'coder' AND who = ?1 GROUP BY who, frame, face"
    ))?;
    for (who, frame, face) in faces {
        clear.execute(params![who, frame as i64, face as i64])?;
        fill.execute(params![who, frame as i64, face as i64])?;
    }
    Ok(())
}

fn json(v: Option<&LabelValue>) -> Option<String> {
    v.and_then(|v| serde_json::to_string(v).ok())
}

fn is_read_only(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied))
}

/// An SQLite error in words a user can act on.
pub(super) fn describe(path: &Path, e: &dyn std::fmt::Display) -> CoreError {
    let text = e.to_string();
    let why = if text.contains("locked") || text.contains("busy") {
        "it is locked by another program (another auscope?); the edit was not saved, try again when it is closed".to_string()
    } else if text.contains("not a database") || text.contains("malformed") {
        "not an auscope project (not an SQLite file, or damaged); it was not changed".to_string()
    } else if text.contains("readonly") || text.contains("read-only") {
        "read-only: the edit was not saved".to_string()
    } else {
        text
    };
    CoreError::Project(format!("{}: {why}", path.display()))
}
