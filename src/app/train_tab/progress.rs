//! What a training run has reported, as the Train tab shows it: phase, epoch and step, the loss
//! and Dice curves, the best epoch, the ETA. Plain Rust: events in, numbers out; time is passed
//! in (the run's active time, pauses excluded), so everything here is testable without a run.

use std::path::PathBuf;
use std::time::Duration;

use crate::model::backend::BackendKind;
use crate::train::job::JobEvent;
use crate::train::{Event, Summary};

#[derive(Debug, Clone)]
pub enum Phase {
    Starting,
    Preparing { done: usize, total: usize, cached: usize },
    Training,
    Finished(Summary),
    Failed(String),
}

#[derive(Debug, Clone)]
pub struct RunProgress {
    pub name: String,
    pub out: PathBuf,
    pub backend: BackendKind,
    pub device: Option<String>,
    pub phase: Phase,
    /// Epochs in the whole plan, and those done before this start (a resumed run).
    pub epochs: usize,
    pub resumed_from: usize,
    pub steps_per_epoch: usize,
    pub epoch: usize,
    pub step: usize,
    /// (global step, loss) of every step.
    pub step_losses: Vec<[f64; 2]>,
    /// (global step at the epoch's end, mean loss).
    pub epoch_losses: Vec<[f64; 2]>,
    /// (epoch, validation Dice).
    pub dice: Vec<[f64; 2]>,
    pub best: Option<(usize, f64)>,
    steps_this_start: usize,
    training_started: Duration,
    epoch_started: Duration,
    epoch_seconds: Vec<f64>,
}

impl RunProgress {
    pub fn new(name: String, out: PathBuf, backend: BackendKind) -> Self {
        Self {
            name,
            out,
            backend,
            device: None,
            phase: Phase::Starting,
            epochs: 0,
            resumed_from: 0,
            steps_per_epoch: 0,
            epoch: 0,
            step: 0,
            step_losses: Vec::new(),
            epoch_losses: Vec::new(),
            dice: Vec::new(),
            best: None,
            steps_this_start: 0,
            training_started: Duration::ZERO,
            epoch_started: Duration::ZERO,
            epoch_seconds: Vec::new(),
        }
    }

    pub fn best_checkpoint(&self) -> PathBuf {
        self.out.join("best.bpk")
    }

    /// Takes one report, `now` into the run's active time; returns the result when the run ended.
    pub fn apply(&mut self, event: JobEvent, now: Duration) -> Option<Result<Summary, String>> {
        match event {
            JobEvent::Device(name) => self.device = Some(name),
            JobEvent::Progress(Event::Preparing { done, total, cached }) => self.phase = Phase::Preparing { done, total, cached },
            JobEvent::Progress(Event::Started { epochs, steps_per_epoch, resumed_from, .. }) => {
                self.phase = Phase::Training;
                self.epochs = epochs;
                self.steps_per_epoch = steps_per_epoch;
                self.resumed_from = resumed_from.unwrap_or(0);
                self.epoch = self.resumed_from + 1;
                self.step = self.resumed_from * steps_per_epoch;
                self.training_started = now;
                self.epoch_started = now;
            }
            JobEvent::Progress(Event::Step { epoch, step, loss, .. }) => {
                self.epoch = epoch;
                self.step = step;
                self.steps_this_start += 1;
                self.step_losses.push([step as f64, loss as f64]);
            }
            JobEvent::Progress(Event::Epoch(metrics)) => {
                self.epoch_losses.push([metrics.step as f64, metrics.loss]);
                if let Some(dice) = metrics.validation_dice {
                    self.dice.push([metrics.epoch as f64, dice]);
                    if self.best.is_none_or(|(_, b)| dice > b) {
                        self.best = Some((metrics.epoch, dice));
                    }
                }
                self.epoch_seconds.push((now - self.epoch_started).as_secs_f64());
                self.epoch_started = now;
                self.epoch = metrics.epoch + 1;
            }
            JobEvent::Finished(result) => {
                self.phase = match &result {
                    Ok(summary) => Phase::Finished(summary.clone()),
                    Err(e) => Phase::Failed(e.clone()),
                };
                return Some(result);
            }
        }
        None
    }

    /// Time left at `now`: from whole epochs once one is done, from steps before that.
    pub fn eta(&self, now: Duration) -> Option<Duration> {
        if !matches!(self.phase, Phase::Training) || self.epochs == 0 {
            return None;
        }
        let left_epochs = self.epochs.saturating_sub(self.resumed_from + self.epoch_seconds.len());
        if !self.epoch_seconds.is_empty() {
            let mean = self.epoch_seconds.iter().sum::<f64>() / self.epoch_seconds.len() as f64;
            let in_epoch = now.saturating_sub(self.epoch_started).as_secs_f64();
            return Some(Duration::from_secs_f64((mean * left_epochs as f64 - in_epoch).max(0.0)));
        }
        if self.steps_this_start == 0 {
            return None;
        }
        let per_step = now.saturating_sub(self.training_started).as_secs_f64() / self.steps_this_start as f64;
        let left_steps = (left_epochs * self.steps_per_epoch).saturating_sub(self.steps_this_start);
        Some(Duration::from_secs_f64(per_step * left_steps as f64))
    }
}

/// At most this many points per plotted line (a long run has far more steps than pixels).
pub const PLOT_POINTS: usize = 2000;

/// `points` as at most `max` points: the mean of each run of consecutive points.
pub fn decimate(points: &[[f64; 2]], max: usize) -> Vec<[f64; 2]> {
    if points.len() <= max || max == 0 {
        return points.to_vec();
    }
    let per = points.len().div_ceil(max);
    points
        .chunks(per)
        .map(|chunk| {
            let n = chunk.len() as f64;
            [chunk.iter().map(|p| p[0]).sum::<f64>() / n, chunk.iter().map(|p| p[1]).sum::<f64>() / n]
        })
        .collect()
}

pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TrainStage;
    use crate::train::EpochMetrics;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn started(epochs: usize, steps_per_epoch: usize, resumed_from: Option<usize>) -> RunProgress {
        let mut run = RunProgress::new("skin-1".into(), PathBuf::from("/runs/skin-1"), BackendKind::Cpu);
        let event = Event::Started { train: 8, validation: 2, epochs, steps_per_epoch, resumed_from };
        assert!(run.apply(JobEvent::Progress(event), secs(10.0)).is_none());
        run
    }

    fn step(run: &mut RunProgress, epoch: usize, step: usize, loss: f32, now: f64) {
        run.apply(JobEvent::Progress(Event::Step { stage: TrainStage::Head, epoch, step, loss }), secs(now));
    }

    fn epoch_end(run: &mut RunProgress, epoch: usize, step: usize, dice: f64, now: f64) {
        let metrics = EpochMetrics {
            epoch,
            stage: TrainStage::Head,
            step,
            loss: 0.5,
            mask_loss: 0.5,
            patch_loss: 0.0,
            distill_loss: 0.0,
            validation_dice: Some(dice),
            learning_rate: 1e-3,
            seconds: 1.0,
            images_per_second: 1.0,
        };
        run.apply(JobEvent::Progress(Event::Epoch(metrics)), secs(now));
    }

    #[test]
    fn steps_and_epochs_fill_the_curves_and_the_best_epoch() {
        let mut run = started(3, 2, None);
        assert!(matches!(run.phase, Phase::Training));
        assert_eq!((run.epoch, run.step), (1, 0));
        assert_eq!(run.eta(secs(10.0)), None, "no step yet: no estimate");
        step(&mut run, 1, 1, 0.9, 12.0);
        step(&mut run, 1, 2, 0.7, 14.0);
        epoch_end(&mut run, 1, 2, 0.6, 14.0);
        step(&mut run, 2, 3, 0.5, 16.0);
        step(&mut run, 2, 4, 0.4, 18.0);
        epoch_end(&mut run, 2, 4, 0.55, 18.0);
        assert_eq!(run.step_losses.len(), 4);
        assert_eq!(run.epoch_losses, [[2.0, 0.5], [4.0, 0.5]]);
        assert_eq!(run.dice, [[1.0, 0.6], [2.0, 0.55]]);
        assert_eq!(run.best, Some((1, 0.6)), "the better epoch stays best");
        assert_eq!(run.epoch, 3);
    }

    #[test]
    fn the_eta_counts_steps_first_then_whole_epochs() {
        let mut run = started(4, 10, None);
        step(&mut run, 1, 1, 1.0, 12.0);
        step(&mut run, 1, 2, 1.0, 14.0);
        // 2 s per step, 38 steps left.
        assert_eq!(run.eta(secs(14.0)), Some(secs(76.0)));
        epoch_end(&mut run, 1, 10, 0.5, 30.0);
        // One epoch took 20 s; three are left and 5 s of the next have passed.
        assert_eq!(run.eta(secs(35.0)), Some(secs(55.0)));
        assert_eq!(run.eta(secs(500.0)), Some(Duration::ZERO), "never negative");
    }

    #[test]
    fn a_resumed_run_counts_only_the_epochs_left() {
        let mut run = started(10, 5, Some(8));
        assert_eq!((run.resumed_from, run.epoch, run.step), (8, 9, 40));
        step(&mut run, 9, 41, 1.0, 11.0);
        assert_eq!(run.eta(secs(11.0)), Some(secs(9.0)), "1 s per step, 9 of the last 10 steps left");
    }

    #[test]
    fn the_end_of_a_run_is_its_result() {
        let mut run = started(1, 1, None);
        let ended = run.apply(JobEvent::Finished(Err("out of memory".into())), secs(11.0));
        assert!(matches!(ended, Some(Err(e)) if e == "out of memory"));
        assert!(matches!(&run.phase, Phase::Failed(e) if e == "out of memory"));
        assert_eq!(run.eta(secs(12.0)), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_text(Duration::from_secs(59)), "59 s");
        assert_eq!(duration_text(Duration::from_secs(125)), "2 min 5 s");
        assert_eq!(duration_text(Duration::from_secs(7380)), "2 h 3 min");
    }

    #[test]
    fn long_loss_curves_are_drawn_with_at_most_the_plot_budget() {
        let points: Vec<[f64; 2]> = (0..10_001).map(|i| [i as f64, (i % 2) as f64]).collect();
        let shown = decimate(&points, 2000);
        assert!((1000..=2000).contains(&shown.len()), "{}", shown.len());
        assert!(shown.iter().take(shown.len() - 1).all(|p| (p[1] - 0.5).abs() < 1e-9), "bucket means of 0/1 alternation");
        assert_eq!(decimate(&points[..10], 2000).len(), 10);
    }
}
