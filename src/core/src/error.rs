//! The core's one error type; each variant's text is shown to users as is.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("cannot read {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error("{path}: not a readable image ({reason})")]
    Image { path: PathBuf, reason: String },
    #[error(
        "{path}: unsupported file type (images: jpg png bmp gif tif webp pnm; video: mp4 mov avi mkv)"
    )]
    Unsupported { path: PathBuf },
    #[error("{path}: image is {width}x{height}, larger than the {limit}x{limit} pixel limit")]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: u32,
    },
    #[error("video {path}: {reason}")]
    Video { path: PathBuf, reason: String },
    #[error("frame {index} is out of range (the source has {count} frames)")]
    FrameOutOfRange { index: usize, count: usize },
    #[error("{0} contains no images")]
    EmptyFolder(PathBuf),
    #[error("compute device: {0}")]
    Device(String),
    #[error("model weights: {0}")]
    Weights(String),
    #[error("model graph: {0}")]
    Graph(String),
    #[error("model: {0}")]
    Model(String),
    #[error("label file {path}: {reason}")]
    LabelFile { path: PathBuf, reason: String },
    #[error("training data: {0}")]
    Data(String),
    #[error("training: {0}")]
    Training(String),
    #[error("explanation: {0}")]
    Explain(String),
    #[error("project {0}")]
    Project(String),
}
