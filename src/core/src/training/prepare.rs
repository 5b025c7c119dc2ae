//! Labelled frames -> face context crops held in memory, so each epoch draws
//! fresh augmentations without decoding video or finding faces again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use image::RgbImage;

use super::data::{Dataset, Transform};
use crate::error::CoreError;
use crate::face::FacePipeline;
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
    pipeline: &FacePipeline,
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
    for (media, samples) in by_media {
        let mut source = match open_source(media) {
            Ok(s) => s,
            Err(e) => {
                report.unreadable.push(e.to_string());
                done += samples.len();
                continue;
            }
        };
        for i in samples {
            done += 1;
            progress(done, idx.len());
            let frame = match source.frame(data.samples[i].frame) {
                Ok(f) => f,
                Err(e) => {
                    report.unreadable.push(format!("{} frame {}: {e}", media.display(), data.samples[i].frame));
                    continue;
                }
            };
            let faces = pipeline.faces(&frame.image)?;
            let chosen = match data.samples[i].face {
                Some(k) => faces.get(k),
                None => crate::face::largest(&faces),
            };
            let Some(face) = chosen else {
                report.no_face += 1;
                continue;
            };
            let mut roi = model_roi(face);
            roi.side *= CONTEXT;
            let context = to_rgb_image(&warp(&frame.image, &roi, ctx), ctx);
            let landmarks = face.landmarks68.iter().map(|&p| roi.crop_from_frame(p)).collect();
            out.push(Prepared { context, landmarks, labels: data.samples[i].labels.clone(), sample: i });
        }
    }
    report.prepared = out.len();
    Ok((out, report))
}
