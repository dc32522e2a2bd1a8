//! The audio trigger's model of what is *not* an event, per analysis band:
//! a noise floor, how far the band usually rises above it in short bursts,
//! and how much of its rise wind explains.
//!
//! - **Floor**: a low percentile of the band's level. It falls quickly
//!   towards a lower level and rises only at `rise_db_per_s`, so steady
//!   sound (rain, a running machine, a constant breeze) becomes floor.
//! - **Wind**: gusts lift the lowest bands (below [`WIND_HZ`]) first and
//!   most, and spill into higher bands in proportion. Each higher band
//!   learns that proportion (its *wind gain*) from frames whose rise is
//!   shaped like wind (largest in the lowest bands), and in such frames the
//!   wind's share is taken off that band's excess. A call during a gust
//!   still stands out in its own bands: only the part of a band's rise that
//!   the wind predicts is removed, never the band itself, and a frame where
//!   some band rises well beyond the wind reference is not wind-shaped.
//! - **Spread**: a high percentile of the band's remaining excess: how far
//!   it usually rises above its floor. It climbs fast in frames shaped like
//!   wind (a few gusts teach it) and slowly otherwise (rain, a chorus), so
//!   a moderate sound that develops and stays, such as a machine's fault,
//!   stands out for seconds before it could become usual. Short excursions
//!   (a gust, a chorus pulse, a rain burst: above the floor and back within
//!   [`MAX_EXCURSION_S`]) also pull the spread towards their peak when they
//!   end (by at most [`EXCURSION_RISE_DB_PER_S`] per second of excursion),
//!   so a pulsing chorus is learned within seconds. Frames inside an
//!   activation teach nothing (a call or a conversation must not make itself
//!   usual) until the activation has lasted [`LONG_ACTIVATION_S`]: a chorus
//!   that never stops becomes the usual. Up to [`CALM_SPREAD_DB`] it costs
//!   nothing.
//!
//! [`BandNoise::update`] gives each band's *margin*: its excess beyond all
//! of that, in dB, which the trigger compares with its thresholds.

/// Bands centred below this are the wind reference, Hz.
pub const WIND_HZ: f32 = 300.0;
/// The spread a steady band shows anyway (smoothed level wobble), dB: a
/// spread up to this raises no threshold, and an excursion starts above it.
pub const CALM_SPREAD_DB: f32 = 3.0;
/// Excursions longer than this are sustained sound, not fluctuation, s.
pub const MAX_EXCURSION_S: f32 = 20.0;
/// Share of the way to an ended excursion's peak that the spread moves.
const EXCURSION_WEIGHT: f32 = 0.3;
/// Excursions raise the spread by at most this much per second of
/// excursion: the knocks of a developing fault are excursions too, and must
/// not make the fault usual before it could open an activation.
pub const EXCURSION_RISE_DB_PER_S: f32 = 1.0;
/// How fast the floor follows a falling level, dB per second.
const FLOOR_FALL_DB_PER_S: f32 = 4.0;
/// The spread is this quantile of the band's excess.
const SPREAD_QUANTILE: f32 = 0.95;
/// Step of the spread's quantile tracker in wind-shaped frames, dB per second.
const WIND_SPREAD_RATE_DB_PER_S: f32 = 2.0;
/// ... and in other frames.
const SPREAD_RATE_DB_PER_S: f32 = 1.0;
/// An activation open for longer than this is the soundscape (a chorus, a
/// crowd), and its excursions teach the spread again, s.
pub const LONG_ACTIVATION_S: f32 = 60.0;
/// A frame is wind-shaped when the wind reference has risen at least this
/// far above its floor, dB ...
const WIND_MIN_DB: f32 = 4.0;
/// ... and no higher band has risen more than this times as far.
const WIND_SHAPE: f32 = 1.25;
/// Time constant of the wind gains, s of wind-shaped frames.
const WIND_GAIN_TAU_S: f32 = 20.0;
/// Largest wind gain (a band rising more than the wind reference).
const WIND_GAIN_MAX: f32 = 1.2;
/// For this long after the first frame the model is still finding the
/// floor, s; the trigger opens no activation meanwhile (a node switched on
/// in a gale would otherwise report the first gusts).
pub const WARMUP_S: f32 = 10.0;
/// While warming up, a band whose level stands more than this above its
/// floor has a floor that started too low (the stream began with silence
/// or a fade-in) ...
const WARMUP_CATCH_UP_DB: f32 = 15.0;
/// ... and its floor rises this fast, dB per second, teaching nothing,
/// until it is within [`CALM_SPREAD_DB`] of the level.
const WARMUP_RISE_DB_PER_S: f32 = 20.0;

/// One band's current excursion above its floor.
#[derive(Clone, Copy, Default)]
struct Excursion {
    peak_db: f32,
    frames: u32,
    /// Part of it fell where the spread must not learn (a young activation).
    blocked: bool,
}

/// Per-band floor, spread and wind gain.
pub struct BandNoise {
    floor_db: Vec<f32>,
    spread_db: Vec<f32>,
    wind_gain: Vec<f32>,
    excursion: Vec<Excursion>,
    /// Bands `0..wind_bands` are the wind reference.
    wind_bands: usize,
    initialised: bool,
    wind_db: f32,
    windy_frames: u64,
    /// Time since the first frame, s.
    age_s: f32,
    /// Bands whose floor started too low and is catching up.
    catching_up: Vec<bool>,
}

impl BandNoise {
    /// A model for bands centred at `centres_hz` (ascending).
    pub fn new(centres_hz: &[f32]) -> Self {
        let n = centres_hz.len();
        let wind_bands = centres_hz.iter().filter(|&&c| c < WIND_HZ).count().max(1);
        BandNoise {
            floor_db: vec![0.0; n],
            spread_db: vec![0.0; n],
            wind_gain: vec![0.0; n],
            excursion: vec![Excursion::default(); n],
            wind_bands: wind_bands.min(n),
            initialised: false,
            wind_db: 0.0,
            windy_frames: 0,
            age_s: 0.0,
            catching_up: vec![false; n],
        }
    }

    /// Each band's floor, dB.
    pub fn floors(&self) -> &[f32] {
        &self.floor_db
    }

    /// Updates the model with one frame of smoothed band levels (dB) and
    /// writes each band's margin beyond its floor, wind share and spread
    /// into `margins`. `event_age_s`: how long the open activation has been
    /// open, if one is.
    pub fn update(
        &mut self,
        level_db: &[f32],
        hop_s: f32,
        rise_db_per_s: f32,
        event_age_s: Option<f32>,
        margins: &mut [f32],
    ) {
        let n = self.floor_db.len().min(level_db.len()).min(margins.len());
        if !self.initialised {
            self.floor_db[..n].copy_from_slice(&level_db[..n]);
            self.initialised = true;
        }
        // 1. Floors. The first frame is one sample: a stream that starts
        // with silence or a fade-in (a microphone's first buffers) leaves
        // the floor far below the ambient level, and at the normal rate it
        // would take minutes to climb, while the spreads learned the gap as
        // usual. While warming up such a floor catches up fast, and the
        // frame teaches nothing else.
        let warming_up = self.age_s < WARMUP_S;
        self.age_s += hop_s;
        let rise = rise_db_per_s * hop_s;
        let fall = FLOOR_FALL_DB_PER_S * hop_s;
        let mut catching_up = false;
        for ((f, &l), c) in self
            .floor_db
            .iter_mut()
            .zip(level_db)
            .zip(self.catching_up.iter_mut())
            .take(n)
        {
            if warming_up && l - *f > WARMUP_CATCH_UP_DB {
                *c = true;
            } else if l - *f < CALM_SPREAD_DB {
                *c = false;
            }
            if l < *f {
                *f -= fall.min(*f - l);
            } else if *c {
                *f += (WARMUP_RISE_DB_PER_S * hop_s).min(l - *f);
            } else {
                *f += rise.min(l - *f);
            }
            catching_up |= *c;
        }
        // 2. Wind: the reference's rise, and whether this frame is wind-shaped.
        let excess = |b: usize| (level_db[b] - self.floor_db[b]).max(0.0);
        let w = self.wind_bands.min(n);
        let wind = (0..w).map(excess).sum::<f32>() / w.max(1) as f32;
        let highest_other = (w..n).map(excess).fold(0.0f32, f32::max);
        let wind_shaped = !catching_up && wind >= WIND_MIN_DB && highest_other <= WIND_SHAPE * wind;
        self.wind_db = wind;
        if wind_shaped {
            self.windy_frames += 1;
            let a = (hop_s / WIND_GAIN_TAU_S).min(1.0);
            for b in w..n {
                let g = (excess(b) / wind).min(WIND_GAIN_MAX);
                self.wind_gain[b] += a * (g - self.wind_gain[b]);
            }
        }
        // 3. What wind does not explain, beyond the usual spread.
        let learn =
            !catching_up && (wind_shaped || event_age_s.is_none_or(|a| a >= LONG_ACTIVATION_S));
        let step = if wind_shaped {
            WIND_SPREAD_RATE_DB_PER_S
        } else {
            SPREAD_RATE_DB_PER_S
        } * hop_s;
        let (up, down) = (step * SPREAD_QUANTILE, step * (1.0 - SPREAD_QUANTILE));
        let max_frames = (MAX_EXCURSION_S / hop_s.max(1e-4)) as u32;
        let excursion_cap = EXCURSION_RISE_DB_PER_S * hop_s;
        for (b, margin) in margins.iter_mut().enumerate().take(n) {
            // Only a frame shaped like wind is explained by it: when a higher
            // band rises more than the wind reference (speech, a call, a
            // knock), nothing is taken off.
            let explained = if b < w || !wind_shaped {
                0.0
            } else {
                self.wind_gain[b] * wind
            };
            let u = (excess(b) - explained).max(0.0);
            let s = &mut self.spread_db[b];
            if learn {
                if u > *s {
                    *s += up.min(u - *s);
                } else {
                    *s -= down.min(*s - u);
                }
            }
            let e = &mut self.excursion[b];
            if u > CALM_SPREAD_DB {
                e.peak_db = e.peak_db.max(u);
                e.frames = e.frames.saturating_add(1);
                e.blocked |= !learn;
            } else if e.frames > 0 {
                if e.frames <= max_frames && !e.blocked && e.peak_db > *s {
                    // At most the cap per frame of the excursion.
                    let cap = excursion_cap * e.frames as f32;
                    *s += (EXCURSION_WEIGHT * (e.peak_db - *s)).min(cap);
                }
                *e = Excursion::default();
            }
            *margin = u - (*s - CALM_SPREAD_DB).max(0.0);
        }
    }

    /// The floor of band `b`, dB.
    pub fn floor_db(&self, b: usize) -> f32 {
        self.floor_db.get(b).copied().unwrap_or(0.0)
    }

    /// The spread of band `b`, dB.
    pub fn spread_db(&self, b: usize) -> f32 {
        self.spread_db.get(b).copied().unwrap_or(0.0)
    }

    /// How far the wind reference stands above its floor now, dB.
    pub fn wind_db(&self) -> f32 {
        self.wind_db
    }

    /// Frames whose rise was shaped like wind.
    pub fn windy_frames(&self) -> u64 {
        self.windy_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CENTRES: [f32; 6] = [150.0, 500.0, 1000.0, 2000.0, 4000.0, 6000.0];

    /// Runs `frames` of levels through a model at 16 ms per frame; the
    /// margins of the last frame.
    fn run(
        model: &mut BandNoise,
        frames: impl Iterator<Item = [f32; 6]>,
        in_event: bool,
    ) -> [f32; 6] {
        let mut m = [0.0; 6];
        for l in frames {
            model.update(&l, 0.016, 0.4, in_event.then_some(1.0), &mut m);
        }
        m
    }

    /// A gust every 20 s: 6 s long, 18 dB in the wind band, spilling 9 dB
    /// into the next two bands and 4 dB above them.
    fn gusty(i: usize) -> [f32; 6] {
        let t = i as f32 * 0.016;
        let g = if t % 20.0 < 6.0 {
            (t % 20.0 / 6.0 * std::f32::consts::PI).sin()
        } else {
            0.0
        };
        let wobble = ((i * 7919) % 13) as f32 / 13.0;
        [
            40.0 + 18.0 * g + wobble,
            30.0 + 9.0 * g + wobble,
            25.0 + 9.0 * g + wobble,
            20.0 + 4.0 * g + wobble,
            20.0 + 4.0 * g + wobble,
            20.0 + wobble,
        ]
    }

    #[test]
    fn steady_bands_keep_their_full_sensitivity() {
        let mut n = BandNoise::new(&CENTRES);
        let steady = (0..10_000).map(|i| [30.0 + ((i * 31) % 7) as f32 / 7.0; 6]);
        run(&mut n, steady, false);
        // A 12 dB rise in one band stands 11 to 12 dB out.
        let mut m = [0.0; 6];
        n.update(
            &[30.5, 30.5, 30.5, 42.5, 30.5, 30.5],
            0.016,
            0.4,
            None,
            &mut m,
        );
        assert!((11.0..=12.5).contains(&m[3]), "{m:?}");
        assert!(
            m.iter().enumerate().all(|(b, &x)| b == 3 || x < 2.0),
            "{m:?}"
        );
    }

    #[test]
    fn a_stream_that_starts_in_silence_is_not_deaf_once_warmed_up() {
        let mut n = BandNoise::new(&CENTRES);
        // The first frames are a fade-in from silence, then 20 s of a
        // steady floor.
        let fade = (0..60).map(|i| [-60.0 + i as f32; 6]);
        let steady = (0..1_250).map(|i| [30.0 + ((i * 31) % 7) as f32 / 7.0; 6]);
        run(&mut n, fade.chain(steady), false);
        // A machine starts in one band, 12 dB above the floor.
        let mut m = [0.0; 6];
        n.update(
            &[30.5, 30.5, 42.5, 30.5, 30.5, 30.5],
            0.016,
            0.4,
            None,
            &mut m,
        );
        assert!(m[2] >= 10.0, "{m:?}");
        assert!((29.0..=31.5).contains(&n.floor_db(2)), "{}", n.floor_db(2));
    }

    #[test]
    fn after_a_few_gusts_wind_no_longer_stands_out() {
        let mut n = BandNoise::new(&CENTRES);
        // Two minutes of gusts; then the peak of the next gust.
        run(&mut n, (0..7_500).map(gusty), false);
        let peak = (7_500..8_800).map(gusty).map(|l| {
            let mut m = [0.0; 6];
            n.update(&l, 0.016, 0.4, None, &mut m);
            m.iter().copied().fold(f32::MIN, f32::max)
        });
        let worst = peak.fold(f32::MIN, f32::max);
        assert!(worst < 7.0, "a gust still stands {worst} dB out");
        assert!(n.windy_frames() > 1_000);
    }

    #[test]
    fn a_call_during_a_gust_still_stands_out_in_its_band() {
        let mut n = BandNoise::new(&CENTRES);
        run(&mut n, (0..7_500).map(gusty), false);
        // At a gust's peak (t = 123 s), a 15 dB call at 4 kHz.
        let i = (123.0f32 / 0.016) as usize;
        let mut l = gusty(i);
        l[4] += 15.0;
        let mut m = [0.0; 6];
        n.update(&l, 0.016, 0.4, Some(1.0), &mut m);
        assert!(m[4] >= 10.0, "{m:?}");
    }

    #[test]
    fn events_do_not_teach_the_spread() {
        let mut n = BandNoise::new(&CENTRES);
        let quiet = || (0..3_000).map(|_| [30.0; 6]);
        run(&mut n, quiet(), false);
        // A minute of song at 4 kHz, every frame in an event.
        let song = (0..4_000).map(|i| {
            let mut l = [30.0; 6];
            l[4] += if i % 60 < 30 { 20.0 } else { 0.0 };
            l
        });
        run(&mut n, song, true);
        let mut m = [0.0; 6];
        n.update(
            &[30.0, 30.0, 30.0, 30.0, 50.0, 30.0],
            0.016,
            0.4,
            Some(1.0),
            &mut m,
        );
        assert!(m[4] >= 10.0, "{m:?}");
    }

    #[test]
    fn a_chorus_that_holds_an_activation_open_becomes_the_usual() {
        let mut n = BandNoise::new(&CENTRES);
        run(&mut n, (0..3_000).map(|_| [30.0; 6]), false);
        // Pulses of 20 dB at 4 kHz, twice a second, inside one activation
        // that has been open for longer than LONG_ACTIVATION_S.
        let mut m = [0.0; 6];
        for i in 0..6_000 {
            let mut l = [30.0; 6];
            l[4] += if i % 31 < 12 { 20.0 } else { 0.0 };
            let age = LONG_ACTIVATION_S + i as f32 * 0.016;
            n.update(&l, 0.016, 0.4, Some(age), &mut m);
        }
        let mut l = [30.0; 6];
        l[4] += 20.0;
        n.update(&l, 0.016, 0.4, Some(200.0), &mut m);
        assert!(m[4] < 10.0, "a chorus pulse still stands {} dB out", m[4]);
    }
}
