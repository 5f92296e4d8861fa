//! Background reading of images and folders (see [`Background`]). A newer request makes older
//! results stale; they are dropped on arrival. The file and folder dialogs deliver here too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::autosave::{self, AutosaveReader};
use super::study::SavedWork;
use super::worklist::Worklist;
use crate::app::background::Background;
use crate::imaging::volume::Volume;
use crate::imaging::{Frame, ImageSource, Mask, nifti, series};

pub enum LoadResult {
    /// A frame of a file; with the file's saved work when the file was opened (not another
    /// frame of the file already open).
    Loaded { source: Arc<ImageSource>, frame_index: u32, frame: Frame, saved: Option<SavedWork> },
    /// A folder's images with their states.
    Folder(Worklist),
    Failed(String),
    /// A label map that could not be read.
    ImportFailed(String),
    /// A path chosen in the native file dialog.
    Picked(PathBuf),
    /// A label map chosen to import into the shown volume.
    LabelsPicked(PathBuf),
    /// A label map read onto a volume's grid (voxel (i, j, k) at `i + nx · (j + ny · k)`).
    /// Slice k of `labels` goes to frame `first + k` (an image's mask: the shown frame).
    /// `names`: the segment names a DICOM SEG gives (value, name).
    Labels { volume: PathBuf, from: PathBuf, labels: Vec<u8>, shape: [usize; 3], first: usize, names: Vec<(u8, String)> },
}

pub struct Loader {
    /// Results tagged with their request's generation; picks with 0 (never stale).
    jobs: Background<(u64, LoadResult)>,
    generation: u64,
    in_flight: bool,
    /// Where the saved work read with each file is.
    saved: SavedWorkPlace,
    /// Label maps being read: apart from `jobs`, so that moving through slices meanwhile
    /// neither drops an import nor is dropped by one.
    imports: Background<LoadResult>,
}

/// The autosave folder and the masks queued for it.
#[derive(Clone)]
struct SavedWorkPlace {
    dir: PathBuf,
    queued: AutosaveReader,
}

impl Loader {
    pub fn new(ctx: &egui::Context, autosave_dir: PathBuf, queued: AutosaveReader) -> Self {
        Self {
            jobs: Background::new(ctx),
            generation: 0,
            in_flight: false,
            saved: SavedWorkPlace { dir: autosave_dir, queued },
            imports: Background::new(ctx),
        }
    }

    /// A file, folder or label map is being read.
    pub fn is_busy(&self) -> bool {
        self.in_flight || self.imports.is_busy()
    }

    /// Opens an image file (its first frame).
    pub fn open(&mut self, path: PathBuf) {
        let saved = self.saved.clone();
        self.start(move || read_first_frame(&path, &saved));
    }

    /// Opens a file, or a folder as a worklist with its images' states (exported, edited).
    pub fn open_any(&mut self, path: PathBuf, export_dir: Option<PathBuf>) {
        let saved = self.saved.clone();
        self.start(move || if path.is_dir() { open_folder(&path, export_dir.as_deref(), &saved) } else { read_first_frame(&path, &saved) });
    }

    /// A series among a folder's files, under the name its worklist lists it by.
    pub fn open_series(&mut self, name: PathBuf, series: series::Series) {
        let saved = self.saved.clone();
        self.start(move || loaded(series_source(series).map_err(|e| format!("{}: {e}", name.display()))?.named(name), &saved));
    }

    /// Another frame or slice of the open file (its saved work is held already).
    pub fn frame(&mut self, source: Arc<ImageSource>, frame_index: u32) {
        self.start(move || {
            let frame = source.frame(frame_index).map_err(|e| e.to_string())?;
            Ok(LoadResult::Loaded { source, frame_index, frame, saved: None })
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

    /// Shows the native file dialog for a label map (NIfTI, DICOM SEG, PNG/TIFF) to import.
    pub fn pick_labels(&mut self) {
        let dialog = rfd::FileDialog::new()
            .set_title("Import labels")
            .add_filter("Label maps", &["nii", "gz", "dcm", "png", "tif", "tiff"])
            .add_filter("All files", &["*"]);
        self.jobs.dialog(move || dialog.pick_file(), |path| (0, LoadResult::LabelsPicked(path)));
    }

    /// Reads a label map onto the open file's grid: for a volume a NIfTI (placed through the
    /// affines), a DICOM SEG referencing the series, or the per-slice PNGs of a volume export
    /// (`slice_NNNN.png` beside the chosen one); for an image a PNG/TIFF mask of its size, onto
    /// frame `frame`.
    pub fn import_labels(&mut self, source: Arc<ImageSource>, frame: u32, path: PathBuf) {
        let read = move || -> Result<LoadResult, String> {
            let mut names = Vec::new();
            let (labels, shape, first) = match (source.volume(), is_raster(&path)) {
                (Some(volume), true) => (slice_pngs(&path, volume.shape)?, volume.shape, 0),
                (Some(volume), false) => {
                    let (labels, segments) = volume.read_labels(&path).map_err(|e| e.to_string())?;
                    names = segments;
                    (labels, volume.shape, 0)
                }
                (None, true) => {
                    let mask = Mask::load(&path).map_err(|e| e.to_string())?;
                    mask.check_size(&path, source.meta().cols, source.meta().rows).map_err(|e| e.to_string())?;
                    (mask.labels().to_vec(), [mask.width() as usize, mask.height() as usize, 1], frame as usize)
                }
                (None, false) => {
                    return Err(format!("{}: an image takes a PNG or TIFF mask; NIfTI and DICOM SEG label maps go onto volumes", path.display()));
                }
            };
            Ok(LoadResult::Labels { volume: source.path().to_path_buf(), from: path, labels, shape, first, names })
        };
        self.imports.spawn(move || read().unwrap_or_else(LoadResult::ImportFailed));
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
        let mut results: Vec<LoadResult> = arrived.into_iter().filter_map(|(generation, result)| self.accept(generation, result)).collect();
        results.extend(self.imports.poll());
        results
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
        while self.imports.is_busy() {
            match self.imports.wait(Duration::from_secs(600)) {
                Some(result) => out.push(result),
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

fn is_raster(path: &Path) -> bool {
    path.extension().is_some_and(|e| ["png", "tif", "tiff"].contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
}

/// The `slice_NNNN.png` label maps in `chosen`'s folder (as a volume export writes them), slice
/// NNNN of a volume of `shape`; 0/255 maps import as label 1.
fn slice_pngs(chosen: &Path, shape: [usize; 3]) -> Result<Vec<u8>, String> {
    let [nx, ny, nz] = shape;
    let folder = chosen.parent().unwrap_or(Path::new("."));
    let entries = std::fs::read_dir(folder).map_err(|e| format!("{}: cannot read the folder: {e}", folder.display()))?;
    let mut labels = vec![0u8; nx * ny * nz];
    let mut found = 0;
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        let Some(k) = name.strip_prefix("slice_").and_then(|n| n.strip_suffix(".png")).and_then(|n| n.parse::<usize>().ok()) else { continue };
        if k >= nz {
            return Err(format!("{}: slice {k} of a volume of {nz} slices", path.display()));
        }
        let mask = Mask::load(&path).map_err(|e| e.to_string())?;
        mask.check_size(&path, nx as u32, ny as u32).map_err(|e| e.to_string())?;
        labels[k * nx * ny..(k + 1) * nx * ny].copy_from_slice(mask.labels());
        found += 1;
    }
    if found == 0 {
        return Err(format!("{}: no slice_NNNN.png label maps (as a volume export writes them) in this folder", folder.display()));
    }
    Ok(labels)
}

fn read_first_frame(path: &Path, saved: &SavedWorkPlace) -> Result<LoadResult, String> {
    let source = if path.is_dir() {
        // A worklist item that is a series folder.
        series_source(one_series(path)?.ok_or_else(|| format!("{}: not a folder holding one DICOM series", path.display()))?)?
    } else if nifti::is_nifti_path(path) {
        ImageSource::open_volume(path).map_err(|e| e.to_string())?
    } else {
        let plain = ImageSource::open(path).map_err(|e| e.to_string())?;
        // A multi-frame DICOM whose frames each have a position (enhanced CT/MR) is a volume;
        // other multi-frame files (cine, ultrasound loops) open frame by frame.
        let multi_frame_dicom = plain.meta().frames > 1 && plain.meta().format == crate::imaging::SourceFormat::Dicom;
        match multi_frame_dicom.then(|| Volume::open(path)) {
            Some(Ok(volume)) => ImageSource::from_volume(volume),
            _ => plain,
        }
    };
    loaded(source, saved)
}

fn loaded(source: ImageSource, saved: &SavedWorkPlace) -> Result<LoadResult, String> {
    let frame = source.frame(0).map_err(|e| e.to_string())?;
    let work = autosave::saved_work(&saved.queued, &saved.dir, source.path(), source.meta().frames, frame.width, frame.height);
    Ok(LoadResult::Loaded { source: Arc::new(source), frame_index: 0, frame, saved: Some(work) })
}

/// A folder holding one DICOM series (and nothing else) opens as one volume; any other folder
/// as a worklist of its images.
fn open_folder(folder: &Path, export_dir: Option<&Path>, saved: &SavedWorkPlace) -> Result<LoadResult, String> {
    match series_volume(folder)? {
        Some(source) => loaded(source, saved),
        None => scan_folder(folder, export_dir, &saved.dir),
    }
}

fn series_volume(folder: &Path) -> Result<Option<ImageSource>, String> {
    one_series(folder)?.map(series_source).transpose()
}

/// A series read as one volume, its slices the source's frames.
fn series_source(series: series::Series) -> Result<ImageSource, String> {
    Ok(ImageSource::from_volume(Volume::from_series(series).map_err(|e| e.to_string())?))
}

/// The folder's DICOM series when it holds exactly one (of several slices at distinct
/// positions) and nothing else; its headers are read, not its pixels.
fn one_series(folder: &Path) -> Result<Option<series::Series>, String> {
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
    Ok(Some(scan.series.remove(0)))
}

/// The series among a folder's own files (several files at distinct positions), each with the
/// name the worklist lists it by: `<folder>/series <Series Instance UID>` (else the first
/// slice's file name). Only read when the folder has several files that may be DICOM.
fn series_among_files(folder: &Path, items: &[PathBuf]) -> Vec<(PathBuf, series::Series)> {
    let maybe_dicom = |p: &&PathBuf| p.extension().is_none_or(|e| ["dcm", "dicom", "ima"].contains(&e.to_string_lossy().to_ascii_lowercase().as_str()));
    if items.iter().filter(maybe_dicom).count() < 2 {
        return Vec::new();
    }
    let Ok(scan) = series::scan_folder(folder) else { return Vec::new() };
    scan.series
        .into_iter()
        .filter(|s| s.repeated_positions() == 0 && s.slices.iter().map(|s| &s.path).collect::<std::collections::HashSet<_>>().len() > 1)
        .map(|s| {
            let first = s.slices[0].path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let id = s.series_uid.clone().filter(|u| !u.trim().is_empty()).unwrap_or(first);
            let name: String = id.chars().map(|c| if c.is_ascii_alphanumeric() || ".-_".contains(c) { c } else { '_' }).collect();
            (folder.join(format!("series {name}")), s)
        })
        .collect()
}

/// Subfolders holding one DICOM series each (a study exported as a folder per series).
fn series_subfolders(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .filter(|p| matches!(one_series(p), Ok(Some(_))))
        .collect()
}

fn scan_folder(folder: &Path, export_dir: Option<&Path>, autosave_dir: &Path) -> Result<LoadResult, String> {
    let scanned = Worklist::scan(folder, export_dir, autosave_dir).map(|mut list| {
        list.add_series(series_subfolders(folder), export_dir, autosave_dir);
        list.add_member_series(series_among_files(folder, &list.items), export_dir, autosave_dir);
        list
    });
    match scanned {
        Ok(list) if list.items.is_empty() => Err(format!("{}: no images or DICOM series in this folder", folder.display())),
        Ok(list) => Ok(LoadResult::Folder(list)),
        Err(e) => Err(format!("{}: cannot read the folder: {e}", folder.display())),
    }
}
