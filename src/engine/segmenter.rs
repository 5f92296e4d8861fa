use std::path::Path;
use std::time::{Duration, Instant};

use burn::prelude::*;

use super::EngineError;
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
    key: String,
    embedding: Tensor<B, 4>,
    geometry: Geometry,
}

/// LiteMedSAM on one device, with the embedding of the last image kept.
pub struct Segmenter<B: Backend> {
    model: LiteMedSam<B>,
    device: B::Device,
    cache: Option<CachedEmbedding<B>>,
}

impl<B: Backend> Segmenter<B> {
    pub fn load(record: &Path, device: B::Device) -> Result<Self, WeightsError> {
        let model = weights::load::<B>(record, &device)?.for_inference();
        Ok(Self { model, device, cache: None })
    }

    pub fn device_name(&self) -> String {
        B::name(&self.device)
    }

    /// Encodes `frame` unless the cached embedding has the same `key` (e.g. path + frame number).
    pub fn prepare(&mut self, key: &str, frame: &Frame) -> Result<Duration, EngineError> {
        if self.cache.as_ref().is_some_and(|c| c.key == key) {
            return Ok(Duration::ZERO);
        }
        let start = Instant::now();
        let (tensor, geometry) = preprocess::prepare(frame, INPUT_SIZE).into_tensor::<B>(&self.device);
        let embedding = self.model.encode(tensor);
        // Wait for the device, so the time measured is the encoder's.
        readback::sync::<B>(&self.device, "encoding the image")?;
        self.cache = Some(CachedEmbedding { key: key.to_string(), embedding, geometry });
        Ok(start.elapsed())
    }

    /// Segments with prompts given in original-image pixels, re-using the cached embedding.
    pub fn segment(&mut self, key: &str, frame: &Frame, prompts_in_image: &Prompts) -> Result<Segmentation, EngineError> {
        let encode = self.prepare(key, frame)?;
        let start = Instant::now();
        let cache = self.cache.as_ref().expect("prepare fills the cache");
        let prompts = prompts_in_image.to_input_space(&cache.geometry);
        let decoded = self.model.decode(cache.embedding.clone(), &prompts);
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

    pub fn segment(&mut self, key: &str, frame: &Frame, prompts: &Prompts) -> Result<Segmentation, EngineError> {
        self.0.segment(key, frame, prompts)
    }
}
