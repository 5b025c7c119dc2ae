//! The annotation store: round trip, undo/redo, a killed writer, OpenFace
//! import/export on the reference file, agreement, and bad project files.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use auscope_core::annotations::agreement::agreement;
use auscope_core::annotations::events::EventSpan;
use auscope_core::annotations::openface;
use auscope_core::annotations::store::{Change, FORMAT, Store, project_path};
use auscope_core::annotations::{LabelKey, LabelValue, Source};
use common::*;

fn key(frame: usize, au: &str) -> LabelKey {
    LabelKey { frame, face: 0, au: au.into() }
}

#[test]
fn edits_survive_reopening_and_undo_redo_walks_them_back_and_forth() {
    let dir = scratch("store-roundtrip");
    let path = project_path(&dir.join("clip.mp4"));
    assert!(path.ends_with("clip.mp4.auscope"));
    {
        let mut s = Store::open(&path).expect("create");
        s.put_predictions("piap", &[(key(0, "AU12"), LabelValue::predicted(0.9)), (key(0, "AU06"), LabelValue::predicted(0.2))]).expect("predictions");
        s.edit("ana", "AU12 C", &[Change { key: key(0, "AU12"), value: Some(LabelValue::coded(true, Some(3))) }]).expect("edit 1");
        s.edit("ana", "AU06 on", &[Change { key: key(0, "AU06"), value: Some(LabelValue::coded(true, None)) }]).expect("edit 2");
        s.edit("ben", "AU12 off", &[Change { key: key(0, "AU12"), value: Some(LabelValue::coded(false, None)) }]).expect("other coder");
    }
    let mut s = Store::open(&path).expect("reopen");
    let ana = s.labels(Some(Source::Coder), Some("ana")).expect("labels");
    assert_eq!(ana.len(), 2);
    let au12 = ana.iter().find(|l| l.key.au == "AU12").expect("AU12");
    assert_eq!((au12.value.occurrence, au12.value.intensity), (true, Some(3)));
    assert!(au12.time_ms > 0);
    assert_eq!(s.who(Source::Coder).expect("coders"), vec!["ana".to_string(), "ben".to_string()]);
    assert_eq!(s.labels(Some(Source::Model), None).expect("model").len(), 2);
    // Undo is per coder: ana's last edit goes, ben's stays.
    assert!(s.undo("ana").expect("undo"));
    assert_eq!(s.labels(Some(Source::Coder), Some("ana")).expect("labels").len(), 1);
    assert_eq!(s.labels(Some(Source::Coder), Some("ben")).expect("labels").len(), 1);
    assert!(s.undo("ana").expect("undo"));
    assert!(!s.undo("ana").expect("nothing left"));
    assert!(s.labels(Some(Source::Coder), Some("ana")).expect("labels").is_empty());
    assert!(s.redo("ana").expect("redo"));
    let back = s.labels(Some(Source::Coder), Some("ana")).expect("labels");
    assert_eq!((back.len(), back[0].value.intensity), (1, Some(3)));
    // A new edit clears what could be redone.
    s.edit("ana", "AU12 D", &[Change { key: key(0, "AU12"), value: Some(LabelValue::coded(true, Some(4))) }]).expect("edit");
    assert!(!s.redo("ana").expect("no redo after a new edit"));
    drop(s);
    let s = Store::open(&path).expect("reopen");
    let l = s.frame_labels(0).expect("frame");
    assert_eq!(l.iter().filter(|l| l.source == Source::Coder && l.who == "ana").map(|l| l.value.intensity).collect::<Vec<_>>(), vec![Some(4)]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child side of the crash test: edit until killed, saying after each
/// commit which edit it was.
fn crash_child(path: &str) {
    let mut s = Store::open(std::path::Path::new(path)).expect("open");
    for i in 0usize.. {
        let au = format!("AU{:02}", i % 30 + 1);
        s.edit("coder", "edit", &[Change { key: key(i, &au), value: Some(LabelValue::coded(true, Some((i % 5 + 1) as u8))) }]).expect("edit");
        println!("committed {i}");
    }
}

#[test]
fn a_killed_process_loses_no_committed_edit() {
    if let Ok(path) = std::env::var("AUSCOPE_CRASH_CHILD") {
        crash_child(&path);
        return;
    }
    let dir = scratch("store-crash");
    let path = dir.join("p.auscope");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "a_killed_process_loses_no_committed_edit", "--nocapture", "--test-threads=1"])
        .env("AUSCOPE_CRASH_CHILD", &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("child");
    let mut committed = Vec::new();
    for line in BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("committed ") {
            committed.push(n.parse::<usize>().expect("n"));
            if committed.len() == 150 {
                // SIGKILL: no destructors, no flush, most likely mid-transaction.
                child.kill().expect("kill");
                break;
            }
        }
    }
    let _ = child.wait();
    let s = Store::open(&path).expect("reopen after the kill");
    let labels = s.labels(Some(Source::Coder), Some("coder")).expect("labels");
    for i in committed {
        let au = format!("AU{:02}", i % 30 + 1);
        let l = labels.iter().find(|l| l.key == key(i, &au)).unwrap_or_else(|| panic!("committed edit {i} was lost"));
        assert_eq!(l.value.intensity, Some((i % 5 + 1) as u8));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn openface_csv_round_trips_through_the_store_with_the_same_columns() {
    let reference = shared_data().join("reference/OpenFace_Test.csv");
    let dir = scratch("store-openface");
    let mut s = Store::open(&dir.join("p.auscope")).expect("store");
    let imported = openface::import(&mut s, &reference, "OpenFace").expect("import");
    assert_eq!(imported.frames, 100);
    assert_eq!(imported.aus.len(), 18, "{:?}", imported.aus);
    assert!(imported.ignored.is_empty(), "{:?}", imported.ignored);
    let out = dir.join("out.csv");
    assert_eq!(openface::export(&s, Source::Model, "OpenFace", 30.0, &out).expect("export"), 100);
    let read = |p: &std::path::Path| -> (Vec<String>, Vec<Vec<String>>) {
        let mut rd = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(p).expect("csv");
        let h: Vec<String> = rd.headers().expect("header").iter().map(str::to_string).collect();
        (h, rd.records().map(|r| r.expect("row").iter().map(str::to_string).collect()).collect())
    };
    let (rh, rrows) = read(&reference);
    let (oh, orows) = read(&out);
    let wanted: Vec<&String> = rh.iter().filter(|h| ["frame", "timestamp", "confidence", "success"].contains(&h.as_str()) || h.starts_with("AU")).collect();
    assert_eq!(oh.iter().collect::<Vec<_>>(), wanted, "the same column names, in OpenFace's order");
    for (r, o) in rrows.iter().zip(&orows) {
        for (j, h) in oh.iter().enumerate() {
            let i = rh.iter().position(|x| x == h).expect("column");
            let (a, b): (f64, f64) = (r[i].parse().expect("ref"), o[j].parse().expect("out"));
            assert_eq!(a, b, "{h} differs: {} vs {}", r[i], o[j]);
        }
    }
    // Re-importing the export gives the same labels.
    let mut s2 = Store::open(&dir.join("q.auscope")).expect("store");
    openface::import(&mut s2, &out, "OpenFace").expect("re-import");
    let strip = |v: Vec<auscope_core::annotations::Label>| v.into_iter().map(|l| (l.key, l.value)).collect::<Vec<_>>();
    assert_eq!(strip(s.labels(None, None).expect("a")), strip(s2.labels(None, None).expect("b")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn agreement_between_openface_and_a_coder_who_flipped_one_au() {
    let dir = scratch("store-agreement");
    let mut s = Store::open(&dir.join("p.auscope")).expect("store");
    openface::import(&mut s, &shared_data().join("reference/OpenFace_Test.csv"), "OpenFace").expect("import");
    let of = s.labels(Some(Source::Model), Some("OpenFace")).expect("labels");
    // The coder agrees everywhere except AU12, which they code as the opposite.
    let changes: Vec<Change> = of
        .iter()
        .map(|l| Change { key: l.key.clone(), value: Some(LabelValue::coded(l.value.occurrence != (l.key.au == "AU12"), None)) })
        .collect();
    s.edit("ana", "import", &changes).expect("edit");
    let ana = s.labels(Some(Source::Coder), Some("ana")).expect("labels");
    let r = agreement(&of, &ana);
    assert_eq!(r.len(), 18);
    for a in &r {
        assert_eq!(a.n, 100);
        if a.au == "AU12" {
            assert_eq!(a.f1.unwrap_or(0.0), 0.0, "{a:?}");
            // Every AU12 label disagrees: no agreement beyond chance (kappa
            // 0 when one side is constant, -1 when both vary).
            assert!(a.kappa.is_none_or(|k| k <= 0.0), "{a:?}");
        } else {
            assert!(a.f1.is_none_or(|f| f == 1.0) && a.kappa.is_none_or(|k| (k - 1.0).abs() < 1e-12), "{a:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_project_files_are_refused_clearly_and_left_unchanged() {
    let dir = scratch("store-bad");
    // From a newer auscope.
    let newer = dir.join("newer.auscope");
    {
        let mut s = Store::open(&newer).expect("store");
        s.set_meta("format", &(FORMAT + 1).to_string()).expect("meta");
    }
    let before = std::fs::read(&newer).expect("bytes");
    let err = Store::open(&newer).err().expect("refused").to_string();
    assert!(err.contains("newer auscope") && err.contains("not changed"), "{err}");
    assert_eq!(std::fs::read(&newer).expect("bytes"), before);
    // Format 3 (this version writes 2) says so in words; nothing changes.
    assert_eq!(FORMAT, 2);
    let three = dir.join("three.auscope");
    {
        let mut s = Store::open(&three).expect("store");
        s.add_event("ana", EventSpan::new(0, "AU12", 1, 4)).expect("event");
        s.set_meta("format", "3").expect("meta");
    }
    let before = std::fs::read(&three).expect("bytes");
    let err = Store::open(&three).err().expect("refused").to_string();
    assert!(err.contains("project format 3") && err.contains("reads up to 2") && err.contains("not changed"), "{err}");
    assert_eq!(std::fs::read(&three).expect("bytes"), before);
    // Not a database at all.
    let junk = dir.join("junk.auscope");
    std::fs::write(&junk, b"this is not sqlite, but it is long enough to have a header ................................................").expect("junk");
    let err = Store::open(&junk).err().expect("refused").to_string();
    assert!(err.contains("not an auscope project"), "{err}");
    // Locked by another writer: the edit fails with the reason, and lands once the lock is gone.
    let locked = dir.join("locked.auscope");
    let mut s = Store::open(&locked).expect("store");
    let other = rusqlite::Connection::open(&locked).expect("other");
    other.execute_batch("BEGIN EXCLUSIVE; INSERT INTO meta VALUES ('x', 'y');").expect("lock");
    let change = [Change { key: key(0, "AU12"), value: Some(LabelValue::coded(true, None)) }];
    let err = s.edit("ana", "AU12", &change).err().expect("locked").to_string();
    assert!(err.contains("locked by another program"), "{err}");
    other.execute_batch("ROLLBACK;").expect("unlock");
    s.edit("ana", "AU12", &change).expect("after the lock");
    assert_eq!(s.labels(Some(Source::Coder), None).expect("labels").len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A project made by the release before events (format 1: labels, an
/// analysis of single_face.mp4 with the blendshape baseline, alice's AU12
/// labels on frames 10-39) opens, is upgraded in place after a backup
/// copy, loses nothing, and takes events.
#[test]
fn a_format_1_project_is_upgraded_after_a_backup_and_loses_nothing() {
    let dir = scratch("store-upgrade");
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format1/single_face.mp4.auscope");
    let path = dir.join("single_face.mp4.auscope");
    std::fs::copy(&fixture, &path).expect("copy");
    let old = rusqlite::Connection::open(&fixture).expect("fixture");
    let count = |c: &rusqlite::Connection, table: &str| -> i64 { c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).expect("count") };
    let format: String = old.query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| r.get(0)).expect("format");
    assert_eq!(format, "1");
    let (labels, faces, aus) = (count(&old, "labels"), count(&old, "analysed_faces"), count(&old, "analysed_aus"));
    assert!(labels == 30 && faces == 72 && aus == 72, "{labels} {faces} {aus}");

    let mut s = Store::open(&path).expect("upgrade");
    let up = s.upgraded().cloned().expect("upgraded");
    assert_eq!(up.from, 1);
    assert_eq!(up.backup, dir.join("single_face.mp4.auscope.format1-backup"));
    assert_eq!(s.meta("format").expect("meta").as_deref(), Some("2"));
    // The backup is the old project, as it was.
    let backup = rusqlite::Connection::open(&up.backup).expect("backup");
    let bformat: String = backup.query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| r.get(0)).expect("format");
    assert_eq!((bformat.as_str(), count(&backup, "labels"), count(&backup, "analysed_faces")), ("1", 30, 72));
    // Nothing lost in the upgraded one.
    let alice = s.labels(Some(Source::Coder), Some("alice")).expect("labels");
    assert_eq!(alice.len(), 30);
    assert_eq!(alice.iter().filter(|l| l.value.occurrence).count(), 20);
    assert_eq!(alice.iter().find(|l| l.key.frame == 20).expect("frame 20").value.intensity, Some(3));
    assert_eq!(s.analysed_faces().expect("faces").len(), 72);
    assert_eq!(s.analysed_aus("blendshape-baseline").expect("aus").len(), 72);
    assert!(s.analysis().expect("progress").expect("a run").finished);
    // Events work on it; the person is the analysed face's identity.
    let track = s.analysed_faces().expect("faces")[&(50, 0)].track;
    s.add_event("alice", EventSpan::new(track, "AU06", 45, 55)).expect("event");
    assert_eq!(s.labels(Some(Source::Coder), Some("alice")).expect("labels").iter().filter(|l| l.key.au == "AU06").count(), 11);
    drop(s);
    // Opening again upgrades nothing more.
    let s = Store::open(&path).expect("reopen");
    assert!(s.upgraded().is_none());
    assert_eq!(s.events(Some("alice")).expect("events").len(), 1);
    assert!(!dir.join("single_face.mp4.auscope.format1-backup-2").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
