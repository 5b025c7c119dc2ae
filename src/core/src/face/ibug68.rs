//! auscope's mapping from MediaPipe's 478 face-mesh points to the 68 points
//! of the iBUG 300-W markup, in its order (the order dlib and OpenFace use).
//!
//! Each iBUG point takes the mesh vertex that lies at the same anatomical
//! spot, chosen by reading the canonical face mesh. Indices are 0-based:
//!
//! | iBUG    | region                          | mesh vertices |
//! |---------|---------------------------------|---------------|
//! | 0-16    | jaw, subject's right ear to left | 162 234 93 58 172 136 149 148 152 377 378 365 397 288 323 454 389 |
//! | 17-21   | right brow, outer to inner      | 71 63 105 66 107 |
//! | 22-26   | left brow, inner to outer       | 336 296 334 293 301 |
//! | 27-30   | nose bridge, top to tip         | 168 197 5 4 |
//! | 31-35   | nostrils, right to left         | 75 97 2 326 305 |
//! | 36-41   | right eye, outer corner clockwise | 33 160 158 133 153 144 |
//! | 42-47   | left eye, inner corner clockwise  | 362 385 387 263 373 380 |
//! | 48-59   | outer lip, right corner clockwise | 61 39 37 0 267 269 291 405 314 17 84 181 |
//! | 60-67   | inner lip, right corner clockwise | 78 82 13 312 308 317 14 87 |
//!
//! The mesh has no vertex on the jaw's outline at the ear lobes, so points 0
//! and 16 sit slightly higher (at the tragus) than a human 300-W annotator
//! would place them. Later issues build PI maps and attention targets from
//! these points, so the table is the single source of truth.

pub const IBUG68_FROM_MESH: [usize; 68] = [
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389, // jaw
    71, 63, 105, 66, 107, // right brow
    336, 296, 334, 293, 301, // left brow
    168, 197, 5, 4, // nose bridge
    75, 97, 2, 326, 305, // nostrils
    33, 160, 158, 133, 153, 144, // right eye
    362, 385, 387, 263, 373, 380, // left eye
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181, // outer lip
    78, 82, 13, 312, 308, 317, 14, 87, // inner lip
];

/// The point each iBUG point becomes in a horizontally mirrored image (the
/// subject's right jaw end becomes the left one, and so on).
pub const IBUG68_FLIP: [usize; 68] = [
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, // jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17, // brows
    27, 28, 29, 30, // nose bridge
    35, 34, 33, 32, 31, // nostrils
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40, // eyes
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, // outer lip
    64, 63, 62, 61, 60, 67, 66, 65, // inner lip
];

/// The 68 iBUG points (x, y) from 478 mesh points.
pub fn ibug68(mesh: &[[f32; 3]]) -> Vec<[f32; 2]> {
    IBUG68_FROM_MESH
        .iter()
        .map(|&i| mesh.get(i).map_or([f32::NAN; 2], |p| [p[0], p[1]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_is_68_distinct_mesh_vertices() {
        let mut v = IBUG68_FROM_MESH.to_vec();
        v.sort_unstable();
        v.dedup();
        assert_eq!(v.len(), 68);
        assert!(
            v.iter().all(|&i| i < 468),
            "iris points 468..478 are not part of the 300-W markup"
        );
    }

    #[test]
    fn flip_pairs_left_with_right() {
        for k in 0..68 {
            assert_eq!(IBUG68_FLIP[IBUG68_FLIP[k]], k, "mirroring twice is the identity");
        }
        // Eye outer corners, mouth corners, jaw ends; the midline stays.
        for (a, b) in [(36, 45), (39, 42), (48, 54), (0, 16), (31, 35), (60, 64)] {
            assert_eq!(IBUG68_FLIP[a], b);
        }
        for m in [8, 27, 30, 33, 51, 57, 62, 66] {
            assert_eq!(IBUG68_FLIP[m], m);
        }
    }
}
