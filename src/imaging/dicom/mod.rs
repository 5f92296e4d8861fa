//! DICOM through dicom-object + dicom-pixeldata: parsing, header facts, frame decoding.

pub(super) mod attrs;
mod functional_groups;
mod guard;
mod jpeg_turbo;
mod lengths;
mod lut;
mod pixels;
mod read;

pub(super) use pixels::DicomPixels;
pub(super) use read::{looks_like_dicom, open, read_header};
use read::error_chain as read_error_chain;
