//! Running the models: segmenters per backend that encode each image once and decode any
//! number of prompts (LiteMedSAM) or patch grids (De-LightSAM) against the cached embedding.
//! The app's engine thread ([`worker`]) and the CLI own them.

mod auto_segmenter;
mod segmenter;
pub mod worker;

pub use auto_segmenter::{AutoSegmentation, AutoSegmenter, DynAutoSegmenter, GridSizeError};
pub use segmenter::{DynSegmenter, Segmentation, Segmenter, Timings};
