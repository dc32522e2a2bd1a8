//! Field conditions: what the weather, the place and the hardware add to a
//! preset's scene, chosen at random per seed.
//!
//! [`Condition::None`] adds nothing: the scene is the preset's, byte for
//! byte. Every other condition draws a [`Field`] from the seed, each part
//! from its own named random stream (`field-wind`, `field-rain`, ...), so
//! the preset's own streams are never touched and adding a part does not
//! change the others.

use std::str::FromStr;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::chorus::Chorus;
use super::dsp::{stream, uniform};
use super::enclosure::{Enclosure, MachineHeat};
use super::hum::MainsHum;
use super::mic::Mic;
use super::plan::{self, Happening, Kind};
use super::view::{Infrared, View};
use super::weather::{Gust, Sky, Traffic, Wind};

/// Field conditions for a scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Condition {
    /// The preset's scene as it is.
    #[default]
    None,
    /// Light wind and sun, no hum added.
    Calm,
    /// Strong gusty wind throughout, clouds passing over the sun, vegetation
    /// swaying, an overdriven input in the gusts.
    Windy,
    /// A machine near the node humming at mains harmonics for the whole
    /// scene and warming the enclosure; its faults are the preset's labelled
    /// machinery anomalies.
    Hum,
    /// The windy condition's gales over the hum condition's machine: gusts
    /// that lift every band over a hum that is floor.
    WindyHum,
    /// Rain for most of the scene under an overcast sky.
    Rain,
    /// Night: infrared frames, a cold clear night, insects and frogs.
    Night,
    /// A mixture, levels and formats drawn from the seed.
    Random,
}

const ALL: [Condition; 8] = [
    Condition::None,
    Condition::Calm,
    Condition::Windy,
    Condition::Hum,
    Condition::WindyHum,
    Condition::Rain,
    Condition::Night,
    Condition::Random,
];

impl Condition {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::None => "none",
            Condition::Calm => "calm",
            Condition::Windy => "windy",
            Condition::Hum => "hum",
            Condition::WindyHum => "windy-hum",
            Condition::Rain => "rain",
            Condition::Night => "night",
            Condition::Random => "random",
        }
    }

    /// Every condition.
    pub fn all() -> [Condition; 8] {
        ALL
    }
}

impl FromStr for Condition {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| {
            format!(
                "unknown condition `{s}` (none, calm, windy, hum, windy-hum, rain, night, random)"
            )
        })
    }
}

/// Formats a `random` scene is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    /// Audio sample rate, Hz.
    pub audio_rate: u32,
    /// Audio channels.
    pub channels: u16,
    /// Frame width, pixels.
    pub camera_w: u32,
    /// Frame height, pixels.
    pub camera_h: u32,
    /// Frames per second.
    pub camera_fps: u32,
}

impl Formats {
    /// The formats for `seed`: 8 to 48 kHz, mono or stereo, 64x48 to
    /// 160x120 pixels at 1 to 5 fps.
    pub fn draw(seed: u64) -> Self {
        let mut rng = stream(seed, "field-formats");
        const RATES: [u32; 8] = [8000, 11_025, 16_000, 16_000, 22_050, 32_000, 44_100, 48_000];
        const SIZES: [(u32, u32); 5] = [(64, 48), (80, 60), (80, 60), (128, 96), (160, 120)];
        let audio_rate = RATES[rng.random_range(0..RATES.len())];
        let channels = rng.random_range(1..=2);
        let (camera_w, camera_h) = SIZES[rng.random_range(0..SIZES.len())];
        Formats {
            audio_rate,
            channels,
            camera_w,
            camera_h,
            camera_fps: rng.random_range(1..=5),
        }
    }
}

/// The hour (UTC, whole minutes) a `random` scene starts at.
pub fn random_start(seed: u64) -> String {
    let minute = stream(seed, "field-start").random_range(0..24 * 60);
    format!("2026-06-01T{:02}:{:02}:00Z", minute / 60, minute % 60)
}

/// Whether the sun is down at `hour` UTC, as the generator's daylight has it.
pub fn is_night(hour: f32) -> bool {
    !(5.75..20.25).contains(&hour)
}

/// Everything the conditions add to a scene.
#[derive(Clone, Debug)]
pub struct Field {
    /// The wind at the microphone (in place of the preset's light wind,
    /// with the preset's gusts).
    pub wind: Wind,
    /// The sun and the clouds.
    pub sky: Sky,
    /// An insect chorus.
    pub insects: Option<Chorus>,
    /// A frog chorus.
    pub frogs: Option<Chorus>,
    /// Distant road traffic.
    pub traffic: Option<Traffic>,
    /// A mains hum.
    pub mains: Option<MainsHum>,
    /// Level of the machine added to a preset that has none, dBFS RMS.
    pub machine_db: Option<f32>,
    /// The microphone's input stage.
    pub mic: Mic,
    /// The camera.
    pub view: View,
    /// The enclosure's heating and cooling.
    pub enclosure: Enclosure,
    /// Labelled happenings the conditions add: gusts, rain, aircraft,
    /// clouds over the sun, events overlapping the preset's events.
    pub extra: Vec<Happening>,
}

/// The choices a condition makes before the parts are drawn.
struct Mixture {
    wind_db: (f32, f32),
    gusts_per_min: f32,
    rise_db: (f32, f32),
    /// Rain: none, one long rain, or this many showers.
    rain: RainPlan,
    insects: bool,
    frogs: bool,
    traffic: bool,
    aircraft_per_hour: f32,
    hum: bool,
    /// Level of the hum, dBFS RMS.
    hum_db: (f32, f32),
    clouds_per_hour: f32,
    overcast: f32,
    overlap: f32,
    gain_db: (f32, f32),
    drift_db: f32,
    gain_steps_per_hour: f32,
    clip: bool,
    noise: (f32, f32),
    infrared: Infrared,
    jumps_per_min: f32,
    haze: f32,
    cold_night: bool,
}

enum RainPlan {
    None,
    Long,
    Showers(u32),
}

impl Mixture {
    fn calm() -> Self {
        Mixture {
            wind_db: (-64.0, -56.0),
            gusts_per_min: 0.2,
            rise_db: (3.0, 8.0),
            rain: RainPlan::None,
            insects: false,
            frogs: false,
            traffic: false,
            aircraft_per_hour: 0.0,
            hum: false,
            hum_db: (-46.0, -32.0),
            clouds_per_hour: 0.0,
            overcast: 0.0,
            overlap: 0.0,
            gain_db: (0.0, 0.0),
            drift_db: 0.5,
            gain_steps_per_hour: 0.0,
            clip: false,
            noise: (1.5, 2.5),
            infrared: Infrared::Never,
            jumps_per_min: 0.0,
            haze: 0.05,
            cold_night: false,
        }
    }

    fn for_condition(c: Condition, seed: u64, night: bool) -> Self {
        let calm = Mixture::calm();
        match c {
            Condition::None | Condition::Calm => calm,
            // A machine heard over a gale is a near or loud one.
            Condition::WindyHum => Mixture {
                hum: true,
                hum_db: (-34.0, -22.0),
                ..Self::for_condition(Condition::Windy, seed, night)
            },
            Condition::Windy => Mixture {
                wind_db: (-38.0, -30.0),
                gusts_per_min: 2.5,
                rise_db: (6.0, 22.0),
                clouds_per_hour: 8.0,
                clip: true,
                noise: (2.0, 3.0),
                jumps_per_min: 0.2,
                haze: 0.1,
                ..calm
            },
            Condition::Hum => Mixture {
                wind_db: (-62.0, -52.0),
                hum: true,
                clouds_per_hour: 2.0,
                ..calm
            },
            Condition::Rain => Mixture {
                wind_db: (-50.0, -42.0),
                gusts_per_min: 0.5,
                rise_db: (4.0, 12.0),
                rain: RainPlan::Long,
                overcast: 0.85,
                noise: (3.0, 5.0),
                haze: 0.1,
                ..calm
            },
            Condition::Night => Mixture {
                wind_db: (-64.0, -54.0),
                insects: true,
                frogs: stream(seed, "field-mix").random::<f32>() < 0.7,
                infrared: Infrared::Always,
                noise: (5.0, 9.0),
                haze: 0.0,
                cold_night: true,
                ..calm
            },
            Condition::Random => Self::random(seed, night),
        }
    }

    fn random(seed: u64, night: bool) -> Self {
        let mut r = stream(seed, "field-mix");
        let mut p = |x: f32| r.random::<f32>() < x;
        let (wind_db, gusts_per_min, rise_db) = match (p(0.35), p(0.55), p(0.65)) {
            (true, _, _) => ((-64.0, -54.0), 0.3, (3.0, 8.0)),
            (_, true, _) => ((-52.0, -42.0), 1.0, (4.0, 14.0)),
            (_, _, true) => ((-40.0, -30.0), 2.0, (6.0, 20.0)),
            _ => ((-30.0, -22.0), 3.0, (8.0, 25.0)),
        };
        let rain = if p(0.3) {
            if p(0.4) {
                RainPlan::Long
            } else {
                RainPlan::Showers(1 + u32::from(p(0.5)) + u32::from(p(0.5)))
            }
        } else {
            RainPlan::None
        };
        let insects = p(if night { 0.7 } else { 0.25 });
        let frogs = p(if night { 0.5 } else { 0.05 });
        let traffic = p(0.5);
        let aircraft_per_hour = if p(0.35) { 2.5 } else { 0.0 };
        let hum = p(0.4);
        let clouds_per_hour = if !night && p(0.6) { 6.0 } else { 0.0 };
        let overcast = if matches!(rain, RainPlan::None) {
            0.0
        } else {
            0.8
        };
        let overlap = if p(0.5) { 0.35 } else { 0.0 };
        let clip = p(0.35);
        let jumps_per_min = if p(0.6) { 0.3 } else { 0.0 };
        Mixture {
            wind_db,
            gusts_per_min,
            rise_db,
            rain,
            insects,
            frogs,
            traffic,
            aircraft_per_hour,
            hum,
            hum_db: Mixture::calm().hum_db,
            clouds_per_hour,
            overcast,
            overlap,
            gain_db: if clip { (4.0, 14.0) } else { (-8.0, 6.0) },
            drift_db: 2.0,
            gain_steps_per_hour: 1.5,
            clip,
            noise: (1.5, 6.0),
            infrared: Infrared::AtNight,
            jumps_per_min,
            haze: 0.15,
            cold_night: night,
        }
    }
}

/// Inputs of [`Field::draw`] that come from the scene's spec.
pub struct FieldSpec {
    /// The condition (not `None`).
    pub condition: Condition,
    /// Seed.
    pub seed: u64,
    /// Length, s.
    pub duration_s: f32,
    /// Audio sample rate, Hz.
    pub audio_rate: u32,
    /// Audio channels.
    pub channels: u16,
    /// Hour the scene starts at, UTC.
    pub start_hour: f32,
    /// The preset runs a machine of its own.
    pub preset_machine: bool,
}

fn happening(start_s: f32, end_s: f32, kind: Kind, rng: &mut ChaCha8Rng) -> Happening {
    Happening {
        start_s,
        end_s,
        kind,
        seed: rng.random(),
    }
}

impl Field {
    /// The conditions for `spec` over the preset's `plan`.
    pub fn draw(spec: &FieldSpec, plan: &[Happening]) -> Field {
        let seed = spec.seed;
        let dur = spec.duration_s;
        let rate = spec.audio_rate as f32;
        let night = match spec.condition {
            Condition::Night => true,
            _ => is_night(spec.start_hour),
        };
        let mix = Mixture::for_condition(spec.condition, seed, night);
        let mut extra = Vec::new();

        let mut rng = stream(seed, "field-wind");
        let mut wind = Wind::draw(&mut rng, dur, mix.wind_db, mix.gusts_per_min, mix.rise_db);
        for g in &wind.gusts {
            if g.rise_db >= 10.0 {
                extra.push(happening(
                    g.start_s,
                    g.end_s,
                    Kind::WindGust { rise_db: g.rise_db },
                    &mut rng,
                ));
            }
        }
        // The preset's gusts blow in this wind too, up to 14 dB as before.
        for p in plan.iter().filter(|p| p.kind == Kind::Gust) {
            let g = Gust {
                start_s: p.start_s,
                end_s: p.end_s,
                rise_db: 14.0,
            };
            let at = wind.gusts.partition_point(|x| x.start_s < g.start_s);
            wind.gusts.insert(at, g);
        }

        let mut rng = stream(seed, "field-sky");
        let mut sky = if mix.clouds_per_hour > 0.0 {
            Sky::broken(&mut rng, dur, mix.clouds_per_hour)
        } else {
            Sky::default()
        };
        sky.overcast = mix.overcast;
        for &(a, b, depth) in &sky.clouds {
            extra.push(happening(a, b, Kind::CloudCover { depth }, &mut rng));
        }

        let mut rng = stream(seed, "field-rain");
        match mix.rain {
            RainPlan::None => {}
            RainPlan::Long => {
                let a = uniform(&mut rng, 0.0, 0.1) * dur;
                let b = uniform(&mut rng, 0.85, 1.0) * dur;
                let kind = Kind::Rainfall {
                    level_db: uniform(&mut rng, -38.0, -26.0),
                    drops_per_s: uniform(&mut rng, 300.0, 1500.0),
                };
                extra.push(happening(a, b, kind, &mut rng));
            }
            RainPlan::Showers(n) => {
                let slot = dur / n as f32;
                for k in 0..n {
                    let len = uniform(&mut rng, 180.0, 900.0).min(slot * 0.8);
                    let a = k as f32 * slot + uniform(&mut rng, 0.0, slot - len);
                    let kind = Kind::Rainfall {
                        level_db: uniform(&mut rng, -44.0, -28.0),
                        drops_per_s: uniform(&mut rng, 100.0, 1200.0),
                    };
                    extra.push(happening(a, a + len, kind, &mut rng));
                }
            }
        }

        let mut rng = stream(seed, "field-aircraft");
        if mix.aircraft_per_hour > 0.0 {
            let n = ((dur / 3600.0 * mix.aircraft_per_hour * uniform(&mut rng, 0.4, 1.6)).round()
                as usize)
                .max(1);
            for _ in 0..n {
                let len = uniform(&mut rng, 60.0, 150.0).min(dur * 0.5);
                let a = uniform(&mut rng, 0.0, dur - len);
                let kind = Kind::Aircraft {
                    level_db: uniform(&mut rng, -50.0, -36.0),
                };
                extra.push(happening(a, a + len, kind, &mut rng));
            }
        }

        let insects = mix.insects.then(|| {
            let mut rng = stream(seed, "field-insects");
            let level = uniform(&mut rng, -48.0, -34.0);
            Chorus::insects(&mut rng, rate, level)
        });
        let frogs = mix.frogs.then(|| {
            let mut rng = stream(seed, "field-frogs");
            let level = uniform(&mut rng, -50.0, -36.0);
            Chorus::frogs(&mut rng, rate, level)
        });
        let traffic = mix.traffic.then(|| {
            let mut rng = stream(seed, "field-traffic");
            let level = uniform(&mut rng, -58.0, -44.0);
            let per_min = uniform(&mut rng, 0.5, 4.0);
            Traffic::draw(&mut rng, dur, level, per_min)
        });
        let (mains, machine_db) = if mix.hum {
            let mut rng = stream(seed, "field-mains");
            let level = uniform(&mut rng, mix.hum_db.0, mix.hum_db.1);
            let machine = (!spec.preset_machine).then(|| uniform(&mut rng, -44.0, -34.0));
            (Some(MainsHum::draw(&mut rng, level)), machine)
        } else {
            (None, None)
        };

        let mic = Mic::draw(
            &mut stream(seed, "field-mic"),
            spec.channels,
            dur,
            mix.gain_db,
            mix.drift_db,
            if spec.condition == Condition::Random {
                mix.gain_steps_per_hour
            } else {
                0.0
            },
            mix.clip,
        );
        let view = View::draw(
            &mut stream(seed, "field-view"),
            dur,
            mix.noise,
            mix.infrared,
            mix.jumps_per_min,
            mix.haze,
        );

        let mut rng = stream(seed, "field-enclosure");
        let enclosure = Enclosure {
            sun_c: uniform(&mut rng, 3.0, 8.0),
            tau_s: uniform(&mut rng, 120.0, 240.0),
            night_c: if mix.cold_night {
                uniform(&mut rng, -5.0, -2.0)
            } else {
                0.0
            },
            machine: (spec.preset_machine || mix.hum).then(|| MachineHeat::draw(&mut rng, dur)),
        };

        if mix.overlap > 0.0 {
            let mut rng = stream(seed, "field-overlap");
            for e in plan.iter().filter(|p| p.kind.class() != "background") {
                if rng.random::<f32>() >= mix.overlap {
                    continue;
                }
                // Someone or something else, while the event goes on.
                let class = if matches!(e.kind, Kind::Wildlife { .. }) {
                    2
                } else {
                    0
                };
                let (len, kind) = plan::event(&mut rng, class, false);
                let a = e.start_s + uniform(&mut rng, 0.2, 0.8) * (e.end_s - e.start_s);
                let b = (a + len).min(dur - 2.0);
                if b - a >= 3.0 {
                    extra.push(happening(a, b, kind, &mut rng));
                }
            }
        }
        extra.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));

        Field {
            wind,
            sky,
            insects,
            frogs,
            traffic,
            mains,
            machine_db,
            mic,
            view,
            enclosure,
            extra,
        }
    }
}
