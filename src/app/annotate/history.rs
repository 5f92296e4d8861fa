//! Undo/redo for the masks of one file: every frame or slice of it. An edit is stored as the
//! rectangle it changed on one frame, before and after, so a brush stroke on a 4096² image costs
//! kilobytes, not 16 MB; one step is one or more edits (a propagation changes many slices and is
//! undone at once).

use super::tools::PixelRect;
use crate::imaging::Mask;

/// Undo steps kept per file; older ones are dropped.
const MAX_STEPS: usize = 100;

/// The part of one frame's mask an edit changed, before and after.
pub struct Edit {
    pub frame: u32,
    pub rect: PixelRect,
    before: Vec<u8>,
    after: Vec<u8>,
}

impl Edit {
    /// The change from `before` to `after` (same size) on `frame`, if anything changed. `hint`
    /// bounds where changes can be (the whole mask when unknown).
    pub fn between(frame: u32, before: &Mask, after: &Mask, hint: PixelRect) -> Option<Self> {
        let rect = changed_rect(before, after, hint)?;
        Some(Self { frame, rect, before: rect.labels_of(before), after: rect.labels_of(after) })
    }

    /// Writes the edit's pixels (before when undoing, after when redoing) into `mask`.
    pub fn paste(&self, mask: &mut Mask, undoing: bool) {
        paste_rect(mask, self.rect, if undoing { &self.before } else { &self.after });
    }
}

#[derive(Default)]
pub struct History {
    undo: Vec<Vec<Edit>>,
    redo: Vec<Vec<Edit>>,
}

impl History {
    /// Records edits (of one or more frames) as one step; false when there are none.
    pub fn record_step(&mut self, edits: Vec<Edit>) -> bool {
        if edits.is_empty() {
            return false;
        }
        self.undo.push(edits);
        if self.undo.len() > MAX_STEPS {
            self.undo.remove(0);
        }
        self.redo.clear();
        true
    }

    /// Takes the last step to undo; the caller pastes each edit's `before` (last edit first)
    /// and hands it back with [`Self::undone`].
    pub fn take_undo(&mut self) -> Option<Vec<Edit>> {
        self.undo.pop()
    }

    pub fn undone(&mut self, step: Vec<Edit>) {
        self.redo.push(step);
    }

    /// Takes the last undone step; the caller pastes each edit's `after` (in order) and hands it
    /// back with [`Self::redone`].
    pub fn take_redo(&mut self) -> Option<Vec<Edit>> {
        self.redo.pop()
    }

    pub fn redone(&mut self, step: Vec<Edit>) {
        self.undo.push(step);
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

    fn record(history: &mut History, before: &Mask, after: &Mask, hint: PixelRect) -> bool {
        history.record_step(Edit::between(0, before, after, hint).into_iter().collect())
    }

    fn undo(history: &mut History, mask: &mut Mask) -> Option<()> {
        let step = history.take_undo()?;
        step.iter().rev().for_each(|e| e.paste(mask, true));
        history.undone(step);
        Some(())
    }

    fn redo(history: &mut History, mask: &mut Mask) -> Option<()> {
        let step = history.take_redo()?;
        step.iter().for_each(|e| e.paste(mask, false));
        history.redone(step);
        Some(())
    }

    #[test]
    fn undo_and_redo_restore_exact_masks_and_store_only_the_changed_part() {
        let mut mask = Mask::new(64, 48);
        let mut history = History::default();
        let states: Vec<Mask> = (0..3)
            .map(|i| {
                let before = mask.clone();
                let hint = paint_segment(&mut mask, (5.0 + 20.0 * i as f32, 10.0), (10.0 + 20.0 * i as f32, 30.0), 2.0, FOREGROUND);
                assert!(record(&mut history, &before, &mask, hint));
                mask.clone()
            })
            .collect();
        // The stroke's bounding box (about 10×25 px), not the whole 64×48 mask.
        assert!(history.undo[0][0].before.len() <= 300, "stored {} px", history.undo[0][0].before.len());
        assert!(!record(&mut history, &mask.clone(), &mask, PixelRect::whole(&mask)), "no change, no step");

        undo(&mut history, &mut mask).unwrap();
        assert_eq!(mask, states[1]);
        undo(&mut history, &mut mask).unwrap();
        undo(&mut history, &mut mask).unwrap();
        assert_eq!(mask.foreground_count(), 0);
        assert!(undo(&mut history, &mut mask).is_none());
        redo(&mut history, &mut mask).unwrap();
        assert_eq!(mask, states[0]);
        // A new edit after an undo drops the redo branch.
        let before = mask.clone();
        let hint = paint_segment(&mut mask, (60.0, 40.0), (60.0, 40.0), 1.0, FOREGROUND);
        record(&mut history, &before, &mask, hint);
        assert!(!history.can_redo());
    }
}
