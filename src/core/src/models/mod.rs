//! The AU model zoo: FAN-Trans, TransAU, PIAP and LRP-ARL-FF in burn, their
//! serde configurations, typed outputs, and weights I/O.
//!
//! A model is a [`ModelSpec`] (AU list + architecture config) plus weights.
//! Weights are saved in burn's burnpack format with the spec in the file's
//! metadata, so a file says which model it belongs to; PyTorch checkpoints
//! (.safetensors, .pth/.pt) import through per-architecture key tables.

pub mod aus;
pub mod backbones;
pub mod blocks;
pub mod fan;
pub mod fan_trans;
pub mod lrp_arl_ff;
pub mod output;
pub mod piap;
pub mod predictor;
pub mod teacher;
pub mod transau;
pub mod transformer;
pub mod weights;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
pub use blocks::Trace;
pub use output::{AttentionLayerMaps, AuOutput, ModelMaps};
pub use predictor::{Predictor, PredictorKind, open_predictor};

use fan_trans::{FanTrans, FanTransConfig};
use lrp_arl_ff::{LrpArlFf, LrpArlFfConfig};
use piap::{Piap, PiapConfig, PiapStage};
use transau::{TransAu, TransAuConfig};

/// The four architectures, by their CLI names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    FanTrans,
    Transau,
    Piap,
    LrpArlFf,
}

impl ModelKind {
    pub const ALL: [ModelKind; 4] = [ModelKind::FanTrans, ModelKind::Transau, ModelKind::Piap, ModelKind::LrpArlFf];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::FanTrans => "fan-trans",
            ModelKind::Transau => "transau",
            ModelKind::Piap => "piap",
            ModelKind::LrpArlFf => "lrp-arl-ff",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ModelKind::FanTrans => "FAN-Trans",
            ModelKind::Transau => "TransAU",
            ModelKind::Piap => "PIAP",
            ModelKind::LrpArlFf => "LRP-ARL-FF",
        }
    }

    pub fn parse(s: &str) -> Result<Self, CoreError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| CoreError::Model(format!("unknown model '{s}' (models: fan-trans, transau, piap, lrp-arl-ff)")))
    }
}

/// Architecture and its sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", content = "config", rename_all = "kebab-case")]
pub enum ArchConfig {
    FanTrans(FanTransConfig),
    Transau(TransAuConfig),
    Piap(PiapConfig),
    LrpArlFf(LrpArlFfConfig),
}

/// Everything needed to build a model: its AUs and its architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub aus: Vec<String>,
    #[serde(flatten)]
    pub arch: ArchConfig,
}

impl ModelSpec {
    /// The full-size configuration from the paper, on the BP4D AUs.
    pub fn paper(kind: ModelKind) -> Self {
        Self {
            aus: aus::BP4D.iter().map(|s| s.to_string()).collect(),
            arch: match kind {
                ModelKind::FanTrans => ArchConfig::FanTrans(FanTransConfig::paper()),
                ModelKind::Transau => ArchConfig::Transau(TransAuConfig::paper()),
                ModelKind::Piap => ArchConfig::Piap(PiapConfig::paper(PiapStage::Stage3)),
                ModelKind::LrpArlFf => ArchConfig::LrpArlFf(LrpArlFfConfig::paper()),
            },
        }
    }

    /// A small configuration of the same architecture for fast CPU tests.
    pub fn tiny(kind: ModelKind) -> Self {
        Self {
            aus: aus::BP4D.iter().map(|s| s.to_string()).collect(),
            arch: match kind {
                ModelKind::FanTrans => ArchConfig::FanTrans(FanTransConfig::tiny()),
                ModelKind::Transau => ArchConfig::Transau(TransAuConfig::tiny()),
                ModelKind::Piap => ArchConfig::Piap(PiapConfig::tiny(PiapStage::Stage3)),
                ModelKind::LrpArlFf => ArchConfig::LrpArlFf(LrpArlFfConfig::tiny()),
            },
        }
    }

    pub fn kind(&self) -> ModelKind {
        match self.arch {
            ArchConfig::FanTrans(_) => ModelKind::FanTrans,
            ArchConfig::Transau(_) => ModelKind::Transau,
            ArchConfig::Piap(_) => ModelKind::Piap,
            ArchConfig::LrpArlFf(_) => ModelKind::LrpArlFf,
        }
    }

    pub fn from_json(text: &str) -> Result<Self, CoreError> {
        serde_json::from_str(text).map_err(|e| CoreError::Model(format!("model config: {e}")))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The crop the model takes.
    pub fn input(&self) -> InputSpec {
        match &self.arch {
            ArchConfig::FanTrans(c) => InputSpec { size: c.input_size, norm: InputNorm::Unit },
            ArchConfig::Transau(c) => InputSpec { size: c.input_size, norm: InputNorm::GrayImageNet },
            ArchConfig::Piap(c) => InputSpec { size: c.input_size, norm: InputNorm::Unit },
            ArchConfig::LrpArlFf(c) => InputSpec { size: c.backbone.input_size, norm: InputNorm::PlusMinusOne },
        }
    }

    fn validate(&self) -> Result<(), CoreError> {
        let bad = |m: String| Err(CoreError::Model(m));
        if self.aus.is_empty() {
            return bad("the model config lists no AUs".into());
        }
        match &self.arch {
            ArchConfig::FanTrans(c) => {
                // The hourglass halves input/4 `depth` times; the conv module pools 4x.
                let unit = (4usize << c.fan.depth.min(8)).max(16);
                if c.input_size % unit != 0 || c.input_size == 0 {
                    return bad(format!("FAN-Trans input_size must be a multiple of {unit}"));
                }
                if c.dim < 64 || c.dim % 64 != 0 {
                    return bad("FAN-Trans dim must be a multiple of 64 (heads = dim / 64)".into());
                }
                if c.fan.stacks == 0 {
                    return bad("FAN needs at least one stack".into());
                }
            }
            ArchConfig::Transau(c) => {
                if c.embed_dim % c.heads != 0 {
                    return bad("TransAU embed_dim must be divisible by heads".into());
                }
                if c.feature_side() < 2 {
                    return bad(format!("TransAU input_size {} is too small for its backbone", c.input_size));
                }
            }
            ArchConfig::Piap(c) => {
                if c.input_size % 16 != 0 || c.encoder_size < 32 {
                    return bad("PIAP input_size must be a multiple of 16 and encoder_size >= 32".into());
                }
            }
            ArchConfig::LrpArlFf(c) => {
                if c.backbone.input_size % 16 != 0 {
                    return bad("IResNet input_size must be a multiple of 16".into());
                }
                if let lrp_arl_ff::Fusion::Transformer { dim, heads, .. } = c.fusion
                    && (heads == 0 || dim % heads != 0)
                {
                    return bad("fusion dim must be divisible by heads".into());
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputNorm {
    /// RGB / 255 (FAN-Trans, PIAP).
    Unit,
    /// Grayscale replicated to 3 channels, ImageNet mean/std (TransAU).
    GrayImageNet,
    /// (RGB / 255 - 0.5) / 0.5 (insightface IResNet).
    PlusMinusOne,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputSpec {
    pub size: usize,
    pub norm: InputNorm,
}

impl InputSpec {
    /// Square crops of side `size` -> the model's input tensor.
    pub fn to_tensor(&self, crops: &[RgbImage], device: &Device) -> Result<Tensor<4>, CoreError> {
        let s = self.size;
        if let Some(c) = crops.iter().find(|c| c.width() as usize != s || c.height() as usize != s) {
            return Err(CoreError::Model(format!("crop is {}x{}, the model takes {s}x{s}", c.width(), c.height())));
        }
        let (scale, off) = match self.norm {
            InputNorm::Unit => (1.0 / 255.0, 0.0),
            InputNorm::PlusMinusOne => (2.0 / 255.0, -1.0),
            InputNorm::GrayImageNet => {
                let mut data = Vec::with_capacity(crops.len() * 3 * s * s);
                for c in crops {
                    // ITU-R 601 luma, as `image`'s to_luma8 does.
                    let gray: Vec<f32> = c
                        .as_raw()
                        .chunks_exact(3)
                        .map(|p| (0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32).round() / 255.0)
                        .collect();
                    for (m, sd) in [(0.485, 0.229), (0.456, 0.224), (0.406, 0.225)] {
                        data.extend(gray.iter().map(|g| (g - m) / sd));
                    }
                }
                return Ok(Tensor::from_data(TensorData::new(data, [crops.len(), 3, s, s]), device));
            }
        };
        let hwc: Vec<Vec<f32>> = crops.iter().map(|c| c.as_raw().iter().map(|&v| v as f32).collect()).collect();
        Ok(crate::frame::crops_to_tensor(&hwc, s, scale, off, device))
    }
}

/// The network of each architecture; a burn Module, so the trainer can move
/// it to an autodiff device and step an optimizer over it.
#[derive(Module, Debug)]
pub enum Net {
    FanTrans(FanTrans),
    Transau(TransAu),
    Piap(Piap),
    LrpArlFf(LrpArlFf),
}

impl Net {
    /// The deployed forward pass of whichever architecture this is.
    pub fn forward(&self, x: Tensor<4>, trace: &mut Trace) -> AuOutput {
        match self {
            Net::FanTrans(m) => m.forward(x, trace),
            Net::Transau(m) => m.forward(x, trace),
            Net::Piap(m) => m.forward(x, trace),
            Net::LrpArlFf(m) => m.forward(x, trace),
        }
    }
}

/// A built model: spec + network, on one device.
#[derive(Debug)]
pub struct AuModel {
    pub spec: ModelSpec,
    pub net: Net,
    /// Where the weights came from (file path, or "random init").
    pub source: String,
}

impl AuModel {
    /// A model with freshly initialised weights.
    pub fn new(spec: ModelSpec, device: &Device) -> Result<Self, CoreError> {
        spec.validate()?;
        let n = spec.aus.len();
        let net = match &spec.arch {
            ArchConfig::FanTrans(c) => Net::FanTrans(c.init(n, device)),
            ArchConfig::Transau(c) => Net::Transau(c.init(n, device)),
            ArchConfig::Piap(c) => Net::Piap(c.init(n, device)),
            ArchConfig::LrpArlFf(c) => Net::LrpArlFf(c.init(n, device)),
        };
        Ok(Self { spec, net, source: "random init".into() })
    }

    pub fn kind(&self) -> ModelKind {
        self.spec.kind()
    }

    pub fn aus(&self) -> &[String] {
        &self.spec.aus
    }

    pub fn num_params(&self) -> usize {
        match &self.net {
            Net::FanTrans(m) => m.num_params(),
            Net::Transau(m) => m.num_params(),
            Net::Piap(m) => m.num_params(),
            Net::LrpArlFf(m) => m.num_params(),
        }
    }

    pub fn forward(&self, x: Tensor<4>, trace: &mut Trace) -> AuOutput {
        self.net.forward(x, trace)
    }

    /// Crops -> per-face AU probabilities (one row per crop).
    pub fn predict(&self, crops: &[RgbImage], device: &Device) -> Result<Vec<Vec<f32>>, CoreError> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        let x = self.spec.input().to_tensor(crops, device)?;
        let out = self.forward(x, &mut Trace::none());
        let n = self.spec.aus.len();
        let probs = out
            .probs
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| CoreError::Model(format!("reading probabilities: {e:?}")))?;
        Ok(probs.chunks(n).map(|c| c.to_vec()).collect())
    }

    /// Conv layers an explainer may take activations from, best first.
    pub fn cam_layers(&self) -> Vec<String> {
        match (&self.net, &self.spec.arch) {
            (Net::FanTrans(_), _) => FanTrans::CAM_LAYERS.iter().map(|s| s.to_string()).collect(),
            (Net::Transau(_), ArchConfig::Transau(c)) => TransAu::cam_layers(c),
            (Net::Piap(m), _) => m.cam_layers(),
            (Net::LrpArlFf(_), _) => LrpArlFf::CAM_LAYERS.iter().map(|s| s.to_string()).collect(),
            _ => Vec::new(),
        }
    }
}

/// The files a user points a model at; all optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct ModelFiles<'a> {
    /// A JSON [`ModelSpec`] (default: the paper's full-size configuration).
    pub config: Option<&'a std::path::Path>,
    /// An auscope burnpack file (.bpk, carries its own config) or a PyTorch
    /// checkpoint of the whole model.
    pub weights: Option<&'a std::path::Path>,
    /// A PyTorch checkpoint of the backbone alone.
    pub backbone_weights: Option<&'a std::path::Path>,
    /// A key table for checkpoints from other code ([`weights::read_key_map`]).
    pub key_map: Option<&'a std::path::Path>,
}

/// Prefix of [`AuModel::source`] for the shipped demo weights.
pub const DEMO_SOURCE: &str = "demo weights";

/// The shipped default weights of an architecture.
pub fn default_weights(kind: ModelKind) -> &'static crate::embedded::EmbeddedWeights {
    use crate::embedded::*;
    match kind {
        ModelKind::FanTrans => &AU_FAN_TRANS,
        ModelKind::Transau => &AU_TRANSAU,
        ModelKind::Piap => &AU_PIAP,
        ModelKind::LrpArlFf => &AU_LRP_ARL_FF,
    }
}

/// The shipped demo weights of an architecture (tiny configuration, trained
/// on blendshape-teacher pseudo-labels; see its model card).
pub fn open_default(kind: ModelKind, device: &Device) -> Result<AuModel, CoreError> {
    let w = default_weights(kind);
    weights::load_static(w.bpk, &format!("{DEMO_SOURCE} ({}, embedded)", w.folder), Some(kind), device)
}

/// Build the model a user asked for from its files; with no files at all,
/// the shipped demo weights.
pub fn open_model(kind: ModelKind, files: ModelFiles, device: &Device) -> Result<AuModel, CoreError> {
    if files.weights.is_none() && files.config.is_none() && files.backbone_weights.is_none() {
        return open_default(kind, device);
    }
    let key_map = match files.key_map {
        Some(p) => weights::read_key_map(p)?,
        None => Vec::new(),
    };
    let is_bpk = |p: &std::path::Path| p.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("bpk"));
    let mut model = match files.weights {
        Some(w) if is_bpk(w) => weights::load(w, Some(kind), device)?,
        _ => {
            let spec = match files.config {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| CoreError::Io { path: path.to_path_buf(), reason: e.to_string() })?;
                    let spec = ModelSpec::from_json(&text)
                        .map_err(|e| CoreError::Model(format!("{}: {e}", path.display())))?;
                    if spec.kind() != kind {
                        return Err(CoreError::Model(format!(
                            "{}: a {} config, not {}",
                            path.display(),
                            spec.kind().title(),
                            kind.title()
                        )));
                    }
                    spec
                }
                None => ModelSpec::paper(kind),
            };
            let mut model = AuModel::new(spec, device)?;
            if let Some(w) = files.weights {
                weights::import_pytorch_mapped(&mut model, w, weights::Part::Whole, &key_map)?;
            }
            model
        }
    };
    if let Some(b) = files.backbone_weights {
        let before = model.source.clone();
        weights::import_pytorch_mapped(&mut model, b, weights::Part::Backbone, &key_map)?;
        model.source = format!("{before} + backbone {}", b.display());
    }
    Ok(model)
}
