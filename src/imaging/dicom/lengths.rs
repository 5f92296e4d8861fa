//! A walk over a DICOM file's element headers before dicom-parser reads it.
//!
//! dicom-parser allocates a value's declared length before it reads the value, and a refused
//! allocation aborts the process: a damaged length field (2 GB for a 2 KB file) must be refused
//! before the parser sees it. The whole file is in memory, so no value can be longer than what is
//! left of it. The walk reads headers the way dicom-parser does (an unknown VR code as UN, any
//! undefined length as a sequence, the meta group by its group length, a stray item delimiter
//! ignored), enters sequences and items, and skips encapsulated pixel fragments. Where the
//! parser would refuse the bytes itself (a missing group length, an item header out of place)
//! the walk stops and leaves the verdict to the parser. A deflated data set is walked inflated.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const GROUP_LENGTH: Tag = Tag(0x0002, 0x0000);
const TRANSFER_SYNTAX: Tag = Tag(0x0002, 0x0010);
const UNDEFINED: u32 = u32::MAX;
/// A deflated data set is refused where it would inflate past this (a few bytes can claim gigabytes).
const MAX_INFLATED: usize = 1 << 30;
/// Deeper nesting than any real file has; the parser's recursion stays far from the stack's end.
const MAX_DEPTH: usize = 64;

const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

#[derive(Debug, Clone, Copy)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

const EXPLICIT_LE: Encoding = Encoding { explicit: true, big_endian: false };
const IMPLICIT_LE: Encoding = Encoding { explicit: false, big_endian: false };

/// Checks a file that starts with its file meta group (the bytes after the preamble, from "DICM").
pub(super) fn check_file(bytes: &[u8]) -> Result<(), String> {
    let mut walk = Walk { bytes, pos: 4, depth: 0 };
    let Some(ts) = walk.meta_group()? else { return Ok(()) };
    let encoding = match ts.as_str() {
        IMPLICIT_VR_LE => IMPLICIT_LE,
        EXPLICIT_VR_BE => Encoding { explicit: true, big_endian: true },
        DEFLATED => return check_deflated(&bytes[walk.pos..]),
        _ => EXPLICIT_LE,
    };
    walk.data_set(None, encoding).map(drop)
}

/// A deflated data set: the parser reads the inflated stream, so the walk does too. A stream that
/// breaks off is refused: how much of it the parser would still see depends on its read sizes.
fn check_deflated(compressed: &[u8]) -> Result<(), String> {
    use std::io::Read;
    let mut inflated = Vec::new();
    let limit = MAX_INFLATED as u64 + 1;
    flate2::read::DeflateDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut inflated)
        .map_err(|e| format!("the deflated data set cannot be inflated: {e}"))?;
    if inflated.len() > MAX_INFLATED {
        return Err(format!("the deflated data set inflates to more than {} MiB", MAX_INFLATED >> 20));
    }
    Walk { bytes: &inflated, pos: 0, depth: 0 }.data_set(None, EXPLICIT_LE).map(drop)
}

/// Checks a bare data set (no file meta group) in the given encoding.
pub(super) fn check_bare(bytes: &[u8], explicit: bool) -> Result<(), String> {
    let encoding = Encoding { explicit, big_endian: false };
    Walk { bytes, pos: 0, depth: 0 }.data_set(None, encoding).map(drop)
}

/// Where the walk goes next; `Stop` ends it without a verdict (the parser decides).
#[derive(PartialEq)]
enum Flow {
    Continue,
    Stop,
}

struct Header {
    tag: Tag,
    vr: Option<VR>,
    length: u32,
}

struct Walk<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Walk<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn u16(&mut self, big_endian: bool) -> Option<u16> {
        let b: [u8; 2] = self.bytes.get(self.pos..self.pos + 2)?.try_into().ok()?;
        self.pos += 2;
        Some(if big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }

    fn u32(&mut self, big_endian: bool) -> Option<u32> {
        let b: [u8; 4] = self.bytes.get(self.pos..self.pos + 4)?.try_into().ok()?;
        self.pos += 4;
        Some(if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    fn tag(&mut self, big_endian: bool) -> Option<Tag> {
        Some(Tag(self.u16(big_endian)?, self.u16(big_endian)?))
    }

    /// An element header; `None` where the bytes end. The VR as dicom-parser decides it: in explicit
    /// VR a code that is not one reads as UN (two reserved bytes and a 4-byte length); in implicit
    /// VR pixel and overlay data are OW, other tags the dictionary's VR, unknown ones UN.
    fn header(&mut self, encoding: Encoding) -> Option<Header> {
        let tag = self.tag(encoding.big_endian)?;
        if tag.group() == 0xFFFE {
            // Items and delimiters have no VR in any encoding.
            return Some(Header { tag, vr: None, length: self.u32(encoding.big_endian)? });
        }
        if !encoding.explicit {
            let is_pixels = tag == PIXEL_DATA || (tag.group() >> 8 == 0x60 && tag.element() == 0x3000);
            let vr = match StandardDataDictionary.by_tag(tag) {
                _ if is_pixels => VR::OW,
                Some(entry) => entry.vr().relaxed(),
                None => VR::UN,
            };
            return Some(Header { tag, vr: Some(vr), length: self.u32(false)? });
        }
        let code = self.bytes.get(self.pos..self.pos + 2)?;
        let vr = VR::from_binary([code[0], code[1]]).unwrap_or(VR::UN);
        self.pos += 2;
        let length = if has_long_length(vr) {
            self.pos += 2;
            self.u32(encoding.big_endian)?
        } else {
            u32::from(self.u16(encoding.big_endian)?)
        };
        Some(Header { tag, vr: Some(vr), length })
    }

    /// Where a defined-length value that starts here ends, if the file holds all of it.
    fn value_end(&self, tag: Tag, length: u32) -> Result<usize, String> {
        let remaining = self.remaining();
        if length as usize > remaining {
            return Err(format!(
                "element ({:04X},{:04X}) declares {length} bytes but only {remaining} are left in the file",
                tag.group(),
                tag.element()
            ));
        }
        Ok(self.pos + length as usize)
    }

    fn skip(&mut self, tag: Tag, length: u32) -> Result<(), String> {
        self.pos = self.value_end(tag, length)?;
        Ok(())
    }

    /// The file meta group (explicit VR little endian) as dicom-object reads it: the group length
    /// first, then elements until that many bytes are read, whatever their group. Returns the
    /// transfer syntax it names; `None` where the parser will refuse the group itself.
    fn meta_group(&mut self) -> Result<Option<String>, String> {
        let Some(first) = self.header(EXPLICIT_LE) else { return Ok(None) };
        if first.tag != GROUP_LENGTH || first.length != 4 {
            return Ok(None);
        }
        let Some(group_length) = self.u32(false) else { return Ok(None) };
        let mut ts = None;
        let mut read = 0u32;
        while read < group_length {
            let header_start = self.pos;
            let Some(header) = self.header(EXPLICIT_LE) else { return Ok(None) };
            if header.length == UNDEFINED {
                return Ok(None);
            }
            let value_start = self.pos;
            self.skip(header.tag, header.length)?;
            if header.tag == TRANSFER_SYNTAX {
                let text = String::from_utf8_lossy(&self.bytes[value_start..self.pos]);
                ts = Some(text.trim_end_matches(['\0', ' ']).trim().to_string());
            }
            read = read.saturating_add((self.pos - header_start) as u32);
        }
        Ok(ts)
    }

    /// Elements until `end` (a defined-length item), an item delimiter, or the end of the file.
    /// As in the parser, a stray item delimiter outside any item is ignored, and other item or
    /// delimiter tags in a data set are read as elements with their length.
    fn data_set(&mut self, end: Option<usize>, encoding: Encoding) -> Result<Flow, String> {
        let in_item = self.depth > 0;
        while end.is_none_or(|end| self.pos < end) && self.remaining() > 0 {
            let Some(header) = self.header(encoding) else { return Ok(Flow::Stop) };
            match header.tag {
                ITEM_END if in_item => return Ok(Flow::Continue),
                ITEM_END => continue,
                _ => {}
            }
            let flow = match (header.length, header.vr) {
                (UNDEFINED, _) if header.tag == PIXEL_DATA => self.fragments()?,
                // The parser reads every other undefined length as a sequence, in the same encoding.
                (UNDEFINED, _) => self.sequence(None, encoding)?,
                (length, Some(VR::SQ)) => {
                    let end = self.value_end(header.tag, length)?;
                    let flow = self.sequence(Some(end), encoding)?;
                    self.pos = end;
                    flow
                }
                (length, vr) => {
                    self.primitive_value(&header, vr, length, in_item)?;
                    Flow::Continue
                }
            };
            if flow == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    /// Skips a defined-length value. The parser reads binary VRs as whole numbers and leaves the
    /// rest of a length that is not a multiple to be read as the next header while counting it as
    /// read: everything after would be misread, so such a value is refused unless it ends the file.
    fn primitive_value(&mut self, header: &Header, vr: Option<VR>, length: u32, in_item: bool) -> Result<(), String> {
        let parsed = parsed_length(vr, length);
        if parsed != length && (in_item || self.remaining() != length as usize) {
            let vr = vr.map_or("UN", |vr| vr.to_string());
            return Err(format!(
                "element ({:04X},{:04X}) has VR {vr} but a length of {length} bytes, not a whole number of values",
                header.tag.group(),
                header.tag.element()
            ));
        }
        self.skip(header.tag, length)
    }

    /// Items until `end` (a defined-length sequence) or a sequence delimiter.
    fn sequence(&mut self, end: Option<usize>, encoding: Encoding) -> Result<Flow, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("sequences nested more than {MAX_DEPTH} deep"));
        }
        while end.is_none_or(|end| self.pos < end) {
            let Some(tag) = self.tag(encoding.big_endian) else { return Ok(Flow::Stop) };
            let Some(length) = self.u32(encoding.big_endian) else { return Ok(Flow::Stop) };
            match tag {
                SEQUENCE_END => break,
                ITEM if length == UNDEFINED => {
                    if self.data_set(None, encoding)? == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                }
                ITEM => {
                    let item_end = self.value_end(tag, length)?;
                    if self.data_set(Some(item_end), encoding)? == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                    self.pos = item_end;
                }
                // The parser takes it as the end of the sequence, then reads what follows as items.
                ITEM_END => return Err("an item delimiter where a sequence item should start".to_string()),
                _ => return Ok(Flow::Stop),
            }
        }
        self.depth -= 1;
        Ok(Flow::Continue)
    }

    /// Encapsulated pixel data: defined-length fragments until the sequence delimiter.
    /// The first item is the offset table, which the parser reads as whole 4-byte offsets.
    fn fragments(&mut self) -> Result<Flow, String> {
        let mut first = true;
        loop {
            let Some(tag) = self.tag(false) else { return Ok(Flow::Stop) };
            let Some(length) = self.u32(false) else { return Ok(Flow::Stop) };
            match tag {
                SEQUENCE_END => return Ok(Flow::Continue),
                ITEM if first && length != UNDEFINED && length % 4 != 0 => {
                    return Err(format!("the pixel data's offset table has {length} bytes, not whole 4-byte offsets"));
                }
                ITEM if length != UNDEFINED => self.skip(tag, length)?,
                ITEM_END => return Err("an item delimiter among the pixel data fragments".to_string()),
                _ => return Ok(Flow::Stop),
            }
            first = false;
        }
    }
}

/// The bytes dicom-parser consumes for a defined-length value: a whole number of numbers for the
/// binary VRs (a US value of 3 bytes leaves its last byte to be read as the next header), the
/// declared length for the rest.
fn parsed_length(vr: Option<VR>, length: u32) -> u32 {
    use VR::*;
    let size = match vr {
        Some(US | OW | SS) => 2,
        Some(AT | FL | OF | SL | UL | OL) => 4,
        Some(FD | OD | SV | OV | UV) => 8,
        _ => 1,
    };
    length / size * size
}

/// VRs whose explicit header has two reserved bytes and a 4-byte length.
fn has_long_length(vr: VR) -> bool {
    use VR::*;
    matches!(vr, OB | OD | OF | OL | OV | OW | SQ | SV | UC | UN | UR | UT | UV)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit_element(tag: (u16, u16), vr: &[u8; 2], value: &[u8], declared: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(tag.0.to_le_bytes());
        out.extend(tag.1.to_le_bytes());
        out.extend(vr);
        let length = declared.unwrap_or(value.len() as u32);
        if has_long_length(VR::from_binary(*vr).unwrap()) {
            out.extend([0, 0]);
            out.extend(length.to_le_bytes());
        } else {
            out.extend((length as u16).to_le_bytes());
        }
        out.extend(value);
        out
    }

    /// An item header of undefined length followed by `content` (no delimiter).
    fn undefined_length_item(content: &[u8]) -> Vec<u8> {
        let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
        item.extend(UNDEFINED.to_le_bytes());
        item.extend(content);
        item
    }

    #[test]
    fn lengths_that_fit_pass() {
        let mut data = explicit_element((0x0008, 0x0060), b"CS", b"CT", None);
        data.extend(explicit_element((0x0028, 0x0010), b"US", &4u16.to_le_bytes(), None));
        data.extend(explicit_element((0x7FE0, 0x0010), b"OB", &[0; 16], None));
        assert_eq!(check_bare(&data, true), Ok(()));
    }

    #[test]
    fn a_value_longer_than_the_file_is_refused() {
        let mut data = explicit_element((0x0008, 0x0060), b"CS", b"CT", None);
        data.extend(explicit_element((0x7FE0, 0x0010), b"OB", &[0; 16], Some(2_000_000_000)));
        let err = check_bare(&data, true).unwrap_err();
        assert!(err.contains("(7FE0,0010) declares 2000000000 bytes"), "{err}");
    }

    #[test]
    fn lengths_inside_sequence_items_are_checked() {
        let inner = explicit_element((0x0008, 0x0100), b"SH", b"AB", Some(60_000));
        let mut item = undefined_length_item(&inner);
        item.extend([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        item.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let data = explicit_element((0x0008, 0x1032), b"SQ", &item, Some(UNDEFINED));
        let err = check_bare(&data, true).unwrap_err();
        assert!(err.contains("(0008,0100) declares 60000 bytes"), "{err}");
    }

    #[test]
    fn implicit_lengths_are_checked() {
        let mut data = Vec::new();
        data.extend([0x08, 0x00, 0x60, 0x00]);
        data.extend(1_500_000_000u32.to_le_bytes());
        data.extend(b"CT");
        assert!(check_bare(&data, false).is_err());
    }

    #[test]
    fn an_unknown_vr_code_reads_as_un_with_a_long_length() {
        // "ZZ" is no VR: dicom-parser reads two reserved bytes and a 4-byte length after it.
        let mut data = explicit_element((0x0008, 0x0060), b"CS", b"CT", None);
        data.extend([0x09, 0x00, 0x10, 0x10, b'Z', b'Z', 0, 0]);
        data.extend(1_179_000_000u32.to_le_bytes());
        data.extend([0; 8]);
        let err = check_bare(&data, true).unwrap_err();
        assert!(err.contains("(0009,1010) declares 1179000000 bytes"), "{err}");
    }

    #[test]
    fn a_stray_item_delimiter_does_not_end_the_walk() {
        let mut data = explicit_element((0x0008, 0x0060), b"CS", b"CT", None);
        data.extend([0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0]);
        data.extend(explicit_element((0x0010, 0x0010), b"PN", b"AB", Some(40_000)));
        assert!(check_bare(&data, true).is_err());
    }

    #[test]
    fn an_undefined_length_on_any_vr_is_walked_as_a_sequence() {
        let inner = explicit_element((0x0008, 0x0100), b"SH", b"AB", Some(60_000));
        let item = undefined_length_item(&inner);
        let data = explicit_element((0x0009, 0x0010), b"OB", &item, Some(UNDEFINED));
        assert!(check_bare(&data, true).is_err());
    }

    fn file_with_meta(group_length: u32, meta: &[u8], data_set: &[u8]) -> Vec<u8> {
        let mut out = b"DICM".to_vec();
        out.extend(explicit_element((0x0002, 0x0000), b"UL", &group_length.to_le_bytes(), None));
        out.extend(meta);
        out.extend(data_set);
        out
    }

    #[test]
    fn the_meta_group_ends_where_its_group_length_says() {
        let ts = explicit_element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2\0", None);
        // The group length covers the transfer syntax only; what follows is implicit VR.
        let mut data_set = vec![0x08, 0x00, 0x60, 0x00];
        data_set.extend(1_500_000_000u32.to_le_bytes());
        data_set.extend(b"CT");
        let file = file_with_meta(ts.len() as u32, &ts, &data_set);
        assert!(check_file(&file).is_err());
        let mut fine = vec![0x08, 0x00, 0x60, 0x00];
        fine.extend(2u32.to_le_bytes());
        fine.extend(b"CT");
        assert_eq!(check_file(&file_with_meta(ts.len() as u32, &ts, &fine)), Ok(()));
    }

    #[test]
    fn a_broken_deflate_stream_is_refused() {
        let ts = explicit_element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2.1.99", None);
        let broken = [0xFF; 32];
        let err = check_file(&file_with_meta(ts.len() as u32, &ts, &broken)).unwrap_err();
        assert!(err.contains("cannot be inflated"), "{err}");
    }

    #[test]
    fn a_deflated_data_set_is_walked_inflated() {
        use std::io::Write;
        let deflate = |data: &[u8]| {
            let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        let ts = explicit_element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2.1.99", None);
        let mut data_set = explicit_element((0x0008, 0x0060), b"CS", b"CT", None);
        assert_eq!(check_file(&file_with_meta(ts.len() as u32, &ts, &deflate(&data_set))), Ok(()));
        data_set.extend(explicit_element((0x7FE0, 0x0010), b"OB", &[0; 16], Some(3_166_485_692)));
        let err = check_file(&file_with_meta(ts.len() as u32, &ts, &deflate(&data_set))).unwrap_err();
        assert!(err.contains("(7FE0,0010) declares 3166485692 bytes"), "{err}");
    }

    #[test]
    fn a_binary_value_that_is_not_whole_numbers_is_refused_unless_it_ends_the_file() {
        // AT with 2 bytes: the parser would read no tag and take those 2 bytes as the start of
        // the next header.
        let mut data = explicit_element((0x0028, 0x0002), b"AT", &[0x10, 0x00], None);
        data.extend(explicit_element((0x0008, 0x0060), b"CS", b"CT", None));
        let err = check_bare(&data, true).unwrap_err();
        assert!(err.contains("(0028,0002) has VR AT but a length of 2 bytes"), "{err}");
        let mut last = explicit_element((0x0008, 0x0060), b"CS", b"CT", None);
        last.extend(explicit_element((0x7FE0, 0x0010), b"OW", &[0; 5], None));
        assert_eq!(check_bare(&last, true), Ok(()));
        assert_eq!(parsed_length(Some(VR::US), 3), 2);
        assert_eq!(parsed_length(Some(VR::FD), 12), 8);
        assert_eq!(parsed_length(Some(VR::OB), 3), 3);
    }

    #[test]
    fn an_item_tag_in_a_data_set_is_read_as_an_element_with_its_length() {
        let mut data = explicit_element((0x0008, 0x0060), b"CS", b"CT", None);
        data.extend([0xFE, 0xFF, 0x00, 0xE0]);
        data.extend(1_921_556_143u32.to_le_bytes());
        let err = check_bare(&data, true).unwrap_err();
        assert!(err.contains("(FFFE,E000) declares 1921556143 bytes"), "{err}");
    }

    #[test]
    fn an_offset_table_of_partial_offsets_is_refused() {
        let mut fragments = vec![0xFE, 0xFF, 0x00, 0xE0, 6, 0, 0, 0, 1, 2, 3, 4, 5, 6];
        fragments.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let data = explicit_element((0x7FE0, 0x0010), b"OB", &fragments, Some(UNDEFINED));
        let err = check_bare(&data, true).unwrap_err();
        assert!(err.contains("offset table has 6 bytes"), "{err}");
    }
}
