//! The real annotation window, driven by egui_kittest (pointer and keyboard events) and rendered
//! with wgpu (lavapipe in CI): open, paint, undo, redo, export, autosave, prompts, worklist.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::window::{open_path, wait_for_engine, wait_for_load};
use common::{fixture, shared};
use delightsam::app::{AnnotatorApp, AppOptions, AppPaths, ItemState, Tool};
use delightsam::engine::worker::ResultKind;
use delightsam::imaging::Mask;
use delightsam::model::backend::BackendKind;
use delightsam::train::metrics;
use egui::{Key, Modifiers, Pos2, pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

/// The app with its settings and autosaves in `home`, on the CPU, not encoding on open.
fn app<'a>(file: Option<PathBuf>, home: &Path, render: bool) -> Harness<'a, AnnotatorApp> {
    app_with(file, home, render, false)
}

/// As [`app`]; `ahead`: warm up at start, encode on open and the worklist's neighbours when idle.
fn app_with<'a>(file: Option<PathBuf>, home: &Path, render: bool, ahead: bool) -> Harness<'a, AnnotatorApp> {
    let paths = AppPaths::in_folder(home);
    let builder = Harness::builder().with_size(egui::vec2(900.0, 640.0)).with_max_steps(50);
    let builder = if render { builder.wgpu() } else { builder };
    builder.build_eframe(move |cc| {
        AnnotatorApp::new(cc, AppOptions { file, paths, backend: Some(BackendKind::Cpu), prepare_on_open: ahead })
    })
}

fn opened(harness: &mut Harness<'_, AnnotatorApp>) {
    wait_for_load(harness);
    harness.run_steps(3);
    assert_eq!(harness.state().error(), None);
}

fn screen(harness: &Harness<'_, AnnotatorApp>, x: f32, y: f32) -> Pos2 {
    harness.state().annotate.screen_pos(x, y).expect("the image was drawn")
}

/// A real pointer drag between two image points, in small moves, one frame each.
fn drag(harness: &mut Harness<'_, AnnotatorApp>, from: Pos2, to: Pos2, modifiers: Modifiers) {
    drag_path(harness, &[from, to], modifiers);
}

/// Press at the first image point, move through the others, release at the last.
fn drag_path(harness: &mut Harness<'_, AnnotatorApp>, path: &[Pos2], modifiers: Modifiers) {
    let screen_path: Vec<Pos2> = path.iter().map(|p| screen(harness, p.x, p.y)).collect();
    let (first, last) = (screen_path[0], screen_path[screen_path.len() - 1]);
    harness.hover_at(first);
    harness.step();
    harness.event_modifiers(egui::Event::PointerButton { pos: first, button: egui::PointerButton::Primary, pressed: true, modifiers }, modifiers);
    harness.step();
    for pair in screen_path.windows(2) {
        for i in 1..=8 {
            harness.hover_at(pair[0].lerp(pair[1], i as f32 / 8.0));
            harness.step();
        }
    }
    harness.event_modifiers(egui::Event::PointerButton { pos: last, button: egui::PointerButton::Primary, pressed: false, modifiers }, modifiers);
    harness.step();
    harness.remove_cursor();
    harness.run_steps(2);
}

/// A primary click (press and release without moving) at image point (x, y).
fn click(harness: &mut Harness<'_, AnnotatorApp>, x: f32, y: f32) {
    let pos = screen(harness, x, y);
    harness.hover_at(pos);
    harness.step();
    for pressed in [true, false] {
        harness.event(egui::Event::PointerButton { pos, button: egui::PointerButton::Primary, pressed, modifiers: Modifiers::NONE });
        harness.step();
    }
}

/// A folder holding two small fixture images: cells3d-z30.png, then colin27_z090.png.
fn two_image_folder() -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    copy_to(work.path(), &fixture("raster/colin27_z090.png"));
    copy_to(work.path(), &fixture("raster/cells3d-z30.png"));
    work
}

fn copy_to(dir: &Path, file: &Path) -> PathBuf {
    let target = dir.join(file.file_name().unwrap());
    std::fs::copy(file, &target).unwrap();
    target
}

#[test]
fn the_window_shows_a_dicom_image() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(Some(fixture("dicom/CT_small.dcm")), home.path(), true);
    opened(&mut harness);
    let (source, frame) = harness.state().annotate.shown().expect("an image is shown");
    assert_eq!((source.meta().rows, frame), (128, 0));
    harness.get_by_label_contains("CT_small.dcm");

    let image = harness.render().expect("render with wgpu");
    let centre = screen(&harness, 64.0, 64.0);
    let ppp = image.width() as f32 / 900.0;
    let grey_levels: std::collections::BTreeSet<u8> = (0..128)
        .step_by(3)
        .flat_map(|x| (0..128).step_by(3).map(move |y| (x, y)))
        .map(|(x, y)| {
            let p = screen(&harness, x as f32, y as f32);
            image.get_pixel((p.x * ppp) as u32, (p.y * ppp) as u32).0[0]
        })
        .collect();
    assert!(grey_levels.len() > 20, "the image should show many grey levels, got {}", grey_levels.len());
    assert!(centre.x > 210.0, "the tool panel is left of the image");

    // Window/level is applied when drawing: a window far above every value shows black.
    let (min, max) = {
        let frame = harness.state().annotate.shown().unwrap().0.frame(0).unwrap();
        let stats = frame.stats();
        (stats.min, stats.max)
    };
    harness.state_mut().annotate.set_window(delightsam::imaging::Window::new(f64::from(max) + 1000.0, 10.0));
    harness.run_steps(2);
    let dark = harness.render().expect("render");
    let p = screen(&harness, 64.0, 64.0);
    assert!(dark.get_pixel((p.x * ppp) as u32, (p.y * ppp) as u32).0[0] < 5, "window above the data ({min}..{max}) shows black");
    harness.state_mut().annotate.set_window(delightsam::imaging::Window::new(f64::from(min) - 1000.0, 10.0));
    harness.run_steps(2);
    let bright = harness.render().expect("render");
    assert!(bright.get_pixel((p.x * ppp) as u32, (p.y * ppp) as u32).0[0] > 250, "window below the data shows white");
}

#[test]
fn the_window_reports_a_bad_file_and_keeps_running() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(Some(fixture("bad/not_an_image.png")), home.path(), false);
    wait_for_load(&mut harness);
    harness.run_steps(3);
    let error = harness.state().error().expect("an error is shown").to_string();
    assert!(error.contains("not_an_image.png"), "{error}");
    harness.get_by_label_contains("not a supported image");

    open_path(&mut harness, fixture("dicom/MR_small.dcm"));
    opened(&mut harness);
    assert!(harness.state().annotate.shown().is_some());
}

/// Paint a stroke, undo, redo, export with Ctrl+S, and read the PNG back; the overlay shows in
/// the rendered frame; the work comes back after a restart (autosave).
#[test]
fn paint_undo_redo_export_and_restore() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = copy_to(work.path(), &fixture("raster/colin27_z090.png"));
    let mut harness = app(Some(image.clone()), home.path(), true);
    opened(&mut harness);
    let (w, h) = {
        let mask = harness.state().annotate.mask().unwrap();
        (mask.width(), mask.height())
    };

    harness.key_press(Key::B);
    harness.step();
    assert_eq!(harness.state().annotate.tool(), Tool::Brush);
    harness.state_mut().settings_mut().brush_radius = 4.0;
    drag(&mut harness, pos2(30.0, 40.0), pos2(120.0, 40.0), Modifiers::NONE);
    let painted = harness.state().annotate.mask().unwrap().clone();
    for x in (32..118).step_by(4) {
        assert_eq!(painted.get(x, 40), Some(1), "the stroke covers x={x}");
    }
    assert_eq!(painted.get(75, 60), Some(0), "and nothing 20 px away");

    // The overlay is drawn over the image: the stroke is red, a pixel beside it is not.
    let frame = harness.render().expect("render");
    let ppp = frame.width() as f32 / 900.0;
    let pixel = |x: f32, y: f32| {
        let p = screen(&harness, x, y);
        frame.get_pixel((p.x * ppp) as u32, (p.y * ppp) as u32).0
    };
    let (on, off) = (pixel(75.0, 40.0), pixel(75.0, 70.0));
    assert!(on[0] as i32 - on[2] as i32 > 40, "stroke pixel {on:?} should be red-tinted");
    assert!((off[0] as i32 - off[2] as i32).abs() < 20, "pixel off the stroke {off:?} should stay grey");

    // Label 1 hidden in the label table: the composited frame shows the image there; a
    // colour of its own (blue) once shown again.
    harness.state_mut().annotate.label_table_mut().unwrap().entry(1).visible = false;
    harness.run_steps(2);
    let frame = harness.render().expect("render");
    let hidden = frame.get_pixel((screen(&harness, 75.0, 40.0).x * ppp) as u32, (screen(&harness, 75.0, 40.0).y * ppp) as u32).0;
    assert!((hidden[0] as i32 - hidden[2] as i32).abs() < 20, "hidden label pixel {hidden:?} should be grey");
    {
        let table = harness.state_mut().annotate.label_table_mut().unwrap();
        table.entry(1).visible = true;
        table.entry(1).rgb = [0, 60, 255];
    }
    harness.run_steps(2);
    let frame = harness.render().expect("render");
    let blue = frame.get_pixel((screen(&harness, 75.0, 40.0).x * ppp) as u32, (screen(&harness, 75.0, 40.0).y * ppp) as u32).0;
    assert!(blue[2] as i32 - blue[0] as i32 > 40, "label 1 in its new colour: {blue:?}");

    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(harness.state().annotate.mask().unwrap().foreground_count(), 0, "undo removes the stroke");
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.step();
    assert_eq!(harness.state().annotate.mask().unwrap(), &painted, "redo brings it back exactly");

    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.step();
    let exported = work.path().join("colin27_z090_mask.png");
    assert_eq!(harness.state().error(), None);
    let png = image::open(&exported).expect("the exported mask").into_luma8();
    assert_eq!(png.dimensions(), (w, h));
    for (x, y, p) in png.enumerate_pixels() {
        let want = if painted.get(x, y) == Some(1) { 255 } else { 0 };
        assert_eq!(p.0[0], want, "pixel ({x}, {y})");
    }
    harness.get_by_label_contains("Exported");
    assert!(image::open(&image).is_ok(), "the source is untouched");

    // A restart restores the work in progress.
    harness.state().annotate.flush_autosave();
    drop(harness);
    let mut again = app(Some(image), home.path(), false);
    opened(&mut again);
    assert_eq!(again.state().annotate.mask().unwrap(), &painted);
}

#[test]
fn lasso_fill_and_eraser_edit_the_mask() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(Some(fixture("raster/cells3d-z30.png")), home.path(), false);
    opened(&mut harness);
    harness.state_mut().annotate.set_tool(Tool::Lasso);
    // A right triangle with legs of 60 px: about 1800 px inside.
    drag_path(&mut harness, &[pos2(100.0, 100.0), pos2(160.0, 100.0), pos2(100.0, 160.0)], Modifiers::NONE);
    let lasso = harness.state().annotate.mask().unwrap().foreground_count();
    assert!((1700..2000).contains(&lasso), "lasso filled {lasso} px");
    assert_eq!(harness.state().annotate.mask().unwrap().get(110, 110), Some(1));
    assert_eq!(harness.state().annotate.mask().unwrap().get(150, 150), Some(0));

    // Brush a closed ring, then fill its inside with one click.
    harness.state_mut().annotate.set_tool(Tool::Brush);
    harness.state_mut().settings_mut().brush_radius = 2.0;
    for (from, to) in [((30.0, 30.0), (90.0, 30.0)), ((90.0, 30.0), (90.0, 90.0)), ((90.0, 90.0), (30.0, 90.0)), ((30.0, 90.0), (30.0, 30.0))] {
        drag(&mut harness, pos2(from.0, from.1), pos2(to.0, to.1), Modifiers::NONE);
    }
    let ring = harness.state().annotate.mask().unwrap().foreground_count() - lasso;
    harness.state_mut().annotate.set_tool(Tool::Fill);
    click(&mut harness, 60.0, 60.0);
    harness.run_steps(1);
    let filled = harness.state().annotate.mask().unwrap().foreground_count() - lasso;
    assert!(filled > ring + 2500, "fill: {ring} → {filled}");
    assert_eq!(harness.state().annotate.mask().unwrap().get(60, 60), Some(1));

    harness.state_mut().annotate.set_tool(Tool::Eraser);
    harness.state_mut().settings_mut().brush_radius = 6.0;
    drag(&mut harness, pos2(40.0, 60.0), pos2(80.0, 60.0), Modifiers::NONE);
    assert_eq!(harness.state().annotate.mask().unwrap().get(60, 60), Some(0), "erased");
}

/// A box around a PH2 lesion (from its expert mask) gives a lesion mask, on the CPU engine
/// thread, while the UI keeps running.
#[test]
fn a_box_prompt_on_a_ph2_image_segments_the_lesion() {
    let home = tempfile::tempdir().unwrap();
    let image = shared("ph2-dermoscopy/images/IMD002.jpg");
    let truth = Mask::load(shared("ph2-dermoscopy/masks/IMD002.png")).unwrap();
    let mut harness = app(Some(image), home.path(), false);
    opened(&mut harness);
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..truth.height() {
        for x in 0..truth.width() {
            if truth.get(x, y) != Some(0) {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    harness.state_mut().annotate.set_tool(Tool::Box);
    drag(&mut harness, pos2(x0 as f32, y0 as f32), pos2(x1 as f32, y1 as f32), Modifiers::NONE);
    assert!(harness.state().annotate.engine_busy(), "the request went to the engine");
    harness.step();
    assert!(wait_for_engine(&mut harness, Duration::from_secs(300)), "the engine answered");
    harness.run_steps(2);
    assert_eq!(harness.state().error(), None);
    let mask = harness.state().annotate.mask().unwrap();
    let dice = metrics::dice(mask.labels(), truth.labels());
    assert!(dice > 0.85, "Dice with the expert mask {dice:.3}");
    assert!(harness.state().annotate.last_inference().is_some());
    harness.get_by_label_contains("LiteMedSAM on cpu");
    // The AI result is one undo step.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(harness.state().annotate.mask().unwrap().foreground_count(), 0);
}

#[test]
fn a_folder_opens_as_a_worklist_and_page_down_moves_on() {
    let home = tempfile::tempdir().unwrap();
    let work = two_image_folder();
    let mut harness = app(Some(work.path().to_path_buf()), home.path(), false);
    opened(&mut harness);
    let name = |h: &Harness<'_, AnnotatorApp>| h.state().annotate.shown().unwrap().0.path().file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(name(&harness), "cells3d-z30.png");
    assert_eq!(harness.state().annotate.worklist().unwrap().items.len(), 2);
    harness.key_press(Key::PageDown);
    harness.step();
    opened(&mut harness);
    assert_eq!(name(&harness), "colin27_z090.png");
    harness.key_press(Key::PageUp);
    harness.step();
    opened(&mut harness);
    assert_eq!(name(&harness), "cells3d-z30.png");
}

#[test]
fn the_next_image_is_encoded_ahead_and_a_dragged_box_previews_its_mask() {
    let home = tempfile::tempdir().unwrap();
    let work = two_image_folder();
    let mut harness = app_with(Some(work.path().to_path_buf()), home.path(), false, true);
    opened(&mut harness);
    // Idle after the shown image: the engine encodes the next one.
    let app = harness.state_mut();
    let ahead = app.annotate.wait_for_engine_until(&mut app.shared, Duration::from_secs(600), |e| e.encoded_ahead >= 1);
    assert!(ahead, "the next image was encoded ahead");
    assert_eq!(harness.state().error(), None);
    harness.key_press(Key::PageDown);
    harness.step();
    opened(&mut harness);
    assert!(wait_for_engine(&mut harness, Duration::from_secs(300)));
    let status = harness.state().annotate.engine_status();
    assert_eq!(status.last_prepared, Some(Duration::ZERO), "the image was encoded ahead: nothing to encode on open");

    // Press, move: each move sends the box as a preview, whose mask is shown while dragging.
    harness.state_mut().annotate.set_tool(Tool::Box);
    let (from, to) = (screen(&harness, 40.0, 40.0), screen(&harness, 140.0, 150.0));
    harness.hover_at(from);
    harness.step();
    harness.event(egui::Event::PointerButton { pos: from, button: egui::PointerButton::Primary, pressed: true, modifiers: Modifiers::NONE });
    harness.step();
    for i in 1..=8 {
        harness.hover_at(from.lerp(to, i as f32 / 8.0));
        harness.step();
    }
    let app = harness.state_mut();
    let previewed = app.annotate.wait_for_engine_until(&mut app.shared, Duration::from_secs(300), |e| e.previews_shown >= 1);
    assert!(previewed, "a preview came back while the button was held");
    assert_eq!(harness.state().annotate.engine_status().last_encode, Some(Duration::ZERO), "decoded from the cached embedding");
    assert!(harness.state().annotate.mask().unwrap().foreground_count() > 0, "the preview is shown");

    harness.event(egui::Event::PointerButton { pos: to, button: egui::PointerButton::Primary, pressed: false, modifiers: Modifiers::NONE });
    harness.step();
    assert!(wait_for_engine(&mut harness, Duration::from_secs(300)));
    harness.run_steps(2);
    assert_eq!(harness.state().error(), None);
    assert!(harness.state().annotate.mask().unwrap().foreground_count() > 0);
    // Previews and the final answer are one undo step.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(harness.state().annotate.mask().unwrap().foreground_count(), 0);
}

#[test]
fn a_damaged_settings_file_gives_defaults_and_a_visible_warning() {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("settings.json"), "{ broken").unwrap();
    let mut harness = app(None, home.path(), false);
    harness.run_steps(2);
    harness.get_by_label_contains("damaged");
    assert_eq!(harness.state().settings().brush_radius, delightsam::app::Settings::default().brush_radius);
}

/// The modality list is the automatic model's own: the shipped model's eleven, fetal
/// ultrasound and histopathology included, not only the nine built-in names.
#[test]
fn the_modality_list_comes_from_the_model() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(None, home.path(), false);
    harness.run_steps(2);
    let names = harness.state_mut().shared.modality_names().to_vec();
    for name in ["dermoscopy", "fetal-ultrasound", "histopathology", "electron-microscopy"] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }
    assert_eq!(names.len(), 11);
}

/// The automatic proposal (key A, the shipped De-LightSAM model) on a held-out PH2 image, then a
/// patch-grid edit that re-runs it, then a point prompt: each one undoable step.
#[test]
fn automatic_proposal_patch_grid_and_point_prompts() {
    let home = tempfile::tempdir().unwrap();
    let image = shared("ph2-dermoscopy/images/IMD407.jpg");
    let truth = Mask::load(shared("ph2-dermoscopy/masks/IMD407.png")).unwrap();
    let mut harness = app(Some(image), home.path(), false);
    opened(&mut harness);
    let dice = |mask: &Mask| metrics::dice(mask.labels(), truth.labels());
    harness.key_press(Key::A);
    harness.step();
    assert!(wait_for_engine(&mut harness, Duration::from_secs(300)));
    harness.run_steps(2);
    assert_eq!(harness.state().error(), None);
    let proposal = harness.state().annotate.mask().unwrap().clone();
    assert!(dice(&proposal) > 0.9, "automatic proposal Dice {:.3}", dice(&proposal));
    harness.get_by_label_contains("De-LightSAM on cpu");

    // Switch on a grid cell far from the lesion (top-left corner): the proposal re-runs with the
    // edited grid (the model reports the grid it used).
    let grid = harness.state().annotate.patch_grid().expect("the proposal's grid").clone();
    assert_eq!(grid.get(0, 0), Some(0), "the corner is not part of the lesion");
    harness.key_press(Key::T);
    harness.step();
    assert_eq!(harness.state().annotate.tool(), Tool::Grid);
    click(&mut harness, 12.0, 12.0);
    assert!(wait_for_engine(&mut harness, Duration::from_secs(300)));
    harness.run_steps(2);
    let steered = harness.state().annotate.mask().unwrap().clone();
    let used = harness.state().annotate.patch_grid().unwrap();
    assert_eq!(used.get(0, 0), Some(1), "the edited cell went through the model");
    assert_eq!(used.foreground_count(), grid.foreground_count() + 1);
    assert!(dice(&steered) > 0.8, "one extra cell does not wreck the mask");

    // A positive point in the lesion (LiteMedSAM) replaces the mask; undo goes back one step.
    harness.state_mut().annotate.set_tool(Tool::Points);
    click(&mut harness, 354.0, 303.0);
    assert!(wait_for_engine(&mut harness, Duration::from_secs(300)));
    harness.run_steps(2);
    let pointed = harness.state().annotate.mask().unwrap().clone();
    // LiteMedSAM was trained on boxes; a lone point gives a weak mask, so only check that the
    // prompt round trip happened and replaced the mask.
    println!("point prompt: {} px, Dice {:.3}", pointed.foreground_count(), dice(&pointed));
    assert!(matches!(harness.state().annotate.last_inference(), Some((ResultKind::Prompt, _))));
    assert!(pointed.foreground_count() != steered.foreground_count());
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert!(harness.state().annotate.mask().unwrap() == &steered, "undo restores the steered proposal");
}

/// Zoom about the cursor, middle-button pan, window/level by right-drag, and frames of a
/// multi-frame DICOM, each with its own mask (a frame's work survives switching away and back).
#[test]
fn zoom_pan_window_level_and_frames() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(Some(fixture("dicom/emri_small.dcm")), home.path(), false);
    opened(&mut harness);
    assert_eq!(harness.state().annotate.shown().unwrap().0.meta().frames, 10);

    // Zoom ×2 about the image point (20, 30): that point stays under the cursor.
    let anchor = screen(&harness, 20.0, 30.0);
    let before = screen(&harness, 40.0, 50.0);
    harness.hover_at(anchor);
    harness.step();
    harness.event(egui::Event::Zoom(2.0));
    harness.run_steps(2);
    let after_anchor = screen(&harness, 20.0, 30.0);
    assert!(after_anchor.distance(anchor) < 0.5, "{anchor:?} → {after_anchor:?}");
    let after = screen(&harness, 40.0, 50.0);
    assert!(((after - after_anchor).length() / (before - anchor).length() - 2.0).abs() < 0.01);

    // Middle-drag pans by the drag.
    let press = |h: &mut Harness<'_, AnnotatorApp>, pos: Pos2, button, pressed| {
        h.event(egui::Event::PointerButton { pos, button, pressed, modifiers: Modifiers::NONE });
        h.step();
    };
    let start = screen(&harness, 32.0, 32.0);
    harness.hover_at(start);
    harness.step();
    press(&mut harness, start, egui::PointerButton::Middle, true);
    for i in 1..=5 {
        harness.hover_at(start + egui::vec2(10.0 * i as f32, 6.0 * i as f32));
        harness.step();
    }
    press(&mut harness, start + egui::vec2(50.0, 30.0), egui::PointerButton::Middle, false);
    harness.run_steps(2);
    let moved = screen(&harness, 32.0, 32.0) - start;
    assert!((moved - egui::vec2(50.0, 30.0)).length() < 12.0, "panned by {moved:?}");

    // Right-drag to the right widens the window.
    let width = harness.state().annotate.window().unwrap().width;
    let at = screen(&harness, 32.0, 32.0);
    harness.hover_at(at);
    harness.step();
    press(&mut harness, at, egui::PointerButton::Secondary, true);
    for i in 1..=5 {
        harness.hover_at(at + egui::vec2(20.0 * i as f32, 0.0));
        harness.step();
    }
    press(&mut harness, at + egui::vec2(100.0, 0.0), egui::PointerButton::Secondary, false);
    assert!(harness.state().annotate.window().unwrap().width > width, "window width {width} → {}", harness.state().annotate.window().unwrap().width);

    // Ctrl + wheel (away from the user) goes up one frame, Shift + wheel back down; the zoom stays.
    let zoom = screen(&harness, 40.0, 50.0) - screen(&harness, 20.0, 30.0);
    for (modifiers, dy, want) in [(Modifiers::CTRL, 1.0, 1), (Modifiers::SHIFT, -1.0, 0)] {
        harness.hover_at(screen(&harness, 32.0, 32.0));
        let event = egui::Event::MouseWheel { unit: egui::MouseWheelUnit::Line, delta: egui::vec2(0.0, dy), phase: egui::TouchPhase::Move, source: egui::MouseWheelSource::Wheel, modifiers };
        harness.event_modifiers(event, modifiers);
        harness.step();
        opened(&mut harness);
        assert_eq!(harness.state().annotate.shown().unwrap().1, want, "{modifiers:?} + wheel");
    }
    assert!((screen(&harness, 40.0, 50.0) - screen(&harness, 20.0, 30.0) - zoom).length() < 0.5, "the wheel with a modifier does not zoom");

    // Paint on frame 0, go to frame 3 (its own, empty mask), and back: the stroke is there.
    harness.state_mut().annotate.set_tool(Tool::Brush);
    harness.state_mut().settings_mut().brush_radius = 3.0;
    drag(&mut harness, pos2(20.0, 20.0), pos2(40.0, 20.0), Modifiers::NONE);
    let painted = harness.state().annotate.mask().unwrap().clone();
    assert!(painted.foreground_count() > 50);
    harness.state_mut().annotate.show_frame(3);
    opened(&mut harness);
    assert_eq!(harness.state().annotate.shown().unwrap().1, 3);
    assert_eq!(harness.state().annotate.mask().unwrap().foreground_count(), 0);
    harness.state_mut().annotate.show_frame(0);
    opened(&mut harness);
    assert!(harness.state().annotate.mask().unwrap() == &painted, "frame 0's stroke comes back");
}

/// A folder holding one CT series (dcmqi's three slices) opens as one volume; the arrow key
/// moves through its slices; a box on the middle slice is propagated as label 1, a brush
/// stroke is drawn as label 2; Ctrl+S writes the label NIfTI beside the folder and a DICOM SEG
/// with one segment per label, which the reference reader (highdicom) reads back.
#[test]
fn a_ct_series_opens_as_one_volume_with_two_labels_exported_as_nifti_and_seg() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let series = work.path().join("ct3");
    std::fs::create_dir(&series).unwrap();
    for entry in std::fs::read_dir(shared("volumes/seg/dcmqi-ct-3slice/source")).unwrap() {
        copy_to(&series, &entry.unwrap().path());
    }
    let mut harness = app(Some(series.clone()), home.path(), false);
    opened(&mut harness);
    let meta = harness.state().annotate.shown().unwrap().0.meta().clone();
    assert_eq!((meta.frames, meta.format.name()), (3, "DICOM series"));
    assert!(harness.state().annotate.worklist().is_none(), "one volume, not a worklist of slices");
    harness.key_press(Key::ArrowUp);
    harness.step();
    opened(&mut harness);
    assert_eq!(harness.state().annotate.shown().unwrap().1, 1);

    // Label 1: a liver box, propagated through the slices.
    harness.state_mut().annotate.set_tool(Tool::Box);
    drag(&mut harness, pos2(80.0, 146.0), pos2(349.0, 365.0), Modifiers::NONE);
    assert!(wait_for_engine(&mut harness, Duration::from_secs(300)));
    harness.run_steps(2);
    let boxed = harness.state().annotate.label_counts().unwrap()[1];
    {
        let app = harness.state_mut();
        app.annotate.propagate(&app.shared);
    }
    harness.step();
    assert!(wait_for_engine(&mut harness, Duration::from_secs(300)));
    harness.run_steps(2);
    assert_eq!(harness.state().error(), None);
    assert!(harness.state().annotate.mask().unwrap().labels().iter().filter(|&&l| l == 1).count() > 20_000);
    let propagated = harness.state().annotate.label_counts().unwrap()[1];
    assert!(propagated > 60_000, "label 1 over the three slices: {propagated}");

    // The propagation is one undo step over every slice, and one redo brings it back.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(harness.state().annotate.label_counts().unwrap()[1], boxed, "undone on every slice: back to the box's mask");
    harness.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    harness.step();
    assert_eq!(harness.state().annotate.label_counts().unwrap()[1], propagated);
    {
        let app = harness.state_mut();
        let table = app.annotate.label_table_mut().unwrap();
        table.entry(1).name = "liver".into();
        table.entry(2).name = "marker".into();
        app.annotate.label_table_changed();
    }

    // Label 2: a brush stroke beside it, on this slice only.
    harness.state_mut().settings_mut().active_label = 2;
    harness.state_mut().settings_mut().brush_radius = 4.0;
    harness.state_mut().annotate.set_tool(Tool::Brush);
    drag(&mut harness, pos2(400.0, 100.0), pos2(440.0, 100.0), Modifiers::NONE);
    let mask = harness.state().annotate.mask().unwrap().clone();
    let label2 = mask.labels().iter().filter(|&&l| l == 2).count();
    assert!(label2 > 100, "label 2 painted: {label2}");

    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.step();
    wait_for_load(&mut harness);
    harness.run_steps(2);
    assert_eq!(harness.state().error(), None);
    harness.get_by_label_contains("slices labelled: liver");
    let (nii, seg) = (work.path().join("ct3_mask.nii.gz"), work.path().join("ct3_seg.dcm"));
    let description = std::fs::read_to_string(work.path().join("ct3_labels.txt")).unwrap();
    assert!(description.contains("\"liver\"") && description.contains("\"marker\""), "{description}");
    let slice1 = image::open(work.path().join("ct3_mask_png/slice_0001.png")).unwrap().into_luma8();
    assert_eq!(slice1.into_raw(), mask.labels(), "slice 1's PNG label map");
    assert!(work.path().join("ct3_mask_png/slice_0002.png").is_file() && !work.path().join("ct3_mask_png/slice_0003.png").exists());
    let labels = delightsam::imaging::nifti::read(&nii).unwrap();
    assert_eq!(labels.shape, [512, 512, 3]);
    let count = |k: usize, label: f32| labels.values[k * 512 * 512..(k + 1) * 512 * 512].iter().filter(|&&v| v == label).count();
    assert!((0..3).all(|k| count(k, 1.0) > 20_000), "label 1 on every slice");
    assert_eq!((count(0, 2.0), count(1, 2.0), count(2, 2.0)), (0, label2, 0));
    assert!(seg.is_file(), "a DICOM SEG beside the NIfTI");
    let python = std::env::var_os("DELIGHTSAM_REFERENCE_PYTHON").unwrap_or_else(|| "python3".into());
    let out = std::process::Command::new(python)
        .arg(common::root().join("tests/reference/volume_exports.py"))
        .args(["seg", seg.to_str().unwrap(), series.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "highdicom could not read the SEG: {}", String::from_utf8_lossy(&out.stderr));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let labels: Vec<&str> = facts["segments"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["liver", "marker"], "segments named from the label table");
    assert_eq!(facts["frames"], 4, "label 1 on three slices, label 2 on one");

    // A fresh session (no autosaves) on the same series imports the SEG back: the same labels.
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(Some(series.clone()), home.path(), false);
    opened(&mut harness);
    harness.state_mut().annotate.import_labels(seg.clone());
    opened(&mut harness);
    let imported = harness.state().annotate.mask().unwrap();
    assert_eq!(imported.labels().iter().filter(|&&l| l == 1).count(), count(0, 1.0), "slice 0, label 1");
    let table = harness.state().annotate.label_table().unwrap();
    assert_eq!((table.get(1).name.as_str(), table.get(2).name.as_str()), ("liver", "marker"), "names from the SEG's segments");
    harness.state_mut().annotate.show_frame(1);
    opened(&mut harness);
    let imported = harness.state().annotate.mask().unwrap();
    assert_eq!(imported.labels(), mask.labels(), "slice 1 as it was exported");

    // Undo takes the whole import back, on every slice; the export's PNG label maps bring the
    // same labels again.
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(harness.state().annotate.label_counts().unwrap()[1], 0, "the import undone on every slice");
    harness.state_mut().annotate.import_labels(work.path().join("ct3_mask_png/slice_0002.png"));
    opened(&mut harness);
    assert_eq!(harness.state().annotate.mask().unwrap().labels(), mask.labels(), "slice 1 from its PNG");
    let counts = harness.state().annotate.label_counts().unwrap();
    assert_eq!((counts[1] as usize, counts[2] as usize), ((0..3).map(|k| count(k, 1.0)).sum::<usize>(), label2));

    // Erasing a label clears it from every slice, as one undo step.
    {
        let app = harness.state_mut();
        app.annotate.delete_label(&mut app.shared, 1);
    }
    let erased = harness.state().annotate.label_counts().unwrap();
    assert_eq!((erased[1], erased[2]), (0, counts[2]));
    harness.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    harness.step();
    assert_eq!(harness.state().annotate.label_counts().unwrap(), counts);
}


/// De-LightSAM on every slice of an MR series from the window: one reply, the masks in the
/// active label of each slice (kept when the user moves through the slices).
#[test]
fn an_automatic_proposal_on_every_slice_of_a_series() {
    let home = tempfile::tempdir().unwrap();
    let mut harness = app(Some(shared("volumes/mr-series-oblique")), home.path(), false);
    opened(&mut harness);
    assert_eq!(harness.state().annotate.shown().unwrap().0.meta().frames, 40);
    harness.state_mut().settings_mut().active_label = 3;
    common::window::set_modality(&mut harness, "mr");
    {
        let app = harness.state_mut();
        app.annotate.propose_every_slice(&app.shared);
    }
    harness.step();
    assert!(wait_for_engine(&mut harness, Duration::from_secs(600)));
    harness.run_steps(2);
    assert_eq!(harness.state().error(), None);
    let mut labelled = 0;
    for k in [0u32, 20, 39] {
        harness.state_mut().annotate.show_frame(k);
        opened(&mut harness);
        let mask = harness.state().annotate.mask().unwrap();
        assert!(mask.labels().iter().all(|&l| l == 0 || l == 3), "only the active label");
        labelled += usize::from(mask.foreground_count() > 0);
    }
    assert!(labelled >= 2, "brain found on {labelled} of 3 sampled slices");
}

/// A study folder (a subfolder per series, and a plain image) opens as a worklist listing the
/// series and the image; a series item opens as one volume. An enhanced multi-frame CT file
/// (a position per frame) opens as a volume too, not frame by frame.
#[test]
fn a_study_folder_lists_its_series_and_a_multi_frame_ct_is_a_volume() {
    let home = tempfile::tempdir().unwrap();
    let study = tempfile::tempdir().unwrap();
    for (name, from) in [("ct", shared("volumes/seg/dcmqi-ct-3slice/source")), ("mr", shared("volumes/mr-series-oblique"))] {
        let folder = study.path().join(name);
        std::fs::create_dir(&folder).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            copy_to(&folder, &entry.unwrap().path());
        }
    }
    copy_to(study.path(), &fixture("raster/colin27_z090.png"));
    // The MR series' files also lie in the study folder itself, beside the image.
    for entry in std::fs::read_dir(shared("volumes/mr-series-oblique")).unwrap() {
        copy_to(study.path(), &entry.unwrap().path());
    }
    let mut harness = app(Some(study.path().to_path_buf()), home.path(), false);
    opened(&mut harness);
    let items: Vec<String> = harness.state().annotate.worklist().unwrap().items.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(items.len(), 4, "{items:?}");
    assert_eq!(items[..3], ["colin27_z090.png", "ct", "mr"]);
    assert!(items[3].starts_with("series "), "the 40 loose MR files are one item: {items:?}");
    harness.get_by_label_contains("ct  (series)");
    harness.key_press(Key::PageDown);
    harness.step();
    opened(&mut harness);
    let meta = harness.state().annotate.shown().unwrap().0.meta().clone();
    assert_eq!((meta.frames, meta.format.name(), meta.path.file_name().unwrap().to_str().unwrap()), (3, "DICOM series", "ct"));
    for _ in 0..2 {
        harness.key_press(Key::PageDown);
        harness.step();
        opened(&mut harness);
    }
    let (source, _) = harness.state().annotate.shown().unwrap();
    let series = study.path().join(&items[3]);
    assert_eq!((source.meta().frames, source.path()), (40, series.as_path()), "the loose series opens as one volume");

    // A stroke on a slice of it marks the item edited; its export, exported (also when the
    // folder is read again).
    harness.state_mut().annotate.set_tool(Tool::Brush);
    drag(&mut harness, pos2(60.0, 60.0), pos2(90.0, 60.0), Modifiers::NONE);
    assert_eq!(harness.state().annotate.worklist().unwrap().state_of(&series), ItemState::Edited);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.step();
    wait_for_load(&mut harness);
    assert_eq!(harness.state().error(), None);
    assert!(study.path().join(format!("{}_mask.nii.gz", items[3])).is_file());
    assert_eq!(harness.state().annotate.worklist().unwrap().state_of(&series), ItemState::Exported);
    harness.state().annotate.flush_autosave();
    assert_eq!(delightsam::app::Worklist::read_state(&series, None, &home.path().join("autosave")), ItemState::Exported);

    let work = tempfile::tempdir().unwrap();
    let file = copy_to(work.path(), &fixture("dicom/eCT_Supplemental.dcm"));
    open_path(&mut harness, file.clone());
    opened(&mut harness);
    let (source, _) = harness.state().annotate.shown().unwrap();
    assert!(source.volume().is_some(), "a volume");
    assert_eq!((source.meta().frames, source.path()), (2, file.as_path()));
}
