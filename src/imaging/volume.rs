//! A volume to annotate, whatever it came from: a folder holding one DICOM series or a NIfTI
//! file. Slice k is index k of the third voxel axis; in a slice x is the first axis, y the
//! second (for a series: column, row, and slices sorted along the normal).

use std::path::{Path, PathBuf};

use super::nifti::{self, NiftiReadError};
use super::series::{Series, SeriesError, single_series};
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
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error(transparent)]
    Series(#[from] SeriesError),
    #[error(transparent)]
    Nifti(#[from] NiftiReadError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{}: a volume is a folder holding one DICOM series or a NIfTI file (.nii, .nii.gz)", path.display())]
    NotAVolume { path: PathBuf },
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
            return Err(VolumeError::NotAVolume { path: path.to_path_buf() });
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
        })
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
        })
    }

    /// The smallest and largest value.
    pub fn value_range(&self) -> (f32, f32) {
        self.values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
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
        let a = &self.affine_ras;
        [0, 1, 2].map(|c| (a[0][c] * a[0][c] + a[1][c] * a[1][c] + a[2][c] * a[2][c]).sqrt())
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

    pub fn frames(&self) -> Vec<Frame> {
        (0..self.slice_count()).map(|k| self.slice(k)).collect()
    }

    /// Whether `out` is one of the files the volume was read from.
    pub fn is_source(&self, out: &Path) -> bool {
        match &self.origin {
            VolumeOrigin::Series(series) => series.slices.iter().any(|s| super::is_same_file(&s.path, out)),
            VolumeOrigin::Nifti(path) => super::is_same_file(path, out),
        }
    }
}
