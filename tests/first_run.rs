//! The first ten minutes: the welcome screen with its samples, the window icon and samples
//! embedded in the binary, and a crash that leaves a report the next start offers.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::window::wait_for_load;
use delightsam::app::{AnnotatorApp, AppOptions, AppPaths, crash};
use delightsam::model::backend::BackendKind;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn app<'a>(home: &Path) -> Harness<'a, AnnotatorApp> {
    let paths = AppPaths::in_folder(home);
    Harness::builder().with_size(egui::vec2(1000.0, 760.0)).with_max_steps(50).build_eframe(move |cc| {
        AnnotatorApp::new(cc, AppOptions { file: None, paths, backend: Some(BackendKind::Cpu), prepare_on_open: false })
    })
}

#[test]
fn with_nothing_open_the_welcome_screen_explains_and_opens_each_sample_with_its_modality() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(home.path());
    harness.run_steps(2);
    for text in ["1. Open", "2. Propose", "3. Fix and export", "Try a sample"] {
        harness.get_by_label_contains(text);
    }
    harness.get_by_label("Open file…");
    harness.get_by_label("Open folder…");
    for (submenu, line) in [("Keyboard shortcuts", "propose a mask (De-LightSAM)"), ("About the model", "Not a medical device")] {
        harness.get_by_label("Help").click();
        harness.run_steps(2);
        harness.get_by_label(submenu).click();
        harness.run_steps(2);
        harness.get_by_label_contains(line);
        harness.key_press(egui::Key::Escape);
        harness.run_steps(2);
    }
    for (button, file, modality) in [
        ("CT slice", "ct-slice.dcm", "ct"),
        ("MR brain slice", "mr-brain-slice.png", "mr"),
        ("Fluorescence nuclei", "fluorescence-nuclei.png", "microscopy"),
    ] {
        if harness.state().annotate.shown().is_some() {
            // A sample is open: start over from the welcome screen of a fresh window.
            harness = app(home.path());
            harness.run_steps(2);
        }
        harness.get_by_label_contains(button).click();
        harness.run_steps(1);
        wait_for_load(&mut harness);
        harness.run_steps(2);
        let state = harness.state();
        let (source, _) = state.annotate.shown().unwrap_or_else(|| panic!("{button}: nothing opened; error {:?}", state.error()));
        assert_eq!(source.path(), home.path().join("samples").join(file));
        assert_eq!(state.annotate.modality(), Some(modality), "{button}");
        assert_eq!(state.error(), None);
    }
    // A sample opened once is in the recent list of the next start's welcome screen.
    eframe::App::on_exit(harness.state_mut());
    let mut harness = app(home.path());
    harness.run_steps(2);
    harness.get_by_label_contains("Recent");
    harness.get_by_label("fluorescence-nuclei.png");
}

#[test]
fn a_crash_report_of_an_earlier_run_is_offered_until_dismissed() {
    let home = tempfile::tempdir().unwrap();
    let crashes = home.path().join("crashes");
    std::fs::create_dir_all(&crashes).unwrap();
    let report = crashes.join("crash-1700000000.txt");
    std::fs::write(&report, "De-LightSAM Annotator crashed.\npanic: test\n").unwrap();
    let mut harness = app(home.path());
    harness.run_steps(2);
    assert_eq!(harness.state().crash_report_offered(), Some(report.as_path()));
    harness.get_by_label_contains("closed unexpectedly last time");
    harness.get_by_label("Show report").click();
    harness.run_steps(2);
    harness.get_by_label_contains("panic: test");
    harness.get_by_label("Dismiss").click();
    harness.run_steps(2);
    assert_eq!(harness.state().crash_report_offered(), None);
    assert!(!report.exists() && crashes.join("crash-1700000000.seen.txt").is_file(), "kept, marked as read");
    let harness = app(home.path());
    assert_eq!(harness.state().crash_report_offered(), None, "offered once");
}

const CHILD: &str = "DELIGHTSAM_CRASH_CHILD_DIR";

/// In the child: the reporter installed on this thread, an autosave wait that leaves a mark,
/// a few actions, then a panic whose message names a file.
fn crash_as_the_window_would(dir: PathBuf) -> ! {
    crash::install(dir.join("crashes"));
    let flushed = dir.join("flushed");
    crash::set_flush(move || std::fs::write(&flushed, "autosave waited for").expect("mark the flush"));
    crash::set_backend("cpu (test)".into());
    for action in ["open", "drag box", "drag box", "box prompt", "export"] {
        crash::note(action);
    }
    panic!("cannot read /home/jane-doe/scans/head.dcm");
}

#[test]
fn a_panic_on_the_window_thread_leaves_a_report_after_the_autosave_and_without_file_names() {
    if let Ok(dir) = std::env::var(CHILD) {
        crash_as_the_window_would(PathBuf::from(dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_panic_on_the_window_thread_leaves_a_report_after_the_autosave_and_without_file_names", "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!output.status.success(), "the child must have panicked");
    assert!(dir.path().join("flushed").is_file(), "the autosave is waited for before the report");
    let reports = crash::unseen_reports(&dir.path().join("crashes"));
    assert_eq!(reports.len(), 1, "stderr: {}", String::from_utf8_lossy(&output.stderr));
    let text = std::fs::read_to_string(&reports[0]).unwrap();
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    assert!(text.contains("panic: cannot read <path>"), "{text}");
    assert!(!text.contains("jane-doe") && !text.contains("head.dcm"), "no file names: {text}");
    assert!(text.contains("backend: cpu (test)"), "{text}");
    assert!(text.contains("last actions (oldest first): open, drag box, box prompt, export"), "{text}");
    assert!(text.contains("backtrace:") && text.contains("crash_as_the_window_would"), "a forced backtrace: {text}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("a report (no image data) was written to"), "{stderr}");
    std::thread::sleep(Duration::from_millis(1));
}
