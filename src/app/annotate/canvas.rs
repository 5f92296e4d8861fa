//! The image area: zoom and pan, window/level by right-drag, the mask overlay, the prompts and
//! the patch grid, and what each tool does with the pointer.

use eframe::egui_wgpu;
use egui::{Color32, PointerButton, Pos2, Rect, Sense, Stroke, Vec2, pos2};

use super::document::{Document, GRID_CELLS, MASK_COLOR};
use super::gpu_view::{CompositeCallback, MAX_SIDE, SharedUploads};
use super::tools::{self, PixelRect, Tool};
use crate::app::settings::Settings;
use crate::imaging::{Mask, Window};

/// Zoom and pan of the image in the panel. `zoom` = screen points per image pixel.
#[derive(Debug, Clone)]
pub struct View {
    pub zoom: f32,
    /// Offset of the image centre from the panel centre, in screen points.
    pub pan: Vec2,
    /// Keep fitting the image to the panel (until the user zooms).
    pub fitting: bool,
    /// Where the image was drawn in the last frame (for hit tests and tests).
    image_rect: Option<Rect>,
}

impl Default for View {
    fn default() -> Self {
        Self { zoom: 1.0, pan: Vec2::ZERO, fitting: true, image_rect: None }
    }
}

impl View {
    pub fn fit(&mut self) {
        self.fitting = true;
        self.pan = Vec2::ZERO;
    }

    pub fn actual_size(&mut self) {
        self.fitting = false;
        self.zoom = 1.0;
        self.pan = Vec2::ZERO;
    }

    fn layout(&mut self, panel: Rect, image_size: Vec2) -> Rect {
        if self.fitting {
            self.zoom = (panel.width() / image_size.x).min(panel.height() / image_size.y).max(1e-3);
        }
        let rect = Rect::from_center_size(panel.center() + self.pan, image_size * self.zoom);
        self.image_rect = Some(rect);
        rect
    }

    /// Zooms by `factor` keeping the image point under `anchor` where it is.
    fn zoom_about(&mut self, anchor: Pos2, panel: Rect, factor: f32) {
        let Some(rect) = self.image_rect else { return };
        let new_zoom = (self.zoom * factor).clamp(0.01, 64.0);
        let factor = new_zoom / self.zoom;
        let centre = rect.center();
        let new_centre = anchor + (centre - anchor) * factor;
        self.pan = new_centre - panel.center();
        self.zoom = new_zoom;
        self.fitting = false;
    }

    pub fn image_from_screen(&self, p: Pos2) -> Option<Pos2> {
        let rect = self.image_rect?;
        Some(pos2((p.x - rect.min.x) / self.zoom, (p.y - rect.min.y) / self.zoom))
    }

    pub fn screen_from_image(&self, p: Pos2) -> Option<Pos2> {
        let rect = self.image_rect?;
        Some(pos2(rect.min.x + p.x * self.zoom, rect.min.y + p.y * self.zoom))
    }
}

/// What the wheel did this frame: zoom by `zoom` (with pinch gestures) about the cursor, and,
/// with Ctrl (Cmd) or Shift held on a file of several frames, move `slices` up (+, wheel away
/// from the user) or down, one per notch. Read from the raw events, not egui's smoothed scroll,
/// so that a wheel turn meant for the slices never also zooms a few frames later.
struct Wheel {
    zoom: f32,
    /// In notches (a line, or a line's worth of points).
    slices: f32,
}

fn wheel(ui: &egui::Ui, panel_height: f32, several_frames: bool) -> Wheel {
    let line = ui.ctx().options(|o| o.input_options.line_scroll_speed);
    ui.input(|i| {
        let mut out = Wheel { zoom: 1.0, slices: 0.0 };
        let points = |unit: &egui::MouseWheelUnit, d: f32| match unit {
            egui::MouseWheelUnit::Point => d,
            egui::MouseWheelUnit::Line => d * line,
            egui::MouseWheelUnit::Page => d * panel_height,
        };
        for event in &i.events {
            match event {
                egui::Event::Zoom(factor) => out.zoom *= factor,
                egui::Event::MouseWheel { unit, delta, modifiers, .. } => {
                    if several_frames && (modifiers.command || modifiers.ctrl || modifiers.shift || i.modifiers.command || i.modifiers.shift) {
                        // Shift turns the wheel horizontal on some platforms: either axis counts.
                        out.slices += points(unit, delta.y + delta.x) / line.max(1.0);
                    } else {
                        out.zoom *= (points(unit, delta.y) * 0.002).exp();
                    }
                }
                _ => {}
            }
        }
        out
    })
}

/// A pointer gesture in progress (between press and release).
enum Gesture {
    Stroke { before: Mask, last: Pos2, changed: PixelRect, label: u8 },
    Lasso { points: Vec<Pos2> },
    Box { start: Pos2, end: Pos2 },
}

/// What a gesture on the canvas asks the Annotate tab to do.
pub enum CanvasAction {
    /// The mask was edited in place (stroke, lasso, click): one undo step from `before`.
    Edited { before: Mask, rect: PixelRect },
    Fill { x: f32, y: f32, label: u8 },
    Box([f32; 4]),
    /// The box being dragged changed: a preview decode (`Box` follows on release).
    BoxDragged([f32; 4]),
    Point { x: f32, y: f32, positive: bool },
    /// A patch-grid cell was switched: propose again with the edited grid.
    GridChanged,
    /// Ctrl or Shift + wheel: this many slices (frames) up (+) or down (−).
    StepSlices(i64),
}

impl CanvasAction {
    /// A word for the crash report's list of last actions.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Edited { .. } => "edit",
            Self::Fill { .. } => "fill",
            Self::Box(_) => "box prompt",
            Self::BoxDragged(_) => "drag box",
            Self::Point { .. } => "point prompt",
            Self::GridChanged => "grid edit",
            Self::StepSlices(_) => "wheel through slices",
        }
    }
}

/// The image area's own state: view, gesture in progress, pixel under the cursor, GPU uploads.
pub struct Canvas {
    pub view: View,
    gesture: Option<Gesture>,
    /// Pixel under the cursor: image coordinates and values in modality units.
    pub hover: Option<(u32, u32, Vec<f32>)>,
    /// Uploads for the GPU compositor; `None` when egui does not run on wgpu.
    gpu: Option<SharedUploads>,
    /// The document whose image the GPU holds.
    gpu_image: Option<u64>,
    /// Slices turned by the wheel and not yet stepped (trackpads send fractions of a notch).
    wheel_slices: f32,
}

impl Canvas {
    pub fn new(gpu: Option<SharedUploads>) -> Self {
        Self { view: View::default(), gesture: None, hover: None, gpu, gpu_image: None, wheel_slices: 0.0 }
    }

    /// A stroke, lasso or box is being drawn.
    pub fn gesture_active(&self) -> bool {
        self.gesture.is_some()
    }

    /// Drops the gesture in progress (another image or slice is shown); a stroke's mask from
    /// before it, to put back.
    pub fn abandon_gesture(&mut self) -> Option<Mask> {
        match self.gesture.take() {
            Some(Gesture::Stroke { before, .. }) => Some(before),
            _ => None,
        }
    }

    /// Draws `doc` and turns the pointer into edits of its mask and actions for the tab.
    /// `overlay`: colour and strength per label (the label table's).
    pub fn ui(&mut self, ui: &mut egui::Ui, doc: Option<&mut Document>, tool: Tool, settings: &Settings, overlay: &[[f32; 4]; 256]) -> Option<CanvasAction> {
        self.hover = None;
        let panel = ui.available_rect_before_wrap();
        let response = ui.allocate_rect(panel, Sense::click_and_drag());
        ui.painter().rect_filled(panel, 0.0, Color32::from_gray(16));
        let ctx = ui.ctx().clone();
        let Some(doc) = doc else {
            self.gesture = None;
            return None;
        };
        let (w, h) = doc.size();
        let image_rect = self.view.layout(panel, Vec2::new(w as f32, h as f32));
        let painter = ui.painter_at(panel);
        self.paint_image(&ctx, &painter, doc, image_rect.intersect(panel), image_rect, settings, overlay);
        let zoom = self.view.zoom;
        let to_screen = |p: Pos2| pos2(image_rect.min.x + p.x * zoom, image_rect.min.y + p.y * zoom);
        paint_prompts(&painter, doc, tool == Tool::Grid, &to_screen);

        let pointer = response.hover_pos();
        self.hover = pointer.and_then(|p| self.view.image_from_screen(p)).and_then(|at| pixel_at(doc, at));
        let wheel = wheel(ui, panel.height(), doc.source.meta().frames > 1);
        if self.view_input(ui, &response, panel, doc, wheel.zoom) {
            self.gesture = None;
            return None;
        }
        if let Some(p) = pointer.filter(|_| matches!(tool, Tool::Brush | Tool::Eraser)) {
            painter.circle_stroke(p, settings.brush_radius * zoom, Stroke::new(1.0, Color32::from_white_alpha(180)));
        }
        // Never while drawing: the gesture belongs to the slice it started on.
        if wheel.slices != 0.0 && pointer.is_some() && self.gesture.is_none() {
            self.wheel_slices += wheel.slices;
            let steps = self.wheel_slices.trunc();
            self.wheel_slices -= steps;
            if steps != 0.0 {
                return Some(CanvasAction::StepSlices(steps as i64));
            }
        }
        let action = self.tool_input(ui, &response, doc, tool, settings.brush_radius, settings.active_label.max(1));
        if let Some(g) = &self.gesture {
            draw_gesture(&painter, g, &to_screen);
        }
        action
    }

    /// The image and its mask: composited on the GPU when egui runs on wgpu, else CPU textures.
    fn paint_image(
        &mut self,
        ctx: &egui::Context,
        painter: &egui::Painter,
        doc: &mut Document,
        visible: Rect,
        image_rect: Rect,
        settings: &Settings,
        overlay: &[[f32; 4]; 256],
    ) {
        let (w, h) = doc.size();
        let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
        match &self.gpu {
            Some(uploads) if w <= MAX_SIDE && h <= MAX_SIDE => {
                if let Ok(mut pending) = uploads.lock() {
                    if self.gpu_image != Some(doc.id.generation) {
                        doc.take_dirty();
                        pending.new_image(doc.id.generation, doc.frame.clone(), doc.mask.clone());
                        self.gpu_image = Some(doc.id.generation);
                    } else if let Some(rect) = doc.take_dirty() {
                        pending.mask_part(&doc.mask, rect);
                    }
                }
                if visible.is_positive() {
                    let to_uv = |p: Pos2| [(p.x - image_rect.min.x) / image_rect.width(), (p.y - image_rect.min.y) / image_rect.height()];
                    let callback = CompositeCallback {
                        image_key: doc.id.generation,
                        uploads: uploads.clone(),
                        window: doc.window,
                        invert: doc.source.meta().invert_display,
                        opacity: settings.opacity,
                        show_mask: settings.show_mask,
                        colors: Box::new(*overlay),
                        zoom: self.view.zoom,
                        uv: [to_uv(visible.min), to_uv(visible.max)],
                    };
                    painter.add(egui_wgpu::Callback::new_paint_callback(visible, callback));
                }
            }
            _ => {
                painter.image(doc.image_texture(ctx).id(), image_rect, uv, Color32::WHITE);
                if settings.show_mask {
                    let alpha = (settings.opacity * 255.0).round() as u8;
                    painter.image(doc.mask_texture(ctx, overlay).id(), image_rect, uv, Color32::from_white_alpha(alpha));
                }
            }
        }
    }

    /// Zoom (wheel or pinch) about the cursor, pan (middle button or space + drag), window/level
    /// (right drag). True while panning: the tools ignore that drag.
    /// `zoom`: the wheel's and pinch's zoom factor this frame (see [`wheel`]).
    fn view_input(&mut self, ui: &egui::Ui, response: &egui::Response, panel: Rect, doc: &mut Document, zoom: f32) -> bool {
        if let Some(p) = response.hover_pos() {
            if (zoom - 1.0).abs() > 1e-4 {
                self.view.zoom_about(p, panel, zoom);
            }
        }
        let space = ui.input(|i| i.key_down(egui::Key::Space));
        if response.dragged_by(PointerButton::Middle) || (space && response.dragged_by(PointerButton::Primary)) {
            self.view.pan += response.drag_delta();
            self.view.fitting = false;
            return true;
        }
        if response.dragged_by(PointerButton::Secondary) {
            let delta = response.drag_delta();
            let range = f64::from(doc.frame.display_range.1 - doc.frame.display_range.0).max(1.0);
            let per_point = range / 512.0;
            let window = Window::new(
                doc.window.center - f64::from(delta.y) * per_point,
                (doc.window.width + f64::from(delta.x) * per_point).max(per_point),
            );
            doc.set_window(window);
        }
        false
    }

    fn tool_input(&mut self, ui: &egui::Ui, response: &egui::Response, doc: &mut Document, tool: Tool, radius: f32, active: u8) -> Option<CanvasAction> {
        let press_origin = ui.input(|i| i.pointer.press_origin());
        let shift = ui.input(|i| i.modifiers.shift);
        let view = &self.view;
        let image_pos = |p: Option<Pos2>| p.and_then(|p| view.image_from_screen(p));
        let now = image_pos(response.interact_pointer_pos());

        if response.drag_started_by(PointerButton::Primary) {
            let start = image_pos(press_origin).or(now);
            self.gesture = start.and_then(|start| match tool {
                Tool::Brush | Tool::Eraser => {
                    let label = if tool == Tool::Brush { active } else { 0 };
                    let before = doc.mask.clone();
                    let changed = tools::paint_segment(&mut doc.mask, (start.x, start.y), (start.x, start.y), radius, label);
                    doc.mark_dirty(changed);
                    Some(Gesture::Stroke { before, last: start, changed, label })
                }
                Tool::Lasso => Some(Gesture::Lasso { points: vec![start] }),
                Tool::Box => Some(Gesture::Box { start, end: start }),
                Tool::Fill | Tool::Points | Tool::Grid => None,
            });
        }
        let mut dragged_box = None;
        if response.dragged_by(PointerButton::Primary) {
            if let (Some(p), Some(g)) = (now, self.gesture.as_mut()) {
                match g {
                    Gesture::Stroke { last, changed, label, .. } => {
                        let rect = tools::paint_segment(&mut doc.mask, (last.x, last.y), (p.x, p.y), radius, *label);
                        doc.mark_dirty(rect);
                        *changed = changed.union(rect);
                        *last = p;
                    }
                    Gesture::Lasso { points } => {
                        if points.last().is_none_or(|q| q.distance(p) >= 1.0) {
                            points.push(p);
                        }
                    }
                    Gesture::Box { start, end } => {
                        if *end != p {
                            *end = p;
                            dragged_box = box_corners(*start, p, doc.size());
                        }
                    }
                }
            }
        }
        if response.drag_stopped_by(PointerButton::Primary) {
            match self.gesture.take() {
                Some(Gesture::Stroke { before, changed, .. }) => return Some(CanvasAction::Edited { before, rect: changed }),
                Some(Gesture::Lasso { points }) => {
                    let before = doc.mask.clone();
                    let label = if shift { 0 } else { active };
                    let polygon: Vec<(f32, f32)> = points.iter().map(|p| (p.x, p.y)).collect();
                    let rect = tools::fill_polygon(&mut doc.mask, &polygon, label);
                    return Some(CanvasAction::Edited { before, rect });
                }
                Some(Gesture::Box { start, end }) => {
                    if let Some(corners) = box_corners(start, end, doc.size()) {
                        return Some(CanvasAction::Box(corners));
                    }
                }
                None => {}
            }
        }
        if response.clicked_by(PointerButton::Primary) {
            let p = now?;
            return match tool {
                Tool::Brush | Tool::Eraser => {
                    let before = doc.mask.clone();
                    let label = if tool == Tool::Brush { active } else { 0 };
                    let rect = tools::paint_segment(&mut doc.mask, (p.x, p.y), (p.x, p.y), radius, label);
                    Some(CanvasAction::Edited { before, rect })
                }
                Tool::Fill => Some(CanvasAction::Fill { x: p.x, y: p.y, label: if shift { 0 } else { active } }),
                Tool::Points => {
                    let (w, h) = doc.size();
                    let inside = p.x >= 0.0 && p.y >= 0.0 && p.x < w as f32 && p.y < h as f32;
                    inside.then_some(CanvasAction::Point { x: p.x, y: p.y, positive: !shift })
                }
                Tool::Grid => doc.toggle_grid_cell(p.x, p.y).then_some(CanvasAction::GridChanged),
                Tool::Lasso | Tool::Box => None,
            };
        }
        dragged_box.map(CanvasAction::BoxDragged)
    }
}

/// The box from `start` to `end` (image pixels) clamped to an image of `size`, as
/// [x0, y0, x1, y1]; `None` when smaller than 2 px either way (a click, not a box).
fn box_corners(start: Pos2, end: Pos2, (w, h): (u32, u32)) -> Option<[f32; 4]> {
    let clamp = |v: f32, max: u32| v.clamp(0.0, max as f32 - 1.0);
    let (x0, x1) = (clamp(start.x.min(end.x), w), clamp(start.x.max(end.x), w));
    let (y0, y1) = (clamp(start.y.min(end.y), h), clamp(start.y.max(end.y), h));
    (x1 - x0 >= 2.0 && y1 - y0 >= 2.0).then_some([x0, y0, x1, y1])
}

/// The box and point prompts, and the patch grid while its tool is chosen.
fn paint_prompts(painter: &egui::Painter, doc: &Document, grid_tool: bool, to_screen: &dyn Fn(Pos2) -> Pos2) {
    if let Some([x0, y0, x1, y1]) = doc.prompts.bbox {
        painter.rect_stroke(Rect::from_two_pos(to_screen(pos2(x0, y0)), to_screen(pos2(x1, y1))), 0.0, Stroke::new(2.0, Color32::YELLOW), egui::StrokeKind::Middle);
    }
    for p in &doc.prompts.points {
        let colour = if p.positive { Color32::GREEN } else { Color32::RED };
        painter.circle(to_screen(pos2(p.x, p.y)), 5.0, colour, Stroke::new(1.5, Color32::WHITE));
    }
    if !grid_tool {
        return;
    }
    let cell = doc.grid_cell_size();
    let grid = doc.grid.as_ref();
    for cy in 0..GRID_CELLS {
        for cx in 0..GRID_CELLS {
            let min = to_screen(pos2(cx as f32 * cell, cy as f32 * cell));
            let max = to_screen(pos2((cx + 1) as f32 * cell, (cy + 1) as f32 * cell));
            let on = grid.and_then(|g| g.get(cx, cy)).unwrap_or(0) != 0;
            let r = Rect::from_min_max(min, max);
            if on {
                painter.rect_filled(r, 0.0, Color32::from_rgba_unmultiplied(60, 160, 255, 70));
            }
            painter.rect_stroke(r, 0.0, Stroke::new(0.5, Color32::from_white_alpha(40)), egui::StrokeKind::Inside);
        }
    }
}

/// The pixel under image point `at`: its coordinates and values in modality units.
fn pixel_at(doc: &Document, at: Pos2) -> Option<(u32, u32, Vec<f32>)> {
    if at.x < 0.0 || at.y < 0.0 {
        return None;
    }
    let values = doc.frame.value_at(at.x as u32, at.y as u32)?;
    Some((at.x as u32, at.y as u32, values.to_vec()))
}

fn draw_gesture(painter: &egui::Painter, gesture: &Gesture, to_screen: &dyn Fn(Pos2) -> Pos2) {
    match gesture {
        Gesture::Lasso { points } => {
            let line: Vec<Pos2> = points.iter().map(|p| to_screen(*p)).collect();
            painter.add(egui::Shape::line(line, Stroke::new(1.5, MASK_COLOR)));
        }
        Gesture::Box { start, end } => {
            painter.rect_stroke(Rect::from_two_pos(to_screen(*start), to_screen(*end)), 0.0, Stroke::new(1.5, Color32::YELLOW), egui::StrokeKind::Middle);
        }
        Gesture::Stroke { .. } => {}
    }
}
