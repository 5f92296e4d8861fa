//! Backend choice, in one place. CPU: burn's `Flex` (gemm + SIMD + rayon), measured fastest on
//! this model (see `delightsam bench`); `NdArray` stays available for comparison. GPU: wgpu.

use std::fmt;
use std::str::FromStr;

/// The CPU backend used by default.
pub type Cpu = burn::backend::Flex;
/// The alternative CPU backend, kept for benchmarks.
pub type CpuNdArray = burn::backend::NdArray;
/// Any GPU through wgpu (Vulkan, Metal, DX12; lavapipe without a GPU).
pub type Gpu = burn::backend::Wgpu;
/// NVIDIA GPUs through CUDA (build with `--features cuda`; needs the driver at run time).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Cpu,
    Wgpu,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        })
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            other => Err(format!("unknown backend {other:?}: use cpu or wgpu")),
        }
    }
}
