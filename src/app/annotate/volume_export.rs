//! Export of a volume's masks (every slice's, from the study in memory) as one label volume on
//! the volume's grid: NIfTI with a label description, PNG label maps per slice, and a DICOM SEG
//! too when the volume is a DICOM series whose images can be referenced.

use std::path::{Path, PathBuf};

use super::labels::LabelTable;
use crate::imaging::ImageSource;
use crate::imaging::dicom_seg::{self, SegmentAlgorithm, SegmentInfo};
use crate::imaging::nifti::{self, Voxels};

/// `<name>_mask.nii.gz` (the folder's name for a series, the file's without `.nii[.gz]`) in
/// `export_dir`, else beside the series folder or the NIfTI file (never inside a series folder:
/// it would no longer hold only the series).
pub fn volume_export_path(volume: &Path, export_dir: Option<&Path>) -> PathBuf {
    let name = volume.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "volume".into());
    let lower = name.to_ascii_lowercase();
    let stem = [".nii.gz", ".nii", ".dcm", ".dicom"].iter().find(|ext| lower.ends_with(*ext)).map_or(name.as_str(), |ext| &name[..name.len() - ext.len()]);
    let file = format!("{stem}_mask.nii.gz");
    match export_dir {
        Some(dir) => dir.join(file),
        None => volume.with_file_name(file),
    }
}

/// What an export wrote.
pub struct VolumeExport {
    pub files: Vec<PathBuf>,
    pub labelled_slices: usize,
    /// Voxels per label value, and each label's volume in mL.
    pub per_label: Vec<(u8, usize, f64)>,
    /// Why no DICOM SEG was written, when the volume is a series.
    pub seg_skipped: Option<String>,
}

/// The folder of per-slice PNG label maps beside `nifti_out` (`<name>_mask_png`).
pub fn png_folder(nifti_out: &Path) -> PathBuf {
    beside(nifti_out, "_mask_png")
}

/// `<name><suffix>` beside the label NIfTI `<name>_mask.nii.gz`.
fn beside(nifti_out: &Path, suffix: &str) -> PathBuf {
    nifti_out.with_file_name(nifti_out.file_name().unwrap_or_default().to_string_lossy().replace("_mask.nii.gz", suffix))
}

/// Writes `labels` (every slice of `source`'s volume, slice k at `k · nx · ny`): the label
/// NIfTI with the volume's affine, an ITK-SNAP label description beside it, one PNG label map
/// per slice (label values as they are), and a DICOM SEG with one named segment per label when
/// the volume is a series whose images can be referenced. Off the UI thread.
pub fn export_volume(source: &ImageSource, labels: Vec<u8>, table: &LabelTable, export_dir: Option<&Path>) -> Result<VolumeExport, String> {
    let volume = source.volume().ok_or("not a volume")?;
    let out = volume_export_path(source.path(), export_dir);
    if volume.is_source(&out) {
        return Err(format!("{}: refusing to write over the source", out.display()));
    }
    let [nx, ny, nz] = volume.shape;
    let plane = nx * ny;
    if labels.len() != plane * nz {
        return Err(format!("{} label voxels for a {nx}×{ny}×{nz} volume", labels.len()));
    }
    let mut counts = [0usize; 256];
    for &l in &labels {
        counts[l as usize] += 1;
    }
    let values: Vec<u8> = (1..=255u8).filter(|&v| counts[v as usize] > 0).collect();
    let per_label = values.iter().map(|&v| (v, counts[v as usize], counts[v as usize] as f64 * volume.voxel_volume_ml())).collect();
    let labelled_slices = labels.chunks_exact(plane.max(1)).filter(|s| s.iter().any(|&l| l != 0)).count();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create the export folder: {e}", dir.display()))?;
    }
    // The NIfTI first: a DICOM SEG that cannot be written must not cost the label volume.
    nifti::write(&out, volume.shape, &volume.affine_ras, &Voxels::U8(labels.clone())).map_err(|e| e.to_string())?;
    let mut files = vec![out.clone()];
    let description = beside(&out, "_labels.txt");
    crate::imaging::write_atomic(&description, table.itk_snap_description(&values).as_bytes()).map_err(|e| format!("{}: {e}", description.display()))?;
    files.push(description);
    let pngs = png_folder(&out);
    write_slice_pngs(&pngs, &labels, [nx, ny, nz], source.path())?;
    files.push(pngs);
    let mut seg_skipped = None;
    if let Some(series) = volume.series() {
        let seg = beside(&out, "_seg.dcm");
        let segments: Vec<SegmentInfo> = values
            .iter()
            .map(|&v| {
                let info = table.get(v);
                let mut segment = SegmentInfo::new(v, &info.name, SegmentAlgorithm::SemiAutomatic, "De-LightSAM Annotator");
                segment.rgb = info.rgb;
                segment
            })
            .collect();
        match dicom_seg::check_series(series) {
            Err(why) => seg_skipped = Some(why.to_string()),
            Ok(()) if segments.is_empty() => seg_skipped = Some("no label to write".into()),
            Ok(()) => match dicom_seg::write(&seg, series, &labels, &segments) {
                Ok(_) => files.push(seg),
                Err(why) => seg_skipped = Some(why.to_string()),
            },
        }
    }
    Ok(VolumeExport { files, labelled_slices, per_label, seg_skipped })
}

/// `slice_0000.png` … one 8-bit label map per slice (values as they are: 0 background, 1–255
/// the labels), each written atomically.
fn write_slice_pngs(folder: &Path, labels: &[u8], [nx, ny, nz]: [usize; 3], source: &Path) -> Result<(), String> {
    std::fs::create_dir_all(folder).map_err(|e| format!("{}: cannot create the folder: {e}", folder.display()))?;
    let plane = nx * ny;
    let digits = nz.saturating_sub(1).to_string().len().max(4);
    for (k, slice) in labels.chunks_exact(plane.max(1)).enumerate() {
        let path = folder.join(format!("slice_{k:0digits$}.png"));
        crate::imaging::write_display_png(&path, source, nx as u32, ny as u32, 1, slice).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_masks_go_beside_the_series_folder_or_the_nifti_file() {
        assert_eq!(volume_export_path(Path::new("/d/ct-series"), None), Path::new("/d/ct-series_mask.nii.gz"));
        assert_eq!(volume_export_path(Path::new("/d/brain.nii.gz"), None), Path::new("/d/brain_mask.nii.gz"));
        assert_eq!(volume_export_path(Path::new("/d/Brain.NII"), Some(Path::new("/out"))), Path::new("/out/Brain_mask.nii.gz"));
        assert_eq!(volume_export_path(Path::new("/d/1.2.840.5"), None), Path::new("/d/1.2.840.5_mask.nii.gz"));
        assert_eq!(volume_export_path(Path::new("/d/enhanced.dcm"), None), Path::new("/d/enhanced_mask.nii.gz"));
        assert_eq!(png_folder(Path::new("/d/enhanced_mask.nii.gz")), Path::new("/d/enhanced_mask_png"));
    }
}
