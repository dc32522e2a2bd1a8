//! The store task: gives each event an id and makes it durable (group commit:
//! whatever is queued goes in one durable batch), then reports it as stored.
//! An event is only reported once the store says it is durable. If the store
//! fails (a full disk), the events are kept in memory and retried with
//! backoff; whatever is still unstored at shutdown is reported, never dropped
//! silently.

use std::sync::Arc;
use std::time::Duration;

use messages::{EventRecord, Permille};
use tokio::sync::mpsc;
use uplink::EventStore;

use super::detect::Classified;

/// Called with each record once it is durable.
pub type OnStored = Box<dyn FnMut(&EventRecord) + Send>;

/// What the store task did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreOutcome {
    /// Events made durable.
    pub stored: u64,
    /// Events that could not be stored before shutdown.
    pub unstored: u64,
    /// Store errors seen (each retried).
    pub errors: u64,
}

/// The record of `c`, with the time and quality the clock gives its start
/// (`stamp`).
fn to_record(
    id: u64,
    node_id: &str,
    c: &Classified,
    stamp: (i64, messages::TimeQuality, Option<messages::MonoRef>),
) -> EventRecord {
    let d = &c.detection;
    EventRecord {
        id,
        node_id: node_id.to_string(),
        start_ms: stamp.0,
        duration_ms: u32::try_from((d.end_ms - d.start_ms).max(0)).unwrap_or(u32::MAX),
        class: d.class,
        confidence: Permille::from_fraction(d.confidence),
        scores: d.scores,
        features: d.features,
        model: c.model,
        time: stamp.1,
        mono: stamp.2,
    }
}

/// Runs until the detection task is done and everything it sent is stored
/// (or, on a failing store, until `give_up` completes).
pub async fn run(
    store: Arc<EventStore>,
    node_id: String,
    clock: Arc<dyn crate::clock::Clock>,
    mut rx: mpsc::Receiver<Classified>,
    mut on_stored: OnStored,
    give_up: crate::shutdown::Shutdown,
) -> StoreOutcome {
    let mut out = StoreOutcome::default();
    let mut pending: Vec<Classified> = Vec::new();
    let mut backoff = Duration::from_millis(200);
    loop {
        if pending.is_empty() && rx.recv_many(&mut pending, 64).await == 0 {
            return out;
        }
        // Take whatever else is already queued into the same durable batch.
        while let Ok(c) = rx.try_recv() {
            pending.push(c);
        }
        let batch = pending.clone();
        let stamps: Vec<_> = batch
            .iter()
            .map(|c| clock.stamp_mono(c.detection.start_ms))
            .collect();
        let s = store.clone();
        let node = node_id.clone();
        // The service watchdog holds its ping while a write hangs.
        crate::service::global().store_write_started();
        let result = tokio::task::spawn_blocking(move || {
            let mut i = 0;
            s.append_batch(batch.len(), |id| {
                let r = to_record(id, &node, &batch[i], stamps[i]);
                i += 1;
                r
            })
        })
        .await;
        crate::service::global().store_write_finished();
        match result {
            Ok(Ok(records)) => {
                pending.clear();
                backoff = Duration::from_millis(200);
                for r in &records {
                    out.stored += 1;
                    tracing::debug!(
                        id = r.id,
                        class = r.class.as_str(),
                        start_ms = r.start_ms,
                        duration_ms = r.duration_ms,
                        "event stored"
                    );
                    on_stored(r);
                }
            }
            Ok(Err(e)) => {
                out.errors += 1;
                tracing::error!(error = %e, pending = pending.len(), retry_in_ms = backoff.as_millis() as u64, "cannot store events; keeping them in memory and retrying");
                if give_up.is_triggered() && rx.is_closed() && out.errors > 3 {
                    out.unstored = pending.len() as u64;
                    tracing::error!(
                        unstored = out.unstored,
                        "giving up: these events were detected but are NOT stored"
                    );
                    return out;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => {
                out.errors += 1;
                tracing::error!(error = %e, "store worker failed; retrying");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}
