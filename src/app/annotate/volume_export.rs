//! Export of a volume's masks: every slice's mask (the open one, else its autosave) as one
//! label volume on the volume's grid, NIfTI always, and a DICOM SEG too when the volume is a
//! DICOM series whose images can be referenced.

use std::path::{Path, PathBuf};

use super::autosave::{self, Autosaver};
use super::document::Document;
use crate::imaging::dicom_seg::{self, SegmentAlgorithm, SegmentInfo};
use crate::imaging::nifti::{self, Voxels};

/// `<name>_mask.nii.gz` (the folder's name for a series, the file's without `.nii[.gz]`) in
/// `export_dir`, else beside the series folder or the NIfTI file (never inside a series folder:
/// it would no longer hold only the series).
pub fn volume_export_path(volume: &Path, export_dir: Option<&Path>) -> PathBuf {
    let name = volume.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "volume".into());
    let lower = name.to_ascii_lowercase();
    let stem = [".nii.gz", ".nii"].iter().find(|ext| lower.ends_with(*ext)).map_or(name.as_str(), |ext| &name[..name.len() - ext.len()]);
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
    pub voxels: usize,
    pub millilitres: f64,
    /// Why no DICOM SEG was written, when the volume is a series.
    pub seg_skipped: Option<String>,
    /// Slices whose autosave could not be read (left out, said so).
    pub warnings: Vec<String>,
}

pub fn export_volume(doc: &Document, autosaver: &Autosaver, autosave_dir: &Path, export_dir: Option<&Path>) -> Result<VolumeExport, String> {
    let volume = doc.source.volume().ok_or("not a volume")?;
    let out = volume_export_path(doc.path(), export_dir);
    if volume.is_source(&out) {
        return Err(format!("{}: refusing to write over the source", out.display()));
    }
    let [nx, ny, nz] = volume.shape;
    let plane = nx * ny;
    let mut labels = vec![0u8; plane * nz];
    let mut warnings = Vec::new();
    for k in 0..nz {
        let saved;
        let mask = if k == doc.frame_index as usize {
            &doc.mask
        } else {
            match autosave::restore(autosaver, autosave_dir, doc.path(), k as u32, nx as u32, ny as u32) {
                Ok(Some(mask)) => {
                    saved = mask;
                    &saved
                }
                Ok(None) => continue,
                Err(warning) => {
                    warnings.push(format!("slice {k} left out of the export: {warning}"));
                    continue;
                }
            }
        };
        labels[k * plane..(k + 1) * plane].copy_from_slice(mask.labels());
    }
    let voxels = labels.iter().filter(|&&l| l != 0).count();
    let labelled_slices = labels.chunks_exact(plane.max(1)).filter(|s| s.iter().any(|&l| l != 0)).count();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create the export folder: {e}", dir.display()))?;
    }
    // The NIfTI first: a DICOM SEG that cannot be written must not cost the label volume.
    nifti::write(&out, volume.shape, &volume.affine_ras, &Voxels::U8(labels.clone())).map_err(|e| e.to_string())?;
    let mut files = vec![out.clone()];
    let mut seg_skipped = None;
    if let Some(series) = volume.series() {
        let seg = out.with_file_name(out.file_name().unwrap_or_default().to_string_lossy().replace("_mask.nii.gz", "_seg.dcm"));
        let mut values: Vec<u8> = labels.iter().copied().filter(|&l| l != 0).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        values.sort_unstable();
        let segments: Vec<SegmentInfo> = values
            .iter()
            .map(|&v| SegmentInfo::new(v, &format!("Label {v}"), SegmentAlgorithm::SemiAutomatic, "De-LightSAM Annotator"))
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
    Ok(VolumeExport { files, labelled_slices, voxels, millilitres: voxels as f64 * volume.voxel_volume_ml(), seg_skipped, warnings })
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
    }
}
