use std::path::PathBuf;

use serde::Serialize;

use super::Window;

/// The container an image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    Png,
    Jpeg,
    Tiff,
    Bmp,
    Dicom,
    /// A folder's DICOM series, opened as one volume.
    DicomSeries,
    Nifti,
}

impl SourceFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Tiff => "TIFF",
            Self::Bmp => "BMP",
            Self::Dicom => "DICOM",
            Self::DicomSeries => "DICOM series",
            Self::Nifti => "NIfTI",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferSyntaxInfo {
    pub uid: String,
    pub name: String,
}

/// A named window stored in the file (DICOM Window Center/Width, with its explanation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct WindowPreset {
    pub window: Window,
    /// Index into the file's window explanations, when the file names them.
    #[serde(skip)]
    pub name_index: Option<usize>,
}

/// What is known about an image without its pixels. Holds no patient identifiers.
#[derive(Debug, Clone, Serialize)]
pub struct ImageMeta {
    pub path: PathBuf,
    pub format: SourceFormat,
    /// DICOM Modality (0008,0060), e.g. "CT"; `None` for raster files.
    pub modality: Option<String>,
    pub rows: u32,
    pub cols: u32,
    pub frames: u32,
    /// Samples per pixel as decoded: 1 (grey) or 3 (RGB).
    pub channels: u8,
    /// DICOM photometric interpretation as stored, or "MONOCHROME2"/"RGB" for raster files.
    pub photometric: String,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub signed: bool,
    pub transfer_syntax: Option<TransferSyntaxInfo>,
    /// Physical size of one pixel in mm: (row spacing, column spacing).
    pub pixel_spacing: Option<(f64, f64)>,
    pub windows: Vec<WindowPreset>,
    pub window_names: Vec<String>,
    /// The file's own rescale: value = slope · stored + intercept (the first frame's, when an
    /// enhanced multi-frame file gives each frame its own; `rescale_varies` says so).
    pub rescale: Option<(f64, f64)>,
    pub rescale_varies: bool,
    /// A non-linear Modality LUT (DICOM Modality LUT Sequence), described; it replaces `rescale`.
    pub modality_lut: Option<String>,
    /// Patient-space geometry (DICOM LPS, mm): row and column direction cosines.
    pub orientation: Option<[f64; 6]>,
    /// The top-left pixel's position per frame (one for a single-frame file); empty when the
    /// file does not say.
    pub positions: Vec<[f64; 3]>,
    /// What was read but not used, or used with doubt, in words the user sees.
    pub warnings: Vec<String>,
    /// MONOCHROME1: low values are bright. Applied at display, never to the pixels.
    pub invert_display: bool,
    /// DICOM identifiers that place the file in its series (empty values as `None`); kept out of
    /// `info`'s output.
    #[serde(skip)]
    pub dicom_ids: Option<DicomIds>,
}

/// Where a DICOM file belongs: its series, frame of reference and own instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DicomIds {
    pub series_uid: Option<String>,
    pub frame_of_reference_uid: Option<String>,
    pub sop_instance_uid: Option<String>,
    pub instance_number: Option<i64>,
    pub series_description: Option<String>,
}

impl ImageMeta {
    /// A display name for a window preset: the file's explanation, or its numbers.
    pub fn window_label(&self, preset: &WindowPreset) -> String {
        preset
            .name_index
            .and_then(|i| self.window_names.get(i))
            .filter(|name| !name.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| format!("C {} / W {}", preset.window.center, preset.window.width))
    }
}
