//! Measures a model on ONNX Runtime through fusion::infer: library load,
//! session creation (wake), run latency p50/p99 per batch size, and resident
//! memory (VmRSS, VmHWM) before loading, with the session loaded and after
//! release.
//!
//! ```sh
//! cargo run --release -p fusion --example infer_bench -- MODEL.onnx \
//!     [--library PATH] [--threads 1] [--runs 300] [--wakes 10] [--batches 1,8]
//! ```
//! The model's inputs and outputs are read from the model itself (every
//! tensor `float32`, batch first); inputs are deterministic values in [0, 1].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fusion::infer::{Accelerator, IoSpec, NamedTensors, OrtBackend, OrtConfig, TensorF32};

struct Args {
    model: PathBuf,
    library: Option<PathBuf>,
    threads: usize,
    runs: usize,
    wakes: usize,
    batches: Vec<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut args = Args {
        model: PathBuf::new(),
        library: None,
        threads: 1,
        runs: 300,
        wakes: 10,
        batches: vec![1, 8],
    };
    let number = |v: Option<String>, what: &str| -> Result<usize, String> {
        v.ok_or(format!("{what} needs a value"))?
            .parse()
            .map_err(|e| format!("{what}: {e}"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--library" => args.library = Some(it.next().ok_or("--library needs a path")?.into()),
            "--threads" => args.threads = number(it.next(), "--threads")?,
            "--runs" => args.runs = number(it.next(), "--runs")?.max(1),
            "--wakes" => args.wakes = number(it.next(), "--wakes")?.max(1),
            "--batches" => {
                args.batches = it
                    .next()
                    .ok_or("--batches needs a list")?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|e| format!("--batches: {e}")))
                    .collect::<Result<_, _>>()?
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            s => args.model = s.into(),
        }
    }
    if args.model.as_os_str().is_empty() {
        return Err("usage: infer_bench MODEL.onnx [--library PATH] [--threads N] [--runs N] [--wakes N] [--batches 1,8]".into());
    }
    Ok(args)
}

/// (VmRSS, VmHWM) in KiB from /proc/self/status; zeros where unreadable.
fn memory_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The value at quantile `q` of sorted durations (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn batch(specs: &[IoSpec], rows: usize) -> Result<NamedTensors, fusion::infer::InferError> {
    let mut t = NamedTensors::new();
    for (s, spec) in specs.iter().enumerate() {
        let n = rows * spec.row_len();
        let data = (0..n)
            .map(|i| 0.5 + 0.5 * ((i * 31 + s * 7) as f32 * 0.013).sin())
            .collect();
        let mut shape = vec![rows];
        shape.extend(spec.shape[1..].iter().map(|&d| d as usize));
        t.insert(&spec.name, TensorF32::new(shape, data)?);
    }
    Ok(t)
}

fn run(args: Args) -> Result<(), String> {
    let (rss0, _) = memory_kib();
    let started = Instant::now();
    OrtBackend::load_library(args.library.as_deref()).map_err(|e| e.to_string())?;
    let load_ms = ms(started.elapsed());
    let (rss_runtime, _) = memory_kib();
    let (inputs, outputs) = OrtBackend::inspect_model(args.library.as_deref(), &args.model)
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut backend = OrtBackend::new(OrtConfig {
        library_path: args.library.clone(),
        model_path: args.model.clone(),
        inputs: inputs.clone(),
        outputs,
        intra_threads: args.threads,
    })
    .map_err(|e| e.to_string())?;
    let backend_ms = ms(started.elapsed());
    let model_bytes = std::fs::metadata(&args.model).map(|m| m.len()).unwrap_or(0);
    println!(
        "model            {} ({model_bytes} bytes)",
        args.model.display()
    );
    println!(
        "library          {} (from {})",
        backend.library().path.display(),
        backend.library().source
    );
    println!("build            {}", backend.build_info());
    println!("threads          {}", args.threads);
    println!("library load     {load_ms:.2} ms (dlopen + environment, once per process)");
    println!("backend ready    {backend_ms:.2} ms (configuration checked, no session yet)");

    let mut wakes = Vec::with_capacity(args.wakes);
    for _ in 0..args.wakes {
        backend.release();
        let t = Instant::now();
        backend.wake().map_err(|e| e.to_string())?;
        wakes.push(t.elapsed());
    }
    let first_wake = wakes[0];
    wakes.sort();
    println!(
        "wake (session)   first {:.2} ms, p50 {:.2} ms, max {:.2} ms over {} wakes",
        ms(first_wake),
        ms(quantile(&wakes, 0.5)),
        ms(*wakes.last().unwrap_or(&Duration::ZERO)),
        wakes.len()
    );

    for &rows in &args.batches {
        let b = batch(&inputs, rows).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            backend.run(&b).map_err(|e| e.to_string())?;
        }
        let mut times = Vec::with_capacity(args.runs);
        for _ in 0..args.runs {
            let t = Instant::now();
            backend.run(&b).map_err(|e| e.to_string())?;
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "run batch {rows:<3}    p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {} runs",
            ms(quantile(&times, 0.5)),
            ms(quantile(&times, 0.99)),
            ms(*times.last().unwrap_or(&Duration::ZERO)),
            times.len()
        );
    }
    let (rss_loaded, _) = memory_kib();
    let t = Instant::now();
    backend.release();
    let release_ms = ms(t.elapsed());
    let (rss_released, hwm) = memory_kib();
    println!("release          {release_ms:.2} ms (drop the session, return freed memory)");
    println!(
        "VmRSS            start {rss0} KiB, runtime loaded {rss_runtime} KiB, session loaded {rss_loaded} KiB, after release {rss_released} KiB"
    );
    println!("VmHWM            {hwm} KiB (peak)");
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("infer_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
