//! The masks exported in this app, remembered (image, frame, mask, modality) so that the Trainer
//! tab can fine-tune on "the masks I exported" wherever they were written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::settings::set_aside_damaged;
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
    /// The log at `path` (empty when there is none), with a warning for the user when the file
    /// was damaged: it is then set aside (renamed, never deleted) and the log starts empty.
    /// Err: the file cannot be read, or is damaged and could not be set aside; it is left as it
    /// is, and must not be written over.
    pub fn load(path: &Path) -> Result<(Self, Option<String>), String> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Self::default(), None)),
            Err(e) => return Err(format!("cannot read the export list {}: {e}", path.display())),
        };
        match serde_json::from_slice(&text) {
            Ok(log) => Ok((log, None)),
            Err(problem) => {
                let warning = set_aside_damaged(path, "export list", &problem)?;
                Ok((Self::default(), Some(format!("{warning}; a new list was started"))))
            }
        }
    }

    /// Adds (or updates, by mask path) one export and writes the log atomically. Ok: the
    /// warning of [`ExportLog::load`] if the old log was damaged.
    pub fn record(path: &Path, record: ExportRecord) -> Result<Option<String>, String> {
        let (mut log, warning) = Self::load(path)?;
        log.exports.retain(|r| r.mask != record.mask);
        log.exports.push(record);
        let json = serde_json::to_string_pretty(&log).map_err(|e| e.to_string())?;
        crate::imaging::write_atomic_creating_folder(path, json.as_bytes())
            .map_err(|e| format!("cannot write the export list {}: {e}", path.display()))?;
        Ok(warning)
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
        for (image, mask, modality) in [("a.png", "a_mask.png", "dermoscopy"), ("b.png", "b_mask.png", "mr"), ("a.png", "a_mask.png", "dermoscopy"), ("c.png", "c_mask.png", "dermoscopy")] {
            assert_eq!(ExportLog::record(&log_path, record(image, mask, modality)), Ok(None));
        }
        std::fs::remove_file(dir.path().join("c_mask.png")).unwrap();
        let lists = ExportLog::load(&log_path).unwrap().0.lists();
        let summary: Vec<(String, usize)> = lists.iter().map(|l| (l.modality.clone(), l.pairs.len())).collect();
        assert_eq!(summary, [("dermoscopy".to_string(), 1), ("mr".to_string(), 1)]);
        assert_eq!(lists[0].pairs[0].stem, "a_mask");
    }

    fn record(dir: &Path, name: &str) -> ExportRecord {
        ExportRecord { image: dir.join(format!("{name}.png")), frame: 0, mask: dir.join(format!("{name}_mask.png")), modality: "ct".into() }
    }

    #[test]
    fn a_damaged_log_is_set_aside_with_a_warning_and_a_new_one_started() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("exports.json");
        for damaged in ["{ \"exports\": [ {\"image\": ", "", "[1, 2]", "\u{0}\u{ff}garbage"] {
            std::fs::write(&log_path, damaged).unwrap();
            let (log, warning) = ExportLog::load(&log_path).unwrap();
            assert!(log.exports.is_empty());
            let warning = warning.expect("a warning");
            assert!(warning.contains("exports.json") && warning.contains("damaged") && warning.contains("set aside as"), "{warning}");
            let kept = warning.split("set aside as ").nth(1).unwrap().split(';').next().unwrap();
            assert_eq!(std::fs::read(kept).unwrap(), damaged.as_bytes(), "kept as it was");
            assert!(!log_path.exists());
        }
        std::fs::write(&log_path, "not json").unwrap();
        let warning = ExportLog::record(&log_path, record(dir.path(), "a")).unwrap();
        assert!(warning.is_some_and(|w| w.contains("damaged")));
        assert_eq!(ExportLog::load(&log_path).unwrap().0.exports, [record(dir.path(), "a")], "the new export is recorded");
        assert_eq!(ExportLog::record(&log_path, record(dir.path(), "b")), Ok(None));
        assert_eq!(ExportLog::load(&log_path).unwrap().0.exports.len(), 2);
    }

    #[test]
    fn a_log_that_cannot_be_read_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("exports.json");
        std::fs::create_dir(&log_path).unwrap();
        std::fs::write(log_path.join("inside"), b"x").unwrap();
        let error = ExportLog::record(&log_path, record(dir.path(), "a")).unwrap_err();
        assert!(error.contains("cannot read the export list") && error.contains("exports.json"), "{error}");
        assert!(log_path.join("inside").is_file(), "not replaced");
    }
}
