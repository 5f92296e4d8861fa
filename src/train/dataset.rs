//! Dataset folders: `images/` and `masks/` with the same stems, and a modality (from the caller,
//! a `dataset.toml` with `modality = "…"`, or the `modality:` line of a SOURCE.md). Every problem
//! is found before training starts and reported together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::imaging::{Frame, ImageError, ImageSource, Mask};
use crate::model::modality;

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{}: {} problem(s), nothing was trained:\n  {}", root.display(), problems.len(), one_per_line(problems))]
    Problems { root: PathBuf, problems: Vec<Problem> },
}

/// One thing wrong with a dataset folder or list. Each message is complete on its own (it
/// quotes its cause), as the problems are listed one per line.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("not a folder")]
    NotAFolder,
    #[error("modality {0:?} is not one name; give one with --modality or dataset.toml")]
    FolderModalityNotOneName(String),
    #[error("modality {0:?} is not one name")]
    ListModalityNotOneName(String),
    #[error("no modality: add dataset.toml with modality = \"…\", or pass --modality")]
    NoModality,
    #[error("dataset.toml: {0}")]
    ReadToml(#[source] std::io::Error),
    #[error("dataset.toml: {}", .0.message())]
    ParseToml(#[source] toml::de::Error),
    #[error("{dir}/ missing or unreadable ({}: {source})", path.display())]
    Unreadable {
        dir: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("images/{file}: no mask with the stem {stem:?} in masks/")]
    NoMask { file: String, stem: String },
    #[error("masks/{file}: no image with the stem {stem:?} in images/")]
    NoImage { file: String, stem: String },
    #[error("no images")]
    NoImages,
    #[error(transparent)]
    Pair(#[from] PairError),
}

/// Why an image–mask pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{}: has no frame {frame}", image.display())]
    NoFrame { image: PathBuf, frame: u32 },
}

fn one_per_line(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
}

/// One image (one frame of it) and its mask.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pair {
    pub stem: String,
    pub image: PathBuf,
    pub mask: PathBuf,
    /// The frame of a multi-frame image the mask belongs to.
    #[serde(default)]
    pub frame: u32,
}

/// Pairs that do not live in one dataset folder (the masks exported in the app), with their
/// modality.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairList {
    /// What the user calls it (shown in errors).
    pub name: String,
    pub modality: String,
    pub pairs: Vec<Pair>,
}

/// A checked dataset folder.
#[derive(Debug, Clone)]
pub struct DatasetFolder {
    pub root: PathBuf,
    /// Canonical modality name.
    pub modality: String,
    pub pairs: Vec<Pair>,
}

/// A loaded sample: the image's first frame and its binary mask (label ≠ 0 → 1).
pub struct Sample {
    pub pair: Pair,
    pub frame: Frame,
    pub mask: Mask,
}

#[derive(serde::Deserialize)]
struct DatasetToml {
    modality: Option<String>,
}

/// The folder's own modality: dataset.toml first, then SOURCE.md's `modality:` line.
fn folder_modality(root: &Path) -> Result<Option<String>, Problem> {
    let toml_path = root.join("dataset.toml");
    if toml_path.is_file() {
        let text = std::fs::read_to_string(&toml_path).map_err(Problem::ReadToml)?;
        let parsed: DatasetToml = toml::from_str(&text).map_err(Problem::ParseToml)?;
        if parsed.modality.is_some() {
            return Ok(parsed.modality);
        }
    }
    let source = root.join("SOURCE.md");
    if let Ok(text) = std::fs::read_to_string(source) {
        for line in text.lines() {
            if let Some(value) = line.trim().strip_prefix("modality:") {
                return Ok(Some(value.trim().to_string()));
            }
        }
    }
    Ok(None)
}

/// Files directly in `dir` by stem (hidden files skipped).
fn by_stem(dir: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let entries = std::fs::read_dir(dir)?;
    let mut files = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else { continue };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or(name);
        files.insert(stem, path);
    }
    Ok(files)
}

/// Checks a dataset folder: pairs, readable files, matching sizes, a usable modality. With
/// `decode`, every image and mask is decoded once (so unreadable pixels are found now, not
/// an hour into training).
pub fn scan(root: &Path, modality_override: Option<&str>, decode: bool) -> Result<DatasetFolder, DatasetError> {
    let fail = |problems: Vec<Problem>| DatasetError::Problems { root: root.to_path_buf(), problems };
    if !root.is_dir() {
        return Err(fail(vec![Problem::NotAFolder]));
    }
    let mut problems = Vec::new();
    let modality = match modality_override.map(|m| Ok(Some(m.to_string()))).unwrap_or_else(|| folder_modality(root)) {
        Ok(Some(name)) => {
            let canonical = modality::canonical(&name);
            if !modality::is_usable_name(&canonical) {
                problems.push(Problem::FolderModalityNotOneName(name));
            }
            canonical
        }
        Ok(None) => {
            problems.push(Problem::NoModality);
            String::new()
        }
        Err(e) => {
            problems.push(e);
            String::new()
        }
    };
    let mut files_in = |dir: &'static str| {
        let path = root.join(dir);
        by_stem(&path).unwrap_or_else(|source| {
            problems.push(Problem::Unreadable { dir, path, source });
            BTreeMap::new()
        })
    };
    let image_files = files_in("images");
    let mask_files = files_in("masks");
    let mut pairs = Vec::new();
    for (stem, image) in &image_files {
        match mask_files.get(stem) {
            Some(mask) => pairs.push(Pair { stem: stem.clone(), image: image.clone(), mask: mask.clone(), frame: 0 }),
            None => problems.push(Problem::NoMask { file: file_name(image), stem: stem.clone() }),
        }
    }
    for (stem, mask) in &mask_files {
        if !image_files.contains_key(stem) {
            problems.push(Problem::NoImage { file: file_name(mask), stem: stem.clone() });
        }
    }
    if image_files.is_empty() && mask_files.is_empty() && problems.is_empty() {
        problems.push(Problem::NoImages);
    }
    problems.extend(pairs.iter().filter_map(|pair| check_pair(pair, decode).err()).map(Problem::from));
    if !problems.is_empty() {
        return Err(fail(problems));
    }
    Ok(DatasetFolder { root: root.to_path_buf(), modality, pairs })
}

/// Checks a list of pairs like a folder: every problem at once.
pub fn check_list(list: &PairList, decode: bool) -> Result<DatasetFolder, DatasetError> {
    let root = PathBuf::from(&list.name);
    let mut problems = Vec::new();
    let modality = modality::canonical(&list.modality);
    if !modality::is_usable_name(&modality) {
        problems.push(Problem::ListModalityNotOneName(list.modality.clone()));
    }
    if list.pairs.is_empty() {
        problems.push(Problem::NoImages);
    }
    problems.extend(list.pairs.iter().filter_map(|pair| check_pair(pair, decode).err()).map(Problem::from));
    if !problems.is_empty() {
        return Err(DatasetError::Problems { root, problems });
    }
    Ok(DatasetFolder { root, modality, pairs: list.pairs.clone() })
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

fn check_pair(pair: &Pair, decode: bool) -> Result<(), PairError> {
    let source = ImageSource::open(&pair.image)?;
    let (w, h) = (source.meta().cols, source.meta().rows);
    if pair.frame >= source.meta().frames {
        return Err(PairError::NoFrame { image: pair.image.clone(), frame: pair.frame });
    }
    if decode {
        source.frame(pair.frame)?;
    }
    let mask = Mask::load(&pair.mask)?;
    Ok(mask.check_size(&pair.mask, w, h)?)
}

impl Pair {
    pub fn load(&self) -> Result<Sample, ImageError> {
        let frame = ImageSource::open(&self.image)?.frame(self.frame)?;
        let mut mask = Mask::load(&self.mask)?;
        mask.check_size(&self.mask, frame.width, frame.height)?;
        mask.labels_mut().iter_mut().for_each(|l| *l = u8::from(*l != 0));
        Ok(Sample { pair: self.clone(), frame, mask })
    }
}

/// A deterministic split: each stem's place depends only on (seed, stem), so adding files never
/// moves others between train and validation. Returns (train, validation).
pub fn split(pairs: &[Pair], validation_fraction: f64, seed: u64) -> (Vec<Pair>, Vec<Pair>) {
    let mut keyed: Vec<(blake3::Hash, &Pair)> = pairs
        .iter()
        .map(|p| {
            let mut hasher = blake3::Hasher::new();
            hasher.update(&seed.to_le_bytes());
            hasher.update(p.stem.as_bytes());
            (hasher.finalize(), p)
        })
        .collect();
    keyed.sort_by_key(|k| u64::from_le_bytes(k.0.as_bytes()[..8].try_into().unwrap_or_default()));
    // A stem is held out when its hash falls below the fraction; at least one is held out (the
    // lowest hash) and at least one trains, whenever there are two.
    let threshold = (validation_fraction.clamp(0.0, 1.0) * u64::MAX as f64) as u64;
    let below = |h: &blake3::Hash| u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default()) < threshold;
    let mut n_val = keyed.iter().take_while(|k| below(&k.0)).count();
    if pairs.len() >= 2 && validation_fraction > 0.0 {
        n_val = n_val.clamp(1, pairs.len() - 1);
    }
    let validation = keyed[..n_val].iter().map(|k| k.1.clone()).collect();
    let train = keyed[n_val..].iter().map(|k| k.1.clone()).collect();
    (train, validation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32, value: u8) {
        image::GrayImage::from_pixel(w, h, image::Luma([value])).save(path).unwrap();
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::create_dir_all(root.join("masks")).unwrap();
        write_png(&root.join("images/a.png"), 8, 8, 10);
        write_png(&root.join("masks/a.png"), 8, 8, 255);
        write_png(&root.join("images/lonely.png"), 8, 8, 10);
        write_png(&root.join("masks/orphan.png"), 8, 8, 0);
        write_png(&root.join("images/big.png"), 8, 8, 10);
        write_png(&root.join("masks/big.png"), 4, 4, 0);
        std::fs::write(root.join("images/junk.png"), b"not a png").unwrap();
        write_png(&root.join("masks/junk.png"), 8, 8, 0);
        let err = scan(root, None, true).unwrap_err().to_string();
        for expected in ["no modality", "lonely.png: no mask", "orphan.png: no image", "big.png", "junk.png", "5 problem(s)"] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }

    #[test]
    fn modality_from_toml_source_or_flag_and_empty_masks_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::create_dir_all(root.join("masks")).unwrap();
        write_png(&root.join("images/a.png"), 8, 8, 10);
        write_png(&root.join("masks/a.png"), 8, 8, 0);
        std::fs::write(root.join("SOURCE.md"), "modality: Fundus\n\nsome text").unwrap();
        assert_eq!(scan(root, None, true).unwrap().modality, "fundus");
        std::fs::write(root.join("dataset.toml"), "modality = \"X-Ray\"\n").unwrap();
        assert_eq!(scan(root, None, true).unwrap().modality, "x-ray");
        assert_eq!(scan(root, Some("ultrasound"), true).unwrap().modality, "ultrasound");
        std::fs::write(root.join("dataset.toml"), "modality = \"mixed (CT, MR)\"\n").unwrap();
        assert!(scan(root, None, true).is_err());
    }

    #[test]
    fn split_is_deterministic_and_stable() {
        let pairs: Vec<Pair> = (0..20)
            .map(|i| Pair { stem: format!("s{i}"), image: PathBuf::from(format!("i{i}")), mask: PathBuf::from(format!("m{i}")), frame: 0 })
            .collect();
        let (train, val) = split(&pairs, 0.3, 7);
        assert_eq!(train.len() + val.len(), 20);
        assert!((1..=12).contains(&val.len()), "{}", val.len());
        assert_eq!(split(&pairs, 0.3, 7).1, val);
        assert_ne!(split(&pairs, 0.3, 8).1, val);
        // Adding files never moves an existing validation image into training.
        let mut more = pairs.clone();
        more.extend((20..40).map(|i| Pair { stem: format!("s{i}"), image: PathBuf::new(), mask: PathBuf::new(), frame: 0 }));
        let (_, val_more) = split(&more, 0.3, 7);
        assert!(val.iter().all(|p| val_more.contains(p)));
    }
}
