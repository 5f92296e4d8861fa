//! Headless commands. Each one prints what it did and returns an error the caller shows in one line.

mod bench;
mod bench_common;
mod bench_delightsam;
mod convert;
mod eval;
mod import;
mod info;
mod pack;
mod segment;
mod train;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `delightsam --version`: version, commit, and the model the window uses by default.
fn version_line() -> &'static str {
    static LINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LINE.get_or_init(|| {
        format!(
            "{}\nmodel: delightsam-default (De-LightSAM: LiteMedSAM TinyViT encoder, SP-Generator, QM-Decoder; research use only)",
            crate::version()
        )
    })
}

#[derive(Debug, Parser)]
#[command(
    name = "delightsam",
    version = version_line(),
    about = "De-LightSAM Annotator: segment medical images offline",
    long_about = "Without a command, opens the annotation window (with FILE, if given).",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// An image to open in the window (DICOM, PNG, JPEG, TIFF or BMP).
    pub file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print an image's header facts and frame statistics (no patient identifiers), or a model's parts.
    Info(info::InfoArgs),
    /// Write one frame as an 8-bit PNG, windowed for display.
    Convert(convert::ConvertArgs),
    /// Segment automatically (De-LightSAM, --modality) or from a box/points (LiteMedSAM); folders too.
    Segment(segment::SegmentArgs),
    /// Fine-tune De-LightSAM on dataset folders (fast, full or adapt recipe).
    Train(train::TrainArgs),
    /// Evaluate a model on a dataset folder: per-image Dice, HD and HD95 to a CSV.
    Eval(eval::EvalArgs),
    /// Store a fast- or adapt-recipe model compactly: its head (and trained controllers) in f16,
    /// the backbone read from LiteMedSAM.
    Pack(pack::PackArgs),
    /// Convert a PyTorch LiteMedSAM checkpoint into the program's model record.
    Import(import::ImportArgs),
    /// Time the encoder and the cached decoder on each backend (and PyTorch with --pytorch).
    Bench(bench::BenchArgs),
}

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Info(args) => info::run(&args),
        Command::Convert(args) => convert::run(&args),
        Command::Segment(args) => segment::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Pack(args) => pack::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
