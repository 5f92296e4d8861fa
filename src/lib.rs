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

/// "0.3.0 (commit 1a2b3c4d5e)": the version and the git commit this binary is built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("DELIGHTSAM_GIT_COMMIT"), ")");

/// An error and every cause under it, joined with ": " (a cause already quoted by the message
/// above it is not repeated): the one-line text the CLI prints and the app's threads send.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let line = e.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = e.source();
    }
    text
}

/// The message of a caught panic (`panic!` with a literal or a formatted string), if it has one.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
}
