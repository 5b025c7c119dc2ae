//! A model's per-frame probabilities turned into proposed AU events, for a
//! coder to accept, edit or reject: an event starts where the probability
//! reaches `on`, lasts while it stays at or above `off` (two thresholds,
//! so noise around one threshold does not chop an event into pieces), is
//! kept when it lasts at least `min_frames`, and has its apex at the peak.
//! Proposals carry no intensity: a probability is not an intensity.

use std::collections::BTreeMap;

use super::events::EventSpan;
use super::store::Store;
use super::Source;
use crate::error::CoreError;

/// The rule that turns probabilities into events.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hysteresis {
    pub on: f32,
    pub off: f32,
    pub min_frames: usize,
}

impl Default for Hysteresis {
    /// 0.6 to start, below 0.4 to end, at least 3 frames (0.1 s at 30 fps).
    fn default() -> Self {
        Hysteresis { on: 0.6, off: 0.4, min_frames: 3 }
    }
}

/// (onset, apex, offset) of each event in `p` (None: no face there, which
/// ends an event).
pub fn runs(p: &[Option<f32>], rule: &Hysteresis) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(usize, usize)> = None; // (onset, apex)
    let close = |onset: usize, apex: usize, offset: usize, out: &mut Vec<_>| {
        if offset + 1 - onset >= rule.min_frames {
            out.push((onset, apex, offset));
        }
    };
    for (f, v) in p.iter().enumerate() {
        match (open, *v) {
            (Some((onset, apex)), Some(v)) if v >= rule.off => {
                if v > p[apex].unwrap_or(0.0) {
                    open = Some((onset, f));
                }
            }
            (Some((onset, apex)), _) => {
                close(onset, apex, f - 1, &mut out);
                open = None;
            }
            (None, _) => {}
        }
        if open.is_none() && v.is_some_and(|v| v >= rule.on) {
            open = Some((f, f));
        }
    }
    if let Some((onset, apex)) = open {
        close(onset, apex, p.len() - 1, &mut out);
    }
    out
}

/// A model's probabilities per person and frame (index: frame), per AU.
struct Series {
    aus: Vec<String>,
    people: BTreeMap<u32, Vec<Option<Vec<f32>>>>,
}

/// The stored probabilities of model version `model`: from the stored
/// analysis (people are face identities), else from its stored
/// predictions (people are face indices; a score above 1, an intensity
/// such as OpenFace's, counts as its decision).
fn series(store: &Store, model: &str) -> Result<Series, CoreError> {
    let mut people: BTreeMap<u32, Vec<Option<Vec<f32>>>> = BTreeMap::new();
    let put = |people: &mut BTreeMap<u32, Vec<Option<Vec<f32>>>>, person: u32, frame: usize, p: Vec<f32>| {
        let v = people.entry(person).or_default();
        if v.len() <= frame {
            v.resize(frame + 1, None);
        }
        v[frame] = Some(p);
    };
    if let Some(m) = store.analysed_models()?.into_iter().find(|m| m.who == model) {
        let faces = store.analysed_faces()?;
        let ids = store.identities()?;
        for ((frame, face), p) in store.analysed_aus(model)? {
            if let Some(f) = faces.get(&(frame, face)) {
                put(&mut people, ids.get(&f.track).copied().unwrap_or(f.track), frame, p);
            }
        }
        return Ok(Series { aus: m.aus, people });
    }
    let labels = store.labels(Some(Source::Model), Some(model))?;
    if labels.is_empty() {
        return Err(CoreError::Project(format!("{}: no stored results of model {model} (analyse the video with it first)", store.path().display())));
    }
    let mut aus: Vec<String> = labels.iter().map(|l| l.key.au.clone()).collect();
    aus.sort();
    aus.dedup();
    let mut rows: BTreeMap<(usize, usize), Vec<f32>> = BTreeMap::new();
    for l in &labels {
        let j = aus.binary_search(&l.key.au).expect("listed");
        let p = l.value.score.filter(|s| (0.0..=1.0).contains(s)).map_or(l.value.occurrence as u8 as f32, |s| s as f32);
        rows.entry((l.key.frame, l.key.face)).or_insert_with(|| vec![0.0; aus.len()])[j] = p;
    }
    for ((frame, face), p) in rows {
        put(&mut people, face as u32, frame, p);
    }
    Ok(Series { aus, people })
}

/// Model version `model`'s decisions as labels per (frame, face): from the
/// stored analysis when it has that model, else its stored predictions.
/// Agreement between a coder and a model reads the model through this.
pub fn model_labels(store: &Store, model: &str) -> Result<Vec<super::Label>, CoreError> {
    let Some(m) = store.analysed_models()?.into_iter().find(|m| m.who == model) else {
        return store.labels(Some(Source::Model), Some(model));
    };
    let mut out = Vec::new();
    for ((frame, face), p) in store.analysed_aus(model)? {
        for (au, &v) in m.aus.iter().zip(&p) {
            out.push(super::Label {
                key: super::LabelKey { frame, face, au: au.clone() },
                source: Source::Model,
                who: model.to_string(),
                value: super::LabelValue::predicted(v),
                time_ms: 0,
            });
        }
    }
    Ok(out)
}

/// The events model version `model` proposes for every person and AU, in
/// person, AU, onset order, each with origin "model:<model>".
pub fn model_events(store: &Store, model: &str, rule: &Hysteresis) -> Result<Vec<EventSpan>, CoreError> {
    let s = series(store, model)?;
    let mut out = Vec::new();
    for (&person, frames) in &s.people {
        for (j, au) in s.aus.iter().enumerate() {
            let p: Vec<Option<f32>> = frames.iter().map(|f| f.as_ref().map(|v| v[j])).collect();
            for (onset, apex, offset) in runs(&p, rule) {
                out.push(EventSpan { person, au: au.clone(), onset, apex, offset, intensity: None, origin: Some(format!("model:{model}")) });
            }
        }
    }
    Ok(out)
}

/// The proposals still open for `coder`: the model's events the coder has
/// neither rejected nor already covered with an event of their own.
pub fn proposals(store: &Store, model: &str, coder: &str, rule: &Hysteresis) -> Result<Vec<EventSpan>, CoreError> {
    let rejected = store.rejected_proposals(coder, model)?;
    let own: Vec<EventSpan> = store.events(Some(coder))?.into_iter().map(|e| e.span).collect();
    Ok(model_events(store, model, rule)?
        .into_iter()
        .filter(|s| !rejected.contains(&(s.person, s.au.clone(), s.onset, s.offset)))
        .filter(|s| !own.iter().any(|o| o.overlaps(s)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hysteresis_keeps_an_event_through_noise_and_drops_blips() {
        let rule = Hysteresis::default();
        let p = |v: &[f32]| v.iter().map(|&x| Some(x)).collect::<Vec<_>>();
        // Starts at 0.6, dips to 0.45 (above off) without ending, peaks at
        // frame 4, ends below 0.4; the 2-frame blip later is too short.
        let series = p(&[0.1, 0.55, 0.65, 0.45, 0.9, 0.5, 0.3, 0.7, 0.7, 0.2, 0.61, 0.62, 0.63]);
        assert_eq!(runs(&series, &rule), vec![(2, 4, 5), (10, 12, 12)]);
        // A missing face ends an event; an event may run to the last frame.
        let gap = vec![Some(0.8), Some(0.9), Some(0.8), None, Some(0.8), Some(0.8), Some(0.95)];
        assert_eq!(runs(&gap, &rule), vec![(0, 1, 2), (4, 6, 6)]);
        // Below `on` throughout: nothing, however long.
        assert!(runs(&p(&[0.59; 40]), &rule).is_empty());
        // min_frames 1 keeps a single frame.
        assert_eq!(runs(&p(&[0.0, 0.7, 0.0]), &Hysteresis { min_frames: 1, ..rule }), vec![(1, 1, 1)]);
    }

    #[test]
    fn proposals_leave_out_what_the_coder_rejected_or_coded() {
        use super::super::{LabelKey, LabelValue};
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(&dir.path().join("a.mp4.auscope")).expect("store");
        // AU12 high on frames 5-14 and 30-39, AU04 high on 20-22.
        let p12 = |f: usize| if (5..15).contains(&f) || (30..40).contains(&f) { 0.9 } else { 0.1 };
        let p04 = |f: usize| if (20..23).contains(&f) { 0.8 } else { 0.0 };
        let rows: Vec<(LabelKey, LabelValue)> = (0..50)
            .flat_map(|f| [(LabelKey { frame: f, face: 0, au: "AU12".into() }, LabelValue::predicted(p12(f))), (LabelKey { frame: f, face: 0, au: "AU04".into() }, LabelValue::predicted(p04(f)))])
            .collect();
        store.put_predictions("piap", &rows).expect("predictions");
        let rule = Hysteresis::default();
        let all = proposals(&store, "piap", "ann", &rule).expect("proposals");
        let spans: Vec<(&str, usize, usize)> = all.iter().map(|s| (s.au.as_str(), s.onset, s.offset)).collect();
        assert_eq!(spans, vec![("AU04", 20, 22), ("AU12", 5, 14), ("AU12", 30, 39)]);
        assert!(all.iter().all(|s| s.origin.as_deref() == Some("model:piap") && s.intensity.is_none()));
        // Rejected: gone for ann, still there for bob.
        store.reject_proposal("ann", "piap", &all[0]).expect("reject");
        assert_eq!(proposals(&store, "piap", "ann", &rule).expect("p").len(), 2);
        assert_eq!(proposals(&store, "piap", "bob", &rule).expect("p").len(), 3);
        // Accepted (edited first): the coder's event, and no longer proposed.
        let mut edited = all[1].clone();
        edited.offset = 16;
        store.add_event("ann", edited).expect("accept");
        let left = proposals(&store, "piap", "ann", &rule).expect("p");
        assert_eq!(left.iter().map(|s| s.onset).collect::<Vec<_>>(), vec![30]);
        assert_eq!(store.events(Some("ann")).expect("events")[0].span.origin.as_deref(), Some("model:piap"));
        // No stored results: a clear error.
        assert!(proposals(&store, "fan-trans", "ann", &rule).expect_err("none").to_string().contains("no stored results of model fan-trans"));
    }
}
