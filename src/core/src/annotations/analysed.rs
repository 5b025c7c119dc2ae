//! The analysis engine's results kept in the project: every analysed
//! frame's faces (track id, detector score, face presence, box), their
//! 478-point landmarks, and each model version's AU probabilities, plus the
//! run's progress (next frame, tracker state) so a killed analysis goes on
//! where it stopped. Coders' merges of two tracks into one identity live
//! here too.
//!
//! Layout, chosen so that reopening a long video is fast: the rows the
//! timeline needs (faces, probabilities) are small and apart from the
//! landmarks (2.9 kB a face, read one frame at a time). Probabilities are
//! one little-endian f32 blob per face and model, landmarks i16 blobs in
//! quarter pixels (x, y, z per point).

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::review::FaceKey;
use super::store::{Store, describe};
use crate::error::CoreError;

pub(super) const SCHEMA: &str = "BEGIN;
    CREATE TABLE IF NOT EXISTS analysis_run (id INTEGER PRIMARY KEY CHECK (id = 1), progress TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS analysis_models (who TEXT PRIMARY KEY, aus TEXT NOT NULL, weights TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS analysed_frames (
        frame INTEGER PRIMARY KEY, timestamp REAL NOT NULL, faces INTEGER NOT NULL, detected INTEGER NOT NULL, error TEXT);
    CREATE TABLE IF NOT EXISTS analysed_faces (
        frame INTEGER NOT NULL, face INTEGER NOT NULL, track INTEGER NOT NULL, score REAL NOT NULL, presence REAL NOT NULL,
        x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL, PRIMARY KEY (frame, face)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS analysed_landmarks (frame INTEGER NOT NULL, face INTEGER NOT NULL, points BLOB NOT NULL, PRIMARY KEY (frame, face));
    CREATE TABLE IF NOT EXISTS analysed_aus (
        who TEXT NOT NULL, frame INTEGER NOT NULL, face INTEGER NOT NULL, p BLOB NOT NULL, PRIMARY KEY (who, frame, face)) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS identities (track INTEGER PRIMARY KEY, identity INTEGER NOT NULL);
    COMMIT;";

/// Landmarks are stored in units of this fraction of a pixel.
const POINT_SCALE: f32 = 4.0;

/// A model version whose probabilities are stored: `who` is its stored
/// name (the kind, plus the weights' version or file when not its base).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredModel {
    pub who: String,
    pub aus: Vec<String>,
    /// Where its weights came from (as the model says).
    pub weights: String,
}

/// Where an analysis stands. `settings` is the caller's description of
/// everything that decides the numbers (face models, tracker, AU models):
/// a run resumes only with equal settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisProgress {
    pub settings: String,
    /// The part of `settings` that decides the faces: stored faces (and
    /// other models' probabilities of them) stay when this is the same.
    pub face_settings: String,
    pub models: Vec<String>,
    pub total: usize,
    /// The next frame to analyse; every frame before it is stored.
    pub next: usize,
    pub failed: usize,
    pub finished: bool,
    /// A video that broke off: the first frame not analysed.
    pub broke_off_at: Option<usize>,
    /// The tracker after frame `next - 1` (JSON), to resume with.
    pub tracker: String,
}

/// One analysed face.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFace {
    pub track: u32,
    pub score: f32,
    pub presence: f32,
    /// [x, y, width, height] in frame pixels.
    pub bbox: [f32; 4],
    /// The 478-point mesh in frame pixels (quarter-pixel precision).
    pub landmarks: Vec<[f32; 3]>,
    /// Per model of the run (its order), per AU.
    pub aus: Vec<Vec<f32>>,
}

/// One analysed frame.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFrame {
    pub frame: usize,
    pub timestamp: f64,
    /// The detector ran (the faces were not only tracked).
    pub detected: bool,
    /// Why the frame has no result (it could not be decoded or analysed).
    pub error: Option<String>,
    pub faces: Vec<StoredFace>,
}

/// What the timeline needs of a face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceSummary {
    pub track: u32,
    pub score: f32,
    pub bbox: [f32; 4],
}

/// How a run should start, with the progress it starts from.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Nothing to resume: from frame 0.
    Fresh(AnalysisProgress),
    /// An interrupted run with the same settings: from its `next` frame.
    Resume(AnalysisProgress),
    /// A run with the same settings finished: nothing to do.
    Finished(AnalysisProgress),
}

fn points_blob(points: &[[f32; 3]]) -> Vec<u8> {
    let q = |v: f32| ((v * POINT_SCALE).round().clamp(i16::MIN as f32, i16::MAX as f32) as i16).to_le_bytes();
    points.iter().flat_map(|p| p.iter().flat_map(move |&v| q(v))).collect()
}

fn blob_points(b: &[u8]) -> Vec<[f32; 3]> {
    let v: Vec<f32> = b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / POINT_SCALE).collect();
    v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

fn probs_blob(p: &[f32]) -> Vec<u8> {
    p.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn blob_probs(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

impl Store {
    /// True when the analysis tables exist (a read-only project from before
    /// they were added has none: it reads as never analysed).
    fn has_analysis(&self) -> Result<bool, CoreError> {
        self.has_table("analysis_run")
    }

    /// The stored analysis' progress (None: never analysed).
    pub fn analysis(&self) -> Result<Option<AnalysisProgress>, CoreError> {
        if !self.has_analysis()? {
            return Ok(None);
        }
        let text: Option<String> = self.conn.query_row("SELECT progress FROM analysis_run WHERE id = 1", [], |r| r.get(0)).optional().map_err(|e| self.err(&e))?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| CoreError::Project(format!("{}: the stored analysis cannot be read ({e})", self.path().display()))))
            .transpose()
    }

    /// Get ready to analyse with `settings` (see [`AnalysisProgress`]): a
    /// run with the same settings resumes (or, finished, is left as it is);
    /// otherwise start afresh, keeping stored faces and other models'
    /// probabilities only when the face settings are the same.
    pub fn begin_analysis(&mut self, settings: &str, face_settings: &str, models: &[StoredModel], total: usize) -> Result<Start, CoreError> {
        self.writable()?;
        let who: Vec<String> = models.iter().map(|m| m.who.clone()).collect();
        let previous = self.analysis()?;
        if let Some(p) = previous.clone()
            && p.settings == settings
            && p.models == who
            && p.total == total
        {
            return Ok(if p.finished { Start::Finished(p) } else { Start::Resume(p) });
        }
        let keep_faces = previous.is_some_and(|p| p.face_settings == face_settings);
        let path = self.path().to_path_buf();
        let e = |x: rusqlite::Error| describe(&path, &x);
        let tx = self.conn.transaction().map_err(e)?;
        if !keep_faces {
            tx.execute_batch("DELETE FROM analysed_frames; DELETE FROM analysed_faces; DELETE FROM analysed_landmarks; DELETE FROM analysed_aus; DELETE FROM analysis_models;")
                .map_err(e)?;
        }
        for m in models {
            let aus = serde_json::to_string(&m.aus).unwrap_or_default();
            tx.execute("DELETE FROM analysed_aus WHERE who = ?1", [&m.who]).map_err(e)?;
            tx.execute("INSERT OR REPLACE INTO analysis_models VALUES (?1, ?2, ?3)", params![m.who, aus, m.weights]).map_err(e)?;
        }
        let progress = AnalysisProgress {
            settings: settings.into(),
            face_settings: face_settings.into(),
            models: who,
            total,
            next: 0,
            failed: 0,
            finished: false,
            broke_off_at: None,
            tracker: String::new(),
        };
        tx.execute("INSERT OR REPLACE INTO analysis_run VALUES (1, ?1)", [serde_json::to_string(&progress).unwrap_or_default()]).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(Start::Fresh(progress))
    }

    /// Store analysed frames and the progress after them, in one
    /// transaction: a kill keeps both or neither.
    pub fn put_analysed(&mut self, frames: &[StoredFrame], progress: &AnalysisProgress) -> Result<(), CoreError> {
        self.writable()?;
        let path = self.path().to_path_buf();
        let e = |x: rusqlite::Error| describe(&path, &x);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut frame_q = tx.prepare_cached("INSERT OR REPLACE INTO analysed_frames VALUES (?1, ?2, ?3, ?4, ?5)").map_err(e)?;
            let mut clear_faces = tx.prepare_cached("DELETE FROM analysed_faces WHERE frame = ?1").map_err(e)?;
            let mut clear_marks = tx.prepare_cached("DELETE FROM analysed_landmarks WHERE frame = ?1").map_err(e)?;
            let mut face_q = tx.prepare_cached("INSERT INTO analysed_faces VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)").map_err(e)?;
            let mut marks_q = tx.prepare_cached("INSERT INTO analysed_landmarks VALUES (?1, ?2, ?3)").map_err(e)?;
            let mut aus_q = tx.prepare_cached("INSERT OR REPLACE INTO analysed_aus VALUES (?1, ?2, ?3, ?4)").map_err(e)?;
            for f in frames {
                let frame = f.frame as i64;
                frame_q.execute(params![frame, f.timestamp, f.faces.len() as i64, f.detected as i64, f.error]).map_err(e)?;
                clear_faces.execute([frame]).map_err(e)?;
                clear_marks.execute([frame]).map_err(e)?;
                for (i, face) in f.faces.iter().enumerate() {
                    let b = face.bbox;
                    face_q.execute(params![frame, i as i64, face.track as i64, face.score, face.presence, b[0], b[1], b[2], b[3]]).map_err(e)?;
                    marks_q.execute(params![frame, i as i64, points_blob(&face.landmarks)]).map_err(e)?;
                    for (who, p) in progress.models.iter().zip(&face.aus) {
                        aus_q.execute(params![who, frame, i as i64, probs_blob(p)]).map_err(e)?;
                    }
                }
            }
        }
        tx.execute("INSERT OR REPLACE INTO analysis_run VALUES (1, ?1)", [serde_json::to_string(progress).unwrap_or_default()]).map_err(e)?;
        tx.commit().map_err(e)
    }

    /// The model versions whose probabilities are stored.
    pub fn analysed_models(&self) -> Result<Vec<StoredModel>, CoreError> {
        if !self.has_analysis()? {
            return Ok(Vec::new());
        }
        let mut q = self.conn.prepare("SELECT who, aus, weights FROM analysis_models ORDER BY who").map_err(|e| self.err(&e))?;
        let rows = q
            .query_map([], |r| Ok(StoredModel { who: r.get(0)?, aus: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(), weights: r.get(2)? }))
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    /// Every analysed face, without landmarks.
    pub fn analysed_faces(&self) -> Result<BTreeMap<FaceKey, FaceSummary>, CoreError> {
        if !self.has_analysis()? {
            return Ok(BTreeMap::new());
        }
        let mut q = self.conn.prepare("SELECT frame, face, track, score, x, y, w, h FROM analysed_faces").map_err(|e| self.err(&e))?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    (r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize),
                    FaceSummary {
                        track: r.get::<_, i64>(2)? as u32,
                        score: r.get::<_, f64>(3)? as f32,
                        bbox: [r.get::<_, f64>(4)? as f32, r.get::<_, f64>(5)? as f32, r.get::<_, f64>(6)? as f32, r.get::<_, f64>(7)? as f32],
                    },
                ))
            })
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    /// One stored model version's probabilities per face.
    pub fn analysed_aus(&self, who: &str) -> Result<BTreeMap<FaceKey, Vec<f32>>, CoreError> {
        if !self.has_analysis()? {
            return Ok(BTreeMap::new());
        }
        let mut q = self.conn.prepare("SELECT frame, face, p FROM analysed_aus WHERE who = ?1").map_err(|e| self.err(&e))?;
        let rows = q
            .query_map([who], |r| Ok(((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize), blob_probs(&r.get::<_, Vec<u8>>(2)?))))
            .map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    /// Frames `from..to` as stored, landmarks and the run's models'
    /// probabilities included (frames never analysed are left out).
    pub fn analysed_frames(&self, from: usize, to: usize) -> Result<Vec<StoredFrame>, CoreError> {
        let Some(progress) = self.analysis()? else { return Ok(Vec::new()) };
        let e = |x: rusqlite::Error| self.err(&x);
        let mut frames_q = self.conn.prepare("SELECT frame, timestamp, detected, error FROM analysed_frames WHERE frame >= ?1 AND frame < ?2 ORDER BY frame").map_err(e)?;
        let mut faces_q = self
            .conn
            .prepare_cached(
                "SELECT f.track, f.score, f.presence, f.x, f.y, f.w, f.h, l.points FROM analysed_faces f
                 LEFT JOIN analysed_landmarks l ON l.frame = f.frame AND l.face = f.face WHERE f.frame = ?1 ORDER BY f.face",
            )
            .map_err(e)?;
        let mut aus_q = self.conn.prepare_cached("SELECT p FROM analysed_aus WHERE who = ?1 AND frame = ?2 AND face = ?3").map_err(e)?;
        let heads: Vec<(i64, f64, bool, Option<String>)> = frames_q
            .query_map(params![from as i64, to as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0, r.get(3)?)))
            .map_err(e)?
            .collect::<Result<_, _>>()
            .map_err(e)?;
        let mut out = Vec::with_capacity(heads.len());
        for (frame, timestamp, detected, error) in heads {
            let mut faces: Vec<StoredFace> = faces_q
                .query_map([frame], |r| {
                    Ok(StoredFace {
                        track: r.get::<_, i64>(0)? as u32,
                        score: r.get::<_, f64>(1)? as f32,
                        presence: r.get::<_, f64>(2)? as f32,
                        bbox: [r.get::<_, f64>(3)? as f32, r.get::<_, f64>(4)? as f32, r.get::<_, f64>(5)? as f32, r.get::<_, f64>(6)? as f32],
                        landmarks: r.get::<_, Option<Vec<u8>>>(7)?.map(|b| blob_points(&b)).unwrap_or_default(),
                        aus: Vec::new(),
                    })
                })
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            for (i, face) in faces.iter_mut().enumerate() {
                for who in &progress.models {
                    let p: Option<Vec<u8>> = aus_q.query_row(params![who, frame, i as i64], |r| r.get(0)).optional().map_err(e)?;
                    face.aus.push(p.map(|b| blob_probs(&b)).unwrap_or_default());
                }
            }
            out.push(StoredFrame { frame: frame as usize, timestamp, detected, error, faces });
        }
        Ok(out)
    }

    /// Coders' merges: track -> identity, for tracks merged into another.
    pub fn identities(&self) -> Result<BTreeMap<u32, u32>, CoreError> {
        if !self.has_analysis()? {
            return Ok(BTreeMap::new());
        }
        let mut q = self.conn.prepare("SELECT track, identity FROM identities").map_err(|e| self.err(&e))?;
        let rows = q.query_map([], |r| Ok((r.get::<_, i64>(0)? as u32, r.get::<_, i64>(1)? as u32))).map_err(|e| self.err(&e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(&e))
    }

    /// Make the identities of tracks `a` and `b` one: the older (lower)
    /// identity stays, and every track that had the other takes it.
    /// Returns the identity kept.
    pub fn merge_tracks(&mut self, a: u32, b: u32) -> Result<u32, CoreError> {
        self.writable()?;
        let ids = self.identities()?;
        let of = |t: u32| ids.get(&t).copied().unwrap_or(t);
        let (ia, ib) = (of(a), of(b));
        let (keep, gone) = (ia.min(ib), ia.max(ib));
        if keep == gone {
            return Ok(keep);
        }
        let path = self.path().to_path_buf();
        let e = |x: rusqlite::Error| describe(&path, &x);
        let tx = self.conn.transaction().map_err(e)?;
        tx.execute("UPDATE identities SET identity = ?1 WHERE identity = ?2", params![keep as i64, gone as i64]).map_err(e)?;
        tx.execute("INSERT OR REPLACE INTO identities VALUES (?1, ?2)", params![gone as i64, keep as i64]).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(keep)
    }

    /// Undo a merge for one track: it is its own identity again.
    pub fn separate_track(&mut self, track: u32) -> Result<(), CoreError> {
        self.writable()?;
        self.conn.execute("DELETE FROM identities WHERE track = ?1", [track as i64]).map_err(|e| self.err(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(track: u32, x: f32) -> StoredFace {
        StoredFace {
            track,
            score: 0.9,
            presence: 0.99,
            bbox: [x, 20.0, 100.0, 110.0],
            landmarks: (0..478).map(|i| [x + i as f32 * 0.25, 30.5, -3.75]).collect(),
            aus: vec![vec![0.25, 0.75]],
        }
    }

    #[test]
    fn frames_faces_and_merges_round_trip_and_resume_needs_the_same_settings() {
        let dir = std::env::temp_dir().join(format!("auscope-analysed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("clip.mp4.auscope");
        let _ = std::fs::remove_file(&path);
        let mut store = Store::open(&path).expect("project");
        assert!(store.analysis().expect("read").is_none());
        let model = StoredModel { who: "piap".into(), aus: vec!["AU01".into(), "AU12".into()], weights: "embedded".into() };
        let Start::Fresh(mut progress) = store.begin_analysis("s1", "f1", std::slice::from_ref(&model), 10).expect("begin") else { panic!("a new project starts fresh") };
        assert_eq!(Some(&progress), store.analysis().expect("read").as_ref(), "the fresh run's progress is stored");
        let frames = vec![
            StoredFrame { frame: 0, timestamp: 0.0, detected: true, error: None, faces: vec![face(0, 10.0), face(1, 300.0)] },
            StoredFrame { frame: 1, timestamp: 0.04, detected: false, error: Some("could not decode".into()), faces: vec![] },
        ];
        progress.next = 2;
        progress.tracker = "{\"t\":1}".into();
        store.put_analysed(&frames, &progress).expect("put");
        drop(store);

        let mut store = Store::open(&path).expect("reopen");
        assert_eq!(store.analysed_frames(0, 10).expect("frames"), frames, "landmarks are kept to a quarter pixel");
        assert_eq!(store.analysed_faces().expect("faces").len(), 2);
        assert_eq!(store.analysed_aus("piap").expect("aus")[&(0, 1)], vec![0.25, 0.75]);
        assert_eq!(store.analysed_models().expect("models"), vec![model.clone()]);
        // The same settings resume; other settings start again.
        assert_eq!(store.begin_analysis("s1", "f1", std::slice::from_ref(&model), 10).expect("begin"), Start::Resume(progress));
        assert!(matches!(store.begin_analysis("s2", "f1", std::slice::from_ref(&model), 10).expect("begin"), Start::Fresh(_)));
        assert_eq!(store.analysed_faces().expect("faces").len(), 2, "same face settings: the faces stay");
        assert!(store.analysed_aus("piap").expect("aus").is_empty(), "the model's probabilities are made again");
        assert!(matches!(store.begin_analysis("s3", "f2", std::slice::from_ref(&model), 10).expect("begin"), Start::Fresh(_)));
        assert!(store.analysed_faces().expect("faces").is_empty(), "other face settings: everything is made again");

        // Merging 5 into 3, then 3 into 1: all three are identity 1.
        assert_eq!(store.merge_tracks(5, 3).expect("merge"), 3);
        assert_eq!(store.merge_tracks(1, 3).expect("merge"), 1);
        assert_eq!(store.identities().expect("ids"), BTreeMap::from([(3, 1), (5, 1)]));
        store.separate_track(5).expect("separate");
        assert_eq!(store.identities().expect("ids"), BTreeMap::from([(3, 1)]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
