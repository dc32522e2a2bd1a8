//! The crash sweep with the satellite link draining the outbox: `fieldnode`
//! runs on the power-loss filesystem (`hil_tests::powerfs`) and forwards its
//! events to the modem emulator on a pty (`hil_tests::sbd_emu`) while the
//! power is cut at the Nth sync call or at a random moment. After each cut:
//!
//! - every event the node acknowledged as stored is either still in the
//!   outbox or was delivered by a successful satellite session (the outbox
//!   deletes only after the link confirms);
//! - the credit budget file, which the node replaces with write, fsync,
//!   rename, fsync of the directory, parses (the old or the new file, never a
//!   mix or nothing), never goes down, never counts credits that no session
//!   billed, and forgets at most the one session in flight at the cut;
//! - the store opens and ids never go backwards.
//!
//! Each session takes 120 ms in the emulator and some fail with MO status 32,
//! so cuts land while items wait and while a session is in flight.
//!
//! After the last cut the node runs once more on what the cuts left, with
//! the power on: every event acknowledged in any run must then have been
//! delivered.
//!
//! `HIL_UPLINK_CUTS` (default 12) cuts; `HIL_SEED` (default 1). Long run:
//! `HIL_UPLINK_CUTS=500 cargo test --release -p hil-tests --test power_cut_uplink -- --nocapture`.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hil_tests::powerfs::{CutMode, Mounted};
use hil_tests::sbd_emu::SbdEmulator;
use messages::Message;
use messages::pack::unpack;
use uplink::{EventStore, StoreConfig};

const NODE_ID: &str = "node-pc";
/// The most a single session can bill: a full 340-byte MO message (no MT
/// messages are queued in this test).
const MAX_SESSION_CREDITS: u64 = 7;

fn config(port: &Path) -> String {
    format!(
        r#"
[node]
id = "{NODE_ID}"
[uplink]
enabled = true
round_interval_ms = 100
drain_timeout_ms = 20000
[uplink.scheduler]
sbd_min_priority = "low"
sbd_min_signal_bars = 1
sbd_min_interval_ms = 0
sbd_fill_bytes = 60
sbd_urgent_max_wait_ms = 0
sbd_max_wait_ms = 0
[uplink.sbd]
port = "{port}"
command_timeout_ms = 800
session_timeout_ms = 1500
backoff_min_ms = 300
backoff_max_ms = 300
give_up_after_ms = 1000
credits_per_day = 100000
credits_per_month = 1000000
reopen_interval_ms = 300
"#,
        port = port.display()
    )
}

/// The event ids in the emulator's delivered MO messages.
fn delivered(emu: &SbdEmulator) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    for m in emu.delivered() {
        for r in unpack(&m, NODE_ID).expect("a delivered MO message unpacks") {
            if let Message::Event(e) = r {
                ids.insert(e.id);
            }
        }
    }
    ids
}

/// This month's spend in the budget file as the next start finds it (0
/// when there is no file yet). A file that does not parse fails the test.
fn month_spent(file: &Path, when: &str) -> u64 {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return 0,
        Err(e) => panic!("{when}: cannot read the budget file: {e}"),
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "{when}: the budget file is neither the old nor the new one ({e}): {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    v.get("month_spent")
        .and_then(|m| m.as_u64())
        .unwrap_or_else(|| panic!("{when}: no month_spent in {v}"))
}

/// The spend recorded in the budget file against the credits the gateway
/// billed, run after run.
struct BudgetLedger {
    spent: u64,
    billed: u64,
    /// The UTC month at the start: a run that crosses into the next month
    /// starts a new count, and the lower bound is skipped then.
    month: i64,
}

impl BudgetLedger {
    /// Checks one run: the recorded spend never goes down, never exceeds
    /// what the gateway billed during the run, and falls short of it by at
    /// most `slack` credits (the session in flight when the power went).
    fn check(&mut self, when: &str, spent: u64, billed: u64, slack: u64) {
        assert!(
            spent >= self.spent,
            "{when}: the spend went down from {} to {spent}",
            self.spent
        );
        let (recorded, billed_run) = (spent - self.spent, billed - self.billed);
        assert!(
            recorded <= billed_run,
            "{when}: {recorded} credits recorded but {billed_run} billed"
        );
        if utc_month() == self.month {
            assert!(
                recorded + slack >= billed_run,
                "{when}: {billed_run} credits billed but only {recorded} recorded"
            );
        }
        self.spent = spent;
        self.billed = billed;
    }
}

#[test]
fn power_cuts_while_draining_by_satellite_lose_nothing() {
    if !common::fuse_available() {
        return;
    }
    let cuts = common::env_u64("HIL_UPLINK_CUTS", 12);
    let seed = common::env_u64("HIL_SEED", 1);
    let emu = SbdEmulator::start().expect("modem emulator on a pty");
    emu.set_signal(4);
    // Long enough that cuts land while a session is in flight and items wait.
    emu.set_session_delay(Duration::from_millis(120));
    let t = tempfile::tempdir().unwrap();
    let scene = t.path().join("scene");
    common::scenegen(
        &scene,
        &[
            "--preset",
            "mixed",
            "--seed",
            &(seed + 40).to_string(),
            "--duration",
            "600",
        ],
    );
    let cfg = t.path().join("fieldnode.toml");
    std::fs::write(&cfg, config(emu.path())).unwrap();
    let extra = [OsStr::new("--config"), cfg.as_os_str()];
    let (backing, trash, mnt) = (
        t.path().join("disk"),
        t.path().join("trash"),
        t.path().join("mnt"),
    );
    for d in [&backing, &trash, &mnt] {
        std::fs::create_dir_all(d).unwrap();
    }
    let budget_file = backing.join("data").join("sbd-budget");
    let mut budget = BudgetLedger {
        spent: 0,
        billed: 0,
        month: utc_month(),
    };
    let mut rng = common::Rng::new(seed);
    let mut acked = BTreeSet::new();
    let mut max_id = 0u64;
    let (mut in_outbox_max, mut budget_writes) = (0usize, 0u64);
    let mut spent_before = 0u64;
    let (mut quarantines, mut restored) = (0u64, 0u64);
    for cut in 0..cuts {
        let mode = common::cut_mode(&mut rng);
        // Some sessions fail (no network service): their items must stay.
        emu.script_sessions(&vec![32; rng.below(8) as usize]);
        let m = Mounted::mount(&backing, &trash, &mnt, mode, seed + cut).unwrap();
        let at_sync = cut % 2 == 0;
        if at_sync {
            m.control
                .cut_at_sync
                .store(1 + rng.below(120), Ordering::SeqCst);
        }
        let log = t.path().join("node-stderr.log");
        let (child, reader) = common::spawn_collecting(&scene, &mnt.join("data"), &log, &extra);
        let cut_after = Duration::from_millis(rng.below(2500));
        let stored = common::run_until_cut(
            m,
            child,
            reader,
            (!at_sync).then_some(cut_after),
            Duration::from_secs(40),
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
            acked.insert(e.id);
        }

        // Outbox: what was acknowledged is still there or went by satellite.
        let sent = delivered(&emu);
        let store_dir = backing.join("data").join("store");
        if store_dir.exists() {
            let (store, report) = EventStore::open(&store_dir, &StoreConfig::default())
                .unwrap_or_else(|e| panic!("cut {cut} ({mode}): the store does not open: {e}"));
            if report.quarantined.is_some() {
                quarantines += 1;
                eprintln!(
                    "cut {cut} ({mode}): quarantined: {:?}; {} restored from the journal",
                    report.reason,
                    report.restored.len()
                );
            }
            restored += report.restored.len() as u64;
            assert!(
                report.next_id > max_id,
                "cut {cut}: next id not above {max_id}"
            );
            let mut in_outbox = 0;
            for id in &acked {
                let kept = matches!(store.get(*id), Ok(Some(_)));
                in_outbox += usize::from(kept);
                assert!(
                    kept || sent.contains(id),
                    "cut {cut} ({mode}): event {id} was acknowledged, is gone from the store, and was never delivered"
                );
            }
            in_outbox_max = in_outbox_max.max(in_outbox);
        } else {
            assert!(acked.is_empty(), "cut {cut}: the store vanished");
        }

        // Credit budget: old or new, never down, never above what was billed,
        // short by at most the session in flight at the cut.
        let spent = month_spent(&budget_file, &format!("cut {cut} ({mode})"));
        budget_writes += u64::from(spent > spent_before);
        spent_before = spent;
        budget.check(
            &format!("cut {cut} ({mode})"),
            spent,
            emu.billed_credits(),
            MAX_SESSION_CREDITS,
        );
        std::fs::remove_dir_all(&trash).ok();
        std::fs::create_dir_all(&trash).unwrap();
    }

    // The power stays on: the node resumes on what the cuts left and drains.
    let m = Mounted::mount(&backing, &trash, &mnt, CutMode::DropAll, seed).unwrap();
    let log = t.path().join("node-final.log");
    let (mut child, reader) = common::spawn_collecting(&scene, &mnt.join("data"), &log, &extra);
    let status = common::wait_or_fail(&mut child, Duration::from_secs(90), &log);
    assert!(
        status.success(),
        "the final run failed: {status}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    acked.extend(reader.join().unwrap().iter().map(|e| e.id));
    m.unmount().unwrap();
    let spent = month_spent(&budget_file, "final run");
    budget.check("final run", spent, emu.billed_credits(), 0);
    let sent = delivered(&emu);
    let missing: Vec<u64> = acked.difference(&sent).copied().collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    eprintln!(
        "power-cut sweep with the satellite link: cuts {cuts}, acknowledged {}, delivered {}, lost 0, most left in the outbox after a cut {in_outbox_max}, quarantines {quarantines}, restored from the journal {restored}, budget file advanced in {budget_writes} cuts, {} sessions, {} messages",
        acked.len(),
        sent.len(),
        emu.sessions(),
        emu.delivered().len()
    );
}

/// The current UTC month (year * 12 + month), to skip the lower budget
/// bound in the rare run that crosses a month boundary.
fn utc_month() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::from(now.year()) * 12 + i64::from(u8::from(now.month()))
}
