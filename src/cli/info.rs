use std::path::PathBuf;

use serde_json::json;

use crate::imaging::{FrameStats, ImageMeta, ImageSource};

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// The image file.
    pub file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Which frame the statistics describe (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: u32,
}

pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    let source = ImageSource::open(&args.file)?;
    let frame = source.frame(args.frame)?;
    let stats = frame.stats();
    let meta = source.meta();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(meta, args.frame, stats))?);
    } else {
        print!("{}", to_text(meta, args.frame, stats));
    }
    Ok(())
}

/// The `info --json` contract: path, format, modality, rows, cols, frames, photometric,
/// bits_allocated, transfer_syntax {uid, name}, and min/max/mean of the frame in modality units.
pub fn to_json(meta: &ImageMeta, frame: u32, stats: FrameStats) -> serde_json::Value {
    json!({
        "path": meta.path,
        "format": meta.format,
        "modality": meta.modality,
        "rows": meta.rows,
        "cols": meta.cols,
        "frames": meta.frames,
        "channels": meta.channels,
        "photometric": meta.photometric,
        "bits_allocated": meta.bits_allocated,
        "bits_stored": meta.bits_stored,
        "signed": meta.signed,
        "transfer_syntax": meta.transfer_syntax,
        "pixel_spacing": meta.pixel_spacing.map(|(r, c)| [r, c]),
        "rescale": meta.rescale.map(|(slope, intercept)| json!({"slope": slope, "intercept": intercept})),
        "windows": meta.windows.iter().map(|w| json!({
            "center": w.window.center, "width": w.window.width, "name": meta.window_label(w),
        })).collect::<Vec<_>>(),
        "frame": frame,
        "min": stats.min,
        "max": stats.max,
        "mean": stats.mean,
    })
}

fn to_text(meta: &ImageMeta, frame: u32, stats: FrameStats) -> String {
    let mut lines = vec![
        ("file", meta.path.display().to_string()),
        ("format", meta.format.name().to_string()),
        ("modality", meta.modality.clone().unwrap_or_else(|| "-".into())),
        ("size", format!("{} × {} pixels, {} frame(s)", meta.cols, meta.rows, meta.frames)),
        (
            "pixels",
            format!(
                "{}, {} bits allocated, {} stored, {}",
                meta.photometric,
                meta.bits_allocated,
                meta.bits_stored,
                if meta.signed { "signed" } else { "unsigned" }
            ),
        ),
    ];
    if let Some(ts) = &meta.transfer_syntax {
        lines.push(("transfer syntax", format!("{} ({})", ts.uid, ts.name)));
    }
    if let Some((row, col)) = meta.pixel_spacing {
        lines.push(("pixel spacing", format!("{row} × {col} mm")));
    }
    if let Some((slope, intercept)) = meta.rescale {
        lines.push(("rescale", format!("value = {slope} × stored + {intercept}")));
    }
    for w in &meta.windows {
        lines.push(("window", meta.window_label(w)));
    }
    lines.push((
        "statistics",
        format!("frame {frame}: min {} max {} mean {:.3}", stats.min, stats.max, stats.mean),
    ));
    lines.into_iter().map(|(k, v)| format!("{k:<16}{v}\n")).collect()
}
