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
use std::time::{Duration, Instant};

use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::Backend;
use burn::tensor::backend::AutodiffBackend;

use super::augment::Rng;
use super::config::{Recipe, TrainConfig};
use super::control::Control;
use super::dataset::{self, DatasetFolder, Pair};
use super::error::TrainError;
use super::prepare::{Prepared, Preparer, Shapes};
use super::step::{Steps, batches, validate};
use crate::model::backend::{BackendKind, with_backend};
use crate::model::modality::ModalityRegistry;
use crate::model::readback;
use crate::model::tinyvit::TinyVit;
use crate::model::weights::{self, Provenance};
use crate::model::{DeLightSam, DeLightSamConfig, TrainStage};

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

/// The files of a run in its output folder.
struct RunFiles {
    /// The last good weights (`model.bpk` + `model.json`); a stopped run resumes from them.
    checkpoint: PathBuf,
    best: PathBuf,
    state: PathBuf,
    metrics: PathBuf,
    config: PathBuf,
}

impl RunFiles {
    fn create(out: &Path) -> Result<Self, TrainError> {
        std::fs::create_dir_all(out).map_err(|source| TrainError::Io { path: out.to_path_buf(), source })?;
        Ok(Self {
            checkpoint: out.join("model.bpk"),
            best: out.join("best.bpk"),
            state: out.join("state.json"),
            metrics: out.join("metrics.jsonl"),
            config: out.join("train_config.json"),
        })
    }
}

/// Checked dataset folders and lists, with the separate validation folder apart.
struct Datasets {
    training: Vec<DatasetFolder>,
    validation: Option<DatasetFolder>,
}

/// The model a run starts from, its config, and where to resume (a stopped run's state).
struct Start<B: Backend> {
    model: DeLightSam<B>,
    config: DeLightSamConfig,
    resume: Option<State>,
}

/// Image–mask pairs, each with its modality slot.
type SlottedPairs = Vec<(Pair, usize)>;

/// Trains as `config` says, in stages: check the data, restore or build the model, prepare the
/// samples, then epoch by epoch (steps, validation, checkpoints), and sum up.
pub fn train<B: AutodiffBackend>(
    config: &TrainConfig,
    device: &B::Device,
    control: &Control,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Summary, TrainError> {
    let started = Instant::now();
    let files = RunFiles::create(&config.out)?;
    let datasets = check_datasets(config)?;
    let Start { model, config: model_config, resume } = restore_or_start::<B>(config, &files, &datasets, device)?;
    write_json(&files.config, config)?;

    let (train_pairs, validation_pairs) = split_pairs(config, &datasets, &model_config.modalities)?;
    let shapes = Shapes::of(&model_config);
    let mut preparer = Preparer::new(config, model.valid().for_inference(), model_config.modalities.clone(), shapes, device)?;
    let total = train_pairs.len() + validation_pairs.len();
    let mut progress = |done, cached| on_event(&Event::Preparing { done, total, cached });
    let train_set = prepare_all(&mut preparer, &train_pairs, false, 0, control, &mut progress)?;
    let validation_set = prepare_all(&mut preparer, &validation_pairs, true, train_pairs.len(), control, &mut progress)?;
    drop(preparer);

    let plan = stage_plan(config);
    on_event(&Event::Started {
        train: train_set.len(),
        validation: validation_set.len(),
        epochs: plan.iter().map(|p| p.1).sum(),
        steps_per_epoch: batches(&train_set, config.batch_size, &mut Rng::new(0)).len(),
        resumed_from: resume.as_ref().map(|s| s.epochs_done),
    });
    if train_set.is_empty() {
        return Err(TrainError::NoTrainingImages);
    }
    let teacher = match config.recipe {
        Recipe::Full => Some(load_teacher::<B>(config, device)?),
        Recipe::Fast | Recipe::Adapt => None,
    };
    let mut run = Run {
        config,
        control,
        files: &files,
        model_config: &model_config,
        steps: Steps { recipe: config.recipe, shapes, teacher: teacher.as_ref(), device },
        train_set: &train_set,
        validation_set: &validation_set,
        state: resume.unwrap_or(State { epochs_done: 0, step: 0, best_dice: None }),
        on_event,
        started,
        paused: Duration::ZERO,
    };
    let (model, stopped) = run.stages(model, &plan)?;
    run.finish(&model, stopped)
}

/// [`train`] on the backend `kind` names, on its default device.
pub fn train_on(
    kind: BackendKind,
    config: &TrainConfig,
    control: &Control,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Summary, TrainError> {
    Ok(with_backend!(kind, B => train::<Autodiff<B>>(config, &Default::default(), control, on_event)?)?)
}

/// Every dataset folder and list checked; all their problems are reported together.
fn check_datasets(config: &TrainConfig) -> Result<Datasets, TrainError> {
    let mut folders = Vec::new();
    let mut problems = Vec::new();
    for (root, modality) in config.data.iter().chain(config.validation.iter()) {
        match dataset::scan(root, modality.as_deref(), true) {
            Ok(folder) => folders.push(folder),
            Err(e) => problems.push(e),
        }
    }
    let validation = match (&config.validation, problems.is_empty()) {
        (Some(_), true) => folders.pop(),
        _ => None,
    };
    for list in &config.lists {
        match dataset::check_list(list, true) {
            Ok(folder) => folders.push(folder),
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(TrainError::Datasets(problems));
    }
    Ok(Datasets { training: folders, validation })
}

/// The model to train: a stopped run's checkpoint in the output folder (resumed with its
/// state), else the given or shipped starting model. Every dataset's modality gets a slot.
fn restore_or_start<B: AutodiffBackend>(
    config: &TrainConfig,
    files: &RunFiles,
    datasets: &Datasets,
    device: &B::Device,
) -> Result<Start<B>, TrainError> {
    // No state (or an unreadable one) starts afresh.
    let state: Option<State> = std::fs::read_to_string(&files.state).ok().and_then(|t| serde_json::from_str(&t).ok());
    let (model, mut model_config, provenance) = match &state {
        Some(_) if files.checkpoint.is_file() => {
            let (model, model_config) = weights::load_delightsam::<B>(&files.checkpoint, device)?;
            (model, model_config, Provenance::Record(files.checkpoint.clone()))
        }
        _ => weights::load_delightsam_or_fresh::<B>(config.init.as_deref(), device)?,
    };
    let resume = state.filter(|_| matches!(&provenance, Provenance::Record(p) if *p == files.checkpoint));
    for folder in datasets.training.iter().chain(datasets.validation.iter()) {
        model_config.modalities.add(&folder.modality)?;
    }
    // A modality to (un)tile must be one the model or the data has: a typo is an error, not a
    // new slot.
    for (name, tiling) in &config.tiling {
        model_config.modalities.set_tiling(name, *tiling)?;
    }
    for (name, range) in &config.input_range {
        model_config.modalities.set_input_range(name, *range)?;
    }
    Ok(Start { model, config: model_config, resume })
}

/// Training and validation pairs: a separate validation folder, or a deterministic split of
/// each training folder.
fn split_pairs(
    config: &TrainConfig,
    datasets: &Datasets,
    modalities: &ModalityRegistry,
) -> Result<(SlottedPairs, SlottedPairs), TrainError> {
    let mut train_pairs = Vec::new();
    let mut validation_pairs = Vec::new();
    for folder in &datasets.training {
        let slot = modalities.slot(&folder.modality)?;
        let (train, validation) = if datasets.validation.is_some() {
            (folder.pairs.clone(), Vec::new())
        } else {
            dataset::split(&folder.pairs, config.validation_fraction, config.seed)
        };
        train_pairs.extend(train.into_iter().map(|p| (p, slot)));
        validation_pairs.extend(validation.into_iter().map(|p| (p, slot)));
    }
    if let Some(folder) = &datasets.validation {
        let slot = modalities.slot(&folder.modality)?;
        validation_pairs.extend(folder.pairs.iter().cloned().map(|p| (p, slot)));
    }
    Ok((train_pairs, validation_pairs))
}

/// Prepares `pairs` in order; after each, `progress(done, from the cache)` with `done` counted
/// from `done_before`. A stop ends it with [`TrainError::StoppedEarly`].
fn prepare_all<B: Backend>(
    preparer: &mut Preparer<B>,
    pairs: &[(Pair, usize)],
    keep_truth: bool,
    done_before: usize,
    control: &Control,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Prepared>, TrainError> {
    let mut prepared = Vec::with_capacity(pairs.len());
    for (i, (pair, slot)) in pairs.iter().enumerate() {
        if control.is_stopped() {
            return Err(TrainError::StoppedEarly);
        }
        prepared.extend(preparer.prepare(pair, *slot, keep_truth)?);
        progress(done_before + i + 1, preparer.cached);
    }
    Ok(prepared)
}

/// The stages in order, with their epochs.
fn stage_plan(config: &TrainConfig) -> Vec<(TrainStage, usize)> {
    match config.recipe {
        Recipe::Fast => vec![(TrainStage::Head, config.epochs)],
        Recipe::Adapt => vec![(TrainStage::Adapt, config.epochs)],
        Recipe::Full => vec![
            (TrainStage::Common, config.common_epochs),
            (TrainStage::Domain, config.domain_epochs),
            (TrainStage::EndToEnd, config.epochs),
        ],
    }
}

/// A run's epochs, stage by stage; each epoch ends with validation, checkpoints and a line of
/// metrics.
struct Run<'a, B: AutodiffBackend> {
    config: &'a TrainConfig,
    control: &'a Control,
    files: &'a RunFiles,
    model_config: &'a DeLightSamConfig,
    steps: Steps<'a, B>,
    train_set: &'a [Prepared],
    validation_set: &'a [Prepared],
    state: State,
    on_event: &'a mut dyn FnMut(&Event),
    started: Instant,
    /// Time spent paused, which `max_minutes` does not count.
    paused: Duration,
}

/// What an epoch's steps add up to.
struct EpochTotals {
    started: Instant,
    learning_rate: f64,
    /// Sums of the total, mask, patch and distillation losses.
    sums: [f64; 4],
    steps: usize,
    images: usize,
    /// A stop was asked for before the epoch ended.
    stopped: bool,
}

impl EpochTotals {
    /// Epoch `epoch` (from 1) starts now, at the decayed learning rate.
    fn start(config: &TrainConfig, epoch: usize) -> Self {
        let learning_rate = config.learning_rate * config.lr_decay.powi((epoch - 1) as i32);
        Self { started: Instant::now(), learning_rate, sums: [0.0; 4], steps: 0, images: 0, stopped: false }
    }

    fn add(&mut self, losses: [f64; 4], images: usize) {
        for (sum, v) in self.sums.iter_mut().zip(losses) {
            *sum += v;
        }
        self.steps += 1;
        self.images += images;
    }

    fn mean(&self, i: usize) -> f64 {
        if self.steps == 0 { f64::NAN } else { self.sums[i] / self.steps as f64 }
    }
}

impl<B: AutodiffBackend> Run<'_, B> {
    /// Trains every epoch of `plan` not done yet; returns the model and whether it was stopped.
    fn stages(&mut self, mut model: DeLightSam<B>, plan: &[(TrainStage, usize)]) -> Result<(DeLightSam<B>, bool), TrainError> {
        let mut epoch = 0;
        for &(stage, epochs) in plan {
            model = model.for_stage(stage);
            let mut optimizer = AdamConfig::new().init::<B, DeLightSam<B>>();
            for _ in 0..epochs {
                epoch += 1;
                if epoch <= self.state.epochs_done {
                    continue;
                }
                let (trained, totals) = self.train_epoch(model, &mut optimizer, stage, epoch)?;
                model = trained;
                if totals.stopped {
                    // Mid-epoch: keep the weights; a resumed run repeats this epoch from them.
                    weights::save_delightsam(&model, self.model_config, &self.files.checkpoint)?;
                    write_json(&self.files.state, &self.state)?;
                    return Ok((model, true));
                }
                self.end_epoch(&model, stage, epoch, &totals)?;
                let stopped = self.control.is_stopped();
                if stopped || self.out_of_time() || self.step_limit_reached() {
                    return Ok((model, stopped));
                }
            }
        }
        Ok((model, false))
    }

    /// One pass over the shuffled training set, until the step limit or a stop.
    fn train_epoch<O: Optimizer<DeLightSam<B>, B>>(
        &mut self,
        mut model: DeLightSam<B>,
        optimizer: &mut O,
        stage: TrainStage,
        epoch: usize,
    ) -> Result<(DeLightSam<B>, EpochTotals), TrainError> {
        let mut totals = EpochTotals::start(self.config, epoch);
        let mut rng = Rng::new(self.config.seed ^ (epoch as u64).wrapping_mul(0x9E37));
        for batch in batches(self.train_set, self.config.batch_size, &mut rng) {
            if self.step_limit_reached() {
                break;
            }
            self.paused += self.control.wait_while_paused();
            if self.control.is_stopped() {
                totals.stopped = true;
                break;
            }
            let losses = self.steps.losses(&model, stage, &batch, &mut rng)?;
            let loss = readback::read_scalar(losses.total.clone(), "loss")?;
            if !loss.is_finite() {
                return Err(TrainError::NonFinite {
                    value: loss,
                    step: self.state.step + 1,
                    epoch,
                    had_checkpoint: self.files.checkpoint.is_file(),
                    checkpoint: self.files.checkpoint.clone(),
                });
            }
            let grads = GradientsParams::from_grads(losses.total.backward(), &model);
            model = optimizer.step(totals.learning_rate, model, grads);
            self.state.step += 1;
            totals.add([f64::from(loss), losses.mask, losses.patch, losses.distill], batch.len());
            (self.on_event)(&Event::Step { stage, epoch, step: self.state.step, loss });
        }
        Ok((model, totals))
    }

    /// Validation, checkpoints (the best one too), a line of metrics.jsonl, the state, the event.
    fn end_epoch(&mut self, model: &DeLightSam<B>, stage: TrainStage, epoch: usize, totals: &EpochTotals) -> Result<(), TrainError> {
        let train_seconds = totals.started.elapsed().as_secs_f64();
        let validation_dice = self.validation_dice(model, stage)?;
        self.state.epochs_done = epoch;
        weights::save_delightsam(model, self.model_config, &self.files.checkpoint)?;
        if let Some(dice) = validation_dice.filter(|d| self.state.best_dice.is_none_or(|b| *d > b)) {
            self.state.best_dice = Some(dice);
            weights::save_delightsam(model, self.model_config, &self.files.best)?;
        }
        let metrics = EpochMetrics {
            epoch,
            stage,
            step: self.state.step,
            loss: totals.mean(0),
            mask_loss: totals.mean(1),
            patch_loss: totals.mean(2),
            distill_loss: totals.mean(3),
            validation_dice,
            learning_rate: totals.learning_rate,
            seconds: totals.started.elapsed().as_secs_f64(),
            images_per_second: totals.images as f64 / train_seconds.max(1e-9),
        };
        append_line(&self.files.metrics, &metrics)?;
        write_json(&self.files.state, &self.state)?;
        (self.on_event)(&Event::Epoch(metrics));
        Ok(())
    }

    /// Validation Dice after a mask-training epoch; distillation epochs have none.
    fn validation_dice(&self, model: &DeLightSam<B>, stage: TrainStage) -> Result<Option<f64>, TrainError> {
        if stage == TrainStage::Common || stage == TrainStage::Domain || self.validation_set.is_empty() {
            return Ok(None);
        }
        validate(&model.valid(), self.validation_set, self.config.recipe, self.steps.shapes, self.steps.device).map(Some)
    }

    /// The summary. A run without validation keeps its last weights as the best; a stopped one
    /// is not done.
    fn finish(self, model: &DeLightSam<B>, stopped: bool) -> Result<Summary, TrainError> {
        if !stopped && !self.files.best.is_file() && self.files.checkpoint.is_file() {
            weights::save_delightsam(model, self.model_config, &self.files.best)?;
        }
        Ok(Summary {
            epochs_done: self.state.epochs_done,
            steps: self.state.step,
            best_dice: self.state.best_dice,
            model: self.files.checkpoint.clone(),
            best: self.files.best.clone(),
            seconds: self.started.elapsed().as_secs_f64(),
            stopped,
        })
    }

    fn out_of_time(&self) -> bool {
        let active = self.started.elapsed().saturating_sub(self.paused).as_secs_f64();
        self.config.max_minutes.is_some_and(|m| active >= m * 60.0)
    }

    fn step_limit_reached(&self) -> bool {
        self.config.max_steps.is_some_and(|m| self.state.step >= m)
    }
}

/// A stopped run in `out`: its settings and the epochs it has done, when epochs are left.
pub fn resumable(out: &Path) -> Option<(TrainConfig, usize)> {
    let read = |name: &str| std::fs::read_to_string(out.join(name)).ok();
    let state: State = serde_json::from_str(&read("state.json")?).ok()?;
    let config: TrainConfig = serde_json::from_str(&read("train_config.json")?).ok()?;
    let planned = config.planned_epochs();
    let stopped_early = config.max_steps.is_none_or(|m| state.step < m);
    (state.epochs_done < planned && stopped_early && out.join("model.bpk").is_file()).then_some((config, state.epochs_done))
}

/// The frozen teacher encoder of the full recipe.
fn load_teacher<B: AutodiffBackend>(
    config: &TrainConfig,
    device: &B::Device,
) -> Result<TinyVit<B::InnerBackend>, TrainError> {
    let path = config.teacher.clone().unwrap_or_else(weights::default_record_path);
    let lite = if path.extension().is_some_and(|e| e == "pth" || e == "pt") {
        weights::import_pytorch::<B::InnerBackend>(&path, device)?
    } else {
        weights::load::<B::InnerBackend>(&path, device)?
    };
    Ok(lite.for_inference().image_encoder)
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json { path: path.to_path_buf(), source })?;
    crate::imaging::write_atomic(path, text.as_bytes()).map_err(|source| TrainError::Io { path: path.to_path_buf(), source })
}

fn append_line<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let io = |source| TrainError::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    let line = serde_json::to_string(value).map_err(|source| TrainError::Json { path: path.to_path_buf(), source })?;
    writeln!(file, "{line}").map_err(io)
}
