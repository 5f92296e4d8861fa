use std::path::PathBuf;

use anyhow::Context;

use crate::imaging::nifti::{self, Voxels};
use crate::imaging::volume::{Volume, is_volume_path};
use crate::imaging::{ImageSource, Window, write_display_png};

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// The image file, or a volume: a folder holding one DICOM series, or a NIfTI file.
    pub file: PathBuf,
    /// The PNG to write (8-bit grey, or RGB for colour images); for a series, the NIfTI volume
    /// to write (OUT.nii or OUT.nii.gz) in modality units with the series' geometry.
    pub out: PathBuf,
    /// Which frame to write (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: u32,
    /// For a volume: write this label map (a NIfTI label volume, placed through the affines,
    /// or a DICOM SEG referencing the series) on the volume's grid instead of the image.
    #[arg(long, value_name = "LABELS")]
    pub labels: Option<PathBuf>,
    /// Window as CENTER,WIDTH in modality units (default: the file's first window, else min..max).
    #[arg(long, value_parser = Window::parse, allow_hyphen_values = true)]
    pub window: Option<Window>,
}

pub fn run(args: &ConvertArgs) -> anyhow::Result<()> {
    if is_volume_path(&args.file) || nifti::is_nifti_path(&args.out) {
        return convert_volume(args);
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

/// A volume (a folder's one DICOM series, or a NIfTI file) → a NIfTI volume (int16 when every
/// value is a whole number that fits, else float32), voxel (i, j, k) = (column, row, sorted
/// slice) for a series, RAS affine in sform and qform.
fn convert_volume(args: &ConvertArgs) -> anyhow::Result<()> {
    if !nifti::is_nifti_path(&args.out) {
        anyhow::bail!("{}: a volume converts to a NIfTI volume: name the output OUT.nii or OUT.nii.gz", args.out.display());
    }
    let volume = Volume::open(&args.file)?;
    if volume.is_source(&args.out) {
        anyhow::bail!("{}: refusing to write over a file of the input", args.out.display());
    }
    for warning in &volume.warnings {
        eprintln!("warning: {}: {warning}", args.file.display());
    }
    let [columns, rows, slices] = volume.shape;
    let [x, y, z] = volume.spacing();
    if let Some(path) = &args.labels {
        let (labels, segments) = volume.read_labels(path)?;
        let mut counts = std::collections::BTreeMap::new();
        labels.iter().filter(|&&l| l != 0).for_each(|&l| *counts.entry(l).or_insert(0usize) += 1);
        nifti::write(&args.out, volume.shape, &volume.affine_ras, &Voxels::U8(labels))?;
        let name = |v: u8| segments.iter().find(|s| s.0 == v).map(|s| format!(" {}", s.1)).unwrap_or_default();
        let listed: Vec<String> = counts.iter().map(|(v, n)| format!("{v}{}: {n}", name(*v))).collect();
        println!("wrote {} (labels on the {columns}×{rows}×{slices} grid; voxels per label: {})", args.out.display(), listed.join(", "));
        return Ok(());
    }
    let voxels = Voxels::from_values(volume.values);
    nifti::write(&args.out, volume.shape, &volume.affine_ras, &voxels)?;
    println!(
        "wrote {} ({columns}×{rows}×{slices} voxels of {x:.4}×{y:.4}×{z:.4} mm, {})",
        args.out.display(),
        if matches!(voxels, Voxels::I16(_)) { "int16" } else { "float32" }
    );
    Ok(())
}
