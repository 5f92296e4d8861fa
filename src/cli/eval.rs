//! `delightsam eval`: per-image Dice, HD and HD95 (original-size pixels) to a CSV, and a table
//! with one row per dataset folder (means, image counts) for one or several folders.

use std::path::PathBuf;

use anyhow::Context;

use super::train::parse_folder;
use crate::engine::DynAutoSegmenter;
use crate::imaging::{Mask, write_atomic, write_mask_png};
use crate::model::backend::BackendKind;
use crate::train::dataset::{self, DatasetFolder as Folder};
use crate::train::metrics::{self, Scores};

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The model (De-LightSAM NAME.bpk + NAME.json); default: the shipped one.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A dataset folder (images/ + masks/) as DIR or DIR=MODALITY (default modality: the
    /// folder's dataset.toml or SOURCE.md). Repeatable: one table row per folder.
    #[arg(long = "data", required = true, value_parser = parse_folder)]
    pub data: Vec<(PathBuf, Option<String>)>,
    /// The modality for every folder given without one.
    #[arg(long)]
    pub modality: Option<String>,
    /// Per-image results.
    #[arg(long, default_value = "eval.csv")]
    pub csv: PathBuf,
    /// Also write the table as Markdown here.
    #[arg(long, value_name = "TABLE.md")]
    pub table: Option<PathBuf>,
    /// Also write each predicted mask here (one subfolder per dataset folder).
    #[arg(long)]
    pub save_masks: Option<PathBuf>,
    /// Only the images `train` held out for validation with this seed and fraction.
    #[arg(long)]
    pub held_out: bool,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Segment tiled modalities whole at the model's input size (to compare with tiles).
    #[arg(long)]
    pub whole_image: bool,
    #[arg(long, default_value = "cpu")]
    pub backend: BackendKind,
}

/// One folder's results.
struct FolderResult {
    name: String,
    modality: String,
    tiles: String,
    scores: Vec<Scores>,
    seconds: f64,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let mut folders = Vec::new();
    for (dir, modality) in &args.data {
        folders.push(dataset::scan(dir, modality.as_deref().or(args.modality.as_deref()), false)?);
    }
    let mut segmenter = DynAutoSegmenter::load(args.backend, args.model.as_deref())?;
    segmenter.set_tiles_enabled(!args.whole_image);
    let mut rows = vec!["set,stem,image,modality,dice,hd,hd95,seconds".to_string()];
    let mut results = Vec::new();
    for folder in &folders {
        results.push(evaluate_folder(args, &mut segmenter, folder, &mut rows)?);
    }
    write_atomic(&args.csv, format!("{}\n", rows.join("\n")).as_bytes())
        .with_context(|| format!("cannot write {}", args.csv.display()))?;
    let table = markdown_table(&results);
    println!("{table}per image: {}", args.csv.display());
    if let Some(path) = &args.table {
        write_atomic(path, table.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn folder_name(folder: &Folder) -> String {
    folder.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| folder.root.display().to_string())
}

fn evaluate_folder(
    args: &EvalArgs,
    segmenter: &mut DynAutoSegmenter,
    folder: &Folder,
    rows: &mut Vec<String>,
) -> anyhow::Result<FolderResult> {
    let name = folder_name(folder);
    let pairs = if args.held_out { dataset::split(&folder.pairs, args.val_fraction, args.seed).1 } else { folder.pairs.clone() };
    let slot = segmenter.slot(&folder.modality)?;
    let masks_dir = args.save_masks.as_ref().map(|dir| dir.join(&name));
    if let Some(dir) = &masks_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut scores_all = Vec::new();
    let mut seconds_all = 0.0;
    let mut tile_counts = std::collections::BTreeSet::new();
    let bar = indicatif::ProgressBar::new(pairs.len() as u64).with_message(name.clone());
    for pair in &pairs {
        let sample = pair.load()?;
        let result = segmenter.segment(&format!("{}#{}", pair.image.display(), pair.frame), &sample.frame, slot, None)?;
        let (w, h) = (sample.frame.width, sample.frame.height);
        let scores = metrics::score(result.mask.labels(), sample.mask.labels(), w, h);
        let seconds = (result.timings.encode + result.timings.decode).as_secs_f64();
        rows.push(format!(
            "{},{},{},{},{:.6},{:.3},{:.3},{:.3}",
            name,
            pair.stem,
            pair.image.display(),
            folder.modality,
            scores.dice,
            scores.hd,
            scores.hd95,
            seconds
        ));
        if let Some(dir) = &masks_dir {
            let out = dir.join(format!("{}.png", pair.stem));
            write_mask_png(&Mask::from_labels(w, h, result.mask.labels().to_vec()).unwrap_or(result.mask), &out, &pair.image)?;
        }
        tile_counts.insert(result.tiles);
        scores_all.push(scores);
        seconds_all += seconds;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tiles = match (tile_counts.first(), tile_counts.last()) {
        (Some(1), Some(1)) | (None, _) => "whole".to_string(),
        (Some(a), Some(b)) if a == b => format!("{a} tiles"),
        (Some(a), Some(b)) => format!("{a}–{b} tiles"),
        _ => "whole".to_string(),
    };
    Ok(FolderResult { name, modality: folder.modality.clone(), tiles, scores: scores_all, seconds: seconds_all })
}

/// Mean of the finite values of `f` over `scores`, and how many there were.
fn mean(scores: &[Scores], f: fn(&Scores) -> f64) -> (f64, usize) {
    let values: Vec<f64> = scores.iter().map(f).filter(|x| x.is_finite()).collect();
    (values.iter().sum::<f64>() / values.len().max(1) as f64, values.len())
}

fn markdown_table(results: &[FolderResult]) -> String {
    let mut table = String::from(
        "| set | modality | images | Dice | HD95 (px) | HD (px) | inference | s/image |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in results {
        let (dice, _) = mean(&r.scores, |s| s.dice);
        let (hd, n_hd) = mean(&r.scores, |s| s.hd);
        let (hd95, _) = mean(&r.scores, |s| s.hd95);
        // No distances at all (every mask empty): say so rather than print a mean of nothing.
        let px = |v: f64| if n_hd == 0 { "n/a".to_string() } else { format!("{v:.1}") };
        let partial = if n_hd < r.scores.len() { format!(" ({n_hd} with distances)") } else { String::new() };
        table.push_str(&format!(
            "| {} | {} | {} | {:.3} | {}{partial} | {} | {} | {:.2} |\n",
            r.name,
            r.modality,
            r.scores.len(),
            dice,
            px(hd95),
            px(hd),
            r.tiles,
            r.seconds / r.scores.len().max(1) as f64
        ));
    }
    table
}
