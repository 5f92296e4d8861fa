//! The Train tab's form: where the training images come from and the run's settings, turned
//! into a `TrainConfig` (or a clear reason why not).

use std::path::{Path, PathBuf};

use crate::app::export_log::ExportLog;
use crate::model::modality;
use crate::train::dataset::PairList;
use crate::train::{Recipe, TrainConfig};

/// Where training images come from.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A dataset folder (`images/` + `masks/`).
    Folder(PathBuf),
    /// Masks exported in the app, of one modality.
    Exported(PairList),
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceStatus {
    Checking,
    Ready { images: usize },
    Problem(String),
}

#[derive(Debug, Clone)]
pub struct Source {
    pub kind: SourceKind,
    pub modality: String,
    pub status: SourceStatus,
}

impl Source {
    pub fn label(&self) -> String {
        match &self.kind {
            SourceKind::Folder(path) => path.display().to_string(),
            SourceKind::Exported(list) => list.name.clone(),
        }
    }

    fn is_folder(&self, path: &Path) -> bool {
        matches!(&self.kind, SourceKind::Folder(p) if p == path)
    }
}

/// A checked folder: its modality and image count, or its problems.
pub type FolderCheck = (PathBuf, Result<(String, usize), String>);

pub struct TrainForm {
    pub sources: Vec<Source>,
    pub recipe: Recipe,
    pub epochs: usize,
    pub common_epochs: usize,
    pub domain_epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// The model to start from; `None`: the shipped one.
    pub init: Option<PathBuf>,
    pub run_name: String,
    /// A problem with the form (shown above the Start button).
    pub error: Option<String>,
}

impl Default for TrainForm {
    fn default() -> Self {
        Self {
            sources: Vec::new(),
            recipe: Recipe::Fast,
            epochs: 20,
            common_epochs: 2,
            domain_epochs: 2,
            batch_size: 4,
            learning_rate: 5e-4,
            init: None,
            run_name: String::new(),
            error: None,
        }
    }
}

impl TrainForm {
    /// Adds a folder to be checked; false if it is there already.
    pub fn add_folder(&mut self, path: &Path, modality: Option<&str>) -> bool {
        if self.sources.iter().any(|s| s.is_folder(path)) {
            return false;
        }
        self.sources.push(Source {
            kind: SourceKind::Folder(path.to_path_buf()),
            modality: modality.unwrap_or_default().to_string(),
            status: SourceStatus::Checking,
        });
        true
    }

    /// A folder's check came back.
    pub fn checked(&mut self, (path, result): FolderCheck) {
        let Some(source) = self.sources.iter_mut().find(|s| s.is_folder(&path)) else { return };
        match result {
            Ok((modality, images)) => {
                if source.modality.is_empty() {
                    source.modality = modality;
                }
                source.status = SourceStatus::Ready { images };
            }
            Err(problem) => source.status = SourceStatus::Problem(problem),
        }
    }

    /// Adds the masks exported in the app, one source per modality; says how many.
    pub fn add_exported(&mut self, log: &ExportLog) -> String {
        let lists = log.lists();
        if lists.is_empty() {
            return "no exported masks yet: export masks in the Annotate tab (Ctrl+S) first".into();
        }
        let count: usize = lists.iter().map(|l| l.pairs.len()).sum();
        self.sources.retain(|s| !matches!(s.kind, SourceKind::Exported(_)));
        for list in lists {
            let status = SourceStatus::Ready { images: list.pairs.len() };
            self.sources.push(Source { modality: list.modality.clone(), kind: SourceKind::Exported(list), status });
        }
        format!("{count} exported mask(s) added")
    }

    /// What a new run is named after: the first source's modality.
    pub fn name_base(&self) -> String {
        self.sources.first().map(|s| s.modality.as_str()).filter(|m| !m.is_empty()).unwrap_or("model").to_string()
    }

    /// The run's settings from the form, or what is wrong with it.
    pub fn config(&self, runs: &Path, cache: &Path, name: &str) -> Result<TrainConfig, String> {
        if self.sources.is_empty() {
            return Err("add a dataset folder or the exported masks first".into());
        }
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(format!("{name:?} cannot name a run folder"));
        }
        let mut data = Vec::new();
        let mut lists = Vec::new();
        for source in &self.sources {
            let canonical = modality::canonical(&source.modality);
            if !modality::is_usable_name(&canonical) {
                return Err(format!("{}: choose a modality", source.label()));
            }
            if let SourceStatus::Problem(problem) = &source.status {
                return Err(problem.clone());
            }
            match &source.kind {
                SourceKind::Folder(path) => data.push((path.clone(), Some(canonical))),
                SourceKind::Exported(list) => lists.push(PairList { modality: canonical, ..list.clone() }),
            }
        }
        let mut config = TrainConfig::new(data, runs.join(name));
        config.lists = lists;
        config.recipe = self.recipe;
        config.epochs = self.epochs.max(1);
        config.common_epochs = self.common_epochs;
        config.domain_epochs = self.domain_epochs;
        config.batch_size = self.batch_size.max(1);
        config.learning_rate = self.learning_rate;
        config.init = self.init.clone();
        config.cache_dir = cache.to_path_buf();
        Ok(config)
    }
}

/// A run name that is not taken yet under `runs`: `<base>-<n>`. Reads the disk.
pub fn free_name(runs: &Path, base: &str) -> String {
    (1..).map(|n| format!("{base}-{n}")).find(|name| !runs.join(name).exists()).unwrap_or_else(|| base.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_names_runs_and_refuses_what_cannot_train() {
        let runs = tempfile::tempdir().unwrap();
        let mut form = TrainForm::default();
        assert_eq!(form.config(runs.path(), runs.path(), "a").unwrap_err(), "add a dataset folder or the exported masks first");
        assert!(form.add_folder(Path::new("/data/skin"), None));
        assert!(!form.add_folder(Path::new("/data/skin"), Some("mr")), "once per folder");
        assert_eq!(form.name_base(), "model", "no modality known yet");
        assert!(form.config(runs.path(), runs.path(), "a").unwrap_err().contains("choose a modality"));
        form.checked((PathBuf::from("/data/skin"), Ok(("dermoscopy".into(), 12))));
        assert_eq!(form.sources[0].status, SourceStatus::Ready { images: 12 });
        assert_eq!(form.name_base(), "dermoscopy");
        std::fs::create_dir(runs.path().join("dermoscopy-1")).unwrap();
        assert_eq!(free_name(runs.path(), &form.name_base()), "dermoscopy-2");
        assert!(form.config(runs.path(), runs.path(), "../x").is_err());
        let config = form.config(runs.path(), runs.path(), "dermoscopy-2").unwrap();
        assert_eq!(config.out, runs.path().join("dermoscopy-2"));
        form.checked((PathBuf::from("/data/skin"), Err("masks/ is missing".into())));
        assert_eq!(form.config(runs.path(), runs.path(), "b").unwrap_err(), "masks/ is missing");
    }
}
