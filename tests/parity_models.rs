//! Parity of the burn model zoo with the PyTorch references.
//!
//! `tools/model_reference.py` filled each reference module from a generator
//! keyed by tensor name and saved the input and outputs. Here the same
//! generator rebuilds those weights, writes them as a PyTorch-layout
//! safetensors file under the reference's own key names, imports it through
//! the app's key tables, and compares outputs: max |burn - torch| must be
//! within 1e-4 of max |torch|.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use auscope_core::models::backbones::efficientnet::EfficientNetConfig;
use auscope_core::models::backbones::inception::InceptionConfig;
use auscope_core::models::backbones::iresnet::{IResNet, IResNetConfig};
use auscope_core::models::backbones::resnet::{ResNet, ResNetConfig};
use auscope_core::models::blocks::Trace;
use auscope_core::models::fan::{Fan, FanConfig};
use auscope_core::models::transformer::{AttentionDrop, PostNormLayer, PreNormBlock};
use auscope_core::models::weights::import_module;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};

const TOL: f32 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xCBF29CE484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001B3);
    }
    h
}

/// The generator of tools/model_reference.py: SplitMix64 over FNV-1a(name)
/// plus the index, 24 bits -> [0, 1), then offset + scale * (2u - 1) in f64.
fn values(name: &str, n: usize, offset: f64, scale: f64) -> Vec<f32> {
    let h = fnv1a64(name);
    (1..=n as u64)
        .map(|i| {
            let mut z = h.wrapping_add(i.wrapping_mul(0x9E3779B97F4A7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
            z ^= z >> 31;
            let u = (z >> 40) as f64 / (1u64 << 24) as f64;
            (offset + scale * (2.0 * u - 1.0)) as f32
        })
        .collect()
}

struct Case {
    input_shape: Vec<usize>,
    refs: HashMap<String, (Vec<usize>, Vec<f32>)>,
    input: Vec<f32>,
    weights: PathBuf,
    _dir: tempdir::Dir,
}

mod tempdir {
    use std::path::{Path, PathBuf};
    pub struct Dir(PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Self {
            // Unique per call: tests run in parallel and several use the same
            // case; a shared folder was removed under another test's feet.
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("auscope-parity-{tag}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Regenerate the reference weights of `name` into a safetensors file;
/// `edit` may drop, rename or reshape entries (for the error tests).
fn case_with(name: &str, edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> Case {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join(format!("{name}.json"))).expect("fixture json"))
            .expect("json");
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = meta["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            let key = k[0].as_str().expect("name").to_string();
            let shape: Vec<usize> = k[1].as_array().expect("shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect();
            let n = shape.iter().product::<usize>().max(1);
            let v = values(&key, n, k[2].as_f64().expect("offset"), k[3].as_f64().expect("scale"));
            (key, shape, v)
        })
        .collect();
    edit(&mut tensors);
    let dir = tempdir::Dir::new(name);
    let weights = dir.path().join(format!("{name}.safetensors"));
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, s, v)| (k.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(k, s, b)| (k.clone(), TensorView::new(Dtype::F32, s.clone(), b).expect("view")))
        .collect();
    safetensors::serialize_to_file(views, None, &weights).expect("write safetensors");

    let raw = std::fs::read(fixtures().join(format!("{name}.safetensors"))).expect("fixture outputs");
    let st = SafeTensors::deserialize(&raw).expect("safetensors");
    let mut refs = HashMap::new();
    for (k, v) in st.tensors() {
        let data: Vec<f32> = v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        refs.insert(k.to_string(), (v.shape().to_vec(), data));
    }
    let input_shape: Vec<usize> =
        meta["input_shape"].as_array().expect("input shape").iter().map(|d| d.as_u64().expect("dim") as usize).collect();
    let input = refs.get("input").expect("input").1.clone();
    let expect = values("input", input.len(), 0.0, 1.0);
    assert_eq!(input, expect, "{name}: the Rust generator must reproduce the Python one bit for bit");
    Case { input_shape, refs, input, weights, _dir: dir }
}

fn case(name: &str) -> Case {
    case_with(name, |_| {})
}

fn device() -> Device {
    Device::flex()
}

impl Case {
    fn input4(&self) -> Tensor<4> {
        let s = &self.input_shape;
        Tensor::from_data(TensorData::new(self.input.clone(), [s[0], s[1], s[2], s[3]]), &device())
    }
    fn input3(&self) -> Tensor<3> {
        let s = &self.input_shape;
        Tensor::from_data(TensorData::new(self.input.clone(), [s[0], s[1], s[2]]), &device())
    }
    fn check<const D: usize>(&self, name: &str, out: Tensor<D>) {
        let (shape, expect) = &self.refs[name];
        assert_eq!(&out.dims().to_vec(), shape, "{name}: shape");
        let got: Vec<f32> = out.into_data().try_to_vec::<f32>().expect("f32 output");
        let max_ref = expect.iter().fold(0f32, |m, v| m.max(v.abs()));
        let max_diff = got.iter().zip(expect).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let rel = max_diff / max_ref.max(1e-12);
        println!("{name}: max |diff| {max_diff:.3e}, max |ref| {max_ref:.3e}, relative {rel:.3e}");
        assert!(rel <= TOL, "{name}: relative error {rel:.3e} > {TOL:e}");
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn fan_two_stacks_matches_face_alignment() {
    let c = case("fan2");
    let cfg = FanConfig { stacks: 2, depth: 4, features: 256, landmarks: 68 };
    let mut fan = cfg.init(&device());
    import_module(&mut fan, &c.weights, &Fan::pytorch_remap(&cfg, ""), &strs(&["num_batches_tracked$"]), &[])
        .expect("import face-alignment keys");
    let out = fan.forward(c.input4(), &mut Trace::none());
    c.check("heatmaps0", out.heatmaps[0].clone());
    c.check("heatmaps1", out.heatmaps[1].clone());
}

#[test]
fn resnet50_trunk_matches_torchvision() {
    let c = case("resnet50_layer3");
    let mut m = ResNetConfig::resnet50(3).init(3, &device());
    import_module(&mut m, &c.weights, &ResNet::pytorch_remap(""), &strs(&["num_batches_tracked$", r"^fc\.", r"^layer4\."]), &[])
        .expect("import torchvision resnet50");
    c.check("features", m.forward(c.input4(), "", &mut Trace::none()));
}

#[test]
fn inception_v3_trunk_matches_torchvision() {
    let c = case("inception_v3_mixed6e");
    let mut m = InceptionConfig { transform_input: false }.init(&device());
    import_module(&mut m, &c.weights, &[], &strs(&["num_batches_tracked$", r"^(AuxLogits|Mixed_7[abc]|fc)\."]), &[])
        .expect("import torchvision inception_v3");
    c.check("features", m.forward(c.input4(), "", &mut Trace::none()));
}

#[test]
fn efficientnet_b1_matches_torchvision() {
    let c = case("efficientnet_b1");
    let cfg = EfficientNetConfig::b1(3);
    let mut m = cfg.init(&device());
    import_module(&mut m, &c.weights, &cfg.pytorch_remap(""), &strs(&["num_batches_tracked$", r"^classifier\."]), &[])
        .expect("import torchvision efficientnet_b1");
    c.check("features", m.forward(c.input4(), "", &mut Trace::none()));
}

#[test]
fn efficientnet_b0_trunk_matches_torchvision() {
    let c = case("efficientnet_b0_stage5");
    let cfg = EfficientNetConfig::b0(5);
    let mut m = cfg.init(&device());
    let ignore = strs(&["num_batches_tracked$", r"^classifier\.", r"^head\.", r"^stages\.[56]\."]);
    import_module(&mut m, &c.weights, &cfg.pytorch_remap(""), &ignore, &[]).expect("import torchvision efficientnet_b0");
    c.check("features", m.forward(c.input4(), "", &mut Trace::none()));
}

#[test]
fn iresnet18_matches_insightface() {
    let c = case("iresnet18");
    let cfg = IResNetConfig::depth(18).expect("iresnet18");
    let mut m = cfg.init(&device());
    import_module(&mut m, &c.weights, &IResNet::pytorch_remap(""), &strs(&["num_batches_tracked$"]), &[])
        .expect("import insightface iresnet");
    let (fmap, emb) = m.forward(c.input4(), "", &mut Trace::none());
    c.check("fmap", fmap);
    c.check("embedding", emb);
}

#[test]
fn fan_trans_block_with_learned_attention_drop_matches_reference() {
    let c = case("fan_trans_block");
    let mut m = PreNormBlock::new(128, 12, AttentionDrop::Learned, &device());
    import_module(&mut m, &c.weights, &[], &[], &[]).expect("import block");
    let (tokens, maps) = m.forward(c.input3());
    c.check("tokens", tokens);
    c.check("attention", maps.attention);
    // The generated mask logits are in [-2, 2]: some connections are dropped.
    let mask: Vec<f32> = maps.mask.expect("learned mask").into_data().try_to_vec::<f32>().expect("mask");
    let dropped = mask.iter().filter(|v| **v == 0.0).count();
    assert!(dropped > 0 && dropped < mask.len(), "mask drops {dropped} of {}", mask.len());
}

#[test]
fn transau_encoder_layer_with_relative_positions_matches_reference() {
    let c = case("transau_rel_layer");
    let mut m = PostNormLayer::new(64, 4, 128, 12, Some(11), &device());
    import_module(&mut m, &c.weights, &[], &[], &[]).expect("import layer");
    let (tokens, maps) = m.forward(c.input3());
    c.check("tokens", tokens);
    c.check("attention", maps.attention);
}

#[test]
fn full_size_parameter_counts_match_the_references() {
    let counts: HashMap<String, usize> =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("params.json")).expect("params.json")).expect("json");
    let d = device();
    let ours = [
        ("fan4", FanConfig::fan4().init(&d).num_params()),
        ("resnet50_layer3", ResNetConfig::resnet50(3).init(3, &d).num_params()),
        ("inception_v3_mixed6e", InceptionConfig { transform_input: false }.init(&d).num_params()),
        ("efficientnet_b1_features", EfficientNetConfig::b1(3).init(&d).num_params()),
        ("efficientnet_b0_stage5", EfficientNetConfig::b0(5).init(&d).num_params()),
        ("iresnet50", IResNetConfig::depth(50).expect("50").init(&d).num_params()),
        ("iresnet100", IResNetConfig::depth(100).expect("100").init(&d).num_params()),
    ];
    for (name, n) in ours {
        assert_eq!(n, counts[name], "{name}: burn {n} vs PyTorch {}", counts[name]);
    }
}

#[test]
fn missing_extra_and_misshaped_keys_are_listed_in_one_error() {
    let c = case_with("iresnet18", |t| {
        t.retain(|(k, ..)| k != "layer1.0.conv1.weight");
        t.push(("head.weight".into(), vec![2, 2], vec![0.0; 4]));
        if let Some(e) = t.iter_mut().find(|(k, ..)| k == "fc.bias") {
            e.1 = vec![7];
            e.2 = vec![0.0; 7];
        }
    });
    let mut m = IResNetConfig::depth(18).expect("18").init(&device());
    let err = import_module(&mut m, &c.weights, &IResNet::pytorch_remap(""), &strs(&["num_batches_tracked$"]), &[])
        .expect_err("must not load")
        .to_string();
    println!("{err}");
    assert!(err.contains("1 missing: layer1.0.conv1.weight"), "{err}");
    assert!(err.contains("1 unexpected: head.weight"), "{err}");
    assert!(err.contains("1 wrong shape: fc.bias"), "{err}");
}

#[test]
fn truncated_and_foreign_files_give_clear_errors() {
    let c = case("fan_trans_block");
    let bytes = std::fs::read(&c.weights).expect("weights");
    let cut = c.weights.with_file_name("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let mut m = PreNormBlock::new(128, 12, AttentionDrop::Learned, &device());
    let err = import_module(&mut m, &cut, &[], &[], &[]).expect_err("truncated").to_string();
    assert!(err.contains("cut.safetensors") && err.contains("not a readable safetensors file"), "{err}");

    // A FAN checkpoint offered to an IResNet: nothing fits.
    let fan = case("fan2");
    let mut ir = IResNetConfig::tiny().init(&device());
    let err = import_module(&mut ir, &fan.weights, &[], &[], &[]).expect_err("foreign").to_string();
    assert!(err.contains("missing") && err.contains("unexpected"), "{err}");

    let txt = c.weights.with_file_name("weights.txt");
    std::fs::write(&txt, "hello").expect("write");
    let err = import_module(&mut m, &txt, &[], &[], &[]).expect_err("extension").to_string();
    assert!(err.contains(".safetensors, .pth or .pt"), "{err}");
}

#[test]
fn a_pickled_pth_checkpoint_imports_like_safetensors() {
    let c = case("transau_rel_layer");
    let mut m = PostNormLayer::new(64, 4, 128, 12, Some(11), &device());
    import_module(&mut m, &fixtures().join("transau_rel_layer.pth"), &[], &strs(&["num_batches_tracked$"]), &[])
        .expect("import .pth");
    let (tokens, _) = m.forward(c.input3());
    c.check("tokens", tokens);
}

#[test]
fn backbone_checkpoints_import_into_whole_models() {
    use auscope_core::models::weights::{Part, import_pytorch};
    use auscope_core::models::{AuModel, ModelKind, ModelSpec};
    // torchvision EfficientNet-B1 into PIAP's AU encoder (classifier skipped).
    let c = case("efficientnet_b1");
    let mut piap = AuModel::new(ModelSpec::paper(ModelKind::Piap), &device()).expect("PIAP");
    import_pytorch(&mut piap, &c.weights, Part::Backbone).expect("B1 into PIAP");
    let auscope_core::models::Net::Piap(p) = &piap.net else { panic!() };
    c.check("features", p.encoder.forward(c.input4(), "", &mut Trace::none()));

    // A 2-stack face-alignment FAN into FAN-Trans' 4-stack FAN: the missing
    // stacks are listed, nothing else is.
    let fan = case("fan2");
    let mut ft = AuModel::new(ModelSpec::paper(ModelKind::FanTrans), &device()).expect("FAN-Trans");
    let err = import_pytorch(&mut ft, &fan.weights, Part::Backbone).expect_err("2 of 4 stacks").to_string();
    assert!(err.contains("missing: fan.stacks.") && err.contains("fan.stacks.2.") && !err.contains("unexpected"), "{err}");
    assert!(!err.contains("one_to_one"), "only the backbone's keys count as missing: {err}");
}

#[test]
fn a_whole_pytorch_lrp_arl_ff_checkpoint_imports_and_matches() {
    // tools/model_reference.py's LrpArlFf is written as a PyTorch user would
    // (insightface IResNet, ME-GraphAU blocks, nn.TransformerEncoderLayer);
    // its checkpoint loads through the model's own key tables.
    use auscope_core::models::{ModelKind, ModelSpec};
    let (c, model) = whole("lrp_arl_ff_tiny", ModelSpec::tiny(ModelKind::LrpArlFf));
    let out = model.forward(c.input4(), &mut Trace::none());
    c.check("logits", out.logits);
    c.check("lanet", out.maps.lanet_attention.expect("LANet map"));
}

#[test]
fn a_whole_pytorch_piap_checkpoint_imports_and_matches() {
    // Stage-3 PIAP in PyTorch: torchvision EfficientNet features, FC, PI decoder.
    use auscope_core::models::{ModelKind, ModelSpec};
    let (c, model) = whole("piap_stage3_tiny", ModelSpec::tiny(ModelKind::Piap));
    let out = model.forward(c.input4(), &mut Trace::none());
    c.check("logits", out.logits);
    c.check("pi_maps", out.maps.pi_maps.expect("PI maps"));
}

/// Max |a - b| over two equally long slices.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn score_cam_matches_pytorch_grad_cam() {
    // tools/scorecam_reference.py ran pytorch-grad-cam's ScoreCAM on the
    // PyTorch FAN-Trans of the "fan_trans_tiny" case (same generated weights
    // and input), at the FAN's conv4, one target per AU. Our maps stay at
    // the layer's 16x16; pytorch-grad-cam resizes them to the input
    // (cv2.resize, half-pixel bilinear) and min-max normalises again, which
    // we repeat here. They must agree to 1e-3 on the [0, 1] scale.
    use auscope_core::explain::render::upsample;
    use auscope_core::explain::score_cam::model_score_cam;
    use auscope_core::models::{ModelKind, ModelSpec};
    let (c, model) = whole("fan_trans_tiny", ModelSpec::tiny(ModelKind::FanTrans));
    let raw = std::fs::read(fixtures().join("score_cam_fan_trans_tiny.safetensors")).expect("Score-CAM fixture");
    let st = SafeTensors::deserialize(&raw).expect("safetensors");
    let f32s = |name: &str| -> (Vec<usize>, Vec<f32>) {
        let v = st.tensor(name).expect(name);
        (v.shape().to_vec(), v.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    };
    let (shape, want) = f32s("cams");
    assert_eq!(shape, [12, 64, 64]);
    let (_, input) = f32s("input");
    assert_eq!(input[..], c.input[..3 * 64 * 64], "the fixture explains item 0 of the case input");
    let x = c.input4().narrow(0, 0, 1);
    // Batches of 5 over the 32 channels: the last batch is partial.
    let maps = model_score_cam(&model, x, "fan.conv4", 5).expect("score-cam");
    assert_eq!((maps.width, maps.height, maps.labels.len()), (16, 16, 12));
    let mut worst = 0.0f32;
    for au in 0..12 {
        let mut ours = upsample(maps.map(au), 16, 16, 64, 64);
        let (lo, hi) = ours.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        ours.iter_mut().for_each(|v| *v = (*v - lo) / (1e-7 + hi - lo));
        let theirs = &want[au * 4096..(au + 1) * 4096];
        let d = max_abs_diff(&ours, theirs);
        worst = worst.max(d);
        assert!(d <= 1e-3, "AU {}: max |ours - pytorch-grad-cam| = {d}", maps.labels[au]);
    }
    eprintln!("Score-CAM parity: worst max abs difference {worst:.2e}");
}

#[test]
fn a_whole_pytorch_fan_trans_checkpoint_imports_and_matches() {
    // FAN-Trans in PyTorch: face-alignment's FAN blocks, timm-style blocks
    // with the learned attention drop, both classifiers and the ensemble.
    use auscope_core::models::{ModelKind, ModelSpec, Net};
    let (c, model) = whole("fan_trans_tiny", ModelSpec::tiny(ModelKind::FanTrans));
    let Net::FanTrans(ft) = &model.net else { panic!() };
    let out = ft.forward_all(c.input4(), &mut Trace::none());
    c.check("one_to_one", out.one_to_one);
    c.check("one_to_many", out.one_to_many);
    c.check("ensemble", out.ensemble);
    c.check("heatmaps", out.maps.fan_heatmaps.expect("heat-maps"));
}

#[test]
fn a_whole_pytorch_transau_checkpoint_imports_and_matches() {
    // TransAU in PyTorch on torchvision's Inception3 (its unused Mixed_7* and
    // fc are skipped on import), relative-position encoder layers.
    use auscope_core::models::backbones::inception::InceptionConfig;
    use auscope_core::models::transau::{TransAuBackbone, TransAuConfig};
    use auscope_core::models::{ArchConfig, ModelKind, ModelSpec, Net};
    let mut spec = ModelSpec::tiny(ModelKind::Transau);
    spec.arch = ArchConfig::Transau(TransAuConfig {
        backbone: TransAuBackbone::InceptionV3(InceptionConfig { transform_input: false }),
        input_size: 96,
        ..TransAuConfig::tiny()
    });
    let (c, model) = whole("transau_inception_tiny", spec);
    let Net::Transau(ta) = &model.net else { panic!() };
    let out = ta.forward_all(c.input4(), &mut Trace::none());
    c.check("logits", out.logits);
    c.check("attention_logits", out.attention_logits);
    c.check("roi_maps", out.attention_maps);
}

/// Build `spec`, import the whole-model PyTorch checkpoint of fixture `name`.
fn whole(name: &str, spec: auscope_core::models::ModelSpec) -> (Case, auscope_core::models::AuModel) {
    let c = case(name);
    let mut model = auscope_core::models::AuModel::new(spec, &device()).expect("model");
    auscope_core::models::weights::import_pytorch(&mut model, &c.weights, auscope_core::models::weights::Part::Whole)
        .expect("import whole model");
    (c, model)
}
