//! Driving the real window in tests and benchmarks: the tab actions that need the shared state,
//! as the shell hands it to them.

use std::path::PathBuf;
use std::time::Duration;

use delightsam::app::AnnotatorApp;
use egui_kittest::Harness;

/// Waits until the pending reads (a folder, then its first image) are shown.
pub fn wait_for_load(harness: &mut Harness<'_, AnnotatorApp>) {
    let app = harness.state_mut();
    app.annotate.wait_for_load(&mut app.shared);
}

/// Waits until the engine answered the pending AI work; false on timeout.
pub fn wait_for_engine(harness: &mut Harness<'_, AnnotatorApp>, timeout: Duration) -> bool {
    let app = harness.state_mut();
    app.annotate.wait_for_engine(&mut app.shared, timeout)
}

pub fn open_path(harness: &mut Harness<'_, AnnotatorApp>, path: PathBuf) {
    let app = harness.state_mut();
    app.annotate.open_path(&mut app.shared, path);
}

pub fn propose(harness: &mut Harness<'_, AnnotatorApp>, with_grid: bool) {
    let app = harness.state_mut();
    app.annotate.propose(&app.shared, with_grid);
}

pub fn set_modality(harness: &mut Harness<'_, AnnotatorApp>, modality: &str) {
    let app = harness.state_mut();
    app.annotate.set_modality(&mut app.shared, modality);
}

pub fn fill_at(harness: &mut Harness<'_, AnnotatorApp>, x: f32, y: f32, label: u8) {
    let app = harness.state_mut();
    app.annotate.fill_at(&app.shared, x, y, label);
}

/// Waits up to `timeout` for the training run's next report.
pub fn wait_for_training(harness: &mut Harness<'_, AnnotatorApp>, timeout: Duration) {
    let app = harness.state_mut();
    app.train.wait_for_training(&mut app.shared, timeout);
}
