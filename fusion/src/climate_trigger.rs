//! The climate trigger: the temperature's rate of rise over a window,
//! against a slowly moving baseline, so the daily cycle (a few hundredths of
//! a degree per minute) never triggers but heat from a nearby machine (a
//! degree or more per minute) does.

use std::collections::VecDeque;

use crate::activation::{Activation, ClimateFeatures, Features};
use crate::config::ClimateTriggerConfig;
use crate::{ClimateSample, Modality};

/// A reading this much above the last high is a new high, °C: above a
/// BME280's reading noise (about 0.02 °C), below what a rise at the on
/// rate adds between two readings.
const PEAK_STEP_C: f32 = 0.05;

struct Open {
    start_ms: i64,
    last_ms: i64,
    start_temp: f32,
    max_temp: f32,
    /// The last new high, at least [`PEAK_STEP_C`] above the one before
    /// (reading noise on a plateau does not move it), and when it was read.
    peak_c: f32,
    peak_ms: i64,
    temp_sum: f64,
    n: u32,
    max_rate: f32,
}

/// The climate trigger.
pub struct ClimateTrigger {
    cfg: ClimateTriggerConfig,
    history: VecDeque<(i64, f32)>,
    baseline: Option<f32>,
    open: Option<Open>,
    out: Vec<Activation>,
    processed_ms: i64,
}

impl ClimateTrigger {
    /// A trigger with no history.
    pub fn new(cfg: &ClimateTriggerConfig) -> Self {
        ClimateTrigger {
            cfg: cfg.clone(),
            history: VecDeque::new(),
            baseline: None,
            open: None,
            out: Vec::new(),
            processed_ms: i64::MIN,
        }
    }

    /// Feeds a reading. Returns false (and ignores it) when malformed.
    pub fn push(&mut self, s: &ClimateSample) -> bool {
        if !s.temperature_c.is_finite() || self.history.back().is_some_and(|&(t, _)| s.t_ms <= t) {
            return false;
        }
        let window = i64::from(self.cfg.rate_window_ms);
        let (t, temp) = (s.t_ms, s.temperature_c);
        self.processed_ms = t;
        // Baseline: exponential moving average in time.
        let dt = self.history.back().map_or(0, |&(pt, _)| t - pt) as f32;
        let a = 1.0 - (-dt / self.cfg.baseline_tau_ms.max(1) as f32).exp();
        let base = match self.baseline {
            Some(b) if self.open.is_none() => b + (temp - b) * a,
            // While the temperature is rising abnormally, hold the baseline.
            Some(b) => b,
            None => temp,
        };
        self.baseline = Some(base);
        self.history.push_back((t, temp));
        while self.history.len() > 2 && self.history.front().is_some_and(|&(pt, _)| t - pt > window)
        {
            self.history.pop_front();
        }
        let Some(&(t0, temp0)) = self.history.front() else {
            return true;
        };
        if t - t0 < window / 2 {
            return true; // not enough history for a rate yet
        }
        let rate = (temp - temp0) / ((t - t0) as f32 / 60_000.0);
        match self.open.as_mut() {
            None if rate >= self.cfg.on_rate_c_per_min => {
                // The rise began at its foot: the last reading near the window's minimum.
                let min = self
                    .history
                    .iter()
                    .map(|&(_, v)| v)
                    .fold(f32::INFINITY, f32::min);
                let foot = self
                    .history
                    .iter()
                    .rev()
                    .find(|&&(_, v)| v <= min + 0.2 * (temp - min))
                    .map_or(t0, |&(ft, _)| ft);
                self.open = Some(Open {
                    start_ms: foot,
                    last_ms: t,
                    start_temp: temp0.min(base),
                    max_temp: temp,
                    peak_c: temp,
                    peak_ms: t,
                    temp_sum: f64::from(temp),
                    n: 1,
                    max_rate: rate,
                });
            }
            None => {}
            Some(o) if rate >= self.cfg.off_rate_c_per_min => {
                o.last_ms = t;
                o.max_temp = o.max_temp.max(temp);
                if temp >= o.peak_c + PEAK_STEP_C {
                    o.peak_c = temp;
                    o.peak_ms = t;
                }
                o.temp_sum += f64::from(temp);
                o.n += 1;
                o.max_rate = o.max_rate.max(rate);
            }
            Some(_) => self.close(),
        }
        true
    }

    fn activation(&self, o: &Open) -> Activation {
        let f = ClimateFeatures {
            temp_delta_c: o.max_temp - o.start_temp,
            mean_temp_c: (o.temp_sum / f64::from(o.n.max(1))) as f32,
            max_rate_c_per_min: o.max_rate,
            peak_ms: o.peak_ms,
        };
        Activation {
            modality: Modality::Climate,
            start_ms: o.start_ms,
            end_ms: o.last_ms,
            score: (o.max_rate / (4.0 * self.cfg.on_rate_c_per_min)).clamp(0.1, 1.0),
            features: Features::Climate(f),
        }
    }

    fn close(&mut self) {
        let Some(o) = self.open.take() else { return };
        let a = self.activation(&o);
        self.out.push(a);
    }

    /// The activation still open, as far as it has come (its start is
    /// final; its end and features grow until it closes).
    pub fn open_so_far(&self) -> Option<Activation> {
        self.open.as_ref().map(|o| self.activation(o))
    }

    /// Closes whatever is open.
    pub fn finish(&mut self) {
        self.close();
    }

    /// Activations completed so far.
    pub fn take(&mut self) -> Vec<Activation> {
        std::mem::take(&mut self.out)
    }

    /// No activation can start or extend before this time.
    pub fn safe_ms(&self) -> i64 {
        match &self.open {
            Some(o) => o.start_ms,
            None => self.next_start_ms(),
        }
    }

    /// No activation other than the open one can start before this time:
    /// a new activation starts at the oldest reading of the window.
    pub fn next_start_ms(&self) -> i64 {
        self.history.front().map_or(self.processed_ms, |&(t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(temps: impl Iterator<Item = (i64, f32)>) -> Vec<Activation> {
        let mut c = ClimateTrigger::new(&ClimateTriggerConfig::default());
        for (t, temp) in temps {
            c.push(&ClimateSample {
                t_ms: t,
                temperature_c: temp,
                humidity_pct: 50.0,
                pressure_hpa: 1000.0,
            });
        }
        c.finish();
        c.take()
    }

    #[test]
    fn the_daily_cycle_does_not_trigger() {
        let acts = run((0..8640).map(|i| {
            let t = i * 10_000;
            (
                t,
                12.0 + 6.0 * (t as f32 / 86_400_000.0 * 2.0 * std::f32::consts::PI).sin()
                    + ((i * 7919) % 5) as f32 * 0.01,
            )
        }));
        assert!(acts.is_empty(), "{acts:?}");
    }

    #[test]
    fn a_rise_ends_at_its_last_high_not_when_the_rate_falls() {
        // +3 °C from 200 s to 320 s, then a plateau with reading noise.
        let acts = run((0..60).map(|i| {
            let t = i * 10_000;
            let rise = 3.0 * ((t - 200_000) as f32 / 120_000.0).clamp(0.0, 1.0);
            (t, 15.0 + rise + ((i * 7919) % 3) as f32 * 0.01)
        }));
        assert_eq!(acts.len(), 1, "{acts:?}");
        let Features::Climate(f) = acts[0].features else {
            panic!()
        };
        assert!((310_000..=330_000).contains(&f.peak_ms), "{f:?}");
        // The rate over the window stays above the off rate for a while
        // after the heating stopped.
        assert!(acts[0].end_ms >= f.peak_ms + 20_000, "{:?}", acts[0]);
        assert_eq!(acts[0].settled_end_ms(), f.peak_ms);
    }

    #[test]
    fn a_three_degree_rise_in_a_minute_triggers() {
        let acts = run((0..60).map(|i| {
            let t = i * 10_000;
            let rise = if t >= 200_000 {
                3.0 * (1.0 - (-((t - 200_000) as f32) / 30_000.0).exp())
            } else {
                0.0
            };
            (t, 15.0 + rise)
        }));
        assert_eq!(acts.len(), 1, "{acts:?}");
        let Features::Climate(f) = acts[0].features else {
            panic!()
        };
        assert!(f.temp_delta_c > 2.5, "{f:?}");
        assert!(
            acts[0].start_ms >= 140_000 && acts[0].start_ms <= 210_000,
            "{:?}",
            acts[0]
        );
    }
}
