//! DICOM series as volumes: grouping, slice order and geometry against the numbers in
//! ../shared/data/volumes/README.md (nibabel's affines for the same series converted by
//! dicom2nifti), and `convert SERIES_DIR OUT.nii.gz` read back and checked against the
//! TotalSegmentator label volume that lies on the same grid.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use delightsam::imaging::series::{Series, SeriesError, scan_folder, single_series};

use common::shared;

fn assert_affine(series: &Series, expected: [[f64; 4]; 3]) {
    let affine = series.affine_ras();
    for (row, want) in affine.iter().zip(expected) {
        for (got, want) in row.iter().zip(want) {
            assert!((got - want).abs() < 2e-3, "affine {affine:?}, expected {expected:?}");
        }
    }
}

#[test]
fn an_mr_series_named_by_uid_is_ordered_by_position_along_the_normal() {
    let series = single_series(&shared("volumes/mr-series-unordered")).unwrap();
    assert_eq!(series.shape(), (256, 256, 35));
    assert_affine(&series, [[0.0, 0.0, 4.8, -81.6], [-1.0156, 0.0, 0.0, 130.0], [0.0, -1.0156, 0.0, 130.0]]);
    let order: Vec<i64> = series.slices.iter().filter_map(|s| s.instance_number).collect();
    assert_eq!(order, (1..=35).rev().collect::<Vec<_>>(), "ascending along the normal is instance 35 → 1");
    let spacing = series.spacing();
    assert!((spacing[2] - 4.8).abs() < 1e-6 && (spacing[0] - 1.015625).abs() < 1e-9, "{spacing:?}");
    assert!(series.warnings.is_empty(), "{:?}", series.warnings);
}

#[test]
fn an_oblique_series_keeps_its_rotation() {
    let series = single_series(&shared("volumes/mr-series-oblique")).unwrap();
    assert_eq!(series.shape(), (80, 80, 40));
    assert_affine(&series, [[-2.8197, 1.0243, 0.0, 73.024], [-1.0243, -2.8197, 0.0, 172.4887], [0.0, 0.0, 3.0, -37.0436]]);
    assert_eq!(series.slices[0].instance_number, Some(1));
}

/// 20 CT files whose Series/Study/SOP UIDs are all blank: one series, grouped by frame of
/// reference and geometry, sorted opposite to the file names.
#[test]
fn a_ct_series_with_blank_uids_is_one_volume_and_converts_to_nifti_on_its_label_grid() {
    let dir = shared("volumes/ct-series-labels/dicom");
    let scan = scan_folder(&dir).unwrap();
    assert_eq!((scan.series.len(), scan.images.len(), scan.unreadable.len()), (1, 0, 0));
    let series = &scan.series[0];
    assert_eq!(series.series_uid, None);
    assert_eq!(series.shape(), (512, 512, 20));
    assert_affine(series, [[-0.9766, 0.0, 0.0, 249.5117], [0.0, -0.9766, 0.0, 437.5117], [0.0, 0.0, 2.0, -804.5]]);
    assert_eq!(series.slices[0].instance_number, Some(286));

    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("ct.nii.gz");
    let run = Command::new(env!("CARGO_BIN_EXE_delightsam")).args(["convert", s(&dir), s(&out)]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let ct = read_nifti(&out);
    assert_eq!((ct.dims, ct.datatype), ([512, 512, 20], 4));
    for (row, want) in ct.srow.iter().zip([[-0.9766, 0.0, 0.0, 249.5117], [0.0, -0.9766, 0.0, 437.5117], [0.0, 0.0, 2.0, -804.5]]) {
        for (got, want) in row.iter().zip(want) {
            assert!((f64::from(*got) - want).abs() < 2e-3, "{:?}", ct.srow);
        }
    }
    let hu: Vec<i16> = ct.data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let (min, max) = hu.iter().fold((i16::MAX, i16::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert_eq!((min, max), (-1024, 1839));

    // The label volume lies on the same grid with its rows flipped (README): labels[i, j, k] is
    // column i, row 511 − j, slice k. Mean HU per organ then matches the README's.
    let labels = read_nifti(&shared("volumes/ct-series-labels/labels.nii.gz"));
    assert_eq!((labels.dims, labels.datatype), ([512, 512, 20], 2));
    let mean_hu = |label: u8| {
        let (mut sum, mut n) = (0f64, 0usize);
        for k in 0..20 {
            for j in 0..512 {
                for i in 0..512 {
                    if labels.data[i + 512 * (j + 512 * k)] == label {
                        sum += f64::from(hu[i + 512 * ((511 - j) + 512 * k)]);
                        n += 1;
                    }
                }
            }
        }
        sum / n as f64
    };
    let (liver, spleen, aorta) = (mean_hu(5), mean_hu(1), mean_hu(52));
    assert!((liver - 89.0).abs() < 3.0 && (spleen - 80.0).abs() < 3.0 && (aorta - 177.0).abs() < 4.0, "{liver} {spleen} {aorta}");
}

#[test]
fn info_reports_a_series_and_a_folder_of_several_is_refused_for_conversion() {
    let dir = shared("volumes/mr-series-unordered");
    let out = Command::new(env!("CARGO_BIN_EXE_delightsam")).args(["info", s(&dir), "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["slices"], 35);
    assert_eq!(info["spacing"], serde_json::json!([1.0156, 1.0156, 4.8]));
    assert_eq!(info["affine"][0], serde_json::json!([0.0, 0.0, 4.8, -81.6]));
    assert_eq!(info["series"].as_array().unwrap().len(), 1);

    // Two series in one folder: listed, and conversion asks which.
    let mixed = tempfile::tempdir().unwrap();
    for (from, n) in [("volumes/mr-series-unordered", 3), ("volumes/mr-series-oblique", 2)] {
        for entry in std::fs::read_dir(shared(from)).unwrap().take(n) {
            let path = entry.unwrap().path();
            std::fs::copy(&path, mixed.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(mixed.path().join("notes.txt"), "not an image").unwrap();
    let scan = scan_folder(mixed.path()).unwrap();
    assert_eq!((scan.series.len(), scan.unreadable.len()), (2, 1));
    assert!(matches!(single_series(mixed.path()), Err(SeriesError::SeveralSeries { count: 2, .. })));
    let target = mixed.path().join("out.nii.gz");
    let out = Command::new(env!("CARGO_BIN_EXE_delightsam")).args(["convert", s(mixed.path()), s(&target)]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("2 series"));
    assert!(!target.exists());

    // The same slices twice (two acquisitions at one place): listed, but no single volume.
    let twice = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shared("volumes/mr-series-oblique")).unwrap().take(3) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(&path, twice.path().join(&name)).unwrap();
        std::fs::copy(&path, twice.path().join(format!("copy-{name}"))).unwrap();
    }
    assert_eq!(scan_folder(twice.path()).unwrap().series.len(), 1);
    let err = single_series(twice.path()).unwrap_err();
    assert!(matches!(err, SeriesError::RepeatedPositions { repeated: 3, .. }), "{err}");
}

/// A liver box on one slice, carried through all 20 slices: 3-D Dice against the
/// TotalSegmentator label volume (through its row flip), written as a uint8 NIfTI on the
/// series' grid.
#[test]
fn a_box_on_one_ct_slice_propagates_through_the_series() {
    let dir = shared("volumes/ct-series-labels/dicom");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("liver.nii.gz");
    let args = ["segment", s(&dir), "--slice", "16", "--box", "107,199,279,375", "--propagate", "-o", s(&out)];
    let run = Command::new(env!("CARGO_BIN_EXE_delightsam")).args(args).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let predicted = read_nifti(&out);
    assert_eq!((predicted.dims, predicted.datatype), ([512, 512, 20], 2));
    assert!((predicted.srow[2][3] - (-804.5)).abs() < 1e-3);
    let labels = read_nifti(&shared("volumes/ct-series-labels/labels.nii.gz"));
    let (mut both, mut sum) = (0usize, 0usize);
    for k in 0..20 {
        for j in 0..512 {
            for i in 0..512 {
                let truth = labels.data[i + 512 * (j + 512 * k)] == 5;
                let inside = predicted.data[i + 512 * ((511 - j) + 512 * k)] != 0;
                both += usize::from(truth && inside);
                sum += usize::from(truth) + usize::from(inside);
            }
        }
    }
    let dice = 2.0 * both as f64 / sum as f64;
    assert!(dice > 0.9, "liver propagated from slice 16: Dice {dice:.3} (0.942 when written)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("20 of 20 slices labelled"), "{stdout}");

    // A slice outside the series and a PNG output are refused clearly.
    let run = Command::new(env!("CARGO_BIN_EXE_delightsam")).args(["segment", s(&dir), "--slice", "20", "--box", "1,1,9,9", "-o", s(&out)]).output().unwrap();
    assert!(String::from_utf8_lossy(&run.stderr).contains("the volume has 20 slices"));
    let png = out_dir.path().join("x.png");
    let run = Command::new(env!("CARGO_BIN_EXE_delightsam")).args(["segment", s(&dir), "--slice", "3", "--box", "1,1,9,9", "-o", s(&png)]).output().unwrap();
    assert!(String::from_utf8_lossy(&run.stderr).contains("NIfTI"));
}

/// Automatic segmentation of every slice of a series into one label volume on its grid.
#[test]
fn a_series_segmented_automatically_gives_a_label_volume_on_its_grid() {
    let dir = shared("volumes/mr-series-oblique");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("brain.nii");
    let run = Command::new(env!("CARGO_BIN_EXE_delightsam")).args(["segment", s(&dir), "--modality", "mr", "-o", s(&out)]).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let labels = read_nifti(&out);
    assert_eq!((labels.dims, labels.datatype), ([80, 80, 40], 2));
    assert!((labels.srow[0][1] - 1.0243).abs() < 1e-3 && (labels.srow[1][3] - 172.4887).abs() < 1e-3, "{:?}", labels.srow);
    assert!(labels.data.iter().all(|&v| v <= 1));
    assert!(String::from_utf8_lossy(&run.stdout).contains("of 40 slices labelled as mr"));
}

struct Nifti {
    dims: [usize; 3],
    datatype: i16,
    srow: [[f32; 4]; 3],
    data: Vec<u8>,
}

/// A NIfTI-1 file (.nii or .nii.gz), little-endian: enough of the header to check geometry.
fn read_nifti(path: &Path) -> Nifti {
    let raw = std::fs::read(path).unwrap();
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..]).read_to_end(&mut out).unwrap();
        out
    } else {
        raw
    };
    let i16_at = |at: usize| i16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let f32_at = |at: usize| f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(i32::from_le_bytes(bytes[0..4].try_into().unwrap()), 348, "NIfTI-1, little-endian");
    let dims = [i16_at(42) as usize, i16_at(44) as usize, i16_at(46) as usize];
    let mut srow = [[0f32; 4]; 3];
    for (r, at) in [280usize, 296, 312].iter().enumerate() {
        for c in 0..4 {
            srow[r][c] = f32_at(at + 4 * c);
        }
    }
    let offset = f32_at(108) as usize;
    Nifti { dims, datatype: i16_at(70), srow, data: bytes[offset..].to_vec() }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
