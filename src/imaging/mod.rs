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
pub mod dicom_seg;
pub mod series;
pub mod volume;
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
    /// A volume's slices are its frames.
    Volume(std::sync::Arc<volume::Volume>),
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

    /// The same source under another name: a series that shares its folder with other files
    /// is named `<folder>/series <UID>` (its autosaves and exports are keyed by that name).
    pub fn named(mut self, path: PathBuf) -> Self {
        self.meta.path = path;
        self
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
            Pixels::Volume(volume) => {
                let mut frame = volume.slice(index as usize);
                frame.display_range = volume.value_range();
                Ok(frame)
            }
        }
    }

    /// A volume (a folder holding one DICOM series, or a NIfTI file) whose frames are its
    /// slices, with one window for all of them.
    pub fn open_volume(path: &Path) -> Result<Self, volume::VolumeError> {
        Ok(Self::from_volume(volume::Volume::open(path)?))
    }

    pub fn from_volume(volume: volume::Volume) -> Self {
        let [nx, ny, nz] = volume.shape;
        let spacing = volume.spacing();
        let series = volume.series();
        // A series keeps its first slice's window presets (CT's named windows); otherwise one
        // window over the bulk of the volume's values.
        let first_slice = series.and_then(|s| s.slices.first()).and_then(|s| ImageSource::open(&s.path).ok());
        let windows = match first_slice.as_ref().map(|s| s.meta().windows.clone()) {
            Some(windows) if !windows.is_empty() => windows,
            _ => vec![WindowPreset { window: volume.robust_window(), name_index: None }],
        };
        let meta = ImageMeta {
            path: match &volume.origin {
                // A multi-frame file is its own path; a series of files, their folder.
                volume::VolumeOrigin::Series(_) => match series.map(|s| &s.slices[..]) {
                    Some([first, rest @ ..]) if rest.iter().all(|s| s.path == first.path) => first.path.clone(),
                    Some([first, ..]) => first.path.parent().map(Path::to_path_buf).unwrap_or_default(),
                    _ => Default::default(),
                },
                volume::VolumeOrigin::Nifti(path) => path.clone(),
            },
            format: if series.is_some() { SourceFormat::DicomSeries } else { SourceFormat::Nifti },
            modality: volume.modality.clone(),
            rows: ny as u32,
            cols: nx as u32,
            frames: nz as u32,
            channels: 1,
            photometric: "MONOCHROME2".into(),
            bits_allocated: first_slice.as_ref().map_or(32, |s| s.meta().bits_allocated),
            bits_stored: first_slice.as_ref().map_or(32, |s| s.meta().bits_stored),
            signed: true,
            transfer_syntax: first_slice.as_ref().and_then(|s| s.meta().transfer_syntax.clone()),
            pixel_spacing: Some((spacing[1], spacing[0])),
            windows,
            window_names: first_slice.as_ref().map(|s| s.meta().window_names.clone()).unwrap_or_default(),
            rescale: None,
            rescale_varies: false,
            modality_lut: None,
            orientation: series.map(|s| s.orientation),
            positions: series.map(|s| s.slices.iter().map(|s| s.position).collect()).unwrap_or_default(),
            warnings: volume.warnings.clone(),
            invert_display: first_slice.as_ref().is_some_and(|s| s.meta().invert_display),
            dicom_ids: None,
        };
        Self { meta, pixels: Pixels::Volume(std::sync::Arc::new(volume)) }
    }

    /// The volume this source shows slice by slice, if it is one.
    pub fn volume(&self) -> Option<&volume::Volume> {
        match &self.pixels {
            Pixels::Volume(volume) => Some(volume),
            _ => None,
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
