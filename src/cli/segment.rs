//! `delightsam segment`: automatic (De-LightSAM, `--modality`) or prompted (LiteMedSAM, `--box`
//! / `--point`) segmentation of one image, or automatic segmentation of a whole folder.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::engine::propagate::{StopRule, propagate};
use crate::engine::{DynAutoSegmenter, DynSegmenter};
use crate::imaging::dicom_seg::{self, SegmentAlgorithm, SegmentInfo};
use crate::imaging::nifti;
use crate::imaging::volume::Volume;
use crate::imaging::{ImageSource, Mask, write_mask_png};
use crate::model::backend::BackendKind;
use crate::model::modality;
use crate::model::sp_generator::GRID_SIZE;
use crate::model::weights::{self, Provenance};
use crate::model::{PointPrompt, Prompts};

#[derive(Debug, clap::Args)]
pub struct SegmentArgs {
    /// The image (DICOM, PNG, JPEG, TIFF or BMP), a folder of images (automatic mode), or a
    /// volume: a folder holding one DICOM series, or a NIfTI file (.nii, .nii.gz).
    pub input: PathBuf,
    /// Automatic segmentation as this modality (dermoscopy, x-ray, fundus, colonoscopy,
    /// ultrasound, microscopy, ct, mr, electron-microscopy, or one the model was trained with). For DICOM files it
    /// defaults from the Modality tag where that is unambiguous.
    #[arg(long, conflicts_with_all = ["bbox", "points"])]
    pub modality: Option<String>,
    /// Read the 32×32 patch prompt from this PNG (nonzero = on) instead of generating it.
    #[arg(long, value_name = "GRID.png")]
    pub patch_grid: Option<PathBuf>,
    /// Write the 32×32 patch prompt that was used to this PNG (0/255), for editing.
    #[arg(long, value_name = "GRID.png")]
    pub save_patch_grid: Option<PathBuf>,
    /// Box prompt in image pixels: x0,y0,x1,y1 (prompted LiteMedSAM mode).
    #[arg(long = "box", value_parser = parse_box, allow_hyphen_values = true)]
    pub bbox: Option<[f32; 4]>,
    /// Point prompt in image pixels: x,y (foreground) or x,y,neg (background). Repeatable.
    #[arg(long = "point", value_parser = parse_point)]
    pub points: Vec<PointPrompt>,
    /// The mask PNG to write (0/255), or the output folder when the input is a folder of images;
    /// for a volume, OUT.nii or OUT.nii.gz (a label volume on its grid) or, for a DICOM
    /// series, OUT.dcm (a DICOM SEG referencing the series' images).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Where the model runs.
    #[arg(long, default_value = "cpu")]
    pub backend: BackendKind,
    /// Segment a modality the model tiles (thin structures: fundus vessels, EM membranes) as
    /// one whole image at the model's input size instead of in tiles at its own resolution.
    #[arg(long)]
    pub whole_image: bool,
    /// The slice of a volume to prompt (0-based; a DICOM series' slices ascending along the
    /// normal, a NIfTI file's third axis as stored); the box is in that slice's pixel grid
    /// (x = column / first axis, y = row / second axis).
    #[arg(long, requires = "bbox")]
    pub slice: Option<usize>,
    /// Carry the mask from --slice up and down through the series (LiteMedSAM prompted with
    /// the previous slice's box) until the object vanishes; -o names a NIfTI label volume.
    #[arg(long, requires = "slice")]
    pub propagate: bool,
    /// Which frame of a multi-frame image (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: u32,
    /// A model other than the shipped one: a De-LightSAM record (NAME.bpk with NAME.json), or a
    /// LiteMedSAM record.
    #[arg(long)]
    pub model: Option<PathBuf>,
}

pub fn run(args: &SegmentArgs) -> anyhow::Result<()> {
    let prompts = Prompts { bbox: args.bbox, points: args.points.clone() };
    if args.slice.is_some() {
        return run_volume(args, &prompts);
    }
    if !prompts.is_empty() {
        if args.patch_grid.is_some() || args.save_patch_grid.is_some() {
            anyhow::bail!("patch grids belong to automatic segmentation (--modality), not to box/point prompts");
        }
        return run_prompted(args, &prompts);
    }
    if nifti::is_nifti_path(&args.input) || nifti::is_nifti_path(&args.out) || (args.input.is_dir() && dicom_seg::is_seg_path(&args.out)) {
        return run_volume_auto(args);
    }
    if args.input.is_dir() {
        return run_folder(args);
    }
    run_automatic(args)
}

fn run_prompted(args: &SegmentArgs, prompts: &Prompts) -> anyhow::Result<()> {
    let source = ImageSource::open(&args.input)?;
    let frame = source.frame(args.frame)?;
    let record = args.model.clone().unwrap_or_else(weights::default_record_path);
    let mut segmenter = DynSegmenter::load(args.backend, &record)?;
    let key = format!("{}#{}", args.input.display(), args.frame);
    let result = segmenter.segment(&key, &frame, prompts)?;
    write_mask_png(&result.mask, &args.out, &args.input).with_context(|| format!("cannot write {}", args.out.display()))?;
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

/// A volume (DICOM series folder or NIfTI file) prompted on one slice, and with --propagate
/// carried through the others → a label volume on the volume's grid.
fn run_volume(args: &SegmentArgs, prompts: &Prompts) -> anyhow::Result<()> {
    let (Some(start), Some(bbox)) = (args.slice, prompts.bbox) else {
        anyhow::bail!("--slice needs --box x0,y0,x1,y1 on that slice");
    };
    let volume = open_volume(args)?;
    let count = volume.slice_count();
    if start >= count {
        anyhow::bail!("--slice {start}: the volume has {count} slices (0 to {})", count - 1);
    }
    let record = args.model.clone().unwrap_or_else(weights::default_record_path);
    let mut segmenter = DynSegmenter::load(args.backend, &record)?;
    let key = args.input.display().to_string();
    let masks: Vec<(usize, Mask)> = if args.propagate {
        let bar = indicatif::ProgressBar::new(count as u64);
        let mut progress = |done: usize| {
            bar.set_position(done as u64);
            true
        };
        let masks = propagate(&mut segmenter, &key, &volume, start, bbox, StopRule::default(), &mut progress)?;
        bar.finish_and_clear();
        masks.into_iter().map(|m| (m.slice, m.mask)).collect()
    } else {
        let prompts = Prompts { bbox: Some(bbox), points: Vec::new() };
        vec![(start, segmenter.segment(&format!("{key}#{start}"), &volume.slice(start), &prompts)?.mask)]
    };
    let labels = label_map(volume.shape, masks.iter().map(|(k, m)| (*k, m.labels())));
    let how = if args.propagate { "propagated from a box (LiteMedSAM)" } else { "from a box (LiteMedSAM)" };
    let summary = write_labels(args, &volume, &labels, &SegmentInfo::new(1, "Segment 1", SegmentAlgorithm::SemiAutomatic, how))?;
    let (first, last) = (masks.first().map(|m| m.0).unwrap_or(start), masks.last().map(|m| m.0).unwrap_or(start));
    println!(
        "wrote {} ({} of {count} slices labelled, {first} to {last}; {summary}) on {} [{}]",
        args.out.display(),
        masks.len(),
        args.backend,
        segmenter.device_name()
    );
    Ok(())
}

/// A volume segmented automatically slice by slice (De-LightSAM, --modality or the series'
/// DICOM Modality) → a label volume on the volume's grid.
fn run_volume_auto(args: &SegmentArgs) -> anyhow::Result<()> {
    if args.patch_grid.is_some() || args.save_patch_grid.is_some() {
        anyhow::bail!("--patch-grid and --save-patch-grid work on one image, not on a volume");
    }
    let volume = open_volume(args)?;
    let mut segmenter = load_auto(args)?;
    let name = match (&args.modality, volume.modality.as_deref().and_then(modality::from_dicom)) {
        (Some(name), _) => name.clone(),
        (None, Some(name)) => name.to_string(),
        (None, None) => anyhow::bail!(
            "{}: give --modality NAME ({})",
            args.input.display(),
            segmenter.modalities().names.join(", ")
        ),
    };
    let slot = segmenter.slot(&name)?;
    let count = volume.slice_count();
    let key = args.input.display().to_string();
    let bar = indicatif::ProgressBar::new(count as u64);
    let mut masks = Vec::with_capacity(count);
    for k in 0..count {
        masks.push(segmenter.segment(&format!("{key}#{k}"), &volume.slice(k), slot, None)?.mask);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let labels = label_map(volume.shape, masks.iter().enumerate().map(|(k, m)| (k, m.labels())));
    let modality = segmenter.modalities().name(slot).unwrap_or("?").to_string();
    let how = format!("automatic De-LightSAM, {modality}");
    let summary = write_labels(args, &volume, &labels, &SegmentInfo::new(1, &modality, SegmentAlgorithm::Automatic, &how))?;
    println!(
        "wrote {} ({} of {count} slices labelled as {modality}; {summary}) on {} [{}]",
        args.out.display(),
        labels.chunks_exact(volume.shape[0] * volume.shape[1]).filter(|s| s.iter().any(|&l| l != 0)).count(),
        args.backend,
        segmenter.device_name()
    );
    Ok(())
}

/// The input as a volume, after checking that the output names a label volume format and is
/// not one of the input's files.
fn open_volume(args: &SegmentArgs) -> anyhow::Result<Volume> {
    let dicom_out = dicom_seg::is_seg_path(&args.out);
    if !nifti::is_nifti_path(&args.out) && !dicom_out {
        anyhow::bail!(
            "{}: a volume's labels are written as NIfTI (OUT.nii, OUT.nii.gz) or DICOM SEG (OUT.dcm)",
            args.out.display()
        );
    }
    let volume = Volume::open(&args.input)?;
    if volume.is_source(&args.out) {
        anyhow::bail!("{}: refusing to write over a file of the input", args.out.display());
    }
    if dicom_out {
        let Some(series) = volume.series() else {
            anyhow::bail!("{}: a DICOM SEG references DICOM images; a NIfTI input's labels go to OUT.nii.gz", args.out.display());
        };
        dicom_seg::check_series(series).with_context(|| format!("cannot write {}", args.out.display()))?;
    }
    for warning in &volume.warnings {
        eprintln!("warning: {}: {warning}", args.input.display());
    }
    Ok(volume)
}

/// A u8 label map on `shape` from per-slice masks (nonzero → 1).
fn label_map<'a>(shape: [usize; 3], masks: impl IntoIterator<Item = (usize, &'a [u8])>) -> Vec<u8> {
    let plane = shape[0] * shape[1];
    let mut labels = vec![0u8; plane * shape[2]];
    for (slice, mask) in masks {
        for (out, &label) in labels[slice * plane..(slice + 1) * plane].iter_mut().zip(mask) {
            *out = u8::from(label != 0);
        }
    }
    labels
}

/// Writes `labels` as NIfTI or DICOM SEG (by the output's name); returns "N voxels = V mL".
fn write_labels(args: &SegmentArgs, volume: &Volume, labels: &[u8], segment: &SegmentInfo) -> anyhow::Result<String> {
    let voxels = labels.iter().filter(|&&l| l != 0).count();
    if dicom_seg::is_seg_path(&args.out) {
        let series = volume.series().context("a DICOM SEG needs a DICOM series")?;
        dicom_seg::write(&args.out, series, labels, std::slice::from_ref(segment))?;
    } else {
        nifti::write(&args.out, volume.shape, &volume.affine_ras, &nifti::Voxels::U8(labels.to_vec()))?;
    }
    Ok(format!("{voxels} voxels = {:.2} mL", voxels as f64 * volume.voxel_volume_ml()))
}

fn load_auto(args: &SegmentArgs) -> anyhow::Result<DynAutoSegmenter> {
    let mut segmenter = DynAutoSegmenter::load(args.backend, args.model.as_deref())?;
    segmenter.set_tiles_enabled(!args.whole_image);
    if let Provenance::FreshFromLiteMedSam(path) = segmenter.provenance() {
        eprintln!(
            "note: no trained De-LightSAM model found; using an untrained one initialised from {} \
             (train one with `delightsam train`)",
            path.display()
        );
    }
    Ok(segmenter)
}

/// The modality slot for one image: `--modality`, else the DICOM Modality tag's default.
fn modality_slot(segmenter: &DynAutoSegmenter, args: &SegmentArgs, source: &ImageSource) -> anyhow::Result<usize> {
    let known = || segmenter.modalities().names.join(", ");
    let name = match (&args.modality, source.meta().modality.as_deref()) {
        (Some(name), _) => name.clone(),
        (None, Some(tag)) => match modality::from_dicom(tag) {
            Some(name) => name.to_string(),
            None => anyhow::bail!(
                "{}: DICOM modality {tag:?} has no default; choose one with --modality ({})",
                source.meta().path.display(),
                known()
            ),
        },
        (None, None) => anyhow::bail!(
            "{}: give --modality NAME for automatic segmentation ({}), or a --box/--point prompt",
            source.meta().path.display(),
            known()
        ),
    };
    Ok(segmenter.slot(&name)?)
}

fn run_automatic(args: &SegmentArgs) -> anyhow::Result<()> {
    let source = ImageSource::open(&args.input)?;
    let frame = source.frame(args.frame)?;
    let grid = args
        .patch_grid
        .as_ref()
        .map(|path| Mask::load(path).with_context(|| format!("cannot read the patch grid {}", path.display())))
        .transpose()?;
    let mut segmenter = load_auto(args)?;
    let slot = modality_slot(&segmenter, args, &source)?;
    let key = format!("{}#{}", args.input.display(), args.frame);
    if let (Some(_), None, Some(tiling)) = (&args.save_patch_grid, &grid, segmenter.tiling(slot)) {
        anyhow::bail!(
            "{} is segmented in tiles ({}), each with its own patch prompt: add --whole-image to segment it whole with one patch grid",
            segmenter.modalities().name(slot).unwrap_or("this modality"),
            tiling_summary(&tiling)
        );
    }
    let result = segmenter
        .segment(&key, &frame, slot, grid.as_ref())
        .with_context(|| format!("{}", args.patch_grid.as_deref().unwrap_or(Path::new("grid")).display()))?;
    write_mask_png(&result.mask, &args.out, &args.input).with_context(|| format!("cannot write {}", args.out.display()))?;
    if let (Some(path), Some(grid)) = (&args.save_patch_grid, &result.grid) {
        write_mask_png(grid, path, &args.input).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let prompt = match &result.grid {
        Some(grid) => format!("{} of {} patches prompted", grid.foreground_count(), GRID_SIZE * GRID_SIZE),
        None => format!("{} tile(s)", result.tiles),
    };
    println!(
        "wrote {} ({} of {} pixels inside; {prompt}) as {} on {} [{}]: encode {:.1} ms, decode {:.1} ms",
        args.out.display(),
        result.mask.foreground_count(),
        frame.pixel_count(),
        segmenter.modalities().name(slot).unwrap_or("?"),
        args.backend,
        segmenter.device_name(),
        result.timings.encode.as_secs_f64() * 1e3,
        result.timings.decode.as_secs_f64() * 1e3,
    );
    Ok(())
}

/// "tiles of 256² at its own resolution" / "… with the longest side at 640 px".
pub fn tiling_summary(tiling: &crate::model::tiling::Tiling) -> String {
    match tiling.long_side {
        Some(long) => format!("overlapping tiles with the longest side scaled to {long} px"),
        None => "overlapping tiles at its own resolution".to_string(),
    }
}

/// Every regular, non-hidden file directly in `dir`, sorted by name.
fn folder_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    Ok(files)
}

fn run_folder(args: &SegmentArgs) -> anyhow::Result<()> {
    if args.patch_grid.is_some() || args.save_patch_grid.is_some() {
        anyhow::bail!("--patch-grid and --save-patch-grid work on one image, not on a folder");
    }
    if args.out.is_file() {
        anyhow::bail!("{}: the output must be a folder when the input is a folder", args.out.display());
    }
    if crate::imaging::is_same_file(&args.input, &args.out) {
        anyhow::bail!("{}: write the masks to another folder than the images", args.out.display());
    }
    let files = folder_files(&args.input)?;
    if files.is_empty() {
        anyhow::bail!("{}: no files to segment", args.input.display());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut segmenter = load_auto(args)?;
    let bar = indicatif::ProgressBar::new(files.len() as u64).with_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} (eta {eta}) {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut failures = Vec::new();
    let mut written = 0usize;
    for file in &files {
        bar.set_message(file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let out = args.out.join(format!("{stem}.png"));
        let result = (|| -> anyhow::Result<()> {
            let source = ImageSource::open(file)?;
            let frame = source.frame(args.frame)?;
            let slot = modality_slot(&segmenter, args, &source)?;
            let result = segmenter.segment(&file.display().to_string(), &frame, slot, None)?;
            write_mask_png(&result.mask, &out, file)?;
            Ok(())
        })();
        match result {
            Ok(()) => written += 1,
            Err(e) => failures.push(format!("{e:#}")),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!("wrote {written} mask(s) to {}", args.out.display());
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("{failure}");
        }
        anyhow::bail!("{} of {} files could not be segmented (listed above)", failures.len(), files.len());
    }
    Ok(())
}

fn numbers(text: &str, what: &str) -> anyhow::Result<Vec<f32>> {
    text.split(',')
        .map(|v| v.trim().parse::<f32>().with_context(|| format!("{what}: {v:?} is not a number")))
        .collect()
}

fn parse_box(text: &str) -> anyhow::Result<[f32; 4]> {
    match numbers(text, "box")?[..] {
        [x0, y0, x1, y1] if x1 > x0 && y1 > y0 => Ok([x0, y0, x1, y1]),
        [_, _, _, _] => anyhow::bail!("box must be x0,y0,x1,y1 with x1 > x0 and y1 > y0"),
        _ => anyhow::bail!("box must be x0,y0,x1,y1, got {text:?}"),
    }
}

fn parse_point(text: &str) -> anyhow::Result<PointPrompt> {
    let (coords, positive) = match text.strip_suffix(",neg") {
        Some(c) => (c, false),
        None => (text.strip_suffix(",pos").unwrap_or(text), true),
    };
    match numbers(coords, "point")?[..] {
        [x, y] => Ok(PointPrompt { x, y, positive }),
        _ => anyhow::bail!("point must be x,y or x,y,neg, got {text:?}"),
    }
}
