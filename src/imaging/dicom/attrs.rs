//! Typed reads of header attributes; a missing or malformed value is `None`, never a panic.
//!
//! An element stored with VR UN (what a PACS leaves after an implicit → explicit conversion of
//! an attribute it did not know) holds raw bytes: "1" as a UN Rescale Slope is the byte 0x31,
//! which a plain numeric read turns into 49. Every read here decodes UN values with the VR the
//! standard dictionary gives the tag, as pydicom does.

use std::borrow::Cow;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_object::InMemDicomObject;

/// The element's primitive value, UN decoded with the dictionary's VR.
fn primitive(obj: &InMemDicomObject, tag: Tag) -> Option<Cow<'_, PrimitiveValue>> {
    let element = obj.element_opt(tag).ok()??;
    let Value::Primitive(value) = element.value() else {
        return None;
    };
    if element.vr() != VR::UN {
        return Some(Cow::Borrowed(value));
    }
    let vr = StandardDataDictionary.by_tag(tag)?.vr().relaxed();
    Some(Cow::Owned(decode_unknown(&value.to_bytes(), vr)))
}

/// Bytes of a UN value as the VR the dictionary names (UN values are little endian).
pub(in crate::imaging) fn decode_unknown(bytes: &[u8], vr: VR) -> PrimitiveValue {
    use VR::*;
    let text = || String::from_utf8_lossy(bytes).into_owned();
    match vr {
        AE | AS | CS | DA | DS | DT | IS | LO | PN | SH | TM | UC | UI => {
            PrimitiveValue::Strs(text().split('\\').map(str::to_string).collect())
        }
        LT | ST | UT | UR => PrimitiveValue::Str(text()),
        US => PrimitiveValue::U16(bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()),
        SS => PrimitiveValue::I16(bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()),
        UL => PrimitiveValue::U32(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        SL => PrimitiveValue::I32(bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        FL => PrimitiveValue::F32(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        FD => PrimitiveValue::F64(
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect(),
        ),
        _ => PrimitiveValue::U8(bytes.iter().copied().collect()),
    }
}

pub(in crate::imaging) fn string(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let value = primitive(obj, tag)?;
    let text = value.to_str();
    let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!trimmed.is_empty()).then(|| trimmed.to_string())
}

pub(in crate::imaging) fn strings(obj: &InMemDicomObject, tag: Tag) -> Vec<String> {
    string(obj, tag)
        .map(|s| s.split('\\').map(|p| p.trim().to_string()).collect())
        .unwrap_or_default()
}

pub(in crate::imaging) fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    primitive(obj, tag)?.to_int::<i64>().ok()
}

pub(in crate::imaging) fn ints(obj: &InMemDicomObject, tag: Tag) -> Vec<i64> {
    primitive(obj, tag).and_then(|v| v.to_multi_int::<i64>().ok()).unwrap_or_default()
}

pub(in crate::imaging) fn floats(obj: &InMemDicomObject, tag: Tag) -> Vec<f64> {
    primitive(obj, tag).and_then(|v| v.to_multi_float64().ok()).unwrap_or_default()
}

pub(in crate::imaging) fn bytes(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<u8>> {
    Some(primitive(obj, tag)?.to_bytes().into_owned())
}

/// The items of a sequence; empty when it is missing or not a sequence.
pub(in crate::imaging) fn items(obj: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.items()).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_decode_with_the_dictionary_vr() {
        let slope = decode_unknown(b"1 ", VR::DS);
        assert_eq!(slope.to_multi_float64().unwrap(), vec![1.0]);
        let spacing = decode_unknown(b"0.5\\0.25", VR::DS);
        assert_eq!(spacing.to_multi_float64().unwrap(), vec![0.5, 0.25]);
        let rows = decode_unknown(&512u16.to_le_bytes(), VR::US);
        assert_eq!(rows.to_int::<i64>().unwrap(), 512);
        assert_eq!(decode_unknown(b"CT", VR::CS).to_str(), "CT");
    }
}
