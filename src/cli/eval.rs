//! `delightsam eval`: per-image Dice, HD and HD95 (original-size pixels) to a CSV, means printed.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::engine::DynAutoSegmenter;
use crate::imaging::{Mask, write_mask_png};
use crate::model::backend::BackendKind;
use crate::train::dataset;
use crate::train::metrics::{self, Scores};

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The model (De-LightSAM NAME.bpk + NAME.json); default: the shipped one.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// A dataset folder (images/ + masks/).
    #[arg(long)]
    pub data: PathBuf,
    /// The modality to segment as (default: the folder's dataset.toml or SOURCE.md).
    #[arg(long)]
    pub modality: Option<String>,
    /// Per-image results.
    #[arg(long, default_value = "eval.csv")]
    pub csv: PathBuf,
    /// Also write each predicted mask here.
    #[arg(long)]
    pub save_masks: Option<PathBuf>,
    /// Only the images `train` held out for validation with this seed and fraction.
    #[arg(long)]
    pub held_out: bool,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    #[arg(long, default_value = "cpu")]
    pub backend: BackendKind,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<()> {
    let folder = dataset::scan(&args.data, args.modality.as_deref(), false)?;
    let pairs = if args.held_out { dataset::split(&folder.pairs, args.val_fraction, args.seed).1 } else { folder.pairs.clone() };
    let mut segmenter = DynAutoSegmenter::load(args.backend, args.model.as_deref())?;
    let slot = segmenter.slot(&folder.modality)?;
    if let Some(dir) = &args.save_masks {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut rows = vec!["stem,image,modality,dice,hd,hd95,seconds".to_string()];
    let mut all: Vec<Scores> = Vec::new();
    let bar = indicatif::ProgressBar::new(pairs.len() as u64);
    for pair in &pairs {
        let sample = pair.load()?;
        let result = segmenter.segment(&pair.image.display().to_string(), &sample.frame, slot, None)?;
        let (w, h) = (sample.frame.width, sample.frame.height);
        let scores = metrics::score(result.mask.labels(), sample.mask.labels(), w, h);
        let seconds = (result.timings.encode + result.timings.decode).as_secs_f64();
        rows.push(format!(
            "{},{},{},{:.6},{:.3},{:.3},{:.3}",
            pair.stem,
            pair.image.display(),
            folder.modality,
            scores.dice,
            scores.hd,
            scores.hd95,
            seconds
        ));
        if let Some(dir) = &args.save_masks {
            let out = dir.join(format!("{}.png", pair.stem));
            write_mask_png(&Mask::from_labels(w, h, result.mask.labels().to_vec()).unwrap_or(result.mask), &out, &pair.image)?;
        }
        all.push(scores);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut file = std::fs::File::create(&args.csv).with_context(|| format!("cannot write {}", args.csv.display()))?;
    writeln!(file, "{}", rows.join("\n")).with_context(|| format!("cannot write {}", args.csv.display()))?;
    let mean = |f: fn(&Scores) -> f64| {
        let v: Vec<f64> = all.iter().map(f).filter(|x| x.is_finite()).collect();
        (v.iter().sum::<f64>() / v.len().max(1) as f64, v.len())
    };
    let (dice, _) = mean(|s| s.dice);
    let (hd, n_hd) = mean(|s| s.hd);
    let (hd95, _) = mean(|s| s.hd95);
    // No distances at all (every mask empty): say so rather than print a mean of nothing.
    let px = |v: f64| if n_hd == 0 { "n/a".to_string() } else { format!("{v:.2} px") };
    println!(
        "{} image(s) of {} as {}: Dice {:.4}, HD {}, HD95 {}{}; per image: {}",
        all.len(),
        args.data.display(),
        folder.modality,
        dice,
        px(hd),
        px(hd95),
        if n_hd < all.len() { format!(" (distances over {n_hd} images; the rest had an empty mask)") } else { String::new() },
        args.csv.display()
    );
    Ok(())
}
