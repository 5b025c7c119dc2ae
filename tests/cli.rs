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
