//! The `auscope` binary as a user runs it.

mod common;

use std::process::Command;

use common::*;

fn auscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_auscope"))
        .args(args)
        .output()
        .expect("run auscope")
}

/// `auscope faces PATH --json --device cpu EXTRA...`, which must succeed; its JSON.
fn faces_json(path: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "faces",
        path.to_str().expect("utf8"),
        "--json",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    let out = auscope(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn faces_json_on_an_image() {
    let path = face_image("multi_face.jpg");
    let v = faces_json(&path, &[]);
    let frames = v["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0]["index"], 0);
    let faces = frames[0]["faces"].as_array().expect("faces");
    assert_eq!(faces.len(), 5);
    for f in faces {
        let b = floats(&f["box"]);
        assert_eq!(b.len(), 4);
        assert!(
            b[2] > 50.0 && b[3] > 50.0 && b[0] >= 0.0 && b[0] + b[2] <= 1000.0,
            "{b:?}"
        );
        assert!(f["score"].as_f64().expect("score") > 0.5);
        let lm = f["landmarks68"].as_array().expect("landmarks");
        assert_eq!(lm.len(), 68);
        // Every landmark lies near its box.
        for p in lm {
            let p = floats(p);
            assert!(
                p[0] > b[0] - b[2]
                    && p[0] < b[0] + 2.0 * b[2]
                    && p[1] > b[1] - b[3]
                    && p[1] < b[1] + 2.0 * b[3]
            );
        }
    }
}

#[test]
fn faces_json_on_a_video_and_a_folder() {
    let path = video("single_face.mp4");
    let v = faces_json(&path, &[]);
    let frames = v["frames"].as_array().expect("frames");
    assert_eq!(frames.len(), 72);
    assert!(
        frames
            .iter()
            .enumerate()
            .all(|(i, f)| f["index"] == i && f["faces"].as_array().is_some_and(|a| a.len() == 1))
    );

    let dir = scratch("cli-folder");
    std::fs::copy(face_image("single_face.jpg"), dir.join("a.jpg")).expect("copy");
    std::fs::copy(face_image("free-mountain-vector-01.jpg"), dir.join("b.jpg")).expect("copy");
    std::fs::write(dir.join("c.jpg"), b"broken").expect("write");
    let out = auscope(&[
        "faces",
        dir.to_str().expect("utf8"),
        "--json",
        "--device",
        "cpu",
        "--detector",
        "short",
    ]);
    assert!(
        out.status.success(),
        "one bad image must not fail the folder"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let counts: Vec<usize> = v["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["faces"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(counts, vec![1, 0, 0]);
    assert!(
        v["frames"][2]["error"]
            .as_str()
            .is_some_and(|e| e.contains("c.jpg"))
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("c.jpg"));
}

#[test]
fn bad_input_fails_with_a_message() {
    let dir = scratch("cli-bad");
    let bad = dir.join("bad.mov");
    std::fs::write(&bad, b"nope").expect("write");
    let out = auscope(&[
        "faces",
        bad.to_str().expect("utf8"),
        "--json",
        "--device",
        "cpu",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:") && err.contains("bad.mov"), "{err}");
    let out = auscope(&["faces", "x.png", "--device", "quantum"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device"));
}

/// A tiny config of `model` written to a temp file (full-size models are
/// slow on CI's CPU; the code path is the same).
fn tiny_config(model: &str) -> std::path::PathBuf {
    let kind = auscope_core::models::ModelKind::parse(model).expect("kind");
    let path = std::env::temp_dir().join(format!("auscope-cli-{model}-{}.json", std::process::id()));
    std::fs::write(&path, auscope_core::models::ModelSpec::tiny(kind).to_json()).expect("write config");
    path
}

#[test]
fn infer_json_lists_au_probabilities_per_face() {
    let image = face_image("multi_face.jpg");
    for model in ["fan-trans", "transau", "piap", "lrp-arl-ff"] {
        let config = tiny_config(model);
        let out = auscope(&[
            "infer", image.to_str().expect("utf8"), "--model", model,
            "--config", config.to_str().expect("utf8"), "--json", "--device", "cpu",
        ]);
        assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("randomly initialised"), "{model}: must warn about random weights: {stderr}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["model"], model);
        assert_eq!(v["weights"], "random init");
        let faces = v["frames"][0]["faces"].as_array().expect("faces");
        assert_eq!(faces.len(), 5, "{model}");
        for f in faces {
            assert_eq!(floats(&f["box"]).len(), 4);
            let aus = f["aus"].as_object().expect("aus");
            assert_eq!(aus.len(), 12);
            assert!(aus.contains_key("AU01") && aus.contains_key("AU24"));
            assert!(aus.values().all(|p| (0.0..=1.0).contains(&p.as_f64().expect("p"))));
        }
        let _ = std::fs::remove_file(config);
    }
}

#[test]
fn infer_with_the_blendshape_baseline_sees_the_smile() {
    let image = face_image("single_face.jpg");
    let out = auscope(&["infer", image.to_str().expect("utf8"), "--model", "blendshape-baseline", "--json", "--device", "cpu"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("randomly initialised"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["model"], "blendshape-baseline");
    let aus = v["frames"][0]["faces"][0]["aus"].as_object().expect("aus");
    assert_eq!(aus.len(), 20);
    // The person in single_face.jpg smiles broadly: AU12 on, AU04 off.
    let p = |au: &str| aus[au].as_f64().expect("p");
    assert!(p("AU12") > 0.5 && p("AU04") < 0.5, "{aus:?}");
    let out = auscope(&["infer", image.to_str().expect("utf8"), "--model", "blendshape-baseline", "--weights", "x.bpk"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("takes no weights"));
}

#[test]
fn infer_without_weights_runs_the_demo_weights_and_says_so() {
    // 15-f13-anc-ph (angry, lips pressed) is a held-out subject of the demo
    // training runs; single_face (broad smile) a training one. The demo
    // models agree with their teacher (the blendshape baseline) on at least
    // 10 of their 12 AUs on both, and tell the smile from the angry face
    // (AU10/AU12). Random weights hover around 0.5 and do neither.
    let aus_of = |img: &std::path::Path, model: &str| -> (serde_json::Map<String, serde_json::Value>, String, String) {
        let out = auscope(&["infer", img.to_str().expect("utf8"), "--model", model, "--json", "--device", "cpu"]);
        assert!(out.status.success(), "{model}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let aus = v["frames"][0]["faces"][0]["aus"].as_object().expect("aus").clone();
        (aus, v["weights"].as_str().unwrap_or_default().to_string(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let p = |m: &serde_json::Map<String, serde_json::Value>, au: &str| m[au].as_f64().expect("p");
    let (angry, smile) = (face_image("15-f13-anc-ph.jpg"), face_image("single_face.jpg"));
    let (teacher_angry, teacher_smile) = (aus_of(&angry, "blendshape-baseline").0, aus_of(&smile, "blendshape-baseline").0);
    for model in ["fan-trans", "transau", "piap", "lrp-arl-ff"] {
        let mut seen = Vec::new();
        for (img, teacher) in [(&angry, &teacher_angry), (&smile, &teacher_smile)] {
            let (aus, weights, stderr) = aus_of(img, model);
            assert!(weights.starts_with("demo weights (models/au_"), "{model}: {weights}");
            assert!(stderr.contains("demo weights") && stderr.contains("not on FACS-coded data"), "{model}: {stderr}");
            let agree = aus.keys().filter(|au| (p(&aus, au) >= 0.5) == (p(teacher, au) >= 0.5)).count();
            assert!(agree >= 10, "{model} on {}: agrees with the teacher on {agree} of {} AUs\n{aus:?}\n{teacher:?}", img.display(), aus.len());
            seen.push(aus);
        }
        let lift = ["AU10", "AU12"].iter().map(|au| p(&seen[1], au) - p(&seen[0], au)).fold(f64::MIN, f64::max);
        assert!(lift > 0.3, "{model}: AU10/AU12 barely move from the angry face to the smile ({lift:.2})\n{seen:?}");
    }
}

#[test]
fn infer_rejects_bad_weights_and_models_clearly() {
    let image = face_image("single_face.jpg");
    let img = image.to_str().expect("utf8");
    let out = auscope(&["infer", img, "--model", "resnet", "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model 'resnet'"));

    // Weights of another model.
    let dir = std::env::temp_dir().join(format!("auscope-cli-w-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let d = burn::tensor::Device::flex();
    let piap = auscope_core::models::AuModel::new(
        auscope_core::models::ModelSpec::tiny(auscope_core::models::ModelKind::Piap),
        &d,
    )
    .expect("model");
    let bpk = dir.join("piap.bpk");
    auscope_core::models::weights::save(&piap, &bpk).expect("save");
    let out = auscope(&["infer", img, "--model", "transau", "--weights", bpk.to_str().expect("utf8"), "--device", "cpu"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("these are PIAP weights, not TransAU weights"), "{err}");

    // A truncated file.
    let bytes = std::fs::read(&bpk).expect("read");
    std::fs::write(&bpk, &bytes[..bytes.len() / 2]).expect("write");
    let out = auscope(&["infer", img, "--model", "piap", "--weights", bpk.to_str().expect("utf8"), "--device", "cpu"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("piap.bpk"));

    // Its own weights load and run.
    auscope_core::models::weights::save(&piap, &bpk).expect("save");
    let out = auscope(&["infer", img, "--model", "piap", "--weights", bpk.to_str().expect("utf8"), "--json", "--device", "cpu"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["weights"].as_str().expect("weights").ends_with("piap.bpk"));
    assert_eq!(v["frames"][0]["faces"].as_array().expect("faces").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn infer_on_an_image_without_faces_reports_no_faces() {
    let image = face_image("free-mountain-vector-01.jpg");
    let config = tiny_config("lrp-arl-ff");
    let out = auscope(&[
        "infer", image.to_str().expect("utf8"), "--model", "lrp-arl-ff",
        "--config", config.to_str().expect("utf8"), "--json", "--device", "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["frames"][0]["faces"].as_array().expect("faces").len(), 0);
    let _ = std::fs::remove_file(config);
}

#[test]
fn convert_turns_a_pytorch_checkpoint_into_a_bpk_that_infer_runs() {
    let dir = scratch("cli-convert");
    let config = tiny_config("transau");
    let d = burn::tensor::Device::flex();
    let spec = auscope_core::models::ModelSpec::tiny(auscope_core::models::ModelKind::Transau);
    let model = auscope_core::models::AuModel::new(spec, &d).expect("model");
    let st = dir.join("transau.safetensors");
    auscope_core::models::weights::export_pytorch(&model, &st).expect("export");
    let bpk = dir.join("transau.bpk");
    let out = auscope(&[
        "convert", "--model", "transau", "--weights", st.to_str().expect("utf8"),
        "--config", config.to_str().expect("utf8"), "--out", bpk.to_str().expect("utf8"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The .bpk carries its config: no --config needed.
    let image = face_image("single_face.jpg");
    let out = auscope(&["infer", image.to_str().expect("utf8"), "--model", "transau", "--weights",
        bpk.to_str().expect("utf8"), "--json", "--device", "cpu"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("randomly initialised"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["frames"][0]["faces"][0]["aus"].as_object().expect("aus").len(), 12);
    let out = auscope(&["convert", "--model", "transau", "--out", bpk.to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to convert"));
    let _ = std::fs::remove_file(config);
}

#[test]
fn explain_writes_an_overlay_and_a_raw_array_per_au() {
    let out = scratch("cli-explain");
    let face = face_image("single_face.jpg");
    let o = auscope(&[
        "explain", face.to_str().expect("utf-8"), "--model", "transau", "--method", "score-cam", "--au", "AU12",
        "--out", out.to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = read_json(&out.join("explain.json"));
    let files = index["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "one face, one AU");
    assert_eq!(files[0]["label"], "AU12");
    let png = image::open(out.join(files[0]["png"].as_str().expect("png"))).expect("overlay png");
    let frame = image::open(&face).expect("face");
    assert_eq!((png.width(), png.height()), (frame.width(), frame.height()), "overlay on the whole frame");
    let npy = std::fs::read(out.join(files[0]["npy"].as_str().expect("npy"))).expect("npy");
    assert_eq!(&npy[..6], b"\x93NUMPY");
    let shape: Vec<usize> = files[0]["shape"].as_array().expect("shape").iter().map(|v| v.as_u64().expect("dim") as usize).collect();
    let header = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let values: Vec<f32> = npy[10 + header..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(values.len(), shape.iter().product::<usize>());
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!((values.iter().copied().fold(0.0, f32::max) - 1.0).abs() < 1e-4, "min-max normalised");
    assert!(index["note"].as_str().expect("note").contains("Score-CAM on backbone."));

    // Matrices: one PNG + array per matrix, labelled with the AUs.
    let out2 = scratch("cli-explain-att");
    let o = auscope(&["explain", face.to_str().expect("utf-8"), "--model", "fan-trans", "--method", "au-attention", "--out", out2.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let index = read_json(&out2.join("explain.json"));
    let files = index["files"].as_array().expect("files");
    assert!(files.iter().any(|f| f["label"].as_str().is_some_and(|l| l.contains("attention-drop mask"))));
    assert_eq!(files[0]["tokens"].as_array().expect("tokens").len(), 12);
}

#[test]
fn explain_refuses_what_a_model_cannot_show() {
    let out = scratch("cli-explain-bad");
    let face = face_image("single_face.jpg");
    let f = face.to_str().expect("utf-8");
    let o = out.to_str().expect("utf-8");
    let err = |args: &[&str]| {
        let r = auscope(args);
        assert!(!r.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&r.stderr).to_string()
    };
    let e = err(&["explain", f, "--model", "piap", "--method", "score-cam", "--layer", "backbone.nope", "--out", o]);
    assert!(e.contains("has no layer 'backbone.nope'") && e.contains("encoder.stage3"), "{e}");
    let e = err(&["explain", f, "--model", "piap", "--method", "fan-heatmap", "--out", o]);
    assert!(e.contains("heat-maps come with FAN-Trans"), "{e}");
    let e = err(&["explain", f, "--model", "blendshape-baseline", "--method", "score-cam", "--out", o]);
    assert!(e.contains("needs a network"), "{e}");
    let e = err(&["explain", f, "--model", "piap", "--method", "pi-map", "--au", "AU99", "--out", o]);
    assert!(e.contains("no map 'AU99'") && e.contains("AU12"), "{e}");
    let e = err(&["explain", f, "--model", "piap", "--method", "gradcam", "--out", o]);
    assert!(e.contains("unknown method 'gradcam'"), "{e}");
}

#[test]
fn labels_import_export_agreement_and_finetune_a_project() {
    let dir = scratch("cli-project");
    let clip = dir.join("clip.mp4");
    std::fs::copy(video("single_face.mp4"), &clip).expect("copy the clip");
    let s = |p: &std::path::Path| p.to_str().expect("utf8").to_string();
    let ok = |args: &[&str]| {
        let out = auscope(args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "auscope {args:?}: {text}");
        text
    };
    // Nothing to read before a project exists.
    let out = auscope(&["labels", "list", "--project", &s(&clip)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such project"));
    // Alice's labels of every 6th frame (AU12 on in the first half), in the plain format.
    let mut csv = String::from("frame,face,au,source,who,occurrence,intensity,score,time_ms\n");
    for f in (0..72).step_by(6) {
        csv += &format!("{f},0,AU12,coder,alice,{},{},,0\n", (f < 36) as u8, if f < 36 { "C" } else { "" });
        csv += &format!("{f},0,AU06,coder,alice,{},,,0\n", (f < 18) as u8);
    }
    let labels = dir.join("alice.csv");
    std::fs::write(&labels, csv).expect("csv");
    assert!(ok(&["labels", "import", "--project", &s(&clip), &s(&labels)]).contains("imported 24 labels"));
    // A second source: bob said AU12 is always present.
    let mut bob = String::from("frame,face,au,source,who,occurrence,intensity,score,time_ms\n");
    for f in (0..72).step_by(6) {
        bob += &format!("{f},0,AU12,coder,bob,1,,,0\n");
    }
    let bob_file = dir.join("bob.csv");
    std::fs::write(&bob_file, bob).expect("csv");
    ok(&["labels", "import", "--project", &s(&clip), &s(&bob_file)]);
    let agree = auscope(&["labels", "agreement", "--project", &s(&clip), "coder:alice", "coder:bob", "--json"]);
    assert!(agree.status.success(), "{}", String::from_utf8_lossy(&agree.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&agree.stdout).expect("json");
    assert_eq!(rows["pairs"].as_array().expect("pairs").len(), 1);
    let au12 = rows["pairs"][0]["aus"].as_array().expect("rows").iter().find(|r| r["au"] == "AU12").expect("AU12");
    // 6 of 12 agree (both present): F1 = 2*6/(2*6+6) = 2/3, kappa 0;
    // alpha -0.2778 (PyPI `krippendorff` on the same two rows).
    assert_eq!(au12["n"], 12);
    assert!((au12["f1"].as_f64().expect("f1") - 2.0 / 3.0).abs() < 1e-9, "{au12}");
    assert!(au12["kappa"].as_f64().expect("kappa").abs() < 1e-9, "{au12}");
    assert!((au12["alpha"].as_f64().expect("alpha") + 0.2777777777777777).abs() < 1e-9, "{au12}");
    // Ekman-Friesen: AU12 both on 6 faces, AU06 alice on 3 of the faces bob
    // also labelled; 2*6 / (6+3 + 12) = 12/21.
    assert!((rows["pairs"][0]["ef_ratio"].as_f64().expect("ratio") - 12.0 / 21.0).abs() < 1e-9, "{rows}");
    // The table says the same in words.
    let table = ok(&["labels", "agreement", "--project", &s(&clip), "coder:alice", "coder:bob"]);
    assert!(table.contains("alpha-I") && table.contains("Ekman-Friesen agreement ratio: 0.571"), "{table}");
    // Export round trip: the JSON holds alice's labels with intensity letters.
    let json = dir.join("alice.json");
    ok(&["labels", "export", "--project", &s(&clip), "--out", &s(&json), "--source", "coder", "--who", "alice"]);
    let v = read_json(&json);
    let rows = v["labels"].as_array().expect("labels");
    assert_eq!(rows.len(), 24);
    assert_eq!(v["media"], "clip.mp4");
    assert!(rows.iter().any(|r| r["au"] == "AU12" && r["intensity"] == "C" && r["occurrence"] == 1));
    // A CSV with other columns is refused with the reason.
    let odd = dir.join("odd.csv");
    std::fs::write(&odd, "frame,face,au,source,who,occurrence,intensity,score,time_ms,mood\n0,0,AU12,coder,x,1,,,0,happy\n").expect("csv");
    let out = auscope(&["labels", "import", "--project", &s(&clip), &s(&odd)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown: [\"mood\"]") && err.contains(&format!("label file {}", odd.display())), "{err}");

    // AU events: an events CSV in, listed, out to ELAN and back into another project.
    let events = dir.join("events.csv");
    std::fs::write(&events, "who,person,au,onset,apex,offset,intensity,origin,time_ms\ncarl,0,AU12,10,15,30,D,,\ncarl,0,AU04,40,41,44,,,\n").expect("csv");
    assert!(ok(&["labels", "import", "--project", &s(&clip), &s(&events)]).contains("imported 0 labels and 2 events"));
    let listed = ok(&["labels", "events", "--project", &s(&clip), "--coder", "carl"]);
    assert!(listed.contains("AU12") && listed.contains("2 events"), "{listed}");
    let eaf = dir.join("carl.eaf");
    assert!(ok(&["labels", "export", "--project", &s(&clip), "--who", "carl", "--out", &s(&eaf)]).contains("wrote 2 events"));
    let elan = std::fs::read_to_string(&eaf).expect("eaf");
    assert!(elan.contains("TIER_ID=\"AU12 carl\"") && elan.contains("PARENT_REF=\"AU12 carl\"") && elan.contains("clip.mp4"), "{elan}");
    let copy = dir.join("copy.mp4");
    std::fs::copy(video("single_face.mp4"), &copy).expect("copy");
    assert!(ok(&["labels", "import", "--project", &s(&copy), &s(&eaf)]).contains("imported 2 events"));
    let back = ok(&["labels", "events", "--project", &s(&copy)]);
    assert!(back.contains("AU12") && back.contains("15") && back.contains("30") && back.contains("D"), "{back}");
    // An .eaf with a tier that is not an AU's is refused, the project unchanged.
    let odd_eaf = dir.join("odd.eaf");
    std::fs::write(&odd_eaf, elan.replace("TIER_ID=\"AU04 carl\"", "TIER_ID=\"gesture\"")).expect("eaf");
    let before = std::fs::read(dir.join("copy.mp4.auscope")).expect("project");
    let out = auscope(&["labels", "import", "--project", &s(&copy), &s(&odd_eaf)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("odd.eaf") && err.contains("'gesture'"), "{err}");
    assert_eq!(std::fs::read(dir.join("copy.mp4.auscope")).expect("project"), before);
    // Events past the clip's 72 frames: refused by name.
    std::fs::write(&events, "who,person,au,onset,apex,offset,intensity,origin,time_ms\ncarl,0,AU01,60,70,80,,,\n").expect("csv");
    let out = auscope(&["labels", "import", "--project", &s(&copy), &s(&events)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("events.csv") && err.contains("past the media's last frame 71"), "{err}");

    // Fine-tune on alice's corrections, adopt the result.
    let text = ok(&["--device", "cpu", "finetune", "--project", &s(&clip), "--model", "lrp-arl-ff", "--coder", "alice", "--epochs", "1", "--adopt"]);
    assert!(text.contains("12 corrected faces: 10 to train on, 2 held out"), "{text}");
    assert!(text.contains("new version v1 of lrp-arl-ff") && text.contains("adopted v1"), "{text}");
    let v1 = dir.join("clip.mp4.auscope-models/lrp-arl-ff/v1");
    for f in ["model.bpk", "run.json", "metrics.json", "finetune.json"] {
        assert!(v1.join(f).exists(), "{f} in {}", v1.display());
    }
    let card = read_json(&v1.join("finetune.json"));
    assert_eq!(card["held_out_faces"], 2);
    assert_eq!(card["coder"], "alice");
    // The adopted version runs through `infer --weights`.
    ok(&["infer", &s(&face_image("single_face.jpg")), "--model", "lrp-arl-ff", "--weights", &s(&v1.join("model.bpk")), "--device", "cpu"]);
    // Too few corrections: a clear refusal.
    let other = dir.join("other.mp4");
    std::fs::copy(video("single_face.mp4"), &other).expect("copy");
    std::fs::write(&labels, "frame,face,au,source,who,occurrence,intensity,score,time_ms\n0,0,AU12,coder,alice,1,,,0\n").expect("csv");
    ok(&["labels", "import", "--project", &s(&other), &s(&labels)]);
    let out = auscope(&["--device", "cpu", "finetune", "--project", &s(&other), "--model", "piap", "--epochs", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 2 corrected faces"));

    // Project files as a training source: alice's labels on two clips (two
    // subjects) train and evaluate a model; other.mp4's face lacks AU06 and
    // is skipped and counted.
    let second = dir.join("second.mp4");
    std::fs::copy(video("single_face.mp4"), &second).expect("copy");
    let mut csv = String::from("frame,face,au,source,who,occurrence,intensity,score,time_ms\n");
    for f in (0..72).step_by(6) {
        csv += &format!("{f},0,AU12,coder,alice,{},,,0\n{f},0,AU06,coder,alice,{},,,0\n", (f >= 36) as u8, (f >= 54) as u8);
    }
    std::fs::write(&labels, csv).expect("csv");
    ok(&["labels", "import", "--project", &s(&second), &s(&labels)]);
    let config = dir.join("project-run.json");
    let run = serde_json::json!({
        "model": {"model": "lrp-arl-ff", "preset": "tiny", "aus": ["AU06", "AU12"]},
        "data": {"layout": "project", "projects": ["clip.mp4.auscope", "second.mp4.auscope", "other.mp4.auscope"], "coder": "alice"},
        "folds": 2, "fold": 1,
        "params": {"epochs": 1, "batch_size": 4, "lr": 0.001, "lr_step_epochs": 0, "lr_gamma": 0.1, "optimizer": "adam",
                   "augment": {"rotation_deg": 0.0, "flip": false, "scale": [1.0, 1.0], "shift_px": 0.0}, "seed": 1,
                   "freeze_backbone": true, "okd_lambda": 0.2, "piap_weights": [0.6, 0.3, 0.1], "divergence_factor": 50.0},
        "out": "project-run"
    });
    std::fs::write(&config, serde_json::to_string_pretty(&run).expect("json")).expect("config");
    let text = ok(&["--device", "cpu", "train", "--config", &s(&config)]);
    assert!(text.contains("data: 24 labelled frames of 2 subjects (1 rows skipped"), "{text}");
    let run_json = read_json(&dir.join("project-run/run.json"));
    assert_eq!(run_json["train_faces"].as_u64().unwrap_or(0) + run_json["test_faces"].as_u64().unwrap_or(0), 24, "{run_json}");
    ok(&["--device", "cpu", "eval", "--config", &s(&config)]);
    // A project that does not exist is an error, and none is created.
    let mut bad = run.clone();
    bad["data"]["projects"] = serde_json::json!(["nope.mp4.auscope"]);
    std::fs::write(&config, bad.to_string()).expect("config");
    let out = auscope(&["--device", "cpu", "train", "--config", &s(&config)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such project file"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!dir.join("nope.mp4.auscope").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
