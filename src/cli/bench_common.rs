//! What both `bench` modes share: which backends to time, and timing helpers.

use std::fmt;
use std::time::{Duration, Instant};

use crate::model::backend::BackendKind;

/// What `bench` can time: one of the program's backends, or burn's NdArray CPU backend, which
/// the program never uses (timed only to compare with Flex, the CPU backend it does use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    Backend(BackendKind),
    CpuNdArray,
}

impl fmt::Display for Measured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backend(BackendKind::Cpu) => f.write_str("cpu (flex)"),
            Self::Backend(kind) => write!(f, "{kind}"),
            Self::CpuNdArray => f.write_str("cpu (ndarray)"),
        }
    }
}

/// A backend name as `--backends` takes it: cpu (or flex), wgpu, cuda, or ndarray.
pub fn parse_measured(text: &str) -> anyhow::Result<Measured> {
    if text.eq_ignore_ascii_case("ndarray") {
        return Ok(Measured::CpuNdArray);
    }
    match text.parse::<BackendKind>() {
        Ok(kind) => Ok(Measured::Backend(kind)),
        Err(_) => anyhow::bail!("unknown backend {text:?}: use cpu, wgpu, cuda, or ndarray (burn's NdArray CPU backend, for comparison)"),
    }
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// How long `f` takes.
pub fn time(f: &mut dyn FnMut()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

pub fn milliseconds(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
