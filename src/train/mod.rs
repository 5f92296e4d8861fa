//! Training and evaluation on local folders: datasets, augmentation, losses, metrics, the
//! embedding cache of the fast recipe, and the training loop of both recipes.

pub mod augment;
pub mod cache;
pub mod dataset;
pub mod losses;
pub mod metrics;
pub mod trainer;

pub mod job;

pub use trainer::{Control, Event, EpochMetrics, Recipe, Summary, TrainConfig, TrainError, resumable, train};
