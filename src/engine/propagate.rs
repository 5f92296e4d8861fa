//! A mask carried through a volume's slices, as MedSAM does for 3D: LiteMedSAM segments the
//! start slice from the user's box, then each next slice (up, then down) from the box around the
//! previous slice's mask, until the object vanishes.

use super::{DynSegmenter, EngineError};
use crate::imaging::Mask;
use crate::imaging::volume::Volume;
use crate::model::Prompts;

/// When to stop: the object is taken as gone when a slice's mask has fewer pixels than this
/// share of the start slice's (or than `min_pixels`), or the model's own IoU estimate drops
/// below `min_predicted_iou`.
#[derive(Debug, Clone, Copy)]
pub struct StopRule {
    pub min_area_share: f64,
    pub min_pixels: usize,
    pub min_predicted_iou: f32,
}

impl Default for StopRule {
    fn default() -> Self {
        Self { min_area_share: 0.05, min_pixels: 10, min_predicted_iou: 0.5 }
    }
}

/// One slice's result.
#[derive(Debug, Clone)]
pub struct SliceMask {
    pub slice: usize,
    pub mask: Mask,
    pub predicted_iou: f32,
}

/// The tight box around a mask's foreground, grown by `margin` pixels and clipped to it.
pub fn bounding_box(mask: &Mask, margin: f32) -> Option<[f32; 4]> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (i, &label) in mask.labels().iter().enumerate() {
        if label != 0 {
            let (x, y) = (i % w, i / w);
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 != usize::MAX).then(|| {
        [
            (x0 as f32 - margin).max(0.0),
            (y0 as f32 - margin).max(0.0),
            ((x1 + 1) as f32 + margin).min(w as f32),
            ((y1 + 1) as f32 + margin).min(h as f32),
        ]
    })
}

/// Segments slice `start` of `volume` with `bbox` (image pixels: x = column, y = row), then
/// carries the mask up and down; each slice is taken from the volume as it is reached (no copy
/// of the whole volume). `key` names the volume in the embedding cache; `progress(done)` is called
/// after each slice and returning `false` from it cancels (the slices done so far are kept).
pub fn propagate(
    segmenter: &mut DynSegmenter,
    key: &str,
    volume: &Volume,
    start: usize,
    bbox: [f32; 4],
    rule: StopRule,
    progress: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<SliceMask>, EngineError> {
    let mut done = Vec::new();
    let total = volume.slice_count();
    if start >= total {
        return Ok(done);
    }
    let first = segmenter.segment(&format!("{key}#{start}"), &volume.slice(start), &Prompts { bbox: Some(bbox), points: Vec::new() })?;
    let start_area = first.mask.foreground_count();
    done.push(SliceMask { slice: start, mask: first.mask, predicted_iou: first.predicted_iou });
    if !progress(done.len()) || start_area == 0 {
        return Ok(done);
    }
    let min_area = rule.min_pixels.max((start_area as f64 * rule.min_area_share) as usize);
    for step in [1isize, -1] {
        let mut previous = done[0].mask.clone();
        let mut k = start as isize + step;
        while k >= 0 && (k as usize) < total {
            let Some(bbox) = bounding_box(&previous, 2.0) else { break };
            let slice = k as usize;
            let result =
                segmenter.segment(&format!("{key}#{slice}"), &volume.slice(slice), &Prompts { bbox: Some(bbox), points: Vec::new() })?;
            if result.mask.foreground_count() < min_area || result.predicted_iou < rule.min_predicted_iou {
                break;
            }
            previous = result.mask.clone();
            done.push(SliceMask { slice, mask: result.mask, predicted_iou: result.predicted_iou });
            if !progress(done.len()) {
                done.sort_by_key(|s| s.slice);
                return Ok(done);
            }
            k += step;
        }
    }
    done.sort_by_key(|s| s.slice);
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounding_box_is_tight_plus_margin_and_clipped() {
        let mut mask = Mask::new(10, 8);
        assert_eq!(bounding_box(&mask, 2.0), None);
        mask.set(3, 2, 1);
        mask.set(5, 4, 1);
        assert_eq!(bounding_box(&mask, 0.0), Some([3.0, 2.0, 6.0, 5.0]));
        assert_eq!(bounding_box(&mask, 4.0), Some([0.0, 0.0, 10.0, 8.0]));
    }
}
