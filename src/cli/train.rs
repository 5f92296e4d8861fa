//! `delightsam train`: fine-tune on dataset folders (fast or full recipe), with a progress bar
//! and `metrics.jsonl` in the output folder.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use crate::model::backend::{self, BackendKind};
use crate::model::tiling::Tiling;
use crate::train::{Event, Recipe, TrainConfig, train_on};

/// A dataset folder, optionally with its modality: `DIR` or `DIR=MODALITY`.
pub fn parse_folder(text: &str) -> Result<(PathBuf, Option<String>), std::convert::Infallible> {
    match text.rsplit_once('=') {
        Some((dir, modality)) if !modality.is_empty() && !modality.contains('/') => {
            Ok((PathBuf::from(dir), Some(modality.to_string())))
        }
        _ => Ok((PathBuf::from(text), None)),
    }
}

/// `MODALITY=LOW,HIGH`: a fixed input range, LOW below HIGH.
pub fn parse_input_range(text: &str) -> anyhow::Result<(String, [f64; 2])> {
    let usage = || anyhow::anyhow!("{text:?}: give MODALITY=LOW,HIGH, e.g. ct=0,255");
    let (name, range) = text.split_once('=').ok_or_else(usage)?;
    let (low, high) = range.split_once(',').ok_or_else(usage)?;
    let (low, high): (f64, f64) = (low.trim().parse().map_err(|_| usage())?, high.trim().parse().map_err(|_| usage())?);
    if name.trim().is_empty() || !low.is_finite() || !high.is_finite() {
        return Err(usage());
    }
    if low >= high {
        anyhow::bail!("{text:?}: LOW must be below HIGH");
    }
    Ok((name.trim().to_string(), [low, high]))
}

/// `MODALITY` (tiles at the image's own resolution) or `MODALITY=LONG_SIDE` (the image first
/// scaled so its longest side is LONG_SIDE pixels).
pub fn parse_tiled(text: &str) -> anyhow::Result<(String, Option<Tiling>)> {
    let (name, long_side) = match text.split_once('=') {
        Some((name, side)) => {
            let side: u32 = side.trim().parse().map_err(|_| anyhow::anyhow!("{text:?}: LONG_SIDE must be a whole number of pixels"))?;
            if side < 64 {
                anyhow::bail!("{text:?}: LONG_SIDE must be at least 64 pixels");
            }
            (name, Some(side))
        }
        None => (text, None),
    };
    if name.trim().is_empty() {
        anyhow::bail!("{text:?}: name the modality, as MODALITY or MODALITY=LONG_SIDE");
    }
    Ok((name.trim().to_string(), Some(Tiling { long_side, ..Tiling::default() })))
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// A dataset folder (images/ + masks/), as DIR or DIR=MODALITY. Repeatable: several
    /// folders, several modalities, one model.
    #[arg(long = "data", required = true, value_parser = parse_folder)]
    pub data: Vec<(PathBuf, Option<String>)>,
    /// A validation folder (DIR or DIR=MODALITY); without it each folder is split.
    #[arg(long = "val", value_parser = parse_folder)]
    pub validation: Option<(PathBuf, Option<String>)>,
    /// Where checkpoints, train_config.json and metrics.jsonl go (a run there resumes).
    #[arg(short, long)]
    pub out: PathBuf,
    /// fast: frozen encoder, cached embeddings; full: MDKD distillation + end-to-end fine-tuning;
    /// adapt: each modality's controllers, query and hypernetwork only (others unchanged).
    #[arg(long, value_enum, default_value = "fast")]
    pub recipe: Recipe,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Full recipe: epochs of common and of domain distillation before fine-tuning.
    #[arg(long, default_value_t = 2)]
    pub common_epochs: usize,
    #[arg(long, default_value_t = 2)]
    pub domain_epochs: usize,
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Learning rate × this after each epoch.
    #[arg(long, default_value_t = 0.98)]
    pub lr_decay: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of each folder held out for validation (when no --val folder is given).
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Starting model (De-LightSAM or LiteMedSAM record); default: the shipped one.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Teacher encoder for the full recipe (LiteMedSAM .bpk or .pth); default: LiteMedSAM.
    #[arg(long)]
    pub teacher: Option<PathBuf>,
    /// Where the model trains.
    #[arg(long, value_enum, default_value_t = BackendKind::Cpu)]
    pub backend: BackendKind,
    /// Embedding cache folder (fast recipe); default: the user's cache folder.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Stop after this many optimiser steps (smoke tests).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Stop after the epoch that crosses this many minutes.
    #[arg(long)]
    pub max_minutes: Option<f64>,
    /// Segment this modality in overlapping tiles (thin structures), as MODALITY (its own
    /// resolution) or MODALITY=LONG_SIDE (scaled first); saved in the model. Repeatable.
    #[arg(long = "tile", value_name = "MODALITY[=LONG_SIDE]", value_parser = parse_tiled)]
    pub tiled: Vec<(String, Option<Tiling>)>,
    /// Segment this modality whole again (undoes a starting model's tiling). Repeatable.
    #[arg(long = "no-tile", value_name = "MODALITY")]
    pub untiled: Vec<String>,
    /// Scale this modality's input from a fixed range of values, LOW..HIGH in modality units
    /// (Hounsfield units for CT; values outside are clipped), instead of each image's min–max;
    /// saved in the model. Repeatable.
    #[arg(long = "input-range", value_name = "MODALITY=LOW,HIGH", value_parser = parse_input_range)]
    pub input_range: Vec<(String, [f64; 2])>,
    /// Scale this modality's input from each image's min–max again (undoes a starting model's
    /// fixed range). Repeatable.
    #[arg(long = "no-input-range", value_name = "MODALITY")]
    pub no_input_range: Vec<String>,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let config = train_config(args);
    let mut progress = Progress { bar: ProgressBar::new(0), last_dice: None };
    if args.backend == BackendKind::Cuda {
        say(&progress.bar, format!("training on {}", backend::cuda_device()?));
    }
    let control = crate::train::Control::default();
    let summary = train_on(args.backend, &config, &control, &mut |event: &Event| progress.show(event))?;
    progress.bar.finish_and_clear();
    println!(
        "trained {} epoch(s), {} steps in {:.1} min; best validation Dice {}; model {} (best: {})",
        summary.epochs_done,
        summary.steps,
        summary.seconds / 60.0,
        summary.best_dice.map(|d| format!("{d:.4}")).unwrap_or_else(|| "-".into()),
        summary.model.display(),
        summary.best.display()
    );
    Ok(())
}

fn train_config(args: &TrainArgs) -> TrainConfig {
    let mut config = TrainConfig::new(args.data.clone(), args.out.clone());
    config.recipe = args.recipe;
    config.validation = args.validation.clone();
    config.validation_fraction = args.val_fraction;
    config.seed = args.seed;
    config.epochs = args.epochs;
    config.common_epochs = args.common_epochs;
    config.domain_epochs = args.domain_epochs;
    config.batch_size = args.batch;
    config.learning_rate = args.lr;
    config.lr_decay = args.lr_decay;
    config.init = args.init.clone();
    config.teacher = args.teacher.clone();
    if let Some(cache) = &args.cache {
        config.cache_dir = cache.clone();
    }
    config.max_steps = args.max_steps;
    config.max_minutes = args.max_minutes;
    config.tiling = args.tiled.iter().cloned().chain(args.untiled.iter().map(|name| (name.clone(), None))).collect();
    config.input_range = args
        .input_range
        .iter()
        .map(|(name, range)| (name.clone(), Some(*range)))
        .chain(args.no_input_range.iter().map(|name| (name.clone(), None)))
        .collect();
    config
}

/// The progress bar, with a line above it per epoch.
struct Progress {
    bar: ProgressBar,
    last_dice: Option<f64>,
}

impl Progress {
    fn show(&mut self, event: &Event) {
        let bar = &self.bar;
        match event {
            Event::Preparing { done, total, cached } => {
                if bar.length() != Some(*total as u64) {
                    bar.set_length(*total as u64);
                    bar.set_style(style("preparing"));
                }
                bar.set_position(*done as u64);
                bar.set_message(format!("{cached} embeddings from the cache"));
            }
            Event::Started { train, validation, epochs, steps_per_epoch, resumed_from } => {
                say(bar, format!(
                    "{train} training and {validation} validation samples (a tiled image gives one per tile); {epochs} epoch(s) of {steps_per_epoch} step(s){}",
                    resumed_from.map(|e| format!("; resuming after epoch {e}")).unwrap_or_default()
                ));
                bar.set_length((epochs * steps_per_epoch) as u64);
                bar.set_position((resumed_from.unwrap_or(0) * steps_per_epoch) as u64);
                bar.set_style(style("training"));
            }
            Event::Step { epoch, loss, .. } => {
                bar.inc(1);
                let dice = self.last_dice.map(|d| format!(", val Dice {d:.3}")).unwrap_or_default();
                bar.set_message(format!("epoch {epoch}, loss {loss:.4}{dice}"));
            }
            Event::Epoch(m) => {
                self.last_dice = m.validation_dice.or(self.last_dice);
                say(bar, format!(
                    "epoch {:>3} {:<9} loss {:.4} (mask {:.4}, patch {:.4}, distill {:.4}) val Dice {} lr {:.2e} {:.0} s, {:.2} img/s",
                    m.epoch,
                    serde_json::to_value(m.stage).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                    m.loss,
                    m.mask_loss,
                    m.patch_loss,
                    m.distill_loss,
                    m.validation_dice.map(|d| format!("{d:.4}")).unwrap_or_else(|| "-".into()),
                    m.learning_rate,
                    m.seconds,
                    m.images_per_second
                ));
            }
        }
    }
}

/// A line above the bar, or plain on stdout when there is no terminal to draw the bar on.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() { println!("{line}") } else { bar.println(line) }
}

fn style(phase: &str) -> ProgressStyle {
    ProgressStyle::with_template(&format!("{phase} {{bar:30}} {{pos}}/{{len}} {{elapsed_precise}} (eta {{eta}}) {{msg}}"))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}
