//! A volume to annotate, whatever it came from: a folder holding one DICOM series or a NIfTI
//! file. Slice k is index k of the third voxel axis; in a slice x is the first axis, y the
//! second (for a series: column, row, and slices sorted along the normal).

use std::path::{Path, PathBuf};

use super::nifti::{self, NiftiReadError};
use super::series::{Series, SeriesError, file_series, single_series};
use super::{Frame, ImageError};

/// Where a volume's voxels came from.
#[derive(Debug, Clone)]
pub enum VolumeOrigin {
    Series(Box<Series>),
    Nifti(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Volume {
    /// [x, y, slices].
    pub shape: [usize; 3],
    /// Modality units (HU for CT), voxel (i, j, k) at `i + nx · (j + ny · k)`.
    pub values: Vec<f32>,
    /// Voxel → RAS+ mm, as nibabel reports it.
    pub affine_ras: [[f64; 4]; 4],
    /// The DICOM Modality (a NIfTI file names none).
    pub modality: Option<String>,
    pub description: Option<String>,
    pub warnings: Vec<String>,
    pub origin: VolumeOrigin,
    /// The smallest and largest value (computed once: every slice shows with it).
    range: (f32, f32),
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Series(#[from] SeriesError),
    #[error(transparent)]
    Nifti(#[from] NiftiReadError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{}: a volume is a folder holding one DICOM series, a multi-frame DICOM file with a position per frame, or a NIfTI file (.nii, .nii.gz)", path.display())]
    NotAVolume { path: PathBuf },
    #[error("{}: label values must be whole numbers from 0 to 255 (found {value})", path.display())]
    NotLabels { path: PathBuf, value: f32 },
    #[error("{}: a DICOM SEG goes onto the DICOM series it references; for a NIfTI volume give a NIfTI label map", path.display())]
    LabelsNeedSeries { path: PathBuf },
    #[error(transparent)]
    Seg(#[from] super::dicom_seg::SegError),
    #[error("{}: the label map's affine cannot be inverted", path.display())]
    SingularAffine { path: PathBuf },
    #[error("{}: the label map does not overlap the volume anywhere (different patient space?)", path.display())]
    NoOverlap { path: PathBuf },
}

/// Whether `path` would open as a volume (a folder, or a NIfTI file name).
pub fn is_volume_path(path: &Path) -> bool {
    path.is_dir() || nifti::is_nifti_path(path)
}

impl Volume {
    pub fn open(path: &Path) -> Result<Self, VolumeError> {
        if path.is_dir() {
            return Self::from_series(single_series(path)?);
        }
        if !nifti::is_nifti_path(path) {
            return match file_series(path)? {
                Some(series) => Self::from_series(series),
                None => Err(VolumeError::NotAVolume { path: path.to_path_buf() }),
            };
        }
        let read = nifti::read(path)?;
        Ok(Self {
            shape: read.shape,
            values: read.values,
            affine_ras: read.affine_ras,
            modality: None,
            description: read.description,
            warnings: read.warnings,
            origin: VolumeOrigin::Nifti(path.to_path_buf()),
            range: (0.0, 0.0),
        }
        .with_range())
    }

    /// Reads a series' voxels.
    pub fn from_series(series: Series) -> Result<Self, VolumeError> {
        let values = series.read_values()?;
        let (columns, rows, slices) = series.shape();
        Ok(Self {
            shape: [columns as usize, rows as usize, slices],
            values,
            affine_ras: series.affine_ras(),
            modality: series.modality.clone(),
            description: series.description.clone(),
            warnings: series.warnings.clone(),
            origin: VolumeOrigin::Series(Box::new(series)),
            range: (0.0, 0.0),
        }
        .with_range())
    }

    fn with_range(mut self) -> Self {
        self.range = min_max(&self.values);
        self
    }

    /// The smallest and largest value.
    pub fn value_range(&self) -> (f32, f32) {
        self.range
    }

    /// A window over the 0.5th to 99.5th percentile of the values (sampled), so a few extreme
    /// voxels do not wash the volume out.
    pub fn robust_window(&self) -> super::Window {
        let step = (self.values.len() / 1_000_000).max(1);
        let mut sample: Vec<f32> = self.values.iter().step_by(step).copied().filter(|v| v.is_finite()).collect();
        if sample.is_empty() {
            return super::Window { center: 0.5, width: 1.0 };
        }
        sample.sort_by(f32::total_cmp);
        let at = |q: f64| sample[((sample.len() - 1) as f64 * q).round() as usize] as f64;
        let (lo, hi) = (at(0.005), at(0.995));
        super::Window { center: (lo + hi) / 2.0, width: (hi - lo).max(1e-3) }
    }

    pub fn series(&self) -> Option<&Series> {
        match &self.origin {
            VolumeOrigin::Series(series) => Some(series),
            VolumeOrigin::Nifti(_) => None,
        }
    }

    /// Voxel size [x, y, z] in mm: the lengths of the affine's columns.
    pub fn spacing(&self) -> [f64; 3] {
        nifti::voxel_size(&self.affine_ras)
    }

    pub fn voxel_volume_ml(&self) -> f64 {
        self.spacing().iter().product::<f64>() / 1000.0
    }

    pub fn slice_count(&self) -> usize {
        self.shape[2]
    }

    /// Slice `k` as a grey frame (width = x, height = y).
    pub fn slice(&self, k: usize) -> Frame {
        let plane = self.shape[0] * self.shape[1];
        Frame::from_values(self.shape[0] as u32, self.shape[1] as u32, 1, self.values[k * plane..(k + 1) * plane].to_vec())
    }

    /// A NIfTI label map placed on this volume's grid: each voxel takes the label of the label
    /// map's voxel nearest to the same point in patient space (so a map stored with flipped or
    /// permuted axes, or on another grid, lands in place). Voxels outside the map stay 0.
    pub fn labels_from(&self, path: &Path, labels: &nifti::NiftiVolume) -> Result<Vec<u8>, VolumeError> {
        if let Some(&value) = labels.values.iter().find(|v| !(v.fract() == 0.0 && (0.0..=255.0).contains(*v))) {
            return Err(VolumeError::NotLabels { path: path.to_path_buf(), value });
        }
        let inverse = invert(&labels.affine_ras).ok_or_else(|| VolumeError::SingularAffine { path: path.to_path_buf() })?;
        let m = multiply(&inverse, &self.affine_ras);
        let [nx, ny, nz] = self.shape;
        let [lx, ly, lz] = labels.shape;
        let mut out = vec![0u8; nx * ny * nz];
        let mut inside = 0usize;
        for k in 0..nz {
            for j in 0..ny {
                let base = [0, 1, 2].map(|r| m[r][1] * j as f64 + m[r][2] * k as f64 + m[r][3]);
                for i in 0..nx {
                    let u = [0, 1, 2].map(|r| (base[r] + m[r][0] * i as f64).round());
                    if u.iter().zip([lx, ly, lz]).all(|(&c, n)| c >= 0.0 && c < n as f64) {
                        let at = u[0] as usize + lx * (u[1] as usize + ly * u[2] as usize);
                        out[i + nx * (j + ny * k)] = labels.values[at] as u8;
                        inside += 1;
                    }
                }
            }
        }
        if inside == 0 {
            return Err(VolumeError::NoOverlap { path: path.to_path_buf() });
        }
        Ok(out)
    }

    /// A label map for this volume from a file: a NIfTI label volume (placed through the
    /// affines), or a DICOM SEG referencing this volume's series. With the segment names a SEG
    /// gives.
    pub fn read_labels(&self, path: &Path) -> Result<(Vec<u8>, Vec<(u8, String)>), VolumeError> {
        if nifti::is_nifti_path(path) {
            let labels = nifti::read(path)?;
            return Ok((self.labels_from(path, &labels)?, Vec::new()));
        }
        let Some(series) = self.series() else {
            return Err(VolumeError::LabelsNeedSeries { path: path.to_path_buf() });
        };
        let seg = super::dicom_seg::read_labels(path, series)?;
        Ok((seg.labels, seg.segments))
    }

    /// Whether `out` is one of the files the volume was read from.
    pub fn is_source(&self, out: &Path) -> bool {
        match &self.origin {
            VolumeOrigin::Series(series) => series.slices.iter().any(|s| super::is_same_file(&s.path, out)),
            VolumeOrigin::Nifti(path) => super::is_same_file(path, out),
        }
    }
}

/// The smallest and largest of `values` (±∞ the other way round when there are none).
pub fn min_max(values: &[f32]) -> (f32, f32) {
    values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

fn multiply(a: &[[f64; 4]; 4], b: &[[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut m = [[0.0; 4]; 4];
    for r in 0..4 {
        for c in 0..4 {
            m[r][c] = (0..4).map(|i| a[r][i] * b[i][c]).sum();
        }
    }
    m
}

/// The inverse of an affine (rotation/scale/shear block plus translation), if it has one.
fn invert(a: &[[f64; 4]; 4]) -> Option<[[f64; 4]; 4]> {
    let m = |r: usize, c: usize| a[r][c];
    let det = m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) - m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0))
        + m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0));
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    let mut inv = [[0.0; 4]; 4];
    for r in 0..3 {
        for c in 0..3 {
            let (r1, r2) = ((c + 1) % 3, (c + 2) % 3);
            let (c1, c2) = ((r + 1) % 3, (r + 2) % 3);
            inv[r][c] = (m(r1, c1) * m(r2, c2) - m(r1, c2) * m(r2, c1)) / det;
        }
    }
    for r in 0..3 {
        inv[r][3] = -(0..3).map(|i| inv[r][i] * a[i][3]).sum::<f64>();
    }
    inv[3][3] = 1.0;
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_affine_times_its_inverse_is_the_identity() {
        let a = [[-2.8197, 1.0243, 0.0, 73.024], [-1.0243, -2.8197, 0.0, 172.4887], [0.0, 0.0, 3.0, -37.0436], [0.0, 0.0, 0.0, 1.0]];
        let product = multiply(&invert(&a).unwrap(), &a);
        for (r, row) in product.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                assert!((v - f64::from(u8::from(r == c))).abs() < 1e-9, "{product:?}");
            }
        }
        assert!(invert(&[[1.0, 0.0, 0.0, 0.0], [2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]).is_none());
    }
}
