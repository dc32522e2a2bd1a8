//! The store's keys in sled and the encoding of its metadata values.
//!
//! - `e` + id (8 bytes big-endian): the encoded record (event or status).
//! - `q` + priority (1 byte) + id: the outbox index; value [`Meta`]. Keys
//!   sort by (priority, id), so a forward scan is the eviction order and a
//!   scan per priority from urgent down is the sending order.
//! - `x` + id: a record that did not decode, moved out of the outbox.
//! - `m:next_id`: the next id; `m:stats`: [`QueueStats`]; `m:drops`: [`DropStats`].
//!
//! Every change to `e`/`q` keys goes in one batch with the `m:` keys it
//! affects, so the accounting is exact after any crash.

use messages::Priority;

pub const NEXT_ID_KEY: &[u8] = b"m:next_id";
pub const STATS_KEY: &[u8] = b"m:stats";
pub const DROPS_KEY: &[u8] = b"m:drops";
pub const EVENT_PREFIX: u8 = b'e';
pub const INDEX_PREFIX: u8 = b'q';
pub const CORRUPT_PREFIX: u8 = b'x';

fn id_key(prefix: u8, id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

pub fn event_key(id: u64) -> [u8; 9] {
    id_key(EVENT_PREFIX, id)
}

pub fn corrupt_key(id: u64) -> [u8; 9] {
    id_key(CORRUPT_PREFIX, id)
}

pub fn key_id(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    (key.len() == 9 && key[0] == EVENT_PREFIX).then(|| u64::from_be_bytes(bytes))
}

pub fn index_key(p: Priority, id: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[0] = INDEX_PREFIX;
    k[1] = p.index() as u8;
    k[2..].copy_from_slice(&id.to_be_bytes());
    k
}

/// The start of one priority's part of the index.
pub fn index_prefix(p: Priority) -> [u8; 2] {
    [INDEX_PREFIX, p.index() as u8]
}

pub fn parse_index_key(key: &[u8]) -> Option<(Priority, u64)> {
    if key.len() != 10 || key[0] != INDEX_PREFIX {
        return None;
    }
    let p = *Priority::ALL.get(usize::from(key[1]))?;
    Some((p, u64::from_be_bytes(key[2..].try_into().ok()?)))
}

pub fn u64_value(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// What the index keeps about an item, so that expiry, eviction and
/// accounting never decode records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The record's own time, ms since the epoch.
    pub time_ms: i64,
    /// Encoded record length, bytes.
    pub len: u32,
}

impl Meta {
    pub fn encode(self) -> [u8; 12] {
        let mut v = [0u8; 12];
        v[..8].copy_from_slice(&self.time_ms.to_be_bytes());
        v[8..].copy_from_slice(&self.len.to_be_bytes());
        v
    }

    pub fn decode(v: &[u8]) -> Option<Meta> {
        let v: &[u8; 12] = v.try_into().ok()?;
        Some(Meta {
            time_ms: i64::from_be_bytes(v[..8].try_into().ok()?),
            len: u32::from_be_bytes(v[8..].try_into().ok()?),
        })
    }
}

fn encode_u64s(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

fn decode_u64s<const N: usize>(v: &[u8]) -> Option<[u64; N]> {
    if v.len() != N * 8 {
        return None;
    }
    let mut out = [0u64; N];
    for (o, c) in out.iter_mut().zip(v.chunks_exact(8)) {
        *o = u64::from_be_bytes(c.try_into().ok()?);
    }
    Some(out)
}

/// Items and record bytes per priority (index = [`Priority::index`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Items per priority.
    pub items: [u64; 4],
    /// Encoded record bytes per priority.
    pub bytes: [u64; 4],
}

impl QueueStats {
    pub(crate) fn add(&mut self, p: Priority, len: u32) {
        self.items[p.index()] += 1;
        self.bytes[p.index()] += u64::from(len);
    }

    pub(crate) fn sub(&mut self, p: Priority, len: u32) {
        let i = p.index();
        self.items[i] = self.items[i].saturating_sub(1);
        self.bytes[i] = self.bytes[i].saturating_sub(u64::from(len));
    }

    /// Items of every priority.
    pub fn total_items(&self) -> u64 {
        self.items.iter().sum()
    }

    /// Record bytes of every priority.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut all = self.items.to_vec();
        all.extend(self.bytes);
        encode_u64s(&all)
    }

    pub(crate) fn decode(v: &[u8]) -> Option<QueueStats> {
        let a: [u64; 8] = decode_u64s(v)?;
        Some(QueueStats {
            items: [a[0], a[1], a[2], a[3]],
            bytes: [a[4], a[5], a[6], a[7]],
        })
    }
}

/// Items that left the outbox without delivery, by reason and priority,
/// since the store was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropStats {
    /// Evicted because the budget (`max_items`, `max_record_bytes`) was full.
    pub evicted_budget: [u64; 4],
    /// Older than their priority's time to live.
    pub expired_ttl: [u64; 4],
    /// Records that did not decode, moved out of the outbox.
    pub corrupt: u64,
    /// Evicted, or not kept on arrival, because the filesystem had less than
    /// `min_free_bytes` free or reported no space left.
    pub evicted_disk: [u64; 4],
}

impl DropStats {
    /// 13 big-endian u64: evicted (budget) ×4, expired ×4, corrupt, evicted
    /// (disk) ×4. A value of the first 9 alone (written before the disk
    /// reserve) reads with no disk evictions.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut all = self.evicted_budget.to_vec();
        all.extend(self.expired_ttl);
        all.push(self.corrupt);
        all.extend(self.evicted_disk);
        encode_u64s(&all)
    }

    pub(crate) fn decode(v: &[u8]) -> Option<DropStats> {
        let (a, disk): ([u64; 9], [u64; 4]) = match v.len() {
            72 => (decode_u64s(v)?, [0; 4]),
            104 => (decode_u64s(&v[..72])?, decode_u64s(&v[72..])?),
            _ => return None,
        };
        Some(DropStats {
            evicted_budget: [a[0], a[1], a[2], a[3]],
            expired_ttl: [a[4], a[5], a[6], a[7]],
            corrupt: a[8],
            evicted_disk: disk,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_stats_round_trip_and_read_the_format_without_disk_evictions() {
        let d = DropStats {
            evicted_budget: [1, 2, 3, 4],
            expired_ttl: [5, 6, 7, 8],
            corrupt: 9,
            evicted_disk: [10, 11, 12, 13],
        };
        assert_eq!(DropStats::decode(&d.encode()), Some(d));
        let old = encode_u64s(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(
            DropStats::decode(&old),
            Some(DropStats {
                evicted_disk: [0; 4],
                ..d
            })
        );
        assert_eq!(DropStats::decode(&old[..71]), None);
    }
}
