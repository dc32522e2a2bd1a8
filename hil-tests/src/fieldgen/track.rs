//! Slow control curves: a value sampled at a fixed control rate over the
//! whole scene ([`Track`]), smooth random wander between knots ([`Wander`]),
//! and episodes with soft edges ([`Episode`]) such as a gust or a shower.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::signal::smoothstep;

/// A curve sampled at `rate` Hz from t = 0; read with linear interpolation.
#[derive(Debug, Clone)]
pub struct Track {
    rate: f64,
    v: Vec<f32>,
}

impl Track {
    /// Samples `f` over `0..=duration` seconds at `rate` Hz.
    pub fn sample(duration: f64, rate: f64, mut f: impl FnMut(f64) -> f32) -> Track {
        let n = (duration * rate).ceil() as usize + 2;
        Track {
            rate,
            v: (0..n).map(|i| f(i as f64 / rate)).collect(),
        }
    }

    /// The value at `t` seconds (held at the ends).
    #[inline]
    pub fn at(&self, t: f64) -> f32 {
        let x = (t * self.rate).max(0.0);
        let i = x as usize;
        if i + 1 >= self.v.len() {
            return self.v.last().copied().unwrap_or(0.0);
        }
        let f = (x - i as f64) as f32;
        self.v[i] + (self.v[i + 1] - self.v[i]) * f
    }

    /// The largest value over `[t0, t1]`.
    pub fn max_over(&self, t0: f64, t1: f64) -> f32 {
        let i0 = ((t0 * self.rate).max(0.0) as usize).min(self.v.len().saturating_sub(1));
        let i1 = ((t1 * self.rate).ceil().max(0.0) as usize).min(self.v.len().saturating_sub(1));
        self.v[i0..=i1.max(i0)]
            .iter()
            .copied()
            .fold(f32::MIN, f32::max)
    }
}

/// Smooth random wander: a value drawn every `spacing` seconds, joined by
/// raised-cosine segments.
#[derive(Debug, Clone)]
pub struct Wander {
    spacing: f64,
    knots: Vec<f32>,
}

impl Wander {
    /// Knots uniform in `[lo, hi]` over `duration` seconds.
    pub fn new(rng: &mut ChaCha8Rng, duration: f64, spacing: f64, lo: f32, hi: f32) -> Wander {
        let n = (duration / spacing).ceil() as usize + 2;
        let knots = (0..n)
            .map(|_| {
                if hi > lo {
                    rng.random_range(lo..hi)
                } else {
                    lo
                }
            })
            .collect();
        Wander { spacing, knots }
    }

    /// The value at `t` seconds.
    pub fn at(&self, t: f64) -> f32 {
        let x = (t / self.spacing).max(0.0);
        let i = (x as usize).min(self.knots.len() - 2);
        let f = smoothstep((x - i as f64).min(1.0) as f32);
        self.knots[i] + (self.knots[i + 1] - self.knots[i]) * f
    }
}

/// An episode: rises over `attack`, holds, falls over `release`; its
/// envelope peaks at `peak`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// Start of the rise, seconds.
    pub start: f64,
    /// Rise time, seconds.
    pub attack: f64,
    /// Time at full level, seconds.
    pub hold: f64,
    /// Fall time, seconds.
    pub release: f64,
    /// Level at the top.
    pub peak: f32,
}

impl Episode {
    /// End of the fall, seconds.
    pub fn end(&self) -> f64 {
        self.start + self.attack + self.hold + self.release
    }

    /// The envelope at `t`.
    pub fn env(&self, t: f64) -> f32 {
        let u = t - self.start;
        if u <= 0.0 || t >= self.end() {
            return 0.0;
        }
        let top = self.peak;
        if u < self.attack {
            top * smoothstep((u / self.attack) as f32)
        } else if u < self.attack + self.hold {
            top
        } else {
            top * (1.0 - smoothstep(((u - self.attack - self.hold) / self.release) as f32))
        }
    }

    /// Start and end of the part above half the peak (for a label).
    pub fn half_span(&self) -> (f64, f64) {
        (
            self.start + self.attack * 0.5,
            self.start + self.attack + self.hold + self.release * 0.5,
        )
    }
}

/// Sum of the envelopes of `eps` at `t` (a linear scan: use inside
/// [`Track::sample`], not per audio sample).
pub fn sum_env(eps: &[Episode], t: f64) -> f32 {
    eps.iter().map(|e| e.env(t)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn episode_has_soft_edges_and_a_top() {
        let e = Episode {
            start: 10.0,
            attack: 2.0,
            hold: 3.0,
            release: 4.0,
            peak: 2.0,
        };
        assert_eq!(e.env(9.0), 0.0);
        assert!((e.env(11.0) - 1.0).abs() < 1e-5);
        assert_eq!(e.env(13.0), 2.0);
        assert_eq!(e.env(19.5), 0.0);
        assert_eq!(e.end(), 19.0);
    }

    #[test]
    fn track_interpolates() {
        let t = Track::sample(10.0, 2.0, |t| t as f32);
        assert!((t.at(3.25) - 3.25).abs() < 1e-5);
        assert_eq!(t.at(-1.0), 0.0);
        assert!(t.max_over(0.0, 4.0) >= 4.0);
    }

    #[test]
    fn wander_stays_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let w = Wander::new(&mut rng, 100.0, 7.0, 2.0, 3.0);
        for i in 0..1000 {
            let v = w.at(i as f64 * 0.1);
            assert!((2.0..=3.0).contains(&v));
        }
    }
}
