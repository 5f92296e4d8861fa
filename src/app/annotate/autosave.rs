//! Work in progress: the mask of every image the user touched, saved after each stroke on a
//! background thread (the UI never waits for a PNG encoder), restored when the image reopens.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};

use image::ImageEncoder;
use image::codecs::png::PngEncoder;

use super::labels::LabelTable;
use super::study::SavedWork;
use crate::app::settings::set_aside_damaged;
use crate::imaging::Mask;

/// The autosave file for frame `frame` of `image`.
pub fn path_for(dir: &Path, image: &Path, frame: u32) -> PathBuf {
    path_for_key(dir, &key_for(image), frame)
}

/// The name `image`'s autosaves share: a hash of its canonical path (resolving it touches the
/// disk: the loader thread works it out once per file).
pub fn key_for(image: &Path) -> String {
    let canonical = std::fs::canonicalize(image).unwrap_or_else(|_| image.to_path_buf());
    blake3::hash(canonical.to_string_lossy().as_bytes()).to_hex()[..32].to_string()
}

pub fn path_for_key(dir: &Path, key: &str, frame: u32) -> PathBuf {
    dir.join(format!("{key}-f{frame}.png"))
}

/// The saved work for this image, if any and if it still fits the image's size: the mask still
/// waiting to be written if there is one, else the file. Err: a warning for the user when the
/// file is damaged (it is set aside, never deleted) or cannot be read; the image opens without it.
pub fn restore(saver: &AutosaveReader, dir: &Path, image: &Path, frame: u32, width: u32, height: u32) -> Result<Option<Mask>, String> {
    let fits = |mask: &Mask| mask.width() == width && mask.height() == height;
    let path = path_for(dir, image, frame);
    if let Some(mask) = saver.queued(&path) {
        return Ok(Some(mask).filter(fits));
    }
    let what = format!("autosave of {} (frame {frame})", image.display());
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read the {what}, {}: {e}", path.display())),
    };
    match image::load_from_memory_with_format(&bytes, image::ImageFormat::Png) {
        Ok(saved) => {
            let saved = saved.into_luma8();
            Ok(Mask::from_labels(saved.width(), saved.height(), saved.into_raw()).filter(fits))
        }
        Err(problem) => {
            let warning = set_aside_damaged(&path, &what, &problem).unwrap_or_else(|warning| warning);
            Err(format!("{warning}; the image opens without it"))
        }
    }
}

/// Everything saved for `image`: the masks of its `frames` frames of `width`×`height` and its
/// label table. Read off the UI thread, with the image.
pub fn saved_work(saver: &AutosaveReader, dir: &Path, image: &Path, frames: u32, width: u32, height: u32) -> SavedWork {
    let mut work = SavedWork { key: key_for(image), ..Default::default() };
    for frame in 0..frames {
        match restore(saver, dir, image, frame, width, height) {
            Ok(Some(mask)) => work.masks.push((frame, mask)),
            Ok(None) => {}
            Err(warning) => work.warnings.push(warning),
        }
    }
    match LabelTable::load(&LabelTable::path_beside(&path_for_key(dir, &work.key, 0))) {
        Ok(table) => work.labels = table,
        Err(warning) => work.warnings.push(warning),
    }
    work
}

/// Label values as they are (not 0/255): a restored mask is the mask that was saved.
fn encode(mask: &Mask) -> Result<Vec<u8>, image::ImageError> {
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(&mut bytes, image::codecs::png::CompressionType::Fast, image::codecs::png::FilterType::Adaptive)
        .write_image(mask.labels(), mask.width(), mask.height(), image::ExtendedColorType::L8)?;
    Ok(bytes)
}

type Queue = Arc<Mutex<HashMap<PathBuf, (u64, Mask)>>>;

/// Reads the masks an [`Autosaver`] has queued and not yet written, from any thread.
#[derive(Clone)]
pub struct AutosaveReader {
    pending: Queue,
}

impl AutosaveReader {
    /// The mask queued for `path` and not yet written, if any.
    pub fn queued(&self, path: &Path) -> Option<Mask> {
        self.pending.lock().ok()?.get(path).map(|(_, mask)| mask.clone())
    }
}

/// Saves masks on its own thread; only the newest mask per file is written.
pub struct Autosaver {
    jobs: Sender<PathBuf>,
    /// The newest mask per file not yet on disk, with a version number: an entry leaves only
    /// once that version is written, so a reopened image never misses a queued stroke.
    pending: Queue,
    version: std::sync::atomic::AtomicU64,
    /// Jobs sent and not yet finished, for `flush`.
    outstanding: Arc<(Mutex<usize>, Condvar)>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Autosaver {
    pub fn start() -> Self {
        let (jobs, inbox) = channel::<PathBuf>();
        let pending: Queue = Arc::default();
        let outstanding: Arc<(Mutex<usize>, Condvar)> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let (queue, count, failures) = (pending.clone(), outstanding.clone(), errors.clone());
        std::thread::Builder::new()
            .name("autosave".into())
            .spawn(move || {
                for path in inbox {
                    let job = queue.lock().ok().and_then(|q| q.get(&path).cloned());
                    if let Some((version, mask)) = job {
                        if let Err(message) = write(&path, &mask) {
                            if let Ok(mut list) = failures.lock() {
                                list.push(message);
                            }
                        }
                        if let Ok(mut q) = queue.lock() {
                            if q.get(&path).is_some_and(|(v, _)| *v == version) {
                                q.remove(&path);
                            }
                        }
                    }
                    let (lock, done) = &*count;
                    if let Ok(mut n) = lock.lock() {
                        *n = n.saturating_sub(1);
                        done.notify_all();
                    }
                }
            })
            .expect("the OS refused to start the autosave thread");
        Self { jobs, pending, version: Default::default(), outstanding, errors }
    }

    pub fn save(&self, path: PathBuf, mask: Mask) {
        let version = self.version.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(path.clone(), (version, mask));
        }
        if let Ok(mut n) = self.outstanding.0.lock() {
            *n += 1;
        }
        let _ = self.jobs.send(path);
    }

    pub fn reader(&self) -> AutosaveReader {
        AutosaveReader { pending: self.pending.clone() }
    }

    /// Write failures since the last call (shown to the user).
    pub fn take_errors(&self) -> Vec<String> {
        self.errors.lock().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default()
    }

    /// A waiter for the queued masks (at most `limit`) that outlives `self`: the crash reporter's.
    pub fn flush_handle(&self, limit: std::time::Duration) -> impl Fn() + Send + Sync + 'static {
        let outstanding = self.outstanding.clone();
        move || {
            let (lock, done) = &*outstanding;
            if let Ok(n) = lock.try_lock() {
                let _ = done.wait_timeout_while(n, limit, |n| *n > 0);
            }
        }
    }

    /// Waits (at most 10 s) until everything queued is on disk: tests, and closing the window.
    pub fn flush(&self) {
        let (lock, done) = &*self.outstanding;
        if let Ok(n) = lock.lock() {
            let _ = done.wait_timeout_while(n, std::time::Duration::from_secs(10), |n| *n > 0);
        }
    }
}

fn write(path: &Path, mask: &Mask) -> Result<(), String> {
    let fail = |e: String| format!("cannot autosave to {}: {e}", path.display());
    let bytes = encode(mask).map_err(|e| fail(e.to_string()))?;
    crate::imaging::write_atomic_creating_folder(path, &bytes).map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_work_comes_back_for_the_same_image_and_size_only() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("scan.png");
        std::fs::write(&image, b"x").unwrap();
        let mut mask = Mask::new(30, 20);
        mask.set(3, 4, 1);
        mask.set(5, 6, 2);
        let saver = Autosaver::start();
        saver.save(path_for(dir.path(), &image, 0), mask.clone());
        // Before the write finishes, the queued mask is what comes back.
        assert_eq!(restore(&saver.reader(), dir.path(), &image, 0, 30, 20), Ok(Some(mask.clone())));
        saver.flush();
        assert!(saver.take_errors().is_empty());
        assert!(saver.reader().queued(&path_for(dir.path(), &image, 0)).is_none(), "written and dequeued");
        assert_eq!(restore(&saver.reader(), dir.path(), &image, 0, 30, 20), Ok(Some(mask)));
        assert_eq!(restore(&saver.reader(), dir.path(), &image, 1, 30, 20), Ok(None), "another frame");
        assert_eq!(restore(&saver.reader(), dir.path(), &image, 0, 31, 20), Ok(None), "another size");
    }

    #[test]
    fn a_damaged_autosave_is_set_aside_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("scan.png");
        let saver = Autosaver::start();
        let mut mask = Mask::new(30, 20);
        mask.set(3, 4, 1);
        let path = path_for(dir.path(), &image, 0);
        let png = encode(&mask).unwrap();
        let damaged_files: [&[u8]; 4] = [&png[..png.len() / 2], b"", b"GIF89a garbage", &png[8..]];
        for damaged in damaged_files {
            std::fs::write(&path, damaged).unwrap();
            let warning = restore(&saver.reader(), dir.path(), &image, 0, 30, 20).unwrap_err();
            assert!(warning.contains("autosave of") && warning.contains("scan.png") && warning.contains("damaged"), "{warning}");
            let kept = warning.split("set aside as ").nth(1).unwrap().split(';').next().unwrap();
            assert_eq!(std::fs::read(kept).unwrap(), damaged, "kept as it was");
            assert_eq!(restore(&saver.reader(), dir.path(), &image, 0, 30, 20), Ok(None), "then there is no autosave");
        }
        // The next autosave goes where the damaged one was.
        saver.save(path.clone(), mask.clone());
        saver.flush();
        assert_eq!(restore(&saver.reader(), dir.path(), &image, 0, 30, 20), Ok(Some(mask)));
    }
}
