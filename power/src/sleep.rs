//! When a sleep the policy called ([`crate::SleepCall`]) should end: the
//! `[power.sleep]` settings and [`plan_wake`].
//!
//! The wake is the earliest of:
//! - the next time the panel is expected to charge again: `recovery_h`,
//!   local solar time (`utc_offset_h` from UTC), the first such time at
//!   least `min_sleep_s` away;
//! - `max_sleep_s` from now;
//! - the next daily status report (`report_utc_h`, UTC), when configured,
//!   so the node is awake to send it;
//! - the start of the next listening window (`listening`, local solar
//!   time, [`crate::listen`]).
//!
//! A wake closer than `min_sleep_s` (a report due soon) is no sleep at all:
//! halting and booting cost more than they save, and the policy asks again
//! at its next reading.

use serde::{Deserialize, Serialize};

use crate::listen::{Listening, ListeningWindow};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// `[power.sleep]`: how long a sleep lasts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SleepConfig {
    /// Local solar time (hours, 0..24) from which the panel is expected to
    /// charge the battery again.
    pub recovery_h: f64,
    /// Local solar time minus UTC, hours (-12..14).
    pub utc_offset_h: f64,
    /// The longest sleep, seconds.
    pub max_sleep_s: u64,
    /// The shortest sleep worth a halt and a boot, seconds.
    pub min_sleep_s: u64,
    /// The hour (UTC, 0..24) of a daily status report the node must be
    /// awake for; `None`: no such report.
    pub report_utc_h: Option<f64>,
    /// After a boot, a planned wake counts as reached when the clock is
    /// within this many seconds before it (the RTC counts whole seconds,
    /// and the boot takes a while).
    pub wake_tolerance_s: u64,
    /// An input line that wakes the node (a PIR or a button wired to the
    /// board's power button or its enable), read at start to tell a
    /// wake-line wake from a cold boot.
    pub wake_line: Option<crate::loads::InputLineConfig>,
    /// Listening windows, local solar time: the node stays awake in them
    /// whatever its mode and wakes for their start.
    pub listening: Vec<ListeningWindow>,
    /// Below this state of charge the listening windows do not hold the
    /// node awake (it sleeps as the policy calls, to survive).
    pub survival_below_soc: f64,
}

impl Default for SleepConfig {
    fn default() -> Self {
        SleepConfig {
            recovery_h: 9.0,
            utc_offset_h: 0.0,
            max_sleep_s: 12 * 3600,
            min_sleep_s: 900,
            report_utc_h: Some(12.0),
            wake_tolerance_s: 120,
            wake_line: None,
            listening: default_windows(),
            survival_below_soc: 0.05,
        }
    }
}

/// Dawn 05:00 to 06:00 and dusk 18:30 to 19:30, local solar time: two
/// hours a day of choruses (`docs/energy.md` for the trade-off).
fn default_windows() -> Vec<ListeningWindow> {
    vec![
        ListeningWindow {
            start_h: 5.0,
            end_h: 6.0,
        },
        ListeningWindow {
            start_h: 18.5,
            end_h: 19.5,
        },
    ]
}

impl SleepConfig {
    /// The listening windows on this configuration's local solar time.
    pub fn listening(&self) -> Listening {
        Listening {
            windows: self.listening.clone(),
            utc_offset_h: self.utc_offset_h,
            survival_below_soc: self.survival_below_soc,
        }
    }

    /// Range checks, as `(key path relative to this table, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        let mut bad = |k: &str, m: &str| e.push((k.to_string(), m.to_string()));
        if !(0.0..24.0).contains(&self.recovery_h) {
            bad("recovery_h", "must be an hour from 0 to under 24");
        }
        if !(-12.0..=14.0).contains(&self.utc_offset_h) {
            bad("utc_offset_h", "must be between -12 and 14 hours");
        }
        if !(60..=7 * 86_400).contains(&self.max_sleep_s) {
            bad("max_sleep_s", "must be between 60 s and 7 days");
        }
        if self.min_sleep_s > self.max_sleep_s {
            bad("min_sleep_s", "must not be above max_sleep_s");
        }
        if let Some(h) = self.report_utc_h
            && !(0.0..24.0).contains(&h)
        {
            bad("report_utc_h", "must be an hour from 0 to under 24");
        }
        if self.wake_tolerance_s > 3600 {
            bad("wake_tolerance_s", "must be at most one hour");
        }
        if let Some(l) = &self.wake_line
            && !crate::loads::config::USABLE_PINS.contains(&l.pin)
        {
            bad(
                "wake_line.pin",
                "must be a BCM GPIO from 4 to 27 (0 and 1 are the HAT ID EEPROM's, 2 and 3 the I2C bus)",
            );
        }
        if !(0.0..=1.0).contains(&self.survival_below_soc) {
            bad(
                "survival_below_soc",
                "must be a state of charge between 0 and 1",
            );
        }
        e.extend(crate::listen::validate(&self.listening));
        e
    }
}

/// What ended the planned sleep early. The codes are part of the wire
/// format (status record v6): never reorder, only append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WakeBound {
    /// The panel is expected to charge again (`recovery_h`).
    Recovery,
    /// The longest sleep (`max_sleep_s`).
    MaxSleep,
    /// The daily status report (`report_utc_h`).
    Report,
    /// The start of a listening window (`listening`).
    Listening,
}

impl WakeBound {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WakeBound::Recovery => "recovery",
            WakeBound::MaxSleep => "max_sleep",
            WakeBound::Report => "report",
            WakeBound::Listening => "listening",
        }
    }
}

/// A planned wake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WakePlan {
    /// When, ms since the Unix epoch (a whole second: the RTC's unit).
    pub wake_ms: i64,
    /// Which bound set it.
    pub bound: WakeBound,
}

/// The first time at or after `from_ms` that is `hour` hours into a day
/// which starts `offset_h` hours before UTC's.
fn next_hour(from_ms: i64, hour: f64, offset_h: f64) -> i64 {
    let offset = (offset_h * HOUR_MS as f64).round() as i64;
    let local = from_ms + offset;
    let day = local.div_euclid(DAY_MS) * DAY_MS;
    let mut t = day + (hour * HOUR_MS as f64).round() as i64;
    if t < local {
        t += DAY_MS;
    }
    t - offset
}

/// When a sleep starting at `now_ms` should end (see the module's rules);
/// `None` when that is closer than `min_sleep_s`.
pub fn plan_wake(cfg: &SleepConfig, now_ms: i64) -> Option<WakePlan> {
    let min_ms = i64::try_from(cfg.min_sleep_s)
        .unwrap_or(i64::MAX / 2)
        .saturating_mul(1000);
    let max_ms = i64::try_from(cfg.max_sleep_s)
        .unwrap_or(i64::MAX / 2)
        .saturating_mul(1000);
    let recovery = next_hour(now_ms + min_ms, cfg.recovery_h, cfg.utc_offset_h);
    let mut plan = WakePlan {
        wake_ms: recovery,
        bound: WakeBound::Recovery,
    };
    let max = now_ms.saturating_add(max_ms);
    if max < plan.wake_ms {
        plan = WakePlan {
            wake_ms: max,
            bound: WakeBound::MaxSleep,
        };
    }
    if let Some(h) = cfg.report_utc_h {
        // The next report strictly after now: one due this very moment is
        // being sent by the awake node.
        let report = next_hour(now_ms + 1, h, 0.0);
        if report < plan.wake_ms {
            plan = WakePlan {
                wake_ms: report,
                bound: WakeBound::Report,
            };
        }
    }
    if let Some(start) = cfg.listening().next_start(now_ms)
        && start < plan.wake_ms
    {
        plan = WakePlan {
            wake_ms: start,
            bound: WakeBound::Listening,
        };
    }
    // Whole seconds, never earlier than planned.
    plan.wake_ms = (plan.wake_ms + 999).div_euclid(1000) * 1000;
    (plan.wake_ms - now_ms >= min_ms).then_some(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-06-01T00:00:00Z.
    const DAY0: i64 = 1_780_272_000_000;

    fn at(h: f64) -> i64 {
        DAY0 + (h * HOUR_MS as f64) as i64
    }

    /// The defaults without listening windows or a daily report.
    fn bare() -> SleepConfig {
        SleepConfig {
            listening: vec![],
            report_utc_h: None,
            max_sleep_s: 6 * 3600,
            ..SleepConfig::default()
        }
    }

    #[test]
    fn the_next_listening_window_is_a_bound() {
        // Default windows 05:00-06:00 and 18:30-19:30 local, UTC + 2.
        let cfg = SleepConfig {
            utc_offset_h: 2.0,
            max_sleep_s: 12 * 3600,
            report_utc_h: None,
            ..SleepConfig::default()
        };
        // 22:00 UTC is midnight local: dawn at 05:00 local is 03:00 UTC.
        let p = plan_wake(&cfg, at(22.0)).unwrap();
        assert_eq!((p.wake_ms, p.bound), (at(27.0), WakeBound::Listening));
        // Asleep below survival inside the dawn window (03:30 UTC): the
        // next window is dusk, 16:30 UTC, after the 09:00 local recovery.
        let p = plan_wake(&cfg, at(3.5)).unwrap();
        assert_eq!((p.wake_ms, p.bound), (at(7.0), WakeBound::Recovery));
        let p = plan_wake(&cfg, at(10.0)).unwrap();
        assert_eq!((p.wake_ms, p.bound), (at(16.5), WakeBound::Listening));
    }

    #[test]
    fn the_wake_is_the_earliest_bound() {
        let cfg = SleepConfig {
            max_sleep_s: 12 * 3600,
            ..bare()
        };
        // 22:00 UTC, recovery at 09:00 is 11 h away, under the 12 h cap.
        let p = plan_wake(&cfg, at(22.0)).unwrap();
        assert_eq!((p.wake_ms, p.bound), (at(33.0), WakeBound::Recovery));
        // A 6 h cap wins.
        let p = plan_wake(&bare(), at(22.0)).unwrap();
        assert_eq!((p.wake_ms, p.bound), (at(28.0), WakeBound::MaxSleep));
        // A daily report at 02:30 UTC comes first.
        let cfg = SleepConfig {
            report_utc_h: Some(2.5),
            ..cfg
        };
        let p = plan_wake(&cfg, at(22.0)).unwrap();
        assert_eq!((p.wake_ms, p.bound), (at(26.5), WakeBound::Report));
    }

    #[test]
    fn recovery_is_in_local_solar_time_and_at_least_the_minimum_away() {
        // Local solar time is UTC + 10: 09:00 local is 23:00 UTC.
        let cfg = SleepConfig {
            utc_offset_h: 10.0,
            max_sleep_s: 7 * 86_400,
            ..bare()
        };
        let p = plan_wake(&cfg, at(20.0)).unwrap();
        assert_eq!((p.wake_ms, p.bound), (at(23.0), WakeBound::Recovery));
        // Ten minutes before it (under the 15 min minimum): the next day's.
        let p = plan_wake(&cfg, at(22.0 + 50.0 / 60.0)).unwrap();
        assert_eq!(p.wake_ms, at(47.0));
    }

    #[test]
    fn a_report_due_soon_means_no_sleep() {
        let cfg = SleepConfig {
            report_utc_h: Some(12.0),
            ..bare()
        };
        assert_eq!(plan_wake(&cfg, at(11.9)), None);
        // Just after the report: the next one is a day away.
        let p = plan_wake(&cfg, at(12.01)).unwrap();
        assert_eq!(p.bound, WakeBound::MaxSleep);
    }

    #[test]
    fn wakes_fall_on_whole_seconds() {
        let p = plan_wake(&bare(), at(22.0) + 1_234).unwrap();
        assert_eq!(p.wake_ms % 1000, 0);
        assert!(p.wake_ms >= at(28.0) + 1_234);
    }

    #[test]
    fn validation_names_keys() {
        let cfg = SleepConfig {
            recovery_h: 24.0,
            max_sleep_s: 10,
            min_sleep_s: 11,
            report_utc_h: Some(-1.0),
            survival_below_soc: 1.5,
            listening: vec![ListeningWindow {
                start_h: 3.0,
                end_h: 3.0,
            }],
            ..bare()
        };
        let keys: Vec<_> = cfg.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "recovery_h",
                "max_sleep_s",
                "min_sleep_s",
                "report_utc_h",
                "survival_below_soc",
                "listening[0].end_h"
            ]
        );
    }
}
