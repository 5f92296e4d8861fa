//! De-LightSAM Annotator: medical image segmentation with a lightweight SAM, offline.
//!
//! See ARCHITECTURE.md for the layout: `imaging` reads and writes pixels, `app` is the window,
//! `cli` the headless commands.

pub mod app;
pub mod cli;
pub mod engine;
pub mod imaging;
pub mod model;
pub mod train;
