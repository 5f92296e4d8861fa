//! The Train tab's widgets: the form (data, settings, trained models), the run's status,
//! buttons and plots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use egui::Color32;
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use super::progress::{PLOT_POINTS, Phase, RunProgress, decimate, duration_text};
use super::{SourceStatus, TrainTab};
use crate::app::context::{Command, Shared};
use crate::app::widgets::{ERROR_COLOR, OK_COLOR, model_label, status_ui};
use crate::model::backend::BackendKind;
use crate::model::modality;
use crate::train::Recipe;

impl TrainTab {
    /// The form on the left, the run on the right, the status line at the bottom.
    pub fn ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        egui::Panel::bottom("train_status").show(ui, |ui| {
            ui.horizontal_wrapped(|ui| status_ui(ui, &mut shared.status));
        });
        egui::Panel::left("train_form").resizable(true).default_size(340.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.form_ui(ui, shared));
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.progress_ui(ui, shared));
        });
    }

    fn form_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        self.sources_ui(ui, shared);
        ui.separator();
        self.settings_ui(ui, shared);
        ui.separator();
        self.models_ui(ui, shared);
    }

    fn sources_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let running = self.is_running();
        ui.heading("Training data");
        let mut remove = None;
        for (i, source) in self.form.sources.iter_mut().enumerate() {
            ui.group(|ui| {
                ui.label(egui::RichText::new(source.label()).small());
                ui.horizontal(|ui| {
                    modality_picker(ui, i, &mut source.modality);
                    match &source.status {
                        SourceStatus::Checking => {
                            ui.spinner();
                        }
                        SourceStatus::Ready { images } => {
                            ui.colored_label(OK_COLOR, format!("{images} image(s)"));
                        }
                        SourceStatus::Problem(_) => {
                            ui.colored_label(ERROR_COLOR, "problem");
                        }
                    }
                    if ui.add_enabled(!running, egui::Button::new("Remove").small()).clicked() {
                        remove = Some(i);
                    }
                });
                if let SourceStatus::Problem(problem) = &source.status {
                    ui.colored_label(ERROR_COLOR, egui::RichText::new(problem).small());
                }
            });
        }
        if let Some(i) = remove {
            self.form.sources.remove(i);
        }
        ui.horizontal_wrapped(|ui| {
            if ui.add_enabled(!running, egui::Button::new("Add folder…")).clicked() {
                let dialog = rfd::FileDialog::new().set_title("A dataset folder (images/ and masks/ with the same names)");
                self.folder_picks.dialog(move || dialog.pick_folder(), |path| path);
            }
            if ui.add_enabled(!running, egui::Button::new("Add the masks I exported")).clicked() {
                self.add_exported(shared);
            }
        });
        ui.label(egui::RichText::new("A folder holds images/ and masks/ with the same file names; 20% of each is kept for validation.").small().weak());
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let running = self.is_running();
        ui.heading("Settings");
        ui.add_enabled_ui(!running, |ui| {
            ui.horizontal(|ui| {
                ui.label("recipe");
                ui.radio_value(&mut self.form.recipe, Recipe::Fast, "fast")
                    .on_hover_text("frozen encoder, cached embeddings: the head trains in minutes");
                ui.radio_value(&mut self.form.recipe, Recipe::Full, "full (MDKD)")
                    .on_hover_text("distillation, then end-to-end fine-tuning: a GPU job");
                let adapt = ui
                    .radio_value(&mut self.form.recipe, Recipe::Adapt, "adapt")
                    .on_hover_text("each modality's own controllers, query and hypernetwork on its masks; other modalities unchanged");
                if adapt.clicked() {
                    // The controllers start at zero: the fast recipe's settings barely move them.
                    (self.form.learning_rate, self.form.batch_size) = (3e-3, 2);
                }
            });
            ui.label("backend");
            for backend in BackendKind::ALL {
                let (available, detail) = self.backend_detail(shared, backend);
                ui.add_enabled_ui(available, |ui| {
                    ui.radio_value(&mut shared.settings.train_backend, backend, format!("{backend}: {detail}"));
                });
            }
            egui::Grid::new("train_numbers").num_columns(2).show(ui, |ui| {
                ui.label("epochs");
                ui.add(egui::DragValue::new(&mut self.form.epochs).range(1..=10_000));
                ui.end_row();
                if self.form.recipe == Recipe::Full {
                    ui.label("distillation epochs");
                    ui.horizontal(|ui| {
                        ui.add(egui::DragValue::new(&mut self.form.common_epochs).range(0..=1000).prefix("common "));
                        ui.add(egui::DragValue::new(&mut self.form.domain_epochs).range(0..=1000).prefix("domain "));
                    });
                    ui.end_row();
                }
                ui.label("batch");
                ui.add(egui::DragValue::new(&mut self.form.batch_size).range(1..=64));
                ui.end_row();
                ui.label("learning rate");
                ui.add(egui::DragValue::new(&mut self.form.learning_rate).range(1e-6..=1e-1).speed(1e-5).max_decimals(6));
                ui.end_row();
                ui.label("start from");
                let current = model_label(self.form.init.as_deref());
                egui::ComboBox::from_id_salt("train_init").selected_text(current).show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.form.init, None, model_label(None));
                    for path in shared.existing_models() {
                        ui.selectable_value(&mut self.form.init, Some(path.to_path_buf()), model_label(Some(path)));
                    }
                });
                ui.end_row();
                ui.label("run name");
                let hint = self.name_hint(&shared.paths.runs);
                ui.add(egui::TextEdit::singleline(&mut self.form.run_name).hint_text(hint).desired_width(160.0));
                ui.end_row();
            });
        });
        if let Some(error) = &self.form.error {
            ui.colored_label(ERROR_COLOR, error);
        }
        let can_start = !running && !self.form.sources.is_empty();
        if ui.add_enabled(can_start, egui::Button::new("Start training")).clicked() {
            self.start(shared);
        }
        ui.label(egui::RichText::new(format!("Runs are kept in {}", shared.paths.runs.display())).small().weak());
    }

    /// The trained models: use one, resume a stopped run.
    fn models_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let running = self.is_running();
        ui.heading("Trained models");
        let models = shared.model_files().to_vec();
        if models.is_empty() {
            ui.label(egui::RichText::new("none yet").weak());
        }
        let mut action = None;
        for model in models {
            ui.horizontal(|ui| {
                let in_use = shared.settings.auto_model.as_deref() == Some(model.path.as_path());
                ui.label(model_label(Some(&model.path)));
                if !model.exists {
                    ui.colored_label(ERROR_COLOR, "missing");
                    return;
                }
                if in_use {
                    ui.colored_label(OK_COLOR, "in use");
                } else if ui.button("Use").clicked() {
                    action = Some(Action::Use(model.path.clone()));
                }
                if model.resumable && ui.add_enabled(!running, egui::Button::new("Resume")).clicked() {
                    action = Some(Action::ResumeRun(model.path.parent().map(Path::to_path_buf).unwrap_or_default()));
                }
            });
        }
        match action {
            Some(Action::Use(model)) => shared.send(Command::UseModel(Some(model))),
            Some(Action::ResumeRun(out)) => self.resume(shared, &out),
            _ => {}
        }
    }

    fn progress_ui(&mut self, ui: &mut egui::Ui, shared: &mut Shared) {
        let Some(run) = &self.run else {
            ui.heading("No training run yet");
            ui.label("Add data on the left, choose the settings, and press Start training. The loss and the validation Dice appear here as the model learns.");
            return;
        };
        let progress = &run.progress;
        ui.heading(format!("Run {}", progress.name));
        ui.label(egui::RichText::new(progress.out.display().to_string()).small().weak());
        let device = match (&progress.backend, &shared.wgpu_adapter) {
            // burn names the wgpu device only by its kind; the window's adapter is the likely GPU.
            (BackendKind::Wgpu, Some(adapter)) => format!("{adapter} (burn wgpu)"),
            _ => progress.device.clone().unwrap_or_else(|| "…".into()),
        };
        ui.label(format!("Backend {}: {device}", progress.backend));
        let status = match &progress.phase {
            Phase::Starting => "Starting…".to_string(),
            Phase::Preparing { done, total, cached } => format!("Preparing the images {done}/{total} ({cached} embeddings from the cache)"),
            Phase::Training if run.is_stopping() => "Stopping: saving a checkpoint…".into(),
            Phase::Training => {
                let eta = run.eta().map(|d| format!(" · about {} left", duration_text(d))).unwrap_or_default();
                let paused = match (run.is_paused(), run.is_parked()) {
                    (true, true) => " · paused",
                    (true, false) => " · pausing after this step…",
                    _ => "",
                };
                format!(
                    "Epoch {}/{} · step {}/{}{eta}{paused}",
                    progress.epoch.min(progress.epochs),
                    progress.epochs,
                    progress.step,
                    progress.epochs * progress.steps_per_epoch
                )
            }
            Phase::Finished(summary) => format!(
                "{} after {} epoch(s), {} step(s), in {}",
                if summary.stopped { "Stopped" } else { "Finished" },
                summary.epochs_done,
                summary.steps,
                duration_text(Duration::from_secs_f64(summary.seconds))
            ),
            Phase::Failed(_) => "Failed".into(),
        };
        ui.horizontal(|ui| {
            if run.is_running() {
                ui.spinner();
            }
            ui.strong(status);
        });
        if let Phase::Failed(error) = &progress.phase {
            ui.colored_label(ERROR_COLOR, error);
        }
        if let Some((epoch, dice)) = progress.best {
            ui.label(format!("Best checkpoint: epoch {epoch}, validation Dice {dice:.4} ({})", progress.best_checkpoint().display()));
        }

        let (running, paused, stopping) = (run.is_running(), run.is_paused(), run.is_stopping());
        let best = progress.best_checkpoint();
        let finished = matches!(progress.phase, Phase::Finished(_));
        let (resumable, best_saved) = (run.resumable, run.best_saved);
        let out = progress.out.clone();
        let mut action = None;
        ui.horizontal(|ui| {
            if running {
                let label = if paused { "Resume" } else { "Pause" };
                if ui.add_enabled(!stopping, egui::Button::new(label)).clicked() {
                    action = Some(if paused { Action::Resume } else { Action::Pause });
                }
                if ui.add_enabled(!stopping, egui::Button::new("Cancel")).on_hover_text("saves the current weights; the run can be resumed").clicked() {
                    action = Some(Action::Cancel);
                }
            }
            if finished && best_saved && ui.button("Use in Annotate").clicked() {
                action = Some(Action::Use(best.clone()));
            }
            if resumable && ui.button("Resume run").on_hover_text("continue from the checkpoint it saved").clicked() {
                action = Some(Action::ResumeRun(out.clone()));
            }
        });
        plots_ui(ui, progress);
        match action {
            Some(Action::Pause) => self.pause(true),
            Some(Action::Resume) => self.pause(false),
            Some(Action::Cancel) => self.cancel(),
            Some(Action::ResumeRun(out)) => self.resume(shared, &out),
            Some(Action::Use(model)) => self.use_in_annotate(shared, model),
            None => {}
        }
    }
}

fn plots_ui(ui: &mut egui::Ui, run: &RunProgress) {
    let height = ((ui.available_height() - 40.0) / 2.0).clamp(140.0, 320.0);
    ui.label("Loss");
    Plot::new("loss_plot").height(height).legend(Legend::default()).x_axis_label("step").show(ui, |plot| {
        plot.line(Line::new("step", PlotPoints::from(decimate(&run.step_losses, PLOT_POINTS))).color(Color32::from_rgb(120, 160, 230)));
        plot.line(Line::new("epoch mean", PlotPoints::from(run.epoch_losses.clone())).color(Color32::from_rgb(240, 170, 60)).width(2.0));
    });
    ui.label("Validation Dice");
    Plot::new("dice_plot")
        .height(height)
        .x_axis_label("epoch")
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot| {
            plot.line(Line::new("Dice", PlotPoints::from(run.dice.clone())).color(OK_COLOR));
            plot.points(Points::new("epochs", PlotPoints::from(run.dice.clone())).radius(3.0).color(OK_COLOR));
        });
}

enum Action {
    ResumeRun(PathBuf),
    Pause,
    Resume,
    Cancel,
    Use(PathBuf),
}

/// A modality choice: the built-in names, or a name of the user's own.
fn modality_picker(ui: &mut egui::Ui, id: usize, modality: &mut String) {
    let text = if modality.is_empty() { "choose a modality".to_string() } else { modality.clone() };
    egui::ComboBox::from_id_salt(("source_modality", id)).selected_text(text).show_ui(ui, |ui| {
        for name in modality::BUILT_IN {
            ui.selectable_value(modality, name.to_string(), name);
        }
    });
}
