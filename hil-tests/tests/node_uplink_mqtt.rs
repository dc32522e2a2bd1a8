//! The real `fieldnode` forwarding its outbox to a real mosquitto (mutual
//! TLS, ACL: `hil_tests::mosquitto`), with `mosquitto_sub` as the
//! researcher and `mosquitto_pub` as the operator:
//! - every stored event arrives, exactly once after de-duplication by id,
//!   and the node's outbox is empty when it exits (`--exit-at-end` waits for
//!   the outbox to drain, `[uplink] drain_timeout_ms`); detection-to-broker
//!   latency is measured (printed);
//! - a broker stopped and restarted mid-run loses nothing;
//! - a node killed with SIGKILL while forwarding and restarted on the same
//!   data directory delivers everything it had stored;
//! - `send_status` on the command topic produces a status record; garbage
//!   and commands not allowed are rejected and logged, never acted on.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hil_tests::mosquitto::{
    Broker, BrokerOptions, ClientFiles, OPERATOR, RESEARCHER, Received, Subscriber, publish,
};
use messages::Message;

const NODE_ID: &str = "node-a";

fn broker() -> Broker {
    Broker::start(BrokerOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn files(broker: &Broker, cn: &str) -> ClientFiles {
    broker.client_files(cn).expect("client certificate")
}

/// A configuration with the uplink on, pointing at `broker` with the node's certificate.
fn write_config(dir: &Path, broker: &Broker, extra_uplink: &str) -> std::path::PathBuf {
    let f = files(broker, NODE_ID);
    let text = format!(
        r#"
[node]
id = "{NODE_ID}"
[uplink]
enabled = true
round_interval_ms = 200
drain_timeout_ms = 30000
{extra_uplink}
[uplink.mqtt]
host = "127.0.0.1"
port = {port}
connect_timeout_s = 5
reconnect_min_ms = 100
reconnect_max_ms = 500
[uplink.mqtt.tls]
ca = "{ca}"
cert = "{cert}"
key = "{key}"
"#,
        port = broker.port(),
        ca = f.ca.display(),
        cert = f.cert.display(),
        key = f.key.display(),
    );
    let path = dir.join("fieldnode.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn researcher(broker: &Broker, session: &str) -> Subscriber {
    Subscriber::start(
        broker,
        &files(broker, RESEARCHER),
        &format!("field/{NODE_ID}/+"),
        Some(session),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// What the researcher `session` receives until `done`. mosquitto_sub does
/// not always reconnect after the broker restarts (a race with the listener
/// coming up); a researcher's client then reconnects with the same client
/// id, and its persistent session holds what was published meanwhile.
fn receive(
    broker: &Broker,
    sub: Subscriber,
    session: &str,
    timeout: Duration,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let mut msgs = sub.wait_until(timeout, &done);
    if !done(&msgs) {
        drop(sub);
        let again = researcher(broker, session);
        let more = again.wait_until(timeout, |m| {
            let mut all = msgs.clone();
            all.extend_from_slice(m);
            done(&all)
        });
        msgs.extend(more);
    }
    msgs
}

/// Event ids received on the events topic, with duplicates.
fn event_ids(msgs: &[Received]) -> Vec<u64> {
    msgs.iter()
        .filter(|m| m.topic.ends_with("/events"))
        .map(|m| match messages::decode_message(&m.payload) {
            Ok(Message::Event(e)) => {
                assert_eq!(e.node_id, NODE_ID);
                e.id
            }
            other => panic!("not an event record on {}: {other:?}", m.topic),
        })
        .collect()
}

fn status_records(msgs: &[Received]) -> Vec<messages::StatusRecord> {
    msgs.iter()
        .filter(|m| m.topic.ends_with("/status"))
        .map(|m| match messages::decode_message(&m.payload) {
            Ok(Message::Status(s)) => s,
            other => panic!("not a status record on {}: {other:?}", m.topic),
        })
        .collect()
}

/// What the node printed: stored events with the moment each line was read.
type Stored = Arc<Mutex<Vec<(Instant, u64)>>>;

/// Starts the node with `config`; collects its stored events and the summary line.
fn spawn_node(
    scene: &Path,
    data: &Path,
    config: &Path,
    speed: &str,
    log: &Path,
) -> (
    Child,
    Stored,
    std::thread::JoinHandle<Option<serde_json::Value>>,
) {
    let mut child = common::node_run(scene, data, &["--speed", speed])
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stored: Stored = Arc::default();
    let out = child.stdout.take().unwrap();
    let s = stored.clone();
    let reader = std::thread::spawn(move || {
        let mut summary = None;
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let Some(id) = v.pointer("/stored/id").and_then(|i| i.as_u64()) {
                s.lock().unwrap().push((Instant::now(), id));
            } else if let Some(sm) = v.get("summary") {
                summary = Some(sm.clone());
            }
        }
        summary
    });
    (child, stored, reader)
}

fn wait_exit(child: &mut Child, timeout: Duration, log: &Path) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(
                st.success(),
                "fieldnode failed: {st}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "fieldnode did not exit within {timeout:?}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn outbox_len(data: &Path) -> u64 {
    let (store, _) =
        uplink::EventStore::open(&data.join("store"), &uplink::StoreConfig::default()).unwrap();
    store.queue_depth().iter().map(|&n| u64::from(n)).sum()
}

fn ids_of(stored: &Stored) -> BTreeSet<u64> {
    stored.lock().unwrap().iter().map(|(_, id)| *id).collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn every_stored_event_arrives_once_and_the_outbox_drains() {
    let broker = broker();
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &["--preset", "mixed", "--seed", "11", "--duration", "900"],
    );
    let config = write_config(tmp.path(), &broker, "");
    let sub = researcher(&broker, "res-a");
    let data = tmp.path().join("data");
    let log = tmp.path().join("node.log");
    // 900 s of scene at 45x: events are stored at their own pace, so the
    // time from storing to the broker is the link's, not a backlog's.
    let (mut child, stored, reader) = spawn_node(&scene, &data, &config, "45", &log);

    // Watch the subscriber while the node runs: first time each id is seen.
    let mut first_seen: BTreeMap<u64, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(50);
    loop {
        let now = Instant::now();
        for id in event_ids(&sub.messages()) {
            first_seen.entry(id).or_insert(now);
        }
        let exited = child.try_wait().unwrap().is_some();
        let want = ids_of(&stored);
        if exited && want.iter().all(|id| first_seen.contains_key(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every event arrived: {} stored, {} received\n{}",
            want.len(),
            first_seen.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_exit(&mut child, Duration::from_secs(10), &log);
    let summary = reader.join().unwrap().expect("summary line");

    let want = ids_of(&stored);
    assert!(want.len() >= 5, "scene gave too few events: {}", want.len());
    let got = event_ids(&sub.messages());
    let unique: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(unique, want, "received ids differ from the stored ids");
    assert_eq!(
        summary
            .pointer("/uplink/left_in_outbox")
            .and_then(|v| v.as_u64()),
        Some(0),
        "summary: {summary}"
    );
    assert_eq!(outbox_len(&data), 0, "outbox not empty after the drain");

    let mut lat: Vec<f64> = stored
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(t, id)| {
            Some(
                first_seen
                    .get(id)?
                    .saturating_duration_since(*t)
                    .as_secs_f64()
                    * 1000.0,
            )
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    eprintln!(
        "detection to broker (stored line read -> researcher saw it, 5 ms polling), {} events: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; {} messages received for {} events",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 1.0),
        got.len(),
        want.len()
    );
}

#[test]
fn a_broker_restart_mid_run_loses_nothing() {
    let mut broker = broker();
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &["--preset", "mixed", "--seed", "12", "--duration", "900"],
    );
    let config = write_config(tmp.path(), &broker, "");
    let sub = researcher(&broker, "res-b");
    let data = tmp.path().join("data");
    let log = tmp.path().join("node.log");
    // 900 s at 60x: about 15 s of run; the broker is away for 6 of them.
    let (mut child, stored, reader) = spawn_node(&scene, &data, &config, "60", &log);
    std::thread::sleep(Duration::from_secs(3));
    broker.stop();
    let stored_while_down_from = ids_of(&stored).len();
    std::thread::sleep(Duration::from_secs(6));
    let stored_while_down = ids_of(&stored).len() - stored_while_down_from;
    broker.start_again().unwrap_or_else(|e| panic!("{e}"));
    wait_exit(&mut child, Duration::from_secs(50), &log);
    let summary = reader.join().unwrap().expect("summary line");

    let want = ids_of(&stored);
    let msgs = receive(&broker, sub, "res-b", Duration::from_secs(15), |m| {
        let got: BTreeSet<u64> = event_ids(m).into_iter().collect();
        want.is_subset(&got)
    });
    let got: BTreeSet<u64> = event_ids(&msgs).into_iter().collect();
    let missing: Vec<&u64> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "lost across the broker restart: {missing:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(got, want);
    assert!(
        stored_while_down > 0,
        "no event was stored while the broker was down: the test proved nothing"
    );
    assert_eq!(outbox_len(&data), 0);
    eprintln!(
        "broker restart: {} events stored ({} while the broker was down), all received; uplink {}",
        want.len(),
        stored_while_down,
        summary.get("uplink").cloned().unwrap_or_default()
    );
}

/// Waits until the node's log says `what`.
fn wait_log(log: &Path, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(what)
    {
        assert!(
            Instant::now() < deadline,
            "node never logged {what:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigkill_while_forwarding_then_restart_delivers_everything_stored() {
    let mut broker = broker();
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &["--preset", "mixed", "--seed", "13", "--duration", "600"],
    );
    let config = write_config(tmp.path(), &broker, "");
    let sub = researcher(&broker, "res-c");
    let data = tmp.path().join("data");
    let mut before_kills = BTreeSet::new();
    let mut mid_flush = 0;
    // Each round: the broker is down while the node replays the scene, so a
    // backlog builds up; the broker comes back and the node is killed while
    // it reconnects and drains (110..250 ms after the broker is back).
    for (round, delay_ms) in [110u64, 130, 150, 170, 190, 210, 230, 250]
        .into_iter()
        .enumerate()
    {
        broker.stop();
        let log = tmp.path().join(format!("node{round}.log"));
        let (mut child, stored, reader) = spawn_node(&scene, &data, &config, "max", &log);
        wait_log(&log, "uplink draining the outbox", Duration::from_secs(30));
        broker.start_again().unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(delay_ms));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = child.wait();
        let _ = reader.join();
        before_kills.extend(ids_of(&stored));
        let left = outbox_len(&data);
        let total = before_kills.len() as u64;
        if left > 0 && left < total {
            mid_flush += 1;
        }
        eprintln!(
            "kill {round} at +{delay_ms} ms: {left} of {total} stored events still in the outbox"
        );
    }

    // Restart on the same data directory with the broker up: it drains.
    let log = tmp.path().join("final.log");
    let (mut child, stored, reader) = spawn_node(&scene, &data, &config, "max", &log);
    wait_exit(&mut child, Duration::from_secs(50), &log);
    reader.join().unwrap().expect("summary line");
    let mut want = before_kills.clone();
    want.extend(ids_of(&stored));
    let msgs = receive(&broker, sub, "res-c", Duration::from_secs(15), |m| {
        let got: BTreeSet<u64> = event_ids(m).into_iter().collect();
        want.is_subset(&got)
    });
    let all = event_ids(&msgs);
    let got: BTreeSet<u64> = all.iter().copied().collect();
    let missing: Vec<&u64> = before_kills.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "stored before a kill but never delivered: {missing:?}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(got, want, "after de-duplication: exactly the stored events");
    assert_eq!(outbox_len(&data), 0);
    eprintln!(
        "sigkill: 8 kills ({mid_flush} with the outbox part-drained), {} events stored before kills, {} after; {} messages, {} duplicates dropped",
        before_kills.len(),
        ids_of(&stored).len(),
        all.len(),
        all.len() - got.len()
    );
}

#[test]
fn send_status_is_obeyed_and_bad_commands_are_rejected() {
    let broker = broker();
    let tmp = tempfile::tempdir().unwrap();
    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &["--preset", "mixed", "--seed", "14", "--duration", "120"],
    );
    // Only send_status is allowed here.
    let config = write_config(tmp.path(), &broker, r#"allowed_commands = ["send_status"]"#);
    let sub = researcher(&broker, "res-d");
    let data = tmp.path().join("data");
    let log = tmp.path().join("node.log");
    // Real time: the node stays up while the commands arrive.
    let (mut child, _stored, reader) = spawn_node(&scene, &data, &config, "1", &log);
    let msgs = sub.wait_until(Duration::from_secs(20), |m| {
        m.iter()
            .any(|r| r.topic.ends_with("/state") && r.payload == b"online")
    });
    assert!(
        msgs.iter().any(|r| r.topic.ends_with("/state")),
        "node never came online\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let op = files(&broker, OPERATOR);
    let cmd = format!("field/{NODE_ID}/cmd");
    for bad in [
        &b"not json"[..],
        br#"{"cmd":"reboot"}"#,
        br#"{"cmd":"flush_outbox"}"#,
    ] {
        let (st, err) = publish(&broker, &op, &cmd, bad, false).unwrap();
        assert!(st.success(), "{err}");
    }
    let (st, err) = publish(&broker, &op, &cmd, br#"{"cmd":"send_status"}"#, false).unwrap();
    assert!(st.success(), "{err}");
    let msgs = sub.wait_until(Duration::from_secs(15), |m| !status_records(m).is_empty());
    let status = status_records(&msgs);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_exit(&mut child, Duration::from_secs(20), &log);
    let summary = reader.join().unwrap().expect("summary line");
    let text = std::fs::read_to_string(&log).unwrap_or_default();

    assert_eq!(
        status.len(),
        1,
        "one status record for one send_status\n{text}"
    );
    let s = &status[0];
    assert_eq!(s.node_id, NODE_ID);
    assert!(s.battery_permille > 0 && s.battery_permille <= 1000);
    assert_eq!(s.sensors.microphone, messages::SensorState::Ok);
    assert_eq!(
        summary
            .pointer("/uplink/commands_rejected")
            .and_then(|v| v.as_u64()),
        Some(3),
        "summary: {summary}"
    );
    assert_eq!(
        summary
            .pointer("/uplink/commands_done")
            .and_then(|v| v.as_u64()),
        Some(1)
    );
    assert_eq!(
        text.matches("downlink command rejected: does not parse")
            .count(),
        2,
        "{text}"
    );
    assert_eq!(
        text.matches("downlink command rejected: not in [uplink] allowed_commands")
            .count(),
        1,
        "{text}"
    );
}
