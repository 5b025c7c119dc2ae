//! AU detection metrics: per-AU F1 at 0.5 (the papers' metric), precision,
//! recall, AUC, and FAN-Trans Figure 5's AU x AU Pearson correlation
//! matrices of labels and predictions with their element-wise Euclidean
//! distance.

use serde::{Deserialize, Serialize};

/// Metrics of one AU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuMetrics {
    pub au: String,
    pub f1: f32,
    pub precision: f32,
    pub recall: f32,
    /// Area under the ROC curve; None when the labels hold one class only.
    pub auc: Option<f32>,
    /// Positives in the labels.
    pub positives: usize,
}

/// Metrics of a set of predictions against labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub samples: usize,
    pub per_au: Vec<AuMetrics>,
    pub mean_f1: f32,
    pub mean_auc: Option<f32>,
    pub label_correlation: Vec<Vec<f32>>,
    pub prediction_correlation: Vec<Vec<f32>>,
    /// Frobenius (element-wise Euclidean) distance between the two matrices.
    pub correlation_distance: f32,
}

/// F1, precision and recall of binary decisions; 0 where undefined
/// (no positive predicted or present), as scikit-learn's zero_division=0.
pub fn f1_precision_recall(pred: &[bool], label: &[bool]) -> (f32, f32, f32) {
    let (mut tp, mut fp, mut fne) = (0usize, 0usize, 0usize);
    for (&p, &l) in pred.iter().zip(label) {
        match (p, l) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fne += 1,
            _ => {}
        }
    }
    let precision = if tp + fp > 0 { tp as f32 / (tp + fp) as f32 } else { 0.0 };
    let recall = if tp + fne > 0 { tp as f32 / (tp + fne) as f32 } else { 0.0 };
    let f1 = if 2 * tp + fp + fne > 0 { 2.0 * tp as f32 / (2 * tp + fp + fne) as f32 } else { 0.0 };
    (f1, precision, recall)
}

/// ROC AUC by the rank statistic (Mann-Whitney U), ties counted half.
pub fn auc(scores: &[f32], label: &[bool]) -> Option<f32> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties.
    let mut ranks = vec![0.0f64; scores.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[idx[k]] = r;
        }
        i = j + 1;
    }
    let pos = label.iter().filter(|&&l| l).count();
    let neg = label.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let rank_sum: f64 = ranks.iter().zip(label).filter(|(_, l)| **l).map(|(r, _)| r).sum();
    let u = rank_sum - (pos * (pos + 1)) as f64 / 2.0;
    Some((u / (pos * neg) as f64) as f32)
}

/// Pearson correlation between columns of a sample x AU matrix. A constant
/// column correlates 0 with the others (and 1 with itself).
pub fn correlation_matrix(rows: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let n = rows.first().map_or(0, |r| r.len());
    let m = rows.len().max(1) as f64;
    let mean: Vec<f64> = (0..n).map(|j| rows.iter().map(|r| r[j] as f64).sum::<f64>() / m).collect();
    let sd: Vec<f64> = (0..n)
        .map(|j| (rows.iter().map(|r| (r[j] as f64 - mean[j]).powi(2)).sum::<f64>() / m).sqrt())
        .collect();
    (0..n)
        .map(|a| {
            (0..n)
                .map(|b| {
                    if a == b {
                        return 1.0;
                    }
                    if sd[a] < 1e-12 || sd[b] < 1e-12 {
                        return 0.0;
                    }
                    let cov = rows.iter().map(|r| (r[a] as f64 - mean[a]) * (r[b] as f64 - mean[b])).sum::<f64>() / m;
                    (cov / (sd[a] * sd[b])) as f32
                })
                .collect()
        })
        .collect()
}

/// Element-wise Euclidean distance between two matrices.
pub fn matrix_distance(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f32>()
        .sqrt()
}

/// Evaluate probabilities against 0/1 labels (rows = samples, columns = `aus`).
/// Decisions use threshold 0.5 on both.
pub fn evaluate(aus: &[String], probs: &[Vec<f32>], labels: &[Vec<f32>]) -> Evaluation {
    let per_au: Vec<AuMetrics> = aus
        .iter()
        .enumerate()
        .map(|(j, au)| {
            let scores: Vec<f32> = probs.iter().map(|r| r[j]).collect();
            let label: Vec<bool> = labels.iter().map(|r| r[j] >= 0.5).collect();
            let pred: Vec<bool> = scores.iter().map(|&p| p >= 0.5).collect();
            let (f1, precision, recall) = f1_precision_recall(&pred, &label);
            AuMetrics {
                au: au.clone(),
                f1,
                precision,
                recall,
                auc: auc(&scores, &label),
                positives: label.iter().filter(|&&l| l).count(),
            }
        })
        .collect();
    let mean_f1 = per_au.iter().map(|m| m.f1).sum::<f32>() / per_au.len().max(1) as f32;
    let aucs: Vec<f32> = per_au.iter().filter_map(|m| m.auc).collect();
    let mean_auc = (!aucs.is_empty()).then(|| aucs.iter().sum::<f32>() / aucs.len() as f32);
    let binary = |rows: &[Vec<f32>]| -> Vec<Vec<f32>> {
        rows.iter().map(|r| r.iter().map(|&v| if v >= 0.5 { 1.0 } else { 0.0 }).collect()).collect()
    };
    let label_correlation = correlation_matrix(&binary(labels));
    let prediction_correlation = correlation_matrix(&binary(probs));
    let correlation_distance = matrix_distance(&label_correlation, &prediction_correlation);
    Evaluation {
        samples: probs.len(),
        per_au,
        mean_f1,
        mean_auc,
        label_correlation,
        prediction_correlation,
        correlation_distance,
    }
}

impl Evaluation {
    /// A plain-text table: AU, F1, precision, recall, AUC, positives.
    pub fn table(&self) -> String {
        let mut s = format!("{:<6} {:>6} {:>9} {:>6} {:>6} {:>5}\n", "AU", "F1", "precision", "recall", "AUC", "pos");
        for m in &self.per_au {
            let auc = m.auc.map_or("-".to_string(), |a| format!("{a:.3}"));
            s += &format!(
                "{:<6} {:>6.3} {:>9.3} {:>6.3} {:>6} {:>5}\n",
                m.au, m.f1, m.precision, m.recall, auc, m.positives
            );
        }
        let auc = self.mean_auc.map_or("-".to_string(), |a| format!("{a:.3}"));
        s += &format!("{:<6} {:>6.3} {:>9} {:>6} {:>6} {:>5}\n", "mean", self.mean_f1, "", "", auc, self.samples);
        s += &format!("AU correlation distance (labels vs predictions): {:.3}\n", self.correlation_distance);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_by_hand() {
        // tp 2, fp 1, fn 1 -> P 2/3, R 2/3, F1 2/3.
        let pred = [true, true, true, false, false];
        let label = [true, true, false, true, false];
        let (f1, p, r) = f1_precision_recall(&pred, &label);
        assert!((f1 - 2.0 / 3.0).abs() < 1e-6 && (p - 2.0 / 3.0).abs() < 1e-6 && (r - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(f1_precision_recall(&[false, false], &[false, false]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn auc_by_hand() {
        // sklearn.metrics.roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.75
        let a = auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).expect("auc");
        assert!((a - 0.75).abs() < 1e-6);
        // Ties count half: all equal -> 0.5.
        assert_eq!(auc(&[0.3; 4], &[true, false, true, false]), Some(0.5));
        assert_eq!(auc(&[0.3, 0.2], &[true, true]), None);
    }

    #[test]
    fn correlation_and_distance() {
        let rows = vec![vec![1.0, 1.0, 0.0], vec![0.0, 0.0, 1.0], vec![1.0, 1.0, 1.0], vec![0.0, 0.0, 0.0]];
        let c = correlation_matrix(&rows);
        assert!((c[0][1] - 1.0).abs() < 1e-6, "identical columns");
        assert!(c[0][2].abs() < 1e-6, "independent columns");
        assert_eq!(matrix_distance(&c, &c), 0.0);
        let e = evaluate(&["A".into(), "B".into(), "C".into()], &rows, &rows);
        assert_eq!(e.mean_f1, 1.0);
        assert_eq!(e.correlation_distance, 0.0);
        assert!(e.table().contains("mean"));
    }
}
