//! `delightsam bench --delightsam`: automatic segmentation latency, batch 1, per backend and
//! input size: the whole path (encode + SP-Generator + decode, logits read back) and a re-decode
//! with an edited patch grid against the cached embedding.

use std::time::{Duration, Instant};

use burn::prelude::*;

use super::bench::{BenchArgs, CUDA_HINT, median};
use crate::model::backend::{Cpu, CpuNdArray, Gpu};
use crate::model::sp_generator::SpGenerator;
use crate::model::tinyvit::TinyVitConfig;
use crate::model::{DeLightSam, DeLightSamConfig, weights};

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    println!(
        "{:<10} {:>6} {:>12} {:>12} {:>12} {:>12}  device",
        "backend", "input", "auto first", "auto median", "encode", "re-decode"
    );
    for name in &args.backends {
        for &size in &args.sizes {
            match name.as_str() {
                "flex" | "cpu" => measure::<Cpu>("flex", size, args)?,
                "ndarray" => measure::<CpuNdArray>("ndarray", size, args)?,
                "wgpu" => measure::<Gpu>("wgpu", size, args)?,
                #[cfg(feature = "cuda")]
                "cuda" => measure::<crate::model::backend::Cuda>("cuda", size, args)?,
                other => anyhow::bail!("unknown backend {other:?}: use flex, ndarray, wgpu{}", CUDA_HINT),
            }
        }
    }
    Ok(())
}

fn model<B: Backend>(size: usize, args: &BenchArgs, device: &B::Device) -> anyhow::Result<DeLightSam<B>> {
    if size == 256 {
        let record = args.model.clone().unwrap_or_else(weights::default_record_path);
        let lite = weights::load::<B>(&record, device)?;
        return DeLightSam::from_litemedsam(lite, &DeLightSamConfig::new(), device).map_err(anyhow::Error::msg);
    }
    if size % 64 != 0 || size < 64 {
        anyhow::bail!("input size {size} must be a multiple of 64");
    }
    Ok(DeLightSamConfig::new().with_image_encoder(TinyVitConfig::new().with_img_size(size)).init(device))
}

fn measure<B: Backend>(name: &str, size: usize, args: &BenchArgs) -> anyhow::Result<()> {
    let device = B::Device::default();
    let model = model::<B>(size, args, &device)?.for_inference();
    let slot = 0;
    let data: Vec<f32> = (0..3 * size * size).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let image = Tensor::<B, 4>::from_data(TensorData::new(data, [1, 3, size, size]), &device);
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let runs = args.runs.max(1);
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
    let mut redecode = || {
        let _ = model.decode(embedding.clone(), edited.clone(), slot).into_data();
    };
    redecode();
    let redecodes: Vec<Duration> = (0..runs * 4).map(|_| time(&mut redecode)).collect();

    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!(
        "{:<10} {:>6} {:>12} {:>12} {:>12} {:>12}  {}",
        name,
        format!("{size}²"),
        ms(auto_first),
        ms(median(autos)),
        ms(median(encodes)),
        ms(median(redecodes)),
        B::name(&device)
    );
    Ok(())
}
