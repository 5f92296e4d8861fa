//! The label table of one study: per label value (1–255) its name, colour, visibility and
//! opacity. Labels not in the table show with their default name and colour. Kept as JSON beside
//! the study's autosaves, and used for the overlay, the DICOM SEG's segment names and colours,
//! and the label description written beside an exported NIfTI.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::imaging::dicom_seg::default_rgb;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelInfo {
    pub value: u8,
    pub name: String,
    pub rgb: [u8; 3],
    pub visible: bool,
    /// Multiplies the overlay opacity for this label (0–1).
    pub opacity: f32,
}

impl LabelInfo {
    pub fn default_for(value: u8) -> Self {
        Self { value, name: format!("Label {value}"), rgb: default_rgb(value), visible: true, opacity: 1.0 }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelTable {
    /// Sorted by value, one entry per value.
    labels: Vec<LabelInfo>,
}

impl LabelTable {
    /// The entry of `value` (its defaults when the table has none).
    pub fn get(&self, value: u8) -> LabelInfo {
        self.labels.iter().find(|l| l.value == value).cloned().unwrap_or_else(|| LabelInfo::default_for(value))
    }

    /// The entry of `value`, added with its defaults when missing.
    pub fn entry(&mut self, value: u8) -> &mut LabelInfo {
        let at = match self.labels.binary_search_by_key(&value, |l| l.value) {
            Ok(at) => at,
            Err(at) => {
                self.labels.insert(at, LabelInfo::default_for(value));
                at
            }
        };
        &mut self.labels[at]
    }

    /// The values with an entry.
    pub fn values(&self) -> impl Iterator<Item = u8> + '_ {
        self.labels.iter().map(|l| l.value)
    }

    /// Overlay colour (RGB 0–1) and strength (0 = hidden) per label value; index 0 is background.
    pub fn overlay(&self) -> [[f32; 4]; 256] {
        let mut lut = [[0.0; 4]; 256];
        for (value, slot) in lut.iter_mut().enumerate().skip(1) {
            let info = self.get(value as u8);
            let [r, g, b] = info.rgb.map(|c| f32::from(c) / 255.0);
            *slot = [r, g, b, if info.visible { info.opacity.clamp(0.0, 1.0) } else { 0.0 }];
        }
        lut
    }

    /// The table's file beside an autosave (`…-f0.png` → `…-labels.json`).
    pub fn path_beside(autosave: &Path) -> PathBuf {
        let name = autosave.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = name.rsplit_once("-f").map_or(name.as_str(), |(stem, _)| stem);
        autosave.with_file_name(format!("{stem}-labels.json"))
    }

    /// The saved table: `None` when there is none; Err: a warning (the file is kept, defaults used).
    pub fn load(path: &Path) -> Result<Option<Self>, String> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(|mut table: Self| {
                    table.labels.retain(|l| l.value != 0);
                    table.labels.sort_by_key(|l| l.value);
                    table.labels.dedup_by_key(|l| l.value);
                    Some(table)
                })
                .map_err(|e| format!("label table {} is damaged ({e}); default names and colours are used", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read the label table {}: {e}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        crate::imaging::write_atomic_creating_folder(path, &json).map_err(|e| format!("cannot save the label table to {}: {e}", path.display()))
    }

    /// An ITK-SNAP label description (also read by 3D Slicer's colour-table import) for `values`.
    pub fn itk_snap_description(&self, values: &[u8]) -> String {
        let mut text = String::from("# ITK-SNAP Label Description File, written by De-LightSAM Annotator\n");
        text.push_str("# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL\n");
        text.push_str("    0     0    0    0     0  0  0    \"Clear Label\"\n");
        for &value in values {
            let info = self.get(value);
            let [r, g, b] = info.rgb;
            let name = info.name.replace('"', "'");
            text.push_str(&format!("{value:5} {r:5} {g:4} {b:4} {:5.2} {:2} {:2}    \"{name}\"\n", info.opacity, u8::from(info.visible), 1));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_default_sort_and_round_trip() {
        let mut table = LabelTable::default();
        assert_eq!(table.get(2).name, "Label 2");
        table.entry(7).name = "spleen".into();
        table.entry(2).visible = false;
        table.entry(7).opacity = 0.5;
        assert_eq!(table.values().collect::<Vec<_>>(), [2, 7]);
        let lut = table.overlay();
        assert_eq!(lut[2][3], 0.0, "hidden");
        assert_eq!(lut[7][3], 0.5);
        assert_eq!(lut[1][3], 1.0, "not in the table: shown");
        assert_eq!(lut[0], [0.0; 4], "background");

        let dir = tempfile::tempdir().unwrap();
        let path = LabelTable::path_beside(&dir.path().join("0123abcd-f12.png"));
        assert_eq!(path.file_name().unwrap(), "0123abcd-labels.json");
        assert_eq!(LabelTable::load(&path), Ok(None));
        table.save(&path).unwrap();
        assert_eq!(LabelTable::load(&path), Ok(Some(table.clone())));
        std::fs::write(&path, b"{ not json").unwrap();
        assert!(LabelTable::load(&path).unwrap_err().contains("damaged"));

        let description = table.itk_snap_description(&[2, 7]);
        assert!(description.contains("    7   240   50  230  0.50  1  1    \"spleen\""), "{description}");
        assert!(description.contains("\"Label 2\""));
    }
}
