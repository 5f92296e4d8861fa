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
use crate::model::tiling::{self, Blender, Tiling};
use crate::model::weights::{self, Provenance, WeightsError};
use crate::model::{DeLightSam, DeLightSamConfig};

#[derive(Debug, thiserror::Error)]
#[error("a patch grid must be {GRID_SIZE}×{GRID_SIZE} cells, got {width}×{height}")]
pub struct GridSizeError {
    pub width: u32,
    pub height: u32,
}

/// One automatic segmentation, at the image's size.
#[derive(Clone)]
pub struct AutoSegmentation {
    pub mask: Mask,
    /// Logits at the original image size (positive = inside).
    pub logits: Vec<f32>,
    /// The 32×32 patch prompt that was used (label 1 = on), over the padded model input; `None`
    /// when the image was segmented in tiles (each tile had its own).
    pub grid: Option<Mask>,
    /// How many tiles the image was segmented in (1: whole).
    pub tiles: usize,
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
    /// Whether tiled modalities are segmented in tiles (else whole, like the others).
    tiles_enabled: bool,
    /// The last tiled result, by (image key, slot): asking again costs nothing.
    last_tiled: Option<((String, usize), AutoSegmentation)>,
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
        Self {
            model: model.for_inference(),
            config,
            provenance,
            device,
            image_pe,
            cache: EmbeddingCache::new(DEFAULT_CAPACITY),
            tiles_enabled: true,
            last_tiled: None,
        }
    }

    /// Segment the modalities the config tiles in tiles (default) or whole, like the others.
    pub fn set_tiles_enabled(&mut self, enabled: bool) {
        self.tiles_enabled = enabled;
    }

    /// How `slot` is segmented: its tiling when it has one and tiles are enabled.
    pub fn tiling(&self, slot: usize) -> Option<Tiling> {
        self.config.modalities.tiling(slot).filter(|_| self.tiles_enabled)
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
        let (tensor, geometry) = self.model_input(frame, slot).into_tensor::<B>(&self.device);
        let embedding = self.model.encode(tensor, slot);
        let patch_logits = self.model.sp_generator.patch_logits(embedding.clone());
        readback::sync::<B>(&self.device, "encoding the image")?;
        self.cache.insert(cache_key, CachedEmbedding { embedding, patch_logits, geometry });
        Ok(start.elapsed())
    }

    /// Segments `frame` as modality `slot`; `grid` (32×32, nonzero = on) replaces the generated
    /// patch prompt. Re-uses the cached embedding when `key` and `slot` match. A tiled modality
    /// is segmented in tiles unless a grid is given (a grid prompts the whole image).
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
        if let (None, Some(tiling)) = (grid, self.tiling(slot)) {
            return self.segment_tiled(key, frame, slot, &tiling);
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
        Ok(AutoSegmentation { mask, logits, grid: Some(grid), tiles: 1, timings })
    }

    /// Tiled segmentation: every tile encoded and decoded with its own patch prompt, the tiles'
    /// logits blended at the scaled size, then resized to the image.
    fn segment_tiled(&mut self, key: &str, frame: &Frame, slot: usize, tiling: &Tiling) -> Result<AutoSegmentation, EngineError> {
        let cache_key = (key.to_string(), slot);
        if let Some((cached_key, result)) = &self.last_tiled
            && *cached_key == cache_key
        {
            let mut result = result.clone();
            result.timings = Timings { encode: Duration::ZERO, decode: Duration::ZERO, cached: true };
            return Ok(result);
        }
        let input = self.config.input_size() as u32;
        let plan = tiling.plan(frame.width, frame.height, input);
        let stats = frame.stats();
        let scaled = tiling::scale_frame(frame, plan.scaled);
        let mut blender = Blender::new(plan.scaled, tiling, input);
        let (mut encode, mut decode) = (Duration::ZERO, Duration::ZERO);
        for tile in &plan.tiles {
            let start = Instant::now();
            let crop = tiling::crop_frame(&scaled, tile);
            let range = self.config.modalities.input_range(slot, (stats.min, stats.max));
            let (tensor, geometry) = preprocess::prepare_in_range(&crop, input, range).into_tensor::<B>(&self.device);
            let embedding = self.model.encode(tensor, slot);
            let patch_logits = self.model.sp_generator.patch_logits(embedding.clone());
            readback::sync::<B>(&self.device, "encoding a tile")?;
            encode += start.elapsed();
            let start = Instant::now();
            let grid = SpGenerator::grid_from_logits(patch_logits);
            let logits = self.model.decode_with_pe(embedding, grid, slot, self.image_pe.clone());
            blender.add(tile, &preprocess::logits_at_image_size(logits, &geometry)?);
            decode += start.elapsed();
        }
        let blended = blender.finish();
        let logits = if plan.scaled == (frame.width, frame.height) {
            blended
        } else {
            let (sw, sh) = (plan.scaled.0 as usize, plan.scaled.1 as usize);
            preprocess::resize_bilinear(&blended, sw, sh, frame.width as usize, frame.height as usize)
        };
        let labels = logits.iter().map(|&v| u8::from(v > 0.0)).collect();
        let mask = Mask::from_labels(frame.width, frame.height, labels).expect("logits are resized to the image");
        let result = AutoSegmentation {
            mask,
            logits,
            grid: None,
            tiles: plan.tiles.len(),
            timings: Timings { encode, decode, cached: false },
        };
        self.last_tiled = Some((cache_key, result.clone()));
        Ok(result)
    }

    pub fn model(&self) -> &DeLightSam<B> {
        &self.model
    }

    /// `frame` as modality `slot`'s model input: scaled from the modality's fixed input range, or
    /// from the frame's own min–max.
    fn model_input(&self, frame: &Frame, slot: usize) -> preprocess::ModelInput {
        let stats = frame.stats();
        let range = self.config.modalities.input_range(slot, (stats.min, stats.max));
        preprocess::prepare_in_range(frame, self.config.input_size() as u32, range)
    }

    /// How unsure the model is about `frame` as modality `slot`: the mean binary entropy of its
    /// mask probabilities over the image (0 = certain everywhere, 1 = a coin toss everywhere).
    /// For active learning; leaves the cached embedding alone.
    pub fn uncertainty(&self, frame: &Frame, slot: usize) -> Result<f32, EngineError> {
        let (tensor, geometry) = self.model_input(frame, slot).into_tensor::<B>(&self.device);
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
    fn set_tiles_enabled(&mut self, enabled: bool);
    fn tiling(&self, slot: usize) -> Option<Tiling>;
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

    fn set_tiles_enabled(&mut self, enabled: bool) {
        AutoSegmenter::set_tiles_enabled(self, enabled)
    }

    fn tiling(&self, slot: usize) -> Option<Tiling> {
        AutoSegmenter::tiling(self, slot)
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

    pub fn set_tiles_enabled(&mut self, enabled: bool) {
        self.0.set_tiles_enabled(enabled)
    }

    pub fn tiling(&self, slot: usize) -> Option<Tiling> {
        self.0.tiling(slot)
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
