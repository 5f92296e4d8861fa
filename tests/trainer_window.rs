//! The Trainer tab, driven by egui_kittest: a short real fast-recipe run on three real nuclei
//! images (copied from ../shared/data/fluo-nuclei) on the CPU; the plots receive points, the
//! checkpoints appear, the model becomes selectable in the Annotate tab and segments; pause,
//! cancel, resume and quitting during training. Also active learning in the worklist.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::fixture;
use common::window::{fill_at, open_path, propose, set_modality, wait_for_engine, wait_for_load, wait_for_training};
use delightsam::app::{AnnotatorApp, AppOptions, AppPaths, Phase, SourceStatus, Tab, model_label};
use delightsam::engine::worker::ResultKind;
use delightsam::model::backend::BackendKind;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

fn app<'a>(file: Option<PathBuf>, home: &Path) -> Harness<'a, AnnotatorApp> {
    let paths = AppPaths::in_folder(home);
    Harness::builder().with_size(egui::vec2(1100.0, 760.0)).with_max_steps(50).build_eframe(move |cc| {
        AnnotatorApp::new(cc, AppOptions { file, paths, backend: Some(BackendKind::Cpu), prepare_on_open: false })
    })
}

fn click(harness: &mut Harness<'_, AnnotatorApp>, label: &str) {
    harness.get_by_label(label).click();
    harness.run_steps(2);
}

/// Steps the UI until `done` holds (reading the trainer's reports as they come), or panics.
fn until(harness: &mut Harness<'_, AnnotatorApp>, what: &str, timeout: Duration, done: impl Fn(&AnnotatorApp) -> bool) {
    let deadline = Instant::now() + timeout;
    while !done(harness.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        wait_for_training(harness, Duration::from_millis(100));
        harness.step();
    }
}

/// Some widget shows `text` (as its label, or as its value: a combo box's selection).
fn shows(harness: &Harness<'_, AnnotatorApp>, text: &str) -> bool {
    harness.query_all_by(|node| node.label().as_deref() == Some(text) || node.value().as_deref() == Some(text)).next().is_some()
}

fn steps(app: &AnnotatorApp) -> usize {
    app.train.run.as_ref().map_or(0, |r| r.progress.step_losses.len())
}

fn phase_is_done(app: &AnnotatorApp) -> bool {
    app.train.run.as_ref().is_some_and(|r| !r.is_running())
}

/// The nuclei folder added in the tab, checked, with the settings of a short run.
fn ready_to_train(harness: &mut Harness<'_, AnnotatorApp>, epochs: usize) {
    click(harness, "Train");
    assert_eq!(harness.state().tab(), Tab::Train);
    harness.state_mut().train.add_folder(fixture("train/nuclei"), None);
    until(harness, "the folder check", Duration::from_secs(30), |app| {
        app.train.form.sources.iter().all(|s| s.status != SourceStatus::Checking)
    });
    let source = &harness.state().train.form.sources[0];
    assert_eq!(source.status, SourceStatus::Ready { images: 3 });
    assert_eq!(source.modality, "microscopy", "read from the folder's dataset.toml");
    let trainer = &mut harness.state_mut().train.form;
    trainer.epochs = epochs;
    trainer.batch_size = 1;
    trainer.learning_rate = 1e-3;
}

#[test]
fn a_short_run_from_the_tab_plots_checkpoints_and_its_model_segments_in_the_annotate_tab() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(None, home.path());
    ready_to_train(&mut harness, 2);
    click(&mut harness, "Start training");
    until(&mut harness, "the run to finish", Duration::from_secs(400), phase_is_done);

    let app = harness.state();
    let run = app.train.run.as_ref().unwrap();
    let Phase::Finished(summary) = &run.progress.phase else { panic!("the run failed: {:?}", run.progress.phase) };
    assert!(!summary.stopped);
    assert_eq!((summary.epochs_done, summary.steps), (2, 4), "one image is held out: 2 steps per epoch");
    assert_eq!(run.progress.step_losses.len(), 4, "the loss plot got every step");
    assert_eq!(run.progress.epoch_losses.len(), 2);
    assert_eq!(run.progress.dice.len(), 2, "the Dice plot got every epoch");
    assert!(run.progress.dice.iter().all(|p| (0.0..=1.0).contains(&p[1])));
    assert!(run.progress.device.as_deref().is_some_and(|d| !d.is_empty()));
    assert_eq!(run.progress.name, "microscopy-1");
    let best = run.progress.best_checkpoint();
    assert_eq!(best, home.path().join("runs/microscopy-1/best.bpk"));
    for file in ["best.bpk", "best.json", "model.bpk", "metrics.jsonl", "train_config.json"] {
        assert!(home.path().join("runs/microscopy-1").join(file).is_file(), "missing {file}");
    }
    assert_eq!(app.settings().trained_models, std::slice::from_ref(&best), "the model menu lists it");

    click(&mut harness, "Use in Annotate");
    assert_eq!(harness.state().tab(), Tab::Annotate);
    assert_eq!(harness.state().settings().auto_model.as_deref(), Some(best.as_path()));
    // The Annotate tab's model menu shows the new model, and it is remembered.
    assert!(shows(&harness, &model_label(Some(&best))), "the model menu shows the run");
    let (saved, _) = delightsam::app::Settings::load(&home.path().join("settings.json"));
    assert_eq!(saved.auto_model.as_deref(), Some(best.as_path()));

    // And it segments: an automatic proposal with the trained model.
    let image = fixture("train/nuclei/images/cells3d-z30.png");
    open_path(&mut harness, image);
    wait_for_load(&mut harness);
    harness.run_steps(2);
    set_modality(&mut harness, "microscopy");
    propose(&mut harness, false);
    assert!(wait_for_engine(&mut harness, Duration::from_secs(120)), "the proposal came back");
    assert_eq!(harness.state().error(), None);
    assert_eq!(harness.state().annotate.last_inference().map(|l| l.0), Some(ResultKind::Auto));
}

#[test]
fn pause_cancel_resume_and_quitting_during_training() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(None, home.path());
    ready_to_train(&mut harness, 50);
    click(&mut harness, "Start training");
    until(&mut harness, "three steps", Duration::from_secs(300), |app| steps(app) >= 3);

    // Pause: once the step in flight has ended, no more steps.
    click(&mut harness, "Pause");
    until(&mut harness, "the pause", Duration::from_secs(60), |app| app.train.run.as_ref().is_some_and(|r| r.is_parked()));
    // The step that ended just before the pause may still be on its way.
    for _ in 0..10 {
        wait_for_training(&mut harness, Duration::from_millis(100));
    }
    let paused_at = steps(harness.state());
    let hold = Instant::now() + Duration::from_secs(3);
    while Instant::now() < hold {
        wait_for_training(&mut harness, Duration::from_millis(100));
        harness.step();
    }
    assert_eq!(steps(harness.state()), paused_at, "no steps while paused");
    assert!(harness.query_all_by_label_contains("paused").next().is_some(), "the status says so");
    click(&mut harness, "Resume");
    until(&mut harness, "a step after resuming", Duration::from_secs(60), |app| steps(app) > paused_at);

    // Cancel: the run saves its weights and stops; it can be resumed.
    click(&mut harness, "Cancel");
    until(&mut harness, "the run to stop", Duration::from_secs(60), phase_is_done);
    let run_dir = home.path().join("runs/microscopy-1");
    {
        let run = harness.state().train.run.as_ref().unwrap();
        let Phase::Finished(summary) = &run.progress.phase else { panic!("the run failed: {:?}", run.progress.phase) };
        assert!(summary.stopped && summary.epochs_done < 50);
        assert!(run_dir.join("model.bpk").is_file() && run_dir.join("state.json").is_file());
    }
    assert!(delightsam::train::resumable(&run_dir).is_some());
    let stopped_at = steps(harness.state());

    // Resume from the model list, then quit: the window asks first.
    click(&mut harness, "Resume");
    until(&mut harness, "the resumed run's first step", Duration::from_secs(120), |app| steps(app) >= 1);
    let run = harness.state().train.run.as_ref().unwrap();
    assert!(run.progress.resumed_from >= 1 && run.progress.step_losses[0][0] as usize > stopped_at, "continues where it stopped");
    harness.state_mut().request_quit();
    harness.run_steps(2);
    assert!(harness.state().is_asking_to_quit());
    click(&mut harness, "Keep training");
    assert!(!harness.state().is_asking_to_quit() && harness.state().train.is_running());
    harness.state_mut().request_quit();
    harness.run_steps(2);
    click(&mut harness, "Save checkpoint and quit");
    until(&mut harness, "the checkpoint before quitting", Duration::from_secs(60), |app| app.quit_confirmed());
    let run = harness.state().train.run.as_ref().unwrap();
    assert!(matches!(&run.progress.phase, Phase::Finished(s) if s.stopped));
    assert!(delightsam::train::resumable(&run_dir).is_some(), "quitting left a resumable checkpoint");
}

#[test]
fn the_worklist_orders_unannotated_images_by_uncertainty() {
    let home = tempfile::tempdir().unwrap();
    let folder = home.path().join("images");
    std::fs::create_dir_all(&folder).unwrap();
    for name in ["cells3d-z25.png", "cells3d-z30.png", "cells3d-z35.png"] {
        std::fs::copy(fixture("train/nuclei/images").join(name), folder.join(name)).unwrap();
    }
    // One image is annotated already (its mask exported next to it).
    std::fs::copy(fixture("train/nuclei/masks/cells3d-z25.png"), folder.join("cells3d-z25_mask.png")).unwrap();
    let mut harness = app(Some(folder.clone()), home.path());
    wait_for_load(&mut harness);
    harness.run_steps(2);
    set_modality(&mut harness, "microscopy");
    click(&mut harness, "Order by uncertainty");
    assert!(harness.state().annotate.is_ranking());
    let deadline = Instant::now() + Duration::from_secs(180);
    while harness.state().annotate.is_ranking() {
        assert!(Instant::now() < deadline, "ranking timed out");
        wait_for_engine(&mut harness, Duration::from_secs(1));
        harness.step();
    }
    assert_eq!(harness.state().error(), None);
    let list = harness.state().annotate.worklist().unwrap();
    let scores: Vec<Option<f32>> = list.items.iter().map(|p| list.uncertainty.get(p).copied()).collect();
    assert_eq!(list.items.last(), Some(&folder.join("cells3d-z25.png")), "the annotated image goes last");
    assert_eq!(scores[2], None, "annotated images are not scored");
    let (a, b) = (scores[0].expect("scored"), scores[1].expect("scored"));
    assert!((0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b) && a > 0.0, "{scores:?}");
    assert!(a >= b, "most uncertain first: {scores:?}");
    assert!(shows(&harness, &format!("u {a:.3}")), "the score is shown");
}

#[test]
fn masks_exported_in_the_app_become_a_training_source() {
    let home = tempfile::tempdir().unwrap();
    let image = home.path().join("slice.png");
    std::fs::copy(fixture("train/nuclei/images/cells3d-z30.png"), &image).unwrap();
    let mut harness = app(Some(image.clone()), home.path());
    wait_for_load(&mut harness);
    harness.run_steps(2);
    click(&mut harness, "Train");
    click(&mut harness, "Add the masks I exported");
    assert!(harness.state().train.form.sources.is_empty());
    assert!(harness.state().message().is_some_and(|m| m.contains("no exported masks")), "{:?}", harness.state().message());

    click(&mut harness, "Annotate");
    set_modality(&mut harness, "microscopy");
    fill_at(&mut harness, 10.0, 10.0, 1);
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::S);
    harness.run_steps(2);
    assert!(home.path().join("slice_mask.png").is_file(), "{:?}", harness.state().error());

    click(&mut harness, "Train");
    click(&mut harness, "Add the masks I exported");
    let sources = &harness.state().train.form.sources;
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0].modality, "microscopy");
    assert_eq!(sources[0].status, SourceStatus::Ready { images: 1 });
    let delightsam::app::SourceKind::Exported(list) = &sources[0].kind else { panic!("not the exported masks") };
    assert_eq!((list.pairs[0].image.as_path(), list.pairs[0].frame), (image.as_path(), 0));
    delightsam::train::dataset::check_list(list, true).expect("a valid training list");
}
