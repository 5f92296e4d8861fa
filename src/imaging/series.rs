//! DICOM series: a folder's single-slice files grouped into series and ordered into volumes,
//! with their geometry (spacing, RAS affine) from the headers, never from file names.
//!
//! Conventions (the same as dcm2niix/dicom2nifti and nibabel): slices sorted ascending by their
//! Image Position (Patient) projected on the normal `row direction × column direction`; voxel
//! (i, j, k) = (column, row, sorted slice); the RAS affine is `diag(−1, −1, 1, 1)` times the
//! LPS one whose columns are `row_dir · column spacing`, `col_dir · row spacing`,
//! `(IPP_last − IPP_first) / (N − 1)`, origin `IPP_first`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::meta::DicomIds;
use super::{ImageError, ImageMeta, ImageSource, SourceFormat};

/// One slice of a series: a file and, for a multi-frame file, its frame.
#[derive(Debug, Clone)]
pub struct Slice {
    pub path: PathBuf,
    pub frame: u32,
    /// Image Position (Patient), LPS mm.
    pub position: [f64; 3],
    pub instance_number: Option<i64>,
    pub sop_instance_uid: Option<String>,
}

/// A DICOM series ready to read as a volume: slices in order and the geometry they share.
#[derive(Debug, Clone)]
pub struct Series {
    pub series_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    pub description: Option<String>,
    pub modality: Option<String>,
    pub rows: u32,
    pub columns: u32,
    /// Row and column direction cosines (LPS).
    pub orientation: [f64; 6],
    /// (row spacing, column spacing) in mm: DICOM Pixel Spacing's order.
    pub pixel_spacing: (f64, f64),
    /// Sorted ascending along the normal.
    pub slices: Vec<Slice>,
    /// Inconsistencies that were tolerated (uneven spacing, gaps), in words the user sees.
    pub warnings: Vec<String>,
}

/// What a folder holds: its series and the files that are not part of one.
#[derive(Debug, Default)]
pub struct FolderScan {
    pub series: Vec<Series>,
    /// Plain images (raster files, DICOM without usable geometry) by path.
    pub images: Vec<PathBuf>,
    /// Files that could not be read, with why.
    pub unreadable: Vec<(PathBuf, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("{}: cannot list the folder: {source}", path.display())]
    List {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no DICOM series in the folder ({images} other image(s), {unreadable} unreadable file(s))", path.display())]
    NoSeries { path: PathBuf, images: usize, unreadable: usize },
    #[error("{}: the folder holds {count} series; put the one to use in a folder of its own (`delightsam info {}` lists them)", path.display(), path.display())]
    SeveralSeries { path: PathBuf, count: usize },
    #[error("{}: {repeated} slice(s) share a position with another (several acquisitions in one series?); a volume needs one slice per position", path.display())]
    RepeatedPositions { path: PathBuf, repeated: usize },
    #[error(transparent)]
    Image(#[from] ImageError),
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

impl Series {
    pub fn row_direction(&self) -> [f64; 3] {
        [self.orientation[0], self.orientation[1], self.orientation[2]]
    }

    pub fn column_direction(&self) -> [f64; 3] {
        [self.orientation[3], self.orientation[4], self.orientation[5]]
    }

    /// The slice normal, row direction × column direction.
    pub fn normal(&self) -> [f64; 3] {
        cross(self.row_direction(), self.column_direction())
    }

    /// The step from the first to the last slice, per slice (LPS mm); the normal for one slice.
    pub fn slice_step(&self) -> [f64; 3] {
        let n = self.slices.len();
        if n < 2 {
            return self.normal();
        }
        let (first, last) = (self.slices[0].position, self.slices[n - 1].position);
        let k = (n - 1) as f64;
        [(last[0] - first[0]) / k, (last[1] - first[1]) / k, (last[2] - first[2]) / k]
    }

    /// Voxel size [x, y, z] in mm: column spacing, row spacing, slice step.
    pub fn spacing(&self) -> [f64; 3] {
        let step = self.slice_step();
        [self.pixel_spacing.1, self.pixel_spacing.0, dot(step, step).sqrt()]
    }

    /// Voxel (i, j, k) → LPS mm.
    pub fn affine_lps(&self) -> [[f64; 4]; 4] {
        let (r, c, s) = (self.row_direction(), self.column_direction(), self.slice_step());
        let (dr, dc) = (self.pixel_spacing.1, self.pixel_spacing.0);
        let o = self.slices.first().map(|s| s.position).unwrap_or([0.0; 3]);
        let mut a = [[0.0; 4]; 4];
        for axis in 0..3 {
            a[axis] = [r[axis] * dr, c[axis] * dc, s[axis], o[axis]];
        }
        a[3] = [0.0, 0.0, 0.0, 1.0];
        a
    }

    /// Voxel (i, j, k) → RAS+ mm, as nibabel reports it for the series converted to NIfTI.
    pub fn affine_ras(&self) -> [[f64; 4]; 4] {
        let mut a = self.affine_lps();
        for row in a.iter_mut().take(2) {
            row.iter_mut().for_each(|v| *v = -*v);
        }
        a
    }

    /// How many slices share their position along the normal with the slice before them.
    pub fn repeated_positions(&self) -> usize {
        let normal = self.normal();
        self.slices.windows(2).filter(|w| (dot(w[1].position, normal) - dot(w[0].position, normal)).abs() < 1e-3).count()
    }

    /// The series' size as (columns, rows, slices).
    pub fn shape(&self) -> (u32, u32, usize) {
        (self.columns, self.rows, self.slices.len())
    }

    /// Every slice's values in modality units (HU for CT), slice after slice in sorted order,
    /// each row-major: voxel (i, j, k) at `i + columns · (j + rows · k)`. Grey series only.
    pub fn read_values(&self) -> Result<Vec<f32>, ImageError> {
        let plane = self.columns as usize * self.rows as usize;
        let mut values = Vec::with_capacity(plane * self.slices.len());
        let mut open: Option<(PathBuf, ImageSource)> = None;
        for slice in &self.slices {
            if open.as_ref().is_none_or(|(path, _)| *path != slice.path) {
                open = Some((slice.path.clone(), ImageSource::open(&slice.path)?));
            }
            let (_, source) = open.as_ref().expect("opened above");
            let frame = source.frame(slice.frame)?;
            if frame.channels != 1 || (frame.width, frame.height) != (self.columns, self.rows) {
                return Err(ImageError::Unsupported {
                    path: slice.path.clone(),
                    what: format!(
                        "a {}×{} slice with {} channel(s) in a {}×{} grey series",
                        frame.width, frame.height, frame.channels, self.columns, self.rows
                    ),
                });
            }
            values.extend_from_slice(&frame.data);
        }
        Ok(values)
    }
}

/// Scans `dir` (not its subfolders) for DICOM series and other images.
pub fn scan_folder(dir: &Path) -> Result<FolderScan, SeriesError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| SeriesError::List { path: dir.to_path_buf(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    let mut scan = FolderScan::default();
    let mut metas = Vec::new();
    for path in files {
        match ImageSource::open(&path) {
            Ok(source) => metas.push(source.meta().clone()),
            Err(e) => scan.unreadable.push((path, e.to_string())),
        }
    }
    let (series, images) = group(metas);
    scan.series = series;
    scan.images = images;
    Ok(scan)
}

/// The one series in `dir` as a volume, or a clear error when there is none, more than one, or
/// its slices repeat positions (cine, echoes: no single volume).
pub fn single_series(dir: &Path) -> Result<Series, SeriesError> {
    let mut scan = scan_folder(dir)?;
    let series = match scan.series.len() {
        0 => return Err(SeriesError::NoSeries { path: dir.to_path_buf(), images: scan.images.len(), unreadable: scan.unreadable.len() }),
        1 => scan.series.remove(0),
        count => return Err(SeriesError::SeveralSeries { path: dir.to_path_buf(), count }),
    };
    let repeated = series.repeated_positions();
    if repeated > 0 {
        return Err(SeriesError::RepeatedPositions { path: dir.to_path_buf(), repeated });
    }
    Ok(series)
}

/// A multi-frame DICOM file (enhanced CT/MR, …) whose frames each have a position and share
/// one orientation, as a series of its own; `None` when it is no such volume.
pub fn file_series(path: &Path) -> Result<Option<Series>, SeriesError> {
    let meta = ImageSource::open(path)?.meta().clone();
    let (series, _) = group(vec![meta]);
    let Some(series) = series.into_iter().next().filter(|s| s.slices.len() > 1) else { return Ok(None) };
    let repeated = series.repeated_positions();
    if repeated > 0 {
        return Err(SeriesError::RepeatedPositions { path: path.to_path_buf(), repeated });
    }
    Ok(Some(series))
}

/// Groups files into series: by Series Instance UID, or (when it is blank, as in some real
/// exports) by frame of reference and geometry; within a series by orientation and size too,
/// so a localiser in the same series becomes its own. DICOM files without position or
/// orientation, and raster files, are plain images.
fn group(metas: Vec<ImageMeta>) -> (Vec<Series>, Vec<PathBuf>) {
    let mut groups: BTreeMap<String, Vec<ImageMeta>> = BTreeMap::new();
    let mut images = Vec::new();
    for meta in metas {
        let usable = meta.format == SourceFormat::Dicom
            && meta.orientation.is_some()
            && meta.positions.len() == meta.frames as usize
            && !meta.positions.is_empty();
        if !usable {
            images.push(meta.path.clone());
            continue;
        }
        let ids = meta.dicom_ids.clone().unwrap_or_default();
        let o = meta.orientation.unwrap_or_default();
        let geometry = format!(
            "{}x{}|{}|{:?}",
            meta.cols,
            meta.rows,
            o.iter().map(|v| format!("{:.4}", (v * 1e4).round() / 1e4 + 0.0)).collect::<Vec<_>>().join(","),
            meta.pixel_spacing.map(|(a, b)| (format!("{a:.4}"), format!("{b:.4}")))
        );
        let key = match (&ids.series_uid, &ids.frame_of_reference_uid) {
            (Some(uid), _) => format!("uid:{uid}|{geometry}"),
            (None, Some(frame)) => format!("frame:{frame}|{}|{geometry}", meta.modality.clone().unwrap_or_default()),
            (None, None) => format!("geometry:{}|{geometry}", meta.modality.clone().unwrap_or_default()),
        };
        if meta.frames > 1 {
            // A multi-frame file is a volume of its own.
            groups.insert(format!("{key}|file:{}", meta.path.display()), vec![meta]);
        } else {
            groups.entry(key).or_default().push(meta);
        }
    }
    let mut series: Vec<Series> = groups.into_values().map(build_series).collect();
    series.sort_by(|a, b| a.slices[0].path.cmp(&b.slices[0].path));
    (series, images)
}

fn build_series(metas: Vec<ImageMeta>) -> Series {
    let first = &metas[0];
    let ids: DicomIds = first.dicom_ids.clone().unwrap_or_default();
    let orientation = first.orientation.unwrap_or([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let mut warnings = Vec::new();
    let pixel_spacing = first.pixel_spacing.unwrap_or_else(|| {
        warnings.push("no Pixel Spacing: 1 mm assumed".to_string());
        (1.0, 1.0)
    });
    let mut slices: Vec<Slice> = metas
        .iter()
        .flat_map(|m| {
            let ids = m.dicom_ids.clone().unwrap_or_default();
            m.positions.iter().enumerate().map(move |(frame, &position)| Slice {
                path: m.path.clone(),
                frame: frame as u32,
                position,
                instance_number: ids.instance_number,
                sop_instance_uid: ids.sop_instance_uid.clone(),
            })
        })
        .collect();
    let normal = cross([orientation[0], orientation[1], orientation[2]], [orientation[3], orientation[4], orientation[5]]);
    slices.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)).then(a.path.cmp(&b.path)));
    warnings.extend(spacing_warnings(&slices, normal));
    Series {
        series_uid: ids.series_uid,
        frame_of_reference_uid: ids.frame_of_reference_uid,
        description: ids.series_description,
        modality: first.modality.clone(),
        rows: first.rows,
        columns: first.cols,
        orientation,
        pixel_spacing,
        slices,
        warnings,
    }
}

/// Uneven steps along the normal (a missing slice, a second acquisition at the same place, a
/// slab change) are reported: the affine assumes one step for the whole volume.
fn spacing_warnings(slices: &[Slice], normal: [f64; 3]) -> Vec<String> {
    let along: Vec<f64> = slices.iter().map(|s| dot(s.position, normal)).collect();
    let steps: Vec<f64> = along.windows(2).map(|w| w[1] - w[0]).collect();
    if steps.is_empty() {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    let duplicates = steps.iter().filter(|s| s.abs() < 1e-3).count();
    if duplicates > 0 {
        warnings.push(format!("{duplicates} slice(s) share a position with another: the series may hold several acquisitions"));
    }
    let mean = (along[along.len() - 1] - along[0]) / steps.len() as f64;
    let worst = steps.iter().map(|s| (s - mean).abs()).fold(0.0, f64::max);
    if mean.abs() > 1e-6 && worst > 0.01 * mean.abs().max(0.1) {
        let (min, max) = steps.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| (a.min(*s), b.max(*s)));
        let mut sorted = steps.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let gaps = steps.iter().filter(|s| **s > 1.5 * median).count();
        warnings.push(format!(
            "slice spacing varies from {min:.3} to {max:.3} mm (mean {mean:.3} mm){}; the volume uses the mean",
            if gaps > 0 { format!(", {gaps} gap(s): slices may be missing") } else { String::new() }
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(z: f64) -> Slice {
        Slice { path: PathBuf::from(format!("{z}")), frame: 0, position: [0.0, 0.0, z], instance_number: None, sop_instance_uid: None }
    }

    #[test]
    fn even_spacing_is_quiet_and_gaps_or_duplicates_are_reported() {
        let n = [0.0, 0.0, 1.0];
        assert!(spacing_warnings(&[slice(0.0), slice(2.0), slice(4.0)], n).is_empty());
        let gap = spacing_warnings(&[slice(0.0), slice(2.0), slice(6.0), slice(8.0)], n);
        assert!(gap[0].contains("1 gap(s)"), "{gap:?}");
        let twice = spacing_warnings(&[slice(0.0), slice(0.0), slice(2.0)], n);
        assert!(twice[0].contains("share a position"), "{twice:?}");
    }
}
