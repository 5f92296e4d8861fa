//! The Annotate tab's widgets: its menus, the tool panel, the worklist, the status bar, the
//! keyboard shortcuts, and the canvas in the middle.

use egui::{Color32, Key, KeyboardShortcut, Modifiers};

use super::AnnotateTab;
use super::labels::LabelTable;
use super::tools::Tool;
use super::welcome::{WelcomeAction, welcome_ui};
use super::worklist::ItemState;
use crate::app::context::Shared;
use crate::app::widgets::{model_label, status_ui};
use crate::engine::worker::ResultKind;
use crate::model::backend::BackendKind;

impl AnnotateTab {
    /// The tab's panels and the canvas, with its keyboard shortcuts.
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let ctx = ui.ctx().clone();
        self.shortcuts(&ctx, shared);
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui, shared));
        egui::Panel::left("tools").resizable(true).default_size(210.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.tools_ui(ui, shared));
        });
        if self.worklist.is_some() {
            egui::Panel::right("worklist").resizable(true).default_size(220.0).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.worklist_ui(ui, shared));
            });
        }
        if self.doc.is_none() && !self.loader.is_busy() {
            let recent: Vec<_> = shared.settings.recent_files.iter().chain(&shared.settings.recent_folders).cloned().collect();
            if let Some(action) = egui::CentralPanel::default().show(ui, |ui| welcome_ui(ui, &recent)).inner {
                self.apply_welcome(shared, action);
            }
            return;
        }
        let overlay = self.study.as_ref().map(|s| s.labels.overlay()).unwrap_or_else(|| LabelTable::default().overlay());
        let action = egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| self.canvas.ui(ui, self.doc.as_mut(), self.tool, &shared.settings, &overlay))
            .inner;
        if let Some(action) = action {
            self.apply_canvas(shared, action);
        }
    }

    fn apply_welcome(&mut self, shared: &mut Shared, action: WelcomeAction) {
        match action {
            WelcomeAction::OpenFile => self.loader.pick_file(),
            WelcomeAction::OpenFolder => self.loader.pick_folder(),
            WelcomeAction::Recent(path) => self.open_path(shared, path),
            WelcomeAction::Sample(i) => {
                let sample = &crate::app::assets::SAMPLES[i];
                match sample.materialise(&shared.paths.samples) {
                    Ok(path) => {
                        self.set_modality(shared, sample.modality);
                        self.open_path(shared, path);
                    }
                    Err(e) => shared.set_error(format!("cannot write the sample into {}: {e}", shared.paths.samples.display())),
                }
            }
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context, shared: &mut Shared) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let redo = ctx.input_mut(|i| {
            i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z))
                || i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Y))
        });
        if redo {
            self.redo(shared);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Z))) {
            self.undo(shared);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::S))) {
            self.export(shared);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::O))) {
            self.loader.pick_file();
        }
        let pressed = |key: Key| ctx.input(|i| i.key_pressed(key) && i.modifiers.is_none());
        if pressed(Key::PageDown) {
            self.step_worklist(1);
        }
        if pressed(Key::PageUp) {
            self.step_worklist(-1);
        }
        // Slices of a volume (frames of a multi-frame file): up goes up the stack; never while
        // drawing (the gesture belongs to its slice).
        if pressed(Key::ArrowUp) && !self.canvas.gesture_active() {
            self.step_frame(1);
        }
        if pressed(Key::ArrowDown) && !self.canvas.gesture_active() {
            self.step_frame(-1);
        }
        let settings = &mut shared.settings;
        if pressed(Key::OpenBracket) {
            settings.brush_radius = (settings.brush_radius / 1.25).max(0.5);
        }
        if pressed(Key::CloseBracket) {
            settings.brush_radius = (settings.brush_radius * 1.25).min(500.0);
        }
        if pressed(Key::Num0) {
            self.canvas.view.fit();
        }
        if pressed(Key::Num1) {
            self.canvas.view.actual_size();
        }
        if pressed(Key::H) {
            settings.show_mask = !settings.show_mask;
        }
        if pressed(Key::A) {
            self.propose(shared, false);
        }
        for tool in Tool::ALL {
            if pressed(tool.key()) {
                self.tool = tool;
            }
        }
    }

    /// The File, View and Engine menus (in the shell's menu bar, whichever tab is shown).
    pub fn menus_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.menu_button("File", |ui| {
            if ui.button("Open…  (Ctrl+O)").clicked() {
                self.loader.pick_file();
            }
            if ui.button("Open folder…").clicked() {
                self.loader.pick_folder();
            }
            ui.menu_button("Recent", |ui| {
                let recent: Vec<_> = shared.settings.recent_files.iter().chain(&shared.settings.recent_folders).cloned().collect();
                if recent.is_empty() {
                    ui.label("nothing yet");
                }
                for path in recent {
                    if ui.button(path.display().to_string()).clicked() {
                        self.open_path(shared, path);
                    }
                }
            });
            let help = "A label map to continue editing: for a volume a NIfTI (placed through its affine), a DICOM SEG of this series, or the slice_NNNN.png files of a volume export; for an image a PNG or TIFF mask (0/255 imports as label 1)";
            if ui.add_enabled(self.doc.is_some(), egui::Button::new("Import labels…")).on_hover_text(help).clicked() {
                self.loader.pick_labels();
            }
            ui.separator();
            let can_export = self.doc.is_some();
            if ui.add_enabled(can_export, egui::Button::new("Export mask  (Ctrl+S)")).clicked() {
                self.export(shared);
            }
            if ui.button("Export folder…").clicked() {
                let dialog = rfd::FileDialog::new().set_title("Export masks into");
                self.export_picks.dialog(move || dialog.pick_folder(), |dir| dir);
            }
            if shared.settings.export_dir.is_some() && ui.button("Export next to each image").clicked() {
                self.set_export_dir(shared, None);
            }
        });
        ui.menu_button("View", |ui| {
            if ui.button("Fit  (0)").clicked() {
                self.canvas.view.fit();
            }
            if ui.button("1:1  (1)").clicked() {
                self.canvas.view.actual_size();
            }
            ui.checkbox(&mut shared.settings.show_mask, "Show mask  (H)");
        });
        ui.menu_button("Engine", |ui| {
            let automatic = format!("Automatic: {} ({})", shared.automatic.backend, shared.automatic.reason);
            if ui.radio(shared.settings.engine.is_none(), automatic).clicked() {
                self.set_backend(shared, None);
            }
            for (backend, label) in [(BackendKind::Cpu, "CPU"), (BackendKind::Wgpu, "GPU (wgpu)")] {
                let label = match (backend, &shared.wgpu_adapter) {
                    (BackendKind::Wgpu, Some(adapter)) => format!("{label}: {adapter}"),
                    _ => label.to_string(),
                };
                if ui.radio(shared.settings.engine == Some(backend), label).clicked() {
                    self.set_backend(shared, Some(backend));
                }
            }
        });
        help_menu(ui);
        if self.loader.is_busy() {
            ui.spinner();
            ui.label("Reading…");
        }
    }

    fn tools_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        self.edit_tools_ui(ui, shared);
        ui.separator();
        self.ai_ui(ui, shared);
    }

    fn edit_tools_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("Tools");
        for tool in Tool::ALL {
            let label = format!("{}  ({:?})", tool.label(), tool.key());
            if ui.selectable_label(self.tool == tool, label).on_hover_text(tool.help()).clicked() {
                self.tool = tool;
            }
        }
        ui.add(egui::Slider::new(&mut shared.settings.brush_radius, 0.5..=200.0).logarithmic(true).text("brush [ ]"))
            .on_hover_text("Brush and eraser radius in image pixels ([ smaller, ] larger)");
        ui.add(egui::Slider::new(&mut shared.settings.opacity, 0.0..=1.0).text("opacity")).on_hover_text("How strongly the mask is drawn over the image");
        ui.checkbox(&mut shared.settings.show_mask, "show mask").on_hover_text("Hide the mask to see the image under it (H)");
        self.label_ui(ui, shared);
        ui.horizontal(|ui| {
            let (can_undo, can_redo) = (self.can_undo(), self.can_redo());
            if ui.add_enabled(can_undo, egui::Button::new("Undo")).on_hover_text("Undo the last edit or AI result (Ctrl+Z)").clicked() {
                self.undo(shared);
            }
            if ui.add_enabled(can_redo, egui::Button::new("Redo")).on_hover_text("Redo (Ctrl+Shift+Z or Ctrl+Y)").clicked() {
                self.redo(shared);
            }
            if ui.add_enabled(self.doc.is_some(), egui::Button::new("Clear")).on_hover_text("Erase the whole mask (one undo step)").clicked() {
                self.clear_mask(shared);
            }
        });
    }

    /// The label table: each label with its colour, name, visibility and size (on the slice
    /// and over the volume); the active one (what brush, fill, lasso and AI results write) with
    /// its name and opacity; whether other labels are protected.
    fn label_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.separator();
        ui.heading("Labels");
        shared.settings.active_label = shared.settings.active_label.max(1);
        let active = shared.settings.active_label;
        let shown = self.shown_histogram();
        let counts = shown.zip(self.study.as_ref()).map(|(here, study)| study.counts_plus(&here));
        let (voxel_ml, pixel_mm2) = match &self.doc {
            Some(d) => (d.source.volume().map(|v| v.voxel_volume_ml()), d.source.meta().pixel_spacing.map(|(r, c)| r * c)),
            None => (None, None),
        };
        let Some(table) = self.label_table_mut() else {
            ui.label(egui::RichText::new("Open an image to label it.").small().weak());
            return;
        };
        let mut values: Vec<u8> = table.values().collect();
        if let Some(counts) = &counts {
            values.extend((1..=255u8).filter(|&v| counts[v as usize] > 0));
        }
        values.push(active);
        values.sort_unstable();
        values.dedup();
        let mut changed = false;
        let mut pick = None;
        let mut delete = false;
        egui::Grid::new("label table").num_columns(3).spacing([4.0, 2.0]).show(ui, |ui| {
            for &value in &values {
                let info = table.get(value);
                let mut rgb = info.rgb;
                if ui.color_edit_button_srgb(&mut rgb).changed() {
                    table.entry(value).rgb = rgb;
                    changed = true;
                }
                let mut visible = info.visible;
                let text = format!("{value} {}", info.name);
                ui.horizontal(|ui| {
                    if ui.checkbox(&mut visible, "").on_hover_text("show or hide this label").changed() {
                        table.entry(value).visible = visible;
                        changed = true;
                    }
                    if ui.selectable_label(value == active, text).on_hover_text("make it the active label").clicked() {
                        pick = Some(value);
                    }
                });
                let n = counts.map_or(0, |c| c[value as usize]);
                let size = match (voxel_ml, pixel_mm2) {
                    (Some(ml), _) => format!("{:.2} mL", n as f64 * ml),
                    (None, Some(mm2)) => format!("{:.1} mm²", n as f64 * mm2),
                    (None, None) => format!("{n} px"),
                };
                ui.label(egui::RichText::new(size).small().weak());
                ui.end_row();
            }
        });
        let entry = table.get(active);
        let mut name = entry.name.clone();
        ui.horizontal(|ui| {
            let label = ui.label("name");
            let edit = ui.add(egui::TextEdit::singleline(&mut name).desired_width(120.0)).labelled_by(label.id);
            if edit.changed() {
                table.entry(active).name = name.trim().chars().take(64).collect();
            }
            changed |= edit.lost_focus();
        });
        let mut opacity = entry.opacity;
        if ui.add(egui::Slider::new(&mut opacity, 0.0..=1.0).text("label opacity")).changed() {
            table.entry(active).opacity = opacity;
            changed = true;
        }
        ui.horizontal(|ui| {
            ui.add(egui::DragValue::new(&mut shared.settings.active_label).range(1..=255).prefix("active "))
                .on_hover_text("The label value (1–255) that brush, fill, lasso and AI results write; each label is exported as its own segment");
            if ui.button("New label").on_hover_text("the lowest value not used yet").clicked() {
                pick = (1..=255u8).find(|v| !values.contains(v));
            }
            delete = ui.button("Erase").on_hover_text("erase the active label from every slice (one undo step)").clicked();
        });
        if let Some(value) = pick {
            shared.settings.active_label = value;
        }
        ui.checkbox(&mut shared.settings.protect_other_labels, "keep other labels")
            .on_hover_text("Brush, eraser, fill, lasso and AI results change only background and the active label");
        if let Some(here) = shown {
            let pixels = here[active as usize];
            let text = match pixel_mm2 {
                Some(mm2) => format!("{pixels} px = {:.1} mm² on this slice", pixels as f64 * mm2),
                None => format!("{pixels} px on this image"),
            };
            ui.label(egui::RichText::new(text).small().weak());
        }
        if changed {
            self.label_table_changed();
        }
        if delete {
            self.delete_label(shared, active);
        }
    }

    /// Modality, model, and the automatic proposal.
    fn ai_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.heading("AI");
        let current = self.doc.as_ref().map(|d| d.modality.clone()).unwrap_or_else(|| shared.settings.modality.clone());
        let names = shared.modality_names().to_vec();
        egui::ComboBox::from_label("modality").selected_text(&current).show_ui(ui, |ui| {
            for name in &names {
                if ui.selectable_label(current == *name, name).clicked() {
                    self.set_modality(shared, name);
                }
            }
        });
        let chosen = shared.settings.auto_model.clone();
        let models: Vec<_> = shared.existing_models().map(|p| p.to_path_buf()).collect();
        let mut pick = None;
        egui::ComboBox::from_label("model").selected_text(model_label(chosen.as_deref())).show_ui(ui, |ui| {
            if ui.selectable_label(chosen.is_none(), model_label(None)).clicked() {
                pick = Some(None);
            }
            for path in models {
                if ui.selectable_label(chosen.as_ref() == Some(&path), model_label(Some(&path))).on_hover_text(path.display().to_string()).clicked() {
                    pick = Some(Some(path));
                }
            }
        });
        if let Some(model) = pick.filter(|m| *m != chosen) {
            self.use_model(shared, model);
        }
        let propose = egui::Button::new("Propose mask  (A)");
        let propose_help = "De-LightSAM segments the image for the chosen modality; fix the result with the tools, or edit its patch grid (T)";
        if ui.add_enabled(self.doc.is_some(), propose).on_hover_text(propose_help).clicked() {
            self.propose(shared, false);
        }
        let volume = self.doc.as_ref().is_some_and(|d| d.source.volume().is_some());
        if volume {
            let has_box = self.doc.as_ref().is_some_and(|d| d.prompts.bbox.is_some());
            let help = "LiteMedSAM carries the box's mask up and down through the slices (each slice prompted with the previous one's box) until the object vanishes; the results go into the active label";
            if ui.add_enabled(has_box, egui::Button::new("Propagate through slices")).on_hover_text(help).on_disabled_hover_text("Draw a box (R) on this slice first").clicked() {
                self.propagate(shared);
            }
            let every = "De-LightSAM proposes a mask on every slice for the chosen modality, into the active label (slices where it finds nothing keep their masks)";
            if ui.button("Propose on every slice").on_hover_text(every).clicked() {
                self.propose_every_slice(shared);
            }
        }
        ui.label(egui::RichText::new("Box (R) or points (P; shift = negative) for LiteMedSAM; patch grid (T) re-runs the proposal.").small().weak());
    }

    /// The folder's images with their states and uncertainty, and the ranking.
    fn worklist_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        if let Some(list) = &self.worklist {
            ui.heading("Worklist");
            ui.label(egui::RichText::new(list.folder.display().to_string()).small());
            let mut open = None;
            for (i, path) in list.items.iter().enumerate() {
                let state = list.state_of(path);
                let mut name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if list.series.contains(path) {
                    name.push_str("  (series)");
                }
                ui.horizontal(|ui| {
                    if ui.selectable_label(list.current == Some(i), name).clicked() {
                        open = Some(path.clone());
                    }
                    let colour = if state == ItemState::Exported { Color32::from_rgb(90, 200, 120) } else { Color32::from_rgb(230, 180, 80) };
                    ui.colored_label(colour, egui::RichText::new(state.label()).small());
                    if let Some(score) = list.uncertainty.get(path) {
                        ui.label(egui::RichText::new(format!("u {score:.3}")).small().weak())
                            .on_hover_text("the model's uncertainty: mean entropy of its mask (0 sure … 1 unsure)");
                    }
                });
            }
            ui.label(egui::RichText::new("PgDn / PgUp: next / previous").small().weak());
            let mut rank = false;
            match &list.ranking {
                Some(ranking) => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label(format!("Ranking {}/{}…", ranking.total - ranking.pending.len(), ranking.total));
                    });
                }
                None => {
                    rank = ui
                        .button("Order by uncertainty")
                        .on_hover_text("the images the model is least sure about first (mean entropy of its mask), annotated ones last")
                        .clicked();
                }
            }
            if let Some(path) = open {
                self.open_path(shared, path);
            }
            if rank {
                self.rank_worklist(shared);
            }
        }
    }

    fn status_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        ui.horizontal_wrapped(|ui| {
            if status_ui(ui, &mut shared.status) {
                ui.separator();
            }
            if let Some(busy) = &self.engine.busy {
                ui.spinner();
                ui.label(busy);
                ui.separator();
            }
            match &self.engine.backend {
                Some(backend) => ui.label(backend),
                None => ui.label(format!("backend: {}", shared.engine_backend())),
            };
            if shared.settings.engine.is_none() {
                ui.weak(format!("(automatic: {})", shared.automatic.reason)).on_hover_text("Engine menu to choose");
            }
            if let Some((kind, took)) = self.engine.last_inference {
                let what = if kind == ResultKind::Auto { "proposal" } else { "prompt" };
                ui.label(format!("last {what}: {} ms", took.as_millis()));
            }
            if let Some(note) = &self.engine.note {
                ui.colored_label(Color32::from_rgb(230, 180, 80), note);
            }
        });
        ui.horizontal_wrapped(|ui| {
            let Some(doc) = &self.doc else {
                ui.label("Open an image: File > Open…, drag a file here, or pass a path on the command line.");
                return;
            };
            let meta = doc.source.meta();
            let name = meta.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let unsaved = if doc.unexported { " · not exported" } else { "" };
            ui.label(format!(
                "{name} · {} {} · {}×{} · {}{unsaved}",
                meta.format.name(),
                meta.modality.as_deref().unwrap_or(""),
                meta.cols,
                meta.rows,
                meta.photometric
            ));
            ui.separator();
            if meta.frames > 1 {
                let mut index = doc.frame_index;
                let what = if doc.source.volume().is_some() { "slice" } else { "frame" };
                if ui.add(egui::Slider::new(&mut index, 0..=meta.frames - 1).text(what)).changed() {
                    self.show_frame(index);
                }
                ui.separator();
            }
            let Some(doc) = &mut self.doc else { return };
            let mut window = doc.window;
            let step = (window.width / 200.0).max(0.01);
            let c = ui.add(egui::DragValue::new(&mut window.center).speed(step).prefix("C "));
            let w = ui.add(egui::DragValue::new(&mut window.width).speed(step).prefix("W ").range(1e-3..=f64::MAX));
            if c.changed() || w.changed() {
                doc.set_window(window);
            }
            let meta = doc.source.meta().clone();
            let ct = meta.modality.as_deref() == Some("CT");
            if !meta.windows.is_empty() || ct {
                egui::ComboBox::from_label("window").selected_text("presets").show_ui(ui, |ui| {
                    for preset in &meta.windows {
                        if ui.selectable_label(preset.window == doc.window, meta.window_label(preset)).clicked() {
                            doc.set_window(preset.window);
                        }
                    }
                    if ct {
                        for (name, center, width) in CT_PRESETS {
                            if ui.selectable_label(false, *name).clicked() {
                                doc.set_window(crate::imaging::Window::new(*center, *width));
                            }
                        }
                    }
                });
            }
            if let Some((x, y, values)) = &self.canvas.hover {
                ui.separator();
                let unit = if ct { " HU" } else { "" };
                let values: Vec<String> = values.iter().map(|v| format!("{v}{unit}")).collect();
                ui.monospace(format!("({x}, {y}) = {}", values.join(", ")));
            }
        });
    }
}

/// Standard CT windows (centre, width) in HU.
const CT_PRESETS: &[(&str, f64, f64)] =
    &[("CT brain", 40.0, 80.0), ("CT lung", -600.0, 1500.0), ("CT bone", 400.0, 1800.0), ("CT soft tissue", 50.0, 400.0)];

/// The Help menu: keyboard shortcuts and what the shipped model is good and weak at.
fn help_menu(ui: &mut egui::Ui) {
    ui.menu_button("Help", |ui| {
        ui.menu_button("Keyboard shortcuts", |ui| {
            egui::Grid::new("shortcuts").num_columns(2).striped(true).show(ui, |ui| {
                for (keys, what) in SHORTCUTS {
                    ui.label(egui::RichText::new(*keys).monospace());
                    ui.label(*what);
                    ui.end_row();
                }
            });
        });
        ui.menu_button("About the model", |ui| {
            ui.set_max_width(460.0);
            for line in MODEL_SUMMARY {
                ui.label(*line);
            }
        });
    });
}

const SHORTCUTS: &[(&str, &str)] = &[
    ("Ctrl+O", "open an image"),
    ("Ctrl+S", "export the mask (PNG; a volume: NIfTI, PNG per slice, DICOM SEG)"),
    ("Up / Down; Ctrl or Shift + wheel", "next / previous slice or frame"),
    ("Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y", "undo / redo"),
    ("A", "propose a mask (De-LightSAM)"),
    ("R / P / T", "box prompt / point prompts (Shift = negative) / patch grid"),
    ("B / E / G / L", "brush / eraser / fill / lasso"),
    ("[ / ]", "smaller / larger brush"),
    ("H", "show or hide the mask"),
    ("0 / 1", "fit / actual size"),
    ("wheel; middle drag or Space+drag", "zoom; pan"),
    ("right drag", "window / level"),
    ("Page Down / Page Up", "next / previous image of the worklist"),
];

const MODEL_SUMMARY: &[&str] = &[
    "Automatic proposals: De-LightSAM (TinyViT encoder, per-modality controllers and queries), trained on 12 public sets; thin structures in tiles.",
    "Held-out Dice 0.71-0.94 for every modality (skin lesions 0.94, lungs in x-ray 0.88, fetal head 0.93, retinal vessels 0.71).",
    "Weak: CT from other scanners (0.23: finds the spleen, marks only part), small held-out sets; use a box or points there (LiteMedSAM).",
    "Research use only (some training sets are research-only). Not a medical device: check every mask.",
    "Full model card: models/MODEL_CARD.md in the source tree.",
];
