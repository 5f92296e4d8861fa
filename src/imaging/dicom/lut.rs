//! Lookup tables: the Modality LUT Sequence, palette colour tables (plain and segmented), and the
//! linear rescale, i.e. everything that turns a stored value into a modality value or a colour.

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::attrs;

/// Stored value → modality value (PS3.3 C.11.1), applied before any statistics or display.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ModalityTransform {
    Identity,
    Rescale { slope: f64, intercept: f64 },
    Lut(LookupTable),
}

impl ModalityTransform {
    pub fn apply(&self, values: &mut [f32]) {
        match self {
            Self::Identity => {}
            Self::Rescale { slope, intercept } => {
                for v in values {
                    *v = (f64::from(*v) * slope + intercept) as f32;
                }
            }
            Self::Lut(lut) => {
                for v in values {
                    *v = f32::from(lut.get(*v as i64));
                }
            }
        }
    }

    /// The Modality LUT Sequence's first item, if the file has one.
    pub fn modality_lut(obj: &InMemDicomObject, signed: bool) -> Option<Result<LookupTable, String>> {
        let item = attrs::items(obj, tags::MODALITY_LUT_SEQUENCE).first()?;
        let descriptor = attrs::ints(item, tags::LUT_DESCRIPTOR);
        let data = attrs::bytes(item, tags::LUT_DATA).unwrap_or_default();
        Some(LookupTable::from_descriptor(&descriptor, &data, signed).map_err(|e| format!("Modality LUT Sequence: {e}")))
    }
}

/// A table of `values` for inputs `first_mapped ..`; inputs outside it take the nearest end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LookupTable {
    pub first_mapped: i64,
    /// Bits per entry, from the descriptor (the output range is 0 ..= 2^bits − 1).
    pub bits: u16,
    pub values: Vec<u16>,
}

impl LookupTable {
    /// From a LUT Descriptor (entries, first mapped value, bits per entry) and its data, 8-bit
    /// entries stored one per byte or one per 16-bit word.
    pub fn from_descriptor(descriptor: &[i64], data: &[u8], signed: bool) -> Result<Self, String> {
        let (entries, first_mapped, bits) = parse_descriptor(descriptor, signed)?;
        let words: Vec<u16> = if data.len() == entries {
            data.iter().map(|&b| u16::from(b)).collect()
        } else {
            data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
        };
        if words.len() < entries {
            return Err(format!("the data holds {} entries, the descriptor says {entries}", words.len()));
        }
        Ok(Self { first_mapped, bits, values: words[..entries].to_vec() })
    }

    /// A segmented palette table (PS3.3 C.7.9.2): its 16-bit words expanded to the descriptor's entries.
    pub fn from_segmented(descriptor: &[i64], data: &[u8], signed: bool) -> Result<Self, String> {
        let (entries, first_mapped, bits) = parse_descriptor(descriptor, signed)?;
        let words: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        let mut values = Vec::with_capacity(entries);
        expand_segments(&words, entries, &mut values, 0)?;
        if values.len() < entries {
            return Err(format!("the segments give {} entries, the descriptor says {entries}", values.len()));
        }
        values.truncate(entries);
        Ok(Self { first_mapped, bits, values })
    }

    pub fn get(&self, input: i64) -> u16 {
        let last = self.values.len() as i64 - 1;
        self.values[(input - self.first_mapped).clamp(0, last) as usize]
    }
}

/// (entries, first mapped value, bits). The first value 0 means 65536 entries; the second is SS
/// for signed pixel data, US otherwise (whatever VR the file gave the descriptor).
fn parse_descriptor(descriptor: &[i64], signed: bool) -> Result<(usize, i64, u16), String> {
    let [entries, first, bits] = descriptor[..] else {
        return Err("the LUT descriptor is missing or does not have 3 values".to_string());
    };
    let entries = match entries & 0xFFFF {
        0 => 65536,
        e => e as usize,
    };
    let first = if signed && (32768..65536).contains(&first) { first - 65536 } else { first };
    if !(1..=16).contains(&bits) {
        return Err(format!("the LUT descriptor says {bits} bits per entry"));
    }
    Ok((entries, first, bits as u16))
}

const DISCRETE: u16 = 0;
const LINEAR: u16 = 1;
const INDIRECT: u16 = 2;

/// Appends the segments in `words` to `out`, up to `limit` entries. An indirect segment copies
/// segments found at a byte offset in the same data; it may not itself be indirect (`depth`).
fn expand_segments(words: &[u16], limit: usize, out: &mut Vec<u16>, depth: u8) -> Result<(), String> {
    expand_some_segments(words, limit, out, depth, usize::MAX)
}

fn expand_some_segments(words: &[u16], limit: usize, out: &mut Vec<u16>, depth: u8, max_segments: usize) -> Result<(), String> {
    let truncated = || "a segment runs past the end of the segmented LUT data".to_string();
    let mut at = 0;
    let mut segments = 0;
    while at + 1 < words.len() && segments < max_segments && out.len() < limit {
        let (opcode, length) = (words[at], usize::from(words[at + 1]));
        at += 2;
        match opcode {
            DISCRETE => {
                let values = words.get(at..at + length).ok_or_else(truncated)?;
                out.extend(values.iter().take(limit - out.len()));
                at += length;
            }
            LINEAR => {
                let &end = words.get(at).ok_or_else(truncated)?;
                let &start = out.last().ok_or("a linear segment comes before any value")?;
                out.extend(linear_segment(start, end, length).take(limit - out.len()));
                at += 1;
            }
            INDIRECT => {
                if depth > 0 {
                    return Err("an indirect segment points at another indirect segment".to_string());
                }
                if out.is_empty() {
                    return Err("an indirect segment comes before any value".to_string());
                }
                let offset = words.get(at..at + 2).ok_or_else(truncated)?;
                let byte_offset = usize::from(offset[0]) | usize::from(offset[1]) << 16;
                let target = words.get(byte_offset / 2..).ok_or("an indirect segment points past the data")?;
                expand_some_segments(target, limit, out, depth + 1, length)?;
                at += 2;
            }
            other => return Err(format!("unknown segment opcode {other}")),
        }
        segments += 1;
    }
    Ok(())
}

/// `length` values from just after `start` to `end`, evenly spaced and rounded half to even.
fn linear_segment(start: u16, end: u16, length: usize) -> impl Iterator<Item = u16> {
    let (start, end) = (f64::from(start), f64::from(end));
    let step = (end - start) / length.max(1) as f64;
    let first = start + step;
    let spacing = if length > 1 { (end - first) / (length - 1) as f64 } else { 0.0 };
    (0..length).map(move |k| {
        let value = if k + 1 == length { end } else { first + k as f64 * spacing };
        value.round_ties_even().clamp(0.0, 65535.0) as u16
    })
}

/// Far beyond any real modality's values (HU, SUV, Bq/ml, ...), yet exact enough in an f32.
const LARGEST_MODALITY_VALUE: f64 = 1e9;

/// Whether a linear rescale is usable: finite numbers, a non-zero slope, and the stored range
/// mapped no further than [`LARGEST_MODALITY_VALUE`] (or the stored range itself, for 32-bit data).
pub(crate) fn check_rescale(slope: f64, intercept: f64, stored: (f64, f64)) -> Result<(), String> {
    if !slope.is_finite() || !intercept.is_finite() {
        return Err(format!("Rescale Slope {slope} / Intercept {intercept} are not finite numbers"));
    }
    if slope == 0.0 {
        return Err("Rescale Slope is 0 (every pixel would have the same value)".to_string());
    }
    let extreme = (slope * stored.0 + intercept).abs().max((slope * stored.1 + intercept).abs());
    let stored_extreme = stored.0.abs().max(stored.1.abs());
    if extreme > LARGEST_MODALITY_VALUE.max(stored_extreme) {
        return Err(format!(
            "Rescale Slope {slope} / Intercept {intercept} map the stored values to ±{extreme:.3e}, beyond any real modality"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(values: &[u16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn descriptor_first_value_follows_the_pixel_sign() {
        let data = words(&[7, 8, 9]);
        let lut = LookupTable::from_descriptor(&[3, 63488, 16], &data, true).unwrap();
        assert_eq!(lut.first_mapped, -2048);
        assert_eq!((lut.get(-5000), lut.get(-2047), lut.get(9)), (7, 8, 9));
        let lut = LookupTable::from_descriptor(&[0, 0, 16], &words(&vec![1; 65536]), false).unwrap();
        assert_eq!(lut.values.len(), 65536);
        assert!(LookupTable::from_descriptor(&[4, 0, 16], &data, false).is_err());
    }

    #[test]
    fn segments_expand_as_the_standard_describes() {
        // discrete [0, 10], linear to 40 over 3, indirect: repeat the first (discrete) segment.
        let data = words(&[0, 2, 0, 10, 1, 3, 40, 2, 1, 0, 0]);
        let lut = LookupTable::from_segmented(&[7, 0, 16], &data, false).unwrap();
        assert_eq!(lut.values, vec![0, 10, 20, 30, 40, 0, 10]);
        assert!(LookupTable::from_segmented(&[9, 0, 16], &data, false).is_err(), "too few entries");
    }

    #[test]
    fn broken_segments_are_errors_not_panics() {
        for data in [vec![1, 3, 40], vec![0, 9, 1], vec![2, 1, 0xFFFF, 0xFFFF], vec![7, 1, 1], vec![0, 1, 5, 2, 1, 0, 0], vec![0, 1, 5, 2, 1, 6, 0]] {
            let result = LookupTable::from_segmented(&[8, 0, 16], &words(&data), false);
            assert!(result.is_err(), "{data:?} gave {result:?}");
        }
    }

    #[test]
    fn unusable_rescales_are_named() {
        assert!(check_rescale(f64::NAN, 0.0, (0.0, 4095.0)).is_err());
        assert!(check_rescale(1e308, 0.0, (0.0, 4095.0)).is_err());
        assert!(check_rescale(0.0, 5.0, (0.0, 4095.0)).is_err());
        assert!(check_rescale(1.0, -1024.0, (-32768.0, 32767.0)).is_ok());
        assert!(check_rescale(0.001, 0.0, (0.0, 65535.0)).is_ok());
        assert!(check_rescale(0.5, -100.0, (-2147483648.0, 2147483647.0)).is_ok());
    }
}
