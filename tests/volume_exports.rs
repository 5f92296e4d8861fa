//! Volume exports read back by the reference readers (pydicom + highdicom for DICOM SEG,
//! nibabel for NIfTI; tests/reference/volume_exports.py) and NIfTI input, on the real volumes
//! of ../shared/data/volumes.
//!
//! The Python interpreter is $DELIGHTSAM_REFERENCE_PYTHON (.ci/run makes a virtual environment
//! with pinned versions), else `python3` if it has the three packages; otherwise these tests
//! fail and say how to get them.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use delightsam::imaging::nifti;
use delightsam::imaging::series::single_series;
use serde_json::Value;

use common::{root, shared};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn reference_python() -> PathBuf {
    if let Some(python) = std::env::var_os("DELIGHTSAM_REFERENCE_PYTHON") {
        return PathBuf::from(python);
    }
    let probe = Command::new("python3").args(["-c", "import pydicom, highdicom, nibabel"]).output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "these tests read the exports with pydicom, highdicom and nibabel: run .ci/run (it makes a virtual \
         environment), or set DELIGHTSAM_REFERENCE_PYTHON to a Python that has them"
    );
    PathBuf::from("python3")
}

fn reference(args: &[&str]) -> Value {
    let script = root().join("tests/reference/volume_exports.py");
    let out = Command::new(reference_python()).arg(script).args(args).output().unwrap();
    assert!(out.status.success(), "reference reader failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn delightsam(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_delightsam")).args(args).output().unwrap()
}

fn close(a: &Value, b: f64, tol: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < tol
}

/// A liver box on the middle of dcmqi's three CT slices, propagated, written as DICOM SEG and
/// as NIfTI: highdicom finds one segment on all three source instances with the same pixels as
/// the NIfTI, in the series' frame of reference, study and patient, at the series' positions.
#[test]
fn a_propagated_mask_exports_as_seg_and_nifti_that_the_reference_readers_agree_on() {
    let source = shared("volumes/seg/dcmqi-ct-3slice/source");
    let series = single_series(&source).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (seg, nii) = (out.path().join("liver.dcm"), out.path().join("liver.nii.gz"));
    for target in [&seg, &nii] {
        let run = delightsam(&["segment", s(&source), "--slice", "1", "--box", "80,146,349,365", "--propagate", "-o", s(target)]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    }

    let facts = reference(&["nifti", s(&nii)]);
    assert_eq!(facts["shape"], serde_json::json!([512, 512, 3]));
    assert_eq!(facts["dtype"], "uint8");
    let affine = series.affine_ras();
    for r in 0..3 {
        for c in 0..4 {
            assert!(close(&facts["affine"][r][c], affine[r][c], 1e-3), "nibabel affine {:?}", facts["affine"]);
            assert!(close(&facts["qform"][r][c], affine[r][c], 1e-3), "nibabel qform {:?}", facts["qform"]);
        }
    }
    let labels = nifti::read(&nii).unwrap();
    let per_slice: Vec<usize> = labels.values.chunks_exact(512 * 512).map(|s| s.iter().filter(|&&v| v != 0.0).count()).collect();
    assert_eq!(facts["counts"]["1"], per_slice.iter().sum::<usize>());
    assert!(per_slice.iter().all(|&n| n > 20_000), "a liver on every slice: {per_slice:?}");

    let facts = reference(&["seg", s(&seg), s(&source)]);
    assert_eq!(facts["sop_class"], "1.2.840.10008.5.1.4.1.1.66.4");
    assert_eq!((facts["modality"].as_str(), facts["segmentation_type"].as_str()), (Some("SEG"), Some("BINARY")));
    assert_eq!(facts["frame_of_reference"].as_str(), series.frame_of_reference_uid.as_deref());
    assert_eq!(facts["study"], facts["source_study"]);
    assert_eq!(facts["patient_id"], facts["source_patient_id"]);
    assert_eq!(facts["frames"], 3);
    assert_eq!(facts["segments"], serde_json::json!([{"number": 1, "label": "Segment 1", "algorithm": "SEMIAUTOMATIC"}]));
    let mut uids: Vec<&str> = series.slices.iter().map(|s| s.sop_instance_uid.as_deref().unwrap()).collect();
    for (k, uid) in uids.iter().enumerate() {
        assert_eq!(facts["pixels_by_source"][uid]["1"], per_slice[k], "SEG and NIfTI differ on slice {k}");
    }
    uids.sort();
    assert_eq!(facts["referenced"], serde_json::json!(uids));
    // highdicom's volume: (slice, row, column) steps and slice origins in LPS = the series'.
    let lps = series.affine_lps();
    for axis in 0..3 {
        assert!(close(&facts["volume_column_step"][axis], lps[axis][0], 1e-4));
        assert!(close(&facts["volume_row_step"][axis], lps[axis][1], 1e-4));
    }
    let origins = facts["volume_slice_origins"].as_array().unwrap();
    assert_eq!(origins.len(), 3);
    for slice in &series.slices {
        assert!(
            origins.iter().any(|o| (0..3).all(|a| close(&o[a], slice.position[a], 1e-3))),
            "no SEG slice at {:?}: {origins:?}",
            slice.position
        );
    }
}

/// A SEG must reference its images: the CT with blank SOP Instance UIDs and a NIfTI input are
/// refused for .dcm output in one line, and nothing is written.
#[test]
fn a_seg_is_refused_where_there_are_no_instances_to_reference() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("labels.dcm");
    let blank = shared("volumes/ct-series-labels/dicom");
    let run = delightsam(&["segment", s(&blank), "--slice", "10", "--box", "100,100,200,200", "-o", s(&target)]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("no SOP Instance UID") && err.contains("NIfTI"), "{err}");
    let nifti_input = shared("volumes/nifti/pyradiomics_brain1_mr.nii.gz");
    let run = delightsam(&["segment", s(&nifti_input), "--slice", "10", "--box", "100,100,200,200", "-o", s(&target)]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains("DICOM SEG references DICOM images"), "{err}");
    assert!(!target.exists());
}

/// NIfTI input: the three shared volumes' geometry as nibabel reports it (sform over a zero
/// qform code, LPS and LAS orientations), and a liver box on the TotalSegmentator CT carried
/// through its slices, written on the input's grid, against the label volume.
#[test]
fn nifti_volumes_read_with_their_geometry_and_propagate_on_their_own_grid() {
    let cases = [
        ("totalseg_ct_abdomen", [122, 101, 30], [[3.0, 0.0, 0.0, -177.9563], [0.0, 3.0, 0.0, 11.319], [0.0, 0.0, 3.0, 94.3018]], (-1100.0, 1207.0)),
        ("totalseg_mr_abdomen", [117, 91, 20], [[-3.0, 0.0, 0.0, 168.5996], [0.0, -3.0, 0.0, 166.3594], [0.0, 0.0, 3.0, 28.9896]], (-47.0, 833.0)),
        (
            "pyradiomics_brain1_mr",
            [256, 256, 25],
            [[-0.78125, 0.0, 0.0, 99.6094], [0.0, 0.78125, 0.0, -99.6094], [0.0, 0.0, 6.5, -78.0]],
            (0.0, 3057.0),
        ),
    ];
    for (name, shape, affine, range) in cases {
        let volume = nifti::read(&shared(&format!("volumes/nifti/{name}.nii.gz"))).unwrap();
        assert_eq!(volume.shape, shape, "{name}");
        assert_eq!(volume.affine_source, "sform", "{name}");
        for (row, want) in volume.affine_ras.iter().zip(affine) {
            for (got, want) in row.iter().zip(want) {
                assert!((got - want).abs() < 2e-3, "{name}: {:?}", volume.affine_ras);
            }
        }
        let (min, max) = volume.values.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((min, max), range, "{name}");
    }

    // Liver (label 5): box from its largest slice, propagated.
    let input = shared("volumes/nifti/totalseg_ct_abdomen.nii.gz");
    let labels = nifti::read(&shared("volumes/nifti/totalseg_ct_abdomen_label.nii.gz")).unwrap();
    let [nx, ny, nz] = labels.shape;
    let liver: Vec<bool> = labels.values.iter().map(|&v| v == 5.0).collect();
    let k = (0..nz).max_by_key(|&k| liver[k * nx * ny..(k + 1) * nx * ny].iter().filter(|&&l| l).count()).unwrap();
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for j in 0..ny {
        for i in 0..nx {
            if liver[i + nx * (j + ny * k)] {
                (x0, y0, x1, y1) = (x0.min(i), y0.min(j), x1.max(i), y1.max(j));
            }
        }
    }
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("liver.nii.gz");
    let bbox = format!("{x0},{y0},{x1},{y1}");
    let run = delightsam(&["segment", s(&input), "--slice", &k.to_string(), "--box", &bbox, "--propagate", "-o", s(&target)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let facts = reference(&["nifti", s(&target)]);
    assert_eq!(facts["shape"], serde_json::json!([nx, ny, nz]));
    for r in 0..3 {
        for c in 0..4 {
            assert!(close(&facts["affine"][r][c], labels.affine_ras[r][c], 1e-3), "{:?}", facts["affine"]);
        }
    }
    let predicted = nifti::read(&target).unwrap();
    let both = predicted.values.iter().zip(&liver).filter(|&(&p, &l)| p != 0.0 && l).count();
    let dice = 2.0 * both as f64 / (predicted.values.iter().filter(|&&p| p != 0.0).count() + liver.iter().filter(|&&l| l).count()) as f64;
    assert!(dice > 0.7, "liver Dice {dice:.3} (0.754 measured)");
}

/// `info VOLUME.nii.gz --json` reports slices, spacing and the RAS affine as nibabel does.
#[test]
fn info_describes_a_nifti_volume() {
    let run = delightsam(&["info", s(&shared("volumes/nifti/totalseg_mr_abdomen.nii.gz")), "--json"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let info: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(info["slices"], 20);
    assert_eq!(info["spacing"], serde_json::json!([3.0, 3.0, 3.0]));
    assert_eq!(info["affine"][0], serde_json::json!([-3.0, 0.0, 0.0, 168.5996]));
    assert_eq!(info["affine_from"], "sform");
}

fn voxel_counts(path: &Path) -> std::collections::BTreeMap<u8, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for v in nifti::read(path).unwrap().values {
        if v != 0.0 {
            *counts.entry(v as u8).or_insert(0) += 1;
        }
    }
    counts
}

/// Label maps onto a series' grid (`convert SERIES --labels`): dcmqi's SEGs (one segment;
/// five overlapping ones on some of the slices) and TotalSegmentator's NIfTI, whose rows are
/// stored flipped: placed through the affines, every voxel lands where it belongs.
#[test]
fn seg_and_nifti_label_maps_are_placed_on_the_series_grid() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("labels.nii.gz");
    let source = shared("volumes/seg/dcmqi-ct-3slice/source");
    let run = delightsam(&["convert", s(&source), s(&target), "--labels", s(&shared("volumes/seg/dcmqi-ct-3slice/liver.seg.dcm"))]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(voxel_counts(&target), [(1, 107_098)].into());
    assert!(String::from_utf8_lossy(&run.stdout).contains("1 Liver: 107098"));

    let run = delightsam(&["convert", s(&source), s(&target), "--labels", s(&shared("volumes/seg/dcmqi-ct-3slice/partial_overlaps.seg.dcm"))]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let counts = voxel_counts(&target);
    assert_eq!(counts.keys().copied().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(counts[&5], 4713, "the highest segment keeps every pixel");
    assert!(counts[&3] <= 10_743 && counts[&1] <= 9602);

    let ct = shared("volumes/ct-series-labels/dicom");
    let run = delightsam(&["convert", s(&ct), s(&target), "--labels", s(&shared("volumes/ct-series-labels/labels.nii.gz"))]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let placed = nifti::read(&target).unwrap();
    let stored = nifti::read(&shared("volumes/ct-series-labels/labels.nii.gz")).unwrap();
    let counts = voxel_counts(&target);
    assert_eq!((counts[&5], counts[&1], counts[&52]), (366_708, 130_634, 11_723));
    // labels[i, j, k] is DICOM column i, row 511 − j (README).
    for &(i, j, k) in &[(100usize, 200usize, 3usize), (300, 250, 10), (256, 256, 19)] {
        assert_eq!(placed.values[i + 512 * ((511 - j) + 512 * k)], stored.values[i + 512 * (j + 512 * k)]);
    }

    // Refused by name: a SEG on a series it does not belong to, a label map with fractions.
    let run = delightsam(&["convert", s(&ct), s(&target), "--labels", s(&shared("volumes/seg/dcmqi-ct-3slice/liver.seg.dcm"))]);
    assert!(!run.status.success() && String::from_utf8_lossy(&run.stderr).contains("none of the series' slices"));
    let run = delightsam(&["convert", s(&ct), s(&target), "--labels", s(&shared("volumes/nifti/totalseg_ct_abdomen.nii.gz"))]);
    assert!(!run.status.success() && String::from_utf8_lossy(&run.stderr).contains("whole numbers from 0 to 255"));
}

/// An enhanced multi-frame CT (pydicom's eCT_Supplemental: two frames 10 mm apart) is a volume
/// too: converted to NIfTI with its geometry, and segmented slice by slice into a label
/// volume on its grid; a single-frame file is refused as a volume by name.
#[test]
fn an_enhanced_multi_frame_file_is_a_volume() {
    let out = tempfile::tempdir().unwrap();
    let file = common::fixture("dicom/eCT_Supplemental.dcm");
    let target = out.path().join("ect.nii.gz");
    let run = delightsam(&["convert", s(&file), s(&target)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let volume = nifti::read(&target).unwrap();
    assert_eq!(volume.shape, [512, 512, 2]);
    // IOP -1\0\0\0\1\0: the normal is -z, so ascending along it the z = -149 frame comes
    // first and the step is -10 mm in z. RAS = diag(-1, -1, 1) times LPS.
    let a = volume.affine_ras;
    assert!(a[0][0] > 0.0 && a[1][1] < 0.0, "{a:?}");
    assert!((a[2][2] + 10.0).abs() < 1e-3 && (a[2][3] + 149.0).abs() < 1e-3, "{a:?}");
    assert!((a[0][3] + 99.5).abs() < 1e-3 && (a[1][3] - 301.5).abs() < 1e-3, "{a:?}");
    let labels = out.path().join("ect_labels.nii.gz");
    let run = delightsam(&["segment", s(&file), "--slice", "1", "--box", "150,150,350,350", "-o", s(&labels)]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(nifti::read(&labels).unwrap().shape, [512, 512, 2]);
    let single = common::fixture("dicom/CT_small.dcm");
    let run = delightsam(&["convert", s(&single), s(&target)]);
    assert!(!run.status.success() && String::from_utf8_lossy(&run.stderr).contains("multi-frame DICOM file with a position per frame"));
}
