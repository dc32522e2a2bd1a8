//! Tests of the outbox semantics: order, confirmation, expiry, budget
//! eviction, counters across reopen, corrupt records, old databases, status
//! records, and a seeded model-based test of the invariants.

use std::collections::BTreeMap;

use messages::{
    EventClass, KeyFeatures, ModalityScores, ModelVersion, Permille, Priority, SensorHealth,
    StatusRecord, encode_event,
};

use super::*;
use crate::outbox::{BudgetConfig, OutboxConfig, TtlConfig};

pub(super) const T0: i64 = 1_780_000_000_000;
const DAY: i64 = 86_400_000;

/// An event whose default-rule priority is `p` (see `PriorityRules::default`).
pub(super) fn ev(p: Priority, start_ms: i64) -> impl FnOnce(u64) -> EventRecord {
    let (class, conf) = match p {
        Priority::Low => (EventClass::Background, 500),
        Priority::Normal => (EventClass::Wildlife, 500),
        Priority::High => (EventClass::Wildlife, 900),
        Priority::Urgent => (EventClass::MachineryAnomaly, 950),
    };
    move |id| EventRecord {
        id,
        node_id: "n1".into(),
        start_ms,
        duration_ms: 1000,
        class,
        confidence: Permille(conf),
        scores: ModalityScores::default(),
        features: KeyFeatures::default(),
        model: ModelVersion::TRIGGERS_ONLY,
        time: Default::default(),
        mono: None,
    }
}

fn status(time_ms: i64) -> impl FnOnce(u64) -> StatusRecord {
    move |id| StatusRecord {
        id,
        node_id: "n1".into(),
        time_ms,
        uptime_s: 3600,
        battery_permille: 812,
        battery_mv: 12_650,
        power_mode: messages::PowerModeCode::Saving,
        air_temp_c100: Some(-350),
        board_temp_c100: None,
        sensors: SensorHealth::default(),
        queue: [1, 2, 3, 4],
        drops: messages::DropCounters::default(),
        model: ModelVersion(3),
        last_contact_ms: Some(T0 - 5000),
        cause: Default::default(),
        update: Default::default(),
        disk: Default::default(),
        clock: Default::default(),
        detection: None,
        not_stored: None,
    }
}

fn cfg(max_items: u64, max_record_bytes: u64) -> OutboxConfig {
    OutboxConfig {
        budget: BudgetConfig {
            max_items,
            max_record_bytes,
            // These tests are about the item and byte limits, whatever the
            // build disk's free space (disk_tests.rs covers the reserve).
            min_free_bytes: 0,
        },
        ..OutboxConfig::default()
    }
}

fn open_cfg(dir: &Path, c: &OutboxConfig) -> EventStore {
    EventStore::open_with(dir, &StoreConfig::default(), c.clone())
        .unwrap()
        .0
}

fn ids_of(p: &Pending) -> Vec<u64> {
    p.items.iter().map(|i| i.id).collect()
}

#[test]
fn pending_is_highest_priority_first_then_oldest_with_filter_and_limit() {
    let t = tempfile::tempdir().unwrap();
    let s = open_cfg(&t.path().join("store"), &OutboxConfig::default());
    let mut by_p: BTreeMap<Priority, Vec<u64>> = BTreeMap::new();
    for (i, p) in [
        Priority::Low,
        Priority::Urgent,
        Priority::Normal,
        Priority::High,
        Priority::Low,
        Priority::Normal,
        Priority::Urgent,
    ]
    .into_iter()
    .enumerate()
    {
        let id = s.append(ev(p, T0 + i as i64)).unwrap().id;
        by_p.entry(p).or_default().push(id);
    }
    let want: Vec<u64> = by_p.values().rev().flatten().copied().collect();
    let all = s.pending(Priority::Low, 100).unwrap();
    assert_eq!(ids_of(&all), want);
    assert!(all.corrupt.is_empty());
    for item in &all.items {
        assert_eq!(item.bytes, item.message.encode());
        assert_eq!(item.message.id(), item.id);
        let p = by_p
            .iter()
            .find(|(_, v)| v.contains(&item.id))
            .map(|(p, _)| *p);
        assert_eq!(Some(item.priority), p);
    }
    let high = s.pending(Priority::High, 100).unwrap();
    assert_eq!(ids_of(&high), want[..3]);
    let three = s.pending(Priority::Low, 3).unwrap();
    assert_eq!(ids_of(&three), want[..3]);
    assert_eq!(s.queue_depth(), [2, 2, 1, 2]);
}

#[test]
fn confirm_removes_exactly_those_ids_durably() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let ids: Vec<u64> = {
        let s = open_cfg(&dir, &OutboxConfig::default());
        let ids: Vec<u64> = (0..6)
            .map(|i| s.append(ev(Priority::Normal, T0 + i)).unwrap().id)
            .collect();
        // Twice the same id, and one never stored: counted once, ignored.
        let removed = s
            .confirm_delivered(&[ids[1], ids[4], ids[1], 9999])
            .unwrap();
        assert_eq!(removed, 2);
        assert_eq!(s.queue_depth(), [0, 4, 0, 0]);
        assert_eq!(s.confirm_delivered(&[ids[1]]).unwrap(), 0);
        ids
    };
    let (s, r) = EventStore::open(&dir, &StoreConfig::default()).unwrap();
    assert_eq!(r.stored, 4);
    let left = ids_of(&s.pending(Priority::Low, 100).unwrap());
    assert_eq!(left, [ids[0], ids[2], ids[3], ids[5]]);
    assert_eq!(s.get(ids[4]).unwrap(), None);
    assert_eq!(s.drop_counters(), messages::DropCounters::default());
}

#[test]
fn a_priority_hint_right_wrong_or_missing_removes_the_same_items() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let s = open_cfg(&dir, &OutboxConfig::default());
    let ps = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];
    let ids: Vec<u64> = (0..8)
        .map(|i| s.append(ev(ps[i % 4], T0 + i as i64)).unwrap().id)
        .collect();
    assert_eq!(s.queue_depth(), [2, 2, 2, 2]);
    // Right hints, a wrong one, none, and an id never stored.
    let removed = s
        .confirm_delivered_hinted(&[
            (ids[0], Some(Priority::Low)),
            (ids[1], Some(Priority::Normal)),
            (ids[2], Some(Priority::Low)),
            (ids[3], None),
            (9999, Some(Priority::High)),
        ])
        .unwrap();
    assert_eq!(removed, 4);
    assert_eq!(s.queue_depth(), [1, 1, 1, 1]);
    drop(s);
    let (s, r) = EventStore::open(&dir, &StoreConfig::default()).unwrap();
    assert_eq!(r.stored, 4);
    assert_eq!(s.queue_depth(), [1, 1, 1, 1]);
    let mut left = ids_of(&s.pending(Priority::Low, 100).unwrap());
    left.sort_unstable();
    assert_eq!(left, ids[4..]);
}

#[test]
fn expiry_follows_the_ttl_of_each_priority_and_is_counted() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let c = OutboxConfig {
        ttl: TtlConfig {
            low_days: 1,
            normal_days: 2,
            high_days: 3,
            urgent_days: 0,
        },
        ..OutboxConfig::default()
    };
    let s = open_cfg(&dir, &c);
    let low_old = s.append(ev(Priority::Low, T0)).unwrap().id;
    let low_new = s.append(ev(Priority::Low, T0 + DAY)).unwrap().id;
    let normal = s.append(ev(Priority::Normal, T0)).unwrap().id;
    let high = s.append(ev(Priority::High, T0)).unwrap().id;
    let urgent = s.append(ev(Priority::Urgent, T0 - 1000 * DAY)).unwrap().id;
    let st = s.append_status(status(T0)).unwrap().id;

    // Exactly at the limit is not yet expired.
    assert!(s.expire(T0 + DAY).unwrap().items.is_empty());
    let e = s.expire(T0 + DAY + 1).unwrap();
    assert_eq!(e.items, [(low_old, Priority::Low)]);
    let e = s.expire(T0 + 2 * DAY + 1).unwrap();
    let mut got: Vec<u64> = e.items.iter().map(|(id, _)| *id).collect();
    got.sort();
    assert_eq!(got, [low_new, normal, st]);
    assert_eq!(e.per_priority(), [1, 2, 0, 0]);
    drop(s);
    let s = open_cfg(&dir, &c);
    assert_eq!(s.drop_counters().expired_ttl, 4);
    assert_eq!(s.drop_stats().expired_ttl, [2, 2, 0, 0]);
    let e = s.expire(T0 + 10_000 * DAY).unwrap();
    assert_eq!(e.items, [(high, Priority::High)]);
    assert_eq!(ids_of(&s.pending(Priority::Low, 10).unwrap()), [urgent]);
    assert_eq!(s.queue_depth(), [0, 0, 0, 1]);
    assert_eq!(s.drop_counters().expired_ttl, 5);
}

#[test]
fn budget_evicts_lowest_priority_oldest_first_and_counts_it() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let c = cfg(4, 1 << 20);
    let s = open_cfg(&dir, &c);
    let n1 = s.append(ev(Priority::Normal, T0)).unwrap().id;
    let l1 = s.append(ev(Priority::Low, T0)).unwrap().id;
    let h1 = s.append(ev(Priority::High, T0)).unwrap().id;
    let l2 = s.append(ev(Priority::Low, T0)).unwrap().id;
    assert_eq!(s.drop_counters().evicted_budget, 0);

    // Full: a new normal evicts the oldest low, then the next low.
    let n2 = s.append(ev(Priority::Normal, T0)).unwrap().id;
    assert_eq!(s.get(l1).unwrap(), None);
    let a = s
        .append_messages(1, |id| Message::Event(ev(Priority::Urgent, T0)(id)))
        .unwrap();
    assert_eq!(a.evicted, [(l2, Priority::Low)]);
    let u1 = a.stored[0].0.id();
    // Then the oldest normal, though a newer normal exists.
    let h2 = s.append(ev(Priority::High, T0)).unwrap().id;
    assert_eq!(s.get(n1).unwrap(), None);
    assert!(s.get(n2).unwrap().is_some());
    // A new low below everything stored is the one that goes.
    match s.append(ev(Priority::Low, T0)) {
        Err(StoreError::BudgetFull { priority, id }) => {
            assert_eq!(priority, Priority::Low);
            assert!(id > h2);
        }
        other => panic!("{other:?}"),
    }
    // A batch mixing both: the new low goes, then the oldest normal.
    let a = s
        .append_messages(2, |id| {
            let p = if id % 2 == 0 {
                Priority::Low
            } else {
                Priority::Urgent
            };
            Message::Event(ev(p, T0)(id))
        })
        .unwrap();
    assert_eq!(a.stored.len() + a.dropped.len(), 2);
    assert_eq!(a.dropped.len(), 1);
    assert_eq!(a.dropped[0].1, Priority::Low);
    assert_eq!(a.evicted, [(n2, Priority::Normal)]);
    let left = ids_of(&s.pending(Priority::Low, 10).unwrap());
    assert_eq!(left.len(), 4);
    assert_eq!(&left[..2], [u1, a.stored[0].0.id()]);
    assert_eq!(&left[2..], [h1, h2]);
    assert_eq!(s.drop_stats().evicted_budget, [4, 2, 0, 0]);
    drop(s);
    // The counters survive a restart.
    let s = open_cfg(&dir, &c);
    assert_eq!(s.drop_counters().evicted_budget, 6);
    assert_eq!(s.queue_depth(), [0, 0, 2, 2]);
}

#[test]
fn byte_budget_is_exact_on_encoded_record_bytes() {
    let t = tempfile::tempdir().unwrap();
    let one = encode_event(&ev(Priority::Normal, T0)(1)).len() as u64;
    let c = cfg(1000, 10 * one + one / 2);
    let s = open_cfg(&t.path().join("store"), &c);
    for i in 0..25 {
        s.append(ev(Priority::Normal, T0 + i)).unwrap();
        let q = s.queue_stats();
        assert!(q.total_bytes() <= c.budget.max_record_bytes);
    }
    let q = s.queue_stats();
    assert_eq!(q.items[1], 10);
    assert_eq!(q.total_bytes(), 10 * one);
    assert_eq!(s.drop_counters().evicted_budget, 15);
}

#[test]
fn undecodable_record_is_reported_once_counted_and_kept_aside() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let s = open_cfg(&dir, &OutboxConfig::default());
    let a = s.append(ev(Priority::Normal, T0)).unwrap().id;
    let b = s.append(ev(Priority::Normal, T0)).unwrap().id;
    let bad = b + 100;
    s.insert_raw_for_test(bad, &[1, 0xff, 0xff]).unwrap();
    assert_eq!(s.queue_depth(), [0, 3, 0, 0]);
    let p = s.pending(Priority::Low, 10).unwrap();
    assert_eq!(ids_of(&p), [a, b]);
    match p.corrupt.as_slice() {
        [StoreError::Decode { id, .. }] => assert_eq!(*id, bad),
        other => panic!("{other:?}"),
    }
    assert!(p.corrupt[0].to_string().contains(&bad.to_string()));
    assert_eq!(s.drop_counters().corrupt, 1);
    assert_eq!(s.queue_depth(), [0, 2, 0, 0]);
    // Reported once: it is no longer in the outbox, but kept for inspection.
    assert!(s.pending(Priority::Low, 10).unwrap().corrupt.is_empty());
    assert_eq!(s.corrupt_records().unwrap(), [(bad, vec![1, 0xff, 0xff])]);
    drop(s);
    let s = open_cfg(&dir, &OutboxConfig::default());
    assert_eq!(s.drop_counters().corrupt, 1);
    assert_eq!(s.queue_depth(), [0, 2, 0, 0]);
}

#[test]
fn a_database_written_before_priorities_opens_with_everything_normal() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    // What the previous code wrote: `e` + id and `m:next_id`, nothing else.
    let records: Vec<EventRecord> = (1..=5)
        .map(|id| {
            ev(
                if id == 3 {
                    Priority::Urgent
                } else {
                    Priority::Low
                },
                T0 + id as i64,
            )(id)
        })
        .collect();
    {
        let db = sled::Config::new()
            .path(&dir)
            .cache_capacity(8 << 20)
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(None)
            .open()
            .unwrap();
        let tree = db.open_tree("outbox").unwrap();
        for r in &records {
            tree.insert(layout::event_key(r.id), encode_event(r))
                .unwrap();
        }
        tree.insert(layout::NEXT_ID_KEY, &6u64.to_be_bytes()[..])
            .unwrap();
        db.flush().unwrap();
    }
    let (s, r) = EventStore::open(&dir, &StoreConfig::default()).unwrap();
    assert_eq!((r.stored, r.unindexed, r.next_id), (5, 5, 6));
    assert_eq!(s.queue_depth(), [0, 5, 0, 0]);
    let p = s.pending(Priority::Low, 10).unwrap();
    assert_eq!(ids_of(&p), [1, 2, 3, 4, 5]);
    assert!(p.items.iter().all(|i| i.priority == Priority::Normal));
    assert_eq!(p.items[2].time_ms, T0 + 3);
    let back: Vec<EventRecord> = s.iter_from(0).map(|r| r.unwrap()).collect();
    assert_eq!(back, records);
    drop(s);
    // The repair was durable and is not repeated.
    let (s, r) = EventStore::open(&dir, &StoreConfig::default()).unwrap();
    assert_eq!((r.stored, r.unindexed), (5, 0));
    assert_eq!(s.confirm_delivered(&[1, 2, 3, 4, 5]).unwrap(), 5);
    assert!(s.is_empty());
}

#[test]
fn status_records_round_trip_with_the_status_priority() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let mut c = OutboxConfig::default();
    c.priority.status = Priority::High;
    let s = open_cfg(&dir, &c);
    let e = s.append(ev(Priority::Normal, T0)).unwrap();
    let st = s.append_status(status(T0 + 10)).unwrap();
    assert_eq!(st.id, e.id + 1);
    drop(s);
    let s = open_cfg(&dir, &c);
    assert_eq!(
        s.get_message(st.id).unwrap(),
        Some(Message::Status(st.clone()))
    );
    let p = s.pending(Priority::Low, 10).unwrap();
    assert_eq!(ids_of(&p), [st.id, e.id]);
    assert_eq!(p.items[0].priority, Priority::High);
    assert_eq!(p.items[0].message, Message::Status(st.clone()));
    assert_eq!(p.items[0].bytes, messages::encode_status(&st));
    // Event views leave status reports out; the message view has both.
    assert_eq!(
        s.iter_from(0).map(|r| r.unwrap().id).collect::<Vec<_>>(),
        [e.id]
    );
    assert_eq!(s.iter_messages_from(0).count(), 2);
    assert_eq!(s.len(), 2);
}

#[test]
fn a_status_record_on_an_update_result_is_stored_at_priority_high_at_least() {
    let t = tempfile::tempdir().unwrap();
    let on_update = |time_ms| {
        let build = status(time_ms);
        move |id| StatusRecord {
            cause: messages::StatusCause::UpdateResult,
            ..build(id)
        }
    };
    let s = open_cfg(&t.path().join("a"), &OutboxConfig::default());
    let periodic = s.append_status(status(T0)).unwrap();
    let result = s.append_status(on_update(T0 + 10)).unwrap();
    let p = s.pending(Priority::Low, 10).unwrap();
    assert_eq!(ids_of(&p), [result.id, periodic.id]);
    assert_eq!(p.items[0].priority, Priority::High);
    assert_eq!(p.items[1].priority, Priority::Normal);
    // A configured status priority above high is kept.
    let mut c = OutboxConfig::default();
    c.priority.status = Priority::Urgent;
    let s = open_cfg(&t.path().join("b"), &c);
    s.append_status(on_update(T0)).unwrap();
    let p = s.pending(Priority::Low, 10).unwrap();
    assert_eq!(p.items[0].priority, Priority::Urgent);
}

/// A seeded random sequence of appends, confirms, expiries and reopens,
/// checked against a model: nothing acknowledged and not confirmed,
/// evicted or expired is ever missing; depths equal a recount; eviction
/// takes the lowest (priority, id) first; counters match.
/// `OUTBOX_PROPTEST_SEEDS=200` runs longer.
#[test]
fn model_based_sequence_keeps_the_invariants() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let seeds: u64 = std::env::var("OUTBOX_PROPTEST_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    for seed in 0..seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("store");
        let c = OutboxConfig {
            ttl: TtlConfig {
                low_days: 1,
                normal_days: 2,
                high_days: 4,
                urgent_days: 0,
            },
            ..cfg(24, 1 << 20)
        };
        let mut s = open_cfg(&dir, &c);
        let mut model: BTreeMap<u64, (Priority, Message)> = BTreeMap::new();
        let (mut evicted, mut expired) = ([0u64; 4], [0u64; 4]);
        let mut now = T0;
        for step in 0..150 {
            let ctx = format!("seed {seed} step {step}");
            match rng.random_range(0..10) {
                0..=4 => {
                    let n = rng.random_range(1..6);
                    let times: Vec<i64> =
                        (0..n).map(|_| now - rng.random_range(0..3 * DAY)).collect();
                    let ps: Vec<Priority> = (0..n)
                        .map(|_| Priority::ALL[rng.random_range(0..4)])
                        .collect();
                    let statuses: Vec<bool> = (0..n).map(|_| rng.random_bool(0.1)).collect();
                    let mut i = 0;
                    let a = s
                        .append_messages(n, |id| {
                            let m = if statuses[i] {
                                Message::Status(status(times[i])(id))
                            } else {
                                Message::Event(ev(ps[i], times[i])(id))
                            };
                            i += 1;
                            m
                        })
                        .unwrap();
                    let gone: Vec<(Priority, u64)> = a
                        .evicted
                        .iter()
                        .chain(&a.dropped)
                        .map(|&(id, p)| (p, id))
                        .collect();
                    for &(id, p) in &a.evicted {
                        assert!(model.remove(&id).is_some(), "{ctx}: evicted {id} unknown");
                        evicted[p.index()] += 1;
                    }
                    for &(_, p) in &a.dropped {
                        evicted[p.index()] += 1;
                    }
                    for (m, p) in a.stored {
                        model.insert(m.id(), (p, m));
                    }
                    if let Some(worst_gone) = gone.iter().max() {
                        let best_left = model.iter().map(|(id, (p, _))| (*p, *id)).min();
                        assert!(
                            best_left.is_none_or(|b| b > *worst_gone),
                            "{ctx}: evicted {worst_gone:?} while {best_left:?} stays"
                        );
                    }
                }
                5 | 6 => {
                    let known: Vec<u64> = model.keys().copied().collect();
                    let mut pick: Vec<u64> = known
                        .iter()
                        .filter(|_| rng.random_bool(0.3))
                        .copied()
                        .collect();
                    pick.push(s.next_id() + 1000);
                    let removed = s.confirm_delivered(&pick).unwrap();
                    let mut want = 0;
                    for id in &pick {
                        want += usize::from(model.remove(id).is_some());
                    }
                    assert_eq!(removed, want, "{ctx}");
                }
                7 => {
                    now += rng.random_range(0..DAY);
                    let e = s.expire(now).unwrap();
                    for (id, p) in e.items {
                        let (mp, m) = model.remove(&id).expect("expired item is known");
                        assert_eq!(mp, p);
                        let ttl = c.ttl.ttl_ms(p).expect("urgent never expires");
                        assert!(super::recount::record_time(&m) < now - ttl, "{ctx}");
                        expired[p.index()] += 1;
                    }
                    for (p, m) in model.values() {
                        if let Some(ttl) = c.ttl.ttl_ms(*p) {
                            assert!(
                                super::recount::record_time(m) >= now - ttl,
                                "{ctx}: not expired"
                            );
                        }
                    }
                }
                _ => {
                    drop(s);
                    s = open_cfg(&dir, &c);
                }
            }
            // Invariants.
            let p = s.pending(Priority::Low, usize::MAX).unwrap();
            assert!(p.corrupt.is_empty(), "{ctx}");
            let got: BTreeMap<u64, (Priority, Message)> = p
                .items
                .into_iter()
                .map(|i| (i.id, (i.priority, i.message)))
                .collect();
            assert_eq!(got, model, "{ctx}: outbox differs from the model");
            let mut depth = [0u32; 4];
            for (p, _) in model.values() {
                depth[p.index()] += 1;
            }
            assert_eq!(s.queue_depth(), depth, "{ctx}");
            assert!(model.len() as u64 <= c.budget.max_items, "{ctx}");
            let d = s.drop_stats();
            assert_eq!(
                (d.evicted_budget, d.expired_ttl),
                (evicted, expired),
                "{ctx}"
            );
        }
    }
}

/// Figures for docs/outbox.md: sled's files against the accounted record
/// bytes, and the cost of open and pending, for a large outbox:
/// `cargo test -p uplink --release -- --ignored --nocapture outbox_figures`.
#[test]
#[ignore]
fn outbox_figures() {
    use std::time::Instant;
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&base).unwrap();
    let t = tempfile::tempdir_in(base).unwrap();
    let dir = t.path().join("store");
    let n = 20_000u64;
    let c = cfg(n / 2, 1 << 30);
    {
        let s = open_cfg(&dir, &c);
        let started = Instant::now();
        for i in 0..n / 100 {
            s.append_messages(100, |id| {
                let p = Priority::ALL[(id % 4) as usize];
                Message::Event(ev(p, T0 + i as i64)(id))
            })
            .unwrap();
        }
        let append_s = started.elapsed().as_secs_f64();
        let q = s.queue_stats();
        let disk = s.bytes_on_disk().unwrap();
        println!(
            "{n} events appended in batches of 100 ({append_s:.2} s) with max_items {}: kept {}, evicted {}; record bytes {}, sled files {} bytes ({:.1}x)",
            c.budget.max_items,
            q.total_items(),
            s.drop_counters().evicted_budget,
            q.total_bytes(),
            disk,
            disk as f64 / q.total_bytes() as f64
        );
        let started = Instant::now();
        let p = s.pending(Priority::Low, 64).unwrap();
        println!(
            "pending(low, 64): {} items in {:.2} ms",
            p.items.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        let started = Instant::now();
        let e = s.expire(T0 + 100 * DAY).unwrap();
        println!(
            "expire removing {} high items: {:.1} ms",
            e.items.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    let started = Instant::now();
    let s = open_cfg(&dir, &c);
    println!(
        "open with {} items: {:.1} ms",
        s.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    // The same number of items written without any removal.
    let dir = t.path().join("plain");
    let s = open_cfg(&dir, &c);
    for i in 0..n / 200 {
        s.append_batch(100, |id| ev(Priority::Normal, T0 + i as i64)(id))
            .unwrap();
    }
    let q = s.queue_stats();
    let disk = s.bytes_on_disk().unwrap();
    println!(
        "{} events, no removals: record bytes {}, sled files {} bytes ({:.1}x)",
        q.total_items(),
        q.total_bytes(),
        disk,
        disk as f64 / q.total_bytes() as f64
    );
}

#[test]
fn pending_except_skips_items_in_flight_and_fills_the_limit_with_the_next() {
    let t = tempfile::tempdir().unwrap();
    let s = open_cfg(&t.path().join("store"), &OutboxConfig::default());
    let ids: Vec<u64> = (0..6)
        .map(|i| s.append(ev(Priority::Normal, T0 + i)).unwrap().id)
        .collect();
    let in_flight: std::collections::HashSet<u64> = ids[..3].iter().copied().collect();
    let p = s.pending_except(Priority::Low, 2, &in_flight).unwrap();
    assert_eq!(ids_of(&p), ids[3..5]);
    let none = std::collections::HashSet::new();
    assert_eq!(
        ids_of(&s.pending_except(Priority::Low, 2, &none).unwrap()),
        ids[..2]
    );
    let all: std::collections::HashSet<u64> = ids.iter().copied().collect();
    assert!(
        s.pending_except(Priority::Low, 10, &all)
            .unwrap()
            .items
            .is_empty()
    );
}
