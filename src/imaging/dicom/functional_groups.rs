//! Enhanced multi-frame files keep rescale, spacing, orientation, position and window in
//! functional groups (PS3.3 C.7.6.16): a frame's own group in the Per-Frame Functional Groups
//! Sequence, else the Shared Functional Groups Sequence. Classic files keep them at the top level.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::attrs;

/// Where a file keeps its per-frame facts.
pub(super) struct FrameFacts<'a> {
    top: &'a InMemDicomObject,
    shared: Option<&'a InMemDicomObject>,
    per_frame: &'a [InMemDicomObject],
}

impl<'a> FrameFacts<'a> {
    pub fn new(obj: &'a InMemDicomObject) -> Self {
        Self {
            top: obj,
            shared: attrs::items(obj, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).first(),
            per_frame: attrs::items(obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE),
        }
    }

    /// How many frames have their own functional groups.
    pub fn per_frame_groups(&self) -> usize {
        self.per_frame.len()
    }

    pub fn is_enhanced(&self) -> bool {
        self.shared.is_some() || !self.per_frame.is_empty()
    }

    /// The first item of functional group `group` for `frame`: its own, else the shared one.
    fn group(&self, frame: usize, group: Tag) -> Option<&'a InMemDicomObject> {
        let own = self.per_frame.get(frame).and_then(|item| attrs::items(item, group).first());
        own.or_else(|| self.shared.and_then(|item| attrs::items(item, group).first()))
    }

    /// The object to read `frame`'s attribute from: its functional group in an enhanced file
    /// (falling back to the top level when the group lacks it), the top level otherwise.
    fn floats(&self, frame: usize, group: Tag, tag: Tag) -> Vec<f64> {
        let in_group = self.group(frame, group).map(|item| attrs::floats(item, tag)).unwrap_or_default();
        if in_group.is_empty() { attrs::floats(self.top, tag) } else { in_group }
    }

    /// (slope, intercept) for `frame`, when either is given.
    pub fn rescale(&self, frame: usize) -> Option<(Option<f64>, Option<f64>)> {
        let group = tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE;
        let slope = self.floats(frame, group, tags::RESCALE_SLOPE).first().copied();
        let intercept = self.floats(frame, group, tags::RESCALE_INTERCEPT).first().copied();
        (slope.is_some() || intercept.is_some()).then_some((slope, intercept))
    }

    pub fn pixel_spacing(&self, frame: usize) -> Vec<f64> {
        self.floats(frame, tags::PIXEL_MEASURES_SEQUENCE, tags::PIXEL_SPACING)
    }

    pub fn orientation(&self, frame: usize) -> Option<[f64; 6]> {
        self.floats(frame, tags::PLANE_ORIENTATION_SEQUENCE, tags::IMAGE_ORIENTATION_PATIENT).try_into().ok()
    }

    pub fn position(&self, frame: usize) -> Option<[f64; 3]> {
        self.floats(frame, tags::PLANE_POSITION_SEQUENCE, tags::IMAGE_POSITION_PATIENT).try_into().ok()
    }

    /// Window centres and widths (several presets possible), with their explanations.
    pub fn windows(&self, frame: usize) -> (Vec<f64>, Vec<f64>, Vec<String>) {
        let group = tags::FRAME_VOILUT_SEQUENCE;
        let names = match self.group(frame, group) {
            Some(item) if !attrs::floats(item, tags::WINDOW_CENTER).is_empty() => {
                attrs::strings(item, tags::WINDOW_CENTER_WIDTH_EXPLANATION)
            }
            _ => attrs::strings(self.top, tags::WINDOW_CENTER_WIDTH_EXPLANATION),
        };
        (self.floats(frame, group, tags::WINDOW_CENTER), self.floats(frame, group, tags::WINDOW_WIDTH), names)
    }
}
