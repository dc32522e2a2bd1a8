//! A switched satellite modem (`[power.loads.satellite]`): the node's uplink
//! (`node::uplink::UplinkHandle`) forwards by satellite only, through the
//! modem emulator on a pseudo-terminal (`hil_tests::sbd_emu`), whose power
//! is the fake load switch's satellite line. The emulator answers only
//! while the line is on and boots at each switch-on, so the driver must
//! power the modem before it talks to it.
//!
//! Checked:
//! - with nothing to send, or with the power policy denying the uplink,
//!   the modem is never switched on;
//! - stored items switch it on, go out, and it is switched off again after
//!   its hold; a second batch does the same: two power windows, each
//!   switch-on with its switch-off, the modem off at the end;
//! - no command ever reached the modem while it had no power;
//! - every session the modem ran is counted for the energy accounting;
//! - a modem that does not answer when switched on is switched off again,
//!   and the next request powers it again and sends.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use common::uplink::{fresh_event, power_at, status_source, wait_for};

use hil_tests::sbd_emu::{SbdEmulator, Silence};
use messages::Message;
use messages::pack::unpack;
use node::uplink::{NodeTime, SbdConfig, SharedState, UplinkConfig, UplinkHandle, UplinkParts};
use power::loads::{FakeSwitch, LoadLine};
use power::{Load, LoadsConfig, SwitchedLoads};
use uplink::EventStore;
use uplink::scheduler::SchedulerConfig;

const NODE_ID: &str = "node-p";

fn outbox_empty(store: &EventStore) -> bool {
    store.queue_depth().iter().all(|&n| n == 0)
}

/// The event ids in every MO message the emulator delivered.
fn delivered_ids(emu: &SbdEmulator) -> BTreeSet<u64> {
    emu.delivered()
        .iter()
        .flat_map(|m| unpack(m, NODE_ID).expect("MO message unpacks"))
        .filter_map(|r| match r {
            Message::Event(e) => Some(e.id),
            Message::Status(_) => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_satellite_modem_is_powered_only_for_its_sessions() {
    let emu = SbdEmulator::start().expect("modem emulator on a pty");
    emu.set_signal(4);
    let fake = FakeSwitch::new();
    let loads = SwitchedLoads::new(
        Box::new(fake.clone()),
        &LoadsConfig {
            satellite: Some(LoadLine {
                pin: 23,
                active_low: false,
                settle_ms: 200,
                draw_mw: 700.0,
            }),
            ..LoadsConfig::default()
        },
    );
    {
        let loads = loads.clone();
        emu.set_power_probe(Arc::new(move || {
            let wakes = loads
                .report()
                .loads
                .get(Load::Satellite.as_str())
                .map_or(0, |s| s.wakes);
            (loads.is_on(Load::Satellite), wakes)
        }));
    }

    let dir = tempfile::tempdir().unwrap();
    let (store, _) =
        EventStore::open(&dir.path().join("store"), &uplink::StoreConfig::default()).unwrap();
    let store = Arc::new(store);
    let (power_tx, power_rx) = tokio::sync::watch::channel(power_at(0.9));
    let shared = Arc::new(SharedState::default());
    let counters = Arc::new(node::tasks::Counters::default());
    let source = status_source(
        NODE_ID,
        power_rx.clone(),
        store.clone(),
        shared.clone(),
        counters.clone(),
        dir.path(),
    );
    let cfg = UplinkConfig {
        enabled: true,
        round_interval_ms: 100,
        sbd: Some(SbdConfig {
            port: emu.path().to_path_buf(),
            command_timeout_ms: 300,
            session_timeout_ms: 1_500,
            backoff_min_ms: 200,
            backoff_max_ms: 200,
            give_up_after_ms: 20_000,
            credits_per_day: 1_000,
            credits_per_month: 10_000,
            reopen_interval_ms: 1_000,
            power_hold_ms: 500,
            ..SbdConfig::default()
        }),
        scheduler: SchedulerConfig {
            sbd_min_priority: messages::Priority::Low,
            sbd_min_signal_bars: 1,
            sbd_min_interval_ms: 0,
            sbd_fill_bytes: 100,
            sbd_urgent_max_wait_ms: 0,
            sbd_max_wait_ms: 0,
            ..SchedulerConfig::default()
        },
        ..UplinkConfig::default()
    };
    let clock: Arc<dyn node::clock::Clock> = Arc::new(node::clock::SystemClock);
    let uplink = UplinkHandle::start(UplinkParts {
        cfg,
        store: store.clone(),
        power: power_rx,
        status: source,
        time: NodeTime::current(clock),
        incoming: dir.path().join("incoming"),
        update_cap: 1 << 20,
        loads: Some(loads.clone()),
        sys_root: dir.path().join("sys-root"),
    })
    .expect("uplink starts");
    shared.uplink.set_waker(uplink.waker());

    // Nothing to send: several rounds pass with the modem off.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        fake.log_of(Load::Satellite).is_empty(),
        "the modem was switched with nothing to send: {:?}",
        fake.log_of(Load::Satellite)
    );
    // Items wait, but the policy denies the uplink: still off.
    let low = power_at(0.10);
    assert!(!low.uplink.allowed(), "{low:?}");
    power_tx.send(low).unwrap();
    let mut want = BTreeSet::new();
    for _ in 0..4 {
        want.insert(store.append(|id| fresh_event(id, NODE_ID)).unwrap().id);
    }
    uplink.waker().notify_one();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(
        fake.log_of(Load::Satellite).is_empty(),
        "the modem was switched on against the power policy: {:?}",
        fake.log_of(Load::Satellite)
    );
    power_tx.send(power_at(0.9)).unwrap();

    // Three batches (the first with the items that waited): the second
    // after the modem went off again, the third with a modem that ignores
    // the first command after it is switched on.
    for batch in 0..3 {
        if batch == 2 {
            emu.set_silence(Silence::ForCommands(1));
        }
        for _ in 0..4 {
            want.insert(store.append(|id| fresh_event(id, NODE_ID)).unwrap().id);
        }
        uplink.waker().notify_one();
        let sent = wait_for(Duration::from_secs(60), || {
            outbox_empty(&store) && !loads.is_on(Load::Satellite)
        });
        assert!(
            sent,
            "batch {batch}: outbox {:?}, modem on {}, switched {:?}, emulator {} sessions",
            store.queue_depth(),
            loads.is_on(Load::Satellite),
            fake.log_of(Load::Satellite),
            emu.sessions()
        );
    }
    let out = uplink.stop().await;

    assert_eq!(delivered_ids(&emu), want, "items lost or not delivered");
    assert_eq!(
        emu.unpowered_commands(),
        0,
        "commands reached the modem while it had no power"
    );
    // A power window per batch, and one more for the modem that did not
    // answer.
    let switched = fake.log_of(Load::Satellite);
    let ons = switched.iter().filter(|s| s.on).count() as u32;
    assert!(ons >= 4, "{switched:?}");
    assert_eq!(emu.power_ups(), ons, "{switched:?}");
    assert!(emu.power_cycles() == 0, "the emulator's own power cycles");
    // Every switch-on has its switch-off, and the modem ends off.
    assert!(
        switched
            .iter()
            .enumerate()
            .all(|(i, s)| s.on == (i % 2 == 0)),
        "{switched:?}"
    );
    assert!(!loads.is_on(Load::Satellite));
    let report = loads.report();
    let sat = &report.loads[Load::Satellite.as_str()];
    assert_eq!(u32::try_from(sat.wakes).unwrap(), ons);
    assert!(sat.energy_j > 0.0, "{sat:?}");
    // Every session the modem ran is counted for the energy accounting.
    assert_eq!(
        counters
            .sbd_sessions
            .load(std::sync::atomic::Ordering::Relaxed),
        u64::from(emu.sessions())
    );
    assert!(emu.sessions() >= 3);
    assert_eq!(out.left_in_outbox, 0, "{out:?}");
}
