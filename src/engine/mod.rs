//! Running the models: segmenters per backend that encode each image once and decode any
//! number of prompts (LiteMedSAM) or patch grids (De-LightSAM) against the cached embedding.
//! The app's engine thread ([`worker`]) and the CLI own them.

mod auto_segmenter;
mod embedding_cache;
pub mod propagate;
mod segmenter;
pub mod worker;

pub use auto_segmenter::{AutoSegmentation, AutoSegmenter, DynAutoSegmenter, GridSizeError};
pub use segmenter::{DynSegmenter, Segmentation, Segmenter, Timings};

use crate::imaging::ImageError;
use crate::model::backend::CudaUnavailable;
use crate::model::modality::ModalityError;
use crate::model::readback::ReadbackError;
use crate::model::weights::WeightsError;

/// Why a segmenter could not load or answer.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Backend(#[from] CudaUnavailable),
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    #[error(transparent)]
    GridSize(#[from] GridSizeError),
    #[error(transparent)]
    Modality(#[from] ModalityError),
    #[error(transparent)]
    Image(#[from] ImageError),
}
