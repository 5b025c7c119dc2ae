//! auscope's GUI shell over `auscope_core`: window, viewer, timeline, panels.

pub mod analysis_job;
pub mod app;
pub mod correlation_job;
pub mod correlation_ui;
pub mod explain_ui;
pub mod finetune_ui;
pub mod gpu;
pub mod overlay_gpu;
pub mod review_ui;
pub mod viewer;
pub mod worker;
