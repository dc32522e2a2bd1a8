//! Tests of the disk reserve (`min_free_bytes`) and of a full disk, on a
//! simulated filesystem ([`FakeFreeSpace`]) and injected ENOSPC journal
//! writes: eviction order, counters, what is refused and when, exact
//! accounting, and that nothing acknowledged is lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use messages::{Message, Priority};

use super::outbox_tests::{T0, ev};
use super::*;
use crate::outbox::{BudgetConfig, OutboxConfig};

const MIB: u64 = 1 << 20;
const RESERVE: u64 = 8 * MIB;

fn reserve_cfg(min_free_bytes: u64) -> OutboxConfig {
    OutboxConfig {
        budget: BudgetConfig {
            max_items: 100_000,
            max_record_bytes: 1 << 30,
            min_free_bytes,
        },
        ..OutboxConfig::default()
    }
}

fn open_fake(dir: &Path, c: &OutboxConfig, disk: &FakeFreeSpace) -> (EventStore, OpenReport) {
    EventStore::open_with_free_space(
        dir,
        &StoreConfig::default(),
        c.clone(),
        Arc::new(disk.clone()),
    )
    .unwrap()
}

/// Record and key bytes of the outbox: what does not grow below the reserve.
fn footprint(s: &EventStore) -> u64 {
    let q = s.queue_stats();
    q.total_bytes() + KEY_BYTES_PER_ITEM * q.total_items()
}

/// Items and bytes per priority, recounted from the records themselves.
fn recount(s: &EventStore) -> QueueStats {
    let mut q = QueueStats::default();
    for i in s.pending(Priority::Low, usize::MAX).unwrap().items {
        q.items[i.priority.index()] += 1;
        q.bytes[i.priority.index()] += i.bytes.len() as u64;
    }
    q
}

fn stored(s: &EventStore) -> BTreeMap<u64, Priority> {
    s.pending(Priority::Low, usize::MAX)
        .unwrap()
        .items
        .into_iter()
        .map(|i| (i.id, i.priority))
        .collect()
}

fn append_one(s: &EventStore, p: Priority) -> Appended {
    s.append_messages(1, |id| Message::Event(ev(p, T0 + id as i64)(id)))
        .unwrap()
}

/// Every item that left ranks below every item still stored.
fn assert_ranked_below(a: &Appended, s: &EventStore, ctx: &str) {
    let worst_gone = a
        .evicted
        .iter()
        .chain(&a.dropped)
        .map(|&(id, p)| (p, id))
        .max();
    let best_left = stored(s).into_iter().map(|(id, p)| (p, id)).min();
    if let (Some(g), Some(b)) = (worst_gone, best_left) {
        assert!(g < b, "{ctx}: {g:?} left while {b:?} stays");
    }
}

#[test]
fn below_the_reserve_an_append_evicts_lowest_priority_then_oldest_and_counts_it() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let disk = FakeFreeSpace::new(100 * MIB);
    let c = reserve_cfg(RESERVE);
    let (s, _) = open_fake(&dir, &c, &disk);
    let mut by_p: BTreeMap<Priority, Vec<u64>> = BTreeMap::new();
    use Priority::*;
    for p in [Normal, Low, High, Low, Normal, Low, Normal] {
        let a = append_one(&s, p);
        assert!(a.evicted.is_empty() && a.dropped.is_empty());
        by_p.entry(p).or_default().push(a.stored[0].0.id());
    }
    assert_eq!(s.disk_status().state, DiskState::Ok);

    // The disk fills to one byte below the reserve.
    disk.set(RESERVE - 1);
    assert_eq!(
        s.disk_status(),
        DiskStatus {
            free_bytes: Some(RESERVE - 1),
            min_free_bytes: RESERVE,
            state: DiskState::Evicting,
            evicted_disk: 0,
        }
    );
    let before = footprint(&s);
    let a = append_one(&s, High);
    assert_eq!(a.stored.len(), 1);
    assert_eq!(a.free_bytes, Some(RESERVE - 1));
    // The oldest low goes first (more lows if the new record is longer).
    assert_eq!(a.evicted.first(), Some(&(by_p[&Low][0], Low)));
    assert!(a.evicted.iter().all(|&(_, p)| p == Low), "{a:?}");
    assert_eq!(
        a.for_disk,
        a.evicted.iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    assert!(footprint(&s) <= before, "the outbox grew below the reserve");
    assert_ranked_below(&a, &s, "first");

    // Every low goes, oldest first, before the oldest normal.
    let mut gone: Vec<(u64, Priority)> = a.evicted.clone();
    while !gone.iter().any(|&(_, p)| p == Normal) {
        let before = footprint(&s);
        let a = append_one(&s, High);
        assert_eq!(a.stored.len(), 1);
        assert!(footprint(&s) <= before);
        assert_ranked_below(&a, &s, "next");
        gone.extend(a.evicted);
    }
    let lows: Vec<(u64, Priority)> = by_p[&Low].iter().map(|&id| (id, Low)).collect();
    assert_eq!(gone[..3], lows[..]);
    assert_eq!(gone[3], (by_p[&Normal][0], Normal));

    // Counted for the disk, not the budget, and in the record's counter.
    let d = s.drop_stats();
    assert_eq!(d.evicted_budget, [0; 4]);
    assert_eq!(d.evicted_disk[Low.index()], 3);
    assert_eq!(
        d.evicted_disk.iter().sum::<u64>(),
        gone.len() as u64,
        "{gone:?}"
    );
    assert_eq!(
        u64::from(s.drop_counters().evicted_budget),
        gone.len() as u64
    );
    assert_eq!(s.disk_status().evicted_disk, gone.len() as u64);
    assert_eq!(s.queue_stats(), recount(&s));
}

#[test]
fn a_new_item_is_refused_only_when_it_ranks_below_everything_stored() {
    use Priority::*;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let disk = FakeFreeSpace::new(100 * MIB);
    let c = reserve_cfg(RESERVE);
    let (s, _) = open_fake(&dir, &c, &disk);
    let highs: Vec<u64> = (0..3)
        .map(|_| append_one(&s, High).stored[0].0.id())
        .collect();
    for _ in 0..2 {
        append_one(&s, Urgent);
    }
    disk.set(0);

    // A new low ranks below everything stored: refused, counted, typed.
    match s.append(ev(Low, T0)) {
        Err(StoreError::DiskReserve {
            priority: Low,
            free_bytes: 0,
            min_free_bytes: RESERVE,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(s.drop_stats().evicted_disk, [1, 0, 0, 0]);
    assert_eq!(s.disk_status().state, DiskState::Full);
    assert_eq!(s.len(), 5);
    // A batch: the new low is refused, the new high displaces the oldest high.
    let a = s
        .append_messages(2, |id| {
            let p = if id % 2 == 0 { Low } else { High };
            Message::Event(ev(p, T0)(id))
        })
        .unwrap();
    assert_eq!(a.dropped.len(), 1);
    assert_eq!(a.dropped[0].1, Low);
    assert_eq!(a.evicted.first(), Some(&(highs[0], High)));
    assert_eq!(a.stored.len(), 1);
    assert_eq!(s.disk_status().state, DiskState::Full);
    // A new high alone displaces the next oldest high: the store is no
    // longer refusing, only evicting.
    let a = append_one(&s, High);
    assert_eq!(a.evicted.first(), Some(&(highs[1], High)));
    assert_eq!(s.disk_status().state, DiskState::Evicting);

    // A high or urgent event is stored while lower-priority items remain.
    disk.set(100 * MIB);
    let lows: Vec<u64> = (0..6)
        .map(|_| append_one(&s, Low).stored[0].0.id())
        .collect();
    disk.set(RESERVE / 2);
    for p in [High, Urgent] {
        let a = append_one(&s, p);
        assert_eq!(a.stored.len(), 1, "{p}");
        assert!(a.evicted.iter().all(|&(_, q)| q == Low), "{a:?}");
        assert_ranked_below(&a, &s, p.as_str());
    }
    let left = s.queue_depth()[Low.index()];
    assert!(left > 0, "every low went for two new items");
    let oldest_low = stored(&s)
        .into_iter()
        .find(|&(_, p)| p == Low)
        .map(|(id, _)| id);
    assert_eq!(oldest_low, lows.get(lows.len() - left as usize).copied());

    // Exactly at the reserve is not below it: the outbox grows again.
    disk.set(RESERVE);
    let a = append_one(&s, Low);
    assert!(a.evicted.is_empty() && a.dropped.is_empty());
    assert_eq!(s.disk_status().state, DiskState::Ok);

    // The accounting is exact and survives a reopen without a repair.
    let (q, d) = (s.queue_stats(), s.drop_stats());
    assert_eq!(q, recount(&s));
    drop(s);
    let (s, r) = open_fake(&dir, &c, &disk);
    assert!(!r.repaired);
    assert_eq!((s.queue_stats(), s.drop_stats()), (q, d));
}

/// A disk whose use follows the outbox, filled and drained at random: the
/// outbox never grows below the reserve, what leaves ranks below what
/// stays, a refused item ranks below everything stored, the counters match
/// and the accounting equals a recount. `OUTBOX_PROPTEST_SEEDS=N` for more
/// seeds.
#[test]
fn on_a_filling_disk_the_reserve_order_counters_and_accounting_hold() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let seeds: u64 = std::env::var("OUTBOX_PROPTEST_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for seed in 0..seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("store");
        let c = reserve_cfg(RESERVE);
        // Room for about 60 items above the reserve; other writers come and go.
        let capacity = RESERVE + 60 * 60;
        let disk = FakeFreeSpace::new(capacity);
        let (mut s, _) = open_fake(&dir, &c, &disk);
        let mut model: BTreeMap<u64, Priority> = BTreeMap::new();
        let mut evicted_disk = [0u64; 4];
        let mut others = 0u64;
        let mut largest_batch = 0u64;
        for step in 0..250 {
            let ctx = format!("seed {seed} step {step}");
            disk.set(capacity.saturating_sub(footprint(&s) + others));
            match rng.random_range(0..10) {
                0..=6 => {
                    let n = rng.random_range(1..5);
                    let ps: Vec<Priority> = (0..n)
                        .map(|_| Priority::ALL[rng.random_range(0..4)])
                        .collect();
                    let below = disk.get() < RESERVE;
                    let before = footprint(&s);
                    let mut i = 0;
                    let a = s
                        .append_messages(n, |id| {
                            let m = Message::Event(ev(ps[i], T0 + id as i64)(id));
                            i += 1;
                            m
                        })
                        .unwrap();
                    let added: u64 = a
                        .stored
                        .iter()
                        .map(|(m, _)| m.encode().len() as u64 + KEY_BYTES_PER_ITEM)
                        .sum();
                    largest_batch = largest_batch.max(added);
                    if below {
                        assert!(footprint(&s) <= before, "{ctx}: grew below the reserve");
                        assert_eq!(a.for_disk.len(), a.evicted.len() + a.dropped.len());
                    } else {
                        assert!(a.evicted.is_empty() && a.dropped.is_empty(), "{ctx}");
                    }
                    for &(id, p) in &a.evicted {
                        assert_eq!(model.remove(&id), Some(p), "{ctx}: evicted {id}");
                        evicted_disk[p.index()] += 1;
                    }
                    for &(_, p) in &a.dropped {
                        evicted_disk[p.index()] += 1;
                    }
                    for (m, p) in &a.stored {
                        model.insert(m.id(), *p);
                    }
                    assert_ranked_below(&a, &s, &ctx);
                }
                7 => {
                    let pick: Vec<u64> = model
                        .keys()
                        .filter(|_| rng.random_bool(0.3))
                        .copied()
                        .collect();
                    s.confirm_delivered(&pick).unwrap();
                    for id in pick {
                        model.remove(&id);
                    }
                }
                8 => others = rng.random_range(0..2 * RESERVE),
                _ => {
                    drop(s);
                    let (reopened, r) = open_fake(&dir, &c, &disk);
                    assert!(!r.repaired, "{ctx}");
                    s = reopened;
                }
            }
            assert_eq!(stored(&s), model, "{ctx}: outbox differs from the model");
            assert_eq!(s.queue_stats(), recount(&s), "{ctx}");
            let d = s.drop_stats();
            assert_eq!(
                (d.evicted_disk, d.evicted_budget),
                (evicted_disk, [0; 4]),
                "{ctx}"
            );
            // The outbox grows only above the reserve, so it stops within
            // one append of it.
            assert!(
                footprint(&s) <= capacity - RESERVE + largest_batch,
                "{ctx}: footprint {} over the room above the reserve",
                footprint(&s)
            );
        }
        assert!(
            evicted_disk.iter().sum::<u64>() > 0,
            "seed {seed}: the disk never went below the reserve"
        );
    }
}

#[test]
fn no_space_left_is_retried_with_eviction_then_a_typed_error_and_nothing_is_lost() {
    use Priority::*;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let disk = FakeFreeSpace::new(100 * MIB);
    let c = reserve_cfg(RESERVE);
    let (s, _) = open_fake(&dir, &c, &disk);
    let lows: Vec<u64> = (0..4)
        .map(|_| append_one(&s, Low).stored[0].0.id())
        .collect();
    append_one(&s, Normal);

    // One failed write: the retry evicts the oldest low for the new high.
    let before = footprint(&s);
    s.fail_next_journal_writes_for_test(1);
    let a = append_one(&s, High);
    assert_eq!(a.stored.len(), 1);
    assert_eq!(a.evicted.first(), Some(&(lows[0], Low)));
    assert!(a.evicted.iter().all(|&(_, p)| p == Low), "{a:?}");
    assert_eq!(a.for_disk.len(), a.evicted.len());
    assert!(footprint(&s) <= before);
    assert_eq!(
        s.drop_stats().evicted_disk[Low.index()],
        a.evicted.len() as u64
    );
    assert_eq!(s.disk_status().state, DiskState::Ok);

    // Every attempt fails: a typed error; nothing stored, evicted or counted.
    let (kept, q, d, next) = (stored(&s), s.queue_stats(), s.drop_stats(), s.next_id());
    s.fail_next_journal_writes_for_test(ENOSPC_ATTEMPTS);
    let e = s.append(ev(Urgent, T0)).unwrap_err();
    match &e {
        StoreError::DiskFull {
            attempts,
            free_bytes,
            ..
        } => {
            assert_eq!(*attempts, ENOSPC_ATTEMPTS);
            assert_eq!(*free_bytes, Some(100 * MIB));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.is_storage_full());
    assert!(e.to_string().contains("no space left"), "{e}");
    assert_eq!(stored(&s), kept);
    assert_eq!((s.queue_stats(), s.drop_stats()), (q, d));
    assert_eq!(s.disk_status().state, DiskState::Full);
    // A new item is never dropped by a retry above the reserve: with nothing
    // below it, the append fails rather than lose it.
    let t2 = tempfile::tempdir().unwrap();
    let (empty, _) = open_fake(&t2.path().join("store"), &c, &disk);
    empty.fail_next_journal_writes_for_test(ENOSPC_ATTEMPTS);
    assert!(matches!(
        empty.append(ev(Low, T0)),
        Err(StoreError::DiskFull { .. })
    ));
    assert!(empty.is_empty());
    assert_eq!(empty.drop_stats(), DropStats::default());

    // The next append stores, with the id the failed one did not use.
    let u = s.append(ev(Urgent, T0)).unwrap();
    assert_eq!(u.id, next);
    assert_eq!(s.disk_status().state, DiskState::Ok);
    let (kept, q, d) = (stored(&s), s.queue_stats(), s.drop_stats());
    drop(s);
    // The journal kept no part of the failed appends: replayed on its own,
    // it holds exactly the stored items.
    let replay = journal::replay(&std::fs::read(journal::journal_path(&dir)).unwrap());
    assert_eq!(replay.damaged_blocks, 0);
    assert_eq!(
        replay.live.keys().copied().collect::<Vec<_>>(),
        kept.keys().copied().collect::<Vec<_>>()
    );
    let (s, r) = open_fake(&dir, &c, &disk);
    assert_eq!(r.journal_damaged_blocks, 0);
    assert!(r.restored.is_empty(), "{:?}", r.restored);
    assert!(!r.repaired);
    assert_eq!(stored(&s), kept);
    assert_eq!((s.queue_stats(), s.drop_stats()), (q, d));
}

#[test]
fn the_reserve_is_off_at_0_and_not_enforced_without_a_reading() {
    let t = tempfile::tempdir().unwrap();
    let disk = FakeFreeSpace::new(0);
    // Off: a disk with nothing free evicts nothing (the write decides).
    let (s, _) = open_fake(&t.path().join("off"), &reserve_cfg(0), &disk);
    for _ in 0..3 {
        assert!(append_one(&s, Priority::Low).evicted.is_empty());
    }
    assert_eq!(
        s.disk_status(),
        DiskStatus {
            free_bytes: Some(0),
            min_free_bytes: 0,
            state: DiskState::Ok,
            evicted_disk: 0
        }
    );
    // A filesystem without a size (FUSE without statfs), or a failing
    // reading: nothing is enforced, and the status says it cannot tell.
    let c = reserve_cfg(RESERVE);
    let (s, _) = open_fake(&t.path().join("on"), &c, &disk);
    for unknown in [true, false] {
        disk.set_unknown(unknown);
        disk.set_failing(!unknown);
        let a = append_one(&s, Priority::Low);
        assert!(a.evicted.is_empty() && a.dropped.is_empty());
        assert_eq!(a.free_bytes, None);
        let st = s.disk_status();
        assert_eq!((st.free_bytes, st.state), (None, DiskState::Ok));
    }
    // Readable again: enforced again.
    disk.set_failing(false);
    disk.set_unknown(false);
    let a = append_one(&s, Priority::Normal);
    assert!(!a.evicted.is_empty(), "{a:?}");
    assert_eq!(s.disk_status().state, DiskState::Evicting);
}
