//! The analysis engine on real media: tracking and identities on videos made
//! with ffmpeg from the shared clips, and `auscope analyze` as a user runs it
//! (CSV read back as OpenFace output, skip, resume after a kill, shards, bad
//! input).

mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;

use auscope_core::analysis::Engine;
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::source::open_source;
use burn::tensor::Device;
use common::*;

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-v", "error", "-y"]).args(args).output().expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn engine() -> Engine {
    Engine::faces_only(FacePipeline::new(DetectorKind::Full, &Device::flex()).expect("face models"))
}

/// Per frame, the (x centre, track id) of each face.
fn tracks(video: &Path) -> Vec<Vec<(f32, u32)>> {
    let engine = engine();
    let source = open_source(video).expect("video");
    let n = source.info().frame_count;
    let mut out = Vec::new();
    let summary = engine
        .run(source, (0..n).collect(), engine.tracker(), &mut |r, _| {
            assert!(r.error.is_none(), "frame {}: {:?}", r.index, r.error);
            out.push(r.faces.iter().map(|f| (f.face.box_xywh()[0] + f.face.box_xywh()[2] / 2.0, f.face.track.expect("track id"))).collect());
            ControlFlow::Continue(())
        })
        .expect("run");
    assert_eq!(summary.frames, n);
    out
}

#[test]
fn two_moving_faces_keep_their_identities_over_the_whole_clip() {
    let dir = scratch("two-faces");
    let clip = dir.join("two.mp4");
    let src = video("single_face.mp4");
    let src = src.to_str().expect("utf8");
    // Two copies of the clip, looped to 216 frames, sliding towards each other.
    ffmpeg(&[
        "-f", "lavfi", "-i", "color=black:s=1280x420:r=30:d=7.2",
        "-stream_loop", "2", "-i", src, "-stream_loop", "2", "-i", src,
        "-filter_complex",
        "[1:v]scale=480:270[a];[2:v]scale=480:270,hflip[b];[0:v][a]overlay=x='10+12*t':y=60:shortest=1[t];[t][b]overlay=x='790-12*t':y=90:shortest=1",
        "-frames:v", "216", "-pix_fmt", "yuv420p", clip.to_str().expect("utf8"),
    ]);
    let frames = tracks(&clip);
    assert_eq!(frames.len(), 216);
    let mut left_ids = std::collections::BTreeSet::new();
    let mut right_ids = std::collections::BTreeSet::new();
    for (i, faces) in frames.iter().enumerate() {
        assert_eq!(faces.len(), 2, "frame {i}: {faces:?}");
        let mut f = faces.clone();
        f.sort_by(|a, b| a.0.total_cmp(&b.0));
        left_ids.insert(f[0].1);
        right_ids.insert(f[1].1);
    }
    // 0 identity switches: one id per face for all 216 frames.
    assert_eq!((left_ids.len(), right_ids.len()), (1, 1), "left {left_ids:?} right {right_ids:?}");
    assert_ne!(left_ids, right_ids);
}

#[test]
fn a_face_that_returns_after_an_absence_gets_a_new_identity() {
    let dir = scratch("returns");
    let clip = dir.join("returns.mp4");
    let face = video("single_face.mp4");
    // face (72 frames), an empty scene (120), the face again (72).
    ffmpeg(&[
        "-i", face.to_str().expect("utf8"), "-f", "lavfi", "-i", "color=gray:s=640x360:r=30:d=4", "-i", face.to_str().expect("utf8"),
        "-filter_complex",
        "[0:v]scale=640:360,fps=30,setsar=1,setpts=PTS-STARTPTS[a];[1:v]setsar=1,setpts=PTS-STARTPTS[b];[2:v]scale=640:360,fps=30,setsar=1,setpts=PTS-STARTPTS[c];[a][b][c]concat=n=3:v=1:a=0",
        "-an", "-pix_fmt", "yuv420p", clip.to_str().expect("utf8"),
    ]);
    let frames = tracks(&clip);
    let first: Vec<u32> = frames[..72].iter().flat_map(|f| f.iter().map(|x| x.1)).collect();
    let second: Vec<u32> = frames[frames.len() - 72..].iter().flat_map(|f| f.iter().map(|x| x.1)).collect();
    assert_eq!(frames.len(), 264);
    assert!(frames[74..190].iter().all(|f| f.is_empty()), "faces in the empty part");
    assert!(first.len() >= 70 && second.len() >= 70, "{} {}", first.len(), second.len());
    let (a, b): (std::collections::BTreeSet<u32>, std::collections::BTreeSet<u32>) = (first.into_iter().collect(), second.into_iter().collect());
    assert_eq!(a.len(), 1, "one identity while visible: {a:?}");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_ne!(a, b, "the returning face is a new identity");
}

#[test]
fn face_noface_video_ids_are_stable_while_the_face_is_visible() {
    let frames = tracks(&video("face_noface.mov"));
    assert_eq!(frames.len(), 169);
    // Within each visible stretch the id never changes.
    let mut prev: Option<u32> = None;
    let mut stretches = 0;
    for f in &frames {
        assert!(f.len() <= 1, "{f:?}");
        let id = f.first().map(|x| x.1);
        if let (Some(a), Some(b)) = (prev, id) {
            assert_eq!(a, b, "an identity switch within a visible stretch");
        }
        if prev.is_none() && id.is_some() {
            stretches += 1;
        }
        prev = id;
    }
    assert!(stretches >= 1 && frames.iter().any(|f| f.is_empty()), "the clip has a face and frames without one");
}

fn auscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_auscope")).args(args).output().expect("run auscope")
}

fn analyze(inputs: &[&Path], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec!["analyze".into()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(["--model", "blendshape-baseline", "--device", "cpu", "--quiet", "--out"].map(String::from));
    args.push(out.display().to_string());
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    auscope(&args)
}

fn copy_in(dir: &Path, src: &Path) -> PathBuf {
    let dst = dir.join(src.file_name().expect("name"));
    std::fs::copy(src, &dst).expect("copy media");
    dst
}

#[test]
fn analyze_writes_an_openface_csv_that_openface_readers_read() {
    let dir = scratch("analyze-csv");
    let clip = copy_in(&dir, &video("single_face.mp4"));
    let out = dir.join("out");
    let run = analyze(&[&clip], &out, &["--landmarks478"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let csv = out.join("single_face.csv");
    let mut rd = csv::Reader::from_path(&csv).expect("csv");
    let header: Vec<String> = rd.headers().expect("header").iter().map(String::from).collect();
    assert_eq!(&header[..5], ["frame", "face_id", "timestamp", "confidence", "success"]);
    assert_eq!(header[5], "x_0");
    assert_eq!(header[72], "x_67");
    assert_eq!(header[73], "y_0");
    assert_eq!(header[141], "AU01_c");
    assert!(header.iter().any(|h| h == "p_blendshape_baseline_AU12"));
    assert!(header.iter().any(|h| h == "mesh_z_477"));
    assert!(!header.iter().any(|h| h.ends_with("_r")), "no intensity without an intensity model");
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 72);
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[0].parse::<usize>().expect("frame"), i + 1);
        assert_eq!(&r[1], "0", "one face, one id");
        assert_eq!(&r[4], "1");
        let ts: f64 = r[2].parse().expect("timestamp");
        assert!((ts - i as f64 / 30.0).abs() < 0.002, "frame {i}: {ts}");
    }
    // auscope's own OpenFace import reads it as OpenFace output.
    let project = dir.join("check.auscope");
    let mut store = auscope_core::annotations::store::Store::open(&project).expect("project");
    let imported = auscope_core::annotations::openface::import(&mut store, &csv, "OpenFace").expect("import");
    assert_eq!(imported.frames, 72);
    assert_eq!(imported.aus.len(), 20, "{:?}", imported.aus);
    // The sidecar names the model and the columns.
    let side = read_json(&out.join("single_face.json"));
    assert_eq!(side["settings"]["models"][0]["name"], "blendshape-baseline");
    assert_eq!(side["frames"], 72);
    assert_eq!(side["columns"].as_array().expect("columns").len(), header.len());
    assert!(!out.join("single_face.csv.partial").exists() && !out.join("single_face.resume.json").exists());

    // Finished with these settings: skipped. Other settings: analysed again.
    let again = analyze(&[&clip], &out, &["--landmarks478"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already analysed"), "{}", String::from_utf8_lossy(&again.stderr));
    let other = analyze(&[&clip], &out, &[]);
    assert!(other.status.success());
    let h2 = csv::Reader::from_path(&csv).expect("csv").headers().expect("header").len();
    assert!(h2 < header.len(), "re-analysed without the mesh columns");
}

#[test]
fn a_killed_analysis_resumes_and_ends_with_the_same_csv() {
    let dir = scratch("analyze-resume");
    let clip = copy_in(&dir, &video("WolfgangLanger_Pexels.mp4"));
    let whole = dir.join("whole");
    let run = analyze(&[&clip], &whole, &[]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let expected = std::fs::read(whole.join("WolfgangLanger_Pexels.csv")).expect("csv");

    let killed = dir.join("killed");
    let mut args: Vec<String> = vec!["analyze".into(), clip.display().to_string()];
    args.extend(["--model", "blendshape-baseline", "--device", "cpu", "--quiet", "--out"].map(String::from));
    args.push(killed.display().to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_auscope")).args(&args).spawn().expect("spawn");
    let state = killed.join("WolfgangLanger_Pexels.resume.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !state.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    assert!(state.exists(), "no checkpoint before the kill");
    assert!(!killed.join("WolfgangLanger_Pexels.csv").exists(), "no finished CSV after a kill");
    let resumed = analyze(&[&clip], &killed, &[]);
    let err = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{err}");
    assert!(err.contains("resumed at frame"), "{err}");
    let got = std::fs::read(killed.join("WolfgangLanger_Pexels.csv")).expect("csv");
    assert!(got == expected, "the resumed CSV differs from the uninterrupted one");
}

#[test]
fn shards_split_inputs_and_bad_files_do_not_stop_the_others() {
    let dir = scratch("analyze-bad");
    let media = dir.join("media");
    std::fs::create_dir_all(&media).expect("dir");
    copy_in(&media, &video("single_face.mp4"));
    copy_in(&media, &video("no_face.mp4"));
    std::fs::write(media.join("notes.txt"), "not media").expect("write");
    let bytes = std::fs::read(video("single_face.mp4")).expect("read");
    std::fs::write(media.join("broken.mp4"), &bytes[..bytes.len() / 3]).expect("write");
    let out = dir.join("out");
    let run = analyze(&[&media], &out, &[]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "a failed file fails the run");
    assert!(err.contains("notes.txt: not a video or image"), "{err}");
    assert!(err.contains("broken.mp4"), "{err}");
    assert!(out.join("single_face.csv").is_file() && out.join("no_face.csv").is_file(), "{err}");
    assert!(!out.join("broken.csv").exists());
    // The faceless video: one success-0 row per frame.
    let rows = csv::Reader::from_path(out.join("no_face.csv")).expect("csv").records().count();
    assert_eq!(rows, 95);

    // Two shards take disjoint halves of the sorted inputs.
    let (a, b) = (dir.join("s0"), dir.join("s1"));
    let inputs = [media.join("single_face.mp4"), media.join("no_face.mp4")];
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    assert!(analyze(&refs, &a, &["--shard", "0/2"]).status.success());
    assert!(analyze(&refs, &b, &["--shard", "1/2"]).status.success());
    let csvs = |d: &Path| std::fs::read_dir(d).expect("dir").filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "csv")).count();
    assert_eq!((csvs(&a), csvs(&b)), (1, 1));
    assert!(!auscope(&["analyze", "x.mp4", "--model", "piap", "--out", "o", "--shard", "2/2"]).status.success());
}

#[test]
fn an_output_that_cannot_be_written_is_a_clear_error_and_leaves_no_csv() {
    let dir = scratch("analyze-full");
    let clip = copy_in(&dir, &video("single_face.mp4"));
    // A full disk: the partial file is /dev/full, where every write fails.
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("dir");
    std::os::unix::fs::symlink("/dev/full", out.join("single_face.csv.partial")).expect("symlink");
    let run = analyze(&[&clip], &out, &[]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("single_face") && err.to_lowercase().contains("no space"), "{err}");
    assert!(!out.join("single_face.csv").exists());
    // An output folder that cannot be made.
    let file = dir.join("a-file");
    std::fs::write(&file, "x").expect("write");
    let run = analyze(&[&clip], &file.join("out"), &[]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(err.contains("cannot create the output folder"), "{err}");
}

/// `auscope analyze --project` on `clip`, as a child process.
fn analyze_into_project(clip: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auscope"));
    c.args(["analyze", &clip.display().to_string(), "--model", "blendshape-baseline", "--device", "cpu", "--quiet", "--project"]);
    c
}

#[test]
fn a_killed_analysis_into_the_project_continues_and_stores_what_an_uninterrupted_run_does() {
    use auscope_core::annotations::review::ReviewIndex;
    use auscope_core::annotations::store::{Store, project_path};
    let dir = scratch("analyze-project");
    let (a, b) = (dir.join("a"), dir.join("b"));
    std::fs::create_dir_all(&a).expect("dir");
    std::fs::create_dir_all(&b).expect("dir");
    let whole = copy_in(&a, &video("WolfgangLanger_Pexels.mp4"));
    let killed = copy_in(&b, &video("WolfgangLanger_Pexels.mp4"));
    let run = analyze_into_project(&whole).output().expect("run");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stderr).contains(".auscope"), "{}", String::from_utf8_lossy(&run.stderr));

    // Kill the second run once part of the video is stored.
    let mut child = analyze_into_project(&killed).spawn().expect("spawn");
    let project = project_path(&killed);
    let stored = || Store::open(&project).ok().and_then(|s| s.analysis().ok().flatten());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !stored().is_some_and(|p| p.next > 0) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill");
    let _ = child.wait();
    let at_kill = stored().expect("progress stored before the kill");
    assert!(at_kill.next > 0 && !at_kill.finished, "killed part-way: {at_kill:?}");
    let resumed = analyze_into_project(&killed).output().expect("run");
    let err = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{err}");
    assert!(err.contains("resumed at frame"), "{err}");

    let (sa, sb) = (Store::open(&project_path(&whole)).expect("a"), Store::open(&project).expect("b"));
    let (pa, pb) = (sa.analysis().expect("a").expect("a analysed"), sb.analysis().expect("b").expect("b analysed"));
    assert!(pa.finished && pb.finished);
    assert_eq!((pa.next, pb.next), (472, 472));
    let (fa, fb) = (sa.analysed_frames(0, 472).expect("a"), sb.analysed_frames(0, 472).expect("b"));
    assert_eq!(fa.len(), 472);
    assert!(fa.iter().all(|f| f.error.is_none() && f.faces.iter().all(|x| !x.aus[0].is_empty() && x.landmarks.len() == 478)), "every frame with its faces' AUs and mesh");
    assert!(fa == fb, "the continued run stored other results than the uninterrupted one");
    // What the window reads when the video is opened again: every frame's face and probabilities.
    let aus = sa.analysed_models().expect("models")[0].aus.clone();
    let index = ReviewIndex::load(&sb, &aus, Some("blendshape-baseline"), "nobody").expect("index");
    let faces: usize = fb.iter().map(|f| f.faces.len()).sum();
    assert!(faces >= 400, "{faces} faces in 472 frames");
    assert_eq!((index.faces.len(), index.predictions.len()), (faces, faces));
    let f = fb.iter().find(|f| !f.faces.is_empty()).expect("a face");
    assert_eq!(index.predictions[&(f.frame, 0)], f.faces[0].aus[0]);
    // Analysed with these settings: skipped.
    let again = analyze_into_project(&killed).output().expect("run");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already analysed"), "{}", String::from_utf8_lossy(&again.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}
