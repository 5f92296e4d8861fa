//! Writing files atomically: the bytes go to a hidden temporary file in the target folder, reach
//! the disk, and only then take the target's name (a rename), so a crash or a kill at any point
//! leaves either the previous file or the new one, never a part of one. PNGs are never written
//! over their source image.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use image::ExtendedColorType;
use image::ImageEncoder;
use image::codecs::png::PngEncoder;

use super::{ImageError, Mask};

/// Temporary files are named `.delightsam-<random>.tmp`: hidden, and recognisable as ours.
const TEMP_PREFIX: &str = ".delightsam-";
const TEMP_SUFFIX: &str = ".tmp";
/// A temporary file this old was left by a writer that was killed (a live one takes seconds).
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Writes `mask` as an 8-bit grey PNG with 0 for background and 255 for foreground.
pub fn write_mask_png(mask: &Mask, out: &Path, source: &Path) -> Result<(), ImageError> {
    write_png(out, source, mask.width(), mask.height(), ExtendedColorType::L8, &mask.to_binary_u8())
}

/// Writes 8-bit display pixels (1 channel grey or 3 channels RGB) as a PNG.
pub fn write_display_png(
    out: &Path,
    source: &Path,
    width: u32,
    height: u32,
    channels: u8,
    pixels: &[u8],
) -> Result<(), ImageError> {
    let color = if channels == 3 { ExtendedColorType::Rgb8 } else { ExtendedColorType::L8 };
    write_png(out, source, width, height, color, pixels)
}

fn write_png(
    out: &Path,
    source: &Path,
    width: u32,
    height: u32,
    color: ExtendedColorType,
    pixels: &[u8],
) -> Result<(), ImageError> {
    if is_same_file(out, source) {
        return Err(ImageError::WouldOverwriteSource { path: out.to_path_buf() });
    }
    // Encoded in memory first, so that a failed write is reported as the I/O error it is.
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(pixels, width, height, color)
        .map_err(|e| ImageError::Decode { path: out.to_path_buf(), reason: format!("PNG encoding failed: {e}") })?;
    write_atomic(out, &png).map_err(|source| ImageError::Io { path: out.to_path_buf(), source })
}

/// Writes `bytes` to `path` atomically, readable 0644: a hidden temporary file beside it,
/// flushed to the disk, then renamed over `path`. On failure `path` is as it was and the
/// temporary file is removed (a killed process leaves it hidden; see [`remove_stale_temp_files`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    remove_stale_temp_files(dir);
    let mut tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX).tempfile_in(dir)?;
    tmp.as_file_mut().write_all(bytes)?;
    // Without this a crash soon after the rename can leave the new name on an empty file.
    tmp.as_file().sync_all()?;
    make_readable(tmp.as_file())?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_folder(dir);
    Ok(())
}

/// [`write_atomic`], creating the file's folder first if it does not exist.
pub fn write_atomic_creating_folder(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_atomic(path, bytes)
}

/// Makes the rename itself durable (the folder's entry on the disk). Best effort: the file is
/// already complete under its name, and some file systems refuse to sync a folder.
fn sync_folder(dir: &Path) {
    #[cfg(unix)]
    {
        if let Ok(folder) = std::fs::File::open(dir) {
            let _ = folder.sync_all();
        }
    }
    let _ = dir;
}

/// Removes the temporary files that killed writers left in `dir` (ours, older than an hour),
/// the first time this process writes there: one folder listing per folder, not per write.
fn remove_stale_temp_files(dir: &Path) {
    static SWEPT: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
    let first_time = SWEPT.lock().map(|mut swept| swept.insert(dir.to_path_buf())).unwrap_or(false);
    if !first_time {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)) {
            continue;
        }
        let age = entry.metadata().and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        if age.is_some_and(|age| age > STALE_TEMP_AGE) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Temporary files are created private (0600); what we publish gets the usual 0644.
pub fn make_readable(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    let _ = file;
    Ok(())
}

/// True when both paths name one existing file (through links, `..`, or a hard link).
pub fn is_same_file(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if ma.dev() == mb.dev() && ma.ino() == mb.ino() {
            return true;
        }
    }
    let _ = (ma, mb);
    matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_overwrite_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("scan.png");
        std::fs::write(&source, b"original").unwrap();
        let mask = Mask::new(2, 2);
        let err = write_mask_png(&mask, &dir.path().join("./scan.png"), &source).unwrap_err();
        assert!(matches!(err, ImageError::WouldOverwriteSource { .. }));
        assert_eq!(std::fs::read(&source).unwrap(), b"original");
    }

    #[test]
    fn leaves_no_temporary_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut mask = Mask::new(3, 2);
        mask.set(1, 1, 1);
        let out = dir.path().join("m.png");
        write_mask_png(&mask, &out, &dir.path().join("img.png")).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("m.png")]);
        assert_eq!(Mask::load(&out).unwrap(), mask);
    }

    #[test]
    fn temporary_files_of_killed_writers_are_removed_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join(format!("{TEMP_PREFIX}killed{TEMP_SUFFIX}"));
        let live = dir.path().join(format!("{TEMP_PREFIX}writing{TEMP_SUFFIX}"));
        let other = dir.path().join(".hidden-but-not-ours.tmp");
        for path in [&stale, &live, &other] {
            std::fs::write(path, b"partial").unwrap();
        }
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
        for path in [&stale, &other] {
            std::fs::File::options().write(true).open(path).unwrap().set_modified(two_hours_ago).unwrap();
        }
        write_atomic(&dir.path().join("log.json"), b"{}").unwrap();
        assert!(!stale.exists(), "a stale temporary file of ours is removed");
        assert!(live.exists() && other.exists(), "a fresh one (a live writer's) and other files are kept");
        assert_eq!(std::fs::read(dir.path().join("log.json")).unwrap(), b"{}");
    }
}
