//! The models, generic over burn's `Backend`: TinyViT, SAM's prompt encoder, two-way
//! transformer and mask decoder, LiteMedSAM assembled from them, pre/post-processing, weights.

pub mod backend;
pub mod layers;
pub mod litemedsam;
pub mod mask_decoder;
pub mod preprocess;
pub mod prompt_encoder;
pub mod tinyvit;
pub mod transformer;
pub mod weights;

pub use litemedsam::{Decoded, LiteMedSam, LiteMedSamConfig};
pub use preprocess::{Geometry, ModelInput};
pub use prompt_encoder::{PointPrompt, Prompts};
