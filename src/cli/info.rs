use std::path::PathBuf;

use serde_json::json;

use crate::imaging::nifti;
use crate::imaging::series::{Series, scan_folder};
use crate::imaging::{FrameStats, ImageMeta, ImageSource};
use crate::model::backend::Cpu;
use crate::model::params::count;
use crate::model::weights::{self, Provenance};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["file", "model"])))]
pub struct InfoArgs {
    /// The image file, a NIfTI volume, or a folder of DICOM files (its series and other images
    /// are listed).
    pub file: Option<PathBuf>,
    /// Describe a model instead: parameter counts per part and its modalities. A record path
    /// (De-LightSAM NAME.bpk + NAME.json, or LiteMedSAM), or `default` for the shipped model.
    #[arg(long, value_name = "M")]
    pub model: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Which frame the statistics describe (0-based).
    #[arg(long, default_value_t = 0)]
    pub frame: u32,
}

pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    if let Some(model) = &args.model {
        return model_info(model, args.json);
    }
    let Some(file) = &args.file else { anyhow::bail!("give an image file or --model M") };
    if file.is_dir() {
        return folder_info(file, args.json);
    }
    if nifti::is_nifti_path(file) {
        return nifti_info(file, args.json);
    }
    let source = ImageSource::open(file)?;
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
/// bits_allocated, transfer_syntax {uid, name}, geometry, warnings, and min/max/mean of the frame
/// in modality units.
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
        "rescale_varies": meta.rescale_varies,
        "modality_lut": meta.modality_lut,
        "orientation": meta.orientation,
        "positions": meta.positions,
        "warnings": meta.warnings,
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
        let frames = if meta.rescale_varies { " (frame 0; it varies per frame)" } else { "" };
        lines.push(("rescale", format!("value = {slope} × stored + {intercept}{frames}")));
    }
    if let Some(lut) = &meta.modality_lut {
        lines.push(("modality LUT", lut.clone()));
    }
    if let Some(o) = meta.orientation {
        lines.push(("orientation", format!("rows {:?}, columns {:?}", &o[..3], &o[3..])));
    }
    match &meta.positions[..] {
        [] => {}
        [only] => lines.push(("position", format!("{only:?} mm"))),
        [first, .., last] => lines.push(("positions", format!("{first:?} … {last:?} mm ({} frames)", meta.positions.len()))),
    }
    for warning in &meta.warnings {
        lines.push(("warning", warning.clone()));
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

fn model_info(model: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let device = Default::default();
    let record = (model != std::path::Path::new("default")).then_some(model);
    if let Some(path) = record.filter(|p| p.is_file() && !weights::is_delightsam(p)) {
        let lite = weights::load::<Cpu>(path, &device)?;
        let parts = [
            ("image encoder (TinyViT-5M)", count(&lite.image_encoder)),
            ("prompt encoder", count(&lite.prompt_encoder)),
            ("mask decoder", count(&lite.mask_decoder)),
        ];
        let total: usize = parts.iter().map(|p| p.1).sum();
        if json {
            let parts: serde_json::Map<_, _> = parts.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
            println!("{}", serde_json::to_string_pretty(&json!({"model": "LiteMedSAM", "path": path, "parameters": parts, "total": total}))?);
        } else {
            println!("LiteMedSAM record {}", path.display());
            for (name, n) in parts {
                println!("  {name:<34}{:>12}", millions(n));
            }
            println!("  {:<34}{:>12}", "total", millions(total));
        }
        return Ok(());
    }
    let (model, config, provenance) = weights::load_delightsam_or_fresh::<Cpu>(record, &device)?;
    let counts = model.parameter_counts();
    let origin = match &provenance {
        Provenance::Record(p) => match weights::delightsam_storage(p) {
            Ok(weights::Storage::Head { encoder }) => {
                format!("record {}: head in f16, encoder from {encoder}", p.display())
            }
            Ok(weights::Storage::HeadAndControllers { encoder }) => {
                format!("record {}: head and modality controllers in f16, backbone from {encoder}", p.display())
            }
            _ => format!("record {}", p.display()),
        },
        Provenance::FreshFromLiteMedSam(p) => format!("untrained, initialised from {}", p.display()),
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "model": "De-LightSAM",
                "origin": origin,
                "input_size": config.input_size(),
                "modalities": config.modalities.names,
                "slots": config.modalities.slots,
                "parameters": counts,
                "dc_encoder": counts.dc_encoder(),
                "qm_decoder": counts.qm_decoder(),
                "per_modality_model": counts.per_modality_model(),
                "total": counts.total(),
            }))?
        );
        return Ok(());
    }
    println!("De-LightSAM ({origin}), input {}²", config.input_size());
    let rows = [
        ("DC-Encoder", counts.dc_encoder()),
        ("  TinyViT-5M backbone + neck", counts.backbone),
        ("  modality controllers (all slots)", counts.controller),
        ("SP-Generator", counts.sp_generator),
        ("QM-Decoder", counts.qm_decoder()),
        ("  two-way transformer + upscaling", counts.decoder_shared),
        ("  queries + hypernetworks (all slots)", counts.decoder_per_modality),
        ("positional encoding (fixed)", counts.positional_encoding),
        ("total", counts.total()),
        ("used for one modality", counts.per_modality_model()),
    ];
    for (name, n) in rows {
        println!("  {name:<40}{:>10}", millions(n));
    }
    println!(
        "  modalities ({} of {} slots): {}",
        config.modalities.names.len(),
        config.modalities.slots,
        config.modalities.names.join(", ")
    );
    Ok(())
}

fn millions(n: usize) -> String {
    format!("{:.3}M", n as f64 / 1e6)
}

/// One series as `info --json` reports it: slices, spacing [x, y, z] mm, the RAS+ affine as
/// nibabel reports it for the series converted to NIfTI.
fn series_json(series: &Series) -> serde_json::Value {
    let affine: Vec<Vec<f64>> = series.affine_ras().iter().map(|row| row.iter().map(|&v| round4(v)).collect()).collect();
    json!({
        "series_uid": series.series_uid,
        "description": series.description,
        "modality": series.modality,
        "columns": series.columns,
        "rows": series.rows,
        "slices": series.slices.len(),
        "spacing": series.spacing().map(round4),
        "affine": affine,
        "first_file": series.slices.first().map(|s| s.path.display().to_string()),
        "warnings": series.warnings,
    })
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// A NIfTI volume: shape, `slices`, `spacing` [x, y, z] mm, the RAS+ affine nibabel reports
/// (and whether it came from the sform, the qform or the shape alone), value range.
fn nifti_info(path: &std::path::Path, as_json: bool) -> anyhow::Result<()> {
    let volume = nifti::read(path)?;
    let (min, max) = crate::imaging::volume::min_max(&volume.values);
    let spacing = nifti::voxel_size(&volume.affine_ras);
    let affine: Vec<Vec<f64>> = volume.affine_ras.iter().map(|row| row.iter().map(|&v| round4(v)).collect()).collect();
    let value = json!({
        "path": path.display().to_string(),
        "format": "NIfTI-1",
        "description": volume.description,
        "shape": volume.shape,
        "slices": volume.shape[2],
        "spacing": spacing.map(round4),
        "affine": affine,
        "affine_from": volume.affine_source,
        "integer": volume.integer,
        "min": min,
        "max": max,
        "warnings": volume.warnings,
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let [nx, ny, nz] = volume.shape;
    println!("{}: NIfTI-1, {nx}×{ny}×{nz} voxels of {:.4}×{:.4}×{:.4} mm, values {min} … {max}", path.display(), spacing[0], spacing[1], spacing[2]);
    println!("  RAS affine (from the {}):", volume.affine_source);
    for row in &affine {
        println!("    {row:?}");
    }
    for warning in &volume.warnings {
        println!("  warning: {warning}");
    }
    Ok(())
}

/// A folder: with one series, that series' facts at the top level; with several, a `series`
/// list; plain images and unreadable files listed too.
fn folder_info(dir: &std::path::Path, as_json: bool) -> anyhow::Result<()> {
    let scan = scan_folder(dir)?;
    if scan.series.is_empty() && scan.images.is_empty() && scan.unreadable.is_empty() {
        anyhow::bail!("{}: the folder holds no files to describe", dir.display());
    }
    let mut value = json!({
        "path": dir.display().to_string(),
        "series": scan.series.iter().map(series_json).collect::<Vec<_>>(),
        "images": scan.images.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "unreadable": scan.unreadable.iter().map(|(p, why)| json!({"path": p.display().to_string(), "reason": why})).collect::<Vec<_>>(),
    });
    if let ([only], Some(object)) = (scan.series.as_slice(), value.as_object_mut()) {
        if let Some(facts) = series_json(only).as_object() {
            for (key, v) in facts {
                object.insert(key.clone(), v.clone());
            }
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!("{}: {} series, {} other image(s), {} unreadable file(s)", dir.display(), scan.series.len(), scan.images.len(), scan.unreadable.len());
    for series in &scan.series {
        let [x, y, z] = series.spacing();
        println!(
            "  {} {}: {}×{}×{} voxels of {x:.4}×{y:.4}×{z:.4} mm{}",
            series.modality.as_deref().unwrap_or("?"),
            series.description.as_deref().unwrap_or("(no description)"),
            series.columns,
            series.rows,
            series.slices.len(),
            series.warnings.iter().map(|w| format!("\n    warning: {w}")).collect::<String>()
        );
    }
    for (path, why) in &scan.unreadable {
        println!("  unreadable: {}: {why}", path.display());
    }
    Ok(())
}
