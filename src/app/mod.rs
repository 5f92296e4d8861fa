//! The window. Annotate tab: open images (command line, File menu, drag and drop, folders as a
//! worklist), view them (zoom, pan, window/level), paint and fix masks (brush, eraser, fill,
//! lasso, undo/redo), ask the AI (box and point prompts with LiteMedSAM, automatic proposals and
//! an editable patch grid with De-LightSAM) and export. Train tab: fine-tune De-LightSAM on
//! folders or on the exported masks, watch it learn, use the result. Files are read, models run
//! and train on background threads; the UI thread never waits for them.
//!
//! Structure (as in egui's demo app and rerun's viewer): `shell` owns the two tabs and the
//! `context::Shared` state they both use (settings, paths, status line, engine handle), routes
//! the `context::Command`s one tab sends for the other, and asks before closing. Each tab owns its
//! state and its widgets; neither imports the other. Background work goes through
//! `background::Background`.

pub mod annotate;
pub mod assets;
mod background;
pub mod crash;
pub mod context;
mod export_log;
mod settings;
mod shell;
pub mod train_tab;
mod widgets;

use std::path::PathBuf;

pub use annotate::tools::{self, Tool};
pub use annotate::{AnnotateTab, EngineStatus, ItemState, Worklist, export_path};
pub use context::{AutomaticBackend, Command, Shared, Tab};
pub use export_log::{ExportLog, ExportRecord};
pub use settings::{AppPaths, Settings};
pub use shell::{AnnotatorApp, AppOptions};
pub use train_tab::{Phase, Run, RunProgress, Source, SourceKind, SourceStatus, TrainForm, TrainTab};
pub use widgets::model_label;

pub const APP_NAME: &str = "De-LightSAM Annotator";

/// Opens the window (wgpu renderer) and runs until it is closed.
pub fn run(file: Option<PathBuf>) -> anyhow::Result<()> {
    let app_options = AppOptions::for_user(file);
    crash::install(app_options.paths.crashes.clone());
    let mut viewport = egui::ViewportBuilder::default();
    match eframe::icon_data::from_png_bytes(assets::ICON_PNG) {
        Ok(icon) => viewport = viewport.with_icon(icon),
        Err(e) => log::warn!("the window icon cannot be decoded: {e}"),
    }
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: viewport
            .with_title(APP_NAME)
            .with_app_id("delightsam")
            .with_inner_size([1280.0, 860.0])
            .with_min_inner_size([480.0, 320.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        APP_NAME,
        options,
        Box::new(move |cc| Ok(Box::new(AnnotatorApp::new(cc, app_options)))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
