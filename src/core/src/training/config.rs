//! One serde file describes a training run: model, data, split, procedure,
//! output folder. `auscope train --config FILE` runs it; a copy is saved as
//! run.json next to the weights.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::data::{Dataset, Sample, media_subject};
use super::trainer::{Stage, TrainParams};
use crate::error::CoreError;
use std::ops::ControlFlow;

use crate::analysis::Engine;
use crate::models::teacher::BlendshapeTeacher;
use crate::models::piap::PiapStage;
use crate::models::{ArchConfig, ModelKind, ModelSpec};
use crate::source::open_source;

/// A model by preset name, or a full spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelChoice {
    /// `{"model": "piap", "preset": "tiny" | "paper", "aus": [...]}`
    Preset { model: String, preset: String, #[serde(default)] aus: Option<Vec<String>> },
    Spec(ModelSpec),
}

impl ModelChoice {
    pub fn spec(&self) -> Result<ModelSpec, CoreError> {
        match self {
            ModelChoice::Spec(s) => Ok(s.clone()),
            ModelChoice::Preset { model, preset, aus } => {
                let kind = ModelKind::parse(model)?;
                let mut spec = match preset.as_str() {
                    "paper" => ModelSpec::paper(kind),
                    "tiny" => ModelSpec::tiny(kind),
                    other => return Err(CoreError::Training(format!("unknown preset '{other}' (paper, tiny)"))),
                };
                if let Some(a) = aus {
                    spec.aus = a.clone();
                }
                Ok(spec)
            }
        }
    }
}

/// Where labelled frames come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "layout", rename_all = "kebab-case")]
pub enum DataSpec {
    Csv { path: PathBuf, #[serde(default = "half")] positive_at: f32 },
    Openface { csv: PathBuf, media: PathBuf, #[serde(default)] subject: Option<String>, #[serde(default = "half")] positive_at: f32 },
    Bp4d { root: PathBuf },
    Disfa { root: PathBuf },
    /// Pseudo-labels from the blendshape teacher on every `every`-th frame
    /// of each media file; each file is one subject.
    Teacher { media: Vec<PathBuf>, #[serde(default = "one")] every: usize },
    /// auscope project files (`<media>.auscope`): the labels of `coder` (or
    /// of any coder) on faces where every chosen AU is labelled.
    Project { projects: Vec<PathBuf>, #[serde(default)] coder: Option<String> },
}

fn half() -> f32 {
    0.5
}
fn one() -> usize {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub model: ModelChoice,
    pub data: DataSpec,
    /// Subject-exclusive folds; the papers use 3.
    #[serde(default = "three")]
    pub folds: usize,
    /// The held-out fold.
    #[serde(default)]
    pub fold: usize,
    /// The procedure; default: the paper's for the architecture.
    #[serde(default)]
    pub params: Option<TrainParams>,
    /// Start from these weights (.bpk) instead of random initialisation.
    #[serde(default)]
    pub init_weights: Option<PathBuf>,
    /// What to train: `au` (default), `fan-distill`, `pi-generator`,
    /// `pi-joint` or `discrete-feedback` (docs/training.md).
    #[serde(default)]
    pub stage: Stage,
    /// PIAP stage 3 and DF: the stage-2 weights (.bpk) whose generator maps
    /// are the PI targets; without it, the predefined landmark regions.
    #[serde(default)]
    pub pi_generator: Option<PathBuf>,
    /// PIAP-DF: media whose frames (every `unlabeled_every`-th) are extra
    /// unlabelled faces.
    #[serde(default)]
    pub unlabeled: Vec<PathBuf>,
    #[serde(default = "one")]
    pub unlabeled_every: usize,
    pub out: PathBuf,
}

fn three() -> usize {
    3
}

impl TrainConfig {
    /// Read a config; relative paths are taken from the config's folder.
    pub fn load(path: &Path) -> Result<Self, CoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::Io { path: path.to_path_buf(), reason: e.to_string() })?;
        let mut c: TrainConfig = serde_json::from_str(&text).map_err(|e| CoreError::Training(format!("{}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        match &mut c.data {
            DataSpec::Csv { path, .. } => fix(path),
            DataSpec::Openface { csv, media, .. } => {
                fix(csv);
                fix(media);
            }
            DataSpec::Bp4d { root } | DataSpec::Disfa { root } => fix(root),
            DataSpec::Teacher { media, .. } => media.iter_mut().for_each(fix),
            DataSpec::Project { projects, .. } => projects.iter_mut().for_each(fix),
        }
        fix(&mut c.out);
        c.init_weights.iter_mut().chain(c.pi_generator.iter_mut()).chain(c.unlabeled.iter_mut()).for_each(fix);
        Ok(c)
    }

    /// The model to train. PIAP stages 1-2 train the stage-2 structure, so
    /// a PIAP preset becomes stage 2 for them.
    pub fn spec(&self) -> Result<ModelSpec, CoreError> {
        let mut spec = self.model.spec()?;
        if let (true, ModelChoice::Preset { .. }, ArchConfig::Piap(c)) = (self.stage.wants_piap_stage2(), &self.model, &mut spec.arch) {
            c.stage = PiapStage::Stage2;
        }
        self.stage.check(&spec)?;
        Ok(spec)
    }

    pub fn params(&self, spec: &ModelSpec) -> TrainParams {
        let mut p = self.params.clone().unwrap_or_else(|| TrainParams::paper(spec));
        p.stage = self.stage;
        p
    }
}

/// Load the labelled frames a data spec names, for the given AUs.
pub fn load_dataset(data: &DataSpec, aus: &[String], engine: &Engine) -> Result<Dataset, CoreError> {
    match data {
        DataSpec::Csv { path, positive_at } => Dataset::from_csv(path, aus, *positive_at),
        DataSpec::Openface { csv, media, subject, positive_at } => {
            let subject = subject.clone().unwrap_or_else(|| media_subject(media));
            Dataset::from_openface(csv, media, &subject, aus, *positive_at)
        }
        DataSpec::Bp4d { root } => Dataset::from_bp4d(root, aus),
        DataSpec::Disfa { root } => Dataset::from_disfa(root, aus),
        DataSpec::Teacher { media, every } => pseudo_label(media, *every, aus, engine),
        DataSpec::Project { projects, coder } => Dataset::from_projects(projects, aus, coder.as_deref()),
    }
}


/// Teacher pseudo-labels (probability >= 0.5 -> 1) for the largest face of
/// every `every`-th frame. Frames without a face are skipped.
pub fn pseudo_label(media: &[PathBuf], every: usize, aus: &[String], engine: &Engine) -> Result<Dataset, CoreError> {
    let teacher = BlendshapeTeacher::new(aus, engine.device())?;
    let mut out = Dataset { aus: aus.to_vec(), samples: Vec::new(), skipped: 0 };
    for m in media {
        let source = open_source(m)?;
        let subject = media_subject(m);
        let count = source.info().frame_count;
        let mut failed: Option<CoreError> = None;
        engine.run(source, (0..count).step_by(every.max(1)).collect(), engine.tracker(), &mut |r, _| {
            if let Some(e) = r.error {
                failed = Some(CoreError::Data(format!("{} frame {}: {e}", m.display(), r.index)));
                return ControlFlow::Break(());
            }
            let Some(k) = crate::face::largest_index(r.faces.iter().map(|f| &f.face)) else {
                out.skipped += 1;
                return ControlFlow::Continue(());
            };
            match teacher.predict_faces(std::slice::from_ref(&r.faces[k].face)) {
                Ok(probs) => {
                    let labels = probs[0].iter().map(|&p| if p >= 0.5 { 1.0 } else { 0.0 }).collect();
                    out.samples.push(Sample { media: m.clone(), frame: r.index, subject: subject.clone(), labels, face: None });
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(out)
}

/// Every `every`-th frame of each media file as an unlabelled sample (labels
/// all zero, never read); each file is one subject.
pub fn unlabeled_dataset(media: &[PathBuf], every: usize, aus: &[String]) -> Result<Dataset, CoreError> {
    let mut out = Dataset { aus: aus.to_vec(), samples: Vec::new(), skipped: 0 };
    for m in media {
        let count = open_source(m)?.info().frame_count;
        let subject = media_subject(m);
        for frame in (0..count).step_by(every.max(1)) {
            out.samples.push(Sample { media: m.clone(), frame, subject: subject.clone(), labels: vec![0.0; aus.len()], face: None });
        }
    }
    Ok(out)
}
