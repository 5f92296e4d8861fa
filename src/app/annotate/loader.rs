//! Background reading of images and folders (see [`Background`]). A newer request makes older
//! results stale; they are dropped on arrival. The file and folder dialogs deliver here too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::worklist::Worklist;
use crate::app::background::Background;
use crate::imaging::volume::Volume;
use crate::imaging::{Frame, ImageSource, nifti, series};

pub enum LoadResult {
    Loaded { source: Arc<ImageSource>, frame_index: u32, frame: Frame },
    /// A folder's images with their states.
    Folder(Worklist),
    Failed(String),
    /// A path chosen in the native file dialog.
    Picked(PathBuf),
    /// A label map chosen to import into the shown volume.
    LabelsPicked(PathBuf),
    /// A label map read onto a volume's grid (voxel (i, j, k) at `i + nx · (j + ny · k)`).
    Labels { volume: PathBuf, from: PathBuf, labels: Vec<u8>, shape: [usize; 3] },
}

pub struct Loader {
    /// Results tagged with their request's generation; picks with 0 (never stale).
    jobs: Background<(u64, LoadResult)>,
    generation: u64,
    in_flight: bool,
}

impl Loader {
    pub fn new(ctx: &egui::Context) -> Self {
        Self { jobs: Background::new(ctx), generation: 0, in_flight: false }
    }

    /// A file or folder is being read.
    pub fn is_busy(&self) -> bool {
        self.in_flight
    }

    /// Opens an image file (its first frame).
    pub fn open(&mut self, path: PathBuf) {
        self.start(move || read_first_frame(&path));
    }

    /// Opens a file, or a folder as a worklist with its images' states (exported, edited).
    pub fn open_any(&mut self, path: PathBuf, export_dir: Option<PathBuf>, autosave_dir: PathBuf) {
        self.start(move || if path.is_dir() { open_folder(&path, export_dir.as_deref(), &autosave_dir) } else { read_first_frame(&path) });
    }

    pub fn frame(&mut self, source: Arc<ImageSource>, frame_index: u32) {
        self.start(move || {
            let frame = source.frame(frame_index).map_err(|e| e.to_string())?;
            Ok(LoadResult::Loaded { source, frame_index, frame })
        });
    }

    /// Shows the native file dialog; the choice is opened.
    pub fn pick_file(&mut self) {
        let dialog = rfd::FileDialog::new()
            .set_title("Open an image")
            .add_filter("Images", &["dcm", "dicom", "png", "jpg", "jpeg", "tif", "tiff", "bmp", "nii", "gz"])
            .add_filter("All files", &["*"]);
        self.jobs.dialog(move || dialog.pick_file(), |path| (0, LoadResult::Picked(path)));
    }

    /// Shows the native file dialog for a label map (NIfTI or DICOM SEG) to import.
    pub fn pick_labels(&mut self) {
        let dialog = rfd::FileDialog::new()
            .set_title("Import labels into this volume")
            .add_filter("Label maps", &["nii", "gz", "dcm"])
            .add_filter("All files", &["*"]);
        self.jobs.dialog(move || dialog.pick_file(), |path| (0, LoadResult::LabelsPicked(path)));
    }

    /// Reads a label map (NIfTI, placed through the affines, or a DICOM SEG referencing the
    /// series) onto the shown volume's grid.
    pub fn import_labels(&mut self, source: Arc<ImageSource>, path: PathBuf) {
        self.start(move || {
            let volume = source.volume().ok_or("labels are imported into a volume (a DICOM series or a NIfTI file)")?;
            let (labels, _) = volume.read_labels(&path).map_err(|e| e.to_string())?;
            Ok(LoadResult::Labels { volume: source.path().to_path_buf(), from: path, labels, shape: volume.shape })
        });
    }

    /// Shows the native folder dialog; the folder is opened as a worklist.
    pub fn pick_folder(&mut self) {
        let dialog = rfd::FileDialog::new().set_title("Open a folder of images or a DICOM series");
        self.jobs.dialog(move || dialog.pick_folder(), |path| (0, LoadResult::Picked(path)));
    }

    fn start(&mut self, job: impl FnOnce() -> Result<LoadResult, String> + Send + 'static) {
        self.generation += 1;
        self.in_flight = true;
        let generation = self.generation;
        self.jobs.spawn(move || (generation, job().unwrap_or_else(LoadResult::Failed)));
    }

    /// Results that arrived since the last call, stale ones dropped.
    pub fn poll(&mut self) -> Vec<LoadResult> {
        let arrived = self.jobs.poll();
        arrived.into_iter().filter_map(|(generation, result)| self.accept(generation, result)).collect()
    }

    /// Waits for the current request to finish (tests and scripts, never the UI thread).
    pub fn wait(&mut self) -> Vec<LoadResult> {
        let mut out = Vec::new();
        while self.in_flight {
            match self.jobs.wait(Duration::from_secs(600)) {
                Some((generation, result)) => out.extend(self.accept(generation, result)),
                None => break,
            }
        }
        out
    }

    fn accept(&mut self, generation: u64, result: LoadResult) -> Option<LoadResult> {
        match result {
            LoadResult::Picked(_) | LoadResult::LabelsPicked(_) => Some(result),
            _ if generation == self.generation => {
                self.in_flight = false;
                Some(result)
            }
            _ => None,
        }
    }
}

fn read_first_frame(path: &Path) -> Result<LoadResult, String> {
    let source = if nifti::is_nifti_path(path) {
        ImageSource::open_volume(path).map_err(|e| e.to_string())?
    } else {
        ImageSource::open(path).map_err(|e| e.to_string())?
    };
    loaded(source)
}

fn loaded(source: ImageSource) -> Result<LoadResult, String> {
    let frame = source.frame(0).map_err(|e| e.to_string())?;
    Ok(LoadResult::Loaded { source: Arc::new(source), frame_index: 0, frame })
}

/// A folder holding one DICOM series (and nothing else) opens as one volume; any other folder
/// as a worklist of its images.
fn open_folder(folder: &Path, export_dir: Option<&Path>, autosave_dir: &Path) -> Result<LoadResult, String> {
    match series_volume(folder)? {
        Some(source) => loaded(source),
        None => scan_folder(folder, export_dir, autosave_dir),
    }
}

fn series_volume(folder: &Path) -> Result<Option<ImageSource>, String> {
    let raster = |p: &Path| {
        p.extension().is_some_and(|e| ["png", "jpg", "jpeg", "tif", "tiff", "bmp"].contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
    };
    let entries = std::fs::read_dir(folder).map_err(|e| format!("{}: cannot read the folder: {e}", folder.display()))?;
    if entries.filter_map(|e| e.ok()).any(|e| raster(&e.path()) || nifti::is_nifti_path(&e.path())) {
        return Ok(None);
    }
    let Ok(mut scan) = series::scan_folder(folder) else { return Ok(None) };
    let one_volume = scan.series.len() == 1 && scan.images.is_empty() && scan.series[0].slices.len() > 1 && scan.series[0].repeated_positions() == 0;
    if !one_volume {
        return Ok(None);
    }
    let volume = Volume::from_series(scan.series.remove(0)).map_err(|e| e.to_string())?;
    Ok(Some(ImageSource::from_volume(volume)))
}

fn scan_folder(folder: &Path, export_dir: Option<&Path>, autosave_dir: &Path) -> Result<LoadResult, String> {
    match Worklist::scan(folder, export_dir, autosave_dir) {
        Ok(list) if list.items.is_empty() => Err(format!("{}: no images in this folder", folder.display())),
        Ok(list) => Ok(LoadResult::Folder(list)),
        Err(e) => Err(format!("{}: cannot read the folder: {e}", folder.display())),
    }
}
