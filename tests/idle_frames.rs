//! What the window does on disk while idle: a 200-image worklist open, 100 frames with no input.
//! Run under strace by `scripts/strace_idle.sh`, which counts the file-system calls between the
//! two marker stats (`/tmp/IDLE_FRAMES_START`, `/tmp/IDLE_FRAMES_END`). CPU only, no rendering.

use delightsam::app::{AnnotatorApp, AppOptions, AppPaths};
use delightsam::model::backend::BackendKind;
use egui_kittest::Harness;

const IMAGES: usize = 200;
const FRAMES: usize = 100;

/// A stat of a path that does not exist: cheap, and visible in strace as a marker.
fn mark(name: &str) {
    let _ = std::fs::metadata(format!("/tmp/{name}"));
}

#[test]
#[ignore = "run under strace by scripts/strace_idle.sh"]
fn idle_frames_with_a_200_image_worklist() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("img000.png");
    image::GrayImage::from_fn(64, 64, |x, y| image::Luma([((x * 4) ^ (y * 4)) as u8])).save(&first).unwrap();
    for i in 1..IMAGES {
        std::fs::copy(&first, work.path().join(format!("img{i:03}.png"))).unwrap();
    }

    let paths = AppPaths::in_folder(home.path());
    let mut harness = Harness::builder().with_size(egui::vec2(900.0, 640.0)).build_eframe(move |cc| {
        AnnotatorApp::new(cc, AppOptions { file: None, paths, backend: Some(BackendKind::Cpu), prepare_on_open: false })
    });
    let app = harness.state_mut();
    app.annotate.open_path(&mut app.shared, work.path().to_path_buf());
    app.annotate.wait_for_load(&mut app.shared);
    harness.run_steps(5);
    assert_eq!(harness.state().error(), None);
    assert_eq!(harness.state().annotate.worklist().unwrap().items.len(), IMAGES);
    assert!(harness.state().annotate.shown().is_some(), "the first image is shown");

    // Each `step` without queued input runs the app's `logic` and `ui` exactly once
    // (egui_kittest 0.37 `Harness::step` → `step_impl`), whether or not a repaint was asked for.
    mark("IDLE_FRAMES_START");
    for _ in 0..FRAMES {
        harness.step();
    }
    mark("IDLE_FRAMES_END");
    assert_eq!(harness.state().error(), None);
}
