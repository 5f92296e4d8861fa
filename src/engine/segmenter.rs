use std::path::Path;
use std::time::{Duration, Instant};

use burn::prelude::*;

use super::EngineError;
use super::embedding_cache::{DEFAULT_CAPACITY, EmbeddingCache};
use crate::imaging::{Frame, Mask};
use crate::model::backend::{BackendKind, with_backend};
use crate::model::preprocess::{self, Geometry};
use crate::model::readback;
use crate::model::weights::{self, WeightsError};
use crate::model::{LiteMedSam, Prompts};

/// Side of LiteMedSAM's square input.
pub const INPUT_SIZE: u32 = 256;

#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Preprocessing + encoder, or zero when the embedding came from the cache.
    pub encode: Duration,
    /// Prompt encoder + mask decoder + postprocessing.
    pub decode: Duration,
    pub cached: bool,
}

pub struct Segmentation {
    pub mask: Mask,
    /// Logits at the original image size (positive = inside).
    pub logits: Vec<f32>,
    /// The model's own estimate of the mask's IoU.
    pub predicted_iou: f32,
    pub timings: Timings,
}

struct CachedEmbedding<B: Backend> {
    embedding: Tensor<B, 4>,
    geometry: Geometry,
}

/// LiteMedSAM on one device, with the embeddings of the last few images kept.
pub struct Segmenter<B: Backend> {
    model: LiteMedSam<B>,
    device: B::Device,
    /// The decoder's positional encoding, computed once (it depends only on the weights).
    image_pe: Tensor<B, 3>,
    cache: EmbeddingCache<String, CachedEmbedding<B>>,
}

impl<B: Backend> Segmenter<B> {
    pub fn load(record: &Path, device: B::Device) -> Result<Self, WeightsError> {
        let model = weights::load::<B>(record, &device)?.for_inference();
        let image_pe = model.image_pe(&device);
        Ok(Self { model, device, image_pe, cache: EmbeddingCache::new(DEFAULT_CAPACITY) })
    }

    pub fn device_name(&self) -> String {
        B::name(&self.device)
    }

    /// Encodes `frame` unless an embedding is cached under `key` (e.g. path + frame number).
    pub fn prepare(&mut self, key: &str, frame: &Frame) -> Result<Duration, EngineError> {
        let took = self.prepare_unless(key, frame, &|| false)?;
        Ok(took.expect("never asked to stop"))
    }

    /// As [`prepare`](Self::prepare), but gives up (`Ok(None)`, nothing cached) when `stop`
    /// says so between encoder blocks: for images encoded ahead of the user.
    pub fn prepare_unless(&mut self, key: &str, frame: &Frame, stop: &dyn Fn() -> bool) -> Result<Option<Duration>, EngineError> {
        if self.cache.get(&key.to_string()).is_some() {
            return Ok(Some(Duration::ZERO));
        }
        let start = Instant::now();
        let (tensor, geometry) = preprocess::prepare(frame, INPUT_SIZE).into_tensor::<B>(&self.device);
        let Some(embedding) = self.model.encode_unless(tensor, stop) else {
            return Ok(None);
        };
        // Wait for the device, so the time measured is the encoder's.
        readback::sync::<B>(&self.device, "encoding the image")?;
        self.cache.insert(key.to_string(), CachedEmbedding { embedding, geometry });
        Ok(Some(start.elapsed()))
    }

    pub fn is_cached(&self, key: &str) -> bool {
        self.cache.contains(&key.to_string())
    }

    /// Segments with prompts given in original-image pixels, re-using the cached embedding.
    pub fn segment(&mut self, key: &str, frame: &Frame, prompts_in_image: &Prompts) -> Result<Segmentation, EngineError> {
        let encode = self.prepare(key, frame)?;
        let start = Instant::now();
        let cache = self.cache.get(&key.to_string()).expect("prepare fills the cache");
        let prompts = prompts_in_image.to_input_space(&cache.geometry);
        let decoded = self.model.decode_with_pe(cache.embedding.clone(), self.image_pe.clone(), &prompts);
        let logits = preprocess::logits_at_image_size(decoded.logits, &cache.geometry)?;
        let predicted_iou = readback::read_f32(decoded.iou, "predicted IoU")?.first().copied().unwrap_or(f32::NAN);
        let mask = preprocess::mask_from_logits(&logits, &cache.geometry);
        let timings = Timings { encode, decode: start.elapsed(), cached: encode.is_zero() };
        Ok(Segmentation { mask, logits, predicted_iou, timings })
    }

    pub fn model(&self) -> &LiteMedSam<B> {
        &self.model
    }
}

/// What a segmenter offers whatever its backend (so [`DynSegmenter`] needs no match per call).
trait AnySegmenter: Send {
    fn device_name(&self) -> String;
    fn prepare(&mut self, key: &str, frame: &Frame) -> Result<Duration, EngineError>;
    fn prepare_unless(&mut self, key: &str, frame: &Frame, stop: &dyn Fn() -> bool) -> Result<Option<Duration>, EngineError>;
    fn is_cached(&self, key: &str) -> bool;
    fn segment(&mut self, key: &str, frame: &Frame, prompts: &Prompts) -> Result<Segmentation, EngineError>;
}

impl<B: Backend> AnySegmenter for Segmenter<B>
where
    Self: Send,
{
    fn device_name(&self) -> String {
        Segmenter::device_name(self)
    }

    fn prepare(&mut self, key: &str, frame: &Frame) -> Result<Duration, EngineError> {
        Segmenter::prepare(self, key, frame)
    }

    fn prepare_unless(&mut self, key: &str, frame: &Frame, stop: &dyn Fn() -> bool) -> Result<Option<Duration>, EngineError> {
        Segmenter::prepare_unless(self, key, frame, stop)
    }

    fn is_cached(&self, key: &str) -> bool {
        Segmenter::is_cached(self, key)
    }

    fn segment(&mut self, key: &str, frame: &Frame, prompts: &Prompts) -> Result<Segmentation, EngineError> {
        Segmenter::segment(self, key, frame, prompts)
    }
}

/// A segmenter on a backend chosen at run time.
pub struct DynSegmenter(Box<dyn AnySegmenter>);

impl DynSegmenter {
    pub fn load(kind: BackendKind, record: &Path) -> Result<Self, EngineError> {
        let segmenter = with_backend!(kind, B => {
            Box::new(Segmenter::<B>::load(record, Default::default())?) as Box<dyn AnySegmenter>
        })?;
        Ok(Self(segmenter))
    }

    pub fn device_name(&self) -> String {
        self.0.device_name()
    }

    pub fn prepare(&mut self, key: &str, frame: &Frame) -> Result<Duration, EngineError> {
        self.0.prepare(key, frame)
    }

    pub fn prepare_unless(&mut self, key: &str, frame: &Frame, stop: &dyn Fn() -> bool) -> Result<Option<Duration>, EngineError> {
        self.0.prepare_unless(key, frame, stop)
    }

    pub fn is_cached(&self, key: &str) -> bool {
        self.0.is_cached(key)
    }

    pub fn segment(&mut self, key: &str, frame: &Frame, prompts: &Prompts) -> Result<Segmentation, EngineError> {
        self.0.segment(key, frame, prompts)
    }
}
