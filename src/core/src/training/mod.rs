//! Training: the papers' losses, datasets and splits, metrics, and the
//! trainer job that runs them on burn's autodiff.

pub mod losses;
