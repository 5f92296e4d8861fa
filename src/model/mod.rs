//! The models, generic over burn's `Backend`: TinyViT, SAM's prompt encoder, two-way
//! transformer and mask decoder, LiteMedSAM assembled from them; De-LightSAM's controller,
//! SP-Generator and QM-Decoder on top; pre/post-processing, read-back, weights.

pub mod backend;
pub mod controller;
pub mod delightsam;
pub mod gpu_cache;
pub mod kernels;
pub mod layers;
pub mod litemedsam;
pub mod mask_decoder;
pub mod modality;
pub mod params;
pub mod preprocess;
pub mod prompt_encoder;
pub mod qm_decoder;
pub mod readback;
pub mod sp_generator;
pub mod tiling;
pub mod tinyvit;
pub mod transformer;
pub mod weights;

pub use delightsam::{DeLightSam, DeLightSamConfig, HeadOutput, ParameterCounts, TrainStage};
pub use modality::ModalityRegistry;

pub use litemedsam::{Decoded, LiteMedSam, LiteMedSamConfig};
pub use preprocess::{Geometry, ModelInput};
pub use prompt_encoder::{PointPrompt, Prompts};
