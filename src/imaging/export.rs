//! Writing PNGs atomically (temporary file in the target folder, then rename), never over the
//! source image.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::ExtendedColorType;
use image::ImageEncoder;
use image::codecs::png::PngEncoder;

use super::{ImageError, Mask};

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
    let io = |source: std::io::Error| ImageError::Io { path: out.to_path_buf(), source };
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".delightsam-").suffix(".png.tmp").tempfile_in(&dir).map_err(io)?;
    {
        let mut writer = std::io::BufWriter::new(tmp.as_file_mut());
        PngEncoder::new(&mut writer)
            .write_image(pixels, width, height, color)
            .map_err(|e| ImageError::Decode { path: out.to_path_buf(), reason: format!("PNG encoding failed: {e}") })?;
        writer.flush().map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    make_readable(tmp.as_file()).map_err(io)?;
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` atomically (temporary file beside it, then rename), readable 0644.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    make_readable(tmp.as_file())?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// [`write_atomic`], creating the file's folder first if it does not exist.
pub fn write_atomic_creating_folder(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    write_atomic(path, bytes)
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
}
