//! What the app remembers between runs (serde JSON in the user's config folder), and where it
//! keeps work in progress. A broken settings file is set aside, never fatal.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::backend::BackendKind;

const RECENT: usize = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub recent_files: Vec<PathBuf>,
    pub recent_folders: Vec<PathBuf>,
    /// Where masks are exported; `None` = next to each image as `<stem>_mask.png`.
    pub export_dir: Option<PathBuf>,
    pub brush_radius: f32,
    pub opacity: f32,
    pub show_mask: bool,
    /// The backend the user chose for the AI; `None` = automatic (see `AutomaticBackend`).
    /// (Named anew so that the CPU saved by earlier versions as a default is not kept as a choice.)
    pub engine: Option<BackendKind>,
    /// The De-LightSAM record for automatic proposals; `None` = the shipped model.
    pub auto_model: Option<PathBuf>,
    /// The modality chosen last for files that do not name one.
    pub modality: String,
    /// Models trained in the app (their `best.bpk`), newest first, for the model menu.
    pub trained_models: Vec<PathBuf>,
    /// Where the Trainer tab trains.
    pub train_backend: BackendKind,
    /// The label value (1–255) that brush, fill, lasso and AI results write.
    pub active_label: u8,
    /// Brush, fill, lasso and AI results change only background and the active label's
    /// pixels, never another label's.
    pub protect_other_labels: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            recent_files: Vec::new(),
            recent_folders: Vec::new(),
            export_dir: None,
            brush_radius: 8.0,
            opacity: 0.45,
            show_mask: true,
            engine: None,
            auto_model: None,
            modality: "dermoscopy".into(),
            trained_models: Vec::new(),
            train_backend: BackendKind::Cpu,
            active_label: 1,
            protect_other_labels: true,
        }
    }
}

impl Settings {
    /// The settings at `path`: defaults when there are none; when the file is broken, defaults
    /// plus a warning for the user (the broken file is set aside, see [`set_aside_damaged`]).
    pub fn load(path: &Path) -> (Self, Option<String>) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Self::default(), None),
            Err(e) => return (Self::default(), Some(format!("cannot read the settings {}: {e}; using defaults", path.display()))),
        };
        match serde_json::from_str::<Self>(&text) {
            Ok(settings) => (settings.sanitised(), None),
            Err(e) => {
                let warning = set_aside_damaged(path, "settings file", &e).unwrap_or_else(|warning| warning);
                (Self::default(), Some(format!("{warning}; using defaults")))
            }
        }
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::imaging::write_atomic_creating_folder(path, json.as_bytes())
    }

    /// Values a hand-edited file could put out of range, brought back in.
    fn sanitised(mut self) -> Self {
        self.brush_radius = if self.brush_radius.is_finite() { self.brush_radius.clamp(0.5, 500.0) } else { 8.0 };
        self.opacity = if self.opacity.is_finite() { self.opacity.clamp(0.0, 1.0) } else { 0.45 };
        self.recent_files.truncate(RECENT);
        self.recent_folders.truncate(RECENT);
        self
    }

    pub fn remember_file(&mut self, path: &Path) {
        remember(&mut self.recent_files, path);
    }

    pub fn remember_folder(&mut self, path: &Path) {
        remember(&mut self.recent_folders, path);
    }

    /// Adds a trained model to the model menu (kept however many there are).
    pub fn remember_model(&mut self, path: &Path) {
        self.trained_models.retain(|p| p != path);
        self.trained_models.insert(0, path.to_path_buf());
    }
}

fn remember(list: &mut Vec<PathBuf>, path: &Path) {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    list.retain(|p| *p != path);
    list.insert(0, path);
    list.truncate(RECENT);
}

/// Moves a file the app cannot read out of the way so that a fresh one can take its place,
/// never deleting it: to `<name>.damaged-<unix seconds>` beside it. Ok: the warning for the
/// user, naming both; Err: the warning when it could not be moved (it is left as it is).
pub(crate) fn set_aside_damaged(path: &Path, what: &str, problem: &dyn std::fmt::Display) -> Result<String, String> {
    let damaged = format!("the {what} {} is damaged ({problem})", path.display());
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut kept = path.with_file_name(format!("{name}.damaged-{seconds}"));
    let mut n = 1;
    while kept.symlink_metadata().is_ok() {
        n += 1;
        kept = path.with_file_name(format!("{name}.damaged-{seconds}-{n}"));
    }
    match std::fs::rename(path, &kept) {
        Ok(()) => Ok(format!("{damaged}; set aside as {}", kept.display())),
        Err(e) => Err(format!("{damaged} and could not be set aside: {e}")),
    }
}

/// Where the app keeps its files.
#[derive(Debug, Clone)]
pub struct AppPaths {
    pub settings: PathBuf,
    /// Work-in-progress masks, one per image and frame.
    pub autosave: PathBuf,
    /// The list of masks exported in the app (for training on them).
    pub exports: PathBuf,
    /// Trainer tab runs, one folder each.
    pub runs: PathBuf,
    /// The fast recipe's embedding cache.
    pub cache: PathBuf,
    /// The welcome screen's sample images, written here when first opened.
    pub samples: PathBuf,
    /// Crash reports (app/crash.rs).
    pub crashes: PathBuf,
}

impl AppPaths {
    /// The user's config and data folders (XDG on Linux), or `./.delightsam` if there are none.
    pub fn for_user() -> Self {
        match directories::ProjectDirs::from("org", "De-LightSAM", "delightsam") {
            Some(dirs) => Self {
                settings: dirs.config_dir().join("settings.json"),
                autosave: dirs.data_local_dir().join("autosave"),
                exports: dirs.data_local_dir().join("exports.json"),
                runs: dirs.data_local_dir().join("runs"),
                cache: crate::train::cache::default_root(),
                samples: dirs.data_local_dir().join("samples"),
                crashes: dirs.data_local_dir().join("crashes"),
            },
            None => Self::in_folder(Path::new(".delightsam")),
        }
    }

    /// Everything under one folder (tests, portable installs).
    pub fn in_folder(dir: &Path) -> Self {
        Self {
            settings: dir.join("settings.json"),
            autosave: dir.join("autosave"),
            exports: dir.join("exports.json"),
            runs: dir.join("runs"),
            cache: dir.join("cache"),
            samples: dir.join("samples"),
            crashes: dir.join("crashes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_a_damaged_file_gives_defaults_and_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config/settings.json");
        assert_eq!(Settings::load(&path), (Settings::default(), None));
        let mut settings = Settings { brush_radius: 12.0, engine: Some(BackendKind::Wgpu), ..Settings::default() };
        settings.remember_file(Path::new("/nonexistent/a.png"));
        settings.remember_file(Path::new("/nonexistent/b.png"));
        settings.remember_file(Path::new("/nonexistent/a.png"));
        assert_eq!(settings.recent_files, [PathBuf::from("/nonexistent/a.png"), PathBuf::from("/nonexistent/b.png")]);
        settings.save(&path).unwrap();
        assert_eq!(Settings::load(&path), (settings, None));

        std::fs::write(&path, "{ \"brush_radius\": ").unwrap();
        let (loaded, warning) = Settings::load(&path);
        assert_eq!(loaded, Settings::default());
        let warning = warning.expect("a warning");
        assert!(warning.contains("settings.json") && warning.contains("damaged"), "{warning}");
        let kept = set_aside_files(&path);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), "{ \"brush_radius\": ", "kept as it was");
        assert!(warning.contains(&*kept[0].to_string_lossy()), "{warning}");

        std::fs::write(&path, "{ \"opacity\": 7.0, \"unknown\": 1 }").unwrap();
        assert_eq!(Settings::load(&path).0.opacity, 1.0);
    }

    /// The files `path` was set aside as.
    fn set_aside_files(path: &Path) -> Vec<PathBuf> {
        let prefix = format!("{}.damaged-", path.file_name().unwrap().to_string_lossy());
        let mut found: Vec<PathBuf> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix))
            .collect();
        found.sort();
        found
    }

    #[test]
    fn a_damaged_file_is_set_aside_never_over_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exports.json");
        for text in ["first", "second"] {
            std::fs::write(&path, text).unwrap();
            let warning = set_aside_damaged(&path, "export list", &"bad JSON").unwrap();
            assert!(warning.starts_with(&format!("the export list {} is damaged (bad JSON); set aside as", path.display())), "{warning}");
            assert!(!path.exists());
        }
        let kept: Vec<String> = set_aside_files(&path).iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
        assert_eq!(kept.len(), 2);
        assert!(kept.contains(&"first".to_string()) && kept.contains(&"second".to_string()), "{kept:?}");

        let warning = set_aside_damaged(&dir.path().join("missing.json"), "export list", &"bad JSON").unwrap_err();
        assert!(warning.contains("could not be set aside"), "{warning}");
    }
}
