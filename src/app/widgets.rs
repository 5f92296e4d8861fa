//! Small pieces both tabs draw the same way: colours, model names, the status line.

use std::path::Path;

use egui::Color32;

use super::context::Status;

pub const ERROR_COLOR: Color32 = Color32::from_rgb(230, 90, 80);
pub const OK_COLOR: Color32 = Color32::from_rgb(90, 200, 120);

/// How the model menus name a model: its run folder, or the shipped one.
pub fn model_label(path: Option<&Path>) -> String {
    match path {
        None => "shipped default".into(),
        Some(path) => {
            let run = path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let file = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if file == "best" || file == "model" { run } else { format!("{run}/{file}") }
        }
    }
}

pub const WARNING_COLOR: Color32 = Color32::from_rgb(230, 180, 80);

/// The warnings (with a button that dismisses them), then the last error, else the passing
/// message; true if something was shown.
pub fn status_ui(ui: &mut egui::Ui, status: &mut Status) -> bool {
    for warning in &status.warnings {
        ui.colored_label(WARNING_COLOR, format!("Warning: {warning}"));
    }
    if !status.warnings.is_empty() {
        if ui.small_button("Dismiss").clicked() {
            status.warnings.clear();
        }
        ui.separator();
    }
    if let Some(error) = &status.error {
        ui.colored_label(ERROR_COLOR, format!("Error: {error}"));
    } else if let Some(message) = &status.message {
        ui.label(message);
    } else {
        return !status.warnings.is_empty();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_named_by_their_run() {
        assert_eq!(model_label(None), "shipped default");
        assert_eq!(model_label(Some(Path::new("/runs/skin-2/best.bpk"))), "skin-2");
        assert_eq!(model_label(Some(Path::new("/runs/skin-2/other.bpk"))), "skin-2/other");
    }
}
