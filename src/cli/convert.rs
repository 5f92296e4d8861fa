use std::path::PathBuf;

use anyhow::Context;

use crate::imaging::{ImageSource, Window, write_display_png};

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The image file.
    pub file: PathBuf,
    /// The PNG to write (8-bit grey, or RGB for colour images).
    pub out: PathBuf,
    /// Which frame to write (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: u32,
    /// Window as CENTER,WIDTH in modality units (default: the file's first window, else min..max).
    #[arg(long, value_parser = Window::parse, allow_hyphen_values = true)]
    pub window: Option<Window>,
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    let source = ImageSource::open(&args.file)?;
    let frame = source.frame(args.frame)?;
    let window = args.window.unwrap_or_else(|| source.default_window(&frame));
    let invert = source.meta().invert_display;
    let pixels: Vec<u8> = if frame.channels == 3 {
        frame.to_rgba8(window, invert).chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect()
    } else {
        frame.to_luma8(window, invert)
    };
    write_display_png(&args.out, &args.file, frame.width, frame.height, frame.channels, &pixels)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote {} ({}×{}, frame {}, window C {} / W {})",
        args.out.display(),
        frame.width,
        frame.height,
        args.frame,
        window.center,
        window.width
    );
    Ok(())
}
