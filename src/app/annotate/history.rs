//! Undo/redo for one mask. An edit is stored as the rectangle it changed, before and after, so
//! a brush stroke on a 4096² image costs kilobytes, not 16 MB.

use super::tools::PixelRect;
use crate::imaging::Mask;

/// Undo steps kept per image; older ones are dropped.
const MAX_STEPS: usize = 100;

struct Edit {
    rect: PixelRect,
    before: Vec<u8>,
    after: Vec<u8>,
}

#[derive(Default)]
pub struct History {
    undo: Vec<Edit>,
    redo: Vec<Edit>,
}

impl History {
    /// Records the change from `before` to `after` (same size) as one step, if anything changed.
    /// `hint` bounds where changes can be (the whole mask when unknown).
    pub fn record(&mut self, before: &Mask, after: &Mask, hint: PixelRect) -> bool {
        let Some(rect) = changed_rect(before, after, hint) else { return false };
        self.undo.push(Edit { rect, before: rect.labels_of(before), after: rect.labels_of(after) });
        if self.undo.len() > MAX_STEPS {
            self.undo.remove(0);
        }
        self.redo.clear();
        true
    }

    /// Puts the last step back; returns the rectangle that changed.
    pub fn undo(&mut self, mask: &mut Mask) -> Option<PixelRect> {
        let edit = self.undo.pop()?;
        paste_rect(mask, edit.rect, &edit.before);
        let rect = edit.rect;
        self.redo.push(edit);
        Some(rect)
    }

    pub fn redo(&mut self, mask: &mut Mask) -> Option<PixelRect> {
        let edit = self.redo.pop()?;
        paste_rect(mask, edit.rect, &edit.after);
        let rect = edit.rect;
        self.undo.push(edit);
        Some(rect)
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

/// The smallest rectangle inside `hint` where the masks differ.
fn changed_rect(a: &Mask, b: &Mask, hint: PixelRect) -> Option<PixelRect> {
    if a.width() != b.width() || a.height() != b.height() || hint.is_empty() {
        return None;
    }
    let w = a.width() as usize;
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in hint.y0..hint.y1.min(a.height()) {
        let row = y as usize * w;
        let (ra, rb) = (&a.labels()[row + hint.x0 as usize..row + hint.x1 as usize], &b.labels()[row + hint.x0 as usize..row + hint.x1 as usize]);
        let Some(first) = ra.iter().zip(rb).position(|(p, q)| p != q) else { continue };
        let last = ra.iter().zip(rb).rposition(|(p, q)| p != q).unwrap_or(first);
        x0 = x0.min(hint.x0 + first as u32);
        x1 = x1.max(hint.x0 + last as u32 + 1);
        y0 = y0.min(y);
        y1 = y + 1;
    }
    (x0 < x1).then_some(PixelRect { x0, y0, x1, y1 })
}

fn paste_rect(mask: &mut Mask, rect: PixelRect, pixels: &[u8]) {
    let w = mask.width() as usize;
    let rw = rect.width() as usize;
    for (i, y) in (rect.y0..rect.y1).enumerate() {
        let start = y as usize * w + rect.x0 as usize;
        mask.labels_mut()[start..start + rw].copy_from_slice(&pixels[i * rw..(i + 1) * rw]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tools::{FOREGROUND, paint_segment};

    #[test]
    fn undo_and_redo_restore_exact_masks_and_store_only_the_changed_part() {
        let mut mask = Mask::new(64, 48);
        let mut history = History::default();
        let states: Vec<Mask> = (0..3)
            .map(|i| {
                let before = mask.clone();
                let hint = paint_segment(&mut mask, (5.0 + 20.0 * i as f32, 10.0), (10.0 + 20.0 * i as f32, 30.0), 2.0, FOREGROUND);
                assert!(history.record(&before, &mask, hint));
                mask.clone()
            })
            .collect();
        // The stroke's bounding box (about 10×25 px), not the whole 64×48 mask.
        assert!(history.undo[0].before.len() <= 300, "stored {} px", history.undo[0].before.len());
        assert!(!history.record(&mask.clone(), &mask, PixelRect::whole(&mask)), "no change, no step");

        history.undo(&mut mask).unwrap();
        assert_eq!(mask, states[1]);
        history.undo(&mut mask).unwrap();
        history.undo(&mut mask).unwrap();
        assert_eq!(mask.foreground_count(), 0);
        assert!(history.undo(&mut mask).is_none());
        history.redo(&mut mask).unwrap();
        assert_eq!(mask, states[0]);
        // A new edit after an undo drops the redo branch.
        let before = mask.clone();
        let hint = paint_segment(&mut mask, (60.0, 40.0), (60.0, 40.0), 1.0, FOREGROUND);
        history.record(&before, &mask, hint);
        assert!(!history.can_redo());
    }
}
