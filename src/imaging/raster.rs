//! PNG, JPEG, TIFF and BMP through the `image` crate. 16-bit files keep their 16-bit values.

use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::{Frame, ImageError, ImageMeta, MAX_DECODED_BYTES, MAX_SIDE, SourceFormat};

pub(super) fn open(path: &Path, head: &[u8]) -> Result<(ImageMeta, Frame), ImageError> {
    let decode_err = |e: image::ImageError| ImageError::Decode { path: path.to_path_buf(), reason: e.to_string() };
    let io = |source| ImageError::Io { path: path.to_path_buf(), source };

    let reader = ImageReader::open(path).map_err(io)?.with_guessed_format().map_err(io)?;
    let format = match reader.format() {
        Some(ImageFormat::Png) => SourceFormat::Png,
        Some(ImageFormat::Jpeg) => SourceFormat::Jpeg,
        Some(ImageFormat::Tiff) => SourceFormat::Tiff,
        Some(ImageFormat::Bmp) => SourceFormat::Bmp,
        other => {
            let reason = match other {
                Some(f) => format!("{f:?} images are not supported"),
                None => "the content matches no known image format".to_string(),
            };
            return Err(ImageError::UnknownFormat { path: path.to_path_buf(), reason });
        }
    };
    // The name may lie (a text file called .png): insist that the content matches too.
    if image::guess_format(head).is_err() {
        return Err(ImageError::UnknownFormat {
            path: path.to_path_buf(),
            reason: format!("the content is not {} data", format.name()),
        });
    }

    let decoder = reader.into_decoder().map_err(decode_err)?;
    let (width, height) = decoder.dimensions();
    let bytes_per_pixel = decoder.color_type().bytes_per_pixel() as u64;
    check_size(path, width, height, bytes_per_pixel)?;
    match format {
        SourceFormat::Png => check_png_can_hold(path, width, height, png_bits_per_pixel(head))?,
        SourceFormat::Bmp => check_bmp_can_hold(path, width, height, head)?,
        _ => {}
    }
    let image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    let frame = to_frame(image);
    let color = frame.channels == 3;
    let bits = bits_per_channel(&frame);
    let meta = ImageMeta {
        path: path.to_path_buf(),
        format,
        modality: None,
        rows: height,
        cols: width,
        frames: 1,
        channels: frame.channels,
        photometric: if color { "RGB" } else { "MONOCHROME2" }.to_string(),
        bits_allocated: bits,
        bits_stored: bits,
        signed: false,
        transfer_syntax: None,
        pixel_spacing: None,
        windows: Vec::new(),
        window_names: Vec::new(),
        rescale: None,
        rescale_varies: false,
        modality_lut: None,
        orientation: None,
        dicom_ids: None,
        positions: Vec::new(),
        warnings: Vec::new(),
        invert_display: false,
    };
    Ok((meta, frame))
}

/// Refuses absurd headers before any pixel buffer is allocated.
pub(super) fn check_size(path: &Path, width: u32, height: u32, bytes_per_pixel: u64) -> Result<(), ImageError> {
    let too_large = |limit: String| ImageError::TooLarge {
        path: path.to_path_buf(),
        width: width.into(),
        height: height.into(),
        limit,
    };
    if width == 0 || height == 0 {
        return Err(ImageError::Decode { path: path.to_path_buf(), reason: format!("the image has no pixels ({width}×{height})") });
    }
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(too_large(format!("at most {MAX_SIDE} pixels a side")));
    }
    let decoded = u64::from(width) * u64::from(height) * bytes_per_pixel.max(4);
    if decoded > MAX_DECODED_BYTES {
        return Err(too_large(format!("at most {} GiB decoded", MAX_DECODED_BYTES >> 30)));
    }
    Ok(())
}

/// DEFLATE, PNG's only compression, never expands more than 1032:1; a header claiming more
/// pixels than the file could hold is damaged, and is refused before the decoder allocates them.
/// The bits per pixel stored in the file, from its IHDR (the decoder reports them expanded):
/// bit depth × samples of the colour type; 1 where the header cannot be read here.
fn png_bits_per_pixel(head: &[u8]) -> u16 {
    if head.get(12..16) != Some(b"IHDR") {
        return 1;
    }
    let (Some(&depth), Some(&colour)) = (head.get(24), head.get(25)) else { return 1 };
    let samples = match colour {
        2 => 3,
        4 => 2,
        6 => 4,
        _ => 1,
    };
    (u16::from(depth) * samples).max(1)
}

/// 1-bit PNGs are packed 8 pixels a byte, hence bits per pixel.
fn check_png_can_hold(path: &Path, width: u32, height: u32, bits_per_pixel: u16) -> Result<(), ImageError> {
    const DEFLATE_MAX_RATIO: u64 = 1032;
    let file_bytes = std::fs::metadata(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?.len();
    let pixel_bytes = (u64::from(width) * u64::from(bits_per_pixel)).div_ceil(8) * u64::from(height);
    if file_bytes.saturating_mul(DEFLATE_MAX_RATIO) < pixel_bytes {
        return Err(ImageError::Decode {
            path: path.to_path_buf(),
            reason: format!(
                "the header claims {width}×{height} pixels ({pixel_bytes} bytes), more than a {file_bytes}-byte PNG can hold; the file is damaged"
            ),
        });
    }
    Ok(())
}

/// BMP's compression field (BITMAPINFOHEADER and later) as the decoder will use it: uncompressed
/// pixels (or the bitfields variants) or run-length encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BmpPixels {
    Uncompressed { bits_per_pixel: u16 },
    RunLength,
    Other,
}

fn bmp_pixels(head: &[u8]) -> BmpPixels {
    let u16_at = |at: usize| head.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |at: usize| head.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    match u32_at(14) {
        // BITMAPCOREHEADER (OS/2 1.x): never compressed.
        Some(12) => u16_at(24).map_or(BmpPixels::Other, |bits_per_pixel| BmpPixels::Uncompressed { bits_per_pixel }),
        Some(_) => match (u16_at(28), u32_at(30)) {
            // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS
            (Some(bits_per_pixel), Some(0 | 3 | 6)) => BmpPixels::Uncompressed { bits_per_pixel },
            // BI_RLE8, BI_RLE4
            (Some(_), Some(1 | 2)) => BmpPixels::RunLength,
            _ => BmpPixels::Other,
        },
        None => BmpPixels::Other,
    }
}

/// Largest decoded size accepted from a run-length encoded BMP: its "end of bitmap" and "delta"
/// codes let a few bytes claim any number of pixels, so the file's size bounds nothing.
const MAX_RLE_BMP_DECODED_BYTES: u64 = 256 << 20;

/// An uncompressed BMP stores every row (padded to 4 bytes): a header claiming more rows than
/// the file holds is damaged, and is refused before the decoder allocates the image.
fn check_bmp_can_hold(path: &Path, width: u32, height: u32, head: &[u8]) -> Result<(), ImageError> {
    let damaged = |reason: String| ImageError::Decode { path: path.to_path_buf(), reason };
    match bmp_pixels(head) {
        BmpPixels::Uncompressed { bits_per_pixel } => {
            let file_bytes =
                std::fs::metadata(path).map_err(|source| ImageError::Io { path: path.to_path_buf(), source })?.len();
            // The pixels start at the offset in the file header (bytes 10..14).
            let data_offset = head.get(10..14).map_or(0, |b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            // Every row padded to 4 bytes, except that some writers leave the last one unpadded.
            let row_bits = u64::from(width) * u64::from(bits_per_pixel);
            let pixel_bytes = row_bits.div_ceil(32) * 4 * (u64::from(height) - 1) + row_bits.div_ceil(8);
            if file_bytes.saturating_sub(data_offset) < pixel_bytes {
                return Err(damaged(format!(
                    "the header claims {width}×{height} pixels ({pixel_bytes} bytes uncompressed from byte {data_offset}), more than a {file_bytes}-byte BMP holds; the file is damaged"
                )));
            }
        }
        BmpPixels::RunLength => {
            let decoded = u64::from(width) * u64::from(height) * 4;
            if decoded > MAX_RLE_BMP_DECODED_BYTES {
                return Err(ImageError::TooLarge {
                    path: path.to_path_buf(),
                    width: width.into(),
                    height: height.into(),
                    limit: format!("at most {} MiB decoded for a run-length encoded BMP", MAX_RLE_BMP_DECODED_BYTES >> 20),
                });
            }
        }
        BmpPixels::Other => {}
    }
    Ok(())
}

fn bits_per_channel(frame: &Frame) -> u16 {
    match frame.display_range.1 {
        m if m <= 1.0 => 32,
        m if m <= 255.0 => 8,
        _ => 16,
    }
}

fn to_frame(image: DynamicImage) -> Frame {
    let (width, height) = (image.width(), image.height());
    let color = image.color();
    let bytes_per_channel = color.bytes_per_pixel() / color.channel_count();
    let (channels, data, range): (u8, Vec<f32>, f32) = match (color.has_color(), bytes_per_channel) {
        (false, 1) => (1, image.into_luma8().into_raw().into_iter().map(f32::from).collect(), 255.0),
        (false, 2) => (1, image.into_luma16().into_raw().into_iter().map(f32::from).collect(), 65535.0),
        (false, _) => (1, image.to_luma32f().into_raw(), 1.0),
        (true, 1) => (3, image.into_rgb8().into_raw().into_iter().map(f32::from).collect(), 255.0),
        (true, 2) => (3, image.into_rgb16().into_raw().into_iter().map(f32::from).collect(), 65535.0),
        (true, _) => (3, image.into_rgb32f().into_raw(), 1.0),
    };
    Frame { width, height, channels, data, display_range: (0.0, range) }
}
