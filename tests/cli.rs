//! The binary as a user runs it: `info`, `convert`, and every kind of bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{fixture, shared};

fn delightsam(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_delightsam")).args(args).output().expect("run delightsam")
}

fn run(args: &[&str]) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    delightsam(&args)
}

fn info_json(path: &Path) -> serde_json::Value {
    let out = delightsam(&["info".as_ref(), path.as_os_str(), "--json".as_ref()]);
    assert!(out.status.success(), "info failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("info --json prints JSON")
}

/// A refusal: non-zero exit, one line on stderr that names the file, no panic.
fn assert_refused(path: &Path, reason_contains: &str) {
    let out = delightsam(&["info".as_ref(), path.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(!out.status.success(), "{name}: expected a refusal, got success");
    assert!(!stderr.contains("panicked"), "{name}: panicked: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: expected one line, got: {stderr}");
    assert!(stderr.contains(&*name), "{name}: the error must name the file: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&reason_contains.to_lowercase()),
        "{name}: expected the reason to mention {reason_contains:?}: {stderr}"
    );
}

#[test]
fn info_json_has_the_contract_fields() {
    let info = info_json(&fixture("dicom/CT_small.dcm"));
    for key in ["path", "format", "modality", "rows", "cols", "frames", "photometric", "bits_allocated", "transfer_syntax", "min", "max", "mean"] {
        assert!(info.get(key).is_some(), "missing {key} in {info}");
    }
    assert_eq!(info["format"], "dicom");
    assert_eq!(info["modality"], "CT");
    assert_eq!(info["rows"], 128);
    assert_eq!(info["transfer_syntax"]["uid"], "1.2.840.10008.1.2.1");
    assert_eq!(info["transfer_syntax"]["name"], "Explicit VR Little Endian");
    assert_eq!(info["min"], -896.0);
}

#[test]
fn info_never_prints_patient_identifiers() {
    let out = run(&["info", fixture("dicom/CT_small.dcm").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    // CT_small.dcm's Patient's Name is "CompressedSamples^CT1".
    assert!(!text.contains("CompressedSamples"), "{text}");
    let json = info_json(&fixture("dicom/CT_small.dcm")).to_string();
    assert!(!json.contains("CompressedSamples"), "{json}");
}

#[test]
fn info_reads_raster_files_keeping_16_bits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ramp16.png");
    let pixels: Vec<u16> = (0..64u16).map(|i| i * 1000).collect();
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(8, 8, pixels).unwrap().save(&path).unwrap();
    let info = info_json(&path);
    assert_eq!(info["format"], "png");
    assert_eq!(info["bits_allocated"], 16);
    assert_eq!(info["max"], 63000.0);
}

#[test]
fn convert_writes_a_windowed_png() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ct.png");
    let status = run(&["convert", fixture("dicom/CT_small.dcm").to_str().unwrap(), out.to_str().unwrap(), "--window", "40,400"]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let png = image::open(&out).unwrap().into_luma8();
    assert_eq!(png.dimensions(), (128, 128));
    // Soft-tissue window: air (< -160 HU) is black, bone (> 240 HU) is white.
    let source = delightsam::imaging::ImageSource::open(fixture("dicom/CT_small.dcm")).unwrap();
    let frame = source.frame(0).unwrap();
    for (i, &hu) in frame.data.iter().enumerate() {
        let g = png.as_raw()[i];
        if hu < -160.0 {
            assert_eq!(g, 0);
        } else if hu > 240.0 {
            assert_eq!(g, 255);
        }
    }
}

#[test]
fn convert_chooses_a_frame_and_refuses_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("f3.png");
    let file = fixture("dicom/emri_small.dcm");
    let ok = run(&["convert", file.to_str().unwrap(), out.to_str().unwrap(), "--frame", "3"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = run(&["convert", file.to_str().unwrap(), out.to_str().unwrap(), "--frame", "99"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("frame 99"));
}

#[test]
fn convert_never_overwrites_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("brain.png");
    std::fs::copy(fixture("raster/colin27_z090.png"), &src).unwrap();
    let before = std::fs::read(&src).unwrap();
    let out = run(&["convert", src.to_str().unwrap(), src.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(&src).unwrap(), before);
}

#[test]
fn bad_input_is_refused_with_one_clear_line() {
    assert_refused(&fixture("bad/empty.dcm"), "empty");
    assert_refused(&fixture("bad/not_an_image.png"), "not a supported image");
    assert_refused(&fixture("bad/huge_header.png"), "100000×100000");
    assert_refused(&fixture("bad/truncated.png"), "decode");
    assert_refused(&fixture("dicom/MR_truncated.dcm"), "");
    assert_refused(&fixture("dicom/rtplan.dcm"), "no pixel data");
    assert_refused(&fixture("dicom/no_meta.dcm"), "");
    assert_refused(&fixture("does_not_exist.dcm"), "no such file");
}

#[test]
fn lossy_12_bit_jpeg_is_decoded_and_a_corrupt_one_refused() {
    // 12-bit lossy JPEG: pydicom (libjpeg) decodes JPGExtended.dcm; so must we.
    let info = info_json(&shared("dicom/JPGExtended.dcm"));
    assert_eq!(info["transfer_syntax"]["uid"], "1.2.840.10008.1.2.4.51");
    assert_eq!(info["max"], 264.0);
    // JPEG-lossy.dcm has invalid scan parameters: pydicom refuses it, and so do we, in one line.
    assert_refused(&shared("dicom/JPEG-lossy.dcm"), "JPEG");
}

#[test]
fn an_empty_directory_is_refused_in_one_line() {
    // A folder is described as its DICOM series and images (tests/volumes.rs); an empty one has
    // nothing to describe.
    let dir = tempfile::tempdir().unwrap();
    let out = delightsam(&["info".as_ref(), dir.path().as_os_str()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && stderr.contains("no files to describe"), "{stderr}");
}
