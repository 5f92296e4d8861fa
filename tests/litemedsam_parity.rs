//! LiteMedSAM in burn against the original PyTorch model (tests/reference/litemedsam_reference.py):
//! preprocessing, the image embedding, the low-resolution logits and the final mask, on the CPU
//! backend for every case and on wgpu (lavapipe in CI) for one. The wgpu test also checks that
//! De-LightSAM's automatic path (controller, SP-Generator, QM-Decoder) agrees between wgpu and CPU:
//! one process, so the kernels compiled for LiteMedSAM are re-used (compiling is the slow part).

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use burn::prelude::*;
use delightsam::engine::{AutoSegmenter, Segmenter};
use delightsam::imaging::ImageSource;
use delightsam::model::backend::{Cpu, Gpu};
use delightsam::model::gpu_cache;
use delightsam::model::weights;
use delightsam::model::{DeLightSamConfig, PointPrompt, Prompts, preprocess};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    image: String,
    #[serde(rename = "box")]
    bbox: Option<[f32; 4]>,
    points: Vec<(f32, f32, i32)>,
}

struct Reference {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Reference {
    fn load(name: &str) -> Self {
        let path = root().join(format!("tests/reference/litemedsam/{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let tensors = file
            .tensors()
            .into_iter()
            .map(|(key, view)| {
                let values: Vec<f32> = match view.dtype() {
                    safetensors::Dtype::F32 => {
                        view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
                    }
                    safetensors::Dtype::U8 => view.data().iter().map(|&v| f32::from(v)).collect(),
                    other => panic!("{key}: unexpected dtype {other:?}"),
                };
                (key, (view.shape().to_vec(), values))
            })
            .collect();
        Self { tensors }
    }

    fn get(&self, key: &str) -> &[f32] {
        &self.tensors[key].1
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("tests/reference/litemedsam/cases.json")).expect("cases.json");
    serde_json::from_str(&text).expect("cases.json")
}

fn prompts(case: &Case) -> Prompts {
    Prompts {
        bbox: case.bbox,
        points: case.points.iter().map(|&(x, y, label)| PointPrompt { x, y, positive: label == 1 }).collect(),
    }
}

/// max |a − b| / (max(b) − min(b)).
fn relative_max_error(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len());
    let (lo, hi) = theirs.iter().fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    worst / (hi - lo).max(1e-6)
}

fn iou(a: &[u8], b: &[f32]) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x > 0, y > 0.0);
        inter += usize::from(x && y);
        union += usize::from(x || y);
    }
    if union == 0 { 1.0 } else { inter as f64 / union as f64 }
}

/// Every 8th channel of a (1, 256, 64, 64) embedding, as the reference stores it.
fn every_eighth_channel<B: Backend>(embedding: Tensor<B, 4>) -> Vec<f32> {
    let values: Vec<f32> = embedding.into_data().convert::<f32>().to_vec().unwrap();
    (0..256).step_by(8).flat_map(|c| values[c * 4096..(c + 1) * 4096].to_vec()).collect()
}

fn check_case<B: Backend>(segmenter: &mut Segmenter<B>, case: &Case, device: &B::Device) {
    let reference = Reference::load(&case.name);
    let source = ImageSource::open(root().join(&case.image)).unwrap();
    let frame = source.frame(0).unwrap();

    // Preprocessing: our input equals the reference input.
    let input = preprocess::prepare(&frame, 256);
    let err = relative_max_error(&input.data, reference.get("input"));
    assert!(err < 1e-5, "{}: input differs by {err}", case.name);

    // Encoder on the reference input: embedding within 1e-3 of its range.
    let x = Tensor::<B, 4>::from_data(TensorData::new(reference.get("input").to_vec(), [1, 3, 256, 256]), device);
    let started = std::time::Instant::now();
    let embedding = segmenter.model().encode(x);
    let _ = B::sync(device);
    let first_encode = started.elapsed();
    let err = relative_max_error(&every_eighth_channel(embedding.clone()), reference.get("embedding_every8"));
    assert!(err <= 1e-3, "{}: embedding max error {err} of its range", case.name);

    // Decoder: low-resolution logits within 1e-3 of their range.
    let geometry = input.geometry;
    let p = prompts(case);
    let model_prompts = p.to_input_space(&geometry);
    let decoded = segmenter.model().decode(embedding, &model_prompts);
    let logits: Vec<f32> = decoded.logits.into_data().convert::<f32>().to_vec().unwrap();
    let err = relative_max_error(&logits, reference.get("low_res_logits"));
    assert!(err <= 1e-3, "{}: logits max error {err} of their range", case.name);

    // The whole pipeline, as users run it: mask IoU ≥ 0.99 with PyTorch's.
    let result = segmenter.segment(&case.name, &frame, &p).unwrap();
    let iou = iou(result.mask.labels(), reference.get("mask"));
    assert!(iou >= 0.99, "{}: mask IoU {iou}", case.name);
    eprintln!(
        "{} on {}: ok (mask IoU {iou:.4}, {} px); encode {:.0} ms (first call on this segmenter: {:.0} ms), decode {:.0} ms",
        case.name,
        segmenter.device_name(),
        result.mask.foreground_count(),
        result.timings.encode.as_secs_f64() * 1e3,
        first_encode.as_secs_f64() * 1e3,
        result.timings.decode.as_secs_f64() * 1e3,
    );
}

#[test]
fn cpu_backend_matches_pytorch() {
    let device = Default::default();
    let mut segmenter = Segmenter::<Cpu>::load(&weights::default_record_path(), device).expect("shipped model");
    let device = Default::default();
    for case in cases() {
        check_case(&mut segmenter, &case, &device);
    }
}

#[test]
fn wgpu_backend_matches_pytorch() {
    // Autotune results and compiled kernels persist between runs (CI included), as in the app.
    gpu_cache::persist_in(&gpu_cache::default_dir());
    let device = Default::default();
    let mut segmenter = Segmenter::<Gpu>::load(&weights::default_record_path(), device).expect("shipped model");
    let device = Default::default();
    // One case with a box and points on an image that is not square (resize + crop path).
    let case = cases().into_iter().find(|c| c.name == "colin27_box_points").expect("case");
    check_case(&mut segmenter, &case, &device);
    drop(segmenter);
    delightsam_wgpu_matches_cpu();
}

/// A De-LightSAM model with every part active (non-zero controllers and dense prompt), saved on
/// the CPU and loaded on wgpu: the automatic logits must agree.
fn delightsam_wgpu_matches_cpu() {
    let cpu_device = Default::default();
    let config = DeLightSamConfig::new();
    let model = common::active_delightsam(&config, &cpu_device);
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("active.bpk");
    weights::save_delightsam(&model, &config, &record).unwrap();

    let frame = ImageSource::open(root().join("tests/data/raster/colin27_z090.png")).unwrap().frame(0).unwrap();
    let mut cpu = AutoSegmenter::<Cpu>::load(Some(&record), cpu_device).unwrap();
    let mut gpu = AutoSegmenter::<Gpu>::load(Some(&record), Default::default()).unwrap();
    let slot = cpu.slot("mr").unwrap();
    let on_cpu = cpu.segment("colin", &frame, slot, None).unwrap();
    let on_gpu = gpu.segment("colin", &frame, slot, None).unwrap();
    let error = relative_max_error(&on_gpu.logits, &on_cpu.logits);
    println!("De-LightSAM wgpu vs CPU: logits relative max error {error:.2e}; encode {:?} vs {:?}", on_gpu.timings.encode, on_cpu.timings.encode);
    assert!(error < 1e-2, "wgpu and CPU logits differ: {error}");
    let (cpu_grid, gpu_grid) = (on_cpu.grid.expect("whole-image grid"), on_gpu.grid.expect("whole-image grid"));
    let agree = cpu_grid.labels().iter().zip(gpu_grid.labels()).filter(|(a, b)| a == b).count();
    assert!(agree >= 1020, "patch grids differ in {} of 1024 cells", 1024 - agree);
}

#[test]
fn the_embedding_is_computed_once_per_image() {
    let mut segmenter = Segmenter::<Cpu>::load(&weights::default_record_path(), Default::default()).unwrap();
    let frame = ImageSource::open(root().join("tests/data/dicom/CT_small.dcm")).unwrap().frame(0).unwrap();
    let first = segmenter.segment("ct", &frame, &Prompts { bbox: Some([10.0, 5.0, 120.0, 120.0]), points: vec![] }).unwrap();
    assert!(!first.timings.cached);
    let point = PointPrompt { x: 64.0, y: 64.0, positive: true };
    let second = segmenter.segment("ct", &frame, &Prompts { bbox: None, points: vec![point] }).unwrap();
    assert!(second.timings.cached, "a second prompt on the same image must reuse the embedding");
    assert_ne!(first.mask, second.mask);
}
