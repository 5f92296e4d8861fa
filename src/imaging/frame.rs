use serde::Serialize;

use super::Window;

/// One frame of real values, row-major, channels interleaved (1 = grey, 3 = RGB).
///
/// Grey DICOM values are in modality units (HU for CT) after the rescale; raster values are the
/// stored integers (0..=255 or 0..=65535), so 16-bit stays 16-bit.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub channels: u8,
    pub data: Vec<f32>,
    /// The range a viewer shows when the file names no window (e.g. 0..=255 for 8-bit RGB).
    pub display_range: (f32, f32),
}

/// Statistics over all samples of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FrameStats {
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

impl Frame {
    /// A frame whose display range is its own min..max.
    pub fn from_values(width: u32, height: u32, channels: u8, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), width as usize * height as usize * channels as usize);
        let mut frame = Self { width, height, channels, data, display_range: (0.0, 1.0) };
        let stats = frame.stats();
        frame.display_range = (stats.min as f32, stats.max as f32);
        frame
    }

    pub fn pixel_count(&self) -> usize {
        self.width as usize * self.height as usize
    }

    pub fn stats(&self) -> FrameStats {
        if self.data.is_empty() {
            return FrameStats { min: 0.0, max: 0.0, mean: 0.0 };
        }
        let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &v in &self.data {
            let v = f64::from(v);
            min = min.min(v);
            max = max.max(v);
            sum += v;
        }
        FrameStats { min, max, mean: sum / self.data.len() as f64 }
    }

    pub fn full_range_window(&self) -> Window {
        Window::from_range(f64::from(self.display_range.0), f64::from(self.display_range.1))
    }

    /// The samples of pixel (x, y), or `None` outside the frame.
    pub fn value_at(&self, x: u32, y: u32) -> Option<&[f32]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let c = self.channels as usize;
        let i = (y as usize * self.width as usize + x as usize) * c;
        self.data.get(i..i + c)
    }

    /// Windowed 8-bit RGBA for display; `invert` for MONOCHROME1.
    pub fn to_rgba8(&self, window: Window, invert: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.pixel_count() * 4);
        let map = |v: f32| {
            let g = window.to_u8(v);
            if invert { 255 - g } else { g }
        };
        match self.channels {
            3 => {
                for px in self.data.chunks_exact(3) {
                    out.extend_from_slice(&[map(px[0]), map(px[1]), map(px[2]), 255]);
                }
            }
            _ => {
                for &v in &self.data {
                    let g = map(v);
                    out.extend_from_slice(&[g, g, g, 255]);
                }
            }
        }
        out
    }

    /// Windowed 8-bit grey (channel mean for RGB), e.g. for export or a model's input.
    pub fn to_luma8(&self, window: Window, invert: bool) -> Vec<u8> {
        let c = self.channels as usize;
        self.data
            .chunks_exact(c)
            .map(|px| {
                let v = px.iter().sum::<f32>() / c as f32;
                let g = window.to_u8(v);
                if invert { 255 - g } else { g }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_value_lookup() {
        let f = Frame::from_values(2, 2, 1, vec![-1000.0, 0.0, 40.0, 1000.0]);
        let s = f.stats();
        assert_eq!((s.min, s.max, s.mean), (-1000.0, 1000.0, 10.0));
        assert_eq!(f.value_at(0, 1), Some(&[40.0][..]));
        assert_eq!(f.value_at(2, 0), None);
        assert_eq!(f.display_range, (-1000.0, 1000.0));
    }

    #[test]
    fn monochrome1_inverts_only_the_display() {
        let f = Frame::from_values(2, 1, 1, vec![0.0, 100.0]);
        let w = Window::from_range(0.0, 100.0);
        assert_eq!(f.to_rgba8(w, false)[0], 0);
        assert_eq!(f.to_rgba8(w, true)[0], 255);
        assert_eq!(f.data, vec![0.0, 100.0]);
    }
}
