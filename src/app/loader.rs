//! Background reading of images: one thread per request, results over a channel, the UI woken by
//! `request_repaint`. A newer request makes older results stale; they are dropped on arrival.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::imaging::{Frame, ImageSource};

pub enum LoadResult {
    Loaded { source: Arc<ImageSource>, frame_index: u32, frame: Frame },
    Failed(String),
    /// A path chosen in the native file dialog.
    Picked(PathBuf),
}

pub struct Loader {
    ctx: egui::Context,
    tx: Sender<(u64, LoadResult)>,
    rx: Receiver<(u64, LoadResult)>,
    generation: u64,
    in_flight: bool,
}

impl Loader {
    pub fn new(ctx: &egui::Context) -> Self {
        let (tx, rx) = channel();
        Self { ctx: ctx.clone(), tx, rx, generation: 0, in_flight: false }
    }

    pub fn is_busy(&self) -> bool {
        self.in_flight
    }

    pub fn open(&mut self, path: PathBuf) {
        self.spawn(move || {
            let source = ImageSource::open(&path)?;
            let frame = source.frame(0)?;
            Ok((Arc::new(source), 0, frame))
        });
    }

    pub fn frame(&mut self, source: Arc<ImageSource>, frame_index: u32) {
        self.spawn(move || {
            let frame = source.frame(frame_index)?;
            Ok((source, frame_index, frame))
        });
    }

    /// Shows the native file dialog (see [`pick_in_background`]); the choice is opened.
    pub fn pick_file(&self) {
        let tx = self.tx.clone();
        let dialog = rfd::FileDialog::new()
            .set_title("Open an image")
            .add_filter("Images", &["dcm", "dicom", "png", "jpg", "jpeg", "tif", "tiff", "bmp"])
            .add_filter("All files", &["*"]);
        pick_in_background(&self.ctx, move || dialog.pick_file(), move |path| {
            let _ = tx.send((0, LoadResult::Picked(path)));
        });
    }

    /// Shows the native folder dialog; the folder is opened as a worklist.
    pub fn pick_folder(&self) {
        let tx = self.tx.clone();
        let dialog = rfd::FileDialog::new().set_title("Open a folder of images");
        pick_in_background(&self.ctx, move || dialog.pick_folder(), move |path| {
            let _ = tx.send((0, LoadResult::Picked(path)));
        });
    }

    fn spawn(
        &mut self,
        job: impl FnOnce() -> Result<(Arc<ImageSource>, u32, Frame), crate::imaging::ImageError> + Send + 'static,
    ) {
        self.generation += 1;
        self.in_flight = true;
        let generation = self.generation;
        let tx = self.tx.clone();
        let ctx = self.ctx.clone();
        std::thread::spawn(move || {
            let result = match job() {
                Ok((source, frame_index, frame)) => LoadResult::Loaded { source, frame_index, frame },
                Err(e) => LoadResult::Failed(e.to_string()),
            };
            // The receiver lives as long as the app; a send error only means the app is closing.
            let _ = tx.send((generation, result));
            ctx.request_repaint();
        });
    }

    /// Results that arrived since the last call, stale ones dropped.
    pub fn poll(&mut self) -> Vec<LoadResult> {
        let mut out = Vec::new();
        while let Ok((generation, result)) = self.rx.try_recv() {
            self.accept(generation, result, &mut out);
        }
        out
    }

    /// Waits for the current request to finish (for tests and headless use, never the UI thread).
    pub fn wait(&mut self) -> Vec<LoadResult> {
        let mut out = Vec::new();
        while self.in_flight {
            match self.rx.recv() {
                Ok((generation, result)) => self.accept(generation, result, &mut out),
                Err(_) => break,
            }
        }
        out
    }

    fn accept(&mut self, generation: u64, result: LoadResult, out: &mut Vec<LoadResult>) {
        match result {
            LoadResult::Picked(_) => out.push(result),
            _ if generation == self.generation => {
                self.in_flight = false;
                out.push(result);
            }
            _ => {}
        }
    }
}

/// Runs a native dialog on its own thread (it blocks for as long as it is open), hands a choice
/// to `deliver` and wakes the UI.
pub fn pick_in_background(
    ctx: &egui::Context,
    dialog: impl FnOnce() -> Option<PathBuf> + Send + 'static,
    deliver: impl FnOnce(PathBuf) + Send + 'static,
) {
    let ctx = ctx.clone();
    std::thread::spawn(move || {
        if let Some(path) = dialog() {
            deliver(path);
            ctx.request_repaint();
        }
    });
}
