//! The sky over the node: the sun's course through the local day and the
//! clouds passing in front of it. The camera takes its light and its
//! day/IR mode from here, the climate its sun on the enclosure.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::track::{Episode, Track, sum_env};

/// Sun and clouds over the scene.
#[derive(Debug, Clone)]
pub struct Sky {
    /// Local solar hour at t = 0.
    pub start_hour: f64,
    /// Sunrise, local solar hour.
    pub sunrise: f64,
    /// Sunset, local solar hour.
    pub sunset: f64,
    /// Cloud cover in `[0, 1]`, 1 Hz.
    pub cover: Track,
    /// The passing clouds.
    pub clouds: Vec<Episode>,
}

impl Sky {
    /// A sky for a scene starting at `start_hour` on day `doy` of the year,
    /// with `base` cover and passing clouds at `rate_per_h`.
    pub fn new(
        rng: &mut ChaCha8Rng,
        duration: f64,
        start_hour: f64,
        doy: u16,
        base: f32,
        rate_per_h: f64,
    ) -> Sky {
        // Day length of a mid-latitude site over the year.
        let season = (2.0 * std::f64::consts::PI * (f64::from(doy) - 172.0) / 365.0).cos();
        let day_len = 12.0 + 3.5 * season;
        let noon = 12.0 + rng.random_range(0.2..1.4);
        let (sunrise, sunset) = (noon - day_len / 2.0, noon + day_len / 2.0);
        let n = poisson_count(rng, rate_per_h * duration / 3600.0);
        let mut clouds = Vec::with_capacity(n);
        for _ in 0..n {
            clouds.push(Episode {
                start: rng.random_range(-60.0..duration),
                attack: rng.random_range(8.0..70.0),
                hold: rng.random_range(15.0..420.0),
                release: rng.random_range(8.0..70.0),
                peak: rng.random_range(0.25..0.95),
            });
        }
        clouds.sort_by(|a, b| a.start.total_cmp(&b.start));
        let cover = Track::sample(duration, 1.0, |t| {
            (base + sum_env(&clouds, t)).clamp(0.0, 1.0)
        });
        Sky {
            start_hour,
            sunrise,
            sunset,
            cover,
            clouds,
        }
    }

    /// Local solar hour at `t`, in `[0, 24)`.
    pub fn hour(&self, t: f64) -> f64 {
        (self.start_hour + t / 3600.0).rem_euclid(24.0)
    }

    /// Height of the sun, 0 below the horizon, 1 at noon; negative in
    /// twilight down to -0.1.
    pub fn sun(&self, t: f64) -> f32 {
        let h = self.hour(t);
        let day = self.sunset - self.sunrise;
        let x = (h - self.sunrise) / day;
        if (0.0..=1.0).contains(&x) {
            (std::f64::consts::PI * x).sin() as f32
        } else {
            // Twilight: an hour either side fades from 0 to -0.1.
            let from_edge = if h < self.sunrise {
                self.sunrise - h
            } else {
                h - self.sunset
            };
            -(from_edge.min(1.0) as f32) * 0.1
        }
    }

    /// Night for the camera: too dark for colour frames.
    pub fn is_night(&self, t: f64) -> bool {
        self.sun(t) < -0.02
    }

    /// Light reaching the scene, relative to a clear noon (about 1e-3 in
    /// deep twilight).
    pub fn light(&self, t: f64) -> f32 {
        let s = self.sun(t);
        let clear = if s > 0.0 {
            0.03 + 0.97 * s.powf(0.7)
        } else {
            0.03 * (1.0 + s * 9.7).max(0.0) + 0.001
        };
        clear * (1.0 - 0.75 * self.cover.at(t))
    }

    /// Direct sun on the enclosure in `[0, 1]` (no sun under clouds or at night).
    pub fn direct_sun(&self, t: f64) -> f32 {
        self.sun(t).max(0.0) * (1.0 - self.cover.at(t)).powi(2)
    }
}

/// A Poisson draw with mean `mean` (by inversion; means here are small).
pub fn poisson_count(rng: &mut ChaCha8Rng, mean: f64) -> usize {
    if mean <= 0.0 {
        return 0;
    }
    if mean > 50.0 {
        // Normal approximation for large means.
        let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
        return (mean + z * mean.sqrt()).round().max(0.0) as usize;
    }
    let l = (-mean).exp();
    let mut k = 0;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}
