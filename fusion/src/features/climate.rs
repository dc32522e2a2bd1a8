//! Climate features of an event: temperature, humidity and pressure against
//! a rolling baseline taken before the event, and the fastest rates of change.

use std::collections::VecDeque;

use crate::ClimateSample;

/// Length of the climate feature vector.
pub const CLIMATE_DIM: usize = 8;
/// History kept.
const HORIZON_MS: i64 = 1_200_000;
/// Baseline: readings from this long before the event...
const BASELINE_FROM_MS: i64 = 600_000;
/// ...up to this long before it.
const BASELINE_TO_MS: i64 = 30_000;
/// Readings up to this long after the event count (heat lags the sound).
const AFTER_MS: i64 = 120_000;

/// Recent climate readings.
#[derive(Default)]
pub struct ClimateHistory {
    samples: VecDeque<ClimateSample>,
}

impl ClimateHistory {
    /// Empty history.
    pub fn new() -> Self {
        ClimateHistory::default()
    }

    /// Feeds a reading; non-finite or out-of-order readings are ignored.
    pub fn push(&mut self, s: &ClimateSample) {
        let finite =
            s.temperature_c.is_finite() && s.humidity_pct.is_finite() && s.pressure_hpa.is_finite();
        if !finite || self.samples.back().is_some_and(|b| s.t_ms <= b.t_ms) {
            return;
        }
        self.samples.push_back(*s);
        while self
            .samples
            .front()
            .is_some_and(|f| f.t_ms < s.t_ms - HORIZON_MS)
        {
            self.samples.pop_front();
        }
    }

    /// Features of `[start_ms, end_ms]`, or `None` without two readings in
    /// the event's window.
    pub fn features(&self, start_ms: i64, end_ms: i64) -> Option<Vec<f32>> {
        let win: Vec<&ClimateSample> = self
            .samples
            .iter()
            .filter(|s| s.t_ms >= start_ms - BASELINE_TO_MS && s.t_ms <= end_ms + AFTER_MS)
            .collect();
        if win.len() < 2 {
            return None;
        }
        let base: Vec<&ClimateSample> = self
            .samples
            .iter()
            .filter(|s| s.t_ms >= start_ms - BASELINE_FROM_MS && s.t_ms < start_ms - BASELINE_TO_MS)
            .collect();
        let base_src = if base.is_empty() {
            &win[..1]
        } else {
            &base[..]
        };
        let n = base_src.len() as f32;
        let bt = base_src.iter().map(|s| s.temperature_c).sum::<f32>() / n;
        let bh = base_src.iter().map(|s| s.humidity_pct).sum::<f32>() / n;
        let bp = base_src.iter().map(|s| s.pressure_hpa).sum::<f32>() / n;
        let dt_max = win
            .iter()
            .map(|s| s.temperature_c - bt)
            .fold(f32::MIN, f32::max);
        let dh_min = win
            .iter()
            .map(|s| s.humidity_pct - bh)
            .fold(f32::MAX, f32::min);
        let last = win[win.len() - 1];
        let rate_max = win
            .windows(2)
            .map(|p| {
                let dt_min = (p[1].t_ms - p[0].t_ms).max(1) as f32 / 60_000.0;
                (p[1].temperature_c - p[0].temperature_c) / dt_min
            })
            .fold(f32::MIN, f32::max);
        let out = vec![
            dt_max,
            last.temperature_c - bt,
            rate_max.clamp(-20.0, 20.0),
            dh_min / 10.0,
            (last.pressure_hpa - bp).clamp(-20.0, 20.0),
            bt / 10.0,
            bh / 100.0,
            (win.len() as f32).ln(),
        ];
        debug_assert_eq!(out.len(), CLIMATE_DIM);
        Some(
            out.into_iter()
                .map(|v| if v.is_finite() { v } else { 0.0 })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: i64, t: f32) -> ClimateSample {
        ClimateSample {
            t_ms,
            temperature_c: t,
            humidity_pct: 60.0,
            pressure_hpa: 1000.0,
        }
    }

    #[test]
    fn heat_after_the_event_is_measured_against_the_baseline() {
        let mut h = ClimateHistory::new();
        for i in 0..120i64 {
            let t = if i >= 90 {
                15.0 + 0.3 * (i - 90).min(10) as f32
            } else {
                15.0
            };
            h.push(&s(i * 10_000, t));
        }
        let f = h.features(900_000, 930_000).unwrap_or_default();
        assert!((f[0] - 3.0).abs() < 0.01, "{f:?}");
        assert!((f[2] - 1.8).abs() < 0.01, "rate {}", f[2]);
        let q = h.features(300_000, 330_000).unwrap_or_default();
        assert!(q[0].abs() < 0.01 && q[2].abs() < 0.01);
        h.push(&s(5, f32::NAN));
        assert_eq!(ClimateHistory::new().features(0, 1), None);
    }
}
