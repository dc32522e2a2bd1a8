//! Signals that stop the node: SIGINT (Ctrl-C at a terminal) stops
//! `fieldnode` cleanly, as SIGTERM does (`replay.rs`): it exits with
//! success, prints its summary, and every event it reported as stored is in
//! the store.

use std::io::{BufRead, BufReader};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use messages::EventJson;

mod common;

/// How long anything may take before the test gives up rather than hang.
/// Not a measure: the node normally takes a fraction of it.
const DEADLINE: Duration = Duration::from_secs(180);

/// Waits for `child` to exit; kills it and fails if it is still running
/// after [`DEADLINE`].
fn wait_or_kill(child: &mut Child, what: &str) -> ExitStatus {
    let until = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fieldnode still running {DEADLINE:?} after {what}: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigint_stops_cleanly_with_everything_stored() {
    let t = tempfile::tempdir().unwrap();
    let scene = t.path().join("s");
    // The demo preset: 120 s, its first labelled event ends 20 s in.
    common::scenegen(&scene, &["--preset", "demo", "--seed", "7"]);
    let data = t.path().join("d");
    let stderr_log = t.path().join("stderr.log");
    // Real time at 4x: the scene lasts 30 s, so the node is still replaying
    // when its first event is stored (about 5 s in).
    let mut child = common::node_run(&scene, &data, &["--speed", "4"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = || std::fs::read_to_string(&stderr_log).unwrap_or_default();

    // Wait for the first stored event.
    let mut lines = Vec::new();
    let until = Instant::now() + DEADLINE;
    let is_stored = |l: &String| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.get("stored").is_some())
    };
    while !lines.iter().any(is_stored) {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "no stored event printed ({e}); output:\n{}\nstderr:\n{}",
                    lines.join("\n"),
                    stderr()
                );
            }
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "fieldnode exited before SIGINT; output:\n{}\nstderr:\n{}",
        lines.join("\n"),
        stderr()
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_or_kill(&mut child, "SIGINT");
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let err = stderr();
    let out = lines.join("\n");
    assert!(status.success(), "exit {status:?}:\n{out}\nstderr:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("shutdown requested"),
        "SIGINT was not taken as a shutdown request:\n{err}"
    );

    let values: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{out}")))
        .collect();
    let printed: Vec<EventJson> = values
        .iter()
        .filter_map(|v| v.get("stored").cloned())
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert!(!printed.is_empty());
    let summaries: Vec<&serde_json::Value> =
        values.iter().filter_map(|v| v.get("summary")).collect();
    assert_eq!(summaries.len(), 1, "one summary expected:\n{out}");
    let sum = summaries[0];
    eprintln!("summary after SIGINT: {sum}");
    assert!(
        values.last().unwrap().get("summary").is_some(),
        "the summary comes last:\n{out}"
    );
    assert_eq!(sum["stored"].as_u64(), Some(printed.len() as u64), "{sum}");
    assert_eq!(sum["unstored"].as_u64(), Some(0), "{sum}");
    // The scene was cut short by the signal, not replayed to its end.
    let scene_ms = sum["scene_ms"].as_i64().unwrap();
    assert!(scene_ms < 120_000, "{sum}");

    // Every event printed as stored is in the store, exactly as printed.
    let read = field_tools::events::read_events(&data, None).unwrap();
    assert!(read.bad.is_empty(), "{:?}", read.bad);
    let stored: Vec<EventJson> = read.events.iter().map(EventJson::from).collect();
    for e in &printed {
        assert!(
            stored.contains(e),
            "printed as stored but not in the store: {e:?}\nstore: {stored:?}"
        );
    }
    assert_eq!(stored.len(), printed.len(), "store: {stored:?}");

    // And the store opens cleanly after the stop.
    let (store, report) =
        uplink::EventStore::open(&data.join("store"), &uplink::StoreConfig::default()).unwrap();
    assert!(report.quarantined.is_none(), "{report:?}");
    assert_eq!(store.len(), printed.len());
}

/// A SIGINT that arrives while the node is still starting (the model
/// loading, the store opening) stops it cleanly once it runs: the handler
/// is in place from the start, so the signal's default action never kills
/// the process.
#[test]
fn sigint_while_the_node_starts_stops_it_cleanly() {
    let t = tempfile::tempdir().unwrap();
    let scene = t.path().join("s");
    common::scenegen(&scene, &["--preset", "demo", "--seed", "8"]);
    let data = t.path().join("d");
    let config = t.path().join("fieldnode.toml");
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/fusion/fusion.int4.manifest.toml");
    std::fs::write(
        &config,
        format!("[fusion]\nmodel = {:?}\n", manifest.display().to_string()),
    )
    .unwrap();
    let stderr_log = t.path().join("stderr.log");
    let mut child = common::node_run(&scene, &data, &["--speed", "1", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_log).unwrap())
        .spawn()
        .unwrap();
    let stderr = || std::fs::read_to_string(&stderr_log).unwrap_or_default();
    // The first line the node logs inside its runtime, before it loads
    // anything.
    let until = Instant::now() + DEADLINE;
    while !stderr().contains("replaying scene") {
        assert!(
            child.try_wait().unwrap().is_none(),
            "fieldnode exited early:\n{}",
            stderr()
        );
        assert!(Instant::now() < until, "no start logged:\n{}", stderr());
        std::thread::sleep(Duration::from_millis(1));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_or_kill(&mut child, "SIGINT");
    let err = stderr();
    assert!(status.success(), "exit {status:?}:\n{err}");
    assert!(err.contains("shutdown requested"), "{err}");
}
