//! Menus, the tool panel, the worklist, the status bar and keyboard shortcuts.

use egui::{Color32, Key, KeyboardShortcut, Modifiers};

use super::annotator::{AnnotatorApp, Tab, Tool};
use super::trainer_tab::model_label;
use super::worklist::{ItemState, Worklist};
use crate::engine::worker::ResultKind;
use crate::model::backend::BackendKind;
use crate::model::modality;

const ERROR_COLOR: Color32 = Color32::from_rgb(230, 90, 80);

impl AnnotatorApp {
    pub(super) fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let redo = ctx.input_mut(|i| {
            i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z))
                || i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Y))
        });
        if redo {
            self.redo();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Z))) {
            self.undo();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::S))) {
            self.export();
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
        if pressed(Key::OpenBracket) {
            self.settings.brush_radius = (self.settings.brush_radius / 1.25).max(0.5);
        }
        if pressed(Key::CloseBracket) {
            self.settings.brush_radius = (self.settings.brush_radius * 1.25).min(500.0);
        }
        if pressed(Key::Num0) {
            self.view.fit();
        }
        if pressed(Key::Num1) {
            self.view.actual_size();
        }
        if pressed(Key::H) {
            self.settings.show_mask = !self.settings.show_mask;
        }
        if pressed(Key::A) {
            self.propose(false);
        }
        for tool in Tool::ALL {
            if pressed(tool.key()) {
                self.tool = tool;
            }
        }
    }

    pub(super) fn panels_ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if let Some(path) = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).find(|p| !p.as_os_str().is_empty())) {
            self.open_path(path);
        }
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        if self.tab == Tab::Train {
            egui::Panel::bottom("train_status").show(ui, |ui| self.message_ui(ui));
            self.trainer_ui(ui);
            return;
        }
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::left("tools").resizable(true).default_size(210.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.tools_ui(ui));
        });
        egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| {
            let mut gesture = self.gesture.take();
            self.canvas_ui(ui, &mut gesture);
            self.gesture = gesture;
        });
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.selectable_value(&mut self.tab, Tab::Annotate, "Annotate");
            let train_label = if self.trainer.is_running() { "Train (running)" } else { "Train" };
            ui.selectable_value(&mut self.tab, Tab::Train, train_label);
            ui.separator();
            ui.menu_button("File", |ui| {
                if ui.button("Open…  (Ctrl+O)").clicked() {
                    self.loader.pick_file();
                }
                if ui.button("Open folder…").clicked() {
                    self.loader.pick_folder();
                }
                ui.menu_button("Recent", |ui| {
                    let recent: Vec<_> = self.settings.recent_files.iter().chain(&self.settings.recent_folders).cloned().collect();
                    if recent.is_empty() {
                        ui.label("nothing yet");
                    }
                    for path in recent {
                        if ui.button(path.display().to_string()).clicked() {
                            self.open_path(path);
                        }
                    }
                });
                ui.separator();
                let can_export = self.doc.is_some();
                if ui.add_enabled(can_export, egui::Button::new("Export mask  (Ctrl+S)")).clicked() {
                    self.export();
                }
                if ui.button("Export folder…").clicked() {
                    if let Some(dir) = rfd::FileDialog::new().set_title("Export masks into").pick_folder() {
                        self.settings.export_dir = Some(dir);
                    }
                }
                if self.settings.export_dir.is_some() && ui.button("Export next to each image").clicked() {
                    self.settings.export_dir = None;
                }
            });
            ui.menu_button("View", |ui| {
                if ui.button("Fit  (0)").clicked() {
                    self.view.fit();
                }
                if ui.button("1:1  (1)").clicked() {
                    self.view.actual_size();
                }
                ui.checkbox(&mut self.settings.show_mask, "Show mask  (H)");
            });
            ui.menu_button("Engine", |ui| {
                for backend in [BackendKind::Cpu, BackendKind::Wgpu] {
                    if ui.radio(self.settings.backend == backend, backend.to_string()).clicked() {
                        self.set_backend(backend);
                    }
                }
            });
            if self.loader.is_busy() {
                ui.spinner();
                ui.label("Reading…");
            }
        });
    }

    fn tools_ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Tools");
        for tool in Tool::ALL {
            let label = format!("{}  ({:?})", tool.label(), tool.key());
            if ui.selectable_label(self.tool == tool, label).clicked() {
                self.tool = tool;
            }
        }
        ui.add(egui::Slider::new(&mut self.settings.brush_radius, 0.5..=200.0).logarithmic(true).text("brush [ ]"));
        ui.add(egui::Slider::new(&mut self.settings.opacity, 0.0..=1.0).text("opacity"));
        ui.checkbox(&mut self.settings.show_mask, "show mask");
        ui.horizontal(|ui| {
            let (can_undo, can_redo) = self.doc.as_ref().map_or((false, false), |d| (d.history.can_undo(), d.history.can_redo()));
            if ui.add_enabled(can_undo, egui::Button::new("Undo")).clicked() {
                self.undo();
            }
            if ui.add_enabled(can_redo, egui::Button::new("Redo")).clicked() {
                self.redo();
            }
            if ui.add_enabled(self.doc.is_some(), egui::Button::new("Clear")).clicked() {
                self.clear_mask();
            }
        });

        ui.separator();
        ui.heading("AI");
        let current = self.doc.as_ref().map(|d| d.modality.clone()).unwrap_or_else(|| self.settings.modality.clone());
        egui::ComboBox::from_label("modality").selected_text(&current).show_ui(ui, |ui| {
            for name in modality::BUILT_IN {
                if ui.selectable_label(current == name, name).clicked() {
                    self.set_modality(name);
                }
            }
        });
        let chosen = self.settings.auto_model.clone();
        let models: Vec<_> = self.settings.trained_models.iter().filter(|p| p.is_file()).cloned().collect();
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
            self.use_model(model);
        }
        if ui.add_enabled(self.doc.is_some(), egui::Button::new("Propose mask  (A)")).clicked() {
            self.propose(false);
        }
        ui.label(egui::RichText::new("Box (R) or points (P; shift = negative) for LiteMedSAM; patch grid (T) re-runs the proposal.").small().weak());

        if let Some(list) = &self.worklist {
            ui.separator();
            ui.heading("Worklist");
            ui.label(egui::RichText::new(list.folder.display().to_string()).small());
            let mut open = None;
            for (i, path) in list.items.iter().enumerate() {
                let state = Worklist::state(path, self.settings.export_dir.as_deref(), &self.paths.autosave);
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
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
                self.open_path(path);
            }
            if rank {
                self.rank_worklist();
            }
        }
    }

    /// The last error or message, on its own (the Train tab's status line).
    fn message_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            if let Some(error) = &self.error {
                ui.colored_label(ERROR_COLOR, format!("Error: {error}"));
            } else if let Some(message) = &self.message {
                ui.label(message);
            }
        });
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal_wrapped(|ui| {
            if let Some(error) = &self.error {
                ui.colored_label(ERROR_COLOR, format!("Error: {error}"));
                ui.separator();
            } else if let Some(message) = &self.message {
                ui.label(message);
                ui.separator();
            }
            if let Some(busy) = &self.engine.busy {
                ui.spinner();
                ui.label(busy);
                ui.separator();
            }
            match &self.engine.backend {
                Some(backend) => ui.label(backend),
                None => ui.label(format!("backend: {}", self.settings.backend)),
            };
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
                if ui.add(egui::Slider::new(&mut index, 0..=meta.frames - 1).text("frame")).changed() {
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
            if let Some((x, y, values)) = &self.hover {
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
