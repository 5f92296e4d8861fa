//! One open image (one frame of it) with its mask, prompts and GPU textures; the undo history
//! and the other frames' masks are the [`Study`](super::study::Study)'s.

use std::path::Path;
use std::sync::Arc;

use egui::{Color32, ColorImage, TextureHandle, TextureOptions};

use super::history::Edit;
use super::tools::PixelRect;
use crate::engine::worker::{ImageId, Request};
use crate::imaging::{Frame, ImageSource, Mask, Window};
use crate::model::Prompts;
use crate::model::modality;
use crate::model::sp_generator::GRID_SIZE;

/// The patch grid De-LightSAM prompts itself with: cells per side over its square input.
pub const GRID_CELLS: u32 = GRID_SIZE as u32;

/// The overlay colour of foreground pixels (label 1).
pub const MASK_COLOR: Color32 = Color32::from_rgb(255, 70, 50);

/// The overlay colour of a label value: label 1 is [`MASK_COLOR`], the others cycle through
/// the DICOM SEG export's palette (the shader has the same table).
pub fn label_color(label: u8) -> Color32 {
    let [r, g, b] = crate::imaging::dicom_seg::default_rgb(label);
    Color32::from_rgb(r, g, b)
}

/// `result` (nonzero = inside) written into `mask` as `label`: the label's old pixels outside
/// the result are cleared; with `protect`, other labels' pixels stay as they are.
pub fn merge_label(mask: &Mask, result: &Mask, label: u8, protect: bool) -> Option<Mask> {
    if (mask.width(), mask.height()) != (result.width(), result.height()) {
        return None;
    }
    let labels = mask
        .labels()
        .iter()
        .zip(result.labels())
        .map(|(&old, &new)| match (new != 0, old) {
            (true, old) if protect && old != 0 && old != label => old,
            (true, _) => label,
            (false, old) if old == label => 0,
            (false, old) => old,
        })
        .collect();
    Mask::from_labels(mask.width(), mask.height(), labels)
}

pub struct Document {
    pub source: Arc<ImageSource>,
    pub frame_index: u32,
    pub frame: Arc<Frame>,
    pub window: Window,
    pub mask: Mask,
    pub id: ImageId,
    /// Box and points sent to LiteMedSAM (image pixels); cleared with the mask.
    pub prompts: Prompts,
    /// The patch grid of the last automatic proposal, as the user edited it.
    pub grid: Option<Mask>,
    pub modality: String,
    /// The mask differs from the last export.
    pub unexported: bool,
    image_texture: Option<TextureHandle>,
    mask_texture: Option<TextureHandle>,
    /// Part of the mask texture to upload again before drawing.
    mask_dirty: Option<PixelRect>,
    /// The mask before the box previews now shown (see `preview_mask`).
    preview_base: Option<Mask>,
    /// Overlay colour per label for the CPU texture (the label table's, hidden = transparent).
    overlay: Box<[Color32; 256]>,
    /// Counts every change of the shown mask (for caches of what is computed from it).
    pub revision: u64,
}

impl Document {
    pub fn new(source: Arc<ImageSource>, frame_index: u32, frame: Frame, generation: u64, default_modality: &str) -> Self {
        let window = source.default_window(&frame);
        let mask = Mask::new(frame.width, frame.height);
        let key = match source.volume() {
            Some(_) => crate::engine::worker::slice_key(source.path(), frame_index),
            None => crate::engine::worker::image_key(source.path(), frame_index),
        };
        let modality = source
            .meta()
            .modality
            .as_deref()
            .and_then(modality::from_dicom)
            .unwrap_or(default_modality)
            .to_string();
        Self {
            source,
            frame_index,
            frame: Arc::new(frame),
            window,
            mask,
            id: ImageId { generation, key },
            prompts: Prompts::default(),
            grid: None,
            modality,
            unexported: false,
            image_texture: None,
            mask_texture: None,
            mask_dirty: None,
            preview_base: None,
            overlay: Box::new(std::array::from_fn(|l| if l == 0 { Color32::TRANSPARENT } else { label_color(l as u8) })),
            revision: 0,
        }
    }

    pub fn path(&self) -> &Path {
        self.source.path()
    }

    pub fn size(&self) -> (u32, u32) {
        (self.frame.width, self.frame.height)
    }

    pub fn set_window(&mut self, window: Window) {
        self.window = window;
        self.image_texture = None;
    }

    /// Replaces the whole mask (an AI result, an import, clear); the change as an edit for the
    /// undo history, `None` when nothing changed.
    pub fn replace_mask(&mut self, mask: Mask) -> Option<Edit> {
        if mask.width() != self.mask.width() || mask.height() != self.mask.height() {
            return None;
        }
        let shown = std::mem::replace(&mut self.mask, mask);
        // After previews, the undo step goes back to the mask from before them.
        let before = self.preview_base.take().unwrap_or(shown);
        self.mark_dirty(PixelRect::whole(&self.mask));
        Edit::between(self.frame_index, &before, &self.mask, PixelRect::whole(&before))
    }

    /// The LiteMedSAM request for this image's prompts; `preview` while a box is dragged.
    pub fn prompt_request(&self, preview: bool) -> Request {
        Request::Prompt { image: self.id.clone(), frame: self.frame.clone(), prompts: self.prompts.clone(), preview }
    }

    /// The mask from before the box previews now shown, if any.
    pub fn preview_base(&self) -> Option<&Mask> {
        self.preview_base.as_ref()
    }

    /// Shows `mask` (a box being dragged) without an undo step; the next `replace_mask` makes
    /// one step from the mask before the first preview.
    pub fn preview_mask(&mut self, mask: Mask) {
        if mask.width() != self.mask.width() || mask.height() != self.mask.height() {
            return;
        }
        let shown = std::mem::replace(&mut self.mask, mask);
        self.preview_base.get_or_insert(shown);
        self.mask_dirty = Some(PixelRect::whole(&self.mask));
        self.revision += 1;
    }

    pub fn mark_dirty(&mut self, rect: PixelRect) {
        if !rect.is_empty() {
            self.mask_dirty = Some(self.mask_dirty.map_or(rect, |r| r.union(rect)));
            self.unexported = true;
            self.revision += 1;
        }
    }

    /// Back to the mask from before the previews (the history's steps apply to that one).
    pub fn drop_preview(&mut self) {
        if let Some(base) = self.preview_base.take() {
            self.mask = base;
            self.mask_dirty = Some(PixelRect::whole(&self.mask));
            self.revision += 1;
        }
    }

    /// The part of the mask changed since the last call (for the GPU view's uploads).
    pub fn take_dirty(&mut self) -> Option<PixelRect> {
        self.mask_dirty.take()
    }

    /// The image texture (built again after a window change).
    pub fn image_texture(&mut self, ctx: &egui::Context) -> &TextureHandle {
        let (frame, window, invert) = (&self.frame, self.window, self.source.meta().invert_display);
        self.image_texture.get_or_insert_with(|| {
            let rgba = frame.to_rgba8(window, invert);
            let image = ColorImage::from_rgba_unmultiplied([frame.width as usize, frame.height as usize], &rgba);
            ctx.load_texture("image", image, TextureOptions::LINEAR)
        })
    }

    /// The mask overlay texture in the label table's colours (`lut`: RGB and strength per
    /// label, see [`LabelTable::overlay`](super::labels::LabelTable::overlay)), with only the
    /// changed part uploaded again.
    pub fn mask_texture(&mut self, ctx: &egui::Context, lut: &[[f32; 4]; 256]) -> &TextureHandle {
        let options = TextureOptions::NEAREST;
        let overlay: [Color32; 256] = std::array::from_fn(|l| {
            let [r, g, b, a] = lut[l].map(|c| (c.clamp(0.0, 1.0) * 255.0).round() as u8);
            if l == 0 || a == 0 { Color32::TRANSPARENT } else { Color32::from_rgba_unmultiplied(r, g, b, a) }
        });
        if overlay != *self.overlay {
            *self.overlay = overlay;
            self.mask_texture = None;
        }
        match (&mut self.mask_texture, self.mask_dirty.take()) {
            (None, _) => {
                let image = overlay_pixels(&self.mask, PixelRect::whole(&self.mask), &self.overlay);
                self.mask_texture = Some(ctx.load_texture("mask", image, options));
            }
            (Some(texture), Some(rect)) if !rect.is_empty() => {
                texture.set_partial([rect.x0 as usize, rect.y0 as usize], overlay_pixels(&self.mask, rect, &self.overlay), options);
            }
            _ => {}
        }
        self.mask_texture.as_ref().expect("made above")
    }

    /// The side of one patch-grid cell in image pixels (the model input is the image scaled to
    /// its longest side, padded at the bottom and right).
    pub fn grid_cell_size(&self) -> f32 {
        self.frame.width.max(self.frame.height) as f32 / GRID_CELLS as f32
    }

    /// Switches the grid cell under image point (x, y) on or off; true when a cell was hit.
    pub fn toggle_grid_cell(&mut self, x: f32, y: f32) -> bool {
        let cell = self.grid_cell_size();
        let (cx, cy) = ((x / cell).floor(), (y / cell).floor());
        if cx < 0.0 || cy < 0.0 || cx >= GRID_CELLS as f32 || cy >= GRID_CELLS as f32 {
            return false;
        }
        let grid = self.grid.get_or_insert_with(|| Mask::new(GRID_CELLS, GRID_CELLS));
        let (cx, cy) = (cx as u32, cy as u32);
        let on = grid.get(cx, cy).unwrap_or(0) != 0;
        grid.set(cx, cy, u8::from(!on));
        true
    }
}

/// RGBA overlay pixels for `rect` of the mask: each label's colour, clear where unlabelled.
fn overlay_pixels(mask: &Mask, rect: PixelRect, colors: &[Color32; 256]) -> ColorImage {
    let pixels = rect.labels_of(mask).into_iter().map(|label| colors[label as usize]).collect();
    ColorImage::new([rect.width() as usize, rect.height() as usize], pixels)
}
