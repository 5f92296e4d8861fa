//! A training run on its own thread, for the app's Trainer tab: the same `train` loop, metrics
//! stream and checkpoints as `delightsam train`, with progress sent back over a channel and a
//! wake-up after each message so the UI repaints.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;

use burn::backend::Autodiff;
use burn::prelude::Backend;

use super::trainer::{Control, Event, Summary, TrainConfig, train};
use crate::model::backend::{Cpu, Gpu};

/// Where a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainBackend {
    Cpu,
    Wgpu,
    /// burn's CUDA backend: only in builds with `--features cuda`, and only with an NVIDIA driver.
    Cuda,
}

impl TrainBackend {
    pub const ALL: [TrainBackend; 3] = [TrainBackend::Cpu, TrainBackend::Wgpu, TrainBackend::Cuda];
}

impl fmt::Display for TrainBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
            Self::Cuda => "cuda",
        })
    }
}

/// Whether CUDA can train here: the device's name, or why not. The first call probes the
/// device on a throwaway thread (burn's CUDA device panics on first use without a driver) and
/// may take seconds; later calls return the same answer at once.
pub fn cuda_device() -> Result<String, String> {
    CUDA_PROBE.get_or_init(probe_cuda).clone()
}

/// The CUDA answer if the probe already ran, without waiting for it.
pub fn cuda_device_if_probed() -> Option<Result<String, String>> {
    CUDA_PROBE.get().cloned()
}

static CUDA_PROBE: OnceLock<Result<String, String>> = OnceLock::new();

#[cfg(feature = "cuda")]
fn probe_cuda() -> Result<String, String> {
    use crate::model::backend::Cuda;
    // SAFETY: these only try to open the shared libraries (cudarc loads them the same way later).
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err("no NVIDIA driver found (libcuda.so.1 is not on the library path)".into());
    }
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("NVRTC not found (libnvrtc.so from the CUDA toolkit; see the README's CUDA section)".into());
    }
    std::thread::spawn(|| {
        std::panic::catch_unwind(|| {
            let device = Default::default();
            let t = burn::tensor::Tensor::<Cuda, 1>::ones([4], &device);
            let sum: f32 = t.sum().into_scalar();
            if sum != 4.0 {
                return Err(format!("the CUDA device computed 1+1+1+1 = {sum}"));
            }
            let context = cudarc::driver::CudaContext::new(0).map_err(|e| e.to_string())?;
            let name = context.name().map_err(|e| e.to_string())?;
            let memory = context.total_mem().map(|b| format!(", {:.0} GiB", b as f64 / (1u64 << 30) as f64)).unwrap_or_default();
            Ok(format!("{name}{memory}"))
        })
    })
    .join()
    .map_err(|_| "the CUDA probe thread failed".to_string())
    .and_then(|r| r.map_err(|panic| format!("no usable CUDA device: {}", panic_text(panic.as_ref()))))
    .and_then(|r| r)
}

#[cfg(not(feature = "cuda"))]
fn probe_cuda() -> Result<String, String> {
    Err("this build has no CUDA backend (build with --features cuda; see the README)".to_string())
}

/// What a running job reports.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// The device the run is on.
    Device(String),
    Progress(Event),
    /// The run ended: finished, stopped (resumable) or failed.
    Finished(Result<Summary, String>),
}

/// The UI's handle on a training thread. Dropping it stops the run (after saving a checkpoint)
/// and waits for the thread.
pub struct TrainingJob {
    control: Control,
    events: Receiver<JobEvent>,
    thread: Option<JoinHandle<()>>,
}

impl TrainingJob {
    pub fn start(config: TrainConfig, backend: TrainBackend, wake: impl Fn() + Send + 'static) -> Self {
        let control = Control::default();
        let (outbox, events) = channel();
        let thread_control = control.clone();
        let thread = std::thread::Builder::new().name("trainer".into()).spawn(move || {
            let send = |event: JobEvent| {
                if outbox.send(event).is_ok() {
                    wake();
                }
            };
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| run(&config, backend, &thread_control, &send)));
            let result = match outcome {
                Ok(result) => result,
                Err(panic) => Err(format!("the trainer failed: {}", panic_text(panic.as_ref()))),
            };
            send(JobEvent::Finished(result));
        });
        match thread {
            Ok(thread) => Self { control, events, thread: Some(thread) },
            Err(e) => {
                let (outbox, events) = channel();
                let _ = outbox.send(JobEvent::Finished(Err(format!("cannot start the training thread: {e}"))));
                Self { control, events, thread: None }
            }
        }
    }

    /// Everything reported since the last call, without waiting.
    pub fn poll(&self) -> Vec<JobEvent> {
        self.events.try_iter().collect()
    }

    /// Waits up to `timeout` for the next report (tests and scripts; the UI polls).
    pub fn wait(&self, timeout: std::time::Duration) -> Option<JobEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    pub fn set_paused(&self, paused: bool) {
        self.control.set_paused(paused);
    }

    pub fn is_paused(&self) -> bool {
        self.control.is_paused()
    }

    /// Paused, and the step that was running then has finished.
    pub fn is_parked(&self) -> bool {
        self.control.is_parked()
    }

    /// Asks the run to save a checkpoint and stop after the current step.
    pub fn stop(&self) {
        self.control.stop();
    }

    pub fn is_stopping(&self) -> bool {
        self.control.is_stopped()
    }

    /// The thread has ended (its `Finished` report may still be unread).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for TrainingJob {
    fn drop(&mut self) {
        self.control.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(config: &TrainConfig, backend: TrainBackend, control: &Control, send: &dyn Fn(JobEvent)) -> Result<Summary, String> {
    let mut on_event = |event: &Event| send(JobEvent::Progress(event.clone()));
    match backend {
        TrainBackend::Cpu => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            send(JobEvent::Device(format!("CPU, {threads} threads (burn flex)")));
            run_on::<Cpu>(config, control, &mut on_event)
        }
        TrainBackend::Wgpu => {
            send(JobEvent::Device(format!("{} (burn wgpu)", Gpu::name(&Default::default()))));
            run_on::<Gpu>(config, control, &mut on_event)
        }
        #[cfg(feature = "cuda")]
        TrainBackend::Cuda => {
            send(JobEvent::Device(cuda_device()?));
            run_on::<crate::model::backend::Cuda>(config, control, &mut on_event)
        }
        #[cfg(not(feature = "cuda"))]
        TrainBackend::Cuda => Err(cuda_device().err().unwrap_or_default()),
    }
}

fn run_on<B: Backend>(config: &TrainConfig, control: &Control, on_event: &mut dyn FnMut(&Event)) -> Result<Summary, String> {
    train::<Autodiff<B>>(config, &Default::default(), control, on_event).map_err(|e| e.to_string())
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    crate::panic_message(panic).unwrap_or_else(|| "unknown error".into())
}
