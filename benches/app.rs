//! The window's speed, measured through the real app (egui_kittest, wgpu renderer: lavapipe
//! here, the GPU elsewhere). Prints medians:
//! - frame time while painting a brush stroke on a 4096² image (UI work per frame: the stroke,
//!   the dirty-rectangle upload queue), and a rendered frame (GPU composite + read-back);
//! - time from opening an image to the first automatic proposal, per backend;
//! - a worklist as a user meets it (warm-up, encode on open, encode-ahead): open → first box
//!   mask, next image → box mask, and how many masks a dragged box gets per second.
//! Run: cargo bench --bench app [-- --backends cpu,wgpu]

#[path = "../tests/common/window.rs"]
#[allow(dead_code)]
mod window;

use std::path::Path;
use std::time::{Duration, Instant};

use delightsam::app::{AnnotatorApp, AppOptions, AppPaths, Tool};
use delightsam::model::backend::BackendKind;
use egui_kittest::Harness;
use window::{propose, wait_for_engine, wait_for_load};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn app<'a>(file: &Path, home: &Path, backend: BackendKind) -> Harness<'a, AnnotatorApp> {
    app_with(file, home, backend, false)
}

fn app_with<'a>(file: &Path, home: &Path, backend: BackendKind, prepare_on_open: bool) -> Harness<'a, AnnotatorApp> {
    let (file, paths) = (file.to_path_buf(), AppPaths::in_folder(home));
    Harness::builder().with_size(egui::vec2(1280.0, 860.0)).with_max_steps(100_000).wgpu().build_eframe(move |cc| {
        AnnotatorApp::new(cc, AppOptions { file: Some(file), paths, backend: Some(backend), prepare_on_open })
    })
}

/// Press at image point `from`, move to `to` in `moves` frames (one move per frame, `pause`
/// between frames), release; then waits for the final mask. Returns the previews shown meanwhile.
/// (`wait_for_engine` would stop at the image's `Prepared` reply, before the mask.)
fn drag_box(harness: &mut Harness<'_, AnnotatorApp>, from: (f32, f32), to: (f32, f32), moves: u32, pause: Duration) -> usize {
    let screen = |h: &Harness<'_, AnnotatorApp>, (x, y): (f32, f32)| h.state().annotate.screen_pos(x, y).expect("drawn");
    let (a, b) = (screen(harness, from), screen(harness, to));
    let status = harness.state().annotate.engine_status();
    let (before, answered) = (status.previews_shown, status.masks_applied);
    harness.hover_at(a);
    harness.step();
    harness.drag_at(a);
    harness.step();
    for i in 1..=moves {
        harness.hover_at(a.lerp(b, i as f32 / moves as f32));
        harness.step();
        std::thread::sleep(pause);
    }
    harness.drop_at(b);
    harness.step();
    let app = harness.state_mut();
    app.annotate.wait_for_engine_until(&mut app.shared, Duration::from_secs(1800), |e| e.masks_applied > answered);
    harness.state().annotate.engine_status().previews_shown - before
}

fn worklist_flow(home: &Path, backend: BackendKind) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ph2-dermoscopy/images");
    let work = home.join(format!("worklist-{backend}"));
    std::fs::create_dir_all(&work).unwrap();
    for name in ["IMD002.jpg", "IMD004.jpg", "IMD009.jpg", "IMD013.jpg"] {
        let source = data.join(name);
        assert!(source.is_file(), "this benchmark needs {}", source.display());
        std::fs::copy(&source, work.join(name)).unwrap();
    }
    let start = Instant::now();
    let mut harness = app_with(&work, home, backend, true);
    wait_for_load(&mut harness);
    harness.step();
    harness.state_mut().annotate.set_tool(Tool::Box);
    let lesion = ((200.0, 150.0), (560.0, 450.0));
    drag_box(&mut harness, lesion.0, lesion.1, 8, Duration::ZERO);
    let first = start.elapsed();
    let encode = harness.state().annotate.engine_status().last_encode;

    // Idle: the next image is encoded ahead.
    let app = harness.state_mut();
    let ahead = app.annotate.wait_for_engine_until(&mut app.shared, Duration::from_secs(1800), |e| e.encoded_ahead >= 1);
    let next = Instant::now();
    harness.state_mut().annotate.step_worklist(1);
    wait_for_load(&mut harness);
    harness.step();
    drag_box(&mut harness, lesion.0, lesion.1, 8, Duration::ZERO);
    let second = next.elapsed();
    let next_encode = harness.state().annotate.engine_status().last_encode;

    // A box dragged for ~3 s at ~60 frames per second: how often the mask follows.
    let drag = Instant::now();
    let previews = drag_box(&mut harness, (150.0, 120.0), (620.0, 500.0), 180, Duration::from_millis(16));
    let dragged = drag.elapsed();
    let decode = harness.state().annotate.last_inference().map(|(_, took)| took);
    println!("worklist of 4 PH2 images on {backend} (warm-up at start, encode on open, encode-ahead):");
    println!("  open → first box mask {} (encode part {:?})", ms(first), encode);
    println!(
        "  next image → box mask {} (encode part {:?}; encoded ahead: {ahead})",
        ms(second),
        next_encode
    );
    println!(
        "  box dragged {:.1} s: {previews} masks shown while dragging ({:.1} per second), last decode {:?}",
        dragged.as_secs_f64(),
        previews as f64 / dragged.as_secs_f64(),
        decode
    );
    if let Some(e) = harness.state().error() {
        println!("  error: {e}");
    }
}

fn painting_4096(home: &Path) {
    let image = home.join("gradient-4096.png");
    let pixels: Vec<u16> = (0..4096u32 * 4096).map(|i| ((i % 4096) * 16 + (i / 4096) % 16) as u16).collect();
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(4096, 4096, pixels).unwrap().save(&image).unwrap();
    let mut harness = app(&image, home, BackendKind::Cpu);
    wait_for_load(&mut harness);
    harness.run_steps(3);
    harness.render().expect("render");
    harness.state_mut().annotate.set_tool(Tool::Brush);
    harness.state_mut().settings_mut().brush_radius = 24.0;
    let from = harness.state().annotate.screen_pos(500.0, 2000.0).unwrap();
    let to = harness.state().annotate.screen_pos(3600.0, 2100.0).unwrap();
    harness.hover_at(from);
    harness.step();
    harness.drag_at(from);
    harness.step();
    let (mut steps, mut renders) = (Vec::new(), Vec::new());
    for i in 1..=120 {
        harness.hover_at(from.lerp(to, i as f32 / 120.0));
        let start = Instant::now();
        harness.step();
        steps.push(start.elapsed());
        if i % 10 == 0 {
            let start = Instant::now();
            harness.render().expect("render");
            renders.push(start.elapsed());
        }
    }
    harness.drop_at(to);
    let start = Instant::now();
    harness.step();
    let release = start.elapsed();
    let painted = harness.state().annotate.mask().map_or(0, |m| m.foreground_count());
    println!("painting on 4096² (16-bit grey), brush radius 24 px, 120 frames ({painted} px painted):");
    println!("  UI frame while dragging   median {}  max {}", ms(median(steps.clone())), ms(*steps.iter().max().unwrap()));
    println!("  rendered frame (wgpu + read-back)  median {}", ms(median(renders)));
    println!("  stroke end (undo step + autosave queued) {}", ms(release));
}

fn open_to_proposal(home: &Path, backend: BackendKind) {
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/ph2-dermoscopy/images/IMD002.jpg");
    assert!(image.is_file(), "this benchmark needs {}", image.display());
    let start = Instant::now();
    let mut harness = app(&image, home, backend);
    wait_for_load(&mut harness);
    harness.step();
    let opened = start.elapsed();
    propose(&mut harness, false);
    let done = wait_for_engine(&mut harness, Duration::from_secs(1800));
    let first = start.elapsed();
    // The second proposal on the same image reuses the cached embedding.
    let again = Instant::now();
    propose(&mut harness, false);
    wait_for_engine(&mut harness, Duration::from_secs(600));
    let second = again.elapsed();
    let error = harness.state().error().map(str::to_string);
    println!(
        "open → first automatic proposal on {backend}: {} (file shown after {}; model load + encode + decode), again on the same image {}{}",
        ms(first),
        ms(opened),
        ms(second),
        if done { String::new() } else { " (timed out)".into() }
    );
    if let Some(e) = error {
        println!("  error: {e}");
    }
}

fn main() {
    let backends: Vec<BackendKind> = std::env::args()
        .skip_while(|a| a != "--backends")
        .nth(1)
        .map(|list| list.split(',').map(|b| b.parse().expect("cpu or wgpu")).collect())
        .unwrap_or_else(|| vec![BackendKind::Cpu]);
    let home = tempfile::tempdir().unwrap();
    painting_4096(home.path());
    for backend in backends {
        open_to_proposal(home.path(), backend);
        worklist_flow(home.path(), backend);
    }
}
