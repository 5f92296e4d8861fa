#![allow(dead_code)]
//! Helpers shared by the integration tests.

pub mod window;

use std::path::PathBuf;

use burn::module::Param;
use burn::prelude::*;
use delightsam::model::backend::Cpu;
use delightsam::model::weights;
use delightsam::model::{DeLightSam, DeLightSamConfig};

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
    /// Frame 0's rescale, from its functional group in an enhanced file.
    #[serde(default)]
    pub rescale: Option<ReferenceRescale>,
    #[serde(default)]
    pub modality_lut: Option<bool>,
    #[serde(default)]
    pub orientation: Option<Vec<f64>>,
    #[serde(default)]
    pub positions: Option<Vec<Vec<f64>>>,
}

#[derive(Debug, serde::Deserialize)]
pub struct ReferenceRescale {
    pub slope: f64,
    pub intercept: f64,
}

pub fn references(name: &str) -> Vec<Reference> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// De-LightSAM from the shipped LiteMedSAM weights with every part active: non-zero controllers
/// and a non-zero dense prompt (a fresh model's are neutral, which would hide mistakes).
pub fn active_delightsam(config: &DeLightSamConfig, device: &burn::tensor::Device<Cpu>) -> DeLightSam<Cpu> {
    let lite = weights::load::<Cpu>(&weights::default_record_path(), device).expect("shipped LiteMedSAM record");
    let mut model = DeLightSam::from_litemedsam(lite, config, device).unwrap();
    for block in model.image_encoder.stages.iter_mut().flat_map(|s| s.blocks.iter_mut()) {
        let c = block.controller.as_mut().unwrap();
        c.prefix_gate = Param::from_tensor(c.prefix_gate.val().add_scalar(0.5));
        let up = c.up.val();
        c.up = Param::from_tensor(Tensor::random(up.dims(), burn::tensor::Distribution::Normal(0.0, 0.02), device));
    }
    model.sp_generator.prompt_norm.weight = Param::from_tensor(Tensor::ones([256], device).mul_scalar(0.1));
    model
}
