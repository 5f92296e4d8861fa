//! Training: losses now; datasets, metrics and the training loop come with the trainer.

pub mod losses;
