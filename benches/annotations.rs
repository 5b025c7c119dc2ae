//! Saving a coder's edit in a big project against a new one, measured in
//! the same run: one AU toggled on a random frame, written as the window
//! writes it (the model's predictions of that face, then the edit with its
//! undo step; each a transaction, WAL, synchronous = FULL). Also the time
//! to reopen the project and have the window's timeline: the review index
//! (the stored analysis of every frame: faces, track ids, one model's
//! probabilities; every coder label) and the AU tracks drawn from it.
//!
//! `cargo bench --bench annotations`. Env: AUSCOPE_BENCH_FRAMES (default
//! 100000 labelled frames), AUSCOPE_BENCH_EDITS (default 200).

use std::path::Path;
use std::time::Instant;

use auscope_core::annotations::analysed::{StoredFace, StoredFrame, StoredModel};
use auscope_core::annotations::review::ReviewIndex;
use auscope_core::annotations::store::{Change, Store};
use auscope_core::annotations::{Label, LabelKey, LabelValue, Source};
use auscope_core::training::data::Rng;

const AUS: [&str; 12] = ["AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU12", "AU14", "AU15", "AU17", "AU23", "AU24"];

/// A project whose `frames` frames are analysed (one face: track, box,
/// 478 landmarks, 12 probabilities of model "piap") and each have 12 coder
/// labels.
fn project(path: &Path, frames: usize) -> Store {
    let _ = std::fs::remove_file(path);
    let mut store = Store::open(path).expect("project");
    let mut rng = Rng(7);
    let aus: Vec<String> = AUS.iter().map(|s| s.to_string()).collect();
    let model = StoredModel { who: "piap".into(), aus, weights: "embedded".into() };
    store.begin_analysis("bench", "bench-faces", &[model], frames).expect("begin");
    let mut progress = store.analysis().expect("read").expect("begun");
    let mut labels = Vec::with_capacity(frames * AUS.len());
    for chunk in (0..frames).collect::<Vec<_>>().chunks(1000) {
        let stored: Vec<StoredFrame> = chunk
            .iter()
            .map(|&frame| {
                let probs: Vec<f32> = AUS.iter().map(|_| rng.unit()).collect();
                for (au, &p) in AUS.iter().zip(&probs) {
                    let key = LabelKey { frame, face: 0, au: au.to_string() };
                    labels.push(Label { key, source: Source::Coder, who: "alice".into(), value: LabelValue::coded(p >= 0.5, None), time_ms: 0 });
                }
                let landmarks = (0..478).map(|i| [200.0 + i as f32 * 0.1, 150.0 + rng.unit(), -rng.unit() * 10.0]).collect();
                let face = StoredFace { track: (frame / 5000) as u32, score: 0.9, presence: 0.99, bbox: [180.0, 120.0, 140.0, 160.0], landmarks, aus: vec![probs] };
                StoredFrame { frame, timestamp: frame as f64 / 30.0, detected: frame % 30 == 0, error: None, faces: vec![face] }
            })
            .collect();
        progress.next = chunk[chunk.len() - 1] + 1;
        store.put_analysed(&stored, &progress).expect("analysed frames");
    }
    store.put_labels(&labels).expect("labels");
    store
}

/// Reopen the project and build what the timeline draws; ms.
fn timeline_ms(path: &Path, aus: &[String], frames: usize) -> (f64, ReviewIndex) {
    let t = Instant::now();
    let store = Store::open(path).expect("reopen");
    let ix = ReviewIndex::load(&store, aus, Some("piap"), "alice").expect("index");
    // What the window derives for the timeline and the review queue.
    let tracks = ix.tracks(frames.max(1), None);
    let queue = ix.queue(0.15, None);
    assert_eq!(tracks.len(), aus.len());
    assert!(queue.len() <= frames);
    (t.elapsed().as_secs_f64() * 1e3, ix)
}

/// Mean ms per edit as the window saves it.
fn edit_ms(store: &mut Store, frames: usize, edits: usize) -> f64 {
    let mut rng = Rng(11);
    let start = Instant::now();
    for i in 0..edits {
        let frame = (rng.next_u64() % frames.max(1) as u64) as usize;
        let au = AUS[i % AUS.len()].to_string();
        let seen: Vec<(LabelKey, LabelValue)> = AUS.iter().map(|a| (LabelKey { frame, face: 0, au: a.to_string() }, LabelValue::predicted(0.5))).collect();
        store.put_predictions("piap", &seen).expect("predictions");
        let change = Change { key: LabelKey { frame, face: 0, au }, value: Some(LabelValue::coded(i % 2 == 0, None)) };
        store.edit("alice", "toggle", &[change]).expect("edit");
    }
    start.elapsed().as_secs_f64() * 1e3 / edits as f64
}

fn main() {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let frames = env("AUSCOPE_BENCH_FRAMES", 100_000);
    let edits = env("AUSCOPE_BENCH_EDITS", 200);
    let dir = std::env::temp_dir().join(format!("auscope-bench-annotations-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch");
    let aus: Vec<String> = AUS.iter().map(|s| s.to_string()).collect();

    let small_path = dir.join("new.mp4.auscope");
    let mut small = project(&small_path, 0);
    let small_ms = edit_ms(&mut small, 1, edits);
    let small_path = small.path().to_path_buf();
    drop(small);
    let (small_open, _) = timeline_ms(&small_path, &aus, 1);

    let t = Instant::now();
    let mut big = project(&dir.join("big.mp4.auscope"), frames);
    let build_s = t.elapsed().as_secs_f64();
    let big_ms = edit_ms(&mut big, frames, edits);
    // The database and its write-ahead log (not yet checkpointed).
    let wal = big.path().with_extension("auscope-wal");
    let size_mb = [big.path().to_path_buf(), wal].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len() as f64 / 1e6).sum::<f64>();
    let path = big.path().to_path_buf();
    drop(big);
    let (big_open, ix) = timeline_ms(&path, &aus, frames);
    assert_eq!((ix.coded.len(), ix.predictions.len(), ix.faces.len()), (frames, frames, frames));

    println!("Saving one coder edit (predictions of the face + the edit and its undo step), {edits} edits");
    println!("project with {frames} analysed frames (faces, 478 landmarks, 12 probabilities) and {frames} x {} coder labels: {size_mb:.0} MB, built in {build_s:.1} s", AUS.len());
    println!("{:<44} {:>10} {:>12}", "case", "ms", "x new");
    println!("{:<44} {small_ms:>10.3} {:>12.2}", "save an edit, new project (reference)", 1.0);
    println!("{:<44} {big_ms:>10.3} {:>12.2}", format!("save an edit, {frames} labelled frames"), big_ms / small_ms);
    println!("{:<44} {small_open:>10.1} {:>12.2}", "reopen to timeline, new project", 1.0);
    println!("{:<44} {big_open:>10.1} {:>12.2}", format!("reopen to timeline, {frames} frames"), big_open / small_open);
    println!("target: reopen to timeline at {frames} frames under 1000 ms: {}", if big_open < 1000.0 { "met" } else { "NOT met" });
    let _ = std::fs::remove_dir_all(&dir);
}
