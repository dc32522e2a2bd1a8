use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::*;
use messages::{TimeQuality, TimeSource};

/// Clocks a test moves by hand.
#[derive(Clone, Default)]
struct Fake {
    wall: Arc<AtomicI64>,
    mono: Arc<AtomicI64>,
    synced: Arc<AtomicBool>,
    rtc: Arc<std::sync::Mutex<Option<crate::timekeeping::rtc::RtcReading>>>,
}

impl Fake {
    fn at(wall: i64) -> Fake {
        let f = Fake::default();
        f.wall.store(wall, Ordering::SeqCst);
        f
    }
    /// Both clocks run on by `ms`.
    fn run(&self, ms: i64) {
        self.wall.fetch_add(ms, Ordering::SeqCst);
        self.mono.fetch_add(ms, Ordering::SeqCst);
    }
    /// The system clock is set to `wall` (the monotonic clock does not move).
    fn set(&self, wall: i64) {
        self.wall.store(wall, Ordering::SeqCst);
    }
}

impl TimeSources for Fake {
    fn wall_ms(&self) -> i64 {
        self.wall.load(Ordering::SeqCst)
    }
    fn mono_ms(&self) -> i64 {
        self.mono.load(Ordering::SeqCst)
    }
    fn kernel(&self) -> Option<KernelSync> {
        Some(KernelSync {
            synced: self.synced.load(Ordering::SeqCst),
            max_error_ms: Some(20),
        })
    }
    fn rtc(&self) -> Option<crate::timekeeping::rtc::RtcReading> {
        *self.rtc.lock().unwrap()
    }
    fn boot_id(&self) -> Option<u64> {
        Some(BOOT)
    }
}

/// The fake's boot id.
const BOOT: u64 = 0x0c0f_fee0_0000_0001;

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_800_000_000_000;

fn clock(fake: &Fake, floor_ms: i64) -> GuardedClock<Fake> {
    let dir = std::env::temp_dir();
    GuardedClock::new(fake.clone(), TimeFloor::in_memory(&dir, floor_ms))
}

#[test]
fn a_clock_above_the_floor_is_followed_and_reported_by_its_sync_state() {
    let fake = Fake::at(NOW);
    let c = clock(&fake, NOW - DAY);
    assert_eq!(c.now_ms(), NOW);
    assert_eq!(c.report().quality, "plausible");
    fake.synced.store(true, Ordering::SeqCst);
    fake.run(KERNEL_POLL_MS);
    assert_eq!(c.now_ms(), NOW + KERNEL_POLL_MS);
    let r = c.report();
    assert_eq!(
        (r.quality, r.uncertainty_ms, r.steps),
        ("synced", Some(20), 0)
    );
}

#[test]
fn a_clock_reset_below_the_floor_counts_on_from_the_floor_and_is_corrected_later() {
    // A flat RTC battery: the clock boots in 1970 plus a little.
    let floor = NOW - DAY;
    let fake = Fake::at(5_000);
    let c = clock(&fake, floor);
    assert_eq!(c.now_ms(), floor, "never below the floor");
    assert_eq!(c.report().quality, "untrusted");
    fake.run(60_000);
    assert_eq!(
        c.now_ms(),
        floor + 60_000,
        "counts on on the monotonic clock"
    );
    // An event of that time is recorded as untrusted, as it is.
    let untrusted = TimeQuality {
        source: TimeSource::Untrusted,
        ..Default::default()
    };
    assert_eq!(c.stamp_event(floor + 30_000), (floor + 30_000, untrusted));
    // With its place on this boot's monotonic clock (30 s after the boot).
    let mono = messages::MonoRef {
        boot: BOOT,
        offset_ms: 30_000,
    };
    assert_eq!(
        c.stamp_event_mono(floor + 30_000),
        (floor + 30_000, untrusted, Some(mono))
    );
    // NTP sets the clock: one step forward, and the span gets its correction.
    fake.set(NOW + 60_000);
    assert_eq!(c.now_ms(), NOW + 60_000);
    let r = c.report();
    assert_eq!(r.quality, "plausible");
    assert_eq!(r.steps, 1);
    let corrected = TimeQuality {
        source: TimeSource::Plausible,
        uncertainty_ms: None,
        restamped: true,
    };
    assert_eq!(
        r.untrusted_spans,
        vec![UntrustedSpan {
            from_ms: floor,
            to_ms: floor + 60_000,
            correction_ms: Some(NOW - floor),
            corrected_by: Some(corrected),
            resumed_ms: Some(NOW + 60_000),
            mono_base_ms: floor,
        }]
    );
    // The same event is now re-stamped on the trusted time line; an event
    // of the trusted time line is left alone.
    assert_eq!(c.stamp_event(floor + 30_000), (NOW + 30_000, corrected));
    // The trusted time needs no monotonic reference.
    assert_eq!(
        c.stamp_event_mono(floor + 30_000),
        (NOW + 30_000, corrected, None)
    );
    let plausible = TimeQuality {
        source: TimeSource::Plausible,
        ..Default::default()
    };
    assert_eq!(c.stamp_event(NOW + 60_000), (NOW + 60_000, plausible));
}

#[test]
fn time_handed_out_never_goes_backwards_when_the_clock_steps_back() {
    let fake = Fake::at(NOW);
    let c = clock(&fake, NOW - DAY);
    fake.run(10_000);
    let before = c.now_ms();
    fake.set(NOW - 30_000);
    let after = c.now_ms();
    assert!(after >= before, "{after} < {before}");
    let r = c.report();
    assert_eq!(r.steps, 1);
    assert_eq!(r.largest_step_ms, -40_000);
    // Small drift corrections are not steps.
    fake.run(1_000);
    fake.set(fake.wall_ms() + 500);
    c.now_ms();
    assert_eq!(c.report().steps, 1);
}

#[test]
fn a_reference_wins_over_an_unsynchronised_clock_that_disagrees() {
    let fake = Fake::at(NOW - 3_600_000); // an hour slow, above the floor
    let c = clock(&fake, NOW - DAY);
    c.offer(ReferenceSource::FieldLink, NOW, 500);
    assert_eq!(c.now_ms(), NOW);
    fake.run(1_000_000);
    assert_eq!(
        c.now_ms(),
        NOW + 1_000_000,
        "carried on the monotonic clock"
    );
    let r = c.report();
    assert_eq!(r.quality, "field_link");
    assert_eq!(r.uncertainty_ms, Some(600), "grows by 100 ppm");
    // A reference that agrees within its uncertainty changes nothing.
    let fake = Fake::at(NOW);
    let c = clock(&fake, NOW - DAY);
    c.offer(ReferenceSource::Iridium, NOW + 100, 500);
    assert_eq!(c.report().quality, "plausible");
}

#[test]
fn a_synchronised_clock_is_not_overruled_by_a_reference() {
    let fake = Fake::at(NOW);
    fake.synced.store(true, Ordering::SeqCst);
    let c = clock(&fake, NOW - DAY);
    c.offer(ReferenceSource::FieldLink, NOW + 3_600_000, 500);
    assert_eq!(c.now_ms(), NOW);
    assert_eq!(c.report().quality, "synced");
}

#[test]
fn a_reference_ends_an_untrusted_span_with_its_correction() {
    let floor = NOW - DAY;
    let fake = Fake::at(0);
    let c = clock(&fake, floor);
    fake.run(5_000);
    assert_eq!(c.now_ms(), floor + 5_000);
    c.offer(ReferenceSource::Iridium, NOW, 90);
    let r = c.report();
    assert_eq!(r.quality, "iridium");
    assert_eq!(r.untrusted_spans.len(), 1);
    assert_eq!(
        r.untrusted_spans[0].correction_ms,
        Some(NOW - floor - 5_000)
    );
    assert_eq!(c.now_ms(), NOW);
    // An event from the untrusted span takes Iridium's time and uncertainty.
    let (t, q) = c.stamp_event(floor + 2_000);
    assert_eq!(t, NOW - 3_000);
    assert_eq!(
        (q.source, q.uncertainty_ms, q.restamped),
        (TimeSource::Iridium, Some(90), true)
    );
    // An event of now carries Iridium's quality, not re-stamped.
    let (t, q) = c.stamp_event(NOW);
    assert_eq!(
        (t, q.source, q.restamped),
        (NOW, TimeSource::Iridium, false)
    );
}

#[test]
fn stored_events_raise_the_floor_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::at(NOW);
    let c = GuardedClock::new(fake.clone(), TimeFloor::open(dir.path(), 0).unwrap());
    c.stored(NOW + 5_000);
    // The next start, with a clock that reset.
    let fake = Fake::at(1_000);
    let c = GuardedClock::new(fake, TimeFloor::open(dir.path(), 0).unwrap());
    assert_eq!(c.now_ms(), NOW + 5_000);
    assert_eq!(c.report().quality, "untrusted");
}

#[test]
fn a_reference_earlier_than_the_floor_is_refused() {
    let fake = Fake::at(NOW);
    let c = clock(&fake, NOW - DAY);
    // A modem that answers with a time from years ago.
    c.offer(ReferenceSource::Iridium, NOW - 400 * DAY, 1_000);
    assert_eq!(c.report().quality, "plausible");
    assert_eq!(c.now_ms(), NOW);
    // Not even to end an untrusted span.
    let fake = Fake::at(0);
    let c = clock(&fake, NOW);
    c.offer(ReferenceSource::Iridium, NOW - DAY, 1_000);
    assert_eq!(c.report().quality, "untrusted");
}

#[test]
fn the_technician_can_lower_a_floor_that_a_clock_running_ahead_raised() {
    // A clock years ahead stamped events; the floor followed them.
    let fake = Fake::at(NOW + 400 * DAY);
    let c = clock(&fake, NOW - DAY);
    c.stored(NOW + 400 * DAY);
    // The clock is fixed by hand: it is now "behind" the floor.
    fake.set(NOW);
    assert_eq!(c.report().quality, "plausible");
    c.now_ms();
    assert_eq!(c.report().quality, "untrusted");
    // Iridium cannot lower the floor; the technician can.
    c.offer(ReferenceSource::Iridium, NOW, 1_000);
    assert_eq!(c.report().quality, "untrusted");
    c.offer(ReferenceSource::FieldLink, NOW, 500);
    assert_eq!(c.report().quality, "field_link");
    assert_eq!(c.report().floor_ms, NOW);
    assert_eq!(c.now_ms(), NOW, "back to the technician's time");
}

#[test]
fn a_correction_survives_a_restart_and_re_stamps_the_earlier_runs_events() {
    let dir = tempfile::tempdir().unwrap();
    let floor = NOW - DAY;
    // First run: the clock boots in 1970, time counts on from the floor;
    // two events are stored with untrusted times.
    let fake = Fake::at(0);
    let c = GuardedClock::new(fake.clone(), TimeFloor::open(dir.path(), floor).unwrap());
    fake.run(5_000);
    let (t1, q1) = c.stamp_event(c.now_ms());
    c.stored(t1);
    fake.run(5_000);
    let (t2, _) = c.stamp_event(c.now_ms());
    c.stored(t2);
    assert_eq!(q1.source, TimeSource::Untrusted);
    assert_eq!((t1, t2), (floor + 5_000, floor + 10_000));
    // Iridium time arrives; then the node restarts before sending.
    c.offer(ReferenceSource::Iridium, NOW, 1_000);
    let correction = NOW - (floor + 10_000);
    assert_eq!(c.report().corrections_kept, 1);
    drop(c);

    // Second run: the clock is still wrong (no power lost, or it reset
    // again). The earlier run's events are re-stamped with Iridium's time.
    let fake = Fake::at(0);
    let c = GuardedClock::new(fake.clone(), TimeFloor::open(dir.path(), floor).unwrap());
    let (t, q) = c.stamp_event(t1);
    assert_eq!(t, t1 + correction);
    assert_eq!(
        (q.source, q.uncertainty_ms, q.restamped),
        (TimeSource::Iridium, Some(1_000), true)
    );
    assert_eq!(c.stamp_event(t2).0, NOW);
    // No time of this run can fall inside the kept span: it starts where
    // the first run's trusted time stood.
    let now = c.now_ms();
    assert!(now >= NOW, "{now} handed out inside the corrected span");
    assert_eq!(c.report().quality, "untrusted");
    assert_eq!(c.report().corrections_kept, 1);
    let (_, q) = c.stamp_event(now);
    assert_eq!(q.source, TimeSource::Untrusted, "this run's own span");
}

#[test]
fn a_correction_back_in_time_is_not_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The floor was raised by a clock that ran ahead; the system clock then
    // reset, and the technician's time is a day earlier than the floor.
    let fake = Fake::at(0);
    let c = GuardedClock::new(fake.clone(), TimeFloor::open(dir.path(), NOW).unwrap());
    fake.run(5_000);
    let (t, _) = c.stamp_event(c.now_ms());
    c.offer(ReferenceSource::FieldLink, NOW - DAY, 500);
    assert_eq!(
        c.report().untrusted_spans[0].correction_ms.map(|x| x < 0),
        Some(true)
    );
    assert_eq!(c.report().corrections_kept, 0);
    drop(c);
    // Times from the technician's on pass through the span again, so it
    // is not kept: after a restart the event keeps its untrusted time.
    let c = GuardedClock::new(Fake::at(0), TimeFloor::open(dir.path(), 0).unwrap());
    let (same, q) = c.stamp_event(t);
    assert_eq!(same, t);
    assert!(!q.restamped);
}

#[test]
fn kept_corrections_above_the_technicians_time_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let floor = NOW - DAY;
    let fake = Fake::at(0);
    let c = GuardedClock::new(fake.clone(), TimeFloor::open(dir.path(), floor).unwrap());
    fake.run(5_000);
    c.now_ms();
    c.offer(ReferenceSource::Iridium, NOW, 1_000);
    assert_eq!(c.report().corrections_kept, 1);
    // Iridium was wrong by a year; the technician sets the time below the
    // span, which will be handed out again.
    c.offer(ReferenceSource::FieldLink, floor - 400 * DAY, 500);
    assert_eq!(c.report().corrections_kept, 0);
    drop(c);
    let c = GuardedClock::new(Fake::at(0), TimeFloor::open(dir.path(), 0).unwrap());
    assert_eq!(c.report().corrections_kept, 0);
}

#[test]
fn an_untrusted_system_clock_takes_the_rtcs_time_when_the_rtc_is_above_the_floor() {
    use crate::timekeeping::rtc::RtcReading;
    // The system clock came up at 1970 (set wrong after boot), the RTC
    // kept time.
    let fake = Fake::at(0);
    *fake.rtc.lock().unwrap() = Some(RtcReading {
        unix_ms: NOW,
        cell_mv: Some(3_010),
    });
    let c = clock(&fake, NOW - DAY);
    let r = c.report();
    assert_eq!(r.quality, "plausible");
    assert_eq!(r.uncertainty_ms, None, "the RTC's drift is not known");
    assert_eq!(r.rtc.map(|r| r.cell_mv), Some(Some(3_010)));
    assert_eq!(c.now_ms(), NOW);
    // The few milliseconds before the RTC was read are a corrected span.
    assert_eq!(r.untrusted_spans.len(), 1);
    let (_, q) = c.stamp_event(NOW + 10);
    assert_eq!(q.source, TimeSource::Plausible);
    // A later reference that disagrees still wins over the RTC's time.
    c.offer(ReferenceSource::Iridium, NOW + 60_000, 1_000);
    assert_eq!(c.report().quality, "iridium");
}

#[test]
fn an_rtc_that_lost_its_time_is_not_taken() {
    use crate::timekeeping::rtc::RtcReading;
    // A flat cell: the RTC restarted at its epoch along with the system.
    let fake = Fake::at(0);
    *fake.rtc.lock().unwrap() = Some(RtcReading {
        unix_ms: 5_000,
        cell_mv: Some(1_200),
    });
    let c = clock(&fake, NOW - DAY);
    let r = c.report();
    assert_eq!(r.quality, "untrusted");
    assert_eq!(r.rtc.and_then(|r| r.cell_mv), Some(1_200));
    assert_eq!(c.now_ms(), NOW - DAY);
    // With a trusted system clock the RTC is only reported.
    let fake = Fake::at(NOW);
    *fake.rtc.lock().unwrap() = Some(RtcReading {
        unix_ms: NOW + 3_600_000,
        cell_mv: None,
    });
    let c = clock(&fake, NOW - DAY);
    assert_eq!(c.now_ms(), NOW);
    assert_eq!(c.report().quality, "plausible");
}

#[test]
fn the_system_sources_name_the_boot_and_count_from_it() {
    let s = SystemSources::default();
    let text = std::fs::read_to_string(BOOT_ID_PATH).unwrap();
    assert_eq!(s.boot_id(), messages::MonoRef::parse_boot_id(&text));
    assert!(s.boot_id().is_some(), "boot id {text:?} does not parse");
    // The monotonic clock counts from the boot: it agrees with the
    // kernel's uptime to within the two readings' rounding.
    let uptime_ms = std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .map(|s| (s * 1000.0) as i64)
        .unwrap();
    let mono = s.mono_ms();
    assert!(
        (mono - uptime_ms).abs() < 5_000,
        "monotonic {mono} ms against uptime {uptime_ms} ms"
    );
}

#[test]
fn boot_ids_parse_from_the_kernel_text_or_not_at_all() {
    assert_eq!(
        messages::MonoRef::parse_boot_id("3f2a9c1e-77b0-4d1e-9a55-0c3e1f2a4b6d\n"),
        Some(0x3f2a_9c1e_77b0_4d1e)
    );
    assert_eq!(messages::MonoRef::parse_boot_id("3f2a9c1e-77b0"), None);
    assert_eq!(
        messages::MonoRef::parse_boot_id("zz2a9c1e-77b0-4d1e-9a55"),
        None
    );
    assert_eq!(messages::MonoRef::parse_boot_id(""), None);
}
