//! The window's shell: it owns the two tabs and what they share, polls the background work
//! once per frame, carries out the commands one tab sends the other, draws the menu bar and
//! asks before closing while a model trains.

use std::path::PathBuf;

use super::annotate::AnnotateTab;
use super::context::{AutomaticBackend, Command, Shared, Tab};
use super::crash;
use super::settings::{AppPaths, Settings};
use super::train_tab::TrainTab;
use crate::engine::worker::{Request, Worker};
use crate::model::backend::BackendKind;

/// Options the window starts with (tests use their own folders and the CPU).
pub struct AppOptions {
    pub file: Option<PathBuf>,
    pub paths: AppPaths,
    /// Overrides the saved backend.
    pub backend: Option<BackendKind>,
    /// Warm the model up at start, encode each image as soon as it opens (so the first prompt
    /// is quick) and its worklist neighbours when idle. Tests that count engine work turn it off.
    pub prepare_on_open: bool,
}

impl AppOptions {
    pub fn for_user(file: Option<PathBuf>) -> Self {
        Self { file, paths: AppPaths::for_user(), backend: None, prepare_on_open: true }
    }
}

/// Closing the window while a model trains: ask, then stop the run (it checkpoints), then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quit {
    No,
    Asking,
    Stopping,
    Confirmed,
}

pub struct AnnotatorApp {
    pub shared: Shared,
    pub annotate: AnnotateTab,
    pub train: TrainTab,
    tab: Tab,
    quit: Quit,
    /// Closing was asked for by `request_quit` (as by the window's close button).
    close_asked: bool,
    crash_notice: Option<CrashNotice>,
}

impl AnnotatorApp {
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let ctx = &cc.egui_ctx;
        let adapter = cc.wgpu_render_state.as_ref().map(|state| state.adapter.get_info());
        let automatic = AutomaticBackend::for_adapter(adapter.as_ref());
        let (mut settings, warning) = Settings::load(&options.paths.settings);
        if let Some(backend) = options.backend {
            settings.engine = Some(backend);
        }
        let backend = settings.engine.unwrap_or(automatic.backend);
        let repaint = ctx.clone();
        let engine = Worker::spawn(backend, settings.auto_model.clone(), move || repaint.request_repaint());
        if options.prepare_on_open {
            engine.send(Request::WarmUp);
        }
        let adapter_name = adapter.map(|info| info.name);
        let crash_notice = crash::unseen_reports(&options.paths.crashes).into_iter().next().map(|report| CrashNotice { report, text: None });
        let mut shared = Shared::new(settings, options.paths, engine, ctx, adapter_name, automatic);
        if let Some(warning) = warning {
            shared.warn(warning);
        }
        shared.check_models_if_changed();
        let mut annotate = AnnotateTab::new(cc, options.prepare_on_open, shared.paths.autosave.clone());
        crash::set_flush(annotate.autosave_flush_handle());
        if let Some(path) = options.file {
            annotate.open_path(&mut shared, path);
        }
        Self { shared, annotate, train: TrainTab::new(ctx), tab: Tab::Annotate, quit: Quit::No, close_asked: false, crash_notice }
    }

    /// The crash report of an earlier run that the window offers to show, if any.
    pub fn crash_report_offered(&self) -> Option<&std::path::Path> {
        self.crash_notice.as_ref().map(|n| n.report.as_path())
    }

    pub fn tab(&self) -> Tab {
        self.tab
    }

    pub fn error(&self) -> Option<&str> {
        self.shared.status.error.as_deref()
    }

    pub fn message(&self) -> Option<&str> {
        self.shared.status.message.as_deref()
    }

    /// The warnings shown until dismissed (damaged files set aside).
    pub fn warnings(&self) -> &[String] {
        &self.shared.status.warnings
    }

    pub fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.shared.settings
    }

    /// Asks to close the window, as its close button does.
    pub fn request_quit(&mut self) {
        if self.train.is_running() {
            self.close_asked = true;
        } else {
            self.shared.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        self.shared.ctx.request_repaint();
    }

    /// The window has been told to close (after a confirmed quit during training).
    pub fn quit_confirmed(&self) -> bool {
        self.quit == Quit::Confirmed
    }

    pub fn is_asking_to_quit(&self) -> bool {
        self.quit == Quit::Asking
    }

    /// Everything that arrived from the background since the last frame, then the commands.
    fn poll(&mut self) {
        self.shared.check_models_if_changed();
        self.annotate.poll(&mut self.shared);
        self.train.poll(&mut self.shared);
        for command in self.shared.take_commands() {
            match command {
                Command::SwitchTab(tab) => {
                    crash::note("switch tab");
                    self.tab = tab;
                }
                Command::UseModel(model) => self.annotate.use_model(&mut self.shared, model),
            }
        }
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.selectable_value(&mut self.tab, Tab::Annotate, "Annotate");
            let train_label = if self.train.is_running() { "Train (running)" } else { "Train" };
            ui.selectable_value(&mut self.tab, Tab::Train, train_label);
            ui.separator();
            self.annotate.menus_ui(ui, &mut self.shared);
        });
    }

    /// Closing while a model trains asks first; confirmed, the run checkpoints and stops, and
    /// the window closes when it has.
    fn handle_close(&mut self, ctx: &egui::Context) {
        let training = self.train.is_running();
        let asked = std::mem::take(&mut self.close_asked);
        if (asked || ctx.input(|i| i.viewport().close_requested())) && training && self.quit != Quit::Confirmed {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            if self.quit == Quit::No {
                self.quit = Quit::Asking;
            }
        }
        match self.quit {
            Quit::Asking if !training => self.quit = Quit::No,
            Quit::Stopping if !training => {
                self.quit = Quit::Confirmed;
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            _ => {}
        }
        if matches!(self.quit, Quit::Asking | Quit::Stopping) {
            egui::Modal::new(egui::Id::unique("quit_training")).show(ctx, |ui| {
                ui.set_max_width(420.0);
                if self.quit == Quit::Stopping {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Saving a checkpoint of the training run…");
                    });
                    return;
                }
                ui.heading("A model is training");
                ui.label("Quit now? The run saves its current weights as a checkpoint and stops; Resume in the Trainer tab continues it later.");
                ui.horizontal(|ui| {
                    if ui.button("Save checkpoint and quit").clicked() {
                        self.train.cancel();
                        self.quit = Quit::Stopping;
                    }
                    if ui.button("Keep training").clicked() {
                        self.quit = Quit::No;
                    }
                });
            });
        }
    }
}

/// A report an earlier run left, offered once.
struct CrashNotice {
    report: PathBuf,
    /// Read when the user asks to see it.
    text: Option<String>,
}

impl AnnotatorApp {
    fn crash_notice_ui(&mut self, ui: &mut egui::Ui) {
        let Some(notice) = &mut self.crash_notice else {
            return;
        };
        let mut done = false;
        egui::Panel::top("crash notice").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.colored_label(egui::Color32::from_rgb(230, 180, 80), "De-LightSAM closed unexpectedly last time.");
                ui.label(format!("A report (no image data, no file names) was saved: {}", notice.report.display()));
                if ui.button("Show report").clicked() {
                    notice.text = Some(std::fs::read_to_string(&notice.report).unwrap_or_else(|e| format!("cannot read the report: {e}")));
                }
                done = ui.button("Dismiss").clicked();
            });
        });
        if let Some(text) = &notice.text {
            let mut open = true;
            let window = egui::Window::new("Crash report").open(&mut open).default_size([640.0, 420.0]);
            window.anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0]).show(ui.ctx(), |ui| {
                ui.label("Attach this text to a bug report if you like; it holds no image data or file names.");
                egui::ScrollArea::both().show(ui, |ui| ui.monospace(text.as_str()));
            });
            done |= !open;
        }
        if done {
            if let Err(e) = crash::mark_seen(&notice.report) {
                self.shared.warn(format!("cannot mark the crash report {} as read: {e}", notice.report.display()));
            }
            self.crash_notice = None;
        }
    }
}

impl eframe::App for AnnotatorApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.poll();
        let ctx = ui.ctx().clone();
        self.handle_close(&ctx);
        if let Some(path) = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).find(|p| !p.as_os_str().is_empty())) {
            self.annotate.open_path(&mut self.shared, path);
        }
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        self.crash_notice_ui(ui);
        match self.tab {
            Tab::Annotate => self.annotate.ui(ui, &mut self.shared),
            Tab::Train => self.train.ui(ui, &mut self.shared),
        }
    }

    fn on_exit(&mut self) {
        self.annotate.on_exit(&self.shared);
        self.train.on_exit(&mut self.shared);
        self.shared.save_settings();
    }
}
