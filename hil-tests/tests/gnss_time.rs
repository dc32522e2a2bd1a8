//! GNSS time through a real gpsd: a receiver writes NMEA sentences into a
//! pty, gpsd reads them and serves JSON on a free loopback port, and the
//! node's gpsd client offers the fix times to the node's guarded clock,
//! whose own system clock is wrong (a Pi with a flat RTC battery and no
//! network boots in the past).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hil_tests::gpsd::GpsdReceiver;
use messages::TimeSource;
use node::clock::Clock;
use node::timekeeping::gpsd::{GnssStats, GpsdConfig, LATENCY_MS};
use node::timekeeping::kernel::KernelSync;
use node::timekeeping::{GuardedClock, TimeFloor, TimeSources};

/// A system clock stuck years in the past, running at the right rate, and
/// never synchronised.
struct FlatRtc {
    wall_at_start: i64,
    start: Instant,
}

impl TimeSources for FlatRtc {
    fn wall_ms(&self) -> i64 {
        self.wall_at_start + self.mono_ms()
    }
    fn mono_ms(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
    fn kernel(&self) -> Option<KernelSync> {
        Some(KernelSync {
            synced: false,
            max_error_ms: None,
        })
    }
}

fn true_now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// 2001-01-01, the time a Pi without a working RTC may believe.
const FLAT_RTC_MS: i64 = 978_307_200_000;
/// The floor: a build time a week before the test.
fn floor_ms() -> i64 {
    true_now_ms() - 7 * 86_400_000
}

fn guarded_clock(dir: &std::path::Path) -> Arc<GuardedClock<FlatRtc>> {
    Arc::new(GuardedClock::new(
        FlatRtc {
            wall_at_start: FLAT_RTC_MS,
            start: Instant::now(),
        },
        TimeFloor::in_memory(dir, floor_ms()),
    ))
}

/// Runs the gpsd client against `rx` until `done` holds for its counts, or
/// 30 s pass; returns the counts.
async fn run_client(
    rx: &GpsdReceiver,
    clock: Arc<dyn Clock>,
    done: impl Fn(&node::timekeeping::gpsd::GnssReport) -> bool,
) -> node::timekeeping::gpsd::GnssReport {
    let stats = Arc::new(GnssStats::default());
    let (trigger, shutdown) = node::shutdown::channel();
    let task = tokio::spawn(node::timekeeping::gpsd::run(
        GpsdConfig {
            address: rx.address(),
            offer_every_s: 600,
        },
        clock,
        stats.clone(),
        shutdown,
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&stats.report()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    trigger.trigger();
    task.await.unwrap();
    stats.report()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_boots_in_the_past_takes_its_time_from_gnss() {
    let rx = GpsdReceiver::start(Box::new(true_now_ms), true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = guarded_clock(dir.path());
    // Before GNSS: the system clock (2001) is under the floor, so time
    // counts on from the floor, untrusted.
    let (_, before) = clock.stamp_event(clock.now_ms());
    assert_eq!(before.source, TimeSource::Untrusted);
    assert_eq!(clock.report().quality, "untrusted");

    // Several fixes, long enough for more than one offer if the client
    // ignored `offer_every_s`.
    let report = run_client(&rx, clock.clone(), |r| r.offers >= 1 && r.fixes >= 6).await;
    assert!(report.fixes >= 6, "{report:?}\ngpsd log:\n{}", rx.log());
    assert_eq!(report.offers, 1, "one offer per offer_every_s: {report:?}");
    assert_eq!(report.connects, 1);
    assert_eq!(report.bad_lines, 0);
    assert!(matches!(report.last_mode, 2 | 3));

    // The clock took the receiver's time: within the reference's
    // uncertainty plus the test's own scheduling.
    let now = clock.now_ms();
    let truth = true_now_ms();
    assert!(
        (now - truth).abs() < 3_000,
        "clock {now} vs true time {truth}"
    );
    let (_, after) = clock.stamp_event(now);
    assert_eq!(after.source, TimeSource::Gnss);
    let unc = after.uncertainty_ms.unwrap();
    assert!(
        (LATENCY_MS..LATENCY_MS + 100).contains(&unc),
        "uncertainty {unc} ms"
    );
    let r = clock.report();
    assert_eq!(r.quality, "gnss");
    // The untrusted span ended with a correction from the floor's time line
    // to the true one (the floor was a week behind).
    let span = r.untrusted_spans.first().expect("an untrusted span");
    let correction = span.correction_ms.expect("corrected");
    assert!(
        (correction - 7 * 86_400_000).abs() < 60_000,
        "correction {correction} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_without_a_fix_gives_no_time() {
    let rx = GpsdReceiver::start(Box::new(true_now_ms), false).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = guarded_clock(dir.path());
    // gpsd reports `mode` 1 (no fix) while sentences flow; wait for a few
    // seconds of them, then let the receiver find its fix.
    let report = run_client(&rx, clock.clone(), {
        let started = Instant::now();
        move |_| started.elapsed() > Duration::from_secs(3)
    })
    .await;
    assert_eq!(report.connects, 1, "{}", rx.log());
    assert_eq!(report.fixes, 0);
    assert_eq!(report.offers, 0);
    assert_eq!(clock.report().quality, "untrusted");

    rx.set_fix(true);
    let report = run_client(&rx, clock.clone(), |r| r.offers >= 1).await;
    assert_eq!(report.offers, 1, "{}", rx.log());
    assert_eq!(clock.report().quality, "gnss");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_time_earlier_than_the_floor_is_refused() {
    // gpsd itself moves a date that is before its own build by 1024 weeks
    // (a GPS week rollover), so what it passes on is later than that; a
    // receiver can still report a time weeks in the past (a cold start on a
    // stale almanac). Two months behind is earlier than the floor (the
    // build a week ago): the clock refuses it and stays untrusted rather
    // than stamping events in the past.
    const BEHIND_MS: i64 = 60 * 86_400_000;
    let rx = GpsdReceiver::start(Box::new(|| true_now_ms() - BEHIND_MS), true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = guarded_clock(dir.path());
    let floor_before = clock.report().floor_ms;
    let report = run_client(&rx, clock.clone(), |r| r.offers >= 1).await;
    assert_eq!(report.offers, 1, "{}", rx.log());
    let r = clock.report();
    assert_eq!(r.quality, "untrusted");
    assert!(clock.now_ms() >= floor_before);
    assert_eq!(r.floor_ms, floor_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gpsd_is_retried_and_counted_without_a_time() {
    let port = hil_tests::mosquitto::free_port().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = guarded_clock(dir.path());
    let stats = Arc::new(GnssStats::default());
    let (trigger, shutdown) = node::shutdown::channel();
    let task = tokio::spawn(node::timekeeping::gpsd::run(
        GpsdConfig {
            address: format!("127.0.0.1:{port}"),
            offer_every_s: 600,
        },
        clock.clone(),
        stats.clone(),
        shutdown,
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.report().connect_failures == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Shutdown ends the task while it waits to retry.
    trigger.trigger();
    task.await.unwrap();
    let r = stats.report();
    assert_eq!(r.connect_failures, 1);
    assert_eq!(r.connects, 0);
    assert_eq!(clock.report().quality, "untrusted");
}
