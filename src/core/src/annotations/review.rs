//! The review workflow's data, kept in memory for the window: a model's
//! probabilities and one coder's labels per (frame, face), the edits the
//! review keys make, the AU timeline tracks and the queue of frames to look
//! at. Pure: the window writes the edits to the [`Store`](super::store::Store).
//!
//! Choices (docs/annotations.md):
//! - An AU the coder has not labelled shows the model's decision (p >= 0.5);
//!   toggling it writes the opposite as the coder's label, so one key press
//!   corrects a wrong prediction.
//! - "Accept" writes the model's decision for every AU of the face the coder
//!   has not labelled yet; the coder's own labels stay.
//! - The queue holds faces where the coder's label disagrees with the model
//!   (first, most disagreements first), then faces with an unlabelled AU
//!   whose probability is within `band` of 0.5 (least sure first).

use std::collections::BTreeMap;

use super::analysed::FaceSummary;
use super::store::{Change, Store};
use super::{LabelKey, LabelValue, Source};
use crate::error::CoreError;

/// A frame and a face in it.
pub type FaceKey = (usize, usize);

#[derive(Debug, Clone, Default)]
pub struct ReviewIndex {
    pub aus: Vec<String>,
    /// The model's probabilities per face, in `aus` order.
    pub predictions: BTreeMap<FaceKey, Vec<f32>>,
    /// The coder's labels per face and AU.
    pub coded: BTreeMap<FaceKey, BTreeMap<String, LabelValue>>,
    /// The analysed faces stored in the project (track ids, boxes).
    pub faces: BTreeMap<FaceKey, FaceSummary>,
    /// Coders' merges: track -> the identity it was merged into.
    pub identities: BTreeMap<u32, u32>,
}

/// The stored analysis as the review keeps it.
struct Analysed {
    faces: BTreeMap<FaceKey, FaceSummary>,
    identities: BTreeMap<u32, u32>,
    /// The model's stored probabilities (None: it was not analysed with these AUs).
    predictions: Option<BTreeMap<FaceKey, Vec<f32>>>,
}

impl Analysed {
    fn read(store: &Store, aus: &[String], model: Option<&str>) -> Result<Self, CoreError> {
        let predictions = match model {
            Some(model) if store.analysed_models()?.iter().any(|m| m.who == model && m.aus == aus) => {
                Some(store.analysed_aus(model)?.into_iter().filter(|(_, p)| p.len() == aus.len()).collect())
            }
            _ => None,
        };
        Ok(Analysed { faces: store.analysed_faces()?, identities: store.identities()?, predictions })
    }
}

/// A coder's labels per face. Rows come in the order they were written (a
/// face's AUs together), so they are gathered per face and the map is built
/// in one sorted pass; AU names are cloned from `aus`.
fn coder_labels(store: &Store, coder: &str, aus: &[String]) -> Result<BTreeMap<FaceKey, BTreeMap<String, LabelValue>>, CoreError> {
    let mut names: Vec<String> = aus.to_vec();
    let mut groups: Vec<(FaceKey, Vec<(String, LabelValue)>)> = Vec::new();
    store.for_each_label(Source::Coder, coder, &mut |frame, face, au, value| {
        let name = match names.iter().find(|n| n.as_str() == au) {
            Some(n) => n.clone(),
            None => {
                names.push(au.to_string());
                au.to_string()
            }
        };
        match groups.last_mut() {
            Some((key, g)) if *key == (frame, face) => g.push((name, value)),
            _ => groups.push(((frame, face), vec![(name, value)])),
        }
    })?;
    // A face written in several goes (edits on other days) has several groups.
    groups.sort_by_key(|(k, _)| *k);
    let mut out: Vec<(FaceKey, BTreeMap<String, LabelValue>)> = Vec::with_capacity(groups.len());
    for (key, g) in groups {
        match out.last_mut() {
            Some((k, m)) if *k == key => m.extend(g),
            _ => out.push((key, g.into_iter().collect())),
        }
    }
    Ok(out.into_iter().collect())
}

/// Why a face is in the review queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// The coder's labels differ from the model's decisions on these AUs.
    Disagrees(Vec<String>),
    /// The least sure unlabelled AU and its probability.
    Unsure { au: String, p: f32 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueEntry {
    pub frame: usize,
    pub face: usize,
    pub reason: Reason,
}

/// The state of one AU of one face as the coder sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AuState {
    pub p: Option<f32>,
    pub label: Option<LabelValue>,
}

impl AuState {
    /// What is shown as present: the coder's label, else the model's decision.
    pub fn present(&self) -> Option<bool> {
        self.label.map(|l| l.occurrence).or(self.p.map(|p| p >= 0.5))
    }

    /// The coder's label differs from the model's decision.
    pub fn disagrees(&self) -> bool {
        matches!((self.label, self.p), (Some(l), Some(p)) if l.occurrence != (p >= 0.5))
    }
}

impl ReviewIndex {
    /// The labels of `coder`, the stored analysis (faces, identities, and
    /// the probabilities of model version `model` when they have these
    /// AUs) and, without such an analysis, the predictions stored as that
    /// model's labels (None: no stored predictions). The analysis is read
    /// on a second connection while the labels are read: reopening a long
    /// video is as quick as the slower of the two (docs/benchmarks.md).
    pub fn load(store: &Store, aus: &[String], model: Option<&str>, coder: &str) -> Result<Self, CoreError> {
        let path = store.path().to_path_buf();
        let (analysis, coded) = std::thread::scope(|scope| {
            let analysis = std::thread::Builder::new()
                .name("auscope-analysis-read".into())
                .spawn_scoped(scope, || Store::open(&path).and_then(|other| Analysed::read(&other, aus, model)));
            let coded = coder_labels(store, coder, aus);
            let analysis = match analysis {
                Ok(handle) => handle.join().unwrap_or_else(|_| Err(CoreError::Project("reading the stored analysis failed".into()))),
                // No thread to spare: read it here.
                Err(_) => Analysed::read(store, aus, model),
            };
            (analysis, coded)
        });
        let (analysis, coded) = (analysis?, coded?);
        let mut index = ReviewIndex { aus: aus.to_vec(), coded, faces: analysis.faces, identities: analysis.identities, predictions: BTreeMap::new() };
        match (model, analysis.predictions) {
            (_, Some(p)) => index.predictions = p,
            (Some(model), None) => {
                let mut rows: BTreeMap<FaceKey, Vec<f32>> = BTreeMap::new();
                store.for_each_label(Source::Model, model, &mut |frame, face, au, value| {
                    if let (Some(j), Some(p)) = (aus.iter().position(|a| a == au), value.score) {
                        rows.entry((frame, face)).or_insert_with(|| vec![f32::NAN; aus.len()])[j] = p as f32;
                    }
                })?;
                // Only complete rows: a model with other AUs stored under this name is not this one.
                index.predictions = rows.into_iter().filter(|(_, r)| r.iter().all(|p| p.is_finite())).collect();
            }
            (None, None) => {}
        }
        Ok(index)
    }

    pub fn au_state(&self, key: FaceKey, au: usize) -> AuState {
        AuState {
            p: self.predictions.get(&key).and_then(|r| r.get(au).copied()),
            label: self.coded.get(&key).and_then(|m| m.get(&self.aus[au]).copied()),
        }
    }

    /// Apply changes the store accepted.
    pub fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            let key = (c.key.frame, c.key.face);
            match c.value {
                Some(v) => {
                    self.coded.entry(key).or_default().insert(c.key.au.clone(), v);
                }
                None => {
                    if let Some(m) = self.coded.get_mut(&key) {
                        m.remove(&c.key.au);
                        if m.is_empty() {
                            self.coded.remove(&key);
                        }
                    }
                }
            }
        }
    }

    fn key(&self, face: FaceKey, au: usize) -> LabelKey {
        LabelKey { frame: face.0, face: face.1, au: self.aus[au].clone() }
    }

    /// Flip what is shown for one AU (see the module's choices).
    pub fn toggle(&self, face: FaceKey, au: usize) -> Change {
        let s = self.au_state(face, au);
        let now = s.present().unwrap_or(false);
        Change { key: self.key(face, au), value: Some(LabelValue::coded(!now, None)) }
    }

    /// Present at FACS intensity 1..=5 (A..E).
    pub fn set_intensity(&self, face: FaceKey, au: usize, intensity: u8) -> Change {
        Change { key: self.key(face, au), value: Some(LabelValue::coded(true, Some(intensity))) }
    }

    /// Remove the coder's label (the model's decision shows again).
    pub fn clear(&self, face: FaceKey, au: usize) -> Change {
        Change { key: self.key(face, au), value: None }
    }

    /// The model's decisions as the coder's labels for every AU not yet labelled.
    pub fn accept(&self, face: FaceKey) -> Vec<Change> {
        (0..self.aus.len())
            .filter_map(|j| {
                let s = self.au_state(face, j);
                match (s.label, s.p) {
                    (None, Some(p)) => Some(Change { key: self.key(face, j), value: Some(LabelValue::coded(p >= 0.5, None)) }),
                    _ => None,
                }
            })
            .collect()
    }

    /// The stored form of the predictions of `faces` (each once, in key order).
    pub fn prediction_rows(&self, faces: impl IntoIterator<Item = FaceKey>) -> Vec<(LabelKey, LabelValue)> {
        let faces: std::collections::BTreeSet<FaceKey> = faces.into_iter().collect();
        faces
            .into_iter()
            .filter_map(|f| self.predictions.get(&f).map(|p| (f, p)))
            .flat_map(|((frame, face), p)| self.aus.iter().zip(p).map(move |(au, &v)| (LabelKey { frame, face, au: au.clone() }, LabelValue::predicted(v))))
            .collect()
    }

    /// The identity of a track: the one a coder merged it into, else its own.
    pub fn identity_of(&self, track: u32) -> u32 {
        self.identities.get(&track).copied().unwrap_or(track)
    }

    /// The identity of an analysed face (None: not analysed).
    pub fn identity(&self, key: FaceKey) -> Option<u32> {
        self.faces.get(&key).map(|f| self.identity_of(f.track))
    }

    /// The identities in the analysis, each with its tracks and how many
    /// frames show it, in identity order.
    pub fn people(&self) -> Vec<(u32, Vec<u32>, usize)> {
        let mut by: BTreeMap<u32, (std::collections::BTreeSet<u32>, usize)> = BTreeMap::new();
        for f in self.faces.values() {
            let e = by.entry(self.identity_of(f.track)).or_default();
            e.0.insert(f.track);
            e.1 += 1;
        }
        by.into_iter().map(|(id, (tracks, n))| (id, tracks.into_iter().collect(), n)).collect()
    }

    /// Per AU (in `aus` order), per frame of `0..frames`: (probability,
    /// coder's occurrence) of the face the timeline follows: the face of
    /// identity `follow` (frames without it are empty), or with None the
    /// lowest-numbered face with data in that frame. One pass over the
    /// index for all AUs: the timeline of a long video is drawn from this.
    pub fn tracks(&self, frames: usize, follow: Option<u32>) -> Vec<Vec<(Option<f32>, Option<bool>)>> {
        let mut out = vec![vec![(None, None); frames]; self.aus.len()];
        let followed = |key: &FaceKey| follow.is_none_or(|id| self.identity(*key) == Some(id));
        // The face each frame shows: the first followed one with data.
        let mut shown: Vec<Option<usize>> = vec![None; frames];
        for key in self.predictions.keys().chain(self.coded.keys()) {
            if key.0 < frames && followed(key) {
                let s = &mut shown[key.0];
                *s = Some(s.map_or(key.1, |f| f.min(key.1)));
            }
        }
        for (key, row) in &self.predictions {
            if key.0 < frames && shown[key.0] == Some(key.1) {
                for (track, &p) in out.iter_mut().zip(row) {
                    track[key.0].0 = Some(p);
                }
            }
        }
        for (key, m) in &self.coded {
            if key.0 < frames && shown[key.0] == Some(key.1) {
                for (name, v) in m {
                    if let Some(j) = self.aus.iter().position(|a| a == name) {
                        out[j][key.0].1 = Some(v.occurrence);
                    }
                }
            }
        }
        out
    }

    /// The stored face a face seen live is (its index in the frame), by
    /// box overlap: the live pipeline may find a frame's faces in another
    /// order than the stored analysis (after a seek, say). None: no stored
    /// face there.
    pub fn stored_index(&self, frame: usize, bbox: [f32; 4]) -> Option<usize> {
        let xyxy = |b: [f32; 4]| [b[0], b[1], b[0] + b[2], b[1] + b[3]];
        self.faces
            .range((frame, 0)..(frame + 1, 0))
            .map(|(&(_, i), f)| (i, crate::face::detector::iou(&xyxy(f.bbox), &xyxy(bbox))))
            .filter(|&(_, v)| v > 0.3)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Faces to look at, most urgent first; only AUs in `filter` count (None: all).
    pub fn queue(&self, band: f32, filter: Option<&[bool]>) -> Vec<QueueEntry> {
        let on = |j: usize| filter.is_none_or(|f| f.get(j).copied().unwrap_or(true));
        let mut disagree = Vec::new();
        let mut unsure = Vec::new();
        for (&key, probs) in &self.predictions {
            let states: Vec<(usize, AuState)> = (0..self.aus.len()).filter(|&j| on(j)).map(|j| (j, self.au_state(key, j))).collect();
            let differing: Vec<String> = states.iter().filter(|(_, s)| s.disagrees()).map(|(j, _)| self.aus[*j].clone()).collect();
            if !differing.is_empty() {
                disagree.push((differing.len(), QueueEntry { frame: key.0, face: key.1, reason: Reason::Disagrees(differing) }));
                continue;
            }
            let least = states
                .iter()
                .filter(|(_, s)| s.label.is_none())
                .map(|&(j, _)| (j, (probs[j] - 0.5).abs()))
                .filter(|&(_, margin)| margin < band)
                .min_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((j, margin)) = least {
                unsure.push((margin, QueueEntry { frame: key.0, face: key.1, reason: Reason::Unsure { au: self.aus[j].clone(), p: probs[j] } }));
            }
        }
        disagree.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.frame.cmp(&b.1.frame)));
        unsure.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.frame.cmp(&b.1.frame)));
        disagree.into_iter().map(|(_, e)| e).chain(unsure.into_iter().map(|(_, e)| e)).collect()
    }
}

/// The queue entry after the one at `current` (the first if `current` is
/// not queued), wrapping around.
pub fn next_in_queue(queue: &[QueueEntry], current: FaceKey) -> Option<&QueueEntry> {
    let at = queue.iter().position(|e| (e.frame, e.face) == current);
    match at {
        Some(i) => queue.get((i + 1) % queue.len()).filter(|e| (e.frame, e.face) != current),
        None => queue.first(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> ReviewIndex {
        let aus: Vec<String> = ["AU06", "AU12", "AU25"].iter().map(|s| s.to_string()).collect();
        let mut ix = ReviewIndex { aus, ..Default::default() };
        ix.predictions.insert((0, 0), vec![0.9, 0.95, 0.1]); // sure
        ix.predictions.insert((1, 0), vec![0.55, 0.9, 0.1]); // AU06 unsure (0.05)
        ix.predictions.insert((2, 0), vec![0.9, 0.42, 0.1]); // AU12 unsure (0.08)
        ix.predictions.insert((3, 0), vec![0.9, 0.9, 0.9]); // coder disagrees twice
        ix.predictions.insert((4, 0), vec![0.9, 0.9, 0.1]); // coder disagrees once
        let coded = |pairs: &[(&str, bool)]| pairs.iter().map(|&(a, o)| (a.to_string(), LabelValue::coded(o, None))).collect();
        ix.coded.insert((3, 0), coded(&[("AU06", false), ("AU25", false)]));
        ix.coded.insert((4, 0), coded(&[("AU12", false)]));
        ix
    }

    #[test]
    fn queue_puts_disagreements_first_then_least_sure() {
        let ix = index();
        let q = ix.queue(0.15, None);
        let order: Vec<usize> = q.iter().map(|e| e.frame).collect();
        assert_eq!(order, vec![3, 4, 1, 2]);
        assert_eq!(q[0].reason, Reason::Disagrees(vec!["AU06".into(), "AU25".into()]));
        assert_eq!(q[2].reason, Reason::Unsure { au: "AU06".into(), p: 0.55 });
        // Filtered to AU12, frame 3 agrees and frame 1 is sure.
        let only12 = ix.queue(0.15, Some(&[false, true, false]));
        assert_eq!(only12.iter().map(|e| e.frame).collect::<Vec<_>>(), vec![4, 2]);
        assert_eq!(next_in_queue(&q, (4, 0)).map(|e| e.frame), Some(1));
        assert_eq!(next_in_queue(&q, (2, 0)).map(|e| e.frame), Some(3), "wraps around");
        assert_eq!(next_in_queue(&q, (0, 0)).map(|e| e.frame), Some(3), "not queued: the first");
        assert!(next_in_queue(&q[..1], (3, 0)).is_none(), "alone in the queue: nowhere to go");
    }

    #[test]
    fn the_loaded_labels_follow_edits_undo_and_imports_and_the_timeline_follows_a_person() {
        use crate::annotations::Label;
        use crate::annotations::analysed::{StoredFace, StoredFrame, StoredModel};
        let dir = std::env::temp_dir().join(format!("auscope-review-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("clip.mp4.auscope");
        let _ = std::fs::remove_file(&path);
        let aus: Vec<String> = ["AU06", "AU12"].iter().map(|s| s.to_string()).collect();
        let mut store = Store::open(&path).expect("project");
        let key = |frame, face, au: &str| LabelKey { frame, face, au: au.into() };
        store.edit("alice", "a", &[Change { key: key(0, 0, "AU06"), value: Some(LabelValue::coded(true, Some(3))) }]).expect("edit");
        store.edit("alice", "b", &[Change { key: key(0, 0, "AU12"), value: Some(LabelValue::coded(false, None)) }]).expect("edit");
        store.edit("bob", "c", &[Change { key: key(1, 0, "AU12"), value: Some(LabelValue::coded(true, None)) }]).expect("edit");
        store.undo("alice").expect("undo");
        let imported = Label { key: key(2, 1, "AU12"), source: Source::Coder, who: "alice".into(), value: LabelValue::coded(true, None), time_ms: 0 };
        store.put_labels(&[imported]).expect("import");
        // Two faces of a person in frames 0 and 2 (tracks 4 and 7), another in frame 2.
        let face = |track, x| StoredFace { track, score: 0.9, presence: 0.9, bbox: [x, 0.0, 50.0, 50.0], landmarks: vec![], aus: vec![vec![0.2, 0.8]] };
        let model = StoredModel { who: "m".into(), aus: aus.clone(), weights: "w".into() };
        store.begin_analysis("s", "f", &[model], 3).expect("begin");
        let mut p = store.analysis().expect("read").expect("begun");
        p.next = 3;
        let frames = vec![
            StoredFrame { frame: 0, timestamp: 0.0, detected: true, error: None, faces: vec![face(4, 0.0)] },
            StoredFrame { frame: 2, timestamp: 0.1, detected: true, error: None, faces: vec![face(9, 0.0), face(7, 100.0)] },
        ];
        store.put_analysed(&frames, &p).expect("put");
        store.merge_tracks(4, 7).expect("merge");

        let ix = ReviewIndex::load(&store, &aus, Some("m"), "alice").expect("load");
        let expected: BTreeMap<FaceKey, BTreeMap<String, LabelValue>> = BTreeMap::from([
            ((0, 0), BTreeMap::from([("AU06".to_string(), LabelValue::coded(true, Some(3)))])),
            ((2, 1), BTreeMap::from([("AU12".to_string(), LabelValue::coded(true, None))])),
        ]);
        assert_eq!(ix.coded, expected, "alice's labels after the undo and the import; not bob's");
        assert_eq!(ix.predictions.len(), 3, "every stored face's probabilities");
        assert_eq!(ix.identity((2, 1)), Some(4), "track 7 was merged into 4");
        assert_eq!(ix.people().iter().map(|p| p.0).collect::<Vec<_>>(), vec![4, 9]);
        // Following person 4: frame 2 shows its face (index 1), not the first face.
        let followed = ix.tracks(3, Some(4)).swap_remove(1);
        assert_eq!(followed[0], (Some(0.8), None));
        assert_eq!(followed[1], (None, None));
        assert_eq!(followed[2], (Some(0.8), Some(true)));
        assert_eq!(ix.tracks(3, Some(9))[0][0], (None, None), "person 9 is not in frame 0");
        // A project from before the per-face summary of labels reads the same.
        drop(store);
        rusqlite::Connection::open(&path).and_then(|c| c.execute_batch("DROP TABLE coded_faces")).expect("drop the summary");
        let store = Store::open(&path).expect("reopen");
        assert_eq!(ReviewIndex::load(&store, &aus, Some("m"), "alice").expect("load").coded, expected);
        assert_eq!(ix.stored_index(2, [98.0, 2.0, 50.0, 50.0]), Some(1), "a live face matches the stored one by box");
        assert_eq!(ix.stored_index(2, [300.0, 2.0, 50.0, 50.0]), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keys_correct_the_shown_decision() {
        let mut ix = index();
        // AU25 predicted absent on frame 0: toggling labels it present.
        let c = ix.toggle((0, 0), 2);
        assert_eq!(c.value, Some(LabelValue::coded(true, None)));
        ix.apply(&[c]);
        assert_eq!(ix.au_state((0, 0), 2).present(), Some(true));
        assert!(ix.au_state((0, 0), 2).disagrees());
        // Toggling again flips the coder's own label.
        let c = ix.toggle((0, 0), 2);
        assert_eq!(c.value.map(|v| v.occurrence), Some(false));
        ix.apply(&[c]);
        // Accept fills the other two AUs with the model's decisions.
        let accepted = ix.accept((0, 0));
        assert_eq!(accepted.len(), 2);
        assert!(accepted.iter().all(|c| c.value.is_some_and(|v| v.occurrence)));
        ix.apply(&accepted);
        assert!(ix.accept((0, 0)).is_empty());
        let c = ix.set_intensity((0, 0), 1, 4);
        assert_eq!(c.value.and_then(|v| v.intensity), Some(4));
        ix.apply(&[c, ix.clear((0, 0), 0)]);
        assert_eq!(ix.au_state((0, 0), 0).label, None);
        let rows = ix.prediction_rows([(1, 0), (0, 0), (1, 0), (9, 0)]);
        assert_eq!(rows.len(), 6, "two predicted faces, each once; frame 9 has none");
        assert_eq!((rows[0].0.frame, rows[0].0.au.as_str(), rows[0].1.score), (0, "AU06", Some(0.9f32 as f64)));
        let track = ix.tracks(6, None).swap_remove(1);
        assert_eq!(track[0], (Some(0.95), Some(true)));
        assert_eq!(track[4], (Some(0.9), Some(false)));
        assert_eq!(track[5], (None, None));
    }
}
