//! The real viewer, driven by egui_kittest and rendered with wgpu (lavapipe in CI).

mod common;

use common::fixture;
use delightsam::app::ViewerApp;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

#[test]
fn the_window_shows_a_dicom_image() {
    let path = fixture("dicom/CT_small.dcm");
    let mut harness = Harness::builder()
        .with_size(egui::vec2(640.0, 480.0))
        .wgpu()
        .build_eframe(|cc| ViewerApp::new(&cc.egui_ctx, Some(path.clone())));
    harness.state_mut().wait_for_load();
    harness.run();
    assert_eq!(harness.state().error(), None);
    let (source, frame) = harness.state().shown().expect("an image is shown");
    assert_eq!((source.meta().rows, frame), (128, 0));

    // The status bar names the file and the window.
    harness.get_by_label_contains("CT_small.dcm");

    let image = harness.render().expect("render with wgpu");
    // The CT fills the middle of the window: its body is bright, the air around it dark.
    let (w, h) = image.dimensions();
    let centre = image.get_pixel(w / 2, h / 2).0;
    let corner_of_image = image.get_pixel(w / 2 - 150, h / 2 - 150).0;
    let grey_levels: std::collections::BTreeSet<u8> =
        (0..w).step_by(7).flat_map(|x| (0..h).step_by(7).map(move |y| (x, y))).map(|(x, y)| image.get_pixel(x, y).0[0]).collect();
    assert!(grey_levels.len() > 20, "the image should show many grey levels, got {}", grey_levels.len());
    assert!(centre[0] != corner_of_image[0] || centre[1] != corner_of_image[1], "{centre:?} vs {corner_of_image:?}");
}

#[test]
fn the_window_reports_a_bad_file_and_keeps_running() {
    let path = fixture("bad/not_an_image.png");
    let mut harness = Harness::builder()
        .with_size(egui::vec2(640.0, 480.0))
        .build_eframe(|cc| ViewerApp::new(&cc.egui_ctx, Some(path.clone())));
    harness.state_mut().wait_for_load();
    harness.run();
    let error = harness.state().error().expect("an error is shown").to_string();
    assert!(error.contains("not_an_image.png"), "{error}");
    harness.get_by_label_contains("not a supported image");

    // The next file still opens.
    harness.state_mut().open(fixture("dicom/MR_small.dcm"));
    harness.state_mut().wait_for_load();
    harness.run();
    assert_eq!(harness.state().error(), None);
    assert!(harness.state().shown().is_some());
}
