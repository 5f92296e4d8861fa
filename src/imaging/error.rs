use std::path::PathBuf;

/// Why an image or mask could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{}: the file is empty (0 bytes)", path.display())]
    EmptyFile { path: PathBuf },

    #[error("{}: not a supported image (expected PNG, JPEG, TIFF, BMP or DICOM): {reason}", path.display())]
    UnknownFormat { path: PathBuf, reason: String },

    #[error("{}: the image claims {width}×{height} pixels, more than this program accepts ({limit})", path.display())]
    TooLarge { path: PathBuf, width: u64, height: u64, limit: String },

    #[error("{}: cannot decode the image: {reason}", path.display())]
    Decode { path: PathBuf, reason: String },

    #[error("{}: cannot read the DICOM file: {reason}", path.display())]
    DicomParse { path: PathBuf, reason: String },

    #[error("{}: the DICOM file has no pixel data ({what}); nothing to display", path.display())]
    NoPixelData { path: PathBuf, what: String },

    #[error("{}: pixel data is truncated: {actual} bytes where {expected} are needed", path.display())]
    Truncated { path: PathBuf, expected: u64, actual: u64 },

    #[error("{}: {what} is not supported", path.display())]
    Unsupported { path: PathBuf, what: String },

    #[error("{}: frame {frame} does not exist; the file has {frames} frame(s) (numbered from 0)", path.display())]
    FrameOutOfRange { path: PathBuf, frame: u32, frames: u32 },

    #[error("{}: refusing to overwrite the source image", path.display())]
    WouldOverwriteSource { path: PathBuf },

    #[error("{}: mask is {mask_width}×{mask_height} but the image is {width}×{height}", path.display())]
    MaskSizeMismatch { path: PathBuf, mask_width: u32, mask_height: u32, width: u32, height: u32 },
}
