//! Agreement between label sources (coders, or a coder and a model), with
//! the measures FACS work reports:
//! - per AU between two sources, over the (frame, face) both labelled: F1
//!   of `b` against `a` as the reference, Cohen's kappa and Krippendorff's
//!   alpha (nominal for occurrence, ordinal for intensity) ([`agreement`]);
//! - Krippendorff's alpha over any number of sources ([`alpha_over`]);
//! - the Ekman-Friesen agreement ratio of the FACS manual: twice the AUs
//!   both scored over the AUs each scored, summed over the faces both
//!   coded ([`ef_ratio`]);
//! - event agreement: events of two sources matched one to one, and the
//!   share whose onset, apex and offset lie within a tolerance of N frames
//!   (half a second by default, as in Sayette et al. 2001) ([`event_agreement`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::events::EventSpan;
use super::{Label, LabelKey, LabelValue};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuAgreement {
    pub au: String,
    /// Labels both sources gave for this AU.
    pub n: usize,
    /// F1 of `b`'s occurrences against `a`'s; None when neither has a positive.
    pub f1: Option<f64>,
    /// Cohen's kappa; None when chance agreement is 1 (both constant and equal).
    pub kappa: Option<f64>,
    /// Krippendorff's alpha, nominal, over occurrence.
    pub alpha: Option<f64>,
    /// Krippendorff's alpha, ordinal, over intensity (absent 0, A-E 1-5; a
    /// present label without intensity is missing); None when fewer than two
    /// faces carry it from both.
    pub alpha_intensity: Option<f64>,
}

/// Level of measurement for [`krippendorff_alpha`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Nominal,
    Ordinal,
}

/// Krippendorff's alpha over `units`, each the values its coders gave
/// (None: not coded by that coder), by the coincidence matrix of
/// Krippendorff (2011), "Computing Krippendorff's alpha-reliability".
/// Units with fewer than two values are not pairable and drop out. None when
/// expected disagreement is 0 (every pairable value the same).
pub fn krippendorff_alpha(units: &[Vec<Option<u8>>], level: Level) -> Option<f64> {
    let mut values: Vec<u8> = units.iter().flatten().flatten().copied().collect();
    values.sort_unstable();
    values.dedup();
    let at = |v: u8| values.binary_search(&v).expect("a listed value");
    let k = values.len();
    // Coincidences o[c][k]: each ordered pair within a unit, weighted 1/(m_u - 1).
    let mut o = vec![vec![0.0f64; k]; k];
    for unit in units {
        let coded: Vec<usize> = unit.iter().flatten().map(|&v| at(v)).collect();
        let m = coded.len();
        if m < 2 {
            continue;
        }
        for (i, &c) in coded.iter().enumerate() {
            for (j, &d) in coded.iter().enumerate() {
                if i != j {
                    o[c][d] += 1.0 / (m - 1) as f64;
                }
            }
        }
    }
    let marginal: Vec<f64> = o.iter().map(|row| row.iter().sum()).collect();
    let n: f64 = marginal.iter().sum();
    // Squared distance between the c-th and d-th values present.
    let delta = |c: usize, d: usize| -> f64 {
        match level {
            Level::Nominal => (c != d) as u8 as f64,
            Level::Ordinal => {
                let (lo, hi) = (c.min(d), c.max(d));
                let between: f64 = marginal[lo..=hi].iter().sum::<f64>() - (marginal[lo] + marginal[hi]) / 2.0;
                between * between
            }
        }
    };
    let (mut observed, mut expected) = (0.0, 0.0);
    for c in 0..k {
        for d in 0..k {
            let w = delta(c, d);
            observed += o[c][d] * w;
            expected += marginal[c] * marginal[d] * w;
        }
    }
    (expected > 1e-12 && n > 1.0).then(|| 1.0 - (n - 1.0) * observed / expected)
}

/// Per AU present in both, in AU order.
pub fn agreement(a: &[Label], b: &[Label]) -> Vec<AuAgreement> {
    let index = |ls: &[Label]| -> BTreeMap<LabelKey, LabelValue> { ls.iter().map(|l| (l.key.clone(), l.value.clone())).collect() };
    let (a, b) = (index(a), index(b));
    // Per AU the 2x2 table [a][b] and the intensity pairs.
    let mut tables: BTreeMap<String, ([[usize; 2]; 2], Vec<(bool, bool)>, Vec<Vec<Option<u8>>>)> = BTreeMap::new();
    let intensity = |v: &LabelValue| if v.occurrence { v.intensity } else { Some(0) };
    for (k, va) in &a {
        if let Some(vb) = b.get(k) {
            let (t, occurrences, pairs) = tables.entry(k.au.clone()).or_default();
            t[va.occurrence as usize][vb.occurrence as usize] += 1;
            occurrences.push((va.occurrence, vb.occurrence));
            pairs.push(vec![intensity(va), intensity(vb)]);
        }
    }
    tables
        .into_iter()
        .map(|(au, (t, occurrences, pairs))| {
            let n = t[0][0] + t[0][1] + t[1][0] + t[1][1];
            let (tp, fp, fn_) = (t[1][1] as f64, t[0][1] as f64, t[1][0] as f64);
            let f1 = (tp + fp + fn_ > 0.0).then(|| 2.0 * tp / (2.0 * tp + fp + fn_));
            let nf = n as f64;
            let po = (t[0][0] + t[1][1]) as f64 / nf;
            let (pa1, pb1) = ((t[1][0] + t[1][1]) as f64 / nf, (t[0][1] + t[1][1]) as f64 / nf);
            let pe = pa1 * pb1 + (1.0 - pa1) * (1.0 - pb1);
            let kappa = ((1.0 - pe).abs() > 1e-12).then(|| (po - pe) / (1.0 - pe));
            let occurrence: Vec<Vec<Option<u8>>> =
                occurrences.iter().map(|&(x, y)| vec![Some(x as u8), Some(y as u8)]).collect();
            let alpha = krippendorff_alpha(&occurrence, Level::Nominal);
            let graded = pairs.iter().filter(|p| p.iter().all(Option::is_some)).count();
            let alpha_intensity = (graded >= 2).then(|| krippendorff_alpha(&pairs, Level::Ordinal)).flatten();
            AuAgreement { au, n, f1, kappa, alpha, alpha_intensity }
        })
        .collect()
}

/// Krippendorff's alpha of one AU over several sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuAlpha {
    pub au: String,
    /// Faces (frame, face) at least two sources labelled.
    pub units: usize,
    pub alpha: Option<f64>,
    pub alpha_intensity: Option<f64>,
}

/// Per AU, Krippendorff's alpha over every source in `sources` (nominal
/// over occurrence, ordinal over intensity as in [`AuAgreement`]); a face
/// a source did not label is missing for it.
pub fn alpha_over(sources: &[&[Label]]) -> Vec<AuAlpha> {
    let mut units: BTreeMap<String, BTreeMap<(usize, usize), Vec<Option<LabelValue>>>> = BTreeMap::new();
    for (i, labels) in sources.iter().enumerate() {
        for l in labels.iter() {
            let row = units.entry(l.key.au.clone()).or_default().entry((l.key.frame, l.key.face)).or_insert_with(|| vec![None; sources.len()]);
            row[i] = Some(l.value);
        }
    }
    let intensity = |v: &LabelValue| if v.occurrence { v.intensity } else { Some(0) };
    units
        .into_iter()
        .map(|(au, rows)| {
            let pairable: Vec<&Vec<Option<LabelValue>>> = rows.values().filter(|r| r.iter().flatten().count() >= 2).collect();
            let occurrence: Vec<Vec<Option<u8>>> = pairable.iter().map(|r| r.iter().map(|v| v.map(|v| v.occurrence as u8)).collect()).collect();
            let graded: Vec<Vec<Option<u8>>> = pairable.iter().map(|r| r.iter().map(|v| v.as_ref().and_then(intensity)).collect()).collect();
            let n_graded = graded.iter().filter(|r| r.iter().flatten().count() >= 2).count();
            AuAlpha {
                au,
                units: pairable.len(),
                alpha: krippendorff_alpha(&occurrence, Level::Nominal),
                alpha_intensity: (n_graded >= 2).then(|| krippendorff_alpha(&graded, Level::Ordinal)).flatten(),
            }
        })
        .collect()
}

/// The Ekman-Friesen agreement ratio between two sources: over the faces
/// (frame, face) both labelled, 2 x (AUs both scored present) / (AUs `a`
/// scored + AUs `b` scored). None when neither scored any AU there.
pub fn ef_ratio(a: &[Label], b: &[Label]) -> Option<f64> {
    let faces = |ls: &[Label]| -> BTreeMap<(usize, usize), std::collections::BTreeSet<String>> {
        let mut m: BTreeMap<(usize, usize), std::collections::BTreeSet<String>> = BTreeMap::new();
        for l in ls {
            let set = m.entry((l.key.frame, l.key.face)).or_default();
            if l.value.occurrence {
                set.insert(l.key.au.clone());
            }
        }
        m
    };
    let (fa, fb) = (faces(a), faces(b));
    let (mut both, mut scored) = (0usize, 0usize);
    for (k, sa) in &fa {
        if let Some(sb) = fb.get(k) {
            both += sa.intersection(sb).count();
            scored += sa.len() + sb.len();
        }
    }
    (scored > 0).then(|| 2.0 * both as f64 / scored as f64)
}

/// Event agreement of one AU between two sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventAgreement {
    pub au: String,
    pub a_events: usize,
    pub b_events: usize,
    /// Pairs matched one to one: same person and AU, overlapping or with
    /// onsets within the tolerance.
    pub matched: usize,
    /// 2 x matched / (a_events + b_events).
    pub occurrence: f64,
    /// 2 x (matched pairs whose onset, apex, offset differ by at most the
    /// tolerance) / (a_events + b_events).
    pub onset: f64,
    pub apex: f64,
    pub offset: f64,
}

/// Per AU, the events of `a` and `b` matched one to one (the most
/// overlapping pairs first) and their agreement within `tolerance` frames.
pub fn event_agreement(a: &[EventSpan], b: &[EventSpan], tolerance: usize) -> Vec<EventAgreement> {
    let aus: std::collections::BTreeSet<&str> = a.iter().chain(b).map(|e| e.au.as_str()).collect();
    let near = |x: usize, y: usize| x.abs_diff(y) <= tolerance;
    aus.into_iter()
        .map(|au| {
            let ea: Vec<&EventSpan> = a.iter().filter(|e| e.au == au).collect();
            let eb: Vec<&EventSpan> = b.iter().filter(|e| e.au == au).collect();
            // Candidate pairs, best first: most frames shared, then closest onsets.
            let mut pairs: Vec<(usize, usize, usize, usize)> = Vec::new();
            for (i, x) in ea.iter().enumerate() {
                for (j, y) in eb.iter().enumerate() {
                    if x.person != y.person {
                        continue;
                    }
                    let shared = (x.offset.min(y.offset) + 1).saturating_sub(x.onset.max(y.onset));
                    if shared > 0 || near(x.onset, y.onset) {
                        pairs.push((shared, usize::MAX - x.onset.abs_diff(y.onset), i, j));
                    }
                }
            }
            pairs.sort_unstable_by(|p, q| q.cmp(p));
            let (mut used_a, mut used_b) = (vec![false; ea.len()], vec![false; eb.len()]);
            let (mut matched, mut on, mut ap, mut off) = (0usize, 0usize, 0usize, 0usize);
            for (_, _, i, j) in pairs {
                if used_a[i] || used_b[j] {
                    continue;
                }
                used_a[i] = true;
                used_b[j] = true;
                let (x, y) = (ea[i], eb[j]);
                matched += 1;
                on += near(x.onset, y.onset) as usize;
                ap += near(x.apex, y.apex) as usize;
                off += near(x.offset, y.offset) as usize;
            }
            let total = (ea.len() + eb.len()) as f64;
            let ratio = |k: usize| 2.0 * k as f64 / total;
            EventAgreement { au: au.to_string(), a_events: ea.len(), b_events: eb.len(), matched, occurrence: ratio(matched), onset: ratio(on), apex: ratio(ap), offset: ratio(off) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotations::{LabelValue, Source};

    fn labels(au: &str, v: &[u8]) -> Vec<Label> {
        v.iter()
            .enumerate()
            .map(|(f, &o)| Label {
                key: LabelKey { frame: f, face: 0, au: au.into() },
                source: Source::Coder,
                who: "x".into(),
                value: LabelValue::coded(o == 1, None),
                time_ms: 0,
            })
            .collect()
    }

    #[test]
    fn kappa_and_f1_match_hand_computed_values() {
        // a: 1 1 1 0 0 0 0 0 0 0 ; b: 1 1 0 1 0 0 0 0 0 0
        // tp 2, fp 1, fn 1 -> F1 = 4/6; po = 0.8, pe = 0.3*0.3 + 0.7*0.7 = 0.58,
        // kappa = 0.22/0.42.
        let a = labels("AU12", &[1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
        let b = labels("AU12", &[1, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
        let r = agreement(&a, &b);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].n, 10);
        assert!((r[0].f1.expect("f1") - 4.0 / 6.0).abs() < 1e-12);
        assert!((r[0].kappa.expect("kappa") - 0.22 / 0.42).abs() < 1e-12);
        // Identical constant labels: kappa undefined, F1 undefined (no positives).
        let z = labels("AU04", &[0, 0, 0]);
        let r = agreement(&z, &z);
        assert_eq!((r[0].f1, r[0].kappa, r[0].alpha), (None, None, None));
    }

    #[test]
    fn alpha_matches_krippendorffs_worked_example() {
        // Krippendorff (2011), 4 coders x 12 units with missing values; his
        // alpha is 0.743 nominal and 0.815 ordinal (PyPI `krippendorff`
        // 0.9.0 gives 0.7434210526 and 0.8153875038 on the same data).
        let rows: [[u8; 12]; 4] = [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, 0, 0, 0],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, 0, 3],
            [0, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 0],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, 0],
        ];
        let units: Vec<Vec<Option<u8>>> = (0..12).map(|u| rows.iter().map(|r| (r[u] > 0).then_some(r[u])).collect()).collect();
        let nominal = krippendorff_alpha(&units, Level::Nominal).expect("alpha");
        let ordinal = krippendorff_alpha(&units, Level::Ordinal).expect("alpha");
        assert!((nominal - 0.743421052631579).abs() < 1e-9, "{nominal}");
        assert!((ordinal - 0.8153875037548814).abs() < 1e-9, "{ordinal}");
    }

    #[test]
    fn two_coders_alpha_by_hand_and_intensity_ordinal() {
        // The kappa example above: o = [[12, 2], [2, 4]] over n = 20 values,
        // n0 = 14, n1 = 6; alpha = 1 - 19 * 4 / (2 * 14 * 6) = 1 - 76/168
        // (PyPI `krippendorff`: 0.5476190476).
        let a = labels("AU12", &[1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
        let b = labels("AU12", &[1, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
        let r = &agreement(&a, &b)[0];
        assert!((r.alpha.expect("alpha") - (1.0 - 76.0 / 168.0)).abs() < 1e-12, "{r:?}");
        // No intensities coded: every present label is missing for intensity,
        // leaving the absent ones, which all agree on 0 -> no expected
        // disagreement, no alpha.
        assert_eq!(r.alpha_intensity, None);
        // Intensities C, B vs C, D on two faces plus one agreed absence.
        let graded = |v: &[Option<u8>]| -> Vec<Label> {
            v.iter()
                .enumerate()
                .map(|(f, &i)| Label {
                    key: LabelKey { frame: f, face: 0, au: "AU06".into() },
                    source: Source::Coder,
                    who: "x".into(),
                    value: LabelValue::coded(i.is_some(), i),
                    time_ms: 0,
                })
                .collect()
        };
        let r = &agreement(&graded(&[Some(3), Some(2), None]), &graded(&[Some(3), Some(4), None]))[0];
        // Values 0, 2, 3, 3, 4... pairs (3,3), (2,4), (0,0): o has 3-3 twice,
        // 2-4 and 4-2 once, 0-0 twice; marginals n0 2, n2 1, n3 2, n4 1, n 6.
        // Ordinal d(2,4) = (1 + 2 + 1 - (1 + 1)/2)^2 = 9, observed 2 * 9 = 18.
        // Expected: sum over c != d of n_c n_d d(c,d): d(0,2) = (2+1 - 1.5)^2
        // = 2.25, d(0,3) = (2+1+2 - 2)^2 = 9, d(0,4) = (6 - 1.5)^2 = 20.25,
        // d(2,3) = (3 - 1.5)^2 = 2.25, d(2,4) = 9, d(3,4) = (3 - 1.5)^2 = 2.25;
        // 2 * (2*1*2.25 + 2*2*9 + 2*1*20.25 + 1*2*2.25 + 1*1*9 + 2*1*2.25) = 2 * 99.
        // (PyPI `krippendorff`: 0.5454545455.)
        let want = 1.0 - 5.0 * 18.0 / 198.0;
        assert!((r.alpha_intensity.expect("ordinal alpha") - want).abs() < 1e-12, "{r:?}");
    }

    #[test]
    fn alpha_over_many_sources_matches_the_worked_example() {
        // Four coders of one AU over 12 faces (1 present, 2 absent, 0 not
        // labelled), missing values as in Krippendorff's worked example.
        let rows: [[u8; 12]; 4] = [
            [1, 2, 1, 1, 2, 1, 1, 1, 2, 0, 0, 0],
            [1, 2, 1, 1, 2, 2, 1, 1, 2, 2, 0, 1],
            [0, 1, 1, 1, 2, 1, 1, 2, 2, 2, 1, 0],
            [1, 2, 1, 1, 2, 1, 1, 1, 2, 2, 1, 0],
        ];
        let sources: Vec<Vec<Label>> = rows
            .iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(_, v)| **v > 0)
                    .map(|(f, &v)| Label {
                        key: LabelKey { frame: f, face: 0, au: "AU01".into() },
                        source: Source::Coder,
                        who: "x".into(),
                        value: LabelValue::coded(v == 1, None),
                        time_ms: 0,
                    })
                    .collect()
            })
            .collect();
        let refs: Vec<&[Label]> = sources.iter().map(Vec::as_slice).collect();
        let r = &alpha_over(&refs)[0];
        let units: Vec<Vec<Option<u8>>> = (0..12).map(|u| rows.iter().map(|r| (r[u] > 0).then_some(r[u])).collect()).collect();
        let want = krippendorff_alpha(&units, Level::Nominal).expect("alpha");
        assert_eq!(r.units, 11);
        assert!((r.alpha.expect("alpha") - want).abs() < 1e-12);
        // PyPI `krippendorff` 0.9.0 on the same matrix: 0.6953125.
        assert!((want - 0.6953125).abs() < 1e-12, "{want}");
        // Two sources: alpha_over equals the pairwise alpha.
        let pair = agreement(&sources[0], &sources[1]);
        let over = alpha_over(&refs[..2]);
        assert_eq!(pair[0].alpha, over[0].alpha);
    }

    #[test]
    fn ekman_friesen_ratio_by_hand() {
        let l = |frame: usize, au: &str, present: bool| Label {
            key: LabelKey { frame, face: 0, au: au.into() },
            source: Source::Coder,
            who: "x".into(),
            value: LabelValue::coded(present, None),
            time_ms: 0,
        };
        // Face 0: a scores 1+2+12, b scores 1+12 -> 2*2 agreed of 5 scored.
        // Face 1: a scores 4, b scores 4+7 -> 2*1 of 3. Face 2 only a: out.
        let a = vec![l(0, "AU01", true), l(0, "AU02", true), l(0, "AU12", true), l(1, "AU04", true), l(2, "AU06", true)];
        let b = vec![l(0, "AU01", true), l(0, "AU02", false), l(0, "AU12", true), l(1, "AU04", true), l(1, "AU07", true)];
        assert!((ef_ratio(&a, &b).expect("ratio") - 6.0 / 8.0).abs() < 1e-12);
        assert_eq!(ef_ratio(&[l(0, "AU01", false)], &[l(0, "AU01", false)]), None);
    }

    #[test]
    fn event_agreement_by_hand() {
        let e = |onset, apex, offset| EventSpan { apex, ..EventSpan::new(0, "AU12", onset, offset) };
        let a = vec![e(10, 15, 20), e(40, 45, 50)];
        let b = vec![e(12, 20, 22), e(80, 85, 90)];
        let r = &event_agreement(&a, &b, 3)[0];
        // One pair matches (10-20 with 12-22); onset 2 and offset 2 frames
        // apart agree, apex 5 apart does not; 2 x k / 4.
        assert_eq!((r.a_events, r.b_events, r.matched), (2, 2, 1));
        assert_eq!((r.occurrence, r.onset, r.apex, r.offset), (0.5, 0.5, 0.0, 0.5));
        // With tolerance 5 the apex agrees too; with 1 only occurrence does.
        assert_eq!(event_agreement(&a, &b, 5)[0].apex, 0.5);
        let r = &event_agreement(&a, &b, 1)[0];
        assert_eq!((r.onset, r.offset), (0.0, 0.0));
        // One to one: two of b's events over one of a's match once.
        let r = &event_agreement(&[e(0, 5, 30)], &[e(0, 2, 10), e(12, 20, 30)], 15)[0];
        assert_eq!(r.matched, 1);
        // Another person's event never matches.
        let other = EventSpan { person: 1, ..e(10, 15, 20) };
        assert_eq!(event_agreement(&[e(10, 15, 20)], &[other], 3)[0].matched, 0);
    }
}
