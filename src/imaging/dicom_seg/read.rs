//! DICOM SEG input: a SEG's segments placed on the DICOM series it references, as one label
//! map (label value = segment number), to continue editing. Each frame goes to the slice whose
//! SOP Instance UID it references, else to the slice at its plane position. BINARY frames are
//! read bit by bit; FRACTIONAL ones are inside where they reach half the maximum.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::imaging::dicom::{attrs, read_header};
use crate::imaging::series::Series;

use super::{SEGMENTATION_STORAGE, SegError};

/// A SEG read onto a series' grid.
#[derive(Debug, Clone)]
pub struct SegLabels {
    /// Voxel (i, j, k) at `i + columns · (j + rows · k)`, the series' slice order.
    pub labels: Vec<u8>,
    /// (segment number, label) of every segment.
    pub segments: Vec<(u8, String)>,
    /// Pixels claimed by more than one segment (the higher number is kept).
    pub overlapping: usize,
}

fn read_error(path: &Path, what: impl Into<String>) -> SegError {
    SegError::Read { path: path.to_path_buf(), what: what.into() }
}

pub fn read_labels(path: &Path, series: &Series) -> Result<SegLabels, SegError> {
    let file = read_header(path)?;
    let obj: &InMemDicomObject = &file;
    let class = attrs::string(obj, tags::SOP_CLASS_UID).unwrap_or_default();
    if class != SEGMENTATION_STORAGE {
        return Err(read_error(path, format!("not a DICOM SEG (SOP class {class:?})")));
    }
    let syntax = file.meta().transfer_syntax().trim_end_matches('\0').to_string();
    if !["1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"].contains(&syntax.as_str()) {
        return Err(read_error(path, format!("compressed pixel data ({syntax}) is not read; uncompress it with dcmdjpeg/gdcmconv")));
    }
    let (rows, columns) = (attrs::int(obj, tags::ROWS).unwrap_or(0), attrs::int(obj, tags::COLUMNS).unwrap_or(0));
    if (rows, columns) != (i64::from(series.rows), i64::from(series.columns)) {
        return Err(read_error(path, format!("{columns}×{rows} frames on a {}×{} series", series.columns, series.rows)));
    }
    let frames = attrs::int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(0) as usize;
    let bits = attrs::int(obj, tags::BITS_ALLOCATED).unwrap_or(1);
    let fractional = attrs::string(obj, tags::SEGMENTATION_TYPE).as_deref() == Some("FRACTIONAL");
    let threshold = attrs::int(obj, tags::MAXIMUM_FRACTIONAL_VALUE).unwrap_or(255) as f64 / 2.0;
    let plane = series.rows as usize * series.columns as usize;
    let pixels = attrs::bytes(obj, tags::PIXEL_DATA).ok_or_else(|| read_error(path, "no pixel data"))?;
    let needed = match bits {
        1 => (frames * plane).div_ceil(8),
        8 => frames * plane,
        other => return Err(read_error(path, format!("{other} bits per pixel (1 or 8 are read)"))),
    };
    if pixels.len() < needed {
        return Err(read_error(path, format!("{} bytes of pixel data for {frames} frames of {plane} pixels", pixels.len())));
    }
    let segments: Vec<(u8, String)> = attrs::items(obj, tags::SEGMENT_SEQUENCE)
        .iter()
        .filter_map(|s| {
            let number = u8::try_from(attrs::int(s, tags::SEGMENT_NUMBER)?).ok()?;
            Some((number, attrs::string(s, tags::SEGMENT_LABEL).unwrap_or_else(|| format!("Segment {number}"))))
        })
        .collect();
    let shared = attrs::items(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).first();
    let per_frame = attrs::items(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let group = |f: usize, tag| per_frame.get(f).and_then(|g| attrs::items(g, tag).first()).or_else(|| shared.and_then(|g| attrs::items(g, tag).first()));

    let normal = series.normal();
    let along = |p: [f64; 3]| p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2];
    let positions: Vec<f64> = series.slices.iter().map(|s| along(s.position)).collect();
    let tolerance = (series.spacing()[2] / 2.0).max(1e-3);
    let mut labels = vec![0u8; plane * series.slices.len()];
    let mut overlapping = 0;
    for f in 0..frames {
        let segment = group(f, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .and_then(|g| attrs::int(g, tags::REFERENCED_SEGMENT_NUMBER))
            .and_then(|n| u8::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| read_error(path, format!("frame {} names no segment (1–255)", f + 1)))?;
        let by_uid = group(f, tags::DERIVATION_IMAGE_SEQUENCE)
            .and_then(|d| attrs::items(d, tags::SOURCE_IMAGE_SEQUENCE).first())
            .and_then(|s| attrs::string(s, tags::REFERENCED_SOP_INSTANCE_UID))
            .and_then(|uid| series.slices.iter().position(|s| s.sop_instance_uid.as_deref() == Some(uid.as_str())));
        let by_position = || {
            let p = group(f, tags::PLANE_POSITION_SEQUENCE).map(|g| attrs::floats(g, tags::IMAGE_POSITION_PATIENT))?;
            let d = along([*p.first()?, *p.get(1)?, *p.get(2)?]);
            positions.iter().position(|&q| (q - d).abs() <= tolerance)
        };
        let Some(k) = by_uid.or_else(by_position) else {
            return Err(read_error(path, format!("frame {} is on none of the series' slices", f + 1)));
        };
        for p in 0..plane {
            let n = f * plane + p;
            let inside = if bits == 1 { pixels[n / 8] >> (n % 8) & 1 == 1 } else if fractional { f64::from(pixels[n]) >= threshold } else { pixels[n] != 0 };
            if inside {
                let at = &mut labels[k * plane + p];
                if *at != 0 && *at != segment {
                    overlapping += 1;
                }
                *at = (*at).max(segment);
            }
        }
    }
    Ok(SegLabels { labels, segments, overlapping })
}
