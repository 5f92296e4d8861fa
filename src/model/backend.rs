//! Backend choice, in one place. CPU: burn's `Flex` (gemm + SIMD + rayon), measured fastest on
//! this model (see `delightsam bench`); `NdArray` stays available for comparison. GPU: wgpu, and
//! CUDA in builds with `--features cuda`.
//!
//! [`BackendKind`] is what users choose (clap parses it, settings store it); [`with_backend!`]
//! is the only place a choice becomes a burn backend type.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// The CPU backend used by default.
pub type Cpu = burn::backend::Flex;
/// The alternative CPU backend, kept for benchmarks.
pub type CpuNdArray = burn::backend::NdArray;
/// Any GPU through wgpu (Vulkan, Metal, DX12; lavapipe without a GPU).
pub type Gpu = burn::backend::Wgpu;
/// NVIDIA GPUs through CUDA (build with `--features cuda`; needs the driver at run time).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

/// Where a model runs or trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's Flex on the CPU.
    #[value(alias = "flex")]
    Cpu,
    /// Any GPU through wgpu.
    #[value(alias = "gpu")]
    Wgpu,
    /// burn's CUDA backend: only in builds with `--features cuda`, and only with an NVIDIA driver.
    Cuda,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Cpu, BackendKind::Wgpu, BackendKind::Cuda];

    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}: use cpu, wgpu or cuda")]
pub struct UnknownBackend(pub String);

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            "cuda" => Ok(Self::Cuda),
            _ => Err(UnknownBackend(s.to_string())),
        }
    }
}

/// Why CUDA cannot run here.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CudaUnavailable {
    #[error("this build has no CUDA backend (build with --features cuda; see the README)")]
    NotBuilt,
    #[error("no NVIDIA driver found (libcuda.so.1 is not on the library path)")]
    NoDriver,
    #[error("NVRTC not found (libnvrtc.so from the CUDA toolkit; see the README's CUDA section)")]
    NoNvrtc,
    /// burn's CUDA device panicked on first use; the panic's message.
    #[error("no usable CUDA device: {0}")]
    Unusable(String),
    #[error("the CUDA device computed 1+1+1+1 = {0}")]
    WrongResult(f32),
    #[cfg(feature = "cuda")]
    #[error("cannot query the CUDA device")]
    Driver(#[source] cudarc::driver::DriverError),
    #[error("the CUDA probe thread failed")]
    ProbeThread,
}

/// Whether CUDA can run here: the device's name, or why not. The first call probes the device
/// on a throwaway thread (burn's CUDA device panics on first use without a driver) and may take
/// seconds; later calls return the same answer at once.
pub fn cuda_device() -> Result<String, CudaUnavailable> {
    CUDA_PROBE.get_or_init(probe_cuda).clone()
}

/// The CUDA answer if the probe already ran, without waiting for it.
pub fn cuda_device_if_probed() -> Option<Result<String, CudaUnavailable>> {
    CUDA_PROBE.get().cloned()
}

static CUDA_PROBE: OnceLock<Result<String, CudaUnavailable>> = OnceLock::new();

#[cfg(feature = "cuda")]
fn probe_cuda() -> Result<String, CudaUnavailable> {
    // SAFETY: these only try to open the shared libraries (cudarc loads them the same way later).
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaUnavailable::NoDriver);
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(CudaUnavailable::NoNvrtc);
    }
    let outcome = std::thread::spawn(|| std::panic::catch_unwind(cuda_device_name)).join();
    match outcome {
        Err(_) => Err(CudaUnavailable::ProbeThread),
        Ok(Err(panic)) => Err(CudaUnavailable::Unusable(
            crate::panic_message(panic.as_ref()).unwrap_or_else(|| "unknown error".into()),
        )),
        Ok(Ok(answer)) => answer,
    }
}

/// Adds four ones on the device, then asks the driver for its name and memory.
#[cfg(feature = "cuda")]
fn cuda_device_name() -> Result<String, CudaUnavailable> {
    let device = Default::default();
    let t = burn::tensor::Tensor::<Cuda, 1>::ones([4], &device);
    let sum: f32 = t.sum().into_scalar();
    if sum != 4.0 {
        return Err(CudaUnavailable::WrongResult(sum));
    }
    let context = cudarc::driver::CudaContext::new(0).map_err(CudaUnavailable::Driver)?;
    let name = context.name().map_err(CudaUnavailable::Driver)?;
    let memory = context.total_mem().map(|b| format!(", {:.0} GiB", b as f64 / (1u64 << 30) as f64)).unwrap_or_default();
    Ok(format!("{name}{memory}"))
}

#[cfg(not(feature = "cuda"))]
fn probe_cuda() -> Result<String, CudaUnavailable> {
    Err(CudaUnavailable::NotBuilt)
}

/// Evaluates `$body` with the type alias `$B` naming the burn backend of `$kind` (a
/// [`BackendKind`]), giving `Result<_, CudaUnavailable>`: CUDA is refused in builds without it
/// and where the probe finds no usable device. `$body` may use `?` for its own errors.
///
/// ```ignore
/// let device_name = with_backend!(kind, B => B::name(&Default::default()))?;
/// ```
macro_rules! with_backend {
    ($kind:expr, $B:ident => $body:expr) => {{
        use $crate::model::backend::{BackendKind, CudaUnavailable};
        match $kind {
            BackendKind::Cpu => {
                type $B = $crate::model::backend::Cpu;
                Ok::<_, CudaUnavailable>($body)
            }
            BackendKind::Wgpu => {
                type $B = $crate::model::backend::Gpu;
                Ok($body)
            }
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => match $crate::model::backend::cuda_device() {
                Ok(_) => {
                    type $B = $crate::model::backend::Cuda;
                    Ok($body)
                }
                Err(e) => Err(e),
            },
            #[cfg(not(feature = "cuda"))]
            BackendKind::Cuda => Err(CudaUnavailable::NotBuilt),
        }
    }};
}
pub(crate) use with_backend;

#[cfg(test)]
mod tests {
    use burn::prelude::Backend;
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn names_round_trip_through_text_serde_and_clap() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.to_string().parse::<BackendKind>(), Ok(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
            assert_eq!(<BackendKind as ValueEnum>::from_str(&kind.to_string(), false), Ok(kind));
        }
        assert_eq!("GPU".parse::<BackendKind>(), Ok(BackendKind::Wgpu));
        assert_eq!(<BackendKind as ValueEnum>::from_str("gpu", false), Ok(BackendKind::Wgpu));
        assert_eq!(serde_json::from_str::<BackendKind>("\"cuda\"").unwrap(), BackendKind::Cuda);
        assert!("tpu".parse::<BackendKind>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_is_refused_without_the_feature() {
        let result = with_backend!(BackendKind::Cuda, B => B::name(&Default::default()));
        assert!(matches!(result, Err(CudaUnavailable::NotBuilt)));
        let cpu = with_backend!(BackendKind::Cpu, B => B::name(&Default::default()));
        assert!(cpu.is_ok());
    }
}
