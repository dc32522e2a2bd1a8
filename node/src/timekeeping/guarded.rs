//! [`GuardedClock`]: the system clock, judged. See the module above for
//! the rules; the invariants are:
//!
//! - the time handed out never goes backwards within a run, and never
//!   below the floor (so never below an event stored in an earlier run),
//!   except to the technician's time: a field-link reference earlier than
//!   the floor lowers it (a clock that ran ahead stamped those events);
//! - while the system clock is under the floor the time counts on from the
//!   floor on the monotonic clock, and is reported untrusted;
//! - a reference (field link, satellite network time) that disagrees with
//!   an unsynchronised system clock by more than its uncertainty wins;
//! - every span of untrusted time is remembered with the correction that
//!   ended it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::corrections::{Correction, Corrections};
use super::floor::TimeFloor;
use super::kernel::{self, KernelSync};
use super::rtc::{LOW_CELL_MV, Rtc, RtcProbe, RtcReading};
use crate::clock::Clock;

/// A move of the system clock against the monotonic clock larger than this
/// between two readings is a step, ms.
pub const STEP_MS: i64 = 2_000;
/// How often the kernel's synchronisation status is read, ms of monotonic time.
const KERNEL_POLL_MS: i64 = 10_000;

/// Where the readings come from (the system, or a test's fakes).
pub trait TimeSources: Send + Sync + 'static {
    /// The system clock, ms since the epoch.
    fn wall_ms(&self) -> i64;
    /// A monotonic clock, ms from any origin (on the system: since the
    /// boot, so that with [`TimeSources::boot_id`] a time on it names a
    /// moment of one boot).
    fn mono_ms(&self) -> i64;
    /// The first 64 bits of the kernel's boot id, when it can be read.
    fn boot_id(&self) -> Option<u64> {
        None
    }
    /// The kernel's synchronisation status, if it can be read.
    fn kernel(&self) -> Option<KernelSync>;
    /// The board's RTC, if there is one and it reads.
    fn rtc(&self) -> Option<RtcReading> {
        None
    }
    /// The board's RTC, if there is one, with what of it reads (by default
    /// [`TimeSources::rtc`]'s reading: no RTC unless its time reads).
    fn rtc_probe(&self) -> Option<RtcProbe> {
        self.rtc().map(RtcProbe::from)
    }
}

/// The real clocks.
#[derive(Debug)]
pub struct SystemSources {
    origin: std::time::Instant,
    rtc: Rtc,
    boot_id: Option<u64>,
}

/// Where the kernel gives the boot id.
const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

impl Default for SystemSources {
    fn default() -> Self {
        let boot_id = match std::fs::read_to_string(BOOT_ID_PATH) {
            Ok(text) => messages::MonoRef::parse_boot_id(&text),
            Err(e) => {
                tracing::warn!(target: "clock", path = BOOT_ID_PATH, error = %e, "boot id unreadable: untrusted events carry no monotonic reference");
                None
            }
        };
        SystemSources {
            origin: std::time::Instant::now(),
            rtc: Rtc::new(std::path::Path::new("/sys")),
            boot_id,
        }
    }
}

/// Time since the boot, suspend included (`CLOCK_BOOTTIME`), ms.
fn since_boot_ms() -> Option<i64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (r == 0).then(|| ts.tv_sec * 1_000 + ts.tv_nsec / 1_000_000)
}

impl TimeSources for SystemSources {
    fn wall_ms(&self) -> i64 {
        crate::fieldlink::timeref::system_ms()
    }
    fn mono_ms(&self) -> i64 {
        since_boot_ms()
            .unwrap_or_else(|| i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX))
    }
    fn boot_id(&self) -> Option<u64> {
        self.boot_id
    }
    fn kernel(&self) -> Option<KernelSync> {
        kernel::read()
    }
    fn rtc(&self) -> Option<RtcReading> {
        self.rtc.read()
    }
    fn rtc_probe(&self) -> Option<RtcProbe> {
        self.rtc.probe()
    }
}

/// A source of time other than the system clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceSource {
    /// The technician's `time set` over the field link.
    FieldLink,
    /// Iridium network time (`AT-MSSTM`).
    Iridium,
    /// A GNSS receiver (gpsd).
    Gnss,
    /// The board's RTC, when the system clock is untrusted and the RTC is
    /// not (its events are stamped `plausible`).
    Rtc,
}

impl ReferenceSource {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferenceSource::FieldLink => "field_link",
            ReferenceSource::Iridium => "iridium",
            ReferenceSource::Gnss => "gnss",
            ReferenceSource::Rtc => "rtc",
        }
    }
}

/// A stretch of time handed out while untrusted, and the correction that
/// trusted time brought (add it to a time in `[from_ms, to_ms]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UntrustedSpan {
    /// First time handed out, ms.
    pub from_ms: i64,
    /// Last time handed out, ms.
    pub to_ms: i64,
    /// Trusted time minus the time handed out, once known, ms.
    pub correction_ms: Option<i64>,
    /// The quality of the correction (its source and uncertainty).
    #[serde(skip)]
    pub corrected_by: Option<messages::TimeQuality>,
    /// The first time handed out after the correction, ms: times from it
    /// on are on the trusted time line.
    #[serde(skip)]
    pub resumed_ms: Option<i64>,
    /// The time handed out minus the monotonic clock during the span, ms
    /// (a time `t` of the span was handed out at `t - mono_base_ms` on it).
    #[serde(skip)]
    pub mono_base_ms: i64,
}

/// What the run summary and the status record carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockReport {
    /// The current quality (`synced`, `field_link`, `iridium`, `gnss`,
    /// `plausible`, `untrusted`).
    pub quality: &'static str,
    /// Its uncertainty where known (the kernel's maximum error, or the
    /// reference's), ms.
    pub uncertainty_ms: Option<u32>,
    /// Steps of the system clock seen.
    pub steps: u64,
    /// The largest step, ms (signed: negative went backwards).
    pub largest_step_ms: i64,
    /// The floor, ms since the epoch.
    pub floor_ms: i64,
    /// Spans of untrusted time in this run.
    pub untrusted_spans: Vec<UntrustedSpan>,
    /// The board's RTC and its cell, when there is one and its time reads.
    pub rtc: Option<RtcReading>,
    /// The board's RTC as the status record reports it: none when there is
    /// no RTC, its time and cell where each reads (read with `rtc`; not in
    /// the run summary, which has `rtc`).
    #[serde(skip)]
    pub rtc_probe: Option<RtcProbe>,
    /// Corrected untrusted spans kept on disk (this run's and earlier
    /// runs'), for re-stamping events stored in them.
    pub corrections_kept: usize,
    /// Times the floor or a correction could not be persisted.
    pub floor_write_errors: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    System,
    Floor,
    Reference {
        source: ReferenceSource,
        uncertainty_ms: u32,
        at_mono: i64,
    },
}

struct State {
    mode: Mode,
    base_ms: i64,
    last_wall: i64,
    last_mono: i64,
    last_out: i64,
    started: bool,
    kernel: Option<KernelSync>,
    kernel_read_mono: i64,
    floor: TimeFloor,
    steps: u64,
    largest_step_ms: i64,
    spans: Vec<UntrustedSpan>,
    /// Corrections of spans, this run's and earlier runs' (persisted).
    corrections: Corrections,
    floor_write_errors: u64,
}

/// The clock that stamps events on real hardware.
pub struct GuardedClock<S: TimeSources = SystemSources> {
    sources: S,
    state: Mutex<State>,
}

impl<S: TimeSources> GuardedClock<S> {
    /// A clock judged against `floor`, with the corrections kept beside it
    /// by earlier runs.
    pub fn new(sources: S, mut floor: TimeFloor) -> Self {
        let corrections = match Corrections::open(floor.dir()) {
            Ok((c, bad)) => {
                if bad > 0 {
                    tracing::warn!(target: "clock", lines = bad, "unreadable lines in the kept time corrections: skipped");
                }
                c
            }
            Err(e) => {
                tracing::warn!(target: "clock", error = %e, "kept time corrections unreadable: earlier untrusted events cannot be re-stamped");
                Corrections::default()
            }
        };
        // The true time at the end of a corrected span is known: no time
        // handed out from now on may fall inside a kept span.
        let mut floor_write_errors = 0;
        if let Some(end) = corrections
            .spans()
            .iter()
            .map(|c| c.to_ms.saturating_add(c.correction_ms))
            .max()
            && end > floor.get()
            && let Err(e) = floor.raise(end)
        {
            floor_write_errors += 1;
            tracing::warn!(target: "clock", error = %e, "cannot persist the time floor");
        }
        let clock = GuardedClock {
            sources,
            state: Mutex::new(State {
                mode: Mode::System,
                base_ms: 0,
                last_wall: 0,
                last_mono: 0,
                last_out: i64::MIN,
                started: false,
                kernel: None,
                kernel_read_mono: 0,
                floor,
                steps: 0,
                largest_step_ms: 0,
                spans: Vec::new(),
                corrections,
                floor_write_errors,
            }),
        };
        let now = clock.now_ms();
        clock.consult_rtc();
        let report = clock.report();
        tracing::info!(
            target: "clock",
            now_ms = now,
            quality = report.quality,
            floor_ms = report.floor_ms,
            "clock judged at start"
        );
        clock
    }

    /// At start: a system clock judged untrusted takes the RTC's time when
    /// the RTC reads at or above the floor; a low backup cell is logged.
    fn consult_rtc(&self) {
        let Some(r) = self.sources.rtc() else {
            return;
        };
        if let Some(mv) = r.cell_mv.filter(|&mv| mv < LOW_CELL_MV) {
            tracing::warn!(target: "clock", cell_mv = mv, "RTC backup cell low: the RTC will not keep time through a power cut");
        }
        let (untrusted, floor) = {
            let st = self.lock();
            (st.mode == Mode::Floor, st.floor.get())
        };
        if untrusted && r.unix_ms >= floor {
            self.offer(ReferenceSource::Rtc, r.unix_ms, 1_000);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain numbers behind: go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tick(&self, st: &mut State) -> i64 {
        let mono = self.sources.mono_ms();
        let wall = self.sources.wall_ms();
        if !st.started || mono - st.kernel_read_mono >= KERNEL_POLL_MS {
            st.kernel = self.sources.kernel();
            st.kernel_read_mono = mono;
        }
        if st.started {
            let step = wall - (st.last_wall + (mono - st.last_mono));
            if step.abs() > STEP_MS {
                st.steps += 1;
                if step.abs() > st.largest_step_ms.abs() {
                    st.largest_step_ms = step;
                }
                tracing::warn!(target: "clock", step_ms = step, steps = st.steps, "system clock stepped");
            }
        }
        st.last_wall = wall;
        st.last_mono = mono;
        let floor = st.floor.get();
        let synced = st.kernel.is_some_and(|k| k.synced);
        match st.mode {
            Mode::System if wall < floor => {
                let from = st.last_out.max(floor);
                st.mode = Mode::Floor;
                st.base_ms = from - mono;
                st.spans.push(UntrustedSpan {
                    from_ms: from,
                    to_ms: from,
                    correction_ms: None,
                    corrected_by: None,
                    resumed_ms: None,
                    mono_base_ms: st.base_ms,
                });
                tracing::warn!(
                    target: "clock",
                    system_ms = wall,
                    floor_ms = floor,
                    behind_ms = floor - wall,
                    "system clock earlier than the build time or the last stored event: untrusted, counting on from the floor"
                );
            }
            Mode::System => st.base_ms = wall - mono,
            Mode::Floor if wall >= floor => {
                let correction = wall - (mono + st.base_ms);
                st.mode = Mode::System;
                let by = quality_of(st);
                self.end_span(st, mono, correction, "system clock", by);
                st.base_ms = wall - mono;
            }
            Mode::Floor => {}
            Mode::Reference { .. } if synced && wall >= floor => {
                let carried = mono + st.base_ms;
                tracing::info!(target: "clock", difference_ms = wall - carried, "system clock synchronised: it stamps again");
                st.mode = Mode::System;
                st.base_ms = wall - mono;
            }
            Mode::Reference { .. } => {}
        }
        let out = (mono + st.base_ms).max(st.last_out);
        st.last_out = out;
        if let Some(s) = st.spans.last_mut() {
            if s.correction_ms.is_none() {
                s.to_ms = out;
            } else if s.resumed_ms.is_none() {
                s.resumed_ms = Some(out);
            }
        }
        st.started = true;
        out
    }

    fn end_span(
        &self,
        st: &mut State,
        mono: i64,
        correction: i64,
        by: &'static str,
        quality: messages::TimeQuality,
    ) {
        let now = mono + st.base_ms;
        if let Some(s) = st.spans.last_mut()
            && s.correction_ms.is_none()
        {
            s.to_ms = s.to_ms.max(now.min(st.last_out));
            s.correction_ms = Some(correction);
            let corrected = messages::TimeQuality {
                restamped: true,
                ..quality
            };
            s.corrected_by = Some(corrected);
            let kept = Correction {
                from_ms: s.from_ms,
                to_ms: s.to_ms,
                correction_ms: correction,
                quality: corrected,
            };
            // A correction that moves time back is kept for this run only:
            // the times after it pass through the span again, and after a
            // restart nothing would tell them apart.
            if correction > 0
                && let Err(e) = st.corrections.record(kept)
            {
                st.floor_write_errors += 1;
                tracing::warn!(target: "clock", error = %e, "cannot persist the time correction");
            }
            tracing::info!(
                target: "clock",
                by,
                correction_ms = correction,
                from_ms = s.from_ms,
                to_ms = s.to_ms,
                "trusted time again: times handed out while untrusted are off by the correction"
            );
        }
    }

    /// Offers the time `unix_ms` (now, with `uncertainty_ms`) from another
    /// source. It is taken when the clock is untrusted, or when the system
    /// clock is not synchronised and disagrees with it by more than its
    /// uncertainty; never when it is earlier than the floor, except from the
    /// technician (the floor then follows: a clock that ran ahead stamped
    /// the events that raised it).
    pub fn offer(&self, source: ReferenceSource, unix_ms: i64, uncertainty_ms: u32) {
        let mut st = self.lock();
        let now = self.tick(&mut st);
        let mono = st.last_mono;
        let synced = st.kernel.is_some_and(|k| k.synced);
        let disagree = (unix_ms - now).abs() > i64::from(uncertainty_ms) + STEP_MS;
        if unix_ms < st.floor.get() {
            if source != ReferenceSource::FieldLink {
                tracing::warn!(
                    target: "clock",
                    source = source.as_str(),
                    unix_ms,
                    floor_ms = st.floor.get(),
                    "time reference earlier than the build time or the last stored event: refused"
                );
                return;
            }
            // A technician on site outranks the node's records: events were
            // stamped by a clock that ran ahead. Later events will be
            // earlier than those; the floor follows the technician.
            tracing::warn!(
                target: "clock",
                unix_ms,
                floor_ms = st.floor.get(),
                "the technician's time is earlier than the last stored event: the floor is lowered to it"
            );
            if let Err(e) = st.floor.reset(unix_ms) {
                st.floor_write_errors += 1;
                tracing::warn!(target: "clock", error = %e, "cannot persist the time floor");
            }
            match st.corrections.forget_from(unix_ms) {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    target: "clock",
                    spans = n,
                    "kept time corrections above the technician's time forgotten: their events keep their untrusted times"
                ),
                Err(e) => {
                    st.floor_write_errors += 1;
                    tracing::warn!(target: "clock", error = %e, "cannot persist the time corrections");
                }
            }
            // The one time the clock goes back: to the technician's time.
            st.last_out = unix_ms;
        }
        let take = match st.mode {
            Mode::Floor => true,
            Mode::System => disagree && !synced,
            Mode::Reference { .. } => disagree,
        };
        tracing::info!(
            target: "clock",
            source = source.as_str(),
            difference_ms = unix_ms - now,
            uncertainty_ms,
            taken = take,
            "time reference offered"
        );
        if !take {
            return;
        }
        let was_floor = st.mode == Mode::Floor;
        st.mode = Mode::Reference {
            source,
            uncertainty_ms,
            at_mono: mono,
        };
        if was_floor {
            let by = quality_of(&st);
            self.end_span(&mut st, mono, unix_ms - now, source.as_str(), by);
        }
        st.base_ms = unix_ms - mono;
    }

    /// An event at `t_ms` was stored: the floor rises to it (persisted).
    pub fn stored(&self, t_ms: i64) {
        let mut st = self.lock();
        if let Err(e) = st.floor.raise(t_ms) {
            st.floor_write_errors += 1;
            tracing::warn!(target: "clock", error = %e, "cannot persist the time floor");
        }
    }

    /// The time to record for an event that started at `t_ms`, and its
    /// quality: a time handed out during an untrusted span is corrected
    /// once the span has its correction (and marked re-stamped), or marked
    /// untrusted while it has none; other times carry the clock's quality
    /// now.
    pub fn stamp_event(&self, t_ms: i64) -> (i64, messages::TimeQuality) {
        let (t, q, _) = self.stamp_event_mono(t_ms);
        (t, q)
    }

    /// [`GuardedClock::stamp_event`], with the event's place on the
    /// monotonic clock of this boot when its time is untrusted (and the
    /// boot id reads).
    pub fn stamp_event_mono(
        &self,
        t_ms: i64,
    ) -> (i64, messages::TimeQuality, Option<messages::MonoRef>) {
        let mut st = self.lock();
        self.tick(&mut st);
        let span = st.spans.iter().rev().find(|s| {
            (s.from_ms..=s.to_ms).contains(&t_ms) && s.resumed_ms.is_none_or(|r| t_ms < r)
        });
        match span {
            Some(UntrustedSpan {
                correction_ms: Some(c),
                corrected_by: Some(q),
                ..
            }) => (t_ms.saturating_add(*c), *q, None),
            Some(s) => (
                t_ms,
                messages::TimeQuality {
                    source: messages::TimeSource::Untrusted,
                    ..Default::default()
                },
                self.mono_ref(t_ms, s.mono_base_ms),
            ),
            None => match st.corrections.find(t_ms) {
                // A span of an earlier run, corrected before a restart.
                Some(c) => (t_ms.saturating_add(c.correction_ms), c.quality, None),
                None => {
                    let q = quality_of(&st);
                    let mono = (q.source == messages::TimeSource::Untrusted)
                        .then(|| self.mono_ref(t_ms, st.base_ms))
                        .flatten();
                    (t_ms, q, mono)
                }
            },
        }
    }

    /// Where `t_ms`, handed out as `mono_base_ms` plus the monotonic clock,
    /// sits on this boot's monotonic clock.
    fn mono_ref(&self, t_ms: i64, mono_base_ms: i64) -> Option<messages::MonoRef> {
        let boot = self.sources.boot_id()?;
        let offset_ms = u64::try_from(t_ms.saturating_sub(mono_base_ms)).unwrap_or(0);
        Some(messages::MonoRef { boot, offset_ms })
    }

    /// Where the clock stands.
    pub fn report(&self) -> ClockReport {
        let rtc_probe = self.sources.rtc_probe();
        let st = self.lock();
        let q = quality_of(&st);
        ClockReport {
            quality: q.source.as_str(),
            uncertainty_ms: q.uncertainty_ms,
            steps: st.steps,
            largest_step_ms: st.largest_step_ms,
            floor_ms: st.floor.get(),
            untrusted_spans: st.spans.clone(),
            rtc: rtc_probe.and_then(RtcProbe::reading),
            rtc_probe,
            corrections_kept: st.corrections.spans().len(),
            floor_write_errors: st.floor_write_errors,
        }
    }
}

impl<S: TimeSources> Clock for GuardedClock<S> {
    fn now_ms(&self) -> i64 {
        let mut st = self.lock();
        self.tick(&mut st)
    }

    fn sleep_until(&self, t_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = u64::try_from(t_ms - self.now_ms()).unwrap_or(0);
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }

    fn offer_reference(&self, source: ReferenceSource, unix_ms: i64, uncertainty_ms: u32) {
        self.offer(source, unix_ms, uncertainty_ms);
    }

    fn event_stored(&self, t_ms: i64) {
        self.stored(t_ms);
    }

    fn report(&self) -> Option<ClockReport> {
        Some(GuardedClock::report(self))
    }

    fn stamp(&self, t_ms: i64) -> (i64, messages::TimeQuality) {
        self.stamp_event(t_ms)
    }

    fn stamp_mono(&self, t_ms: i64) -> (i64, messages::TimeQuality, Option<messages::MonoRef>) {
        self.stamp_event_mono(t_ms)
    }
}

/// The quality of the time handed out now, for an event record.
fn quality_of(st: &State) -> messages::TimeQuality {
    use messages::{TimeQuality, TimeSource};
    let (source, uncertainty_ms) = match st.mode {
        Mode::Floor => (TimeSource::Untrusted, None),
        Mode::Reference {
            source,
            uncertainty_ms,
            at_mono,
        } => {
            let grown = u64::try_from(st.last_mono - at_mono)
                .unwrap_or(0)
                .saturating_mul(crate::fieldlink::timeref::DRIFT_PPM)
                .div_ceil(1_000_000);
            let unc = u32::try_from(u64::from(uncertainty_ms) + grown).unwrap_or(u32::MAX);
            match source {
                ReferenceSource::FieldLink => (TimeSource::FieldLink, Some(unc)),
                ReferenceSource::Iridium => (TimeSource::Iridium, Some(unc)),
                ReferenceSource::Gnss => (TimeSource::Gnss, Some(unc)),
                // The RTC's drift since it was last set is not known.
                ReferenceSource::Rtc => (TimeSource::Plausible, None),
            }
        }
        Mode::System => match st.kernel {
            Some(k) if k.synced => (TimeSource::Synced, k.max_error_ms),
            _ => (TimeSource::Plausible, None),
        },
    };
    TimeQuality {
        source,
        uncertainty_ms,
        restamped: false,
    }
}

#[cfg(test)]
#[path = "guarded_tests.rs"]
mod tests;
