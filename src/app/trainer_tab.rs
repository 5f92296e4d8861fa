//! The Trainer tab: fine-tune De-LightSAM on local folders (or on the masks exported in the app)
//! without leaving the window. The run is `train::job::TrainingJob` on its own thread, writing
//! the same checkpoints and `metrics.jsonl` as `delightsam train`; this tab shows its loss and
//! validation Dice as they arrive, an ETA, the best checkpoint, and puts the result one click
//! away in the Annotate tab.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use egui::Color32;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use super::annotator::{AnnotatorApp, Tab};
use super::export_log::ExportLog;
use super::loader::pick_in_background;
use crate::model::modality;
use crate::train::dataset::{self, PairList};
use crate::train::job::{self, JobEvent, TrainBackend, TrainingJob};
use crate::train::{Event, Recipe, Summary, TrainConfig};

const ERROR_COLOR: Color32 = Color32::from_rgb(230, 90, 80);
const OK_COLOR: Color32 = Color32::from_rgb(90, 200, 120);

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
    fn label(&self) -> String {
        match &self.kind {
            SourceKind::Folder(path) => path.display().to_string(),
            SourceKind::Exported(list) => list.name.clone(),
        }
    }
}

/// Time that counts for the ETA: running, not paused.
#[derive(Debug, Default)]
struct ActiveClock {
    total: Duration,
    since: Option<Instant>,
}

impl ActiveClock {
    fn run(&mut self) {
        self.since.get_or_insert_with(Instant::now);
    }

    fn hold(&mut self) {
        if let Some(since) = self.since.take() {
            self.total += since.elapsed();
        }
    }

    fn elapsed(&self) -> Duration {
        self.total + self.since.map_or(Duration::ZERO, |s| s.elapsed())
    }
}

#[derive(Debug, Clone)]
pub enum Phase {
    Starting,
    Preparing { done: usize, total: usize, cached: usize },
    Training,
    Finished(Summary),
    Failed(String),
}

/// One training run, as the tab sees it.
pub struct Run {
    pub name: String,
    pub out: PathBuf,
    pub backend: TrainBackend,
    job: Option<TrainingJob>,
    pub device: Option<String>,
    pub phase: Phase,
    /// Epochs in the whole plan, and those done before this start (a resumed run).
    pub epochs: usize,
    pub resumed_from: usize,
    pub steps_per_epoch: usize,
    pub epoch: usize,
    pub step: usize,
    /// (global step, loss) of every step.
    pub step_losses: Vec<[f64; 2]>,
    /// (global step at the epoch's end, mean loss).
    pub epoch_losses: Vec<[f64; 2]>,
    /// (epoch, validation Dice).
    pub dice: Vec<[f64; 2]>,
    pub best: Option<(usize, f64)>,
    /// Stopped with epochs left and a checkpoint (read once, when the run ends).
    pub resumable: bool,
    clock: ActiveClock,
    steps_this_start: usize,
    training_started: Duration,
    epoch_started: Duration,
    epoch_seconds: Vec<f64>,
}

impl Run {
    fn new(name: String, out: PathBuf, backend: TrainBackend, job: TrainingJob) -> Self {
        let mut clock = ActiveClock::default();
        clock.run();
        Self {
            name,
            out,
            backend,
            job: Some(job),
            device: None,
            phase: Phase::Starting,
            epochs: 0,
            resumed_from: 0,
            steps_per_epoch: 0,
            epoch: 0,
            step: 0,
            step_losses: Vec::new(),
            epoch_losses: Vec::new(),
            dice: Vec::new(),
            best: None,
            resumable: false,
            clock,
            steps_this_start: 0,
            training_started: Duration::ZERO,
            epoch_started: Duration::ZERO,
            epoch_seconds: Vec::new(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.job.as_ref().is_some_and(|j| j.is_paused())
    }

    /// Paused and waiting (no step running).
    pub fn is_parked(&self) -> bool {
        self.job.as_ref().is_some_and(|j| j.is_parked())
    }

    pub fn is_stopping(&self) -> bool {
        self.job.as_ref().is_some_and(|j| j.is_stopping())
    }

    pub fn best_checkpoint(&self) -> PathBuf {
        self.out.join("best.bpk")
    }

    fn set_paused(&mut self, paused: bool) {
        if let Some(job) = &self.job {
            job.set_paused(paused);
            if paused { self.clock.hold() } else { self.clock.run() }
        }
    }

    pub(super) fn stop(&mut self) {
        if let Some(job) = &self.job {
            job.stop();
        }
    }

    /// Reads the job's reports; returns the summary when the run has just ended.
    fn poll(&mut self) -> Option<Result<Summary, String>> {
        let events = self.job.as_ref().map(|j| j.poll()).unwrap_or_default();
        let mut ended = None;
        for event in events {
            if let Some(result) = self.apply(event) {
                ended = Some(result);
            }
        }
        ended
    }

    fn apply(&mut self, event: JobEvent) -> Option<Result<Summary, String>> {
        match event {
            JobEvent::Device(name) => self.device = Some(name),
            JobEvent::Progress(Event::Preparing { done, total, cached }) => self.phase = Phase::Preparing { done, total, cached },
            JobEvent::Progress(Event::Started { epochs, steps_per_epoch, resumed_from, .. }) => {
                self.phase = Phase::Training;
                self.epochs = epochs;
                self.steps_per_epoch = steps_per_epoch;
                self.resumed_from = resumed_from.unwrap_or(0);
                self.epoch = self.resumed_from + 1;
                self.step = self.resumed_from * steps_per_epoch;
                self.training_started = self.clock.elapsed();
                self.epoch_started = self.training_started;
            }
            JobEvent::Progress(Event::Step { epoch, step, loss, .. }) => {
                self.epoch = epoch;
                self.step = step;
                self.steps_this_start += 1;
                self.step_losses.push([step as f64, loss as f64]);
            }
            JobEvent::Progress(Event::Epoch(metrics)) => {
                self.epoch_losses.push([metrics.step as f64, metrics.loss]);
                if let Some(dice) = metrics.validation_dice {
                    self.dice.push([metrics.epoch as f64, dice]);
                    if self.best.is_none_or(|(_, b)| dice > b) {
                        self.best = Some((metrics.epoch, dice));
                    }
                }
                let now = self.clock.elapsed();
                self.epoch_seconds.push((now - self.epoch_started).as_secs_f64());
                self.epoch_started = now;
                self.epoch = metrics.epoch + 1;
            }
            JobEvent::Finished(result) => {
                self.clock.hold();
                self.job = None;
                self.resumable = matches!(&result, Ok(s) if s.stopped) && crate::train::resumable(&self.out).is_some();
                self.phase = match &result {
                    Ok(summary) => Phase::Finished(summary.clone()),
                    Err(e) => Phase::Failed(e.clone()),
                };
                return Some(result);
            }
        }
        None
    }

    /// Time left: from whole epochs once one is done, from steps before that.
    pub fn eta(&self) -> Option<Duration> {
        if !matches!(self.phase, Phase::Training) || self.epochs == 0 {
            return None;
        }
        let now = self.clock.elapsed();
        let left_epochs = self.epochs.saturating_sub(self.resumed_from + self.epoch_seconds.len());
        if !self.epoch_seconds.is_empty() {
            let mean = self.epoch_seconds.iter().sum::<f64>() / self.epoch_seconds.len() as f64;
            let in_epoch = (now - self.epoch_started).as_secs_f64();
            return Some(Duration::from_secs_f64((mean * left_epochs as f64 - in_epoch).max(0.0)));
        }
        if self.steps_this_start == 0 {
            return None;
        }
        let per_step = (now - self.training_started).as_secs_f64() / self.steps_this_start as f64;
        let left_steps = (left_epochs * self.steps_per_epoch).saturating_sub(self.steps_this_start);
        Some(Duration::from_secs_f64(per_step * left_steps as f64))
    }

    /// Waits for the job's next report and applies it (tests; the UI polls).
    pub fn wait(&mut self, timeout: Duration) -> Option<Result<Summary, String>> {
        let event = self.job.as_ref()?.wait(timeout)?;
        self.apply(event)
    }
}

/// A checked folder: its modality and image count, or its problems.
type FolderCheck = (PathBuf, Result<(String, usize), String>);

/// The tab's form and its current run.
pub struct TrainerState {
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
    pub run: Option<Run>,
    /// A problem with the form (shown above the Start button).
    pub error: Option<String>,
    checks: (Sender<FolderCheck>, Receiver<FolderCheck>),
    picked: (Sender<PathBuf>, Receiver<PathBuf>),
    /// The renderer's GPU, if the window runs on wgpu (what `wgpu` training will most likely use).
    pub wgpu_adapter: Option<String>,
    cuda_probe_started: bool,
    /// The trained models whose runs can be resumed; `None`: to be read again.
    resumable_models: Option<Vec<PathBuf>>,
}

impl TrainerState {
    pub fn new(wgpu_adapter: Option<String>) -> Self {
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
            run: None,
            error: None,
            checks: channel(),
            picked: channel(),
            wgpu_adapter,
            cuda_probe_started: false,
            resumable_models: None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.is_running())
    }

    /// Adds a dataset folder and checks it in the background (its modality from dataset.toml
    /// or SOURCE.md unless `modality` is given).
    pub fn add_folder(&mut self, path: PathBuf, modality: Option<String>, ctx: &egui::Context) {
        if self.sources.iter().any(|s| matches!(&s.kind, SourceKind::Folder(p) if *p == path)) {
            return;
        }
        self.sources.push(Source {
            kind: SourceKind::Folder(path.clone()),
            modality: modality.clone().unwrap_or_default(),
            status: SourceStatus::Checking,
        });
        let tx = self.checks.0.clone();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let result = dataset::scan(&path, modality.as_deref(), false)
                .map(|folder| (folder.modality, folder.pairs.len()))
                .map_err(|e| e.to_string());
            let _ = tx.send((path, result));
            ctx.request_repaint();
        });
    }

    /// Adds the masks exported in the app, one source per modality; says how many.
    pub fn add_exported(&mut self, log: &Path) -> String {
        let lists = ExportLog::load(log).lists();
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

    fn poll_checks(&mut self) {
        while let Ok((path, result)) = self.checks.1.try_recv() {
            let Some(source) = self.sources.iter_mut().find(|s| matches!(&s.kind, SourceKind::Folder(p) if *p == path)) else { continue };
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
    }

    /// A run name that is not taken yet under `runs`: `<modality>-<n>`.
    fn free_name(&self, runs: &Path) -> String {
        let base = self.sources.first().map(|s| s.modality.as_str()).filter(|m| !m.is_empty()).unwrap_or("model");
        (1..).map(|n| format!("{base}-{n}")).find(|name| !runs.join(name).exists()).unwrap_or_else(|| base.to_string())
    }

    /// The run's settings from the form, or what is wrong with it.
    fn config(&self, runs: &Path, cache: &Path, name: &str) -> Result<TrainConfig, String> {
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

impl AnnotatorApp {
    /// Everything the running job reported since the last frame; a finished run's model goes
    /// into the model menu.
    pub(super) fn poll_training(&mut self) {
        self.trainer.poll_checks();
        while let Ok(path) = self.trainer.picked.1.try_recv() {
            self.add_training_folder(path, None);
        }
        let ended = self.trainer.run.as_mut().and_then(|r| r.poll());
        if let Some(result) = ended {
            self.training_ended(result);
        }
    }

    pub(super) fn training_ended(&mut self, result: Result<Summary, String>) {
        self.trainer.resumable_models = None;
        let Some(run) = &self.trainer.run else { return };
        let best = run.best_checkpoint();
        let name = run.name.clone();
        match result {
            Ok(summary) if best.is_file() => {
                self.settings.remember_model(&best);
                self.save_settings();
                self.message = Some(if summary.stopped {
                    format!("Training {name} stopped after {} epoch(s); its best checkpoint is in the model menu", summary.epochs_done)
                } else {
                    format!("Training {name} finished; its best checkpoint is in the model menu")
                });
            }
            Ok(_) => self.message = Some(format!("Training {name} stopped before its first epoch; Resume continues it")),
            Err(_) => {}
        }
    }

    /// Starts a run with the form's settings (or resumes one, when the name is of a stopped run).
    pub fn start_training(&mut self) {
        if self.trainer.is_running() {
            return;
        }
        let name = match self.trainer.run_name.trim() {
            "" => self.trainer.free_name(&self.paths.runs),
            name => name.to_string(),
        };
        match self.trainer.config(&self.paths.runs, &self.paths.cache, &name) {
            Ok(config) => self.launch(name, config),
            Err(e) => self.trainer.error = Some(e),
        }
    }

    /// Continues a stopped run from its checkpoint, with the settings it was started with.
    pub fn resume_training(&mut self, out: &Path) {
        if self.trainer.is_running() {
            return;
        }
        match crate::train::resumable(out) {
            Some((config, _)) => {
                let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                self.launch(name, config);
            }
            None => self.trainer.error = Some(format!("{}: nothing to resume", out.display())),
        }
    }

    fn launch(&mut self, name: String, config: TrainConfig) {
        self.trainer.resumable_models = None;
        let backend = self.settings.train_backend;
        let out = config.out.clone();
        let ctx = self.ctx.clone();
        let job = TrainingJob::start(config, backend, move || ctx.request_repaint());
        self.trainer.run = Some(Run::new(name, out, backend, job));
        self.trainer.error = None;
        self.trainer.run_name.clear();
    }

    pub fn pause_training(&mut self, paused: bool) {
        if let Some(run) = &mut self.trainer.run {
            run.set_paused(paused);
        }
    }

    /// Stops the run after the current step; it saves its weights first and can be resumed.
    pub fn cancel_training(&mut self) {
        if let Some(run) = &mut self.trainer.run {
            run.stop();
        }
    }

    /// Uses a De-LightSAM record for automatic proposals (`None`: the shipped model), and
    /// remembers it.
    pub fn use_model(&mut self, model: Option<PathBuf>) {
        self.trainer.resumable_models = None;
        if let Some(path) = &model {
            self.settings.remember_model(path);
        }
        self.message = Some(format!("Automatic proposals now use {}", model_label(model.as_deref())));
        self.settings.auto_model = model;
        self.worker.send(crate::engine::worker::Request::Configure {
            backend: self.settings.backend,
            auto_model: self.settings.auto_model.clone(),
        });
        self.engine.backend = None;
        self.engine.note = None;
        self.save_settings();
    }

    pub(super) fn trainer_ui(&mut self, ui: &mut egui::Ui) {
        if !self.trainer.cuda_probe_started {
            self.trainer.cuda_probe_started = true;
            let ctx = self.ctx.clone();
            std::thread::spawn(move || {
                let _ = job::cuda_device();
                ctx.request_repaint();
            });
        }
        egui::Panel::left("train_form").resizable(true).default_size(340.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.train_form_ui(ui));
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.train_progress_ui(ui));
        });
    }

    fn train_form_ui(&mut self, ui: &mut egui::Ui) {
        let running = self.trainer.is_running();
        ui.heading("Training data");
        let mut remove = None;
        for (i, source) in self.trainer.sources.iter_mut().enumerate() {
            ui.group(|ui| {
                ui.label(egui::RichText::new(source.label()).small());
                ui.horizontal(|ui| {
                    modality_picker(ui, i, &mut source.modality);
                    match &source.status {
                        SourceStatus::Checking => {
                            ui.spinner();
                        }
                        SourceStatus::Ready { images } => {
                            ui.colored_label(OK_COLOR, format!("{images} image(s)"));
                        }
                        SourceStatus::Problem(_) => {
                            ui.colored_label(ERROR_COLOR, "problem");
                        }
                    }
                    if ui.add_enabled(!running, egui::Button::new("Remove").small()).clicked() {
                        remove = Some(i);
                    }
                });
                if let SourceStatus::Problem(problem) = &source.status {
                    ui.colored_label(ERROR_COLOR, egui::RichText::new(problem).small());
                }
            });
        }
        if let Some(i) = remove {
            self.trainer.sources.remove(i);
        }
        ui.horizontal_wrapped(|ui| {
            if ui.add_enabled(!running, egui::Button::new("Add folder…")).clicked() {
                let tx = self.trainer.picked.0.clone();
                let dialog = rfd::FileDialog::new().set_title("A dataset folder (images/ and masks/ with the same names)");
                pick_in_background(&self.ctx, move || dialog.pick_folder(), move |path| {
                    let _ = tx.send(path);
                });
            }
            if ui.add_enabled(!running, egui::Button::new("Add the masks I exported")).clicked() {
                self.message = Some(self.trainer.add_exported(&self.paths.exports));
            }
        });
        ui.label(egui::RichText::new("A folder holds images/ and masks/ with the same file names; 20% of each is kept for validation.").small().weak());

        ui.separator();
        ui.heading("Settings");
        ui.add_enabled_ui(!running, |ui| {
            ui.horizontal(|ui| {
                ui.label("recipe");
                ui.radio_value(&mut self.trainer.recipe, Recipe::Fast, "fast")
                    .on_hover_text("frozen encoder, cached embeddings: the head trains in minutes");
                ui.radio_value(&mut self.trainer.recipe, Recipe::Full, "full (MDKD)")
                    .on_hover_text("distillation, then end-to-end fine-tuning: a GPU job");
            });
            ui.label("backend");
            for backend in TrainBackend::ALL {
                let (available, detail) = self.backend_detail(backend);
                ui.add_enabled_ui(available, |ui| {
                    ui.radio_value(&mut self.settings.train_backend, backend, format!("{backend}: {detail}"));
                });
            }
            egui::Grid::new("train_numbers").num_columns(2).show(ui, |ui| {
                ui.label("epochs");
                ui.add(egui::DragValue::new(&mut self.trainer.epochs).range(1..=10_000));
                ui.end_row();
                if self.trainer.recipe == Recipe::Full {
                    ui.label("distillation epochs");
                    ui.horizontal(|ui| {
                        ui.add(egui::DragValue::new(&mut self.trainer.common_epochs).range(0..=1000).prefix("common "));
                        ui.add(egui::DragValue::new(&mut self.trainer.domain_epochs).range(0..=1000).prefix("domain "));
                    });
                    ui.end_row();
                }
                ui.label("batch");
                ui.add(egui::DragValue::new(&mut self.trainer.batch_size).range(1..=64));
                ui.end_row();
                ui.label("learning rate");
                ui.add(egui::DragValue::new(&mut self.trainer.learning_rate).range(1e-6..=1e-1).speed(1e-5).max_decimals(6));
                ui.end_row();
                ui.label("start from");
                let current = model_label(self.trainer.init.as_deref());
                egui::ComboBox::from_id_salt("train_init").selected_text(current).show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.trainer.init, None, model_label(None));
                    for path in self.settings.trained_models.iter().filter(|p| p.is_file()) {
                        ui.selectable_value(&mut self.trainer.init, Some(path.clone()), model_label(Some(path)));
                    }
                });
                ui.end_row();
                ui.label("run name");
                let hint = self.trainer.free_name(&self.paths.runs);
                ui.add(egui::TextEdit::singleline(&mut self.trainer.run_name).hint_text(hint).desired_width(160.0));
                ui.end_row();
            });
        });
        if let Some(error) = &self.trainer.error {
            ui.colored_label(ERROR_COLOR, error);
        }
        let can_start = !running && !self.trainer.sources.is_empty();
        if ui.add_enabled(can_start, egui::Button::new("Start training")).clicked() {
            self.start_training();
        }
        ui.label(egui::RichText::new(format!("Runs are kept in {}", self.paths.runs.display())).small().weak());

        ui.separator();
        ui.heading("Trained models");
        let models: Vec<PathBuf> = self.settings.trained_models.clone();
        let resumable = self
            .trainer
            .resumable_models
            .get_or_insert_with(|| {
                models.iter().filter(|p| p.parent().is_some_and(|run| crate::train::resumable(run).is_some())).cloned().collect()
            })
            .clone();
        if models.is_empty() {
            ui.label(egui::RichText::new("none yet").weak());
        }
        for path in models {
            let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
            ui.horizontal(|ui| {
                let in_use = self.settings.auto_model.as_deref() == Some(path.as_path());
                ui.label(model_label(Some(&path)));
                if !path.is_file() {
                    ui.colored_label(ERROR_COLOR, "missing");
                    return;
                }
                if in_use {
                    ui.colored_label(OK_COLOR, "in use");
                } else if ui.button("Use").clicked() {
                    self.use_model(Some(path.clone()));
                }
                if resumable.contains(&path) && ui.add_enabled(!running, egui::Button::new("Resume")).clicked() {
                    self.resume_training(&folder);
                }
            });
        }
    }

    /// Whether a backend can train here, and what it would run on.
    fn backend_detail(&self, backend: TrainBackend) -> (bool, String) {
        match backend {
            TrainBackend::Cpu => (true, format!("{} threads", std::thread::available_parallelism().map_or(1, |n| n.get()))),
            TrainBackend::Wgpu => (true, self.trainer.wgpu_adapter.clone().unwrap_or_else(|| "the default GPU".into())),
            TrainBackend::Cuda => match job::cuda_device_if_probed() {
                Some(Ok(device)) => (true, device),
                Some(Err(reason)) => (false, reason),
                None => (false, "looking for an NVIDIA GPU…".into()),
            },
        }
    }

    fn train_progress_ui(&mut self, ui: &mut egui::Ui) {
        let Some(run) = &self.trainer.run else {
            ui.heading("No training run yet");
            ui.label("Add data on the left, choose the settings, and press Start training. The loss and the validation Dice appear here as the model learns.");
            return;
        };
        ui.heading(format!("Run {}", run.name));
        ui.label(egui::RichText::new(run.out.display().to_string()).small().weak());
        let device = match (&run.backend, &self.trainer.wgpu_adapter) {
            // burn names the wgpu device only by its kind; the window's adapter is the likely GPU.
            (TrainBackend::Wgpu, Some(adapter)) => format!("{adapter} (burn wgpu)"),
            _ => run.device.clone().unwrap_or_else(|| "…".into()),
        };
        ui.label(format!("Backend {}: {device}", run.backend));
        let status = match &run.phase {
            Phase::Starting => "Starting…".to_string(),
            Phase::Preparing { done, total, cached } => format!("Preparing the images {done}/{total} ({cached} embeddings from the cache)"),
            Phase::Training if run.is_stopping() => "Stopping: saving a checkpoint…".into(),
            Phase::Training => {
                let eta = run.eta().map(|d| format!(" · about {} left", duration_text(d))).unwrap_or_default();
                let paused = match (run.is_paused(), run.is_parked()) {
                    (true, true) => " · paused",
                    (true, false) => " · pausing after this step…",
                    _ => "",
                };
                format!("Epoch {}/{} · step {}/{}{eta}{paused}", run.epoch.min(run.epochs), run.epochs, run.step, run.epochs * run.steps_per_epoch)
            }
            Phase::Finished(summary) => format!(
                "{} after {} epoch(s), {} step(s), in {}",
                if summary.stopped { "Stopped" } else { "Finished" },
                summary.epochs_done,
                summary.steps,
                duration_text(Duration::from_secs_f64(summary.seconds))
            ),
            Phase::Failed(_) => "Failed".into(),
        };
        ui.horizontal(|ui| {
            if run.is_running() {
                ui.spinner();
            }
            ui.strong(status);
        });
        if let Phase::Failed(error) = &run.phase {
            ui.colored_label(ERROR_COLOR, error);
        }
        if let Some((epoch, dice)) = run.best {
            ui.label(format!("Best checkpoint: epoch {epoch}, validation Dice {dice:.4} ({})", run.best_checkpoint().display()));
        }

        let (running, paused, stopping) = (run.is_running(), run.is_paused(), run.is_stopping());
        let best = run.best_checkpoint();
        let finished = matches!(run.phase, Phase::Finished(_));
        let resumable = run.resumable;
        let out = run.out.clone();
        let mut action = None;
        ui.horizontal(|ui| {
            if running {
                let label = if paused { "Resume" } else { "Pause" };
                if ui.add_enabled(!stopping, egui::Button::new(label)).clicked() {
                    action = Some(if paused { Action::Resume } else { Action::Pause });
                }
                if ui.add_enabled(!stopping, egui::Button::new("Cancel")).on_hover_text("saves the current weights; the run can be resumed").clicked() {
                    action = Some(Action::Cancel);
                }
            }
            if finished && best.is_file() && ui.button("Use in Annotate").clicked() {
                action = Some(Action::Use);
            }
            if resumable && ui.button("Resume run").on_hover_text("continue from the checkpoint it saved").clicked() {
                action = Some(Action::ResumeRun);
            }
        });
        self.plots_ui(ui);
        match action {
            Some(Action::Pause) => self.pause_training(true),
            Some(Action::Resume) => self.pause_training(false),
            Some(Action::Cancel) => self.cancel_training(),
            Some(Action::ResumeRun) => self.resume_training(&out),
            Some(Action::Use) => {
                self.use_model(Some(best));
                self.tab = Tab::Annotate;
            }
            None => {}
        }
    }

    fn plots_ui(&self, ui: &mut egui::Ui) {
        let Some(run) = &self.trainer.run else { return };
        let height = ((ui.available_height() - 40.0) / 2.0).clamp(140.0, 320.0);
        ui.label("Loss");
        Plot::new("loss_plot").height(height).legend(Legend::default()).x_axis_label("step").show(ui, |plot| {
            plot.line(Line::new("step", PlotPoints::from(decimate(&run.step_losses, PLOT_POINTS))).color(Color32::from_rgb(120, 160, 230)));
            plot.line(Line::new("epoch mean", PlotPoints::from(run.epoch_losses.clone())).color(Color32::from_rgb(240, 170, 60)).width(2.0));
        });
        ui.label("Validation Dice");
        Plot::new("dice_plot")
            .height(height)
            .x_axis_label("epoch")
            .include_y(0.0)
            .include_y(1.0)
            .show(ui, |plot| {
                plot.line(Line::new("Dice", PlotPoints::from(run.dice.clone())).color(OK_COLOR));
                plot.points(Points::new("epochs", PlotPoints::from(run.dice.clone())).radius(3.0).color(OK_COLOR));
            });
    }
}

/// At most this many points per plotted line (a long run has far more steps than pixels).
const PLOT_POINTS: usize = 2000;

/// `points` as at most `max` points: the mean of each run of consecutive points.
fn decimate(points: &[[f64; 2]], max: usize) -> Vec<[f64; 2]> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|chunk| {
            let n = chunk.len() as f64;
            [chunk.iter().map(|p| p[0]).sum::<f64>() / n, chunk.iter().map(|p| p[1]).sum::<f64>() / n]
        })
        .collect()
}

enum Action {
    ResumeRun,
    Pause,
    Resume,
    Cancel,
    Use,
}

/// A modality choice: the built-in names, or a name of the user's own.
fn modality_picker(ui: &mut egui::Ui, id: usize, modality: &mut String) {
    let text = if modality.is_empty() { "choose a modality".to_string() } else { modality.clone() };
    egui::ComboBox::from_id_salt(("source_modality", id)).selected_text(text).show_ui(ui, |ui| {
        for name in modality::BUILT_IN {
            ui.selectable_value(modality, name.to_string(), name);
        }
    });
}

/// How the model menu names a model: its run folder, or the shipped one.
pub fn model_label(path: Option<&Path>) -> String {
    match path {
        None => "shipped default".into(),
        Some(path) => {
            let run = path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let file = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if file == "best" || file == "model" { run } else { format!("{run}/{file}") }
        }
    }
}

fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_durations_read_well() {
        assert_eq!(model_label(None), "shipped default");
        assert_eq!(model_label(Some(Path::new("/runs/skin-2/best.bpk"))), "skin-2");
        assert_eq!(model_label(Some(Path::new("/runs/skin-2/other.bpk"))), "skin-2/other");
        assert_eq!(duration_text(Duration::from_secs(59)), "59 s");
        assert_eq!(duration_text(Duration::from_secs(125)), "2 min 5 s");
        assert_eq!(duration_text(Duration::from_secs(7380)), "2 h 3 min");
    }

    #[test]
    fn long_loss_curves_are_drawn_with_at_most_the_plot_budget() {
        let points: Vec<[f64; 2]> = (0..10_001).map(|i| [i as f64, (i % 2) as f64]).collect();
        let shown = decimate(&points, 2000);
        assert!((1000..=2000).contains(&shown.len()), "{}", shown.len());
        assert!(shown.iter().take(shown.len() - 1).all(|p| (p[1] - 0.5).abs() < 1e-9), "bucket means of 0/1 alternation");
        assert_eq!(decimate(&points[..10], 2000).len(), 10);
    }
}
