//! Why a training run could not start or go on.

use std::path::PathBuf;

use super::dataset::DatasetError;
use crate::imaging::ImageError;
use crate::model::backend::CudaUnavailable;
use crate::model::modality::ModalityError;
use crate::model::readback::ReadbackError;
use crate::model::weights::WeightsError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Every problem of every dataset folder and list, found before anything starts.
    #[error("{}", one_per_line(.0))]
    Datasets(Vec<DatasetError>),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Modality(#[from] ModalityError),
    #[error(transparent)]
    Sample(#[from] ImageError),
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    #[error(transparent)]
    Backend(#[from] CudaUnavailable),
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot write JSON", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: cannot write its embedding to the cache", path.display())]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the loss became {value} at step {step} (epoch {epoch}); training stopped. The last good \
         checkpoint is {}{}",
        checkpoint.display(),
        if *had_checkpoint { "" } else { " (none written yet)" }
    )]
    NonFinite { value: f32, step: usize, epoch: usize, checkpoint: PathBuf, had_checkpoint: bool },
    #[error("training was stopped before the first step; nothing was trained")]
    StoppedEarly,
    #[error("no training images after the validation split")]
    NoTrainingImages,
}

fn one_per_line(errors: &[DatasetError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
