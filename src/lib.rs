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

/// "0.3.0 (commit 1a2b3c4d5e)": the version and the git commit. A packaged binary carries the
/// commit it was built from (build.rs); a development build asks git in its source tree, once.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let commit = match env!("DELIGHTSAM_GIT_COMMIT") {
            "" => source_tree_commit().map_or("commit unknown".to_string(), |c| format!("source tree at commit {c}")),
            stamped => format!("commit {stamped}"),
        };
        format!("{} ({commit})", env!("CARGO_PKG_VERSION"))
    })
}

/// HEAD of the source tree this development build came from, "+changes" when files differ.
fn source_tree_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").arg("-C").arg(env!("CARGO_MANIFEST_DIR")).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short=10", "HEAD"]).filter(|head| !head.is_empty())?;
    let changed = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|status| !status.is_empty());
    Some(if changed { format!("{head}+changes") } else { head })
}

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
