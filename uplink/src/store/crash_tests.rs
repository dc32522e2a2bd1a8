//! SIGKILL during outbox changes: a worker process (this test binary, run
//! again with `OUTBOX_CRASH_DIR` set) appends with a small budget, confirms
//! and expires at random, printing each operation before it starts and its
//! result once it returned; the parent kills it at a random moment, reopens
//! the store and checks that only the operation in flight may have changed
//! anything, that its removals are counted exactly once, and that the
//! accounting never needed a repair. `OUTBOX_CRASH_KILLS` (default 6);
//! `OUTBOX_CRASH_DUMP=PATH` writes each worker's output to `PATH.<kill>`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use messages::{EventClass, KeyFeatures, ModalityScores, ModelVersion, Permille, Priority};
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::*;
use crate::outbox::{BudgetConfig, OutboxConfig, TtlConfig};

const T0: i64 = 1_780_000_000_000;
const HOUR: i64 = 3_600_000;

fn config() -> OutboxConfig {
    OutboxConfig {
        ttl: TtlConfig {
            low_days: 1,
            normal_days: 2,
            high_days: 3,
            urgent_days: 0,
        },
        budget: BudgetConfig {
            max_items: 30,
            max_record_bytes: 1 << 20,
            min_free_bytes: 0,
        },
        ..OutboxConfig::default()
    }
}

fn event(p: Priority, start_ms: i64, id: u64) -> EventRecord {
    let (class, conf) = match p {
        Priority::Low => (EventClass::Background, 500),
        Priority::Normal => (EventClass::Wildlife, 500),
        Priority::High => (EventClass::Wildlife, 900),
        Priority::Urgent => (EventClass::MachineryAnomaly, 950),
    };
    EventRecord {
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

fn list(ids: impl IntoIterator<Item = u64>) -> String {
    let v: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn parse_list(s: &str) -> Vec<u64> {
    if s == "-" {
        return Vec::new();
    }
    s.split(',').filter_map(|v| v.parse().ok()).collect()
}

/// The worker: runs only when the parent sets `OUTBOX_CRASH_DIR`.
#[test]
#[ignore]
fn outbox_crash_worker() {
    let Ok(dir) = std::env::var("OUTBOX_CRASH_DIR") else {
        return;
    };
    let seed: u64 = std::env::var("OUTBOX_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut now = T0 + seed as i64 * 6 * HOUR;
    let (s, _) = EventStore::open_with(Path::new(&dir), &StoreConfig::default(), config())
        .expect("worker opens the store");
    for _ in 0..100_000 {
        now += rng.random_range(0..HOUR);
        match rng.random_range(0..10) {
            0..=5 => {
                let n = rng.random_range(1..6);
                let ps: Vec<Priority> = (0..n)
                    .map(|_| Priority::ALL[rng.random_range(0..4)])
                    .collect();
                let ages: Vec<i64> = (0..n).map(|_| rng.random_range(0..48 * HOUR)).collect();
                println!("OBX B A {n}");
                let mut i = 0;
                let a = s
                    .append_messages(n, |id| {
                        let m = Message::Event(event(ps[i], now - ages[i], id));
                        i += 1;
                        m
                    })
                    .expect("append");
                println!(
                    "OBX A {} {} {}",
                    list(a.stored.iter().map(|(m, _)| m.id())),
                    list(a.evicted.iter().map(|(id, _)| *id)),
                    list(a.dropped.iter().map(|(id, _)| *id))
                );
            }
            6..=8 => {
                let p = s.pending(Priority::Low, usize::MAX).expect("pending");
                let ids: Vec<u64> = p
                    .items
                    .iter()
                    .map(|i| i.id)
                    .filter(|_| rng.random_bool(0.3))
                    .collect();
                println!("OBX B C {}", list(ids.iter().copied()));
                s.confirm_delivered(&ids).expect("confirm");
                println!("OBX C");
            }
            _ => {
                println!("OBX B X");
                let e = s.expire(now).expect("expire");
                println!("OBX X {}", list(e.items.iter().map(|(id, _)| *id)));
            }
        }
    }
}

enum InFlight {
    None,
    Append(usize),
    Confirm(BTreeSet<u64>),
    Expire,
}

#[test]
fn kill_9_during_outbox_changes_loses_nothing_and_counts_once() {
    let kills: u64 = std::env::var("OUTBOX_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let exe = std::env::current_exe().unwrap();
    let mut rng = StdRng::seed_from_u64(99);
    // What is durably in the store, as of the last reopen.
    let mut present: BTreeSet<u64> = BTreeSet::new();
    let mut counted = DropStats::default();
    let mut ops_total = 0;
    // Kills that landed with an operation in flight: append, confirm, expire.
    let mut caught = [0u32; 3];
    for k in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "store::crash_tests::outbox_crash_worker",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("OUTBOX_CRASH_DIR", &dir)
            .env("OUTBOX_CRASH_SEED", k.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        std::thread::sleep(std::time::Duration::from_millis(rng.random_range(150..900)));
        child.kill().unwrap();
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        if let Ok(p) = std::env::var("OUTBOX_CRASH_DUMP") {
            std::fs::write(format!("{p}.{k}"), lines.join("\n")).unwrap();
        }

        // Replay the completed operations.
        let mut model = present.clone();
        let (mut evicted, mut expired) = (0u64, 0u64);
        let mut in_flight = InFlight::None;
        for line in &lines {
            // The test harness may print on the same line before ours.
            let Some(at) = line.find("OBX ") else {
                continue;
            };
            let f: Vec<&str> = line[at + 4..].split(' ').collect();
            match f.as_slice() {
                ["B", "A", n] => in_flight = InFlight::Append(n.parse().unwrap()),
                ["B", "C", ids] => {
                    in_flight = InFlight::Confirm(parse_list(ids).into_iter().collect())
                }
                ["B", "X"] => in_flight = InFlight::Expire,
                ["A", stored, ev, dropped] => {
                    model.extend(parse_list(stored));
                    for id in parse_list(ev) {
                        assert!(model.remove(&id), "kill {k}: evicted {id} was not stored");
                        evicted += 1;
                    }
                    evicted += parse_list(dropped).len() as u64;
                    in_flight = InFlight::None;
                    ops_total += 1;
                }
                ["C"] => {
                    if let InFlight::Confirm(ids) = &in_flight {
                        for id in ids {
                            model.remove(id);
                        }
                    }
                    in_flight = InFlight::None;
                    ops_total += 1;
                }
                ["X", ids] => {
                    for id in parse_list(ids) {
                        assert!(model.remove(&id), "kill {k}: expired {id} was not stored");
                        expired += 1;
                    }
                    in_flight = InFlight::None;
                    ops_total += 1;
                }
                _ => panic!("kill {k}: unexpected line {line:?}"),
            }
        }

        let (s, report) = EventStore::open_with(&dir, &StoreConfig::default(), config()).unwrap();
        assert!(report.quarantined.is_none(), "kill {k}: quarantined");
        assert!(!report.repaired, "kill {k}: the accounting needed a repair");
        let p = s.pending(Priority::Low, usize::MAX).unwrap();
        assert!(p.corrupt.is_empty(), "kill {k}: corrupt records");
        let got: BTreeSet<u64> = p.items.iter().map(|i| i.id).collect();
        let missing: BTreeSet<u64> = model.difference(&got).copied().collect();
        let extra: BTreeSet<u64> = got.difference(&model).copied().collect();
        let d = s.drop_stats();
        let d_evicted =
            d.evicted_budget.iter().sum::<u64>() - counted.evicted_budget.iter().sum::<u64>();
        let d_expired = d.expired_ttl.iter().sum::<u64>() - counted.expired_ttl.iter().sum::<u64>();
        let ctx = format!(
            "kill {k} ({} lines): missing {missing:?}, extra {extra:?}, evicted +{d_evicted} (done {evicted}), expired +{d_expired} (done {expired})",
            lines.len()
        );
        match &in_flight {
            InFlight::Append(_) => caught[0] += 1,
            InFlight::Confirm(_) => caught[1] += 1,
            InFlight::Expire => caught[2] += 1,
            InFlight::None => {}
        }
        match in_flight {
            InFlight::None => {
                assert!(missing.is_empty() && extra.is_empty(), "{ctx}");
                assert_eq!((d_evicted, d_expired), (evicted, expired), "{ctx}");
            }
            InFlight::Append(n) => {
                // Either nothing of it, or all of it: its new items and the
                // evictions it made, each counted once.
                assert!(extra.len() <= n, "{ctx}");
                assert!(
                    extra
                        .iter()
                        .all(|id| *id > model.iter().copied().max().unwrap_or(0)),
                    "{ctx}"
                );
                assert_eq!(d_expired, expired, "{ctx}");
                let op_evicted = d_evicted - evicted;
                assert!(
                    op_evicted >= missing.len() as u64 && op_evicted <= (missing.len() + n) as u64,
                    "{ctx}"
                );
                if extra.is_empty() && missing.is_empty() {
                    // Not applied, or every new item dropped on arrival.
                    assert!(op_evicted == 0 || op_evicted == n as u64, "{ctx}");
                }
            }
            InFlight::Confirm(ids) => {
                assert!(extra.is_empty() && missing.is_subset(&ids), "{ctx}");
                assert_eq!((d_evicted, d_expired), (evicted, expired), "{ctx}");
            }
            InFlight::Expire => {
                assert!(extra.is_empty(), "{ctx}");
                assert_eq!(d_evicted, evicted, "{ctx}");
                assert_eq!(d_expired - expired, missing.len() as u64, "{ctx}");
            }
        }
        let mut depth = [0u32; 4];
        for i in &p.items {
            depth[i.priority.index()] += 1;
        }
        assert_eq!(s.queue_depth(), depth, "kill {k}");
        present = got;
        counted = d;
    }
    eprintln!(
        "outbox crash test: {kills} kills, {ops_total} completed operations, killed during append/confirm/expire {caught:?}, {} items left",
        present.len()
    );
    assert!(
        ops_total > kills,
        "the worker hardly ran: {ops_total} operations"
    );
}
