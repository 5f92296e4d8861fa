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

/// The message of a caught panic (`panic!` with a literal or a formatted string), if it has one.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
}
