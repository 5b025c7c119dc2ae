//! auscope's core: frames, faces, models, explainers, training, annotation
//! store and jobs. No GUI code lives here.
//!
//! Data flow: `FrameSource -> Frame -> FacePipeline -> Face -> FaceCrop -> models`.

pub mod analysis;
pub mod annotations;
pub mod compute;
pub mod embedded;
pub mod error;
pub mod explain;
pub mod face;
mod files;
pub mod frame;
pub mod graph;
pub mod jobs;
pub mod models;
pub mod training;
pub mod report;
pub mod shared_buffer;
pub mod source;

pub use compute::{Compute, DeviceChoice};
pub use error::CoreError;
