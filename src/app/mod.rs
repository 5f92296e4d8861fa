//! The window. This is the minimal viewer: open an image (command line, File menu, drag and drop),
//! see it with its default window, adjust window/level, step through frames. Files are read on a
//! background thread; the UI thread never waits for them.

mod loader;
mod viewer;

use std::path::PathBuf;

pub use viewer::ViewerApp;

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
    eframe::run_native(APP_NAME, options, Box::new(move |cc| Ok(Box::new(ViewerApp::new(&cc.egui_ctx, file)))))
        .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
