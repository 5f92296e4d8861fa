//! A short real training run (three real nuclei images, the real model), resume, the NaN stop,
//! the dataset error report, and `eval` on the result.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::backend::Autodiff;
use delightsam::model::backend::Cpu;
use delightsam::train::{Control, Event, TrainConfig, TrainError, train};

use common::fixture;

type Ad = Autodiff<Cpu>;

fn config(out: &Path, cache: &Path) -> TrainConfig {
    let mut config = TrainConfig::new(vec![(fixture("train/nuclei"), None)], out.to_path_buf());
    config.cache_dir = cache.to_path_buf();
    // One image held out, two train; batch 1 gives two steps per epoch.
    config.validation_fraction = 0.34;
    config.batch_size = 1;
    config.learning_rate = 1e-3;
    config
}

fn run(config: &TrainConfig) -> (Result<delightsam::train::Summary, TrainError>, Vec<Event>) {
    let mut events = Vec::new();
    let result = train::<Ad>(config, &Default::default(), &Control::default(), &mut |e| events.push(e.clone()));
    (result, events)
}

fn step_losses(events: &[Event]) -> Vec<f32> {
    events.iter().filter_map(|e| if let Event::Step { loss, .. } = e { Some(*loss) } else { None }).collect()
}

#[test]
fn a_short_run_lowers_the_loss_then_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("run"), dir.path().join("cache"));
    let mut cfg = config(&out, &cache);
    cfg.epochs = 4;
    let (result, events) = run(&cfg);
    let summary = result.expect("training runs");
    assert_eq!((summary.epochs_done, summary.steps), (4, 8));
    let losses = step_losses(&events);
    let (first, last) = (losses[0..2].iter().sum::<f32>(), losses[6..8].iter().sum::<f32>());
    assert!(last < first * 0.9, "the loss must go down: {losses:?}");
    for file in ["model.bpk", "model.json", "best.bpk", "best.json", "state.json", "train_config.json", "metrics.jsonl"] {
        assert!(out.join(file).is_file(), "missing {file}");
    }
    let lines = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 4);
    let first_line: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    for key in ["epoch", "step", "loss", "mask_loss", "patch_loss", "validation_dice", "learning_rate"] {
        assert!(first_line.get(key).is_some(), "metrics.jsonl lacks {key}: {first_line}");
    }

    // As after a kill: the same run with more epochs continues after epoch 4, from the cache.
    cfg.epochs = 5;
    let (result, events) = run(&cfg);
    let summary = result.expect("resumes");
    assert_eq!((summary.epochs_done, summary.steps), (5, 10));
    assert!(events.iter().any(|e| matches!(e, Event::Started { resumed_from: Some(4), .. })));
    assert!(events.iter().any(|e| matches!(e, Event::Preparing { done: 3, total: 3, cached: 3 })), "embeddings come from the cache");
    assert_eq!(step_losses(&events).len(), 2);

    // eval on the trained model writes a CSV with one row per image.
    let csv = dir.path().join("eval.csv");
    let out_eval = Command::new(env!("CARGO_BIN_EXE_delightsam"))
        .args(["eval", "--model", s(&out.join("model.bpk")), "--data", s(&fixture("train/nuclei")), "--csv", s(&csv)])
        .args(["--save-masks", s(&dir.path().join("pred"))])
        .output()
        .unwrap();
    assert!(out_eval.status.success(), "{}", String::from_utf8_lossy(&out_eval.stderr));
    let stdout = String::from_utf8_lossy(&out_eval.stdout);
    assert!(stdout.contains("| nuclei | microscopy | 3 |") && stdout.contains("Dice") && stdout.contains("HD95"), "{stdout}");
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 4, "{rows}");
    assert!(rows.starts_with("set,stem,image,modality,dice,hd,hd95"));
    assert!(dir.path().join("pred/nuclei/cells3d-z30.png").is_file());
}

/// A tiled modality trains on the tiles inference uses: 256² nuclei images scaled to 384² give
/// 2×2 tiles each, the tiling is saved in the model, and the tiles' embeddings are cached.
#[test]
fn a_tiled_modality_trains_on_its_tiles() {
    use delightsam::model::tiling::Tiling;
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("run"), dir.path().join("cache"));
    let mut config = config(&out, &cache);
    config.epochs = 1;
    config.max_steps = Some(1);
    config.tiling = vec![("microscopy".into(), Some(Tiling { long_side: Some(384), overlap: 64 }))];
    let (result, events) = run(&config);
    result.unwrap();
    let started = events.iter().find_map(|e| match e {
        Event::Started { train, validation, .. } => Some((*train, *validation)),
        _ => None,
    });
    assert_eq!(started, Some((2 * 4, 4)), "two training images and one held out, 4 tiles each");
    let saved = delightsam::model::weights::load_delightsam_config(&out.join("model.bpk")).unwrap();
    let slot = saved.modalities.slot("microscopy").unwrap();
    assert_eq!(saved.modalities.tiling(slot), Some(Tiling { long_side: Some(384), overlap: 64 }));
    let cached = std::fs::read_dir(&cache).unwrap().flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap()).count();
    assert_eq!(cached, 12, "one cached embedding per tile");
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("run"), dir.path().join("cache"));
    let mut cfg = config(&out, &cache);
    cfg.epochs = 1;
    run(&cfg).0.expect("one good epoch");
    let good = std::fs::read(out.join("model.bpk")).unwrap();

    cfg.epochs = 2;
    cfg.learning_rate = f64::NAN;
    let err = run(&cfg).0.expect_err("NaN weights give a NaN loss");
    assert!(matches!(err, TrainError::NonFinite { epoch: 2, had_checkpoint: true, .. }), "{err}");
    assert!(err.to_string().contains("model.bpk"), "{err}");
    assert_eq!(std::fs::read(out.join("model.bpk")).unwrap(), good, "the last good checkpoint is untouched");
}

#[test]
fn dataset_problems_are_reported_together_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bad");
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::create_dir_all(root.join("masks")).unwrap();
    std::fs::copy(fixture("train/nuclei/images/cells3d-z30.png"), root.join("images/a.png")).unwrap();
    std::fs::copy(fixture("raster/colin27_z090.png"), root.join("masks/a.png")).unwrap();
    std::fs::copy(fixture("train/nuclei/images/cells3d-z25.png"), root.join("images/b.png")).unwrap();
    let out = dir.path().join("run");
    let result = Command::new(env!("CARGO_BIN_EXE_delightsam"))
        .args(["train", "--data", s(&root), "--data", s(&PathBuf::from("/nonexistent/folder")), "--out", s(&out)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    for expected in ["no modality", "b.png: no mask", "a.png", "181", "/nonexistent/folder: 1 problem(s)"] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    assert!(!out.join("model.bpk").exists());
}

#[test]
fn pairs_from_anywhere_train_like_a_folder_and_a_stop_keeps_a_resumable_checkpoint() {
    use delightsam::train::dataset::{Pair, PairList};
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("run"), dir.path().join("cache"));
    let pair = |stem: &str| Pair {
        stem: stem.into(),
        image: fixture("train/nuclei/images").join(format!("{stem}.png")),
        mask: fixture("train/nuclei/masks").join(format!("{stem}.png")),
        frame: 0,
    };
    // As the app's "masks I exported": pairs with a modality, no folder.
    let mut cfg = config(&out, &cache);
    cfg.data.clear();
    cfg.lists = vec![PairList {
        name: "exported".into(),
        modality: "microscopy".into(),
        pairs: vec![pair("cells3d-z25"), pair("cells3d-z30"), pair("cells3d-z35")],
    }];
    cfg.epochs = 5;
    let control = Control::default();
    let mut steps = 0;
    let result = train::<Ad>(&cfg, &Default::default(), &control, &mut |e| {
        if let Event::Step { .. } = e {
            steps += 1;
            if steps == 3 {
                control.stop();
            }
        }
    });
    let summary = result.expect("trains on the list");
    assert!(summary.stopped);
    assert_eq!((summary.epochs_done, summary.steps), (1, 3), "stopped after the step that asked");
    assert!(out.join("model.bpk").is_file() && out.join("best.bpk").is_file());
    let (saved, done) = delightsam::train::resumable(&out).expect("resumable");
    assert_eq!((done, saved.lists.len()), (1, 1));

    // A list with a broken pair is refused before anything trains, naming it.
    let mut bad = cfg.clone();
    bad.out = dir.path().join("bad");
    bad.lists[0].pairs.push(Pair { stem: "gone".into(), image: PathBuf::from("/nonexistent/x.png"), mask: PathBuf::from("/nonexistent/x_mask.png"), frame: 0 });
    let err = run(&bad).0.expect_err("a missing image is a problem");
    assert!(err.to_string().contains("/nonexistent/x.png") && err.to_string().contains("exported"), "{err}");
}

/// The adapt recipe trains one modality's controllers, query and hypernetwork over the shipped
/// model; `pack` keeps the controllers, and every other modality segments exactly as before.
#[test]
fn adapting_one_modality_packs_its_controllers_and_leaves_the_others_unchanged() {
    use delightsam::imaging::ImageSource;
    use delightsam::model::preprocess;
    use delightsam::model::weights::{self, Storage};
    use delightsam::train::Recipe;
    let dir = tempfile::tempdir().unwrap();
    let (out, cache) = (dir.path().join("run"), dir.path().join("cache"));
    let mut cfg = config(&out, &cache);
    cfg.recipe = Recipe::Adapt;
    cfg.epochs = 1;
    cfg.max_steps = Some(2);
    cfg.learning_rate = 1e-2;
    cfg.input_range = vec![("microscopy".into(), Some([0.0, 255.0]))];
    let (result, events) = run(&cfg);
    result.unwrap();
    assert_eq!(step_losses(&events).len(), 2);
    let saved = weights::load_delightsam_config(&out.join("model.bpk")).unwrap();
    let microscopy = saved.modalities.slot("microscopy").unwrap();
    assert_eq!(saved.modalities.input_range(microscopy, (3.0, 7.0)), (0.0, 255.0));

    let packed = dir.path().join("adapted.bpk");
    let encoder = weights::default_record_path();
    let run = Command::new(env!("CARGO_BIN_EXE_delightsam"))
        .args(["pack", s(&out.join("model.bpk")), "-o", s(&packed), "--encoder", s(&encoder)])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(matches!(weights::delightsam_storage(&packed).unwrap(), Storage::HeadAndControllers { .. }));

    let device = Default::default();
    let (shipped, _, _) = weights::load_delightsam_or_fresh::<Cpu>(None, &device).unwrap();
    let (adapted, _) = weights::load_delightsam::<Cpu>(&packed, &device).unwrap();
    let frame = ImageSource::open(fixture("raster/colin27_z090.png")).unwrap().frame(0).unwrap();
    let (x, _) = preprocess::prepare(&frame, 256).into_tensor::<Cpu>(&device);
    let logits = |m: &delightsam::model::DeLightSam<Cpu>, slot| m.forward(x.clone(), slot).mask_logits.into_data();
    let dermoscopy = saved.modalities.slot("dermoscopy").unwrap();
    assert_eq!(logits(&adapted, dermoscopy), logits(&shipped, dermoscopy), "another modality must not change");
    let moved = logits(&adapted, microscopy).to_vec::<f32>().unwrap().iter().zip(logits(&shipped, microscopy).to_vec::<f32>().unwrap())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(moved > 1e-3, "the adapted modality must change ({moved})");
}
