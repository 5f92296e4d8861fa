use std::path::PathBuf;

use anyhow::Context;

use crate::engine::DynSegmenter;
use crate::imaging::{ImageSource, write_mask_png};
use crate::model::backend::BackendKind;
use crate::model::weights;
use crate::model::{PointPrompt, Prompts};

#[derive(Debug, clap::Args)]
pub struct SegmentArgs {
    /// The image (DICOM, PNG, JPEG, TIFF or BMP).
    pub image: PathBuf,
    /// Box prompt in image pixels: x0,y0,x1,y1.
    #[arg(long = "box", value_parser = parse_box, allow_hyphen_values = true)]
    pub bbox: Option<[f32; 4]>,
    /// Point prompt in image pixels: x,y (foreground) or x,y,neg (background). Repeatable.
    #[arg(long = "point", value_parser = parse_point)]
    pub points: Vec<PointPrompt>,
    /// The mask PNG to write (0/255).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Where the model runs.
    #[arg(long, default_value = "cpu")]
    pub backend: BackendKind,
    /// Which frame of a multi-frame image (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: u32,
    /// A LiteMedSAM record other than the shipped one.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

pub fn run(args: &SegmentArgs) -> anyhow::Result<()> {
    let prompts = Prompts { bbox: args.bbox, points: args.points.clone() };
    if prompts.is_empty() {
        anyhow::bail!("give a prompt: --box x0,y0,x1,y1 and/or --point x,y[,neg]");
    }
    let source = ImageSource::open(&args.image)?;
    let frame = source.frame(args.frame)?;
    let record = args.model.clone().unwrap_or_else(weights::default_record_path);
    let mut segmenter = DynSegmenter::load(args.backend, &record)?;
    let key = format!("{}#{}", args.image.display(), args.frame);
    let result = segmenter.segment(&key, &frame, &prompts);
    write_mask_png(&result.mask, &args.out, &args.image).with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} ({} of {} pixels inside; predicted IoU {:.3}) on {} [{}]: encode {:.1} ms, decode {:.1} ms",
        args.out.display(),
        result.mask.foreground_count(),
        frame.pixel_count(),
        result.predicted_iou,
        args.backend,
        segmenter.device_name(),
        result.timings.encode.as_secs_f64() * 1e3,
        result.timings.decode.as_secs_f64() * 1e3,
    );
    Ok(())
}

fn numbers(text: &str, what: &str) -> Result<Vec<f32>, String> {
    text.split(',')
        .map(|v| v.trim().parse::<f32>().map_err(|_| format!("{what}: {v:?} is not a number")))
        .collect()
}

fn parse_box(text: &str) -> Result<[f32; 4], String> {
    match numbers(text, "box")?[..] {
        [x0, y0, x1, y1] if x1 > x0 && y1 > y0 => Ok([x0, y0, x1, y1]),
        [_, _, _, _] => Err("box must be x0,y0,x1,y1 with x1 > x0 and y1 > y0".into()),
        _ => Err(format!("box must be x0,y0,x1,y1, got {text:?}")),
    }
}

fn parse_point(text: &str) -> Result<PointPrompt, String> {
    let (coords, positive) = match text.strip_suffix(",neg") {
        Some(c) => (c, false),
        None => (text.strip_suffix(",pos").unwrap_or(text), true),
    };
    match numbers(coords, "point")?[..] {
        [x, y] => Ok(PointPrompt { x, y, positive }),
        _ => Err(format!("point must be x,y or x,y,neg, got {text:?}")),
    }
}
