use std::path::PathBuf;
use std::sync::Arc;

use egui::{Color32, ColorImage, Rect, Sense, TextureHandle, TextureOptions, Vec2, pos2};

use super::loader::{LoadResult, Loader};
use crate::imaging::{Frame, ImageSource, Window};

/// What the user asked for during a frame; applied after drawing, never in the middle of it.
enum Action {
    PickFile,
    Open(PathBuf),
    ShowFrame(u32),
    SetWindow(Window),
}

/// An image on screen: its source, the frame shown, and the view parameters.
struct Shown {
    source: Arc<ImageSource>,
    frame_index: u32,
    frame: Frame,
    window: Window,
    texture: Option<TextureHandle>,
}

pub struct ViewerApp {
    loader: Loader,
    shown: Option<Shown>,
    /// The last error, shown in the status bar until the next successful action.
    error: Option<String>,
    /// Pixel under the cursor: image coordinates and values in modality units.
    hover: Option<(u32, u32, Vec<f32>)>,
}

impl ViewerApp {
    pub fn new(ctx: &egui::Context, file: Option<PathBuf>) -> Self {
        let mut app = Self { loader: Loader::new(ctx), shown: None, error: None, hover: None };
        if let Some(path) = file {
            app.loader.open(path);
        }
        app
    }

    pub fn open(&mut self, path: PathBuf) {
        self.loader.open(path);
    }

    /// Blocks until the pending load has arrived and been applied. For tests and scripts only:
    /// the UI itself polls.
    pub fn wait_for_load(&mut self) {
        let results = self.loader.wait();
        self.apply_results(results);
    }

    pub fn is_loading(&self) -> bool {
        self.loader.is_busy()
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The file and frame on screen, if any.
    pub fn shown(&self) -> Option<(&ImageSource, u32)> {
        self.shown.as_ref().map(|s| (s.source.as_ref(), s.frame_index))
    }

    pub fn window(&self) -> Option<Window> {
        self.shown.as_ref().map(|s| s.window)
    }

    fn apply_results(&mut self, results: Vec<LoadResult>) {
        for result in results {
            match result {
                LoadResult::Loaded { source, frame_index, frame } => {
                    // A new file starts from its own default window; a new frame keeps the view.
                    let window = match &self.shown {
                        Some(s) if Arc::ptr_eq(&s.source, &source) => s.window,
                        _ => source.default_window(&frame),
                    };
                    self.shown = Some(Shown { source, frame_index, frame, window, texture: None });
                    self.error = None;
                }
                LoadResult::Failed(message) => self.error = Some(message),
                LoadResult::Picked(path) => self.loader.open(path),
            }
        }
    }

    fn apply(&mut self, action: Action) {
        match action {
            Action::PickFile => self.loader.pick_file(),
            Action::Open(path) => self.loader.open(path),
            Action::ShowFrame(index) => {
                if let Some(shown) = &self.shown {
                    self.loader.frame(shown.source.clone(), index);
                }
            }
            Action::SetWindow(window) => {
                if let Some(shown) = &mut self.shown {
                    shown.window = window;
                    shown.texture = None;
                }
            }
        }
    }

    fn menu_ui(&self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("Open…").clicked() {
                    actions.push(Action::PickFile);
                }
            });
            if self.loader.is_busy() {
                ui.spinner();
                ui.label("Reading…");
            }
        });
    }

    fn status_ui(&self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        ui.horizontal_wrapped(|ui| {
            if let Some(error) = &self.error {
                ui.colored_label(Color32::from_rgb(230, 90, 80), format!("Error: {error}"));
                return;
            }
            let Some(shown) = &self.shown else {
                ui.label("Open an image: File > Open…, drag a file here, or pass a path on the command line.");
                return;
            };
            let meta = shown.source.meta();
            let name = meta.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            ui.label(format!(
                "{name} · {} {} · {}×{} · {}",
                meta.format.name(),
                meta.modality.as_deref().unwrap_or(""),
                meta.cols,
                meta.rows,
                meta.photometric
            ));
            ui.separator();
            if meta.frames > 1 {
                let mut index = shown.frame_index;
                let slider = egui::Slider::new(&mut index, 0..=meta.frames - 1).text("frame");
                if ui.add(slider).changed() {
                    actions.push(Action::ShowFrame(index));
                }
                ui.separator();
            }
            let mut window = shown.window;
            let step = (window.width / 200.0).max(0.01);
            let c = ui.add(egui::DragValue::new(&mut window.center).speed(step).prefix("C "));
            let w = ui.add(egui::DragValue::new(&mut window.width).speed(step).prefix("W ").range(1e-3..=f64::MAX));
            if c.changed() || w.changed() {
                actions.push(Action::SetWindow(window));
            }
            if !meta.windows.is_empty() {
                egui::ComboBox::from_label("window presets").selected_text("choose").show_ui(ui, |ui| {
                    for preset in &meta.windows {
                        if ui.selectable_label(preset.window == shown.window, meta.window_label(preset)).clicked() {
                            actions.push(Action::SetWindow(preset.window));
                        }
                    }
                });
            }
            if let Some((x, y, values)) = &self.hover {
                ui.separator();
                let values: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
                ui.monospace(format!("({x}, {y}) = {}", values.join(", ")));
            }
        });
    }

    /// The image, fitted to the panel. Right-drag changes window/level (horizontal: width,
    /// vertical: center).
    fn image_ui(&mut self, ui: &mut egui::Ui, actions: &mut Vec<Action>) {
        self.hover = None;
        let Some(shown) = &mut self.shown else {
            return;
        };
        let frame = &shown.frame;
        let texture = shown.texture.get_or_insert_with(|| {
            let rgba = frame.to_rgba8(shown.window, shown.source.meta().invert_display);
            let image = ColorImage::from_rgba_unmultiplied([frame.width as usize, frame.height as usize], &rgba);
            ui.ctx().load_texture("image", image, TextureOptions::LINEAR)
        });
        let available = ui.available_rect_before_wrap();
        let image_size = Vec2::new(frame.width as f32, frame.height as f32);
        let scale = (available.width() / image_size.x).min(available.height() / image_size.y);
        let screen_rect = Rect::from_center_size(available.center(), image_size * scale);
        let response = ui.allocate_rect(available, Sense::click_and_drag());
        ui.painter().rect_filled(available, 0.0, Color32::BLACK);
        ui.painter().image(texture.id(), screen_rect, Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)), Color32::WHITE);

        if let Some(pointer) = response.hover_pos() {
            let image_from_screen = |p: egui::Pos2| (p - screen_rect.min) / scale;
            let at = image_from_screen(pointer);
            if at.x >= 0.0 && at.y >= 0.0 {
                let (x, y) = (at.x as u32, at.y as u32);
                if let Some(values) = frame.value_at(x, y) {
                    self.hover = Some((x, y, values.to_vec()));
                }
            }
        }
        if response.dragged_by(egui::PointerButton::Secondary) {
            let delta = response.drag_delta();
            let range = f64::from(frame.display_range.1 - frame.display_range.0).max(1.0);
            let per_pixel = range / 512.0;
            let window = Window::new(
                shown.window.center - f64::from(delta.y) * per_pixel,
                (shown.window.width + f64::from(delta.x) * per_pixel).max(per_pixel),
            );
            actions.push(Action::SetWindow(window));
        }
    }

    fn dropped_files_ui(&self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        let dropped = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect::<Vec<_>>());
        if let Some(path) = dropped.into_iter().next() {
            actions.push(Action::Open(path));
        }
    }
}

impl eframe::App for ViewerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let results = self.loader.poll();
        self.apply_results(results);
        let mut actions = Vec::new();
        let ctx = ui.ctx().clone();
        self.dropped_files_ui(&ctx, &mut actions);
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui, &mut actions));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui, &mut actions));
        egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| self.image_ui(ui, &mut actions));
        for action in actions {
            self.apply(action);
        }
    }
}
