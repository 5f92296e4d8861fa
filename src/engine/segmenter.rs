use std::path::Path;
use std::time::{Duration, Instant};

use burn::prelude::*;

use crate::imaging::{Frame, Mask};
use crate::model::backend::{BackendKind, Cpu, Gpu};
use crate::model::preprocess::{self, Geometry};
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
    pub fn prepare(&mut self, key: &str, frame: &Frame) -> Duration {
        if self.cache.as_ref().is_some_and(|c| c.key == key) {
            return Duration::ZERO;
        }
        let start = Instant::now();
        let input = preprocess::prepare(frame, INPUT_SIZE);
        let side = INPUT_SIZE as usize;
        let tensor = Tensor::<B, 4>::from_data(TensorData::new(input.data, [1, 3, side, side]), &self.device);
        let embedding = self.model.encode(tensor);
        // Wait for the device, so the time measured is the encoder's.
        let _ = B::sync(&self.device);
        self.cache = Some(CachedEmbedding { key: key.to_string(), embedding, geometry: input.geometry });
        start.elapsed()
    }

    /// Segments with prompts given in original-image pixels, re-using the cached embedding.
    pub fn segment(&mut self, key: &str, frame: &Frame, prompts_in_image: &Prompts) -> Segmentation {
        let encode = self.prepare(key, frame);
        let start = Instant::now();
        let cache = self.cache.as_ref().expect("prepare fills the cache");
        let prompts = prompts_in_image.to_input_space(&cache.geometry);
        let decoded = self.model.decode(cache.embedding.clone(), &prompts);
        let logits_256: Vec<f32> = decoded.logits.into_data().convert::<f32>().to_vec().unwrap_or_default();
        let predicted_iou = decoded.iou.into_data().convert::<f32>().to_vec::<f32>().ok().and_then(|v| v.first().copied());
        let logits = preprocess::logits_to_image(&logits_256, &cache.geometry);
        let mask = preprocess::mask_from_logits(&logits, &cache.geometry);
        let timings = Timings { encode, decode: start.elapsed(), cached: encode.is_zero() };
        Segmentation { mask, logits, predicted_iou: predicted_iou.unwrap_or(f32::NAN), timings }
    }

    /// The cached embedding's values (for tests and tools).
    pub fn embedding(&self) -> Option<Tensor<B, 4>> {
        self.cache.as_ref().map(|c| c.embedding.clone())
    }

    pub fn model(&self) -> &LiteMedSam<B> {
        &self.model
    }
}

/// A segmenter on a backend chosen at run time.
pub enum DynSegmenter {
    Cpu(Segmenter<Cpu>),
    Wgpu(Segmenter<Gpu>),
}

impl DynSegmenter {
    pub fn load(kind: BackendKind, record: &Path) -> Result<Self, WeightsError> {
        Ok(match kind {
            BackendKind::Cpu => Self::Cpu(Segmenter::load(record, Default::default())?),
            BackendKind::Wgpu => Self::Wgpu(Segmenter::load(record, Default::default())?),
        })
    }

    pub fn kind(&self) -> BackendKind {
        match self {
            Self::Cpu(_) => BackendKind::Cpu,
            Self::Wgpu(_) => BackendKind::Wgpu,
        }
    }

    pub fn device_name(&self) -> String {
        match self {
            Self::Cpu(s) => s.device_name(),
            Self::Wgpu(s) => s.device_name(),
        }
    }

    pub fn prepare(&mut self, key: &str, frame: &Frame) -> Duration {
        match self {
            Self::Cpu(s) => s.prepare(key, frame),
            Self::Wgpu(s) => s.prepare(key, frame),
        }
    }

    pub fn segment(&mut self, key: &str, frame: &Frame, prompts: &Prompts) -> Segmentation {
        match self {
            Self::Cpu(s) => s.segment(key, frame, prompts),
            Self::Wgpu(s) => s.segment(key, frame, prompts),
        }
    }
}
