//! Mask editing operations, in image pixels: brush/eraser strokes, flood fill, polygon fill.
//! Each returns the rectangle it may have changed, so the overlay re-uploads only that part.

use image::Luma;
use imageproc::drawing::{Canvas, draw_filled_circle_mut, draw_polygon_mut};
use imageproc::point::Point;

use crate::imaging::Mask;

/// The label painted by the brush, the fill tools and AI results.
pub const FOREGROUND: u8 = 1;

/// A pixel rectangle: `x0..x1` × `y0..y1` (exclusive ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl PixelRect {
    pub fn whole(mask: &Mask) -> Self {
        Self { x0: 0, y0: 0, x1: mask.width(), y1: mask.height() }
    }

    pub fn is_empty(&self) -> bool {
        self.x0 >= self.x1 || self.y0 >= self.y1
    }

    pub fn union(self, other: Self) -> Self {
        if self.is_empty() {
            return other;
        }
        if other.is_empty() {
            return self;
        }
        Self { x0: self.x0.min(other.x0), y0: self.y0.min(other.y0), x1: self.x1.max(other.x1), y1: self.y1.max(other.y1) }
    }

    pub fn width(&self) -> u32 {
        self.x1.saturating_sub(self.x0)
    }

    pub fn height(&self) -> u32 {
        self.y1.saturating_sub(self.y0)
    }

    pub const EMPTY: Self = Self { x0: 0, y0: 0, x1: 0, y1: 0 };

    /// Puts back, inside this rectangle, every pixel of `before` that held a label other than
    /// `active` (an edit that may change only background and the active label).
    pub fn protect_other_labels(&self, before: &Mask, after: &mut Mask, active: u8) {
        let w = before.width() as usize;
        for y in self.y0.min(before.height())..self.y1.min(before.height()) {
            for x in self.x0.min(before.width())..self.x1.min(before.width()) {
                let i = y as usize * w + x as usize;
                let old = before.labels()[i];
                if old != 0 && old != active {
                    after.labels_mut()[i] = old;
                }
            }
        }
    }

    /// The labels of this rectangle of `mask`, row by row.
    pub fn labels_of(&self, mask: &Mask) -> Vec<u8> {
        let w = mask.width() as usize;
        (self.y0..self.y1)
            .flat_map(|y| &mask.labels()[y as usize * w + self.x0 as usize..y as usize * w + self.x1 as usize])
            .copied()
            .collect()
    }

    /// The rectangle around a disc at (x, y) with `radius`, clipped to the mask.
    fn around(mask: &Mask, x: f32, y: f32, radius: f32) -> Self {
        let clip = |v: f32, max: u32| v.clamp(0.0, max as f32) as u32;
        Self {
            x0: clip((x - radius - 1.0).floor(), mask.width()),
            y0: clip((y - radius - 1.0).floor(), mask.height()),
            x1: clip((x + radius + 2.0).ceil(), mask.width()),
            y1: clip((y + radius + 2.0).ceil(), mask.height()),
        }
    }
}

/// imageproc draws on any `Canvas`; this one writes straight into the mask's labels.
struct MaskCanvas<'a>(&'a mut Mask);

impl Canvas for MaskCanvas<'_> {
    type Pixel = Luma<u8>;

    fn dimensions(&self) -> (u32, u32) {
        (self.0.width(), self.0.height())
    }

    fn get_pixel(&self, x: u32, y: u32) -> Luma<u8> {
        Luma([self.0.get(x, y).unwrap_or(0)])
    }

    fn draw_pixel(&mut self, x: u32, y: u32, color: Luma<u8>) {
        self.0.set(x, y, color.0[0]);
    }
}

/// A brush (or, with `label` 0, eraser) segment from `from` to `to`: discs of `radius` pixels
/// close enough together to leave no gaps.
pub fn paint_segment(mask: &mut Mask, from: (f32, f32), to: (f32, f32), radius: f32, label: u8) -> PixelRect {
    let radius = radius.max(0.5);
    let (dx, dy) = (to.0 - from.0, to.1 - from.1);
    let steps = ((dx.hypot(dy) / (radius * 0.5).max(0.5)).ceil() as usize).max(1);
    let mut changed = PixelRect::EMPTY;
    let mut canvas = MaskCanvas(mask);
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let (x, y) = (from.0 + dx * t, from.1 + dy * t);
        draw_filled_circle_mut(&mut canvas, (x.round() as i32, y.round() as i32), radius.round() as i32, Luma([label]));
        changed = changed.union(PixelRect::around(canvas.0, x, y, radius));
    }
    changed
}

/// Fills the 4-connected region of equal labels around (x, y) with `label`. Clicking inside a
/// hole of a mask fills the hole; clicking the mask itself with label 0 erases that blob.
pub fn flood_fill(mask: &mut Mask, x: u32, y: u32, label: u8) -> PixelRect {
    let Some(target) = mask.get(x, y) else { return PixelRect::EMPTY };
    if target == label {
        return PixelRect::EMPTY;
    }
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let labels = mask.labels_mut();
    let mut changed = PixelRect { x0: x, y0: y, x1: x + 1, y1: y + 1 };
    let mut stack = vec![(x as usize, y as usize)];
    // Scanline fill: each popped seed fills its whole run, then seeds the rows above and below.
    while let Some((sx, sy)) = stack.pop() {
        if labels[sy * w + sx] != target {
            continue;
        }
        let mut left = sx;
        while left > 0 && labels[sy * w + left - 1] == target {
            left -= 1;
        }
        let mut right = sx;
        while right + 1 < w && labels[sy * w + right + 1] == target {
            right += 1;
        }
        labels[sy * w + left..=sy * w + right].fill(label);
        changed = changed.union(PixelRect { x0: left as u32, y0: sy as u32, x1: right as u32 + 1, y1: sy as u32 + 1 });
        for ny in [sy.wrapping_sub(1), sy + 1] {
            if ny >= h {
                continue;
            }
            let mut nx = left;
            while nx <= right {
                if labels[ny * w + nx] == target {
                    stack.push((nx, ny));
                    // One seed per run of the neighbouring row.
                    while nx <= right && labels[ny * w + nx] == target {
                        nx += 1;
                    }
                } else {
                    nx += 1;
                }
            }
        }
    }
    changed
}

/// Fills the polygon (a lasso: the points in order, closed automatically) with `label`.
pub fn fill_polygon(mask: &mut Mask, points: &[(f32, f32)], label: u8) -> PixelRect {
    let mut vertices: Vec<Point<i32>> = points.iter().map(|&(x, y)| Point::new(x.round() as i32, y.round() as i32)).collect();
    vertices.dedup();
    while vertices.len() > 1 && vertices.first() == vertices.last() {
        vertices.pop();
    }
    if vertices.len() < 3 {
        return PixelRect::EMPTY;
    }
    draw_polygon_mut(&mut MaskCanvas(mask), &vertices, Luma([label]));
    let clip = |v: i32, max: u32| v.clamp(0, max as i32) as u32;
    let (xs, ys): (Vec<i32>, Vec<i32>) = vertices.iter().map(|p| (p.x, p.y)).unzip();
    let (w, h) = (mask.width(), mask.height());
    PixelRect {
        x0: clip(*xs.iter().min().unwrap_or(&0), w),
        y0: clip(*ys.iter().min().unwrap_or(&0), h),
        x1: clip(xs.iter().max().unwrap_or(&0) + 1, w),
        y1: clip(ys.iter().max().unwrap_or(&0) + 1, h),
    }
}

/// The Annotate tab's tools: what the primary button does on the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Brush,
    Eraser,
    Fill,
    Lasso,
    /// A box prompt for LiteMedSAM.
    Box,
    /// Positive (click) and negative (shift-click) points for LiteMedSAM.
    Points,
    /// Switch De-LightSAM's 32×32 patch-prompt cells on and off.
    Grid,
}

impl Tool {
    pub const ALL: [Tool; 7] = [Tool::Brush, Tool::Eraser, Tool::Fill, Tool::Lasso, Tool::Box, Tool::Points, Tool::Grid];

    pub fn label(self) -> &'static str {
        match self {
            Tool::Brush => "Brush",
            Tool::Eraser => "Eraser",
            Tool::Fill => "Fill",
            Tool::Lasso => "Lasso",
            Tool::Box => "Box prompt",
            Tool::Points => "Point prompts",
            Tool::Grid => "Patch grid",
        }
    }

    /// What the tool does, for its tooltip.
    pub fn help(self) -> &'static str {
        match self {
            Tool::Brush => "Paint the mask (B); drag to draw, [ and ] change the size",
            Tool::Eraser => "Erase the mask (E); drag to erase, [ and ] change the size",
            Tool::Fill => "Fill the enclosed region you click (G); Shift+click empties it",
            Tool::Lasso => "Draw a closed outline to fill (L); hold Shift to cut it out instead",
            Tool::Box => "Drag a box around the object (R): LiteMedSAM segments it, the mask follows as you drag",
            Tool::Points => "Click on the object (P), Shift+click on what is not it: LiteMedSAM segments from the points",
            Tool::Grid => "Show De-LightSAM's patch grid (T): click patches on or off and the proposal re-runs",
        }
    }

    pub fn key(self) -> egui::Key {
        match self {
            Tool::Brush => egui::Key::B,
            Tool::Eraser => egui::Key::E,
            Tool::Fill => egui::Key::G,
            Tool::Lasso => egui::Key::L,
            Tool::Box => egui::Key::R,
            Tool::Points => egui::Key::P,
            Tool::Grid => egui::Key::T,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_labels_are_put_back_and_the_merge_keeps_them() {
        let before = Mask::from_labels(4, 1, vec![0, 1, 2, 2]).unwrap();
        let mut after = Mask::from_labels(4, 1, vec![1, 1, 1, 0]).unwrap();
        PixelRect::whole(&before).protect_other_labels(&before, &mut after, 1);
        assert_eq!(after.labels(), [1, 1, 2, 2]);
        // An AI result for label 2 over [0, 1, 2, 2]: label 1 kept, label 2's old pixel outside
        // the result cleared.
        let result = Mask::from_labels(4, 1, vec![1, 1, 1, 0]).unwrap();
        let merged = super::super::document::merge_label(&before, &result, 2, true).unwrap();
        assert_eq!(merged.labels(), [2, 1, 2, 0]);
        let merged = super::super::document::merge_label(&before, &result, 2, false).unwrap();
        assert_eq!(merged.labels(), [2, 2, 2, 0]);
    }

    #[test]
    fn brush_strokes_leave_no_gaps_and_report_their_rectangle() {
        let mut mask = Mask::new(100, 50);
        let rect = paint_segment(&mut mask, (10.0, 25.0), (90.0, 25.0), 3.0, FOREGROUND);
        for x in 10..=90 {
            assert_eq!(mask.get(x, 25), Some(1), "gap at x={x}");
        }
        assert_eq!(mask.get(50, 30), Some(0), "radius 3 does not reach 5 px away");
        assert!(rect.x0 <= 7 && rect.x1 >= 94 && rect.y0 <= 22 && rect.y1 >= 29, "{rect:?}");
        let erased = paint_segment(&mut mask, (50.0, 25.0), (50.0, 25.0), 5.0, 0);
        assert_eq!(mask.get(50, 25), Some(0));
        assert!(!erased.is_empty());
        // Off the image: clipped, no panic.
        paint_segment(&mut mask, (-20.0, -20.0), (200.0, 200.0), 4.0, FOREGROUND);
    }

    #[test]
    fn flood_fill_fills_a_hole_but_not_beyond_its_border() {
        let mut mask = Mask::new(20, 20);
        for i in 5..15 {
            for (x, y) in [(i, 5), (i, 14), (5, i), (14, i)] {
                mask.set(x, y, 1);
            }
        }
        let rect = flood_fill(&mut mask, 10, 10, FOREGROUND);
        assert_eq!(mask.foreground_count(), 100);
        assert_eq!(rect, PixelRect { x0: 6, y0: 6, x1: 14, y1: 14 });
        assert_eq!(mask.get(2, 2), Some(0));
        // Erasing the blob by filling it with background.
        flood_fill(&mut mask, 10, 10, 0);
        assert_eq!(mask.foreground_count(), 0);
        assert!(flood_fill(&mut mask, 99, 99, 1).is_empty());
    }

    #[test]
    fn lasso_fills_its_inside() {
        let mut mask = Mask::new(40, 40);
        let rect = fill_polygon(&mut mask, &[(10.0, 10.0), (30.0, 10.0), (30.0, 30.0), (10.0, 30.0), (10.0, 10.0)], FOREGROUND);
        assert_eq!(mask.get(20, 20), Some(1));
        assert_eq!(mask.get(5, 5), Some(0));
        assert_eq!(rect, PixelRect { x0: 10, y0: 10, x1: 31, y1: 31 });
        assert!(fill_polygon(&mut mask, &[(1.0, 1.0), (2.0, 2.0)], 1).is_empty());
    }
}

