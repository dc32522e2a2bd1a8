//! The schedule of a scene: labelled events and background episodes, with
//! the random choices that shape each one.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Preset;
use super::dsp::{stream, uniform};

/// What happens in an event or episode.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Animal calls and/or an animal crossing the view.
    Wildlife {
        /// Bird song bouts (true) or a mammal's barks (false).
        birdsong: bool,
        /// Calls are heard.
        calls: bool,
        /// The animal crosses the view.
        crossing: bool,
        /// Call level, dBFS RMS.
        level_db: f32,
    },
    /// The running machine's sound changes and it heats up.
    MachineryAnomaly {
        /// Impact rate of the bearing fault, Hz.
        impact_hz: f32,
        /// Resonance excited by the impacts, Hz.
        resonance_hz: f32,
        /// Level of the fault's sound relative to the machine, dB.
        rise_db: f32,
        /// Temperature rise at the sensor, °C.
        heat_c: f32,
    },
    /// People talking and/or walking through the view.
    HumanActivity {
        /// Speech is heard.
        speech: bool,
        /// Someone walks through the view.
        walking: bool,
        /// Speech level, dBFS RMS.
        level_db: f32,
    },
    /// A strong gust of wind (sound, swaying vegetation).
    Gust,
    /// A cloud shadow crossing the view.
    CloudShadow,
    /// A rain shower (sound, speckle, cooler and more humid).
    Rain,
    /// A gust of the field wind ([`super::weather::Wind`]): its sound and
    /// the swaying it causes come from the wind layer; labelled so that a
    /// detector can be checked to stay quiet through it.
    WindGust {
        /// Peak rise above the wind's floor, dB.
        rise_db: f32,
    },
    /// Rain of the field conditions, at a chosen strength: hiss and drop
    /// impacts ([`super::weather::rain`]), speckle, cooler and more humid.
    Rainfall {
        /// Hiss level, dBFS RMS.
        level_db: f32,
        /// Drop impacts per second.
        drops_per_s: f32,
    },
    /// An aircraft passing far away: a low-frequency swell of a minute or two.
    Aircraft {
        /// Level at the closest point, dBFS RMS.
        level_db: f32,
    },
    /// A cloud over the sun for minutes: the view dims within seconds and
    /// the enclosure cools by degrees ([`super::weather::Sky`]).
    CloudCover {
        /// Fraction of the sunlight taken away, 0..1.
        depth: f32,
    },
}

impl Kind {
    /// The label class.
    pub fn class(&self) -> &'static str {
        match self {
            Kind::Wildlife { .. } => "wildlife",
            Kind::MachineryAnomaly { .. } => "machinery_anomaly",
            Kind::HumanActivity { .. } => "human_activity",
            Kind::Gust
            | Kind::CloudShadow
            | Kind::Rain
            | Kind::WindGust { .. }
            | Kind::Rainfall { .. }
            | Kind::Aircraft { .. }
            | Kind::CloudCover { .. } => "background",
        }
    }
}

/// One scheduled happening.
#[derive(Debug, Clone, PartialEq)]
pub struct Happening {
    /// Start, seconds from the scene start.
    pub start_s: f32,
    /// End, seconds.
    pub end_s: f32,
    /// What.
    pub kind: Kind,
    /// Seed of its own random stream.
    pub seed: u64,
}

/// An event of `class` (0 wildlife, 1 machinery anomaly, 2 human activity)
/// and its duration, s; `demo` fixes the choices the demo relies on.
pub(super) fn event(rng: &mut ChaCha8Rng, class: u32, demo: bool) -> (f32, Kind) {
    match class {
        0 => {
            let r: f32 = rng.random();
            let (calls, crossing) = if demo || r < 0.6 {
                (true, true)
            } else if r < 0.85 {
                (true, false)
            } else {
                (false, true)
            };
            let dur = uniform(rng, 4.0, 12.0);
            (
                dur,
                Kind::Wildlife {
                    birdsong: demo || rng.random::<f32>() < 0.7,
                    calls,
                    crossing,
                    level_db: uniform(rng, -42.0, -24.0),
                },
            )
        }
        1 => {
            let dur = if demo {
                30.0
            } else {
                uniform(rng, 20.0, 120.0)
            };
            (
                dur,
                Kind::MachineryAnomaly {
                    impact_hz: uniform(rng, 6.0, 14.0),
                    resonance_hz: uniform(rng, 2200.0, 3800.0),
                    rise_db: uniform(rng, 6.0, 15.0),
                    heat_c: uniform(rng, 1.5, 5.0),
                },
            )
        }
        _ => {
            let r: f32 = rng.random();
            let (speech, walking) = if demo || r < 0.6 {
                (true, true)
            } else if r < 0.8 {
                (true, false)
            } else {
                (false, true)
            };
            (
                uniform(rng, 6.0, 20.0),
                Kind::HumanActivity {
                    speech,
                    walking,
                    level_db: uniform(rng, -32.0, -20.0),
                },
            )
        }
    }
}

fn episode(rng: &mut ChaCha8Rng) -> (f32, Kind) {
    match rng.random_range(0..3) {
        0 => (uniform(rng, 5.0, 15.0), Kind::Gust),
        1 => (uniform(rng, 10.0, 30.0), Kind::CloudShadow),
        _ => (uniform(rng, 30.0, 90.0), Kind::Rain),
    }
}

/// The schedule for a preset: never overlapping, inside the scene, each
/// event followed by at least 10 s of quiet.
pub fn schedule(preset: Preset, seed: u64, duration_s: f32) -> Vec<Happening> {
    let mut rng = stream(seed, "plan");
    let mut out = Vec::new();
    if preset == Preset::Demo {
        let d = duration_s / 120.0;
        for (start, class) in [(12.0, 0u32), (38.0, 2), (66.0, 1)] {
            let (mut dur, kind) = event(&mut rng, class, true);
            if class == 0 {
                dur = 8.0;
            }
            if class == 2 {
                dur = 12.0;
            }
            out.push(Happening {
                start_s: start * d,
                end_s: start * d + dur * d,
                kind,
                seed: rng.random(),
            });
        }
        out.push(Happening {
            start_s: 104.0 * d,
            end_s: 116.0 * d,
            kind: Kind::CloudShadow,
            seed: rng.random(),
        });
        return out;
    }
    let mut t = uniform(&mut rng, 10.0, 25.0);
    loop {
        let background = preset == Preset::Background || rng.random::<f32>() < 0.25;
        let (dur, kind) = if background {
            episode(&mut rng)
        } else {
            let class = match preset {
                Preset::Wildlife => 0,
                Preset::Machinery => 1,
                Preset::Human => 2,
                _ => rng.random_range(0..3),
            };
            event(&mut rng, class, false)
        };
        if t + dur + 5.0 > duration_s {
            break;
        }
        out.push(Happening {
            start_s: t,
            end_s: t + dur,
            kind,
            seed: rng.random(),
        });
        // Quiet after: 10 s at least; one event per 40 to 90 s on average.
        t += dur + uniform(&mut rng, 15.0, 60.0);
    }
    out
}
