//! Upload windows of a switched cellular modem against a real mosquitto
//! (mutual TLS, `hil_tests::mosquitto`): the node's uplink
//! (`node::uplink::UplinkHandle`) with the modem on a fake load switch and
//! its interface (`wwan0`, up with a route) in a fake sysfs tree.
//!
//! The broker is frozen (SIGSTOP) while the window sends, so an item is in
//! flight without its PUBACK when the window reaches `max_window_ms`: the
//! window closes (`max_length`, not a success), the MQTT client gives up
//! its unacknowledged items and the modem is switched off; those items stay
//! in the outbox. With the broker running again, the next window delivers
//! every item, and the outbox ends empty.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::uplink::{fresh_event, power_at, status_source, wait_for};

use hil_tests::mosquitto::{Broker, BrokerOptions, RESEARCHER, Subscriber};
use messages::Message;
use node::uplink::window::{CloseReason, OpenReason, WindowConfig};
use node::uplink::{NodeTime, SharedState, UplinkConfig, UplinkHandle, UplinkParts};
use power::loads::{FakeSwitch, LoadLine};
use power::{Load, LoadsConfig, SwitchedLoads};
use uplink::EventStore;
use uplink::mqtt::{MqttConfig, TlsFiles};

const NODE_ID: &str = "node-w";
const ITEMS: u64 = 3_000;

fn fake_interface(root: &Path) {
    let net = root.join("sys/class/net/wwan0");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(net.join("operstate"), "unknown\n").unwrap();
    std::fs::create_dir_all(root.join("proc/net")).unwrap();
    std::fs::write(
        root.join("proc/net/route"),
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
         wwan0\t00000000\t0100000A\t0003\t0\t0\t0\t00000000\n",
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_in_flight_when_a_window_closes_are_sent_in_the_next_one() {
    let mut broker = match Broker::start(BrokerOptions::default()) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    };
    let files = broker.client_files(NODE_ID).expect("client certificate");
    let researcher = Subscriber::start(
        &broker,
        &broker
            .client_files(RESEARCHER)
            .expect("researcher certificate"),
        &format!("field/{NODE_ID}/events"),
        Some("window-researcher"),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys-root");
    fake_interface(&sys);
    let (store, _) =
        EventStore::open(&dir.path().join("store"), &uplink::StoreConfig::default()).unwrap();
    let store = Arc::new(store);
    for _ in 0..ITEMS {
        store.append(|id| fresh_event(id, NODE_ID)).unwrap();
    }
    let fake = FakeSwitch::new();
    let loads = SwitchedLoads::new(
        Box::new(fake.clone()),
        &LoadsConfig {
            modem: Some(LoadLine {
                pin: 22,
                active_low: false,
                settle_ms: 200,
                draw_mw: 1_500.0,
            }),
            ..LoadsConfig::default()
        },
    );
    let (_power_tx, power_rx) = tokio::sync::watch::channel(power_at(0.9));
    let clock: Arc<dyn node::clock::Clock> = Arc::new(node::clock::SystemClock);
    let shared = Arc::new(SharedState::default());
    let source = status_source(
        NODE_ID,
        power_rx.clone(),
        store.clone(),
        shared.clone(),
        Arc::new(node::tasks::Counters::default()),
        dir.path(),
    );
    let cfg = UplinkConfig {
        enabled: true,
        round_interval_ms: 50,
        mqtt: Some(MqttConfig {
            host: "127.0.0.1".into(),
            port: broker.port(),
            node_id: NODE_ID.into(),
            tls: Some(TlsFiles {
                ca: files.ca.clone(),
                cert: files.cert.clone(),
                key: files.key.clone(),
            }),
            connect_timeout_s: 5,
            reconnect_min_ms: 100,
            reconnect_max_ms: 500,
            // One PUBACK at a time: while the window sends, one item is
            // always in flight.
            max_in_flight: 1,
            ..MqttConfig::default()
        }),
        window: WindowConfig {
            min_priority: messages::Priority::Low,
            max_window_ms: 10_000,
            min_gap_ms: 0,
            interface_timeout_ms: 5_000,
            ..WindowConfig::default()
        },
        ..UplinkConfig::default()
    };
    let uplink = UplinkHandle::start(UplinkParts {
        cfg,
        store: store.clone(),
        power: power_rx,
        status: source,
        time: NodeTime::current(clock),
        incoming: dir.path().join("incoming"),
        update_cap: 1 << 20,
        loads: Some(loads.clone()),
        sys_root: sys.clone(),
    })
    .expect("uplink starts");
    shared.uplink.set_waker(uplink.waker());

    // The window opens (the modem on), MQTT connects and sends; freeze the
    // broker as soon as the researcher has seen the first items.
    assert!(
        wait_for(Duration::from_secs(20), || !researcher
            .messages()
            .is_empty()),
        "nothing arrived in the first window: windows {:?}, links {:?}, round {:?}, switched {:?}, researcher {:?}",
        shared.uplink.windows(),
        shared.uplink.status(),
        shared.uplink.last_round(),
        fake.log(),
        researcher.raw()
    );
    broker.pause();
    assert!(
        loads.is_on(Load::Modem),
        "the modem is on while the window sends"
    );
    // The window reaches its longest length and closes, modem off.
    assert!(
        wait_for(Duration::from_secs(30), || shared
            .uplink
            .windows()
            .is_some_and(|w| w.last.is_some())),
        "the first window did not close"
    );
    let first = shared.uplink.windows().unwrap().last.unwrap();
    assert_eq!(first.opened, OpenReason::Priority);
    assert_eq!(first.closed, CloseReason::MaxLength);
    assert!(first.link_up && !first.success, "{first:?}");
    assert!(first.messages < ITEMS, "{first:?}");
    assert!(first.duration_ms >= 10_000, "{first:?}");
    assert!(
        // duration_ms is whole milliseconds: 1.5 mJ each.
        (first.energy_j - 1.5 * first.duration_ms as f64 / 1000.0).abs() < 0.0015,
        "{first:?}"
    );
    let left_after_first = store
        .queue_depth()
        .iter()
        .map(|&n| u64::from(n))
        .sum::<u64>();
    assert!(
        left_after_first > 0,
        "the frozen broker acknowledged everything"
    );

    // The broker runs again: the next window (no gap) sends what was left.
    broker.resume();
    assert!(
        wait_for(Duration::from_secs(60), || store
            .queue_depth()
            .iter()
            .all(|&n| n == 0)),
        "the outbox did not drain: {:?}",
        store.queue_depth()
    );
    let received = researcher.wait_until(Duration::from_secs(20), |m| {
        m.iter()
            .filter_map(|r| messages::decode_message(&r.payload).ok())
            .map(|m| m.id())
            .collect::<BTreeSet<u64>>()
            .len() as u64
            >= ITEMS
    });
    let ids: BTreeSet<u64> = received
        .iter()
        .filter_map(|r| match messages::decode_message(&r.payload) {
            Ok(Message::Event(e)) => Some(e.id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len() as u64, ITEMS, "items lost");
    // The last window closed drained once nothing was left (or the stop).
    assert!(
        wait_for(Duration::from_secs(10), || !loads.is_on(Load::Modem)),
        "the modem stayed on after the outbox drained"
    );
    let w = shared.uplink.windows().unwrap();
    let out = uplink.stop().await;
    assert!(
        out.not_delivered >= 1,
        "nothing was in flight at the close: {out:?}"
    );
    assert!(w.opened >= 2, "{w:?}");
    let last = w.last.unwrap();
    assert_eq!(last.closed, CloseReason::Drained, "{last:?}");
    assert!(last.success);
    // Every switch-on has its switch-off.
    let modem = fake.log_of(Load::Modem);
    assert_eq!(modem.len() as u64, 2 * w.opened, "{modem:?}");
    assert!(modem.iter().enumerate().all(|(i, s)| s.on == (i % 2 == 0)));
}
