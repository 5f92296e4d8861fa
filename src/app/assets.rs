//! Files shipped inside the binary (assets/, licences in assets/SOURCES.md): the window icon and
//! the sample images of the welcome screen, so an installed app has them without a source tree.

use std::path::{Path, PathBuf};

pub const ICON_PNG: &[u8] = include_bytes!("../../assets/icons/delightsam-256.png");

/// A small image to try the app on, opened with the right modality.
pub struct Sample {
    pub title: &'static str,
    pub about: &'static str,
    pub file_name: &'static str,
    /// A built-in modality name (model::modality::BUILT_IN).
    pub modality: &'static str,
    pub bytes: &'static [u8],
}

pub const SAMPLES: [Sample; 3] = [
    Sample {
        title: "CT slice",
        about: "128×128 DICOM CT in Hounsfield units (pydicom test data, MIT)",
        file_name: "ct-slice.dcm",
        modality: "ct",
        bytes: include_bytes!("../../assets/samples/ct-slice.dcm"),
    },
    Sample {
        title: "MR brain slice",
        about: "axial T1 MR of the brain, Colin27 (BSD-3)",
        file_name: "mr-brain-slice.png",
        modality: "mr",
        bytes: include_bytes!("../../assets/samples/mr-brain-slice.png"),
    },
    Sample {
        title: "Fluorescence nuclei",
        about: "256×256 nuclei, scikit-image cells3d (BSD-3)",
        file_name: "fluorescence-nuclei.png",
        modality: "microscopy",
        bytes: include_bytes!("../../assets/samples/fluorescence-nuclei.png"),
    },
];

impl Sample {
    /// The sample as a file in `dir` (written once, atomically; an existing identical copy is
    /// reused), so that it opens, exports and autosaves like any other image.
    pub fn materialise(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(self.file_name);
        let same = std::fs::read(&path).is_ok_and(|existing| existing == self.bytes);
        if !same {
            crate::imaging::write_atomic_creating_folder(&path, self.bytes)?;
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imaging::ImageSource;
    use crate::model::modality;

    #[test]
    fn every_sample_opens_with_a_built_in_modality() {
        let dir = tempfile::tempdir().unwrap();
        for sample in &SAMPLES {
            assert!(modality::BUILT_IN.contains(&sample.modality), "{}", sample.modality);
            let path = sample.materialise(dir.path()).unwrap();
            assert_eq!(sample.materialise(dir.path()).unwrap(), path, "written once, then reused");
            let source = ImageSource::open(&path).unwrap();
            source.frame(0).unwrap();
        }
        eframe::icon_data::from_png_bytes(ICON_PNG).unwrap();
    }
}
