//! Frame sources: one image, a folder of images, or a video.
//!
//! Video is decoded by Debian's `ffmpeg`/`ffprobe` binaries, streamed as raw
//! RGB over a pipe. Chosen over linking libav*: no C bindings to build (CI
//! time), any codec the system FFmpeg has (HEVC .mov included), and a
//! corrupt file can only kill the child process, never the app. Only the
//! frame in hand is held in memory, so long videos stream.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;

use image::RgbImage;

use crate::error::CoreError;
use crate::frame::{Frame, FrameId, load_image};

pub const IMAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "bmp", "gif", "tif", "tiff", "webp", "pnm", "ppm", "pgm",
];
pub const VIDEO_EXTENSIONS: &[&str] = &["mp4", "mov", "avi", "mkv", "m4v", "webm"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Image,
    Folder,
    Video,
}

/// What a source holds, known before any frame is decoded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceInfo {
    pub path: PathBuf,
    pub kind: SourceKind,
    pub frame_count: usize,
    /// Frames per second, for videos.
    pub fps: Option<f64>,
}

pub trait FrameSource: Send {
    fn info(&self) -> &SourceInfo;
    /// Decode frame `index` (0-based). Any index may be asked in any order.
    fn frame(&mut self, index: usize) -> Result<Frame, CoreError>;
    /// Seconds from the first frame to frame `index` (videos: presentation times).
    fn time_s(&self, _index: usize) -> Option<f64> {
        None
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Open a path as a frame source, by what it is: folder, video or image.
pub fn open_source(path: &Path) -> Result<Box<dyn FrameSource>, CoreError> {
    let meta = std::fs::metadata(path).map_err(|e| CoreError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if meta.is_dir() {
        return Ok(Box::new(FolderSource::open(path)?));
    }
    let ext = extension(path);
    if VIDEO_EXTENSIONS.contains(&ext.as_str()) {
        Ok(Box::new(VideoSource::open(path)?))
    } else if IMAGE_EXTENSIONS.contains(&ext.as_str()) {
        Ok(Box::new(ImageSource::open(path)?))
    } else {
        Err(CoreError::Unsupported {
            path: path.to_owned(),
        })
    }
}

fn check_index(index: usize, count: usize) -> Result<(), CoreError> {
    if index < count {
        Ok(())
    } else {
        Err(CoreError::FrameOutOfRange { index, count })
    }
}

pub struct ImageSource {
    info: SourceInfo,
    image: Arc<RgbImage>,
}

impl ImageSource {
    pub fn open(path: &Path) -> Result<Self, CoreError> {
        let image = Arc::new(load_image(path)?);
        let info = SourceInfo {
            path: path.to_owned(),
            kind: SourceKind::Image,
            frame_count: 1,
            fps: None,
        };
        Ok(ImageSource { info, image })
    }
}

impl FrameSource for ImageSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn frame(&mut self, index: usize) -> Result<Frame, CoreError> {
        check_index(index, 1)?;
        Ok(Frame {
            id: FrameId { index },
            image: self.image.clone(),
        })
    }
}

/// A folder of images in file-name order; each is decoded when asked for.
pub struct FolderSource {
    info: SourceInfo,
    files: Vec<PathBuf>,
}

impl FolderSource {
    pub fn open(dir: &Path) -> Result<Self, CoreError> {
        let entries = std::fs::read_dir(dir).map_err(|e| CoreError::Io {
            path: dir.to_owned(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && IMAGE_EXTENSIONS.contains(&extension(p).as_str()))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(CoreError::EmptyFolder(dir.to_owned()));
        }
        let info = SourceInfo {
            path: dir.to_owned(),
            kind: SourceKind::Folder,
            frame_count: files.len(),
            fps: None,
        };
        Ok(FolderSource { info, files })
    }
}

impl FrameSource for FolderSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn frame(&mut self, index: usize) -> Result<Frame, CoreError> {
        check_index(index, self.files.len())?;
        Ok(Frame {
            id: FrameId { index },
            image: Arc::new(load_image(&self.files[index])?),
        })
    }
}

/// A running `ffmpeg` that writes raw RGB frames from `next` on.
struct Decoder {
    child: Child,
    stdout: ChildStdout,
    next: usize,
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct VideoSource {
    info: SourceInfo,
    /// Presentation time of each frame in seconds, ascending.
    frame_times: Vec<f64>,
    width: u32,
    height: u32,
    decoder: Option<Decoder>,
    /// Seeking forward by up to this many frames reads on instead of restarting ffmpeg.
    max_skip: usize,
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<ProbeStream>,
}

#[derive(serde::Deserialize)]
struct ProbeStream {
    width: Option<u32>,
    height: Option<u32>,
    r_frame_rate: Option<String>,
    avg_frame_rate: Option<String>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
}

fn parse_rate(rate: &str) -> Option<f64> {
    let (n, d) = rate.split_once('/').unwrap_or((rate, "1"));
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0.0 && d > 0.0).then_some(n / d)
}

/// Presentation times of the frames a decoder will output, from the packet
/// list (demuxing only, no decoding). Packets flagged D are dropped by the
/// container's edit list and never become frames.
fn frame_times(path: &Path) -> Result<Vec<f64>, CoreError> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CoreError::Video {
            path: path.to_owned(),
            reason: format!("cannot run ffprobe ({e})"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut times: Vec<f64> = text
        .lines()
        .filter_map(|line| {
            let (pts, flags) = line.split_once(',').unwrap_or((line, ""));
            let t: f64 = pts.trim().parse().ok()?;
            (!flags.contains('D')).then_some(t)
        })
        .collect();
    times.sort_by(f64::total_cmp);
    Ok(times)
}

impl VideoSource {
    pub fn open(path: &Path) -> Result<Self, CoreError> {
        let err = |reason: String| CoreError::Video {
            path: path.to_owned(),
            reason,
        };
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
            .arg("stream=width,height,r_frame_rate,avg_frame_rate:stream_side_data=rotation")
            .args(["-of", "json"])
            .arg(path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                err(format!(
                    "cannot run ffprobe ({e}); install FFmpeg (Debian: apt-get install ffmpeg)"
                ))
            })?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            return Err(err(format!("not a readable video: {}", msg.trim())));
        }
        let probe: Probe =
            serde_json::from_slice(&out.stdout).map_err(|e| err(format!("ffprobe output: {e}")))?;
        let stream = probe
            .streams
            .into_iter()
            .next()
            .ok_or_else(|| err("no video stream".into()))?;
        let (mut width, mut height) = match (stream.width, stream.height) {
            (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
            _ => return Err(err("video stream has no frame size".into())),
        };
        // ffmpeg applies rotation metadata when decoding; report the rotated size.
        let rotated = stream.side_data_list.iter().any(|sd| {
            sd.get("rotation")
                .and_then(|r| r.as_f64())
                .is_some_and(|r| (r.abs() - 90.0).abs() < 1.0)
        });
        if rotated {
            std::mem::swap(&mut width, &mut height);
        }
        let frame_times = frame_times(path)?;
        let frame_count = frame_times.len();
        if frame_count == 0 {
            return Err(err("the video stream has no frames".into()));
        }
        // The mean rate of the frames actually shown; container averages
        // count the packets an edit list discards.
        let fps = match (frame_times.first(), frame_times.last()) {
            (Some(first), Some(last)) if frame_count > 1 && last > first => {
                Some((frame_count - 1) as f64 / (last - first))
            }
            _ => stream
                .avg_frame_rate
                .as_deref()
                .and_then(parse_rate)
                .or_else(|| stream.r_frame_rate.as_deref().and_then(parse_rate)),
        };
        if width > crate::frame::MAX_IMAGE_SIDE || height > crate::frame::MAX_IMAGE_SIDE {
            return Err(err(format!("frame size {width}x{height} is too large")));
        }
        let info = SourceInfo {
            path: path.to_owned(),
            kind: SourceKind::Video,
            frame_count,
            fps,
        };
        Ok(VideoSource {
            info,
            frame_times,
            width,
            height,
            decoder: None,
            max_skip: 48,
        })
    }

    fn start(&self, index: usize) -> Result<Decoder, CoreError> {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error"]);
        if index > 0 {
            // Input seeking is frame-accurate when decoding: ffmpeg decodes
            // from the previous keyframe and drops frames before the target.
            // Seek to midway between the previous frame and this one, so
            // rounding can neither skip it nor land on its predecessor.
            let t = (self.frame_times[index - 1] + self.frame_times[index]) / 2.0;
            cmd.args(["-ss", &format!("{t:.6}")]);
        }
        cmd.arg("-i")
            .arg(&self.info.path)
            .args([
                "-map",
                "0:v:0",
                "-fps_mode",
                "passthrough",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "rgb24",
                "-",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| CoreError::Video {
            path: self.info.path.clone(),
            reason: format!(
                "cannot run ffmpeg ({e}); install FFmpeg (Debian: apt-get install ffmpeg)"
            ),
        })?;
        let stdout = child.stdout.take().ok_or_else(|| CoreError::Video {
            path: self.info.path.clone(),
            reason: "ffmpeg has no output pipe".into(),
        })?;
        Ok(Decoder {
            child,
            stdout,
            next: index,
        })
    }

    fn read_next(&mut self) -> Result<RgbImage, CoreError> {
        let size = self.width as usize * self.height as usize * 3;
        let mut buf = vec![0u8; size];
        let decoder = self.decoder.as_mut().ok_or_else(|| CoreError::Video {
            path: self.info.path.clone(),
            reason: "decoder not started".into(),
        })?;
        let index = decoder.next;
        if let Err(e) = decoder.stdout.read_exact(&mut buf) {
            self.decoder = None;
            return Err(CoreError::Video {
                path: self.info.path.clone(),
                reason: format!(
                    "frame {index} could not be decoded (truncated or corrupt file?): {e}"
                ),
            });
        }
        decoder.next += 1;
        RgbImage::from_raw(self.width, self.height, buf).ok_or_else(|| CoreError::Video {
            path: self.info.path.clone(),
            reason: "frame buffer size mismatch".into(),
        })
    }
}

impl FrameSource for VideoSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn time_s(&self, index: usize) -> Option<f64> {
        Some(self.frame_times.get(index)? - self.frame_times.first()?)
    }

    fn frame(&mut self, index: usize) -> Result<Frame, CoreError> {
        check_index(index, self.info.frame_count)?;
        let reuse =
            matches!(&self.decoder, Some(d) if d.next <= index && index - d.next <= self.max_skip);
        if !reuse {
            self.decoder = Some(self.start(index)?);
        }
        loop {
            let image = self.read_next()?;
            let done = self.decoder.as_ref().is_none_or(|d| d.next > index);
            if done {
                return Ok(Frame {
                    id: FrameId { index },
                    image: Arc::new(image),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(parse_rate("30/1"), Some(30.0));
        assert!((parse_rate("24000/1001").unwrap_or(0.0) - 23.976).abs() < 1e-3);
        assert_eq!(parse_rate("0/0"), None);
    }

    #[test]
    fn unknown_extension_is_unsupported() {
        let dir = std::env::temp_dir().join("auscope-unsupported-test");
        std::fs::create_dir_all(&dir).ok();
        let f = dir.join("notes.txt");
        std::fs::write(&f, "hello").ok();
        assert!(matches!(
            open_source(&f),
            Err(CoreError::Unsupported { .. })
        ));
    }
}
