//! A fuzzing harness over every image reader (DICOM, PNG, JPEG, TIFF, BMP) on the stable toolchain.
//!
//! Seeded mutations of the project's own files (tests/data; in the long run also
//! ../shared/data/dicom) and of a few files made here, plus arbitrary bytes. Each input is written
//! to a file and read the way the app reads it: `ImageSource::open`, the first frames, their
//! statistics, the display conversions.
//!
//! - `fuzz_short` runs in the default test run (60 s of mutations);
//! - `fuzz_long` is ignored (1800 s): `cargo test --release --test fuzz -- --ignored fuzz`.
//!
//! Both first replay tests/data/fuzz/ (every input that ever failed), then mutate. Environment:
//! `DELIGHTSAM_FUZZ_SEED` (u64, decimal or 0x…), `DELIGHTSAM_FUZZ_SECONDS` (the mutation budget),
//! `DELIGHTSAM_FUZZ_OUT` (where failing inputs are saved; default <temp>/delightsam-fuzz),
//! `DELIGHTSAM_FUZZ_OVER_CAP` (`refuse`, the default, or `record`: see [`heap::RECORD_CEILING`]).
//!
//! A refusal (an `ImageError`) is a fine outcome. A failure is: a panic that escapes the reader;
//! an input slower than [`PER_INPUT_LIMIT`] (the watchdog saves it and aborts the process); an
//! allocation above [`heap::CAP`]; an error message that is empty or does not name the file; a
//! frame that contradicts its header; for DICOM, non-finite statistics or window presets.
//!
//! A refused allocation that the caller cannot handle aborts the process (stable Rust has no
//! alloc-error hook; `DELIGHTSAM_FUZZ_OVER_CAP=record` lets such allocations through, still
//! counted as failures, so that one run can list them all). So does a crash inside a C codec.
//! The input being decoded is therefore always in `<out>/current.bin` (its name and origin in
//! `current.txt`); the allocator names it before returning null, and the next run saves it under
//! `<out>/failures/` and replays it first. Failures are also appended to `<out>/found.txt` as
//! they are found, so that an abort loses only the final report.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use delightsam::imaging::{Frame, ImageError, ImageSource, SourceFormat};

use rng::Rng;

const DEFAULT_SEED: u64 = 0xDE11_6475_A3F0_0017;
/// Frames decoded per input: enough to reach per-frame code (offsets, functional groups).
const FRAMES_PER_INPUT: u32 = 4;
/// Longer than any real file in tests/data takes by a wide margin, on 2 slow cores.
const PER_INPUT_LIMIT: Duration =
    if cfg!(debug_assertions) { Duration::from_secs(60) } else { Duration::from_secs(10) };
/// Mutated inputs are cut back to this, so that insertions cannot grow them without bound.
const MAX_INPUT_BYTES: usize = 4 << 20;
/// An input slower than this is reported (not a failure; the watchdog's limit is).
const SLOW_INPUT: Duration = Duration::from_secs(1);
/// Inputs saved per distinct failure cause; the rest are only counted.
const SAVED_PER_CAUSE: usize = 5;

#[test]
fn fuzz_short() {
    fuzz("fuzz_short", 60.0, false);
}

#[test]
#[ignore = "30 minutes; run with: cargo test --release --test fuzz -- --ignored fuzz"]
fn fuzz_long() {
    fuzz("fuzz_long", 1800.0, true);
}

fn fuzz(name: &'static str, default_seconds: f64, long: bool) {
    // Both tests share the allocator's counters, the panic hook and the watchdog.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());

    let settings = Settings::from_env(default_seconds);
    heap::set_record_only(settings.record_over_cap);
    panics::install_hook();
    codec_log::install();
    let out = OutFolder::prepare(&settings.out).expect("the fuzz output folder cannot be created");
    watchdog::start(PER_INPUT_LIMIT, out.clone());

    let mut session = Session::new(name, out);
    let corpus = Corpus::load(long);
    println!(
        "{name}: seed {:#x}, {} s of mutations, {} seeds, output in {}",
        settings.seed,
        settings.budget.as_secs_f64(),
        corpus.seeds.len(),
        session.out.root.display()
    );
    if let Some(input) = session.out.take_interrupted() {
        println!("{name}: the previous run ended while decoding {}; replaying it first", input.describe());
        session.run(input);
    }
    session.replay_regressions();
    session.replay_seeds(&corpus);
    session.mutate(&corpus, settings.seed, settings.budget);
    session.finish();
}

struct Settings {
    seed: u64,
    budget: Duration,
    out: PathBuf,
    /// `DELIGHTSAM_FUZZ_OVER_CAP=record`: see [`heap::RECORD_CEILING`].
    record_over_cap: bool,
}

impl Settings {
    fn from_env(default_seconds: f64) -> Self {
        let seed = match std::env::var("DELIGHTSAM_FUZZ_SEED") {
            Ok(text) => parse_u64(&text).unwrap_or_else(|| panic!("DELIGHTSAM_FUZZ_SEED={text:?} is not a u64")),
            Err(_) => DEFAULT_SEED,
        };
        let seconds = match std::env::var("DELIGHTSAM_FUZZ_SECONDS") {
            Ok(text) => text
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .unwrap_or_else(|| panic!("DELIGHTSAM_FUZZ_SECONDS={text:?} is not a number of seconds")),
            Err(_) => default_seconds,
        };
        let out = std::env::var_os("DELIGHTSAM_FUZZ_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("delightsam-fuzz"));
        let record_over_cap = match std::env::var("DELIGHTSAM_FUZZ_OVER_CAP").as_deref() {
            Ok("record") => true,
            Ok("refuse") | Err(_) => false,
            Ok(other) => panic!("DELIGHTSAM_FUZZ_OVER_CAP={other:?}: expected refuse (the default) or record"),
        };
        Self { seed, budget: Duration::from_secs_f64(seconds), out, record_over_cap }
    }
}

fn parse_u64(text: &str) -> Option<u64> {
    let text = text.trim();
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16).ok(),
        None => text.replace('_', "").parse().ok(),
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs and what reading them must not do
// ---------------------------------------------------------------------------------------------

/// One file to read: its bytes, the extension it gets, and how it was made.
struct Input {
    bytes: Vec<u8>,
    extension: String,
    origin: String,
    /// What the figures count it under: the seed's format, "random", "corpus" or "seed".
    family: &'static str,
    steps: Vec<String>,
}

impl Input {
    fn describe(&self) -> String {
        let steps = if self.steps.is_empty() { String::new() } else { format!(" [{}]", self.steps.join("; ")) };
        format!("{}{steps} as {} ({} bytes)", self.origin, self.file_name(), self.bytes.len())
    }

    fn file_name(&self) -> String {
        if self.extension.is_empty() { "input".to_string() } else { format!("input.{}", self.extension) }
    }
}

/// Why reading stopped early.
enum Problem {
    Refused(ImageError),
    /// The reader answered, but the answer contradicts itself: what kind of contradiction, and
    /// the details.
    Contradiction(&'static str, String),
}

impl From<ImageError> for Problem {
    fn from(error: ImageError) -> Self {
        Self::Refused(error)
    }
}

/// Reads `path` the way the app does. Returns the number of frames decoded.
fn exercise(path: &Path) -> Result<u32, Problem> {
    let source = ImageSource::open(path)?;
    let meta = source.meta();
    for preset in &meta.windows {
        let _label = meta.window_label(preset);
    }
    check_windows(&source)?;
    let frames = meta.frames.min(FRAMES_PER_INPUT);
    for index in 0..frames {
        let frame = source.frame(index)?;
        check_frame(&source, &frame)?;
        check_display(&source, &frame)?;
    }
    match source.frame(meta.frames) {
        Err(ImageError::FrameOutOfRange { .. }) => Ok(frames),
        Err(other) => {
            Err(contradiction("frame past the end", format!("frame {} (one past the last): {other}", meta.frames)))
        }
        Ok(_) => Err(contradiction(
            "frame past the end",
            format!("frame {} decoded, but the file has {} frames", meta.frames, meta.frames),
        )),
    }
}

fn contradiction(cause: &'static str, detail: String) -> Problem {
    Problem::Contradiction(cause, detail)
}

/// Issue 17: non-finite window values are refused or ignored, never used.
fn check_windows(source: &ImageSource) -> Result<(), Problem> {
    let meta = source.meta();
    if meta.format != SourceFormat::Dicom {
        return Ok(());
    }
    match meta.windows.iter().find(|p| !(p.window.center.is_finite() && p.window.width.is_finite())) {
        Some(p) => Err(contradiction(
            "non-finite window preset",
            format!("non-finite window preset C {} / W {}", p.window.center, p.window.width),
        )),
        None => Ok(()),
    }
}

fn check_frame(source: &ImageSource, frame: &Frame) -> Result<(), Problem> {
    let meta = source.meta();
    let samples = frame.width as usize * frame.height as usize * usize::from(frame.channels);
    if frame.data.len() != samples {
        return Err(contradiction(
            "frame data length",
            format!("frame {}×{}×{} holds {} samples", frame.width, frame.height, frame.channels, frame.data.len()),
        ));
    }
    if (frame.width, frame.height, frame.channels) != (meta.cols, meta.rows, meta.channels) {
        return Err(contradiction(
            "frame shape differs from the header",
            format!(
                "frame is {}×{}×{}, the header says {}×{}×{}",
                frame.width, frame.height, frame.channels, meta.cols, meta.rows, meta.channels
            ),
        ));
    }
    // Issue 17: non-finite rescales never reach the statistics.
    let stats = frame.stats();
    if meta.format == SourceFormat::Dicom && !(stats.min.is_finite() && stats.max.is_finite() && stats.mean.is_finite())
    {
        return Err(contradiction(
            "non-finite statistics",
            format!(
                "non-finite statistics (min {}, max {}, mean {}; rescale {:?})",
                stats.min, stats.max, stats.mean, meta.rescale
            ),
        ));
    }
    Ok(())
}

fn check_display(source: &ImageSource, frame: &Frame) -> Result<(), Problem> {
    let window = source.default_window(frame);
    let rgba = frame.to_rgba8(window, source.meta().invert_display);
    if rgba.len() != frame.pixel_count() * 4 {
        return Err(contradiction(
            "display conversion length",
            format!("{} RGBA bytes for {} pixels", rgba.len(), frame.pixel_count()),
        ));
    }
    let grey = frame.to_luma8(frame.full_range_window(), false);
    if grey.len() != frame.pixel_count() {
        return Err(contradiction(
            "display conversion length",
            format!("{} grey bytes for {} pixels", grey.len(), frame.pixel_count()),
        ));
    }
    if frame.pixel_count() > 0 && frame.value_at(frame.width - 1, frame.height - 1).is_none() {
        return Err(contradiction("value lookup", "the last pixel has no value".to_string()));
    }
    Ok(())
}

/// The variant's name, e.g. "Truncated", for the figures.
fn error_kind(error: &ImageError) -> String {
    let debug = format!("{error:?}");
    debug.split(|c: char| !c.is_alphanumeric()).next().unwrap_or("?").to_string()
}

/// The project's rule: a refusal says something, and names the file.
fn message_problem(error: &ImageError, path: &Path) -> Option<String> {
    let text = error.to_string();
    if text.trim().is_empty() {
        return Some(format!("empty error message ({})", error_kind(error)));
    }
    if !text.contains(&path.display().to_string()) {
        return Some(format!("error message without the file's path ({}): {text}", error_kind(error)));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// A session: runs inputs, keeps the figures, saves what fails
// ---------------------------------------------------------------------------------------------

struct Failure {
    cause: String,
    detail: String,
    input: String,
    saved: Option<PathBuf>,
}

#[derive(Default)]
struct Figures {
    tried: BTreeMap<&'static str, u64>,
    outcomes: BTreeMap<String, u64>,
    failures: Vec<Failure>,
    failures_by_cause: BTreeMap<String, usize>,
    panics: u64,
    cap_violations: u64,
    contradictions: u64,
    message_problems: u64,
    /// Panics inside codecs that the reader's guard turned into errors, by where they happened.
    codec_panics: BTreeMap<String, (u64, String)>,
    slow_inputs: u64,
    slowest: Option<(Duration, String)>,
    largest_input_peak: Option<(usize, String)>,
    mutated: u64,
    mutation_time: Duration,
}

struct Session {
    name: &'static str,
    out: OutFolder,
    work: tempfile::TempDir,
    figures: Figures,
    started: Instant,
}

impl Session {
    fn new(name: &'static str, out: OutFolder) -> Self {
        let work = tempfile::Builder::new().prefix("delightsam-fuzz-work").tempdir().expect("a temporary folder");
        Self { name, out, work, figures: Figures::default(), started: Instant::now() }
    }

    fn replay_regressions(&mut self) {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
        for path in files_in(&folder) {
            if path.extension().is_some_and(|e| e == "md") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let extension = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
            let origin = format!("tests/data/fuzz/{}", path.file_name().unwrap_or_default().to_string_lossy());
            self.run(Input { bytes, extension, origin, family: "corpus", steps: Vec::new() });
        }
    }

    fn replay_seeds(&mut self, corpus: &Corpus) {
        for seed in &corpus.seeds {
            let extension = seed.extension.clone();
            self.run(Input {
                bytes: seed.bytes.clone(),
                extension,
                origin: seed.name.clone(),
                family: "seed",
                steps: Vec::new(),
            });
        }
    }

    fn mutate(&mut self, corpus: &Corpus, seed: u64, budget: Duration) {
        let start = Instant::now();
        let mut index = 0u64;
        while start.elapsed() < budget {
            let rng = Rng::for_input(seed, index);
            let mut input = corpus.mutated_input(&rng);
            input.origin = format!("#{index} {}", input.origin);
            self.run(input);
            index += 1;
        }
        self.figures.mutated = index;
        self.figures.mutation_time = start.elapsed();
    }

    fn run(&mut self, input: Input) {
        let path = self.work.path().join(input.file_name());
        if let Err(e) = std::fs::write(&path, &input.bytes) {
            panic!("cannot write the fuzz input {}: {e}", path.display());
        }
        if let Err(e) = self.out.record_current(&input) {
            panic!("cannot write {}: {e}", self.out.current_bin().display());
        }
        *self.figures.tried.entry(input.family).or_default() += 1;

        panics::clear();
        codec_log::clear();
        let over_cap_before = heap::over_cap();
        heap::start_input();
        let started = Instant::now();
        watchdog::begin();
        let result = catch_unwind(AssertUnwindSafe(|| exercise(&path)));
        watchdog::end();
        let elapsed = started.elapsed();
        let input_peak = heap::input_peak();

        self.note_time_and_memory(&input, elapsed, input_peak);
        self.note_codec_panics(&input, result.is_err());
        match result {
            Ok(Ok(_frames)) => self.count("decoded".to_string()),
            Ok(Err(Problem::Refused(error))) => {
                self.count(format!("refused: {}", error_kind(&error)));
                if let Some(problem) = message_problem(&error, &path) {
                    self.figures.message_problems += 1;
                    self.fail(&input, problem, error.to_string());
                }
            }
            Ok(Err(Problem::Contradiction(cause, detail))) => {
                self.count("contradiction".to_string());
                self.figures.contradictions += 1;
                self.fail(&input, format!("contradiction: {cause}"), detail);
            }
            Err(payload) => {
                self.count("panic".to_string());
                self.figures.panics += 1;
                let caught = panics::take();
                let message = caught
                    .as_ref()
                    .map(|c| c.message.clone())
                    .or_else(|| delightsam::panic_message(payload.as_ref()))
                    .unwrap_or_else(|| "a panic without a message".to_string());
                let location = caught.as_ref().map(|c| c.location.clone()).unwrap_or_default();
                let (place, _) = split_panic_text(&format!("panicked at {location}: {message}"));
                let backtrace = caught.map(|c| c.backtrace).unwrap_or_default();
                self.fail(&input, format!("panic at {place}"), format!("{message}\n{backtrace}"));
            }
        }
        let over_cap = heap::over_cap() - over_cap_before;
        if over_cap > 0 {
            self.figures.cap_violations += over_cap as u64;
            let (size, trace) = heap::take_trace().unwrap_or_default();
            let detail = format!(
                "{over_cap} allocation(s) above the cap of {} bytes; the first, {size} bytes, from:\n{}",
                heap::CAP,
                trim_backtrace(&trace, &["fuzz::heap", "__rust_alloc", "__rust_realloc", "__rdl_", "alloc::alloc"])
            );
            self.fail(&input, "allocation above the cap".to_string(), detail);
        }
    }

    fn count(&mut self, outcome: String) {
        *self.figures.outcomes.entry(outcome).or_default() += 1;
    }

    fn note_time_and_memory(&mut self, input: &Input, elapsed: Duration, input_peak: usize) {
        if elapsed > SLOW_INPUT {
            self.figures.slow_inputs += 1;
            if self.figures.slow_inputs <= SAVED_PER_CAUSE as u64 {
                let saved = self.out.save("slow", "slow", &input.bytes, &input.extension);
                let saved = saved.map(|p| p.display().to_string()).unwrap_or_default();
                self.out.log(&format!(
                    "SLOW {:.1} s\n  input: {}\n  saved: {saved}",
                    elapsed.as_secs_f64(),
                    input.describe()
                ));
            }
        }
        if self.figures.slowest.as_ref().is_none_or(|(slowest, _)| elapsed > *slowest) {
            let saved = self.out.save_as("slowest", &input.bytes, &input.extension);
            let place = saved.map(|p| format!(", saved as {}", p.display())).unwrap_or_default();
            self.figures.slowest = Some((elapsed, format!("{}{place}", input.describe())));
        }
        if self.figures.largest_input_peak.as_ref().is_none_or(|(peak, _)| input_peak > *peak) {
            self.figures.largest_input_peak = Some((input_peak, input.describe()));
        }
    }

    /// Panics that did not escape: caught by the reader's guard (and logged), or raised on a
    /// worker thread and passed on as an error. Not failures, but worth knowing about.
    fn note_codec_panics(&mut self, input: &Input, escaped: bool) {
        let logged = codec_log::take();
        let hooked =
            if escaped { None } else { panics::take().map(|c| format!("panicked at {}: {}", c.location, c.message)) };
        let Some(text) = logged.or(hooked) else { return };
        let (place, message) = split_panic_text(&text);
        let seen = self.figures.codec_panics.entry(place.clone()).or_insert_with(|| (0, message.clone()));
        seen.0 += 1;
        if seen.0 == 1 {
            let saved = self.out.save("codec-panics", "codec-panic", &input.bytes, &input.extension);
            let saved = saved.map(|p| p.display().to_string()).unwrap_or_default();
            self.out
                .log(&format!("codec panic at {place}: {message}\n  input: {}\n  saved: {saved}", input.describe()));
        }
    }

    fn fail(&mut self, input: &Input, cause: String, detail: String) {
        let seen = self.figures.failures_by_cause.entry(cause.clone()).or_default();
        *seen += 1;
        if *seen > SAVED_PER_CAUSE {
            return;
        }
        let saved = self.out.save("failures", &cause, &input.bytes, &input.extension).ok();
        let place = saved.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        self.out.log(&format!("FAILURE {cause}\n  input: {}\n  saved: {place}\n{detail}", input.describe()));
        self.figures.failures.push(Failure { cause, detail, input: input.describe(), saved });
    }

    fn finish(self) {
        let report = self.report();
        println!("{report}");
        self.out.clear_current();
        let total: usize = self.figures.failures_by_cause.values().sum();
        assert!(total == 0, "{}: {total} failing input(s); see the report above\n{}", self.name, self.failure_list());
    }

    fn report(&self) -> String {
        let f = &self.figures;
        let tried: u64 = f.tried.values().sum();
        let rate = f.mutated as f64 / f.mutation_time.as_secs_f64().max(1e-9);
        let mut lines = vec![format!(
            "{}: {tried} inputs in {:.1} s ({} mutated in {:.1} s: {rate:.0} inputs/s)",
            self.name,
            self.started.elapsed().as_secs_f64(),
            f.mutated,
            f.mutation_time.as_secs_f64()
        )];
        lines.push(format!("  tried, by origin: {}", join_counts(&f.tried)));
        lines.push(format!("  outcomes: {}", join_counts(&f.outcomes)));
        lines.push(format!(
            "  panics {}, hangs 0 (limit {} s per input), allocations above the {} MiB cap {} ({}), \
             error messages without the path {}, contradictions {}",
            f.panics,
            PER_INPUT_LIMIT.as_secs(),
            heap::CAP >> 20,
            f.cap_violations,
            if heap::record_only() { "let through, recording only" } else { "refused" },
            f.message_problems,
            f.contradictions
        ));
        if f.cap_violations > 0 {
            lines.push(format!("  largest allocation asked for: {} bytes", heap::largest_over_cap()));
        }
        let codec_total: u64 = f.codec_panics.values().map(|(count, _)| count).sum();
        lines.push(format!("  codec panics turned into errors by the reader: {codec_total}"));
        for (place, (count, message)) in &f.codec_panics {
            lines.push(format!("    {count} × {place}: {message}"));
        }
        lines.push(format!(
            "  peak live heap {:.1} MiB; peak resident memory (incl. C codecs) {}",
            heap::peak() as f64 / 1048576.0,
            peak_resident()
                .map(|kib| format!("{:.1} MiB", kib as f64 / 1024.0))
                .unwrap_or_else(|| "unknown".to_string())
        ));
        if let Some((peak, input)) = &f.largest_input_peak {
            lines.push(format!("  largest live heap during one input: {:.1} MiB, {input}", *peak as f64 / 1048576.0));
        }
        if let Some((time, input)) = &f.slowest {
            lines.push(format!("  slowest input: {:.3} s, {input}", time.as_secs_f64()));
        }
        lines.push(format!("  inputs slower than {} s: {}", SLOW_INPUT.as_secs(), f.slow_inputs));
        if !f.failures_by_cause.is_empty() {
            lines.push(format!("  FAILURES by cause: {}", join_counts(&f.failures_by_cause)));
            lines.push(self.failure_list());
        }
        lines.join("\n")
    }

    fn failure_list(&self) -> String {
        let mut text = String::new();
        for failure in &self.figures.failures {
            let saved =
                failure.saved.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "not saved".to_string());
            text.push_str(&format!("  - {}\n    input: {}\n    saved: {saved}\n", failure.cause, failure.input));
            for line in failure.detail.lines().take(40) {
                text.push_str(&format!("      {line}\n"));
            }
        }
        text
    }
}

/// "… panicked at FILE:LINE:COLUMN: MESSAGE" → ("crate-x.y/FILE:LINE", "MESSAGE").
fn split_panic_text(text: &str) -> (String, String) {
    let after = text.split_once("panicked at ").map_or(text, |(_, rest)| rest);
    let mut parts = after.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(file), Some(line), Some(_column), Some(message)) if line.bytes().all(|b| b.is_ascii_digit()) => {
            (format!("{}:{line}", short_source_path(file)), message.trim().to_string())
        }
        _ => (after.to_string(), String::new()),
    }
}

/// A dependency's source path from the crate's folder on (not the registry's).
fn short_source_path(path: &str) -> &str {
    match path.split_once("/registry/src/") {
        Some((_, rest)) => rest.split_once('/').map_or(rest, |(_, in_crate)| in_crate),
        None => path,
    }
}

/// The frames between the machinery named by `skip_through` (panic or allocator) and the harness.
fn trim_backtrace(trace: &str, skip_through: &[&str]) -> String {
    let lines: Vec<&str> = trace.lines().collect();
    let end = lines
        .iter()
        .position(|l| l.contains("fuzz::exercise") || l.contains("fuzz::Session::run"))
        .map_or(lines.len(), |i| i + 1);
    let start = lines[..end].iter().rposition(|l| skip_through.iter().any(|m| l.contains(m))).map_or(0, |i| i + 1);
    lines[start.min(end)..end].join("\n")
}

fn join_counts<K: std::fmt::Display, V: std::fmt::Display>(counts: &BTreeMap<K, V>) -> String {
    counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// VmHWM: the most memory the process ever had resident, C allocations included (Linux only).
fn peak_resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn files_in(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// The output folder: the current input, failures, codec panics, the slowest input
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct OutFolder {
    root: PathBuf,
}

impl OutFolder {
    fn prepare(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let out = Self { root: root.to_path_buf() };
        let _ = heap::CURRENT_INPUT.set(out.current_bin());
        Ok(out)
    }

    fn current_bin(&self) -> PathBuf {
        self.root.join("current.bin")
    }

    fn current_txt(&self) -> PathBuf {
        self.root.join("current.txt")
    }

    /// current.txt: the file name the input had, then how it was made.
    fn record_current(&self, input: &Input) -> std::io::Result<()> {
        std::fs::write(self.current_bin(), &input.bytes)?;
        std::fs::write(self.current_txt(), format!("{}\n{}\n", input.file_name(), input.describe()))
    }

    fn current(&self) -> Option<(Vec<u8>, String, String)> {
        let bytes = std::fs::read(self.current_bin()).ok()?;
        let text = std::fs::read_to_string(self.current_txt()).unwrap_or_default();
        let mut lines = text.lines();
        let name = lines.next().unwrap_or("input.bin");
        let extension = Path::new(name).extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        Some((bytes, extension, lines.next().unwrap_or("unknown origin").to_string()))
    }

    /// The input a previous run was decoding when it died, saved and handed back for replay.
    fn take_interrupted(&self) -> Option<Input> {
        let (bytes, extension, description) = self.current()?;
        let saved = self.save("failures", "interrupted", &bytes, &extension).ok()?;
        self.clear_current();
        let origin = format!("{} (was: {description})", saved.display());
        Some(Input { bytes, extension, origin, family: "corpus", steps: Vec::new() })
    }

    /// found.txt: what was found, as it is found (a later abort loses only the report).
    fn log(&self, text: &str) {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(self.root.join("found.txt"));
        if let Ok(mut file) = file {
            let _ = std::io::Write::write_all(&mut file, format!("{text}\n\n").as_bytes());
        }
    }

    fn clear_current(&self) {
        let _ = std::fs::remove_file(self.current_bin());
        let _ = std::fs::remove_file(self.current_txt());
    }

    /// Saves under `<root>/<folder>/<cause>-<hash>.<extension>`; the same bytes land in one file.
    fn save(&self, folder: &str, cause: &str, bytes: &[u8], extension: &str) -> std::io::Result<PathBuf> {
        let folder = self.root.join(folder);
        std::fs::create_dir_all(&folder)?;
        let name = format!("{}-{:016x}", slug(cause), raw::fnv64(bytes));
        let path = folder.join(if extension.is_empty() { name } else { format!("{name}.{extension}") });
        std::fs::write(&path, bytes)?;
        Ok(path)
    }

    fn save_as(&self, stem: &str, bytes: &[u8], extension: &str) -> Option<PathBuf> {
        let path = self.root.join(if extension.is_empty() { stem.to_string() } else { format!("{stem}.{extension}") });
        std::fs::write(&path, bytes).ok().map(|()| path)
    }
}

/// A file-name-safe version of a failure's cause.
fn slug(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 48 {
            break;
        }
    }
    slug.trim_matches('-').to_string()
}

// ---------------------------------------------------------------------------------------------
// Seeds and how an input is made from them
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Dicom,
    Png,
    Jpeg,
    Tiff,
    Bmp,
    Other,
}

impl Kind {
    const ALL: [Kind; 6] = [Kind::Dicom, Kind::Png, Kind::Jpeg, Kind::Tiff, Kind::Bmp, Kind::Other];

    fn name(self) -> &'static str {
        match self {
            Kind::Dicom => "dicom",
            Kind::Png => "png",
            Kind::Jpeg => "jpeg",
            Kind::Tiff => "tiff",
            Kind::Bmp => "bmp",
            Kind::Other => "other",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Kind::Dicom => "dcm",
            Kind::Png => "png",
            Kind::Jpeg => "jpg",
            Kind::Tiff => "tif",
            Kind::Bmp => "bmp",
            Kind::Other => "bin",
        }
    }

    /// How often a mutated input starts from a seed of this kind, in percent.
    fn weight(self) -> usize {
        match self {
            Kind::Dicom => 56,
            Kind::Png => 13,
            Kind::Jpeg => 10,
            Kind::Tiff => 10,
            Kind::Bmp => 8,
            Kind::Other => 3,
        }
    }

    /// By content first; the name only for what the content does not tell.
    fn of(bytes: &[u8], extension: &str) -> Kind {
        if bytes.get(128..132) == Some(b"DICM") || dicom::looks_like_bare_dataset(bytes) {
            Kind::Dicom
        } else if bytes.starts_with(png::SIGNATURE) {
            Kind::Png
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Kind::Jpeg
        } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
            Kind::Tiff
        } else if bytes.starts_with(b"BM") {
            Kind::Bmp
        } else {
            Kind::ALL.into_iter().find(|k| k.extension() == extension.to_ascii_lowercase()).unwrap_or(Kind::Other)
        }
    }
}

/// Extensions an input sometimes gets instead of its own: a name that lies, or none.
const OTHER_EXTENSIONS: &[&str] = &["dcm", "png", "jpg", "tif", "bmp", "DCM", "jpeg", "tiff", "dic", "bin", ""];

struct Seed {
    name: String,
    bytes: Vec<u8>,
    kind: Kind,
    extension: String,
}

impl Seed {
    fn new(name: String, bytes: Vec<u8>) -> Self {
        let extension = Path::new(&name).extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        let kind = Kind::of(&bytes, &extension);
        Self { name, bytes, kind, extension }
    }
}

struct Corpus {
    seeds: Vec<Seed>,
    by_kind: BTreeMap<Kind, Vec<usize>>,
}

impl Corpus {
    fn load(long: bool) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let data = root.join("tests/data");
        let mut folders = vec![data.join("dicom"), data.join("raster"), data.join("bad")];
        folders.extend(files_in_dirs(&data.join("train")).into_iter().map(|d| d.join("images")));
        if long {
            folders.push(root.join("../shared/data/dicom"));
        }
        let mut seeds = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for folder in folders {
            for path in files_in(&folder) {
                let is_text = path.extension().is_some_and(|e| e == "md" || e == "toml" || e == "txt");
                let Ok(bytes) = std::fs::read(&path) else { continue };
                if is_text || !seen.insert(raw::fnv64(&bytes)) {
                    continue;
                }
                let name = path.strip_prefix(root).unwrap_or(&path).display().to_string();
                seeds.push(Seed::new(name, bytes));
            }
        }
        let made = synth::raster_seeds(&seeds);
        let made_dicom = synth::dicom_seeds(&made);
        seeds.extend(made);
        seeds.extend(made_dicom);
        let mut by_kind: BTreeMap<Kind, Vec<usize>> = BTreeMap::new();
        for (i, seed) in seeds.iter().enumerate() {
            by_kind.entry(seed.kind).or_default().push(i);
        }
        Self { seeds, by_kind }
    }

    fn pick_kind(&self, rng: &Rng) -> Option<Kind> {
        let present: Vec<Kind> = Kind::ALL.into_iter().filter(|k| self.by_kind.contains_key(k)).collect();
        let total: usize = present.iter().map(|k| k.weight()).sum();
        let mut ticket = rng.below(total);
        for kind in present {
            if ticket < kind.weight() {
                return Some(kind);
            }
            ticket -= kind.weight();
        }
        None
    }

    fn pick(&self, rng: &Rng, kind: Kind) -> Option<&Seed> {
        let indices = self.by_kind.get(&kind)?;
        Some(&self.seeds[*rng.pick(indices)])
    }

    fn any(&self, rng: &Rng) -> &Seed {
        &self.seeds[rng.below(self.seeds.len())]
    }

    fn mutated_input(&self, rng: &Rng) -> Input {
        let picked = if rng.percent(3) { None } else { self.pick_kind(rng).and_then(|k| self.pick(rng, k)) };
        let Some(seed) = picked else {
            let bytes = generic::random_input(rng);
            let extension = rng.pick(OTHER_EXTENSIONS).to_string();
            return Input { bytes, extension, origin: "random bytes".to_string(), family: "random", steps: Vec::new() };
        };
        let mut bytes = seed.bytes.clone();
        let mut steps = Vec::new();
        let count = 1 + (0..6).take_while(|_| rng.percent(45)).count();
        for _ in 0..count {
            let step = self.mutate_once(rng, seed.kind, &mut bytes);
            steps.push(step);
            bytes.truncate(MAX_INPUT_BYTES);
        }
        let extension = if rng.percent(88) { seed.kind.extension() } else { rng.pick(OTHER_EXTENSIONS) };
        Input { bytes, extension: extension.to_string(), origin: seed.name.clone(), family: seed.kind.name(), steps }
    }

    fn mutate_once(&self, rng: &Rng, kind: Kind, bytes: &mut Vec<u8>) -> String {
        if rng.percent(65) {
            let structured = match kind {
                Kind::Dicom => {
                    let donor = self.pick(rng, Kind::Dicom).map(|s| s.bytes.as_slice()).unwrap_or(&[]);
                    dicom::mutate(rng, bytes, donor)
                }
                Kind::Png => png::mutate(rng, bytes),
                Kind::Jpeg => codestream::mutate(rng, bytes),
                Kind::Tiff => tiff::mutate(rng, bytes),
                Kind::Bmp => bmp::mutate(rng, bytes),
                Kind::Other => None,
            };
            if let Some(step) = structured {
                return format!("{}: {step}", kind.name());
            }
        }
        let other = &self.any(rng).bytes;
        generic::mutate(rng, bytes, other)
    }
}

fn files_in_dirs(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

/// Seeds made here for what tests/data lacks: JPEG, TIFF and BMP files, 16-bit and colour PNG,
/// and DICOM layouts (JPEG fragments, palette, YBR, 1-bit, multi-frame, LUTs, functional groups).
mod synth {
    use std::io::Cursor;

    use image::{DynamicImage, ImageFormat};

    use super::Seed;
    use super::dicom::{self, build};

    const WIDTH: u32 = 40;
    const HEIGHT: u32 = 32;

    fn base_grey(seeds: &[Seed]) -> image::GrayImage {
        let decoded = seeds
            .iter()
            .filter(|s| s.name.ends_with("colin27_z090.png"))
            .find_map(|s| image::load_from_memory(&s.bytes).ok());
        match decoded {
            Some(img) => img.resize_exact(WIDTH, HEIGHT, image::imageops::FilterType::Triangle).to_luma8(),
            None => image::GrayImage::from_fn(WIDTH, HEIGHT, |x, y| image::Luma([(x * 5 + y * 3) as u8])),
        }
    }

    fn colour(grey: &image::GrayImage) -> image::RgbImage {
        image::RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
            let g = grey.get_pixel(x, y)[0];
            image::Rgb([g, 255 - g, (x * 6) as u8])
        })
    }

    fn encode(image: &DynamicImage, format: ImageFormat) -> Option<Vec<u8>> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).ok()?;
        Some(out.into_inner())
    }

    pub fn raster_seeds(seeds: &[Seed]) -> Vec<Seed> {
        let grey = base_grey(seeds);
        let rgb = colour(&grey);
        let grey16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_fn(WIDTH, HEIGHT, |x, y| {
            image::Luma([u16::from(grey.get_pixel(x, y)[0]) * 257 + x as u16])
        }));
        let grey = DynamicImage::ImageLuma8(grey);
        let rgb = DynamicImage::ImageRgb8(rgb);
        let variants: Vec<(&str, DynamicImage, ImageFormat)> = vec![
            ("grey16.png", grey16.clone(), ImageFormat::Png),
            ("rgb.png", rgb.clone(), ImageFormat::Png),
            ("rgba.png", DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::Png),
            ("grey-alpha.png", DynamicImage::ImageLumaA8(grey.to_luma_alpha8()), ImageFormat::Png),
            ("grey.jpg", grey.clone(), ImageFormat::Jpeg),
            ("rgb.jpg", rgb.clone(), ImageFormat::Jpeg),
            ("grey.tif", grey.clone(), ImageFormat::Tiff),
            ("grey16.tif", grey16, ImageFormat::Tiff),
            ("rgb.tif", rgb.clone(), ImageFormat::Tiff),
            ("rgb32f.tif", DynamicImage::ImageRgb32F(rgb.to_rgb32f()), ImageFormat::Tiff),
            ("grey.bmp", grey, ImageFormat::Bmp),
            ("rgb.bmp", rgb.clone(), ImageFormat::Bmp),
            ("rgba.bmp", DynamicImage::ImageRgba8(rgb.to_rgba8()), ImageFormat::Bmp),
        ];
        variants
            .into_iter()
            .filter_map(|(name, image, format)| Some(Seed::new(format!("made/{name}"), encode(&image, format)?)))
            .collect()
    }

    pub fn dicom_seeds(raster: &[Seed]) -> Vec<Seed> {
        let jpeg = |name: &str| raster.iter().find(|s| s.name == format!("made/{name}")).map(|s| s.bytes.clone());
        let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
        if let Some(grey) = jpeg("grey.jpg") {
            files.push(("jpeg-grey.dcm", build::jpeg_file(&[grey.clone()], 1, "MONOCHROME2", WIDTH, HEIGHT)));
            files.push((
                "jpeg-grey-2frames.dcm",
                build::jpeg_file(&[grey.clone(), grey], 1, "MONOCHROME2", WIDTH, HEIGHT),
            ));
        }
        if let Some(rgb) = jpeg("rgb.jpg") {
            files.push(("jpeg-ybr422.dcm", build::jpeg_file(&[rgb.clone()], 3, "YBR_FULL_422", WIDTH, HEIGHT)));
            files.push(("jpeg-rgb.dcm", build::jpeg_file(&[rgb], 3, "RGB", WIDTH, HEIGHT)));
        }
        files.push(("palette.dcm", build::palette_file()));
        files.push(("ybr-full-planar.dcm", build::ybr_file()));
        files.push(("1bit.dcm", build::one_bit_file()));
        files.push(("ct-3frames.dcm", build::ct_frames_file(3, false)));
        files.push(("enhanced-2frames.dcm", build::ct_frames_file(2, true)));
        files.push(("modality-lut.dcm", build::modality_lut_file()));
        files.push(("implicit-vr.dcm", build::implicit_file()));
        files
            .into_iter()
            .map(|(name, bytes)| Seed::new(format!("made/{name}"), bytes))
            .filter(|s| {
                s.kind == super::Kind::Dicom && !s.bytes.is_empty() && dicom::parse(&s.bytes).elements.len() > 5
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Panics, codec panics, hangs
// ---------------------------------------------------------------------------------------------

mod panics {
    use std::backtrace::Backtrace;
    use std::sync::{Mutex, Once};

    pub struct Caught {
        pub message: String,
        pub location: String,
        pub backtrace: String,
    }

    static LAST: Mutex<Option<Caught>> = Mutex::new(None);

    /// Quiet: records the panic instead of printing it. Installed before the library installs
    /// its own codec guard hook, which then hands unguarded panics to this one.
    pub fn install_hook() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                let payload = info.payload();
                let message = delightsam::panic_message(payload).unwrap_or_else(|| "(no message)".to_string());
                let location =
                    info.location().map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())).unwrap_or_default();
                let backtrace = super::trim_backtrace(
                    &Backtrace::force_capture().to_string(),
                    &["rust_begin_unwind", "panic_fmt", "core::panicking", "std::panicking", "fuzz::panics"],
                );
                *LAST.lock().unwrap_or_else(|p| p.into_inner()) = Some(Caught { message, location, backtrace });
            }));
        });
    }

    pub fn clear() {
        *LAST.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn take() -> Option<Caught> {
        LAST.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The reader's codec guard logs each panic it turns into an error (log::debug); this counts them.
mod codec_log {
    use std::sync::Mutex;

    struct Recorder;

    static RECORDER: Recorder = Recorder;
    static LAST: Mutex<Option<String>> = Mutex::new(None);

    impl log::Log for Recorder {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.target().starts_with("delightsam")
        }

        fn log(&self, record: &log::Record) {
            if !self.enabled(record.metadata()) {
                return;
            }
            let text = record.args().to_string();
            if text.starts_with("codec panic") {
                *LAST.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.replace('\n', " "));
            }
        }

        fn flush(&self) {}
    }

    pub fn install() {
        if log::set_logger(&RECORDER).is_ok() {
            log::set_max_level(log::LevelFilter::Debug);
        }
    }

    pub fn clear() {
        *LAST.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn take() -> Option<String> {
        LAST.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

mod watchdog {
    use std::io::Write as _;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::time::{Duration, Instant};

    use super::OutFolder;

    /// When the current input started, in ms since EPOCH; 0 while no input runs.
    static STARTED_MS: AtomicU64 = AtomicU64::new(0);
    static EPOCH: OnceLock<Instant> = OnceLock::new();

    fn now_ms() -> u64 {
        EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
    }

    pub fn start(limit: Duration, out: OutFolder) {
        static STARTED: OnceLock<()> = OnceLock::new();
        STARTED.get_or_init(|| {
            now_ms();
            std::thread::Builder::new()
                .name("fuzz-watchdog".to_string())
                .spawn(move || watch(limit, out))
                .expect("the watchdog thread");
        });
    }

    pub fn begin() {
        STARTED_MS.store(now_ms(), Relaxed);
    }

    pub fn end() {
        STARTED_MS.store(0, Relaxed);
    }

    fn watch(limit: Duration, out: OutFolder) {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let started = STARTED_MS.load(Relaxed);
            if started != 0 && now_ms().saturating_sub(started) > limit.as_millis() as u64 {
                hang(limit, &out);
            }
        }
    }

    fn hang(limit: Duration, out: &OutFolder) -> ! {
        let (saved, description) = match out.current() {
            Some((bytes, extension, description)) => {
                let saved = out.save("failures", "hang", &bytes, &extension);
                (saved.map(|p| p.display().to_string()).unwrap_or_else(|e| format!("(not saved: {e})")), description)
            }
            None => ("(current.bin is missing)".to_string(), "unknown".to_string()),
        };
        let _ = writeln!(
            std::io::stderr(),
            "\nfuzz: HANG: one input took more than {} s; saved as {saved}\nfuzz: input: {description}\nfuzz: aborting",
            limit.as_secs()
        );
        std::process::abort();
    }
}

// ---------------------------------------------------------------------------------------------
// The allocator: live and peak bytes, and a cap on any single allocation
// ---------------------------------------------------------------------------------------------

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::backtrace::Backtrace;
    use std::cell::Cell;
    use std::fmt::Write as _;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    use std::sync::{Mutex, OnceLock};

    /// The largest single allocation a reader may make. Readers check header sizes before they
    /// allocate, so a request above this from a small file is a missing check.
    pub const CAP: usize = 1 << 30;
    /// With `DELIGHTSAM_FUZZ_OVER_CAP=record`, allocations above the cap are let through (and
    /// counted as failures) up to this, so one run can list every violation instead of aborting
    /// at the first one a caller cannot handle. Sizes read from files are u32 counts of up to
    /// 4-byte items, so this lets every such request through; most are never touched.
    pub const RECORD_CEILING: usize = 17 << 30;

    static LIVE: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);
    static INPUT_PEAK: AtomicUsize = AtomicUsize::new(0);
    static OVER_CAP: AtomicUsize = AtomicUsize::new(0);
    static LARGEST_OVER_CAP: AtomicUsize = AtomicUsize::new(0);
    static RECORD_ONLY: AtomicBool = AtomicBool::new(false);
    /// Where the first allocation above the cap of the current input was asked for.
    static FIRST_TRACE: Mutex<Option<(usize, Backtrace)>> = Mutex::new(None);
    /// The file holding the input being decoded, named when an allocation is above the cap.
    pub static CURRENT_INPUT: OnceLock<PathBuf> = OnceLock::new();

    thread_local! {
        /// Set while this thread reports a violation: what the report allocates is not checked.
        static REPORTING: Cell<bool> = const { Cell::new(false) };
    }

    pub fn set_record_only(record: bool) {
        RECORD_ONLY.store(record, Relaxed);
    }

    pub fn record_only() -> bool {
        RECORD_ONLY.load(Relaxed)
    }

    pub fn peak() -> usize {
        PEAK.load(Relaxed)
    }

    pub fn start_input() {
        INPUT_PEAK.store(LIVE.load(Relaxed), Relaxed);
        *FIRST_TRACE.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub fn input_peak() -> usize {
        INPUT_PEAK.load(Relaxed)
    }

    pub fn over_cap() -> usize {
        OVER_CAP.load(Relaxed)
    }

    pub fn largest_over_cap() -> usize {
        LARGEST_OVER_CAP.load(Relaxed)
    }

    /// The size and call stack of the current input's first allocation above the cap.
    pub fn take_trace() -> Option<(usize, String)> {
        let taken = FIRST_TRACE.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken.map(|(size, trace)| (size, trace.to_string()))
    }

    pub struct Counting;

    // SAFETY: every call is forwarded unchanged to System; only counters are added, and a
    // refusal returns null, which GlobalAlloc allows.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if refuse(layout.size()) {
                return std::ptr::null_mut();
            }
            let block = unsafe { System.alloc(layout) };
            if !block.is_null() {
                grew(layout.size());
            }
            block
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if refuse(layout.size()) {
                return std::ptr::null_mut();
            }
            let block = unsafe { System.alloc_zeroed(layout) };
            if !block.is_null() {
                grew(layout.size());
            }
            block
        }

        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            unsafe { System.dealloc(block, layout) };
            LIVE.fetch_sub(layout.size(), Relaxed);
        }

        unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if refuse(new_size) {
                return std::ptr::null_mut();
            }
            let moved = unsafe { System.realloc(block, layout, new_size) };
            if !moved.is_null() {
                if new_size >= layout.size() {
                    grew(new_size - layout.size());
                } else {
                    LIVE.fetch_sub(layout.size() - new_size, Relaxed);
                }
            }
            moved
        }
    }

    fn grew(bytes: usize) {
        let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
        PEAK.fetch_max(live, Relaxed);
        INPUT_PEAK.fetch_max(live, Relaxed);
    }

    /// Counts an allocation above the cap and says whether to refuse it.
    fn refuse(size: usize) -> bool {
        if size <= CAP {
            return false;
        }
        OVER_CAP.fetch_add(1, Relaxed);
        LARGEST_OVER_CAP.fetch_max(size, Relaxed);
        let refused = !RECORD_ONLY.load(Relaxed) || size > RECORD_CEILING;
        if !REPORTING.with(Cell::get) {
            REPORTING.with(|r| r.set(true));
            say_over_cap(size, refused);
            remember_trace(size);
            REPORTING.with(|r| r.set(false));
        }
        refused
    }

    fn remember_trace(size: usize) {
        if let Ok(mut slot) = FIRST_TRACE.try_lock() {
            if slot.is_none() {
                *slot = Some((size, Backtrace::force_capture()));
            }
        }
    }

    /// Formatted on the stack: the message must not depend on the allocator it is about.
    fn say_over_cap(size: usize, refused: bool) {
        let mut line = StackLine { buf: [0; 1024], len: 0 };
        let what = if refused { "refused" } else { "let through (recording only)" };
        let _ = match CURRENT_INPUT.get() {
            Some(path) => writeln!(
                line,
                "\nfuzz: an allocation of {size} bytes (cap {CAP}) {what}, while decoding {} \
                 (if the process now aborts, the next run saves and replays it)",
                path.display()
            ),
            None => writeln!(line, "\nfuzz: an allocation of {size} bytes (cap {CAP}) {what}"),
        };
        let _ = std::io::Write::write_all(&mut std::io::stderr(), &line.buf[..line.len]);
    }

    struct StackLine {
        buf: [u8; 1024],
        len: usize,
    }

    impl std::fmt::Write for StackLine {
        fn write_str(&mut self, text: &str) -> std::fmt::Result {
            let n = text.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&text.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness and byte helpers
// ---------------------------------------------------------------------------------------------

mod rng {
    use std::cell::Cell;

    /// splitmix64: small, fast, and each input follows from (seed, input number) alone. The
    /// state is a Cell so that one draw can feed another (`rng.bytes(rng.length(n))`).
    pub struct Rng(Cell<u64>);

    impl Rng {
        pub fn for_input(seed: u64, index: u64) -> Self {
            let rng = Self(Cell::new(seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93)));
            rng.next_u64();
            rng
        }

        pub fn next_u64(&self) -> u64 {
            let state = self.0.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            self.0.set(state);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// 0..n; 0 when n is 0.
        pub fn below(&self, n: usize) -> usize {
            if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
        }

        pub fn percent(&self, p: usize) -> bool {
            self.below(100) < p
        }

        /// One of `items`, which must not be empty.
        pub fn pick<'a, T>(&self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }

        pub fn byte(&self) -> u8 {
            self.next_u64() as u8
        }

        pub fn bytes(&self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.byte()).collect()
        }

        /// 1..=max, small lengths far more likely than large ones (log-uniform).
        pub fn length(&self, max: usize) -> usize {
            let max = max.max(1);
            let bits = usize::BITS - max.leading_zeros();
            let scale = 1usize << self.below(bits as usize + 1).min(63);
            (1 + self.below(scale)).min(max)
        }

        /// A range inside 0..len (empty when len is 0), usually short.
        pub fn span(&self, len: usize) -> std::ops::Range<usize> {
            let start = self.below(len);
            start..start + self.length(len - start).min(len - start)
        }
    }
}

mod raw {
    pub fn u16_at(data: &[u8], pos: usize, big: bool) -> Option<u16> {
        let b: [u8; 2] = data.get(pos..pos.checked_add(2)?)?.try_into().ok()?;
        Some(if big { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) })
    }

    pub fn u32_at(data: &[u8], pos: usize, big: bool) -> Option<u32> {
        let b: [u8; 4] = data.get(pos..pos.checked_add(4)?)?.try_into().ok()?;
        Some(if big { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
    }

    /// Writes the low `width` bytes of `value` at `pos`, if they fit.
    pub fn put(data: &mut [u8], pos: usize, width: usize, value: u64, big: bool) -> bool {
        let Some(slot) = pos.checked_add(width).and_then(|end| data.get_mut(pos..end)) else { return false };
        let bytes = value.to_le_bytes();
        for (i, b) in slot.iter_mut().enumerate() {
            *b = if big { bytes[width - 1 - i] } else { bytes[i] };
        }
        true
    }

    pub fn le16(v: u16, big: bool) -> [u8; 2] {
        if big { v.to_be_bytes() } else { v.to_le_bytes() }
    }

    pub fn le32(v: u32, big: bool) -> [u8; 4] {
        if big { v.to_be_bytes() } else { v.to_le_bytes() }
    }

    /// Replaces `range` (clamped to the data) with `with`.
    pub fn splice(data: &mut Vec<u8>, range: std::ops::Range<usize>, with: &[u8]) {
        let end = range.end.min(data.len());
        let start = range.start.min(end);
        data.splice(start..end, with.iter().copied());
    }

    const CRC_TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };

    /// CRC-32 as PNG uses it, over the parts in order.
    pub fn crc32(parts: &[&[u8]]) -> u32 {
        let mut c = !0u32;
        for part in parts {
            for &b in *part {
                c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
            }
        }
        !c
    }

    pub fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    /// A zlib stream of stored (uncompressed) blocks: valid, so a decoder gets past it.
    pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x78, 0x01];
        let blocks: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(65535).collect() };
        for (i, block) in blocks.iter().enumerate() {
            out.push(u8::from(i + 1 == blocks.len()));
            let len = block.len() as u16;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&(!len).to_le_bytes());
            out.extend_from_slice(block);
        }
        out.extend_from_slice(&adler32(data).to_be_bytes());
        out
    }

    pub fn fnv64(data: &[u8]) -> u64 {
        data.iter().fold(0xCBF2_9CE4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3))
    }
}

/// Values that sit on the edges decoders get wrong.
mod values {
    use super::rng::Rng;

    const EDGES: &[u64] = &[
        0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 127, 128, 255, 256, 257, 511, 512, 1023, 1024, 4095, 4096,
        32767, 32768, 32769, 65535, 65536, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF,
    ];

    /// An edge value, or one near `old` (±small, ×2, ÷2, ×16), in `bits` bits.
    pub fn near(rng: &Rng, old: u64, bits: u32) -> u64 {
        let value = match rng.below(8) {
            0..=3 => *rng.pick(EDGES),
            4 => old.wrapping_add(1 + rng.below(4) as u64),
            5 => old.wrapping_sub(1 + rng.below(4) as u64),
            6 => old.wrapping_mul(if rng.percent(50) { 2 } else { 16 }),
            _ => old / 2,
        };
        if bits >= 64 { value } else { value & ((1u64 << bits) - 1) }
    }

    pub fn from(rng: &Rng, table: &[u64], old: u64, bits: u32) -> u64 {
        if rng.percent(60) { *rng.pick(table) } else { near(rng, old, bits) }
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations that know nothing of the format
// ---------------------------------------------------------------------------------------------

mod generic {
    use super::raw;
    use super::rng::Rng;

    pub fn mutate(rng: &Rng, data: &mut Vec<u8>, other: &[u8]) -> String {
        if data.is_empty() {
            let bytes = rng.bytes(rng.length(512));
            data.extend_from_slice(&bytes);
            return format!("{} random bytes into an empty file", bytes.len());
        }
        match rng.below(11) {
            0 | 1 => flip_bits(rng, data),
            2 => write_edge_value(rng, data),
            3 => overwrite_random(rng, data),
            4 => insert_bytes(rng, data),
            5 => delete_bytes(rng, data),
            6 => duplicate_bytes(rng, data),
            7 => splice_with(rng, data, other),
            8 => truncate(rng, data),
            9 => add_small(rng, data),
            _ => copy_within(rng, data),
        }
    }

    fn flip_bits(rng: &Rng, data: &mut [u8]) -> String {
        let count = 1 + rng.below(8);
        for _ in 0..count {
            let i = rng.below(data.len());
            data[i] ^= 1 << rng.below(8);
        }
        format!("flip {count} bit(s)")
    }

    fn write_edge_value(rng: &Rng, data: &mut [u8]) -> String {
        let width = *rng.pick(&[1, 2, 4]);
        let pos = rng.below(data.len());
        let big = rng.percent(50);
        let value = super::values::near(rng, rng_old(data, pos, width), width as u32 * 8);
        raw::put(data, pos, width, value, big);
        format!("write {value:#x} ({width} bytes) at {pos}")
    }

    fn rng_old(data: &[u8], pos: usize, width: usize) -> u64 {
        data.iter().skip(pos).take(width).rev().fold(0u64, |v, &b| (v << 8) | u64::from(b))
    }

    fn overwrite_random(rng: &Rng, data: &mut [u8]) -> String {
        let span = rng.span(data.len());
        for b in &mut data[span.clone()] {
            *b = rng.byte();
        }
        format!("randomise bytes {span:?}")
    }

    fn insert_bytes(rng: &Rng, data: &mut Vec<u8>) -> String {
        let pos = rng.below(data.len() + 1);
        let bytes = if rng.percent(50) {
            rng.bytes(rng.length(4096))
        } else {
            vec![*rng.pick(&[0x00u8, 0xFF, 0x20, 0x80]); rng.length(4096)]
        };
        raw::splice(data, pos..pos, &bytes);
        format!("insert {} bytes at {pos}", bytes.len())
    }

    fn delete_bytes(rng: &Rng, data: &mut Vec<u8>) -> String {
        let span = rng.span(data.len());
        raw::splice(data, span.clone(), &[]);
        format!("delete bytes {span:?}")
    }

    fn duplicate_bytes(rng: &Rng, data: &mut Vec<u8>) -> String {
        let span = rng.span(data.len());
        let copy = data[span.clone()].to_vec();
        raw::splice(data, span.end..span.end, &copy);
        format!("duplicate bytes {span:?}")
    }

    fn copy_within(rng: &Rng, data: &mut [u8]) -> String {
        let from = rng.span(data.len());
        let to = rng.below(data.len());
        let n = from.len().min(data.len() - to);
        data.copy_within(from.start..from.start + n, to);
        format!("copy bytes {from:?} to {to}")
    }

    fn splice_with(rng: &Rng, data: &mut Vec<u8>, other: &[u8]) -> String {
        let cut = rng.below(data.len() + 1);
        let from = rng.below(other.len() + 1);
        data.truncate(cut);
        data.extend_from_slice(&other[from..]);
        format!("splice: first {cut} bytes, then another seed from {from}")
    }

    fn truncate(rng: &Rng, data: &mut Vec<u8>) -> String {
        // Near the end more often: that is where pixel data and codestreams are.
        let keep = if rng.percent(50) { data.len() - rng.length(data.len()) } else { rng.below(data.len()) };
        data.truncate(keep);
        format!("truncate to {keep} bytes")
    }

    fn add_small(rng: &Rng, data: &mut [u8]) -> String {
        let pos = rng.below(data.len());
        let delta = 1 + rng.below(16) as u8;
        data[pos] = if rng.percent(50) { data[pos].wrapping_add(delta) } else { data[pos].wrapping_sub(delta) };
        format!("add ±{delta} at {pos}")
    }

    /// Arbitrary bytes, half of them behind a format's magic number so readers get further.
    pub fn random_input(rng: &Rng) -> Vec<u8> {
        let mut data = Vec::new();
        if rng.percent(50) {
            let magic: &[u8] = match rng.below(7) {
                0 => b"\x89PNG\r\n\x1a\n",
                1 => &[0xFF, 0xD8, 0xFF],
                2 => b"II*\0",
                3 => b"MM\0*",
                4 => b"BM",
                5 => &[0x08, 0x00, 0x05, 0x00],
                _ => {
                    data.resize(128, 0);
                    b"DICM"
                }
            };
            data.extend_from_slice(magic);
        }
        data.extend(rng.bytes(rng.length(65536)));
        data
    }
}

// ---------------------------------------------------------------------------------------------
// DICOM: the element walk, value edits, inserted structures, pixel data and fragments
// ---------------------------------------------------------------------------------------------

mod dicom {
    use super::raw::{self, u16_at, u32_at};
    use super::rng::Rng;

    pub const UNDEFINED: u32 = 0xFFFF_FFFF;
    const ITEM: u32 = 0xFFFE_E000;
    const ITEM_END: u32 = 0xFFFE_E00D;
    const SEQUENCE_END: u32 = 0xFFFE_E0DD;
    pub const PIXEL_DATA: u32 = 0x7FE0_0010;
    pub const TRANSFER_SYNTAX: u32 = 0x0002_0010;
    const META_GROUP_LENGTH: u32 = 0x0002_0000;
    /// Nesting deeper than this is not walked (a hostile file could nest without end).
    const MAX_DEPTH: u8 = 6;

    pub mod uid {
        pub const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
        pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
        pub const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
        pub const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
        pub const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
        pub const RLE: &str = "1.2.840.10008.1.2.5";
    }

    const TRANSFER_SYNTAXES: &[&str] = &[
        uid::IMPLICIT_LE,
        uid::EXPLICIT_LE,
        uid::DEFLATED,
        uid::EXPLICIT_BE,
        uid::JPEG_BASELINE,
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
        "1.2.840.10008.1.2.4.80",
        "1.2.840.10008.1.2.4.81",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
        "1.2.840.10008.1.2.4.100",
        "1.2.840.10008.1.2.4.110",
        "1.2.840.10008.1.2.1.98",
        uid::RLE,
        "1.2.3.4",
        "",
        "1.2.840.10008.1.2.4.50\0",
    ];

    #[derive(Clone, Copy, PartialEq, Debug)]
    pub struct Syntax {
        pub explicit: bool,
        pub big_endian: bool,
    }

    pub const EXPLICIT_LE: Syntax = Syntax { explicit: true, big_endian: false };
    pub const IMPLICIT_LE: Syntax = Syntax { explicit: false, big_endian: false };

    #[derive(Clone, Debug)]
    pub struct Element {
        pub tag: u32,
        pub vr: Option<[u8; 2]>,
        pub start: usize,
        pub len_pos: usize,
        /// A 4-byte length field (else 2 bytes).
        pub long_len: bool,
        pub value_start: usize,
        pub len: u32,
        /// After the value, nested items and delimiters.
        pub end: usize,
        pub depth: u8,
        pub syntax: Syntax,
    }

    #[derive(Clone, Debug)]
    pub struct Fragment {
        pub start: usize,
        pub value_start: usize,
        pub len: usize,
    }

    pub struct Layout {
        pub elements: Vec<Element>,
        /// Items of the encapsulated pixel data; the first is the basic offset table.
        pub fragments: Vec<Fragment>,
        pub dataset: Option<Syntax>,
        pub meta_end: usize,
        pub transfer_syntax: Option<String>,
    }

    impl Layout {
        pub fn top(&self, tag: u32) -> Option<&Element> {
            self.elements.iter().find(|e| e.depth == 0 && e.tag == tag)
        }
    }

    pub fn looks_like_bare_dataset(data: &[u8]) -> bool {
        matches!(data.get(0..4), Some([0x08, 0x00, _, 0x00]) | Some([0x02, 0x00, _, 0x00]))
    }

    fn preamble_end(data: &[u8]) -> usize {
        if data.get(128..132) == Some(b"DICM") {
            132
        } else if data.starts_with(b"DICM") {
            4
        } else {
            0
        }
    }

    /// Walks the elements, best effort: a malformed spot ends the walk, what came before stays.
    pub fn parse(data: &[u8]) -> Layout {
        let mut walker = Walker { data, elements: Vec::new(), fragments: Vec::new() };
        let mut pos = preamble_end(data);
        while u16_at(data, pos, false) == Some(0x0002) {
            match walker.element(pos, EXPLICIT_LE, 0) {
                Some(next) => pos = next,
                None => break,
            }
        }
        let meta_end = pos;
        let transfer_syntax = walker
            .elements
            .iter()
            .find(|e| e.tag == TRANSFER_SYNTAX)
            .map(|e| String::from_utf8_lossy(value(data, e)).trim_end_matches(['\0', ' ']).to_string());
        let dataset = dataset_syntax(data, pos, transfer_syntax.as_deref());
        if let Some(syntax) = dataset {
            let _ = walker.elements(pos, Some(data.len()), syntax, 0);
        }
        let Walker { elements, fragments, .. } = walker;
        Layout { elements, fragments, dataset, meta_end, transfer_syntax }
    }

    fn dataset_syntax(data: &[u8], pos: usize, transfer_syntax: Option<&str>) -> Option<Syntax> {
        match transfer_syntax {
            Some(uid::IMPLICIT_LE) => Some(IMPLICIT_LE),
            Some(uid::EXPLICIT_BE) => Some(Syntax { explicit: true, big_endian: true }),
            Some(uid::DEFLATED) => None,
            Some(_) => Some(EXPLICIT_LE),
            None => {
                let vr = data.get(pos + 4..pos + 6)?;
                Some(Syntax { explicit: is_vr([vr[0], vr[1]]), big_endian: false })
            }
        }
    }

    pub fn value<'a>(data: &'a [u8], e: &Element) -> &'a [u8] {
        if e.len == UNDEFINED {
            return &[];
        }
        let end = (e.value_start + e.len as usize).min(data.len());
        data.get(e.value_start..end).unwrap_or(&[])
    }

    const VRS: &[&[u8; 2]] = &[
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF", b"OL",
        b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US",
        b"UT", b"UV",
    ];
    const LONG_LENGTH_VRS: &[&[u8; 2]] =
        &[b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"];
    /// VRs with a 2-byte length: one can stand for another without moving any byte.
    const SHORT_LENGTH_VRS: &[&[u8; 2]] = &[
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN", b"SH", b"SL", b"SS",
        b"ST", b"TM", b"UI", b"UL", b"US",
    ];

    fn is_vr(vr: [u8; 2]) -> bool {
        VRS.contains(&&vr)
    }

    fn has_long_length(vr: [u8; 2]) -> bool {
        LONG_LENGTH_VRS.contains(&&vr)
    }

    struct Walker<'a> {
        data: &'a [u8],
        elements: Vec<Element>,
        fragments: Vec<Fragment>,
    }

    impl Walker<'_> {
        fn tag_at(&self, pos: usize, syntax: Syntax) -> Option<u32> {
            let group = u16_at(self.data, pos, syntax.big_endian)?;
            let element = u16_at(self.data, pos + 2, syntax.big_endian)?;
            Some((u32::from(group) << 16) | u32::from(element))
        }

        /// Elements from `pos` to `limit`, or to an item delimiter when there is no limit.
        fn elements(&mut self, mut pos: usize, limit: Option<usize>, syntax: Syntax, depth: u8) -> Option<usize> {
            loop {
                if pos >= limit.unwrap_or(self.data.len()) {
                    return Some(pos);
                }
                if self.tag_at(pos, syntax)? == ITEM_END {
                    return Some(pos + 8);
                }
                pos = self.element(pos, syntax, depth)?;
            }
        }

        fn element(&mut self, pos: usize, syntax: Syntax, depth: u8) -> Option<usize> {
            let tag = self.tag_at(pos, syntax)?;
            if tag >> 16 == 0xFFFE {
                return None;
            }
            let (vr, len_pos, long_len) = if syntax.explicit {
                let vr = [*self.data.get(pos + 4)?, *self.data.get(pos + 5)?];
                if !is_vr(vr) {
                    return None;
                }
                if has_long_length(vr) { (Some(vr), pos + 8, true) } else { (Some(vr), pos + 6, false) }
            } else {
                (None, pos + 4, true)
            };
            let len = if long_len {
                u32_at(self.data, len_pos, syntax.big_endian)?
            } else {
                u32::from(u16_at(self.data, len_pos, syntax.big_endian)?)
            };
            let value_start = len_pos + if long_len { 4 } else { 2 };
            let index = self.elements.len();
            self.elements.push(Element {
                tag,
                vr,
                start: pos,
                len_pos,
                long_len,
                value_start,
                len,
                end: value_start,
                depth,
                syntax,
            });
            let end = if len == UNDEFINED {
                if depth >= MAX_DEPTH {
                    return None;
                }
                if tag == PIXEL_DATA && depth == 0 {
                    self.fragments(value_start, syntax)?
                } else {
                    self.items(value_start, None, syntax, depth)?
                }
            } else {
                let end = value_start.checked_add(len as usize)?;
                if end > self.data.len() {
                    return None;
                }
                if vr == Some(*b"SQ") && depth < MAX_DEPTH {
                    let _ = self.items(value_start, Some(end), syntax, depth);
                }
                end
            };
            self.elements[index].end = end;
            Some(end)
        }

        fn items(&mut self, mut pos: usize, limit: Option<usize>, syntax: Syntax, depth: u8) -> Option<usize> {
            loop {
                if let Some(limit) = limit {
                    if pos >= limit {
                        return Some(limit);
                    }
                }
                let tag = self.tag_at(pos, syntax)?;
                let len = u32_at(self.data, pos + 4, syntax.big_endian)?;
                match tag {
                    SEQUENCE_END => return Some(pos + 8),
                    ITEM if len == UNDEFINED => pos = self.elements(pos + 8, None, syntax, depth + 1)?,
                    ITEM => {
                        let end = (pos + 8).checked_add(len as usize)?;
                        if end > self.data.len() {
                            return None;
                        }
                        self.elements(pos + 8, Some(end), syntax, depth + 1)?;
                        pos = end;
                    }
                    _ => return None,
                }
            }
        }

        fn fragments(&mut self, mut pos: usize, syntax: Syntax) -> Option<usize> {
            loop {
                let tag = self.tag_at(pos, syntax)?;
                let len = u32_at(self.data, pos + 4, syntax.big_endian)? as usize;
                match tag {
                    SEQUENCE_END => return Some(pos + 8),
                    ITEM => {
                        let value_start = pos + 8;
                        let end = value_start.checked_add(len)?;
                        if end > self.data.len() {
                            return None;
                        }
                        self.fragments.push(Fragment { start: pos, value_start, len });
                        pos = end;
                    }
                    _ => return None,
                }
            }
        }
    }

    // --- Encoding -------------------------------------------------------------------------------

    pub fn element(tag: u32, vr: &[u8; 2], value: &[u8], syntax: Syntax) -> Vec<u8> {
        let syntax = if tag >> 16 == 0x0002 { EXPLICIT_LE } else { syntax };
        let mut value = value.to_vec();
        if value.len() % 2 == 1 {
            value.push(pad_byte(vr));
        }
        let mut out = header(tag, vr, value.len() as u32, syntax);
        out.extend_from_slice(&value);
        out
    }

    fn header(tag: u32, vr: &[u8; 2], len: u32, syntax: Syntax) -> Vec<u8> {
        let big = syntax.big_endian;
        let mut out = Vec::with_capacity(12);
        out.extend_from_slice(&raw::le16((tag >> 16) as u16, big));
        out.extend_from_slice(&raw::le16(tag as u16, big));
        if syntax.explicit {
            out.extend_from_slice(vr);
            if has_long_length(*vr) {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&raw::le32(len, big));
            } else {
                out.extend_from_slice(&raw::le16(len as u16, big));
            }
        } else {
            out.extend_from_slice(&raw::le32(len, big));
        }
        out
    }

    fn pad_byte(vr: &[u8; 2]) -> u8 {
        match vr {
            b"UI" | b"OB" | b"OW" | b"UN" | b"US" | b"SS" | b"UL" | b"SL" | b"FL" | b"FD" => 0,
            _ => b' ',
        }
    }

    /// A sequence of items, each item's elements already encoded; lengths defined or not.
    pub fn sequence(tag: u32, items: &[Vec<u8>], undefined: bool, syntax: Syntax) -> Vec<u8> {
        let big = syntax.big_endian;
        let mut body = Vec::new();
        for item in items {
            body.extend_from_slice(&raw::le16(0xFFFE, big));
            body.extend_from_slice(&raw::le16(0xE000, big));
            body.extend_from_slice(&raw::le32(if undefined { UNDEFINED } else { item.len() as u32 }, big));
            body.extend_from_slice(item);
            if undefined {
                body.extend_from_slice(&delimiter(0xE00D, big));
            }
        }
        if undefined {
            body.extend_from_slice(&delimiter(0xE0DD, big));
        }
        let mut out = header(tag, b"SQ", if undefined { UNDEFINED } else { body.len() as u32 }, syntax);
        out.extend_from_slice(&body);
        out
    }

    fn delimiter(element: u16, big: bool) -> Vec<u8> {
        let mut out = raw::le16(0xFFFE, big).to_vec();
        out.extend_from_slice(&raw::le16(element, big));
        out.extend_from_slice(&[0; 4]);
        out
    }

    /// Encapsulated pixel data: an empty offset table, then one item per fragment.
    pub fn encapsulated(fragments: &[Vec<u8>]) -> Vec<u8> {
        let mut out = header(PIXEL_DATA, b"OB", UNDEFINED, EXPLICIT_LE);
        out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
        for fragment in fragments {
            let mut fragment = fragment.clone();
            if fragment.len() % 2 == 1 {
                fragment.push(0);
            }
            out.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
            out.extend_from_slice(&(fragment.len() as u32).to_le_bytes());
            out.extend_from_slice(&fragment);
        }
        out.extend_from_slice(&delimiter(0xE0DD, false));
        out
    }

    /// A value given as text ("1\\2" for two values), encoded for `vr`.
    pub fn encode(vr: &[u8; 2], text: &str, big: bool) -> Vec<u8> {
        let numbers = || text.split('\\').map(|part| part.trim().parse::<f64>().unwrap_or(0.0));
        match vr {
            b"US" | b"SS" | b"OW" => numbers().flat_map(|n| raw::le16(n as i64 as u16, big)).collect(),
            b"UL" | b"SL" => numbers().flat_map(|n| raw::le32(n as i64 as u32, big)).collect(),
            b"FL" | b"OF" => numbers().flat_map(|n| raw::le32((n as f32).to_bits(), big)).collect(),
            b"FD" | b"OD" => numbers()
                .flat_map(|n| if big { n.to_bits().to_be_bytes() } else { n.to_bits().to_le_bytes() })
                .collect(),
            _ => text.as_bytes().to_vec(),
        }
    }

    fn first_number(vr: &[u8; 2], value: &[u8], big: bool) -> Option<f64> {
        match vr {
            b"US" | b"OW" => u16_at(value, 0, big).map(f64::from),
            b"SS" => u16_at(value, 0, big).map(|v| f64::from(v as i16)),
            b"UL" => u32_at(value, 0, big).map(f64::from),
            b"SL" => u32_at(value, 0, big).map(|v| f64::from(v as i32)),
            _ => String::from_utf8_lossy(value).split('\\').next()?.trim().parse().ok(),
        }
    }

    // --- What to change -------------------------------------------------------------------------

    /// An attribute worth tampering with, its dictionary VR, and values to try. `{+1}` and the
    /// like are relative to the value the file has.
    struct Attribute {
        tag: u32,
        vr: [u8; 2],
        values: &'static [&'static str],
    }

    const SIZES: &[&str] = &[
        "0", "1", "2", "3", "7", "8", "255", "256", "4095", "32767", "32768", "32769", "65535", "{+1}", "{-1}", "{*2}",
        "{/2}", "{*16}",
    ];
    const BITS: &[&str] =
        &["0", "1", "7", "8", "9", "12", "15", "16", "17", "24", "31", "32", "33", "64", "65535", "{+1}", "{-1}"];
    const FLAGS: &[&str] = &["0", "1", "2", "65535"];
    const REALS: &[&str] = &[
        "NaN", "nan", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e39", "3.4028235e38", "-0", "0", "1e-308",
        "1e-45", "-1", "-32768", "", "abc", "1\\2", "+1", ".5", "1e", "0x10", " 1 ", "1,5", "{*16}", "{+1}",
    ];
    const WINDOWS: &[&str] = &[
        "NaN", "inf", "-inf", "1e308", "-1e308", "1e39", "0", "-1", "1e-320", "", "abc", "40\\400", "-600\\1500\\40",
        "{*2}", "{/2}", "{+1}",
    ];
    const FRAMES: &[&str] = &[
        "0", "1", "2", "3", "4", "5", "-1", "256", "65536", "2147483647", "2147483648", "4294967297", "99999999999",
        "1.5", "abc", "", " 2", "2\\3", "{+1}", "{*2}",
    ];
    const PHOTOMETRICS: &[&str] = &[
        "MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_420", "YBR_PARTIAL_422",
        "YBR_ICT", "YBR_RCT", "PALETTE COLOR", "HSV", "ARGB", "CMYK", "", "monochrome2", "MONOCHROME2\\RGB", "XYZ",
    ];
    const DESCRIPTORS: &[&str] = &[
        "0\\0\\8", "256\\0\\8", "256\\0\\16", "65535\\0\\16", "4096\\65535\\16", "1\\0\\0", "2\\1\\17", "16\\32768\\8",
        "0\\0\\65535", "256\\0", "256", "4096\\64512\\12",
    ];
    const SPACINGS: &[&str] =
        &["0\\0", "-1\\1", "NaN\\1", "1e308\\1e308", "1", "0.5\\0.5\\0.5", "inf\\inf", "abc\\def"];
    const POSITIONS: &[&str] = &["0\\0\\0", "NaN\\0\\0", "1e308\\1\\1", "1\\2", "-125\\-125\\30.5", "inf\\0\\0", ""];
    const ORIENTATIONS: &[&str] =
        &["1\\0\\0\\0\\1\\0", "0\\0\\0\\0\\0\\0", "NaN\\0\\0\\0\\1\\0", "1\\0\\0", "1\\1\\1\\1\\1\\1", ""];
    const SOP_CLASSES: &[&str] = &[
        "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.4.1",
        "1.2.840.10008.5.1.4.1.1.481.5", "1.2.840.10008.5.1.4.1.1.66.4", "",
    ];
    const MODALITIES: &[&str] = &["CT", "MR", "US", "XA", "PT", "SEG", "RTDOSE", "", "OT"];

    const ATTRIBUTES: &[Attribute] = &[
        Attribute { tag: TRANSFER_SYNTAX, vr: *b"UI", values: TRANSFER_SYNTAXES },
        Attribute { tag: 0x0008_0016, vr: *b"UI", values: SOP_CLASSES },
        Attribute { tag: 0x0008_0060, vr: *b"CS", values: MODALITIES },
        Attribute { tag: 0x0020_0032, vr: *b"DS", values: POSITIONS },
        Attribute { tag: 0x0020_0037, vr: *b"DS", values: ORIENTATIONS },
        Attribute { tag: 0x0028_0002, vr: *b"US", values: &["0", "1", "2", "3", "4", "65535"] },
        Attribute { tag: 0x0028_0004, vr: *b"CS", values: PHOTOMETRICS },
        Attribute { tag: 0x0028_0006, vr: *b"US", values: FLAGS },
        Attribute { tag: 0x0028_0008, vr: *b"IS", values: FRAMES },
        Attribute { tag: 0x0028_0010, vr: *b"US", values: SIZES },
        Attribute { tag: 0x0028_0011, vr: *b"US", values: SIZES },
        Attribute { tag: 0x0028_0030, vr: *b"DS", values: SPACINGS },
        Attribute { tag: 0x0028_0100, vr: *b"US", values: BITS },
        Attribute { tag: 0x0028_0101, vr: *b"US", values: BITS },
        Attribute { tag: 0x0028_0102, vr: *b"US", values: BITS },
        Attribute { tag: 0x0028_0103, vr: *b"US", values: FLAGS },
        Attribute { tag: 0x0028_1050, vr: *b"DS", values: WINDOWS },
        Attribute { tag: 0x0028_1051, vr: *b"DS", values: WINDOWS },
        Attribute { tag: 0x0028_1052, vr: *b"DS", values: REALS },
        Attribute { tag: 0x0028_1053, vr: *b"DS", values: REALS },
        Attribute { tag: 0x0028_1101, vr: *b"US", values: DESCRIPTORS },
        Attribute { tag: 0x0028_1102, vr: *b"US", values: DESCRIPTORS },
        Attribute { tag: 0x0028_1103, vr: *b"US", values: DESCRIPTORS },
        Attribute { tag: 0x0028_3002, vr: *b"US", values: DESCRIPTORS },
    ];

    /// Tables whose length is what matters: palette data, segmented palettes, LUT data.
    const TABLES: &[u32] = &[0x0028_1201, 0x0028_1202, 0x0028_1203, 0x0028_1221, 0x0028_1222, 0x0028_1223, 0x0028_3006];

    pub fn mutate(rng: &Rng, data: &mut Vec<u8>, donor: &[u8]) -> Option<String> {
        let layout = parse(data);
        if layout.elements.is_empty() {
            return None;
        }
        let step = match rng.below(100) {
            0..=34 => set_attribute(rng, data, &layout),
            35..=39 => set_transfer_syntax(rng, data, &layout),
            40..=43 => resize_table(rng, data, &layout),
            44..=51 => insert_structure(rng, data, &layout),
            52..=60 => set_length(rng, data, &layout),
            61..=66 => delete_element(rng, data, &layout),
            67..=70 => duplicate_element(rng, data, &layout),
            71..=74 => change_vr(rng, data, &layout),
            75..=91 => pixel_data(rng, data, &layout),
            92..=95 => transplant_pixels(rng, data, &layout, donor),
            _ => file_framing(rng, data, &layout),
        };
        if step.is_some() && rng.percent(90) {
            fix_meta_group_length(data);
        }
        step
    }

    fn known(tag: u32) -> Option<&'static Attribute> {
        ATTRIBUTES.iter().find(|a| a.tag == tag)
    }

    /// An attribute of the file (or a new one) set to a value from its list.
    fn set_attribute(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let present: Vec<&Element> =
            layout.elements.iter().filter(|e| known(e.tag).is_some() && e.len != UNDEFINED).collect();
        let (attribute, existing) = if !present.is_empty() && rng.percent(85) {
            let element = *rng.pick(&present);
            (known(element.tag)?, Some(element))
        } else {
            let attribute = rng.pick(ATTRIBUTES);
            (attribute, layout.top(attribute.tag))
        };
        let syntax = layout.dataset?;
        let token = *rng.pick(attribute.values);
        match existing {
            Some(element) => {
                // UN and implicit VR: the value is encoded as the dictionary says.
                let vr = element.vr.filter(|vr| vr != b"UN").unwrap_or(attribute.vr);
                let big = element.syntax.big_endian;
                let old = first_number(&vr, value(data, element), big);
                let text = resolve(token, old);
                let encoded = encode(&vr, &text, big);
                replace_value(data, element, encoded, pad_byte(&vr));
                Some(format!("({:08X}) = {text:?}", attribute.tag))
            }
            None => {
                let text = resolve(token, None);
                let encoded =
                    element(attribute.tag, &attribute.vr, &encode(&attribute.vr, &text, syntax.big_endian), syntax);
                insert_top_level(data, layout, attribute.tag, &encoded);
                Some(format!("insert ({:08X}) = {text:?}", attribute.tag))
            }
        }
    }

    fn resolve(token: &str, old: Option<f64>) -> String {
        let Some(op) = token.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else { return token.to_string() };
        let old = old.unwrap_or(1.0);
        let new = match op {
            "+1" => old + 1.0,
            "-1" => old - 1.0,
            "*2" => old * 2.0,
            "*16" => old * 16.0,
            _ => (old / 2.0).floor(),
        };
        if new.fract() == 0.0 && new.abs() < 1e15 { format!("{}", new as i64) } else { format!("{new}") }
    }

    fn set_transfer_syntax(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let element = layout.top(TRANSFER_SYNTAX)?;
        let new = *rng.pick(TRANSFER_SYNTAXES);
        replace_value(data, element, new.as_bytes().to_vec(), 0);
        Some(format!("transfer syntax {new:?}"))
    }

    /// Replaces a value and its length field. Nested values keep their length, so that the
    /// lengths of the items around them stay right.
    fn replace_value(data: &mut Vec<u8>, element: &Element, mut new: Vec<u8>, pad: u8) {
        if element.len == UNDEFINED {
            return;
        }
        if element.depth > 0 {
            new.resize(element.len as usize, pad);
        } else if new.len() % 2 == 1 {
            new.push(pad);
        }
        if !element.long_len {
            new.truncate(0xFFFE);
        }
        let big = element.syntax.big_endian;
        let width = if element.long_len { 4 } else { 2 };
        raw::put(data, element.len_pos, width, new.len() as u64, big);
        let end = element.value_start + element.len as usize;
        raw::splice(data, element.value_start..end, &new);
    }

    /// Inserts in tag order, or replaces the element with the same tag.
    fn insert_top_level(data: &mut Vec<u8>, layout: &Layout, tag: u32, encoded: &[u8]) {
        if let Some(old) = layout.top(tag) {
            raw::splice(data, old.start..old.end, encoded);
            return;
        }
        let top = || layout.elements.iter().filter(|e| e.depth == 0);
        let pos = top()
            .filter(|e| e.tag > tag)
            .map(|e| e.start)
            .min()
            .or_else(|| top().map(|e| e.end).max())
            .unwrap_or(data.len());
        raw::splice(data, pos..pos, encoded);
    }

    fn resize_table(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let tables: Vec<&Element> =
            layout.elements.iter().filter(|e| TABLES.contains(&e.tag) && e.len != UNDEFINED).collect();
        if tables.is_empty() {
            return insert_structure(rng, data, layout);
        }
        let element = *rng.pick(&tables);
        let old = element.len as usize;
        let new_len = match rng.below(6) {
            0 => 0,
            1 => 1 + rng.below(3),
            2 => old.saturating_sub(1 + rng.below(4)),
            3 => old / 2,
            4 => (old * 2).min(1 << 18),
            _ => rng.length(1 << 17),
        };
        let mut new = value(data, element).to_vec();
        new.resize(new_len, 0);
        for b in new.iter_mut().skip(old) {
            *b = rng.byte();
        }
        let tag = element.tag;
        replace_value(data, element, new, 0);
        Some(format!("table ({tag:08X}) {old} → {new_len} bytes"))
    }

    fn set_length(rng: &Rng, data: &mut [u8], layout: &Layout) -> Option<String> {
        let element = pick_element(rng, layout)?;
        let old = u64::from(element.len);
        let new = match rng.below(6) {
            0 => old ^ 1,
            1 => 0,
            2 => u64::from(UNDEFINED),
            3 => (data.len() - element.value_start.min(data.len())) as u64 + rng.below(8) as u64,
            _ => super::values::near(rng, old, if element.long_len { 32 } else { 16 }),
        };
        let width = if element.long_len { 4 } else { 2 };
        raw::put(data, element.len_pos, width, new, element.syntax.big_endian);
        Some(format!("length of ({:08X}) {old} → {new}", element.tag))
    }

    /// Any element, the ones the readers look at more often.
    fn pick_element<'a>(rng: &Rng, layout: &'a Layout) -> Option<&'a Element> {
        let interesting: Vec<&Element> = layout
            .elements
            .iter()
            .filter(|e| known(e.tag).is_some() || e.tag == PIXEL_DATA || TABLES.contains(&e.tag))
            .collect();
        if !interesting.is_empty() && rng.percent(70) {
            Some(*rng.pick(&interesting))
        } else if layout.elements.is_empty() {
            None
        } else {
            Some(rng.pick(&layout.elements))
        }
    }

    fn delete_element(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let element = pick_element(rng, layout)?;
        raw::splice(data, element.start..element.end, &[]);
        Some(format!("delete ({:08X})", element.tag))
    }

    fn duplicate_element(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let element = pick_element(rng, layout)?;
        let copy = data.get(element.start..element.end)?.to_vec();
        let at = if rng.percent(70) { element.end } else { element.start };
        raw::splice(data, at..at, &copy);
        Some(format!("duplicate ({:08X})", element.tag))
    }

    /// Issue 17's case first: a value stored with VR UN must be read with the dictionary's VR.
    fn change_vr(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let element = pick_element(rng, layout).filter(|e| e.syntax.explicit && e.len != UNDEFINED)?;
        let vr = element.vr?;
        if !element.long_len && rng.percent(60) {
            let value = value(data, element).to_vec();
            let mut encoded = header(element.tag, b"UN", value.len() as u32, element.syntax);
            encoded.extend_from_slice(&value);
            raw::splice(data, element.start..element.end, &encoded);
            return Some(format!("({:08X}) {} → UN", element.tag, String::from_utf8_lossy(&vr)));
        }
        let table = if element.long_len { LONG_LENGTH_VRS } else { SHORT_LENGTH_VRS };
        let new = **rng.pick(table);
        data.get_mut(element.start + 4..element.start + 6)?.copy_from_slice(&new);
        Some(format!("({:08X}) VR {} → {}", element.tag, String::from_utf8_lossy(&vr), String::from_utf8_lossy(&new)))
    }

    // --- Inserted structures --------------------------------------------------------------------

    fn insert_structure(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let syntax = layout.dataset?;
        let (name, elements) = match rng.below(6) {
            0 => ("palette", palette(rng, syntax, false)),
            1 => ("segmented palette", palette(rng, syntax, true)),
            2 => ("modality LUT sequence", vec![(0x0028_3000, lut_sequence(rng, 0x0028_3000, syntax))]),
            3 => ("VOI LUT sequence", vec![(0x0028_3010, lut_sequence(rng, 0x0028_3010, syntax))]),
            _ => ("functional groups", functional_groups(rng, syntax, 1 + rng.below(5))),
        };
        let mut elements = elements;
        elements.sort_by_key(|(tag, _)| *tag);
        for (tag, encoded) in &elements {
            let layout = parse(data);
            insert_top_level(data, &layout, *tag, encoded);
        }
        Some(format!("insert a {name}"))
    }

    fn words(values: &[u16], big: bool) -> Vec<u8> {
        values.iter().flat_map(|&v| raw::le16(v, big)).collect()
    }

    pub fn palette(rng: &Rng, syntax: Syntax, segmented: bool) -> Vec<(u32, Vec<u8>)> {
        let big = syntax.big_endian;
        let mut out = vec![(0x0028_0004, element(0x0028_0004, b"CS", b"PALETTE COLOR", syntax))];
        let entries = *rng.pick(&[0u16, 1, 2, 16, 256, 256, 256, 4096, 65535]);
        let first = *rng.pick(&[0u16, 0, 1, 100, 32768, 65535]);
        let bits = *rng.pick(&[8u16, 16, 16, 0, 12, 17]);
        for channel in 0..3u32 {
            let descriptor = words(&[entries, first, bits], big);
            let vr = if rng.percent(80) { b"US" } else { b"SS" };
            out.push((0x0028_1101 + channel, element(0x0028_1101 + channel, vr, &descriptor, syntax)));
            let table = if segmented {
                segmented_table(rng)
            } else {
                let len = if rng.percent(80) { usize::from(entries).max(1) } else { rng.length(70_000) };
                (0..len).map(|i| (i as u16).wrapping_mul(257).wrapping_add(channel as u16)).collect()
            };
            let tag = if segmented { 0x0028_1221 } else { 0x0028_1201 } + channel;
            out.push((tag, element(tag, b"OW", &words(&table, big), syntax)));
        }
        out
    }

    /// Segments of PS3.3 C.7.9.2: discrete (0), linear (1), indirect (2), sometimes malformed.
    fn segmented_table(rng: &Rng) -> Vec<u16> {
        let mut table = Vec::new();
        for _ in 0..1 + rng.below(8) {
            match rng.below(4) {
                0 => {
                    let n = *rng.pick(&[0u16, 1, 4, 16, 255, 65535]);
                    table.extend_from_slice(&[0, n]);
                    table.extend((0..n.min(64)).map(|_| rng.next_u64() as u16));
                }
                1 => table.extend_from_slice(&[1, *rng.pick(&[0u16, 1, 16, 256, 65535]), rng.next_u64() as u16]),
                2 => table.extend_from_slice(&[2, *rng.pick(&[0u16, 1, 2, 65535]), rng.below(8) as u16, 0]),
                _ => table.extend_from_slice(&[rng.below(6) as u16, rng.next_u64() as u16]),
            }
        }
        table
    }

    const LUT_TYPES: &[&[u8]] = &[b"HU", b"US", b"", b"MGML"];

    fn lut_sequence(rng: &Rng, tag: u32, syntax: Syntax) -> Vec<u8> {
        let big = syntax.big_endian;
        let entries = *rng.pick(&[0u16, 1, 2, 256, 4096, 65535]);
        let first = *rng.pick(&[0u16, 1, 32768, 65535, (-1024i16) as u16]);
        let bits = *rng.pick(&[8u16, 10, 12, 16, 0, 17]);
        let len = if rng.percent(80) { usize::from(entries).max(1) } else { rng.length(70_000) };
        let table: Vec<u16> = (0..len).map(|i| (i as u16).wrapping_mul(3)).collect();
        let descriptor_vr = if rng.percent(70) { b"US" } else { b"SS" };
        let data_vr = if rng.percent(70) { b"US" } else { b"OW" };
        let mut item = element(0x0028_3002, descriptor_vr, &words(&[entries, first, bits], big), syntax);
        item.extend(element(0x0028_3003, b"LO", b"fuzz", syntax));
        if tag == 0x0028_3000 {
            item.extend(element(0x0028_3004, b"LO", *rng.pick(LUT_TYPES), syntax));
        }
        item.extend(element(0x0028_3006, data_vr, &words(&table, big), syntax));
        let items = if rng.percent(85) { vec![item] } else { vec![item.clone(), item] };
        sequence(tag, &items, rng.percent(30), syntax)
    }

    /// Enhanced multi-frame: shared and per-frame functional groups with rescale, window,
    /// spacing, position and orientation.
    pub fn functional_groups(rng: &Rng, syntax: Syntax, frames: usize) -> Vec<(u32, Vec<u8>)> {
        let shared = vec![functional_group(rng, syntax)];
        let per_frame: Vec<Vec<u8>> = (0..frames).map(|_| functional_group(rng, syntax)).collect();
        let undefined = rng.percent(30);
        vec![
            (0x5200_9229, sequence(0x5200_9229, &shared, undefined, syntax)),
            (0x5200_9230, sequence(0x5200_9230, &per_frame, undefined, syntax)),
        ]
    }

    fn functional_group(rng: &Rng, syntax: Syntax) -> Vec<u8> {
        let undefined = rng.percent(30);
        let text = |tag: u32, values: &[&'static str]| {
            let value = *rng.pick(values);
            element(tag, b"DS", value.as_bytes(), syntax)
        };
        let pixel_value =
            [text(0x0028_1052, REALS), text(0x0028_1053, REALS), element(0x0028_1054, b"LO", b"HU", syntax)].concat();
        let voi = [text(0x0028_1050, WINDOWS), text(0x0028_1051, WINDOWS)].concat();
        let measures = [text(0x0028_0030, SPACINGS), text(0x0018_0050, &["1", "0", "NaN"])].concat();
        let position = text(0x0020_0032, POSITIONS);
        let orientation = text(0x0020_0037, ORIENTATIONS);
        let groups = [
            (0x0020_9113, position),
            (0x0020_9116, orientation),
            (0x0028_9110, measures),
            (0x0028_9132, voi),
            (0x0028_9145, pixel_value),
        ];
        groups
            .into_iter()
            .filter(|_| rng.percent(75))
            .flat_map(|(tag, body)| sequence(tag, &[body], undefined, syntax))
            .collect()
    }

    // --- Pixel data -----------------------------------------------------------------------------

    fn pixel_data(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let pixels = layout.top(PIXEL_DATA)?;
        if layout.fragments.is_empty() {
            return native_pixels(rng, data, pixels);
        }
        match rng.below(10) {
            0..=3 => fragment_content(rng, data, layout),
            4 => truncate_in_fragment(rng, data, layout),
            5 => fragment_length(rng, data, layout),
            6 => rearrange_fragments(rng, data, layout),
            7 => offset_table(rng, data, layout),
            8 => {
                data.truncate(pixels.end.saturating_sub(8));
                Some("drop the sequence delimiter".to_string())
            }
            _ => {
                data.truncate(pixels.value_start + rng.below(pixels.end - pixels.value_start));
                Some("truncate inside the fragments".to_string())
            }
        }
    }

    fn native_pixels(rng: &Rng, data: &mut Vec<u8>, pixels: &Element) -> Option<String> {
        let len = pixels.len as usize;
        match rng.below(3) {
            0 => {
                let keep = pixels.value_start + len - rng.length(len.max(1)).min(len);
                data.truncate(keep);
                Some(format!("truncate the pixel data to {} bytes", keep - pixels.value_start))
            }
            1 => {
                let new = rng.below(len + 1) as u64 | u64::from(rng.percent(30));
                let width = if pixels.long_len { 4 } else { 2 };
                raw::put(data, pixels.len_pos, width, new, pixels.syntax.big_endian);
                data.truncate(pixels.value_start + new as usize);
                Some(format!("pixel data {len} → {new} bytes"))
            }
            _ => {
                let extra = rng.bytes(rng.length(4096));
                let at = pixels.end.min(data.len());
                raw::splice(data, at..at, &extra);
                Some(format!("{} bytes after the pixel data", extra.len()))
            }
        }
    }

    fn pick_fragment<'a>(rng: &Rng, layout: &'a Layout) -> Option<&'a Fragment> {
        // Index 0 is the offset table; the frames follow.
        let frames = &layout.fragments[1.min(layout.fragments.len())..];
        if frames.is_empty() { layout.fragments.first() } else { Some(rng.pick(frames)) }
    }

    fn rewrite_fragment(data: &mut Vec<u8>, fragment: &Fragment, mut content: Vec<u8>) {
        if content.len() % 2 == 1 {
            content.push(0);
        }
        raw::put(data, fragment.start + 4, 4, content.len() as u64, false);
        raw::splice(data, fragment.value_start..fragment.value_start + fragment.len, &content);
    }

    /// The codestream inside a fragment, mutated as what it is: JPEG family, RLE, or bytes.
    fn fragment_content(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let fragment = pick_fragment(rng, layout)?;
        let mut content = data.get(fragment.value_start..fragment.value_start + fragment.len)?.to_vec();
        let rle = layout.transfer_syntax.as_deref() == Some(uid::RLE);
        let step = if rle && content.len() >= 64 && rng.percent(60) {
            rle_header(rng, &mut content)
        } else {
            super::codestream::mutate(rng, &mut content)
                .unwrap_or_else(|| super::generic::mutate(rng, &mut content, &[]))
        };
        rewrite_fragment(data, fragment, content);
        Some(format!("fragment: {step}"))
    }

    /// DICOM RLE: 16 little-endian u32, a segment count and up to 15 segment offsets.
    fn rle_header(rng: &Rng, content: &mut [u8]) -> String {
        let len = content.len() as u64;
        let slot = rng.below(16);
        let old = u64::from(u32_at(content, slot * 4, false).unwrap_or(0));
        let new = match rng.below(4) {
            0 if slot == 0 => *rng.pick(&[0, 1, 2, 3, 4, 15, 16, 255, 0xFFFF_FFFF]),
            0 => *rng.pick(&[0, 64, len, len + 1, len - 1, 0xFFFF_FFFF]),
            1 => old ^ 1,
            _ => super::values::near(rng, old, 32),
        };
        raw::put(content, slot * 4, 4, new, false);
        format!("RLE header word {slot}: {old} → {new}")
    }

    fn truncate_in_fragment(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let fragment = pick_fragment(rng, layout)?;
        let keep = fragment.value_start + rng.below(fragment.len + 1);
        data.truncate(keep);
        Some(format!("truncate inside a fragment at {keep}"))
    }

    fn fragment_length(rng: &Rng, data: &mut [u8], layout: &Layout) -> Option<String> {
        let fragment = pick_fragment(rng, layout)?;
        let old = fragment.len as u64;
        let new = match rng.below(4) {
            0 => old ^ 1,
            1 => 0,
            2 => u64::from(UNDEFINED),
            _ => super::values::near(rng, old, 32),
        };
        raw::put(data, fragment.start + 4, 4, new, false);
        Some(format!("fragment length {old} → {new}"))
    }

    fn rearrange_fragments(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let fragment = pick_fragment(rng, layout)?;
        let whole = fragment.start..fragment.value_start + fragment.len;
        match rng.below(3) {
            0 => {
                raw::splice(data, whole, &[]);
                Some("delete a fragment".to_string())
            }
            1 => {
                let copy = data.get(whole.clone())?.to_vec();
                raw::splice(data, whole.end..whole.end, &copy);
                Some("duplicate a fragment".to_string())
            }
            _ => {
                let content = rng.bytes(rng.length(2048));
                rewrite_fragment(data, fragment, content);
                Some("random bytes as a fragment".to_string())
            }
        }
    }

    fn offset_table(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let table = layout.fragments.first()?;
        let count = rng.below(6);
        let offsets: Vec<u8> =
            (0..count).flat_map(|_| (super::values::near(rng, 0, 32) as u32).to_le_bytes()).collect();
        rewrite_fragment(data, table, offsets);
        Some(format!("offset table with {count} entries"))
    }

    /// Another file's pixel data and transfer syntax in this file's header.
    fn transplant_pixels(rng: &Rng, data: &mut Vec<u8>, layout: &Layout, donor: &[u8]) -> Option<String> {
        let donor_layout = parse(donor);
        let donor_pixels = donor_layout.top(PIXEL_DATA)?;
        let bytes = donor.get(donor_pixels.start..donor_pixels.end)?.to_vec();
        let donor_syntax = donor_layout.transfer_syntax.clone()?;
        match layout.top(PIXEL_DATA) {
            Some(own) => raw::splice(data, own.start..own.end, &bytes),
            None => data.extend_from_slice(&bytes),
        }
        if rng.percent(80) {
            if let Some(ts) = parse(data).top(TRANSFER_SYNTAX) {
                replace_value(data, ts, donor_syntax.as_bytes().to_vec(), 0);
            }
        }
        Some(format!("pixel data of another file ({donor_syntax})"))
    }

    /// The preamble, the DICM marker and the file meta group.
    fn file_framing(rng: &Rng, data: &mut Vec<u8>, layout: &Layout) -> Option<String> {
        let start = preamble_end(data);
        match rng.below(4) {
            0 if start == 132 => {
                data.drain(..128);
                Some("no preamble".to_string())
            }
            1 if layout.meta_end > start => {
                data.drain(..layout.meta_end);
                Some("no preamble and no file meta (a bare data set)".to_string())
            }
            2 if start == 132 => {
                data[131] = b'N';
                Some("DICM → DICN".to_string())
            }
            _ => {
                let element = layout.top(META_GROUP_LENGTH)?;
                let new = super::values::near(rng, u64::from(u32_at(value(data, element), 0, false)?), 32);
                raw::put(data, element.value_start, 4, new, false);
                Some(format!("meta group length {new}"))
            }
        }
    }

    /// After a meta edit the group length must follow, or the reader stops at the meta group.
    fn fix_meta_group_length(data: &mut [u8]) {
        let layout = parse(data);
        if let Some(length) = layout.top(META_GROUP_LENGTH) {
            if length.len == 4 {
                let len = layout.meta_end.saturating_sub(length.end) as u64;
                raw::put(data, length.value_start, 4, len, false);
            }
        }
    }

    /// Whole files for seeds (see `synth`).
    pub mod build {
        use super::*;

        fn file(transfer_syntax: &str, mut elements: Vec<(u32, Vec<u8>)>) -> Vec<u8> {
            let meta_elements = [
                element(0x0002_0001, b"OB", &[0, 1], EXPLICIT_LE),
                element(0x0002_0002, b"UI", b"1.2.840.10008.5.1.4.1.1.7", EXPLICIT_LE),
                element(0x0002_0003, b"UI", b"1.2.826.0.1.3680043.8.498.17", EXPLICIT_LE),
                element(TRANSFER_SYNTAX, b"UI", transfer_syntax.as_bytes(), EXPLICIT_LE),
            ]
            .concat();
            let mut out = vec![0u8; 128];
            out.extend_from_slice(b"DICM");
            out.extend(element(META_GROUP_LENGTH, b"UL", &(meta_elements.len() as u32).to_le_bytes(), EXPLICIT_LE));
            out.extend(meta_elements);
            elements.sort_by_key(|(tag, _)| *tag);
            for (_, encoded) in elements {
                out.extend(encoded);
            }
            out
        }

        fn us(tag: u32, v: u16, syntax: Syntax) -> (u32, Vec<u8>) {
            (tag, element(tag, b"US", &raw::le16(v, syntax.big_endian), syntax))
        }

        fn text(tag: u32, vr: &[u8; 2], v: &str, syntax: Syntax) -> (u32, Vec<u8>) {
            (tag, element(tag, vr, v.as_bytes(), syntax))
        }

        /// The image pixel module: samples, photometric, size, bits.
        fn image(
            samples: u16,
            photometric: &str,
            cols: u32,
            rows: u32,
            bits: u16,
            syntax: Syntax,
        ) -> Vec<(u32, Vec<u8>)> {
            vec![
                text(0x0008_0016, b"UI", "1.2.840.10008.5.1.4.1.1.7", syntax),
                text(0x0008_0060, b"CS", "OT", syntax),
                us(0x0028_0002, samples, syntax),
                text(0x0028_0004, b"CS", photometric, syntax),
                us(0x0028_0010, rows as u16, syntax),
                us(0x0028_0011, cols as u16, syntax),
                us(0x0028_0100, bits, syntax),
                us(0x0028_0101, bits, syntax),
                us(0x0028_0102, bits - 1, syntax),
                us(0x0028_0103, 0, syntax),
            ]
        }

        pub fn jpeg_file(fragments: &[Vec<u8>], samples: u16, photometric: &str, cols: u32, rows: u32) -> Vec<u8> {
            let mut elements = image(samples, photometric, cols, rows, 8, EXPLICIT_LE);
            if samples == 3 {
                elements.push(us(0x0028_0006, 0, EXPLICIT_LE));
            }
            if fragments.len() > 1 {
                elements.push(text(0x0028_0008, b"IS", &fragments.len().to_string(), EXPLICIT_LE));
            }
            elements.push((PIXEL_DATA, encapsulated(fragments)));
            file(uid::JPEG_BASELINE, elements)
        }

        fn native(pixels: &[u8], syntax: Syntax) -> (u32, Vec<u8>) {
            (PIXEL_DATA, element(PIXEL_DATA, b"OB", pixels, syntax))
        }

        pub fn palette_file() -> Vec<u8> {
            let (cols, rows) = (32u32, 24u32);
            let mut elements = image(1, "PALETTE COLOR", cols, rows, 8, EXPLICIT_LE);
            let rng = Rng::for_input(17, 17);
            elements.extend(palette(&rng, EXPLICIT_LE, false).into_iter().filter(|(tag, _)| *tag != 0x0028_0004));
            let pixels: Vec<u8> = (0..cols * rows).map(|i| (i * 7) as u8).collect();
            elements.push(native(&pixels, EXPLICIT_LE));
            file(uid::EXPLICIT_LE, elements)
        }

        pub fn ybr_file() -> Vec<u8> {
            let (cols, rows) = (16u32, 12u32);
            let mut elements = image(3, "YBR_FULL", cols, rows, 8, EXPLICIT_LE);
            elements.push(us(0x0028_0006, 1, EXPLICIT_LE));
            let pixels: Vec<u8> = (0..cols * rows * 3).map(|i| (i * 13 % 251) as u8).collect();
            elements.push(native(&pixels, EXPLICIT_LE));
            file(uid::EXPLICIT_LE, elements)
        }

        pub fn one_bit_file() -> Vec<u8> {
            let (cols, rows) = (64u32, 8u32);
            let mut elements = image(1, "MONOCHROME2", cols, rows, 1, EXPLICIT_LE);
            elements.retain(|(tag, _)| *tag != 0x0028_0102);
            elements.push(us(0x0028_0102, 0, EXPLICIT_LE));
            let pixels: Vec<u8> = (0..cols * rows / 8).map(|i| (i * 37) as u8).collect();
            elements.push(native(&pixels, EXPLICIT_LE));
            file(uid::EXPLICIT_LE, elements)
        }

        /// 16-bit signed CT-like frames with a rescale and a window; `enhanced` moves them into
        /// functional groups.
        pub fn ct_frames_file(frames: u32, enhanced: bool) -> Vec<u8> {
            let (cols, rows) = (24u32, 20u32);
            let s = EXPLICIT_LE;
            let mut elements = image(1, "MONOCHROME2", cols, rows, 16, s);
            elements.retain(|(tag, _)| !matches!(*tag, 0x0028_0101 | 0x0028_0102 | 0x0028_0103));
            elements.extend([us(0x0028_0101, 12, s), us(0x0028_0102, 11, s), us(0x0028_0103, 1, s)]);
            elements.push(text(0x0028_0008, b"IS", &frames.to_string(), s));
            if enhanced {
                let rng = Rng::for_input(17, 18);
                elements.extend(functional_groups(&rng, s, frames as usize));
            } else {
                elements.extend([
                    text(0x0028_1050, b"DS", "40\\400", s),
                    text(0x0028_1051, b"DS", "400\\1500", s),
                    text(0x0028_1052, b"DS", "-1024", s),
                    text(0x0028_1053, b"DS", "1", s),
                ]);
            }
            let pixels: Vec<u8> =
                (0..cols * rows * frames).flat_map(|i| ((i * 37 % 4096) as i16 - 2048).to_le_bytes()).collect();
            elements.push(native(&pixels, s));
            file(uid::EXPLICIT_LE, elements)
        }

        pub fn modality_lut_file() -> Vec<u8> {
            let (cols, rows) = (16u32, 16u32);
            let s = EXPLICIT_LE;
            let mut elements = image(1, "MONOCHROME2", cols, rows, 16, s);
            let table: Vec<u16> = (0..4096u32).map(|i| (i * 2) as u16).collect();
            let mut item = element(0x0028_3002, b"US", &words(&[4096, 0, 16], false), s);
            item.extend(element(0x0028_3004, b"LO", b"HU", s));
            item.extend(element(0x0028_3006, b"OW", &words(&table, false), s));
            elements.push((0x0028_3000, sequence(0x0028_3000, &[item], false, s)));
            let pixels: Vec<u8> = (0..cols * rows).flat_map(|i| ((i * 16) as u16).to_le_bytes()).collect();
            elements.push(native(&pixels, s));
            file(uid::EXPLICIT_LE, elements)
        }

        pub fn implicit_file() -> Vec<u8> {
            let (cols, rows) = (16u32, 16u32);
            let s = IMPLICIT_LE;
            let mut elements = image(1, "MONOCHROME2", cols, rows, 16, s);
            elements.push(text(0x0028_1052, b"DS", "-1024", s));
            elements.push(text(0x0028_1053, b"DS", "1", s));
            let pixels: Vec<u8> = (0..cols * rows).flat_map(|i| ((i * 9) as u16).to_le_bytes()).collect();
            elements.push((PIXEL_DATA, element(PIXEL_DATA, b"OW", &pixels, s)));
            file(uid::IMPLICIT_LE, elements)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PNG: chunks with their CRC recomputed, so decoders get past the checksum
// ---------------------------------------------------------------------------------------------

mod png {
    use super::raw::{self, u32_at};
    use super::rng::Rng;

    pub const SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

    pub struct Chunk {
        pub start: usize,
        pub kind: [u8; 4],
        pub data_start: usize,
        pub len: usize,
    }

    impl Chunk {
        fn end(&self) -> usize {
            self.data_start + self.len + 4
        }
    }

    /// The chunks up to the first one that does not fit.
    pub fn chunks(data: &[u8]) -> Vec<Chunk> {
        let mut out = Vec::new();
        if !data.starts_with(SIGNATURE) {
            return out;
        }
        let mut pos = 8;
        while let Some(len) = u32_at(data, pos, true) {
            let Some(kind) = data.get(pos + 4..pos + 8) else { break };
            let chunk = Chunk {
                start: pos,
                kind: [kind[0], kind[1], kind[2], kind[3]],
                data_start: pos + 8,
                len: len as usize,
            };
            if chunk.end() > data.len() {
                break;
            }
            pos = chunk.end();
            out.push(chunk);
        }
        out
    }

    pub fn chunk(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out.extend_from_slice(&raw::crc32(&[kind, body]).to_be_bytes());
        out
    }

    pub fn mutate(rng: &Rng, data: &mut Vec<u8>) -> Option<String> {
        let chunks = chunks(data);
        if chunks.is_empty() {
            return None;
        }
        match rng.below(100) {
            0..=34 => header_field(rng, data, &chunks),
            35..=44 => scanlines(rng, data, &chunks),
            45..=59 => insert_chunk(rng, data, &chunks),
            60..=74 => rearrange(rng, data, &chunks),
            75..=79 => length_field(rng, data, &chunks),
            80..=94 => chunk_body(rng, data, &chunks),
            _ => split_data(rng, data, &chunks),
        }
    }

    fn body<'a>(data: &'a [u8], chunk: &Chunk) -> &'a [u8] {
        &data[chunk.data_start..chunk.data_start + chunk.len]
    }

    /// Writes a new body; mostly with a right CRC, sometimes deliberately wrong.
    fn rewrite(rng: &Rng, data: &mut Vec<u8>, chunk: &Chunk, new_body: &[u8]) -> &'static str {
        let mut encoded = super::png::chunk(&chunk.kind, new_body);
        let broken = rng.percent(5);
        if broken {
            let last = encoded.len() - 1;
            encoded[last] ^= 0x5A;
        }
        raw::splice(data, chunk.start..chunk.end(), &encoded);
        if broken { " (CRC wrong)" } else { "" }
    }

    const IHDR_FIELDS: &[(&str, usize, usize, &[u64])] = &[
        ("width", 0, 4, &[0, 1, 2, 7, 8, 32768, 32769, 65535, 65536, 100_000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]),
        ("height", 4, 4, &[0, 1, 2, 7, 8, 32768, 32769, 65535, 65536, 100_000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF]),
        ("bit depth", 8, 1, &[0, 1, 2, 3, 4, 8, 16, 32, 255]),
        ("colour type", 9, 1, &[0, 1, 2, 3, 4, 5, 6, 7, 255]),
        ("compression", 10, 1, &[0, 1, 255]),
        ("filter", 11, 1, &[0, 1, 255]),
        ("interlace", 12, 1, &[0, 1, 2, 255]),
    ];

    fn header_field(rng: &Rng, data: &mut Vec<u8>, chunks: &[Chunk]) -> Option<String> {
        let header = chunks.iter().find(|c| &c.kind == b"IHDR" && c.len >= 13)?;
        let mut new_body = body(data, header).to_vec();
        let (name, offset, width, table) = *rng.pick(IHDR_FIELDS);
        let old = new_body[offset..offset + width].iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
        let value = super::values::from(rng, table, old, width as u32 * 8);
        raw::put(&mut new_body, offset, width, value, true);
        let crc = rewrite(rng, data, header, &new_body);
        Some(format!("IHDR {name} {old} → {value}{crc}"))
    }

    /// One IDAT holding a valid zlib stream of about the right number of scanline bytes, so the
    /// decoder reaches unfiltering and pixel conversion with whatever the header now says.
    fn scanlines(rng: &Rng, data: &mut Vec<u8>, chunks: &[Chunk]) -> Option<String> {
        let header = chunks.iter().find(|c| &c.kind == b"IHDR" && c.len >= 13)?;
        let ihdr = body(data, header);
        let (width, height) = (u32_at(ihdr, 0, true)? as usize, u32_at(ihdr, 4, true)? as usize);
        let channels = match ihdr[9] {
            2 => 3,
            4 => 2,
            6 => 4,
            _ => 1,
        };
        let row = 1 + (width.saturating_mul(channels).saturating_mul(usize::from(ihdr[8]))).div_ceil(8);
        let expected = row.saturating_mul(height);
        let len = if expected <= 1 << 21 && rng.percent(80) {
            (expected as i64 + rng.below(9) as i64 - 4).max(0) as usize
        } else {
            rng.length(1 << 16)
        };
        let mut raw_rows = rng.bytes(len);
        for start in (0..len).step_by(row.max(1)) {
            raw_rows[start] = rng.below(6) as u8;
        }
        let idat = chunk(b"IDAT", &raw::zlib_stored(&raw_rows));
        let first = chunks.iter().position(|c| &c.kind == b"IDAT");
        let last = chunks.iter().rposition(|c| &c.kind == b"IDAT");
        match (first, last) {
            (Some(first), Some(last)) => raw::splice(data, chunks[first].start..chunks[last].end(), &idat),
            _ => {
                let at = header.end();
                raw::splice(data, at..at, &idat);
            }
        }
        Some(format!("IDAT with {len} scanline bytes (expected {expected})"))
    }

    fn insert_chunk(rng: &Rng, data: &mut Vec<u8>, chunks: &[Chunk]) -> Option<String> {
        let (kind, body) = ancillary(rng);
        let after = if rng.percent(70) { chunks.first()? } else { rng.pick(chunks) };
        let at = after.end();
        raw::splice(data, at..at, &chunk(&kind, &body));
        Some(format!("insert {} ({} bytes)", String::from_utf8_lossy(&kind), body.len()))
    }

    fn be32(v: u64) -> [u8; 4] {
        (v as u32).to_be_bytes()
    }

    fn ancillary(rng: &Rng) -> ([u8; 4], Vec<u8>) {
        let edge = |rng: &Rng| super::values::near(rng, 0, 32);
        match rng.below(14) {
            0 => (*b"PLTE", rng.bytes(if rng.percent(70) { 3 * rng.below(300) } else { rng.below(900) })),
            1 => (*b"tRNS", rng.bytes(rng.below(300))),
            2 => (*b"gAMA", be32(edge(rng)).to_vec()),
            3 => (*b"sBIT", rng.bytes(1 + rng.below(4))),
            4 => (*b"bKGD", rng.bytes(*rng.pick(&[1, 2, 6, 0, 3]))),
            5 => (*b"iCCP", [&b"icc\0\0"[..], &raw::zlib_stored(&rng.bytes(rng.length(2048)))].concat()),
            6 => (*b"zTXt", [&b"k\0\0"[..], &raw::zlib_stored(&rng.bytes(rng.length(2048)))].concat()),
            7 => (*b"iTXt", [&b"k\0\x01\0\0\0"[..], &raw::zlib_stored(&rng.bytes(rng.length(512)))].concat()),
            8 => (*b"acTL", [be32(edge(rng)), be32(edge(rng))].concat()),
            9 => {
                let fields = [be32(0), be32(edge(rng)), be32(edge(rng)), be32(edge(rng)), be32(edge(rng))].concat();
                (*b"fcTL", [fields, vec![0, 1, 0, 1, rng.byte() % 4, rng.byte() % 3]].concat())
            }
            10 => (*b"eXIf", [&b"II*\0\x08\0\0\0"[..], &rng.bytes(rng.length(256))].concat()),
            11 => (*b"pHYs", rng.bytes(9)),
            12 => (*b"cICP", rng.bytes(4)),
            _ => (*rng.pick(&[*b"ABCD", *b"abcD", *b"IDAT", *b"IEND", *b"IHDR"]), rng.bytes(rng.below(64))),
        }
    }

    fn rearrange(rng: &Rng, data: &mut Vec<u8>, chunks: &[Chunk]) -> Option<String> {
        let chunk = rng.pick(chunks);
        let name = String::from_utf8_lossy(&chunk.kind).into_owned();
        let whole = chunk.start..chunk.end();
        match rng.below(3) {
            0 => {
                raw::splice(data, whole, &[]);
                Some(format!("delete {name}"))
            }
            1 => {
                let copy = data[whole.clone()].to_vec();
                raw::splice(data, whole.end..whole.end, &copy);
                Some(format!("duplicate {name}"))
            }
            _ => {
                let copy = data[whole.clone()].to_vec();
                raw::splice(data, whole, &[]);
                let to = (*rng.pick(&[8usize, chunks[0].end()])).min(data.len());
                raw::splice(data, to..to, &copy);
                Some(format!("move {name} to {to}"))
            }
        }
    }

    fn length_field(rng: &Rng, data: &mut [u8], chunks: &[Chunk]) -> Option<String> {
        let chunk = rng.pick(chunks);
        let value = super::values::near(rng, chunk.len as u64, 32);
        raw::put(data, chunk.start, 4, value, true);
        Some(format!("{} length {} → {value}", String::from_utf8_lossy(&chunk.kind), chunk.len))
    }

    fn chunk_body(rng: &Rng, data: &mut Vec<u8>, chunks: &[Chunk]) -> Option<String> {
        let chunk = rng.pick(chunks);
        let mut new_body = body(data, chunk).to_vec();
        let step = super::generic::mutate(rng, &mut new_body, &[]);
        let crc = rewrite(rng, data, chunk, &new_body);
        Some(format!("{} body: {step}{crc}", String::from_utf8_lossy(&chunk.kind)))
    }

    fn split_data(rng: &Rng, data: &mut Vec<u8>, chunks: &[Chunk]) -> Option<String> {
        let idat = chunks.iter().find(|c| &c.kind == b"IDAT")?;
        let stream = body(data, idat).to_vec();
        let cut = rng.below(stream.len() + 1);
        let two = [chunk(b"IDAT", &stream[..cut]), chunk(b"IDAT", &stream[cut..])].concat();
        raw::splice(data, idat.start..idat.end(), &two);
        Some(format!("split IDAT at {cut}"))
    }
}

// ---------------------------------------------------------------------------------------------
// TIFF: the first image file directory
// ---------------------------------------------------------------------------------------------

mod tiff {
    use super::raw::{self, u16_at, u32_at};
    use super::rng::Rng;

    struct Entry {
        pos: usize,
        tag: u16,
        kind: u16,
        count: u32,
    }

    struct Directory {
        big: bool,
        offset: usize,
        entries: Vec<Entry>,
        next_pos: usize,
    }

    fn directory(data: &[u8]) -> Option<Directory> {
        let big = match data.get(0..4)? {
            b"II*\0" => false,
            b"MM\0*" => true,
            _ => return None,
        };
        let offset = u32_at(data, 4, big)? as usize;
        let count = usize::from(u16_at(data, offset, big)?);
        let mut entries = Vec::new();
        for i in 0..count.min(512) {
            let pos = offset + 2 + 12 * i;
            let (Some(tag), Some(kind), Some(count)) =
                (u16_at(data, pos, big), u16_at(data, pos + 2, big), u32_at(data, pos + 4, big))
            else {
                break;
            };
            entries.push(Entry { pos, tag, kind, count });
        }
        Some(Directory { big, offset, next_pos: offset + 2 + 12 * count, entries })
    }

    /// Tags the decoder acts on, with values worth trying.
    const TAGS: &[(u16, &str, &[u64])] = &[
        (256, "ImageWidth", &[0, 1, 65535, 65536, 0x7FFF_FFFF, 0xFFFF_FFFF]),
        (257, "ImageLength", &[0, 1, 65535, 65536, 0x7FFF_FFFF, 0xFFFF_FFFF]),
        (258, "BitsPerSample", &[0, 1, 2, 4, 7, 8, 12, 16, 24, 32, 64, 65535]),
        (259, "Compression", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 32773, 32946, 34712, 34887, 34925, 50000, 65535]),
        (262, "Photometric", &[0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 32844, 32845, 65535]),
        (273, "StripOffsets", &[0, 1, 8, 0xFFFF_FFFF]),
        (277, "SamplesPerPixel", &[0, 1, 2, 3, 4, 5, 8, 65535]),
        (278, "RowsPerStrip", &[0, 1, 2, 0xFFFF_FFFF]),
        (279, "StripByteCounts", &[0, 1, 2, 0x7FFF_FFFF, 0xFFFF_FFFF]),
        (284, "PlanarConfiguration", &[0, 1, 2, 3]),
        (317, "Predictor", &[0, 1, 2, 3, 4]),
        (320, "ColorMap", &[0, 1, 8]),
        (322, "TileWidth", &[0, 1, 16, 17, 65535, 0xFFFF_FFFF]),
        (323, "TileLength", &[0, 1, 16, 17, 65535, 0xFFFF_FFFF]),
        (324, "TileOffsets", &[0, 8]),
        (325, "TileByteCounts", &[0, 1, 0xFFFF_FFFF]),
        (338, "ExtraSamples", &[0, 1, 2, 3]),
        (339, "SampleFormat", &[0, 1, 2, 3, 4, 5]),
        (347, "JPEGTables", &[0, 8]),
        (530, "YCbCrSubSampling", &[0, 1, 2, 4]),
    ];

    const KINDS: &[u16] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18, 255];

    pub fn mutate(rng: &Rng, data: &mut Vec<u8>) -> Option<String> {
        let dir = directory(data)?;
        if dir.entries.is_empty() {
            return None;
        }
        match rng.below(100) {
            0..=39 => entry_value(rng, data, &dir),
            40..=47 => entry_kind(rng, data, &dir),
            48..=55 => entry_count(rng, data, &dir),
            56..=72 => rewrite_directory(rng, data, &dir),
            73..=78 => entry_total(rng, data, &dir),
            79..=86 => next_directory(rng, data, &dir),
            87..=92 => first_directory(rng, data, &dir),
            _ => {
                data[0..4].copy_from_slice(if dir.big { b"II*\0" } else { b"MM\0*" });
                Some("byte order swapped".to_string())
            }
        }
    }

    fn tag_name(tag: u16) -> String {
        TAGS.iter().find(|t| t.0 == tag).map(|t| t.1.to_string()).unwrap_or_else(|| format!("tag {tag}"))
    }

    fn pick_entry<'a>(rng: &Rng, dir: &'a Directory) -> &'a Entry {
        let known: Vec<&Entry> = dir.entries.iter().filter(|e| TAGS.iter().any(|t| t.0 == e.tag)).collect();
        if !known.is_empty() && rng.percent(75) { *rng.pick(&known) } else { rng.pick(&dir.entries) }
    }

    /// The value in place (or, for arrays kept elsewhere, one element of the array).
    fn entry_value(rng: &Rng, data: &mut [u8], dir: &Directory) -> Option<String> {
        let entry = pick_entry(rng, dir);
        let width = if entry.kind == 3 { 2 } else { 4 };
        let out_of_line = entry.count as usize * width > 4;
        let pos = if out_of_line && rng.percent(50) {
            let array = u32_at(data, entry.pos + 8, dir.big)? as usize;
            array + width * rng.below(entry.count.min(4096) as usize)
        } else {
            entry.pos + 8
        };
        let old =
            if width == 2 { u64::from(u16_at(data, pos, dir.big)?) } else { u64::from(u32_at(data, pos, dir.big)?) };
        let table = TAGS.iter().find(|t| t.0 == entry.tag).map(|t| t.2).unwrap_or(&[0]);
        let mut value = super::values::from(rng, table, old, width as u32 * 8);
        if matches!(entry.tag, 273 | 324) && rng.percent(30) {
            value = (data.len() - rng.below(16).min(data.len())) as u64;
        }
        raw::put(data, pos, width, value, dir.big);
        Some(format!("{} {old} → {value}", tag_name(entry.tag)))
    }

    fn entry_kind(rng: &Rng, data: &mut [u8], dir: &Directory) -> Option<String> {
        let entry = pick_entry(rng, dir);
        let kind = *rng.pick(KINDS);
        raw::put(data, entry.pos + 2, 2, u64::from(kind), dir.big);
        Some(format!("{} type {} → {kind}", tag_name(entry.tag), entry.kind))
    }

    fn entry_count(rng: &Rng, data: &mut [u8], dir: &Directory) -> Option<String> {
        let entry = pick_entry(rng, dir);
        let count = super::values::near(rng, u64::from(entry.count), 32);
        raw::put(data, entry.pos + 4, 4, count, dir.big);
        Some(format!("{} count {} → {count}", tag_name(entry.tag), entry.count))
    }

    fn entry_total(rng: &Rng, data: &mut [u8], dir: &Directory) -> Option<String> {
        let count = super::values::near(rng, dir.entries.len() as u64, 16);
        raw::put(data, dir.offset, 2, count, dir.big);
        Some(format!("directory entry count {} → {count}", dir.entries.len()))
    }

    fn next_directory(rng: &Rng, data: &mut [u8], dir: &Directory) -> Option<String> {
        let anywhere = rng.below(data.len()) as u64;
        let next = *rng.pick(&[0, dir.offset as u64, 8, data.len() as u64, 0xFFFF_FFFF, anywhere]);
        raw::put(data, dir.next_pos, 4, next, dir.big).then(|| format!("next directory at {next}"))
    }

    fn first_directory(rng: &Rng, data: &mut [u8], dir: &Directory) -> Option<String> {
        let first = super::values::from(rng, &[0, 1, 8, data.len() as u64, 0xFFFF_FFFF], dir.offset as u64, 32);
        raw::put(data, 4, 4, first, dir.big);
        Some(format!("first directory at {first}"))
    }

    /// A new directory at the end of the file: entries added, dropped, doubled or out of order.
    fn rewrite_directory(rng: &Rng, data: &mut Vec<u8>, dir: &Directory) -> Option<String> {
        let mut entries: Vec<Vec<u8>> =
            dir.entries.iter().filter_map(|e| data.get(e.pos..e.pos + 12).map(|b| b.to_vec())).collect();
        if entries.is_empty() {
            return None;
        }
        let step = match rng.below(4) {
            0 => {
                let removed = entries.remove(rng.below(entries.len()));
                format!("drop {}", tag_name(u16_at(&removed, 0, dir.big)?))
            }
            1 => {
                let copy = rng.pick(&entries).clone();
                entries.push(copy);
                "a tag twice".to_string()
            }
            2 => {
                let (a, b) = (rng.below(entries.len()), rng.below(entries.len()));
                entries.swap(a, b);
                "entries out of order".to_string()
            }
            _ => {
                let (tag, name, table) = *rng.pick(TAGS);
                let entry = new_entry(rng, data, tag, table, dir.big);
                entries.push(entry);
                entries.sort_by_key(|e| u16_at(e, 0, dir.big).unwrap_or(0));
                format!("add {name}")
            }
        };
        if data.len() % 2 == 1 {
            data.push(0);
        }
        let offset = data.len();
        data.extend_from_slice(&raw::le16(entries.len() as u16, dir.big));
        for entry in &entries {
            data.extend_from_slice(entry);
        }
        let next = u32_at(data, dir.next_pos, dir.big).unwrap_or(0);
        data.extend_from_slice(&raw::le32(next, dir.big));
        raw::put(data, 4, 4, offset as u64, dir.big);
        Some(step)
    }

    /// A SHORT or LONG entry; an array of a few values goes at the end of the file.
    fn new_entry(rng: &Rng, data: &mut Vec<u8>, tag: u16, table: &[u64], big: bool) -> Vec<u8> {
        let kind: u16 = if rng.percent(50) { 3 } else { 4 };
        let count = *rng.pick(&[1u32, 1, 2, 3, 4, 16]);
        let width = if kind == 3 { 2 } else { 4 };
        let mut entry = raw::le16(tag, big).to_vec();
        entry.extend_from_slice(&raw::le16(kind, big));
        entry.extend_from_slice(&raw::le32(count, big));
        let values: Vec<u64> = (0..count).map(|_| *rng.pick(table)).collect();
        if count as usize * width <= 4 {
            let mut inline = [0u8; 4];
            for (i, v) in values.iter().enumerate() {
                raw::put(&mut inline, i * width, width, *v, big);
            }
            entry.extend_from_slice(&inline);
        } else {
            if data.len() % 2 == 1 {
                data.push(0);
            }
            entry.extend_from_slice(&raw::le32(data.len() as u32, big));
            for v in values {
                let mut slot = vec![0u8; width];
                raw::put(&mut slot, 0, width, v, big);
                data.extend_from_slice(&slot);
            }
        }
        entry
    }
}

// ---------------------------------------------------------------------------------------------
// BMP: the file and info headers, and run-length pixel streams
// ---------------------------------------------------------------------------------------------

mod bmp {
    use super::raw::{self, u32_at};
    use super::rng::Rng;

    /// (name, offset, width in bytes, values to try).
    const FIELDS: &[(&str, usize, usize, &[u64])] = &[
        ("file size", 2, 4, &[0, 1, 0xFFFF_FFFF]),
        ("pixel offset", 10, 4, &[0, 14, 54, 0xFFFF_FFFF, 0x7FFF_FFFF]),
        ("header size", 14, 4, &[0, 12, 16, 40, 52, 56, 64, 108, 124, 1000, 0xFFFF_FFFF]),
        ("width", 18, 4, &[0, 1, 0xFFFF_FFFF, 65535, 32768, 0x8000_0000, 0x7FFF_FFFF]),
        ("height", 22, 4, &[0, 1, 0xFFFF_FFFF, 65535, 0xFFFF_8000, 0x8000_0000, 0x7FFF_FFFF]),
        ("planes", 26, 2, &[0, 1, 2, 65535]),
        ("bits per pixel", 28, 2, &[0, 1, 2, 4, 8, 15, 16, 24, 32, 48, 64, 3, 65535]),
        ("compression", 30, 4, &[0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 0xFFFF_FFFF]),
        ("image size", 34, 4, &[0, 1, 0xFFFF_FFFF]),
        ("colours used", 46, 4, &[0, 1, 2, 16, 256, 257, 65536, 0xFFFF_FFFF]),
        ("important colours", 50, 4, &[0, 1, 257, 0xFFFF_FFFF]),
        ("red mask", 54, 4, &[0, 0xFFFF_FFFF, 1, 0x8000_0000, 0x00FF_00FF, 0xF0F0_F0F0, 0x7C00, 0x00FF_0000]),
        ("green mask", 58, 4, &[0, 0xFFFF_FFFF, 1, 0x8000_0000, 0x00FF_00FF, 0x03E0, 0x0000_FF00]),
        ("blue mask", 62, 4, &[0, 0xFFFF_FFFF, 1, 0x001F, 0x0000_00FF]),
        ("alpha mask", 66, 4, &[0, 0xFFFF_FFFF, 0xFF00_0000]),
    ];

    pub fn mutate(rng: &Rng, data: &mut Vec<u8>) -> Option<String> {
        if !data.starts_with(b"BM") || data.len() < 30 {
            return None;
        }
        if rng.percent(15) {
            return run_length(rng, data);
        }
        let (name, offset, width, table) = *rng.pick(FIELDS);
        let old = if width == 2 {
            u64::from(super::raw::u16_at(data, offset, false)?)
        } else {
            u64::from(u32_at(data, offset, false)?)
        };
        let value = if matches!(name, "width" | "height") && rng.percent(20) {
            u64::from((old as u32 as i32).wrapping_neg() as u32)
        } else {
            super::values::from(rng, table, old, width as u32 * 8)
        };
        raw::put(data, offset, width, value, false).then(|| format!("{name} {old} → {value}"))
    }

    /// Pixels as an RLE8/RLE4 stream of runs, literals, end-of-line, delta jumps and ends.
    fn run_length(rng: &Rng, data: &mut Vec<u8>) -> Option<String> {
        let offset = u32_at(data, 10, false)? as usize;
        if offset > data.len() {
            return None;
        }
        let four_bit = rng.percent(30);
        let mut stream = Vec::new();
        for _ in 0..1 + rng.below(300) {
            match rng.below(10) {
                0..=4 => stream.extend_from_slice(&[1 + rng.byte() % 255, rng.byte()]),
                5 => stream.extend_from_slice(&[0, 0]),
                6 => stream.extend_from_slice(&[0, 2, rng.byte(), rng.byte()]),
                7 => {
                    let n = 3 + rng.below(253);
                    stream.extend_from_slice(&[0, n as u8]);
                    let literal = if rng.percent(80) { n.div_ceil(if four_bit { 2 } else { 1 }) } else { rng.below(n) };
                    stream.extend(rng.bytes(literal + literal % 2));
                }
                8 => stream.extend_from_slice(&[0, 1]),
                _ => stream.extend_from_slice(&[rng.byte(), rng.byte()]),
            }
        }
        data.truncate(offset);
        data.extend_from_slice(&stream);
        let (bits, compression) = if four_bit { (4, 2) } else { (8, 1) };
        raw::put(data, 28, 2, bits, false);
        raw::put(data, 30, 4, compression, false);
        raw::put(data, 34, 4, stream.len() as u64, false);
        Some(format!("RLE{bits} stream of {} bytes", stream.len()))
    }
}

// ---------------------------------------------------------------------------------------------
// JPEG, JPEG-LS and JPEG 2000 codestreams: marker segments (also inside DICOM fragments)
// ---------------------------------------------------------------------------------------------

mod codestream {
    use super::raw::{self, u16_at};
    use super::rng::Rng;

    struct Segment {
        start: usize,
        marker: u8,
        /// The length field's value (it counts itself); 0 for a marker without one.
        len: usize,
    }

    impl Segment {
        fn end(&self) -> usize {
            self.start + 2 + self.len
        }
    }

    struct Parsed {
        segments: Vec<Segment>,
        /// Entropy-coded data (after SOS, or SOD in JPEG 2000).
        entropy: Vec<std::ops::Range<usize>>,
        j2k: bool,
    }

    fn standalone(marker: u8, j2k: bool) -> bool {
        matches!(marker, 0xD0..=0xD9 | 0x01) || (j2k && matches!(marker, 0x4F | 0x93))
    }

    /// Where entropy-coded data ends: the next real marker.
    fn entropy_end(data: &[u8], from: usize, j2k: bool) -> usize {
        let mut i = from;
        while i + 1 < data.len() {
            let next = data[i + 1];
            let marker = if j2k { next >= 0x90 } else { next >= 0x80 && !(0xD0..=0xD7).contains(&next) };
            if data[i] == 0xFF && marker {
                return i;
            }
            i += 1;
        }
        data.len()
    }

    fn parse(data: &[u8]) -> Option<Parsed> {
        let j2k = data.starts_with(&[0xFF, 0x4F]);
        if !j2k && !data.starts_with(&[0xFF, 0xD8]) {
            return None;
        }
        let mut parsed = Parsed { segments: Vec::new(), entropy: Vec::new(), j2k };
        let mut pos = 0;
        while pos + 1 < data.len() && parsed.segments.len() < 1024 {
            if data[pos] != 0xFF {
                let end = entropy_end(data, pos, j2k);
                parsed.entropy.push(pos..end);
                pos = end;
                continue;
            }
            let marker = data[pos + 1];
            if marker == 0xFF {
                pos += 1;
                continue;
            }
            if standalone(marker, j2k) {
                parsed.segments.push(Segment { start: pos, marker, len: 0 });
                pos += 2;
                if marker == 0xD9 {
                    break;
                }
                continue;
            }
            let len = usize::from(u16_at(data, pos + 2, true)?);
            let segment = Segment { start: pos, marker, len };
            if len < 2 || segment.end() > data.len() {
                break;
            }
            pos = segment.end();
            parsed.segments.push(segment);
        }
        Some(parsed)
    }

    pub fn mutate(rng: &Rng, data: &mut Vec<u8>) -> Option<String> {
        let parsed = parse(data)?;
        let with_length: Vec<&Segment> = parsed.segments.iter().filter(|s| s.len >= 2).collect();
        if with_length.is_empty() {
            return None;
        }
        match rng.below(100) {
            0..=44 => field(rng, data, &parsed, &with_length),
            45..=51 => length(rng, data, &with_length),
            52..=63 => rearrange(rng, data, &with_length),
            64..=71 => frame_kind(rng, data, &parsed),
            72..=83 => truncate_entropy(rng, data, &parsed),
            84..=93 => entropy_markers(rng, data, &parsed),
            _ => insert_segment(rng, data, &with_length),
        }
    }

    fn is_frame_header(marker: u8) -> bool {
        matches!(marker, 0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC)) || marker == 0xF7
    }

    /// (offset from the marker, width): the fields decoders size their buffers from.
    fn known_fields(marker: u8, j2k: bool) -> &'static [(usize, usize)] {
        match marker {
            m if !j2k && is_frame_header(m) => {
                &[(4, 1), (5, 2), (7, 2), (9, 1), (10, 1), (11, 1), (12, 1), (14, 1), (17, 1)]
            }
            0x51 if j2k => &[
                (4, 2),
                (6, 4),
                (10, 4),
                (14, 4),
                (18, 4),
                (22, 4),
                (26, 4),
                (30, 4),
                (34, 4),
                (38, 2),
                (40, 1),
                (41, 1),
                (42, 1),
            ],
            0x52 if j2k => &[(4, 1), (5, 1), (6, 2), (8, 1), (9, 1), (10, 1), (11, 1), (12, 1), (13, 1)],
            0x90 if j2k => &[(4, 2), (6, 4), (10, 1), (11, 1)],
            0xDD => &[(4, 2)],
            0xDA => &[(4, 1), (5, 1), (6, 1)],
            0xF8 => &[(4, 1), (5, 2), (7, 2), (9, 2)],
            _ => &[],
        }
    }

    fn field(rng: &Rng, data: &mut [u8], parsed: &Parsed, segments: &[&Segment]) -> Option<String> {
        let headers: Vec<&&Segment> =
            segments.iter().filter(|s| !known_fields(s.marker, parsed.j2k).is_empty()).collect();
        let segment: &Segment =
            if !headers.is_empty() && rng.percent(70) { **rng.pick(&headers) } else { *rng.pick(segments) };
        let known = known_fields(segment.marker, parsed.j2k);
        let (offset, width) = if !known.is_empty() && rng.percent(75) {
            *rng.pick(known)
        } else {
            (4 + rng.below(segment.len.saturating_sub(2).max(1)), *rng.pick(&[1, 2]))
        };
        let pos = segment.start + offset;
        let old = data.get(pos..pos + width)?.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
        let value = super::values::near(rng, old, width as u32 * 8);
        raw::put(data, pos, width, value, true);
        Some(format!("marker {:02X} byte {offset}: {old} → {value}", segment.marker))
    }

    fn length(rng: &Rng, data: &mut [u8], segments: &[&Segment]) -> Option<String> {
        let segment = rng.pick(segments);
        let value = super::values::near(rng, segment.len as u64, 16);
        raw::put(data, segment.start + 2, 2, value, true);
        Some(format!("marker {:02X} length {} → {value}", segment.marker, segment.len))
    }

    fn rearrange(rng: &Rng, data: &mut Vec<u8>, segments: &[&Segment]) -> Option<String> {
        let segment = rng.pick(segments);
        let whole = segment.start..segment.end();
        if rng.percent(50) {
            raw::splice(data, whole, &[]);
            Some(format!("drop marker {:02X}", segment.marker))
        } else {
            let copy = data.get(whole.clone())?.to_vec();
            raw::splice(data, whole.end..whole.end, &copy);
            Some(format!("marker {:02X} twice", segment.marker))
        }
    }

    /// Baseline ↔ progressive ↔ lossless ↔ arithmetic ↔ JPEG-LS: another decoder's path.
    fn frame_kind(rng: &Rng, data: &mut [u8], parsed: &Parsed) -> Option<String> {
        let choices: &[u8] = if parsed.j2k {
            &[0x51, 0x52, 0x53, 0x55, 0x57, 0x58, 0x5C, 0x5D, 0x5F, 0x60, 0x63, 0x64, 0x90, 0x91, 0x92]
        } else {
            &[0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7, 0xC4, 0xDB]
        };
        let segment = parsed.segments.iter().find(|s| is_frame_header(s.marker) || (parsed.j2k && s.marker == 0x51))?;
        let new = *rng.pick(choices);
        data[segment.start + 1] = new;
        Some(format!("marker {:02X} → {new:02X}", segment.marker))
    }

    fn truncate_entropy(rng: &Rng, data: &mut Vec<u8>, parsed: &Parsed) -> Option<String> {
        if parsed.entropy.is_empty() {
            return None;
        }
        let range = rng.pick(&parsed.entropy).clone();
        let keep = range.start + rng.below(range.len() + 1);
        data.truncate(keep);
        if rng.percent(50) {
            data.extend_from_slice(&[0xFF, 0xD9]);
        }
        Some(format!("cut the entropy-coded data at {keep}"))
    }

    fn entropy_markers(rng: &Rng, data: &mut Vec<u8>, parsed: &Parsed) -> Option<String> {
        if parsed.entropy.is_empty() {
            return None;
        }
        let range = rng.pick(&parsed.entropy).clone();
        let at = range.start + rng.below(range.len() + 1);
        let marker = *rng.pick(&[0xD0, 0xD1, 0xD7, 0xD9, 0x00, 0xDA, 0xC4, 0x90, 0x93, 0xFF]);
        raw::splice(data, at..at, &[0xFF, marker]);
        Some(format!("FF {marker:02X} inside the entropy-coded data"))
    }

    fn insert_segment(rng: &Rng, data: &mut Vec<u8>, segments: &[&Segment]) -> Option<String> {
        let after = rng.pick(segments);
        let marker = *rng.pick(&[0xC4, 0xDB, 0xDD, 0xE0, 0xEE, 0xFE, 0xC0, 0xC2, 0xF7, 0xF8, 0x52, 0x5C, 0x51, 0x64]);
        let body = rng.bytes(rng.below(64));
        let mut segment = vec![0xFF, marker];
        segment.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
        segment.extend_from_slice(&body);
        raw::splice(data, after.end()..after.end(), &segment);
        Some(format!("insert marker {marker:02X} ({} bytes)", body.len()))
    }
}
