//! The AU model zoo: every architecture and variant builds from its serde
//! config, returns typed outputs and maps, saves and loads, and rejects
//! weights that are not its own.

use auscope_core::models::fan_trans::FanTransDeploy;
use auscope_core::models::lrp_arl_ff::{Fusion, LrpArlFfConfig};
use auscope_core::models::piap::{PiapConfig, PiapStage};
use auscope_core::models::transau::{TransAuBackbone, TransAuConfig};
use auscope_core::models::transformer::AttentionDrop;
use auscope_core::models::backbones::efficientnet::EfficientNetConfig;
use auscope_core::models::backbones::inception::InceptionConfig;
use auscope_core::models::{ArchConfig, AuModel, ModelKind, ModelSpec, Trace, weights};
use burn::tensor::{Device, Distribution, Tensor};

fn device() -> Device {
    Device::flex()
}

fn input(spec: &ModelSpec, b: usize) -> Tensor<4> {
    let s = spec.input().size;
    Tensor::random([b, 3, s, s], Distribution::Uniform(0.0, 1.0), &device())
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32")
}

fn run(spec: ModelSpec) -> (AuModel, auscope_core::models::AuOutput) {
    let model = AuModel::new(spec.clone(), &device()).expect("build");
    let out = model.forward(input(&spec, 2), &mut Trace::none());
    let n = spec.aus.len();
    assert_eq!(out.logits.dims(), [2, n]);
    let p = values(out.probs.clone());
    assert!(p.iter().all(|v| v.is_finite() && (0.0..=1.0).contains(v)), "{p:?}");
    (model, out)
}

fn tiny(kind: ModelKind) -> ModelSpec {
    ModelSpec::tiny(kind)
}

#[test]
fn fan_trans_returns_heatmaps_attention_and_drop_masks() {
    let (_, out) = run(tiny(ModelKind::FanTrans));
    let hm = out.maps.fan_heatmaps.expect("FAN heat-maps");
    assert_eq!(hm.dims(), [2, 68, 16, 16]);
    // Two branches x 2 blocks, each [B, heads, N_AU, N_AU] with its mask.
    assert_eq!(out.maps.attention.len(), 4);
    for layer in &out.maps.attention {
        assert_eq!(layer.attention.dims(), [2, 1, 12, 12]);
        let mask = values(layer.mask.clone().expect("learned mask"));
        assert!(mask.iter().all(|v| *v == 0.0 || *v == 1.0));
    }
}

#[test]
fn fan_trans_variants_and_branches() {
    for drop in [AttentionDrop::Full, AttentionDrop::Row { keep: 4 }, AttentionDrop::Column { keep: 4 }] {
        for deploy in [FanTransDeploy::OneToOne, FanTransDeploy::OneToMany, FanTransDeploy::Ensemble] {
            let mut spec = tiny(ModelKind::FanTrans);
            if let ArchConfig::FanTrans(c) = &mut spec.arch {
                c.attention_drop = drop;
                c.deploy = deploy;
            }
            let (_, out) = run(spec);
            let layer = &out.maps.attention[0];
            match drop {
                AttentionDrop::Full => assert!(layer.mask.is_none()),
                _ => {
                    // Row/column top-4: each row (column) keeps at least 4 of 12.
                    let m = values(layer.attention.clone());
                    let kept = m.iter().filter(|v| **v > 0.0).count();
                    assert!(kept >= 2 * 4 * 12 && kept < 2 * 12 * 12, "{drop:?}: {kept}");
                }
            }
        }
    }
    // The ensemble weights are a softmax over the two branches.
    let spec = tiny(ModelKind::FanTrans);
    let model = AuModel::new(spec.clone(), &device()).expect("build");
    let auscope_core::models::Net::FanTrans(ft) = &model.net else { panic!() };
    let all = ft.forward_all(input(&spec, 3), &mut Trace::none());
    let w = values(all.ensemble_weights);
    for pair in w.chunks(2) {
        assert!((pair[0] + pair[1] - 1.0).abs() < 1e-5);
    }
    let (z1, z2, e) = (values(all.one_to_one), values(all.one_to_many), values(all.ensemble));
    for i in 0..e.len() {
        let row = i / 12;
        let expect = w[2 * row] * z1[i] + w[2 * row + 1] * z2[i];
        assert!((e[i] - expect).abs() < 1e-4);
    }
}

#[test]
fn transau_returns_one_roi_map_per_au() {
    let (_, out) = run(tiny(ModelKind::Transau));
    let roi = out.maps.roi_attention.expect("ROI maps");
    let [b, n, h, w] = roi.dims();
    assert_eq!((b, n), (2, 12));
    assert!(h >= 2 && h == w);
    assert_eq!(out.maps.attention.len(), 2);
    assert_eq!(out.maps.attention[0].attention.dims(), [2, 4, 12, 12]);
    assert!(out.maps.attention_branch.is_some());
}

#[test]
fn transau_backbone_options() {
    let mut spec = tiny(ModelKind::Transau);
    let ArchConfig::Transau(c) = &mut spec.arch else { panic!() };
    // InceptionV3 (full width: its channel counts are fixed) at a small input.
    *c = TransAuConfig {
        backbone: TransAuBackbone::InceptionV3(InceptionConfig { transform_input: true }),
        input_size: 96,
        ..TransAuConfig::tiny()
    };
    let (_, out) = run(spec.clone());
    assert_eq!(out.maps.roi_attention.expect("maps").dims(), [2, 12, 4, 4]);
    let ArchConfig::Transau(c) = &mut spec.arch else { panic!() };
    c.backbone = TransAuBackbone::Efficientnet(EfficientNetConfig::tiny(3, 5));
    c.input_size = 64;
    let (_, out) = run(spec);
    assert_eq!(out.maps.roi_attention.expect("maps").dims(), [2, 12, 4, 4]);
    assert_eq!(TransAuConfig::paper().feature_side(), 12, "InceptionV3 Mixed_6e at 224 is 12x12");
}

#[test]
fn piap_stages_return_pi_maps() {
    let (_, out) = run(tiny(ModelKind::Piap));
    assert_eq!(out.maps.pi_maps.expect("decoder PI maps").dims(), [2, 12, 64, 64]);
    let spec = ModelSpec { arch: ArchConfig::Piap(PiapConfig::tiny(PiapStage::Stage2)), ..tiny(ModelKind::Piap) };
    let (_, out) = run(spec);
    assert_eq!(out.maps.pi_maps.expect("generator PI maps").dims(), [2, 12, 64, 64]);
    // The AP encoder gives v_P of the AU features' size.
    let mut cfg = PiapConfig::tiny(PiapStage::Stage3);
    cfg.ap_encoder = true;
    let spec = ModelSpec { arch: ArchConfig::Piap(cfg), ..tiny(ModelKind::Piap) };
    let model = AuModel::new(spec.clone(), &device()).expect("build");
    let auscope_core::models::Net::Piap(p) = &model.net else { panic!() };
    let x = input(&spec, 2);
    let v_p = p.ap_features(x.clone()).expect("AP features");
    let v_au = p.forward_all(x, &mut Trace::none()).features;
    assert_eq!(v_p.dims(), v_au.dims());
}

#[test]
fn lrp_arl_ff_both_fusions() {
    let (_, out) = run(tiny(ModelKind::LrpArlFf));
    assert_eq!(out.maps.lanet_attention.expect("LANet").dims(), [2, 1, 2, 2]);
    assert_eq!(out.maps.attention.len(), 2);
    assert_eq!(out.maps.attention[0].attention.dims(), [2, 2, 14, 14], "[weight, backbone, 12 AUs]");
    let w = values(out.maps.fusion_weight.expect("weight"));
    assert!(w.iter().all(|v| (0.0..=1.0).contains(v)));

    let mut cfg = LrpArlFfConfig::tiny();
    cfg.fusion = Fusion::Fixed { weight: 0.3 };
    let spec = ModelSpec { arch: ArchConfig::LrpArlFf(cfg), ..tiny(ModelKind::LrpArlFf) };
    let model = AuModel::new(spec.clone(), &device()).expect("build");
    let auscope_core::models::Net::LrpArlFf(m) = &model.net else { panic!() };
    let all = m.forward_all(input(&spec, 2), &mut Trace::none());
    let (f, b, a) = (values(all.logits), values(all.backbone_logits), values(all.au_logits));
    for i in 0..f.len() {
        assert!((f[i] - (0.3 * b[i] + 0.7 * a[i])).abs() < 1e-4);
    }
    // The per-sample graph links each AU to exactly k neighbours (ties aside).
    let g = values(all.graph);
    for row in g.chunks(12) {
        assert!(row.iter().filter(|v| **v == 1.0).count() >= 3);
    }
}

#[test]
fn every_named_explainer_layer_yields_activations() {
    for kind in ModelKind::ALL {
        let spec = tiny(kind);
        let model = AuModel::new(spec.clone(), &device()).expect("build");
        let layers = model.cam_layers();
        assert!(!layers.is_empty(), "{kind:?}");
        for layer in layers {
            let mut trace = Trace::layer(&layer);
            model.forward(input(&spec, 1), &mut trace);
            let act = trace.activation.unwrap_or_else(|| panic!("{kind:?}: layer {layer} gave nothing"));
            assert_eq!(act.dims()[0], 1);
        }
    }
}

#[test]
fn configs_round_trip_through_json() {
    for kind in ModelKind::ALL {
        for spec in [ModelSpec::paper(kind), ModelSpec::tiny(kind)] {
            let json = spec.to_json();
            assert!(json.contains(&format!("\"arch\": \"{}\"", kind.name())), "{json}");
            assert_eq!(ModelSpec::from_json(&json).expect("parse"), spec);
        }
    }
    let err = ModelSpec::from_json(r#"{"aus":["AU01"],"arch":"fan-trans","config":{"dim":3}}"#).expect_err("bad");
    assert!(err.to_string().contains("model config"), "{err}");
}

#[test]
fn au_list_is_configuration() {
    let mut spec = tiny(ModelKind::Transau);
    spec.aus = auscope_core::models::aus::DISFA.iter().map(|s| s.to_string()).collect();
    let (_, out) = run(spec);
    assert_eq!(out.maps.roi_attention.expect("maps").dims()[1], 8);
}

#[test]
fn burnpack_round_trip_and_wrong_model_errors() {
    let dir = std::env::temp_dir().join(format!("auscope-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for kind in ModelKind::ALL {
        let spec = tiny(kind);
        let model = AuModel::new(spec.clone(), &device()).expect("build");
        let path = dir.join(format!("{}.bpk", kind.name()));
        weights::save(&model, &path).expect("save");
        let loaded = weights::load(&path, Some(kind), &device()).expect("load");
        assert_eq!(loaded.spec, spec);
        let x = input(&spec, 1);
        let a = values(model.forward(x.clone(), &mut Trace::none()).logits);
        let b = values(loaded.forward(x, &mut Trace::none()).logits);
        assert_eq!(a, b, "{kind:?}: outputs after save/load");
    }
    let err = weights::load(&dir.join("piap.bpk"), Some(ModelKind::FanTrans), &device()).expect_err("wrong model");
    assert!(err.to_string().contains("these are PIAP weights, not FAN-Trans weights"), "{err}");

    let bytes = std::fs::read(dir.join("transau.bpk")).expect("read");
    let cut = dir.join("cut.bpk");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).expect("write");
    let err = weights::load(&cut, Some(ModelKind::Transau), &device()).expect_err("truncated").to_string();
    assert!(err.contains("cut.bpk"), "{err}");
    let txt = dir.join("notes.bpk");
    std::fs::write(&txt, "not weights").expect("write");
    let err = weights::load(&txt, None, &device()).expect_err("garbage").to_string();
    assert!(err.contains("not an auscope weights file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pytorch_import_into_a_model_reports_what_does_not_fit() {
    // A burnpack is not a PyTorch checkpoint; a .pth that is not a pickle zip
    // is unreadable; both say so with the file name.
    let dir = std::env::temp_dir().join(format!("auscope-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut model = AuModel::new(tiny(ModelKind::LrpArlFf), &device()).expect("build");
    let pth = dir.join("broken.pth");
    std::fs::write(&pth, b"PK\x03\x04 truncated").expect("write");
    let err = weights::import_pytorch(&mut model, &pth, weights::Part::Backbone).expect_err("broken").to_string();
    assert!(err.contains("broken.pth") && err.contains("not a readable PyTorch checkpoint"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn full_size_models_build() {
    // The paper configurations build and report their size; a FAN-Trans
    // forward at 256x256 runs on the CPU.
    let d = device();
    let counts: Vec<(ModelKind, usize)> = ModelKind::ALL
        .into_iter()
        .map(|k| (k, AuModel::new(ModelSpec::paper(k), &d).expect("build").num_params()))
        .collect();
    for (k, n) in &counts {
        println!("{}: {:.1} M parameters", k.title(), *n as f64 / 1e6);
        assert!(*n > 5_000_000, "{k:?}");
    }
    let spec = ModelSpec::paper(ModelKind::FanTrans);
    let (_, out) = run(spec);
    assert_eq!(out.maps.fan_heatmaps.expect("maps").dims(), [2, 68, 64, 64]);
}


#[test]
fn pytorch_export_and_key_maps_round_trip_whole_models() {
    use auscope_core::models::{ModelFiles, open_model};
    let dir = std::env::temp_dir().join(format!("auscope-export-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for kind in ModelKind::ALL {
        let spec = tiny(kind);
        let model = AuModel::new(spec.clone(), &device()).expect("build");
        let st = dir.join(format!("{}.safetensors", kind.name()));
        weights::export_pytorch(&model, &st).expect("export");

        // As a DataParallel checkpoint would name them: "module." + key.
        let raw = std::fs::read(&st).expect("read");
        let file = safetensors::SafeTensors::deserialize(&raw).expect("parse");
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            file.tensors().into_iter().map(|(k, v)| (format!("module.{k}"), v)).collect();
        let prefixed = dir.join(format!("{}-dp.safetensors", kind.name()));
        safetensors::serialize_to_file(views, None, &prefixed).expect("write");
        let config = dir.join(format!("{}.json", kind.name()));
        std::fs::write(&config, spec.to_json()).expect("config");
        let map = dir.join("map.json");
        std::fs::write(&map, r#"[["^module\\.", ""]]"#).expect("map");

        let files = ModelFiles { config: Some(&config), weights: Some(&prefixed), ..ModelFiles::default() };
        let err = open_model(kind, files, &device()).expect_err("keys need the map").to_string();
        assert!(err.contains("missing") && err.contains("unexpected: module."), "{err}");
        let loaded = open_model(kind, ModelFiles { key_map: Some(&map), ..files }, &device()).expect("import");
        let x = input(&spec, 1);
        let a = values(model.forward(x.clone(), &mut Trace::none()).logits);
        let b = values(loaded.forward(x, &mut Trace::none()).logits);
        let diff = a.iter().zip(&b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(diff < 1e-5, "{kind:?}: export -> import changed the outputs by {diff}");
    }
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"[["(", "x"]]"#).expect("write");
    let err = weights::read_key_map(&bad).expect_err("bad regex").to_string();
    assert!(err.contains("bad regex"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn invalid_configs_are_refused_with_a_reason() {
    let mut spec = tiny(ModelKind::FanTrans);
    if let ArchConfig::FanTrans(c) = &mut spec.arch {
        c.input_size = 72;
    }
    let err = AuModel::new(spec, &device()).expect_err("72 is not a multiple of 16").to_string();
    assert!(err.contains("input_size must be a multiple of 16"), "{err}");
    let mut spec = tiny(ModelKind::Transau);
    spec.aus.clear();
    let err = AuModel::new(spec, &device()).expect_err("no AUs").to_string();
    assert!(err.contains("lists no AUs"), "{err}");
}

#[test]
fn models_give_the_same_answer_on_wgpu() {
    // lavapipe on CI; a hardware GPU where there is one.
    let compute = auscope_core::Compute::init(auscope_core::DeviceChoice::Wgpu)
        .unwrap_or_else(|e| panic!("wgpu must be available (install mesa-vulkan-drivers): {e}"));
    let dir = std::env::temp_dir().join(format!("auscope-wgpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    for kind in ModelKind::ALL {
        let spec = tiny(kind);
        let cpu = AuModel::new(spec.clone(), &device()).expect("build");
        let path = dir.join(format!("{}.bpk", kind.name()));
        weights::save(&cpu, &path).expect("save");
        let gpu = weights::load(&path, Some(kind), &compute.device).expect("load on wgpu");
        let x = input(&spec, 1);
        let data = x.clone().into_data();
        let a = values(cpu.forward(x, &mut Trace::none()).probs);
        let xg = Tensor::<4>::from_data(data, &compute.device);
        let b = values(gpu.forward(xg, &mut Trace::none()).probs);
        let diff = a.iter().zip(&b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(diff < 1e-3, "{kind:?}: wgpu vs cpu probabilities differ by {diff}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
