//! The `fieldnode` command line: `run`, `check-config`, `probe`, `update` and
//! `simulate-energy`. The binary is a
//! one-line wrapper around [`main`], so system tests can build the same
//! program under another name.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crate::clock::SystemClock;
use crate::clock::{Clock, ReplayClock};
use crate::config::{Config, SensorSource, Speed};
use crate::scene::Scene;
use crate::scene::meta::format_rfc3339_ms;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use messages::{EventJson, EventRecord};

#[derive(Parser)]
#[command(
    name = "fieldnode",
    version,
    about = "Field node daemon: senses, detects events, stores them durably"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node (by default on simulated hardware replaying the bundled demo scene).
    Run(RunArgs),
    /// Validate a configuration file and print every error with its key path.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// List the hardware found (audio inputs, BME280 on I2C, V4L2 cameras)
    /// and read one sample from each: a technician's first check.
    Probe {
        /// Configuration file (the devices it names are also tried).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Signed model and settings updates (docs/updates.md).
    #[command(subcommand)]
    Update(UpdateCommand),
    /// Replay the power policy, its sleeps and listening windows for days
    /// on a simulated clock, battery, panel and weather; print the
    /// timeline, brownouts, events captured per mode and energy per
    /// consumer, and plot them to SVG (docs/energy.md).
    SimulateEnergy(crate::energy_sim::SimArgs),
}

#[derive(Subcommand)]
enum UpdateCommand {
    /// Check a bundle against the node's trust state and queue it in
    /// `<data_dir>/incoming/` for the running node, which installs it when
    /// power allows. Exit 1 if it is refused.
    Apply {
        /// The bundle file.
        file: PathBuf,
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides `node.data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print the trust root, the installed versions, the committed and
    /// trial models, the last result and the bundles waiting.
    Status {
        /// Configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory (overrides `node.data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run a model on deterministic inputs and print its answers as the
    /// self-test vectors of its bundle (JSON, for `field-tools bundle pack
    /// --self-tests`).
    Selftests {
        /// The model's manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// How many vectors.
        #[arg(long, default_value_t = 8)]
        count: usize,
        /// Accepted difference per probability on the node.
        #[arg(long, default_value_t = 0.02)]
        tolerance: f32,
        /// Seed of the inputs.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Configuration file (TOML); without it the embedded defaults are used.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Scene directory to replay (overrides `scene.dir`).
    #[arg(long)]
    scene: Option<PathBuf>,
    /// Data directory (overrides `node.data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Replay speed: a factor of real time, or `max` (overrides `scene.speed`).
    #[arg(long)]
    speed: Option<Speed>,
    /// Stop when the scene ends, after all pending work is stored.
    #[arg(long)]
    exit_at_end: bool,
    /// Replay the scene this many times back to back, time running on
    /// (overrides `scene.loops`; 1 to 1000000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    loops: Option<u32>,
    /// Sample the real devices instead of replaying a scene (sets
    /// `node.sensors = "hardware"`).
    #[arg(long)]
    hardware: bool,
    /// How stored events are printed on standard output.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    /// One readable line per stored event, and a summary.
    Text,
    /// One JSON object per line: `{"stored": {...}}` per event, `{"summary": {...}}` at the end.
    Jsonl,
}

/// glibc gives each thread that allocates concurrently its own arena (up to
/// 8 per core), and freed memory stays spread over them: draining 50,000
/// stored events peaked at 89 to 92 MiB of RSS with the default and about
/// 65 MiB with one arena, at the same rate (`docs/performance.md`). The
/// node's threads allocate little and seldom at once, so one arena costs no
/// throughput. A `MALLOC_ARENA_MAX` in the environment still wins. Called
/// first thing, before any other thread exists.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter, and no other
        // thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::from_file(&file) {
            Ok(cfg) => {
                let problems = check_files(&cfg);
                if problems.is_empty() {
                    println!("{}: configuration is valid", file.display());
                    ExitCode::SUCCESS
                } else {
                    for p in &problems {
                        eprintln!("{}: {p}", file.display());
                    }
                    ExitCode::FAILURE
                }
            }
            Err(errors) => {
                eprintln!("{}: {errors}", file.display());
                ExitCode::FAILURE
            }
        },
        Command::Update(cmd) => match update(cmd) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("fieldnode: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::SimulateEnergy(args) => match crate::energy_sim::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fieldnode: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Probe { config, json } => match probe(config.as_deref(), json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fieldnode: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => match run(args).inspect_err(|_| flush_log_summaries()) {
            Ok(Stopped::Done) => ExitCode::SUCCESS,
            Ok(Stopped::ForReboot) => ExitCode::from(crate::fieldlink::REBOOT_EXIT_CODE),
            Err(e) => {
                eprintln!("fieldnode: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// What a valid configuration still gets wrong in the files it names: the
/// MQTT link's certificates (as `[uplink.mqtt.tls]`).
fn check_files(cfg: &Config) -> Vec<String> {
    let Some(mqtt) = cfg.uplink.mqtt_for(&cfg.node.id) else {
        return Vec::new();
    };
    let Some(tls) = &mqtt.tls else {
        return Vec::new();
    };
    uplink::mqtt::certcheck::check(tls, &mqtt.node_id, std::time::SystemTime::now())
        .into_iter()
        .map(|p| format!("uplink.mqtt.tls: {p}"))
        .collect()
}

fn load_config(args: &RunArgs) -> Result<Config> {
    let mut cfg = match &args.config {
        Some(p) => Config::from_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => Config::default(),
    };
    if let Some(s) = &args.scene {
        cfg.scene.dir = s.clone();
    }
    if let Some(d) = &args.data_dir {
        cfg.node.data_dir = d.clone();
    }
    if let Some(s) = args.speed {
        cfg.scene.speed = s;
    }
    cfg.scene.exit_at_end |= args.exit_at_end;
    if let Some(n) = args.loops {
        cfg.scene.loops = n;
    }
    cfg.fieldlink.config_file = args.config.clone();
    if args.hardware {
        cfg.node.sensors = SensorSource::Hardware;
    }
    Ok(cfg)
}

fn update_config(config: Option<&Path>, data_dir: Option<&Path>) -> Result<Config> {
    let mut cfg = match config {
        Some(p) => Config::from_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => Config::default(),
    };
    if let Some(d) = data_dir {
        cfg.node.data_dir = d.to_path_buf();
    }
    Ok(cfg)
}

fn update(cmd: UpdateCommand) -> Result<ExitCode> {
    let now = SystemClock.now_ms();
    match cmd {
        UpdateCommand::Apply {
            file,
            config,
            data_dir,
        } => {
            let cfg = update_config(config.as_deref(), data_dir.as_deref())?;
            match crate::update::commands::apply(&cfg, &file, now)? {
                Ok(queued) => {
                    println!(
                        "{}: verified; queued as {}",
                        file.display(),
                        queued.display()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(reason) => {
                    eprintln!("{}: refused: {reason}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        UpdateCommand::Status {
            config,
            data_dir,
            json,
        } => {
            let cfg = update_config(config.as_deref(), data_dir.as_deref())?;
            let s = crate::update::commands::status(&cfg, now);
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("updates: {}", s.trust);
                if let Some(v) = s.root_version {
                    println!("trust root: version {v}");
                }
                for (k, n, v) in &s.installed {
                    println!("installed: {k} {n} version {v}");
                }
                match &s.state.active {
                    Some(a) => println!("model: slot {} (version {})", a.slot, a.version),
                    None => println!("model: as configured ([fusion] model)"),
                }
                if let Some(t) = &s.state.trial {
                    println!("on trial: slot {} (version {})", t.slot, t.version);
                }
                if let Some(l) = &s.state.last {
                    println!(
                        "last: {} {} {} {}: {}",
                        l.kind, l.name, l.version, l.result, l.reason
                    );
                }
                for p in &s.pending {
                    println!("waiting: {}", p.display());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        UpdateCommand::Selftests {
            manifest,
            count,
            tolerance,
            seed,
        } => {
            let cfg = Config::default();
            let v = crate::update::commands::selftests(&cfg, &manifest, count, tolerance, seed)?;
            println!("{}", serde_json::to_string(&v)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn probe(config: Option<&Path>, json: bool) -> Result<()> {
    let cfg = match config {
        Some(p) => Config::from_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => Config::default(),
    };
    let report = crate::probe::probe(&cfg, Path::new("/dev"));
    let mic = crate::probe::audio_sample(&cfg);
    if json {
        let mut v = serde_json::to_value(&report)?;
        v["configured_microphone"] = match &mic {
            Ok(s) => serde_json::json!({ "ok": s }),
            Err(e) => serde_json::json!({ "error": e }),
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("audio inputs ({}):", report.audio.len());
    for a in &report.audio {
        println!(
            "  {}{}  {}  [{}]",
            a.id,
            if a.is_default { " (default)" } else { "" },
            a.name,
            a.default_config
                .as_deref()
                .unwrap_or("no input configuration")
        );
    }
    match &mic {
        Ok(s) => println!("  configured microphone {:?}: {s}", cfg.audio.device.name),
        Err(e) => println!(
            "  configured microphone {:?}: FAILED: {e}",
            cfg.audio.device.name
        ),
    }
    println!("I2C (0x76/0x77 on /dev/i2c-*): {} found", report.i2c.len());
    for f in &report.i2c {
        let chip = match f.chip_id {
            Some(0x60) => "BME280".to_string(),
            Some(0x58) => "BMP280 (no humidity)".to_string(),
            Some(x) => format!("unknown chip id {x:#04x}"),
            None => "-".to_string(),
        };
        println!(
            "  {} {:#04x}: {chip}  {}",
            f.bus.display(),
            f.address,
            f.reading.as_deref().or(f.error.as_deref()).unwrap_or("")
        );
    }
    println!("video devices: {} found", report.video.len());
    for v in &report.video {
        println!(
            "  {}: {}  {}",
            v.path.display(),
            v.description,
            v.frame.as_deref().or(v.error.as_deref()).unwrap_or("")
        );
    }
    for p in &report.problems {
        println!("problem: {p}");
    }
    Ok(())
}

/// The scene directory: as configured, or the bundled demo next to the sources
/// when the default is used from another working directory.
fn resolve_scene_dir(dir: &Path) -> PathBuf {
    if dir.exists() || dir.is_absolute() || dir != Path::new("scenes/demo") {
        return dir.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir)
}

fn init_logging(cfg: &Config) {
    let mut filter = std::env::var("RUST_LOG")
        .ok()
        .unwrap_or_else(|| cfg.log.level.clone());
    // ONNX Runtime logs every allocation at info: keep it at warn unless the
    // filter names it.
    if !filter.contains("ort") {
        filter.push_str(",ort=warn");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // Colour only on a terminal: journald and log files get plain text.
    use std::io::IsTerminal as _;
    let stderr = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let stderr = if cfg.log.format == "json" {
        stderr.json().boxed()
    } else {
        stderr.boxed()
    };
    // The same lines also go to the ring the field link's `logs` reads.
    let ring = crate::logring::RingLayer::new(crate::logring::LogRing::global().clone());
    // Repeated warnings (an overrunning microphone, a flood of bad commands)
    // are counted and summarised instead of written one by one.
    let flood = LOG_FLOOD.get_or_init(|| logflood::FloodGate::new(cfg.log.flood_limit()));
    tracing_subscriber::registry()
        .with(filter)
        .with(flood.clone())
        .with(stderr)
        .with(ring)
        .init();
    if let Err(e) = flood.spawn_summaries(flood.limit().window) {
        tracing::warn!(error = %e, "cannot start the log summary thread; summaries are written at exit only");
    }
}

/// The flood limit on the node's log lines, once logging is set up.
static LOG_FLOOD: std::sync::OnceLock<logflood::FloodGate> = std::sync::OnceLock::new();

/// Writes the summaries of repeated lines not yet reported (before exit).
fn flush_log_summaries() {
    if let Some(gate) = LOG_FLOOD.get() {
        gate.emit_summaries();
    }
}

/// How a run ended.
enum Stopped {
    /// The scene ended, or a signal stopped the node.
    Done,
    /// A technician asked for a reboot over the field link.
    ForReboot,
}

fn run(args: RunArgs) -> Result<Stopped> {
    let cfg = load_config(&args)?;
    init_logging(&cfg);
    if cfg.node.sensors == SensorSource::Hardware {
        return run_hardware(&cfg, args.output);
    }
    let scene_dir = resolve_scene_dir(&cfg.scene.dir);
    let scene =
        Scene::open(&scene_dir).with_context(|| format!("scene {}", scene_dir.display()))?;
    let (speed, paused) = match cfg.scene.speed {
        Speed::Factor(x) => (x, false),
        // As fast as possible: scene time on tokio's paused clock, which jumps
        // to the next timer whenever every task waits (see `clock`).
        Speed::Max => (1.0, true),
    };
    let runtime = if paused {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .context("starting the async runtime")?;
    let output = args.output;
    let wall = std::time::Instant::now();
    let summary = runtime.block_on(async {
        // The handlers go in before the first line is logged: whoever sees
        // that line may signal at once.
        let stop = stop_signal();
        let clock: Arc<dyn Clock> = Arc::new(ReplayClock::new(scene.meta.start_ms, speed));
        tracing::info!(
            scene = %scene.dir.display(),
            start = %format_rfc3339_ms(scene.meta.start_ms),
            duration_s = scene.duration_ms as f64 / 1000.0,
            speed = %match cfg.scene.speed { Speed::Max => "max".to_string(), Speed::Factor(x) => x.to_string() },
            data_dir = %cfg.node.data_dir.display(),
            "replaying scene"
        );
        let on_stored = Box::new(move |r: &EventRecord| print_event(output, r));
        crate::run_scene(&cfg, &scene, clock, stop, on_stored).await
    })?;
    finish(output, &summary, wall.elapsed().as_secs_f64())
}

/// Runs on the real devices until SIGINT or SIGTERM.
fn run_hardware(cfg: &Config, output: Output) -> Result<Stopped> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let wall = std::time::Instant::now();
    let summary = runtime.block_on(async {
        let stop = stop_signal();
        let clock: Arc<dyn Clock> = Arc::new(judged_clock(&cfg.node.data_dir));
        tracing::info!(data_dir = %cfg.node.data_dir.display(), "sampling the real sensors");
        let on_stored = Box::new(move |r: &EventRecord| print_event(output, r));
        crate::node::run_node(cfg, crate::node::Source::Hardware, clock, stop, on_stored).await
    });
    // Everything is stored by now. A driver call stuck on the blocking pool
    // (a camera or I2C transfer that never returns) must not keep the
    // process alive: give it a moment, then leave it behind.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    finish(output, &summary?, wall.elapsed().as_secs_f64())
}

/// The system clock judged against the time floor under `data_dir` (see
/// [`crate::timekeeping`]). A floor file that cannot be read is logged and
/// the build time stands in for it.
fn judged_clock(data_dir: &std::path::Path) -> crate::timekeeping::GuardedClock {
    use crate::timekeeping::{GuardedClock, SystemSources, TimeFloor};
    let build_ms = i64::try_from(crate::update::install::BUILD_UNIX_S)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let floor = TimeFloor::open(data_dir, build_ms).unwrap_or_else(|e| {
        tracing::error!(target: "clock", error = %e, "time floor unreadable: judging the clock against the build time only");
        TimeFloor::in_memory(data_dir, build_ms)
    });
    GuardedClock::new(SystemSources::default(), floor)
}

/// Prints the run's summary; fails if detected events could not be stored.
fn finish(output: Output, summary: &crate::RunSummary, wall_s: f64) -> Result<Stopped> {
    flush_log_summaries();
    match output {
        Output::Jsonl => {
            let mut v = serde_json::to_value(summary)?;
            v["wall_s"] = serde_json::json!(wall_s);
            println!("{}", serde_json::json!({ "summary": v }));
        }
        Output::Text => print_summary(summary, wall_s),
    }
    if summary.unstored > 0 {
        anyhow::bail!("{} detected events could not be stored", summary.unstored);
    }
    Ok(if summary.reboot_requested {
        Stopped::ForReboot
    } else {
        Stopped::Done
    })
}

/// Installs the SIGINT and SIGTERM handlers now, and returns what completes
/// on the first of them. The handlers must be in place before the node
/// starts: a signal that arrives while the model loads or the store opens
/// is then kept for the node to stop on once it runs, instead of killing
/// the process with the default action. Call inside the runtime.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt());
        let term = signal(SignalKind::terminate());
        async move {
            match (int, term) {
                (Ok(mut int), Ok(mut term)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                (Ok(mut int), Err(e)) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the node cleanly");
                    int.recv().await;
                }
                (Err(e), Ok(mut term)) => {
                    tracing::warn!(error = %e, "cannot listen for SIGINT; only SIGTERM stops the node cleanly");
                    term.recv().await;
                }
                (Err(e), Err(_)) => {
                    tracing::warn!(error = %e, "cannot listen for SIGINT or SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn fmt_score(p: Option<messages::Permille>) -> String {
    p.map_or("-".into(), |p| format!("{:.2}", p.fraction()))
}

fn print_event(output: Output, r: &EventRecord) {
    match output {
        Output::Jsonl => {
            let line = serde_json::json!({ "stored": EventJson::from(r) });
            println!("{line}");
        }
        Output::Text => println!(
            "event #{:<5} {}  {:>5.1}s  {:<17} conf {:.2}  audio {} camera {} climate {}",
            r.id,
            format_rfc3339_ms(r.start_ms),
            f64::from(r.duration_ms) / 1000.0,
            r.class.as_str(),
            r.confidence.fraction(),
            fmt_score(r.scores.audio),
            fmt_score(r.scores.camera),
            fmt_score(r.scores.climate),
        ),
    }
}

fn print_summary(s: &crate::RunSummary, wall_s: f64) {
    println!("--");
    println!(
        "replayed {:.1} s of scene in {:.1} s ({:.0}x real time)",
        s.scene_ms as f64 / 1000.0,
        wall_s,
        s.scene_ms as f64 / 1000.0 / wall_s.max(1e-3)
    );
    let classes: Vec<String> = s
        .stored_by_class
        .iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    println!(
        "stored {} events ({}); {} in the store",
        s.stored,
        classes.join(", "),
        s.store_total
    );
    if s.unstored > 0 {
        println!("NOT STORED: {} events (see the log)", s.unstored);
    }
    if let Some(c) = &s.clock {
        let untrusted: i64 = c.untrusted_spans.iter().map(|u| u.to_ms - u.from_ms).sum();
        println!(
            "clock: {}{}; {} steps (largest {} ms); {} untrusted spans ({:.1} s)",
            c.quality,
            c.uncertainty_ms
                .map(|u| format!(" within {u} ms"))
                .unwrap_or_default(),
            c.steps,
            c.largest_step_ms,
            c.untrusted_spans.len(),
            untrusted as f64 / 1000.0
        );
        if let Some(r) = c.rtc {
            println!(
                "rtc: {}{}",
                format_rfc3339_ms(r.unix_ms),
                r.cell_mv
                    .map(|mv| format!(", backup cell {:.2} V", f64::from(mv) / 1000.0))
                    .unwrap_or_default()
            );
        }
    }
    if let Some(g) = &s.gnss {
        println!(
            "gnss (gpsd): {} fixes, {} times offered to the clock, {} connections ({} failed), {} unreadable lines",
            g.fixes, g.offers, g.connects, g.connect_failures, g.bad_lines
        );
    }
    if let Some(q) = &s.store_quarantined {
        println!("a corrupt store was moved aside to {}", q.display());
    }
    println!(
        "sensors: audio {:.0} s, camera {} frames ({} skipped by power policy), climate {} readings{}",
        s.audio_s,
        s.camera_frames,
        s.camera_skipped,
        s.climate_readings,
        if s.absent_sensors.is_empty() {
            String::new()
        } else {
            format!("; absent: {}", s.absent_sensors.join(", "))
        }
    );
    let d = &s.duty;
    if *d != crate::tasks::DutyReport::default() {
        println!(
            "duty cycle: microphone stopped {} times ({:.0} s); camera on demand: {} requests from audio, {} from the wake line, {} switch-ons; wake line: {} rises",
            d.audio_pauses,
            d.audio_paused_s,
            d.camera_requests_audio,
            d.camera_requests_wake_line,
            d.camera_demand_wakes,
            d.wake_line_triggers
        );
    }
    let model = match s.sensors.get("model").map(|st| &st.health) {
        Some(crate::sensors::health::Health::Ok) => "fusion model",
        _ => "triggers only",
    };
    println!(
        "classification: {model}; {} bursts ({} skipped by power policy, {} failed); {} events not stored (class excluded); {} background by the triggers alone (not stored); {} unknown (below their class threshold, or resting on the climate), {} of them background to the triggers (not stored); {} cut at max_event_ms; {} joined to the previous event of their class; {} heat rises put down to the sun (not stored)",
        s.bursts,
        s.bursts_skipped,
        s.bursts_failed,
        s.events_excluded,
        s.background_dropped,
        s.events_uncertain,
        s.uncertain_background,
        s.events_cut_at_max,
        s.events_joined,
        s.sun_heat_rises
    );
    for (name, st) in &s.sensors {
        if st.health != crate::sensors::health::Health::Ok || !st.errors.is_empty() {
            let errors: Vec<String> = st.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let why = match &st.health {
                crate::sensors::health::Health::Ok => String::new(),
                crate::sensors::health::Health::Degraded { reason }
                | crate::sensors::health::Health::Absent { reason } => format!(" ({reason})"),
            };
            println!(
                "sensor {name}: {}{why}; outages {}; errors: {}",
                st.health.as_str(),
                st.outages,
                if errors.is_empty() {
                    "none".into()
                } else {
                    errors.join(", ")
                }
            );
        }
    }
    println!(
        "power: {} mode, battery {:.0}%",
        s.power_mode,
        s.battery_soc * 100.0
    );
    if let Some(l) = &s.boot.last_sleep {
        println!(
            "start: {}; last sleep: {}, {} s slept of {} s planned, woke by {}",
            s.boot.cause.as_str(),
            l.reason.as_str(),
            l.slept_s,
            l.planned_s,
            l.wake.as_str()
        );
    }
    if let Some(z) = &s.sleep {
        match &z.error {
            None => println!(
                "deep sleep: {} for {} s (until {}, {} bound), halted ({})",
                z.reason.as_str(),
                z.planned_s,
                format_rfc3339_ms(z.planned_wake_ms),
                z.bound.as_str(),
                z.halt
            ),
            Some(e) => println!("deep sleep: {} called, NOT halted: {e}", z.reason.as_str()),
        }
    }
    if let Some(u) = &s.uplink {
        println!(
            "uplink: {} delivered, {} handed to a link and not delivered (sent again), {} left in the outbox",
            u.delivered, u.not_delivered, u.left_in_outbox
        );
        if u.sbd_refused + u.sbd_quarantine_held > 0 {
            println!(
                "satellite: {} messages refused for good by the gateway; {} items quarantined in this run, {} held (kept in the outbox, sent by MQTT only)",
                u.sbd_refused, u.sbd_quarantined, u.sbd_quarantine_held
            );
        }
    }
    if s.updates_installed + s.updates_refused + s.updates_deferred > 0 {
        println!(
            "updates: {} installed, {} refused or rolled back, {} deferred",
            s.updates_installed, s.updates_refused, s.updates_deferred
        );
        for (why, n) in &s.updates_refused_by {
            println!("  {why}: {n}");
        }
    }
    if let Some(l) = &s.update_last {
        println!(
            "last update: {} {} version {}: {} ({})",
            l.kind, l.name, l.version, l.result, l.reason
        );
    }
}
