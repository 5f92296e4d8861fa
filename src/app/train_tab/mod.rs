//! The Train tab: fine-tune De-LightSAM on local folders (or on the masks exported in the app)
//! without leaving the window. The run is `train::job::TrainingJob` on its own thread, writing
//! the same checkpoints and `metrics.jsonl` as `delightsam train`; the tab shows its loss and
//! validation Dice as they arrive, an ETA, the best checkpoint, and hands the result to the
//! Annotate tab with a command. `form.rs` is the form, `progress.rs` the run's numbers,
//! `ui.rs` the widgets.

mod form;
mod progress;
mod ui;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use self::form::{Source, SourceKind, SourceStatus, TrainForm};
pub use self::progress::{Phase, RunProgress};
use self::form::{FolderCheck, free_name};
use super::background::Background;
use super::context::{Command, Shared, Tab};
use super::export_log::ExportLog;
use crate::model::backend::BackendKind;
use crate::train::dataset;
use crate::train::job::{self, TrainingJob};
use crate::train::{Summary, TrainConfig};

/// Time that counts for the ETA: running, not paused.
#[derive(Debug, Default)]
struct ActiveClock {
    total: Duration,
    since: Option<Instant>,
}

impl ActiveClock {
    fn running() -> Self {
        Self { total: Duration::ZERO, since: Some(Instant::now()) }
    }

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

/// One training run: its job on the trainer thread while it runs, and what it reported.
pub struct Run {
    pub progress: RunProgress,
    job: Option<TrainingJob>,
    clock: ActiveClock,
    /// Stopped with epochs left and a checkpoint (read once, when the run ends).
    pub resumable: bool,
    /// The best checkpoint was on the disk when the run ended.
    pub best_saved: bool,
}

impl Run {
    fn start(name: String, config: TrainConfig, backend: BackendKind, ctx: &egui::Context) -> Self {
        let progress = RunProgress::new(name, config.out.clone(), backend);
        let ctx = ctx.clone();
        let job = TrainingJob::start(config, backend, move || ctx.request_repaint());
        Self { progress, job: Some(job), clock: ActiveClock::running(), resumable: false, best_saved: false }
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

    pub fn eta(&self) -> Option<Duration> {
        self.progress.eta(self.clock.elapsed())
    }

    fn set_paused(&mut self, paused: bool) {
        if let Some(job) = &self.job {
            job.set_paused(paused);
            if paused { self.clock.hold() } else { self.clock.run() }
        }
    }

    fn stop(&mut self) {
        if let Some(job) = &self.job {
            job.stop();
        }
    }

    /// Reads the job's reports; returns the result when the run has just ended.
    fn poll(&mut self) -> Option<Result<Summary, String>> {
        let events = self.job.as_ref().map(|j| j.poll()).unwrap_or_default();
        let mut ended = None;
        for event in events {
            ended = ended.or(self.apply(event));
        }
        ended
    }

    /// Waits for the job's next report and applies it (tests; the UI polls).
    fn wait(&mut self, timeout: Duration) -> Option<Result<Summary, String>> {
        let event = self.job.as_ref()?.wait(timeout)?;
        self.apply(event)
    }

    fn apply(&mut self, event: job::JobEvent) -> Option<Result<Summary, String>> {
        let result = self.progress.apply(event, self.clock.elapsed())?;
        // The run has ended: the job's thread is done, and the disk says what it left.
        self.clock.hold();
        self.job = None;
        self.resumable = matches!(&result, Ok(s) if s.stopped) && crate::train::resumable(&self.progress.out).is_some();
        self.best_saved = self.progress.best_checkpoint().is_file();
        Some(result)
    }
}

pub struct TrainTab {
    pub form: TrainForm,
    pub run: Option<Run>,
    folder_checks: Background<FolderCheck>,
    folder_picks: Background<PathBuf>,
    /// Runs the CUDA probe once (its answer is kept by `job::cuda_device_if_probed`).
    cuda_probe: Background<()>,
    /// The CPU's thread count, read once.
    cpu_threads: usize,
    /// The default run name for the form's current sources: (name base, free name).
    name_hint: Option<(String, String)>,
    name_probe: Background<(String, String)>,
}

impl TrainTab {
    pub fn new(ctx: &egui::Context) -> Self {
        Self {
            form: TrainForm::default(),
            run: None,
            folder_checks: Background::new(ctx),
            folder_picks: Background::new(ctx),
            cuda_probe: Background::new(ctx),
            cpu_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            name_hint: None,
            name_probe: Background::new(ctx),
        }
    }

    pub fn is_running(&self) -> bool {
        self.run.as_ref().is_some_and(|r| r.is_running())
    }

    /// Adds a dataset folder and checks it in the background (its modality from dataset.toml
    /// or SOURCE.md unless `modality` is given).
    pub fn add_folder(&mut self, path: PathBuf, modality: Option<String>) {
        if !self.form.add_folder(&path, modality.as_deref()) {
            return;
        }
        self.folder_checks.spawn(move || {
            let result = dataset::scan(&path, modality.as_deref(), false)
                .map(|folder| (folder.modality, folder.pairs.len()))
                .map_err(|e| e.to_string());
            (path, result)
        });
    }

    /// Adds the masks exported in the app (one source per modality).
    pub fn add_exported(&mut self, shared: &mut Shared) {
        match ExportLog::load(&shared.paths.exports) {
            Ok((log, warning)) => {
                if let Some(warning) = warning {
                    shared.warn(warning);
                }
                let said = self.form.add_exported(&log);
                shared.set_message(said);
            }
            Err(e) => shared.set_error(e),
        }
    }

    /// Everything that arrived since the last frame: folder checks and picks, the CUDA probe,
    /// the run's reports (a finished run's model goes into the model menu).
    pub fn poll(&mut self, shared: &mut Shared) {
        for check in self.folder_checks.poll() {
            self.form.checked(check);
        }
        for path in self.folder_picks.poll() {
            self.add_folder(path, None);
        }
        self.cuda_probe.poll();
        if let Some(hint) = self.name_probe.poll().pop() {
            self.name_hint = Some(hint);
        }
        let ended = self.run.as_mut().and_then(|r| r.poll());
        if let Some(result) = ended {
            self.ended(shared, result);
        }
    }

    /// Waits up to `timeout` for the training run's next report. Tests only.
    pub fn wait_for_training(&mut self, shared: &mut Shared, timeout: Duration) {
        let ended = self.run.as_mut().and_then(|r| r.wait(timeout));
        if let Some(result) = ended {
            self.ended(shared, result);
        }
    }

    fn ended(&mut self, shared: &mut Shared, result: Result<Summary, String>) {
        self.name_hint = None;
        let Some(run) = &self.run else { return };
        let name = run.progress.name.clone();
        match result {
            Ok(summary) if run.best_saved => {
                shared.settings.remember_model(&run.progress.best_checkpoint());
                shared.save_settings();
                shared.set_message(if summary.stopped {
                    format!("Training {name} stopped after {} epoch(s); its best checkpoint is in the model menu", summary.epochs_done)
                } else {
                    format!("Training {name} finished; its best checkpoint is in the model menu")
                });
            }
            Ok(_) => shared.set_message(format!("Training {name} stopped before its first epoch; Resume continues it")),
            Err(_) => {}
        }
        shared.recheck_models();
    }

    /// Starts a run with the form's settings (or resumes one, when the name is of a stopped run).
    pub fn start(&mut self, shared: &mut Shared) {
        if self.is_running() {
            return;
        }
        let name = match self.form.run_name.trim() {
            "" => free_name(&shared.paths.runs, &self.form.name_base()),
            name => name.to_string(),
        };
        match self.form.config(&shared.paths.runs, &shared.paths.cache, &name) {
            Ok(config) => self.launch(shared, name, config),
            Err(e) => self.form.error = Some(e),
        }
    }

    /// Continues a stopped run from its checkpoint, with the settings it was started with.
    pub fn resume(&mut self, shared: &mut Shared, out: &Path) {
        if self.is_running() {
            return;
        }
        match crate::train::resumable(out) {
            Some((config, _)) => {
                let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                self.launch(shared, name, config);
            }
            None => self.form.error = Some(format!("{}: nothing to resume", out.display())),
        }
    }

    fn launch(&mut self, shared: &mut Shared, name: String, config: TrainConfig) {
        self.run = Some(Run::start(name, config, shared.settings.train_backend, &shared.ctx));
        self.form.error = None;
        self.form.run_name.clear();
        self.name_hint = None;
    }

    pub fn pause(&mut self, paused: bool) {
        if let Some(run) = &mut self.run {
            run.set_paused(paused);
        }
    }

    /// Stops the run after the current step; it saves its weights first and can be resumed.
    pub fn cancel(&mut self) {
        if let Some(run) = &mut self.run {
            run.stop();
        }
    }

    /// Hands the model to the Annotate tab and shows it.
    fn use_in_annotate(&mut self, shared: &mut Shared, model: PathBuf) {
        shared.send(Command::UseModel(Some(model)));
        shared.send(Command::SwitchTab(Tab::Annotate));
    }

    /// The window is closing: a run still going checkpoints before its thread ends, and its
    /// best model is remembered.
    pub fn on_exit(&mut self, shared: &mut Shared) {
        self.cancel();
        if let Some(run) = self.run.take().filter(|r| r.is_running()) {
            let best = run.progress.best_checkpoint();
            drop(run);
            if best.is_file() {
                shared.settings.remember_model(&best);
            }
        }
    }

    /// The run name the form suggests (read off the UI thread; empty until known).
    fn name_hint(&mut self, runs: &Path) -> String {
        let base = self.form.name_base();
        match &self.name_hint {
            Some((known, name)) if *known == base => name.clone(),
            _ => {
                if !self.name_probe.is_busy() {
                    let runs = runs.to_path_buf();
                    self.name_probe.spawn(move || {
                        let name = free_name(&runs, &base);
                        (base, name)
                    });
                }
                String::new()
            }
        }
    }

    /// Whether a backend can train here, and what it would run on.
    fn backend_detail(&mut self, shared: &Shared, backend: BackendKind) -> (bool, String) {
        match backend {
            BackendKind::Cpu => (true, format!("{} threads", self.cpu_threads)),
            BackendKind::Wgpu => (true, shared.wgpu_adapter.clone().unwrap_or_else(|| "the default GPU".into())),
            BackendKind::Cuda => match job::cuda_device_if_probed() {
                Some(Ok(device)) => (true, device),
                Some(Err(reason)) => (false, reason),
                None => {
                    if !self.cuda_probe.is_busy() {
                        self.cuda_probe.spawn(|| {
                            let _ = job::cuda_device();
                        });
                    }
                    (false, "looking for an NVIDIA GPU…".into())
                }
            },
        }
    }
}
