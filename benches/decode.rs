//! DICOM decode time: open + decode frame 0, as the viewer does. Prints medians.
//! Needs ../shared/data/dicom. Run: cargo bench --bench decode

use std::path::PathBuf;
use std::time::{Duration, Instant};

use delightsam::imaging::ImageSource;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/dicom");
    assert!(root.is_dir(), "the decode benchmark needs {}", root.display());
    let cases = [
        ("RG3_J2KI.dcm", "1760² MONOCHROME1, JPEG 2000 lossy"),
        ("693_J2KR.dcm", "512² CT, JPEG 2000 lossless"),
        ("693_UNCI.dcm", "512² CT, uncompressed"),
        ("MR_small_jpeg_ls_lossless.dcm", "64² MR, JPEG-LS"),
        ("examples_ybr_color.dcm", "320×240 ×30, JPEG baseline YBR, frame 0"),
    ];
    println!("{:<32} {:>10} {:>10} {:>10}  {}", "file", "median", "min", "max", "what");
    for (name, what) in cases {
        let path = root.join(name);
        let run = || {
            let start = Instant::now();
            let source = ImageSource::open(&path).expect("open");
            let frame = source.frame(0).expect("decode");
            std::hint::black_box(frame.data.len());
            start.elapsed()
        };
        for _ in 0..2 {
            run();
        }
        let runs = 15;
        let samples: Vec<Duration> = (0..runs).map(|_| run()).collect();
        let (min, max) = (*samples.iter().min().unwrap(), *samples.iter().max().unwrap());
        println!(
            "{:<32} {:>8.2}ms {:>8.2}ms {:>8.2}ms  {what}",
            name,
            median(samples).as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
}
