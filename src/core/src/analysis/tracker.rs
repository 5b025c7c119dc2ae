//! Face tracking as MediaPipe's face landmarker does it in VIDEO mode: the
//! next frame's landmark region comes from this frame's landmarks, and the
//! detector runs only when it must (no faces tracked, a track was lost,
//! every `detect_every` frames to find new faces, or a frame that does not
//! follow the last one). Each track carries an identity (`id`) that stays
//! while the face is visible.
//!
//! The tracker is plain state plus decisions; the engine runs the networks.
//! Its state serialises, so a killed analysis resumes with the same ids and
//! regions (and so the same numbers) as an uninterrupted run.

use serde::{Deserialize, Serialize};

use crate::face::Face;
use crate::face::detector::{Detection, iou};
use crate::face::landmarker::roi_from_box;
use crate::frame::Roi;

/// Mesh points whose line sets the region's rotation (outer eye corners),
/// as MediaPipe's face_landmarks_to_roi graph.
const ROTATION_FROM: usize = 33;
const ROTATION_TO: usize = 263;
/// Mesh points standing in for the detector's six keypoints on tracked
/// frames: iris centres, nose tip, mouth centre (upper and lower inner lip),
/// the tragions.
const KEYPOINTS: [&[usize]; 6] = [&[468], &[473], &[1], &[13, 14], &[234], &[454]];

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackerConfig {
    /// Run the detector every this many frames to find faces that entered
    /// (0: only when no face is tracked or a track is lost).
    pub detect_every: usize,
    /// A track ends when the landmarker's face presence drops below this
    /// (MediaPipe's min_tracking_confidence).
    pub min_presence: f32,
    /// A detection overlapping a tracked region this much (IoU) is that face.
    pub same_face_iou: f32,
    /// A face found within this many frames of losing one, where the lost
    /// one was, keeps its identity (a blink of the detector is no new person).
    pub reacquire_frames: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self { detect_every: 30, min_presence: 0.5, same_face_iou: 0.5, reacquire_frames: 3 }
    }
}

/// One tracked face between frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Track {
    pub id: u32,
    /// Where the landmarker looks in the next frame.
    pub roi: Roi,
    /// The detector box relative to the landmarks' bounding box when the
    /// face was last detected: (dx, dy, w, h) in units of that box's size.
    /// Tracked frames place the face box with it, so model crops (which
    /// are cut around the detector box) mean the same on every frame.
    pub box_in_marks: [f32; 4],
    /// The detector's score when the face was found.
    pub score: f32,
    /// The face's box on the last frame.
    pub bbox: [f32; 4],
}

/// A face lost recently, kept for `reacquire_frames`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Lost {
    id: u32,
    bbox: [f32; 4],
    frame: usize,
}

/// Where a landmark pass should look, and for whom.
#[derive(Debug, Clone)]
pub struct Region {
    pub roi: Roi,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub enum Origin {
    /// Continues track `id` (index into the tracker's tracks).
    Tracked(usize),
    /// A new face from this detection.
    Detected(Detection),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    lost: Vec<Lost>,
    next_id: u32,
    /// The frame index last processed and the one the detector last ran on.
    last_frame: Option<usize>,
    last_detection: Option<usize>,
    /// A track ended on the last frame: the next one runs the detector
    /// (MediaPipe detects whenever fewer faces are tracked than wanted).
    lost_last_frame: bool,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self { config, ..Default::default() }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// Forget every track: the next frame is a still (or a cut), detected afresh.
    pub fn forget(&mut self) {
        self.last_frame = None;
    }

    /// Start frame `index`: whether it needs the detector (no track, a jump
    /// in the frame order such as a seek or a still image, which also ends
    /// every track, or `detect_every` frames since it last ran). Then
    /// [`Tracker::regions`] and [`Tracker::update`] for the same frame.
    pub fn plan(&mut self, index: usize) -> bool {
        let follows = self.last_frame.is_some_and(|l| l + 1 == index);
        if !follows {
            self.tracks.clear();
            self.lost.clear();
        }
        if !follows || self.tracks.is_empty() || self.lost_last_frame {
            return true;
        }
        let every = self.config.detect_every;
        every > 0 && self.last_detection.is_none_or(|d| index >= d + every)
    }

    /// The regions for this frame: every track's, plus each detection (with
    /// the region it starts from) that overlaps no tracked region (with
    /// `detections` None, tracks only).
    pub fn regions(&self, detections: Option<&[(Detection, Roi)]>) -> Vec<Region> {
        let mut out: Vec<Region> = self.tracks.iter().enumerate().map(|(i, t)| Region { roi: t.roi, origin: Origin::Tracked(i) }).collect();
        for (d, roi) in detections.unwrap_or(&[]) {
            let roi = *roi;
            let known = self.tracks.iter().any(|t| iou(&square(&t.roi), &square(&roi)) > self.config.same_face_iou);
            if !known {
                out.push(Region { roi, origin: Origin::Detected(d.clone()) });
            }
        }
        out
    }

    /// Take the landmark results of `regions` (same order; `marks` gives each
    /// region's 478 points and presence) and return the frame's faces with
    /// their identities. Faces below `min_presence` that were only tracked
    /// are dropped (and their tracks end); detected faces are returned with
    /// whatever presence they have, as a single-image run would.
    pub fn update(&mut self, index: usize, detected: bool, regions: Vec<Region>, marks: Vec<(Vec<[f32; 3]>, f32)>) -> Vec<Face> {
        let old = std::mem::take(&mut self.tracks);
        self.lost.retain(|l| index <= l.frame + self.config.reacquire_frames);
        let mut faces: Vec<Face> = Vec::new();
        let mut tracks: Vec<Track> = Vec::new();
        self.lost_last_frame = false;
        for (region, (points, presence)) in regions.into_iter().zip(marks) {
            let lm_box = points_box(&points);
            let (detection, id, box_in_marks, score) = match region.origin {
                Origin::Tracked(i) => {
                    let Some(t) = old.get(i) else { continue };
                    if presence < self.config.min_presence {
                        self.lost.push(Lost { id: t.id, bbox: t.bbox, frame: index });
                        self.lost_last_frame = true;
                        continue;
                    }
                    let bbox = place_box(&lm_box, &t.box_in_marks);
                    let det = Detection { score: t.score, bbox, keypoints: keypoints(&points) };
                    (det, t.id, t.box_in_marks, t.score)
                }
                Origin::Detected(d) => {
                    let rel = relative_box(&lm_box, &d.bbox);
                    let id = self.reacquired(&d.bbox).unwrap_or_else(|| {
                        self.next_id += 1;
                        self.next_id - 1
                    });
                    let score = d.score;
                    (d, id, rel, score)
                }
            };
            let face = Face {
                landmarks68: crate::face::ibug68::ibug68(&points),
                detection,
                roi: region.roi,
                landmarks478: points,
                presence,
                track: Some(id),
            };
            if presence >= self.config.min_presence {
                tracks.push(Track { id, roi: roi_from_landmarks(&face.landmarks478), box_in_marks, score, bbox: face.detection.bbox });
            } else {
                // Too unsure to track, but found again next to here it is
                // the same face.
                self.lost.push(Lost { id, bbox: face.detection.bbox, frame: index });
            }
            faces.push(face);
        }
        // Two tracks that converged on one face: the older identity stays.
        let mut order: Vec<usize> = (0..tracks.len()).collect();
        order.sort_by_key(|&i| tracks[i].id);
        let mut kept: Vec<Track> = Vec::new();
        for i in order {
            let t = &tracks[i];
            if kept.iter().all(|k| iou(&square(&k.roi), &square(&t.roi)) <= self.config.same_face_iou) {
                kept.push(t.clone());
            } else {
                faces.retain(|f| f.track != Some(t.id));
            }
        }
        self.tracks = kept;
        self.last_frame = Some(index);
        if detected {
            self.last_detection = Some(index);
        }
        faces
    }

    /// The identity of a face lost nearby a moment ago, taken back.
    fn reacquired(&mut self, bbox: &[f32; 4]) -> Option<u32> {
        let best = self
            .lost
            .iter()
            .enumerate()
            .map(|(i, l)| (i, iou(&l.bbox, bbox)))
            .filter(|&(_, v)| v > 0.3)
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        Some(self.lost.remove(best.0).id)
    }
}

/// The landmarker's region from a mesh: the points' bounding box, rotated
/// by the outer eye corners, 1.5x, square (MediaPipe's face_landmarks_to_roi).
pub fn roi_from_landmarks(points: &[[f32; 3]]) -> Roi {
    let corner = |i: usize| points.get(i).map_or([0.0; 2], |p| [p[0], p[1]]);
    roi_from_box(points_box(points), corner(ROTATION_FROM), corner(ROTATION_TO))
}

fn points_box(points: &[[f32; 3]]) -> [f32; 4] {
    points.iter().fold([f32::MAX, f32::MAX, f32::MIN, f32::MIN], |b, p| [b[0].min(p[0]), b[1].min(p[1]), b[2].max(p[0]), b[3].max(p[1])])
}

fn relative_box(frame: &[f32; 4], inner: &[f32; 4]) -> [f32; 4] {
    let (w, h) = ((frame[2] - frame[0]).max(1e-3), (frame[3] - frame[1]).max(1e-3));
    [(inner[0] - frame[0]) / w, (inner[1] - frame[1]) / h, (inner[2] - inner[0]) / w, (inner[3] - inner[1]) / h]
}

fn place_box(frame: &[f32; 4], rel: &[f32; 4]) -> [f32; 4] {
    let (w, h) = (frame[2] - frame[0], frame[3] - frame[1]);
    let (x, y) = (frame[0] + rel[0] * w, frame[1] + rel[1] * h);
    [x, y, x + rel[2] * w, y + rel[3] * h]
}

fn keypoints(points: &[[f32; 3]]) -> [[f32; 2]; 6] {
    let mut out = [[0.0; 2]; 6];
    for (k, idx) in out.iter_mut().zip(KEYPOINTS) {
        let n = idx.len() as f32;
        for &i in idx {
            if let Some(p) = points.get(i) {
                k[0] += p[0] / n;
                k[1] += p[1] / n;
            }
        }
    }
    out
}

/// The axis-aligned square a region covers (rotation ignored: association
/// only needs overlap).
fn square(r: &Roi) -> [f32; 4] {
    let h = r.side / 2.0;
    [r.center[0] - h, r.center[1] - h, r.center[0] + h, r.center[1] + h]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh(cx: f32, cy: f32, half: f32) -> Vec<[f32; 3]> {
        (0..478)
            .map(|i| {
                let t = i as f32 / 478.0 * std::f32::consts::TAU;
                [cx + half * t.cos(), cy + half * t.sin(), 0.0]
            })
            .collect()
    }

    fn detection(cx: f32, cy: f32, half: f32) -> Detection {
        Detection { score: 0.9, bbox: [cx - half, cy - half, cx + half, cy + half], keypoints: [[cx - half / 2.0, cy], [cx + half / 2.0, cy], [cx, cy], [cx, cy], [cx - half, cy], [cx + half, cy]] }
    }

    fn step(t: &mut Tracker, index: usize, dets: &[Detection], at: &[(f32, f32, f32)]) -> Vec<Face> {
        let detect = t.plan(index);
        let dets: Vec<(Detection, Roi)> = dets.iter().map(|d| (d.clone(), crate::face::landmarker::roi_from_detection(d))).collect();
        let regions = t.regions(detect.then_some(dets.as_slice()));
        // The "landmarker" finds the face of `at` nearest each region.
        let marks = regions
            .iter()
            .map(|r| {
                let best = at.iter().min_by(|a, b| {
                    let da = (a.0 - r.roi.center[0]).hypot(a.1 - r.roi.center[1]);
                    let db = (b.0 - r.roi.center[0]).hypot(b.1 - r.roi.center[1]);
                    da.total_cmp(&db)
                });
                match best {
                    Some(&(x, y, h)) if (x - r.roi.center[0]).hypot(y - r.roi.center[1]) < r.roi.side => (mesh(x, y, h), 0.99),
                    _ => (mesh(r.roi.center[0], r.roi.center[1], 10.0), 0.01),
                }
            })
            .collect();
        t.update(index, detect, regions, marks)
    }

    #[test]
    fn tracks_keep_their_identity_and_detection_is_rare() {
        let mut t = Tracker::new(TrackerConfig { detect_every: 10, ..Default::default() });
        let mut detections = 0;
        for i in 0..40 {
            let (a, b) = ((100.0 + i as f32 * 3.0, 100.0, 40.0), (400.0 - i as f32 * 2.0, 120.0, 40.0));
            let before = t.last_detection;
            let faces = step(&mut t, i, &[detection(a.0, a.1, a.2), detection(b.0, b.1, b.2)], &[a, b]);
            if t.last_detection != before {
                detections += 1;
            }
            assert_eq!(faces.len(), 2, "frame {i}");
            let left = faces.iter().find(|f| f.detection.bbox[0] < 250.0).and_then(|f| f.track);
            assert_eq!(left, Some(0), "frame {i}");
        }
        // Frame 0, then every 10 frames.
        assert_eq!(detections, 4);
    }

    #[test]
    fn a_face_that_leaves_and_returns_gets_a_new_identity() {
        let mut t = Tracker::new(TrackerConfig::default());
        let face = (200.0, 200.0, 50.0);
        let det = detection(200.0, 200.0, 50.0);
        assert_eq!(step(&mut t, 0, std::slice::from_ref(&det), &[face])[0].track, Some(0));
        assert!(step(&mut t, 1, &[], &[]).is_empty());
        for i in 2..10 {
            assert!(step(&mut t, i, &[], &[]).is_empty());
        }
        assert_eq!(step(&mut t, 10, &[det], &[face])[0].track, Some(1));
    }

    #[test]
    fn a_blink_of_the_detector_keeps_the_identity() {
        let mut t = Tracker::new(TrackerConfig::default());
        let face = (200.0, 200.0, 50.0);
        let det = detection(200.0, 200.0, 50.0);
        step(&mut t, 0, std::slice::from_ref(&det), &[face]);
        assert!(step(&mut t, 1, &[], &[]).is_empty());
        assert_eq!(step(&mut t, 2, &[det], &[face])[0].track, Some(0));
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut t = Tracker::new(TrackerConfig::default());
        step(&mut t, 0, &[detection(200.0, 200.0, 50.0)], &[(200.0, 200.0, 50.0)]);
        let back: Tracker = serde_json::from_str(&serde_json::to_string(&t).unwrap_or_default()).unwrap_or_default();
        assert_eq!(back, t);
    }

    #[test]
    fn region_from_landmarks_is_level_square_and_enlarged() {
        let points = mesh(100.0, 50.0, 20.0);
        let roi = roi_from_landmarks(&points);
        assert!((roi.side - 60.0).abs() < 0.1, "{roi:?}");
        assert!((roi.center[0] - 100.0).abs() < 0.1 && (roi.center[1] - 50.0).abs() < 0.1);
    }
}
