//! AU events: a coder's interval of one AU of one person, with onset, apex
//! and offset (frames, inclusive) and a FACS intensity A-E, as FACS coders
//! code them. Stored in the project (format 2) beside the frame labels.
//!
//! Events and frame labels stay consistent in one rule: an event means
//! "present" on every frame it covers. Creating, moving or deleting an
//! event writes or removes the coder's frame labels of the frames it gains
//! or loses, in the same transaction and undo step; a frame edit that makes
//! a frame absent (or clears it) inside one of the coder's events cuts the
//! event there (trimming, splitting or deleting it), in the same step too.
//! A frame labelled present outside any event stays a frame label only.
//!
//! A person is a face identity of the stored analysis (a track id, after
//! coders' merges); in a project with no analysis it is the face index.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::store::{Change, Store, describe, now_ms, read_value, write_value};
use super::{LabelKey, LabelValue, Source, intensity_letter};
use crate::error::CoreError;

pub(super) const SCHEMA: &str = "BEGIN;
    CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, who TEXT NOT NULL, person INTEGER NOT NULL, au TEXT NOT NULL,
        onset INTEGER NOT NULL, apex INTEGER NOT NULL, offset INTEGER NOT NULL, intensity INTEGER, origin TEXT,
        time_ms INTEGER NOT NULL);
    CREATE INDEX IF NOT EXISTS events_by_au ON events (who, person, au, onset);
    CREATE TABLE IF NOT EXISTS step_events (step INTEGER NOT NULL, id INTEGER NOT NULL, before TEXT, after TEXT);
    CREATE TABLE IF NOT EXISTS rejected_proposals (
        who TEXT NOT NULL, model TEXT NOT NULL, person INTEGER NOT NULL, au TEXT NOT NULL, onset INTEGER NOT NULL,
        offset INTEGER NOT NULL, PRIMARY KEY (who, model, person, au, onset, offset)) WITHOUT ROWID;
    COMMIT;";

/// What an event says: who it is about, which AU, when, how strong.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventSpan {
    pub person: u32,
    pub au: String,
    pub onset: usize,
    pub apex: usize,
    pub offset: usize,
    /// FACS intensity 1..=5 (A..E); None: not coded.
    pub intensity: Option<u8>,
    /// Where it came from when not marked by hand, e.g. "model:piap" for
    /// an accepted model proposal or "eaf:file.eaf" for an import.
    #[serde(default)]
    pub origin: Option<String>,
}

impl EventSpan {
    /// A span from onset to offset with its apex in the middle.
    pub fn new(person: u32, au: &str, onset: usize, offset: usize) -> Self {
        let (onset, offset) = (onset.min(offset), onset.max(offset));
        EventSpan { person, au: au.to_string(), onset, apex: onset + (offset - onset) / 2, offset, intensity: None, origin: None }
    }

    pub fn frames(&self) -> usize {
        self.offset + 1 - self.onset
    }

    pub fn contains(&self, frame: usize) -> bool {
        (self.onset..=self.offset).contains(&frame)
    }

    pub fn overlaps(&self, other: &EventSpan) -> bool {
        self.person == other.person && self.au == other.au && self.onset <= other.offset && other.onset <= self.offset
    }

    /// Why this span cannot be stored (None: it can). `frames`: the
    /// media's length, when known.
    pub fn problem(&self, frames: Option<usize>) -> Option<String> {
        if crate::training::data::au_name(&self.au).is_none() {
            return Some(format!("'{}' is not an AU name", self.au));
        }
        if !(self.onset <= self.apex && self.apex <= self.offset) {
            return Some(format!("{} event: onset {}, apex {}, offset {} are not in order", self.au, self.onset, self.apex, self.offset));
        }
        if let Some(i) = self.intensity.filter(|i| !(1..=5).contains(i)) {
            return Some(format!("{} event at frame {}: intensity {i} is not 1-5 (A-E)", self.au, self.onset));
        }
        if let Some(n) = frames.filter(|&n| self.offset >= n) {
            return Some(format!("{} event {}-{} ends past the media's last frame {}", self.au, self.onset, self.offset, n.saturating_sub(1)));
        }
        None
    }

    /// Frames `onset..=offset` without `frame`: the parts left when a frame
    /// is cut out, each with an apex inside it.
    fn without(&self, frame: usize) -> Vec<EventSpan> {
        let mut parts = Vec::new();
        if frame > self.onset {
            parts.push(self.part(self.onset, frame - 1));
        }
        if frame < self.offset {
            parts.push(self.part(frame + 1, self.offset));
        }
        parts
    }

    fn part(&self, onset: usize, offset: usize) -> EventSpan {
        let apex = if (onset..=offset).contains(&self.apex) { self.apex } else { onset + (offset - onset) / 2 };
        EventSpan { onset, apex, offset, ..self.clone() }
    }

    /// "AU12 C 10-[14]-20" (onset-[apex]-offset).
    pub fn describe(&self) -> String {
        let i = self.intensity.and_then(intensity_letter).map(|c| format!(" {c}")).unwrap_or_default();
        format!("{}{i} {}-[{}]-{}", self.au, self.onset, self.apex, self.offset)
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    /// The coder.
    pub who: String,
    pub span: EventSpan,
    /// When it was last written, Unix milliseconds.
    pub time_ms: i64,
}

/// One change to the events table: event `id` (None: a new one) becomes
/// `after` (None: deleted).
struct EventOp {
    id: Option<i64>,
    after: Option<EventSpan>,
}

impl Store {
    /// The events of `who` (None: every coder), by coder, person, AU, onset.
    pub fn events(&self, who: Option<&str>) -> Result<Vec<Event>, CoreError> {
        if !self.has_table("events")? {
            return Ok(Vec::new());
        }
        let mut q = self
            .conn
            .prepare(
                "SELECT id, who, person, au, onset, apex, offset, intensity, origin, time_ms FROM events
                 WHERE (?1 IS NULL OR who = ?1) ORDER BY who, person, au, onset, id",
            )
            .map_err(|e| self.err(&e))?;
        let rows = q.query_map([who], row_event).map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    /// The coders who have events.
    pub fn event_coders(&self) -> Result<Vec<String>, CoreError> {
        if !self.has_table("events")? {
            return Ok(Vec::new());
        }
        let mut q = self.conn.prepare("SELECT DISTINCT who FROM events ORDER BY who").map_err(|e| self.err(&e))?;
        let rows = q.query_map([], |r| r.get(0)).map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    pub fn event(&self, id: i64) -> Result<Option<Event>, CoreError> {
        self.conn
            .query_row("SELECT id, who, person, au, onset, apex, offset, intensity, origin, time_ms FROM events WHERE id = ?1", [id], row_event)
            .optional()
            .map_err(|e| self.err(&e))
    }

    /// A new event of `coder` (one undo step); its id.
    pub fn add_event(&mut self, coder: &str, span: EventSpan) -> Result<i64, CoreError> {
        let what = format!("mark {}", span.describe());
        Ok(self.event_step(coder, &what, vec![EventOp { id: None, after: Some(span) }])?[0])
    }

    /// Several new events of `coder` in one undo step (accepting every
    /// model proposal at once); their ids.
    pub fn add_events(&mut self, coder: &str, what: &str, spans: Vec<EventSpan>) -> Result<Vec<i64>, CoreError> {
        self.event_step(coder, what, spans.into_iter().map(|s| EventOp { id: None, after: Some(s) }).collect())
    }

    /// Move an event's edges or apex, or set its intensity (one undo step).
    pub fn change_event(&mut self, coder: &str, id: i64, span: EventSpan) -> Result<(), CoreError> {
        self.own_event(coder, id)?;
        let what = format!("change event to {}", span.describe());
        self.event_step(coder, &what, vec![EventOp { id: Some(id), after: Some(span) }]).map(drop)
    }

    pub fn delete_event(&mut self, coder: &str, id: i64) -> Result<(), CoreError> {
        let e = self.own_event(coder, id)?;
        self.event_step(coder, &format!("delete {}", e.span.describe()), vec![EventOp { id: Some(id), after: None }]).map(drop)
    }

    /// Split an event before frame `at` (onset < at <= offset): the ids of
    /// the two parts (the first keeps the event's id).
    pub fn split_event(&mut self, coder: &str, id: i64, at: usize) -> Result<(i64, i64), CoreError> {
        let e = self.own_event(coder, id)?;
        if at <= e.span.onset || at > e.span.offset {
            return Err(CoreError::Project(format!("{} cannot be split at frame {at}: it must be after the onset and no later than the offset", e.span.describe())));
        }
        let (first, second) = (e.span.part(e.span.onset, at - 1), e.span.part(at, e.span.offset));
        let ids = self.event_step(coder, &format!("split {} at {at}", e.span.describe()), vec![
            EventOp { id: Some(id), after: Some(first) },
            EventOp { id: None, after: Some(second) },
        ])?;
        Ok((ids[0], ids[1]))
    }

    /// One event from two of the same person and AU: from the earlier onset
    /// to the later offset, the apex and intensity of the stronger (the
    /// first on a tie). The id kept is `a`'s.
    pub fn merge_events(&mut self, coder: &str, a: i64, b: i64) -> Result<i64, CoreError> {
        let (ea, eb) = (self.own_event(coder, a)?, self.own_event(coder, b)?);
        if (ea.span.person, &ea.span.au) != (eb.span.person, &eb.span.au) {
            return Err(CoreError::Project(format!("{} and {} are not of the same person and AU; they were not merged", ea.span.describe(), eb.span.describe())));
        }
        let strong = if eb.span.intensity > ea.span.intensity { &eb.span } else { &ea.span };
        let merged = EventSpan {
            onset: ea.span.onset.min(eb.span.onset),
            offset: ea.span.offset.max(eb.span.offset),
            apex: strong.apex,
            intensity: strong.intensity,
            ..ea.span.clone()
        };
        let what = format!("merge {} and {}", ea.span.describe(), eb.span.describe());
        self.event_step(coder, &what, vec![EventOp { id: Some(b), after: None }, EventOp { id: Some(a), after: Some(merged) }])?;
        Ok(a)
    }

    /// Events from elsewhere (an .eaf or label-file import), each with its
    /// coder, checked together first and written in one transaction (not
    /// undoable, as label imports): all or nothing. `frames`: the media's
    /// length, when known. Returns how many.
    pub fn put_events(&mut self, events: &[(String, EventSpan)], frames: Option<usize>) -> Result<usize, CoreError> {
        self.writable()?;
        let mut by: BTreeMap<(&str, u32, &str), Vec<&EventSpan>> = BTreeMap::new();
        for (who, s) in events {
            if let Some(p) = s.problem(frames) {
                return Err(CoreError::Project(format!("{who}'s {p}; nothing was imported")));
            }
            by.entry((who.as_str(), s.person, s.au.as_str())).or_default().push(s);
        }
        for ((who, person, _), spans) in &mut by {
            spans.sort();
            for w in spans.windows(2) {
                if w[1].onset <= w[0].offset {
                    return Err(CoreError::Project(format!(
                        "{who}'s events {} and {} of person {person} overlap; nothing was imported",
                        w[0].describe(),
                        w[1].describe()
                    )));
                }
            }
        }
        let path = self.path().to_path_buf();
        let e = |x: rusqlite::Error| describe(&path, &x);
        let tx = self.conn.transaction().map_err(e)?;
        for (who, s) in events {
            if let Some(other) = overlapping(&tx, who, s, &[]).map_err(e)? {
                return Err(CoreError::Project(format!(
                    "{who}'s {} overlaps their event {} already in the project; nothing was imported",
                    s.describe(),
                    other.span.describe()
                )));
            }
            write_event(&tx, None, who, Some(s)).map_err(e)?;
            for (frame, face) in person_faces(&tx, s).map_err(e)? {
                let key = LabelKey { frame, face, au: s.au.clone() };
                write_value(&tx, &key, Source::Coder, who, Some(&LabelValue::coded(true, s.intensity))).map_err(e)?;
            }
        }
        let faces: BTreeSet<(&str, usize, usize)> = BTreeSet::new();
        let mut faces = faces;
        for (who, s) in events {
            for (frame, face) in person_faces(&tx, s).map_err(e)? {
                faces.insert((who.as_str(), frame, face));
            }
        }
        super::store::refresh_coded(&tx, faces.into_iter()).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(events.len())
    }

    /// Hide a model proposal from `coder`'s list (the coder rejected it).
    pub fn reject_proposal(&mut self, coder: &str, model: &str, span: &EventSpan) -> Result<(), CoreError> {
        self.writable()?;
        self.conn
            .execute(
                "INSERT OR IGNORE INTO rejected_proposals VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![coder, model, span.person as i64, span.au, span.onset as i64, span.offset as i64],
            )
            .map_err(|e| self.err(&e))?;
        Ok(())
    }

    /// The proposals of `model` that `coder` rejected: (person, AU, onset, offset).
    pub fn rejected_proposals(&self, coder: &str, model: &str) -> Result<BTreeSet<(u32, String, usize, usize)>, CoreError> {
        if !self.has_table("rejected_proposals")? {
            return Ok(BTreeSet::new());
        }
        let mut q = self.conn.prepare("SELECT person, au, onset, offset FROM rejected_proposals WHERE who = ?1 AND model = ?2").map_err(|e| self.err(&e))?;
        let rows = q
            .query_map([coder, model], |r| Ok((r.get::<_, i64>(0)? as u32, r.get(1)?, r.get::<_, i64>(2)? as usize, r.get::<_, i64>(3)? as usize)))
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    fn own_event(&self, coder: &str, id: i64) -> Result<Event, CoreError> {
        match self.event(id)? {
            Some(e) if e.who == coder => Ok(e),
            Some(e) => Err(CoreError::Project(format!("event {id} is {}'s; {coder} can change only their own events", e.who))),
            None => Err(CoreError::Project(format!("there is no event {id} (undone or deleted?)"))),
        }
    }

    /// Event changes and the frame labels they imply as one transaction
    /// and one undo step of `coder`; the ids written, in `ops` order.
    fn event_step(&mut self, coder: &str, what: &str, ops: Vec<EventOp>) -> Result<Vec<i64>, CoreError> {
        self.writable()?;
        for op in &ops {
            if let Some(p) = op.after.as_ref().and_then(|s| s.problem(None)) {
                return Err(CoreError::Project(format!("{p}; nothing was changed")));
            }
        }
        let path = self.path().to_path_buf();
        let e = |x: rusqlite::Error| describe(&path, &x);
        let tx = self.conn.transaction().map_err(e)?;
        let step = super::store::begin_step(&tx, coder, what).map_err(e)?;
        let mut ids = Vec::with_capacity(ops.len());
        let mut touched: BTreeSet<(usize, usize)> = BTreeSet::new();
        for op in ops {
            let before = match op.id {
                Some(id) => tx
                    .query_row("SELECT id, who, person, au, onset, apex, offset, intensity, origin, time_ms FROM events WHERE id = ?1", [id], row_event)
                    .optional()
                    .map_err(e)?
                    .map(|ev| ev.span),
                None => None,
            };
            if let Some(after) = &op.after
                && let Some(other) = overlapping(&tx, coder, after, &op.id.into_iter().collect::<Vec<_>>()).map_err(e)?
            {
                return Err(CoreError::Project(format!(
                    "{} would overlap {coder}'s event {}; nothing was changed (merge them instead)",
                    after.describe(),
                    other.span.describe()
                )));
            }
            let id = write_event(&tx, op.id, coder, op.after.as_ref()).map_err(e)?;
            record_event(&tx, step, id, before.as_ref(), op.after.as_ref()).map_err(e)?;
            // The frame labels: frames gained are present, frames lost cleared.
            let old: BTreeSet<(usize, usize, String)> = match &before {
                Some(b) => person_faces(&tx, b).map_err(e)?.into_iter().map(|(f, i)| (f, i, b.au.clone())).collect(),
                None => BTreeSet::new(),
            };
            let new: BTreeSet<(usize, usize, String)> = match &op.after {
                Some(a) => person_faces(&tx, a).map_err(e)?.into_iter().map(|(f, i)| (f, i, a.au.clone())).collect(),
                None => BTreeSet::new(),
            };
            let mut changes: Vec<Change> = old.difference(&new).map(|(frame, face, au)| Change { key: LabelKey { frame: *frame, face: *face, au: au.clone() }, value: None }).collect();
            if let Some(a) = &op.after {
                let value = LabelValue::coded(true, a.intensity);
                changes.extend(new.iter().map(|(frame, face, au)| Change { key: LabelKey { frame: *frame, face: *face, au: au.clone() }, value: Some(value) }));
            }
            for c in &changes {
                let was = read_value(&tx, &c.key, Source::Coder, coder).map_err(e)?;
                if was == c.value {
                    continue;
                }
                write_value(&tx, &c.key, Source::Coder, coder, c.value.as_ref()).map_err(e)?;
                super::store::record_row(&tx, step, &c.key, was.as_ref(), c.value.as_ref()).map_err(e)?;
                touched.insert((c.key.frame, c.key.face));
            }
            ids.push(id);
        }
        super::store::refresh_coded(&tx, touched.into_iter().map(|(f, i)| (coder, f, i))).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(ids)
    }
}

fn row_event(r: &rusqlite::Row) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(0)?,
        who: r.get(1)?,
        span: EventSpan {
            person: r.get::<_, i64>(2)? as u32,
            au: r.get(3)?,
            onset: r.get::<_, i64>(4)? as usize,
            apex: r.get::<_, i64>(5)? as usize,
            offset: r.get::<_, i64>(6)? as usize,
            intensity: r.get::<_, Option<i64>>(7)?.map(|i| i as u8),
            origin: r.get(8)?,
        },
        time_ms: r.get(9)?,
    })
}

/// Write event `id` (None: a new one) as `span` (None: delete); its id.
fn write_event(tx: &Transaction, id: Option<i64>, who: &str, span: Option<&EventSpan>) -> rusqlite::Result<i64> {
    match (id, span) {
        (Some(id), None) => {
            tx.execute("DELETE FROM events WHERE id = ?1", [id])?;
            Ok(id)
        }
        (None, None) => Ok(0),
        (id, Some(s)) => {
            tx.execute(
                "INSERT OR REPLACE INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![id, who, s.person as i64, s.au, s.onset as i64, s.apex as i64, s.offset as i64, s.intensity.map(|i| i as i64), s.origin, now_ms()],
            )?;
            Ok(id.unwrap_or_else(|| tx.last_insert_rowid()))
        }
    }
}

fn record_event(tx: &Transaction, step: i64, id: i64, before: Option<&EventSpan>, after: Option<&EventSpan>) -> rusqlite::Result<()> {
    let json = |s: Option<&EventSpan>| s.and_then(|s| serde_json::to_string(s).ok());
    tx.execute("INSERT INTO step_events VALUES (?1, ?2, ?3, ?4)", params![step, id, json(before), json(after)])?;
    Ok(())
}

/// Another event of `who` overlapping `span` (same person and AU), not one of `except`.
fn overlapping(tx: &Transaction, who: &str, span: &EventSpan, except: &[i64]) -> rusqlite::Result<Option<Event>> {
    let mut q = tx.prepare_cached(
        "SELECT id, who, person, au, onset, apex, offset, intensity, origin, time_ms FROM events
         WHERE who = ?1 AND person = ?2 AND au = ?3 AND onset <= ?5 AND offset >= ?4",
    )?;
    let rows = q.query_map(params![who, span.person as i64, span.au, span.onset as i64, span.offset as i64], row_event)?;
    for r in rows {
        let r = r?;
        if !except.contains(&r.id) {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

fn has_analysed_faces(tx: &Transaction) -> rusqlite::Result<bool> {
    tx.query_row("SELECT EXISTS (SELECT 1 FROM analysed_faces)", [], |r| r.get(0))
}

fn identities(tx: &Transaction) -> rusqlite::Result<BTreeMap<u32, u32>> {
    let mut q = tx.prepare_cached("SELECT track, identity FROM identities")?;
    let rows = q.query_map([], |r| Ok((r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u32)))?;
    rows.collect()
}

/// The (frame, face index) of `span`'s person on each of its frames: the
/// analysed face of that identity, or without an analysis face index
/// `person` on every frame.
fn person_faces(tx: &Transaction, span: &EventSpan) -> rusqlite::Result<Vec<(usize, usize)>> {
    if !has_analysed_faces(tx)? {
        return Ok((span.onset..=span.offset).map(|f| (f, span.person as usize)).collect());
    }
    let ids = identities(tx)?;
    let mut q = tx.prepare_cached("SELECT frame, face, track FROM analysed_faces WHERE frame BETWEEN ?1 AND ?2 ORDER BY frame, face")?;
    let rows = q.query_map(params![span.onset as i64, span.offset as i64], |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize, r.get::<_, i64>(2)? as u32)))?;
    let mut out = Vec::new();
    for r in rows {
        let (frame, face, track) = r?;
        if ids.get(&track).copied().unwrap_or(track) == span.person && out.last().is_none_or(|&(f, _)| f != frame) {
            out.push((frame, face));
        }
    }
    Ok(out)
}

/// The person a face of a frame is (see the module's doc).
fn person_of(tx: &Transaction, frame: usize, face: usize) -> rusqlite::Result<Option<u32>> {
    if !has_analysed_faces(tx)? {
        return Ok(Some(face as u32));
    }
    let track: Option<i64> = tx
        .query_row("SELECT track FROM analysed_faces WHERE frame = ?1 AND face = ?2", params![frame as i64, face as i64], |r| r.get(0))
        .optional()?;
    let ids = identities(tx)?;
    Ok(track.map(|t| ids.get(&(t as u32)).copied().unwrap_or(t as u32)))
}

/// A coder's frame edit (already written in `step`) made frames absent or
/// unlabelled: cut each of the coder's events there, recording the cut in
/// the same step.
pub(super) fn cut_for_frame_edits(tx: &Transaction, step: i64, coder: &str, changes: &[Change]) -> rusqlite::Result<()> {
    let has_events: bool = tx.query_row("SELECT EXISTS (SELECT 1 FROM events WHERE who = ?1)", [coder], |r| r.get(0))?;
    if !has_events {
        return Ok(());
    }
    for c in changes.iter().filter(|c| c.value.is_none_or(|v| !v.occurrence)) {
        let Some(person) = person_of(tx, c.key.frame, c.key.face)? else { continue };
        let probe = EventSpan::new(person, &c.key.au, c.key.frame, c.key.frame);
        while let Some(ev) = overlapping(tx, coder, &probe, &[])? {
            let mut parts = ev.span.without(c.key.frame).into_iter();
            let first = parts.next();
            write_event(tx, Some(ev.id), coder, first.as_ref())?;
            record_event(tx, step, ev.id, Some(&ev.span), first.as_ref())?;
            for p in parts {
                let id = write_event(tx, None, coder, Some(&p))?;
                record_event(tx, step, id, None, Some(&p))?;
            }
        }
    }
    Ok(())
}

/// Undo (or redo) the event changes of `step`.
pub(super) fn replay_events(tx: &Transaction, step: i64, coder: &str, undo: bool) -> rusqlite::Result<()> {
    let column = if undo { "before" } else { "after" };
    let rows: Vec<(i64, Option<String>)> = {
        let mut q = tx.prepare(&format!("SELECT id, {column} FROM step_events WHERE step = ?1 ORDER BY rowid {}", if undo { "DESC" } else { "ASC" }))?;
        let it = q.query_map([step], |r| Ok((r.get(0)?, r.get(1)?)))?;
        it.collect::<Result<_, _>>()?
    };
    for (id, span) in rows {
        let span: Option<EventSpan> = span.and_then(|s| serde_json::from_str(&s).ok());
        write_event(tx, Some(id), coder, span.as_ref())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("clip.mp4.auscope")).expect("store");
        (dir, store)
    }

    /// The coder's present frames of `au` for face 0.
    fn present(store: &Store, coder: &str, au: &str) -> Vec<usize> {
        store.labels(Some(Source::Coder), Some(coder)).expect("labels").into_iter().filter(|l| l.key.au == au && l.value.occurrence).map(|l| l.key.frame).collect()
    }

    fn spans(store: &Store) -> Vec<(usize, usize, usize)> {
        store.events(Some("ann")).expect("events").into_iter().map(|e| (e.span.onset, e.span.apex, e.span.offset)).collect()
    }

    #[test]
    fn an_event_means_present_on_its_frames_through_every_edit_and_undo() {
        let (_d, mut s) = store();
        let mut span = EventSpan::new(0, "AU12", 10, 14);
        span.intensity = Some(3);
        let id = s.add_event("ann", span.clone()).expect("add");
        assert_eq!(present(&s, "ann", "AU12"), vec![10, 11, 12, 13, 14]);
        let l = s.labels(Some(Source::Coder), Some("ann")).expect("labels");
        assert!(l.iter().all(|l| l.value.intensity == Some(3)));
        // Drag the offset back and the onset earlier: frames follow.
        s.change_event("ann", id, EventSpan { onset: 8, apex: 11, offset: 12, ..span.clone() }).expect("change");
        assert_eq!(present(&s, "ann", "AU12"), vec![8, 9, 10, 11, 12]);
        assert!(s.labels(Some(Source::Coder), Some("ann")).expect("labels").iter().all(|l| (8..=12).contains(&l.key.frame)));
        // Overlapping another event of the same AU is refused; nothing changes.
        let err = s.add_event("ann", EventSpan::new(0, "AU12", 12, 20)).expect_err("overlap");
        assert!(err.to_string().contains("overlap"), "{err}");
        // Split, then merge back.
        let (a, b) = s.split_event("ann", id, 11).expect("split");
        assert_eq!(spans(&s), vec![(8, 9, 10), (11, 11, 12)]);
        s.merge_events("ann", a, b).expect("merge");
        // Equal intensities: the apex of the first part.
        assert_eq!(spans(&s), vec![(8, 9, 12)]);
        // A frame edit the old way (absent inside the event) cuts it there.
        s.edit("ann", "absent", &[Change { key: LabelKey { frame: 10, face: 0, au: "AU12".into() }, value: Some(LabelValue::coded(false, None)) }]).expect("edit");
        assert_eq!(spans(&s), vec![(8, 9, 9), (11, 11, 12)]);
        assert_eq!(present(&s, "ann", "AU12"), vec![8, 9, 11, 12]);
        // Undo walks every step back, labels and events together.
        s.undo("ann").expect("undo");
        assert_eq!(spans(&s), vec![(8, 9, 12)]);
        assert_eq!(present(&s, "ann", "AU12"), vec![8, 9, 10, 11, 12]);
        s.undo("ann").expect("undo merge");
        assert_eq!(spans(&s), vec![(8, 9, 10), (11, 11, 12)]);
        s.undo("ann").expect("undo split");
        s.undo("ann").expect("undo change");
        assert_eq!(spans(&s), vec![(10, 12, 14)]);
        assert_eq!(present(&s, "ann", "AU12"), vec![10, 11, 12, 13, 14]);
        s.undo("ann").expect("undo add");
        assert!(spans(&s).is_empty());
        assert!(s.labels(Some(Source::Coder), Some("ann")).expect("labels").is_empty());
        // And redo brings it all back.
        for _ in 0..5 {
            assert!(s.redo("ann").expect("redo"));
        }
        assert_eq!(spans(&s), vec![(8, 9, 9), (11, 11, 12)]);
        assert_eq!(present(&s, "ann", "AU12"), vec![8, 9, 11, 12]);
        // Deleting removes its frames; another coder's events are theirs.
        let ids: Vec<i64> = s.events(Some("ann")).expect("events").iter().map(|e| e.id).collect();
        assert!(s.delete_event("bob", ids[0]).is_err());
        s.delete_event("ann", ids[0]).expect("delete");
        assert_eq!(present(&s, "ann", "AU12"), vec![11, 12]);
    }

    #[test]
    fn imports_are_all_or_nothing() {
        let (_d, mut s) = store();
        let ok = ("ann".to_string(), EventSpan::new(0, "AU01", 0, 3));
        let overlap = vec![ok.clone(), ("ann".to_string(), EventSpan::new(0, "AU01", 3, 5))];
        assert!(s.put_events(&overlap, None).expect_err("overlap").to_string().contains("overlap"));
        let late = vec![ok.clone(), ("ann".to_string(), EventSpan::new(0, "AU02", 8, 12))];
        assert!(s.put_events(&late, Some(10)).expect_err("past the end").to_string().contains("past the media's last frame 9"));
        assert!(s.events(None).expect("events").is_empty());
        assert!(s.labels(None, None).expect("labels").is_empty());
        assert_eq!(s.put_events(&late, Some(20)).expect("import"), 2);
        assert_eq!(present(&s, "ann", "AU01"), vec![0, 1, 2, 3]);
        assert_eq!(present(&s, "ann", "AU02"), vec![8, 9, 10, 11, 12]);
    }
}
