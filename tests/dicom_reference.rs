//! `info` facts and frame-0 statistics against pydicom (tests/reference/dicom_reference.py).

mod common;

use std::path::Path;

use common::{Reference, fixture, references, shared};
use delightsam::imaging::ImageSource;

/// Monochrome values must match within 1e-3 of the value range (the contract); colour
/// within 1% (JPEG decoders may round colour conversion differently).
fn check_against_reference(path: &Path, reference: &Reference) -> Result<(), String> {
    let source = ImageSource::open(path).map_err(|e| e.to_string())?;
    let meta = source.meta();
    let frame = source.frame(0).map_err(|e| e.to_string())?;
    let stats = frame.stats();
    let name = &reference.file;
    let mut problems = Vec::new();
    let mut same = |what: &str, ours: String, theirs: String| {
        if ours != theirs {
            problems.push(format!("{name}: {what} is {ours}, pydicom says {theirs}"));
        }
    };
    same("rows", meta.rows.to_string(), format!("{}", reference.rows.unwrap_or_default()));
    same("cols", meta.cols.to_string(), format!("{}", reference.cols.unwrap_or_default()));
    same("frames", meta.frames.to_string(), format!("{}", reference.frames.unwrap_or_default()));
    same("bits_allocated", meta.bits_allocated.to_string(), format!("{}", reference.bits_allocated.unwrap_or_default()));
    same("photometric", meta.photometric.clone(), reference.photometric.clone().unwrap_or_default());
    same("modality", meta.modality.clone().unwrap_or_default(), reference.modality.clone().unwrap_or_default());
    if let Some(uid) = &reference.transfer_syntax_uid {
        let ours = meta.transfer_syntax.as_ref().map(|t| t.uid.clone()).unwrap_or_default();
        same("transfer syntax", ours, uid.clone());
    }
    if let Some(lut) = reference.modality_lut {
        same("modality LUT", meta.modality_lut.is_some().to_string(), lut.to_string());
    }
    if reference.modality_lut.is_some() && monochrome_file(meta) {
        let theirs = reference.rescale.as_ref().map(|r| (r.slope, r.intercept));
        same("rescale", format!("{:?}", meta.rescale), format!("{theirs:?}"));
    }
    let close = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
    if let Some(theirs) = &reference.orientation {
        let ours = meta.orientation.map(|o| o.to_vec()).unwrap_or_default();
        if !close(&ours, theirs) {
            problems.push(format!("{name}: orientation is {ours:?}, pydicom says {theirs:?}"));
        }
    }
    if let Some(theirs) = &reference.positions {
        let ours: Vec<f64> = meta.positions.iter().flatten().copied().collect();
        if !close(&ours, &theirs.concat()) {
            problems.push(format!("{name}: positions are {:?}, pydicom says {theirs:?}", meta.positions));
        }
    }
    let (min, max, mean) = (reference.min.unwrap(), reference.max.unwrap(), reference.mean.unwrap());
    let monochrome = meta.photometric.starts_with("MONOCHROME");
    let tolerance = (max - min).max(1.0) * if monochrome { 1e-3 } else { 1e-2 };
    for (what, ours, theirs) in [("min", stats.min, min), ("max", stats.max, max), ("mean", stats.mean, mean)] {
        if (ours - theirs).abs() > tolerance {
            problems.push(format!("{name}: {what} is {ours}, pydicom says {theirs} (tolerance {tolerance})"));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("\n")) }
}

fn monochrome_file(meta: &delightsam::imaging::ImageMeta) -> bool {
    meta.photometric.starts_with("MONOCHROME")
}

fn check_folder(folder: &Path, reference_file: &str, may_refuse: &[&str]) {
    let mut failures = Vec::new();
    let mut checked = 0;
    for reference in references(reference_file) {
        let path = folder.join(&reference.file);
        if reference.decodes {
            match check_against_reference(&path, &reference) {
                Ok(()) => checked += 1,
                Err(e) if may_refuse.contains(&reference.file.as_str()) => {
                    eprintln!("allowed refusal: {e}");
                    assert!(e.contains(&reference.file), "the refusal must name the file: {e}");
                }
                Err(e) => failures.push(e),
            }
        } else {
            // pydicom cannot decode it: we must refuse too, with an error that names the file.
            let result = ImageSource::open(&path).and_then(|s| s.frame(0));
            match result {
                Ok(_) => failures.push(format!("{}: pydicom refuses this file but we decoded it", reference.file)),
                Err(e) => assert!(e.to_string().contains(&reference.file), "error must name the file: {e}"),
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 0);
}

#[test]
fn fixtures_match_pydicom() {
    check_folder(&fixture("dicom"), "fixtures_reference.json", &[]);
}

#[test]
fn every_shared_dicom_matches_pydicom() {
    // JPGExtended.dcm (12-bit lossy JPEG) included: libjpeg-turbo decodes it as pydicom does.
    check_folder(&shared("dicom"), "dicom_reference.json", &[]);
}

#[test]
fn multi_frame_files_give_each_frame() {
    let source = ImageSource::open(fixture("dicom/emri_small.dcm")).unwrap();
    assert_eq!(source.meta().frames, 10);
    let first = source.frame(0).unwrap();
    let last = source.frame(9).unwrap();
    assert_ne!(first.data, last.data, "frames 0 and 9 should differ");
    let err = source.frame(10).unwrap_err().to_string();
    assert!(err.contains("frame 10") && err.contains("10 frame"), "{err}");
}

#[test]
fn ct_keeps_hounsfield_units_and_its_windows() {
    let source = ImageSource::open(fixture("dicom/CT_small.dcm")).unwrap();
    let meta = source.meta();
    assert_eq!(meta.modality.as_deref(), Some("CT"));
    assert!(meta.rescale.is_some());
    assert!(meta.pixel_spacing.is_some());
    let frame = source.frame(0).unwrap();
    // Air in a CT is far below zero HU: the rescale was applied, not baked into a window.
    assert!(frame.stats().min < -800.0);
}

#[test]
fn monochrome1_is_inverted_for_display_only() {
    let source = ImageSource::open(shared("dicom/RG3_J2KI.dcm")).unwrap();
    assert!(source.meta().invert_display);
    let frame = source.frame(0).unwrap();
    let window = source.default_window(&frame);
    let (min_at, _) = frame.data.iter().enumerate().fold((0, f32::MAX), |acc, (i, &v)| if v < acc.1 { (i, v) } else { acc });
    let rgba = frame.to_rgba8(window, true);
    assert!(rgba[min_at * 4] > 200, "the lowest value of a MONOCHROME1 image must look bright");
}

#[test]
fn palette_and_ybr_files_become_rgb() {
    for name in ["dicom/examples_palette.dcm", "dicom/examples_ybr_color.dcm", "dicom/US1_J2KI.dcm"] {
        let source = ImageSource::open(shared(name)).unwrap();
        let frame = source.frame(0).unwrap();
        assert_eq!(frame.channels, 3, "{name}");
        assert_eq!(source.meta().channels, 3, "{name}");
    }
}

#[test]
fn files_without_meta_are_read_as_bare_datasets() {
    // Strip the preamble and meta group of a real file: the rest is an explicit VR LE data set.
    let bytes = std::fs::read(fixture("dicom/CT_small.dcm")).unwrap();
    let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    let dataset_start = 144 + group_length;
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("bare_ct");
    std::fs::write(&bare, &bytes[dataset_start..]).unwrap();
    let source = ImageSource::open(&bare).unwrap();
    let with_meta = ImageSource::open(fixture("dicom/CT_small.dcm")).unwrap();
    assert_eq!(source.frame(0).unwrap().data, with_meta.frame(0).unwrap().data);
}

#[test]
fn unknown_vr_elements_are_read_with_the_dictionary_vr() {
    // Rescale Slope "1" and Intercept "0" stored as UN: read raw, they would be 49 and 48.
    let source = ImageSource::open(fixture("dicom/explicit_VR-UN.dcm")).unwrap();
    let meta = source.meta();
    assert_eq!(meta.modality.as_deref(), Some("CT"));
    assert_eq!(meta.rescale, Some((1.0, 0.0)));
    assert_eq!(source.frame(0).unwrap().stats().min, -1024.0);
}

#[test]
fn enhanced_ct_takes_rescale_and_geometry_from_its_functional_groups() {
    let source = ImageSource::open(fixture("dicom/eCT_Supplemental.dcm")).unwrap();
    let meta = source.meta();
    assert_eq!(meta.rescale, Some((1.0, -1024.0)));
    assert_eq!(meta.pixel_spacing, Some((0.388672, 0.388672)));
    assert_eq!(meta.orientation, Some([-1.0, 0.0, 0.0, 0.0, 1.0, 0.0]));
    assert_eq!(meta.positions, vec![[99.5, -301.5, -159.0], [99.5, -301.5, -149.0]]);
    for frame in 0..2 {
        let stats = source.frame(frame).unwrap().stats();
        assert_eq!(stats.min, -1024.0, "frame {frame} is in Hounsfield units");
    }
    assert!(meta.warnings.is_empty(), "{:?}", meta.warnings);
}

#[test]
fn modality_lut_sequence_segmented_palette_and_subsampled_colour_decode() {
    let lut = ImageSource::open(fixture("dicom/mlut_18.dcm")).unwrap();
    assert!(lut.meta().modality_lut.is_some());
    assert_eq!(lut.meta().rescale, None);
    let palette = ImageSource::open(fixture("dicom/gdcm-US-ALOKA-16.dcm")).unwrap();
    assert_eq!(palette.frame(0).unwrap().channels, 3);
    let ybr = ImageSource::open(fixture("dicom/SC_ybr_full_422_uncompressed.dcm")).unwrap();
    assert_eq!(ybr.frame(0).unwrap().channels, 3);
}

/// CT_small.dcm with some header values replaced, written to a temporary file.
fn tampered_ct(values: &[(dicom_core::Tag, &str)]) -> (tempfile::TempDir, std::path::PathBuf) {
    use dicom_core::{DataElement, VR};
    let mut obj = dicom_object::open_file(fixture("dicom/CT_small.dcm")).unwrap();
    for (tag, value) in values {
        obj.put(DataElement::new(*tag, VR::DS, dicom_core::PrimitiveValue::from(*value)));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tampered.dcm");
    obj.write_to_file(&path).unwrap();
    (dir, path)
}

#[test]
fn non_finite_or_absurd_rescales_and_windows_are_ignored_with_a_warning() {
    use dicom_dictionary_std::tags;
    for (slope, intercept) in [("NaN", "0"), ("1e308", "0"), ("1", "inf"), ("0", "-1024"), ("1e7", "0")] {
        let (_dir, path) = tampered_ct(&[(tags::RESCALE_SLOPE, slope), (tags::RESCALE_INTERCEPT, intercept)]);
        let source = ImageSource::open(&path).unwrap();
        let meta = source.meta();
        assert_eq!(meta.rescale, None, "slope {slope}, intercept {intercept}");
        assert!(meta.warnings.iter().any(|w| w.contains("Rescale")), "slope {slope}: {:?}", meta.warnings);
        let stats = source.frame(0).unwrap().stats();
        assert!(stats.min.is_finite() && stats.max.is_finite() && stats.mean.is_finite(), "{stats:?}");
    }
    let (_dir, path) = tampered_ct(&[(tags::WINDOW_CENTER, "NaN"), (tags::WINDOW_WIDTH, "400")]);
    let source = ImageSource::open(&path).unwrap();
    assert!(source.meta().windows.is_empty());
    assert!(source.meta().warnings.iter().any(|w| w.contains("window")), "{:?}", source.meta().warnings);
    let frame = source.frame(0).unwrap();
    let window = source.default_window(&frame);
    assert!(window.center.is_finite() && window.width.is_finite() && window.width > 0.0);
}
