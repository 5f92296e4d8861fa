//! One optimiser step's losses for each stage of both recipes, the batches they run on, and
//! validation Dice.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::augment::{Rng, augment};
use super::losses;
use super::metrics;
use super::prepare::{Prepared, Shapes};
use super::config::Recipe;
use super::error::TrainError;
use crate::model::preprocess::{self, Geometry};
use crate::model::readback::{self, ReadbackError};
use crate::model::tinyvit::TinyVit;
use crate::model::{DeLightSam, TrainStage};

/// Batches of one modality each (the controller and query are per batch), shuffled.
pub(super) fn batches<'a>(set: &'a [Prepared], batch_size: usize, rng: &mut Rng) -> Vec<Vec<&'a Prepared>> {
    let mut slots: Vec<usize> = set.iter().map(|p| p.slot).collect();
    slots.sort_unstable();
    slots.dedup();
    let mut out = Vec::new();
    for slot in slots {
        let mut members: Vec<&Prepared> = set.iter().filter(|p| p.slot == slot).collect();
        rng.shuffle(&mut members);
        out.extend(members.chunks(batch_size.max(1)).map(|c| c.to_vec()));
    }
    rng.shuffle(&mut out);
    out
}

pub(super) struct StepLosses<B: Backend> {
    pub total: Tensor<B, 1>,
    pub mask: f64,
    pub patch: f64,
    pub distill: f64,
}

/// What every step of a run shares: the recipe, the sizes, the teacher (full recipe), the device.
pub(super) struct Steps<'a, B: AutodiffBackend> {
    pub recipe: Recipe,
    pub shapes: Shapes,
    pub teacher: Option<&'a TinyVit<B::InnerBackend>>,
    pub device: &'a B::Device,
}

impl<B: AutodiffBackend> Steps<'_, B> {
    /// The losses of `model` on `batch` (one modality) in `stage`.
    pub fn losses(&self, model: &DeLightSam<B>, stage: TrainStage, batch: &[&Prepared], rng: &mut Rng) -> Result<StepLosses<B>, TrainError> {
        if self.recipe == Recipe::Fast {
            return self.head_losses_on_embeddings(model, batch);
        }
        // Full and adapt recipes: images (augmented when training on masks) through the encoder.
        let n = batch.len();
        let slot = batch[0].slot;
        let mask_side = self.shapes.mask;
        let side = (batch[0].input.len() / 3).isqrt();
        let mut images = Vec::with_capacity(n * 3 * side * side);
        let mut masks = Vec::with_capacity(n * mask_side * mask_side);
        for p in batch {
            let mut image = p.input.clone();
            let mut mask = p.mask.clone();
            if matches!(stage, TrainStage::EndToEnd | TrainStage::Adapt) && side == mask_side {
                augment(&mut image, &mut mask, side, rng);
            }
            images.extend(image);
            masks.extend(mask);
        }
        let images = Tensor::<B, 4>::from_data(TensorData::new(images, [n, 3, side, side]), self.device);
        let masks = Tensor::<B, 4>::from_data(TensorData::new(masks, [n, 1, mask_side, mask_side]), self.device);
        match stage {
            TrainStage::Common | TrainStage::Domain => {
                let teacher = self.teacher.expect("the full recipe loads a teacher");
                let target = Tensor::<B, 4>::from_inner(teacher.forward(images.clone().inner()));
                let student = if stage == TrainStage::Common { model.encode_common(images) } else { model.encode(images, slot) };
                let distill = losses::distillation(student, target);
                let d = scalar(&distill, "distillation loss")?;
                Ok(StepLosses { total: distill, mask: 0.0, patch: 0.0, distill: d })
            }
            TrainStage::Head | TrainStage::EndToEnd | TrainStage::Adapt => {
                let out = model.forward(images, slot);
                mask_and_patch_losses(out, masks)
            }
        }
    }

    /// The fast recipe: the head on cached embeddings.
    fn head_losses_on_embeddings(&self, model: &DeLightSam<B>, batch: &[&Prepared]) -> Result<StepLosses<B>, TrainError> {
        let n = batch.len();
        let [channels, height, width] = self.shapes.embedding;
        let mask_side = self.shapes.mask;
        let embedding: Vec<f32> = batch.iter().flat_map(|p| p.input.iter().copied()).collect();
        let masks: Vec<f32> = batch.iter().flat_map(|p| p.mask.iter().copied()).collect();
        let embedding = Tensor::<B, 4>::from_data(TensorData::new(embedding, [n, channels, height, width]), self.device);
        let masks = Tensor::<B, 4>::from_data(TensorData::new(masks, [n, 1, mask_side, mask_side]), self.device);
        mask_and_patch_losses(model.head(embedding, batch[0].slot, None), masks)
    }
}

fn mask_and_patch_losses<B: AutodiffBackend>(out: crate::model::HeadOutput<B>, masks: Tensor<B, 4>) -> Result<StepLosses<B>, TrainError> {
    let mask = losses::mask_loss(out.mask_logits, masks.clone());
    let patch = losses::patch_loss(out.patch_logits, masks);
    let (m, p) = (scalar(&mask, "mask loss")?, scalar(&patch, "patch loss")?);
    Ok(StepLosses { total: mask.add(patch), mask: m, patch: p, distill: 0.0 })
}

/// A loss's value, read without keeping it in the autodiff graph.
fn scalar<B: AutodiffBackend>(loss: &Tensor<B, 1>, what: &'static str) -> Result<f64, ReadbackError> {
    readback::read_scalar(loss.clone().inner(), what).map(f64::from)
}

/// Mean Dice over the validation set, at each image's original size.
pub(super) fn validate<B: Backend>(
    model: &DeLightSam<B>,
    set: &[Prepared],
    recipe: Recipe,
    shapes: Shapes,
    device: &B::Device,
) -> Result<f64, TrainError> {
    let mut total = 0.0;
    for p in set {
        let embedding = match recipe {
            Recipe::Fast => {
                let [channels, height, width] = shapes.embedding;
                Tensor::<B, 4>::from_data(TensorData::new(p.input.clone(), [1, channels, height, width]), device)
            }
            Recipe::Full | Recipe::Adapt => {
                let side = (p.input.len() / 3).isqrt();
                let x = Tensor::<B, 4>::from_data(TensorData::new(p.input.clone(), [1, 3, side, side]), device);
                model.encode(x, p.slot)
            }
        };
        let logits = model.head(embedding, p.slot, None).mask_logits;
        let geometry = Geometry::new(p.geometry.original.0, p.geometry.original.1, shapes.mask as u32);
        let at_size = preprocess::logits_at_image_size(logits, &geometry)?;
        let pred = preprocess::mask_from_logits(&at_size, &geometry);
        total += metrics::dice(pred.labels(), p.truth.as_deref().unwrap_or(&[]));
    }
    Ok(total / set.len().max(1) as f64)
}
