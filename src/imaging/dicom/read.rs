//! Opening a DICOM file (with or without its file meta group) and reading its header facts.

use std::path::Path;

use dicom_core::VR;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::attrs;
use super::guard::catch_codec_panic;
use super::pixels::{DicomPixels, PixelLayout, SampleFormat};
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

fn read_object(path: &Path) -> Result<DefaultDicomObject, ImageError> {
    let bytes = std::fs::read(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?;
    let parse_err = |reason: String| ImageError::DicomParse { path: path.to_path_buf(), reason };
    let options = || OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    if bytes.get(128..132) == Some(b"DICM") {
        return options().from_reader(&bytes[128..]).map_err(|e| parse_err(error_chain(&e)));
    }
    if bytes.get(0..4) == Some(b"DICM") {
        return options().from_reader(&bytes[..]).map_err(|e| parse_err(error_chain(&e)));
    }
    if !looks_like_bare_dataset(&bytes) {
        return Err(parse_err(
            "no DICM marker and no data set at the start of the file; it is not DICOM".to_string(),
        ));
    }
    // A bare data set without file meta: explicit VR if the first element carries a VR, else implicit.
    let explicit = bytes.get(4..6).is_some_and(|vr| VR::from_binary([vr[0], vr[1]]).is_some());
    let uid = if explicit { EXPLICIT_VR_LE } else { IMPLICIT_VR_LE };
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

    let rescale = match (attrs::float(obj, tags::RESCALE_SLOPE), attrs::float(obj, tags::RESCALE_INTERCEPT)) {
        (None, None) => None,
        (slope, intercept) => Some((slope.unwrap_or(1.0), intercept.unwrap_or(0.0))),
    };
    let windows: Vec<WindowPreset> = attrs::floats(obj, tags::WINDOW_CENTER)
        .into_iter()
        .zip(attrs::floats(obj, tags::WINDOW_WIDTH))
        .enumerate()
        .filter(|(_, (_, width))| *width > 0.0)
        .map(|(i, (center, width))| WindowPreset { window: Window::new(center, width), name_index: Some(i) })
        .collect();
    let pixel_spacing = [tags::PIXEL_SPACING, tags::IMAGER_PIXEL_SPACING]
        .into_iter()
        .map(|tag| attrs::floats(obj, tag))
        .find(|v| v.len() == 2 && v.iter().all(|s| *s > 0.0))
        .map(|v| (v[0], v[1]));

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
        rescale,
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
        window_names: attrs::strings(obj, tags::WINDOW_CENTER_WIDTH_EXPLANATION),
        rescale,
    };
    Ok((meta, layout))
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
