//! Training data: labelled frames from the layouts researchers have, their
//! subject-exclusive splits, and the FAN-Trans augmentations.
//!
//! Layouts (docs/training.md has examples):
//! - generic CSV: columns `path` (image or video, relative to the CSV),
//!   optional `frame` (0-based; default 0), `subject`, and one column per AU
//!   (`AU12`, or OpenFace-style `AU12_c` / `AU12_r`) holding occurrence 0/1
//!   or intensity 0-5;
//! - OpenFace CSV (`frame` 1-based, `success`, `AUxx_c`/`AUxx_r`) as labels
//!   of one video;
//! - BP4D: `<root>/AUCoding/<subject>_<task>.csv` (header `Frame,1,2,...`,
//!   9 = not coded) with frames `<root>/Sequences/<subject>/<task>/<frame>.jpg`;
//! - DISFA: `<root>/ActionUnit_Labels/<subject>/<subject>_au<n>.txt`
//!   (`frame,intensity`, 1-based) with `<root>/Videos_RightCamera/RightVideo<subject>_comp.avi`
//!   (or LeftCamera), positive at intensity >= 2;
//! - auscope project files (`<media>.auscope`): the coders' labels of the
//!   review window, one subject per media file.
//!
//! Rows whose value for a chosen AU is missing or "not coded" are skipped
//! and counted, never guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// One labelled frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub media: PathBuf,
    /// 0-based frame index in `media` (0 for images).
    pub frame: usize,
    pub subject: String,
    /// 0/1 per AU of the dataset.
    pub labels: Vec<f32>,
    /// Which face of the frame (the face pipeline's order); None: the
    /// largest (the datasets' one-subject frames).
    #[serde(default)]
    pub face: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub aus: Vec<String>,
    pub samples: Vec<Sample>,
    /// Rows left out because a chosen AU was missing or not coded.
    pub skipped: usize,
}

/// "AU1", "au01", "AU01_c" -> "AU01"; None if the name is not an AU column.
pub fn au_name(column: &str) -> Option<(String, Option<char>)> {
    let c = column.trim();
    let rest = c.strip_prefix("AU").or_else(|| c.strip_prefix("au"))?;
    let (num, suffix) = match rest.split_once('_') {
        Some((n, s)) => (n, s.chars().next()),
        None => (rest, None),
    };
    let n: u32 = num.parse().ok()?;
    Some((format!("AU{n:02}"), suffix))
}

fn data_err(path: &Path, msg: impl std::fmt::Display) -> CoreError {
    CoreError::Data(format!("{}: {msg}", path.display()))
}

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>, CoreError> {
    csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| data_err(path, e))
}

/// Column index of each wanted AU, preferring occurrence (`_c` or bare) and
/// falling back to intensity (`_r`, thresholded). Returns (index, is_intensity).
fn au_columns(path: &Path, header: &csv::StringRecord, aus: &[String]) -> Result<Vec<(usize, bool)>, CoreError> {
    aus.iter()
        .map(|au| {
            let mut occ = None;
            let mut int = None;
            for (i, h) in header.iter().enumerate() {
                if let Some((name, suffix)) = au_name(h)
                    && &name == au
                {
                    match suffix {
                        Some('r') => int = Some(i),
                        _ => occ = Some(i),
                    }
                }
            }
            occ.map(|i| (i, false))
                .or(int.map(|i| (i, true)))
                .ok_or_else(|| data_err(path, format!("no column for {au} (columns: {})", header.iter().collect::<Vec<_>>().join(", "))))
        })
        .collect()
}

/// Parse a label cell: Some(0/1), or None for missing / not coded (9, -1, empty).
fn label_value(cell: &str, intensity: bool, positive_at: f32) -> Result<Option<f32>, String> {
    if cell.is_empty() || cell.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    let v: f32 = cell.parse().map_err(|_| format!("'{cell}' is not a number"))?;
    if v < 0.0 || v == 9.0 {
        return Ok(None);
    }
    let threshold = if intensity { positive_at } else { 0.5 };
    Ok(Some(if v >= threshold { 1.0 } else { 0.0 }))
}

/// One row's labels for the chosen AU columns: None when any is missing or
/// not coded; a malformed cell is an error naming file and line.
fn row_labels(
    rec: &csv::StringRecord,
    au_cols: &[(usize, bool)],
    positive_at: f32,
    path: &Path,
    line: usize,
) -> Result<Option<Vec<f32>>, CoreError> {
    let mut labels = Vec::with_capacity(au_cols.len());
    for &(i, intensity) in au_cols {
        match label_value(rec.get(i).unwrap_or(""), intensity, positive_at).map_err(|e| data_err(path, format!("line {line}: {e}")))? {
            Some(v) => labels.push(v),
            None => return Ok(None),
        }
    }
    Ok(Some(labels))
}

impl Dataset {
    /// The generic CSV layout. `positive_at` thresholds intensity columns
    /// (2 for DISFA's protocol; occurrence columns use 0.5).
    pub fn from_csv(path: &Path, aus: &[String], positive_at: f32) -> Result<Self, CoreError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let mut rd = reader(path)?;
        let header = rd.headers().map_err(|e| data_err(path, e))?.clone();
        let col = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let path_col = col("path").ok_or_else(|| data_err(path, "no 'path' column"))?;
        let subject_col = col("subject").ok_or_else(|| data_err(path, "no 'subject' column (needed for subject-exclusive splits)"))?;
        let frame_col = col("frame");
        let au_cols = au_columns(path, &header, aus)?;
        let mut samples = Vec::new();
        let mut skipped = 0;
        for (line, rec) in rd.records().enumerate() {
            let line = line + 2;
            let rec = rec.map_err(|e| data_err(path, format!("line {line}: {e}")))?;
            let get = |i: usize| rec.get(i).unwrap_or("");
            let frame = match frame_col.map(get) {
                None | Some("") => 0,
                Some(f) => f.parse().map_err(|_| data_err(path, format!("line {line}: frame '{f}' is not a frame index")))?,
            };
            let Some(labels) = row_labels(&rec, &au_cols, positive_at, path, line)? else {
                skipped += 1;
                continue;
            };
            samples.push(Sample { media: base.join(get(path_col)), frame, subject: get(subject_col).to_string(), labels, face: None });
        }
        Ok(Self { aus: aus.to_vec(), samples, skipped })
    }

    /// An OpenFace CSV as the labels of `media` (a video or image), one subject.
    pub fn from_openface(csv_path: &Path, media: &Path, subject: &str, aus: &[String], positive_at: f32) -> Result<Self, CoreError> {
        let mut rd = reader(csv_path)?;
        let header = rd.headers().map_err(|e| data_err(csv_path, e))?.clone();
        let col = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
        let frame_col = col("frame").ok_or_else(|| data_err(csv_path, "no 'frame' column: not an OpenFace CSV"))?;
        let success_col = col("success");
        let au_cols = au_columns(csv_path, &header, aus)?;
        let mut samples = Vec::new();
        let mut skipped = 0;
        for (line, rec) in rd.records().enumerate() {
            let line = line + 2;
            let rec = rec.map_err(|e| data_err(csv_path, format!("line {line}: {e}")))?;
            let get = |i: usize| rec.get(i).unwrap_or("");
            let frame: usize = get(frame_col)
                .parse::<f64>()
                .ok()
                .filter(|f| *f >= 1.0)
                .map(|f| f as usize - 1)
                .ok_or_else(|| data_err(csv_path, format!("line {line}: frame '{}' is not a 1-based frame number", get(frame_col))))?;
            if success_col.is_some_and(|c| get(c) == "0") {
                skipped += 1;
                continue;
            }
            match row_labels(&rec, &au_cols, positive_at, csv_path, line)? {
                Some(labels) => samples.push(Sample { media: media.to_path_buf(), frame, subject: subject.to_string(), labels, face: None }),
                None => skipped += 1,
            }
        }
        Ok(Self { aus: aus.to_vec(), samples, skipped })
    }

    /// BP4D's layout (see the module docs).
    pub fn from_bp4d(root: &Path, aus: &[String]) -> Result<Self, CoreError> {
        let coding = root.join("AUCoding");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&coding)
            .map_err(|e| data_err(&coding, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(data_err(&coding, "no <subject>_<task>.csv files"));
        }
        let mut out = Self { aus: aus.to_vec(), samples: Vec::new(), skipped: 0 };
        for file in files {
            let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let (subject, task) = stem
                .split_once('_')
                .ok_or_else(|| data_err(&file, "file name is not <subject>_<task>.csv"))?;
            let mut rd = reader(&file)?;
            let header = rd.headers().map_err(|e| data_err(&file, e))?.clone();
            // BP4D headers are bare numbers: "1" is AU01.
            let renamed: csv::StringRecord = header
                .iter()
                .map(|h| if h.parse::<u32>().is_ok() { format!("AU{h}") } else { h.to_string() })
                .collect();
            let frame_col = renamed.iter().position(|h| h.eq_ignore_ascii_case("frame")).ok_or_else(|| data_err(&file, "no Frame column"))?;
            let au_cols = au_columns(&file, &renamed, aus)?;
            let dir = root.join("Sequences").join(subject).join(task);
            for (line, rec) in rd.records().enumerate() {
                let rec = rec.map_err(|e| data_err(&file, format!("line {}: {e}", line + 2)))?;
                let frame_no = rec.get(frame_col).unwrap_or("");
                let labels = row_labels(&rec, &au_cols, 0.5, &file, line + 2)?;
                let n: usize = frame_no.parse().map_err(|_| data_err(&file, format!("line {}: frame '{frame_no}'", line + 2)))?;
                let image = [format!("{n:04}.jpg"), format!("{n:03}.jpg"), format!("{n}.jpg")]
                    .into_iter()
                    .map(|f| dir.join(f))
                    .find(|p| p.exists());
                match (labels, image) {
                    (Some(labels), Some(media)) => out.samples.push(Sample { media, frame: 0, subject: subject.to_string(), labels, face: None }),
                    _ => out.skipped += 1,
                }
            }
        }
        Ok(out)
    }

    /// DISFA's layout (see the module docs); positives at intensity >= 2.
    pub fn from_disfa(root: &Path, aus: &[String]) -> Result<Self, CoreError> {
        let labels_dir = root.join("ActionUnit_Labels");
        let mut subjects: Vec<String> = std::fs::read_dir(&labels_dir)
            .map_err(|e| data_err(&labels_dir, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        subjects.sort();
        let mut out = Self { aus: aus.to_vec(), samples: Vec::new(), skipped: 0 };
        for subject in subjects {
            // frame (0-based) -> intensities per AU.
            let mut frames: BTreeMap<usize, Vec<Option<f32>>> = BTreeMap::new();
            for (k, au) in aus.iter().enumerate() {
                let num: u32 = au.trim_start_matches("AU").parse().unwrap_or(0);
                let file = labels_dir.join(&subject).join(format!("{subject}_au{num}.txt"));
                let text = std::fs::read_to_string(&file).map_err(|e| data_err(&file, e))?;
                for (line, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    let (f, v) = l.split_once(',').ok_or_else(|| data_err(&file, format!("line {}: expected frame,intensity", line + 1)))?;
                    let f: usize = f.trim().parse().map_err(|_| data_err(&file, format!("line {}: frame '{f}'", line + 1)))?;
                    let v = label_value(v.trim(), true, 2.0).map_err(|e| data_err(&file, format!("line {}: {e}", line + 1)))?;
                    frames.entry(f.saturating_sub(1)).or_insert_with(|| vec![None; aus.len()])[k] = v;
                }
            }
            let video = ["Videos_RightCamera/RightVideo", "Videos_LeftCamera/LeftVideo"]
                .iter()
                .map(|p| root.join(format!("{p}{subject}_comp.avi")))
                .find(|p| p.exists())
                .ok_or_else(|| data_err(root, format!("no video for {subject} in Videos_RightCamera/ or Videos_LeftCamera/")))?;
            for (frame, values) in frames {
                match values.into_iter().collect::<Option<Vec<f32>>>() {
                    Some(labels) => out.samples.push(Sample { media: video.clone(), frame, subject: subject.clone(), labels, face: None }),
                    None => out.skipped += 1,
                }
            }
        }
        Ok(out)
    }

    /// The coder labels of auscope project files (`<media>.auscope`, written
    /// by the review window or `auscope labels import`). Each project is one
    /// media file and one subject (the media's file name, less the
    /// extension). A face is a sample when the coder (`coder`, or any coder:
    /// the latest label wins) labelled every chosen AU on it; a face with
    /// some AUs left unlabelled is skipped and counted, like BP4D's "not
    /// coded". (The review window's Enter writes the model's decisions for
    /// the rest as the coder's, so reviewed faces are complete.)
    pub fn from_projects(projects: &[PathBuf], aus: &[String], coder: Option<&str>) -> Result<Self, CoreError> {
        let mut out = Self { aus: aus.to_vec(), samples: Vec::new(), skipped: 0 };
        for project in projects {
            // Opening creates a missing file; a typo must not make one.
            if !project.is_file() {
                return Err(data_err(project, "no such project file"));
            }
            let media = crate::annotations::store::Store::media_of(project)
                .ok_or_else(|| data_err(project, "not a project file: the name must be <media>.auscope"))?;
            let store = crate::annotations::store::Store::open(project)?;
            let coded = store.coded_faces(aus, coder)?;
            if coded.is_empty() {
                let whose = coder.map_or("any coder".to_string(), |c| format!("coder '{c}'"));
                return Err(data_err(project, format!("no labels by {whose} for {}", aus.join(", "))));
            }
            let subject = media_subject(&media);
            for ((frame, face), labels) in coded {
                if labels.len() < aus.len() {
                    out.skipped += 1;
                    continue;
                }
                let labels = (0..aus.len()).map(|j| labels[&j] as u8 as f32).collect();
                out.samples.push(Sample { media: media.clone(), frame, subject: subject.clone(), labels, face: Some(face) });
            }
        }
        Ok(out)
    }

    pub fn subjects(&self) -> Vec<String> {
        self.samples.iter().map(|s| s.subject.clone()).collect::<BTreeSet<_>>().into_iter().collect()
    }

    /// Subject-exclusive k-fold: subjects (sorted) are dealt round-robin into
    /// `k` folds; fold `fold` is the test set. Returns (train, test) indices.
    pub fn subject_folds(&self, k: usize, fold: usize) -> Result<(Vec<usize>, Vec<usize>), CoreError> {
        let subjects = self.subjects();
        if k < 2 || fold >= k {
            return Err(CoreError::Data(format!("fold {fold} of {k}: need k >= 2 and fold < k")));
        }
        if subjects.len() < k {
            return Err(CoreError::Data(format!("{} subjects cannot make {k} subject-exclusive folds", subjects.len())));
        }
        let test: BTreeSet<&String> = subjects.iter().enumerate().filter(|(i, _)| i % k == fold).map(|(_, s)| s).collect();
        let (mut train, mut held) = (Vec::new(), Vec::new());
        for (i, s) in self.samples.iter().enumerate() {
            if test.contains(&s.subject) { held.push(i) } else { train.push(i) }
        }
        Ok((train, held))
    }

    /// Labels of the given samples.
    pub fn labels(&self, idx: &[usize]) -> Vec<Vec<f32>> {
        idx.iter().map(|&i| self.samples[i].labels.clone()).collect()
    }
}

/// The subject of a media file without one: its file name, less the extension.
pub(crate) fn media_subject(media: &Path) -> String {
    media.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A small deterministic generator (SplitMix64) so runs are reproducible
/// from their seed alone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// FAN-Trans's augmentations (after JAA-Net): rotation +/-15 degrees,
/// horizontal flip, scale 0.75-1.25, centre shift +/-10 px (at 256 px input;
/// scaled to the model's input size).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Augment {
    pub rotation_deg: f32,
    pub flip: bool,
    pub scale: [f32; 2],
    pub shift_px: f32,
}

impl Augment {
    pub fn paper() -> Self {
        Self { rotation_deg: 15.0, flip: true, scale: [0.75, 1.25], shift_px: 10.0 }
    }
    pub fn none() -> Self {
        Self { rotation_deg: 0.0, flip: false, scale: [1.0, 1.0], shift_px: 0.0 }
    }

    /// Draw one transform.
    pub fn draw(&self, rng: &mut Rng) -> Transform {
        Transform {
            angle: rng.range(-self.rotation_deg, self.rotation_deg).to_radians(),
            flip: self.flip && rng.unit() < 0.5,
            scale: rng.range(self.scale[0], self.scale[1]),
            shift: [rng.range(-self.shift_px, self.shift_px) / 256.0, rng.range(-self.shift_px, self.shift_px) / 256.0],
        }
    }
}

/// One drawn augmentation; shift is in units of the crop side.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub angle: f32,
    pub flip: bool,
    pub scale: f32,
    pub shift: [f32; 2],
}

impl Transform {
    pub const IDENTITY: Transform = Transform { angle: 0.0, flip: false, scale: 1.0, shift: [0.0, 0.0] };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn au_column_names() {
        assert_eq!(au_name("AU1"), Some(("AU01".into(), None)));
        assert_eq!(au_name(" AU12_c"), Some(("AU12".into(), Some('c'))));
        assert_eq!(au_name("AU04_r"), Some(("AU04".into(), Some('r'))));
        assert_eq!(au_name("subject"), None);
        assert_eq!(label_value("3", true, 2.0), Ok(Some(1.0)));
        assert_eq!(label_value("1", true, 2.0), Ok(Some(0.0)));
        assert_eq!(label_value("9", false, 0.5), Ok(None));
        assert!(label_value("yes", false, 0.5).is_err());
    }

    #[test]
    fn projects_give_the_fully_labelled_faces_of_a_coder() {
        use crate::annotations::{Label, LabelKey, LabelValue, Source};
        let dir = std::env::temp_dir().join(format!("auscope-data-project-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let project = dir.join("clip.mp4.auscope");
        // The store stamps its own write time; the label's is not used.
        let label = |frame: usize, face: usize, au: &str, who: &str, on: bool| Label {
            key: LabelKey { frame, face, au: au.into() },
            source: Source::Coder,
            who: who.into(),
            value: LabelValue { occurrence: on, intensity: None, score: None },
            time_ms: 0,
        };
        let mut store = crate::annotations::store::Store::open(&project).expect("project");
        store
            .put_labels(&[
                label(0, 0, "AU12", "alice", true),
                label(0, 0, "AU06", "alice", false),
                // Alice changed her mind: her row is replaced.
                label(0, 0, "AU06", "alice", true),
                // Face 1 of frame 3: AU06 only, by alice; bob adds AU12.
                label(3, 1, "AU06", "alice", false),
                label(3, 1, "AU12", "bob", true),
            ])
            .expect("labels");
        drop(store);
        let aus = vec!["AU06".to_string(), "AU12".to_string()];
        let alice = Dataset::from_projects(std::slice::from_ref(&project), &aus, Some("alice")).expect("alice");
        assert_eq!(alice.samples.len(), 1);
        assert_eq!(alice.skipped, 1);
        let s = &alice.samples[0];
        assert_eq!((s.frame, s.face, s.labels.clone(), s.subject.as_str()), (0, Some(0), vec![1.0, 1.0], "clip"));
        assert_eq!(s.media, dir.join("clip.mp4"));
        let anyone = Dataset::from_projects(std::slice::from_ref(&project), &aus, None).expect("any coder");
        assert_eq!(anyone.samples.iter().map(|s| (s.frame, s.face)).collect::<Vec<_>>(), vec![(0, Some(0)), (3, Some(1))]);
        assert_eq!(anyone.samples[1].labels, vec![0.0, 1.0]);
        let err = Dataset::from_projects(std::slice::from_ref(&project), &aus, Some("carol")).expect_err("no labels").to_string();
        assert!(err.contains("no labels by coder 'carol'"), "{err}");
        let missing = dir.join("other.mp4.auscope");
        let err = Dataset::from_projects(std::slice::from_ref(&missing), &aus, None).expect_err("missing").to_string();
        assert!(err.contains("no such project file") && !missing.exists(), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rng_is_uniform_enough_and_reproducible() {
        let mut a = Rng(1);
        let mut b = Rng(1);
        let xs: Vec<f32> = (0..1000).map(|_| a.unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f32>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05);
        assert_eq!(b.unit(), xs[0]);
    }
}
