//! What the canvas shows with nothing open: what the app does, the three steps with their keys,
//! and ways to start (open a file or folder, a sample, a recent file).

use std::path::PathBuf;

use egui::RichText;

use crate::app::assets::SAMPLES;

/// What the user chose on the welcome screen.
pub enum WelcomeAction {
    OpenFile,
    OpenFolder,
    /// Index into [`SAMPLES`].
    Sample(usize),
    Recent(PathBuf),
}

const STEPS: [(&str, &str); 3] = [
    ("Open", "Ctrl+O for an image, File > Open folder… for a worklist, or drop files on the window."),
    ("Propose", "A for an automatic mask, or a box (R) or points (P) around the object you mean."),
    ("Fix and export", "brush B, eraser E, fill G, lasso L, undo Ctrl+Z; Ctrl+S writes the mask as a PNG."),
];

pub fn welcome_ui(ui: &mut egui::Ui, recent: &[PathBuf]) -> Option<WelcomeAction> {
    let mut action = None;
    ui.vertical_centered(|ui| {
        ui.add_space((ui.available_height() * 0.12).min(80.0));
        ui.heading(RichText::new(crate::app::APP_NAME).size(26.0));
        ui.label("Segment medical images with an AI assistant that runs on this computer; nothing leaves it.");
        ui.label("Open DICOM, PNG, JPEG or TIFF images, let the model propose a mask, fix it by hand, export it.");
        ui.add_space(16.0);
        egui::Grid::new("welcome steps").num_columns(2).spacing([12.0, 6.0]).show(ui, |ui| {
            for (i, (step, how)) in STEPS.iter().enumerate() {
                ui.label(RichText::new(format!("{}. {step}", i + 1)).strong());
                ui.label(*how);
                ui.end_row();
            }
        });
        ui.add_space(16.0);
        ui.horizontal(|ui| {
            ui.add_space((ui.available_width() - 260.0).max(0.0) / 2.0);
            if ui.button("Open file…").on_hover_text("An image or DICOM file (Ctrl+O)").clicked() {
                action = Some(WelcomeAction::OpenFile);
            }
            if ui.button("Open folder…").on_hover_text("Every image in a folder, as a worklist").clicked() {
                action = Some(WelcomeAction::OpenFolder);
            }
        });
        ui.add_space(12.0);
        ui.label(RichText::new("Try a sample").strong());
        for (i, sample) in SAMPLES.iter().enumerate() {
            let label = format!("{}  ({})", sample.title, sample.modality);
            if ui.button(label).on_hover_text(sample.about).clicked() {
                action = Some(WelcomeAction::Sample(i));
            }
        }
        if !recent.is_empty() {
            ui.add_space(12.0);
            ui.label(RichText::new("Recent").strong());
            for path in recent.iter().take(8) {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
                if ui.link(name).on_hover_text(path.display().to_string()).clicked() {
                    action = Some(WelcomeAction::Recent(path.clone()));
                }
            }
        }
    });
    action
}
