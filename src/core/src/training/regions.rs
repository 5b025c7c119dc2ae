//! AU regions over the 68 iBUG landmarks, rasterised as maps: TransAU's
//! ground-truth attention maps (ellipses fitted to AU-specific landmark
//! groups, Gaussian-smoothed with sigma 3, only for active AUs) and the
//! predefined PI maps PIAP's stage 1 learns.
//!
//! The groups follow JAA-Net's AU centres (TransAU's refs [17, 18]) as
//! landmark sets; bilateral AUs have one group per side. They are our
//! reading of those papers' figures, not a published table. An ellipse is
//! the 2-sigma ellipse of its group's points (covariance), widened to at
//! least 6% of the crop so a group of nearly collinear points still covers
//! skin.

/// The region table, `assets/au_regions.json` (documented there), compiled
/// in: AU -> landmark groups (0-based iBUG-68 indices).
const REGIONS_JSON: &str = include_str!("../../../../assets/au_regions.json");

#[derive(serde::Deserialize)]
struct RegionFile {
    regions: std::collections::BTreeMap<String, Vec<Vec<usize>>>,
}

/// The parsed table; read-only after the first use. The file is checked by
/// a unit test, so a parse failure here is a build defect.
static REGIONS: std::sync::LazyLock<std::collections::BTreeMap<String, Vec<Vec<usize>>>> =
    std::sync::LazyLock::new(|| {
        serde_json::from_str::<RegionFile>(REGIONS_JSON)
            .map(|f| f.regions)
            .unwrap_or_default()
    });

/// The landmark groups of an AU (empty when the table has no region for it).
pub fn au_region(au: &str) -> &'static [Vec<usize>] {
    REGIONS.get(au).map(|g| g.as_slice()).unwrap_or(&[])
}

/// The AUs that have a region.
pub fn region_aus() -> impl Iterator<Item = &'static str> {
    REGIONS.keys().map(|k| k.as_str())
}

/// One AU's region map at `size` x `size` (values 0..1), from landmarks in
/// crop-normalised coordinates ([0,1]^2). `sigma_px` is the Gaussian blur in
/// map pixels (0: none). Unknown AU: an all-zero map.
pub fn region_map(au: &str, landmarks: &[[f32; 2]], size: usize, sigma_px: f32) -> Vec<f32> {
    let mut map = vec![0.0f32; size * size];
    let groups = au_region(au);
    if groups.is_empty() {
        return map;
    }
    for group in groups {
        let pts: Vec<[f32; 2]> = group.iter().filter_map(|&i| landmarks.get(i).copied()).collect();
        if pts.len() < 2 {
            continue;
        }
        let n = pts.len() as f32;
        let (mx, my) = (pts.iter().map(|p| p[0]).sum::<f32>() / n, pts.iter().map(|p| p[1]).sum::<f32>() / n);
        let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
        for p in &pts {
            let (dx, dy) = (p[0] - mx, p[1] - my);
            sxx += dx * dx / n;
            syy += dy * dy / n;
            sxy += dx * dy / n;
        }
        // Eigen-decomposition of the 2x2 covariance -> ellipse axes (2 sigma).
        let tr = sxx + syy;
        let det = sxx * syy - sxy * sxy;
        let disc = (tr * tr / 4.0 - det).max(0.0).sqrt();
        let (l1, l2) = (tr / 2.0 + disc, (tr / 2.0 - disc).max(0.0));
        let theta = 0.5 * (2.0 * sxy).atan2(sxx - syy);
        let min_axis = 0.06;
        let (a, b) = ((2.0 * l1.sqrt()).max(min_axis), (2.0 * l2.sqrt()).max(min_axis));
        let (s, c) = theta.sin_cos();
        for j in 0..size {
            for i in 0..size {
                let (x, y) = ((i as f32 + 0.5) / size as f32 - mx, (j as f32 + 0.5) / size as f32 - my);
                let (u, v) = (c * x + s * y, -s * x + c * y);
                if (u / a).powi(2) + (v / b).powi(2) <= 1.0 {
                    map[j * size + i] = 1.0;
                }
            }
        }
    }
    if sigma_px > 0.0 {
        map = blur(&map, size, sigma_px);
        // Keep the peak at 1 so the map stays a target in [0, 1].
        let max = map.iter().copied().fold(0.0, f32::max);
        if max > 0.0 {
            map.iter_mut().for_each(|v| *v /= max);
        }
    }
    map
}

/// Separable Gaussian blur with zero padding.
fn blur(map: &[f32], size: usize, sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil() as i64;
    let k: Vec<f32> = (-r..=r).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let ksum: f32 = k.iter().sum();
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0.0f32; size * size];
        for j in 0..size {
            for i in 0..size {
                let mut acc = 0.0;
                for (t, w) in k.iter().enumerate() {
                    let d = t as i64 - r;
                    let (x, y) = if horizontal { (i as i64 + d, j as i64) } else { (i as i64, j as i64 + d) };
                    if x >= 0 && y >= 0 && (x as usize) < size && (y as usize) < size {
                        acc += w * src[y as usize * size + x as usize];
                    }
                }
                out[j * size + i] = acc / ksum;
            }
        }
        out
    };
    pass(&pass(map, true), false)
}

/// Maps for all `aus` of one face, [N_AU * size * size]; with `labels`,
/// inactive AUs get an all-zero map (TransAU: "only for active AUs").
pub fn region_maps(aus: &[String], landmarks: &[[f32; 2]], size: usize, sigma_px: f32, labels: Option<&[f32]>) -> Vec<f32> {
    let mut out = Vec::with_capacity(aus.len() * size * size);
    for (k, au) in aus.iter().enumerate() {
        if labels.is_some_and(|l| l.get(k).copied().unwrap_or(0.0) < 0.5) {
            out.extend(std::iter::repeat_n(0.0, size * size));
        } else {
            out.extend(region_map(au, landmarks, size, sigma_px));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_table_parses_and_indexes_68_landmarks() {
        let file: RegionFile = serde_json::from_str(REGIONS_JSON).expect("assets/au_regions.json parses");
        assert!(file.regions.len() >= 20);
        for (au, groups) in &file.regions {
            assert!(!groups.is_empty(), "{au} has no group");
            assert!(groups.iter().flatten().all(|&i| i < 68), "{au}: index out of range");
        }
        assert_eq!(au_region("AU12").len(), 2, "AU12 is bilateral");
        assert!(au_region("AU99").is_empty());
    }

    #[test]
    fn a_region_covers_its_landmarks_and_not_the_far_side() {
        // A synthetic face: mouth corners at (0.3, 0.75) and (0.7, 0.75),
        // everything else at the forehead.
        let mut lm = vec![[0.5f32, 0.1]; 68];
        for (i, p) in [(48, [0.3, 0.75]), (49, [0.33, 0.72]), (59, [0.33, 0.78]), (60, [0.34, 0.75]), (4, [0.25, 0.7])] {
            lm[i] = p;
        }
        for (i, p) in [(54, [0.7, 0.75]), (53, [0.67, 0.72]), (55, [0.67, 0.78]), (64, [0.66, 0.75]), (12, [0.75, 0.7])] {
            lm[i] = p;
        }
        let size = 20;
        let m = region_map("AU12", &lm, size, 0.0);
        let at = |x: f32, y: f32| m[(y * size as f32) as usize * size + (x * size as f32) as usize];
        assert_eq!(at(0.3, 0.75), 1.0);
        assert_eq!(at(0.7, 0.75), 1.0);
        assert_eq!(at(0.5, 0.2), 0.0);
        let blurred = region_map("AU12", &lm, size, 1.5);
        assert!(blurred.iter().all(|v| (0.0..=1.0).contains(v)));
        let maps = region_maps(&["AU12".into(), "AU01".into()], &lm, size, 0.0, Some(&[0.0, 1.0]));
        assert!(maps[..size * size].iter().all(|&v| v == 0.0), "inactive AU -> empty map");
    }
}
