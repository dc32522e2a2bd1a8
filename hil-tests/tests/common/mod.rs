//! What the system tests share: the two programs and how to call them.

#![allow(dead_code)] // each test file uses a part

pub mod pull;
pub mod update;
pub mod uplink;

use std::path::Path;
use std::process::Command;

/// The `fieldnode` program (built in this package as `hil-fieldnode`).
pub const NODE: &str = env!("CARGO_BIN_EXE_hil-fieldnode");

/// Writes a scene with `scenegen` (`args` as on its command line) to `out`.
pub fn scenegen(out: &Path, args: &[&str]) {
    let st = Command::new(env!("CARGO_BIN_EXE_scenegen"))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "scenegen {args:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// `fieldnode run` on `scene` into `data`, to the end of the scene, printing
/// JSON lines, with `extra` options.
pub fn node_run(scene: &Path, data: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(NODE);
    c.args(["run", "--exit-at-end", "--output", "jsonl", "--scene"])
        .arg(scene)
        .arg("--data-dir")
        .arg(data)
        .args(extra);
    c
}

/// A numeric environment variable, or `default` when unset or not a number.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: a tiny seeded generator for kill and cut times.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// The loss mode of the next power cut, drawn from `rng`: how much of what
/// was not durable survives (up to 47 writes), and how.
pub fn cut_mode(rng: &mut Rng) -> hil_tests::powerfs::CutMode {
    use hil_tests::powerfs::CutMode;
    let k = rng.below(48) as usize;
    match rng.below(4) {
        0 => CutMode::DropAll,
        1 => CutMode::Prefix(k),
        2 => CutMode::TornHalf(k),
        _ => CutMode::Garbage4k(k),
    }
}

/// Lets `child` (started by [`spawn_collecting`] on the mounted power-loss
/// filesystem `m`) run until the filesystem's own cut at a sync call, until
/// `cut_after` (a cut at that moment), until `limit`, or until it exits;
/// then cuts the power, kills the node, unmounts, and returns the events it
/// acknowledged. A node that exits on its own before the cut must have
/// succeeded (it resumed on what the previous cut left); `what` names the
/// cut in the failure message, with the node's error output from `log`.
pub fn run_until_cut(
    m: hil_tests::powerfs::Mounted,
    mut child: std::process::Child,
    reader: std::thread::JoinHandle<Vec<messages::EventJson>>,
    cut_after: Option<std::time::Duration>,
    limit: std::time::Duration,
    log: &Path,
    what: &str,
) -> Vec<messages::EventJson> {
    use std::sync::atomic::Ordering;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success() || m.control.dead.load(Ordering::SeqCst),
                "{what}: the node failed to run after the previous cut: {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            break;
        }
        if m.control.dead.load(Ordering::SeqCst)
            || cut_after.is_some_and(|c| started.elapsed() >= c)
            || started.elapsed() > limit
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // The power is off: nothing more reaches the disk. Kill the node.
    m.cutter.cut();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    let stored = reader.join().unwrap();
    m.unmount().unwrap();
    stored
}

/// Waits for `child` to exit; past `limit` it is killed and the test fails
/// with what the program wrote to `log`.
pub fn wait_or_fail(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    log: &Path,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "fieldnode did not exit within {limit:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether this machine can mount FUSE filesystems. Without `/dev/fuse` the
/// power-cut tests say so loudly and do nothing (a container without FUSE);
/// `HIL_REQUIRE_FUSE=1` makes that a failure instead.
pub fn fuse_available() -> bool {
    if Path::new("/dev/fuse").exists() {
        return true;
    }
    assert!(
        std::env::var_os("HIL_REQUIRE_FUSE").is_none(),
        "HIL_REQUIRE_FUSE is set but /dev/fuse does not exist"
    );
    eprintln!("SKIPPED: /dev/fuse does not exist on this machine; the power-cut tests did not run");
    false
}

/// Starts `fieldnode run` at `--speed max` on `scene` into `data` (logs off,
/// `extra` options after the others), and a thread collecting the events it reports as stored. A line cut short
/// by a kill is not an acknowledgement and is ignored. The node's error output
/// goes to `stderr_log` (outside the data directory), for the failure message.
pub fn spawn_collecting(
    scene: &Path,
    data: &Path,
    stderr_log: &Path,
    extra: &[&std::ffi::OsStr],
) -> (
    std::process::Child,
    std::thread::JoinHandle<Vec<messages::EventJson>>,
) {
    use std::io::{BufRead, BufReader};
    let mut child = node_run(scene, data, &["--speed", "max"])
        .args(extra)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(stderr_log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
            .filter_map(|v| v.get("stored").cloned())
            .filter_map(|v| serde_json::from_value::<messages::EventJson>(v).ok())
            .collect()
    });
    (child, reader)
}

/// The events stored in `data` and their score against `scene`'s labels
/// (`seconds` of scene).
pub fn score_events(
    scene: &Path,
    data: &Path,
    seconds: u64,
) -> (Vec<messages::EventRecord>, field_tools::score::ScoreReport) {
    use field_tools::{events, score};
    let labels = score::read_labels(&scene.join("labels.csv")).unwrap();
    let read = events::read_events(data, None).unwrap();
    assert!(read.bad.is_empty(), "{:?}", read.bad);
    let text = std::fs::read_to_string(scene.join("scene.toml")).unwrap();
    let start = text
        .lines()
        .find_map(|l| l.strip_prefix("start = "))
        .unwrap()
        .trim_matches('"');
    let start_ms = events::parse_since(start).unwrap();
    let report = score::score(&read.events, &labels, start_ms, seconds as i64 * 1000, 1000);
    (read.events, report)
}

/// A finished program's status, standard output and standard error, for a
/// failure message.
pub fn explain(o: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Reads a node's `--output jsonl` on a thread: the ids of the events it
/// stored, and its run summary.
pub fn read_stored_ids(
    out: std::process::ChildStdout,
) -> std::thread::JoinHandle<(std::collections::BTreeSet<u64>, Option<serde_json::Value>)> {
    use std::io::BufRead as _;
    std::thread::spawn(move || {
        let mut stored = std::collections::BTreeSet::new();
        let mut summary = None;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let Some(id) = v.pointer("/stored/id").and_then(|i| i.as_u64()) {
                stored.insert(id);
            } else if let Some(s) = v.get("summary") {
                summary = Some(s.clone());
            }
        }
        (stored, summary)
    })
}

/// A plain event record of `node` (wildlife, confidence 0.8, from the
/// trigger-only detector, no modality scores or features); a test sets the
/// fields it looks at with `EventRecord { .., ..common::event(node, id) }`.
pub fn event(node: &str, id: u64) -> messages::EventRecord {
    messages::EventRecord {
        id,
        node_id: node.into(),
        start_ms: 1_780_000_000_000 + id as i64,
        duration_ms: 1_000,
        class: messages::EventClass::Wildlife,
        confidence: messages::Permille(800),
        scores: Default::default(),
        features: Default::default(),
        model: messages::ModelVersion::TRIGGERS_ONLY,
        time: Default::default(),
        mono: None,
    }
}
