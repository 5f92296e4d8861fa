//! Samples made ready once, before the first step: the fast recipe's embeddings (from the
//! on-disk cache, or from the frozen encoder and then cached), the full recipe's preprocessed
//! images, and every mask on the decoder's output grid.

use std::path::PathBuf;

use burn::prelude::*;

use super::cache::{EmbeddingCache, file_hash};
use super::dataset::Pair;
use super::config::{Recipe, TrainConfig};
use super::error::TrainError;
use crate::imaging::{Frame, Mask};
use crate::model::preprocess::{self, Geometry};
use crate::model::tiling::{self, Tile};
use crate::model::weights;
use crate::model::{DeLightSam, DeLightSamConfig, ModalityRegistry, readback};

/// The sizes samples and steps share, from the model config.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shapes {
    /// Side of the square model input.
    pub input: usize,
    /// One image's embedding: (channels, side, side).
    pub embedding: [usize; 3],
    /// Side of the decoder's square mask logits.
    pub mask: usize,
}

impl Shapes {
    pub fn of(config: &DeLightSamConfig) -> Self {
        Self { input: config.input_size(), embedding: config.embedding_shape(), mask: config.mask_size() }
    }

    pub fn embedding_len(&self) -> usize {
        self.embedding.iter().product()
    }
}

/// A sample ready for training: modality slot, model-input mask, and what validation needs.
pub(super) struct Prepared {
    pub slot: usize,
    /// The 0/1 mask in the model input's frame, on the decoder's output grid (row-major).
    pub mask: Vec<f32>,
    /// Fast recipe: the cached embedding; full recipe: the prepared image (3·S²).
    pub input: Vec<f32>,
    pub geometry: Geometry,
    /// Original-size 0/1 mask (validation only).
    pub truth: Option<Vec<u8>>,
}

/// Prepares pairs with one frozen model and, in the fast recipe, one embedding cache.
pub(super) struct Preparer<'a, B: Backend> {
    encoder: DeLightSam<B>,
    /// Which modalities are cut into tiles (the model config's).
    modalities: ModalityRegistry,
    cache: Option<EmbeddingCache>,
    shapes: Shapes,
    device: &'a B::Device,
    /// How many embeddings came from the cache so far.
    pub cached: usize,
}

impl<'a, B: Backend> Preparer<'a, B> {
    /// `encoder`: the starting model, ready for inference.
    pub fn new(
        config: &TrainConfig,
        encoder: DeLightSam<B>,
        modalities: ModalityRegistry,
        shapes: Shapes,
        device: &'a B::Device,
    ) -> Result<Self, TrainError> {
        let version = encoder_version(config)?;
        let cache = match config.recipe {
            Recipe::Fast => Some(
                EmbeddingCache::open(&config.cache_dir, &version)
                    .map_err(|source| TrainError::Io { path: config.cache_dir.clone(), source })?,
            ),
            Recipe::Full | Recipe::Adapt => None,
        };
        Ok(Self { encoder, modalities, cache, shapes, device, cached: 0 })
    }

    /// One pair as modality `slot`: one sample, or one per tile when the modality is tiled (the
    /// same tiles inference uses); `keep_truth` keeps each sample's full-size mask for validation.
    pub fn prepare(&mut self, pair: &Pair, slot: usize, keep_truth: bool) -> Result<Vec<Prepared>, TrainError> {
        let sample = pair.load()?;
        let stats = sample.frame.stats();
        let range = self.modalities.input_range(slot, (stats.min, stats.max));
        let Some(tiling) = self.modalities.tiling(slot) else {
            let whole = Tile { x: 0, y: 0, width: sample.frame.width, height: sample.frame.height };
            return Ok(vec![self.prepare_one(pair, slot, &sample.frame, &sample.mask, range, None, &whole, keep_truth)?]);
        };
        let plan = tiling.plan(sample.frame.width, sample.frame.height, self.shapes.input as u32);
        let frame = tiling::scale_frame(&sample.frame, plan.scaled);
        let mask = tiling::scale_mask(&sample.mask, plan.scaled);
        plan.tiles
            .iter()
            .map(|tile| {
                let (crop, crop_mask) = (tiling::crop_frame(&frame, tile), tiling::crop_mask(&mask, tile));
                self.prepare_one(pair, slot, &crop, &crop_mask, range, Some(plan.scaled), tile, keep_truth)
            })
            .collect()
    }

    /// One sample: `frame` normalised over `range`; `scaled` and `tile` name a tile in the cache.
    #[allow(clippy::too_many_arguments)]
    fn prepare_one(
        &mut self,
        pair: &Pair,
        slot: usize,
        frame: &Frame,
        truth_mask: &Mask,
        range: (f64, f64),
        scaled: Option<(u32, u32)>,
        tile: &Tile,
        keep_truth: bool,
    ) -> Result<Prepared, TrainError> {
        let model_input = preprocess::prepare_in_range(frame, self.shapes.input as u32, range);
        let geometry = model_input.geometry;
        let mask_geometry = Geometry::new(frame.width, frame.height, self.shapes.mask as u32);
        let mask = preprocess::mask_to_input(truth_mask, &mask_geometry);
        let input = match &self.cache {
            Some(cache) => {
                let tile_key = scaled
                    .map(|(sw, sh)| format!("-t{}_{}_{}_{}-of{sw}x{sh}", tile.x, tile.y, tile.width, tile.height))
                    .unwrap_or_default();
                let (embedding, from_cache) = self.embedding(cache, pair, slot, &tile_key, model_input)?;
                self.cached += usize::from(from_cache);
                embedding
            }
            None => model_input.data,
        };
        let truth = keep_truth.then(|| truth_mask.labels().to_vec());
        Ok(Prepared { slot, mask, input, geometry, truth })
    }

    /// The embedding of `pair` as `slot`, and whether it came from `cache` (else it is encoded
    /// now and cached).
    fn embedding(
        &self,
        cache: &EmbeddingCache,
        pair: &Pair,
        slot: usize,
        tile_key: &str,
        model_input: preprocess::ModelInput,
    ) -> Result<(Vec<f32>, bool), TrainError> {
        let hash = file_hash(&pair.image).map_err(|source| TrainError::Io { path: pair.image.clone(), source })?;
        let frame = if pair.frame > 0 { format!("-f{}", pair.frame) } else { String::new() };
        // A fixed input range changes the input: embeddings made with another are not these.
        let range_key = self.modalities.fixed_input_range(slot).map(|[low, high]| format!("-r{low}_{high}")).unwrap_or_default();
        let key = format!("{hash}{frame}-s{slot}-{}{range_key}{tile_key}", self.shapes.input);
        if let Some(embedding) = cache.get(&key, self.shapes.embedding_len()) {
            return Ok((embedding, true));
        }
        let (x, _) = model_input.into_tensor::<B>(self.device);
        let embedding = readback::read_f32(self.encoder.encode(x, slot), "embedding")?;
        cache.put(&key, &embedding).map_err(|source| TrainError::Cache { path: pair.image.clone(), source })?;
        Ok((embedding, false))
    }
}

/// Names the encoder whose embeddings the fast recipe caches: the hash of the starting record
/// (the fast recipe never changes the encoder, so a resumed run keeps the same cache).
fn encoder_version(config: &TrainConfig) -> Result<String, TrainError> {
    let start: PathBuf = config.init.clone().unwrap_or_else(weights::default_starting_record);
    // A head-only record's encoder is its LiteMedSAM record's: embeddings made with either match,
    // unless the record carries trained modality controllers of its own.
    let hash = |path: PathBuf| file_hash(&path).map_err(|source| TrainError::Io { path, source });
    if !weights::is_delightsam(&start) {
        return hash(start);
    }
    match weights::delightsam_storage(&start) {
        Ok(weights::Storage::HeadAndControllers { .. }) => {
            Ok(format!("{}+{}", hash(weights::encoder_record(&start))?, hash(start)?))
        }
        _ => hash(weights::encoder_record(&start)),
    }
}
