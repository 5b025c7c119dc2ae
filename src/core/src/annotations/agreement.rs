//! Agreement between two label sources (a model and a coder, or two
//! coders): per AU, F1 of `b` against `a` as the reference and Cohen's
//! kappa, over the (frame, face) both labelled.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Label, LabelKey};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuAgreement {
    pub au: String,
    /// Labels both sources gave for this AU.
    pub n: usize,
    /// F1 of `b`'s occurrences against `a`'s; None when neither has a positive.
    pub f1: Option<f64>,
    /// Cohen's kappa; None when chance agreement is 1 (both constant and equal).
    pub kappa: Option<f64>,
}

/// Per AU present in both, in AU order.
pub fn agreement(a: &[Label], b: &[Label]) -> Vec<AuAgreement> {
    let index = |ls: &[Label]| -> BTreeMap<LabelKey, bool> { ls.iter().map(|l| (l.key.clone(), l.value.occurrence)).collect() };
    let (a, b) = (index(a), index(b));
    // Per AU the 2x2 table [a][b].
    let mut tables: BTreeMap<String, [[usize; 2]; 2]> = BTreeMap::new();
    for (k, &va) in &a {
        if let Some(&vb) = b.get(k) {
            tables.entry(k.au.clone()).or_default()[va as usize][vb as usize] += 1;
        }
    }
    tables
        .into_iter()
        .map(|(au, t)| {
            let n = t[0][0] + t[0][1] + t[1][0] + t[1][1];
            let (tp, fp, fn_) = (t[1][1] as f64, t[0][1] as f64, t[1][0] as f64);
            let f1 = (tp + fp + fn_ > 0.0).then(|| 2.0 * tp / (2.0 * tp + fp + fn_));
            let nf = n as f64;
            let po = (t[0][0] + t[1][1]) as f64 / nf;
            let (pa1, pb1) = ((t[1][0] + t[1][1]) as f64 / nf, (t[0][1] + t[1][1]) as f64 / nf);
            let pe = pa1 * pb1 + (1.0 - pa1) * (1.0 - pb1);
            let kappa = ((1.0 - pe).abs() > 1e-12).then(|| (po - pe) / (1.0 - pe));
            AuAgreement { au, n, f1, kappa }
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
        assert_eq!((r[0].f1, r[0].kappa), (None, None));
    }
}
