//! Deep sleep: when the power policy calls for it ([`power::SleepCall`]),
//! the node stops as on SIGTERM (every detected event stored, the store
//! flushed durably, the uplink stopped, the loads off), sets the RTC's
//! wake alarm, writes its sleep record and halts the board. At the next
//! start it tells an RTC wake from a wake-line wake and a cold boot, and
//! reports the sleep in every status record.
//!
//! Layout:
//! - [`wakealarm`]: the RTC alarm in sysfs (under `[power.sysfs] root`);
//! - [`record`]: `<data_dir>/sleep.json`, replaced atomically;
//! - [`boot`]: how the node started ([`boot::classify`]);
//! - [`halt`]: the [`halt::Halt`] edge (logind on a node, a fake in a
//!   replay and the tests);
//! - here: the request the power task makes ([`SleepRequest`]), what the
//!   start does ([`on_boot`]) and what the end of the run does ([`enter`]).

pub mod boot;
pub mod halt;
pub mod record;
pub mod wakealarm;

use std::path::Path;
use std::sync::Mutex;

use messages::{LastSleep, WakeCause};
use power::{SleepReason, WakeBound, WakePlan};
use serde::Serialize;
use tokio::sync::Notify;

use self::halt::Halt;
use self::record::{SleepRecord, Woke};

/// A sleep the power task decided on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedSleep {
    /// Why.
    pub reason: SleepReason,
    /// The node's clock when it was decided, ms since the epoch.
    pub at_ms: i64,
    /// When to wake.
    pub wake: WakePlan,
    /// State of charge, 0..1.
    pub soc: f64,
    /// Battery voltage, mV, where measured.
    pub battery_mv: Option<u32>,
}

/// Shared between the power task and the node's run: set once.
#[derive(Debug, Default)]
pub struct SleepRequest {
    planned: Mutex<Option<PlannedSleep>>,
    notify: Notify,
}

impl SleepRequest {
    /// Asks the node to stop and sleep (the first request stands).
    pub fn request(&self, plan: PlannedSleep) {
        let mut p = self.planned.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none() {
            *p = Some(plan);
        }
        drop(p);
        self.notify.notify_waiters();
    }

    /// The sleep asked for, if any.
    pub fn planned(&self) -> Option<PlannedSleep> {
        *self.planned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes when a sleep is asked for (at once if it was).
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.planned().is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// How the node started, for the run summary.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootReport {
    /// `rtc`, `wake_line` or `cold`.
    pub cause: WakeCause,
    /// The last sleep, once woken from (this start's, or an earlier one).
    pub last_sleep: Option<LastSleep>,
    /// True when this start ended a sleep (a pending record completed).
    pub resumed: bool,
}

/// At start: reads the sleep record, tells how the node started, completes
/// a pending record with the wake (atomically) and logs it. Failures to
/// read or write are logged; the start goes on as a cold boot.
pub fn on_boot(
    data_dir: &Path,
    sys_root: &Path,
    now_ms: i64,
    wake_line: Option<bool>,
    tolerance_s: u64,
) -> BootReport {
    let found = match record::read(data_dir) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(target: "sleep", error = %e, "sleep record unreadable; taking this start for a cold boot");
            None
        }
    };
    let alarm_s = match wakealarm::read(sys_root) {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::debug!(target: "sleep", error = %e, "RTC wake alarm not readable");
            None
        }
    };
    let clues = boot::Clues {
        now_ms,
        alarm_s,
        wake_line,
        tolerance_ms: i64::try_from(tolerance_s)
            .unwrap_or(i64::MAX / 1000)
            .saturating_mul(1000),
    };
    let cause = boot::classify(found.as_ref(), &clues);
    let mut last_sleep = found.as_ref().and_then(SleepRecord::last_sleep);
    let mut resumed = false;
    match found {
        Some(mut r) if r.woke.is_none() => {
            resumed = true;
            r.woke = Some(Woke {
                at_ms: now_ms,
                cause,
            });
            last_sleep = r.last_sleep();
            if let Err(e) = record::write(data_dir, &r) {
                tracing::error!(target: "sleep", error = %e, "cannot complete the sleep record; the sleep is reported for this run only");
            }
            tracing::info!(
                target: "sleep",
                cause = cause.as_str(),
                reason = r.reason.as_str(),
                slept_s = last_sleep.map_or(0, |s| s.slept_s),
                planned_s = last_sleep.map_or(0, |s| s.planned_s),
                planned_wake_ms = r.planned_wake_ms,
                soc_at_halt = r.soc,
                "woke from deep sleep"
            );
        }
        _ => tracing::info!(
            target: "sleep",
            cause = cause.as_str(),
            wake_line = ?wake_line,
            "start without a pending sleep"
        ),
    }
    BootReport {
        cause,
        last_sleep,
        resumed,
    }
}

/// What the end of a run did about a sleep, for the run summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SleepOutcome {
    /// Why the node slept.
    pub reason: SleepReason,
    /// The planned wake, ms since the epoch.
    pub planned_wake_ms: i64,
    /// The planned length, s.
    pub planned_s: i64,
    /// Which bound set the wake.
    pub bound: WakeBound,
    /// The halt used (`logind`, `simulated`).
    pub halt: &'static str,
    /// True once the halt was asked for successfully.
    pub halted: bool,
    /// What went wrong, if the node did not halt.
    pub error: Option<String>,
}

impl SleepOutcome {
    /// A sleep that did not halt (yet), with the reason if it will not.
    pub fn not_halted(plan: &PlannedSleep, halt: &'static str, error: Option<String>) -> Self {
        SleepOutcome {
            reason: plan.reason,
            planned_wake_ms: plan.wake.wake_ms,
            planned_s: (plan.wake.wake_ms - plan.at_ms) / 1000,
            bound: plan.wake.bound,
            halt,
            halted: false,
            error,
        }
    }
}

/// After the run has stopped and flushed: sets the RTC alarm (cleared,
/// then the absolute time), writes the sleep record, halts. Without an
/// alarm the node does not halt (nothing would wake it): it logs the error
/// and the run ends normally, for the service manager to start it again.
pub fn enter(
    plan: &PlannedSleep,
    data_dir: &Path,
    sys_root: &Path,
    halt: &mut dyn Halt,
) -> SleepOutcome {
    let mut out = SleepOutcome::not_halted(plan, halt.name(), None);
    let epoch_s = plan.wake.wake_ms.div_euclid(1000);
    if let Err(e) = wakealarm::schedule(sys_root, epoch_s) {
        tracing::error!(target: "sleep", error = %e, "cannot set the RTC wake alarm; not halting");
        out.error = Some(e.to_string());
        return out;
    }
    let r = SleepRecord {
        reason: plan.reason,
        slept_at_ms: plan.at_ms,
        planned_wake_ms: plan.wake.wake_ms,
        bound: plan.wake.bound,
        soc: plan.soc,
        battery_mv: plan.battery_mv,
        woke: None,
    };
    if let Err(e) = record::write(data_dir, &r) {
        // Halting still saves the battery; the next start will only take
        // itself for a cold boot.
        tracing::error!(target: "sleep", error = %e, "cannot write the sleep record; halting anyway");
    }
    tracing::warn!(
        target: "sleep",
        reason = plan.reason.as_str(),
        wake_epoch_s = epoch_s,
        planned_s = out.planned_s,
        bound = plan.wake.bound.as_str(),
        soc = plan.soc,
        halt = halt.name(),
        "halting for deep sleep"
    );
    match halt.halt() {
        Ok(()) => out.halted = true,
        Err(e) => {
            tracing::error!(target: "sleep", error = %e, "halt refused; the node stays down until restarted");
            out.error = Some(e.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(at_ms: i64) -> PlannedSleep {
        PlannedSleep {
            reason: SleepReason::LowBattery,
            at_ms,
            wake: WakePlan {
                wake_ms: at_ms + 21_600_000,
                bound: WakeBound::MaxSleep,
            },
            soc: 0.08,
            battery_mv: Some(12_050),
        }
    }

    fn fake_tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let alarm = wakealarm::path(t.path());
        std::fs::create_dir_all(alarm.parent().unwrap()).unwrap();
        std::fs::write(&alarm, "").unwrap();
        t
    }

    #[test]
    fn a_sleep_sets_the_alarm_writes_the_record_halts_and_the_next_start_reports_it() {
        let data = tempfile::tempdir().unwrap();
        let sys = fake_tree();
        let at = 1_780_272_000_000;
        let h = halt::FakeHalt::default();
        let out = enter(&plan(at), data.path(), sys.path(), &mut h.clone());
        assert!(out.halted, "{out:?}");
        assert_eq!(h.calls(), 1);
        assert_eq!(
            wakealarm::read(sys.path()).unwrap(),
            Some((at + 21_600_000) / 1000)
        );
        let r = record::read(data.path()).unwrap().unwrap();
        assert_eq!(r.planned_wake_ms, at + 21_600_000);
        assert_eq!(r.woke, None);
        // The alarm fires (the kernel clears it); the clock is 5 s late.
        std::fs::write(wakealarm::path(sys.path()), "").unwrap();
        let boot = on_boot(data.path(), sys.path(), at + 21_605_000, None, 120);
        assert_eq!(boot.cause, WakeCause::Rtc);
        assert!(boot.resumed);
        let s = boot.last_sleep.unwrap();
        assert_eq!((s.slept_s, s.planned_s), (21_605, 21_600));
        // Completed: the next start is a cold boot reporting the same sleep.
        let again = on_boot(data.path(), sys.path(), at + 30_000_000, None, 120);
        assert_eq!(again.cause, WakeCause::Cold);
        assert!(!again.resumed);
        assert_eq!(again.last_sleep, Some(s));
    }

    #[test]
    fn without_an_alarm_the_node_does_not_halt() {
        let data = tempfile::tempdir().unwrap();
        let no_rtc = tempfile::tempdir().unwrap();
        let h = halt::FakeHalt::default();
        let out = enter(&plan(0), data.path(), no_rtc.path(), &mut h.clone());
        assert!(!out.halted);
        assert!(out.error.is_some());
        assert_eq!(h.calls(), 0);
        assert_eq!(record::read(data.path()).unwrap(), None);
    }

    #[tokio::test]
    async fn the_first_request_stands() {
        let r = std::sync::Arc::new(SleepRequest::default());
        let waiter = {
            let r = r.clone();
            tokio::spawn(async move { r.wait().await })
        };
        r.request(plan(1));
        r.request(plan(2));
        waiter.await.unwrap();
        assert_eq!(r.planned().map(|p| p.at_ms), Some(1));
    }
}
