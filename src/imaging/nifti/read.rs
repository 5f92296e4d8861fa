//! NIfTI-1 input (`.nii`, `.nii.gz`) through the `nifti` crate: the header and voxels are the
//! crate's; the geometry is worked out here the way nibabel does (sform when its code is set,
//! else qform, else the shape-and-zoom affine), so that a volume lands where nibabel puts it.

use std::path::{Path, PathBuf};

use ::nifti::{InMemNiftiObject, NiftiHeader, NiftiObject, NiftiType};

use crate::imaging::MAX_DECODED_BYTES;

/// A NIfTI volume in memory: values after the header's scaling, voxel (i, j, k) at
/// `i + nx · (j + ny · k)`, and the RAS+ affine nibabel would report.
#[derive(Debug, Clone)]
pub struct NiftiVolume {
    pub shape: [usize; 3],
    pub values: Vec<f32>,
    pub affine_ras: [[f64; 4]; 4],
    /// Where the affine came from: "sform", "qform" or "shape" (no orientation stored).
    pub affine_source: &'static str,
    /// Whether the stored type holds whole numbers (a label map can be one).
    pub integer: bool,
    pub description: Option<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NiftiReadError {
    #[error("{}: not a readable NIfTI-1 file: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: ::nifti::NiftiError,
    },
    #[error("{}: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
}

/// The file's bytes, gunzipped when its name ends in `.gz` (any case).
fn open(path: &Path) -> std::io::Result<Box<dyn std::io::Read>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    Ok(if gz { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) })
}

/// NIfTI-2 headers start with 540 instead of 348 (either byte order).
fn is_nifti2(path: &Path) -> bool {
    use std::io::Read;
    let Ok(file) = std::fs::File::open(path) else { return false };
    let mut head = [0u8; 4];
    let gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let read = if gz { flate2::read::GzDecoder::new(file).read_exact(&mut head) } else { { file }.read_exact(&mut head) };
    read.is_ok() && (i32::from_le_bytes(head) == 540 || i32::from_be_bytes(head) == 540)
}

/// Reads a 3-D (or 2-D) NIfTI-1 volume. 4-D series, complex and RGB voxels are refused by name.
pub fn read(path: &Path) -> Result<NiftiVolume, NiftiReadError> {
    let unsupported = |what: String| NiftiReadError::Unsupported { path: path.to_path_buf(), what };
    let parse = |source| NiftiReadError::Parse { path: path.to_path_buf(), source };
    if is_nifti2(path) {
        return Err(unsupported("a NIfTI-2 file; only NIfTI-1 is read (convert with `nibabel` or `c3d`)".into()));
    }
    let header = NiftiHeader::from_reader(open(path).map_err(|e| parse(e.into()))?).map_err(parse)?;
    let shape = check_shape(&header).map_err(&unsupported)?;
    let datatype = header.data_type().map_err(parse)?;
    let size = datatype.size_of() as u64;
    if i64::from(header.bitpix) != 8 * size as i64 {
        return Err(unsupported(format!("bitpix {} disagrees with the {datatype:?} datatype", header.bitpix)));
    }
    let voxels = shape.iter().map(|&d| d as u64).product::<u64>();
    if voxels * size.max(4) > MAX_DECODED_BYTES {
        return Err(unsupported(format!(
            "a {}×{}×{} volume is larger than {} GiB",
            shape[0],
            shape[1],
            shape[2],
            MAX_DECODED_BYTES >> 30
        )));
    }
    let object = InMemNiftiObject::from_reader(open(path).map_err(|e| parse(e.into()))?).map_err(parse)?;
    let mut values = typed_values(object, datatype).map_err(|e| match e {
        Typed::Parse(source) => parse(source),
        Typed::Unsupported(what) => unsupported(what),
    })?;
    if values.len() as u64 != voxels {
        return Err(unsupported(format!("{} voxel values for a {}×{}×{} volume", values.len(), shape[0], shape[1], shape[2])));
    }
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    let scaled = slope != 0.0 && slope.is_finite() && inter.is_finite() && (slope != 1.0 || inter != 0.0);
    if scaled {
        values.iter_mut().for_each(|v| *v = *v * slope + inter);
    }
    let mut warnings = Vec::new();
    let (affine_ras, affine_source) = affine(&header, shape, &mut warnings);
    let description = String::from_utf8_lossy(&header.descrip).trim_end_matches('\0').trim().to_string();
    Ok(NiftiVolume {
        shape,
        values,
        affine_ras,
        affine_source,
        integer: !scaled && !matches!(datatype, NiftiType::Float32 | NiftiType::Float64),
        description: (!description.is_empty()).then_some(description),
        warnings,
    })
}

fn check_shape(header: &NiftiHeader) -> Result<[usize; 3], String> {
    let rank = header.dim[0] as usize;
    if !(1..=7).contains(&rank) {
        return Err(format!("the header gives {rank} dimensions (1 to 7 are valid)"));
    }
    let dims = &header.dim[1..=rank];
    if dims.contains(&0) {
        return Err(format!("an empty dimension in {dims:?}"));
    }
    if dims.len() > 3 && dims[3..].iter().any(|&d| d > 1) {
        return Err(format!("a {}-D series {dims:?}; one 3-D volume is needed (take one with `fslroi`)", dims.len()));
    }
    let at = |i: usize| dims.get(i).map_or(1, |&d| d as usize);
    Ok([at(0), at(1), at(2)])
}

enum Typed {
    Parse(::nifti::NiftiError),
    Unsupported(String),
}

fn typed_values(object: InMemNiftiObject, datatype: NiftiType) -> Result<Vec<f32>, Typed> {
    let volume = object.into_volume();
    macro_rules! widen {
        ($t:ty) => {
            volume.into_nifti_typed_data::<$t>().map_err(Typed::Parse)?.into_iter().map(|v| v as f32).collect()
        };
    }
    Ok(match datatype {
        NiftiType::Uint8 => widen!(u8),
        NiftiType::Int8 => widen!(i8),
        NiftiType::Int16 => widen!(i16),
        NiftiType::Uint16 => widen!(u16),
        NiftiType::Int32 => widen!(i32),
        NiftiType::Uint32 => widen!(u32),
        NiftiType::Int64 => widen!(i64),
        NiftiType::Uint64 => widen!(u64),
        NiftiType::Float32 => widen!(f32),
        NiftiType::Float64 => widen!(f64),
        other => return Err(Typed::Unsupported(format!("{other:?} voxels (grey scalar volumes only)"))),
    })
}

/// nibabel's choice: sform when sform_code > 0, else qform when qform_code > 0, else a
/// centred diagonal with x flipped (as nibabel's `get_base_affine`).
fn affine(h: &NiftiHeader, shape: [usize; 3], warnings: &mut Vec<String>) -> ([[f64; 4]; 4], &'static str) {
    let zooms = [h.pixdim[1] as f64, h.pixdim[2] as f64, h.pixdim[3] as f64];
    if h.sform_code > 0 {
        let rows = [h.srow_x, h.srow_y, h.srow_z];
        let mut a = identity();
        for (r, row) in rows.iter().enumerate() {
            for c in 0..4 {
                a[r][c] = row[c] as f64;
            }
        }
        return (a, "sform");
    }
    // As nibabel: negative zooms count by their size; zero or invalid ones as 1.
    let zooms = zooms.map(|z| if z != 0.0 && z.is_finite() { z.abs() } else { 1.0 });
    if h.qform_code > 0 {
        let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let r = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - b * b - c * c],
        ];
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let scale = [zooms[0], zooms[1], zooms[2] * qfac];
        let offset = [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64];
        let mut m = identity();
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = r[i][j] * scale[j];
            }
            m[i][3] = offset[i];
        }
        return (m, "qform");
    }
    warnings.push("no sform or qform: the orientation is unknown; the voxel axes are placed as nibabel does (x flipped, centred)".into());
    let mut m = identity();
    let signs = [-1.0, 1.0, 1.0];
    for i in 0..3 {
        m[i][i] = signs[i] * zooms[i];
        m[i][3] = -signs[i] * zooms[i] * (shape[i] as f64 - 1.0) / 2.0;
    }
    (m, "shape")
}

fn identity() -> [[f64; 4]; 4] {
    let mut m = [[0.0; 4]; 4];
    (0..4).for_each(|i| m[i][i] = 1.0);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::nifti::{Voxels, encode};

    const AFFINE: [[f64; 4]; 4] =
        [[-0.9766, 0.0, 0.0, 249.5117], [0.0, 0.9766, 0.0, -61.5117], [0.0, 0.0, 2.0, -804.5], [0.0, 0.0, 0.0, 1.0]];

    fn written(dir: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
        let values: Vec<f32> = (0..24).map(|v| v as f32 - 7.0).collect();
        let mut bytes = encode([2, 3, 4], &AFFINE, &Voxels::from_values(values)).unwrap();
        edit(&mut bytes);
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn assert_affine(got: &[[f64; 4]; 4]) {
        for (row, want) in got.iter().zip(AFFINE) {
            for (g, w) in row.iter().zip(want) {
                assert!((g - w).abs() < 1e-4, "{got:?}");
            }
        }
    }

    #[test]
    fn a_written_volume_reads_back_from_sform_and_from_qform_alone() {
        let dir = tempfile::tempdir().unwrap();
        let volume = read(&written(dir.path(), "a.nii", |_| {})).unwrap();
        assert_eq!(volume.shape, [2, 3, 4]);
        assert_eq!(volume.values[0], -7.0);
        assert_eq!(volume.values[23], 16.0);
        assert!(volume.integer);
        assert_eq!(volume.affine_source, "sform");
        assert_affine(&volume.affine_ras);
        // sform_code 0: the qform (quaternion with a y flip, qfac) must give the same place.
        let volume = read(&written(dir.path(), "q.nii", |b| b[254..256].copy_from_slice(&0i16.to_le_bytes()))).unwrap();
        assert_eq!(volume.affine_source, "qform");
        assert_affine(&volume.affine_ras);
        // Neither: nibabel's centred default, with a warning.
        let volume = read(&written(dir.path(), "n.nii", |b| b[252..256].fill(0))).unwrap();
        assert_eq!(volume.affine_source, "shape");
        assert_eq!(volume.warnings.len(), 1);
        assert!((volume.affine_ras[0][0] + 0.9766).abs() < 1e-4 && (volume.affine_ras[0][3] - 0.4883).abs() < 1e-3);
    }

    #[test]
    fn scaling_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = written(dir.path(), "s.nii", |b| {
            b[112..116].copy_from_slice(&2.0f32.to_le_bytes());
            b[116..120].copy_from_slice(&(-1024.0f32).to_le_bytes());
        });
        let volume = read(&path).unwrap();
        assert_eq!(volume.values[0], -7.0 * 2.0 - 1024.0);
        assert!(!volume.integer);
    }

    #[test]
    fn bad_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let message = |path: PathBuf| read(&path).unwrap_err().to_string();
        let four_d = written(dir.path(), "t.nii", |b| {
            b[40..42].copy_from_slice(&4i16.to_le_bytes());
            b[48..50].copy_from_slice(&2i16.to_le_bytes());
        });
        assert!(message(four_d).contains("4-D"));
        let truncated = written(dir.path(), "cut.nii", |b| b.truncate(360));
        assert!(message(truncated).contains("not a readable NIfTI-1"));
        let nifti2 = written(dir.path(), "two.nii", |b| b[0..4].copy_from_slice(&540i32.to_le_bytes()));
        assert!(message(nifti2).contains("NIfTI-2"));
        let garbage = dir.path().join("junk.nii.gz");
        std::fs::write(&garbage, b"not gzip at all").unwrap();
        assert!(message(garbage).contains("not a readable NIfTI-1"));
        let huge = written(dir.path(), "huge.nii", |b| {
            for at in [42, 44, 46] {
                b[at..at + 2].copy_from_slice(&32000i16.to_le_bytes());
            }
        });
        assert!(message(huge).contains("larger than"));
    }
}
