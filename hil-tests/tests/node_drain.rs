//! `fieldnode` drains a stored backlog to a real mosquitto over mutual TLS,
//! deleting each record from its store on its PUBACK, side by side with
//! `mosquitto_pub -q 1` sending as many messages of the same size.
//!
//! The default suite drains 2,000 records and checks that every one arrives
//! exactly once and that the store is empty afterwards. The benchmark in
//! `docs/performance.md` is the same test with more records:
//! `NODE_DRAIN=50000 cargo test --release -p hil-tests --test node_drain -- --nocapture`,
//! which also measures both again with nobody subscribed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hil_tests::mosquitto::{Broker, BrokerOptions, RESEARCHER, Subscriber, publish_lines};
use messages::{EventClass, EventRecord, KeyFeatures, Message, ModalityScores, Permille};

const NODE_ID: &str = "node-d";

fn event(id: u64) -> EventRecord {
    EventRecord {
        start_ms: 1_780_000_000_000 + id as i64 * 7_000,
        duration_ms: 800 + (id % 5_000) as u32,
        class: EventClass::ALL[(id % 3) as usize],
        confidence: Permille(600 + (id % 400) as u16),
        scores: ModalityScores {
            audio: Some(Permille((id % 1000) as u16)),
            camera: None,
            climate: Some(Permille(120)),
        },
        features: KeyFeatures {
            audio_snr_db10: Some(150 + (id % 100) as i16),
            audio_peak_hz: Some(2_000 + (id % 3_000) as u16),
            temp_c100: Some(1_850),
            ..KeyFeatures::default()
        },
        ..common::event(NODE_ID, id)
    }
}

/// Seconds of the day of an RFC 3339 log timestamp at the start of `line`.
fn log_seconds(line: &str) -> Option<f64> {
    let t = line.split_whitespace().next()?;
    let clock = t.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// From the uplink starting to send to the outbox being empty, s.
fn drain_seconds(log: &str) -> Option<f64> {
    let start = log
        .lines()
        .find(|l| l.contains("uplink state") && l.contains("sending_mqtt"))
        .and_then(log_seconds)?;
    let end = log
        .lines()
        .filter(|l| l.contains("uplink state") && l.contains("nothing_pending"))
        .filter_map(log_seconds)
        .find(|&t| t >= start)?;
    Some(end - start)
}

fn write_config(dir: &Path, broker: &Broker) -> std::path::PathBuf {
    let mqtt = broker.node_uplink_toml(NODE_ID).expect("certificate");
    let path = dir.join("fieldnode.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nid = \"{NODE_ID}\"\n[log]\nlevel = \"info\"\n\
             [uplink]\nenabled = true\nround_interval_ms = 200\ndrain_timeout_ms = 600000\n{mqtt}"
        ),
    )
    .expect("config");
    path
}

#[test]
fn a_stored_backlog_drains_once_each_and_leaves_the_store_empty() {
    let n: u64 = std::env::var("NODE_DRAIN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let broker = Broker::start(BrokerOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let store_dir = data.join("store");

    let mean_len = fill(&store_dir, n);

    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &["--preset", "background", "--seed", "3", "--duration", "10"],
    );
    let config = write_config(tmp.path(), &broker);
    let researcher = broker.client_files(RESEARCHER).expect("certificate");
    let sub = Subscriber::start(
        &broker,
        &researcher,
        &format!("field/{NODE_ID}/events"),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let (drain_s, rss_kib) = drain(tmp.path(), &scene, &data, &config, "with-sub");

    // Every record arrived once, and none is left in the store.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ids = BTreeMap::<u64, u32>::new();
    while Instant::now() < deadline {
        ids.clear();
        for m in sub.messages() {
            match messages::decode_message(&m.payload) {
                Ok(Message::Event(e)) => *ids.entry(e.id).or_default() += 1,
                other => panic!("not an event on {}: {other:?}", m.topic),
            }
        }
        if ids.len() as u64 >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(sub);
    assert_eq!(ids.len() as u64, n, "records received");
    assert_eq!(*ids.keys().next().expect("ids"), 1);
    assert_eq!(*ids.keys().last().expect("ids"), n);
    let twice: Vec<_> = ids.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "received more than once: {twice:?}");
    assert_eq!(outbox_len(&store_dir), 0, "records left in the outbox");

    // The reference: mosquitto_pub, QoS 1, as many messages of the same
    // size over the same kind of connection (mutual TLS, the node's
    // identity), to the same broker with a subscriber taking every message
    // as the researcher's did during the node's drain (the broker's
    // forwarding and the subscriber's work weigh on both runs alike).
    let node_files = broker.client_files(NODE_ID).expect("certificate");
    let lines: Vec<Vec<u8>> = (0..n).map(|_| vec![b'x'; mean_len]).collect();
    let ref_topic = format!("field/{NODE_ID}/events");
    let ref_sub =
        Subscriber::start(&broker, &researcher, &ref_topic, None).unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    let (st, err) =
        publish_lines(&broker, &node_files, &ref_topic, &lines).unwrap_or_else(|e| panic!("{e}"));
    let pub_s = start.elapsed().as_secs_f64();
    assert!(st.success(), "mosquitto_pub: {err}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = 0;
    while Instant::now() < deadline {
        got = ref_sub.messages().len() as u64;
        if got >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(ref_sub);
    assert_eq!(got, n, "reference messages received");

    report(
        "a subscriber taking every message",
        n,
        mean_len,
        drain_s,
        pub_s,
        rss_kib,
    );

    // The benchmark also runs both again with nobody subscribed (the broker
    // accepts and drops): the publishers alone, so the cost of the store's
    // removals shows against a reference that has no receiver to feed.
    if std::env::var_os("NODE_DRAIN").is_some() {
        let mean_len = fill(&store_dir, n);
        let (drain_s, rss_kib) = drain(tmp.path(), &scene, &data, &config, "no-sub");
        assert_eq!(outbox_len(&store_dir), 0, "records left in the outbox");
        let lines: Vec<Vec<u8>> = (0..n).map(|_| vec![b'x'; mean_len]).collect();
        let start = Instant::now();
        let (st, err) = publish_lines(&broker, &node_files, &ref_topic, &lines)
            .unwrap_or_else(|e| panic!("{e}"));
        let pub_s = start.elapsed().as_secs_f64();
        assert!(st.success(), "mosquitto_pub: {err}");
        report("nobody subscribed", n, mean_len, drain_s, pub_s, rss_kib);
    }
}

/// Stores `n` events as the node stores them (batches of 1,000, durable);
/// returns their mean encoded size.
fn fill(store_dir: &Path, n: u64) -> usize {
    let (store, _) = uplink::EventStore::open(store_dir, &uplink::StoreConfig::default())
        .expect("open the store");
    let mut record_bytes = 0usize;
    let mut left = n;
    while left > 0 {
        let k = left.min(1_000);
        let stored = store.append_batch(k as usize, event).expect("append");
        assert_eq!(stored.len() as u64, k, "the budget dropped records");
        record_bytes += stored
            .iter()
            .map(|e| messages::encode_event(e).len())
            .sum::<usize>();
        left -= k;
    }
    record_bytes / n as usize
}

/// Items left in the store's outbox.
fn outbox_len(store_dir: &Path) -> u64 {
    let (store, _) = uplink::EventStore::open(store_dir, &uplink::StoreConfig::default())
        .expect("reopen the store");
    store.queue_depth().iter().map(|&d| u64::from(d)).sum()
}

/// Runs the node under /usr/bin/time (for its peak resident memory) until
/// it has drained its store and replayed the scene; returns the drain's
/// seconds and the peak RSS, KiB.
fn drain(dir: &Path, scene: &Path, data: &Path, config: &Path, tag: &str) -> (f64, u64) {
    let log = dir.join(format!("node-{tag}.log"));
    let rss_file = dir.join(format!("rss-{tag}"));
    let node = common::node_run(scene, data, &["--speed", "1"]);
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(node.get_program())
        .args(node.get_args())
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    let mut child = cmd.spawn().expect("start the node");
    let st = common::wait_or_fail(&mut child, Duration::from_secs(900), &log);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(st.success(), "fieldnode failed: {st}\n{text}");
    let drain_s = drain_seconds(&text).unwrap_or_else(|| panic!("no drain in the log\n{text}"));
    let rss_kib = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    (drain_s, rss_kib)
}

fn report(setting: &str, n: u64, mean_len: usize, drain_s: f64, pub_s: f64, rss_kib: u64) {
    let node_rate = n as f64 / drain_s.max(1e-3);
    let pub_rate = n as f64 / pub_s.max(1e-3);
    eprintln!(
        "drain, {setting}: {n} records of {mean_len} bytes on average: fieldnode {drain_s:.2} s \
         ({node_rate:.0}/s, delete on each PUBACK), mosquitto_pub -q 1 {pub_s:.2} s \
         ({pub_rate:.0}/s), ratio {:.2}; fieldnode peak RSS {:.1} MiB",
        node_rate / pub_rate,
        rss_kib as f64 / 1024.0
    );
}
