//! Opening a DICOM file (with or without its file meta group) and reading its header facts.

use std::path::Path;

use dicom_core::VR;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::attrs;
use super::functional_groups::FrameFacts;
use super::guard::catch_codec_panic;
use super::lengths;
use super::lut::{ModalityTransform, check_rescale};
use super::pixels::{DicomPixels, FrameTransforms, PixelLayout, SampleFormat};
use crate::imaging::meta::DicomIds;
use crate::imaging::{ImageError, ImageMeta, SourceFormat, TransferSyntaxInfo, Window, WindowPreset, raster};

/// True when the file is DICOM by content ("DICM" after the preamble, or a bare data set starting
/// with a group 0002/0008 element) or by name.
pub(crate) fn looks_like_dicom(path: &Path, head: &[u8]) -> bool {
    if head.get(128..132) == Some(b"DICM") {
        return true;
    }
    let by_name = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "dcm" | "dicom" | "dic"));
    by_name || looks_like_bare_dataset(head)
}

fn looks_like_bare_dataset(head: &[u8]) -> bool {
    matches!(head.get(0..4), Some([0x08, 0x00, _, 0x00]) | Some([0x02, 0x00, _, 0x00]))
}

pub(crate) fn open(path: &Path) -> Result<(ImageMeta, DicomPixels), ImageError> {
    let obj = catch_codec_panic(|| read_object(path))
        .map_err(|reason| ImageError::DicomParse { path: path.to_path_buf(), reason })??;
    let (meta, layout) = describe(path, &obj)?;
    Ok((meta, DicomPixels::new(obj, layout)))
}

/// The whole data set of a DICOM file (pixels not decoded), for copying attributes.
pub(crate) fn read_header(path: &Path) -> Result<DefaultDicomObject, ImageError> {
    catch_codec_panic(|| read_object(path))
        .map_err(|reason| ImageError::DicomParse { path: path.to_path_buf(), reason })?
}

fn read_object(path: &Path) -> Result<DefaultDicomObject, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?;
    let parse_err = |reason: String| ImageError::DicomParse { path: path.to_path_buf(), reason };
    let options = || OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    let damaged = |reason: String| parse_err(format!("damaged file: {reason}"));
    for start in [128, 0] {
        if bytes.get(start..start + 4) == Some(b"DICM") {
            lengths::check_file(&bytes[start..]).map_err(damaged)?;
            return options().from_reader(&bytes[start..]).map_err(|e| parse_err(error_chain(&e)));
        }
    }
    if !looks_like_bare_dataset(&bytes) {
        return Err(parse_err(
            "no DICM marker and no data set at the start of the file; it is not DICOM".to_string(),
        ));
    }
    // A bare data set without file meta: explicit VR if the first element carries a VR, else implicit.
    let explicit = bytes.get(4..6).is_some_and(|vr| VR::from_binary([vr[0], vr[1]]).is_some());
    let uid = if explicit { EXPLICIT_VR_LE } else { IMPLICIT_VR_LE };
    lengths::check_bare(&bytes, explicit).map_err(damaged)?;
    let ts = TransferSyntaxRegistry
        .get(uid)
        .ok_or_else(|| parse_err(format!("transfer syntax {uid} is missing from this build")))?;
    let dataset = InMemDicomObject::read_dataset_with_ts(&bytes[..], ts)
        .map_err(|e| parse_err(format!("no file meta group, and not a readable bare data set: {}", error_chain(&e))))?;
    dataset
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uid))
        .map_err(|e| parse_err(error_chain(&e)))
}

const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";

/// "outer: inner: innermost", so the user sees the actual cause in one line.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// The file's series, frame of reference and instance; blank values (seen in real series) are
/// `None`.
fn dicom_ids(obj: &DefaultDicomObject) -> DicomIds {
    let text = |tag| attrs::string(obj, tag).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    DicomIds {
        series_uid: text(tags::SERIES_INSTANCE_UID),
        frame_of_reference_uid: text(tags::FRAME_OF_REFERENCE_UID),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID),
        instance_number: attrs::int(obj, tags::INSTANCE_NUMBER),
        series_description: text(tags::SERIES_DESCRIPTION),
    }
}

fn describe(path: &Path, obj: &DefaultDicomObject) -> Result<(ImageMeta, PixelLayout), ImageError> {
    let unsupported = |what: String| ImageError::Unsupported { path: path.to_path_buf(), what };
    let Some(pixel_data) = obj.element_opt(tags::PIXEL_DATA).ok().flatten() else {
        if obj.element_opt(tags::FLOAT_PIXEL_DATA).ok().flatten().is_some()
            || obj.element_opt(tags::DOUBLE_FLOAT_PIXEL_DATA).ok().flatten().is_some()
        {
            return Err(unsupported("floating-point pixel data".to_string()));
        }
        let what = attrs::string(obj, tags::SOP_CLASS_UID)
            .map(|uid| sop_class_name(&uid))
            .unwrap_or_else(|| "no SOP class either".to_string());
        return Err(ImageError::NoPixelData { path: path.to_path_buf(), what });
    };

    let ts_uid = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let ts = TransferSyntaxRegistry.get(&ts_uid);
    let ts_name = ts.map(|t| t.name().to_string()).unwrap_or_else(|| "unknown".to_string());
    match ts {
        None => return Err(unsupported(format!("transfer syntax {ts_uid} (unknown to this build)"))),
        Some(t) if !t.can_decode_all() => {
            return Err(unsupported(format!("transfer syntax {ts_uid} ({ts_name}): no decoder for it in this build")));
        }
        _ => {}
    }

    let missing = |name: &str| ImageError::DicomParse { path: path.to_path_buf(), reason: format!("{name} is missing or malformed") };
    let rows = attrs::int(obj, tags::ROWS).filter(|&v| v > 0).ok_or_else(|| missing("Rows (0028,0010)"))? as u32;
    let cols = attrs::int(obj, tags::COLUMNS).filter(|&v| v > 0).ok_or_else(|| missing("Columns (0028,0011)"))? as u32;
    let frames = attrs::int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32;
    let samples = attrs::int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1) as u16;
    let bits_allocated =
        attrs::int(obj, tags::BITS_ALLOCATED).ok_or_else(|| missing("Bits Allocated (0028,0100)"))? as u16;
    let bits_stored = attrs::int(obj, tags::BITS_STORED).map(|v| v as u16).unwrap_or(bits_allocated);
    let high_bit = attrs::int(obj, tags::HIGH_BIT).map(|v| v as u16).unwrap_or(bits_stored.saturating_sub(1));
    let signed = attrs::int(obj, tags::PIXEL_REPRESENTATION) == Some(1);
    let photometric = attrs::string(obj, tags::PHOTOMETRIC_INTERPRETATION)
        .unwrap_or_else(|| if samples == 3 { "RGB" } else { "MONOCHROME2" }.to_string());
    let planar = attrs::int(obj, tags::PLANAR_CONFIGURATION) == Some(1);

    if !matches!(samples, 1 | 3) {
        return Err(unsupported(format!("{samples} samples per pixel")));
    }
    if !matches!(bits_allocated, 1 | 8 | 16 | 32) {
        return Err(unsupported(format!("{bits_allocated} bits allocated per sample")));
    }
    if bits_stored == 0 || bits_stored > bits_allocated || high_bit >= bits_allocated {
        return Err(ImageError::DicomParse {
            path: path.to_path_buf(),
            reason: format!("inconsistent bit layout: {bits_allocated} allocated, {bits_stored} stored, high bit {high_bit}"),
        });
    }
    raster::check_size(path, cols, rows, u64::from(samples) * 4 * u64::from(frames))?;

    let native = matches!(pixel_data.value(), Value::Primitive(_));
    if native {
        check_native_length(path, obj, rows, cols, frames, samples, bits_allocated, &photometric)?;
    }

    let facts = FrameFacts::new(obj);
    let mut warnings = Vec::new();
    let modality = if photometric.starts_with("MONOCHROME") {
        modality_transforms(path, obj, &facts, frames, stored_range(bits_stored, signed), signed, &mut warnings)?
    } else {
        ModalityTransforms::identity()
    };
    let (windows, window_names) = window_presets(&facts, &mut warnings);
    let pixel_spacing = pixel_spacing(obj, &facts, &mut warnings);
    let (orientation, positions) = plane_geometry(&facts, frames, &mut warnings);

    let palette = photometric == "PALETTE COLOR";
    let format = SampleFormat {
        rows,
        cols,
        samples,
        bits_allocated,
        bits_stored,
        high_bit,
        signed,
        planar,
        photometric: photometric.clone(),
        modality: modality.transforms,
    };
    let layout = PixelLayout::read(path, obj, format, &ts_uid)?;
    let meta = ImageMeta {
        path: path.to_path_buf(),
        format: SourceFormat::Dicom,
        modality: attrs::string(obj, tags::MODALITY),
        rows,
        cols,
        frames,
        channels: if samples == 3 || palette { 3 } else { 1 },
        invert_display: photometric == "MONOCHROME1",
        photometric,
        bits_allocated,
        bits_stored,
        signed,
        transfer_syntax: Some(TransferSyntaxInfo { uid: ts_uid, name: ts_name }),
        pixel_spacing,
        windows,
        window_names,
        rescale: modality.rescale,
        rescale_varies: modality.rescale_varies,
        modality_lut: modality.lut_description,
        orientation,
        positions,
        warnings,
        dicom_ids: Some(dicom_ids(obj)),
    };
    Ok((meta, layout))
}

/// The lowest and highest value the stored bits can hold.
fn stored_range(bits_stored: u16, signed: bool) -> (f64, f64) {
    let levels = 2f64.powi(i32::from(bits_stored));
    if signed { (-levels / 2.0, levels / 2.0 - 1.0) } else { (0.0, levels - 1.0) }
}

/// The stored → modality value transforms of a monochrome file, and how to describe them.
struct ModalityTransforms {
    transforms: FrameTransforms,
    rescale: Option<(f64, f64)>,
    rescale_varies: bool,
    lut_description: Option<String>,
}

impl ModalityTransforms {
    fn identity() -> Self {
        Self { transforms: FrameTransforms::all(ModalityTransform::Identity), rescale: None, rescale_varies: false, lut_description: None }
    }
}

/// A Modality LUT Sequence wins over a rescale (pydicom's order); a rescale comes from each
/// frame's functional group in an enhanced file. An unusable rescale is ignored with a warning.
fn modality_transforms(
    path: &Path,
    obj: &DefaultDicomObject,
    facts: &FrameFacts,
    frames: u32,
    stored: (f64, f64),
    signed: bool,
    warnings: &mut Vec<String>,
) -> Result<ModalityTransforms, ImageError> {
    if let Some(lut) = ModalityTransform::modality_lut(obj, signed) {
        let lut = lut.map_err(|reason| ImageError::DicomParse { path: path.to_path_buf(), reason })?;
        let description = format!("{} entries from stored value {}, {} bits", lut.values.len(), lut.first_mapped, lut.bits);
        return Ok(ModalityTransforms {
            transforms: FrameTransforms::all(ModalityTransform::Lut(lut)),
            rescale: None,
            rescale_varies: false,
            lut_description: Some(description),
        });
    }
    let mut checked = |frame: usize| -> (ModalityTransform, Option<(f64, f64)>) {
        let Some((slope, intercept)) = facts.rescale(frame) else {
            return (ModalityTransform::Identity, None);
        };
        let (slope, intercept) = (slope.unwrap_or(1.0), intercept.unwrap_or(0.0));
        match check_rescale(slope, intercept, stored) {
            Ok(()) => (ModalityTransform::Rescale { slope, intercept }, Some((slope, intercept))),
            Err(reason) => {
                let warning = format!("{reason}: values are shown as stored, without rescale");
                if !warnings.contains(&warning) {
                    warnings.push(warning);
                }
                (ModalityTransform::Identity, None)
            }
        }
    };
    // Frames without their own group use the shared one (a frame index past the per-frame list).
    let (otherwise, shared_rescale) = checked(usize::MAX);
    let own_groups = facts.per_frame_groups().min(frames as usize);
    let per_frame: Vec<_> = (0..own_groups).map(&mut checked).collect();
    let first = per_frame.first().map(|(_, r)| *r).unwrap_or(shared_rescale);
    let rescale_varies = per_frame.iter().any(|(_, r)| *r != first) || (own_groups < frames as usize && shared_rescale != first);
    Ok(ModalityTransforms {
        transforms: FrameTransforms::new(per_frame.into_iter().map(|(t, _)| t).collect(), otherwise),
        rescale: first,
        rescale_varies,
        lut_description: None,
    })
}

/// The file's window presets; unusable ones (not finite, width ≤ 0, beyond ±1e9) dropped with a warning.
fn window_presets(facts: &FrameFacts, warnings: &mut Vec<String>) -> (Vec<WindowPreset>, Vec<String>) {
    let (centers, widths, names) = facts.windows(0);
    let mut presets = Vec::new();
    for (i, (center, width)) in centers.into_iter().zip(widths).enumerate() {
        let usable = center.is_finite() && width.is_finite() && width > 0.0 && center.abs() <= 1e9 && width <= 2e9;
        if usable {
            presets.push(WindowPreset { window: Window::new(center, width), name_index: Some(i) });
        } else {
            warnings.push(format!("window preset {} (centre {center}, width {width}) is not usable and was ignored", i + 1));
        }
    }
    (presets, names)
}

/// Pixel Spacing (from the functional groups in an enhanced file), else Imager Pixel Spacing.
fn pixel_spacing(obj: &DefaultDicomObject, facts: &FrameFacts, warnings: &mut Vec<String>) -> Option<(f64, f64)> {
    for (name, values) in [("Pixel Spacing", facts.pixel_spacing(0)), ("Imager Pixel Spacing", attrs::floats(obj, tags::IMAGER_PIXEL_SPACING))] {
        match values[..] {
            [] => continue,
            [row, col] if [row, col].iter().all(|s| s.is_finite() && *s > 0.0 && *s < 1e4) => return Some((row, col)),
            _ => warnings.push(format!("{name} {values:?} is not a usable spacing (two positive millimetre values) and was ignored")),
        }
    }
    None
}

/// Row/column direction cosines and each frame's position, when the file gives them usably.
fn plane_geometry(facts: &FrameFacts, frames: u32, warnings: &mut Vec<String>) -> (Option<[f64; 6]>, Vec<[f64; 3]>) {
    let orientation = facts.orientation(0).filter(|o| {
        let unit = |v: &[f64]| ((v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt() - 1.0).abs() < 1e-2;
        let usable = o.iter().all(|c| c.is_finite()) && unit(&o[..3]) && unit(&o[3..]);
        if !usable {
            warnings.push(format!("Image Orientation (Patient) {o:?} is not two unit vectors and was ignored"));
        }
        usable
    });
    let finite = |p: &[f64; 3]| p.iter().all(|c| c.is_finite() && c.abs() < 1e7);
    let positions: Vec<[f64; 3]> = if facts.is_enhanced() {
        let known = facts.per_frame_groups().min(frames as usize);
        let positions: Vec<_> = (0..known).filter_map(|i| facts.position(i).filter(finite)).collect();
        if positions.len() == frames as usize {
            positions
        } else {
            if !positions.is_empty() {
                warnings.push(format!("{} of {frames} frames have a usable position; positions ignored", positions.len()));
            }
            Vec::new()
        }
    } else {
        facts.position(0).filter(finite).into_iter().collect()
    };
    (orientation, positions)
}

#[allow(clippy::too_many_arguments)]
fn check_native_length(
    path: &Path,
    obj: &DefaultDicomObject,
    rows: u32,
    cols: u32,
    frames: u32,
    samples: u16,
    bits_allocated: u16,
    photometric: &str,
) -> Result<(), ImageError> {
    let pixels = u64::from(rows) * u64::from(cols) * u64::from(frames);
    // YBR_FULL_422 stores two chroma samples per two pixels: 2 samples per pixel on average.
    let samples = if photometric == "YBR_FULL_422" { 2 } else { u64::from(samples) };
    let expected = (pixels * samples * u64::from(bits_allocated)).div_ceil(8);
    let actual = attrs::bytes(obj, tags::PIXEL_DATA).map(|b| b.len() as u64).unwrap_or(0);
    if actual < expected {
        return Err(ImageError::Truncated { path: path.to_path_buf(), expected, actual });
    }
    Ok(())
}

/// A readable name for the SOP classes users meet without pixels.
fn sop_class_name(uid: &str) -> String {
    let name = match uid {
        "1.2.840.10008.5.1.4.1.1.481.5" => "an RT Plan",
        "1.2.840.10008.5.1.4.1.1.481.3" => "an RT Structure Set",
        "1.2.840.10008.5.1.4.1.1.481.2" => "an RT Dose",
        "1.2.840.10008.5.1.4.1.1.88.11" => "a Basic Text SR",
        "1.2.840.10008.5.1.4.1.1.88.22" => "an Enhanced SR",
        "1.2.840.10008.5.1.4.1.1.88.33" => "a Comprehensive SR",
        "1.2.840.10008.5.1.4.1.1.104.1" => "an Encapsulated PDF",
        "1.2.840.10008.5.1.4.1.1.66" => "a Raw Data object",
        "1.2.840.10008.5.1.4.1.1.11.1" => "a Presentation State",
        _ => return format!("SOP class {uid}"),
    };
    format!("{name}, SOP class {uid}")
}
