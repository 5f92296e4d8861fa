//! DICOM Segmentation (SEG) output ([`read_labels`] reads one back onto its series): a label volume on a DICOM series' grid → one BINARY SEG
//! instance, one segment per label value, frames only where a segment has pixels, each frame
//! referencing its source image (SOP class and instance) and placed by the source's plane
//! position and orientation. Patient and study attributes are copied from the series so that
//! PACS and viewers file it beside the images. Written atomically.

use std::path::{Path, PathBuf};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR, dicom_value};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use super::series::Series;
use super::{ImageError, dicom, write_atomic};

mod read;
pub use read::{SegLabels, read_labels};

const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";

/// How a segment was made (DICOM Segment Algorithm Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentAlgorithm {
    Automatic,
    SemiAutomatic,
    Manual,
}

impl SegmentAlgorithm {
    fn code(self) -> &'static str {
        match self {
            SegmentAlgorithm::Automatic => "AUTOMATIC",
            SegmentAlgorithm::SemiAutomatic => "SEMIAUTOMATIC",
            SegmentAlgorithm::Manual => "MANUAL",
        }
    }
}

/// One label of the volume as a SEG segment.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// The label value in the volume (1–255).
    pub value: u8,
    pub label: String,
    pub algorithm: SegmentAlgorithm,
    /// What made it, e.g. "LiteMedSAM, propagated from a box" (not written for manual segments).
    pub algorithm_name: String,
    pub rgb: [u8; 3],
}

impl SegmentInfo {
    pub fn new(value: u8, label: &str, algorithm: SegmentAlgorithm, algorithm_name: &str) -> Self {
        Self { value, label: label.to_string(), algorithm, algorithm_name: algorithm_name.to_string(), rgb: default_rgb(value) }
    }
}

/// Distinct colours for label values (cycled; the window shows labels in the same colours).
pub fn default_rgb(value: u8) -> [u8; 3] {
    const PALETTE: [[u8; 3]; 8] =
        [[255, 70, 50], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60]];
    PALETTE[(value.max(1) as usize - 1) % PALETTE.len()]
}

#[derive(Debug, thiserror::Error)]
pub enum SegError {
    #[error("the series' slices have no SOP Instance UID ({missing} of {total}); a DICOM SEG must reference its source images: export NIfTI instead")]
    NoInstanceUids { missing: usize, total: usize },
    #[error("the series has no Frame of Reference UID; a DICOM SEG cannot be placed on it: export NIfTI instead")]
    NoFrameOfReference,
    #[error("the series has no Series Instance UID; a DICOM SEG cannot reference it: export NIfTI instead")]
    NoSeriesUid,
    #[error("{given} labels given for a {columns}×{rows}×{slices} series")]
    Shape { given: usize, columns: u32, rows: u32, slices: usize },
    #[error("no segment has any pixel; nothing to write")]
    Empty,
    #[error(transparent)]
    Source(#[from] ImageError),
    #[error("cannot build the DICOM SEG: {0}")]
    Build(String),
    #[error("{}: {what}", path.display())]
    Read { path: PathBuf, what: String },
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegSummary {
    pub segments: usize,
    pub frames: usize,
    pub sop_instance_uid: String,
}

/// Whether `path` names a DICOM file to write (`.dcm`, any case).
pub fn is_seg_path(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("dcm"))
}

/// Whether a SEG can reference `series`: every slice has a SOP Instance UID and the series a
/// frame of reference.
pub fn check_series(series: &Series) -> Result<(), SegError> {
    let missing = series.slices.iter().filter(|s| s.sop_instance_uid.is_none()).count();
    if missing > 0 {
        return Err(SegError::NoInstanceUids { missing, total: series.slices.len() });
    }
    if series.frame_of_reference_uid.is_none() {
        return Err(SegError::NoFrameOfReference);
    }
    if series.series_uid.is_none() {
        return Err(SegError::NoSeriesUid);
    }
    Ok(())
}

/// Writes `labels` (voxel (i, j, k) at `i + columns · (j + rows · k)`, k in the series' sorted
/// order) as a BINARY DICOM SEG with one segment per entry of `segments` that has pixels.
pub fn write(path: &Path, series: &Series, labels: &[u8], segments: &[SegmentInfo]) -> Result<SegSummary, SegError> {
    let bytes = encode(series, labels, segments)?;
    write_atomic(path, &bytes.0).map_err(|source| SegError::Write { path: path.to_path_buf(), source })?;
    Ok(bytes.1)
}

/// The SEG file's bytes and what they hold.
pub fn encode(series: &Series, labels: &[u8], segments: &[SegmentInfo]) -> Result<(Vec<u8>, SegSummary), SegError> {
    let (columns, rows, count) = series.shape();
    let plane = columns as usize * rows as usize;
    if labels.len() != plane * count {
        return Err(SegError::Shape { given: labels.len(), columns, rows, slices: count });
    }
    check_series(series)?;
    let frame_of_reference = series.frame_of_reference_uid.clone().ok_or(SegError::NoFrameOfReference)?;
    let first = dicom::read_header(&series.slices[0].path)?;
    let text = |tag: Tag| dicom::attrs::string(&first, tag).unwrap_or_default();
    let source_class = Some(text(tags::SOP_CLASS_UID))
        .filter(|s| !s.is_empty())
        .or_else(|| Some(first.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string()))
        .unwrap_or_default();

    // Frames: segment by segment, slices in order, only where the segment has pixels.
    let mut frames: Vec<(usize, usize)> = Vec::new(); // (segment index, slice)
    let mut used: Vec<&SegmentInfo> = Vec::new();
    for segment in segments {
        let slices: Vec<usize> = (0..count).filter(|&k| labels[k * plane..(k + 1) * plane].contains(&segment.value)).collect();
        if slices.is_empty() {
            continue;
        }
        used.push(segment);
        frames.extend(slices.into_iter().map(|k| (used.len(), k)));
    }
    if frames.is_empty() {
        return Err(SegError::Empty);
    }

    let (date, time) = now_utc();
    let series_uid = new_uid();
    let instance_uid = new_uid();
    let dimension_uid = new_uid();
    let mut obj = InMemDicomObject::new_empty();
    let put_str = |obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    put_str(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    obj.put(DataElement::new(tags::IMAGE_TYPE, VR::CS, dicom_value!(Strs, ["DERIVED", "PRIMARY"])));
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, SEGMENTATION_STORAGE);
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &instance_uid);
    // Patient and study: copied, so the SEG files beside its images.
    for (tag, vr) in [
        (tags::PATIENT_NAME, VR::PN),
        (tags::PATIENT_ID, VR::LO),
        (tags::PATIENT_BIRTH_DATE, VR::DA),
        (tags::PATIENT_SEX, VR::CS),
        (tags::STUDY_INSTANCE_UID, VR::UI),
        (tags::STUDY_DATE, VR::DA),
        (tags::STUDY_TIME, VR::TM),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN),
        (tags::STUDY_ID, VR::SH),
        (tags::ACCESSION_NUMBER, VR::SH),
        (tags::STUDY_DESCRIPTION, VR::LO),
        (tags::POSITION_REFERENCE_INDICATOR, VR::LO),
    ] {
        put_str(&mut obj, tag, vr, &text(tag));
    }
    if text(tags::STUDY_INSTANCE_UID).is_empty() {
        put_str(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, &new_uid());
    }
    put_str(&mut obj, tags::FRAME_OF_REFERENCE_UID, VR::UI, &frame_of_reference);
    put_str(&mut obj, tags::MODALITY, VR::CS, "SEG");
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, &series_uid);
    put_str(&mut obj, tags::SERIES_NUMBER, VR::IS, "9001");
    put_str(&mut obj, tags::SERIES_DESCRIPTION, VR::LO, "De-LightSAM segmentation");
    put_str(&mut obj, tags::SERIES_DATE, VR::DA, &date);
    put_str(&mut obj, tags::SERIES_TIME, VR::TM, &time);
    put_str(&mut obj, tags::CONTENT_DATE, VR::DA, &date);
    put_str(&mut obj, tags::CONTENT_TIME, VR::TM, &time);
    put_str(&mut obj, tags::INSTANCE_NUMBER, VR::IS, "1");
    put_str(&mut obj, tags::MANUFACTURER, VR::LO, "De-LightSAM Annotator");
    put_str(&mut obj, tags::MANUFACTURER_MODEL_NAME, VR::LO, "delightsam");
    put_str(&mut obj, tags::DEVICE_SERIAL_NUMBER, VR::LO, "0");
    put_str(&mut obj, tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION"));
    // Image pixel: 1-bit frames.
    obj.put(DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, dicom_value!(U16, [1])));
    put_str(&mut obj, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    obj.put(DataElement::new(tags::ROWS, VR::US, dicom_value!(U16, [rows as u16])));
    obj.put(DataElement::new(tags::COLUMNS, VR::US, dicom_value!(U16, [columns as u16])));
    for tag in [tags::BITS_ALLOCATED, tags::BITS_STORED] {
        obj.put(DataElement::new(tag, VR::US, dicom_value!(U16, [1])));
    }
    obj.put(DataElement::new(tags::HIGH_BIT, VR::US, dicom_value!(U16, [0])));
    obj.put(DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, dicom_value!(U16, [0])));
    put_str(&mut obj, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put_str(&mut obj, tags::NUMBER_OF_FRAMES, VR::IS, &frames.len().to_string());
    // Segmentation image.
    put_str(&mut obj, tags::CONTENT_LABEL, VR::CS, "SEGMENTATION");
    put_str(&mut obj, tags::CONTENT_DESCRIPTION, VR::LO, "De-LightSAM Annotator labels");
    put_str(&mut obj, tags::CONTENT_CREATOR_NAME, VR::PN, "");
    put_str(&mut obj, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");
    let segment_items = used.iter().enumerate().map(|(i, s)| segment_item(i + 1, s)).collect();
    obj.put(sequence(tags::SEGMENT_SEQUENCE, segment_items));
    // Multi-frame dimensions: segment, then position.
    obj.put(sequence(tags::DIMENSION_ORGANIZATION_SEQUENCE, vec![item(|o| {
        put_str(o, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dimension_uid);
    })]));
    let dimension = |index: Tag, group: Tag, label: &str| {
        item(|o| {
            put_str(o, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dimension_uid);
            o.put(DataElement::new(tags::DIMENSION_INDEX_POINTER, VR::AT, dicom_value!(Tags, [index])));
            o.put(DataElement::new(tags::FUNCTIONAL_GROUP_POINTER, VR::AT, dicom_value!(Tags, [group])));
            put_str(o, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
        })
    };
    obj.put(sequence(tags::DIMENSION_INDEX_SEQUENCE, vec![
        dimension(tags::REFERENCED_SEGMENT_NUMBER, tags::SEGMENT_IDENTIFICATION_SEQUENCE, "ReferencedSegmentNumber"),
        dimension(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE, "ImagePositionPatient"),
    ]));
    // Shared functional groups: orientation and voxel size.
    // Thickness as the images say; spacing along the normal (a tilted stack's step is longer).
    let normal = series.normal();
    let step_vector = series.slice_step();
    let spacing = (step_vector[0] * normal[0] + step_vector[1] * normal[1] + step_vector[2] * normal[2]).abs();
    let thickness = text(tags::SLICE_THICKNESS).parse::<f64>().ok().filter(|t| *t > 0.0).unwrap_or(spacing);
    let o = series.orientation;
    let shared = item(|g| {
        g.put(sequence(tags::PLANE_ORIENTATION_SEQUENCE, vec![item(|p| {
            p.put(DataElement::new(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, decimal_strings(&o)));
        })]));
        g.put(sequence(tags::PIXEL_MEASURES_SEQUENCE, vec![item(|p| {
            p.put(DataElement::new(tags::PIXEL_SPACING, VR::DS, decimal_strings(&[series.pixel_spacing.0, series.pixel_spacing.1])));
            p.put(DataElement::new(tags::SLICE_THICKNESS, VR::DS, decimal_strings(&[thickness])));
            if count > 1 {
                p.put(DataElement::new(tags::SPACING_BETWEEN_SLICES, VR::DS, decimal_strings(&[spacing])));
            }
        })]));
    });
    obj.put(sequence(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]));
    // Per frame: source image, dimension index, position, segment.
    let multi_frame_file = |path: &Path| series.slices.iter().filter(|s| s.path == path).count() > 1;
    let per_frame = frames
        .iter()
        .map(|&(segment_number, k)| {
            let slice = &series.slices[k];
            item(|g| {
                let source = item(|s| {
                    put_str(s, tags::REFERENCED_SOP_CLASS_UID, VR::UI, &source_class);
                    put_str(s, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, slice.sop_instance_uid.as_deref().unwrap_or_default());
                    if multi_frame_file(&slice.path) {
                        put_str(s, tags::REFERENCED_FRAME_NUMBER, VR::IS, &(slice.frame + 1).to_string());
                    }
                    put_str(s, tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES");
                    s.put(sequence(tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE, vec![code("121322", "DCM", "Source image for image processing operation")]));
                });
                g.put(sequence(tags::DERIVATION_IMAGE_SEQUENCE, vec![item(|d| {
                    d.put(sequence(tags::SOURCE_IMAGE_SEQUENCE, vec![source]));
                    d.put(sequence(tags::DERIVATION_CODE_SEQUENCE, vec![code("113076", "DCM", "Segmentation")]));
                })]));
                g.put(sequence(tags::FRAME_CONTENT_SEQUENCE, vec![item(|f| {
                    f.put(DataElement::new(tags::DIMENSION_INDEX_VALUES, VR::UL, dicom_value!(U32, [segment_number as u32, k as u32 + 1])));
                })]));
                g.put(sequence(tags::PLANE_POSITION_SEQUENCE, vec![item(|p| {
                    p.put(DataElement::new(tags::IMAGE_POSITION_PATIENT, VR::DS, decimal_strings(&slice.position)));
                })]));
                g.put(sequence(tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![item(|s| {
                    s.put(DataElement::new(tags::REFERENCED_SEGMENT_NUMBER, VR::US, dicom_value!(U16, [segment_number as u16])));
                })]));
            })
        })
        .collect();
    obj.put(sequence(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));
    // The source series, by instance.
    obj.put(sequence(tags::REFERENCED_SERIES_SEQUENCE, vec![item(|r| {
        put_str(r, tags::SERIES_INSTANCE_UID, VR::UI, series.series_uid.as_deref().unwrap_or_default());
        let mut seen = std::collections::BTreeSet::new();
        let instances = series
            .slices
            .iter()
            .filter_map(|s| s.sop_instance_uid.as_deref())
            .filter(|uid| seen.insert(*uid))
            .map(|uid| {
                item(|i| {
                    put_str(i, tags::REFERENCED_SOP_CLASS_UID, VR::UI, &source_class);
                    put_str(i, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid);
                })
            })
            .collect();
        r.put(sequence(tags::REFERENCED_INSTANCE_SEQUENCE, instances));
    })]));
    // Pixel data: every frame's bits in a row, least significant bit first, padded to even.
    let mut bits = vec![0u8; (frames.len() * plane).div_ceil(8).next_multiple_of(2)];
    for (f, &(segment_number, k)) in frames.iter().enumerate() {
        let value = used[segment_number - 1].value;
        for (p, &label) in labels[k * plane..(k + 1) * plane].iter().enumerate() {
            if label == value {
                let n = f * plane + p;
                bits[n / 8] |= 1 << (n % 8);
            }
        }
    }
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(bits.into())));

    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_VR_LE))
        .map_err(|e| SegError::Build(e.to_string()))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).map_err(|e| SegError::Build(e.to_string()))?;
    Ok((bytes, SegSummary { segments: used.len(), frames: frames.len(), sop_instance_uid: instance_uid }))
}

fn item(fill: impl FnOnce(&mut InMemDicomObject)) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    fill(&mut obj);
    obj
}

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item(|c| {
        c.put(DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(value)));
        c.put(DataElement::new(tags::CODING_SCHEME_DESIGNATOR, VR::SH, PrimitiveValue::from(scheme)));
        c.put(DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(meaning)));
    })
}

fn segment_item(number: usize, segment: &SegmentInfo) -> InMemDicomObject {
    item(|s| {
        s.put(DataElement::new(tags::SEGMENT_NUMBER, VR::US, dicom_value!(U16, [number as u16])));
        s.put(DataElement::new(tags::SEGMENT_LABEL, VR::LO, PrimitiveValue::from(segment.label.as_str())));
        s.put(DataElement::new(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, PrimitiveValue::from(segment.algorithm.code())));
        if segment.algorithm != SegmentAlgorithm::Manual {
            s.put(DataElement::new(tags::SEGMENT_ALGORITHM_NAME, VR::LO, PrimitiveValue::from(segment.algorithm_name.as_str())));
        }
        s.put(sequence(tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE, vec![code("91723000", "SCT", "Anatomical Structure")]));
        s.put(sequence(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![code("85756007", "SCT", "Tissue")]));
        let [l, a, b] = dicom_lab(segment.rgb);
        s.put(DataElement::new(tags::RECOMMENDED_DISPLAY_CIE_LAB_VALUE, VR::US, dicom_value!(U16, [l, a, b])));
    })
}

/// Decimal strings of at most 16 characters (DS).
fn decimal_strings(values: &[f64]) -> PrimitiveValue {
    let text = |v: f64| {
        let v = if v == 0.0 { 0.0 } else { v };
        (0..=10).rev().map(|digits| format!("{v:.digits$}")).map(|s| trim_zeros(&s)).find(|s| s.len() <= 16).unwrap_or_else(|| format!("{v:.0}"))
    };
    PrimitiveValue::Strs(values.iter().map(|&v| text(v)).collect())
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s.to_string() }
}

/// sRGB → CIELab (D65) scaled as DICOM wants: L* 0–100 and a*, b* −128–127 onto 0–65535.
fn dicom_lab(rgb: [u8; 3]) -> [u16; 3] {
    let linear = |c: u8| {
        let c = c as f64 / 255.0;
        if c <= 0.04045 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
    };
    let [r, g, b] = rgb.map(linear);
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| if t > 0.008856 { t.cbrt() } else { 7.787 * t + 16.0 / 116.0 };
    let (l, a, bb) = (116.0 * f(y) - 16.0, 500.0 * (f(x) - f(y)), 200.0 * (f(y) - f(z)));
    let scale = |v: f64, lo: f64, span: f64| (((v - lo) / span).clamp(0.0, 1.0) * 65535.0).round() as u16;
    [scale(l, 0.0, 100.0), scale(a, -128.0, 255.0), scale(bb, -128.0, 255.0)]
}

/// A new UID under 2.25 (a random 128-bit number, no registered root needed).
fn new_uid() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let half = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("2.25.{}", (u128::from(half()) << 64) | u128::from(half()))
}

/// Today's date (YYYYMMDD) and time (HHMMSS) in UTC.
fn now_utc() -> (String, String) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (format!("{year:04}{month:02}{day:02}"), format!("{:02}{:02}{:02}", rest / 3600, rest % 3600 / 60, rest % 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_sixteen_characters() {
        let PrimitiveValue::Strs(s) = decimal_strings(&[-0.976_562_5, 249.511_718_75, 1e-17, -804.5, 0.0]) else { panic!() };
        assert_eq!(s.as_slice(), ["-0.9765625", "249.51171875", "0", "-804.5", "0"]);
        assert!(s.iter().all(|v| v.len() <= 16));
        let PrimitiveValue::Strs(s) = decimal_strings(&[-123.456_789_012_345_67]) else { panic!() };
        assert!(s[0].len() <= 16 && s[0].starts_with("-123.4567890"), "{s:?}");
    }

    #[test]
    fn uids_are_valid_and_distinct() {
        let (a, b) = (new_uid(), new_uid());
        assert_ne!(a, b);
        assert!(a.len() <= 64 && a.starts_with("2.25.") && a[5..].chars().all(|c| c.is_ascii_digit()));
        assert!(!a[5..].starts_with('0') || a.len() == 6);
    }

    #[test]
    fn lab_of_white_and_red() {
        assert_eq!(dicom_lab([255, 255, 255])[0], 65535);
        let [l, a, _] = dicom_lab([255, 0, 0]);
        assert!((l as f64 / 65535.0 * 100.0 - 53.2).abs() < 0.5);
        assert!((a as f64 / 65535.0 * 255.0 - 128.0 - 80.1).abs() < 1.0);
    }

    #[test]
    fn dates_are_civil() {
        let (date, time) = now_utc();
        assert_eq!((date.len(), time.len()), (8, 6));
        assert!(date.as_str() >= "20260101");
    }
}
