use std::path::PathBuf;

use crate::model::backend::Cpu;
use crate::model::weights;

#[derive(Debug, clap::Args)]
pub struct PackArgs {
    /// A De-LightSAM record trained with the fast or adapt recipe (NAME.bpk, with NAME.json beside it).
    pub model: PathBuf,
    /// Where to write the compact record (its .json is written beside it).
    #[arg(short, long)]
    pub out: PathBuf,
    /// The LiteMedSAM record the model's encoder equals; the packed model reads it at load time
    /// (default: the shipped one, found beside the program as the models are).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
}

pub fn run(args: &PackArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        weights::is_delightsam(&args.model),
        "{} is not a De-LightSAM record (no {} beside it)",
        args.model.display(),
        weights::config_path(&args.model).display()
    );
    let device = Default::default();
    let (model, config) = weights::load_delightsam::<Cpu>(&args.model, &device)?;
    let encoder = args.encoder.clone().unwrap_or_else(weights::default_record_path);
    let storage = weights::save_delightsam_head(&model, &config, &args.out, &encoder)?;
    let controllers = matches!(storage, weights::Storage::HeadAndControllers { .. });
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len() as f64 / 1e6).unwrap_or(0.0);
    println!(
        "packed {} ({:.1} MB) → {} ({:.1} MB: SP-Generator and QM-Decoder{} in f16; encoder from {})",
        args.model.display(),
        size(&args.model),
        args.out.display(),
        size(&args.out),
        if controllers { " and modality controllers" } else { "" },
        encoder.display()
    );
    Ok(())
}
