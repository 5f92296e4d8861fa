//! `delightsam segment` in automatic mode (De-LightSAM) and `info --model`, as a user runs them.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::fixture;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_delightsam")).args(args).output().expect("run delightsam")
}

fn ok(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected a refusal");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(reason), "expected {reason:?} in: {stderr}");
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn automatic_segmentation_writes_a_mask_of_the_image_size_and_its_grid() {
    let dir = tempfile::tempdir().unwrap();
    let image = fixture("raster/colin27_z090.png");
    let (mask, grid) = (dir.path().join("mask.png"), dir.path().join("grid.png"));
    let stdout = ok(&run(&["segment", s(&image), "--modality", "MR", "-o", s(&mask), "--save-patch-grid", s(&grid)]));
    assert!(stdout.contains("as mr"), "{stdout}");
    assert_eq!(image::open(&mask).unwrap().into_luma8().dimensions(), (181, 217));
    assert_eq!(image::open(&grid).unwrap().into_luma8().dimensions(), (32, 32));

    // The saved grid read back is a valid prompt; a grid of the wrong size is refused.
    let again = dir.path().join("again.png");
    ok(&run(&["segment", s(&image), "--modality", "mr", "-o", s(&again), "--patch-grid", s(&grid)]));
    assert_eq!(std::fs::read(&again).unwrap(), std::fs::read(&mask).unwrap());
    refused(&run(&["segment", s(&image), "--modality", "mr", "-o", s(&again), "--patch-grid", s(&image)]), "32×32");
}

#[test]
fn dicom_modality_tag_gives_the_default_modality() {
    let dir = tempfile::tempdir().unwrap();
    let mask = dir.path().join("ct.png");
    let stdout = ok(&run(&["segment", s(&fixture("dicom/CT_small.dcm")), "-o", s(&mask)]));
    assert!(stdout.contains("as ct"), "{stdout}");
    assert_eq!(image::open(&mask).unwrap().into_luma8().dimensions(), (128, 128));
    // "OT" (other) has no default: the user must choose.
    refused(&run(&["segment", s(&fixture("dicom/image_dfl.dcm")), "-o", s(&mask)]), "has no default; choose one with --modality");
}

#[test]
fn unclear_requests_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let image = fixture("raster/colin27_z090.png");
    let mask = dir.path().join("m.png");
    refused(&run(&["segment", s(&image), "--modality", "pet", "-o", s(&mask)]), "unknown modality \"pet\"");
    refused(&run(&["segment", s(&image), "-o", s(&mask)]), "give --modality NAME");
    refused(&run(&["segment", s(&image), "--modality", "mr", "--box", "1,1,50,50", "-o", s(&mask)]), "cannot be used with");
    refused(&run(&["segment", s(&image), "--box", "1,1,50,50", "--patch-grid", s(&image), "-o", s(&mask)]), "patch grids belong");
    assert!(!mask.exists());
}

#[test]
fn a_folder_in_a_folder_out_with_failures_listed() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::copy(fixture("raster/colin27_z090.png"), images.join("brain.png")).unwrap();
    std::fs::copy(fixture("raster/cells3d-z30.png"), images.join("cells.png")).unwrap();
    std::fs::copy(fixture("bad/truncated.png"), images.join("broken.png")).unwrap();
    let before = std::fs::read(images.join("brain.png")).unwrap();
    let out_dir = dir.path().join("masks");

    let out = run(&["segment", s(&images), "--modality", "microscopy", "-o", s(&out_dir)]);
    refused(&out, "1 of 3 files could not be segmented");
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.png"));
    assert_eq!(image::open(out_dir.join("brain.png")).unwrap().into_luma8().dimensions(), (181, 217));
    assert!(out_dir.join("cells.png").is_file());
    assert!(!out_dir.join("broken.png").exists());
    assert_eq!(std::fs::read(images.join("brain.png")).unwrap(), before, "sources are never modified");

    refused(&run(&["segment", s(&images), "--modality", "mr", "-o", s(&images)]), "another folder");
}

#[test]
fn info_model_prints_parameter_counts_per_part() {
    let text = ok(&run(&["info", "--model", "default"]));
    for part in ["DC-Encoder", "modality controllers", "SP-Generator", "QM-Decoder", "total", "dermoscopy"] {
        assert!(text.contains(part), "missing {part}: {text}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&run(&["info", "--model", "default", "--json"]))).unwrap();
    let total = json["total"].as_u64().unwrap();
    assert_eq!(total, json["dc_encoder"].as_u64().unwrap() + json["qm_decoder"].as_u64().unwrap() + json["parameters"]["sp_generator"].as_u64().unwrap() + json["parameters"]["positional_encoding"].as_u64().unwrap());
    // TinyViT-5M + neck is 5.74M parameters (BatchNorm statistics are buffers, not counted).
    let backbone = json["parameters"]["backbone"].as_u64().unwrap();
    assert!((5_600_000..5_800_000).contains(&backbone), "{backbone}");

    let lite: serde_json::Value =
        serde_json::from_str(&ok(&run(&["info", "--model", s(&common::root().join("models/litemedsam.bpk")), "--json"])))
            .unwrap();
    assert_eq!(lite["model"], "LiteMedSAM");
    refused(&run(&["info", "--model", "/nonexistent/model.bpk"]), "model.bpk");
}

/// The shipped model tiles electron microscopy: one patch grid cannot describe its tiles, so
/// saving one needs --whole-image; with it the image is segmented whole and the grid saved.
#[test]
fn a_tiled_modality_saves_a_patch_grid_only_when_segmented_whole() {
    let dir = tempfile::tempdir().unwrap();
    let image = fixture("raster/colin27_z090.png");
    let (mask, grid) = (dir.path().join("mask.png"), dir.path().join("grid.png"));
    let args = ["segment", s(&image), "--modality", "electron-microscopy", "-o", s(&mask), "--save-patch-grid", s(&grid)];
    refused(&run(&args), "add --whole-image");
    assert!(!mask.exists() && !grid.exists());
    let stdout = ok(&run(&[&args[..], &["--whole-image"]].concat()));
    assert!(stdout.contains("patches prompted"), "{stdout}");
    assert_eq!(image::open(&grid).unwrap().into_luma8().dimensions(), (32, 32));
    let stdout = ok(&run(&args[..6]));
    assert!(stdout.contains("1 tile(s)"), "a 181×217 image is one tile: {stdout}");
}
