//! `field-tools pull` against the harness broker: a persistent session
//! receives what was published while pull was not running, and duplicates
//! are dropped. Also the env-gated drain measurement of the MQTT link.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use hil_tests::mosquitto::{Broker, BrokerOptions, ClientFiles, RESEARCHER, publish};
use messages::{EventClass, EventJson, EventRecord, Permille};
use uplink::mqtt::{Kind, LinkEvent, MqttConfig, MqttLink, OutgoingMessage, TlsFiles};

fn tls(f: &ClientFiles) -> TlsFiles {
    TlsFiles {
        ca: f.ca.clone(),
        cert: f.cert.clone(),
        key: f.key.clone(),
    }
}

fn event(node: &str, id: u64) -> EventRecord {
    EventRecord {
        duration_ms: 800,
        class: EventClass::HumanActivity,
        confidence: Permille(600),
        ..common::event(node, id)
    }
}

fn run_pull(broker: &Broker, researcher: &ClientFiles, out: &std::path::Path) -> u64 {
    common::pull::pull_jsonl(
        &broker.url(),
        tls(researcher),
        "pull-test",
        out,
        Duration::from_secs(1),
    )
}

fn lines(out: &std::path::Path) -> Vec<EventJson> {
    std::fs::read_to_string(out)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("an event line"))
        .collect()
}

#[test]
fn pull_receives_what_was_published_while_it_was_away_once() {
    let broker = Broker::start(BrokerOptions::default()).expect("broker");
    let researcher = broker.client_files(RESEARCHER).expect("cert");
    let node1 = broker.client_files("node-1").expect("cert");
    let node2 = broker.client_files("node-2").expect("cert");
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("pulled.jsonl");

    // First run creates the persistent session; nothing to read yet.
    run_pull(&broker, &researcher, &out);
    assert!(lines(&out).is_empty());

    // While pull is away: node-1 binary records (id 3 twice), node-2 JSON.
    for id in [1u64, 2, 3, 3] {
        let (st, err) = publish(
            &broker,
            &node1,
            "field/node-1/events",
            &messages::encode_event(&event("node-1", id)),
            false,
        )
        .expect("pub");
        assert!(st.success(), "{err}");
    }
    let json = serde_json::to_vec(&EventJson::from(&event("node-2", 1))).expect("json");
    let (st, err) = publish(&broker, &node2, "field/node-2/events", &json, false).expect("pub");
    assert!(st.success(), "{err}");

    let dups = run_pull(&broker, &researcher, &out);
    let got: BTreeSet<(String, u64)> = lines(&out).into_iter().map(|e| (e.node_id, e.id)).collect();
    let want: BTreeSet<(String, u64)> =
        [("node-1", 1), ("node-1", 2), ("node-1", 3), ("node-2", 1)]
            .into_iter()
            .map(|(n, i)| (n.to_string(), i))
            .collect();
    assert_eq!(got, want);
    assert_eq!(lines(&out).len(), 4, "each record once");
    assert_eq!(dups, 1);

    // A re-sent record after a further absence is dropped against the file.
    publish(
        &broker,
        &node1,
        "field/node-1/events",
        &messages::encode_event(&event("node-1", 2)),
        false,
    )
    .expect("pub");
    assert_eq!(run_pull(&broker, &researcher, &out), 1);
    assert_eq!(lines(&out).len(), 4);
}

/// Drain rate of a backlog through the MQTT link to the local broker over
/// mutual TLS. `MQTT_DRAIN=50000 cargo test --release -p hil-tests --test
/// mqtt_pull drain -- --nocapture`.
#[test]
fn drain_a_backlog() {
    let Some(n) = std::env::var("MQTT_DRAIN")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        eprintln!("skipped: set MQTT_DRAIN=<messages> to measure");
        return;
    };
    let broker = Broker::start(BrokerOptions::default()).expect("broker");
    let node = broker.client_files("node-1").expect("cert");
    let cfg = MqttConfig {
        host: "127.0.0.1".into(),
        port: broker.port(),
        node_id: "node-1".into(),
        tls: Some(tls(&node)),
        max_in_flight: 64,
        ..MqttConfig::default()
    };
    let backlog: Vec<Vec<u8>> = (1..=n)
        .map(|id| messages::encode_event(&event("node-1", id)))
        .collect();
    let bytes: usize = backlog.iter().map(Vec::len).sum();
    let rss_before = peak_rss_kib();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let (elapsed, delivered) = rt.block_on(async {
        let (link, mut events) = MqttLink::start(&cfg).expect("start");
        assert_eq!(events.recv().await, Some(LinkEvent::Up));
        let start = Instant::now();
        let sender = async {
            for (i, payload) in backlog.into_iter().enumerate() {
                let msg = OutgoingMessage {
                    id: i as u64 + 1,
                    kind: Kind::Event,
                    payload,
                };
                link.send(msg).await.expect("send");
            }
        };
        let receiver = async {
            let mut delivered = 0u64;
            while delivered < n {
                match events.recv().await {
                    Some(LinkEvent::Delivered { .. }) => delivered += 1,
                    Some(LinkEvent::NotDelivered { ids }) => panic!("not delivered: {}", ids.len()),
                    Some(_) => {}
                    None => break,
                }
            }
            delivered
        };
        let ((), delivered) = tokio::join!(sender, receiver);
        let elapsed = start.elapsed();
        link.shutdown().await.expect("shutdown");
        (elapsed, delivered)
    });
    assert_eq!(delivered, n);
    let rate = n as f64 / elapsed.as_secs_f64();
    eprintln!(
        "MQTT drain: {n} messages ({bytes} payload bytes) in {:.2} s = {rate:.0} msg/s over mTLS, max_in_flight 64; \
         peak RSS of the test process {} KiB (before the link: {} KiB)",
        elapsed.as_secs_f64(),
        peak_rss_kib(),
        rss_before
    );
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
