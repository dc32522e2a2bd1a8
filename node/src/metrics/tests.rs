use std::sync::Arc;

use messages::{EventClass, EventRecord, ModelVersion, Permille};
use power::{PolicyConfig, PowerPolicy, PowerReading};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use uplink::EventStore;

use super::*;
use crate::clock::SystemClock;
use crate::sensors::health::HealthBoard;
use crate::uplink::SharedState;

fn source(dir: &std::path::Path, events: usize) -> StatusSource {
    let (store, _) = EventStore::open(&dir.join("store"), &uplink::StoreConfig::default()).unwrap();
    for i in 0..events {
        store
            .append(|id| EventRecord {
                id,
                node_id: "n1".into(),
                start_ms: 1_000 * i as i64,
                duration_ms: 500,
                class: EventClass::Wildlife,
                confidence: Permille(800),
                scores: Default::default(),
                features: Default::default(),
                model: ModelVersion(0),
                time: Default::default(),
                mono: None,
            })
            .unwrap();
    }
    let status = PowerPolicy::new(PolicyConfig::default()).update(PowerReading {
        t_ms: 0,
        soc: 0.625,
        solar_w: 0.0,
        load_w: 3.0,
        battery_mv: Some(12_480),
    });
    let (_tx, power) = watch::channel(status);
    StatusSource {
        node_id: "n1".into(),
        board: HealthBoard::default(),
        power,
        store: Arc::new(store),
        shared: Arc::new(SharedState::default()),
        started_ms: 0,
        thermal_zone: dir.join("no-thermal-zone"),
        counters: Arc::new(crate::tasks::Counters::default()),
        clock: None,
    }
}

fn value(text: &str, series: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn the_text_carries_the_status_records_figures() {
    let dir = tempfile::tempdir().unwrap();
    let r = source(dir.path(), 3).build(0, 10_000);
    let text = render(&r);
    assert_eq!(
        value(&text, "fieldnode_battery_permille"),
        Some(625),
        "{text}"
    );
    assert_eq!(value(&text, "fieldnode_battery_millivolts"), Some(12_480));
    assert_eq!(
        value(&text, "fieldnode_outbox_items{priority=\"normal\"}"),
        Some(i64::from(r.queue[messages::Priority::Normal.index()]))
    );
    let total: i64 = messages::Priority::ALL
        .iter()
        .map(|p| {
            value(
                &text,
                &format!("fieldnode_outbox_items{{priority=\"{p}\"}}"),
            )
            .unwrap()
        })
        .sum();
    assert_eq!(total, 3, "{text}");
    assert_eq!(
        value(&text, "fieldnode_power_mode{mode=\"normal\"}"),
        Some(1)
    );
    assert_eq!(
        value(&text, "fieldnode_sensor_state{sensor=\"camera\"}"),
        Some(0)
    );
    assert!(
        text.contains("fieldnode_info{node=\"n1\",model_version=\"0\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE fieldnode_uptime_seconds gauge"),
        "{text}"
    );
    // No board temperature file: the series is left out, not zero.
    assert!(!text.contains("sensor=\"board\""), "{text}");
}

#[test]
fn the_detectors_counters_are_gauges_that_follow_the_run() {
    use crate::tasks::Counters;
    let dir = tempfile::tempdir().unwrap();
    let status = source(dir.path(), 0);
    let text = render(&status.build(0, 10_000));
    assert_eq!(
        value(&text, "fieldnode_events_cut_at_max"),
        Some(0),
        "{text}"
    );
    assert_eq!(value(&text, "fieldnode_events_joined"), Some(0), "{text}");
    assert!(
        text.contains("# TYPE fieldnode_events_cut_at_max gauge"),
        "{text}"
    );
    assert!(
        text.contains("# HELP fieldnode_events_joined Events joined"),
        "{text}"
    );
    // The counters the detect task keeps (and the run summary reads).
    Counters::set(&status.counters.events_cut_at_max, 4);
    Counters::set(&status.counters.events_joined, 57);
    let text = render(&status.build(0, 20_000));
    assert_eq!(
        value(&text, "fieldnode_events_cut_at_max"),
        Some(4),
        "{text}"
    );
    assert_eq!(value(&text, "fieldnode_events_joined"), Some(57), "{text}");
    // A record that does not report them (one from before status record
    // v7) leaves both series out rather than claiming 0.
    let old = messages::StatusRecord {
        detection: None,
        not_stored: None,
        ..status.build(0, 30_000)
    };
    let text = render(&old);
    assert!(!text.contains("fieldnode_events_cut_at_max"), "{text}");
    assert!(!text.contains("fieldnode_events_joined"), "{text}");
    assert!(!text.contains("fieldnode_events_not_stored"), "{text}");
}

#[test]
fn the_events_not_stored_are_one_family_by_reason() {
    use crate::tasks::Counters;
    let dir = tempfile::tempdir().unwrap();
    let status = source(dir.path(), 0);
    let series = |reason: &str| format!("fieldnode_events_not_stored{{reason=\"{reason}\"}}");
    let text = render(&status.build(0, 10_000));
    assert_eq!(
        value(&text, &series("uncertain_background")),
        Some(0),
        "{text}"
    );
    Counters::set(&status.counters.events_excluded, 2);
    Counters::set(&status.counters.background_dropped, 5);
    Counters::set(&status.counters.uncertain_background, 31);
    Counters::set(&status.counters.sun_heat_rises, 3);
    let text = render(&status.build(0, 20_000));
    for (reason, n) in [
        ("excluded", 2),
        ("background_dropped", 5),
        ("uncertain_background", 31),
        ("sun_heat_rise", 3),
    ] {
        assert_eq!(value(&text, &series(reason)), Some(n), "{reason}: {text}");
    }
    assert!(
        text.contains("# TYPE fieldnode_events_not_stored gauge"),
        "{text}"
    );
}

#[tokio::test]
async fn a_scrape_over_http_answers_the_current_figures() {
    let dir = tempfile::tempdir().unwrap();
    let status = source(dir.path(), 2);
    let store = status.store.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(listener, status, NodeTime::current(Arc::new(SystemClock)));
    let scrape = || async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    let first = scrape().await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("text/plain; version=0.0.4"), "{first}");
    let queued = |t: &str| -> i64 {
        messages::Priority::ALL
            .iter()
            .map(|p| value(t, &format!("fieldnode_outbox_items{{priority=\"{p}\"}}")).unwrap_or(0))
            .sum()
    };
    assert_eq!(queued(&first), 2, "{first}");
    // The next scrape sees the store as it is then.
    store
        .append(|id| EventRecord {
            id,
            node_id: "n1".into(),
            start_ms: 9_000,
            duration_ms: 500,
            class: EventClass::HumanActivity,
            confidence: Permille(900),
            scores: Default::default(),
            features: Default::default(),
            model: ModelVersion(0),
            time: Default::default(),
            mono: None,
        })
        .unwrap();
    assert_eq!(queued(&scrape().await), 3);
    // Anything else is not found.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /other HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 404"), "{out}");
    server.abort();
}
