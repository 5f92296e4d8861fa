//! Pixels on disk ⇄ memory: raster files and DICOM in, masks out.
//!
//! Every format ends up as an [`ImageSource`]: header facts ([`ImageMeta`]) plus frames of real
//! values ([`Frame`], f32 planes in modality units). Window/level is a view parameter
//! ([`Window`]) and is never baked into the pixels.

mod dicom;
mod error;
mod export;
mod frame;
mod mask;
mod meta;
pub mod nifti;
mod raster;
pub mod series;
mod window;

pub use error::ImageError;
pub use export::{is_same_file, make_readable, write_atomic, write_atomic_creating_folder, write_display_png, write_mask_png};
pub use frame::{Frame, FrameStats};
pub use mask::Mask;
pub use meta::{ImageMeta, SourceFormat, TransferSyntaxInfo, WindowPreset};
pub use window::Window;

use std::path::{Path, PathBuf};

/// Largest width or height accepted from any header, checked before pixels are allocated.
pub const MAX_SIDE: u32 = 32_768;
/// Largest decoded size of one file's pixels (all frames, f32), checked before allocating.
pub const MAX_DECODED_BYTES: u64 = 4 << 30;

/// An opened image file: its header facts and a way to get any of its frames.
pub struct ImageSource {
    meta: ImageMeta,
    pixels: Pixels,
}

enum Pixels {
    /// Raster files hold one frame, decoded on open.
    Raster(Frame),
    /// DICOM frames are decoded on request, so a large multi-frame file opens quickly.
    Dicom(Box<dicom::DicomPixels>),
}

impl ImageSource {
    /// Opens any supported file: DICOM (with or without a file meta group), PNG, JPEG, TIFF, BMP.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ImageError> {
        let path = path.as_ref();
        let head = read_head(path)?;
        if dicom::looks_like_dicom(path, &head) {
            let (meta, pixels) = dicom::open(path)?;
            Ok(Self { meta, pixels: Pixels::Dicom(Box::new(pixels)) })
        } else {
            let (meta, frame) = raster::open(path, &head)?;
            Ok(Self { meta, pixels: Pixels::Raster(frame) })
        }
    }

    pub fn meta(&self) -> &ImageMeta {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.meta.path
    }

    /// Decodes frame `index` (0-based) in modality units.
    pub fn frame(&self, index: u32) -> Result<Frame, ImageError> {
        if index >= self.meta.frames {
            return Err(ImageError::FrameOutOfRange {
                path: self.meta.path.clone(),
                frame: index,
                frames: self.meta.frames,
            });
        }
        match &self.pixels {
            Pixels::Raster(frame) => Ok(frame.clone()),
            Pixels::Dicom(pixels) => pixels.frame(&self.meta, index),
        }
    }

    /// The window a viewer starts with: the file's first window, else the frame's value range.
    pub fn default_window(&self, frame: &Frame) -> Window {
        match self.meta.windows.first() {
            Some(preset) => preset.window,
            None => frame.full_range_window(),
        }
    }
}

/// Reads the first bytes of a file, so the format is chosen by content and not by name alone.
fn read_head(path: &Path) -> Result<Vec<u8>, ImageError> {
    use std::io::Read;
    let io = |source| ImageError::Io { path: PathBuf::from(path), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Err(ImageError::EmptyFile { path: path.to_path_buf() });
    }
    let mut head = Vec::with_capacity(256);
    file.take(256).read_to_end(&mut head).map_err(io)?;
    Ok(head)
}
