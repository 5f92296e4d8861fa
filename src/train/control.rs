//! Pause and stop for a training run on another thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Pause and stop for a run on another thread. Both take effect between optimiser steps (or
/// between images while embeddings are prepared); a stopped run saves its current weights as
/// `model.bpk` first, so it can be resumed.
#[derive(Debug, Clone, Default)]
pub struct Control(Arc<ControlState>);

#[derive(Debug, Default)]
struct ControlState {
    stop: AtomicBool,
    /// The run is waiting in a pause (not in the middle of a step).
    parked: AtomicBool,
    paused: Mutex<bool>,
    changed: Condvar,
}

impl Control {
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.changed.notify_all();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stop.load(Ordering::SeqCst)
    }

    pub fn set_paused(&self, paused: bool) {
        *self.0.paused.lock().unwrap_or_else(|e| e.into_inner()) = paused;
        self.0.changed.notify_all();
    }

    pub fn is_paused(&self) -> bool {
        *self.0.paused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Paused and waiting: the step that was running when pause was asked for has ended.
    pub fn is_parked(&self) -> bool {
        self.0.parked.load(Ordering::SeqCst)
    }

    /// Blocks while paused (and not stopped); returns how long.
    pub(super) fn wait_while_paused(&self) -> Duration {
        let start = Instant::now();
        let mut paused = self.0.paused.lock().unwrap_or_else(|e| e.into_inner());
        while *paused && !self.is_stopped() {
            self.0.parked.store(true, Ordering::SeqCst);
            paused = self.0.changed.wait(paused).unwrap_or_else(|e| e.into_inner());
        }
        self.0.parked.store(false, Ordering::SeqCst);
        start.elapsed()
    }
}
