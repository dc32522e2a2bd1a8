//! The crash sweep: `fieldnode` runs a scene on the power-loss filesystem
//! (`hil_tests::powerfs`), the power is cut at the Nth sync call or at a
//! random moment, the node is killed, the filesystem is dropped to what was
//! durable, and the store is checked: every event the node acknowledged
//! before the cut is present and intact, ids never go backwards, and the
//! store opens. sled may refuse its own files after a torn page (it did,
//! before the journal): that quarantine is counted and reported, and the
//! journal must then put every acknowledged event back. The id reservation
//! file, written with write-fsync-rename-fsync, must always read as the old
//! or the new value, or the store would not open.
//!
//! `HIL_CUTS` (default 24) cuts; `HIL_SEED` (default 1). Long run:
//! `HIL_CUTS=2000 cargo test --release -p hil-tests --test power_cut_sweep -- --nocapture`.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hil_tests::powerfs::Mounted;
use messages::EventJson;
use uplink::{EventStore, StoreConfig};

#[test]
fn power_cuts_lose_no_acknowledged_event() {
    if !common::fuse_available() {
        return;
    }
    let cuts = common::env_u64("HIL_CUTS", 24);
    let seed = common::env_u64("HIL_SEED", 1);
    let t = tempfile::tempdir().unwrap();
    let scene = t.path().join("scene");
    common::scenegen(
        &scene,
        &[
            "--preset",
            "mixed",
            "--seed",
            &seed.to_string(),
            "--duration",
            "900",
        ],
    );
    let (backing, trash, mnt) = (
        t.path().join("disk"),
        t.path().join("trash"),
        t.path().join("mnt"),
    );
    for d in [&backing, &trash, &mnt] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut rng = common::Rng::new(seed);
    let mut acked: BTreeMap<u64, EventJson> = BTreeMap::new();
    let (mut lost, mut corrupted, mut quarantines, mut max_id, mut cuts_with_loss) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut restored, mut damaged_journal_blocks, mut saved_by_journal) = (0u64, 0u64, 0u64);
    let mut acknowledged_total = 0u64;
    let mut recover_ms: Vec<f64> = Vec::new();
    let full_run = Duration::from_millis(1500);
    for cut in 0..cuts {
        let mode = common::cut_mode(&mut rng);
        let m = Mounted::mount(&backing, &trash, &mnt, mode, seed + cut).unwrap();
        let at_sync = cut % 2 == 0;
        if at_sync {
            m.control
                .cut_at_sync
                .store(1 + rng.below(80), Ordering::SeqCst);
        }
        let log = t.path().join("node-stderr.log");
        let (child, reader) = common::spawn_collecting(&scene, &mnt.join("data"), &log, &[]);
        let cut_after = Duration::from_millis(rng.below(full_run.as_millis() as u64));
        let stored = common::run_until_cut(
            m,
            child,
            reader,
            (!at_sync).then_some(cut_after),
            Duration::from_secs(30),
            &log,
            &format!("cut {cut}"),
        );
        for e in stored {
            assert!(
                e.id > max_id,
                "cut {cut}: id {} is not above {max_id}",
                e.id
            );
            max_id = e.id;
            acknowledged_total += 1;
            acked.insert(e.id, e);
        }
        // What the next start finds on the disk.
        let store_dir = backing.join("data").join("store");
        if !store_dir.exists() {
            assert!(
                acked.is_empty(),
                "cut {cut}: the store vanished with {} events acknowledged",
                acked.len()
            );
            continue;
        }
        let opening = Instant::now();
        let (store, report) = EventStore::open(&store_dir, &StoreConfig::default())
            .unwrap_or_else(|e| panic!("cut {cut} ({mode}): the store does not open: {e}"));
        recover_ms.push(opening.elapsed().as_secs_f64() * 1000.0);
        // Put back by the journal: acknowledged ones are what sled lost.
        let saved = report
            .restored
            .iter()
            .filter(|id| acked.contains_key(id))
            .count() as u64;
        if report.quarantined.is_some() {
            quarantines += 1;
            eprintln!(
                "cut {cut} ({mode}): quarantined: {:?}; the journal put back {} items, {saved} of them acknowledged",
                report.reason,
                report.restored.len()
            );
        } else if saved > 0 {
            eprintln!(
                "cut {cut} ({mode}): sled lacked {saved} acknowledged events; the journal put them back"
            );
        }
        restored += report.restored.len() as u64;
        saved_by_journal += saved;
        damaged_journal_blocks += report.journal_damaged_blocks;
        assert!(
            report.next_id > max_id,
            "cut {cut}: next id {} not above {max_id}",
            report.next_id
        );
        let (mut lost_now, mut corrupted_now) = (0, 0);
        for (id, want) in &acked {
            match store.get(*id) {
                Ok(Some(got)) if &EventJson::from(&got) == want => {}
                Ok(Some(_)) | Err(_) => corrupted_now += 1,
                Ok(None) => lost_now += 1,
            }
        }
        if lost_now + corrupted_now > 0 {
            // Count, and judge the next cuts against what is on the disk now.
            eprintln!("cut {cut} ({mode}): lost {lost_now}, corrupted {corrupted_now}");
            cuts_with_loss += 1;
            lost += lost_now;
            corrupted += corrupted_now;
            acked.clear();
        }
        drop(store);
        std::fs::remove_dir_all(&trash).ok();
        std::fs::create_dir_all(&trash).unwrap();
    }
    recover_ms.sort_by(f64::total_cmp);
    let p50 = recover_ms.get(recover_ms.len() / 2).copied().unwrap_or(0.0);
    let max = recover_ms.last().copied().unwrap_or(0.0);
    eprintln!(
        "power-cut sweep: cuts {cuts}, acknowledged {acknowledged_total}, lost {lost}, corrupted {corrupted} (in {cuts_with_loss} cuts), quarantines {quarantines}, put back by the journal {restored} ({saved_by_journal} acknowledged, i.e. lost by sled), damaged journal appends {damaged_journal_blocks}, store open after a cut p50 {p50:.1} ms, max {max:.1} ms"
    );
    // A quarantine is allowed (sled refused its files), a loss is not: the
    // journal must have put every acknowledged event back.
    assert_eq!(
        (lost, corrupted),
        (0, 0),
        "acknowledged events did not survive power cuts"
    );
}
