//! Climate readings: a daily temperature cycle (coolest near dawn), humidity
//! moving against it, slowly drifting pressure, sensor noise, heat from the
//! machine during an anomaly (a first-order rise, then a slower decay), and
//! rain cooling and moistening the air.

use super::dsp::{SlowWobble, gauss, stream, uniform};
use super::plan::{Happening, Kind};

/// One reading.
pub struct Reading {
    /// Seconds from the start.
    pub t_s: f32,
    /// °C.
    pub temperature_c: f32,
    /// %RH.
    pub humidity_pct: f32,
    /// hPa.
    pub pressure_hpa: f32,
}

/// Readings every `period_s` over `duration_s`.
pub fn readings(
    seed: u64,
    plan: &[Happening],
    duration_s: f32,
    period_s: f32,
    start_hour: f32,
) -> Vec<Reading> {
    let mut rng = stream(seed, "climate");
    let mean = uniform(&mut rng, 8.0, 20.0);
    let swing = uniform(&mut rng, 3.0, 7.0);
    let p0 = uniform(&mut rng, 1000.0, 1022.0);
    let drift = SlowWobble::new(&mut rng, 1.0 / 20_000.0, 1.0 / 5_000.0);
    let mut out = Vec::new();
    let mut t = 0.0;
    while t <= duration_s {
        let hour = (start_hour + t / 3600.0) % 24.0;
        // Coolest at 05:00, warmest at 15:00.
        let diurnal = -((hour - 5.0) / 24.0 * 2.0 * std::f32::consts::PI).cos();
        let mut temp = mean + swing * diurnal;
        let mut humid_add = 0.0;
        for p in plan {
            match p.kind {
                Kind::MachineryAnomaly { heat_c, .. } if t >= p.start_s => {
                    let tau = 25.0;
                    let at = |x: f32| heat_c * (1.0 - (-x / tau).exp());
                    temp += if t <= p.end_s {
                        at(t - p.start_s)
                    } else {
                        at(p.end_s - p.start_s) * (-(t - p.end_s) / 90.0).exp()
                    };
                }
                Kind::Rain | Kind::Rainfall { .. } if t >= p.start_s => {
                    let k = if t <= p.end_s {
                        ((t - p.start_s) / 60.0).min(1.0)
                    } else {
                        (-(t - p.end_s) / 600.0).exp()
                    };
                    temp -= 1.2 * k;
                    humid_add += 12.0 * k;
                }
                _ => {}
            }
        }
        let temperature_c = temp + gauss(&mut rng) * 0.02;
        let humidity_pct =
            (78.0 - 3.0 * (temp - mean) + humid_add + gauss(&mut rng) * 0.3).clamp(5.0, 100.0);
        let pressure_hpa = p0 + 2.0 * drift.at(t) + gauss(&mut rng) * 0.05;
        out.push(Reading {
            t_s: t,
            temperature_c,
            humidity_pct,
            pressure_hpa,
        });
        t += period_s;
    }
    out
}
