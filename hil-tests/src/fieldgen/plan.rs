//! The plan of a scene, drawn once from the seed: formats, start time, the
//! weather and background of the chosen condition, the labelled events and
//! the labels. The writers only read it.
//!
//! Every draw happens whatever the options, so that leaving out a modality
//! or forcing a format does not change the rest of the scene.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::ambience::{self, DistantPlan, InsectSpecies, RainPlan, WindPlan};
use super::climate::{self, ClimatePlan};
use super::figures::{self, Crossing};
use super::human::{self, HumanEvent};
use super::machine::{self, MachinePlan};
use super::sky::{Sky, poisson_count};
use super::track::Track;
use super::wildlife::{self, CallEvent};
use super::{Condition, FieldgenError, MAX_DURATION_S, Options};

/// Audio format of `audio.wav`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    /// Sampling rate, Hz.
    pub rate: u32,
    /// Channels (1 or 2).
    pub channels: u16,
}

/// Format of `camera.y4m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CameraFormat {
    /// Frame width, pixels.
    pub width: u32,
    /// Frame height, pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// 4:2:0 with neutral chroma instead of `C mono`.
    pub chroma_420: bool,
}

/// Audio rates the seed picks from.
pub const AUDIO_RATES: [u32; 6] = [8_000, 16_000, 22_050, 32_000, 44_100, 48_000];
/// Frame sizes the seed picks from.
pub const FRAME_SIZES: [(u32, u32); 6] = [
    (64, 48),
    (80, 60),
    (96, 72),
    (120, 90),
    (128, 96),
    (160, 120),
];

/// A ground-truth label.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Start, seconds from the scene start.
    pub start: f64,
    /// End, seconds.
    pub end: f64,
    /// `wildlife`, `machinery_anomaly`, `human_activity` or `background`.
    pub class: &'static str,
    /// What it is, for the summary.
    pub what: String,
}

/// Knobs of a condition, drawn into a [`Plan`].
#[derive(Debug, Clone, Copy)]
struct Mix {
    wind_mean: (f32, f32),
    gusts_per_h: (f64, f64),
    gust_peak: (f32, f32),
    rain: f64,
    long_rain: bool,
    hum: f64,
    insects: f64,
    distant: f64,
    night: bool,
    day_start: f64,
}

fn mix(c: Condition, rng: &mut ChaCha8Rng) -> Mix {
    let calm = Mix {
        wind_mean: (0.2, 2.0),
        gusts_per_h: (0.0, 8.0),
        gust_peak: (1.0, 4.0),
        rain: 0.0,
        long_rain: false,
        hum: 0.0,
        insects: 0.6,
        distant: 0.5,
        night: false,
        day_start: 0.85,
    };
    match c {
        Condition::Calm => calm,
        Condition::Windy => Mix {
            wind_mean: (7.0, 14.0),
            gusts_per_h: (60.0, 240.0),
            gust_peak: (5.0, 16.0),
            rain: 0.15,
            hum: 0.2,
            insects: 0.1,
            ..calm
        },
        Condition::Hum => Mix {
            wind_mean: (0.0, 1.5),
            gusts_per_h: (0.0, 4.0),
            gust_peak: (1.0, 3.0),
            hum: 1.0,
            insects: 0.4,
            ..calm
        },
        Condition::Rain => Mix {
            wind_mean: (2.0, 7.0),
            gusts_per_h: (10.0, 60.0),
            gust_peak: (3.0, 8.0),
            rain: 1.0,
            long_rain: true,
            hum: 0.25,
            insects: 0.0,
            ..calm
        },
        Condition::Night => Mix {
            wind_mean: (0.0, 4.0),
            gusts_per_h: (0.0, 10.0),
            gust_peak: (1.0, 5.0),
            rain: 0.1,
            hum: 0.25,
            insects: 0.9,
            distant: 0.3,
            night: true,
            ..calm
        },
        Condition::Random => {
            let w: f64 = rng.random();
            let (wind_mean, gusts_per_h, gust_peak) = if w < 0.5 {
                ((0.0, 3.0), (0.0, 20.0), (1.0, 5.0))
            } else if w < 0.85 {
                ((3.0, 8.0), (20.0, 90.0), (3.0, 9.0))
            } else {
                ((8.0, 16.0), (60.0, 200.0), (5.0, 15.0))
            };
            Mix {
                wind_mean,
                gusts_per_h,
                gust_peak,
                rain: 0.3,
                hum: 0.5,
                insects: 0.5,
                distant: 0.6,
                day_start: 0.5,
                ..calm
            }
        }
    }
}

/// Everything the writers need.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// The condition asked for.
    pub condition: Condition,
    /// Length, seconds.
    pub duration: f64,
    /// Start time.
    pub start: OffsetDateTime,
    /// `audio.wav`'s format, `None` without audio.
    pub audio: Option<AudioFormat>,
    /// `camera.y4m`'s format, `None` without camera.
    pub camera: Option<CameraFormat>,
    /// Climate reading interval, seconds; `None` without climate.
    pub climate_step: Option<f64>,
    /// Sun and clouds.
    pub sky: Sky,
    /// Wind.
    pub wind: WindPlan,
    /// Rain.
    pub rain: RainPlan,
    /// Insect chorus (empty: none).
    pub insects: Vec<InsectSpecies>,
    /// Distant road and aircraft.
    pub distant: DistantPlan,
    /// The machine near the node, if any (its anomalies are labelled).
    pub machine: Option<MachinePlan>,
    /// Wildlife calls.
    pub calls: Vec<CallEvent>,
    /// People talking and walking.
    pub people: Vec<HumanEvent>,
    /// Figures crossing the camera's view.
    pub crossings: Vec<Crossing>,
    /// Input gain of the recorder, dB, 1 Hz.
    pub gain_db: Track,
    /// Climate parameters.
    pub climate: ClimatePlan,
    /// The labels, by start time.
    pub labels: Vec<Label>,
    /// Seed of the audio noise.
    pub audio_seed: u64,
    /// Seed of the camera's texture and noise.
    pub camera_seed: u64,
    /// Seed of the climate sensor's noise.
    pub climate_seed: u64,
}

/// Wildlife, human or machine: the class of an event being placed.
#[derive(Clone, Copy)]
enum Class {
    Wildlife,
    Human,
    Machine,
}

impl Plan {
    /// Checks the options and draws the plan.
    pub fn new(opts: &Options) -> Result<Plan, FieldgenError> {
        let d = opts.duration_s;
        if !(1.0..=MAX_DURATION_S).contains(&d) {
            return Err(FieldgenError::Option(format!(
                "duration {d} s is outside 1..={MAX_DURATION_S} s"
            )));
        }
        if let Some(r) = opts.audio_rate
            && !(4_000..=192_000).contains(&r)
        {
            return Err(FieldgenError::Option(format!(
                "audio rate {r} Hz is outside 4000..=192000"
            )));
        }
        if let Some(c) = opts.channels
            && !(1..=2).contains(&c)
        {
            return Err(FieldgenError::Option(format!("channels {c}: 1 or 2")));
        }
        if let Some((w, h)) = opts.camera_size
            && !((16..=1920).contains(&w) && (16..=1080).contains(&h) && w % 2 == 0 && h % 2 == 0)
        {
            return Err(FieldgenError::Option(format!(
                "camera size {w}x{h}: even sizes from 16x16 to 1920x1080"
            )));
        }
        if let Some(f) = opts.camera_fps
            && !(1..=30).contains(&f)
        {
            return Err(FieldgenError::Option(format!("camera fps {f}: 1..=30")));
        }
        let given_start =
            match &opts.start {
                Some(s) => Some(OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
                    FieldgenError::Option(format!("start {s:?} is not RFC 3339: {e}"))
                })?),
                None => None,
            };

        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0xF1E1_D6E4_0000_0000);
        let audio_seed = rng.random();
        let camera_seed = rng.random();
        let climate_seed = rng.random();

        // Formats: always drawn, then overridden by the options.
        let rate = AUDIO_RATES[rng.random_range(0..AUDIO_RATES.len())];
        let channels = if rng.random_bool(0.35) { 2 } else { 1 };
        let size = FRAME_SIZES[rng.random_range(0..FRAME_SIZES.len())];
        let fps = rng.random_range(1..=5u32);
        let chroma_420 = rng.random_bool(0.3);
        let climate_step = [1.0, 2.0, 5.0, 10.0][rng.random_range(0..4)];
        let audio = opts.audio.then(|| AudioFormat {
            rate: opts.audio_rate.unwrap_or(rate),
            channels: opts.channels.unwrap_or(channels),
        });
        let camera = opts.camera.then(|| {
            let (width, height) = opts.camera_size.unwrap_or(size);
            CameraFormat {
                width,
                height,
                fps: opts.camera_fps.unwrap_or(fps),
                chroma_420,
            }
        });
        // The highest frequency a source may use.
        let top_hz = 0.42 * audio.map_or(rate, |a| a.rate) as f32;

        let m = mix(opts.condition, &mut rng);

        // Start time and the local solar clock.
        let doy: u16 = rng.random_range(60..300);
        let day_start = rng.random_bool(m.day_start);
        let drawn_hour = if m.night {
            (rng.random_range(21.5..28.0f64)) % 24.0
        } else if day_start {
            rng.random_range(6.5..17.0)
        } else {
            rng.random_range(0.0..24.0)
        };
        let drawn_start = {
            let base = time::Date::from_ordinal_date(2026, doy)
                .unwrap_or(time::Date::MIN)
                .midnight()
                .assume_utc();
            base + time::Duration::seconds_f64((drawn_hour * 3600.0).floor())
        };
        let start = given_start.unwrap_or(drawn_start);
        let clock_hour = f64::from(start.hour())
            + f64::from(start.minute()) / 60.0
            + f64::from(start.second()) / 3600.0;
        let start_doy = start.ordinal();
        let cloud_base = if m.long_rain {
            rng.random_range(0.75..1.0)
        } else if rng.random_bool(0.3) {
            rng.random_range(0.4..0.8)
        } else {
            rng.random_range(0.0..0.3)
        };
        let cloud_rate = rng.random_range(0.0..25.0);
        let mut sky = Sky::new(&mut rng, d, clock_hour, start_doy, cloud_base, cloud_rate);
        if m.night {
            // A night scene stays dark: when the clock says day, the solar
            // clock is moved to the middle of the night.
            let mid = (sky.sunset + sky.sunrise + 24.0) / 2.0;
            let dark_all_along = (0..=((d / 600.0).ceil() as usize))
                .all(|i| sky.is_night((i as f64 * 600.0).min(d)));
            if !dark_all_along {
                sky.start_hour = (mid - d / 7200.0).rem_euclid(24.0);
            }
        }

        let wind = ambience::plan_wind(&mut rng, d, m.wind_mean, m.gusts_per_h, m.gust_peak);
        let rain = ambience::plan_rain(&mut rng, d, m.rain, m.long_rain);
        let insects = if rng.random_bool(m.insects) {
            ambience::plan_insects(&mut rng, d, top_hz, sky.is_night(0.0))
        } else {
            Vec::new()
        };
        let distant = ambience::plan_distant(&mut rng, d, m.distant);
        let has_machine = rng.random_bool(m.hum);
        let mut machine = machine::plan(&mut rng, top_hz);
        let gain_db = ambience::plan_gain(&mut rng, d);
        let mut climate = climate::plan(&mut rng, d, m.night);

        // Labelled events.
        let mut calls = Vec::new();
        let mut people = Vec::new();
        let mut crossings = Vec::new();
        let mut labels = Vec::new();
        let rate_per_h = rng.random_range(12.0..40.0);
        let mut n = poisson_count(&mut rng, rate_per_h * d / 3600.0);
        if d >= 8.0 {
            n = n.max(1);
        }
        if opts.background_only || d < 8.0 {
            n = 0;
        }
        let mut taken: Vec<(f64, f64)> = Vec::new();
        let mut anomalies = Vec::new();
        for _ in 0..n {
            let w: f64 = rng.random();
            let class = if has_machine && w < 0.25 {
                Class::Machine
            } else if w < 0.6 {
                Class::Wildlife
            } else {
                Class::Human
            };
            let overlap_ok = rng.random_bool(0.3);
            let camera_crossing: f64 = rng.random();
            match class {
                Class::Wildlife => {
                    let len = rng.random_range(2.0..20.0f64).min(d - 4.0);
                    let t0 = place(&mut rng, d, len, &taken, overlap_ok);
                    let night = sky.is_night(t0);
                    let mut ev = wildlife::plan_call(&mut rng, t0, len, top_hz, night);
                    let mut end = ev.end;
                    if camera_crossing < 0.35 {
                        let c = figures::plan_animal(&mut rng, t0, len, d);
                        end = end.max(c.end);
                        crossings.push(c);
                    }
                    ev.end = ev.end.min(d);
                    taken.push((t0, end));
                    labels.push(Label {
                        start: t0,
                        end: end.min(d),
                        class: "wildlife",
                        what: ev.kind.name().to_string(),
                    });
                    calls.push(ev);
                }
                Class::Human => {
                    let len = rng.random_range(5.0..30.0f64).min(d - 4.0);
                    let t0 = place(&mut rng, d, len, &taken, overlap_ok);
                    let ev = human::plan(&mut rng, t0, len, top_hz);
                    let p = if ev.steps.is_some() { 0.7 } else { 0.3 };
                    let mut end = ev.end;
                    if camera_crossing < p {
                        let c = figures::plan_person(&mut rng, t0, len, d);
                        end = end.max(c.end);
                        crossings.push(c);
                    }
                    taken.push((t0, end));
                    labels.push(Label {
                        start: t0,
                        end: end.min(d),
                        class: "human_activity",
                        what: ev.describe(),
                    });
                    people.push(ev);
                }
                Class::Machine => {
                    let len = rng.random_range(30.0..360.0f64).min(d * 0.6).max(2.0);
                    // One machine has one fault at a time, and a new one
                    // only after it has cooled off for a while.
                    let busy: Vec<(f64, f64)> = anomalies
                        .iter()
                        .map(|a: &machine::Anomaly| (a.start - 60.0, a.start + a.len + 600.0))
                        .collect();
                    let mut avoid = busy.clone();
                    if !overlap_ok {
                        avoid.extend_from_slice(&taken);
                    }
                    let t0 = place(&mut rng, d, len, &avoid, false);
                    let a = machine::plan_anomaly(&mut rng, t0, len, &machine, top_hz);
                    let heat = climate::heat_for(&mut rng, t0, len);
                    if busy.iter().any(|&(s, e)| t0 < e && t0 + len > s) {
                        continue;
                    }
                    taken.push((t0, t0 + len));
                    labels.push(Label {
                        start: t0,
                        end: (t0 + len).min(d),
                        class: "machinery_anomaly",
                        what: a.describe(),
                    });
                    climate.machine_heat.push(heat);
                    anomalies.push(a);
                }
            }
        }
        anomalies.sort_by(|a, b| a.start.total_cmp(&b.start));
        climate
            .machine_heat
            .sort_by(|a, b| a.start.total_cmp(&b.start));
        machine.anomalies = anomalies;
        if has_machine {
            climate.machine_offset = rng.random_range(0.5..3.0);
        }

        // Background episodes worth a label; overlapping episodes of one
        // kind make one label.
        let gusts: Vec<(f64, f64)> = wind
            .gusts
            .iter()
            .filter(|g| g.peak >= 6.0)
            .map(|g| g.half_span())
            .filter(|&(a, b)| wind.speed.max_over(a, b) >= 10.0)
            .collect();
        for (a, b) in merged(gusts, d) {
            labels.push(Label {
                start: a,
                end: b,
                class: "background",
                what: format!("gust of wind to {:.0} m/s", wind.speed.max_over(a, b)),
            });
        }
        let showers = rain
            .showers
            .iter()
            .filter(|s| s.peak >= 0.15)
            .map(|s| s.half_span());
        let planes = distant.aircraft.iter().map(|p| p.pass.half_span());
        let shadows = sky
            .clouds
            .iter()
            .filter(|c| {
                c.peak >= 0.5 && cloud_base < 0.5 && sky.sun(c.half_span().0.max(0.0)) > 0.15
            })
            .map(|c| c.half_span())
            .filter(|_| camera.is_some() || opts.climate);
        for (spans, what) in [
            (showers.collect::<Vec<_>>(), "rain shower"),
            (planes.collect(), "passing aircraft"),
            (shadows.collect(), "cloud shadow"),
        ] {
            for (a, b) in merged(spans, d) {
                labels.push(Label {
                    start: a,
                    end: b,
                    class: "background",
                    what: what.to_string(),
                });
            }
        }
        labels.retain(|l| l.end - l.start >= 0.1);
        labels.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.end.total_cmp(&b.end)));

        Ok(Plan {
            seed: opts.seed,
            condition: opts.condition,
            duration: d,
            start,
            audio,
            camera,
            climate_step: opts.climate.then_some(climate_step),
            sky,
            wind,
            rain,
            insects,
            distant,
            machine: has_machine.then_some(machine),
            calls,
            people,
            crossings,
            gain_db,
            climate,
            labels,
            audio_seed,
            camera_seed,
            climate_seed,
        })
    }

    /// The start as RFC 3339.
    pub fn start_text(&self) -> String {
        self.start
            .format(&Rfc3339)
            .unwrap_or_else(|_| "2026-06-01T00:00:00Z".to_string())
    }
}

/// Spans clipped to `[0, d]`, overlapping ones joined, by start.
fn merged(mut spans: Vec<(f64, f64)>, d: f64) -> Vec<(f64, f64)> {
    spans.retain(|&(a, b)| a < d && b > 0.0);
    spans.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (a, b) in spans {
        let (a, b) = (a.max(0.0), b.min(d));
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// A start for an event of `len` seconds inside `[1, d - 1]`; unless
/// `overlap_ok`, tries to keep clear of the spans already `taken`.
fn place(rng: &mut ChaCha8Rng, d: f64, len: f64, taken: &[(f64, f64)], overlap_ok: bool) -> f64 {
    let hi = (d - len - 1.0).max(1.0);
    let mut t = rng.random_range(1.0..=hi);
    if overlap_ok {
        return t;
    }
    for _ in 0..12 {
        if taken.iter().all(|&(a, b)| t + len + 1.0 < a || t > b + 1.0) {
            break;
        }
        t = rng.random_range(1.0..=hi);
    }
    t
}
