//! The outbox check at open: walks every record and index entry once,
//! recounts the per-priority accounting, and prepares the repair of what
//! the current write path never leaves behind: records without an index
//! entry (databases written before the outbox had priorities: they get
//! priority normal), index entries without a record, and a missing or
//! stale `m:stats`.

use std::collections::HashMap;

use messages::{Message, Priority, decode_message};

use super::layout::{
    DROPS_KEY, DropStats, EVENT_PREFIX, INDEX_PREFIX, Meta, QueueStats, STATS_KEY, index_key,
    key_id, parse_index_key,
};

/// What the walk found.
pub(super) struct Recount {
    /// The accounting after the repair.
    pub stats: QueueStats,
    pub drops: DropStats,
    /// Writes that make the database agree with `stats`; empty when it does.
    pub repair: Option<sled::Batch>,
    /// Records that had no index entry (given priority normal).
    pub unindexed: u64,
    /// Index entries without a record (removed).
    pub orphans: u64,
    /// `m:drops` was unreadable and was reset.
    pub drops_reset: bool,
}

/// The time an item's age is measured from.
pub(super) fn record_time(m: &Message) -> i64 {
    match m {
        Message::Event(e) => e.start_ms,
        Message::Status(s) => s.time_ms,
    }
}

pub(super) fn recount(tree: &sled::Tree) -> Result<Recount, sled::Error> {
    let mut batch = sled::Batch::default();
    let mut dirty = false;
    let mut index: HashMap<u64, (Priority, Meta)> = HashMap::new();
    let mut orphans = 0;
    for kv in tree.scan_prefix([INDEX_PREFIX]) {
        let (k, v) = kv?;
        match (parse_index_key(&k), Meta::decode(&v)) {
            (Some((p, id)), Some(meta)) if !index.contains_key(&id) => {
                index.insert(id, (p, meta));
            }
            // Unreadable, or a second entry for one id: the record (if any)
            // is re-indexed below from its own bytes.
            _ => {
                batch.remove(k);
                dirty = true;
                orphans += 1;
            }
        }
    }
    let mut stats = QueueStats::default();
    let mut unindexed = 0;
    for kv in tree.scan_prefix([EVENT_PREFIX]) {
        let (k, v) = kv?;
        let Some(id) = key_id(&k) else { continue };
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        match index.remove(&id) {
            Some((p, meta)) if meta.len == len => stats.add(p, len),
            Some((p, meta)) => {
                let fixed = Meta { len, ..meta };
                batch.insert(&index_key(p, id)[..], &fixed.encode()[..]);
                dirty = true;
                stats.add(p, len);
            }
            None => {
                // A database from before priorities; an undecodable record
                // is indexed too, so that `pending` reports it.
                let time_ms = decode_message(&v).map_or(0, |m| record_time(&m));
                let meta = Meta { time_ms, len };
                batch.insert(&index_key(Priority::Normal, id)[..], &meta.encode()[..]);
                dirty = true;
                unindexed += 1;
                stats.add(Priority::Normal, len);
            }
        }
    }
    for (id, (p, _)) in index {
        batch.remove(&index_key(p, id)[..]);
        dirty = true;
        orphans += 1;
    }
    let stored = tree.get(STATS_KEY)?.and_then(|v| QueueStats::decode(&v));
    if stored.unwrap_or_default() != stats {
        batch.insert(STATS_KEY, stats.encode());
        dirty = true;
    }
    let (drops, drops_reset) = match tree.get(DROPS_KEY)? {
        None => (DropStats::default(), false),
        Some(v) => match DropStats::decode(&v) {
            Some(d) => (d, false),
            None => {
                batch.insert(DROPS_KEY, DropStats::default().encode());
                dirty = true;
                (DropStats::default(), true)
            }
        },
    };
    Ok(Recount {
        stats,
        drops,
        repair: dirty.then_some(batch),
        unindexed,
        orphans,
        drops_reset,
    })
}
