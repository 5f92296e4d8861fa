//! Data safety, tested for real: a writer killed (SIGKILL) at random moments leaves each file
//! either as it was or complete in its new version; an export the disk refuses (no such folder,
//! read-only, full) says why in the status line and keeps the mask open, unexported and in its
//! autosave; a damaged autosave or export list is set aside with a warning and the window goes on.
//!
//! Some checks need a second process: this test binary again, running only the test that
//! started it, with `ROLE` naming its part (a writer to be killed; the app inside a mount
//! namespace where one folder is read-only and another is a full disk).
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture;
use common::window::{fill_at, wait_for_load};
use delightsam::app::{AnnotatorApp, AppOptions, AppPaths, ExportLog, ExportRecord, Settings, export_path};
use delightsam::imaging::{Mask, write_atomic, write_mask_png};
use delightsam::model::backend::BackendKind;
use egui::{Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;

const ROLE: &str = "DELIGHTSAM_DATA_SAFETY_ROLE";
const ROLE_DIR: &str = "DELIGHTSAM_DATA_SAFETY_DIR";
/// The version a writer child starts with (then it alternates).
const FIRST_VERSION: &str = "DELIGHTSAM_DATA_SAFETY_FIRST";

fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

fn role_dir() -> PathBuf {
    PathBuf::from(std::env::var_os(ROLE_DIR).expect("the parent names the folder"))
}

/// This test binary, running only the test `name`, in the part `role`, on `dir`.
fn this_test_as(name: &str, role: &str, dir: &Path) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([name, "--exact", "--nocapture", "--test-threads=1"]).env(ROLE, role).env(ROLE_DIR, dir);
    command
}

/// xorshift64*: random enough for noise masks and kill delays, and reproducible from its seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ----- kill -9 -----

const KILL_TEST: &str = "a_writer_killed_at_random_moments_leaves_the_old_file_or_the_new_one";
const MASK_FILE: &str = "scan_mask.png";
const LOG_FILE: &str = "exports.json";
const WRITING: &str = "data-safety child: writing";
const ROUNDS: usize = 30;

/// Two versions of each file, large enough that a write takes a while (most kills land inside
/// one): a noise mask (a PNG of about 0.3 MB) and an export list of about 3 MB.
struct Versions {
    masks: [Mask; 2],
    logs: [Vec<ExportRecord>; 2],
    log_bytes: [Vec<u8>; 2],
}

impl Versions {
    fn new() -> Self {
        const SIDE: u32 = 1536;
        let mask = |seed| {
            let mut random = Random(seed);
            let labels = (0..SIDE * SIDE).map(|_| u8::from(random.below(8) == 0)).collect();
            Mask::from_labels(SIDE, SIDE, labels).unwrap()
        };
        let log = |modality: &str| -> Vec<ExportRecord> {
            (0..20_000)
                .map(|i| ExportRecord {
                    image: PathBuf::from(format!("/data/{modality}/image_{i:05}.dcm")),
                    frame: i % 7,
                    mask: PathBuf::from(format!("/data/{modality}/masks/image_{i:05}_mask.png")),
                    modality: modality.into(),
                })
                .collect()
        };
        let logs = [log("ct"), log("mr")];
        let log_bytes = logs.clone().map(|exports| serde_json::to_vec_pretty(&ExportLog { exports }).unwrap());
        Self { masks: [mask(1), mask(2)], logs, log_bytes }
    }
}

/// The writer child: writes the two versions alternately, mask then list, until it is killed.
fn keep_writing(dir: &Path, first: usize) {
    let versions = Versions::new();
    let source = dir.join("scan.png");
    println!("{WRITING}");
    let deadline = Instant::now() + Duration::from_secs(60);
    for k in first.. {
        let v = k % 2;
        write_mask_png(&versions.masks[v], &dir.join(MASK_FILE), &source).unwrap();
        write_atomic(&dir.join(LOG_FILE), &versions.log_bytes[v]).unwrap();
        assert!(Instant::now() < deadline, "the writer was never killed");
    }
}

/// The names in `dir` that are not hidden temporary files of ours, which must be all the rest.
fn visible_names(dir: &Path) -> (Vec<String>, usize) {
    let mut visible = Vec::new();
    let mut temporary = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with(".delightsam-") && name.ends_with(".tmp") {
            temporary += 1;
        } else {
            visible.push(name);
        }
    }
    visible.sort();
    (visible, temporary)
}

/// Which version the file is: its bytes are exactly one version's, and it decodes in full.
fn mask_version(dir: &Path, versions: &Versions, png: &[Vec<u8>; 2]) -> Option<usize> {
    let bytes = std::fs::read(dir.join(MASK_FILE)).ok()?;
    let v = png.iter().position(|p| *p == bytes)?;
    let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).ok()?.into_luma8();
    (decoded.into_raw() == versions.masks[v].to_binary_u8()).then_some(v)
}

fn log_version(dir: &Path, versions: &Versions) -> Option<usize> {
    let bytes = std::fs::read(dir.join(LOG_FILE)).ok()?;
    let v = versions.log_bytes.iter().position(|b| *b == bytes)?;
    let (log, warning) = ExportLog::load(&dir.join(LOG_FILE)).ok()?;
    (warning.is_none() && log.exports == versions.logs[v]).then_some(v)
}

/// A child writes large masks and export lists over the same two files in a loop and is killed
/// with SIGKILL after a random delay, 30 times: after each kill both files are a complete
/// version (the old or the new), the killed writers' temporary files are hidden, and the next
/// write goes through.
#[test]
fn a_writer_killed_at_random_moments_leaves_the_old_file_or_the_new_one() {
    if role().as_deref() == Some("writer") {
        let first = std::env::var(FIRST_VERSION).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        return keep_writing(&role_dir(), first);
    }
    let started = Instant::now();
    let versions = Versions::new();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("scan.png");
    // The files as the writer makes them, byte for byte (the PNG encoder is deterministic).
    let png = versions.masks.clone().map(|mask| {
        let reference = tempfile::tempdir().unwrap();
        write_mask_png(&mask, &reference.path().join(MASK_FILE), &source).unwrap();
        std::fs::read(reference.path().join(MASK_FILE)).unwrap()
    });
    write_mask_png(&versions.masks[0], &dir.path().join(MASK_FILE), &source).unwrap();
    write_atomic(&dir.path().join(LOG_FILE), &versions.log_bytes[0]).unwrap();

    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("kill delays from seed {seed}");
    let mut random = Random(seed);
    let (mut mask, mut log) = (0, 0);
    let (mut masks_replaced, mut logs_replaced) = (0, 0);
    for round in 0..ROUNDS {
        let mut writer = this_test_as(KILL_TEST, "writer", dir.path())
            .env(FIRST_VERSION, (1 - mask).to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(writer.stdout.take().unwrap()).lines();
        // (libtest prints the test's name on the same line first.)
        let started_writing = lines.any(|line| line.is_ok_and(|l| l.ends_with(WRITING)));
        assert!(started_writing, "round {round}: the writer did not start ({:?})", writer.wait());
        let delay = Duration::from_micros(random.below(120_000));
        std::thread::sleep(delay);
        writer.kill().unwrap();
        let status = writer.wait().unwrap();
        assert_eq!(status.signal(), Some(9), "round {round}: the writer ended by itself ({status}) instead of being killed");

        let new_mask = mask_version(dir.path(), &versions, &png);
        let new_log = log_version(dir.path(), &versions);
        assert!(new_mask.is_some(), "round {round} (killed after {delay:?}): {MASK_FILE} is neither version");
        assert!(new_log.is_some(), "round {round} (killed after {delay:?}): {LOG_FILE} is neither version");
        masks_replaced += usize::from(new_mask != Some(mask));
        logs_replaced += usize::from(new_log != Some(log));
        (mask, log) = (new_mask.unwrap(), new_log.unwrap());
        assert_eq!(visible_names(dir.path()).0, [LOG_FILE, MASK_FILE], "round {round}: only hidden temporary files besides");
    }
    let (_, left_behind) = visible_names(dir.path());
    println!(
        "{ROUNDS} kills in {:.1} s: mask replaced in {masks_replaced} rounds, list in {logs_replaced}, \
         {left_behind} temporary files left by writers killed between creating and renaming them",
        started.elapsed().as_secs_f32()
    );
    assert!(masks_replaced > 0 && logs_replaced > 0, "some writes finished before their kill");
    assert!(left_behind > 0, "some kills landed between a temporary file's creation and its rename");

    // The leftovers do not get in the way of the next writes.
    write_mask_png(&versions.masks[1 - mask], &dir.path().join(MASK_FILE), &source).unwrap();
    write_atomic(&dir.path().join(LOG_FILE), &versions.log_bytes[1 - log]).unwrap();
    assert_eq!(mask_version(dir.path(), &versions, &png), Some(1 - mask));
    assert_eq!(log_version(dir.path(), &versions), Some(1 - log));
    assert_eq!(visible_names(dir.path()), (vec![LOG_FILE.to_string(), MASK_FILE.to_string()], left_behind));
}

// ----- the window -----

/// The window on `image`, with its settings and autosaves in `home`, on the CPU, not
/// rendering; with `export_dir`, the settings export there.
fn app<'a>(image: &Path, home: &Path, export_dir: Option<&Path>) -> Harness<'a, AnnotatorApp> {
    let paths = AppPaths::in_folder(home);
    if let Some(dir) = export_dir {
        Settings { export_dir: Some(dir.to_path_buf()), ..Settings::default() }.save(&paths.settings).unwrap();
    }
    let file = Some(image.to_path_buf());
    let mut harness = Harness::builder().with_size(egui::vec2(900.0, 640.0)).with_max_steps(50).build_eframe(move |cc| {
        AnnotatorApp::new(cc, AppOptions { file, paths, backend: Some(BackendKind::Cpu), prepare_on_open: false })
    });
    wait_for_load(&mut harness);
    harness.run_steps(3);
    assert!(harness.state().annotate.shown().is_some(), "the image opens");
    harness
}

/// A copy of a small fixture image in `dir`.
fn image_in(dir: &Path) -> PathBuf {
    let image = dir.join("colin27_z090.png");
    std::fs::copy(fixture("raster/colin27_z090.png"), &image).unwrap();
    image
}

/// Every file in `dir` with its bytes (empty when there is no such folder).
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeMap::new() };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

/// Paints, then exports with Ctrl+S into `export_dir`, which the disk refuses: the status line
/// says so with the place and `cause`, nothing in the folder changes, the mask stays open and
/// unexported, and after a restart the autosave brings it back.
fn export_is_refused(image: &Path, export_dir: &Path, cause: &str) {
    let home = tempfile::tempdir().unwrap();
    let before = contents(export_dir);
    let mut harness = app(image, home.path(), Some(export_dir));
    fill_at(&mut harness, 5.0, 5.0, 1);
    harness.run_steps(2);
    let painted = harness.state().annotate.mask().unwrap().clone();
    assert!(painted.foreground_count() > 0);

    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.step();
    let error = harness.state().error().unwrap_or_else(|| panic!("no error shown for an export to {}", export_dir.display())).to_string();
    println!("{cause}: {error}");
    assert!(error.contains("mask not exported") && error.contains(cause), "{error}");
    assert!(error.contains(&*export_dir.to_string_lossy()), "the error names the place: {error}");
    harness.get_by_label_contains("mask not exported");
    harness.get_by_label_contains("· not exported");
    assert_eq!(harness.state().annotate.mask(), Some(&painted), "the mask stays open");
    assert_eq!(contents(export_dir), before, "nothing in the export folder changed, nothing was left there");

    harness.state().annotate.flush_autosave();
    drop(harness);
    let again = app(image, home.path(), None);
    assert_eq!(again.state().annotate.mask(), Some(&painted), "the autosave has the mask");
}

const REFUSED_TEST: &str = "an_export_the_disk_refuses_says_why_and_keeps_the_mask";

/// Root writes wherever the permission bits say no, so the refusals that count are made by the
/// system: a "folder" that is a regular file (everywhere), and, in a user and mount namespace
/// (no privileges needed), a read-only bind mount and a full tmpfs. A folder without write
/// permission too when not root.
#[test]
fn an_export_the_disk_refuses_says_why_and_keeps_the_mask() {
    if role().as_deref() == Some("mounted") {
        return exports_to_mounted_folders(&role_dir());
    }
    let work = tempfile::tempdir().unwrap();
    let image = image_in(work.path());
    let not_a_folder = work.path().join("not-a-folder");
    std::fs::write(&not_a_folder, b"a file").unwrap();
    export_is_refused(&image, &not_a_folder.join("masks"), "Not a directory");

    let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(true);
    if !root {
        use std::os::unix::fs::PermissionsExt;
        let locked = work.path().join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        export_is_refused(&image, &locked, "Permission denied");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    for folder in ["work", "readonly", "full"] {
        std::fs::create_dir(dir.path().join(folder)).unwrap();
    }
    image_in(&dir.path().join("work"));
    std::fs::write(dir.path().join("readonly/colin27_z090_mask.png"), b"an earlier export").unwrap();
    let namespaces = Command::new("unshare").args(["--user", "--map-root-user", "--mount", "true"]).output();
    if !namespaces.as_ref().is_ok_and(|o| o.status.success()) {
        let why = namespaces.map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_else(|e| e.to_string());
        eprintln!("NOT CHECKED: the read-only folder and the full disk need unprivileged user namespaces ({})", why.trim());
        return;
    }
    let mount = r#"mount --bind "$1/readonly" "$1/readonly" && mount -o remount,bind,ro "$1/readonly" && mount -t tmpfs -o size=1m tmpfs "$1/full" && shift && exec "$@""#;
    let child = this_test_as(REFUSED_TEST, "mounted", dir.path());
    let status = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", mount, "sh"])
        .arg(dir.path())
        .arg(child.get_program())
        .args(child.get_args())
        .envs(child.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .status()
        .unwrap();
    assert!(status.success(), "the checks on the mounted folders failed (output above)");
    assert!(dir.path().join("checked").is_file(), "the child ran the checks ({REFUSED_TEST} is this test's name)");
}

/// In the namespace: `dir/readonly` is a read-only mount holding an earlier export, `dir/full`
/// a 1 MiB tmpfs that gets an export folder with an earlier export and an app's home with an
/// autosave, and is then filled up.
fn exports_to_mounted_folders(dir: &Path) {
    let image = dir.join("work/colin27_z090.png");
    export_is_refused(&image, &dir.join("readonly"), "Read-only file system");

    let (masks, home) = (dir.join("full/masks"), dir.join("full/home"));
    std::fs::create_dir(&masks).unwrap();
    let (width, height) = image::image_dimensions(&image).unwrap();
    write_mask_png(&Mask::new(width, height), &export_path(&image, Some(&masks), 0, 1), &image).unwrap();
    let mut harness = app(&image, &home, Some(&masks));
    fill_at(&mut harness, 5.0, 5.0, 1);
    harness.state().annotate.flush_autosave();
    let autosaved = harness.state().annotate.mask().unwrap().clone();

    let mut filler = std::fs::File::create(dir.join("full/filler")).unwrap();
    let block = vec![0u8; 64 << 10];
    let filled = loop {
        if let Err(e) = std::io::Write::write_all(&mut filler, &block) {
            break e;
        }
    };
    assert_eq!(filled.raw_os_error(), Some(28), "the disk is full: {filled}");
    drop(filler);
    // The export folder's disk is full (the autosave, in another home, has room).
    export_is_refused(&image, &masks, "No space left on device");

    // The autosave's disk is full too: both failures are said, the mask stays open, and the
    // autosave written before is intact.
    let before = contents(&masks);
    fill_at(&mut harness, 5.0, 5.0, 2);
    let latest = harness.state().annotate.mask().unwrap().clone();
    harness.state().annotate.flush_autosave();
    harness.run_steps(2);
    let error = harness.state().error().unwrap_or_default().to_string();
    assert!(error.contains("cannot autosave") && error.contains("No space left on device"), "{error}");
    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.step();
    let error = harness.state().error().unwrap_or_default().to_string();
    assert!(error.contains("mask not exported") && error.contains("No space left on device"), "{error}");
    assert_eq!(harness.state().annotate.mask(), Some(&latest), "the mask stays open");
    assert_eq!(contents(&masks), before);
    drop(harness);
    let again = app(&image, &home, None);
    assert_eq!(again.state().annotate.mask(), Some(&autosaved), "the autosave from before the disk filled is intact");
    std::fs::write(dir.join("checked"), b"").unwrap();
}

/// A damaged autosave (a PNG signature, then garbage) and a damaged export list: the image opens
/// without the autosave, and each file is set aside (renamed, kept as it was) with a warning in
/// the status line; the next export records into a new list; Dismiss clears the warnings; the
/// Train tab sets a damaged list aside the same way.
#[test]
fn a_damaged_autosave_and_export_list_are_set_aside_with_a_warning() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let image = image_in(work.path());
    let mut harness = app(&image, home.path(), None);
    fill_at(&mut harness, 5.0, 5.0, 1);
    harness.state().annotate.flush_autosave();
    drop(harness);
    let autosaves: Vec<PathBuf> = std::fs::read_dir(home.path().join("autosave")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(autosaves.len(), 1);
    let autosave = &autosaves[0];
    let damaged_autosave = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR garbage".to_vec();
    std::fs::write(autosave, &damaged_autosave).unwrap();
    let list = home.path().join("exports.json");
    std::fs::write(&list, "{ \"exports\": [ { \"image\": ").unwrap();

    let mut harness = app(&image, home.path(), None);
    assert_eq!(harness.state().annotate.mask().unwrap().foreground_count(), 0, "opened without the damaged autosave");
    let warnings = harness.state().warnings().to_vec();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("autosave of") && warnings[0].contains("colin27_z090.png") && warnings[0].contains("damaged"), "{warnings:?}");
    harness.get_by_label_contains("Warning: the autosave of");
    assert!(!autosave.exists());
    assert_eq!(set_aside(autosave), [damaged_autosave], "the damaged autosave is kept as it was");

    harness.key_press_modifiers(Modifiers::COMMAND, Key::S);
    harness.step();
    assert_eq!(harness.state().error(), None);
    let exported = work.path().join("colin27_z090_mask.png");
    assert!(exported.is_file());
    let warnings = harness.state().warnings().to_vec();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[1].contains("export list") && warnings[1].contains("exports.json") && warnings[1].contains("damaged"), "{warnings:?}");
    harness.get_by_label_contains("Warning: the export list");
    assert_eq!(set_aside(&list), [b"{ \"exports\": [ { \"image\": ".to_vec()], "the damaged list is kept as it was");
    let (log, warning) = ExportLog::load(&list).unwrap();
    assert_eq!((log.exports.len(), warning), (1, None));
    assert_eq!(log.exports[0].mask, exported);

    harness.get_by_label("Dismiss").click();
    harness.run_steps(2);
    assert!(harness.state().warnings().is_empty());
    assert!(harness.query_by_label_contains("Warning:").is_none());

    // The Train tab reads the list too: damaged again, it is set aside there the same way.
    std::fs::write(&list, "garbage").unwrap();
    harness.get_by_label("Train").click();
    harness.run_steps(2);
    harness.get_by_label("Add the masks I exported").click();
    harness.run_steps(2);
    assert!(harness.state().message().is_some_and(|m| m.contains("no exported masks")), "{:?}", harness.state().message());
    let warnings = harness.state().warnings().to_vec();
    assert!(warnings.len() == 1 && warnings[0].contains("export list"), "{warnings:?}");
    harness.get_by_label_contains("Warning: the export list");
    assert_eq!(set_aside(&list).len(), 2, "both damaged lists are kept");
}

/// The contents of the files `path` was set aside as.
fn set_aside(path: &Path) -> Vec<Vec<u8>> {
    let prefix = format!("{}.damaged-", path.file_name().unwrap().to_string_lossy());
    std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&prefix))
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}
