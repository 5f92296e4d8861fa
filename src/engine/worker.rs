//! The engine thread: it owns the device and the models; the UI sends requests over a channel
//! and gets replies back, with a wake-up call after each so it repaints. A request for an older
//! image than the newest one queued is dropped unanswered: switching images cancels stale work.
//! When nothing is asked, the engine encodes the worklist's neighbouring images ahead; a request
//! arriving meanwhile stops that encode at the next encoder block, so nobody waits for it.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

use super::{DynAutoSegmenter, DynSegmenter, EngineError};
use crate::error_chain;
use crate::imaging::{Frame, Mask};
use crate::model::Prompts;
use crate::model::backend::BackendKind;
use crate::model::weights::{self, Provenance};

/// Which image a request is about: the UI's counter, bumped on every image switch, plus a key
/// naming the image and frame for the embedding caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageId {
    pub generation: u64,
    pub key: String,
}

/// The embedding caches' key for frame `frame` of the image file at `path`.
pub fn image_key(path: &Path, frame: u32) -> String {
    format!("{}#{frame}", path.display())
}

/// The cache key of a volume opened from `path`; slice k's is `<key>#k` ([`slice_key`]). Not
/// the file's frame keys: an enhanced multi-frame file's slices are its frames sorted by
/// position, so slice k need not be frame k.
pub fn volume_key(path: &Path) -> String {
    format!("{}#slice", path.display())
}

pub fn slice_key(path: &Path, slice: u32) -> String {
    format!("{}#{slice}", volume_key(path))
}

pub enum Request {
    /// Encode the image now so that prompts on it are fast.
    Prepare { image: ImageId, frame: Arc<Frame> },
    /// Box and/or point prompts (LiteMedSAM), in image pixels. `preview`: the box is still being
    /// dragged (the answer is shown, but is not an undo step).
    Prompt { image: ImageId, frame: Arc<Frame>, prompts: Prompts, preview: bool },
    /// An automatic proposal (De-LightSAM) as `modality`, with the user's patch grid if edited.
    Auto { image: ImageId, frame: Arc<Frame>, modality: String, grid: Option<Mask> },
    /// Use another backend or De-LightSAM record from the next request on.
    Configure { backend: BackendKind, auto_model: Option<PathBuf> },
    /// How unsure De-LightSAM is about the image file's first frame (active learning).
    Uncertainty { path: PathBuf, modality: String },
    /// Encode these image files' first frames when idle, in this order (replaces the previous
    /// list): the worklist's neighbours of the shown image.
    EncodeAhead { paths: Vec<PathBuf> },
    /// Carry a box on slice `start` of a volume up and down through its slices (LiteMedSAM,
    /// each slice prompted with the previous one's mask box). `image` is the shown slice;
    /// the volume's slices are keyed `<path>#<slice>` in the embedding cache. A request
    /// arriving meanwhile cancels it (the slices done so far are answered).
    Propagate { image: ImageId, source: Arc<crate::imaging::ImageSource>, start: usize, bbox: [f32; 4] },
    /// An automatic proposal (De-LightSAM, `modality`) on every slice of a volume, answered as
    /// one `Propagated` reply; a request arriving meanwhile stops it (the slices done so far
    /// are answered).
    AutoVolume { image: ImageId, source: Arc<crate::imaging::ImageSource>, modality: String },
    /// Load LiteMedSAM and run it once on a made-up image, so that kernel compilation and
    /// autotuning (GPU) happen now rather than on the user's first click.
    WarmUp,
}

impl Request {
    fn image(&self) -> Option<&ImageId> {
        match self {
            Request::Prepare { image, .. }
            | Request::Prompt { image, .. }
            | Request::Auto { image, .. }
            | Request::Propagate { image, .. }
            | Request::AutoVolume { image, .. } => Some(image),
            Request::Configure { .. } | Request::Uncertainty { .. } | Request::EncodeAhead { .. } | Request::WarmUp => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    Prompt,
    Auto,
}

pub enum Reply {
    /// What the engine is doing now (shown in the status bar until the next reply).
    Busy { image: Option<ImageId>, what: String },
    /// A model is loaded: the backend and device it runs on.
    Loaded { model: String, backend: BackendKind, device: String, note: Option<String> },
    /// The image is encoded and ready for prompts.
    Prepared { image: ImageId, took: Duration },
    Mask { image: ImageId, kind: ResultKind, mask: Mask, grid: Option<Mask>, took: Duration, encode: Duration, preview: bool },
    Error { image: Option<ImageId>, message: String },
    /// The mean mask entropy of an image file (see `AutoSegmenter::uncertainty`), or why not.
    Uncertainty { path: PathBuf, score: Result<f32, String> },
    /// An image file was encoded ahead (its first frame's embedding is cached).
    EncodedAhead { path: PathBuf, took: Duration },
    /// The warm-up ran: the model is loaded and its kernels are compiled.
    WarmedUp { took: Duration },
    /// A propagation's masks, by slice (the start slice included), sorted; `cancelled` when a
    /// newer request stopped it early.
    Propagated { image: ImageId, masks: Vec<(usize, Mask)>, took: Duration, cancelled: bool },
}

/// The UI's handle on the engine thread. Dropping it ends the thread.
pub struct Worker {
    requests: Sender<Request>,
    replies: Receiver<Reply>,
    /// Requests sent and not yet taken by the engine: work done ahead stops when this is > 0.
    waiting: Arc<AtomicUsize>,
}

impl Worker {
    /// Starts the engine thread. `wake` is called after every reply (the UI's `request_repaint`).
    pub fn spawn(backend: BackendKind, auto_model: Option<PathBuf>, wake: impl Fn() + Send + 'static) -> Self {
        let (requests, inbox) = channel();
        let (outbox, replies) = channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        let engine = Engine {
            backend,
            auto_model,
            prompt_model: None,
            auto: None,
            ahead: VecDeque::new(),
            waiting: waiting.clone(),
            outbox,
            wake: Box::new(wake),
        };
        std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || engine.run(inbox))
            .expect("the OS refused to start the engine thread");
        Self { requests, replies, waiting }
    }

    pub fn send(&self, request: Request) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        // A send fails only when the engine thread is gone; the next poll reports that.
        let _ = self.requests.send(request);
    }

    /// Every reply that has arrived, without waiting.
    pub fn poll(&self) -> Vec<Reply> {
        let mut replies = Vec::new();
        loop {
            match self.replies.try_recv() {
                Ok(reply) => replies.push(reply),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    replies.push(Reply::Error { image: None, message: "the engine thread stopped; restart the program".into() });
                    break;
                }
            }
        }
        replies
    }

    /// Waits up to `timeout` for the next reply (tests and scripts; the UI polls).
    pub fn wait(&self, timeout: Duration) -> Option<Reply> {
        self.replies.recv_timeout(timeout).ok()
    }
}

struct Engine {
    backend: BackendKind,
    auto_model: Option<PathBuf>,
    prompt_model: Option<DynSegmenter>,
    auto: Option<DynAutoSegmenter>,
    /// Image files to encode when idle, next first.
    ahead: VecDeque<PathBuf>,
    waiting: Arc<AtomicUsize>,
    outbox: Sender<Reply>,
    wake: Box<dyn Fn() + Send>,
}

impl Engine {
    fn run(mut self, inbox: Receiver<Request>) {
        loop {
            let mut queue = Vec::new();
            if self.ahead.is_empty() {
                match inbox.recv() {
                    Ok(request) => queue.push(request),
                    Err(_) => return,
                }
            }
            loop {
                match inbox.try_recv() {
                    Ok(request) => queue.push(request),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            self.waiting.fetch_sub(queue.len(), Ordering::SeqCst);
            if queue.is_empty() {
                self.guarded(None, Self::encode_next_ahead);
                continue;
            }
            for request in latest_only(queue) {
                let image = request.image().cloned();
                self.guarded(image, |engine| engine.handle(request));
            }
        }
    }

    /// Runs `work`; a model bug must not take the window down with it: report it and go on.
    fn guarded(&mut self, image: Option<ImageId>, work: impl FnOnce(&mut Self)) {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(self)));
        if let Err(panic) = outcome {
            let message = crate::panic_message(panic.as_ref()).unwrap_or_else(|| "unknown error".into());
            // The models may be in a bad state after a panic: load them again next time.
            self.prompt_model = None;
            self.auto = None;
            self.ahead.clear();
            self.reply(Reply::Error { image, message: format!("the model failed: {message}") });
        }
    }

    fn reply(&self, reply: Reply) {
        if self.outbox.send(reply).is_ok() {
            (self.wake)();
        }
    }

    /// An error for the UI: its message with every cause.
    fn reply_error(&self, image: Option<ImageId>, error: &(dyn std::error::Error + 'static)) {
        self.reply(Reply::Error { image, message: error_chain(error) });
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Configure { backend, auto_model } => self.configure(backend, auto_model),
            Request::Prepare { image, frame } => self.prepare(image, &frame),
            Request::Prompt { image, frame, prompts, preview } => self.prompt(image, &frame, &prompts, preview),
            Request::Uncertainty { path, modality } => self.uncertainty(path, &modality),
            Request::Auto { image, frame, modality, grid } => self.auto(image, &frame, &modality, grid.as_ref()),
            Request::EncodeAhead { paths } => self.ahead = paths.into(),
            Request::WarmUp => self.warm_up(),
            Request::AutoVolume { image, source, modality } => self.auto_volume(image, &source, &modality),
            Request::Propagate { image, source, start, bbox } => match source.volume() {
                Some(volume) => {
                    self.propagate(image, &volume_key(source.path()), volume, start, bbox)
                }
                None => self.reply(Reply::Error { image: Some(image), message: "propagation needs a volume".into() }),
            },
        }
    }

    fn auto_volume(&mut self, image: ImageId, source: &crate::imaging::ImageSource, modality: &str) {
        let Some(volume) = source.volume() else {
            return self.reply(Reply::Error { image: Some(image), message: "every slice needs a volume".into() });
        };
        let Some(slot) = self.auto_slot(&image, modality) else { return };
        let (started, stop, total) = (Instant::now(), self.stop_signal(), volume.slice_count());
        let mut masks = Vec::new();
        let mut cancelled = false;
        for k in 0..total {
            if stop() {
                cancelled = true;
                break;
            }
            let what = format!("Automatic proposal ({modality}) on every slice: {k} of {total}…");
            self.reply(Reply::Busy { image: Some(image.clone()), what });
            let Some(model) = self.auto.as_mut() else { return };
            match model.segment(&slice_key(source.path(), k as u32), &volume.slice(k), slot, None) {
                Ok(result) => masks.push((k, result.mask)),
                Err(e) => return self.reply_error(Some(image), &e),
            }
        }
        self.reply(Reply::Propagated { image, masks, took: started.elapsed(), cancelled });
    }

    fn propagate(&mut self, image: ImageId, volume_key: &str, volume: &crate::imaging::volume::Volume, start: usize, bbox: [f32; 4]) {
        if !self.ensure_prompt_model(Some(&image)) {
            return;
        }
        let started = Instant::now();
        let stop = self.stop_signal();
        let (outbox, total) = (self.outbox.clone(), volume.slice_count());
        let mut cancelled = false;
        let mut progress = |done: usize| {
            if stop() {
                cancelled = true;
                return false;
            }
            let what = format!("Propagating through the slices: {done} of at most {total}…");
            if outbox.send(Reply::Busy { image: Some(image.clone()), what }).is_ok() {
                (self.wake)();
            }
            true
        };
        let Some(model) = self.prompt_model.as_mut() else { return };
        let rule = super::propagate::StopRule::default();
        match super::propagate::propagate(model, volume_key, volume, start, bbox, rule, &mut progress) {
            Ok(masks) => {
                let masks = masks.into_iter().map(|m| (m.slice, m.mask)).collect();
                self.reply(Reply::Propagated { image, masks, took: started.elapsed(), cancelled });
            }
            Err(e) => self.reply_error(Some(image), &e),
        }
    }

    /// True once a request is waiting: what work done ahead (or the warm-up) checks between
    /// encoder blocks.
    fn stop_signal(&self) -> impl Fn() -> bool + use<> {
        let waiting = self.waiting.clone();
        move || waiting.load(Ordering::SeqCst) > 0
    }

    /// Encodes the next image of the ahead list, unless it is cached; a request arriving
    /// meanwhile stops it (it goes back to the front of the list, for the next idle moment).
    fn encode_next_ahead(&mut self) {
        let Some(path) = self.ahead.pop_front() else { return };
        let stop = self.stop_signal();
        let key = image_key(&path, 0);
        let Some(model) = self.prompt_model.as_mut() else { return };
        if model.is_cached(&key) {
            return;
        }
        let frame = match crate::imaging::ImageSource::open(&path).and_then(|source| source.frame(0)) {
            Ok(frame) => frame,
            // Opening it for real will say what is wrong with it.
            Err(e) => return log::info!("not encoded ahead: {}: {}", path.display(), error_chain(&e)),
        };
        match model.prepare_unless(&key, &frame, &stop) {
            Ok(Some(took)) => self.reply(Reply::EncodedAhead { path, took }),
            Ok(None) => self.ahead.push_front(path),
            Err(e) => log::warn!("not encoded ahead: {}: {}", path.display(), error_chain(&e)),
        }
    }

    fn warm_up(&mut self) {
        let started = Instant::now();
        let id = ImageId { generation: 0, key: "warm-up".into() };
        if !self.ensure_prompt_model(None) {
            return;
        }
        self.reply(Reply::Busy { image: None, what: format!("Warming up {} (compiling and tuning kernels)…", self.backend) });
        // A made-up 256² image (a bright disc) and a box around the disc: encoder and decoder.
        let side = super::segmenter::INPUT_SIZE;
        let values = (0..side * side)
            .map(|i| {
                let (x, y) = ((i % side) as f32 - 128.0, (i / side) as f32 - 128.0);
                if x * x + y * y < 60.0 * 60.0 { 200.0 } else { 20.0 }
            })
            .collect();
        let frame = Frame::from_values(side, side, 1, values);
        let stop = self.stop_signal();
        let Some(model) = self.prompt_model.as_mut() else { return };
        let warmed = match model.prepare_unless(&id.key, &frame, &stop) {
            Ok(Some(_)) => model.segment(&id.key, &frame, &Prompts { bbox: Some([60.0, 60.0, 196.0, 196.0]), points: vec![] }),
            // The user asked for something: that request warms the same kernels.
            Ok(None) => return,
            Err(e) => Err(e),
        };
        match warmed {
            Ok(_) => self.reply(Reply::WarmedUp { took: started.elapsed() }),
            Err(e) => self.reply_error(None, &e),
        }
    }

    fn configure(&mut self, backend: BackendKind, auto_model: Option<PathBuf>) {
        if backend != self.backend {
            self.prompt_model = None;
            self.auto = None;
        }
        if auto_model != self.auto_model {
            self.auto = None;
        }
        self.backend = backend;
        self.auto_model = auto_model;
    }

    fn prepare(&mut self, image: ImageId, frame: &Frame) {
        if !self.ensure_prompt_model(Some(&image)) {
            return;
        }
        self.reply(Reply::Busy { image: Some(image.clone()), what: "Encoding the image…".into() });
        let Some(model) = self.prompt_model.as_mut() else { return };
        match model.prepare(&image.key, frame) {
            Ok(took) => self.reply(Reply::Prepared { image, took }),
            Err(e) => self.reply_error(Some(image), &e),
        }
    }

    fn prompt(&mut self, image: ImageId, frame: &Frame, prompts: &Prompts, preview: bool) {
        if !self.ensure_prompt_model(Some(&image)) {
            return;
        }
        if !preview {
            self.reply(Reply::Busy { image: Some(image.clone()), what: "Segmenting…".into() });
        }
        let Some(model) = self.prompt_model.as_mut() else { return };
        let started = Instant::now();
        match model.segment(&image.key, frame, prompts) {
            Ok(result) => self.reply(Reply::Mask {
                image,
                kind: ResultKind::Prompt,
                mask: result.mask,
                grid: None,
                took: started.elapsed(),
                encode: result.timings.encode,
                preview,
            }),
            Err(e) => self.reply_error(Some(image), &e),
        }
    }

    fn uncertainty(&mut self, path: PathBuf, modality: &str) {
        // A model that does not load answers with an error (image: None) instead.
        if !self.ensure_auto_model(None) {
            return;
        }
        let Some(model) = self.auto.as_ref() else { return };
        let score = first_frame_uncertainty(model, &path, modality).map_err(|e| error_chain(&e));
        self.reply(Reply::Uncertainty { path, score });
    }

    /// De-LightSAM loaded and `modality`'s slot in it; `None` after replying why not.
    fn auto_slot(&mut self, image: &ImageId, modality: &str) -> Option<usize> {
        if !self.ensure_auto_model(Some(image)) {
            return None;
        }
        match self.auto.as_ref()?.slot(modality) {
            Ok(slot) => Some(slot),
            Err(e) => {
                self.reply_error(Some(image.clone()), &e);
                None
            }
        }
    }

    fn auto(&mut self, image: ImageId, frame: &Frame, modality: &str, grid: Option<&Mask>) {
        let Some(slot) = self.auto_slot(&image, modality) else { return };
        let Some(model) = self.auto.as_mut() else { return };
        let tiled = if grid.is_none() && model.tiling(slot).is_some() { ", in tiles at full resolution" } else { "" };
        self.reply(Reply::Busy { image: Some(image.clone()), what: format!("Automatic proposal ({modality}{tiled})…") });
        let Some(model) = self.auto.as_mut() else { return };
        let started = Instant::now();
        match model.segment(&image.key, frame, slot, grid) {
            Ok(result) => self.reply(Reply::Mask {
                image,
                kind: ResultKind::Auto,
                mask: result.mask,
                grid: result.grid,
                took: started.elapsed(),
                encode: result.timings.encode,
                preview: false,
            }),
            Err(e) => self.reply_error(Some(image), &e),
        }
    }

    /// LiteMedSAM on the chosen backend, loaded on first use.
    fn ensure_prompt_model(&mut self, image: Option<&ImageId>) -> bool {
        if self.prompt_model.is_none() {
            self.reply(Reply::Busy { image: image.cloned(), what: format!("Loading LiteMedSAM on {}…", self.backend) });
            match DynSegmenter::load(self.backend, &weights::default_record_path()) {
                Ok(model) => {
                    self.reply(Reply::Loaded {
                        model: "LiteMedSAM".into(),
                        backend: self.backend,
                        device: model.device_name(),
                        note: None,
                    });
                    self.prompt_model = Some(model);
                }
                Err(e) => {
                    self.reply_error(image.cloned(), &e);
                    return false;
                }
            }
        }
        true
    }

    /// De-LightSAM on the chosen backend, loaded on first use.
    fn ensure_auto_model(&mut self, image: Option<&ImageId>) -> bool {
        if self.auto.is_none() {
            if let Some(image) = image {
                self.reply(Reply::Busy { image: Some(image.clone()), what: format!("Loading De-LightSAM on {}…", self.backend) });
            }
            match DynAutoSegmenter::load(self.backend, self.auto_model.as_deref()) {
                Ok(model) => {
                    let note = match model.provenance() {
                        Provenance::FreshFromLiteMedSam(_) => {
                            Some("no trained De-LightSAM model found: automatic proposals are untrained".to_string())
                        }
                        Provenance::Record(_) => None,
                    };
                    self.reply(Reply::Loaded { model: "De-LightSAM".into(), backend: self.backend, device: model.device_name(), note });
                    self.auto = Some(model);
                }
                Err(e) => {
                    self.reply_error(image.cloned(), &e);
                    return false;
                }
            }
        }
        true
    }
}

/// The mean mask entropy of the first frame of the image file at `path`, as `modality`.
fn first_frame_uncertainty(model: &DynAutoSegmenter, path: &std::path::Path, modality: &str) -> Result<f32, EngineError> {
    let slot = model.slot(modality)?;
    let frame = crate::imaging::ImageSource::open(path)?.frame(0)?;
    model.uncertainty(&frame, slot)
}

/// Drops requests for images older than the newest one in the queue, all but the last prompt
/// request per image (prompts are cumulative: the last one holds every box and point), and all
/// but the last list of images to encode ahead.
fn latest_only(queue: Vec<Request>) -> Vec<Request> {
    let newest = queue.iter().filter_map(|r| r.image().map(|i| i.generation)).max();
    let last_prompt = queue.iter().rposition(|r| matches!(r, Request::Prompt { .. }));
    let last_ahead = queue.iter().rposition(|r| matches!(r, Request::EncodeAhead { .. }));
    queue
        .into_iter()
        .enumerate()
        .filter(|(i, r)| match r {
            Request::Configure { .. } | Request::Uncertainty { .. } | Request::WarmUp => true,
            Request::EncodeAhead { .. } => Some(*i) == last_ahead,
            Request::Prompt { image, .. } => Some(image.generation) == newest && Some(*i) == last_prompt,
            r => r.image().map(|img| img.generation) == newest,
        })
        .map(|(_, r)| r)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(generation: u64) -> ImageId {
        ImageId { generation, key: format!("image{generation}") }
    }

    fn frame() -> Arc<Frame> {
        Arc::new(Frame::from_values(4, 4, 1, vec![0.0; 16]))
    }

    #[test]
    fn stale_requests_are_dropped() {
        let queue = vec![
            Request::Prepare { image: id(1), frame: frame() },
            Request::Prompt { image: id(1), frame: frame(), prompts: Prompts::default(), preview: false },
            Request::Configure { backend: BackendKind::Cpu, auto_model: None },
            Request::Prepare { image: id(2), frame: frame() },
            Request::Prompt { image: id(2), frame: frame(), prompts: Prompts::default(), preview: true },
            Request::Prompt { image: id(2), frame: frame(), prompts: Prompts { bbox: Some([0.0, 0.0, 2.0, 2.0]), points: vec![] }, preview: false },
        ];
        let kept = latest_only(queue);
        assert_eq!(kept.len(), 3);
        assert!(matches!(kept[0], Request::Configure { .. }));
        assert!(matches!(&kept[1], Request::Prepare { image, .. } if image.generation == 2));
        assert!(matches!(&kept[2], Request::Prompt { prompts, .. } if prompts.bbox.is_some()));
    }

    #[test]
    fn only_the_last_ahead_list_is_kept() {
        let queue = vec![
            Request::EncodeAhead { paths: vec!["a.png".into()] },
            Request::WarmUp,
            Request::EncodeAhead { paths: vec!["b.png".into(), "c.png".into()] },
        ];
        let kept = latest_only(queue);
        assert_eq!(kept.len(), 2);
        assert!(matches!(kept[0], Request::WarmUp));
        assert!(matches!(&kept[1], Request::EncodeAhead { paths } if paths.len() == 2));
    }
}
