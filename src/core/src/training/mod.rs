//! Training: the papers' losses, datasets and splits, metrics, and the
//! trainer job that runs them on burn's autodiff.

pub mod config;
pub mod data;
pub mod finetune;
pub mod losses;
pub mod metrics;
pub mod prepare;
pub mod regions;
pub mod trainer;
