//! Tiled inference for thin structures (retinal vessels, cell membranes): at 256² a whole
//! 565×584 fundus squeezes a 2 px vessel below one embedding cell, so such modalities are
//! segmented in overlapping model-input-sized tiles at (a chosen scale of) the image's own
//! resolution, and the tiles' logits are blended. The same plan cuts training samples, so the
//! model learns at the resolution it is used at.

use serde::{Deserialize, Serialize};

use super::preprocess::resize_bilinear;
use crate::imaging::{Frame, Mask};

/// How one modality is tiled (part of the model config's modality registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tiling {
    /// The image is first resized so that its longest side is this many pixels (None: its own
    /// resolution). Lets a 2048² fundus and a 565² one show vessels at similar widths.
    #[serde(default)]
    pub long_side: Option<u32>,
    /// Pixels shared by neighbouring tiles; their logits are blended there.
    pub overlap: u32,
}

impl Default for Tiling {
    fn default() -> Self {
        Self { long_side: None, overlap: 64 }
    }
}

/// One tile: a rectangle of the scaled image (at most `tile`² pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// Where the tiles of one image lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TilePlan {
    /// The size the image is resized to before cutting (its own size without `long_side`).
    pub scaled: (u32, u32),
    pub tiles: Vec<Tile>,
}

impl Tiling {
    /// The tiles of a `width`×`height` image for a model whose input is `tile`² pixels.
    pub fn plan(&self, width: u32, height: u32, tile: u32) -> TilePlan {
        let scaled = match self.long_side {
            Some(long) if long > 0 => {
                let scale = f64::from(long) / f64::from(width.max(height));
                let side = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
                (side(width), side(height))
            }
            _ => (width.max(1), height.max(1)),
        };
        let overlap = self.effective_overlap(tile);
        let xs = positions(scaled.0, tile, overlap);
        let ys = positions(scaled.1, tile, overlap);
        let tiles = ys
            .iter()
            .flat_map(|&y| {
                xs.iter().map(move |&x| Tile { x, y, width: tile.min(scaled.0 - x), height: tile.min(scaled.1 - y) })
            })
            .collect();
        TilePlan { scaled, tiles }
    }
}

impl Tiling {
    /// The overlap actually used with `tile`-sized tiles (at most half a tile).
    pub fn effective_overlap(&self, tile: u32) -> u32 {
        self.overlap.min(tile / 2)
    }
}

/// Tile starts along one axis of `len` pixels: every `tile − overlap`, the last one flush with
/// the end (so no tile hangs over the image unless the image is smaller than a tile).
fn positions(len: u32, tile: u32, overlap: u32) -> Vec<u32> {
    if len <= tile {
        return vec![0];
    }
    let stride = (tile - overlap).max(1);
    let mut starts: Vec<u32> = (0..).map(|i| i * stride).take_while(|&p| p + tile < len).collect();
    starts.push(len - tile);
    starts
}

/// `frame` resized to `size` (bilinear, per channel); the same frame when the size matches.
pub fn scale_frame(frame: &Frame, size: (u32, u32)) -> Frame {
    if (frame.width, frame.height) == size {
        return frame.clone();
    }
    let channels = frame.channels as usize;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (sw, sh) = (size.0 as usize, size.1 as usize);
    let mut data = vec![0.0f32; sw * sh * channels];
    for c in 0..channels {
        let plane: Vec<f32> = frame.data.iter().skip(c).step_by(channels).copied().collect();
        for (i, v) in resize_bilinear(&plane, w, h, sw, sh).into_iter().enumerate() {
            data[i * channels + c] = v;
        }
    }
    Frame { width: size.0, height: size.1, channels: frame.channels, data, display_range: frame.display_range }
}

/// The pixels of `tile` in `frame`.
pub fn crop_frame(frame: &Frame, tile: &Tile) -> Frame {
    let channels = frame.channels as usize;
    let row = frame.width as usize * channels;
    let mut data = Vec::with_capacity(tile.width as usize * tile.height as usize * channels);
    for y in tile.y..tile.y + tile.height {
        let start = y as usize * row + tile.x as usize * channels;
        data.extend_from_slice(&frame.data[start..start + tile.width as usize * channels]);
    }
    Frame { width: tile.width, height: tile.height, channels: frame.channels, data, display_range: frame.display_range }
}

/// A 0/1 mask resized to `size`: bilinear over 0/1, then ≥ 0.5 (nearest neighbour would drop or
/// double thin vessels at random).
pub fn scale_mask(mask: &Mask, size: (u32, u32)) -> Mask {
    if (mask.width(), mask.height()) == size {
        return mask.clone();
    }
    let values: Vec<f32> = mask.labels().iter().map(|&l| f32::from(u8::from(l != 0))).collect();
    let resized = resize_bilinear(&values, mask.width() as usize, mask.height() as usize, size.0 as usize, size.1 as usize);
    let labels = resized.iter().map(|&v| u8::from(v >= 0.5)).collect();
    Mask::from_labels(size.0, size.1, labels).expect("resize_bilinear returns width × height values")
}

/// The labels of `tile` in `mask`.
pub fn crop_mask(mask: &Mask, tile: &Tile) -> Mask {
    let w = mask.width() as usize;
    let mut labels = Vec::with_capacity(tile.width as usize * tile.height as usize);
    for y in tile.y..tile.y + tile.height {
        let start = y as usize * w + tile.x as usize;
        labels.extend_from_slice(&mask.labels()[start..start + tile.width as usize]);
    }
    Mask::from_labels(tile.width, tile.height, labels).expect("a tile lies inside its mask")
}

/// Logits of overlapping tiles blended into one image: each tile's weight falls off linearly
/// towards its edges over the overlap, so a seam gets the tile that sees it best.
pub struct Blender {
    width: usize,
    height: usize,
    ramp: f32,
    sum: Vec<f32>,
    weight: Vec<f32>,
}

impl Blender {
    /// For an image of `size` cut by `tiling` into `tile`-sized tiles.
    pub fn new(size: (u32, u32), tiling: &Tiling, tile: u32) -> Self {
        let n = size.0 as usize * size.1 as usize;
        let ramp = (tiling.effective_overlap(tile) as f32 / 2.0).max(1.0);
        Self { width: size.0 as usize, height: size.1 as usize, ramp, sum: vec![0.0; n], weight: vec![0.0; n] }
    }

    /// Adds one tile's logits (`tile.width × tile.height`, row-major).
    pub fn add(&mut self, tile: &Tile, logits: &[f32]) {
        let (tw, th) = (tile.width as usize, tile.height as usize);
        debug_assert_eq!(logits.len(), tw * th);
        let edge = |i: usize, len: usize| ((i.min(len - 1 - i) + 1) as f32).min(self.ramp);
        for ty in 0..th {
            let y = tile.y as usize + ty;
            if y >= self.height {
                break;
            }
            let wy = edge(ty, th);
            for tx in 0..tw {
                let x = tile.x as usize + tx;
                if x >= self.width {
                    break;
                }
                let w = wy.min(edge(tx, tw));
                self.sum[y * self.width + x] += w * logits[ty * tw + tx];
                self.weight[y * self.width + x] += w;
            }
        }
    }

    /// The blended logits (row-major, the scaled image's size).
    pub fn finish(self) -> Vec<f32> {
        self.sum.iter().zip(&self.weight).map(|(s, w)| if *w > 0.0 { s / w } else { f32::NEG_INFINITY }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_and_stay_inside_it() {
        let tiling = Tiling { long_side: None, overlap: 64 };
        for (w, h) in [(565, 584), (512, 512), (256, 256), (100, 300), (257, 1000)] {
            let plan = tiling.plan(w, h, 256);
            assert_eq!(plan.scaled, (w, h));
            let mut covered = vec![false; (w * h) as usize];
            for t in &plan.tiles {
                assert!(t.x + t.width <= w && t.y + t.height <= h, "{t:?} outside {w}×{h}");
                assert!(t.width <= 256 && t.height <= 256);
                for y in t.y..t.y + t.height {
                    for x in t.x..t.x + t.width {
                        covered[(y * w + x) as usize] = true;
                    }
                }
            }
            assert!(covered.iter().all(|&c| c), "{w}×{h} not covered");
        }
        assert_eq!(tiling.plan(565, 584, 256).tiles.len(), 9);
        assert_eq!(positions(512, 256, 64), vec![0, 192, 256]);
        assert_eq!(positions(256, 256, 64), vec![0]);
    }

    #[test]
    fn long_side_scales_keeping_the_aspect_ratio() {
        let plan = Tiling { long_side: Some(640), overlap: 64 }.plan(2048, 1024, 256);
        assert_eq!(plan.scaled, (640, 320));
        assert_eq!(plan.tiles.len(), 3 * 2);
    }

    #[test]
    fn blending_equal_tiles_gives_their_value_and_seams_lean_on_the_nearer_tile() {
        let tiling = Tiling { long_side: None, overlap: 64 };
        let plan = tiling.plan(448, 256, 256);
        assert_eq!(plan.tiles.len(), 2);
        let mut blender = Blender::new(plan.scaled, &tiling, 256);
        for (i, t) in plan.tiles.iter().enumerate() {
            let v = if i == 0 { 1.0 } else { 3.0 };
            blender.add(t, &vec![v; (t.width * t.height) as usize]);
        }
        let out = blender.finish();
        assert_eq!(out[128 * 448 + 10], 1.0);
        assert_eq!(out[128 * 448 + 440], 3.0);
        // In the overlap (x 192..256) the value moves from the first tile's towards the second's.
        let (a, b) = (out[128 * 448 + 196], out[128 * 448 + 252]);
        assert!(a > 1.0 && a < 2.0 && b > 2.0 && b < 3.0, "{a} {b}");
    }

    #[test]
    fn crops_and_scales_keep_values_in_place() {
        let frame = Frame::from_values(4, 2, 1, vec![0., 1., 2., 3., 4., 5., 6., 7.]);
        let crop = crop_frame(&frame, &Tile { x: 1, y: 1, width: 2, height: 1 });
        assert_eq!(crop.data, vec![5., 6.]);
        let mask = Mask::from_labels(4, 2, vec![0, 1, 1, 0, 0, 1, 1, 0]).unwrap();
        assert_eq!(crop_mask(&mask, &Tile { x: 1, y: 0, width: 2, height: 2 }).labels(), &[1, 1, 1, 1]);
        let doubled = scale_mask(&mask, (8, 4));
        assert_eq!(doubled.foreground_count(), 16);
        assert_eq!(scale_frame(&frame, (4, 2)), frame);
    }
}
