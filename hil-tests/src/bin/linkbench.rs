//! `linkbench`: the field link's throughput over an emulated serial line.
//!
//! Starts the real `fieldnode` serving `[fieldlink] serial` on the node's
//! end of a [`Shaper`] (a relay between two pty pairs that carries bytes
//! at the line's real 8N1 rate), on a store seeded with `--events` events,
//! and runs the real `field-tools link` on the technician's end:
//!
//! - `field-tools link --port P --baud B events` (every event held, as
//!   JSON lines, to a file);
//! - `field-tools link --port P --baud B --key K --json push FILE` of a
//!   signed model bundle (the committed 4-bit fusion model, about 290 KB).
//!
//! For each baud rate it reports the wall time of each command, the
//! payload (the events' stored encoding, the bundle's bytes), the bytes on
//! the wire each way as the relay counted them, and, from the relay's
//! frame log, the data phase alone (from the first chunk or batch to the
//! last): rates as a fraction of the line rate (`baud / 10` bytes/s), wire
//! bytes per event, protocol efficiency (payload ÷ wire bytes the way the
//! data goes), and per chunk or batch its line time and the idle time on
//! the line after it.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/tgt cargo build --release -p hil-tests --bin linkbench -p node --bin fieldnode -p field-tools --bin field-tools
//! /tmp/tgt/release/linkbench            # a table; --json for one JSON object
//! ```
//!
//! `fieldnode` and `field-tools` are looked for next to `linkbench`
//! (`--fieldnode`, `--field-tools` name them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use hil_tests::linkshaper::{Direction, DirectionStats, FrameMark, Shaper};
use messages::EventRecord;
use models::bundle::keys::{generate, secret_to_text};
use models::bundle::{Bundle, Kind, Metadata, ModelTarget, Role, Root, SelfTest, Target};
use serde_json::{Value, json};

/// The repository (the committed model, the demo scene).
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Frames at least this long (wire bytes) are data: bundle chunks, event
/// batches. Requests and short replies are far below it.
const DATA_FRAME: u64 = 512;

/// Bound on waiting for the node or a command (then the run fails).
const LIMIT: Duration = Duration::from_secs(600);

#[derive(Parser, Debug)]
#[command(about = "Field-link throughput over an emulated serial line")]
struct Args {
    /// Baud rates to measure (8N1).
    #[arg(long, value_delimiter = ',', default_value = "115200,921600")]
    baud: Vec<u32>,
    /// Events in the node's store.
    #[arg(long, default_value_t = 2000)]
    events: usize,
    /// The `fieldnode` program (default: next to this one).
    #[arg(long)]
    fieldnode: Option<PathBuf>,
    /// The `field-tools` program (default: next to this one).
    #[arg(long)]
    field_tools: Option<PathBuf>,
    /// Keep the working directory (node logs, exported events) here.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// One JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// `name` next to this program, or `hil-name` (the copies built by
/// `hil-tests`).
fn sibling(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().context("no directory for this program")?;
    for n in [name.to_string(), format!("hil-{name}")] {
        let p = dir.join(&n);
        if p.exists() {
            return Ok(p);
        }
    }
    bail!(
        "no {name} next to {}: build it (cargo build --release -p node --bin fieldnode -p field-tools --bin field-tools) or name it with --{name}",
        me.display()
    )
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The programs and the files every run shares.
struct Setup {
    fieldnode: PathBuf,
    field_tools: PathBuf,
    /// The seeded data directory, copied for each run.
    seed: PathBuf,
    root: PathBuf,
    technician_key: PathBuf,
    technician_public: String,
    bundle: PathBuf,
    bundle_len: u64,
    events: usize,
    /// Bytes of the events' stored encoding (`messages::encode_event`).
    event_bytes: u64,
}

/// Runs `c`, failing with its error output.
fn run_ok(c: &mut Command, what: &str) -> Result<std::process::Output> {
    let o = c.output().with_context(|| format!("running {what}"))?;
    if !o.status.success() {
        bail!(
            "{what} failed ({}):\n{}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    Ok(o)
}

/// Self-test vectors of the committed model, from `fieldnode update
/// selftests`.
fn self_tests(fieldnode: &Path, manifest: &Path, count: usize) -> Result<Vec<SelfTest>> {
    let o = run_ok(
        Command::new(fieldnode)
            .args(["update", "selftests", "--manifest"])
            .arg(manifest)
            .arg("--count")
            .arg(count.to_string()),
        "fieldnode update selftests",
    )?;
    let v: Vec<Value> = serde_json::from_slice(&o.stdout)?;
    v.into_iter()
        .map(|t| {
            Ok(SelfTest {
                inputs: serde_json::from_value(t["inputs"].clone())?,
                expected_class: t["expected_class"].as_u64().context("expected_class")? as u8,
                probabilities: serde_json::from_value(t["probabilities"].clone())?,
                tolerance: t["tolerance"].as_f64().context("tolerance")? as f32,
            })
        })
        .collect()
}

/// The committed model as a signed bundle of the next version (bundle
/// keys 10 and 11), as the update tests build it.
fn model_bundle(fieldnode: &Path) -> Result<Vec<u8>> {
    let manifest = Path::new(REPO).join("models/fusion/fusion.int4.manifest.toml");
    let text = std::fs::read_to_string(&manifest)?;
    let base: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("version = ")?.trim().parse().ok())
        .context("no version in the model's manifest")?;
    let version = base + 1;
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("version = ") {
                format!("version = {version}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let payload = std::fs::read(Path::new(REPO).join("models/fusion/fusion.int4.onnx"))?;
    let meta = Metadata {
        kind: Kind::Model,
        name: "fusion".into(),
        version,
        created_s: now_s() - 60,
        expires_s: now_s() + 86_400,
        target: Target {
            min_firmware: [0, 0, 0],
            model: Some(ModelTarget {
                family: "fusion".into(),
                features: "fieldnode-features-2".into(),
                classes: vec![
                    "wildlife".into(),
                    "machinery_anomaly".into(),
                    "human_activity".into(),
                    "background".into(),
                ],
            }),
        },
        payload_len: 0,
        payload_sha256: [0; 32],
        quantization: "int4".into(),
        latency_p99_us: 100,
        self_tests: self_tests(fieldnode, &manifest, 6)?,
        manifest: Some(text),
    };
    let mut b = Bundle::new(meta, payload);
    for k in [10u8, 11] {
        b.sign(&generate([k; 32]));
    }
    Ok(b.to_bytes()?)
}

/// The trust root: root keys 1 and 2, bundle keys 10 and 11.
fn write_root(path: &Path) -> Result<()> {
    let role = |keys: &[u8], threshold| Role {
        keys: keys
            .iter()
            .map(|&n| generate([n; 32]).verifying_key().to_bytes())
            .collect(),
        threshold,
    };
    let root = Root {
        version: 1,
        expires_s: now_s() + 86_400,
        root: role(&[1, 2], 2),
        bundles: role(&[10, 11], 2),
    };
    std::fs::write(path, root.sign(&[&generate([1; 32]), &generate([2; 32])])?)?;
    Ok(())
}

/// A node configuration without sensors (nothing new is stored while the
/// link is measured); `link` is its `[fieldlink]` body.
fn node_config(link: &str, root: &Path) -> String {
    format!(
        "[node]\nid = \"bench\"\n[audio]\nenabled = false\n[camera]\nenabled = false\n[climate]\nenabled = false\n\n[fieldlink]\n{link}\n[update]\nroot = \"{}\"\nscan_interval_ms = 60000\ntrial_bursts = 1\n\n[power.simulation]\ninitial_soc = 0.9\n",
        root.display()
    )
}

/// Seeds `dir` with `n` events: the demo scene is replayed once by the
/// real node, and its events are repeated (new ids, one every 30 s up to
/// now) into the store, as the node stores them.
fn seed_store(fieldnode: &Path, work: &Path, dir: &Path, n: usize) -> Result<(usize, u64)> {
    let templates_dir = work.join("templates");
    let config = work.join("templates.toml");
    std::fs::write(&config, "[node]\nid = \"bench\"\n")?;
    run_ok(
        Command::new(fieldnode)
            .args([
                "run",
                "--exit-at-end",
                "--speed",
                "max",
                "--output",
                "jsonl",
            ])
            .arg("--scene")
            .arg(Path::new(REPO).join("scenes/demo"))
            .arg("--data-dir")
            .arg(&templates_dir)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "error"),
        "fieldnode run on the demo scene",
    )?;
    let templates: Vec<EventRecord> = field_tools::events::read_events(&templates_dir, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .events;
    if templates.is_empty() {
        bail!("the demo scene gave no event to copy");
    }
    let (store, _) = uplink::EventStore::open(&dir.join("store"), &uplink::StoreConfig::default())
        .map_err(|e| anyhow::anyhow!("opening the store: {e}"))?;
    let now_ms = now_s() as i64 * 1000;
    let mut stored = 0usize;
    let mut bytes = 0u64;
    while stored < n {
        let batch = (n - stored).min(500);
        let mut i = stored;
        let events = store
            .append_batch(batch, |id| {
                i += 1;
                let mut e = templates[i % templates.len()].clone();
                e.id = id;
                e.start_ms = now_ms - (n + 1 - i) as i64 * 30_000;
                e
            })
            .map_err(|e| anyhow::anyhow!("storing events: {e}"))?;
        for e in &events {
            bytes += messages::encode_event(e).len() as u64;
        }
        stored += events.len();
        if events.len() < batch {
            bail!("the store kept {} of {batch} events", events.len());
        }
    }
    store
        .flush_durable()
        .map_err(|e| anyhow::anyhow!("syncing the store: {e}"))?;
    Ok((stored, bytes))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The running node, killed if the run fails.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(setup: &Setup, data: &Path, config: &Path, log: PathBuf) -> Result<Node> {
        let child = Command::new(&setup.fieldnode)
            // At the scene's own pace: the node's clock stays near the
            // scene's time (at `max` it races ahead of the trust root's
            // validity once the sensors are off).
            .args(["run", "--speed", "1", "--output", "jsonl", "--scene"])
            .arg(Path::new(REPO).join("scenes/demo"))
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let mut node = Node { child, log };
        node.wait_log("field link listening on a serial device")?;
        Ok(node)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log(&mut self, needle: &str) -> Result<()> {
        let start = Instant::now();
        while !self.log_text().contains(needle) {
            if let Some(status) = self.child.try_wait()? {
                bail!("fieldnode exited ({status}):\n{}", self.log_text());
            }
            if start.elapsed() > LIMIT {
                bail!("no `{needle}` in the node's log:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn stop(mut self) -> Result<()> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )?;
        let start = Instant::now();
        while self.child.try_wait()?.is_none() {
            if start.elapsed() > LIMIT {
                bail!("fieldnode did not stop:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One command measured: what it moved, in how long, and its frames.
struct Measured {
    wall: Duration,
    payload: u64,
    /// The direction the payload travels, and the other.
    data: DirectionStats,
    back: DirectionStats,
    /// The data phase: from the first data frame's first byte to the end
    /// of the last data frame (export) or the reply to the last chunk
    /// (push).
    phase: Duration,
    /// Data frames (batches, chunks) and their wire bytes.
    units: Vec<FrameMark>,
    /// Frames the other way during the phase (replies, credit grants).
    back_in_phase: Vec<FrameMark>,
}

/// When a frame's first byte started on the line.
fn started(line: &Shaper, f: &FrameMark) -> Instant {
    f.delivered - line.line_time(f.wire_len)
}

fn non_empty(s: &DirectionStats) -> Vec<FrameMark> {
    s.frames
        .iter()
        .copied()
        .filter(|f| f.wire_len > 1)
        .collect()
}

/// The export: batches from the first data frame to the stream's end.
fn export_phase(line: &Shaper, data: &DirectionStats, back: &DirectionStats) -> Result<Measured> {
    let frames = non_empty(data);
    let first = frames
        .iter()
        .position(|f| f.wire_len >= DATA_FRAME)
        .context("no event batch on the wire")?;
    let units = frames[first..].to_vec();
    let begin = started(line, &units[0]);
    let end = units.last().map(|f| f.delivered).unwrap_or(begin);
    let back_in_phase = non_empty(back)
        .into_iter()
        .filter(|f| f.delivered >= begin && f.delivered <= end)
        .collect();
    Ok(Measured {
        wall: Duration::ZERO,
        payload: 0,
        data: data.clone(),
        back: back.clone(),
        phase: end - begin,
        units,
        back_in_phase,
    })
}

/// The push: chunks from the first data frame to the last one before
/// `Commit` (the last frame to the node), ended by the node's reply.
fn push_phase(line: &Shaper, data: &DirectionStats, back: &DirectionStats) -> Result<Measured> {
    let frames = non_empty(data);
    let first = frames
        .iter()
        .position(|f| f.wire_len >= DATA_FRAME)
        .context("no bundle chunk on the wire")?;
    if frames.len() < first + 2 {
        bail!("no Commit after the chunks");
    }
    let units = frames[first..frames.len() - 1].to_vec();
    let begin = started(line, &units[0]);
    let last = units.last().map(|f| f.delivered).unwrap_or(begin);
    let replies = non_empty(back);
    let end = replies
        .iter()
        .map(|f| f.delivered)
        .find(|&t| t >= last)
        .context("no reply to the last chunk")?;
    let back_in_phase = replies
        .into_iter()
        .filter(|f| f.delivered >= begin && f.delivered <= end)
        .collect();
    Ok(Measured {
        wall: Duration::ZERO,
        payload: 0,
        data: data.clone(),
        back: back.clone(),
        phase: end - begin,
        units,
        back_in_phase,
    })
}

/// Runs the export and the push at `baud` on a fresh copy of the store.
fn run_baud(setup: &Setup, work: &Path, baud: u32) -> Result<Value> {
    let line = Shaper::start(baud)?;
    let dir = work.join(format!("b{baud}"));
    let data = dir.join("data");
    copy_dir(&setup.seed, &data)?;
    let config = dir.join("fieldnode.toml");
    std::fs::write(
        &config,
        node_config(
            &format!(
                "serial = \"{}\"\nbaud = {baud}\ntechnician_keys = [\"{}\"]\n",
                line.node_end().display(),
                setup.technician_public
            ),
            &setup.root,
        ),
    )?;
    let node = Node::start(setup, &data, &config, dir.join("node.log"))?;
    let port = line.technician_end().to_path_buf();
    let link = || {
        let mut c = Command::new(&setup.field_tools);
        c.arg("link")
            .arg("--port")
            .arg(&port)
            .arg("--baud")
            .arg(baud.to_string());
        c
    };
    // Whatever the node wrote when it opened its port.
    std::thread::sleep(Duration::from_millis(200));
    line.take(Direction::ToNode);
    line.take(Direction::ToTechnician);

    // The export.
    let out_file = dir.join("events.jsonl");
    let t0 = Instant::now();
    let o = link()
        .arg("events")
        .stdout(std::fs::File::create(&out_file)?)
        .output()?;
    let wall = t0.elapsed();
    if !o.status.success() {
        bail!(
            "link events failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let exported = std::fs::read_to_string(&out_file)?.lines().count();
    if exported != setup.events {
        bail!("exported {exported} events of {}", setup.events);
    }
    let to_node = line.take(Direction::ToNode);
    let to_tech = line.take(Direction::ToTechnician);
    let mut export = export_phase(&line, &to_tech, &to_node)?;
    export.wall = wall;
    export.payload = setup.event_bytes;

    // The push.
    std::thread::sleep(Duration::from_millis(200));
    line.take(Direction::ToNode);
    line.take(Direction::ToTechnician);
    let t0 = Instant::now();
    let o = link()
        .arg("--key")
        .arg(&setup.technician_key)
        .args(["--json", "push"])
        .arg(&setup.bundle)
        .output()?;
    let wall = t0.elapsed();
    let pushed: Value = serde_json::from_slice(&o.stdout).with_context(|| {
        format!(
            "link push ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
    })?;
    if pushed["sent"].as_u64() != Some(setup.bundle_len) {
        bail!(
            "the push sent {} of {} bytes",
            pushed["sent"],
            setup.bundle_len
        );
    }
    let to_node = line.take(Direction::ToNode);
    let to_tech = line.take(Direction::ToTechnician);
    let mut push = push_phase(&line, &to_node, &to_tech)?;
    push.wall = wall;
    push.payload = setup.bundle_len;
    node.stop()?;

    let events = setup.events as u64;
    let mut export_json = report(&line, &export);
    export_json["events"] = json!(events);
    export_json["wire_bytes_per_event"] = json!(round(export.data.bytes as f64 / events as f64, 2));
    export_json["wire_bytes_per_event_to_node"] =
        json!(round(export.back.bytes as f64 / events as f64, 3));
    export_json["stored_bytes_per_event"] =
        json!(round(setup.event_bytes as f64 / events as f64, 2));
    export_json["events_per_batch"] = json!(round(events as f64 / export.units.len() as f64, 1));
    let mut push_json = report(&line, &push);
    push_json["result"] = pushed["result"].clone();
    push_json["exit_code"] = json!(o.status.code());
    Ok(json!({
        "baud": baud,
        "line_bytes_per_s": line.bytes_per_second(),
        "export": export_json,
        "push": push_json,
    }))
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn ms(d: Duration) -> f64 {
    round(d.as_secs_f64() * 1000.0, 1)
}

/// The figures of one command.
fn report(line: &Shaper, m: &Measured) -> Value {
    let rate = line.bytes_per_second();
    let frac = |bytes: u64, d: Duration| round(bytes as f64 / d.as_secs_f64() / rate, 4);
    let n = m.units.len();
    let unit_bytes: u64 = m.units.iter().map(|f| f.wire_len).sum();
    // Mean time from one data frame's delivery to the next, its line time,
    // and what is left: the line idle between data frames.
    let cycle = if n > 1 {
        (m.units[n - 1].delivered - m.units[0].delivered) / (n as u32 - 1)
    } else {
        Duration::ZERO
    };
    let unit_line = line.line_time(unit_bytes / n.max(1) as u64);
    let busy = line.line_time(unit_bytes);
    // The line idle before each data frame after the first: from the end
    // of the previous one to this one's first byte.
    let mut gaps: Vec<f64> = m
        .units
        .windows(2)
        .map(|w| {
            started(line, &w[1])
                .saturating_duration_since(w[0].delivered)
                .as_secs_f64()
                * 1000.0
        })
        .collect();
    gaps.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        gaps.get(((gaps.len().max(1) - 1) as f64 * q).round() as usize)
            .map(|g| round(*g, 2))
            .unwrap_or(0.0)
    };
    let idle_total: f64 = gaps.iter().sum();
    let gaps_over_1ms = gaps.iter().filter(|&&g| g > 1.0).count();
    json!({
        "payload_bytes": m.payload,
        "wall_ms": ms(m.wall),
        "rate_of_line_wall": frac(m.payload, m.wall),
        "phase_ms": ms(m.phase),
        "rate_of_line_phase": frac(m.payload, m.phase),
        "setup_ms": ms(m.wall.saturating_sub(m.phase)),
        "wire_bytes_data_direction": m.data.bytes,
        "wire_bytes_other_direction": m.back.bytes,
        "frames_data_direction": non_empty(&m.data).len(),
        "frames_other_direction": non_empty(&m.back).len(),
        "efficiency": round(m.payload as f64 / m.data.bytes as f64, 4),
        "data_frames": n,
        "data_frame_wire_bytes_mean": round(unit_bytes as f64 / n.max(1) as f64, 1),
        "frames_other_direction_in_phase": m.back_in_phase.len(),
        "cycle_ms_mean": ms(cycle),
        "line_ms_per_data_frame": ms(unit_line),
        "idle_ms_per_data_frame": ms(cycle.saturating_sub(unit_line)),
        "line_busy_in_phase": round(busy.as_secs_f64() / m.phase.as_secs_f64(), 4),
        "idle_gap_ms_p10": pick(0.1),
        "idle_gap_ms_median": pick(0.5),
        "idle_gap_ms_p90": pick(0.9),
        "idle_gap_ms_max": pick(1.0),
        "idle_gaps_over_1ms": gaps_over_1ms,
        "idle_ms_total": round(idle_total, 1),
    })
}

fn table(results: &[Value], setup: &Setup) {
    println!(
        "field link over an emulated 8N1 serial line: {} events ({} bytes stored), a {}-byte model bundle",
        setup.events, setup.event_bytes, setup.bundle_len
    );
    println!();
    println!(
        "{:>7} {:>6} {:>9} {:>9} {:>8} {:>9} {:>6} {:>8} {:>7} {:>6} {:>8} {:>8}",
        "baud",
        "what",
        "wall s",
        "%line",
        "phase s",
        "%line(ph)",
        "busy",
        "wire B",
        "eff.",
        "frames",
        "line ms",
        "idle ms"
    );
    for r in results {
        for what in ["export", "push"] {
            let m = &r[what];
            println!(
                "{:>7} {:>6} {:>9.2} {:>8.1}% {:>8.2} {:>8.1}% {:>5.1}% {:>8} {:>6.1}% {:>6} {:>8.1} {:>8.1}",
                r["baud"],
                what,
                m["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
                m["rate_of_line_wall"].as_f64().unwrap_or(0.0) * 100.0,
                m["phase_ms"].as_f64().unwrap_or(0.0) / 1000.0,
                m["rate_of_line_phase"].as_f64().unwrap_or(0.0) * 100.0,
                m["line_busy_in_phase"].as_f64().unwrap_or(0.0) * 100.0,
                m["wire_bytes_data_direction"],
                m["efficiency"].as_f64().unwrap_or(0.0) * 100.0,
                m["data_frames"],
                m["line_ms_per_data_frame"].as_f64().unwrap_or(0.0),
                m["idle_ms_per_data_frame"].as_f64().unwrap_or(0.0),
            );
        }
        println!(
            "{:>7} export: {} wire bytes per event to the technician ({} stored), {} to the node; {} events per batch",
            "",
            r["export"]["wire_bytes_per_event"],
            r["export"]["stored_bytes_per_event"],
            r["export"]["wire_bytes_per_event_to_node"],
            r["export"]["events_per_batch"],
        );
        println!(
            "{:>7} push: result {}, {} frames to the node, {} back",
            "",
            r["push"]["result"],
            r["push"]["frames_data_direction"],
            r["push"]["frames_other_direction"],
        );
        for what in ["export", "push"] {
            let m = &r[what];
            println!(
                "{:>7} {what} idle line before a data frame: median {} ms, p90 {} ms, max {} ms; {} of {} gaps over 1 ms; {} ms in all",
                "",
                m["idle_gap_ms_median"],
                m["idle_gap_ms_p90"],
                m["idle_gap_ms_max"],
                m["idle_gaps_over_1ms"],
                m["data_frames"].as_u64().unwrap_or(1).saturating_sub(1),
                m["idle_ms_total"],
            );
        }
    }
    println!();
    println!(
        "%line: payload bytes/s over baud/10; wall: the whole command (start, hello, authentication, commit); phase: first data frame to the last (push: to the reply to the last chunk)"
    );
    println!(
        "busy: the share of the phase the line carried data frames; eff.: payload / wire bytes the way the data goes (events: their stored encoding, which is a little larger than their encoding in a batch); line ms / idle ms: per data frame (batch, chunk), its time on the line and the rest of the time to the next"
    );
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linkbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let fieldnode = match args.fieldnode {
        Some(p) => p,
        None => sibling("fieldnode")?,
    };
    let field_tools = match args.field_tools {
        Some(p) => p,
        None => sibling("field-tools")?,
    };
    let tmp = tempfile::tempdir()?;
    let work = match &args.keep {
        Some(p) => {
            std::fs::create_dir_all(p)?;
            p.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let root = work.join("root.fnr");
    write_root(&root)?;
    let technician = generate([40; 32]);
    let technician_key = work.join("technician.key");
    std::fs::write(&technician_key, secret_to_text(&technician))?;
    let bundle_bytes = model_bundle(&fieldnode)?;
    let bundle = work.join("fusion-next.fnb");
    std::fs::write(&bundle, &bundle_bytes)?;
    let seed = work.join("seed");
    let (events, event_bytes) = seed_store(&fieldnode, &work, &seed, args.events)?;
    let setup = Setup {
        fieldnode,
        field_tools,
        seed,
        root,
        technician_key,
        technician_public: hex(technician.verifying_key().as_bytes()),
        bundle,
        bundle_len: bundle_bytes.len() as u64,
        events,
        event_bytes,
    };
    let mut results = Vec::new();
    for &baud in &args.baud {
        if !args.json {
            eprintln!("linkbench: {baud} baud ...");
        }
        results.push(run_baud(&setup, &work, baud).with_context(|| format!("at {baud} baud"))?);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "events": setup.events,
                "event_bytes_stored": setup.event_bytes,
                "bundle_bytes": setup.bundle_len,
                "runs": results,
            }))?
        );
    } else {
        table(&results, &setup);
    }
    Ok(())
}
