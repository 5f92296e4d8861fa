//! A training run on its own thread, for the app's Trainer tab: the same `train` loop, metrics
//! stream and checkpoints as `delightsam train`, with progress sent back over a channel and a
//! wake-up after each message so the UI repaints.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;

use burn::prelude::Backend;

use super::config::TrainConfig;
use super::control::Control;
use super::error::TrainError;
use super::trainer::{Event, Summary, train_on};
use crate::error_chain;
use crate::model::backend::{self, BackendKind, CudaUnavailable, Gpu};

/// Whether CUDA can train here: the device's name, or why not (see
/// [`backend::cuda_device`], which this words for the UI). The first call may take seconds.
pub fn cuda_device() -> Result<String, String> {
    backend::cuda_device().map_err(|e| error_chain(&e))
}

/// The CUDA answer if the probe already ran, without waiting for it.
pub fn cuda_device_if_probed() -> Option<Result<String, String>> {
    backend::cuda_device_if_probed().map(|answer| answer.map_err(|e| error_chain(&e)))
}

/// What a running job reports.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// The device the run is on.
    Device(String),
    Progress(Event),
    /// The run ended: finished, stopped (resumable) or failed (the error with its causes).
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
    pub fn start(config: TrainConfig, backend: BackendKind, wake: impl Fn() + Send + 'static) -> Self {
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
                Ok(result) => result.map_err(|e| error_chain(&e)),
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
}

impl Drop for TrainingJob {
    fn drop(&mut self) {
        self.control.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(config: &TrainConfig, backend: BackendKind, control: &Control, send: &dyn Fn(JobEvent)) -> Result<Summary, TrainError> {
    send(JobEvent::Device(device_description(backend)?));
    let mut on_event = |event: &Event| send(JobEvent::Progress(event.clone()));
    train_on(backend, config, control, &mut on_event)
}

/// What a run on `backend` trains on, in words for the user.
fn device_description(backend: BackendKind) -> Result<String, CudaUnavailable> {
    Ok(match backend {
        BackendKind::Cpu => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            format!("CPU, {threads} threads (burn flex)")
        }
        BackendKind::Wgpu => format!("{} (burn wgpu)", Gpu::name(&Default::default())),
        BackendKind::Cuda => backend::cuda_device()?,
    })
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    crate::panic_message(panic).unwrap_or_else(|| "unknown error".into())
}
