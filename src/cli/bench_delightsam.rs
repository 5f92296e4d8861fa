//! `delightsam bench --delightsam`: automatic segmentation latency, batch 1, per backend and
//! input size: the whole path (encode + SP-Generator + decode, logits read back) and a re-decode
//! with an edited patch grid against the cached embedding.

use std::path::Path;
use std::time::Duration;

use burn::prelude::*;

use super::bench_common::{Measured, median, milliseconds, time};
use crate::model::backend::{CpuNdArray, with_backend};
use crate::model::sp_generator::SpGenerator;
use crate::model::tinyvit::TinyVitConfig;
use crate::model::{DeLightSam, DeLightSamConfig, weights};

/// Times each backend at each input size, `runs` times; `record`: a LiteMedSAM record other
/// than the shipped one for the 256² model.
pub fn run(backends: &[Measured], sizes: &[usize], runs: usize, record: Option<&Path>) -> anyhow::Result<()> {
    println!(
        "{:<14} {:>6} {:>12} {:>12} {:>12} {:>12}  device",
        "backend", "input", "auto first", "auto median", "encode", "re-decode"
    );
    for &measured in backends {
        let name = measured.to_string();
        for &size in sizes {
            match measured {
                Measured::Backend(kind) => with_backend!(kind, B => measure::<B>(&name, size, runs, record)?)?,
                Measured::CpuNdArray => measure::<CpuNdArray>(&name, size, runs, record)?,
            }
        }
    }
    Ok(())
}

fn model<B: Backend>(size: usize, record: Option<&Path>, device: &B::Device) -> anyhow::Result<DeLightSam<B>> {
    if size == 256 {
        let record = record.map_or_else(weights::default_record_path, Path::to_path_buf);
        let lite = weights::load::<B>(&record, device)?;
        return Ok(DeLightSam::from_litemedsam(lite, &DeLightSamConfig::new(), device)?);
    }
    if !size.is_multiple_of(64) || size < 64 {
        anyhow::bail!("input size {size} must be a multiple of 64");
    }
    Ok(DeLightSamConfig::new().with_image_encoder(TinyVitConfig::new().with_img_size(size)).init(device))
}

fn measure<B: Backend>(name: &str, size: usize, runs: usize, record: Option<&Path>) -> anyhow::Result<()> {
    let device = B::Device::default();
    let model = model::<B>(size, record, &device)?.for_inference();
    let slot = 0;
    let data: Vec<f32> = (0..3 * size * size).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let image = Tensor::<B, 4>::from_data(TensorData::new(data, [1, 3, size, size]), &device);
    let runs = runs.max(1);
    let mut auto = || {
        let out = model.forward(image.clone(), slot);
        // Reading the logits back is part of the work: the app needs them on the CPU.
        let _ = out.mask_logits.into_data();
    };
    let auto_first = time(&mut auto);
    let autos: Vec<Duration> = (0..runs).map(|_| time(&mut auto)).collect();

    let mut embedding = None;
    let mut encode = || {
        let e = model.encode(image.clone(), slot);
        let _ = B::sync(&device);
        embedding = Some(e);
    };
    let encodes: Vec<Duration> = (0..runs).map(|_| time(&mut encode)).collect();
    let embedding = embedding.expect("encoded");
    let grid = SpGenerator::grid_from_logits(model.sp_generator.patch_logits(embedding.clone()));
    let side = grid.dims()[2];
    // An edit: the centre quarter of the grid switched on.
    let edit = Tensor::<B, 4>::ones([1, 1, side / 2, side / 2], &device);
    let edited = grid.slice_assign([0..1, 0..1, side / 4..side * 3 / 4, side / 4..side * 3 / 4], edit);
    // Computed once, as the engine does: it depends only on the weights.
    let image_pe = model.image_pe(embedding.dims()[2], &device);
    let mut redecode = || {
        let _ = model.decode_with_pe(embedding.clone(), edited.clone(), slot, image_pe.clone()).into_data();
    };
    redecode();
    let redecodes: Vec<Duration> = (0..runs * 4).map(|_| time(&mut redecode)).collect();

    println!(
        "{:<14} {:>6} {:>12} {:>12} {:>12} {:>12}  {}",
        name,
        format!("{size}²"),
        milliseconds(auto_first),
        milliseconds(median(autos)),
        milliseconds(median(encodes)),
        milliseconds(median(redecodes)),
        B::name(&device)
    );
    Ok(())
}
