//! Typed reads of header attributes; a missing or malformed value is `None`, never a panic.

use dicom_core::Tag;
use dicom_object::DefaultDicomObject;

pub(super) fn string(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let value = obj.element_opt(tag).ok()??.to_str().ok()?;
    let trimmed = value.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

pub(super) fn strings(obj: &DefaultDicomObject, tag: Tag) -> Vec<String> {
    string(obj, tag)
        .map(|s| s.split('\\').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default()
}

pub(super) fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok()??.to_int::<i64>().ok()
}

pub(super) fn ints(obj: &DefaultDicomObject, tag: Tag) -> Vec<i64> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_multi_int::<i64>().ok())
        .unwrap_or_default()
}

pub(super) fn floats(obj: &DefaultDicomObject, tag: Tag) -> Vec<f64> {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_multi_float64().ok())
        .unwrap_or_default()
}

pub(super) fn float(obj: &DefaultDicomObject, tag: Tag) -> Option<f64> {
    floats(obj, tag).first().copied()
}

pub(super) fn bytes(obj: &DefaultDicomObject, tag: Tag) -> Option<Vec<u8>> {
    Some(obj.element_opt(tag).ok()??.to_bytes().ok()?.into_owned())
}
