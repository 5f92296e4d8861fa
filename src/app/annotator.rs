//! The annotation window's state and everything it does outside of drawing: opening images,
//! editing and undo, AI requests and their results, export, autosave, settings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::autosave::{self, Autosaver};
use super::canvas::{Gesture, View};
use super::document::Document;
use super::export_log::{ExportLog, ExportRecord};
use super::trainer_tab::TrainerState;
use super::gpu_view::{CompositeResources, SharedUploads};
use super::loader::{LoadResult, Loader};
use super::settings::{AppPaths, Settings};
use super::tools::{self, FOREGROUND};
use super::worklist::{self, Worklist};
use crate::engine::worker::{Reply, Request, ResultKind, Worker};
use crate::imaging::{ImageSource, Mask};
use crate::model::backend::BackendKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Brush,
    Eraser,
    Fill,
    Lasso,
    /// A box prompt for LiteMedSAM.
    Box,
    /// Positive (click) and negative (shift-click) points for LiteMedSAM.
    Points,
    /// Switch De-LightSAM's 32×32 patch-prompt cells on and off.
    Grid,
}

impl Tool {
    pub const ALL: [Tool; 7] = [Tool::Brush, Tool::Eraser, Tool::Fill, Tool::Lasso, Tool::Box, Tool::Points, Tool::Grid];

    pub fn label(self) -> &'static str {
        match self {
            Tool::Brush => "Brush",
            Tool::Eraser => "Eraser",
            Tool::Fill => "Fill",
            Tool::Lasso => "Lasso",
            Tool::Box => "Box prompt",
            Tool::Points => "Point prompts",
            Tool::Grid => "Patch grid",
        }
    }

    pub fn key(self) -> egui::Key {
        match self {
            Tool::Brush => egui::Key::B,
            Tool::Eraser => egui::Key::E,
            Tool::Fill => egui::Key::G,
            Tool::Lasso => egui::Key::L,
            Tool::Box => egui::Key::R,
            Tool::Points => egui::Key::P,
            Tool::Grid => egui::Key::T,
        }
    }
}

/// The window's two tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Annotate,
    Train,
}

/// Closing the window while a model trains: ask, then stop the run (it checkpoints), then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Quit {
    No,
    Asking,
    Stopping,
    Confirmed,
}

/// What the AI engine is doing, for the status bar.
#[derive(Default)]
pub struct EngineStatus {
    pub busy: Option<String>,
    pub backend: Option<String>,
    pub note: Option<String>,
    pub last_inference: Option<(ResultKind, Duration)>,
}

/// Options the window starts with (tests use their own folders and the CPU).
pub struct AppOptions {
    pub file: Option<PathBuf>,
    pub paths: AppPaths,
    /// Overrides the saved backend.
    pub backend: Option<BackendKind>,
    /// Encode each image as soon as it opens (so the first prompt is quick).
    pub prepare_on_open: bool,
}

impl AppOptions {
    pub fn for_user(file: Option<PathBuf>) -> Self {
        Self { file, paths: AppPaths::for_user(), backend: None, prepare_on_open: true }
    }
}

pub struct AnnotatorApp {
    pub(super) settings: Settings,
    pub(super) paths: AppPaths,
    pub(super) loader: Loader,
    pub(super) worker: Worker,
    pub(super) autosaver: Autosaver,
    pub(super) doc: Option<Document>,
    pub(super) worklist: Option<Worklist>,
    pub(super) view: View,
    pub(super) tool: Tool,
    pub(super) gesture: Option<Gesture>,
    pub(super) engine: EngineStatus,
    /// The last error, shown until the next successful action.
    pub(super) error: Option<String>,
    /// A passing message (export done, settings warning).
    pub(super) message: Option<String>,
    /// Pixel under the cursor: image coordinates and values in modality units.
    pub(super) hover: Option<(u32, u32, Vec<f32>)>,
    generation: u64,
    prepare_on_open: bool,
    /// Uploads for the GPU compositor; `None` when egui does not run on wgpu.
    pub(super) gpu: Option<SharedUploads>,
    /// The document whose image the GPU holds.
    pub(super) gpu_image: Option<u64>,
    pub(super) ctx: egui::Context,
    pub(super) tab: Tab,
    pub(super) trainer: TrainerState,
    pub(super) quit: Quit,
    /// Closing was asked for by `request_quit` (as by the window's close button).
    close_asked: bool,
}

impl AnnotatorApp {
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let ctx = &cc.egui_ctx;
        let adapter = cc.wgpu_render_state.as_ref().map(|state| state.adapter.get_info().name);
        let gpu = cc.wgpu_render_state.as_ref().map(|state| {
            CompositeResources::install(state);
            SharedUploads::default()
        });
        let (mut settings, warning) = Settings::load(&options.paths.settings);
        if let Some(backend) = options.backend {
            settings.backend = backend;
        }
        let repaint = ctx.clone();
        let worker = Worker::spawn(settings.backend, settings.auto_model.clone(), move || repaint.request_repaint());
        let mut app = Self {
            settings,
            paths: options.paths,
            loader: Loader::new(ctx),
            worker,
            autosaver: Autosaver::start(),
            doc: None,
            worklist: None,
            view: View::default(),
            tool: Tool::Brush,
            gesture: None,
            engine: EngineStatus::default(),
            error: None,
            message: warning,
            hover: None,
            generation: 0,
            prepare_on_open: options.prepare_on_open,
            gpu,
            gpu_image: None,
            ctx: ctx.clone(),
            tab: Tab::Annotate,
            trainer: TrainerState::new(adapter),
            quit: Quit::No,
            close_asked: false,
        };
        if let Some(path) = options.file {
            app.open_path(path);
        }
        app
    }

    // ----- what tests and scripts can see and do -----

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub fn shown(&self) -> Option<(&ImageSource, u32)> {
        self.doc.as_ref().map(|d| (d.source.as_ref(), d.frame_index))
    }

    pub fn window(&self) -> Option<crate::imaging::Window> {
        self.doc.as_ref().map(|d| d.window)
    }

    pub fn set_window(&mut self, window: crate::imaging::Window) {
        if let Some(doc) = &mut self.doc {
            doc.set_window(window);
        }
    }

    pub fn mask(&self) -> Option<&Mask> {
        self.doc.as_ref().map(|d| &d.mask)
    }

    /// The patch grid of the last automatic proposal (as used by the model, with the user's edits).
    pub fn patch_grid(&self) -> Option<&Mask> {
        self.doc.as_ref().and_then(|d| d.grid.as_ref())
    }

    pub fn tool(&self) -> Tool {
        self.tool
    }

    pub fn set_tool(&mut self, tool: Tool) {
        self.tool = tool;
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    pub fn tab(&self) -> Tab {
        self.tab
    }

    pub fn set_tab(&mut self, tab: Tab) {
        self.tab = tab;
    }

    pub fn trainer(&self) -> &TrainerState {
        &self.trainer
    }

    pub fn trainer_mut(&mut self) -> &mut TrainerState {
        &mut self.trainer
    }

    /// Adds a dataset folder to the Trainer tab (as its Add folder… button does).
    pub fn add_training_folder(&mut self, path: PathBuf, modality: Option<String>) {
        let ctx = self.ctx.clone();
        self.trainer.add_folder(path, modality, &ctx);
    }

    /// Waits up to `timeout` for the training run's next report. Tests only.
    pub fn wait_for_training(&mut self, timeout: Duration) {
        let ended = self.trainer.run.as_mut().and_then(|r| r.wait(timeout));
        if let Some(result) = ended {
            self.training_ended(result);
        }
    }

    pub fn worklist(&self) -> Option<&Worklist> {
        self.worklist.as_ref()
    }

    pub fn engine_busy(&self) -> bool {
        self.engine.busy.is_some()
    }

    pub fn last_inference(&self) -> Option<(ResultKind, Duration)> {
        self.engine.last_inference
    }

    /// The screen position of image pixel (x, y) in the last drawn frame.
    pub fn screen_pos(&self, x: f32, y: f32) -> Option<egui::Pos2> {
        self.view.screen_from_image(egui::pos2(x, y))
    }

    pub fn is_loading(&self) -> bool {
        self.loader.is_busy()
    }

    /// Blocks until the pending load has arrived and been applied. Tests and scripts only.
    pub fn wait_for_load(&mut self) {
        let results = self.loader.wait();
        self.apply_loads(results);
    }

    /// Blocks until the engine has answered the pending AI work (or `timeout`). Tests only.
    pub fn wait_for_engine(&mut self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            match self.worker.wait(Duration::from_millis(100)) {
                Some(reply) => {
                    let done = matches!(reply, Reply::Mask { .. } | Reply::Error { .. } | Reply::Prepared { .. });
                    self.apply_reply(reply);
                    if done && self.engine.busy.is_none() {
                        return true;
                    }
                }
                None if self.engine.busy.is_none() => return true,
                None => {}
            }
        }
        false
    }

    /// Waits until every autosave is written. Tests, and closing the window.
    pub fn flush_autosave(&self) {
        self.autosaver.flush();
    }

    // ----- opening -----

    pub fn open_path(&mut self, path: PathBuf) {
        if path.is_dir() {
            self.open_folder(&path);
        } else {
            self.loader.open(path);
        }
    }

    pub fn open_folder(&mut self, folder: &Path) {
        match Worklist::scan(folder) {
            Ok(list) if list.items.is_empty() => self.error = Some(format!("{}: no images in this folder", folder.display())),
            Ok(list) => {
                self.settings.remember_folder(folder);
                let first = list.items[0].clone();
                self.worklist = Some(list);
                self.loader.open(first);
            }
            Err(e) => self.error = Some(format!("{}: cannot read the folder: {e}", folder.display())),
        }
    }

    /// The next (`+1`) or previous (`-1`) image of the worklist.
    pub fn step_worklist(&mut self, by: isize) {
        if let Some(next) = self.worklist.as_ref().and_then(|w| w.step(by)).cloned() {
            self.loader.open(next);
        }
    }

    /// Active learning: scores every image of the worklist that is not annotated yet by the
    /// model's uncertainty, one engine request at a time (prompts on the shown image go in
    /// between), then orders the list most uncertain first.
    pub fn rank_worklist(&mut self) {
        let modality = self.doc.as_ref().map(|d| d.modality.clone()).unwrap_or_else(|| self.settings.modality.clone());
        let export_dir = self.settings.export_dir.clone();
        let autosave_dir = self.paths.autosave.clone();
        let Some(list) = &mut self.worklist else { return };
        let pending: Vec<PathBuf> = list
            .items
            .iter()
            .filter(|p| Worklist::state(p, export_dir.as_deref(), &autosave_dir) == worklist::ItemState::Untouched)
            .cloned()
            .collect();
        if pending.is_empty() {
            self.message = Some("every image of the worklist is annotated already".into());
            return;
        }
        list.uncertainty.clear();
        list.ranking = Some(worklist::Ranking { total: pending.len(), pending, modality });
        self.rank_next();
    }

    fn rank_next(&mut self) {
        let Some(list) = &mut self.worklist else { return };
        let Some(ranking) = &list.ranking else { return };
        match ranking.pending.first() {
            Some(path) => self.worker.send(Request::Uncertainty { path: path.clone(), modality: ranking.modality.clone() }),
            None => {
                list.ranking = None;
                let export_dir = self.settings.export_dir.clone();
                let autosave_dir = self.paths.autosave.clone();
                list.order_by_uncertainty(|p| Worklist::state(p, export_dir.as_deref(), &autosave_dir) != worklist::ItemState::Untouched);
                self.message = Some("Worklist ordered: most uncertain images first".into());
            }
        }
    }

    pub fn is_ranking(&self) -> bool {
        self.worklist.as_ref().is_some_and(|l| l.ranking.is_some())
    }

    fn apply_uncertainty(&mut self, path: PathBuf, score: Result<f32, String>) {
        let Some(list) = &mut self.worklist else { return };
        let Some(ranking) = &mut list.ranking else { return };
        if ranking.pending.first() != Some(&path) {
            return;
        }
        ranking.pending.remove(0);
        match score {
            Ok(score) => {
                list.uncertainty.insert(path, score);
            }
            Err(e) => self.error = Some(format!("{}: not ranked: {e}", path.display())),
        }
        self.rank_next();
    }

    pub fn show_frame(&mut self, index: u32) {
        if let Some(doc) = &self.doc {
            self.loader.frame(doc.source.clone(), index);
        }
    }

    pub(super) fn apply_loads(&mut self, results: Vec<LoadResult>) {
        for result in results {
            match result {
                LoadResult::Loaded { source, frame_index, frame } => self.show(source, frame_index, frame),
                LoadResult::Failed(message) => self.error = Some(message),
                LoadResult::Picked(path) => self.open_path(path),
            }
        }
    }

    fn show(&mut self, source: Arc<ImageSource>, frame_index: u32, frame: crate::imaging::Frame) {
        self.generation += 1;
        let same_file = self.doc.as_ref().is_some_and(|d| Arc::ptr_eq(&d.source, &source));
        let old_window = self.doc.as_ref().map(|d| d.window);
        let mut doc = Document::new(source, frame_index, frame, self.generation, &self.settings.modality);
        if same_file {
            // Another frame of the same file keeps the view.
            if let Some(window) = old_window {
                doc.set_window(window);
            }
        } else {
            self.view.fit();
        }
        let (w, h) = doc.size();
        if let Some(saved) = autosave::restore(&self.autosaver, &self.paths.autosave, doc.path(), frame_index, w, h) {
            doc.mask = saved;
            doc.unexported = !self.export_path_for(&doc).is_file();
        }
        self.settings.remember_file(doc.path());
        if let Some(list) = &mut self.worklist {
            list.select(doc.path());
        }
        if self.prepare_on_open {
            self.worker.send(Request::Prepare { image: doc.id.clone(), frame: doc.frame.clone() });
        }
        self.doc = Some(doc);
        self.error = None;
        self.engine.busy = None;
    }

    // ----- editing -----

    /// Records a finished edit (stroke, fill, lasso) as one undo step and autosaves.
    pub(super) fn commit_edit(&mut self, before: &Mask, hint: tools::PixelRect) {
        let Some(doc) = &mut self.doc else { return };
        doc.mark_dirty(hint);
        if doc.history.record(before, &doc.mask, hint) {
            self.autosave();
        }
    }

    pub fn undo(&mut self) {
        if self.doc.as_mut().is_some_and(|d| d.undo()) {
            self.autosave();
        }
    }

    pub fn redo(&mut self) {
        if self.doc.as_mut().is_some_and(|d| d.redo()) {
            self.autosave();
        }
    }

    pub fn clear_mask(&mut self) {
        if let Some(doc) = &mut self.doc {
            let (w, h) = doc.size();
            doc.prompts = Default::default();
            if doc.replace_mask(Mask::new(w, h)) {
                self.autosave();
            }
        }
    }

    pub fn fill_at(&mut self, x: f32, y: f32, label: u8) {
        let Some(doc) = &mut self.doc else { return };
        if x < 0.0 || y < 0.0 {
            return;
        }
        let before = doc.mask.clone();
        let rect = tools::flood_fill(&mut doc.mask, x as u32, y as u32, label);
        self.commit_edit(&before, rect);
    }

    fn autosave(&mut self) {
        if let Some(doc) = &self.doc {
            let path = autosave::path_for(&self.paths.autosave, doc.path(), doc.frame_index);
            self.autosaver.save(path, doc.mask.clone());
        }
    }

    // ----- AI -----

    pub fn send_prompts(&mut self) {
        let Some(doc) = &self.doc else { return };
        if doc.prompts.is_empty() {
            return;
        }
        self.worker.send(Request::Prompt { image: doc.id.clone(), frame: doc.frame.clone(), prompts: doc.prompts.clone() });
        self.engine.busy = Some("Segmenting…".into());
    }

    pub fn set_box(&mut self, corners: [f32; 4]) {
        if let Some(doc) = &mut self.doc {
            doc.prompts.bbox = Some(corners);
            self.send_prompts();
        }
    }

    pub fn add_point(&mut self, x: f32, y: f32, positive: bool) {
        if let Some(doc) = &mut self.doc {
            doc.prompts.points.push(crate::model::PointPrompt { x, y, positive });
            self.send_prompts();
        }
    }

    /// An automatic proposal for the shown image, with the edited patch grid if `with_grid`.
    pub fn propose(&mut self, with_grid: bool) {
        let Some(doc) = &self.doc else { return };
        let grid = if with_grid { doc.grid.clone() } else { None };
        self.worker.send(Request::Auto { image: doc.id.clone(), frame: doc.frame.clone(), modality: doc.modality.clone(), grid });
        self.engine.busy = Some(format!("Automatic proposal ({})…", doc.modality));
    }

    pub fn set_modality(&mut self, modality: &str) {
        if let Some(doc) = &mut self.doc {
            doc.modality = modality.to_string();
        }
        self.settings.modality = modality.to_string();
    }

    pub fn set_backend(&mut self, backend: BackendKind) {
        self.settings.backend = backend;
        self.engine.backend = None;
        self.worker.send(Request::Configure { backend, auto_model: self.settings.auto_model.clone() });
    }

    pub(super) fn apply_reply(&mut self, reply: Reply) {
        let current = self.doc.as_ref().map(|d| d.id.generation);
        let is_current = |image: &Option<crate::engine::worker::ImageId>| image.as_ref().is_none_or(|i| Some(i.generation) == current);
        match reply {
            Reply::Busy { image, what } => {
                if is_current(&image) {
                    self.engine.busy = Some(what);
                }
            }
            Reply::Loaded { model, backend, device, note } => {
                self.engine.backend = Some(format!("{model} on {backend} ({device})"));
                if note.is_some() {
                    self.engine.note = note;
                }
            }
            Reply::Prepared { image, .. } => {
                if Some(image.generation) == current {
                    self.engine.busy = None;
                }
            }
            Reply::Mask { image, kind, mask, grid, took, .. } => {
                if Some(image.generation) != current {
                    return;
                }
                self.engine.busy = None;
                self.engine.last_inference = Some((kind, took));
                let Some(doc) = &mut self.doc else { return };
                let labels = mask.labels().iter().map(|&l| if l != 0 { FOREGROUND } else { 0 }).collect();
                let Some(mask) = Mask::from_labels(mask.width(), mask.height(), labels) else { return };
                if kind == ResultKind::Auto {
                    doc.grid = grid;
                }
                if doc.replace_mask(mask) {
                    self.autosave();
                }
            }
            Reply::Error { image, message } => {
                if image.is_none() {
                    // The engine could not score a ranked image: stop ranking rather than wait.
                    if let Some(list) = &mut self.worklist {
                        list.ranking = None;
                    }
                }
                if is_current(&image) {
                    self.engine.busy = None;
                    self.error = Some(message);
                }
            }
            Reply::Uncertainty { path, score } => self.apply_uncertainty(path, score),
        }
    }

    // ----- export -----

    pub(super) fn export_path_for(&self, doc: &Document) -> PathBuf {
        worklist::export_path(doc.path(), self.settings.export_dir.as_deref(), doc.frame_index, doc.source.meta().frames)
    }

    /// Writes the mask as `<stem>_mask.png` (0/255) next to the image or into the export
    /// folder, atomically, never over the source. Returns where it went.
    pub fn export(&mut self) -> Option<PathBuf> {
        let doc = self.doc.as_ref()?;
        let out = self.export_path_for(doc);
        if let Some(dir) = out.parent() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                self.error = Some(format!("{}: cannot create the export folder: {e}", dir.display()));
                return None;
            }
        }
        match crate::imaging::write_mask_png(&doc.mask, &out, doc.path()) {
            Ok(()) => {
                self.message = Some(format!("Exported {}", out.display()));
                let record = ExportRecord { image: doc.path().to_path_buf(), frame: doc.frame_index, mask: out.clone(), modality: doc.modality.clone() };
                if let Err(e) = ExportLog::record(&self.paths.exports, record) {
                    self.message = Some(format!("Exported {} (not added to the training list {}: {e})", out.display(), self.paths.exports.display()));
                }
                self.error = None;
                if let Some(doc) = &mut self.doc {
                    doc.unexported = false;
                }
                Some(out)
            }
            Err(e) => {
                self.error = Some(e.to_string());
                None
            }
        }
    }

    pub(super) fn save_settings(&mut self) {
        if let Err(e) = self.settings.save(&self.paths.settings) {
            self.error = Some(format!("cannot save the settings to {}: {e}", self.paths.settings.display()));
        }
    }

    /// Everything that arrived from the loader, the engine and the autosaver since last frame.
    pub(super) fn poll(&mut self) {
        let loads = self.loader.poll();
        self.apply_loads(loads);
        for reply in self.worker.poll() {
            self.apply_reply(reply);
        }
        if let Some(e) = self.autosaver.take_errors().pop() {
            self.error = Some(e);
        }
        self.poll_training();
    }

    /// Closing while a model trains asks first; confirmed, the run checkpoints and stops, and
    /// the window closes when it has.
    fn handle_close(&mut self, ctx: &egui::Context) {
        let training = self.trainer.is_running();
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
                        self.cancel_training();
                        self.quit = Quit::Stopping;
                    }
                    if ui.button("Keep training").clicked() {
                        self.quit = Quit::No;
                    }
                });
            });
        }
    }

    /// Asks to close the window, as its close button does.
    pub fn request_quit(&mut self) {
        if self.trainer.is_running() {
            self.close_asked = true;
        } else {
            self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        self.ctx.request_repaint();
    }

    /// The window has been told to close (after a confirmed quit during training).
    pub fn quit_confirmed(&self) -> bool {
        self.quit == Quit::Confirmed
    }

    pub fn is_asking_to_quit(&self) -> bool {
        self.quit == Quit::Asking
    }
}

impl eframe::App for AnnotatorApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.poll();
        let ctx = ui.ctx().clone();
        self.handle_close(&ctx);
        if self.tab == Tab::Annotate {
            self.shortcuts(&ctx);
        }
        self.panels_ui(ui);
    }

    fn on_exit(&mut self) {
        self.autosaver.flush();
        // A run still going (the window closed some other way) checkpoints before the thread ends.
        if let Some(run) = &mut self.trainer.run {
            run.stop();
        }
        if let Some(run) = self.trainer.run.take().filter(|r| r.is_running()) {
            let best = run.best_checkpoint();
            drop(run);
            if best.is_file() {
                self.settings.remember_model(&best);
            }
        }
        self.save_settings();
    }
}
