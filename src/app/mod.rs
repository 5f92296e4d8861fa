//! The window. Annotate tab: open images (command line, File menu, drag and drop, folders as a
//! worklist), view them (zoom, pan, window/level), paint and fix masks (brush, eraser, fill,
//! lasso, undo/redo), ask the AI (box and point prompts with LiteMedSAM, automatic proposals and
//! an editable patch grid with De-LightSAM) and export. Train tab: fine-tune De-LightSAM on
//! folders or on the exported masks, watch it learn, use the result. Files are read, models run
//! and train on background threads; the UI thread never waits for them.

mod annotator;
mod autosave;
mod canvas;
mod document;
mod export_log;
mod gpu_view;
mod history;
mod loader;
mod panels;
mod settings;
pub mod tools;
mod trainer_tab;
mod worklist;

use std::path::PathBuf;

pub use annotator::{AnnotatorApp, AppOptions, Tab, Tool};
pub use export_log::{ExportLog, ExportRecord};
pub use trainer_tab::{Phase, Run, Source, SourceKind, SourceStatus, TrainerState, model_label};
pub use settings::{AppPaths, Settings};
pub use worklist::{ItemState, Worklist, export_path};

pub const APP_NAME: &str = "De-LightSAM Annotator";

/// Opens the window (wgpu renderer) and runs until it is closed.
pub fn run(file: Option<PathBuf>) -> anyhow::Result<()> {
    let options = eframe::NativeOptions {
        renderer: eframe::Renderer::Wgpu,
        viewport: egui::ViewportBuilder::default()
            .with_title(APP_NAME)
            .with_inner_size([1280.0, 860.0])
            .with_min_inner_size([480.0, 320.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        APP_NAME,
        options,
        Box::new(move |cc| Ok(Box::new(AnnotatorApp::new(cc, AppOptions::for_user(file))))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
