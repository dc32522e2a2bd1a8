//! The audio trigger's model of what is *not* an event, per analysis band:
//! a noise floor, how far the band usually rises above it, and how much of
//! its rise wind explains.
//!
//! - **Floor**: a low percentile of the band's level. It falls quickly
//!   towards a lower level and rises only at `rise_db_per_s`, so steady
//!   sound (rain, a running machine, a constant breeze) becomes floor.
//! - **Wind**: gusts lift the lowest bands (below [`WIND_HZ`]) first and
//!   most, and spill into higher bands in proportion. Each higher band
//!   learns that proportion (its *wind gain*) from frames whose rise is
//!   shaped like wind (largest in the lowest bands), and the wind's share is
//!   taken off that band's excess. A call during a gust still stands out in
//!   its own bands: only the part of a band's rise that the wind predicts is
//!   removed, never the band itself.
//! - **Spread**: a high percentile of the band's remaining excess, learned
//!   from frames that are not part of an event (and from wind-shaped
//!   frames). A band that fluctuates (gusts, rain) needs a larger rise to
//!   count; a quiet band keeps its full sensitivity, because the usual
//!   wobble of a steady band ([`CALM_SPREAD_DB`]) costs nothing.
//!
//! [`BandNoise::margins`] gives each band's excess beyond all of that, in
//! dB: what the trigger compares with its thresholds.

/// Bands centred below this are the wind reference, Hz.
pub const WIND_HZ: f32 = 300.0;
/// The spread a steady band shows anyway (smoothed level wobble), dB: a
/// spread up to this raises no threshold.
pub const CALM_SPREAD_DB: f32 = 3.0;
/// How fast the floor follows a falling level, dB per second.
const FLOOR_FALL_DB_PER_S: f32 = 4.0;
/// The spread is this quantile of the band's excess.
const SPREAD_QUANTILE: f32 = 0.95;
/// Step size of the spread's quantile tracker, dB per second.
const SPREAD_RATE_DB_PER_S: f32 = 2.0;
/// A frame is wind-shaped when the wind reference has risen at least this
/// far above its floor, dB ...
const WIND_MIN_DB: f32 = 4.0;
/// ... and no higher band has risen more than this times as far.
const WIND_SHAPE: f32 = 1.25;
/// Time constant of the wind gains, s of wind-shaped frames.
const WIND_GAIN_TAU_S: f32 = 20.0;
/// Largest wind gain (a band rising more than the wind reference).
const WIND_GAIN_MAX: f32 = 1.2;

/// Per-band floor, spread and wind gain.
pub struct BandNoise {
    floor_db: Vec<f32>,
    spread_db: Vec<f32>,
    wind_gain: Vec<f32>,
    /// Bands `0..wind_bands` are the wind reference.
    wind_bands: usize,
    initialised: bool,
    wind_db: f32,
    windy_frames: u64,
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
            wind_bands: wind_bands.min(n),
            initialised: false,
            wind_db: 0.0,
            windy_frames: 0,
        }
    }

    /// Updates the model with one frame of smoothed band levels (dB) and
    /// writes each band's margin beyond its floor, wind share and spread
    /// into `margins`. `in_event`: the frame belongs to an open activation
    /// (it must not teach the spread that events are normal).
    pub fn update(
        &mut self,
        level_db: &[f32],
        hop_s: f32,
        rise_db_per_s: f32,
        in_event: bool,
        margins: &mut [f32],
    ) {
        let n = self.floor_db.len().min(level_db.len()).min(margins.len());
        if !self.initialised {
            self.floor_db[..n].copy_from_slice(&level_db[..n]);
            self.initialised = true;
        }
        // 1. Floors.
        let rise = rise_db_per_s * hop_s;
        let fall = FLOOR_FALL_DB_PER_S * hop_s;
        for (f, &l) in self.floor_db.iter_mut().zip(level_db).take(n) {
            if l < *f {
                *f -= fall.min(*f - l);
            } else {
                *f += rise.min(l - *f);
            }
        }
        // 2. Wind: the reference's rise, and whether this frame is wind-shaped.
        let excess = |b: usize| (level_db[b] - self.floor_db[b]).max(0.0);
        let w = self.wind_bands.min(n);
        let wind = (0..w).map(excess).sum::<f32>() / w.max(1) as f32;
        let highest_other = (w..n).map(excess).fold(0.0f32, f32::max);
        let wind_shaped = wind >= WIND_MIN_DB && highest_other <= WIND_SHAPE * wind;
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
        let up = SPREAD_RATE_DB_PER_S * hop_s * SPREAD_QUANTILE;
        let down = SPREAD_RATE_DB_PER_S * hop_s * (1.0 - SPREAD_QUANTILE);
        let learn = !in_event || wind_shaped;
        for (b, margin) in margins.iter_mut().enumerate().take(n) {
            let explained = if b < w { 0.0 } else { self.wind_gain[b] * wind };
            let u = (excess(b) - explained).max(0.0);
            let s = &mut self.spread_db[b];
            if learn {
                if u > *s {
                    *s += up.min(u - *s);
                } else {
                    *s -= down.min(*s - u);
                }
            }
            *margin = u - (*s - CALM_SPREAD_DB).max(0.0);
        }
    }

    /// The floor of band `b`, dB.
    pub fn floor_db(&self, b: usize) -> f32 {
        self.floor_db.get(b).copied().unwrap_or(0.0)
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
            model.update(&l, 0.016, 0.4, in_event, &mut m);
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
            false,
            &mut m,
        );
        assert!((11.0..=12.5).contains(&m[3]), "{m:?}");
        assert!(
            m.iter().enumerate().all(|(b, &x)| b == 3 || x < 2.0),
            "{m:?}"
        );
    }

    #[test]
    fn after_a_few_gusts_wind_no_longer_stands_out() {
        let mut n = BandNoise::new(&CENTRES);
        // Two minutes of gusts; then the peak of the next gust.
        run(&mut n, (0..7_500).map(gusty), false);
        let peak = (7_500..8_800).map(gusty).map(|l| {
            let mut m = [0.0; 6];
            n.update(&l, 0.016, 0.4, false, &mut m);
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
        n.update(&l, 0.016, 0.4, true, &mut m);
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
            true,
            &mut m,
        );
        assert!(m[4] >= 10.0, "{m:?}");
    }
}
