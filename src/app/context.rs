//! What both tabs share: the settings, where files go, the status line, the AI engine, the
//! facts about model files (read off the UI thread), and the queue of commands one tab sends
//! the shell (use a model, switch tab). Tabs get `&mut Shared` in every call; they never know
//! about each other.

use std::path::{Path, PathBuf};

use eframe::egui_wgpu::wgpu;

use super::settings::{AppPaths, Settings};
use crate::engine::worker::{Request, Worker};
use crate::model::backend::BackendKind;

/// The window's two tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Annotate,
    Train,
}

/// What a tab asks of the shell, done between frames.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    SwitchTab(Tab),
    /// Automatic proposals use this De-LightSAM record (`None`: the shipped model).
    UseModel(Option<PathBuf>),
}

/// The last error (shown until the next successful action) or a passing message, and the
/// warnings about what the app had to do by itself (a damaged file set aside), shown until the
/// user dismisses them.
#[derive(Debug, Default)]
pub struct Status {
    pub error: Option<String>,
    pub message: Option<String>,
    pub warnings: Vec<String>,
}

/// A trained model in the settings' list, as last read from the disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    pub path: PathBuf,
    pub exists: bool,
    /// Its run stopped with epochs left and a checkpoint to continue from.
    pub resumable: bool,
}

pub struct Shared {
    pub settings: Settings,
    pub paths: AppPaths,
    pub status: Status,
    /// The engine thread (models, tensors); its replies are read by the Annotate tab.
    pub engine: Worker,
    pub ctx: egui::Context,
    /// The renderer's GPU, if the window runs on wgpu.
    pub wgpu_adapter: Option<String>,
    /// What the engine runs on unless the user chooses (`settings.engine`).
    pub automatic: AutomaticBackend,
    /// `settings.trained_models` as last checked on the disk: when the list changes or a run
    /// ends, never per frame.
    models: Vec<ModelFile>,
    models_checked_for: Option<Vec<PathBuf>>,
    /// The automatic model's modalities, read from its config when `settings.auto_model`
    /// changes (never per frame), for the modality list.
    modalities: Vec<String>,
    modalities_for: Option<Option<PathBuf>>,
    commands: Vec<Command>,
}

impl Shared {
    pub fn new(
        settings: Settings,
        paths: AppPaths,
        engine: Worker,
        ctx: &egui::Context,
        wgpu_adapter: Option<String>,
        automatic: AutomaticBackend,
    ) -> Self {
        Self {
            settings,
            paths,
            status: Status::default(),
            engine,
            ctx: ctx.clone(),
            wgpu_adapter,
            automatic,
            models: Vec::new(),
            models_checked_for: None,
            modalities: Vec::new(),
            modalities_for: None,
            commands: Vec::new(),
        }
    }

    pub fn send(&mut self, command: Command) {
        self.commands.push(command);
        self.ctx.request_repaint();
    }

    pub(super) fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    pub fn set_error(&mut self, error: impl Into<String>) {
        self.status.error = Some(error.into());
    }

    pub fn set_message(&mut self, message: impl Into<String>) {
        self.status.message = Some(message.into());
    }

    pub fn warn(&mut self, warning: impl Into<String>) {
        let warning = warning.into();
        log::warn!("{warning}");
        self.status.warnings.push(warning);
    }

    pub fn save_settings(&mut self) {
        if let Err(e) = self.settings.save(&self.paths.settings) {
            self.set_error(format!("cannot save the settings to {}: {e}", self.paths.settings.display()));
        }
    }

    /// The backend the engine runs on: the user's choice, else the automatic one.
    pub fn engine_backend(&self) -> BackendKind {
        self.settings.engine.unwrap_or(self.automatic.backend)
    }

    /// Tells the engine the backend and model the settings name (it reloads on next use).
    pub fn configure_engine(&self) {
        self.engine.send(Request::Configure { backend: self.engine_backend(), auto_model: self.settings.auto_model.clone() });
    }

    /// The trained models as last checked (files that exist, runs that can be resumed).
    pub fn model_files(&self) -> &[ModelFile] {
        &self.models
    }

    /// The trained models whose files exist.
    pub fn existing_models(&self) -> impl Iterator<Item = &Path> {
        self.models.iter().filter(|m| m.exists).map(|m| m.path.as_path())
    }

    /// Reads the model files' state again (a run ended: its checkpoints changed on disk).
    pub fn recheck_models(&mut self) {
        self.models_checked_for = None;
        self.check_models_if_changed();
    }

    /// The modalities the automatic model knows (its config beside the record; the built-in
    /// names for a LiteMedSAM record or an unreadable config).
    pub fn modality_names(&mut self) -> &[String] {
        if self.modalities_for.as_ref() != Some(&self.settings.auto_model) {
            let record = self.settings.auto_model.clone().unwrap_or_else(crate::model::weights::default_starting_record);
            let names = (crate::model::weights::is_delightsam(&record))
                .then(|| crate::model::weights::load_delightsam_config(&record).ok())
                .flatten()
                .map(|config| config.modalities.names)
                .filter(|names| !names.is_empty());
            self.modalities = names.unwrap_or_else(|| crate::model::modality::BUILT_IN.iter().map(|n| n.to_string()).collect());
            self.modalities_for = Some(self.settings.auto_model.clone());
        }
        &self.modalities
    }

    /// Checks the model files when the list differs from the one last checked (a comparison
    /// in memory; the disk is read only when it changed).
    pub(super) fn check_models_if_changed(&mut self) {
        if self.models_checked_for.as_ref() != Some(&self.settings.trained_models) {
            let list = self.settings.trained_models.clone();
            self.models = list.iter().cloned().map(check_model).collect();
            self.models_checked_for = Some(list);
        }
    }
}

fn check_model(path: PathBuf) -> ModelFile {
    let exists = path.is_file();
    let resumable = path.parent().is_some_and(|run| crate::train::resumable(run).is_some());
    ModelFile { path, exists, resumable }
}

/// The engine's backend when the user has not chosen one: the GPU (wgpu) when the window's
/// adapter is real hardware; the CPU when it is a software renderer (lavapipe/llvmpipe, WARP,
/// SwiftShader: far slower than the CPU backend) or when the window has no wgpu adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutomaticBackend {
    pub backend: BackendKind,
    /// Why, in words, with the adapter's name.
    pub reason: String,
}

impl AutomaticBackend {
    pub fn for_adapter(adapter: Option<&wgpu::AdapterInfo>) -> Self {
        use wgpu::DeviceType;
        let Some(info) = adapter else {
            let reason = "no GPU adapter: the window does not run on wgpu".into();
            return Self { backend: BackendKind::Cpu, reason };
        };
        let name = &info.name;
        match info.device_type {
            DeviceType::DiscreteGpu | DeviceType::IntegratedGpu | DeviceType::VirtualGpu => {
                Self { backend: BackendKind::Wgpu, reason: format!("GPU: {name}") }
            }
            DeviceType::Cpu => Self {
                backend: BackendKind::Cpu,
                reason: format!("the only GPU adapter, {name}, is a software renderer: the CPU backend is faster"),
            },
            DeviceType::Other => Self {
                backend: BackendKind::Cpu,
                reason: format!("the GPU adapter {name} is of an unknown kind: the CPU backend is the safe choice"),
            },
        }
    }
}
