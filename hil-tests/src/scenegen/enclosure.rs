//! The enclosure under field conditions: the sun heats it by several °C and
//! a passing cloud cools it within minutes (a first-order lag on the sun
//! the sky lets through, scaled by the sun's elevation); a machine nearby
//! warms it over minutes after starting or taking more load and lets it
//! cool exponentially, more slowly, when the load drops; clear nights are
//! colder. The relative humidity inside moves against the temperature.

use rand_chacha::ChaCha8Rng;

use super::climate::Reading;
use super::dsp::uniform;
use super::weather::Sky;

/// Longest integration step, s.
const DT: f32 = 5.0;

/// Heat from a machine near the sensor.
#[derive(Clone, Debug)]
pub struct MachineHeat {
    /// When the machine started, s (at or before the scene's start).
    pub started_s: f32,
    /// Rise at full load, °C.
    pub heat_c: f32,
    /// Time constant of warming, s.
    pub tau_up_s: f32,
    /// Time constant of cooling, s.
    pub tau_down_s: f32,
    /// Load changes: time (s) and load (0..1), in time order; the first is
    /// the load it started with.
    pub loads: Vec<(f32, f32)>,
}

impl MachineHeat {
    /// A machine started up to ten minutes before the scene, changing load
    /// every 10 to 30 minutes.
    pub fn draw(rng: &mut ChaCha8Rng, duration_s: f32) -> Self {
        let started_s = uniform(rng, -600.0, 0.0);
        let mut loads = vec![(started_s, uniform(rng, 0.6, 1.0))];
        let mut t = uniform(rng, 600.0, 1800.0);
        while t < duration_s {
            loads.push((t, uniform(rng, 0.3, 1.0)));
            t += uniform(rng, 600.0, 1800.0);
        }
        MachineHeat {
            started_s,
            heat_c: uniform(rng, 1.5, 5.0),
            tau_up_s: uniform(rng, 180.0, 480.0),
            tau_down_s: uniform(rng, 600.0, 1500.0),
            loads,
        }
    }

    fn target(&self, t: f32) -> f32 {
        self.loads
            .iter()
            .take_while(|l| l.0 <= t)
            .last()
            .map_or(0.0, |l| l.1 * self.heat_c)
    }
}

/// What the conditions do to the climate readings.
#[derive(Clone, Debug, Default)]
pub struct Enclosure {
    /// Rise in full sun at the sun's highest, °C.
    pub sun_c: f32,
    /// Time constant of the enclosure, s.
    pub tau_s: f32,
    /// Offset of a clear night, °C (negative).
    pub night_c: f32,
    /// A machine's heat.
    pub machine: Option<MachineHeat>,
}

/// The sun's elevation factor at `hour` UTC (0 at night, 1 at 13:00), as
/// the camera's daylight uses it.
pub fn elevation(hour: f32) -> f32 {
    ((hour - 6.0) / 14.0 * std::f32::consts::PI).sin().max(0.0)
}

/// One first-order lag step towards `target` over `dt`.
fn lag(y: f32, target: f32, dt: f32, tau: f32) -> f32 {
    y + (target - y) * (1.0 - (-dt / tau.max(1.0)).exp())
}

impl Enclosure {
    /// Adds the enclosure's heating and cooling to `readings`.
    pub fn apply(&self, readings: &mut [Reading], sky: &Sky, start_hour: f32) {
        let sun_target = |t: f32| {
            let hour = (start_hour + t / 3600.0) % 24.0;
            self.sun_c * elevation(hour) * sky.sun(t)
        };
        let mut sun = sun_target(0.0);
        let mut machine = self.machine.as_ref().map_or(0.0, |m| {
            // Warmed since it started, at the load it started with.
            m.target(m.started_s) * (1.0 - (m.started_s / m.tau_up_s).exp())
        });
        let mut t = 0.0f32;
        for r in readings.iter_mut() {
            while t < r.t_s {
                let dt = (r.t_s - t).min(DT);
                t += dt;
                sun = lag(sun, sun_target(t), dt, self.tau_s);
                if let Some(m) = &self.machine {
                    let target = m.target(t);
                    let tau = if target > machine {
                        m.tau_up_s
                    } else {
                        m.tau_down_s
                    };
                    machine = lag(machine, target, dt, tau);
                }
            }
            let delta = sun + machine + self.night_c;
            r.temperature_c += delta;
            r.humidity_pct = (r.humidity_pct - 3.5 * delta).clamp(5.0, 100.0);
        }
    }
}
