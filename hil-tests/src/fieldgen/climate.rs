//! `climate.csv`: what a BME280 inside the node's enclosure reads.
//!
//! The air follows a diurnal curve (coolest before dawn, warmest mid
//! afternoon) with a slow wander and a little evaporative cooling in rain.
//! The enclosure adds the sun's heat through a first-order lag of a few
//! minutes, so a passing cloud drops the reading by several degrees and the
//! sun coming back raises it again. A machine next to the node adds a steady
//! offset while it runs, and during an anomaly its heat rises towards a new
//! level over minutes and cools off exponentially over many minutes after.
//! Humidity keeps the air's vapour pressure (rising towards saturation in
//! rain), so it falls as the enclosure warms; pressure drifts, follows the
//! semidiurnal tide and dips in showers.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::FieldgenError;
use super::plan::Plan;
use super::signal::Noise;
use super::track::Wander;

/// Heat from a machine anomaly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Heat {
    /// Start of the anomaly, seconds.
    pub start: f64,
    /// End of the anomaly, seconds.
    pub end: f64,
    /// Temperature rise it tends to at the sensor, °C.
    pub rise: f32,
    /// Time constant of the rise, seconds.
    pub tau_rise: f32,
    /// Time constant of the cooling, seconds.
    pub tau_cool: f32,
}

/// Climate parameters of a scene.
#[derive(Debug, Clone)]
pub struct ClimatePlan {
    /// Daily mean air temperature, °C.
    pub t_mean: f32,
    /// Half the daily swing, °C.
    pub t_amp: f32,
    /// Slow wander of the air temperature, °C.
    pub wander: Wander,
    /// Full-sun heating of the enclosure, °C.
    pub sun_gain: f32,
    /// Time constant of the enclosure, seconds.
    pub sun_tau: f32,
    /// Steady warmth of a running machine at the sensor, °C.
    pub machine_offset: f32,
    /// Anomaly heat episodes.
    pub machine_heat: Vec<Heat>,
    /// Dew-point depression at the daily mean, °C.
    pub dew_depression: f32,
    /// Pressure at the start, hPa, and its trend, hPa per hour.
    pub pressure: (f32, f32),
}

/// Draws the climate; `night` picks cooler nights.
pub fn plan(rng: &mut ChaCha8Rng, d: f64, night: bool) -> ClimatePlan {
    let t_mean = if night {
        rng.random_range(2.0..16.0)
    } else {
        rng.random_range(4.0..24.0)
    };
    ClimatePlan {
        t_mean,
        t_amp: rng.random_range(2.5..8.0),
        wander: Wander::new(rng, d, 300.0, -0.6, 0.6),
        sun_gain: rng.random_range(3.0..12.0),
        sun_tau: rng.random_range(90.0..300.0),
        machine_offset: 0.0,
        machine_heat: Vec::new(),
        dew_depression: rng.random_range(1.0..10.0),
        pressure: (rng.random_range(990.0..1032.0), rng.random_range(-1.2..1.2)),
    }
}

/// The heat of an anomaly at `t0` lasting `len` seconds.
pub fn heat_for(rng: &mut ChaCha8Rng, t0: f64, len: f64) -> Heat {
    Heat {
        start: t0,
        end: t0 + len,
        rise: rng.random_range(2.0..10.0),
        tau_rise: rng.random_range(60.0..300.0),
        tau_cool: rng.random_range(300.0..1500.0),
    }
}

/// Saturation vapour pressure over water, hPa (Magnus).
fn saturation(t: f32) -> f32 {
    6.112 * (17.62 * t / (243.12 + t)).exp()
}

/// Writes a reading every `step` seconds to `path`.
pub fn write_csv(plan: &Plan, step: f64, path: &Path) -> Result<(), FieldgenError> {
    let io = |e| FieldgenError::io(path, e);
    let c = &plan.climate;
    let mut noise = Noise::new(plan.climate_seed);
    let file = File::create(path).map_err(io)?;
    let mut out = BufWriter::new(file);
    writeln!(out, "t_s,temperature_c,humidity_pct,pressure_hpa").map_err(io)?;
    let vapour = saturation(c.t_mean - c.dew_depression);
    let air = |t: f64| {
        let h = plan.sky.hour(t) as f32;
        c.t_mean + c.t_amp * (2.0 * std::f32::consts::PI * (h - 15.0) / 24.0).cos() + c.wander.at(t)
            - 2.0 * plan.rain.intensity.at(t)
    };
    // Lagged states, simulated at 1 s.
    let mut sun = c.sun_gain * plan.sky.direct_sun(0.0);
    let mut heat = 0.0f32;
    let mut wet = plan.rain.intensity.at(0.0);
    let step_s = step.max(1.0).round() as u64;
    let last = plan.duration.floor() as u64;
    for s in 0..=last {
        let t = s as f64;
        if s > 0 {
            sun += (c.sun_gain * plan.sky.direct_sun(t) - sun) / c.sun_tau;
            let (target, tau) = match c.machine_heat.iter().find(|h| t >= h.start && t < h.end) {
                Some(h) => (h.rise, h.tau_rise),
                None => {
                    let cool = c
                        .machine_heat
                        .iter()
                        .rfind(|h| h.end <= t)
                        .map_or(600.0, |h| h.tau_cool);
                    (0.0, cool)
                }
            };
            heat += (target - heat) / tau;
            wet += (plan.rain.intensity.at(t) - wet) / 600.0;
        }
        if s % step_s != 0 {
            continue;
        }
        let a = air(t);
        let temp = a + sun + c.machine_offset + heat + 0.02 * noise.normal();
        let e = vapour + (0.97 * saturation(a) - vapour).max(0.0) * wet.min(1.0);
        let rh = (100.0 * e / saturation(temp) + 0.3 * noise.normal()).clamp(3.0, 100.0);
        let hours = (t / 3600.0) as f32;
        let tide =
            0.6 * (2.0 * std::f32::consts::PI * (plan.sky.hour(t) as f32 - 10.0) / 12.0).cos();
        let p = c.pressure.0 + c.pressure.1 * hours + tide - 1.5 * wet + 0.02 * noise.normal();
        writeln!(out, "{s},{temp:.2},{rh:.1},{p:.2}").map_err(io)?;
    }
    out.flush().map_err(io)?;
    Ok(())
}
