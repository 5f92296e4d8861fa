use std::path::Path;

use super::{ImageError, ImageSource};

/// A label map the size of its image: 0 is background, any other value a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    width: u32,
    height: u32,
    labels: Vec<u8>,
}

impl Mask {
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height, labels: vec![0; width as usize * height as usize] }
    }

    /// `labels` is row-major, `width × height` long.
    pub fn from_labels(width: u32, height: u32, labels: Vec<u8>) -> Option<Self> {
        (labels.len() == width as usize * height as usize).then_some(Self { width, height, labels })
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    pub fn labels_mut(&mut self) -> &mut [u8] {
        &mut self.labels
    }

    pub fn get(&self, x: u32, y: u32) -> Option<u8> {
        (x < self.width && y < self.height).then(|| self.labels[(y * self.width + x) as usize])
    }

    pub fn set(&mut self, x: u32, y: u32, label: u8) {
        if x < self.width && y < self.height {
            self.labels[(y * self.width + x) as usize] = label;
        }
    }

    pub fn foreground_count(&self) -> usize {
        self.labels.iter().filter(|&&l| l != 0).count()
    }

    /// 0 for background, 255 for any label: the exported PNG's pixels.
    pub fn to_binary_u8(&self) -> Vec<u8> {
        self.labels.iter().map(|&l| if l != 0 { 255 } else { 0 }).collect()
    }

    /// Reads a mask image: 0/255 and 0/1 files become labels 0/1; other grey values are kept as
    /// labels (a label map). Colour files are read as their luma.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ImageError> {
        let path = path.as_ref();
        let source = ImageSource::open(path)?;
        let frame = source.frame(0)?;
        let c = frame.channels as usize;
        let mut labels: Vec<u8> =
            frame.data.chunks_exact(c).map(|px| (px.iter().sum::<f32>() / c as f32).round().clamp(0.0, 255.0) as u8).collect();
        if labels.iter().all(|&v| v == 0 || v == 255) {
            labels.iter_mut().for_each(|v| *v = u8::from(*v != 0));
        }
        Ok(Self { width: frame.width, height: frame.height, labels })
    }

    /// Checks that this mask fits an image of `width × height`.
    pub fn check_size(&self, path: &Path, width: u32, height: u32) -> Result<(), ImageError> {
        if (self.width, self.height) != (width, height) {
            return Err(ImageError::MaskSizeMismatch {
                path: path.to_path_buf(),
                mask_width: self.width,
                mask_height: self.height,
                width,
                height,
            });
        }
        Ok(())
    }
}
