//! A folder of images to annotate, in name order, with each image's state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::autosave;

const EXTENSIONS: [&str; 9] = ["dcm", "dicom", "png", "jpg", "jpeg", "tif", "tiff", "bmp", "ima"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ItemState {
    Untouched,
    /// Work in progress exists (autosaved).
    Edited,
    /// A mask was exported.
    Exported,
}

impl ItemState {
    /// A short word for the worklist (egui's built-in fonts have no status symbols).
    pub fn label(self) -> &'static str {
        match self {
            ItemState::Untouched => "",
            ItemState::Edited => "edited",
            ItemState::Exported => "exported",
        }
    }
}

pub struct Worklist {
    pub folder: PathBuf,
    pub items: Vec<PathBuf>,
    pub current: Option<usize>,
    /// The model's uncertainty per image (mean mask entropy, 0..1), once ranked.
    pub uncertainty: HashMap<PathBuf, f32>,
    /// Images still to be scored while a ranking runs.
    pub ranking: Option<Ranking>,
    /// Each image's state, read from the disk when the folder was opened (and again when the
    /// export folder changes), then kept up to date by the app's own exports and autosaves.
    states: HashMap<PathBuf, ItemState>,
    /// Items that are DICOM series (they open as volumes): folders holding one, and the
    /// series among the folder's own files (see `members`).
    pub series: std::collections::HashSet<PathBuf>,
    /// Series among the folder's own files, by the name they are listed under
    /// (`<folder>/series <UID>`); their slice files are not listed one by one.
    pub members: HashMap<PathBuf, crate::imaging::series::Series>,
}

#[derive(Debug, Clone)]
pub struct Ranking {
    pub pending: Vec<PathBuf>,
    pub total: usize,
    pub modality: String,
}

impl Worklist {
    /// The folder's image files (by extension, or any file without one: DICOM often has none),
    /// skipping our own exported masks, with their states. Reads the disk: not on the UI thread.
    pub fn scan(folder: &Path, export_dir: Option<&Path>, autosave_dir: &Path) -> std::io::Result<Self> {
        let mut items: Vec<PathBuf> = std::fs::read_dir(folder)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .filter(|p| !p.file_stem().is_some_and(|s| s.to_string_lossy().ends_with("_mask")))
            .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().to_ascii_lowercase().ends_with("_mask.nii.gz")))
            .filter(|p| match p.extension() {
                _ if crate::imaging::nifti::is_nifti_path(p) => true,
                Some(ext) => EXTENSIONS.contains(&ext.to_string_lossy().to_ascii_lowercase().as_str()),
                None => true,
            })
            .collect();
        items.sort();
        let states = read_states(&items, export_dir, autosave_dir);
        Ok(Self {
            folder: folder.to_path_buf(),
            items,
            current: None,
            uncertainty: HashMap::new(),
            ranking: None,
            states,
            series: Default::default(),
            members: HashMap::new(),
        })
    }

    /// Adds subfolders that each hold one DICOM series, listed after the files in name order.
    pub fn add_series(&mut self, mut folders: Vec<PathBuf>, export_dir: Option<&Path>, autosave_dir: &Path) {
        folders.sort();
        self.states.extend(read_states(&folders, export_dir, autosave_dir));
        self.series.extend(folders.iter().cloned());
        self.items.extend(folders);
    }

    /// Lists each series among the folder's own files as one item named `name` instead of its
    /// slice files.
    pub fn add_member_series(&mut self, mut found: Vec<(PathBuf, crate::imaging::series::Series)>, export_dir: Option<&Path>, autosave_dir: &Path) {
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, series) in found {
            let files: std::collections::HashSet<&Path> = series.slices.iter().map(|s| s.path.as_path()).collect();
            self.items.retain(|p| !files.contains(p.as_path()));
            self.states.extend(read_states(std::slice::from_ref(&name), export_dir, autosave_dir));
            self.series.insert(name.clone());
            self.items.push(name.clone());
            self.members.insert(name, series);
        }
    }

    /// An image's state as last known (no disk access).
    pub fn state_of(&self, path: &Path) -> ItemState {
        self.states.get(path).copied().unwrap_or(ItemState::Untouched)
    }

    /// Records an autosave of `frame` of `image`, as [`Worklist::read_state`] would find it.
    pub fn autosaved(&mut self, image: &Path, frame: u32) {
        if frame == STATE_FRAME || self.series.contains(image) {
            self.raise_state(image, ItemState::Edited);
        }
    }

    /// Records a volume export of a series item (its label NIfTI, as `read_state` looks for).
    pub fn volume_exported(&mut self, volume: &Path) {
        if self.series.contains(volume) {
            self.raise_state(volume, ItemState::Exported);
        }
    }

    /// Records a mask exported to `mask`, as [`Worklist::read_state`] would find it.
    pub fn exported(&mut self, image: &Path, mask: &Path, export_dir: Option<&Path>) {
        if mask == state_export_path(image, export_dir) {
            self.raise_state(image, ItemState::Exported);
        }
    }

    /// A state the app caused; never downgrades.
    fn raise_state(&mut self, path: &Path, state: ItemState) {
        if let Some(known) = self.states.get_mut(path) {
            *known = (*known).max(state);
        }
    }

    /// States read again (from [`read_states`], after the export folder changed).
    pub fn set_states(&mut self, states: HashMap<PathBuf, ItemState>) {
        self.states = states;
    }

    pub fn select(&mut self, path: &Path) {
        self.current = self.items.iter().position(|p| p == path);
    }

    /// The next (`+1`) or previous (`-1`) image, if there is one.
    pub fn step(&self, by: isize) -> Option<&PathBuf> {
        let next = match self.current {
            Some(i) => i as isize + by,
            None if by > 0 => 0,
            None => return None,
        };
        usize::try_from(next).ok().and_then(|i| self.items.get(i))
    }

    /// Most useful first: images not yet annotated by descending uncertainty, then unscored
    /// ones, then the annotated ones (each group otherwise in name order).
    pub fn order_by_uncertainty(&mut self) {
        let current = self.current.and_then(|i| self.items.get(i)).cloned();
        let mut keyed: Vec<(u8, f32, PathBuf)> = std::mem::take(&mut self.items)
            .into_iter()
            .map(|path| {
                let score = self.uncertainty.get(&path).copied();
                let annotated = self.state_of(&path) != ItemState::Untouched;
                let group = if annotated { 2 } else if score.is_some() { 0 } else { 1 };
                (group, score.unwrap_or(0.0), path)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then_with(|| a.2.cmp(&b.2)));
        self.items = keyed.into_iter().map(|k| k.2).collect();
        if let Some(current) = current {
            self.select(&current);
        }
    }

    /// An image's state on the disk, its export looked for in `export_dir` (or next to it).
    pub fn read_state(path: &Path, export_dir: Option<&Path>, autosave_dir: &Path) -> ItemState {
        // A series (a folder, or a name for slices among other files): its label NIfTI, and
        // work on any slice.
        if path.is_dir() || !path.exists() {
            let key = format!("{}-f", autosave::key_for(path));
            let edited = || {
                std::fs::read_dir(autosave_dir).is_ok_and(|entries| entries.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with(&key)))
            };
            return if super::volume_export::volume_export_path(path, export_dir).is_file() {
                ItemState::Exported
            } else if edited() {
                ItemState::Edited
            } else {
                ItemState::Untouched
            };
        }
        if state_export_path(path, export_dir).is_file() {
            ItemState::Exported
        } else if autosave::path_for(autosave_dir, path, STATE_FRAME).is_file() {
            ItemState::Edited
        } else {
            ItemState::Untouched
        }
    }
}

/// The frame whose work decides an image's state (a multi-frame file counts by its first).
const STATE_FRAME: u32 = 0;

/// The export an image's state looks for: the single-frame name.
fn state_export_path(image: &Path, export_dir: Option<&Path>) -> PathBuf {
    export_path(image, export_dir, STATE_FRAME, 1)
}

/// The states of `items` on the disk (see [`Worklist::read_state`]). Not on the UI thread.
pub fn read_states(items: &[PathBuf], export_dir: Option<&Path>, autosave_dir: &Path) -> HashMap<PathBuf, ItemState> {
    items.iter().map(|p| (p.clone(), Worklist::read_state(p, export_dir, autosave_dir))).collect()
}

/// Where a mask for `image` is exported: `<stem>_mask.png` in `dir`, or next to the image.
pub fn export_path(image: &Path, dir: Option<&Path>, frame: u32, frames: u32) -> PathBuf {
    let stem = image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let name = if frames > 1 { format!("{stem}_f{frame}_mask.png") } else { format!("{stem}_mask.png") };
    match dir {
        Some(dir) => dir.join(name),
        None => image.with_file_name(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_lists_its_images_in_order_and_steps_through_them() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.png", "a.dcm", "a_mask.png", "notes.txt", ".hidden.png", "IM0001"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let mut list = Worklist::scan(dir.path(), None, &dir.path().join("autosave")).unwrap();
        let names: Vec<String> = list.items.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["IM0001", "a.dcm", "b.png"]);
        assert_eq!(list.step(1), Some(&list.items[0]));
        list.select(&dir.path().join("a.dcm"));
        assert_eq!(list.step(1), Some(&dir.path().join("b.png")));
        assert_eq!(list.step(-1), Some(&dir.path().join("IM0001")));
        list.select(&dir.path().join("b.png"));
        assert_eq!(list.step(1), None);
        assert_eq!(export_path(Path::new("/d/x.dcm"), None, 0, 1), PathBuf::from("/d/x_mask.png"));

        // Ranked: unannotated by uncertainty, unscored next, annotated last.
        let path = |name: &str| dir.path().join(name);
        list.uncertainty.insert(path("a.dcm"), 0.1);
        list.uncertainty.insert(path("b.png"), 0.3);
        list.uncertainty.insert(path("IM0001"), 0.9);
        list.set_states(HashMap::from([
            (path("IM0001"), ItemState::Exported),
            (path("a.dcm"), ItemState::Untouched),
            (path("b.png"), ItemState::Untouched),
        ]));
        list.order_by_uncertainty();
        assert_eq!(list.items, [path("b.png"), path("a.dcm"), path("IM0001")]);
        assert_eq!(list.current, Some(0), "the shown image stays selected");
        assert_eq!(export_path(Path::new("/d/x.dcm"), Some(Path::new("/o")), 3, 10), PathBuf::from("/o/x_f3_mask.png"));

        // The app's own autosaves and exports count as the disk would: first frame, single-frame name.
        list.autosaved(&path("a.dcm"), 3);
        assert_eq!(list.state_of(&path("a.dcm")), ItemState::Untouched);
        list.autosaved(&path("a.dcm"), 0);
        assert_eq!(list.state_of(&path("a.dcm")), ItemState::Edited);
        list.exported(&path("b.png"), &path("b_f0_mask.png"), None);
        assert_eq!(list.state_of(&path("b.png")), ItemState::Untouched);
        list.exported(&path("b.png"), &path("b_mask.png"), None);
        assert_eq!(list.state_of(&path("b.png")), ItemState::Exported);
        list.autosaved(&path("b.png"), 0);
        assert_eq!(list.state_of(&path("b.png")), ItemState::Exported, "never downgraded");
    }
}
