//! State of charge from a battery's measured voltage and current.
//!
//! A current monitor gives volts and amps, not a state of charge. The gauge
//! counts charge (current × time against the configured capacity) and
//! anchors the count to the battery's open-circuit voltage curve when the
//! battery has rested: at start, and after [`GaugeConfig::rest_s`] with the
//! current below [`GaugeConfig::rest_current_a`] either way. Under load the
//! terminal voltage sags and says little (a LiFePO4 curve is flat from 20 to
//! 90 %), so the count rules between rests; at rest the voltage corrects the
//! count's drift (shunt offset, capacity fade).

use serde::{Deserialize, Serialize};

/// The battery the gauge follows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GaugeConfig {
    /// Usable capacity, ampere-hours.
    pub capacity_ah: f64,
    /// Open-circuit voltage at 0, 10, ..., 100 % charge, millivolts,
    /// rising (the default is a 4-cell LiFePO4 pack at rest).
    pub ocv_mv: Vec<u32>,
    /// Below this current either way the battery is at rest, amperes.
    pub rest_current_a: f64,
    /// After this long at rest the voltage sets the state of charge, s.
    pub rest_s: f64,
}

impl Default for GaugeConfig {
    fn default() -> Self {
        GaugeConfig {
            // 100 Wh at 12.8 V.
            capacity_ah: 7.8,
            ocv_mv: vec![
                10_000, 12_000, 12_800, 12_880, 13_000, 13_040, 13_080, 13_200, 13_280, 13_400,
                13_600,
            ],
            rest_current_a: 0.05,
            rest_s: 1_800.0,
        }
    }
}

impl GaugeConfig {
    /// Problems with the settings, as (key, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if !(self.capacity_ah > 0.0 && self.capacity_ah <= 10_000.0) {
            e.push((
                "capacity_ah".into(),
                "must be above 0 and at most 10000".into(),
            ));
        }
        if self.ocv_mv.len() != 11 || self.ocv_mv.windows(2).any(|w| w[0] >= w[1]) {
            e.push((
                "ocv_mv".into(),
                "must be 11 rising voltages (0 %, 10 %, ..., 100 %)".into(),
            ));
        }
        if !(self.rest_current_a >= 0.0 && self.rest_current_a.is_finite()) {
            e.push(("rest_current_a".into(), "must be 0 or more".into()));
        }
        if !(self.rest_s >= 0.0 && self.rest_s.is_finite()) {
            e.push(("rest_s".into(), "must be 0 or more".into()));
        }
        e
    }

    /// The state of charge (0..=1) the rest curve gives for `mv`.
    pub fn soc_at_rest(&self, mv: f64) -> f64 {
        let curve = &self.ocv_mv;
        let (Some(&first), Some(&last)) = (curve.first(), curve.last()) else {
            return 0.5;
        };
        if mv <= f64::from(first) {
            return 0.0;
        }
        if mv >= f64::from(last) {
            return 1.0;
        }
        let step = 1.0 / (curve.len() - 1) as f64;
        for (i, w) in curve.windows(2).enumerate() {
            let (lo, hi) = (f64::from(w[0]), f64::from(w[1]));
            if mv <= hi {
                return (i as f64 + (mv - lo) / (hi - lo)) * step;
            }
        }
        1.0
    }
}

/// The running state of charge.
#[derive(Clone, Debug)]
pub struct BatteryGauge {
    cfg: GaugeConfig,
    soc: Option<f64>,
    last_ms: Option<i64>,
    rest_ms: i64,
}

impl BatteryGauge {
    /// A gauge that knows nothing yet: the first sample anchors it.
    pub fn new(cfg: GaugeConfig) -> BatteryGauge {
        BatteryGauge {
            cfg,
            soc: None,
            last_ms: None,
            rest_ms: 0,
        }
    }

    /// The state of charge, once a sample came.
    pub fn soc(&self) -> Option<f64> {
        self.soc
    }

    /// Counts `amps` (positive while charging) up to `t_ms` without a
    /// voltage (the monitor did not answer): never anchors.
    pub fn count(&mut self, t_ms: i64, amps: f64) -> Option<f64> {
        let soc = self.soc?;
        let dt_ms = self.last_ms.map_or(0, |last| (t_ms - last).max(0));
        self.last_ms = Some(t_ms.max(self.last_ms.unwrap_or(t_ms)));
        self.rest_ms = 0;
        let soc = (soc + amps * dt_ms as f64 / 3_600_000.0 / self.cfg.capacity_ah).clamp(0.0, 1.0);
        self.soc = Some(soc);
        Some(soc)
    }

    /// Takes one sample: terminal voltage `mv` and current `amps` (positive
    /// while charging) at `t_ms`; returns the state of charge.
    pub fn update(&mut self, t_ms: i64, mv: f64, amps: f64) -> f64 {
        let dt_ms = self.last_ms.map_or(0, |last| (t_ms - last).max(0));
        self.last_ms = Some(t_ms.max(self.last_ms.unwrap_or(t_ms)));
        let at_rest = amps.abs() <= self.cfg.rest_current_a;
        self.rest_ms = if at_rest { self.rest_ms + dt_ms } else { 0 };
        let soc = match self.soc {
            // First sample: the voltage is the only clue there is.
            None => self.cfg.soc_at_rest(mv),
            Some(_) if at_rest && self.rest_ms as f64 >= self.cfg.rest_s * 1000.0 => {
                self.cfg.soc_at_rest(mv)
            }
            Some(soc) => {
                let hours = dt_ms as f64 / 3_600_000.0;
                soc + amps * hours / self.cfg.capacity_ah
            }
        };
        let soc = soc.clamp(0.0, 1.0);
        self.soc = Some(soc);
        soc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_curve_interpolates_and_clamps() {
        let c = GaugeConfig::default();
        assert_eq!(c.soc_at_rest(9_000.0), 0.0);
        assert_eq!(c.soc_at_rest(14_000.0), 1.0);
        assert!((c.soc_at_rest(13_040.0) - 0.5).abs() < 1e-9);
        // Halfway between 12,000 (10 %) and 12,800 (20 %).
        assert!((c.soc_at_rest(12_400.0) - 0.15).abs() < 1e-9);
    }

    #[test]
    fn charge_is_counted_under_load_and_anchored_after_a_rest() {
        let cfg = GaugeConfig::default();
        let mut g = BatteryGauge::new(cfg.clone());
        // Start at rest at 50 %.
        assert!((g.update(0, 13_040.0, 0.0) - 0.5).abs() < 1e-9);
        // One hour at 0.78 A discharge: 10 % of 7.8 Ah, whatever the sagging voltage says.
        let soc = g.update(3_600_000, 12_300.0, -0.78);
        assert!((soc - 0.4).abs() < 1e-6, "{soc}");
        // At rest, but not long enough: the count holds.
        let soc = g.update(3_600_000 + 600_000, 13_080.0, 0.01);
        assert!((soc - 0.4).abs() < 1e-3, "{soc}");
        // Rested long enough: the voltage (60 %) corrects the count.
        let soc = g.update(3_600_000 + 2_400_000, 13_080.0, 0.01);
        assert!((soc - 0.6).abs() < 1e-9, "{soc}");
    }

    #[test]
    fn the_count_stays_between_empty_and_full() {
        let mut g = BatteryGauge::new(GaugeConfig::default());
        g.update(0, 13_500.0, 0.0);
        assert_eq!(g.update(36_000_000, 14_000.0, 5.0), 1.0);
        assert_eq!(g.update(72_000_000, 11_000.0, -5.0), 0.0);
    }

    #[test]
    fn bad_settings_are_named() {
        let cfg = GaugeConfig {
            capacity_ah: 0.0,
            ocv_mv: vec![1, 2, 3],
            ..GaugeConfig::default()
        };
        let keys: Vec<String> = cfg.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["capacity_ah", "ocv_mv"]);
    }
}
