//! The Annotate tab: open images (files, folders as a worklist), view them, paint and fix masks,
//! ask the AI (prompts, automatic proposals, the patch grid), export. This file holds its state
//! and what it does; `panels.rs` its widgets, `canvas.rs` the image area.

mod autosave;
mod canvas;
mod document;
mod gpu_view;
mod history;
mod labels;
mod loader;
mod panels;
mod study;
pub mod tools;
mod volume_export;
mod welcome;
mod worklist;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use self::autosave::Autosaver;
use self::canvas::{Canvas, CanvasAction};
use self::document::Document;
use self::history::Edit;
use self::labels::LabelTable;
use self::study::{SavedWork, Study};
use self::volume_export::VolumeExport;
use self::gpu_view::{CompositeResources, SharedUploads};
use self::loader::{LoadResult, Loader};
use self::tools::Tool;
pub use self::worklist::{ItemState, Worklist, export_path};
use super::background::Background;
use super::context::Shared;
use super::export_log::{ExportLog, ExportRecord};
use super::widgets::model_label;
use crate::engine::worker::{ImageId, Reply, Request, ResultKind};
use crate::imaging::{ImageSource, Mask};

/// What the AI engine is doing, for the status bar.
#[derive(Default)]
pub struct EngineStatus {
    pub busy: Option<String>,
    pub backend: Option<String>,
    pub note: Option<String>,
    pub last_inference: Option<(ResultKind, Duration)>,
    /// The encoder's share of the last answer (zero when the embedding was cached).
    pub last_encode: Option<Duration>,
    /// How long the shown image took to encode on open (zero when it was encoded ahead).
    pub last_prepared: Option<Duration>,
    /// Images encoded ahead, box previews shown and final AI masks applied, since the start
    /// (benchmarks, tests).
    pub encoded_ahead: usize,
    pub previews_shown: usize,
    pub masks_applied: usize,
}

pub struct AnnotateTab {
    loader: Loader,
    autosaver: Autosaver,
    doc: Option<Document>,
    /// The open file's other frames, undo history and label table (set with `doc`).
    study: Option<Study>,
    worklist: Option<Worklist>,
    /// Worklist states read again after the export folder changed (folder, states).
    state_reads: Background<(PathBuf, HashMap<PathBuf, ItemState>)>,
    /// The export folder chosen in its dialog.
    export_picks: Background<PathBuf>,
    canvas: Canvas,
    tool: Tool,
    engine: EngineStatus,
    generation: u64,
    /// Encode each image as soon as it opens (so the first prompt is quick), and its worklist
    /// neighbours when the engine is idle.
    prepare_on_open: bool,
    /// The frame or slice asked for and not yet shown.
    pending_frame: Option<u32>,
    /// The volume a propagation runs on, the label it writes and whether it keeps other labels.
    propagating: Option<(PathBuf, u8, bool)>,
    /// Volume exports being written (the volume, then what was written or why not).
    volume_exports: Background<(PathBuf, Result<VolumeExport, String>)>,
    /// Label-table saves that failed.
    table_saves: Background<Result<(), String>>,
    /// The label table changed and is not saved yet (saved once no button is held).
    table_dirty: bool,
    /// The newest label-table save asked for; older ones still queued skip their write.
    table_version: Arc<std::sync::atomic::AtomicU64>,
    /// The shown mask's pixels per label, for (document generation, mask revision).
    shown_histogram: Option<((u64, u64), [u64; 256])>,
}

impl AnnotateTab {
    pub fn new(cc: &eframe::CreationContext<'_>, prepare_on_open: bool, autosave_dir: PathBuf) -> Self {
        let gpu: Option<SharedUploads> = cc.wgpu_render_state.as_ref().map(|state| {
            CompositeResources::install(state);
            SharedUploads::default()
        });
        let ctx = &cc.egui_ctx;
        let autosaver = Autosaver::start();
        Self {
            loader: Loader::new(ctx, autosave_dir, autosaver.reader()),
            autosaver,
            doc: None,
            study: None,
            worklist: None,
            state_reads: Background::new(ctx),
            export_picks: Background::new(ctx),
            canvas: Canvas::new(gpu),
            tool: Tool::Brush,
            engine: EngineStatus::default(),
            generation: 0,
            prepare_on_open,
            pending_frame: None,
            propagating: None,
            volume_exports: Background::new(ctx),
            table_saves: Background::new(ctx),
            table_dirty: false,
            table_version: Default::default(),
            shown_histogram: None,
        }
    }

    // ----- what the shell, tests and scripts read -----

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

    /// The modality the shown image is segmented as.
    pub fn modality(&self) -> Option<&str> {
        self.doc.as_ref().map(|d| d.modality.as_str())
    }

    pub fn tool(&self) -> Tool {
        self.tool
    }

    pub fn set_tool(&mut self, tool: Tool) {
        self.tool = tool;
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

    pub fn engine_status(&self) -> &EngineStatus {
        &self.engine
    }

    /// The screen position of image pixel (x, y) in the last drawn frame.
    pub fn screen_pos(&self, x: f32, y: f32) -> Option<egui::Pos2> {
        self.canvas.view.screen_from_image(egui::pos2(x, y))
    }

    pub fn is_loading(&self) -> bool {
        self.loader.is_busy()
    }

    pub fn is_ranking(&self) -> bool {
        self.worklist.as_ref().is_some_and(|l| l.ranking.is_some())
    }

    /// Waits until every autosave is written. Tests, and closing the window.
    pub fn flush_autosave(&self) {
        self.autosaver.flush();
    }

    /// Blocks until the pending reads (a folder, then its first image) have arrived and been
    /// applied, and the volume exports under way are written. Tests and scripts only.
    pub fn wait_for_load(&mut self, shared: &mut Shared) {
        while self.loader.is_busy() {
            let results = self.loader.wait();
            self.apply_loads(shared, results);
        }
        while self.volume_exports.is_busy() {
            match self.volume_exports.wait(Duration::from_secs(600)) {
                Some((volume, result)) => self.apply_volume_export(shared, &volume, result),
                None => break,
            }
        }
    }

    /// The label table of the open file.
    pub fn label_table(&self) -> Option<&LabelTable> {
        self.study.as_ref().map(|s| &s.labels)
    }

    /// Pixels per label value over every frame or slice of the open file.
    pub fn label_counts(&self) -> Option<[u64; 256]> {
        let (doc, study) = (self.doc.as_ref()?, self.study.as_ref()?);
        Some(study.counts_with(&doc.mask))
    }

    /// Applies the engine's replies as they come until `done` holds (false after `timeout`).
    /// Tests and benchmarks.
    pub fn wait_for_engine_until(&mut self, shared: &mut Shared, timeout: Duration, done: impl Fn(&EngineStatus) -> bool) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !done(&self.engine) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            if let Some(reply) = shared.engine.wait(Duration::from_millis(50)) {
                self.apply_reply(shared, reply);
            }
        }
        true
    }

    /// Blocks until the engine has answered the pending AI work (or `timeout`). Tests only.
    pub fn wait_for_engine(&mut self, shared: &mut Shared, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            match shared.engine.wait(Duration::from_millis(100)) {
                Some(reply) => {
                    let done = matches!(reply, Reply::Mask { .. } | Reply::Error { .. } | Reply::Prepared { .. });
                    self.apply_reply(shared, reply);
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

    // ----- opening -----

    /// Opens a file, or a folder as a worklist; both are read on a background thread.
    /// Waits for the queued autosaves (at most 3 s); the crash reporter runs it before its report.
    pub fn autosave_flush_handle(&self) -> impl Fn() + Send + Sync + 'static {
        self.autosaver.flush_handle(std::time::Duration::from_secs(3))
    }

    pub fn open_path(&mut self, shared: &mut Shared, path: PathBuf) {
        crate::app::crash::note("open");
        if let Some(path) = self.open_member_series(path) {
            self.loader.open_any(path, shared.settings.export_dir.clone());
        }
    }

    /// Opens a worklist item: a file, a series folder, or a series among the folder's files.
    fn open_item(&mut self, path: PathBuf) {
        if let Some(path) = self.open_member_series(path) {
            self.loader.open(path);
        }
    }

    /// Opens `path` if the worklist lists it as a series among its folder's files; else gives
    /// it back to be opened as a file or folder.
    fn open_member_series(&mut self, path: PathBuf) -> Option<PathBuf> {
        match self.worklist.as_ref().and_then(|l| l.members.get(&path)).cloned() {
            Some(series) => {
                self.loader.open_series(path, series);
                None
            }
            None => Some(path),
        }
    }

    /// The next (`+1`) or previous (`-1`) image of the worklist.
    pub fn step_worklist(&mut self, by: isize) {
        if let Some(next) = self.worklist.as_ref().and_then(|w| w.step(by)).cloned() {
            self.open_item(next);
        }
    }

    pub fn show_frame(&mut self, index: u32) {
        if let Some(doc) = &self.doc {
            self.pending_frame = Some(index);
            self.loader.frame(doc.source.clone(), index);
        }
    }

    /// The next (`+1`) or previous (`-1`) frame or slice, counted from the one asked for last
    /// (a held key runs ahead of the loads).
    pub fn step_frame(&mut self, by: i64) {
        let Some(doc) = &self.doc else { return };
        let frames = doc.source.meta().frames;
        let from = self.pending_frame.unwrap_or(doc.frame_index);
        let to = (i64::from(from) + by).clamp(0, i64::from(frames) - 1) as u32;
        if frames > 1 && to != from {
            self.show_frame(to);
        }
    }

    fn apply_loads(&mut self, shared: &mut Shared, results: Vec<LoadResult>) {
        for result in results {
            match result {
                LoadResult::Loaded { source, frame_index, frame, saved } => self.show(shared, source, frame_index, frame, saved),
                LoadResult::Folder(list) => {
                    shared.settings.remember_folder(&list.folder);
                    let first = list.items[0].clone();
                    self.worklist = Some(list);
                    self.open_item(first);
                }
                LoadResult::Failed(message) => {
                    self.pending_frame = None;
                    shared.set_error(message);
                }
                LoadResult::ImportFailed(message) => shared.set_error(format!("labels not imported: {message}")),
                LoadResult::Picked(path) => self.open_path(shared, path),
                LoadResult::LabelsPicked(path) => self.import_labels(path),
                LoadResult::Labels { volume, from, labels, shape, first, names } => {
                    self.apply_imported_labels(shared, &volume, &from, &labels, shape, first);
                    self.name_imported_labels(&volume, names);
                }
            }
        }
    }

    /// Shows a frame: of a newly opened file with its `saved` work (a new study), or another
    /// frame of the open one (`saved` is `None`; the shown mask goes back to the study).
    fn show(&mut self, shared: &mut Shared, source: Arc<ImageSource>, frame_index: u32, frame: crate::imaging::Frame, saved: Option<SavedWork>) {
        self.generation += 1;
        // The loader delivers only the newest request: whatever was pending is answered.
        self.pending_frame = None;
        let same_file = self.doc.as_ref().is_some_and(|d| Arc::ptr_eq(&d.source, &source));
        let old_window = self.doc.as_ref().map(|d| d.window);
        let mut doc = Document::new(source, frame_index, frame, self.generation, &shared.settings.modality);
        if same_file {
            // Another frame of the same file keeps the view.
            if let Some(window) = old_window {
                doc.set_window(window);
            }
        } else {
            self.canvas.view.fit();
            let name = doc.path().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            for warning in &doc.source.meta().warnings {
                shared.warn(format!("{name}: {warning}"));
            }
        }
        let size = doc.size();
        let same_study = saved.is_none() && self.study.as_ref().is_some_and(|s| s.path == doc.path());
        // A stroke still being drawn belongs to the frame it started on: taken back.
        let abandoned = self.canvas.abandon_gesture();
        if !same_study {
            self.save_label_table(shared);
        }
        match (saved, self.doc.take()) {
            (None, Some(mut old)) if same_study => {
                old.drop_preview();
                if let Some(before) = abandoned {
                    old.mask = before;
                }
                doc.unexported = old.unexported;
                if let Some(study) = &mut self.study {
                    study.put(old.frame_index, old.mask);
                }
            }
            (saved, _) => {
                let saved = saved.unwrap_or_default();
                for warning in &saved.warnings {
                    shared.warn(warning.clone());
                }
                let restored = !saved.masks.is_empty();
                self.study = Some(Study::new(doc.path(), size, saved));
                doc.unexported = restored && !export_path_for(shared, &doc).is_file();
            }
        }
        if let Some(study) = &mut self.study {
            doc.mask = study.take(frame_index);
        }
        // A series listed among its folder's files has a name, not a path to reopen.
        if !self.worklist.as_ref().is_some_and(|l| l.members.contains_key(doc.path())) {
            shared.settings.remember_file(doc.path());
        }
        if let Some(list) = &mut self.worklist {
            list.select(doc.path());
        }
        if self.prepare_on_open {
            shared.engine.send(Request::Prepare { image: doc.id.clone(), frame: doc.frame.clone() });
            if let Some(list) = &self.worklist {
                // Next, previous, the one after next: where the user most likely goes.
                let paths = [1, -1, 2].iter().filter_map(|&by| list.step(by).cloned()).filter(|p| !crate::imaging::nifti::is_nifti_path(p) && !list.series.contains(p)).collect();
                shared.engine.send(Request::EncodeAhead { paths });
            }
        }
        self.doc = Some(doc);
        shared.status.error = None;
        self.engine.busy = None;
    }

    // ----- editing -----

    /// Records a finished edit (stroke, fill, lasso) as one undo step and autosaves.
    fn commit_edit(&mut self, shared: &Shared, before: &Mask, hint: tools::PixelRect) {
        let Some(doc) = &mut self.doc else { return };
        if shared.settings.protect_other_labels {
            hint.protect_other_labels(before, &mut doc.mask, shared.settings.active_label.max(1));
        }
        doc.mark_dirty(hint);
        let edit = Edit::between(doc.frame_index, before, &doc.mask, hint);
        self.record(shared, edit.into_iter().collect());
    }

    /// Records edits (of the shown frame and any others, already applied) as one undo step;
    /// autosaves the shown frame when it changed.
    fn record(&mut self, shared: &Shared, edits: Vec<Edit>) {
        let (Some(doc), Some(study)) = (&self.doc, &mut self.study) else { return };
        let shown = edits.iter().any(|e| e.frame == doc.frame_index);
        if study.history.record_step(edits) && shown {
            self.autosave(shared);
        }
    }

    pub fn can_undo(&self) -> bool {
        self.study.as_ref().is_some_and(|s| s.history.can_undo())
    }

    pub fn can_redo(&self) -> bool {
        self.study.as_ref().is_some_and(|s| s.history.can_redo())
    }

    pub fn undo(&mut self, shared: &mut Shared) {
        crate::app::crash::note("undo");
        self.step_history(shared, true);
    }

    pub fn redo(&mut self, shared: &mut Shared) {
        crate::app::crash::note("redo");
        self.step_history(shared, false);
    }

    /// Undoes or redoes the last step on every frame it touched; the other frames' masks are
    /// autosaved, and the status line says which slices changed besides the shown one.
    fn step_history(&mut self, shared: &mut Shared, undoing: bool) {
        let (Some(doc), Some(study)) = (&mut self.doc, &mut self.study) else { return };
        doc.drop_preview();
        let mut others = std::collections::BTreeSet::new();
        let mut shown = false;
        for (frame, rect) in study.step_back(undoing, doc.frame_index, &mut doc.mask) {
            if frame == doc.frame_index {
                doc.mark_dirty(rect);
                shown = true;
            } else {
                others.insert(frame);
            }
        }
        let masks: Vec<(u32, Mask)> = others.iter().map(|&frame| (frame, study.mask(frame))).collect();
        for (frame, mask) in masks {
            self.save_frame(shared, frame, mask);
        }
        if shown {
            self.autosave(shared);
        }
        if let (Some(first), Some(last)) = (others.first(), others.last()) {
            let what = if undoing { "Undone" } else { "Redone" };
            shared.set_message(format!("{what} on {} other slices ({first}–{last})", others.len()));
        }
    }

    pub fn clear_mask(&mut self, shared: &Shared) {
        let Some(doc) = &mut self.doc else { return };
        let (w, h) = doc.size();
        doc.prompts = Default::default();
        let edit = doc.replace_mask(Mask::new(w, h));
        self.record(shared, edit.into_iter().collect());
    }

    pub fn fill_at(&mut self, shared: &Shared, x: f32, y: f32, label: u8) {
        let Some(doc) = &mut self.doc else { return };
        if x < 0.0 || y < 0.0 {
            return;
        }
        let before = doc.mask.clone();
        let rect = tools::flood_fill(&mut doc.mask, x as u32, y as u32, label);
        self.commit_edit(shared, &before, rect);
    }

    fn autosave(&mut self, shared: &Shared) {
        let Some(doc) = &self.doc else { return };
        let (frame, mask) = (doc.frame_index, doc.mask.clone());
        self.save_frame(shared, frame, mask);
    }

    /// Autosaves frame `frame`'s mask of the open file (on the autosave thread).
    fn save_frame(&mut self, shared: &Shared, frame: u32, mask: Mask) {
        let (Some(doc), Some(study)) = (&self.doc, &self.study) else { return };
        self.autosaver.save(autosave::path_for_key(&shared.paths.autosave, &study.autosave_key, frame), mask);
        // The worklist shows the work in progress without looking for the file.
        if let Some(list) = &mut self.worklist {
            list.autosaved(doc.path(), frame);
        }
    }

    /// The label table changed: the overlay follows at once; the table is saved beside the
    /// study's autosaves in the background once no button is held (a colour or opacity drag
    /// saves once).
    pub fn label_table_changed(&mut self) {
        self.table_dirty = true;
    }

    /// Saves the label table now if it changed, on a background thread; an older save still
    /// queued skips its write, so the newest table is the one on disk.
    fn save_label_table(&mut self, shared: &Shared) {
        let Some(study) = self.study.as_ref().filter(|_| self.table_dirty) else { return };
        self.table_dirty = false;
        let path = LabelTable::path_beside(&autosave::path_for_key(&shared.paths.autosave, &study.autosave_key, 0));
        let table = study.labels.clone();
        let latest = self.table_version.clone();
        let version = latest.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.table_saves.spawn(move || {
            static WRITES: std::sync::Mutex<()> = std::sync::Mutex::new(());
            let _one_at_a_time = WRITES.lock();
            if latest.load(std::sync::atomic::Ordering::SeqCst) != version {
                return Ok(());
            }
            table.save(&path)
        });
    }

    /// The shown mask's pixels per label, counted again only when the mask changed.
    fn shown_histogram(&mut self) -> Option<[u64; 256]> {
        let doc = self.doc.as_ref()?;
        let key = (doc.id.generation, doc.revision);
        match &self.shown_histogram {
            Some((cached, histogram)) if *cached == key => Some(*histogram),
            _ => {
                let histogram = study::histogram(&doc.mask);
                self.shown_histogram = Some((key, histogram));
                Some(histogram)
            }
        }
    }

    /// The label table to edit (call [`Self::label_table_changed`] after a change).
    pub fn label_table_mut(&mut self) -> Option<&mut LabelTable> {
        self.study.as_mut().map(|s| &mut s.labels)
    }

    fn apply_canvas(&mut self, shared: &mut Shared, action: CanvasAction) {
        crate::app::crash::note(action.kind());
        match action {
            CanvasAction::Edited { before, rect } => self.commit_edit(shared, &before, rect),
            CanvasAction::Fill { x, y, label } => self.fill_at(shared, x, y, label),
            CanvasAction::Box(corners) => self.set_box(shared, corners),
            CanvasAction::BoxDragged(corners) => self.drag_box(shared, corners),
            CanvasAction::Point { x, y, positive } => self.add_point(shared, x, y, positive),
            CanvasAction::GridChanged => self.propose(shared, true),
            CanvasAction::StepSlices(by) => self.step_frame(by),
        }
    }

    // ----- AI -----

    pub fn send_prompts(&mut self, shared: &Shared) {
        let Some(doc) = &self.doc else { return };
        if doc.prompts.is_empty() {
            return;
        }
        shared.engine.send(doc.prompt_request(false));
        self.engine.busy = Some("Segmenting…".into());
    }

    pub fn set_box(&mut self, shared: &Shared, corners: [f32; 4]) {
        if let Some(doc) = &mut self.doc {
            doc.prompts.bbox = Some(corners);
            self.send_prompts(shared);
        }
    }

    /// The box while it is dragged: the mask follows it (shown, not an undo step; the engine
    /// answers only the newest of the boxes queued).
    pub fn drag_box(&mut self, shared: &Shared, corners: [f32; 4]) {
        let Some(doc) = &mut self.doc else { return };
        doc.prompts.bbox = Some(corners);
        shared.engine.send(doc.prompt_request(true));
    }

    pub fn add_point(&mut self, shared: &Shared, x: f32, y: f32, positive: bool) {
        if let Some(doc) = &mut self.doc {
            doc.prompts.points.push(crate::model::PointPrompt { x, y, positive });
            self.send_prompts(shared);
        }
    }

    /// An automatic proposal for the shown image, with the edited patch grid if `with_grid`.
    pub fn propose(&mut self, shared: &Shared, with_grid: bool) {
        crate::app::crash::note(if with_grid { "propose with grid" } else { "propose" });
        let Some(doc) = &self.doc else { return };
        let grid = if with_grid { doc.grid.clone() } else { None };
        shared.engine.send(Request::Auto { image: doc.id.clone(), frame: doc.frame.clone(), modality: doc.modality.clone(), grid });
        self.engine.busy = Some(format!("Automatic proposal ({})…", doc.modality));
    }

    /// Reads a label map (NIfTI, DICOM SEG or PNG) onto the open volume or image, in the
    /// background.
    pub fn import_labels(&mut self, path: PathBuf) {
        crate::app::crash::note("import labels");
        if let Some(doc) = &self.doc {
            self.loader.import_labels(doc.source.clone(), doc.frame_index, path);
        }
    }

    /// An imported label map: its labels written over each slice's mask, all as one undo step;
    /// where it has no label, the masks stay.
    fn apply_imported_labels(&mut self, shared: &mut Shared, volume: &std::path::Path, from: &std::path::Path, labels: &[u8], shape: [usize; 3], first: usize) {
        let Some(doc) = &self.doc else { return };
        if doc.path() != volume || doc.size() != (shape[0] as u32, shape[1] as u32) {
            return;
        }
        let plane = (shape[0] * shape[1]).max(1);
        let (w, h) = doc.size();
        let labelled: Vec<usize> = labels.chunks_exact(plane).enumerate().filter(|(_, s)| s.iter().any(|&l| l != 0)).map(|(k, _)| first + k).collect();
        let values: std::collections::BTreeSet<u8> = labels.iter().copied().filter(|&l| l != 0).collect();
        self.update_slices(shared, labelled.iter().copied(), |k, mask| {
            let slice = &labels[(k - first) * plane..(k - first + 1) * plane];
            let merged = mask.labels().iter().zip(slice).map(|(&old, &new)| if new != 0 { new } else { old }).collect();
            Mask::from_labels(w, h, merged)
        });
        let values: Vec<String> = values.iter().map(u8::to_string).collect();
        shared.set_message(format!("Imported labels {} on {} slices from {}", values.join(", "), labelled.len(), from.display()));
    }

    /// Erases `label` from every frame or slice of the file (one undo step).
    pub fn delete_label(&mut self, shared: &mut Shared, label: u8) {
        crate::app::crash::note("delete label");
        let (Some(doc), Some(study)) = (&self.doc, &self.study) else { return };
        let mut frames: Vec<usize> = study.frames_with(label).into_iter().map(|k| k as usize).collect();
        if doc.mask.labels().contains(&label) {
            frames.push(doc.frame_index as usize);
        }
        let erase = |_: usize, mask: &Mask| {
            Mask::from_labels(mask.width(), mask.height(), mask.labels().iter().map(|&l| if l == label { 0 } else { l }).collect())
        };
        let name = study.labels.get(label).name;
        let erased = self.update_slices(shared, frames, erase);
        shared.set_message(format!("{name} erased from {erased} slices (Ctrl+Z brings it back)"));
    }

    /// Segment names from an imported DICOM SEG go into the label table where a label still has
    /// its default name.
    fn name_imported_labels(&mut self, volume: &std::path::Path, names: Vec<(u8, String)>) {
        let Some(study) = self.study.as_mut().filter(|s| s.path == volume) else { return };
        let mut named = false;
        for (value, name) in names.into_iter().filter(|(v, n)| *v != 0 && !n.trim().is_empty()) {
            let entry = study.labels.entry(value);
            if entry.name == labels::LabelInfo::default_for(value).name {
                entry.name = name.trim().to_string();
                named = true;
            }
        }
        if named {
            self.label_table_changed();
        }
    }

    /// Writes into each of `slices` the mask `merge(slice, its mask)` gives, all as one undo
    /// step; the changed slices are autosaved. Returns how many slices were merged.
    fn update_slices(&mut self, shared: &mut Shared, slices: impl IntoIterator<Item = usize>, merge: impl Fn(usize, &Mask) -> Option<Mask>) -> usize {
        let (Some(doc), Some(study)) = (&mut self.doc, &mut self.study) else { return 0 };
        let (mut edits, mut saves, mut merged) = (Vec::new(), Vec::new(), 0);
        for k in slices {
            if k as u32 == doc.frame_index {
                // Over the mask from before any box preview (a preview is no edit).
                doc.drop_preview();
                if let Some(mask) = merge(k, &doc.mask) {
                    edits.extend(doc.replace_mask(mask));
                }
            } else if let Some((edit, mask)) = study.update(k as u32, |mask| merge(k, mask)) {
                edits.push(edit);
                saves.push((k as u32, mask));
            }
            merged += 1;
        }
        for (k, mask) in saves {
            self.save_frame(shared, k, mask);
        }
        self.record(shared, edits);
        merged
    }

    /// The volume, label and keep-other-labels setting a slice-by-slice AI run writes into:
    /// the ones of now, even if the user picks another label while it runs.
    fn remember_ai_target(&mut self, shared: &Shared) {
        if let Some(doc) = &self.doc {
            self.propagating = Some((doc.path().to_path_buf(), shared.settings.active_label.max(1), shared.settings.protect_other_labels));
        }
    }

    /// De-LightSAM's automatic proposal on every slice of the volume, into the active label.
    pub fn propose_every_slice(&mut self, shared: &Shared) {
        crate::app::crash::note("propose every slice");
        let Some(doc) = &self.doc else { return };
        if doc.source.volume().is_none() {
            return;
        }
        shared.engine.send(Request::AutoVolume { image: doc.id.clone(), source: doc.source.clone(), modality: doc.modality.clone() });
        self.engine.busy = Some(format!("Automatic proposal ({}) on every slice…", doc.modality));
        self.remember_ai_target(shared);
    }

    /// Carries the shown slice's box through the volume's slices (see `Request::Propagate`).
    pub fn propagate(&mut self, shared: &Shared) {
        crate::app::crash::note("propagate");
        let Some(doc) = &self.doc else { return };
        let (Some(bbox), Some(_)) = (doc.prompts.bbox, doc.source.volume()) else { return };
        shared.engine.send(Request::Propagate {
            image: doc.id.clone(),
            source: doc.source.clone(),
            start: doc.frame_index as usize,
            bbox,
        });
        self.engine.busy = Some("Propagating through the slices…".into());
        self.remember_ai_target(shared);
    }

    /// A propagation's masks: the shown slice's as an undo step, the others merged into their
    /// autosaves (the active label replaced, other labels kept).
    fn apply_propagation(&mut self, shared: &mut Shared, masks: Vec<(usize, Mask)>, took: Duration, cancelled: bool) {
        self.engine.busy = None;
        let Some((path, label, protect)) = self.propagating.take() else { return };
        if self.doc.as_ref().is_none_or(|doc| doc.path() != path) {
            return;
        }
        let (first, last) = (masks.first().map_or(0, |m| m.0), masks.last().map_or(0, |m| m.0));
        // An empty result (nothing found from the box) never clears what a slice holds.
        let found: std::collections::BTreeMap<usize, Mask> = masks.into_iter().filter(|(_, m)| m.foreground_count() > 0).collect();
        let labelled = self.update_slices(shared, found.keys().copied(), |k, mask| document::merge_label(mask, &found[&k], label, protect));
        let stopped = if cancelled { ", stopped early by another request" } else { "" };
        shared.set_message(format!(
            "Label {label} on {labelled} slices (of {first}–{last}) in {:.1} s{stopped}",
            took.as_secs_f32()
        ));
    }

    pub fn set_modality(&mut self, shared: &mut Shared, modality: &str) {
        if let Some(doc) = &mut self.doc {
            doc.modality = modality.to_string();
        }
        shared.settings.modality = modality.to_string();
    }

    /// Runs the AI on `backend`, or on the automatic choice (`None`).
    pub fn set_backend(&mut self, shared: &mut Shared, backend: Option<crate::model::backend::BackendKind>) {
        shared.settings.engine = backend;
        self.engine.backend = None;
        shared.configure_engine();
    }

    /// Uses a De-LightSAM record for automatic proposals (`None`: the shipped model), and
    /// remembers it.
    pub fn use_model(&mut self, shared: &mut Shared, model: Option<PathBuf>) {
        if let Some(path) = &model {
            shared.settings.remember_model(path);
        }
        shared.set_message(format!("Automatic proposals now use {}", model_label(model.as_deref())));
        shared.settings.auto_model = model;
        shared.configure_engine();
        self.engine.backend = None;
        self.engine.note = None;
        shared.save_settings();
    }

    /// Active learning: scores every image of the worklist that is not annotated yet by the
    /// model's uncertainty, one engine request at a time (prompts on the shown image go in
    /// between), then orders the list most uncertain first.
    pub fn rank_worklist(&mut self, shared: &mut Shared) {
        let modality = self.doc.as_ref().map(|d| d.modality.clone()).unwrap_or_else(|| shared.settings.modality.clone());
        let Some(list) = &mut self.worklist else { return };
        // Series are volumes: ranked by their slices some day, not as one image.
        let pending: Vec<PathBuf> = list.items.iter().filter(|p| list.state_of(p) == ItemState::Untouched && !list.series.contains(*p)).cloned().collect();
        if pending.is_empty() {
            shared.set_message("every image of the worklist is annotated already");
            return;
        }
        list.uncertainty.clear();
        list.ranking = Some(worklist::Ranking { total: pending.len(), pending, modality });
        self.rank_next(shared);
    }

    fn rank_next(&mut self, shared: &mut Shared) {
        let Some(list) = &mut self.worklist else { return };
        let Some(ranking) = &list.ranking else { return };
        match ranking.pending.first() {
            Some(path) => shared.engine.send(Request::Uncertainty { path: path.clone(), modality: ranking.modality.clone() }),
            None => {
                list.ranking = None;
                list.order_by_uncertainty();
                shared.set_message("Worklist ordered: most uncertain images first");
            }
        }
    }

    fn apply_uncertainty(&mut self, shared: &mut Shared, path: PathBuf, score: Result<f32, String>) {
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
            Err(e) => shared.set_error(format!("{}: not ranked: {e}", path.display())),
        }
        self.rank_next(shared);
    }

    fn apply_reply(&mut self, shared: &mut Shared, reply: Reply) {
        let current = self.doc.as_ref().map(|d| d.id.generation);
        let is_current = |image: &Option<ImageId>| image.as_ref().is_none_or(|i| Some(i.generation) == current);
        match reply {
            Reply::Busy { image, what } => {
                if is_current(&image) {
                    self.engine.busy = Some(what);
                }
            }
            Reply::Loaded { model, backend, device, note } => {
                self.engine.backend = Some(format!("{model} on {backend} ({device})"));
                crate::app::crash::set_backend(format!("{backend} ({device})"));
                if note.is_some() {
                    self.engine.note = note;
                }
            }
            Reply::Prepared { image, took } => {
                if Some(image.generation) == current {
                    self.engine.busy = None;
                    self.engine.last_prepared = Some(took);
                }
            }
            Reply::Mask { image, kind, mask, grid, took, encode, preview } => {
                if Some(image.generation) != current {
                    return;
                }
                if !preview {
                    self.engine.busy = None;
                }
                self.engine.last_inference = Some((kind, took));
                self.engine.last_encode = Some(encode);
                let Some(doc) = &mut self.doc else { return };
                let (label, protect) = (shared.settings.active_label.max(1), shared.settings.protect_other_labels);
                // Into the active label, over the mask as it was before any box preview.
                let base = doc.preview_base().unwrap_or(&doc.mask);
                let Some(mask) = document::merge_label(base, &mask, label, protect) else { return };
                if kind == ResultKind::Auto {
                    doc.grid = grid;
                }
                if preview {
                    self.engine.previews_shown += 1;
                    doc.preview_mask(mask);
                } else {
                    self.engine.masks_applied += 1;
                    let edit = doc.replace_mask(mask);
                    self.record(shared, edit.into_iter().collect());
                }
            }
            Reply::EncodedAhead { path, took } => {
                self.engine.encoded_ahead += 1;
                log::debug!("encoded ahead in {} ms: {}", took.as_millis(), path.display());
            }
            Reply::Propagated { masks, took, cancelled, .. } => self.apply_propagation(shared, masks, took, cancelled),
            Reply::WarmedUp { took } => {
                self.engine.busy = None;
                shared.set_message(format!("AI ready on {} (warmed up in {:.1} s)", shared.engine_backend(), took.as_secs_f32()));
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
                    shared.set_error(message);
                }
            }
            Reply::Uncertainty { path, score } => self.apply_uncertainty(shared, path, score),
        }
    }

    // ----- export -----

    /// Writes the mask as `<stem>_mask.png` (0/255) next to the image or into the export
    /// folder, atomically, never over the source. Returns where it went. A failed export
    /// changes nothing: the mask stays open, unexported, and in its autosave.
    pub fn export(&mut self, shared: &mut Shared) -> Option<PathBuf> {
        crate::app::crash::note("export");
        let doc = self.doc.as_ref()?;
        if doc.source.volume().is_some() {
            return self.export_volume(shared);
        }
        let out = export_path_for(shared, doc);
        let folder_made = match out.parent() {
            Some(dir) => std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create the export folder: {e}", dir.display())),
            None => Ok(()),
        };
        let written = folder_made.and_then(|()| crate::imaging::write_mask_png(&doc.mask, &out, doc.path()).map_err(|e| e.to_string()));
        if let Err(cause) = written {
            shared.set_error(format!("mask not exported: {cause}; the mask stays open"));
            return None;
        }
        shared.status.error = None;
        shared.set_message(format!("Exported {}", out.display()));
        let record = ExportRecord { image: doc.path().to_path_buf(), frame: doc.frame_index, mask: out.clone(), modality: doc.modality.clone() };
        match ExportLog::record(&shared.paths.exports, record) {
            Ok(None) => {}
            Ok(Some(warning)) => shared.warn(warning),
            Err(e) => shared.set_message(format!("Exported {} (not added to the training list: {e})", out.display())),
        }
        if let Some(list) = &mut self.worklist {
            list.exported(doc.path(), &out, shared.settings.export_dir.as_deref());
        }
        if let Some(doc) = &mut self.doc {
            doc.unexported = false;
        }
        Some(out)
    }

    /// A volume's masks, every slice, as one label volume (see [`volume_export`]), written in
    /// the background from a copy of the study; returns where the NIfTI goes.
    fn export_volume(&mut self, shared: &mut Shared) -> Option<PathBuf> {
        let (doc, study) = (self.doc.as_ref()?, self.study.as_ref()?);
        let labels = study.label_volume(doc.source.meta().frames, doc.frame_index, &doc.mask);
        let (source, table, export_dir) = (doc.source.clone(), study.labels.clone(), shared.settings.export_dir.clone());
        let out = volume_export::volume_export_path(doc.path(), export_dir.as_deref());
        let volume = doc.path().to_path_buf();
        self.volume_exports.spawn(move || (volume, volume_export::export_volume(&source, labels, &table, export_dir.as_deref())));
        shared.set_message(format!("Exporting {}…", out.display()));
        Some(out)
    }

    fn apply_volume_export(&mut self, shared: &mut Shared, volume: &std::path::Path, result: Result<VolumeExport, String>) {
        match result {
            Ok(done) => {
                let names: Vec<String> = done.files.iter().map(|f| f.display().to_string()).collect();
                let skipped = done.seg_skipped.map(|why| format!(" (no DICOM SEG: {why})")).unwrap_or_default();
                let table = self.study.as_ref().filter(|s| s.path == volume).map(|s| s.labels.clone()).unwrap_or_default();
                let volumes: Vec<String> = done.per_label.iter().map(|(v, _, ml)| format!("{} {ml:.2} mL", table.get(*v).name)).collect();
                shared.status.error = None;
                shared.set_message(format!("Exported {} ({} slices labelled: {}){skipped}", names.join(", "), done.labelled_slices, volumes.join(", ")));
                if let Some(doc) = self.doc.as_mut().filter(|d| d.path() == volume) {
                    doc.unexported = false;
                }
                if let Some(list) = &mut self.worklist {
                    list.volume_exported(volume);
                }
            }
            Err(cause) => shared.set_error(format!("volume not exported: {cause}; the masks stay open and autosaved")),
        }
    }

    /// Exports into `folder` from now on (`None`: next to each image); the worklist's states
    /// are read again for the new place, on a background thread.
    pub fn set_export_dir(&mut self, shared: &mut Shared, folder: Option<PathBuf>) {
        shared.settings.export_dir = folder;
        if let Some(list) = &self.worklist {
            let (items, export_dir, autosave_dir) = (list.items.clone(), shared.settings.export_dir.clone(), shared.paths.autosave.clone());
            let folder = list.folder.clone();
            self.state_reads.spawn(move || (folder, worklist::read_states(&items, export_dir.as_deref(), &autosave_dir)));
        }
    }

    /// Everything that arrived from the loader, the engine, the autosaver and the background
    /// reads since the last frame.
    pub fn poll(&mut self, shared: &mut Shared) {
        let loads = self.loader.poll();
        self.apply_loads(shared, loads);
        for reply in shared.engine.poll() {
            self.apply_reply(shared, reply);
        }
        if let Some(e) = self.autosaver.take_errors().pop() {
            shared.set_error(e);
        }
        for (folder, states) in self.state_reads.poll() {
            if let Some(list) = self.worklist.as_mut().filter(|l| l.folder == folder) {
                list.set_states(states);
            }
        }
        if let Some(folder) = self.export_picks.poll().pop() {
            self.set_export_dir(shared, Some(folder));
        }
        for (volume, result) in self.volume_exports.poll() {
            self.apply_volume_export(shared, &volume, result);
        }
        for failed in self.table_saves.poll().into_iter().filter_map(Result::err) {
            shared.set_error(failed);
        }
        if self.table_dirty && !shared.ctx.input(|i| i.pointer.any_down()) {
            self.save_label_table(shared);
        }
    }

    /// The window is closing: everything queued is written.
    pub fn on_exit(&mut self, shared: &Shared) {
        self.save_label_table(shared);
        self.autosaver.flush();
        while self.table_saves.is_busy() {
            if self.table_saves.wait(Duration::from_secs(5)).is_none() {
                break;
            }
        }
    }
}

fn export_path_for(shared: &Shared, doc: &Document) -> PathBuf {
    if doc.source.volume().is_some() {
        return volume_export::volume_export_path(doc.path(), shared.settings.export_dir.as_deref());
    }
    export_path(doc.path(), shared.settings.export_dir.as_deref(), doc.frame_index, doc.source.meta().frames)
}
