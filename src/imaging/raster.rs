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
    if format == SourceFormat::Png {
        check_png_can_hold(path, width, height, png_bits_per_pixel(head))?;
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
