//! The outbox operations of [`EventStore`]: appending with a priority and
//! budget eviction (the item and byte limits, and the disk reserve), the
//! sending order, confirmation, expiry and the counters. Every change is one
//! atomic sled batch (records, index entries, `m:stats`, `m:drops`,
//! `m:next_id` together) followed by the durable flush.

use messages::{DecodeError, DropCounters, EventRecord, Message, Priority, StatusRecord};

use super::disk::{DiskState, DiskStatus};
use super::journal::Entry;
use super::layout::{
    CORRUPT_PREFIX, DROPS_KEY, DropStats, INDEX_PREFIX, Meta, NEXT_ID_KEY, QueueStats, STATS_KEY,
    corrupt_key, event_key, index_key, index_prefix, parse_index_key,
};
use super::recount::record_time;
use super::{EventStore, State, StoreError, db_err};

/// Bytes each item takes in keys beside its record (`e` key 9, `q` key 10,
/// its `Meta` 12): with the record bytes, what the disk reserve counts.
pub const KEY_BYTES_PER_ITEM: u64 = 31;

/// Attempts at one append when a write reports no space left (the first
/// and two retries).
pub const ENOSPC_ATTEMPTS: u32 = 3;

/// What the outbox's items take in records and keys: the measure that does
/// not grow while the disk is below its reserve.
fn footprint(s: &QueueStats) -> u64 {
    s.total_bytes()
        .saturating_add(KEY_BYTES_PER_ITEM.saturating_mul(s.total_items()))
}

/// What [`EventStore::append_messages`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Appended {
    /// Items stored durably, in id order, with their priority.
    pub stored: Vec<(Message, Priority)>,
    /// New items not stored because the budget was full and they were the
    /// lowest (priority, then id) of all; counted as evicted.
    pub dropped: Vec<(u64, Priority)>,
    /// Older items evicted to make room, `(id, priority)`.
    pub evicted: Vec<(u64, Priority)>,
    /// The ids, among `evicted` and `dropped`, that left for the disk (less
    /// than `min_free_bytes` free, or no space left) rather than for the
    /// item or byte limit; counted in `DropStats::evicted_disk`.
    pub for_disk: Vec<u64>,
    /// Free bytes read before the append (`None`: the reserve is off, or the
    /// free space could not be read).
    pub free_bytes: Option<u64>,
}

/// One item ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingItem {
    /// Its id (events and status reports share the sequence).
    pub id: u64,
    /// Its priority.
    pub priority: Priority,
    /// The record's own time, ms since the epoch (what its age is measured from).
    pub time_ms: i64,
    /// The decoded record.
    pub message: Message,
    /// Its encoded bytes, as stored (`docs/wire-format.md`).
    pub bytes: Vec<u8>,
}

/// What [`EventStore::pending`] found.
#[derive(Debug, Default)]
pub struct Pending {
    /// Items in sending order: highest priority first, oldest id first.
    pub items: Vec<PendingItem>,
    /// Records that did not decode ([`StoreError::Decode`] naming the id):
    /// moved out of the outbox and counted in `DropCounters::corrupt`.
    pub corrupt: Vec<StoreError>,
}

/// What [`EventStore::expire`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expired {
    /// `(id, priority)` of each expired item.
    pub items: Vec<(u64, Priority)>,
}

impl Expired {
    /// Items expired per priority.
    pub fn per_priority(&self) -> [u64; 4] {
        let mut n = [0; 4];
        for (_, p) in &self.items {
            n[p.index()] += 1;
        }
        n
    }
}

fn set_id(m: &mut Message, id: u64) {
    match m {
        Message::Event(e) => e.id = id,
        Message::Status(s) => s.id = id,
    }
}

fn sat_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

struct NewItem {
    message: Message,
    priority: Priority,
    bytes: Vec<u8>,
    meta: Meta,
}

/// The disk rule of one append: the footprint it may leave, and whether new
/// items may be the ones not kept (below the reserve), or only stored items
/// that rank below them may go (a retry after "no space left" above the
/// reserve: a new item is then never dropped, the append fails instead).
#[derive(Debug, Clone, Copy)]
struct DiskLimit {
    footprint: u64,
    may_drop_new: bool,
}

/// One append, computed but not yet written.
struct Plan {
    batch: sled::Batch,
    entries: Vec<Entry>,
    keep: Vec<bool>,
    stats: QueueStats,
    drops: DropStats,
    appended: Appended,
}

impl EventStore {
    /// The outbox policy this store enforces.
    pub fn outbox_config(&self) -> &crate::outbox::OutboxConfig {
        &self.outbox
    }

    /// Stores one event built with the next id, durably, with the priority
    /// its class and confidence get. [`StoreError::BudgetFull`] when the
    /// outbox is full of items that all rank above it.
    pub fn append(
        &self,
        build: impl FnOnce(u64) -> EventRecord,
    ) -> Result<EventRecord, StoreError> {
        let mut build = Some(build);
        let mut a = self.append_messages(1, |id| match build.take() {
            Some(b) => Message::Event(b(id)),
            None => unreachable!("append_messages(1) builds exactly one record"),
        })?;
        match (a.stored.pop(), a.dropped.pop()) {
            (Some((Message::Event(e), _)), _) => Ok(e),
            (_, Some((id, priority))) => Err(self.not_kept(&a, id, priority)),
            _ => unreachable!("one event built, so one stored or dropped"),
        }
    }

    /// Stores one status report built with the next id, durably, with the
    /// status priority. [`StoreError::BudgetFull`] as for [`EventStore::append`].
    pub fn append_status(
        &self,
        build: impl FnOnce(u64) -> StatusRecord,
    ) -> Result<StatusRecord, StoreError> {
        let mut build = Some(build);
        let mut a = self.append_messages(1, |id| match build.take() {
            Some(b) => Message::Status(b(id)),
            None => unreachable!("append_messages(1) builds exactly one record"),
        })?;
        match (a.stored.pop(), a.dropped.pop()) {
            (Some((Message::Status(s), _)), _) => Ok(s),
            (_, Some((id, priority))) => Err(self.not_kept(&a, id, priority)),
            _ => unreachable!("one status built, so one stored or dropped"),
        }
    }

    /// The error for a new item that was not kept.
    fn not_kept(&self, a: &Appended, id: u64, priority: Priority) -> StoreError {
        if a.for_disk.contains(&id) {
            StoreError::DiskReserve {
                id,
                priority,
                free_bytes: a.free_bytes.unwrap_or(0),
                min_free_bytes: self.outbox.budget.min_free_bytes,
            }
        } else {
            StoreError::BudgetFull { id, priority }
        }
    }

    /// Stores `n` events built with consecutive new ids, with one durability
    /// barrier for all (group commit). Nothing is acknowledged unless all
    /// are. Returns the events stored: fewer than `n` only when the budget
    /// was full and some ranked below everything else (counted as evicted).
    pub fn append_batch(
        &self,
        n: usize,
        mut build: impl FnMut(u64) -> EventRecord,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let a = self.append_messages(n, |id| Message::Event(build(id)))?;
        Ok(a.stored
            .into_iter()
            .filter_map(|(m, _)| match m {
                Message::Event(e) => Some(e),
                Message::Status(_) => None,
            })
            .collect())
    }

    /// Stores `n` items built with consecutive new ids, each with the
    /// priority of [`crate::outbox::PriorityRules`], in one atomic batch and
    /// one durability barrier. If the budget would be exceeded, items are
    /// evicted in the same batch, lowest priority first and oldest (lowest
    /// id) first, the new items included: a new item below everything
    /// stored is the one that goes.
    ///
    /// Below `min_free_bytes` free on the filesystem, the same order evicts
    /// until the outbox takes no more record and key bytes than before the
    /// append (it does not grow). When a write reports no space left, the
    /// journal is cut back, room is made, and the append is planned again
    /// with that rule and retried, [`ENOSPC_ATTEMPTS`] times in all; then
    /// [`StoreError::DiskFull`], with nothing acknowledged.
    pub fn append_messages(
        &self,
        n: usize,
        mut build: impl FnMut(u64) -> Message,
    ) -> Result<Appended, StoreError> {
        if n == 0 {
            return Ok(Appended::default());
        }
        self.heal()?;
        let mut st = self.state();
        let first = st.ids.next;
        let end = first + n as u64;
        if let Err(e) = st.ids.reserve_through(end) {
            return Err(self.disk_full(&mut st, e, 1));
        }
        let new: Vec<NewItem> = (first..end)
            .map(|id| {
                let mut message = build(id);
                set_id(&mut message, id);
                let bytes = message.encode();
                let meta = Meta {
                    time_ms: record_time(&message),
                    len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                };
                let priority = self.outbox.priority.for_message(&message);
                NewItem {
                    message,
                    priority,
                    bytes,
                    meta,
                }
            })
            .collect();

        let min_free = self.outbox.budget.min_free_bytes;
        let mut attempt = 1;
        let (mut plan, free, under) = loop {
            let free = (min_free > 0).then(|| self.read_free(&mut st)).flatten();
            let under = free.is_some_and(|f| f < min_free);
            if attempt == 1 {
                self.note_reserve(&mut st, under, free);
            }
            // Below the reserve, or after "no space left": do not grow.
            let limit = (under || attempt > 1).then(|| DiskLimit {
                footprint: footprint(&st.stats),
                may_drop_new: under,
            });
            let plan = self.plan_append(&st, &new, end, limit)?;
            // The journal first: what it holds can always be put back in sled.
            match st.journal.append(&plan.entries) {
                Ok(()) => break (plan, free, under),
                Err(e) if e.is_storage_full() && attempt < ENOSPC_ATTEMPTS => {
                    tracing::warn!(
                        attempt,
                        free_bytes = ?free,
                        error = %e,
                        "no space left for the outbox: making room and retrying, evicting so that it does not grow"
                    );
                    self.make_room(&mut st);
                    attempt += 1;
                }
                Err(e) => return Err(self.disk_full(&mut st, e, attempt)),
            }
        };
        plan.appended.free_bytes = free;
        let evicting = !plan.appended.evicted.is_empty() || !plan.appended.dropped.is_empty();
        if let Err(e) = self.apply(plan.batch, "write records") {
            return Err(self.disk_full(&mut st, e, attempt));
        }
        // From here the ids are used whether or not the barrier succeeds.
        st.ids.next = end;
        st.stats = plan.stats;
        st.drops = plan.drops;
        let refused_for_disk = plan
            .appended
            .dropped
            .iter()
            .any(|(id, _)| plan.appended.for_disk.contains(id));
        st.disk.full = refused_for_disk;
        drop(st);
        if let Err(e) = self.flush_durable() {
            let mut st = self.state();
            return Err(self.disk_full(&mut st, e, attempt));
        }
        if let Err(e) = self.compact_journal_after_append(under.then_some(free).flatten()) {
            // The items are durable; the journal only stays longer.
            tracing::warn!(error = %e, "journal compaction after an append failed");
        }
        if evicting {
            log_evictions(&plan.appended, &plan.stats, free, min_free);
        }
        let mut appended = plan.appended;
        appended.stored = new
            .into_iter()
            .zip(plan.keep)
            .filter(|(_, k)| *k)
            .map(|(i, _)| (i.message, i.priority))
            .collect();
        Ok(appended)
    }

    /// Works out one append: which items are evicted (in `(priority, id)`
    /// order over stored and new items) so that the item and byte limits
    /// hold and, when `disk_limit` is set, the footprint is at most that;
    /// and the sled batch and journal entries that make it so.
    fn plan_append(
        &self,
        st: &State,
        new: &[NewItem],
        end: u64,
        disk_limit: Option<DiskLimit>,
    ) -> Result<Plan, StoreError> {
        let n = new.len();
        let mut stats = st.stats;
        let mut drops = st.drops;
        for item in new {
            stats.add(item.priority, item.meta.len);
        }
        let budget = &self.outbox.budget;
        let over_budget = |s: &QueueStats| {
            s.total_items() > budget.max_items || s.total_bytes() > budget.max_record_bytes
        };
        let over_disk = |s: &QueueStats| disk_limit.is_some_and(|l| footprint(s) > l.footprint);
        let may_drop_new_for_disk = disk_limit.is_some_and(|l| l.may_drop_new);
        let mut batch = sled::Batch::default();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (new[i].priority, new[i].message.id()));
        let mut next_new = order.into_iter().peekable();
        let mut old = self.tree()?.scan_prefix([INDEX_PREFIX]);
        let mut next_old = next_index_entry(&mut old)?;
        let mut keep = vec![true; n];
        let mut appended = Appended::default();
        while over_budget(&stats) || over_disk(&stats) {
            // The item and byte limits come first; what is evicted beyond
            // them is for the disk.
            let for_disk = !over_budget(&stats);
            let take_old = match (next_old, next_new.peek()) {
                (Some((p, id, _)), Some(&i)) => (p, id) < (new[i].priority, new[i].message.id()),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if for_disk && !take_old && !may_drop_new_for_disk {
                // Nothing stored ranks below the new items: they stay, and
                // the write decides.
                break;
            }
            let gone = if let (true, Some((p, id, meta))) = (take_old, next_old) {
                batch.remove(&event_key(id)[..]);
                batch.remove(&index_key(p, id)[..]);
                stats.sub(p, meta.len);
                appended.evicted.push((id, p));
                next_old = next_index_entry(&mut old)?;
                (id, p)
            } else if let Some(i) = next_new.next() {
                keep[i] = false;
                stats.sub(new[i].priority, new[i].meta.len);
                let gone = (new[i].message.id(), new[i].priority);
                appended.dropped.push(gone);
                gone
            } else {
                break;
            };
            if for_disk {
                drops.evicted_disk[gone.1.index()] += 1;
                appended.for_disk.push(gone.0);
            } else {
                drops.evicted_budget[gone.1.index()] += 1;
            }
        }
        drop(old);
        for (item, keep) in new.iter().zip(&keep) {
            if *keep {
                let id = item.message.id();
                batch.insert(&event_key(id)[..], &item.bytes[..]);
                batch.insert(&index_key(item.priority, id)[..], &item.meta.encode()[..]);
            }
        }
        batch.insert(NEXT_ID_KEY, &end.to_be_bytes()[..]);
        batch.insert(STATS_KEY, stats.encode());
        if !appended.evicted.is_empty() || !appended.dropped.is_empty() {
            batch.insert(DROPS_KEY, drops.encode());
        }
        let mut entries = Vec::with_capacity(n + 1);
        if !appended.evicted.is_empty() {
            entries.push(Entry::Gone(
                appended.evicted.iter().map(|(id, _)| *id).collect(),
            ));
        }
        for (item, keep) in new.iter().zip(&keep) {
            if *keep {
                entries.push(Entry::Put {
                    id: item.message.id(),
                    priority: item.priority,
                    bytes: item.bytes.clone(),
                });
            }
        }
        Ok(Plan {
            batch,
            entries,
            keep,
            stats,
            drops,
            appended,
        })
    }

    /// Reads the free space; a failed reading is logged once (until one
    /// succeeds again) and enforces nothing.
    fn read_free(&self, st: &mut State) -> Option<u64> {
        match self.free_space.free_bytes(&self.dir) {
            Ok(free) => {
                if std::mem::take(&mut st.disk.reading_failed) {
                    tracing::info!(path = %self.dir.display(), free_bytes = ?free, "free space readable again: disk reserve enforced");
                }
                free
            }
            Err(e) => {
                if !st.disk.reading_failed {
                    tracing::warn!(path = %self.dir.display(), error = %e, "cannot read the free space: disk reserve not enforced until it can be read");
                }
                st.disk.reading_failed = true;
                None
            }
        }
    }

    /// Logs crossing the disk reserve, either way.
    fn note_reserve(&self, st: &mut State, under: bool, free: Option<u64>) {
        if under == st.disk.pressure {
            return;
        }
        st.disk.pressure = under;
        let min_free_bytes = self.outbox.budget.min_free_bytes;
        if under {
            tracing::warn!(
                path = %self.dir.display(),
                free_bytes = ?free,
                min_free_bytes,
                reason = "disk",
                "below the disk reserve: appends evict (lowest priority, oldest first) so that the outbox does not grow"
            );
        } else {
            tracing::info!(
                path = %self.dir.display(),
                free_bytes = ?free,
                min_free_bytes,
                "above the disk reserve again"
            );
        }
    }

    /// After "no space left": gives back what the store can give back at
    /// once, the journal's dead appends (a rewrite that needs only its live
    /// content in free space). Failing is logged, not fatal.
    fn make_room(&self, st: &mut State) {
        if !st.journal.would_shrink() {
            return;
        }
        let before = st.journal.len();
        match self.compact_journal_locked(st) {
            Ok(()) => tracing::info!(
                freed_bytes = before.saturating_sub(st.journal.len()),
                "journal compacted to make room"
            ),
            Err(e) => tracing::warn!(error = %e, "journal compaction to make room failed"),
        }
    }

    /// A storage-full error becomes [`StoreError::DiskFull`] (and the disk
    /// state full); any other error is returned as it is.
    fn disk_full(&self, st: &mut State, e: StoreError, attempts: u32) -> StoreError {
        if !e.is_storage_full() {
            return e;
        }
        st.disk.full = true;
        let free_bytes = self.free_space.free_bytes(&self.dir).ok().flatten();
        let (path, op, source) = match e {
            StoreError::Io { path, op, source } => (path, op, source),
            StoreError::Db {
                op,
                source: sled::Error::Io(source),
            } => (self.dir.clone(), op, source),
            other => return other,
        };
        tracing::error!(
            path = %path.display(),
            op,
            attempts,
            free_bytes = ?free_bytes,
            error = %source,
            "no space left on the device: append not stored (the caller keeps its items)"
        );
        StoreError::DiskFull {
            path,
            op,
            attempts,
            free_bytes,
            source,
        }
    }

    /// The free space now, the reserve, and where the store stands against
    /// it (see [`DiskState`]); for the node's status record and logs. Reads
    /// the free space (one `statvfs`); no scan.
    pub fn disk_status(&self) -> DiskStatus {
        let free_bytes = self.free_space.free_bytes(&self.dir).ok().flatten();
        let min_free_bytes = self.outbox.budget.min_free_bytes;
        let st = self.state();
        let state = if st.disk.full {
            DiskState::Full
        } else if min_free_bytes > 0 && free_bytes.is_some_and(|f| f < min_free_bytes) {
            DiskState::Evicting
        } else {
            DiskState::Ok
        };
        DiskStatus {
            free_bytes,
            min_free_bytes,
            state,
            evicted_disk: st.drops.evicted_disk.iter().sum(),
        }
    }

    /// Up to `limit` items of at least `min` priority, in sending order:
    /// highest priority first, then oldest id first. Records that do not
    /// decode are reported in [`Pending::corrupt`], moved out of the outbox
    /// (kept under `x` + id) and counted, durably, in one batch.
    pub fn pending(&self, min: Priority, limit: usize) -> Result<Pending, StoreError> {
        self.pending_except(min, limit, &std::collections::HashSet::new())
    }

    /// As [`Self::pending`], skipping the ids in `skip` without reading
    /// them (the items a link has in flight): `limit` counts the items
    /// returned, not those skipped.
    pub fn pending_except(
        &self,
        min: Priority,
        limit: usize,
        skip: &std::collections::HashSet<u64>,
    ) -> Result<Pending, StoreError> {
        self.heal()?;
        let tree = self.tree()?;
        let mut out = Pending::default();
        let mut bad: Vec<(u64, Priority, Meta, sled::IVec, DecodeError)> = Vec::new();
        'priorities: for p in Priority::ALL.into_iter().rev().filter(|p| *p >= min) {
            for kv in tree.scan_prefix(index_prefix(p)) {
                if out.items.len() >= limit {
                    break 'priorities;
                }
                let (k, v) = kv.map_err(db_err("scan outbox"))?;
                let (Some((p, id)), Some(meta)) = (parse_index_key(&k), Meta::decode(&v)) else {
                    continue;
                };
                if skip.contains(&id) {
                    continue;
                }
                // Gone since the scan began: confirmed or evicted meanwhile.
                let Some(bytes) = tree.get(event_key(id)).map_err(db_err("read record"))? else {
                    continue;
                };
                match messages::decode_message(&bytes) {
                    Ok(message) => out.items.push(PendingItem {
                        id,
                        priority: p,
                        time_ms: meta.time_ms,
                        message,
                        bytes: bytes.to_vec(),
                    }),
                    Err(e) => bad.push((id, p, meta, bytes, e)),
                }
            }
        }
        if !bad.is_empty() {
            let mut st = self.state();
            let (mut stats, mut drops) = (st.stats, st.drops);
            let mut batch = sled::Batch::default();
            let mut moved = Vec::new();
            for (id, p, meta, bytes, e) in bad {
                if tree
                    .get(index_key(p, id))
                    .map_err(db_err("read outbox"))?
                    .is_none()
                {
                    continue;
                }
                batch.remove(&event_key(id)[..]);
                batch.remove(&index_key(p, id)[..]);
                batch.insert(&corrupt_key(id)[..], bytes);
                stats.sub(p, meta.len);
                drops.corrupt += 1;
                moved.push((id, p, e));
            }
            batch.insert(STATS_KEY, stats.encode());
            batch.insert(DROPS_KEY, drops.encode());
            self.apply(batch, "move corrupt records")?;
            st.stats = stats;
            st.drops = drops;
            drop(st);
            self.flush_durable()?;
            for (id, p, source) in moved {
                tracing::error!(id, priority = p.as_str(), error = %source, "outbox record does not decode: moved aside and counted as corrupt");
                out.corrupt.push(StoreError::Decode { id, source });
            }
        }
        Ok(out)
    }

    /// Removes delivered items, durably, and returns how many were stored.
    /// Ids not stored (already confirmed, evicted or expired) are ignored.
    /// Their ids are never reused.
    pub fn confirm_delivered(&self, ids: &[u64]) -> Result<usize, StoreError> {
        let items: Vec<(u64, Option<Priority>)> = ids.iter().map(|&id| (id, None)).collect();
        self.confirm_delivered_hinted(&items)
    }

    /// [`EventStore::confirm_delivered`] for items whose priority the caller
    /// remembers from [`EventStore::pending`]: each index entry is looked up
    /// under that priority first, and under the others only when it is not
    /// there, so a wrong or missing hint costs time, never correctness.
    pub fn confirm_delivered_hinted(
        &self,
        items: &[(u64, Option<Priority>)],
    ) -> Result<usize, StoreError> {
        let mut items = items.to_vec();
        items.sort_unstable_by_key(|&(id, _)| id);
        items.dedup_by_key(|&mut (id, _)| id);
        let ids: Vec<u64> = items.iter().map(|&(id, _)| id).collect();
        self.heal()?;
        let tree = self.tree()?;
        let mut st = self.state();
        st.journal.append(&[Entry::Gone(ids)])?;
        let mut stats = st.stats;
        let mut batch = sled::Batch::default();
        let mut removed = 0;
        for (id, hint) in items {
            let order = hint
                .into_iter()
                .chain(Priority::ALL.into_iter().filter(move |p| Some(*p) != hint));
            for p in order {
                let key = index_key(p, id);
                if let Some(v) = tree.get(key).map_err(db_err("read outbox"))? {
                    batch.remove(&key[..]);
                    stats.sub(p, Meta::decode(&v).map_or(0, |m| m.len));
                    removed += 1;
                    // The write path keeps one index entry per id (the
                    // check at open removes any second one).
                    break;
                }
            }
            batch.remove(&event_key(id)[..]);
        }
        batch.insert(STATS_KEY, stats.encode());
        self.apply(batch, "remove delivered")?;
        st.stats = stats;
        drop(st);
        self.flush_durable()?;
        self.compact_journal_if_needed()?;
        Ok(removed)
    }

    /// [`EventStore::confirm_delivered`], for callers of the first API.
    pub fn remove_delivered(&self, ids: &[u64]) -> Result<(), StoreError> {
        self.confirm_delivered(ids).map(|_| ())
    }

    /// Puts back, durably, the journal's live items that the database lacks
    /// (a quarantine, or sled losing what it had made durable). An id whose
    /// record was moved aside as corrupt stays aside. Returns their ids.
    pub(super) fn restore_from_journal(
        &self,
        live: &std::collections::BTreeMap<u64, (Priority, Vec<u8>)>,
    ) -> Result<Vec<u64>, StoreError> {
        let mut st = self.state();
        let mut stats = st.stats;
        let mut batch = sled::Batch::default();
        let mut restored = Vec::new();
        let tree = self.tree()?;
        for (&id, (priority, bytes)) in live {
            let present = tree
                .contains_key(event_key(id))
                .map_err(db_err("read record"))?
                || tree
                    .contains_key(corrupt_key(id))
                    .map_err(db_err("read record"))?;
            if present {
                continue;
            }
            let Ok(message) = messages::decode_message(bytes) else {
                // The checksum matched, so this is a record from a newer
                // format: keep it out of the outbox rather than guess.
                tracing::error!(id, "journal record does not decode: not restored");
                continue;
            };
            let meta = Meta {
                time_ms: record_time(&message),
                len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
            };
            batch.insert(&event_key(id)[..], &bytes[..]);
            batch.insert(&index_key(*priority, id)[..], &meta.encode()[..]);
            stats.add(*priority, meta.len);
            restored.push(id);
        }
        let journal_short = (live.len() as u64) < stats.total_items();
        if !restored.is_empty() {
            batch.insert(STATS_KEY, stats.encode());
            self.apply(batch, "restore from journal")?;
            st.stats = stats;
        }
        drop(st);
        if !restored.is_empty() {
            self.flush_durable()?;
        }
        if journal_short {
            // Items the journal does not hold (a database older than the
            // journal): write them all into it now.
            self.compact_journal()?;
        }
        Ok(restored)
    }

    /// Rewrites the journal from the outbox when it has grown large.
    fn compact_journal_if_needed(&self) -> Result<(), StoreError> {
        if self.state().journal.needs_compaction() {
            self.compact_journal()?;
        }
        Ok(())
    }

    /// After an append: compaction when the journal has grown large, or,
    /// below the disk reserve (`free_under_reserve`), as soon as it holds
    /// more than twice its live content, the rewrite gives back at least
    /// 256 KiB and the free space holds the rewritten copy with 1 MiB to
    /// spare (it is written beside the old one before that is removed).
    fn compact_journal_after_append(
        &self,
        free_under_reserve: Option<u64>,
    ) -> Result<(), StoreError> {
        let mut st = self.state();
        let j = &st.journal;
        let eager = free_under_reserve.is_some_and(|free| {
            j.would_shrink_by(256 * 1024, 2) && free > j.live_bytes().saturating_add(1024 * 1024)
        });
        if j.needs_compaction() || eager {
            self.compact_journal_locked(&mut st)?;
        }
        Ok(())
    }

    /// Rewrites the journal with exactly the items in the outbox.
    fn compact_journal(&self) -> Result<(), StoreError> {
        let mut st = self.state();
        self.compact_journal_locked(&mut st)
    }

    fn compact_journal_locked(&self, st: &mut State) -> Result<(), StoreError> {
        let mut live = Vec::new();
        let tree = self.tree()?;
        for kv in tree.scan_prefix([INDEX_PREFIX]) {
            let (k, _) = kv.map_err(db_err("scan outbox"))?;
            let Some((p, id)) = parse_index_key(&k) else {
                continue;
            };
            if let Some(bytes) = tree.get(event_key(id)).map_err(db_err("read record"))? {
                live.push((id, p, bytes.to_vec()));
            }
        }
        st.journal.compact(live)
    }

    /// Removes, durably, every item older than its priority's time to live
    /// at `now_ms` (age from the record's own time), and counts them.
    pub fn expire(&self, now_ms: i64) -> Result<Expired, StoreError> {
        self.heal()?;
        let mut st = self.state();
        let (mut stats, mut drops) = (st.stats, st.drops);
        let mut batch = sled::Batch::default();
        let mut out = Expired::default();
        for p in Priority::ALL {
            let Some(ttl) = self.outbox.ttl.ttl_ms(p) else {
                continue;
            };
            let cutoff = now_ms.saturating_sub(ttl);
            for kv in self.tree()?.scan_prefix(index_prefix(p)) {
                let (k, v) = kv.map_err(db_err("scan outbox"))?;
                let (Some((p, id)), Some(meta)) = (parse_index_key(&k), Meta::decode(&v)) else {
                    continue;
                };
                if meta.time_ms < cutoff {
                    batch.remove(&event_key(id)[..]);
                    batch.remove(&k);
                    stats.sub(p, meta.len);
                    drops.expired_ttl[p.index()] += 1;
                    out.items.push((id, p));
                }
            }
        }
        if out.items.is_empty() {
            return Ok(out);
        }
        batch.insert(STATS_KEY, stats.encode());
        batch.insert(DROPS_KEY, drops.encode());
        st.journal
            .append(&[Entry::Gone(out.items.iter().map(|(id, _)| *id).collect())])?;
        self.apply(batch, "expire records")?;
        st.stats = stats;
        st.drops = drops;
        drop(st);
        self.flush_durable()?;
        for (id, p) in &out.items {
            tracing::debug!(
                id,
                priority = p.as_str(),
                reason = "ttl",
                "outbox item expired"
            );
        }
        let [low, normal, high, urgent] = out.per_priority();
        tracing::warn!(
            low,
            normal,
            high,
            urgent,
            reason = "ttl",
            "outbox items expired undelivered"
        );
        Ok(out)
    }

    /// Items waiting per priority (index = [`Priority::index`]); no scan.
    pub fn queue_depth(&self) -> [u32; 4] {
        self.state().stats.items.map(sat_u32)
    }

    /// Items and record bytes per priority; no scan.
    pub fn queue_stats(&self) -> QueueStats {
        self.state().stats
    }

    /// Drop counters by reason and priority, since the store was created.
    pub fn drop_stats(&self) -> DropStats {
        self.state().drops
    }

    /// Drop counters by reason, for the status record.
    /// The record's `evicted_budget` counts the evictions for the disk
    /// reserve too (`drop_stats` tells them apart).
    pub fn drop_counters(&self) -> DropCounters {
        let d = self.state().drops;
        DropCounters {
            evicted_budget: sat_u32(d.evicted_budget.iter().chain(&d.evicted_disk).sum::<u64>()),
            expired_ttl: sat_u32(d.expired_ttl.iter().sum()),
            corrupt: sat_u32(d.corrupt),
        }
    }

    /// Records moved out of the outbox because they did not decode, with
    /// their raw bytes, for inspection.
    pub fn corrupt_records(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.tree()?
            .scan_prefix([CORRUPT_PREFIX])
            .map(|kv| {
                let (k, v) = kv.map_err(db_err("scan corrupt records"))?;
                let id = k.get(1..9).and_then(super::layout::u64_value).unwrap_or(0);
                Ok((id, v.to_vec()))
            })
            .collect()
    }

    /// Makes the next `n` journal appends fail with "no space left on
    /// device" (ENOSPC) after writing half their bytes: for tests of how the
    /// store copes with a full disk.
    #[doc(hidden)]
    pub fn fail_next_journal_writes_for_test(&self, n: u32) {
        self.state().journal.fail_next_appends(n);
    }

    /// Stores raw bytes as the record `id` with `priority`, bypassing
    /// encoding (and the budget): for tests of how the store copes with bad
    /// records on disk.
    #[doc(hidden)]
    pub fn insert_raw_for_test(&self, id: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let mut st = self.state();
        let mut stats = st.stats;
        let mut batch = sled::Batch::default();
        for p in Priority::ALL {
            if let Some(v) = self
                .tree()?
                .get(index_key(p, id))
                .map_err(db_err("read outbox"))?
            {
                batch.remove(&index_key(p, id)[..]);
                stats.sub(p, Meta::decode(&v).map_or(0, |m| m.len));
            }
        }
        let meta = Meta {
            time_ms: 0,
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        };
        stats.add(Priority::Normal, meta.len);
        batch.insert(&event_key(id)[..], bytes);
        batch.insert(&index_key(Priority::Normal, id)[..], &meta.encode()[..]);
        batch.insert(STATS_KEY, stats.encode());
        self.apply(batch, "write raw")?;
        st.stats = stats;
        drop(st);
        self.flush_durable()
    }
}

type IndexEntry = (Priority, u64, Meta);

fn next_index_entry(it: &mut sled::Iter) -> Result<Option<IndexEntry>, StoreError> {
    for kv in it.by_ref() {
        let (k, v) = kv.map_err(db_err("scan outbox"))?;
        if let (Some((p, id)), Some(meta)) = (parse_index_key(&k), Meta::decode(&v)) {
            return Ok(Some((p, id, meta)));
        }
    }
    Ok(None)
}

fn log_evictions(a: &Appended, stats: &QueueStats, free: Option<u64>, min_free_bytes: u64) {
    let mut budget = [0u64; 4];
    let mut disk = [0u64; 4];
    for (id, p) in a.evicted.iter().chain(&a.dropped) {
        let for_disk = a.for_disk.contains(id);
        let reason = if for_disk { "disk" } else { "budget" };
        tracing::debug!(id, priority = p.as_str(), reason, "outbox item evicted");
        if for_disk {
            disk[p.index()] += 1;
        } else {
            budget[p.index()] += 1;
        }
    }
    let not_stored = |reason_disk: bool| {
        a.dropped
            .iter()
            .filter(|(id, _)| a.for_disk.contains(id) == reason_disk)
            .count()
    };
    if budget.iter().any(|&n| n > 0) {
        let [low, normal, high, urgent] = budget;
        tracing::warn!(
            low,
            normal,
            high,
            urgent,
            new_not_stored = not_stored(false),
            items = stats.total_items(),
            record_bytes = stats.total_bytes(),
            reason = "budget",
            "outbox full: items evicted undelivered"
        );
    }
    if disk.iter().any(|&n| n > 0) {
        let [low, normal, high, urgent] = disk;
        tracing::warn!(
            low,
            normal,
            high,
            urgent,
            new_not_stored = not_stored(true),
            items = stats.total_items(),
            record_bytes = stats.total_bytes(),
            free_bytes = ?free,
            min_free_bytes,
            reason = "disk",
            "disk below its reserve: items evicted undelivered"
        );
    }
}
