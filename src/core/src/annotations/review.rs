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
    /// The labels of `coder` and the predictions stored as model `model`
    /// (None: no stored predictions).
    pub fn load(store: &Store, aus: &[String], model: Option<&str>, coder: &str) -> Result<Self, CoreError> {
        let mut index = ReviewIndex { aus: aus.to_vec(), ..Default::default() };
        for l in store.labels(Some(Source::Coder), Some(coder))? {
            index.coded.entry((l.key.frame, l.key.face)).or_default().insert(l.key.au, l.value);
        }
        if let Some(model) = model {
            let mut rows: BTreeMap<FaceKey, Vec<f32>> = BTreeMap::new();
            for l in store.labels(Some(Source::Model), Some(model))? {
                let (Some(j), Some(p)) = (aus.iter().position(|a| *a == l.key.au), l.value.score) else { continue };
                rows.entry((l.key.frame, l.key.face)).or_insert_with(|| vec![f32::NAN; aus.len()])[j] = p as f32;
            }
            // Only complete rows: a model with other AUs stored under this name is not this one.
            index.predictions = rows.into_iter().filter(|(_, r)| r.iter().all(|p| p.is_finite())).collect();
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

    /// Per frame of `0..frames`, for AU `au`: (probability, coder's
    /// occurrence) of the face the timeline follows (the lowest-numbered
    /// face with data in that frame).
    pub fn track(&self, au: usize, frames: usize) -> Vec<(Option<f32>, Option<bool>)> {
        let mut out = vec![(None, None); frames];
        for (&(f, _), row) in &self.predictions {
            if f < frames && out[f].0.is_none() {
                out[f].0 = row.get(au).copied();
            }
        }
        let name = &self.aus[au];
        for (&(f, _), m) in &self.coded {
            if f < frames
                && out[f].1.is_none()
                && let Some(v) = m.get(name)
            {
                out[f].1 = Some(v.occurrence);
            }
        }
        out
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
        let track = ix.track(1, 6);
        assert_eq!(track[0], (Some(0.95), Some(true)));
        assert_eq!(track[4], (Some(0.9), Some(false)));
        assert_eq!(track[5], (None, None));
    }
}
