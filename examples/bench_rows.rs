//! gran's side of the side-by-side benchmark (bench/compare.py runs it next to the PyTorch
//! reference of bench/reference.py). Prints one JSON object per row with every measured
//! duration in seconds; compare.py takes the medians.
//!
//!   bench_rows train SIZE CHANNELS STEPS BATCH SCALE DEVICE WARMUP REPS [fp32|bf16]
//!   bench_rows sample SIZE CHANNELS STEPS COUNT SCALE DEVICE WARMUP REPS [fp32|bf16]
//!
//! With GRAN_BENCH_CUDA_GRAPH=1 a sample row draws through a CUDA graph captured before the
//! timed loop (gran::GraphedSampler); on a device where that is refused, the
//! message and exit status 3. With GRAN_BENCH_RECOMPUTE=1 a train row recomputes each drawing
//! step in the backward pass (TrainConfig::recompute).

use gran::data::Dataset;
use gran::{train, DeviceSpec, Model, ModelConfig, Precision, TrainConfig};
use std::time::Instant;
use tch::{Kind, Tensor};

fn main() {
    // The library's own account of what it did (a graph captured, or why not) goes to stderr.
    gran::log::set_sink(
        Some(std::sync::Arc::new(|level, message: &str| eprintln!("gran {level:?}: {message}"))),
        gran::log::Level::Info,
    );
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 10 && a.len() != 11 {
        eprintln!(
            "usage: bench_rows train|sample SIZE CHANNELS STEPS BATCH|COUNT SCALE cpu|cuda WARMUP REPS [fp32|bf16]"
        );
        std::process::exit(2);
    }
    let precision: Precision = a.get(10).map_or("fp32", String::as_str).parse().unwrap_or_else(|e: gran::Error| {
        eprintln!("{}", e.message);
        std::process::exit(2);
    });
    let num = |i: usize| a[i].parse::<f64>().expect("number");
    let (size, channels, steps, n, scale) =
        (num(2) as u32, num(3) as u32, num(4) as u32, num(5) as usize, num(6) as f32);
    let device = if a[7] == "cuda" { DeviceSpec::Cuda(0) } else { DeviceSpec::Cpu };
    let (warmup, reps) = (num(8) as usize, num(9) as usize);
    let cfg = ModelConfig {
        height: size,
        width: size,
        channels,
        drawing_steps: steps,
        width_scale: scale,
        device,
        ..Default::default()
    };
    let model = Model::new(&cfg).expect("model");
    model.set_precision(precision);
    let (pg, pd) = model.parameter_counts();
    let mut times = Vec::new();
    // GRAN_BENCH_CUDA_GRAPH=1: training steps replay a captured graph, sampling draws through one.
    let graphed = std::env::var("GRAN_BENCH_CUDA_GRAPH").is_ok_and(|v| v == "1");
    if a[1] == "train" {
        let images = Tensor::randint(
            256,
            [(4 * n) as i64, channels as i64, size as i64, size as i64],
            (Kind::Uint8, tch::Device::Cpu),
        );
        let data = Dataset::new(images, None).expect("dataset");
        let tc = TrainConfig {
            iterations: (warmup + reps) as u64,
            batch_size: n as u32,
            report_every: 1,
            precision,
            cuda_graph: graphed,
            recompute: std::env::var("GRAN_BENCH_RECOMPUTE").is_ok_and(|v| v == "1"),
            ..Default::default()
        };
        let mut last = Instant::now();
        train(&model, &data, &tc, &mut |_| {
            let now = Instant::now();
            times.push((now - last).as_secs_f64());
            last = now;
            false
        })
        .expect("train");
        times.drain(..warmup);
    } else {
        let sampler = graphed.then(|| {
            gran::GraphedSampler::new(&model, n).unwrap_or_else(|e| {
                eprintln!("{}", e.message);
                std::process::exit(3);
            })
        });
        for i in 0..warmup + reps {
            let t = Instant::now();
            let images = match &sampler {
                Some(g) => g.generate(&model.latents(i as u64, 0, n).expect("latents")).expect("graphed sample"),
                None => model.sample(i as u64, n, false).expect("sample").images,
            };
            let _ = std::hint::black_box(images);
            if i >= warmup {
                times.push(t.elapsed().as_secs_f64());
            }
        }
    }
    // Output shapes, for compare.py to check against the reference: two samples and their D(x).
    let two = model.sample(0, 2, false).expect("sample").images;
    let d = model.discriminate(&two).expect("discriminate");
    let shape = |v: &[i64]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
    let list: Vec<String> = times.iter().map(|t| format!("{t:.6}")).collect();
    // Peak resident memory of this process (one row a process, so it is this row's).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given.
    let max_rss_kib = if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 { usage.ru_maxrss } else { 0 };
    println!(
        "{{\"params_g\": {pg}, \"params_d\": {pd}, \"sample_shape\": [{}], \"d_shape\": [{}], \"times\": [{}], \
         \"threads\": {}, \"max_rss_mib\": {:.1}}}",
        shape(&two.size()),
        d.len(),
        list.join(", "),
        tch::get_num_threads(),
        max_rss_kib as f64 / 1024.0
    );
}
