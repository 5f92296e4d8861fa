use std::path::PathBuf;

use anyhow::Context;

use crate::imaging::nifti::{self, Voxels};
use crate::imaging::series::single_series;
use crate::imaging::{ImageSource, Window, write_display_png};

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The image file, or a folder holding one DICOM series.
    pub file: PathBuf,
    /// The PNG to write (8-bit grey, or RGB for colour images); for a series, the NIfTI volume
    /// to write (OUT.nii or OUT.nii.gz) in modality units with the series' geometry.
    pub out: PathBuf,
    /// Which frame to write (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: u32,
    /// Window as CENTER,WIDTH in modality units (default: the file's first window, else min..max).
    #[arg(long, value_parser = Window::parse, allow_hyphen_values = true)]
    pub window: Option<Window>,
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    if args.file.is_dir() {
        return convert_series(args);
    }
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

/// A folder's one DICOM series → a NIfTI volume (int16 when every value is a whole number that
/// fits, else float32), voxel (i, j, k) = (column, row, sorted slice), RAS affine in sform and
/// qform.
fn convert_series(args: &ConvertArgs) -> anyhow::Result<()> {
    if !nifti::is_nifti_path(&args.out) {
        anyhow::bail!("{}: a series converts to a NIfTI volume: name the output OUT.nii or OUT.nii.gz", args.out.display());
    }
    let series = single_series(&args.file)?;
    if series.slices.iter().any(|s| crate::imaging::is_same_file(&s.path, &args.out)) {
        anyhow::bail!("{}: refusing to write over a file of the series", args.out.display());
    }
    for warning in &series.warnings {
        eprintln!("warning: {}: {warning}", args.file.display());
    }
    let values = series.read_values()?;
    let (columns, rows, slices) = series.shape();
    let voxels = Voxels::from_values(values);
    nifti::write(&args.out, [columns as usize, rows as usize, slices], &series.affine_ras(), &voxels)?;
    let [x, y, z] = series.spacing();
    println!(
        "wrote {} ({columns}×{rows}×{slices} voxels of {x:.4}×{y:.4}×{z:.4} mm, {})",
        args.out.display(),
        if matches!(voxels, Voxels::I16(_)) { "int16" } else { "float32" }
    );
    Ok(())
}
