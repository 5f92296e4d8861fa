#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The crate's root folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file in tests/data (always present).
pub fn fixture(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(relative)
}

/// `../shared/data/<relative>`. Tests that need it fail, loudly, when it is missing.
pub fn shared(relative: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(
        root.is_dir(),
        "this test needs the shared data folder at {} (see README: Test data)",
        root.display()
    );
    let path = root.join(relative);
    assert!(path.exists(), "missing shared file {}", path.display());
    path
}

/// One record of tests/reference/*.json, as written by tests/reference/dicom_reference.py.
#[derive(Debug, serde::Deserialize)]
pub struct Reference {
    pub file: String,
    pub decodes: bool,
    pub photometric: Option<String>,
    pub rows: Option<u32>,
    pub cols: Option<u32>,
    pub frames: Option<u32>,
    pub bits_allocated: Option<u16>,
    pub modality: Option<String>,
    pub transfer_syntax_uid: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
}

pub fn references(name: &str) -> Vec<Reference> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
