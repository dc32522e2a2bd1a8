//! Reading the events of an `Events` stream from the store: one batch at a
//! time, on a blocking thread, never holding the store's lock across
//! anything but the store's own calls.
//!
//! Only durable events reach the link: a batch first reads the store's next
//! id (every id below it was applied to the database), then makes the
//! database durable (`flush_durable`), and only then reads ids below that
//! mark. An event stored meanwhile waits for the next batch.

use messages::link::STREAM_BATCH_LEN;
use messages::{EventRecord, Message};
use uplink::{EventStore, StoreError};

/// Bytes of an `EventBatch` frame besides its events (envelope id, variant,
/// vector length, resume cursor, end marker, CRC), rounded up.
const BATCH_OVERHEAD: usize = 32;

/// What one read gave.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// Events in id order.
    pub events: Vec<EventRecord>,
    /// The highest id looked at (sent, skipped, or known to be gone); the
    /// `after` given when nothing was looked at.
    pub resume: Option<u64>,
    /// Every durable item up to the store's next id was looked at: nothing
    /// more to send until something new is stored.
    pub caught_up: bool,
    /// Records that did not decode and were skipped (logged).
    pub corrupt: u32,
}

/// What a stream asks of the store.
#[derive(Debug, Clone, Copy)]
pub struct Filter {
    /// Only events that started at or after this time, ms.
    pub since_ms: Option<i64>,
    /// At most this many events in the batch (the stream's credit and
    /// what is left of its limit); at least 1.
    pub max_items: usize,
    /// The batch's target size, bytes ([`STREAM_BATCH_LEN`]).
    pub max_bytes: usize,
}

impl Filter {
    /// A filter for at most `max_items` events of the protocol's batch size.
    pub fn new(since_ms: Option<i64>, max_items: usize) -> Filter {
        Filter {
            since_ms,
            max_items: max_items.max(1),
            max_bytes: STREAM_BATCH_LEN,
        }
    }
}

fn event_len(e: &EventRecord) -> usize {
    postcard_len(e).unwrap_or(STREAM_BATCH_LEN)
}

fn postcard_len(e: &EventRecord) -> Option<usize> {
    messages::link::frame_len(e).ok()
}

/// Reads the next batch of events with ids above `after`. Blocking: run it
/// on a blocking thread.
pub fn read_batch(
    store: &EventStore,
    after: Option<u64>,
    filter: Filter,
) -> Result<Batch, StoreError> {
    // Every id below `mark` was applied to the database before this call.
    let mark = store.next_id();
    let start = after.map_or(0, |a| a.saturating_add(1));
    let mut batch = Batch {
        resume: after,
        ..Batch::default()
    };
    if start >= mark {
        batch.caught_up = true;
        return Ok(batch);
    }
    // ... and is durable after this: only durable events reach the link.
    store.flush_durable()?;
    let mut bytes = BATCH_OVERHEAD;
    let mut full = false;
    for item in store.iter_messages_from(start) {
        let (id, message) = match item {
            Ok(m) => (m.id(), Some(m)),
            Err(StoreError::Decode { id, source }) => {
                tracing::warn!(id, error = %source, "field link: a stored record does not decode; skipped");
                (id, None)
            }
            Err(e) => return Err(e),
        };
        if id >= mark {
            break;
        }
        match message {
            Some(Message::Event(e)) if filter.since_ms.is_none_or(|s| e.start_ms >= s) => {
                let len = event_len(&e);
                if full || (!batch.events.is_empty() && bytes + len > filter.max_bytes) {
                    // More to send: the next batch starts here.
                    return Ok(batch);
                }
                bytes += len;
                batch.resume = Some(id);
                batch.events.push(e);
                // Look on (past statuses and filtered events) to learn
                // whether this batch is the last one.
                full = batch.events.len() >= filter.max_items;
            }
            None => {
                batch.corrupt += 1;
                batch.resume = Some(id);
            }
            _ => batch.resume = Some(id),
        }
    }
    // Every id below the mark was looked at: what is not there left the
    // node or was never handed out, and new ids are at least `mark`.
    batch.caught_up = true;
    batch.resume = batch.resume.max(Some(mark - 1));
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::{EventClass, ModelVersion, Permille};

    pub(crate) fn event(start_ms: i64) -> EventRecord {
        EventRecord {
            id: 0,
            node_id: "n1".into(),
            start_ms,
            duration_ms: 1_000,
            class: EventClass::Wildlife,
            confidence: Permille::from_fraction(0.9),
            scores: Default::default(),
            features: Default::default(),
            model: ModelVersion(0),
            time: Default::default(),
            mono: None,
        }
    }

    fn store_with(dir: &std::path::Path, n: usize) -> EventStore {
        let (store, _) =
            EventStore::open(&dir.join("store"), &uplink::StoreConfig::default()).unwrap();
        for i in 0..n {
            store
                .append(|id| EventRecord {
                    id,
                    ..event(1_000 * i as i64)
                })
                .unwrap();
        }
        store
    }

    #[test]
    fn batches_respect_items_and_resume_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 10);
        let mut after = None;
        let mut got = Vec::new();
        loop {
            let b = read_batch(&store, after, Filter::new(None, 3)).unwrap();
            assert!(b.events.len() <= 3);
            got.extend(b.events.iter().map(|e| e.id));
            after = b.resume;
            if b.caught_up {
                break;
            }
        }
        let all: Vec<u64> = store.iter_from(0).map(|e| e.unwrap().id).collect();
        assert_eq!(got, all);
        // Caught up: nothing more, and the cursor stays.
        let b = read_batch(&store, after, Filter::new(None, 3)).unwrap();
        assert!(b.events.is_empty() && b.caught_up);
        assert_eq!(b.resume, after);
    }

    #[test]
    fn a_batch_stays_near_the_batch_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 200);
        let b = read_batch(&store, None, Filter::new(None, 1_000)).unwrap();
        assert!(!b.caught_up);
        assert!(b.events.len() > 10, "{}", b.events.len());
        let reply = messages::link::ResponseEnvelope {
            id: 1,
            body: messages::link::Response::EventBatch(messages::link::EventBatch {
                events: b.events,
                resume_after_id: b.resume,
                end: Some(messages::link::StreamEnd::Complete),
            }),
        };
        assert!(messages::link::frame_len(&reply).unwrap() <= STREAM_BATCH_LEN);
    }

    #[test]
    fn since_skips_early_events_but_moves_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), 5);
        let b = read_batch(&store, None, Filter::new(Some(3_000), 10)).unwrap();
        let starts: Vec<i64> = b.events.iter().map(|e| e.start_ms).collect();
        assert_eq!(starts, [3_000, 4_000]);
        assert!(b.caught_up);
        assert_eq!(b.resume, Some(store.next_id() - 1));
    }
}
