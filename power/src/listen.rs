//! Listening windows: hours of local solar time (dawn and dusk choruses,
//! for example) during which the node stays awake whatever its mode, unless
//! the charge is below the survival threshold. The policy makes no sleep
//! call inside a window ([`crate::PowerPolicy::set_listening`]), and
//! [`crate::plan_wake`] wakes the node for the next window's start.
//!
//! A window runs from `start_h` (included) to `end_h` (excluded), hours of
//! local solar time (`[power.sleep] utc_offset_h` from UTC); a window whose
//! end is before its start runs across midnight.

use serde::{Deserialize, Serialize};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// One window, hours of local solar time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListeningWindow {
    /// Start, hours (0..24), included.
    pub start_h: f64,
    /// End, hours (0..24), excluded; before `start_h`: across midnight.
    pub end_h: f64,
}

impl ListeningWindow {
    /// The window's length, hours.
    pub fn hours(&self) -> f64 {
        (self.end_h - self.start_h).rem_euclid(24.0)
    }

    fn start_ms(&self) -> i64 {
        (self.start_h * HOUR_MS as f64).round() as i64
    }

    fn end_ms(&self) -> i64 {
        (self.end_h * HOUR_MS as f64).round() as i64
    }

    /// Whether `local_ms` (ms since a local midnight, 0..one day) is inside.
    fn contains_local(&self, local_ms: i64) -> bool {
        let (s, e) = (self.start_ms(), self.end_ms());
        if s <= e {
            (s..e).contains(&local_ms)
        } else {
            local_ms >= s || local_ms < e
        }
    }
}

/// The windows and the clock they are read on.
#[derive(Clone, Debug, PartialEq)]
pub struct Listening {
    /// The windows.
    pub windows: Vec<ListeningWindow>,
    /// Local solar time minus UTC, hours.
    pub utc_offset_h: f64,
    /// Below this state of charge the windows do not hold the node awake.
    pub survival_below_soc: f64,
}

impl Listening {
    fn offset_ms(&self) -> i64 {
        (self.utc_offset_h * HOUR_MS as f64).round() as i64
    }

    /// The window `t_ms` (ms since the Unix epoch) falls in, if any.
    pub fn window_at(&self, t_ms: i64) -> Option<ListeningWindow> {
        let local = (t_ms + self.offset_ms()).rem_euclid(DAY_MS);
        self.windows
            .iter()
            .copied()
            .find(|w| w.contains_local(local))
    }

    /// Whether the windows hold the node awake at `t_ms` with `soc`.
    pub fn holds_awake(&self, t_ms: i64, soc: f64) -> bool {
        soc >= self.survival_below_soc && self.window_at(t_ms).is_some()
    }

    /// The first window start strictly after `from_ms`.
    pub fn next_start(&self, from_ms: i64) -> Option<i64> {
        let offset = self.offset_ms();
        let local = from_ms + offset;
        let day = local.div_euclid(DAY_MS) * DAY_MS;
        self.windows
            .iter()
            .map(|w| {
                let mut t = day + w.start_ms();
                if t <= local {
                    t += DAY_MS;
                }
                t - offset
            })
            .min()
    }

    /// Total window hours per day.
    pub fn hours_per_day(&self) -> f64 {
        self.windows.iter().fold(0.0, |a, w| a + w.hours())
    }
}

/// Range checks of a window list, as `(key path, problem)`: hours in
/// 0..24, no empty window, no overlap.
pub fn validate(windows: &[ListeningWindow]) -> Vec<(String, String)> {
    let mut e = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        for (v, k) in [(w.start_h, "start_h"), (w.end_h, "end_h")] {
            if !(0.0..24.0).contains(&v) {
                e.push((
                    format!("listening[{i}].{k}"),
                    "must be an hour from 0 to under 24".to_string(),
                ));
            }
        }
        if w.start_ms() == w.end_ms() {
            e.push((
                format!("listening[{i}].end_h"),
                "must differ from start_h".to_string(),
            ));
        }
    }
    if e.is_empty() {
        // Minute by minute: two windows holding the same minute overlap.
        for m in 0..24 * 60 {
            let t = i64::from(m) * 60_000;
            let holding: Vec<usize> = windows
                .iter()
                .enumerate()
                .filter(|(_, w)| w.contains_local(t))
                .map(|(i, _)| i)
                .collect();
            if let [_, second, ..] = holding[..] {
                e.push((
                    format!("listening[{second}]"),
                    "overlaps another window".to_string(),
                ));
                break;
            }
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-06-01T00:00:00Z.
    const DAY0: i64 = 1_780_272_000_000;

    fn at(h: f64) -> i64 {
        DAY0 + (h * HOUR_MS as f64) as i64
    }

    fn dawn_dusk(offset: f64) -> Listening {
        Listening {
            windows: vec![
                ListeningWindow {
                    start_h: 5.0,
                    end_h: 6.0,
                },
                ListeningWindow {
                    start_h: 18.5,
                    end_h: 19.5,
                },
            ],
            utc_offset_h: offset,
            survival_below_soc: 0.05,
        }
    }

    #[test]
    fn windows_are_read_in_local_solar_time() {
        let l = dawn_dusk(0.0);
        assert!(l.window_at(at(5.0)).is_some());
        assert!(l.window_at(at(5.99)).is_some());
        assert!(l.window_at(at(6.0)).is_none(), "the end is excluded");
        assert!(l.window_at(at(4.99)).is_none());
        assert!(l.window_at(at(19.0)).is_some());
        // UTC + 10: 05:00 local is 19:00 UTC the day before.
        let l = dawn_dusk(10.0);
        assert!(l.window_at(at(19.5)).is_some());
        assert!(l.window_at(at(5.5)).is_none());
        assert_eq!(l.hours_per_day(), 2.0);
    }

    #[test]
    fn survival_charge_releases_the_hold() {
        let l = dawn_dusk(0.0);
        assert!(l.holds_awake(at(5.5), 0.05));
        assert!(!l.holds_awake(at(5.5), 0.049));
        assert!(!l.holds_awake(at(7.0), 0.9));
    }

    #[test]
    fn next_start_is_strictly_after() {
        let l = dawn_dusk(0.0);
        assert_eq!(l.next_start(at(1.0)), Some(at(5.0)));
        assert_eq!(l.next_start(at(5.0)), Some(at(18.5)));
        assert_eq!(l.next_start(at(20.0)), Some(at(29.0)));
        let l = dawn_dusk(-3.0);
        // 05:00 local is 08:00 UTC.
        assert_eq!(l.next_start(at(1.0)), Some(at(8.0)));
        let none = Listening {
            windows: vec![],
            ..dawn_dusk(0.0)
        };
        assert_eq!(none.next_start(at(1.0)), None);
    }

    #[test]
    fn a_window_may_run_across_midnight() {
        let l = Listening {
            windows: vec![ListeningWindow {
                start_h: 23.0,
                end_h: 1.0,
            }],
            ..dawn_dusk(0.0)
        };
        assert!(l.window_at(at(23.5)).is_some());
        assert!(l.window_at(at(24.5)).is_some());
        assert!(l.window_at(at(1.0)).is_none());
        assert_eq!(l.hours_per_day(), 2.0);
    }

    #[test]
    fn validation_names_keys() {
        let w = |start_h, end_h| ListeningWindow { start_h, end_h };
        let keys = |ws: &[ListeningWindow]| -> Vec<String> {
            validate(ws).into_iter().map(|(k, _)| k).collect()
        };
        assert!(keys(&[w(5.0, 7.0), w(18.0, 20.0), w(23.0, 1.0)]).is_empty());
        assert_eq!(keys(&[w(24.0, 1.0)]), ["listening[0].start_h"]);
        assert_eq!(keys(&[w(5.0, 5.0)]), ["listening[0].end_h"]);
        assert_eq!(keys(&[w(5.0, 7.0), w(6.5, 8.0)]), ["listening[1]"]);
        assert_eq!(keys(&[w(23.0, 2.0), w(1.0, 3.0)]), ["listening[1]"]);
    }
}
