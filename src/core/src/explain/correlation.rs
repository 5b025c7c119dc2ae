//! Pearson correlation of AU occurrence over a video (FAN-Trans Figure 5):
//! one AU x AU matrix per source (e.g. a model's predictions and the
//! coder's labels) and the element-wise Euclidean distance between them.

use super::Matrix;
use crate::training::metrics::{correlation_matrix, matrix_distance};

/// One source's rows (per frame, per AU, probabilities or 0/1 labels).
pub struct Rows<'a> {
    pub name: &'a str,
    pub rows: &'a [Vec<f32>],
}

/// The matrices of `a` and `b` (when given) and their distance. AUs that
/// never vary over the rows have no correlation; their entries are 0.
pub fn correlations(aus: &[String], a: Rows, b: Option<Rows>) -> (Vec<Matrix>, Option<f32>) {
    let as_matrix = |name: &str, rows: &[Vec<f32>]| -> (Matrix, Vec<Vec<f32>>) {
        let c = correlation_matrix(rows);
        let values = c.iter().flatten().copied().collect();
        (
            Matrix { name: format!("{name}: AU correlation over {} frames", rows.len()), labels: aus.to_vec(), values, range: [-1.0, 1.0] },
            c,
        )
    };
    let (ma, ca) = as_matrix(a.name, a.rows);
    match b {
        Some(b) => {
            let (mb, cb) = as_matrix(b.name, b.rows);
            let d = matrix_distance(&ca, &cb);
            (vec![ma, mb], Some(d))
        }
        None => (vec![ma], None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_sources_are_at_distance_zero_and_a_flipped_au_is_not() {
        let aus: Vec<String> = ["AU06", "AU12"].iter().map(|s| s.to_string()).collect();
        let a = vec![vec![1.0, 1.0], vec![0.0, 0.0], vec![1.0, 1.0], vec![0.0, 1.0]];
        let (m, d) = correlations(&aus, Rows { name: "model", rows: &a }, Some(Rows { name: "coder", rows: &a }));
        assert_eq!(m.len(), 2);
        assert_eq!(d, Some(0.0));
        assert!((m[0].values[0] - 1.0).abs() < 1e-6, "diagonal is 1");
        let b: Vec<Vec<f32>> = a.iter().map(|r| vec![r[0], 1.0 - r[1]]).collect();
        let (_, d) = correlations(&aus, Rows { name: "model", rows: &a }, Some(Rows { name: "coder", rows: &b }));
        assert!(d.expect("distance") > 0.5);
    }
}
