//! Labelled frames -> face context crops held in memory, so each epoch draws
//! fresh augmentations without decoding video or finding faces again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use image::RgbImage;

use super::data::{Dataset, Transform};
use crate::error::CoreError;
use std::ops::ControlFlow;

use crate::analysis::{Engine, FrameResult};
use crate::face::crop::model_roi;
use crate::face::ibug68::IBUG68_FLIP;
use crate::frame::{Roi, to_rgb_image, warp};
use crate::source::open_source;

/// The context crop is this much larger than the model crop, so rotations,
/// zoom-outs and shifts sample real pixels.
pub const CONTEXT: f32 = 1.5;

/// One face ready for training.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Square crop around the model ROI, `CONTEXT` times its side.
    pub context: RgbImage,
    /// The 68 landmarks in context-normalised coordinates ([0,1]^2).
    pub landmarks: Vec<[f32; 2]>,
    pub labels: Vec<f32>,
    /// Index of the sample in its dataset.
    pub sample: usize,
}

impl Prepared {
    /// The model crop under `t` (HWC 0..255) and the landmarks in
    /// crop-normalised coordinates.
    pub fn view(&self, size: usize, t: &Transform) -> (Vec<f32>, Vec<[f32; 2]>) {
        let c = self.context.width() as f32;
        let base = c / CONTEXT;
        let roi = Roi {
            center: [c / 2.0 + t.shift[0] * base, c / 2.0 + t.shift[1] * base],
            side: base / t.scale,
            angle: t.angle,
        };
        let mut buf = warp(&self.context, &roi, size);
        let mut lm: Vec<[f32; 2]> = self.landmarks.iter().map(|p| roi.crop_from_frame([p[0] * c, p[1] * c])).collect();
        if t.flip {
            for row in buf.chunks_exact_mut(size * 3) {
                for i in 0..size / 2 {
                    for ch in 0..3 {
                        row.swap(i * 3 + ch, (size - 1 - i) * 3 + ch);
                    }
                }
            }
            // Mirror the points and swap left for right, so index k stays the
            // same anatomical point (the FAN's heat-map targets need this).
            let mirrored: Vec<[f32; 2]> = lm.iter().map(|p| [1.0 - p[0], p[1]]).collect();
            if mirrored.len() == IBUG68_FLIP.len() {
                lm = IBUG68_FLIP.iter().map(|&k| mirrored[k]).collect();
            } else {
                lm = mirrored;
            }
        }
        (buf, lm)
    }
}

/// What preparation left out, and why.
#[derive(Debug, Clone, Default)]
pub struct PrepareReport {
    pub prepared: usize,
    pub no_face: usize,
    pub unreadable: Vec<String>,
}

/// Decode each sample's frame, take its face (the largest unless the
/// sample names one), and keep a context
/// crop at `size * CONTEXT` pixels. Unreadable media and frames without a
/// face are counted, not fatal; `progress(done, total)` is called per sample.
pub fn prepare(
    data: &Dataset,
    idx: &[usize],
    size: usize,
    engine: &Engine,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Prepared>, PrepareReport), CoreError> {
    let mut by_media: BTreeMap<&PathBuf, Vec<usize>> = BTreeMap::new();
    for &i in idx {
        by_media.entry(&data.samples[i].media).or_default().push(i);
    }
    let ctx = (size as f32 * CONTEXT).round() as usize;
    let mut out = Vec::with_capacity(idx.len());
    let mut report = PrepareReport::default();
    let mut done = 0;
    for (media, mut samples) in by_media {
        let source = match open_source(media) {
            Ok(s) => s,
            Err(e) => {
                report.unreadable.push(e.to_string());
                done += samples.len();
                continue;
            }
        };
        // One engine pass over the media's labelled frames, in frame order.
        samples.sort_by_key(|&i| data.samples[i].frame);
        let mut frames: Vec<usize> = samples.iter().map(|&i| data.samples[i].frame).collect();
        frames.dedup();
        let mut next = 0;
        let take = |r: &FrameResult, i: usize, out: &mut Vec<Prepared>, report: &mut PrepareReport| {
            let sample = &data.samples[i];
            let (Some(frame), None) = (&r.frame, &r.error) else {
                report.unreadable.push(format!("{} frame {}: {}", media.display(), sample.frame, r.error.clone().unwrap_or_default()));
                return;
            };
            let chosen = match sample.face {
                Some(k) => r.faces.get(k),
                None => crate::face::largest_index(r.faces.iter().map(|f| &f.face)).map(|k| &r.faces[k]),
            };
            let Some(face) = chosen.map(|f| &f.face) else {
                report.no_face += 1;
                return;
            };
            let mut roi = model_roi(face);
            roi.side *= CONTEXT;
            let context = to_rgb_image(&warp(&frame.image, &roi, ctx), ctx);
            let landmarks = face.landmarks68.iter().map(|&p| roi.crop_from_frame(p)).collect();
            out.push(Prepared { context, landmarks, labels: sample.labels.clone(), sample: i });
        };
        engine.run(source, frames, engine.tracker(), &mut |r, _| {
            while let Some(&i) = samples.get(next).filter(|&&i| data.samples[i].frame == r.index) {
                next += 1;
                done += 1;
                progress(done, idx.len());
                take(&r, i, &mut out, &mut report);
            }
            ControlFlow::Continue(())
        })?;
        for &i in &samples[next..] {
            done += 1;
            progress(done, idx.len());
            report.unreadable.push(format!("{} frame {}: not decoded (the video breaks off there?)", media.display(), data.samples[i].frame));
        }
    }
    report.prepared = out.len();
    Ok((out, report))
}
