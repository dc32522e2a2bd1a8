//! A machine near the node: a steady hum at mains harmonics (50 or 60 Hz
//! and their multiples) or at a shaft rate and its blade-pass harmonics,
//! with a little frequency wander and broadband noise. When it goes wrong
//! (an anomaly) some of these appear and grow over the first part of the
//! episode: sidebands (the hum amplitude-modulated at a fault rate),
//! half-order harmonics, periodic knocks ringing a structural resonance,
//! broadband bearing noise modulated at the ball-pass rate, and a louder
//! hum.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::signal::{Noise, OnePole, Phase, Svf, db, sin_cycles, smoothstep};

const TABLE: usize = 2048;

/// How the machine hums.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MachineKind {
    /// Transformer or motor on the mains at this frequency, Hz.
    Mains(f32),
    /// A rotating shaft at this rate (Hz) with this many blades.
    Shaft(f32, u32),
}

/// The machine's steady state and its anomalies.
#[derive(Debug, Clone)]
pub struct MachinePlan {
    /// What hums.
    pub kind: MachineKind,
    /// Fundamental, Hz.
    pub base_hz: f32,
    /// Amplitudes of harmonics 1, 2, ...
    pub harmonics: Vec<f32>,
    /// Hum amplitude.
    pub level: f32,
    /// Frequency wander: depth (fraction) and period, seconds.
    pub wander: (f32, f32),
    /// Broadband noise relative to the hum.
    pub noise: f32,
    /// The anomalies (labelled).
    pub anomalies: Vec<Anomaly>,
}

/// Periodic knocking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knock {
    /// Seconds between knocks.
    pub period: f32,
    /// Ringing resonance, Hz.
    pub ring_hz: f32,
    /// Loudness relative to the hum.
    pub level: f32,
}

/// Bearing noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bearing {
    /// Centre of the noise band, Hz.
    pub centre: f32,
    /// Modulation rate (ball pass), Hz.
    pub rate: f32,
    /// Loudness relative to the hum.
    pub level: f32,
}

/// One anomaly episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// Start, seconds.
    pub start: f64,
    /// Length, seconds.
    pub len: f64,
    /// Time to reach full severity, seconds.
    pub ramp: f64,
    /// Sidebands: modulation rate (Hz) and depth.
    pub sidebands: Option<(f32, f32)>,
    /// Half-order harmonics, loudness relative to the hum.
    pub half_orders: Option<f32>,
    /// Knocking.
    pub knock: Option<Knock>,
    /// Bearing noise.
    pub bearing: Option<Bearing>,
    /// Extra hum loudness at full severity (factor - 1).
    pub louder: f32,
}

impl Anomaly {
    /// A description for the summary.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.sidebands.is_some() {
            parts.push("sidebands");
        }
        if self.half_orders.is_some() {
            parts.push("new harmonics");
        }
        if self.knock.is_some() {
            parts.push("knocking");
        }
        if self.bearing.is_some() {
            parts.push("bearing noise");
        }
        format!("machine fault: {}", parts.join(", "))
    }

    /// Severity in `[0, 1]` at `t`.
    pub fn severity(&self, t: f64) -> f32 {
        let u = t - self.start;
        if u <= 0.0 || u >= self.len {
            return 0.0;
        }
        let up = smoothstep((u / self.ramp) as f32);
        let down = ((self.len - u) / 2.0).min(1.0) as f32;
        up * down
    }
}

/// Draws the machine (whether it runs is decided by the caller).
pub fn plan(rng: &mut ChaCha8Rng, top_hz: f32) -> MachinePlan {
    let kind = if rng.random_bool(0.5) {
        MachineKind::Mains(if rng.random_bool(0.5) { 50.0 } else { 60.0 })
    } else {
        MachineKind::Shaft(rng.random_range(12.0..50.0), rng.random_range(3..=9))
    };
    let (base_hz, harmonics) = match kind {
        MachineKind::Mains(f) => {
            let h = (1..=12)
                .map(|k| {
                    let a = match k {
                        1 => rng.random_range(0.1..0.5),
                        2 => 1.0,
                        _ if k % 2 == 0 => rng.random_range(0.1..0.5) / (k as f32 / 2.0),
                        _ => rng.random_range(0.05..0.4) / k as f32,
                    };
                    if f * k as f32 > top_hz { 0.0 } else { a }
                })
                .collect();
            (f, h)
        }
        MachineKind::Shaft(f, blades) => {
            let h = (1..=(blades as usize * 2 + 2))
                .map(|k| {
                    let blade = k % blades as usize == 0;
                    let a = if blade {
                        rng.random_range(0.6..1.0)
                    } else {
                        rng.random_range(0.05..0.5) / k as f32
                    };
                    if f * k as f32 > top_hz { 0.0 } else { a }
                })
                .collect();
            (f, h)
        }
    };
    MachinePlan {
        kind,
        base_hz,
        harmonics,
        level: db(rng.random_range(-44.0..-20.0)),
        wander: (rng.random_range(0.0005..0.005), rng.random_range(5.0..60.0)),
        noise: rng.random_range(0.05..0.4),
        anomalies: Vec::new(),
    }
}

/// Plans an anomaly of `len` seconds at `t0` on `machine`.
pub fn plan_anomaly(
    rng: &mut ChaCha8Rng,
    t0: f64,
    len: f64,
    machine: &MachinePlan,
    top_hz: f32,
) -> Anomaly {
    let mut a = Anomaly {
        start: t0,
        len,
        ramp: len * rng.random_range(0.1..0.4),
        sidebands: rng
            .random_bool(0.45)
            .then(|| (rng.random_range(2.0..14.0), rng.random_range(0.3..0.8))),
        half_orders: rng.random_bool(0.4).then(|| rng.random_range(0.2..0.7)),
        knock: rng.random_bool(0.45).then(|| Knock {
            period: rng.random_range(0.12..1.2f32).max(1.0 / machine.base_hz),
            ring_hz: rng.random_range(600.0..3500.0f32).min(top_hz),
            level: rng.random_range(0.6..3.0),
        }),
        bearing: rng.random_bool(0.4).then(|| Bearing {
            centre: rng.random_range(2000.0..7000.0f32).min(top_hz * 0.9),
            rate: rng.random_range(40.0..200.0),
            level: rng.random_range(0.15..0.8),
        }),
        louder: rng.random_range(0.2..1.5),
    };
    if a.sidebands.is_none() && a.half_orders.is_none() && a.knock.is_none() && a.bearing.is_none()
    {
        match rng.random_range(0..4) {
            0 => a.sidebands = Some((rng.random_range(2.0..14.0), 0.6)),
            1 => a.half_orders = Some(0.5),
            2 => {
                a.knock = Some(Knock {
                    period: 0.4,
                    ring_hz: 1500.0f32.min(top_hz),
                    level: 1.5,
                })
            }
            _ => {
                a.bearing = Some(Bearing {
                    centre: 4000.0f32.min(top_hz * 0.9),
                    rate: 90.0,
                    level: 0.5,
                })
            }
        }
    }
    a
}

/// Renders the machine.
#[derive(Debug, Clone)]
pub struct MachineVoice {
    plan: MachinePlan,
    rate: f64,
    table: Vec<f32>,
    phase: Phase,
    half: Phase,
    wobble: Phase,
    fault_mod: Phase,
    ball: Phase,
    noise: Noise,
    noise_lp: OnePole,
    bearing: Svf,
    knock_ring: Svf,
    next_knock: f64,
    knock_env: f32,
}

impl MachineVoice {
    /// A renderer at `rate` Hz.
    pub fn new(plan: &MachinePlan, rate: u32, seed: u64) -> MachineVoice {
        let mut table: Vec<f32> = (0..=TABLE)
            .map(|i| {
                let p = i as f64 / TABLE as f64;
                plan.harmonics
                    .iter()
                    .enumerate()
                    .map(|(k, &a)| a * sin_cycles(p * (k + 1) as f64))
                    .sum()
            })
            .collect();
        let peak = table.iter().fold(1e-6f32, |m, &x| m.max(x.abs()));
        for x in &mut table {
            *x /= peak;
        }
        let r = rate as f32;
        MachineVoice {
            plan: plan.clone(),
            rate: f64::from(rate),
            table,
            phase: Phase::default(),
            half: Phase::default(),
            wobble: Phase::default(),
            fault_mod: Phase::default(),
            ball: Phase::default(),
            noise: Noise::new(seed),
            noise_lp: OnePole::new(700.0, r),
            bearing: Svf::new(4000.0, 1.5, r),
            knock_ring: Svf::new(1500.0, 12.0, r),
            next_knock: 0.0,
            knock_env: 0.0,
        }
    }

    #[inline]
    fn lookup(&self, p: f64) -> f32 {
        let x = p as f32 * TABLE as f32;
        let i = (x as usize).min(TABLE - 1);
        let f = x - i as f32;
        self.table[i] + (self.table[i + 1] - self.table[i]) * f
    }

    /// Adds the samples from sample `n0` on.
    pub fn add(&mut self, n0: u64, out: &mut [f32]) {
        let r = self.rate as f32;
        let level = self.plan.level;
        for (k, chunk) in out.chunks_mut(32).enumerate() {
            let t = (n0 + k as u64 * 32) as f64 / self.rate;
            let (depth, period) = self.plan.wander;
            let wob = sin_cycles(self.wobble.step(32.0 / f64::from(period), self.rate));
            let f = f64::from(self.plan.base_hz * (1.0 + depth * wob));
            let fault = self
                .plan
                .anomalies
                .iter()
                .find(|a| t >= a.start && t < a.start + a.len)
                .cloned();
            let s = fault.as_ref().map_or(0.0, |a| a.severity(t));
            if let Some(a) = &fault {
                if let Some(b) = a.bearing {
                    self.bearing.tune(b.centre, 1.5, r);
                }
                if let Some(kn) = a.knock {
                    self.knock_ring.tune(kn.ring_hz, 12.0, r);
                }
            }
            for o in chunk.iter_mut() {
                let tt = t;
                let p = self.phase.step(f, self.rate);
                let hp = self.half.step(f * 0.5, self.rate);
                let w = self.noise.normal();
                let mut hum = self.lookup(p);
                let mut y = self.plan.noise * self.noise_lp.lp(w) * 3.0;
                if let Some(a) = &fault
                    && s > 0.0
                {
                    hum *= 1.0 + a.louder * s;
                    if let Some((rate, d)) = a.sidebands {
                        let m = sin_cycles(self.fault_mod.step(f64::from(rate), self.rate));
                        hum *= 1.0 + s * d * m;
                    }
                    if let Some(h) = a.half_orders {
                        y += s
                            * h
                            * (sin_cycles(hp)
                                + 0.6 * sin_cycles(3.0 * hp)
                                + 0.4 * sin_cycles(5.0 * hp));
                    }
                    if let Some(b) = a.bearing {
                        let m =
                            1.0 + 0.8 * sin_cycles(self.ball.step(f64::from(b.rate), self.rate));
                        y += s * b.level * 4.0 * m * self.bearing.run(w).band;
                    }
                    if let Some(kn) = a.knock {
                        if tt >= self.next_knock {
                            self.knock_env = kn.level * (0.7 + 0.3 * self.noise.unit());
                            self.next_knock = tt + f64::from(kn.period);
                        }
                        if self.knock_env > 1e-4 {
                            let ring = self.knock_ring.run(w * self.knock_env * 6.0).band;
                            y += s * (ring + self.knock_env * 0.3 * w);
                            self.knock_env *= (-1.0 / (0.02 * r)).exp();
                        }
                    }
                }
                *o += level * (hum + y);
            }
        }
    }
}
