//! Stamps the git commit into a packaged binary: scripts/package.sh sets DELIGHTSAM_GIT_COMMIT.
//! A development build is not stamped (`delightsam::version` asks git in the source tree at run
//! time): stamping every commit would rerun this script and rebuild the whole crate after each
//! `git commit`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DELIGHTSAM_GIT_COMMIT");
    let commit = std::env::var("DELIGHTSAM_GIT_COMMIT").unwrap_or_default();
    println!("cargo:rustc-env=DELIGHTSAM_GIT_COMMIT={}", commit.trim());
}
