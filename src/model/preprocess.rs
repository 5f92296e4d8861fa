//! Image ⇄ model input, as LiteMedSAM prepares it: min–max to [0, 1] over the whole image,
//! longest side resized to 256 (bilinear, half-pixel centres, no antialiasing — PyTorch's
//! `interpolate(mode="bilinear", align_corners=False)`), zero padding bottom/right, grey repeated
//! to 3 channels. Logits go back the same way: crop the padding, resize to the image, threshold 0.

use burn::prelude::*;

use super::readback::{self, ReadbackError};
use crate::imaging::{Frame, Mask};

/// Where the image sits inside the square model input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Original image size (width, height).
    pub original: (u32, u32),
    /// Size of the resized image inside the input square (width, height).
    pub resized: (u32, u32),
    /// Side of the square model input.
    pub input_size: u32,
    /// Input pixels per original pixel.
    pub scale: f64,
}

impl Geometry {
    pub fn new(width: u32, height: u32, input_size: u32) -> Self {
        let scale = f64::from(input_size) / f64::from(width.max(height));
        let side = |v: u32| ((f64::from(v) * scale + 0.5) as u32).clamp(1, input_size);
        Self { original: (width, height), resized: (side(width), side(height)), input_size, scale }
    }

    /// Original pixel coordinates → model-input coordinates.
    pub fn to_input(&self, x: f64, y: f64) -> (f32, f32) {
        ((x * self.scale) as f32, (y * self.scale) as f32)
    }
}

/// A model input: 3 planes of `input_size`² values, channel-major, and its geometry.
#[derive(Debug, Clone)]
pub struct ModelInput {
    pub data: Vec<f32>,
    pub geometry: Geometry,
}

impl ModelInput {
    /// The input as a (1, 3, side, side) tensor on `device`, and where the image sits in it.
    pub fn into_tensor<B: Backend>(self, device: &B::Device) -> (Tensor<B, 4>, Geometry) {
        let side = self.geometry.input_size as usize;
        (Tensor::from_data(TensorData::new(self.data, [1, 3, side, side]), device), self.geometry)
    }
}

/// Prepares a frame (grey or RGB, any value range) for the encoder.
pub fn prepare(frame: &Frame, input_size: u32) -> ModelInput {
    let stats = frame.stats();
    prepare_in_range(frame, input_size, (stats.min, stats.max))
}

/// [`prepare`] with the min–max normalisation taken from `range` (a whole image's, when `frame`
/// is one of its tiles: a tile of background must not be stretched to full contrast; or a
/// modality's fixed input range, such as CT's in Hounsfield units). Values outside are clipped.
pub fn prepare_in_range(frame: &Frame, input_size: u32, (min, max): (f64, f64)) -> ModelInput {
    let geometry = Geometry::new(frame.width, frame.height, input_size);
    let range = (max - min).max(1e-8);
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (rw, rh) = (geometry.resized.0 as usize, geometry.resized.1 as usize);
    let side = input_size as usize;
    let channels = frame.channels as usize;
    let mut data = vec![0.0f32; 3 * side * side];
    let mut plane = vec![0.0f32; w * h];
    for c in 0..3 {
        let source_channel = if channels == 3 { c } else { 0 };
        if c > 0 && channels == 1 {
            let (first, rest) = data.split_at_mut(side * side);
            rest[(c - 1) * side * side..c * side * side].copy_from_slice(first);
            continue;
        }
        for (i, v) in plane.iter_mut().enumerate() {
            *v = ((f64::from(frame.data[i * channels + source_channel]) - min) / range).clamp(0.0, 1.0) as f32;
        }
        let resized = resize_bilinear(&plane, w, h, rw, rh);
        let out = &mut data[c * side * side..(c + 1) * side * side];
        for y in 0..rh {
            out[y * side..y * side + rw].copy_from_slice(&resized[y * rw..(y + 1) * rw]);
        }
    }
    ModelInput { data, geometry }
}

/// A 0/1 mask at the original size → the model input's frame (`input_size`², row-major, 0/1):
/// nearest neighbour at half-pixel centres, padding 0 — where the image lands in [`prepare`].
pub fn mask_to_input(mask: &Mask, geometry: &Geometry) -> Vec<f32> {
    let side = geometry.input_size as usize;
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let (rw, rh) = (geometry.resized.0 as usize, geometry.resized.1 as usize);
    let mut out = vec![0.0f32; side * side];
    for y in 0..rh {
        let sy = (((y as f64 + 0.5) * h as f64 / rh as f64) as usize).min(h - 1);
        for x in 0..rw {
            let sx = (((x as f64 + 0.5) * w as f64 / rw as f64) as usize).min(w - 1);
            out[y * side + x] = f32::from(u8::from(mask.labels()[sy * w + sx] != 0));
        }
    }
    out
}

/// Low-resolution logits (`input_size`², row-major) → logits at the original size.
pub fn logits_to_image(logits: &[f32], geometry: &Geometry) -> Vec<f32> {
    let side = geometry.input_size as usize;
    let (rw, rh) = (geometry.resized.0 as usize, geometry.resized.1 as usize);
    let mut cropped = Vec::with_capacity(rw * rh);
    for y in 0..rh {
        cropped.extend_from_slice(&logits[y * side..y * side + rw]);
    }
    let (w, h) = (geometry.original.0 as usize, geometry.original.1 as usize);
    resize_bilinear(&cropped, rw, rh, w, h)
}

/// A decoder's mask logits (1, 1, S, S) → logits at the original size: read back, resized to the
/// model input when the decoder's grid is coarser (a 256² output over a 1024² input), then
/// cropped and resized by [`logits_to_image`].
pub fn logits_at_image_size<B: Backend>(logits: Tensor<B, 4>, geometry: &Geometry) -> Result<Vec<f32>, ReadbackError> {
    let side = logits.dims()[2];
    let input = geometry.input_size as usize;
    let mut low = readback::read_f32(logits, "mask logits")?;
    if side != input {
        low = resize_bilinear(&low, side, side, input, input);
    }
    Ok(logits_to_image(&low, geometry))
}

/// Logits at the original size (from [`logits_to_image`]) → a mask, label 1 where positive.
pub fn mask_from_logits(logits: &[f32], geometry: &Geometry) -> Mask {
    let labels = logits.iter().map(|&v| u8::from(v > 0.0)).collect();
    let (w, h) = geometry.original;
    Mask::from_labels(w, h, labels).expect("logits_to_image returns width × height values")
}

/// Bilinear resize with half-pixel centres and edge clamping, no antialiasing (PyTorch's
/// `align_corners=False`).
pub fn resize_bilinear(src: &[f32], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    let axis = |out: usize, len: usize| -> Vec<(usize, usize, f32)> {
        let scale = len as f64 / out as f64;
        (0..out)
            .map(|i| {
                let s = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s as usize).min(len - 1);
                let i1 = if i0 < len - 1 { i0 + 1 } else { i0 };
                (i0, i1, (s - i0 as f64) as f32)
            })
            .collect()
    };
    let xs = axis(out_w, w);
    let ys = axis(out_h, h);
    let mut out = Vec::with_capacity(out_w * out_h);
    for &(y0, y1, ly) in &ys {
        let (r0, r1) = (&src[y0 * w..(y0 + 1) * w], &src[y1 * w..(y1 + 1) * w]);
        for &(x0, x1, lx) in &xs {
            let top = r0[x0] * (1.0 - lx) + r0[x1] * lx;
            let bottom = r1[x0] * (1.0 - lx) + r1[x1] * lx;
            out.push(top * (1.0 - ly) + bottom * ly);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_keeps_the_aspect_ratio() {
        let g = Geometry::new(181, 217, 256);
        assert_eq!(g.resized, (214, 256));
        assert_eq!(Geometry::new(256, 256, 256).resized, (256, 256));
    }

    #[test]
    fn bilinear_matches_pytorch_on_a_small_case() {
        // torch.nn.functional.interpolate(torch.tensor([[[[0., 1.], [2., 3.]]]]), size=(4, 4),
        // mode="bilinear", align_corners=False)[0, 0, 0] == [0, 0.25, 0.75, 1].
        let out = resize_bilinear(&[0.0, 1.0, 2.0, 3.0], 2, 2, 4, 4);
        assert_eq!(&out[0..4], &[0.0, 0.25, 0.75, 1.0]);
        assert_eq!(&out[12..16], &[2.0, 2.25, 2.75, 3.0]);
    }

    #[test]
    fn prepare_pads_bottom_right_with_zeros() {
        let frame = Frame::from_values(4, 2, 1, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        let input = prepare(&frame, 8);
        assert_eq!(input.geometry.resized, (8, 4));
        // Rows 4..8 are padding in every channel; channel 1 repeats channel 0.
        assert!(input.data[4 * 8..8 * 8].iter().all(|&v| v == 0.0));
        assert_eq!(input.data[0..8], input.data[64..72]);
        assert_eq!(input.data[0], 0.0);
        assert!((input.data[3 * 8 + 7] - 1.0).abs() < 1e-6);
    }
}
