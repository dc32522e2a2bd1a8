use std::time::Duration;

use messages::{Message, Priority};
use power::LoadsConfig;
use power::loads::{FakeSwitch, LoadLine};

use super::netif::fake;
use super::*;

const NOW_MS: i64 = 1_780_000_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cfg() -> WindowConfig {
    WindowConfig {
        max_window_ms: 120_000,
        min_gap_ms: 60_000,
        interface_timeout_ms: 10_000,
        ..WindowConfig::default()
    }
}

/// A window on a fake switch (modem: 2 s settle, 2 W), its interface under `root`.
fn window(root: &std::path::Path) -> (FakeSwitch, SwitchedLoads, Window) {
    let fake = FakeSwitch::new();
    let loads = SwitchedLoads::new(
        Box::new(fake.clone()),
        &LoadsConfig {
            modem: Some(LoadLine {
                pin: 22,
                active_low: false,
                settle_ms: 2_000,
                draw_mw: 2_000.0,
            }),
            ..LoadsConfig::default()
        },
    );
    let w = Window::new(cfg(), &loads, Load::Modem, 2_000.0, root.to_path_buf()).unwrap();
    (fake, loads, w)
}

fn item(id: u64, priority: Priority, age_ms: i64, status: bool) -> PendingItem {
    let message = if status {
        Message::Status(messages::StatusRecord {
            id,
            node_id: "n".into(),
            time_ms: NOW_MS - age_ms,
            uptime_s: 0,
            battery_permille: 900,
            battery_mv: 3_900,
            power_mode: Default::default(),
            air_temp_c100: None,
            board_temp_c100: None,
            sensors: Default::default(),
            queue: [0; 4],
            drops: Default::default(),
            model: Default::default(),
            last_contact_ms: None,
            cause: Default::default(),
            update: Default::default(),
            disk: Default::default(),
            clock: Default::default(),
            detection: None,
            not_stored: None,
        })
    } else {
        Message::Event(messages::EventRecord {
            id,
            node_id: "n".into(),
            start_ms: NOW_MS - age_ms,
            duration_ms: 1,
            class: messages::EventClass::Wildlife,
            confidence: messages::Permille(900),
            scores: Default::default(),
            features: Default::default(),
            model: messages::ModelVersion(1),
            time: Default::default(),
            mono: None,
        })
    };
    PendingItem {
        id,
        priority,
        time_ms: NOW_MS - age_ms,
        bytes: message.encode(),
        message,
    }
}

#[test]
fn what_opens_a_window() {
    let c = cfg(); // high and above; 6 h
    let normal = item(1, Priority::Normal, 1_000, false);
    assert_eq!(worth_sending(&c, &[], NOW_MS, false), None);
    assert_eq!(
        worth_sending(&c, std::slice::from_ref(&normal), NOW_MS, false),
        None
    );
    assert_eq!(
        worth_sending(&c, std::slice::from_ref(&normal), NOW_MS, true),
        Some(OpenReason::Request)
    );
    let high = item(2, Priority::High, 0, false);
    assert_eq!(
        worth_sending(&c, &[normal.clone(), high.clone()], NOW_MS, false),
        Some(OpenReason::Priority)
    );
    assert_eq!(
        worth_sending(&c, &[high], NOW_MS, true),
        Some(OpenReason::Request)
    );
    let old = item(3, Priority::Low, 21_600_000, false);
    assert_eq!(
        worth_sending(&c, &[normal.clone(), old], NOW_MS, false),
        Some(OpenReason::Age)
    );
    let young = item(3, Priority::Low, 21_599_999, false);
    assert_eq!(worth_sending(&c, &[young], NOW_MS, false), None);
    assert_eq!(
        worth_sending(&c, &[item(4, Priority::Normal, 0, true)], NOW_MS, false),
        Some(OpenReason::Status)
    );
}

#[tokio::test(start_paused = true)]
async fn a_window_waits_for_the_interface_and_closes_drained_with_its_energy() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let (fake, loads, mut w) = window(root);
    let t0 = Instant::now();
    // The policy denies: nothing is switched.
    assert_eq!(w.open_if_allowed(OpenReason::Priority, false), Ok(false));
    assert!(fake.log().is_empty());
    assert_eq!(w.open_if_allowed(OpenReason::Priority, true), Ok(true));
    assert!(loads.is_on(Load::Modem));
    // Settling: the interface is not even looked at.
    assert_eq!(w.poll(), Poll::Wait(t0 + ms(2_000)));
    tokio::time::advance(ms(2_000)).await;
    // No interface yet, then up without a route: not ready.
    assert_eq!(w.poll(), Poll::Wait(t0 + ms(2_500)));
    fake::set_operstate(root, "wwan0", Some("up"));
    tokio::time::advance(ms(500)).await;
    assert!(matches!(w.poll(), Poll::Wait(_)));
    assert!(!w.is_up());
    fake::set_routes(root, &["wwan0"]);
    tokio::time::advance(ms(500)).await;
    assert_eq!(w.poll(), Poll::Up);
    assert!(w.is_up());
    // Up, things still to send: stays open.
    assert_eq!(w.should_close(true, false), None);
    w.delivered(3, 300);
    tokio::time::advance(ms(7_000)).await;
    assert_eq!(w.should_close(true, true), Some(CloseReason::Drained));
    let r = w.close(CloseReason::Drained);
    assert_eq!(
        (
            r.opened,
            r.closed,
            r.duration_ms,
            r.messages,
            r.bytes,
            r.success,
            r.link_up
        ),
        (
            OpenReason::Priority,
            CloseReason::Drained,
            10_000,
            3,
            300,
            true,
            true
        )
    );
    assert!((r.energy_j - 20.0).abs() < 1e-9, "{}", r.energy_j);
    assert!(!loads.is_on(Load::Modem));
    let s = w.stats();
    assert_eq!((s.opened, s.failed, s.on_ms, s.messages), (1, 0, 10_000, 3));
    assert_eq!(s.last.as_ref(), Some(&r));
    // The bank counts the same time on.
    assert_eq!(loads.report().loads["modem"].on_ms, 10_000);
    let log: Vec<(Duration, bool)> = fake.log().iter().map(|s| (s.at - t0, s.on)).collect();
    assert_eq!(log, [(ms(0), true), (ms(10_000), false)]);
    // The gap: no window before 60 s after the close.
    tokio::time::advance(ms(59_999)).await;
    assert_eq!(w.open_if_allowed(OpenReason::Age, true), Ok(false));
    tokio::time::advance(ms(1)).await;
    assert_eq!(w.open_if_allowed(OpenReason::Age, true), Ok(true));
    assert_eq!(w.stats().opened, 2);
    // A request does not wait for the gap.
    w.close(CloseReason::Drained);
    assert_eq!(w.open_if_allowed(OpenReason::Priority, true), Ok(false));
    assert_eq!(w.open_if_allowed(OpenReason::Request, true), Ok(true));
}

#[tokio::test(start_paused = true)]
async fn an_interface_that_never_comes_up_fails_the_window_and_powers_the_modem_off() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fake::set_operstate(root, "wwan0", Some("down"));
    fake::set_routes(root, &["eth0"]);
    let (fake, loads, mut w) = window(root);
    let t0 = Instant::now();
    assert_eq!(w.open_if_allowed(OpenReason::Status, true), Ok(true));
    let failed = loop {
        match w.poll() {
            Poll::Wait(at) => tokio::time::sleep_until(at).await,
            Poll::Failed(r) => break r,
            other => panic!("unexpected {other:?}"),
        }
    };
    // Settle 2 s + timeout 10 s.
    assert_eq!(Instant::now() - t0, ms(12_000));
    assert_eq!(failed.closed, CloseReason::InterfaceTimeout);
    assert!(!failed.success && !failed.link_up);
    assert_eq!(failed.duration_ms, 12_000);
    assert!((failed.energy_j - 24.0).abs() < 1e-9);
    assert!(!loads.is_on(Load::Modem));
    assert_eq!(fake.log_of(Load::Modem).len(), 2);
    assert_eq!((w.stats().opened, w.stats().failed), (1, 1));
    assert!(!w.is_open());
    assert_eq!(w.poll(), Poll::Idle);
}

#[tokio::test(start_paused = true)]
async fn a_window_closes_at_its_longest_or_when_the_policy_withdraws() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fake::set_operstate(root, "wwan0", Some("unknown"));
    fake::set_routes(root, &["wwan0"]);
    let (_fake, loads, mut w) = window(root);
    assert_eq!(w.open_if_allowed(OpenReason::Request, true), Ok(true));
    // Not up yet: never "drained", but the policy still closes it.
    assert_eq!(w.should_close(true, true), None);
    assert_eq!(w.should_close(false, false), Some(CloseReason::PowerDenied));
    tokio::time::advance(ms(2_000)).await;
    assert_eq!(w.poll(), Poll::Up);
    tokio::time::advance(ms(117_999)).await;
    assert_eq!(w.should_close(true, false), None);
    assert_eq!(w.next_check(), Some(Instant::now() + ms(1)));
    tokio::time::advance(ms(1)).await;
    assert_eq!(w.should_close(true, false), Some(CloseReason::MaxLength));
    assert_eq!(w.ends_at(), Some(Instant::now()));
    let r = w.close(CloseReason::MaxLength);
    assert!(!r.success && r.link_up);
    assert_eq!(r.duration_ms, 120_000);
    assert!(!loads.is_on(Load::Modem));
    assert_eq!(w.stats().failed, 1);
}

#[tokio::test(start_paused = true)]
async fn a_switch_that_refuses_fails_the_window_at_once() {
    let t = tempfile::tempdir().unwrap();
    let (fake, loads, mut w) = window(t.path());
    fake.fail(Load::Modem, true);
    let r = w.open_if_allowed(OpenReason::Priority, true).unwrap_err();
    assert_eq!(
        (r.closed, r.duration_ms, r.success),
        (CloseReason::SwitchFailed, 0, false)
    );
    assert!(!w.is_open() && !loads.is_on(Load::Modem));
    assert_eq!((w.stats().opened, w.stats().failed), (1, 1));
}
