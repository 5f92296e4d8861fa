//! NIfTI-1 input ([`read`]) and output: a volume (i fastest, then j, then k) with its RAS affine in the sform and
//! the qform (so readers that trust either place it right; for a sheared, gantry-tilted grid
//! only the sform is exact), `.nii` or `.nii.gz`, written atomically.

use std::io::Write;
use std::path::Path;

use super::export::write_atomic;

mod read;
pub use read::{NiftiReadError, NiftiVolume, read};

/// Voxel values as stored.
pub enum Voxels {
    I16(Vec<i16>),
    F32(Vec<f32>),
    U8(Vec<u8>),
}

impl Voxels {
    /// Values in modality units as i16 when they all are whole numbers in its range (CT, most
    /// MR: half the size), else f32.
    pub fn from_values(values: Vec<f32>) -> Self {
        let fits = values.iter().all(|v| v.fract() == 0.0 && *v >= f32::from(i16::MIN) && *v <= f32::from(i16::MAX));
        if fits { Voxels::I16(values.iter().map(|&v| v as i16).collect()) } else { Voxels::F32(values) }
    }

    fn len(&self) -> usize {
        match self {
            Voxels::I16(v) => v.len(),
            Voxels::F32(v) => v.len(),
            Voxels::U8(v) => v.len(),
        }
    }

    /// (NIfTI datatype code, bits per voxel).
    fn datatype(&self) -> (i16, i16) {
        match self {
            Voxels::U8(_) => (2, 8),
            Voxels::I16(_) => (4, 16),
            Voxels::F32(_) => (16, 32),
        }
    }

    fn write_le(&self, out: &mut Vec<u8>) {
        match self {
            Voxels::U8(v) => out.extend_from_slice(v),
            Voxels::I16(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Voxels::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NiftiError {
    #[error("{} voxels given for a {}×{}×{} volume", given, shape[0], shape[1], shape[2])]
    Shape { given: usize, shape: [usize; 3] },
    #[error("a {}×{}×{} volume does not fit NIfTI-1 (each side 1 to 32767)", shape[0], shape[1], shape[2])]
    TooLarge { shape: [usize; 3] },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The NIfTI-1 file bytes (header, 4-byte extension flag, voxels).
pub fn encode(shape: [usize; 3], affine_ras: &[[f64; 4]; 4], voxels: &Voxels) -> Result<Vec<u8>, NiftiError> {
    if voxels.len() != shape.iter().product::<usize>() {
        return Err(NiftiError::Shape { given: voxels.len(), shape });
    }
    if shape.iter().any(|&d| d == 0 || d > i16::MAX as usize) {
        return Err(NiftiError::TooLarge { shape });
    }
    let mut h = vec![0u8; 348];
    let put_i32 = |h: &mut Vec<u8>, at: usize, v: i32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put_i16 = |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    put_i32(&mut h, 0, 348);
    h[38] = b'r'; // regular
    let dims = [3, shape[0] as i16, shape[1] as i16, shape[2] as i16, 1, 1, 1, 1];
    for (i, d) in dims.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d);
    }
    let (datatype, bitpix) = voxels.datatype();
    put_i16(&mut h, 70, datatype);
    put_i16(&mut h, 72, bitpix);
    let zooms = voxel_size(affine_ras);
    let (quatern, qfac) = quaternion(affine_ras, zooms);
    let pixdim = [qfac, zooms[0], zooms[1], zooms[2], 0.0, 0.0, 0.0, 0.0];
    for (i, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *p as f32);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    h[123] = 2; // xyzt_units: mm
    let description = b"De-LightSAM Annotator";
    h[148..148 + description.len()].copy_from_slice(description);
    put_i16(&mut h, 252, 1); // qform_code: scanner
    put_i16(&mut h, 254, 1); // sform_code: scanner
    for (i, q) in quatern.iter().enumerate() {
        put_f32(&mut h, 256 + 4 * i, *q as f32); // quatern_b, c, d, qoffset_x, y, z
    }
    for (row, at) in [(0usize, 280usize), (1, 296), (2, 312)] {
        for c in 0..4 {
            put_f32(&mut h, at + 4 * c, affine_ras[row][c] as f32);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    let mut out = h;
    out.extend_from_slice(&[0, 0, 0, 0]);
    voxels.write_le(&mut out);
    Ok(out)
}

/// The qform of an affine: quaternion (b, c, d), offset, and qfac (±1), as nifti1_io computes it.
fn quaternion(a: &[[f64; 4]; 4], zooms: [f64; 3]) -> ([f64; 6], f64) {
    let mut r = [[0.0; 3]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = a[i][j] / zooms[j].max(1e-12);
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
    }
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (b, c, d);
    if trace > 0.5 {
        let a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        let (mut qa, mut qb, mut qc, mut qd);
        if xd > 1.0 {
            qb = 0.5 * xd.sqrt();
            qc = 0.25 * (r[0][1] + r[1][0]) / qb;
            qd = 0.25 * (r[0][2] + r[2][0]) / qb;
            qa = 0.25 * (r[2][1] - r[1][2]) / qb;
        } else if yd > 1.0 {
            qc = 0.5 * yd.sqrt();
            qb = 0.25 * (r[0][1] + r[1][0]) / qc;
            qd = 0.25 * (r[1][2] + r[2][1]) / qc;
            qa = 0.25 * (r[0][2] - r[2][0]) / qc;
        } else {
            qd = 0.5 * zd.sqrt();
            qb = 0.25 * (r[0][2] + r[2][0]) / qd;
            qc = 0.25 * (r[1][2] + r[2][1]) / qd;
            qa = 0.25 * (r[1][0] - r[0][1]) / qd;
        }
        if qa < 0.0 {
            qa = -qa;
            qb = -qb;
            qc = -qc;
            qd = -qd;
        }
        let _ = qa;
        b = qb;
        c = qc;
        d = qd;
    }
    ([b, c, d, a[0][3], a[1][3], a[2][3]], qfac)
}

/// Whether `path` names a NIfTI file (`.nii` or `.nii.gz`, any case).
pub fn is_nifti_path(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

/// Voxel size [x, y, z] in mm of an affine: the lengths of its first three columns.
pub fn voxel_size(affine: &[[f64; 4]; 4]) -> [f64; 3] {
    [0, 1, 2].map(|c| (0..3).map(|r| affine[r][c] * affine[r][c]).sum::<f64>().sqrt())
}

/// Writes `voxels` as NIfTI-1 to `path` (gzip-compressed when it ends in `.gz`), atomically.
/// Callers check that `path` is not one of their sources.
pub fn write(path: &Path, shape: [usize; 3], affine_ras: &[[f64; 4]; 4], voxels: &Voxels) -> Result<(), NiftiError> {
    let bytes = encode(shape, affine_ras, voxels)?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        encoder
            .write_all(&bytes)
            .and_then(|_| encoder.finish())
            .map_err(|source| NiftiError::Write { path: path.to_path_buf(), source })?
    } else {
        bytes
    };
    write_atomic(path, &bytes).map_err(|source| NiftiError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_at(b: &[u8], at: usize) -> f32 {
        f32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn header_holds_shape_type_and_affine() {
        let affine = [[-0.9766, 0.0, 0.0, 249.5117], [0.0, -0.9766, 0.0, 437.5117], [0.0, 0.0, 2.0, -804.5], [0.0, 0.0, 0.0, 1.0]];
        let bytes = encode([2, 3, 4], &affine, &Voxels::from_values((0..24).map(|v| v as f32 - 5.0).collect())).unwrap();
        assert_eq!(bytes.len(), 352 + 24 * 2);
        assert_eq!(i16::from_le_bytes([bytes[70], bytes[71]]), 4, "whole numbers are stored as int16");
        assert_eq!(i16::from_le_bytes([bytes[42], bytes[43]]), 2);
        assert_eq!(f32_at(&bytes, 280), -0.9766);
        assert_eq!(f32_at(&bytes, 292), 249.5117);
        assert_eq!(f32_at(&bytes, 312 + 8), 2.0);
        assert!((f32_at(&bytes, 80) - 0.9766).abs() < 1e-6 && (f32_at(&bytes, 88) - 2.0).abs() < 1e-6);
        assert_eq!(&bytes[344..348], b"n+1\0");
        assert_eq!(i16::from_le_bytes([bytes[352], bytes[353]]), -5);
        let half = encode([1, 1, 1], &affine, &Voxels::from_values(vec![0.5])).unwrap();
        assert_eq!(i16::from_le_bytes([half[70], half[71]]), 16, "fractions are stored as float32");
    }

    #[test]
    fn quaternion_of_a_flip_in_x_and_y_is_a_half_turn_about_z() {
        let affine = [[-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        let (q, qfac) = quaternion(&affine, [1.0, 1.0, 1.0]);
        assert_eq!(qfac, 1.0);
        assert!((q[0]).abs() < 1e-9 && (q[1]).abs() < 1e-9 && (q[2].abs() - 1.0).abs() < 1e-9, "{q:?}");
    }
}
