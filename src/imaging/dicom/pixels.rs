//! Turning decoded DICOM samples into a [`Frame`] of real values.
//!
//! dicom-pixeldata decompresses; the sample interpretation (bit masks, sign, rescale, palette,
//! YBR, planar layout) is done here so that every layout gives the same values as pydicom.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;

use dicom_core::value::Value;

use super::guard::catch_codec_panic;
use super::lut::{LookupTable, ModalityTransform};
use super::{attrs, jpeg_turbo};
use crate::imaging::{Frame, ImageError, ImageMeta};

const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";
const JPEG_LS_PREFIX: &str = "1.2.840.10008.1.2.4.8";

#[derive(Debug, Clone, Copy)]
enum TurboCase {
    TwelveBit,
    UntransformedRgb,
}

/// The header facts that say how stored samples are laid out and what they mean.
pub(crate) struct SampleFormat {
    pub rows: u32,
    pub cols: u32,
    pub samples: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: u16,
    pub signed: bool,
    /// PlanarConfiguration 1: RRR…GGG…BBB….
    pub planar: bool,
    pub photometric: String,
    /// Stored → modality values (monochrome files), per frame.
    pub modality: FrameTransforms,
}

/// One modality transform per frame that has its own, and one for the others.
pub(crate) struct FrameTransforms {
    per_frame: Vec<ModalityTransform>,
    otherwise: ModalityTransform,
}

impl FrameTransforms {
    pub fn new(per_frame: Vec<ModalityTransform>, otherwise: ModalityTransform) -> Self {
        Self { per_frame, otherwise }
    }

    pub fn all(transform: ModalityTransform) -> Self {
        Self::new(Vec::new(), transform)
    }

    fn for_frame(&self, index: u32) -> &ModalityTransform {
        self.per_frame.get(index as usize).unwrap_or(&self.otherwise)
    }
}

impl SampleFormat {
    fn is_monochrome(&self) -> bool {
        self.photometric.starts_with("MONOCHROME")
    }
}

/// How the stored samples of a file are to be turned into a frame.
pub(crate) struct PixelLayout {
    format: SampleFormat,
    /// Colour conversion the codec does not do for us (native and RLE data).
    ybr_to_rgb: bool,
    /// Native YBR_FULL_422: Y Y Cb Cr per two pixels, expanded here (no codec does it).
    chroma_subsampled: bool,
    palette: Option<Palette>,
    /// JPEG decoded here with libjpeg-turbo instead of dicom-pixeldata (see jpeg_turbo.rs).
    turbo: Option<TurboCase>,
}

/// PALETTE COLOR: one lookup table per channel, R then G then B.
struct Palette {
    luts: [LookupTable; 3],
}

impl PixelLayout {
    pub(super) fn read(path: &Path, obj: &DefaultDicomObject, format: SampleFormat, ts_uid: &str) -> Result<Self, ImageError> {
        let unsupported = |what: &str| ImageError::Unsupported { path: path.to_path_buf(), what: what.to_string() };
        let photometric = format.photometric.as_str();
        if photometric == "PALETTE COLOR" && format.samples != 1 {
            return Err(unsupported(&format!(
                "PALETTE COLOR with {} samples per pixel (palette indices have 1 sample)",
                format.samples
            )));
        }
        let palette = if photometric == "PALETTE COLOR" { Some(Palette::read(path, obj, format.signed)?) } else { None };
        let native_or_rle = !ts_uid.starts_with("1.2.840.10008.1.2.4.");
        let chroma_subsampled = photometric == "YBR_FULL_422" && native_or_rle;
        if chroma_subsampled && ts_uid == RLE_LOSSLESS {
            return Err(unsupported("RLE-compressed YBR_FULL_422 (subsampled colour) pixel data"));
        }
        if chroma_subsampled && (format.bits_allocated != 8 || format.samples != 3 || format.cols % 2 != 0) {
            return Err(unsupported(&format!(
                "uncompressed YBR_FULL_422 with {} bits, {} samples and {} columns (8 bits, 3 samples and an even width are readable)",
                format.bits_allocated, format.samples, format.cols
            )));
        }
        if format.samples == 3 && format.bits_allocated == 1 {
            return Err(unsupported("1-bit colour pixel data"));
        }
        let turbo = match ts_uid {
            JPEG_BASELINE | JPEG_EXTENDED if format.bits_stored > 8 => Some(TurboCase::TwelveBit),
            JPEG_BASELINE | JPEG_EXTENDED if format.samples == 3 && photometric == "RGB" => Some(TurboCase::UntransformedRgb),
            _ => None,
        };
        let ybr_to_rgb = native_or_rle && (photometric == "YBR_FULL" || chroma_subsampled);
        Ok(Self { format, ybr_to_rgb, chroma_subsampled, palette, turbo })
    }
}

/// The parsed file, kept open so frames decode on request.
pub(crate) struct DicomPixels {
    obj: DefaultDicomObject,
    layout: PixelLayout,
}

impl DicomPixels {
    pub(super) fn new(obj: DefaultDicomObject, layout: PixelLayout) -> Self {
        Self { obj, layout }
    }

    pub(crate) fn frame(&self, meta: &ImageMeta, index: u32) -> Result<Frame, ImageError> {
        let path = meta.path.as_path();
        let decode_err = |reason: String| ImageError::Decode { path: path.to_path_buf(), reason };
        let l = &self.layout.format;
        if let Some(case) = self.layout.turbo {
            let fragment = self.jpeg_fragment(path, index, meta.frames)?;
            let decode = || match case {
                TurboCase::TwelveBit => jpeg_turbo::decode_12bit(&fragment, l.samples),
                TurboCase::UntransformedRgb => jpeg_turbo::decode_untransformed_rgb(&fragment),
            };
            let (width, height, data) = catch_codec_panic(decode)
                .map_err(&decode_err)?
                .map_err(&decode_err)?;
            if (width, height) != (l.cols, l.rows) {
                return Err(decode_err(format!("JPEG is {width}×{height}, the header says {}×{}", l.cols, l.rows)));
            }
            return self.to_frame(path, index, &data, false);
        }
        if self.layout.chroma_subsampled {
            let full = self.subsampled_frame(path, index)?;
            return self.to_frame(path, index, &full, false);
        }
        self.check_encapsulated_frame(path, index, meta.frames)?;
        let decoded = catch_codec_panic(|| self.obj.decode_pixel_data_frame(index))
            .map_err(&decode_err)?
            .map_err(|e| decode_err(super::read_error_chain(&e)))?;
        let planar = l.planar && decoded.planar_configuration() != dicom_pixeldata::PlanarConfiguration::Standard;
        self.to_frame(path, index, decoded.data(), planar)
    }

    /// Frame `index` of native YBR_FULL_422 data (Y₀ Y₁ Cb Cr per pixel pair) as 3 samples per pixel.
    fn subsampled_frame(&self, path: &Path, index: u32) -> Result<Vec<u8>, ImageError> {
        let l = &self.layout.format;
        let frame_bytes = l.rows as usize * l.cols as usize * 2;
        let data = attrs::bytes(&self.obj, tags::PIXEL_DATA).unwrap_or_default();
        let start = index as usize * frame_bytes;
        let frame = data.get(start..start + frame_bytes).ok_or(ImageError::Truncated {
            path: path.to_path_buf(),
            expected: (start + frame_bytes) as u64,
            actual: data.len() as u64,
        })?;
        Ok(expand_422(frame))
    }

    /// Refuses what would send a codec astray before it sees the frame: an RLE header whose
    /// segment count does not match the samples (the adapter sizes a vector by it), a JPEG-LS
    /// stream without its end marker (CharLS spends seconds on a truncated one).
    fn check_encapsulated_frame(&self, path: &Path, index: u32, frames: u32) -> Result<(), ImageError> {
        let ts = self.obj.meta().transfer_syntax().trim_end_matches('\0');
        if ts != RLE_LOSSLESS && !ts.starts_with(JPEG_LS_PREFIX) {
            return Ok(());
        }
        let Ok(element) = self.obj.element(tags::PIXEL_DATA) else { return Ok(()) };
        let Value::PixelSequence(sequence) = element.value() else { return Ok(()) };
        let fragments = sequence.fragments();
        let i = index as usize;
        let frame_fragments = match fragments.get(i..=i) {
            Some(one) if fragments.len() == frames as usize => one,
            _ => &fragments[..],
        };
        let damaged = |reason: String| ImageError::Decode { path: path.to_path_buf(), reason };
        if ts == RLE_LOSSLESS {
            let l = &self.layout.format;
            let expected = u32::from(l.samples) * u32::from(l.bits_allocated.div_ceil(8));
            let Some(header) = frame_fragments.first().and_then(|f| f.get(..64)) else {
                return Err(damaged(format!("RLE frame {} is shorter than its 64-byte header", index + 1)));
            };
            let segments = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            if segments != expected {
                return Err(damaged(format!(
                    "RLE frame {} has {segments} segments; {} samples of {} bits need {expected}",
                    index + 1,
                    l.samples,
                    l.bits_allocated
                )));
            }
        } else {
            let last = frame_fragments.iter().rev().find(|f| !f.is_empty());
            let ends_with_eoi = last.is_some_and(|f| {
                let end = f.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                f[..end].ends_with(&[0xFF, 0xD9])
            });
            if !ends_with_eoi {
                return Err(damaged(format!("JPEG-LS frame {} is truncated (no end-of-image marker)", index + 1)));
            }
        }
        Ok(())
    }

    /// The encapsulated bytes of one frame: one fragment per frame, or all fragments of a
    /// single-frame file.
    fn jpeg_fragment(&self, path: &Path, index: u32, frames: u32) -> Result<Vec<u8>, ImageError> {
        let invalid = |what: &str| ImageError::DicomParse { path: path.to_path_buf(), reason: what.to_string() };
        let element = self.obj.element(tags::PIXEL_DATA).map_err(|_| invalid("pixel data is missing"))?;
        let Value::PixelSequence(sequence) = element.value() else {
            return Err(invalid("JPEG pixel data is not encapsulated"));
        };
        let fragments = sequence.fragments();
        if fragments.len() == frames as usize {
            Ok(fragments[index as usize].to_vec())
        } else if frames == 1 {
            Ok(fragments.iter().flatten().copied().collect())
        } else {
            Err(ImageError::Unsupported {
                path: path.to_path_buf(),
                what: "JPEG frames split over several fragments (in this decoding path)".to_string(),
            })
        }
    }

    /// Native samples (little-endian, one byte per pixel for 1-bit data) to a frame.
    fn to_frame(&self, path: &Path, index: u32, data: &[u8], planar: bool) -> Result<Frame, ImageError> {
        let l = &self.layout.format;
        let pixels = l.rows as usize * l.cols as usize;
        let samples = l.samples as usize;
        let bytes_per_sample = if l.bits_allocated == 1 { 1 } else { usize::from(l.bits_allocated / 8) };
        let expected = pixels * samples * bytes_per_sample;
        if data.len() < expected {
            return Err(ImageError::Truncated { path: path.to_path_buf(), expected: expected as u64, actual: data.len() as u64 });
        }
        let mut values = read_samples(&data[..expected], l);
        if samples == 3 && planar {
            values = interleave_planes(&values, pixels);
        }

        let frame = if let Some(palette) = &self.layout.palette {
            let data = palette.apply(&values);
            Frame { width: l.cols, height: l.rows, channels: 3, data, display_range: (0.0, palette.top()) }
        } else if samples == 3 {
            if self.layout.ybr_to_rgb {
                ybr_full_to_rgb(&mut values, l.bits_stored);
            }
            let top = ((1u64 << l.bits_stored) - 1) as f32;
            Frame { width: l.cols, height: l.rows, channels: 3, data: values, display_range: (0.0, top) }
        } else {
            if l.is_monochrome() {
                l.modality.for_frame(index).apply(&mut values);
            }
            Frame::from_values(l.cols, l.rows, 1, values)
        };
        Ok(frame)
    }
}

/// Stored samples to f32: little-endian words, bits above the stored range masked off, sign
/// extended from the stored high bit for signed data.
fn read_samples(data: &[u8], l: &SampleFormat) -> Vec<f32> {
    let shift = u32::from(l.high_bit + 1 - l.bits_stored);
    let bits = u32::from(l.bits_stored);
    let mask: u64 = if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let interpret = |raw: u64| -> f32 {
        let v = (raw >> shift) & mask;
        if l.signed && bits < 64 && v & (1 << (bits - 1)) != 0 {
            (v as i64 - (1i64 << bits)) as f32
        } else {
            v as f32
        }
    };
    match l.bits_allocated {
        1 => data.iter().map(|&b| if b != 0 { 1.0 } else { 0.0 }).collect(),
        8 => data.iter().map(|&b| interpret(u64::from(b))).collect(),
        16 => data.chunks_exact(2).map(|c| interpret(u64::from(u16::from_le_bytes([c[0], c[1]])))).collect(),
        _ => data.chunks_exact(4).map(|c| interpret(u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])))).collect(),
    }
}

/// Y₀ Y₁ Cb Cr → Y₀ Cb Cr Y₁ Cb Cr: both pixels of a pair share the pair's chroma.
fn expand_422(data: &[u8]) -> Vec<u8> {
    data.chunks_exact(4).flat_map(|q| [q[0], q[2], q[3], q[1], q[2], q[3]]).collect()
}

/// Planar configuration 1 (RRR…GGG…BBB…) to interleaved RGBRGB….
fn interleave_planes(values: &[f32], pixels: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(values.len());
    for i in 0..pixels {
        out.extend_from_slice(&[values[i], values[pixels + i], values[2 * pixels + i]]);
    }
    out
}

/// YBR_FULL (ITU-R BT.601 full range, as PS3.3 C.7.6.3.1.2 defines it) to RGB, in place.
fn ybr_full_to_rgb(values: &mut [f32], bits: u16) {
    let offset = (1u64 << (bits - 1)) as f32;
    let top = ((1u64 << bits) - 1) as f32;
    for px in values.chunks_exact_mut(3) {
        let (y, cb, cr) = (px[0], px[1] - offset, px[2] - offset);
        px[0] = (y + 1.402 * cr).round().clamp(0.0, top);
        px[1] = (y - 0.344_136 * cb - 0.714_136 * cr).round().clamp(0.0, top);
        px[2] = (y + 1.772 * cb).round().clamp(0.0, top);
    }
}

impl Palette {
    /// Plain or segmented tables (PS3.3 C.7.9); the descriptor's first mapped value follows the
    /// pixel sign.
    fn read(path: &Path, obj: &DefaultDicomObject, signed: bool) -> Result<Self, ImageError> {
        let bad = |channel: &str, reason: String| ImageError::DicomParse {
            path: path.to_path_buf(),
            reason: format!("PALETTE COLOR, {channel} table: {reason}"),
        };
        let channels = [
            ("red", tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA, tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA),
            ("green", tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA, tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA),
            ("blue", tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA, tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA),
        ];
        let read_one = |(channel, descriptor, plain, segmented)| {
            let descriptor = attrs::ints(obj, descriptor);
            let lut = match (attrs::bytes(obj, plain), attrs::bytes(obj, segmented)) {
                (Some(data), _) => LookupTable::from_descriptor(&descriptor, &data, signed),
                (None, Some(data)) => LookupTable::from_segmented(&descriptor, &data, signed),
                (None, None) => Err("the lookup table data is missing".to_string()),
            };
            lut.map_err(|reason| bad(channel, reason))
        };
        let [red, green, blue] = channels.map(read_one);
        Ok(Self { luts: [red?, green?, blue?] })
    }

    /// The largest output value of the tables.
    fn top(&self) -> f32 {
        let bits = self.luts.iter().map(|l| l.bits).max().unwrap_or(8);
        ((1u32 << bits) - 1) as f32
    }

    fn apply(&self, indices: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(indices.len() * 3);
        for &index in indices {
            out.extend(self.luts.iter().map(|lut| f32::from(lut.get(index as i64))));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(bits_allocated: u16, bits_stored: u16, signed: bool) -> SampleFormat {
        SampleFormat {
            rows: 1,
            cols: 2,
            samples: 1,
            bits_allocated,
            bits_stored,
            high_bit: bits_stored - 1,
            signed,
            planar: false,
            photometric: "MONOCHROME2".into(),
            modality: FrameTransforms::all(ModalityTransform::Identity),
        }
    }

    #[test]
    fn signed_12_bit_samples_are_sign_extended() {
        // 0x0FFF in 12 bits is -1; 0x0800 is -2048; the top nibble is padding.
        let data = [0xFF, 0xFF, 0x00, 0x08];
        assert_eq!(read_samples(&data, &layout(16, 12, true)), vec![-1.0, -2048.0]);
        assert_eq!(read_samples(&data, &layout(16, 12, false)), vec![4095.0, 2048.0]);
    }

    #[test]
    fn unsigned_32_bit_samples_are_exact_enough() {
        let data = 70_000u32.to_le_bytes().iter().chain(&0u32.to_le_bytes()).copied().collect::<Vec<u8>>();
        assert_eq!(read_samples(&data, &layout(32, 32, false)), vec![70_000.0, 0.0]);
    }

    #[test]
    fn planes_are_interleaved() {
        let planar = [1.0, 2.0, 10.0, 20.0, 100.0, 200.0];
        assert_eq!(interleave_planes(&planar, 2), vec![1.0, 10.0, 100.0, 2.0, 20.0, 200.0]);
    }

    #[test]
    fn subsampled_chroma_is_shared_by_each_pixel_pair() {
        assert_eq!(expand_422(&[10, 20, 128, 130, 1, 2, 3, 4]), vec![10, 128, 130, 20, 128, 130, 1, 3, 4, 2, 3, 4]);
    }

    #[test]
    fn ybr_grey_stays_grey() {
        let mut px = [100.0, 128.0, 128.0];
        ybr_full_to_rgb(&mut px, 8);
        assert_eq!(px, [100.0, 100.0, 100.0]);
    }
}
