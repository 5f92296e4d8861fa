//! A crash leaves a trace: a panic on the window's thread (the one that called [`install`]) writes a short report into the data
//! folder (version, backend, the last actions, the backtrace; no file names, no patient data, no
//! pixels) after waiting for the autosave, and the next start offers to show it.
//!
//! Panics on worker threads are not crashes: the engine and the loaders catch them and show an
//! error, so only the window thread's panics are reported here.

use std::backtrace::Backtrace;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

const RECENT_ACTIONS: usize = 20;
const PREFIX: &str = "crash-";
const SEEN: &str = ".seen.txt";

type Flush = Box<dyn Fn() + Send + Sync>;

struct Reporter {
    dir: PathBuf,
    window_thread: std::thread::ThreadId,
    actions: Mutex<VecDeque<&'static str>>,
    backend: Mutex<String>,
    flush: Mutex<Option<Flush>>,
}

static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// Reports panics of the calling thread (the one that runs the window) into `dir`; once per
/// process, later calls do nothing.
pub fn install(dir: PathBuf) {
    let window_thread = std::thread::current().id();
    let reporter = Reporter { dir, window_thread, actions: Mutex::default(), backend: Mutex::new("not started".into()), flush: Mutex::default() };
    if REPORTER.set(reporter).is_err() {
        return;
    }
    // Worked out now: the hook must not start a process (git, for a development build).
    crate::version();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(reporter) = REPORTER.get().filter(|r| r.window_thread == std::thread::current().id()) {
            reporter.report(info);
        }
        default_hook(info);
    }));
}

/// Remembers a user action for the next report (a fixed word, never a file name); repeats of
/// the same action (a box being dragged) count once.
pub fn note(action: &'static str) {
    if let Some(mut actions) = REPORTER.get().and_then(|r| r.actions.try_lock().ok()) {
        if actions.back() == Some(&action) {
            return;
        }
        if actions.len() == RECENT_ACTIONS {
            actions.pop_front();
        }
        actions.push_back(action);
    }
}

pub fn set_backend(backend: String) {
    if let Some(mut current) = REPORTER.get().and_then(|r| r.backend.try_lock().ok()) {
        *current = backend;
    }
}

/// What to run before writing a report: waiting for the autosave (bounded by the callee).
pub fn set_flush(flush: impl Fn() + Send + Sync + 'static) {
    if let Some(mut slot) = REPORTER.get().and_then(|r| r.flush.try_lock().ok()) {
        *slot = Some(Box::new(flush));
    }
}

impl Reporter {
    fn report(&self, info: &std::panic::PanicHookInfo<'_>) {
        // try_lock everywhere: the panic may have happened while one of these was held.
        if let Ok(flush) = self.flush.try_lock() {
            if let Some(flush) = flush.as_ref() {
                flush();
            }
        }
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let actions: Vec<&str> = self.actions.try_lock().map(|a| a.iter().copied().collect()).unwrap_or_default();
        let backend = self.backend.try_lock().map(|b| b.clone()).unwrap_or_default();
        let text = report_text(&message, &location, &backend, &actions, &Backtrace::force_capture().to_string());
        let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let path = self.dir.join(format!("{PREFIX}{seconds}.txt"));
        match crate::imaging::write_atomic_creating_folder(&path, text.as_bytes()) {
            Ok(()) => eprintln!("De-LightSAM crashed; a report (no image data) was written to {}", path.display()),
            Err(e) => eprintln!("De-LightSAM crashed and could not write its report to {}: {e}", path.display()),
        }
    }
}

/// The report's text. Words with a path separator in the panic message are replaced: a file
/// name may carry a patient's name.
pub fn report_text(message: &str, location: &str, backend: &str, actions: &[&str], backtrace: &str) -> String {
    let message: Vec<String> = message
        .split(' ')
        .map(|word| if word.contains('/') || word.contains('\\') { "<path>".to_string() } else { word.to_string() })
        .collect();
    format!(
        "De-LightSAM Annotator {} crashed.\n\npanic: {}\nat: {location}\nbackend: {backend}\nos: {} {}\nlast actions (oldest first): {}\n\nbacktrace:\n{backtrace}\n",
        crate::version(),
        message.join(" "),
        std::env::consts::OS,
        std::env::consts::ARCH,
        if actions.is_empty() { "none".to_string() } else { actions.join(", ") },
    )
}

/// Reports written by earlier runs and not yet shown, newest first.
pub fn unseen_reports(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut reports: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.starts_with(PREFIX) && name.ends_with(".txt") && !name.ends_with(SEEN)
        })
        .collect();
    reports.sort();
    reports.reverse();
    reports
}

/// Marks a report as shown (renamed to `crash-N.seen.txt`; kept for the user).
pub fn mark_seen(report: &Path) -> std::io::Result<()> {
    let name = report.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let seen = report.with_file_name(name.trim_end_matches(".txt").to_string() + SEEN);
    std::fs::rename(report, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_no_files() {
        let text = report_text("cannot read /home/jane-doe/scans/x.dcm now", "src/app/x.rs:3", "cpu", &["open", "propose"], "0: main");
        assert!(!text.contains("jane-doe"), "{text}");
        assert!(text.contains("cannot read <path> now"));
        assert!(text.contains("last actions (oldest first): open, propose"));
        assert!(text.contains(env!("CARGO_PKG_VERSION")) && text.contains("backend: cpu") && text.contains("0: main"));
    }

    #[test]
    fn seen_reports_are_not_offered_again() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["crash-10.txt", "crash-20.txt", "notes.txt"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let reports = unseen_reports(dir.path());
        assert_eq!(reports, vec![dir.path().join("crash-20.txt"), dir.path().join("crash-10.txt")]);
        mark_seen(&reports[0]).unwrap();
        assert_eq!(unseen_reports(dir.path()), vec![dir.path().join("crash-10.txt")]);
        assert!(dir.path().join("crash-20.seen.txt").is_file());
        assert!(unseen_reports(&dir.path().join("missing")).is_empty());
    }
}
