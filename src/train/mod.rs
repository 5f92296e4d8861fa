//! Training and evaluation on local folders: datasets, augmentation, losses, metrics, the
//! embedding cache of the fast recipe, and the training loop of both recipes.

pub mod augment;
pub mod cache;
mod config;
mod control;
pub mod dataset;
mod error;
pub mod losses;
pub mod metrics;
mod prepare;
mod step;
pub mod trainer;

pub mod job;

pub use config::{Recipe, TrainConfig};
pub use control::Control;
pub use error::TrainError;
pub use trainer::{Event, EpochMetrics, Summary, resumable, train, train_on};
