//! The work on the open file as a whole: the masks of all its frames or slices in memory (the
//! shown one lives in the [`Document`](super::document::Document)), one undo history across
//! them, the label table, and per-label voxel counts for volumes in mL. Moving through slices,
//! propagating, importing and exporting need no disk reads on the UI thread: the saved work is
//! read with the file, in the background.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::history::{Edit, History};
use super::labels::LabelTable;
use super::tools::PixelRect;
use crate::imaging::Mask;

pub struct Study {
    pub path: PathBuf,
    /// The name of this file's autosaves ([`autosave::key_for`](super::autosave::key_for)).
    pub autosave_key: String,
    size: (u32, u32),
    /// Masks of the frames other than the shown one; a frame without one is empty.
    others: HashMap<u32, Mask>,
    /// Pixels per label value over `others`.
    other_counts: [u64; 256],
    pub history: History,
    pub labels: LabelTable,
}

/// What was saved for a file: its frames' masks and label table, read with the file.
#[derive(Default)]
pub struct SavedWork {
    /// The file's autosave name.
    pub key: String,
    pub masks: Vec<(u32, Mask)>,
    pub labels: Option<LabelTable>,
    /// Damaged or unreadable autosaves (set aside; the frames open without them).
    pub warnings: Vec<String>,
}

impl Study {
    pub fn new(path: &Path, size: (u32, u32), saved: SavedWork) -> Self {
        let autosave_key = if saved.key.is_empty() { super::autosave::key_for(path) } else { saved.key };
        let mut study = Self {
            path: path.to_path_buf(),
            autosave_key,
            size,
            others: HashMap::new(),
            other_counts: [0; 256],
            history: History::default(),
            labels: saved.labels.unwrap_or_default(),
        };
        for (frame, mask) in saved.masks {
            study.put(frame, mask);
        }
        study
    }

    /// Holds `mask` as frame `frame`'s (it is no longer shown).
    pub fn put(&mut self, frame: u32, mask: Mask) {
        if (mask.width(), mask.height()) != self.size {
            return;
        }
        self.take(frame);
        if mask.foreground_count() > 0 {
            add_counts(&mut self.other_counts, &mask, 1);
            self.others.insert(frame, mask);
        }
    }

    /// Frame `frame`'s mask, taken out to be shown (empty when it has none).
    pub fn take(&mut self, frame: u32) -> Mask {
        match self.others.remove(&frame) {
            Some(mask) => {
                add_counts(&mut self.other_counts, &mask, -1);
                mask
            }
            None => Mask::new(self.size.0, self.size.1),
        }
    }

    /// A copy of frame `frame`'s mask (not the shown one).
    pub fn mask(&self, frame: u32) -> Mask {
        self.others.get(&frame).cloned().unwrap_or_else(|| Mask::new(self.size.0, self.size.1))
    }

    /// The frames held here (not the shown one) that contain `label`.
    pub fn frames_with(&self, label: u8) -> Vec<u32> {
        let mut frames: Vec<u32> = self.others.iter().filter(|(_, m)| m.labels().contains(&label)).map(|(&k, _)| k).collect();
        frames.sort_unstable();
        frames
    }

    /// Pixels per label over the whole file: the frames held here plus the shown `mask`.
    pub fn counts_with(&self, shown: &Mask) -> [u64; 256] {
        self.counts_plus(&histogram(shown))
    }

    /// Pixels per label over the whole file, given the shown frame's `histogram`.
    pub fn counts_plus(&self, shown: &[u64; 256]) -> [u64; 256] {
        std::array::from_fn(|l| self.other_counts[l] + shown[l])
    }

    /// Every frame's labels in one volume (frame k at `k · w · h`), `shown` for frame `shown_frame`.
    pub fn label_volume(&self, frames: u32, shown_frame: u32, shown: &Mask) -> Vec<u8> {
        let plane = self.size.0 as usize * self.size.1 as usize;
        let mut labels = vec![0u8; plane * frames as usize];
        for (k, slice) in labels.chunks_exact_mut(plane.max(1)).enumerate() {
            let k = k as u32;
            if k == shown_frame {
                slice.copy_from_slice(shown.labels());
            } else if let Some(mask) = self.others.get(&k) {
                slice.copy_from_slice(mask.labels());
            }
        }
        labels
    }

    /// Writes `merge(frame's mask)` into frame `frame` (not the shown one); the change, if any,
    /// as an edit for one undo step.
    pub fn update(&mut self, frame: u32, merge: impl FnOnce(&Mask) -> Option<Mask>) -> Option<(Edit, Mask)> {
        let before = self.mask(frame);
        let after = merge(&before)?;
        let edit = Edit::between(frame, &before, &after, PixelRect::whole(&before))?;
        self.put(frame, after.clone());
        Some((edit, after))
    }

    /// Undoes (or redoes) the last step: edits of `shown_frame` go into `shown`, the others into
    /// the frames held here. Returns the frames changed with their rectangles.
    pub fn step_back(&mut self, undoing: bool, shown_frame: u32, shown: &mut Mask) -> Vec<(u32, PixelRect)> {
        let step = if undoing { self.history.take_undo() } else { self.history.take_redo() };
        let Some(step) = step else { return Vec::new() };
        let mut changed = Vec::new();
        let order: Box<dyn Iterator<Item = &Edit>> = if undoing { Box::new(step.iter().rev()) } else { Box::new(step.iter()) };
        for edit in order {
            if edit.frame == shown_frame {
                edit.paste(shown, undoing);
            } else {
                let mut mask = self.take(edit.frame);
                edit.paste(&mut mask, undoing);
                self.put(edit.frame, mask);
            }
            changed.push((edit.frame, edit.rect));
        }
        if undoing {
            self.history.undone(step);
        } else {
            self.history.redone(step);
        }
        changed
    }
}

/// Pixels per label value of `mask`.
pub fn histogram(mask: &Mask) -> [u64; 256] {
    let mut here = [0u64; 256];
    for &label in mask.labels() {
        here[label as usize] += 1;
    }
    here
}

fn add_counts(counts: &mut [u64; 256], mask: &Mask, sign: i64) {
    for (total, n) in counts.iter_mut().zip(histogram(mask)) {
        *total = (*total as i64 + sign * n as i64).max(0) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_with(label: u8, pixels: &[(u32, u32)]) -> Mask {
        let mut mask = Mask::new(8, 6);
        for &(x, y) in pixels {
            mask.set(x, y, label);
        }
        mask
    }

    #[test]
    fn frames_move_in_and_out_with_their_counts_and_a_step_across_frames_undoes_at_once() {
        let saved = SavedWork { masks: vec![(2, mask_with(1, &[(1, 1), (2, 2)])), (5, mask_with(3, &[(0, 0)]))], ..Default::default() };
        let mut study = Study::new(Path::new("/v"), (8, 6), saved);
        let mut shown = study.take(2);
        assert_eq!(shown.foreground_count(), 2);
        let counts = study.counts_with(&shown);
        assert_eq!((counts[1], counts[3]), (2, 1));
        assert_eq!(study.label_volume(6, 2, &shown).iter().filter(|&&l| l != 0).count(), 3);

        // One step: frame 2 (shown) and frames 4 and 5 (held).
        let before = shown.clone();
        shown.set(7, 5, 1);
        let mut edits = vec![Edit::between(2, &before, &shown, PixelRect::whole(&shown)).unwrap()];
        for k in [4, 5] {
            let (edit, _) = study.update(k, |m| {
                let mut m = m.clone();
                m.set(4, 4, 2);
                Some(m)
            }).unwrap();
            edits.push(edit);
        }
        assert!(study.update(4, |m| Some(m.clone())).is_none(), "no change, no edit");
        study.history.record_step(edits);
        assert_eq!(study.counts_with(&shown)[2], 2);

        let changed = study.step_back(true, 2, &mut shown);
        assert_eq!(changed.len(), 3);
        assert_eq!(shown, before);
        assert_eq!(study.mask(4).foreground_count(), 0);
        assert_eq!(study.mask(5), mask_with(3, &[(0, 0)]));
        assert_eq!(study.counts_with(&shown)[2], 0);
        study.step_back(false, 2, &mut shown);
        assert_eq!(study.mask(5).get(4, 4), Some(2));
        assert_eq!(shown.get(7, 5), Some(1));
    }
}
