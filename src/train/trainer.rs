//! The training loop for both recipes (see MODEL.md and ARCHITECTURE.md):
//! - fast: the encoder is frozen; embeddings are computed once (cached on disk) and the
//!   SP-Generator and QM-Decoder train on them with the mask and patch losses;
//! - full (MDKD): common distillation (backbone ← teacher embeddings, no controller), domain
//!   distillation (controllers only ← medical teacher), then end-to-end fine-tuning with
//!   augmentation and the mask and patch losses.
//!
//! Every epoch writes `model.bpk` + `model.json` (the last good weights), `state.json` (where to
//! resume) and a line of `metrics.jsonl`; the best validation Dice is kept as `best.bpk`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::augment::{Rng, augment};
use super::cache::{EmbeddingCache, file_hash};
use super::dataset::{self, DatasetError, Pair, PairList};
use super::losses;
use super::metrics;
use crate::model::preprocess::{self, Geometry};
use crate::model::weights::{self, Provenance, WeightsError};
use crate::model::{DeLightSam, TrainStage};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    Fast,
    Full,
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
}

impl TrainConfig {
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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("{0}")]
    Modality(#[from] crate::model::modality::ModalityError),
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Sample { path: String, reason: String },
    #[error(
        "the loss became {value} at step {step} (epoch {epoch}); training stopped. The last good \
         checkpoint is {}{}",
        checkpoint.display(),
        if *had_checkpoint { "" } else { " (none written yet)" }
    )]
    NonFinite { value: f32, step: usize, epoch: usize, checkpoint: PathBuf, had_checkpoint: bool },
    #[error("training was stopped before the first step; nothing was trained")]
    StoppedEarly,
    #[error("{0}")]
    Other(String),
}

/// Pause and stop for a run on another thread. Both take effect between optimiser steps (or
/// between images while embeddings are prepared); a stopped run saves its current weights as
/// `model.bpk` first, so it can be resumed.
#[derive(Debug, Clone, Default)]
pub struct Control(Arc<ControlState>);

#[derive(Debug, Default)]
struct ControlState {
    stop: AtomicBool,
    /// The run is waiting in a pause (not in the middle of a step).
    parked: AtomicBool,
    paused: Mutex<bool>,
    changed: Condvar,
}

impl Control {
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.changed.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stop.load(Ordering::SeqCst)
    }

    pub fn set_paused(&self, paused: bool) {
        *self.0.paused.lock().unwrap_or_else(|e| e.into_inner()) = paused;
        self.0.changed.notify_all();
    }

    pub fn is_paused(&self) -> bool {
        *self.0.paused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Paused and waiting: the step that was running when pause was asked for has ended.
    pub fn is_parked(&self) -> bool {
        self.0.parked.load(Ordering::SeqCst)
    }

    /// Blocks while paused (and not stopped); returns how long.
    fn wait_while_paused(&self) -> Duration {
        let start = Instant::now();
        let mut paused = self.0.paused.lock().unwrap_or_else(|e| e.into_inner());
        while *paused && !self.is_stopped() {
            self.0.parked.store(true, Ordering::SeqCst);
            paused = self.0.changed.wait(paused).unwrap_or_else(|e| e.into_inner());
        }
        self.0.parked.store(false, Ordering::SeqCst);
        start.elapsed()
    }
}

/// Progress, for the CLI's bar and the app's trainer tab.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Started { train: usize, validation: usize, epochs: usize, steps_per_epoch: usize, resumed_from: Option<usize> },
    Preparing { done: usize, total: usize, cached: usize },
    Step { stage: TrainStage, epoch: usize, step: usize, loss: f32 },
    Epoch(EpochMetrics),
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub stage: TrainStage,
    pub step: usize,
    pub loss: f64,
    pub mask_loss: f64,
    pub patch_loss: f64,
    pub distill_loss: f64,
    pub validation_dice: Option<f64>,
    pub learning_rate: f64,
    pub seconds: f64,
    /// Training images per second over the epoch's steps (validation excluded).
    pub images_per_second: f64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct State {
    /// Epochs completed (all stages counted in order).
    epochs_done: usize,
    step: usize,
    best_dice: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub epochs_done: usize,
    pub steps: usize,
    pub best_dice: Option<f64>,
    pub model: PathBuf,
    pub best: PathBuf,
    pub seconds: f64,
    /// Stopped by [`Control::stop`] before the plan was done (the checkpoint is resumable).
    pub stopped: bool,
}

/// A sample ready for training: modality slot, model-input mask, and what validation needs.
struct Prepared {
    slot: usize,
    /// 256² 0/1 mask in the model input's frame.
    mask: Vec<f32>,
    /// Fast recipe: the cached embedding; full recipe: the prepared image (3·S²).
    input: Vec<f32>,
    geometry: Geometry,
    /// Original-size 0/1 mask (validation only).
    truth: Option<Vec<u8>>,
}

const EMBED_LEN: usize = 256 * 64 * 64;

pub fn train<B: AutodiffBackend>(
    config: &TrainConfig,
    device: &B::Device,
    control: &Control,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Summary, TrainError> {
    let started = Instant::now();
    let mut paused = Duration::ZERO;
    let out = &config.out;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| TrainError::Io { path: path.clone(), reason: e.to_string() }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;

    // Datasets: all problems of all folders at once.
    let mut folders = Vec::new();
    let mut problems = Vec::new();
    for (root, modality) in config.data.iter().chain(config.validation.iter()) {
        match dataset::scan(root, modality.as_deref(), true) {
            Ok(folder) => folders.push(folder),
            Err(e) => problems.push(e.to_string()),
        }
    }
    let validation_folder = match (&config.validation, problems.is_empty()) {
        (Some(_), true) => folders.pop(),
        _ => None,
    };
    for list in &config.lists {
        match dataset::check_list(list, true) {
            Ok(folder) => folders.push(folder),
            Err(e) => problems.push(e.to_string()),
        }
    }
    if !problems.is_empty() {
        return Err(TrainError::Other(problems.join("\n")));
    }

    // The model: resume, or start from the given / shipped weights.
    let checkpoint = out.join("model.bpk");
    let state_path = out.join("state.json");
    let state: Option<State> = std::fs::read_to_string(&state_path).ok().and_then(|t| serde_json::from_str(&t).ok());
    let (model, mut model_config, provenance) = match &state {
        Some(_) if checkpoint.is_file() => {
            let (m, c) = weights::load_delightsam::<B>(&checkpoint, device)?;
            (m, c, Provenance::Record(checkpoint.clone()))
        }
        _ => weights::load_delightsam_or_fresh::<B>(config.init.as_deref(), device)?,
    };
    let state = state.filter(|_| matches!(&provenance, Provenance::Record(p) if *p == checkpoint));
    for folder in folders.iter().chain(validation_folder.iter()) {
        model_config.modalities.add(&folder.modality)?;
    }
    write_json(&out.join("train_config.json"), config)?;

    // Split and prepare.
    let mut train_pairs = Vec::new();
    let mut validation_pairs = Vec::new();
    for folder in &folders {
        let slot = model_config.modalities.slot(&folder.modality)?;
        let (train, validation) = if validation_folder.is_some() {
            (folder.pairs.clone(), Vec::new())
        } else {
            dataset::split(&folder.pairs, config.validation_fraction, config.seed)
        };
        train_pairs.extend(train.into_iter().map(|p| (p, slot)));
        validation_pairs.extend(validation.into_iter().map(|p| (p, slot)));
    }
    if let Some(folder) = &validation_folder {
        let slot = model_config.modalities.slot(&folder.modality)?;
        validation_pairs.extend(folder.pairs.iter().cloned().map(|p| (p, slot)));
    }
    let encoder_version = encoder_version(config)?;
    let cache = match config.recipe {
        Recipe::Fast => Some(EmbeddingCache::open(&config.cache_dir, &encoder_version).map_err(io(&config.cache_dir))?),
        Recipe::Full => None,
    };
    let inference = model.valid().for_inference();
    let total = train_pairs.len() + validation_pairs.len();
    let mut cached = 0;
    let mut prepare_all = |pairs: &[(Pair, usize)], keep_truth: bool, done_before: usize| -> Result<Vec<Prepared>, TrainError> {
        let mut prepared = Vec::with_capacity(pairs.len());
        for (i, (pair, slot)) in pairs.iter().enumerate() {
            if control.is_stopped() {
                return Err(TrainError::StoppedEarly);
            }
            let p = prepare(pair, *slot, keep_truth, cache.as_ref(), &inference, model_config.input_size(), device, &mut cached)?;
            prepared.push(p);
            on_event(&Event::Preparing { done: done_before + i + 1, total, cached });
        }
        Ok(prepared)
    };
    let train_set = prepare_all(&train_pairs, false, 0)?;
    let validation_set = prepare_all(&validation_pairs, true, train_pairs.len())?;
    drop(inference);

    // The stages, in order, as (stage, epochs).
    let plan: Vec<(TrainStage, usize)> = match config.recipe {
        Recipe::Fast => vec![(TrainStage::Head, config.epochs)],
        Recipe::Full => vec![
            (TrainStage::Common, config.common_epochs),
            (TrainStage::Domain, config.domain_epochs),
            (TrainStage::EndToEnd, config.epochs),
        ],
    };
    let total_epochs: usize = plan.iter().map(|p| p.1).sum();
    let steps_per_epoch = batches(&train_set, config.batch_size, &mut Rng::new(0)).len();
    let resumed_from = state.as_ref().map(|s| s.epochs_done);
    on_event(&Event::Started {
        train: train_set.len(),
        validation: validation_set.len(),
        epochs: total_epochs,
        steps_per_epoch,
        resumed_from,
    });
    if train_set.is_empty() {
        return Err(TrainError::Other("no training images after the validation split".into()));
    }

    let teacher = match config.recipe {
        Recipe::Full => Some(load_teacher::<B>(config, device)?),
        Recipe::Fast => None,
    };
    let mut state = state.unwrap_or(State { epochs_done: 0, step: 0, best_dice: None });
    let mut model = model;
    let best_path = out.join("best.bpk");
    let mut epoch_index = 0;
    let mut stopped = false;
    'stages: for (stage, epochs) in plan {
        model = model.for_stage(stage);
        let mut optimizer = AdamConfig::new().init::<B, DeLightSam<B>>();
        for _ in 0..epochs {
            epoch_index += 1;
            if epoch_index <= state.epochs_done {
                continue;
            }
            let epoch_start = Instant::now();
            let lr = config.learning_rate * config.lr_decay.powi((epoch_index - 1) as i32);
            let mut rng = Rng::new(config.seed ^ (epoch_index as u64).wrapping_mul(0x9E37));
            let mut sums = [0.0f64; 4];
            let mut count = 0usize;
            let mut images = 0usize;
            for batch in batches(&train_set, config.batch_size, &mut rng) {
                if config.max_steps.is_some_and(|m| state.step >= m) {
                    break;
                }
                paused += control.wait_while_paused();
                if control.is_stopped() {
                    stopped = true;
                    break;
                }
                let losses = step_losses(&model, teacher.as_ref(), stage, &batch, config.recipe, &mut rng, device);
                let loss_value: f32 = losses.total.clone().into_scalar().elem();
                if !loss_value.is_finite() {
                    return Err(TrainError::NonFinite {
                        value: loss_value,
                        step: state.step + 1,
                        epoch: epoch_index,
                        had_checkpoint: checkpoint.is_file(),
                        checkpoint,
                    });
                }
                let grads = GradientsParams::from_grads(losses.total.backward(), &model);
                model = optimizer.step(lr, model, grads);
                state.step += 1;
                count += 1;
                images += batch.len();
                for (sum, v) in sums.iter_mut().zip([loss_value as f64, losses.mask, losses.patch, losses.distill]) {
                    *sum += v;
                }
                on_event(&Event::Step { stage, epoch: epoch_index, step: state.step, loss: loss_value });
            }
            if stopped {
                // Mid-epoch: keep the weights; a resumed run repeats this epoch from them.
                weights::save_delightsam(&model, &model_config, &checkpoint)?;
                write_json(&state_path, &state)?;
                break 'stages;
            }
            let train_seconds = epoch_start.elapsed().as_secs_f64();
            let mean = |i: usize| if count == 0 { f64::NAN } else { sums[i] / count as f64 };
            let validation_dice = if stage == TrainStage::Common || stage == TrainStage::Domain || validation_set.is_empty() {
                None
            } else {
                Some(validate(&model.valid(), &validation_set, config.recipe, device))
            };
            state.epochs_done = epoch_index;
            weights::save_delightsam(&model, &model_config, &checkpoint)?;
            if let Some(dice) = validation_dice.filter(|d| state.best_dice.is_none_or(|b| *d > b)) {
                state.best_dice = Some(dice);
                weights::save_delightsam(&model, &model_config, &best_path)?;
            }
            let metrics = EpochMetrics {
                epoch: epoch_index,
                stage,
                step: state.step,
                loss: mean(0),
                mask_loss: mean(1),
                patch_loss: mean(2),
                distill_loss: mean(3),
                validation_dice,
                learning_rate: lr,
                seconds: epoch_start.elapsed().as_secs_f64(),
                images_per_second: images as f64 / train_seconds.max(1e-9),
            };
            append_line(&out.join("metrics.jsonl"), &metrics)?;
            write_json(&state_path, &state)?;
            on_event(&Event::Epoch(metrics));
            let active = started.elapsed().saturating_sub(paused).as_secs_f64();
            let out_of_time = config.max_minutes.is_some_and(|m| active >= m * 60.0);
            if control.is_stopped() {
                stopped = true;
            }
            if stopped || out_of_time || config.max_steps.is_some_and(|m| state.step >= m) {
                break 'stages;
            }
        }
    }
    // A run without validation keeps its last weights as the best; a stopped one is not done.
    if !stopped && !best_path.is_file() && checkpoint.is_file() {
        weights::save_delightsam(&model, &model_config, &best_path)?;
    }
    Ok(Summary {
        epochs_done: state.epochs_done,
        steps: state.step,
        best_dice: state.best_dice,
        model: checkpoint,
        best: best_path,
        seconds: started.elapsed().as_secs_f64(),
        stopped,
    })
}

/// A stopped run in `out`: its settings and the epochs it has done, when epochs are left.
pub fn resumable(out: &Path) -> Option<(TrainConfig, usize)> {
    let read = |name: &str| std::fs::read_to_string(out.join(name)).ok();
    let state: State = serde_json::from_str(&read("state.json")?).ok()?;
    let config: TrainConfig = serde_json::from_str(&read("train_config.json")?).ok()?;
    let planned = match config.recipe {
        Recipe::Fast => config.epochs,
        Recipe::Full => config.common_epochs + config.domain_epochs + config.epochs,
    };
    let stopped_early = config.max_steps.is_none_or(|m| state.step < m);
    (state.epochs_done < planned && stopped_early && out.join("model.bpk").is_file()).then_some((config, state.epochs_done))
}

/// Names the encoder whose embeddings the fast recipe caches: the hash of the starting record
/// (the fast recipe never changes the encoder, so a resumed run keeps the same cache).
fn encoder_version(config: &TrainConfig) -> Result<String, TrainError> {
    let start = config.init.clone().unwrap_or_else(weights::default_starting_record);
    // A head-only record's encoder is its LiteMedSAM record's: embeddings made with either match.
    let path = if weights::is_delightsam(&start) { weights::encoder_record(&start) } else { start };
    file_hash(&path).map_err(|e| TrainError::Io { path, reason: e.to_string() })
}

#[allow(clippy::too_many_arguments)]
fn prepare<B: Backend>(
    pair: &Pair,
    slot: usize,
    keep_truth: bool,
    cache: Option<&EmbeddingCache>,
    encoder: &DeLightSam<B>,
    input_size: usize,
    device: &B::Device,
    cached: &mut usize,
) -> Result<Prepared, TrainError> {
    let sample = pair.load().map_err(|reason| TrainError::Sample { path: pair.image.display().to_string(), reason })?;
    let model_input = preprocess::prepare(&sample.frame, input_size as u32);
    let geometry = model_input.geometry;
    // The mask lives on the decoder's 256² output grid.
    let mask_geometry = Geometry::new(sample.frame.width, sample.frame.height, 256);
    let mask = preprocess::mask_to_input(&sample.mask, &mask_geometry);
    let input = match cache {
        Some(cache) => {
            let hash = file_hash(&pair.image).map_err(|e| TrainError::Io { path: pair.image.clone(), reason: e.to_string() })?;
            let frame = if pair.frame > 0 { format!("-f{}", pair.frame) } else { String::new() };
            let key = format!("{hash}{frame}-s{slot}-{input_size}");
            match cache.get(&key, EMBED_LEN) {
                Some(embedding) => {
                    *cached += 1;
                    embedding
                }
                None => {
                    let x = Tensor::<B, 4>::from_data(TensorData::new(model_input.data, [1, 3, input_size, input_size]), device);
                    let embedding: Vec<f32> = encoder.encode(x, slot).into_data().convert::<f32>().to_vec().unwrap_or_default();
                    cache.put(&key, &embedding).map_err(|e| TrainError::Io { path: pair.image.clone(), reason: format!("embedding cache: {e}") })?;
                    embedding
                }
            }
        }
        None => model_input.data,
    };
    let truth = keep_truth.then(|| sample.mask.labels().to_vec());
    Ok(Prepared { slot, mask, input, geometry, truth })
}

/// Batches of one modality each (the controller and query are per batch), shuffled.
fn batches<'a>(set: &'a [Prepared], batch_size: usize, rng: &mut Rng) -> Vec<Vec<&'a Prepared>> {
    let mut slots: Vec<usize> = set.iter().map(|p| p.slot).collect();
    slots.sort_unstable();
    slots.dedup();
    let mut out = Vec::new();
    for slot in slots {
        let mut members: Vec<&Prepared> = set.iter().filter(|p| p.slot == slot).collect();
        rng.shuffle(&mut members);
        out.extend(members.chunks(batch_size.max(1)).map(|c| c.to_vec()));
    }
    rng.shuffle(&mut out);
    out
}

struct StepLosses<B: Backend> {
    total: Tensor<B, 1>,
    mask: f64,
    patch: f64,
    distill: f64,
}

fn step_losses<B: AutodiffBackend>(
    model: &DeLightSam<B>,
    teacher: Option<&crate::model::tinyvit::TinyVit<B::InnerBackend>>,
    stage: TrainStage,
    batch: &[&Prepared],
    recipe: Recipe,
    rng: &mut Rng,
    device: &B::Device,
) -> StepLosses<B> {
    let n = batch.len();
    let slot = batch[0].slot;
    let mask_side = 256;
    let scalar = |t: &Tensor<B, 1>| -> f64 { t.clone().inner().into_scalar().elem::<f32>() as f64 };
    if recipe == Recipe::Fast {
        let embedding: Vec<f32> = batch.iter().flat_map(|p| p.input.iter().copied()).collect();
        let masks: Vec<f32> = batch.iter().flat_map(|p| p.mask.iter().copied()).collect();
        let embedding = Tensor::<B, 4>::from_data(TensorData::new(embedding, [n, 256, 64, 64]), device);
        let masks = Tensor::<B, 4>::from_data(TensorData::new(masks, [n, 1, mask_side, mask_side]), device);
        let out = model.head(embedding, slot, None);
        let mask = losses::mask_loss(out.mask_logits, masks.clone());
        let patch = losses::patch_loss(out.patch_logits, masks);
        let (m, p) = (scalar(&mask), scalar(&patch));
        return StepLosses { total: mask.add(patch), mask: m, patch: p, distill: 0.0 };
    }
    // Full recipe: images (augmented when fine-tuning) through the encoder.
    let side = (batch[0].input.len() / 3).isqrt();
    let mut images = Vec::with_capacity(n * 3 * side * side);
    let mut masks = Vec::with_capacity(n * mask_side * mask_side);
    for p in batch {
        let mut image = p.input.clone();
        let mut mask = p.mask.clone();
        if stage == TrainStage::EndToEnd && side == mask_side {
            augment(&mut image, &mut mask, side, rng);
        }
        images.extend(image);
        masks.extend(mask);
    }
    let images = Tensor::<B, 4>::from_data(TensorData::new(images, [n, 3, side, side]), device);
    let masks = Tensor::<B, 4>::from_data(TensorData::new(masks, [n, 1, mask_side, mask_side]), device);
    match stage {
        TrainStage::Common | TrainStage::Domain => {
            let teacher = teacher.expect("the full recipe loads a teacher");
            let target = Tensor::<B, 4>::from_inner(teacher.forward(images.clone().inner()));
            let student = if stage == TrainStage::Common { model.encode_common(images) } else { model.encode(images, slot) };
            let distill = losses::distillation(student, target);
            let d = scalar(&distill);
            StepLosses { total: distill, mask: 0.0, patch: 0.0, distill: d }
        }
        TrainStage::Head | TrainStage::EndToEnd => {
            let out = model.forward(images, slot);
            let mask = losses::mask_loss(out.mask_logits, masks.clone());
            let patch = losses::patch_loss(out.patch_logits, masks);
            let (m, p) = (scalar(&mask), scalar(&patch));
            StepLosses { total: mask.add(patch), mask: m, patch: p, distill: 0.0 }
        }
    }
}

/// Mean Dice over the validation set, at each image's original size.
fn validate<B: Backend>(model: &DeLightSam<B>, set: &[Prepared], recipe: Recipe, device: &B::Device) -> f64 {
    let mut total = 0.0;
    for p in set {
        let embedding = match recipe {
            Recipe::Fast => Tensor::<B, 4>::from_data(TensorData::new(p.input.clone(), [1, 256, 64, 64]), device),
            Recipe::Full => {
                let side = (p.input.len() / 3).isqrt();
                let x = Tensor::<B, 4>::from_data(TensorData::new(p.input.clone(), [1, 3, side, side]), device);
                model.encode(x, p.slot)
            }
        };
        let logits = model.head(embedding, p.slot, None).mask_logits;
        let low: Vec<f32> = logits.into_data().convert::<f32>().to_vec().unwrap_or_default();
        let geometry = Geometry::new(p.geometry.original.0, p.geometry.original.1, 256);
        let at_size = preprocess::logits_to_image(&low, &geometry);
        let pred: Vec<u8> = at_size.iter().map(|&v| u8::from(v > 0.0)).collect();
        total += metrics::dice(&pred, p.truth.as_deref().unwrap_or(&[]));
    }
    total / set.len().max(1) as f64
}

fn load_teacher<B: AutodiffBackend>(
    config: &TrainConfig,
    device: &B::Device,
) -> Result<crate::model::tinyvit::TinyVit<B::InnerBackend>, TrainError> {
    let path = config.teacher.clone().unwrap_or_else(weights::default_record_path);
    let lite = if path.extension().is_some_and(|e| e == "pth" || e == "pt") {
        weights::import_pytorch::<B::InnerBackend>(&path, device)?
    } else {
        weights::load::<B::InnerBackend>(&path, device)?
    };
    Ok(lite.for_inference().image_encoder)
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let err = |e: String| TrainError::Io { path: path.to_path_buf(), reason: e };
    let text = serde_json::to_string_pretty(value).map_err(|e| err(e.to_string()))?;
    crate::imaging::write_atomic(path, text.as_bytes()).map_err(|e| err(e.to_string()))
}

fn append_line<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let err = |e: String| TrainError::Io { path: path.to_path_buf(), reason: e };
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| err(e.to_string()))?;
    let line = serde_json::to_string(value).map_err(|e| err(e.to_string()))?;
    writeln!(file, "{line}").map_err(|e| err(e.to_string()))
}
