//! auscope's GUI shell over `auscope_core`: window, viewer, timeline, panels.

pub mod app;
pub mod gpu;
pub mod viewer;
pub mod worker;
