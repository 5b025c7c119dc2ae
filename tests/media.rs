//! Real media from ../shared/data through sources and the face pipeline, and
//! bad input: every failure is a clear error, never a panic.

mod common;

use auscope_core::CoreError;
use auscope_core::face::{DetectorKind, FacePipeline};
use auscope_core::frame::load_image;
use auscope_core::source::{SourceKind, open_source};
use burn::tensor::Device;
use common::*;

fn pipeline() -> FacePipeline {
    FacePipeline::new(DetectorKind::Full, &Device::flex()).expect("pipeline")
}

#[test]
fn photos_give_the_reference_face_counts() {
    let p = pipeline();
    let count = |name: &str| {
        p.faces(&load_image(&face_image(name)).expect("image"))
            .expect("faces")
            .len()
    };
    assert_eq!(count("single_face.jpg"), 1);
    let reference = read_json(&fixture("mediapipe/faces_multi_face.json"));
    assert_eq!(
        count("multi_face.jpg"),
        reference["full"].as_array().expect("faces").len()
    );
    assert_eq!(count("multi_face.jpg"), 5);
    assert_eq!(count("free-mountain-vector-01.jpg"), 0);
}

#[test]
fn landmarks68_sit_where_the_face_parts_are() {
    let p = pipeline();
    let faces = p
        .faces(&load_image(&face_image("single_face.jpg")).expect("image"))
        .expect("faces");
    let l = &faces[0].landmarks68;
    assert_eq!(l.len(), 68);
    let b = faces[0].detection.bbox;
    // Eyes above the nose tip, nose tip above the mouth, chin lowest; right
    // eye (36) on the image's left of the left eye (45); jaw runs left to right.
    assert!(l[36][1] < l[30][1] && l[45][1] < l[30][1]);
    assert!(l[30][1] < l[62][1] && l[62][1] < l[8][1]);
    assert!(l[36][0] < l[45][0] && l[48][0] < l[54][0]);
    assert!(l[0][0] < l[8][0] && l[8][0] < l[16][0]);
    let cx = (b[0] + b[2]) / 2.0;
    assert!(
        (l[30][0] - cx).abs() < 0.2 * (b[2] - b[0]),
        "nose tip near the box centre"
    );
}

#[test]
fn single_face_video_decodes_72_frames_with_a_face_in_each() {
    let mut source = open_source(&video("single_face.mp4")).expect("video");
    let info = source.info().clone();
    assert_eq!(info.kind, SourceKind::Video);
    assert_eq!(info.frame_count, 72);
    assert!((info.fps.expect("fps") - 30.0).abs() < 1e-3);
    let p = pipeline();
    for i in 0..72 {
        let frame = source.frame(i).expect("frame");
        assert_eq!((frame.image.width(), frame.image.height()), (640, 360));
        assert_eq!(p.faces(&frame.image).expect("faces").len(), 1, "frame {i}");
    }
    assert!(matches!(
        source.frame(72),
        Err(CoreError::FrameOutOfRange {
            index: 72,
            count: 72
        })
    ));
}

#[test]
fn seeking_gives_the_same_frame_as_reading_on() {
    let path = video("WolfgangLanger_Pexels.mp4");
    let mut sequential = open_source(&path).expect("video");
    let mut frames = Vec::new();
    for i in 0..=130 {
        frames.push(sequential.frame(i).expect("frame"));
    }
    let mut seeking = open_source(&path).expect("video");
    for i in [130, 3, 97, 64, 0, 129] {
        let f = seeking.frame(i).expect("seek");
        assert!(
            f.image.as_raw() == frames[i].image.as_raw(),
            "frame {i} differs after a seek"
        );
    }
}

#[test]
fn hevc_mov_and_faceless_video_decode() {
    let mut mov = open_source(&video("face_noface.mov")).expect("mov");
    assert_eq!(mov.info().frame_count, 169);
    assert_eq!(mov.frame(168).expect("last frame").image.width(), 960);
    let mut none = open_source(&video("no_face.mp4")).expect("mp4");
    // 98 packets, of which the edit list discards 3: 95 frames, all decodable.
    assert_eq!(none.info().frame_count, 95);
    let p = pipeline();
    for i in [94, 0, 40] {
        assert!(
            p.faces(&none.frame(i).expect("frame").image)
                .expect("faces")
                .is_empty(),
            "frame {i}"
        );
    }
}

#[test]
fn folder_of_images_is_a_source() {
    let mut folder = open_source(&shared_data().join("faces")).expect("folder");
    assert_eq!(folder.info().kind, SourceKind::Folder);
    assert_eq!(folder.info().frame_count, 7);
    assert!(folder.frame(6).is_ok());
    let empty = scratch("empty-folder");
    assert!(matches!(
        open_source(&empty),
        Err(CoreError::EmptyFolder(_))
    ));
}

#[test]
fn corrupt_truncated_and_unsupported_files_are_clear_errors() {
    let dir = scratch("bad-input");
    let garbage = dir.join("garbage.jpg");
    std::fs::write(&garbage, b"this is not a jpeg at all").expect("write");
    let err = open_source(&garbage)
        .err()
        .expect("garbage must fail")
        .to_string();
    assert!(
        err.contains("garbage.jpg") && err.contains("not a readable image"),
        "{err}"
    );

    let bytes = std::fs::read(face_image("single_face.jpg")).expect("read");
    let truncated = dir.join("truncated.jpg");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).expect("write");
    // A truncated JPEG either decodes partially or fails cleanly; no panic.
    if let Ok(mut s) = open_source(&truncated) {
        let frame = s.frame(0).expect("frame");
        pipeline()
            .faces(&frame.image)
            .expect("faces on a partial image");
    }

    let fake_video = dir.join("fake.mp4");
    std::fs::write(&fake_video, b"\x00\x00\x00\x18ftypmp42 not really a video").expect("write");
    let err = open_source(&fake_video)
        .err()
        .expect("fake video must fail")
        .to_string();
    assert!(
        err.contains("fake.mp4") && err.contains("not a readable video"),
        "{err}"
    );

    let video_bytes = std::fs::read(video("single_face.mp4")).expect("read");
    let cut = dir.join("cut.mp4");
    std::fs::write(&cut, &video_bytes[..video_bytes.len() / 2]).expect("write");
    match open_source(&cut) {
        Ok(mut s) => {
            let n = s.info().frame_count;
            for i in 0..n {
                let _ = s.frame(i); // errors are fine, panics are not
            }
        }
        Err(e) => assert!(e.to_string().contains("cut.mp4"), "{e}"),
    }

    let text = dir.join("notes.txt");
    std::fs::write(&text, "hello").expect("write");
    assert!(matches!(
        open_source(&text),
        Err(CoreError::Unsupported { .. })
    ));
    assert!(matches!(
        open_source(&dir.join("missing.png")),
        Err(CoreError::Io { .. })
    ));
}

#[test]
fn grayscale_alpha_and_huge_images() {
    let dir = scratch("odd-images");
    let rgb = load_image(&face_image("single_face.jpg")).expect("image");
    let gray = image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8();
    gray.save(dir.join("gray.png")).expect("save");
    let rgba = image::DynamicImage::ImageRgb8(rgb).to_rgba8();
    rgba.save(dir.join("alpha.png")).expect("save");
    let p = pipeline();
    for name in ["gray.png", "alpha.png"] {
        let img = load_image(&dir.join(name)).expect(name);
        assert_eq!(p.faces(&img).expect("faces").len(), 1, "{name}");
    }
    image::RgbImage::new(17_000, 2)
        .save(dir.join("wide.png"))
        .expect("save");
    let err = load_image(&dir.join("wide.png")).err().expect("too large");
    assert!(
        matches!(err, CoreError::TooLarge { width: 17_000, .. }),
        "{err}"
    );
    // Tiny images work and simply have no face.
    image::RgbImage::new(3, 3)
        .save(dir.join("tiny.png"))
        .expect("save");
    assert!(
        p.faces(&load_image(&dir.join("tiny.png")).expect("tiny"))
            .expect("faces")
            .is_empty()
    );
}
