//! Segmentation metrics on binary masks at the original image size: Dice, the Hausdorff
//! distance (HD, the paper's metric) and its 95th percentile (HD95), in pixels.

use image::{GrayImage, Luma};
use imageproc::distance_transform::euclidean_squared_distance_transform;

/// Metrics for one image. Distances are `NaN` when exactly one of the masks is empty (no
/// boundary to measure from); both empty counts as a perfect match.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Scores {
    pub dice: f64,
    pub hd: f64,
    pub hd95: f64,
}

/// `pred` and `truth` are row-major masks of `width × height`, nonzero = inside.
pub fn score(pred: &[u8], truth: &[u8], width: u32, height: u32) -> Scores {
    assert_eq!(pred.len(), truth.len(), "masks of different sizes");
    let (dice, hd, hd95) = (dice(pred, truth), hausdorff(pred, truth, width, height, 100.0), hausdorff(pred, truth, width, height, 95.0));
    Scores { dice, hd, hd95 }
}

/// 2|A∩B| / (|A| + |B|); 1 when both are empty.
pub fn dice(pred: &[u8], truth: &[u8]) -> f64 {
    let (mut both, mut a, mut b) = (0usize, 0usize, 0usize);
    for (&p, &t) in pred.iter().zip(truth) {
        let (p, t) = (p != 0, t != 0);
        both += usize::from(p && t);
        a += usize::from(p);
        b += usize::from(t);
    }
    if a + b == 0 { 1.0 } else { 2.0 * both as f64 / (a + b) as f64 }
}

/// Boundary pixels: inside pixels with at least one 4-neighbour outside (or on the image edge).
fn boundary(mask: &[u8], width: u32, height: u32) -> GrayImage {
    let (w, h) = (width as usize, height as usize);
    let inside = |x: isize, y: isize| x >= 0 && y >= 0 && (x as usize) < w && (y as usize) < h && mask[y as usize * w + x as usize] != 0;
    GrayImage::from_fn(width, height, |x, y| {
        let (x, y) = (x as isize, y as isize);
        let edge = inside(x, y) && !(inside(x - 1, y) && inside(x + 1, y) && inside(x, y - 1) && inside(x, y + 1));
        Luma([if edge { 255 } else { 0 }])
    })
}

/// Symmetric Hausdorff distance between the masks' boundaries at `percentile` (100 = HD):
/// the larger of the two directed percentiles, as MONAI computes HD95.
pub fn hausdorff(pred: &[u8], truth: &[u8], width: u32, height: u32, percentile: f64) -> f64 {
    let (pb, tb) = (boundary(pred, width, height), boundary(truth, width, height));
    let (p_empty, t_empty) = (pb.pixels().all(|p| p[0] == 0), tb.pixels().all(|p| p[0] == 0));
    match (p_empty, t_empty) {
        (true, true) => return 0.0,
        (true, false) | (false, true) => return f64::NAN,
        _ => {}
    }
    let directed = |from: &GrayImage, to: &GrayImage| {
        let distance = euclidean_squared_distance_transform(to);
        let mut d: Vec<f64> =
            from.enumerate_pixels().filter(|(_, _, p)| p[0] != 0).map(|(x, y, _)| distance.get_pixel(x, y)[0].sqrt()).collect();
        percentile_of(&mut d, percentile)
    };
    directed(&pb, &tb).max(directed(&tb, &pb))
}

/// Linear-interpolated percentile (NumPy's default).
fn percentile_of(values: &mut [f64], percentile: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let rank = (percentile / 100.0) * (values.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(w: u32, h: u32, x0: u32, y0: u32, side: u32) -> Vec<u8> {
        (0..h).flat_map(|y| (0..w).map(move |x| u8::from(x >= x0 && x < x0 + side && y >= y0 && y < y0 + side))).collect()
    }

    #[test]
    fn dice_by_hand() {
        // Two 4×4 squares overlapping in a 2×4 strip: 2·8 / (16 + 16) = 0.5.
        let a = square(10, 10, 0, 0, 4);
        let b = square(10, 10, 2, 0, 4);
        assert!((dice(&a, &b) - 0.5).abs() < 1e-12);
        assert_eq!(dice(&[0; 4], &[0; 4]), 1.0);
        assert_eq!(dice(&[1, 0], &[0, 1]), 0.0);
    }

    #[test]
    fn hausdorff_of_shifted_squares() {
        // The same square shifted 3 pixels right: every boundary is 3 px from the other's.
        let a = square(20, 20, 2, 2, 8);
        let b = square(20, 20, 5, 2, 8);
        let s = score(&a, &b, 20, 20);
        assert!((s.hd - 3.0).abs() < 1e-9, "{s:?}");
        assert!(s.hd95 <= s.hd + 1e-9);
        assert_eq!(score(&a, &a, 20, 20), Scores { dice: 1.0, hd: 0.0, hd95: 0.0 });
    }

    #[test]
    fn hausdorff_sees_a_far_outlier_and_hd95_ignores_it() {
        // A big square, and the same plus one stray pixel 10 px away diagonally (√200 ≈ 14.14
        // from the square's corner): HD jumps to it, HD95 of many boundary pixels does not.
        let a = square(40, 40, 0, 0, 20);
        let mut b = a.clone();
        b[29 * 40 + 29] = 1;
        let s = score(&b, &a, 40, 40);
        assert!((s.hd - 200f64.sqrt()).abs() < 1e-9, "{s:?}");
        assert_eq!(s.hd95, 0.0);
    }

    #[test]
    fn empty_masks() {
        let a = square(8, 8, 1, 1, 3);
        assert!(score(&a, &[0; 64], 8, 8).hd.is_nan());
        assert_eq!(score(&[0; 64], &[0; 64], 8, 8).hd, 0.0);
    }
}
