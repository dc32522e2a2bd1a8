//! The node's uplink run in-process (`node::uplink::UplinkHandle`): the
//! pieces its tests share.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use node::uplink::{SharedState, StatusSource};
use uplink::EventStore;

/// An event of `node_id` stamped now (an old one would have expired from
/// the outbox).
pub fn fresh_event(id: u64, node_id: &str) -> messages::EventRecord {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    messages::EventRecord {
        id,
        node_id: node_id.into(),
        start_ms: now_ms,
        duration_ms: 1_000,
        class: messages::EventClass::Wildlife,
        confidence: messages::Permille(900),
        scores: Default::default(),
        features: Default::default(),
        model: messages::ModelVersion(1),
        time: Default::default(),
        mono: None,
    }
}

/// Waits (real time) until `done`, at most `limit`.
pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done()
}

/// The default power policy's status at charge `soc`, at night.
pub fn power_at(soc: f64) -> power::PowerStatus {
    power::PowerPolicy::new(power::PolicyConfig::default()).update(power::PowerReading {
        t_ms: 0,
        soc,
        solar_w: 0.0,
        load_w: 3.0,
        battery_mv: None,
    })
}

/// What the uplink reads the node's status from, over `store`, with
/// `counters` for the tasks' counts.
pub fn status_source(
    node_id: &str,
    power: tokio::sync::watch::Receiver<power::PowerStatus>,
    store: Arc<EventStore>,
    shared: Arc<SharedState>,
    counters: Arc<node::tasks::Counters>,
    dir: &Path,
) -> StatusSource {
    StatusSource {
        node_id: node_id.into(),
        board: node::sensors::health::HealthBoard::default(),
        power,
        store,
        shared,
        started_ms: 0,
        thermal_zone: dir.join("no-thermal-zone"),
        counters,
        clock: None,
    }
}
