//! Augmentation of a prepared model input (3 planes of S², values in [0, 1]) and its 0/1 mask:
//! horizontal and vertical flips (each p = 0.5), a small affine (rotation ±10°, scale 0.9–1.1,
//! shift ±4 % of the side; bilinear for the image, nearest for the mask, 0 outside), and intensity
//! jitter (contrast ×0.9–1.1 and brightness ±0.05, clamped to [0, 1]). Used where images pass the
//! encoder each step (the full recipe); the fast recipe trains on fixed cached embeddings.

/// A small deterministic generator (SplitMix64): runs repeat exactly for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// Augments `image` (3·S²) and `mask` (S²) in place.
pub fn augment(image: &mut [f32], mask: &mut [f32], side: usize, rng: &mut Rng) {
    let (flip_x, flip_y) = (rng.coin(), rng.coin());
    let angle = rng.uniform(-10.0, 10.0).to_radians();
    let scale = rng.uniform(0.9, 1.1);
    let (tx, ty) = (rng.uniform(-0.04, 0.04) * side as f64, rng.uniform(-0.04, 0.04) * side as f64);
    let (contrast, brightness) = (rng.uniform(0.9, 1.1), rng.uniform(-0.05, 0.05));

    // Output pixel → source pixel: inverse rotation/scale about the centre, minus the shift.
    let c = side as f64 / 2.0;
    let (cos, sin) = (angle.cos() / scale, angle.sin() / scale);
    let source = |x: usize, y: usize| {
        let (mut dx, mut dy) = (x as f64 + 0.5 - c - tx, y as f64 + 0.5 - c - ty);
        if flip_x {
            dx = -dx;
        }
        if flip_y {
            dy = -dy;
        }
        (cos * dx + sin * dy + c - 0.5, -sin * dx + cos * dy + c - 0.5)
    };
    let plane = side * side;
    let original = image.to_vec();
    for y in 0..side {
        for x in 0..side {
            let (sx, sy) = source(x, y);
            for ch in 0..3 {
                let v = bilinear(&original[ch * plane..(ch + 1) * plane], side, sx, sy);
                image[ch * plane + y * side + x] = ((f64::from(v) - 0.5) * contrast + 0.5 + brightness).clamp(0.0, 1.0) as f32;
            }
        }
    }
    let original = mask.to_vec();
    for y in 0..side {
        for x in 0..side {
            let (sx, sy) = source(x, y);
            let (nx, ny) = (sx.round(), sy.round());
            let inside = nx >= 0.0 && ny >= 0.0 && (nx as usize) < side && (ny as usize) < side;
            mask[y * side + x] = if inside { original[ny as usize * side + nx as usize] } else { 0.0 };
        }
    }
}

fn bilinear(plane: &[f32], side: usize, x: f64, y: f64) -> f32 {
    let at = |xi: i64, yi: i64| {
        if xi < 0 || yi < 0 || xi >= side as i64 || yi >= side as i64 { 0.0 } else { plane[yi as usize * side + xi as usize] }
    };
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
    let (x0, y0) = (x0 as i64, y0 as i64);
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
    let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_stays_binary_and_moves_with_the_image() {
        let side = 32;
        // Image = mask in every channel: after augmentation the mask must still sit on the
        // bright pixels (the same geometry is applied to both).
        let mut mask = vec![0.0f32; side * side];
        for y in 4..14 {
            for x in 6..20 {
                mask[y * side + x] = 1.0;
            }
        }
        let mut image: Vec<f32> = mask.iter().chain(&mask).chain(&mask).copied().collect();
        let mut rng = Rng::new(3);
        augment(&mut image, &mut mask, side, &mut rng);
        assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0));
        let inside: f32 = mask.iter().zip(&image).filter(|(m, _)| **m == 1.0).map(|(_, i)| *i).sum::<f32>() / mask.iter().sum::<f32>();
        let outside: f32 = mask.iter().zip(&image).filter(|(m, _)| **m == 0.0).map(|(_, i)| *i).sum::<f32>()
            / mask.iter().filter(|m| **m == 0.0).count() as f32;
        assert!(inside > 0.7 && outside < 0.2, "inside {inside}, outside {outside}");
        let area = mask.iter().sum::<f32>();
        assert!((100.0..190.0).contains(&area), "area {area} (140 before, scale 0.9–1.1)");
    }

    #[test]
    fn same_seed_same_result() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..5).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }
}
