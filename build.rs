//! Records the git commit the binary is built from (`delightsam --version`, crash reports).
//! From a source tree without git (an unpacked archive) it is `DELIGHTSAM_GIT_COMMIT` if set,
//! else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=DELIGHTSAM_GIT_COMMIT");
    let git = Path::new(".git");
    if git.is_dir() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
            && let Some(reference) = head.strip_prefix("ref: ")
        {
            println!("cargo:rerun-if-changed=.git/{}", reference.trim());
        }
        println!("cargo:rerun-if-changed=.git/packed-refs");
    }
    let commit = std::env::var("DELIGHTSAM_GIT_COMMIT").ok().filter(|c| !c.is_empty()).or_else(git_commit);
    println!("cargo:rustc-env=DELIGHTSAM_GIT_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}

fn git_commit() -> Option<String> {
    let out = Command::new("git").args(["rev-parse", "--short=10", "HEAD"]).output().ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}
