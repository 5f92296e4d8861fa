//! What defines a training run: the recipe and its settings.

use std::path::PathBuf;

use super::dataset::PairList;
use crate::model::tiling::Tiling;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// The head on a frozen encoder's cached embeddings.
    Fast,
    /// MDKD: common and domain distillation, then end-to-end fine-tuning.
    Full,
    /// Each modality's own parameters only (its controllers, query and hypernetwork) on its
    /// masks, images through the frozen backbone: the other modalities stay exactly as they were.
    Adapt,
}


/// Everything that defines a run; saved as `train_config.json` in the output folder.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub recipe: Recipe,
    /// Dataset folders, each with its modality (None: from dataset.toml / SOURCE.md).
    pub data: Vec<(PathBuf, Option<String>)>,
    /// Pairs from anywhere, e.g. the masks exported in the app, one list per modality.
    #[serde(default)]
    pub lists: Vec<PairList>,
    /// A separate validation folder; otherwise a split of each training folder.
    pub validation: Option<(PathBuf, Option<String>)>,
    pub validation_fraction: f64,
    pub seed: u64,
    /// Epochs of mask training (fine-tuning in the full recipe).
    pub epochs: usize,
    /// Full recipe: epochs of common and of domain distillation before fine-tuning.
    pub common_epochs: usize,
    pub domain_epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Learning rate × this after every epoch (ExponentialLR).
    pub lr_decay: f64,
    /// Starting model (De-LightSAM or LiteMedSAM record); None: the shipped one.
    pub init: Option<PathBuf>,
    /// Teacher encoder for distillation (LiteMedSAM record or checkpoint); None: LiteMedSAM.
    pub teacher: Option<PathBuf>,
    pub out: PathBuf,
    pub cache_dir: PathBuf,
    /// Stop after this many optimiser steps in all (for smoke tests); None: run every epoch.
    pub max_steps: Option<usize>,
    /// Stop after the epoch that crosses this many minutes.
    pub max_minutes: Option<f64>,
    /// Modalities to segment in tiles (`Some`) or whole (`None`) from now on, set in the model's
    /// config; the rest keep what the starting model says.
    #[serde(default)]
    pub tiling: Vec<(String, Option<Tiling>)>,
    /// Modalities whose input is a fixed range of values (`Some([low, high])`) or each image's
    /// own min–max (`None`) from now on, set in the model's config.
    #[serde(default)]
    pub input_range: Vec<(String, Option<[f64; 2]>)>,
}

impl TrainConfig {
    /// Epochs the run's recipe runs in all.
    pub fn planned_epochs(&self) -> usize {
        match self.recipe {
            Recipe::Fast | Recipe::Adapt => self.epochs,
            Recipe::Full => self.common_epochs + self.domain_epochs + self.epochs,
        }
    }

    /// The paper's defaults: Adam, lr 5e-4, ×0.98 per epoch, batch 4.
    pub fn new(data: Vec<(PathBuf, Option<String>)>, out: PathBuf) -> Self {
        Self {
            recipe: Recipe::Fast,
            data,
            lists: Vec::new(),
            validation: None,
            validation_fraction: 0.2,
            seed: 42,
            epochs: 20,
            common_epochs: 2,
            domain_epochs: 2,
            batch_size: 4,
            learning_rate: 5e-4,
            lr_decay: 0.98,
            init: None,
            teacher: None,
            out,
            cache_dir: super::cache::default_root(),
            max_steps: None,
            max_minutes: None,
            tiling: Vec::new(),
            input_range: Vec::new(),
        }
    }
}
