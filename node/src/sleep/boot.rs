//! At start: was this an RTC wake, a wake-line wake or a cold boot?
//!
//! - A sleep record not yet completed ([`super::record`]) whose planned
//!   wake is reached (the clock at or past it, less `wake_tolerance_s`), or
//!   whose RTC alarm reads as cleared (the kernel clears it when it
//!   fires): an **RTC wake**.
//! - Otherwise, with such a record and the configured wake line active: a
//!   **wake-line wake**.
//! - Anything else (no pending record, or woken early without the line):
//!   a **cold boot**.

use messages::WakeCause;

use super::record::SleepRecord;

/// What the start found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clues {
    /// The node's clock, ms since the epoch.
    pub now_ms: i64,
    /// The RTC alarm: `Some(None)` read as cleared, `Some(Some(s))` still
    /// set to `s`, `None` unreadable.
    pub alarm_s: Option<Option<i64>>,
    /// The wake line: `None` when none is configured or it cannot be read.
    pub wake_line: Option<bool>,
    /// How early a wake still counts as the planned one, ms.
    pub tolerance_ms: i64,
}

/// How the node started, given the sleep record found (if any).
pub fn classify(pending: Option<&SleepRecord>, clues: &Clues) -> WakeCause {
    let Some(r) = pending.filter(|r| r.woke.is_none()) else {
        return WakeCause::Cold;
    };
    let reached = clues.now_ms >= r.planned_wake_ms - clues.tolerance_ms;
    let fired = matches!(clues.alarm_s, Some(None));
    if reached || fired {
        WakeCause::Rtc
    } else if clues.wake_line == Some(true) {
        WakeCause::WakeLine
    } else {
        WakeCause::Cold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use power::{SleepReason, WakeBound};

    const PLANNED: i64 = 1_780_293_600_000;

    fn pending() -> SleepRecord {
        SleepRecord {
            reason: SleepReason::LowBattery,
            slept_at_ms: PLANNED - 21_600_000,
            planned_wake_ms: PLANNED,
            bound: WakeBound::MaxSleep,
            soc: 0.08,
            battery_mv: None,
            woke: None,
        }
    }

    fn clues(now_ms: i64, alarm_s: Option<Option<i64>>, line: Option<bool>) -> Clues {
        Clues {
            now_ms,
            alarm_s,
            wake_line: line,
            tolerance_ms: 120_000,
        }
    }

    #[test]
    fn the_planned_time_reached_is_an_rtc_wake() {
        let r = pending();
        let still_set = Some(Some(PLANNED / 1000));
        for now in [PLANNED - 120_000, PLANNED, PLANNED + 3_600_000] {
            assert_eq!(
                classify(Some(&r), &clues(now, still_set, Some(true))),
                WakeCause::Rtc,
                "{now}"
            );
        }
        // The alarm fired (cleared) though the clock is behind: a clock
        // that lost time, still the RTC's wake.
        assert_eq!(
            classify(Some(&r), &clues(PLANNED - 7_200_000, Some(None), None)),
            WakeCause::Rtc
        );
    }

    #[test]
    fn early_with_the_wake_line_is_a_wake_line_wake_and_without_a_cold_boot() {
        let r = pending();
        let early = PLANNED - 121_000;
        let set = Some(Some(PLANNED / 1000));
        assert_eq!(
            classify(Some(&r), &clues(early, set, Some(true))),
            WakeCause::WakeLine
        );
        assert_eq!(
            classify(Some(&r), &clues(early, set, Some(false))),
            WakeCause::Cold
        );
        assert_eq!(
            classify(Some(&r), &clues(early, None, None)),
            WakeCause::Cold
        );
    }

    #[test]
    fn without_a_pending_record_every_start_is_a_cold_boot() {
        assert_eq!(
            classify(None, &clues(PLANNED, Some(None), Some(true))),
            WakeCause::Cold
        );
        let mut done = pending();
        done.woke = Some(super::super::record::Woke {
            at_ms: PLANNED,
            cause: WakeCause::Rtc,
        });
        assert_eq!(
            classify(Some(&done), &clues(PLANNED + 1, Some(None), None)),
            WakeCause::Cold
        );
    }
}
