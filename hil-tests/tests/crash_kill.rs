//! Crash safety under SIGKILL: `fieldnode` replays a long scene and is killed
//! at random moments, many times, and restarted each time. After every kill:
//! the store opens, every event the node reported as stored before the kill
//! is there and intact, and ids never repeat or go backwards.
//!
//! Kills: `HIL_KILLS` (default 50). Seed: `HIL_SEED` (default 1), printed so
//! a failure replays.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use messages::EventJson;
use uplink::{EventStore, StoreConfig};

mod common;

fn generate_scene(dir: &Path, seed: u64) {
    common::scenegen(
        dir,
        &[
            "--preset",
            "mixed",
            "--seed",
            &seed.to_string(),
            "--duration",
            "1800",
        ],
    );
}

/// Runs the node until killed after `kill_after`; returns the events it
/// reported as stored and whether it was killed (false = it exited first).
fn run_and_kill(scene: &Path, data: &Path, kill_after: Duration) -> (Vec<EventJson>, bool) {
    let log = scene.with_file_name("node-stderr.log");
    let (mut child, reader) = common::spawn_collecting(scene, data, &log, &[]);
    let start = Instant::now();
    let mut killed = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() >= kill_after {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            child.wait().unwrap();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (reader.join().unwrap(), killed)
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_event() {
    let kills = common::env_u64("HIL_KILLS", 50);
    let seed = common::env_u64("HIL_SEED", 1);
    eprintln!("crash test: {kills} kills, seed {seed} (HIL_KILLS, HIL_SEED)");
    let t = tempfile::tempdir().unwrap();
    let scene = t.path().join("scene");
    generate_scene(&scene, seed);
    let data = t.path().join("data");
    let mut rng = common::Rng::new(seed);

    let mut acknowledged: BTreeMap<u64, EventJson> = BTreeMap::new();
    let mut max_id_seen = 0u64;
    let (mut done_kills, mut runs, mut exits) = (0u64, 0u64, 0u64);
    let mut evicted_before = 0u64;
    // Calibrate: how long does one uninterrupted run take? Kill times spread over it.
    let probe = Instant::now();
    let (first, killed) = run_and_kill(&scene, &data, Duration::from_secs(600));
    assert!(!killed);
    let full = probe.elapsed();
    for e in first {
        acknowledged.insert(e.id, e);
    }
    assert!(
        !acknowledged.is_empty(),
        "the scene produced no events at all"
    );
    eprintln!(
        "one full run: {:.2} s, {} events",
        full.as_secs_f64(),
        acknowledged.len()
    );

    while done_kills < kills {
        runs += 1;
        // Kill anywhere from start-up to the end of the run.
        let max_ms = (full.as_millis() as u64).max(50);
        let kill_after = Duration::from_millis(rng.below(max_ms));
        let (stored, killed) = run_and_kill(&scene, &data, kill_after);
        if killed {
            done_kills += 1;
        } else {
            exits += 1;
        }
        // Ids strictly increase within the run and start above every id seen before.
        let mut last = max_id_seen;
        for e in &stored {
            assert!(e.id > last, "run {runs}: id {} is not above {last}", e.id);
            last = e.id;
            assert!(
                acknowledged.insert(e.id, e.clone()).is_none(),
                "id {} repeated",
                e.id
            );
        }
        max_id_seen = max_id_seen.max(last);

        // The store opens, and holds every acknowledged event intact.
        let (store, report) = EventStore::open(&data.join("store"), &StoreConfig::default())
            .unwrap_or_else(|e| panic!("run {runs}: store does not open after kill: {e}"));
        assert!(
            report.quarantined.is_none(),
            "run {runs}: store was quarantined: {:?}",
            report.reason
        );
        assert!(
            report.next_id > max_id_seen,
            "run {runs}: next id {} not above {max_id_seen}",
            report.next_id
        );
        // An event may leave only as counted: evicted when the filesystem
        // holding the test's temporary directory runs under the store's
        // disk reserve (a busy, nearly full machine), never silently.
        let d = store.drop_stats();
        let evicted: u64 = d.evicted_disk.iter().chain(&d.evicted_budget).sum();
        let mut missing = Vec::new();
        for (id, want) in &acknowledged {
            let got = store
                .get(*id)
                .unwrap_or_else(|e| panic!("run {runs}: event {id} unreadable: {e}"));
            match got {
                Some(got) => assert_eq!(
                    &EventJson::from(&got),
                    want,
                    "run {runs}: event {id} changed"
                ),
                None => missing.push(*id),
            }
        }
        assert!(
            missing.len() as u64 <= evicted.saturating_sub(evicted_before),
            "run {runs}: acknowledged events {missing:?} are missing, {} evicted (counted) since the last check",
            evicted.saturating_sub(evicted_before)
        );
        if !missing.is_empty() {
            eprintln!(
                "run {runs}: {} events evicted for the disk reserve or the budget (counted)",
                missing.len()
            );
        }
        for id in &missing {
            acknowledged.remove(id);
        }
        evicted_before = evicted;
        drop(store);
    }
    eprintln!(
        "crash test summary: kills {done_kills}, runs {runs} (of which {exits} finished before their kill), acknowledged {}, lost 0, corrupted 0, quarantines 0",
        acknowledged.len()
    );
}
