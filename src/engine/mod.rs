//! Running the models: a segmenter per backend that encodes each image once and decodes any
//! number of prompts against the cached embedding. The app's worker thread (and the CLI) own one.

mod segmenter;

pub use segmenter::{DynSegmenter, Segmentation, Segmenter, Timings};
