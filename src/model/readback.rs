//! Tensor values back from the device, as f32 on the CPU. A failure is an error that names what
//! was being read and keeps burn's cause; it never becomes empty data.

use burn::prelude::*;
use burn::tensor::DataError;
use burn::tensor::backend::ExecutionError;

#[derive(Debug, thiserror::Error)]
pub enum ReadbackError {
    #[error("cannot read the {what} back from the device")]
    Device {
        what: &'static str,
        #[source]
        source: ExecutionError,
    },
    #[error("the device failed while {what}")]
    Sync {
        what: &'static str,
        #[source]
        source: ExecutionError,
    },
    #[error("cannot read the {what} as f32 values")]
    Values {
        what: &'static str,
        #[source]
        source: DataError,
    },
}

/// Every value of `tensor`, row-major, as f32. `what` names it in errors ("mask logits").
pub fn read_f32<B: Backend, const D: usize>(tensor: Tensor<B, D>, what: &'static str) -> Result<Vec<f32>, ReadbackError> {
    let data = tensor.try_into_data().map_err(|source| ReadbackError::Device { what, source })?;
    data.convert::<f32>().into_vec::<f32>().map_err(|source| ReadbackError::Values { what, source })
}

/// The single value of a one-element tensor, as f32.
pub fn read_scalar<B: Backend, const D: usize>(tensor: Tensor<B, D>, what: &'static str) -> Result<f32, ReadbackError> {
    let value = tensor.try_into_scalar().map_err(|source| ReadbackError::Device { what, source })?;
    Ok(value.elem())
}

/// Waits for the device to finish its queued work (so a time measured is the work's); `what`
/// says what that work was ("encoding the image").
pub fn sync<B: Backend>(device: &B::Device, what: &'static str) -> Result<(), ReadbackError> {
    B::sync(device).map_err(|source| ReadbackError::Sync { what, source })
}
