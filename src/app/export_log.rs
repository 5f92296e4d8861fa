//! The masks exported in this app, remembered (image, frame, mask, modality) so that the Trainer
//! tab can fine-tune on "the masks I exported" wherever they were written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::train::dataset::{Pair, PairList};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportRecord {
    pub image: PathBuf,
    pub frame: u32,
    pub mask: PathBuf,
    pub modality: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ExportLog {
    pub exports: Vec<ExportRecord>,
}

impl ExportLog {
    /// The log at `path`; empty when there is none or it cannot be read.
    pub fn load(path: &Path) -> Self {
        std::fs::read_to_string(path).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default()
    }

    /// Adds (or updates, by mask path) one export and writes the log atomically.
    pub fn record(path: &Path, record: ExportRecord) -> std::io::Result<()> {
        let mut log = Self::load(path);
        log.exports.retain(|r| r.mask != record.mask);
        log.exports.push(record);
        let json = serde_json::to_string_pretty(&log).map_err(std::io::Error::other)?;
        crate::imaging::write_atomic_creating_folder(path, json.as_bytes())
    }

    /// The exports whose image and mask still exist, one list per modality.
    pub fn lists(&self) -> Vec<PairList> {
        let mut by_modality: BTreeMap<&str, Vec<Pair>> = BTreeMap::new();
        for record in self.exports.iter().filter(|r| r.image.is_file() && r.mask.is_file()) {
            let stem = record.mask.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            by_modality.entry(&record.modality).or_default().push(Pair {
                stem,
                image: record.image.clone(),
                mask: record.mask.clone(),
                frame: record.frame,
            });
        }
        by_modality
            .into_iter()
            .map(|(modality, pairs)| PairList { name: format!("masks exported in the app ({modality})"), modality: modality.to_string(), pairs })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_recorded_once_per_mask_and_grouped_by_modality() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("data/exports.json");
        let file = |name: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, b"x").unwrap();
            path
        };
        let record = |image: &str, mask: &str, modality: &str| ExportRecord {
            image: file(image),
            frame: 0,
            mask: file(mask),
            modality: modality.into(),
        };
        ExportLog::record(&log_path, record("a.png", "a_mask.png", "dermoscopy")).unwrap();
        ExportLog::record(&log_path, record("b.png", "b_mask.png", "mr")).unwrap();
        ExportLog::record(&log_path, record("a.png", "a_mask.png", "dermoscopy")).unwrap();
        ExportLog::record(&log_path, record("c.png", "c_mask.png", "dermoscopy")).unwrap();
        std::fs::remove_file(dir.path().join("c_mask.png")).unwrap();
        let lists = ExportLog::load(&log_path).lists();
        let summary: Vec<(String, usize)> = lists.iter().map(|l| (l.modality.clone(), l.pairs.len())).collect();
        assert_eq!(summary, [("dermoscopy".to_string(), 1), ("mr".to_string(), 1)]);
        assert_eq!(lists[0].pairs[0].stem, "a_mask");
    }
}
