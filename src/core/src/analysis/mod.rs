//! The analysis engine and what it is made of: tracking with face
//! identities, the per-frame CSV, corpus runs (many files, shards,
//! resume), and runs stored in a video's project.

pub mod corpus;
pub mod engine;
pub mod project;
pub mod table;
pub mod tracker;

pub use engine::{AnalysedFace, Engine, EngineConfig, FrameResult, RunSummary, StageTimes};
pub use tracker::{Tracker, TrackerConfig};
