//! Weights I/O: burnpack files that carry their [`ModelSpec`], and PyTorch
//! checkpoints (.safetensors, .pth/.pt) imported through key tables.
//! Any mismatch (missing keys, unexpected keys, wrong shapes) is one error
//! listing them all.

use std::path::Path;

use burn::store::{
    ApplyError, ApplyResult, BurnToPyTorchAdapter, BurnpackStore, KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};
use burn::tensor::Device;

use super::backbones::iresnet::IResNet;
use super::backbones::resnet::ResNet;
use super::fan::Fan;
use super::transau::TransAuBackbone;
use super::transformer::PostNormLayer;
use super::{ArchConfig, AuModel, ModelKind, ModelSpec, Net};
use crate::error::CoreError;

const SPEC_KEY: &str = "auscope.spec";

/// Which part of a model a PyTorch checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The whole model, as laid out by `tools/model_reference.py`.
    Whole,
    /// Only the pre-trained backbone, as its reference library saves it:
    /// face-alignment FAN (FAN-Trans), torchvision Inception3 / ResNet /
    /// EfficientNet (TransAU, PIAP), insightface IResNet (LRP-ARL-FF).
    Backbone,
}

fn weights_err(path: &Path, msg: impl std::fmt::Display) -> CoreError {
    CoreError::Weights(format!("{}: {msg}", path.display()))
}

/// Save in burnpack format with the spec in the metadata.
pub fn save(model: &AuModel, path: &Path) -> Result<(), CoreError> {
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .overwrite(true)
        .metadata(SPEC_KEY, serde_json::to_string(&model.spec).unwrap_or_default());
    save_net(&model.net, &mut store).map_err(|e| weights_err(path, format!("cannot write: {e}")))
}

fn save_net<S: burn::store::ModuleStore>(net: &Net, store: &mut S) -> Result<(), S::Error> {
    match net {
        Net::FanTrans(m) => m.save_into(store),
        Net::Transau(m) => m.save_into(store),
        Net::Piap(m) => m.save_into(store),
        Net::LrpArlFf(m) => m.save_into(store),
    }
}

/// The spec stored in a burnpack weights file.
pub fn read_spec(path: &Path) -> Result<ModelSpec, CoreError> {
    if !path.exists() {
        return Err(weights_err(path, "no such file"));
    }
    let reader = burn::store::burn_pack::Reader::from_file(path)
        .map_err(|e| weights_err(path, format!("not an auscope weights file (burnpack), or truncated: {e}")))?;
    spec_in(&reader, path)
}

fn spec_in(reader: &burn::store::burn_pack::Reader, path: &Path) -> Result<ModelSpec, CoreError> {
    let json = reader
        .metadata()
        .get(SPEC_KEY)
        .ok_or_else(|| weights_err(path, "a burnpack file without an auscope model spec"))?;
    ModelSpec::from_json(json).map_err(|e| weights_err(path, e))
}

/// `expect` rejects weights of another model.
fn check_kind(spec: &ModelSpec, expect: Option<ModelKind>, path: &Path) -> Result<(), CoreError> {
    match expect {
        Some(k) if spec.kind() != k => Err(weights_err(
            path,
            format!("these are {} weights, not {} weights", spec.kind().title(), k.title()),
        )),
        _ => Ok(()),
    }
}

/// Build `spec` and fill it from a burnpack store; every missing, extra or
/// misshaped tensor is an error naming `path`.
fn load_store(spec: ModelSpec, store: BurnpackStore, path: &Path, source: String, device: &Device) -> Result<AuModel, CoreError> {
    let mut model = AuModel::new(spec, device)?;
    let mut store = store.allow_partial(true).validate(false);
    let result = apply(&mut model.net, &mut store).map_err(|e| weights_err(path, format!("unreadable: {e}")))?;
    check_scoped(path, &result, &[], &[])?;
    model.source = source;
    Ok(model)
}

/// Load a burnpack weights file; `expect` rejects a file of another model.
pub fn load(path: &Path, expect: Option<ModelKind>, device: &Device) -> Result<AuModel, CoreError> {
    let spec = read_spec(path)?;
    check_kind(&spec, expect, path)?;
    load_store(spec, BurnpackStore::from_file(path).auto_extension(false), path, path.display().to_string(), device)
}

/// Load burnpack bytes held in the binary (the shipped default weights);
/// `label` names them in errors and becomes the model's source.
pub fn load_static(bytes: &'static [u8], label: &str, expect: Option<ModelKind>, device: &Device) -> Result<AuModel, CoreError> {
    let path = Path::new(label);
    // A copy, not `from_static`: include_bytes! data is only byte-aligned,
    // and zero-copy f32 views of it panic.
    let owned = || burn::tensor::Bytes::from_bytes_vec(bytes.to_vec());
    let reader = burn::store::burn_pack::Reader::from_bytes(owned())
        .map_err(|e| weights_err(path, format!("not an auscope weights file (burnpack): {e}")))?;
    let spec = spec_in(&reader, path)?;
    check_kind(&spec, expect, path)?;
    load_store(spec, BurnpackStore::from_bytes(Some(owned())), path, label.to_string(), device)
}

/// A copy of a model with fresh parameter identities (a second network of
/// the same weights, e.g. PIAP-DF's student next to its teacher).
pub fn duplicate(model: &AuModel, device: &Device) -> Result<AuModel, CoreError> {
    let path = Path::new("(in memory)");
    let mut out = BurnpackStore::from_bytes(None).metadata(SPEC_KEY, serde_json::to_string(&model.spec).unwrap_or_default());
    save_net(&model.net, &mut out).map_err(|e| weights_err(path, e))?;
    let bytes = out.get_bytes().map_err(|e| weights_err(path, e))?;
    load_store(model.spec.clone(), BurnpackStore::from_bytes(Some(bytes)), path, model.source.clone(), device)
}

fn apply<S: burn::store::ModuleStore>(net: &mut Net, store: &mut S) -> Result<ApplyResult, S::Error> {
    match net {
        Net::FanTrans(m) => m.load_from(store),
        Net::Transau(m) => m.load_from(store),
        Net::Piap(m) => m.load_from(store),
        Net::LrpArlFf(m) => m.load_from(store),
    }
}

/// Prefix of the backbone inside each model.
fn backbone_prefix(spec: &ModelSpec) -> &'static str {
    match &spec.arch {
        ArchConfig::FanTrans(_) => "fan.",
        ArchConfig::Transau(c) => match c.backbone {
            TransAuBackbone::InceptionV3(_) => "inception.",
            TransAuBackbone::Resnet(_) => "resnet.",
            TransAuBackbone::Efficientnet(_) => "efficientnet.",
        },
        ArchConfig::Piap(_) => "encoder.",
        ArchConfig::LrpArlFf(_) => "backbone.",
    }
}

/// PyTorch key -> burn path, for a model whose backbone sits at `prefix`.
pub fn pytorch_remap(spec: &ModelSpec, prefix: &str) -> Vec<(String, String)> {
    let mut v = match &spec.arch {
        ArchConfig::FanTrans(c) => Fan::pytorch_remap(&c.fan, prefix),
        ArchConfig::Transau(c) => match &c.backbone {
            TransAuBackbone::InceptionV3(_) => Vec::new(),
            TransAuBackbone::Resnet(_) => ResNet::pytorch_remap(prefix),
            TransAuBackbone::Efficientnet(e) => e.pytorch_remap(prefix),
        },
        ArchConfig::Piap(c) => c.encoder.pytorch_remap(prefix),
        ArchConfig::LrpArlFf(_) => IResNet::pytorch_remap(prefix),
    };
    v.extend(PostNormLayer::pytorch_remap());
    v
}

/// Keys a reference checkpoint has that the model does not use: BN counters,
/// and the classifier heads / late stages of ImageNet backbones we cut.
pub fn ignorable(spec: &ModelSpec, prefix: &str) -> Vec<String> {
    let mut v = vec![r"num_batches_tracked$".to_string()];
    let p = regex::escape(prefix);
    match &spec.arch {
        ArchConfig::Transau(c) => match &c.backbone {
            TransAuBackbone::InceptionV3(_) => {
                v.push(format!(r"^{p}(AuxLogits|Mixed_7[abc]|fc)\."));
            }
            TransAuBackbone::Resnet(r) => {
                v.push(format!(r"^{p}fc\."));
                for s in r.stages + 1..=4 {
                    v.push(format!(r"^{p}layer{s}\."));
                }
            }
            TransAuBackbone::Efficientnet(e) => {
                // Matched after remapping, so in our names.
                v.push(format!(r"^{p}classifier\."));
                v.push(format!(r"^{p}head\."));
                for s in e.stages..7 {
                    v.push(format!(r"^{p}stages\.{s}\."));
                }
            }
        },
        ArchConfig::Piap(_) => v.push(format!(r"^{p}classifier\.")),
        _ => {}
    }
    v
}

/// Import a PyTorch checkpoint (.safetensors, .pth, .pt) into `model`.
pub fn import_pytorch(model: &mut AuModel, path: &Path, part: Part) -> Result<(), CoreError> {
    import_pytorch_mapped(model, path, part, &[])
}

/// [`import_pytorch`] with the user's own key table applied first: for
/// checkpoints from other code bases (e.g. `[["^module\\.", ""]]` for a
/// DataParallel checkpoint, or renamed submodules).
pub fn import_pytorch_mapped(
    model: &mut AuModel,
    path: &Path,
    part: Part,
    key_map: &[(String, String)],
) -> Result<(), CoreError> {
    let prefix = backbone_prefix(&model.spec);
    let mut patterns = key_map.to_vec();
    if part == Part::Backbone {
        patterns.push(("^".to_string(), prefix.to_string()));
    }
    patterns.extend(pytorch_remap(&model.spec, prefix));
    let ignore = ignorable(&model.spec, prefix);
    let scope: Vec<&str> = if part == Part::Backbone { vec![prefix] } else { Vec::new() };
    match &mut model.net {
        Net::FanTrans(m) => import_module(m, path, &patterns, &ignore, &scope),
        Net::Transau(m) => import_module(m, path, &patterns, &ignore, &scope),
        Net::Piap(m) => import_module(m, path, &patterns, &ignore, &scope),
        Net::LrpArlFf(m) => import_module(m, path, &patterns, &ignore, &scope),
    }?;
    model.source = path.display().to_string();
    Ok(())
}

/// Import a PyTorch checkpoint into any module: keys are rewritten by
/// `patterns` (regex, replacement) in order; unused keys matching `ignore`
/// are fine; only missing keys under `scope` prefixes count (all if empty).
pub fn import_module<M: ModuleSnapshot>(
    module: &mut M,
    path: &Path,
    patterns: &[(String, String)],
    ignore: &[String],
    scope: &[&str],
) -> Result<(), CoreError> {
    if !path.exists() {
        return Err(weights_err(path, "no such file"));
    }
    let remapper = KeyRemapper::from_patterns(patterns.to_vec())
        .map_err(|e| CoreError::Weights(format!("key table: {e}")))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let result = match ext.as_str() {
        "safetensors" => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .remap(remapper)
                .allow_partial(true)
                .validate(false);
            module
                .load_from(&mut store)
                .map_err(|e| weights_err(path, format!("not a readable safetensors file: {e}")))?
        }
        "pth" | "pt" | "bin" | "ckpt" => {
            let mut store = PytorchStore::from_file(path)
                .remap(remapper)
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false);
            module
                .load_from(&mut store)
                .map_err(|e| weights_err(path, format!("not a readable PyTorch checkpoint: {e}")))?
        }
        _ => return Err(weights_err(path, "PyTorch weights must be .safetensors, .pth or .pt")),
    };
    let ignore: Vec<regex::Regex> = ignore.iter().filter_map(|r| regex::Regex::new(r).ok()).collect();
    check_scoped(path, &result, &ignore, scope)?;
    if result.applied.is_empty() {
        return Err(weights_err(path, "no tensor in the file matches the model"));
    }
    Ok(())
}

/// One error listing every missing, unexpected and mis-shaped tensor.
/// `scope`: only missing keys under these prefixes count.
fn check_scoped(path: &Path, r: &ApplyResult, ignore: &[regex::Regex], scope: &[&str]) -> Result<(), CoreError> {
    let missing: Vec<&str> = r
        .missing
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| scope.is_empty() || scope.iter().any(|s| p.starts_with(s)))
        .collect();
    let unused: Vec<&str> =
        r.unused.iter().map(String::as_str).filter(|k| !ignore.iter().any(|re| re.is_match(k))).collect();
    let shapes: Vec<String> = r
        .errors
        .iter()
        .map(|e| match e {
            ApplyError::ShapeMismatch { path, expected, found } => {
                format!("{path}: model {:?}, file {:?}", expected.as_slice(), found.as_slice())
            }
            other => format!("{other:?}"),
        })
        .collect();
    if missing.is_empty() && unused.is_empty() && shapes.is_empty() {
        return Ok(());
    }
    let list = |items: &[&str]| {
        let shown: Vec<&str> = items.iter().take(12).copied().collect();
        let more = items.len().saturating_sub(shown.len());
        if more > 0 { format!("{} (and {more} more)", shown.join(", ")) } else { shown.join(", ") }
    };
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("{} missing: {}", missing.len(), list(&missing)));
    }
    if !unused.is_empty() {
        parts.push(format!("{} unexpected: {}", unused.len(), list(&unused)));
    }
    if !shapes.is_empty() {
        let s: Vec<&str> = shapes.iter().map(String::as_str).collect();
        parts.push(format!("{} wrong shape: {}", shapes.len(), list(&s)));
    }
    Err(weights_err(path, format!("weights do not fit this model; {}", parts.join("; "))))
}

/// A key table file: JSON `[["regex", "replacement"], ...]`.
pub fn read_key_map(path: &Path) -> Result<Vec<(String, String)>, CoreError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CoreError::Io { path: path.to_path_buf(), reason: e.to_string() })?;
    let pairs: Vec<(String, String)> = serde_json::from_str(&text)
        .map_err(|e| weights_err(path, format!("a key map is [[\"regex\", \"replacement\"], ...]: {e}")))?;
    for (from, _) in &pairs {
        regex::Regex::new(from).map_err(|e| weights_err(path, format!("bad regex {from:?}: {e}")))?;
    }
    Ok(pairs)
}

/// Write the weights as a PyTorch-layout safetensors file (linear weights
/// [out, in], norm weight/bias), keyed by auscope's module paths: what
/// [`Part::Whole`] imports, and what a PyTorch port of these modules loads.
pub fn export_pytorch(model: &AuModel, path: &Path) -> Result<(), CoreError> {
    let mut store = SafetensorsStore::from_file(path)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata(SPEC_KEY, serde_json::to_string(&model.spec).unwrap_or_default());
    save_net(&model.net, &mut store).map_err(|e| weights_err(path, format!("cannot write: {e}")))
}

/// Parameter count of a freshly built spec (for the model card/tests).
pub fn count_params(spec: &ModelSpec, device: &Device) -> Result<usize, CoreError> {
    Ok(AuModel::new(spec.clone(), device)?.num_params())
}

