//! Work off the UI thread, one way for all of it: each job runs on its own thread, its result
//! comes back over a channel and wakes the UI with `request_repaint`. Native dialogs (which block
//! for as long as they are open), file reading, folder checks and probes all go through here.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

/// Jobs whose results are of type `T`, collected by [`Background::poll`] once per frame.
pub struct Background<T> {
    ctx: egui::Context,
    /// `None`: a job that ended without a result (a cancelled dialog).
    tx: Sender<Option<T>>,
    rx: Receiver<Option<T>>,
    running: usize,
}

impl<T: Send + 'static> Background<T> {
    pub fn new(ctx: &egui::Context) -> Self {
        let (tx, rx) = channel();
        Self { ctx: ctx.clone(), tx, rx, running: 0 }
    }

    /// Runs `job` on its own thread; its result arrives in a later `poll`.
    pub fn spawn(&mut self, job: impl FnOnce() -> T + Send + 'static) {
        self.spawn_maybe(move || Some(job()));
    }

    fn spawn_maybe(&mut self, job: impl FnOnce() -> Option<T> + Send + 'static) {
        self.running += 1;
        let (tx, ctx) = (self.tx.clone(), self.ctx.clone());
        std::thread::spawn(move || {
            // The receiver lives as long as the window; a send error only means it is closing.
            let _ = tx.send(job());
            ctx.request_repaint();
        });
    }

    /// Shows a native dialog on its own thread; `deliver` turns a choice into a result
    /// (a cancelled dialog delivers nothing).
    pub fn dialog(&mut self, dialog: impl FnOnce() -> Option<PathBuf> + Send + 'static, deliver: impl FnOnce(PathBuf) -> T + Send + 'static) {
        self.spawn_maybe(move || dialog().map(deliver));
    }

    /// Jobs started and not yet collected.
    pub fn is_busy(&self) -> bool {
        self.running > 0
    }

    /// The results that arrived since the last call, without waiting.
    pub fn poll(&mut self) -> Vec<T> {
        let arrived: Vec<Option<T>> = self.rx.try_iter().collect();
        self.running = self.running.saturating_sub(arrived.len());
        arrived.into_iter().flatten().collect()
    }

    /// Waits up to `timeout` for the next result. Tests and scripts only: never the UI thread.
    pub fn wait(&mut self, timeout: Duration) -> Option<T> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            let arrived = self.rx.recv_timeout(left).ok()?;
            self.running = self.running.saturating_sub(1);
            if arrived.is_some() {
                return arrived;
            }
        }
    }
}
