//! Automatic segmentation with De-LightSAM: encode once per (image, modality), then decode with
//! the generated patch prompt or with an edited one, from the cached embedding.

use std::path::Path;
use std::time::{Duration, Instant};

use burn::prelude::*;

use super::EngineError;
use super::embedding_cache::{DEFAULT_CAPACITY, EmbeddingCache};
use super::segmenter::Timings;
use crate::imaging::{Frame, Mask};
use crate::model::backend::{BackendKind, with_backend};
use crate::model::modality::{ModalityError, ModalityRegistry};
use crate::model::preprocess::{self, Geometry};
use crate::model::readback;
use crate::model::sp_generator::{GRID_SIZE, SpGenerator};
use crate::model::weights::{self, Provenance, WeightsError};
use crate::model::{DeLightSam, DeLightSamConfig};

#[derive(Debug, thiserror::Error)]
#[error("a patch grid must be {GRID_SIZE}×{GRID_SIZE} cells, got {width}×{height}")]
pub struct GridSizeError {
    pub width: u32,
    pub height: u32,
}

/// One automatic segmentation, at the image's size.
pub struct AutoSegmentation {
    pub mask: Mask,
    /// Logits at the original image size (positive = inside).
    pub logits: Vec<f32>,
    /// The 32×32 patch prompt that was used (label 1 = on), over the padded model input.
    pub grid: Mask,
    pub timings: Timings,
}

struct CachedEmbedding<B: Backend> {
    embedding: Tensor<B, 4>,
    patch_logits: Tensor<B, 4>,
    geometry: Geometry,
}

/// De-LightSAM on one device, with the last few (image, modality) embeddings kept.
pub struct AutoSegmenter<B: Backend> {
    model: DeLightSam<B>,
    config: DeLightSamConfig,
    provenance: Provenance,
    device: B::Device,
    /// The decoder's positional encoding, computed once (it depends only on the weights).
    image_pe: Tensor<B, 3>,
    cache: EmbeddingCache<(String, usize), CachedEmbedding<B>>,
}

impl<B: Backend> AutoSegmenter<B> {
    /// `record`: a De-LightSAM model, or a LiteMedSAM record to start from; `None`: the shipped
    /// model (or, until one is trained, a fresh model from the shipped LiteMedSAM weights).
    pub fn load(record: Option<&Path>, device: B::Device) -> Result<Self, WeightsError> {
        let (model, config, provenance) = weights::load_delightsam_or_fresh::<B>(record, &device)?;
        Ok(Self::new(model, config, provenance, device))
    }

    pub fn new(model: DeLightSam<B>, config: DeLightSamConfig, provenance: Provenance, device: B::Device) -> Self {
        let image_pe = model.image_pe(config.embedding_shape()[1], &device);
        Self { model: model.for_inference(), config, provenance, device, image_pe, cache: EmbeddingCache::new(DEFAULT_CAPACITY) }
    }

    pub fn modalities(&self) -> &ModalityRegistry {
        &self.config.modalities
    }

    pub fn provenance(&self) -> &Provenance {
        &self.provenance
    }

    pub fn device_name(&self) -> String {
        B::name(&self.device)
    }

    pub fn slot(&self, modality: &str) -> Result<usize, ModalityError> {
        self.config.modalities.slot(modality)
    }

    /// Encodes `frame` for `slot` unless that embedding is cached under `key`.
    pub fn prepare(&mut self, key: &str, frame: &Frame, slot: usize) -> Result<Duration, EngineError> {
        let cache_key = (key.to_string(), slot);
        if self.cache.get(&cache_key).is_some() {
            return Ok(Duration::ZERO);
        }
        let start = Instant::now();
        let (tensor, geometry) = preprocess::prepare(frame, self.config.input_size() as u32).into_tensor::<B>(&self.device);
        let embedding = self.model.encode(tensor, slot);
        let patch_logits = self.model.sp_generator.patch_logits(embedding.clone());
        readback::sync::<B>(&self.device, "encoding the image")?;
        self.cache.insert(cache_key, CachedEmbedding { embedding, patch_logits, geometry });
        Ok(start.elapsed())
    }

    /// Segments `frame` as modality `slot`; `grid` (32×32, nonzero = on) replaces the generated
    /// patch prompt. Re-uses the cached embedding when `key` and `slot` match.
    pub fn segment(
        &mut self,
        key: &str,
        frame: &Frame,
        slot: usize,
        grid: Option<&Mask>,
    ) -> Result<AutoSegmentation, EngineError> {
        if let Some(g) = grid.filter(|g| (g.width(), g.height()) != (GRID_SIZE as u32, GRID_SIZE as u32)) {
            return Err(GridSizeError { width: g.width(), height: g.height() }.into());
        }
        let encode = self.prepare(key, frame, slot)?;
        let start = Instant::now();
        let cache = self.cache.get(&(key.to_string(), slot)).expect("prepare fills the cache");
        let grid_tensor = match grid {
            Some(g) => {
                let cells: Vec<f32> = g.labels().iter().map(|&l| f32::from(u8::from(l != 0))).collect();
                Tensor::<B, 4>::from_data(TensorData::new(cells, [1, 1, GRID_SIZE, GRID_SIZE]), &self.device)
            }
            None => SpGenerator::grid_from_logits(cache.patch_logits.clone()),
        };
        let grid_cells = readback::read_f32(grid_tensor.clone(), "patch grid")?;
        let logits = self.model.decode_with_pe(cache.embedding.clone(), grid_tensor, slot, self.image_pe.clone());
        let logits = preprocess::logits_at_image_size(logits, &cache.geometry)?;
        let mask = preprocess::mask_from_logits(&logits, &cache.geometry);
        let grid_labels = grid_cells.iter().map(|&v| u8::from(v > 0.5)).collect();
        let grid = Mask::from_labels(GRID_SIZE as u32, GRID_SIZE as u32, grid_labels).expect("a grid tensor has GRID_SIZE² cells");
        let timings = Timings { encode, decode: start.elapsed(), cached: encode.is_zero() };
        Ok(AutoSegmentation { mask, logits, grid, timings })
    }

    pub fn model(&self) -> &DeLightSam<B> {
        &self.model
    }

    /// How unsure the model is about `frame` as modality `slot`: the mean binary entropy of its
    /// mask probabilities over the image (0 = certain everywhere, 1 = a coin toss everywhere).
    /// For active learning; leaves the cached embedding alone.
    pub fn uncertainty(&self, frame: &Frame, slot: usize) -> Result<f32, EngineError> {
        let (tensor, geometry) = preprocess::prepare(frame, self.config.input_size() as u32).into_tensor::<B>(&self.device);
        let embedding = self.model.encode(tensor, slot);
        let grid = SpGenerator::grid_from_logits(self.model.sp_generator.patch_logits(embedding.clone()));
        let logits = self.model.decode_with_pe(embedding, grid, slot, self.image_pe.clone());
        Ok(mean_entropy(&preprocess::logits_at_image_size(logits, &geometry)?))
    }
}

/// Mean binary entropy (bits) of sigmoid(logits).
pub fn mean_entropy(logits: &[f32]) -> f32 {
    if logits.is_empty() {
        return 0.0;
    }
    let entropy = |logit: f32| {
        let p = 1.0 / (1.0 + (-logit as f64).exp());
        let q = 1.0 - p;
        let term = |x: f64| if x > 0.0 { -x * x.log2() } else { 0.0 };
        term(p) + term(q)
    };
    (logits.iter().map(|&l| entropy(l)).sum::<f64>() / logits.len() as f64) as f32
}

/// What an automatic segmenter offers whatever its backend.
trait AnyAutoSegmenter: Send {
    fn modalities(&self) -> &ModalityRegistry;
    fn provenance(&self) -> &Provenance;
    fn device_name(&self) -> String;
    fn segment(&mut self, key: &str, frame: &Frame, slot: usize, grid: Option<&Mask>) -> Result<AutoSegmentation, EngineError>;
    fn uncertainty(&self, frame: &Frame, slot: usize) -> Result<f32, EngineError>;
}

impl<B: Backend> AnyAutoSegmenter for AutoSegmenter<B>
where
    Self: Send,
{
    fn modalities(&self) -> &ModalityRegistry {
        AutoSegmenter::modalities(self)
    }

    fn provenance(&self) -> &Provenance {
        AutoSegmenter::provenance(self)
    }

    fn device_name(&self) -> String {
        AutoSegmenter::device_name(self)
    }

    fn segment(&mut self, key: &str, frame: &Frame, slot: usize, grid: Option<&Mask>) -> Result<AutoSegmentation, EngineError> {
        AutoSegmenter::segment(self, key, frame, slot, grid)
    }

    fn uncertainty(&self, frame: &Frame, slot: usize) -> Result<f32, EngineError> {
        AutoSegmenter::uncertainty(self, frame, slot)
    }
}

/// An automatic segmenter on a backend chosen at run time.
pub struct DynAutoSegmenter(Box<dyn AnyAutoSegmenter>);

impl DynAutoSegmenter {
    pub fn load(kind: BackendKind, record: Option<&Path>) -> Result<Self, EngineError> {
        let segmenter = with_backend!(kind, B => {
            Box::new(AutoSegmenter::<B>::load(record, Default::default())?) as Box<dyn AnyAutoSegmenter>
        })?;
        Ok(Self(segmenter))
    }

    pub fn modalities(&self) -> &ModalityRegistry {
        self.0.modalities()
    }

    pub fn provenance(&self) -> &Provenance {
        self.0.provenance()
    }

    pub fn device_name(&self) -> String {
        self.0.device_name()
    }

    pub fn slot(&self, modality: &str) -> Result<usize, ModalityError> {
        self.modalities().slot(modality)
    }

    pub fn segment(
        &mut self,
        key: &str,
        frame: &Frame,
        slot: usize,
        grid: Option<&Mask>,
    ) -> Result<AutoSegmentation, EngineError> {
        self.0.segment(key, frame, slot, grid)
    }

    pub fn uncertainty(&self, frame: &Frame, slot: usize) -> Result<f32, EngineError> {
        self.0.uncertainty(frame, slot)
    }
}

#[cfg(test)]
mod tests {
    use super::mean_entropy;

    #[test]
    fn entropy_is_zero_when_sure_and_one_at_a_coin_toss() {
        assert!(mean_entropy(&[20.0, -20.0, 30.0]) < 1e-6);
        assert!((mean_entropy(&[0.0, 0.0]) - 1.0).abs() < 1e-6);
        let half = mean_entropy(&[0.0, 40.0]);
        assert!((half - 0.5).abs() < 1e-6, "{half}");
        assert_eq!(mean_entropy(&[]), 0.0);
    }
}
