//! The energy ledger: what each costed action of the node spends
//! (`[power.costs]`, [`EnergyCosts`], every default with its source in
//! `docs/energy.md`), counted as the actions happen, with the energy per
//! consumer ([`EnergyLedger::per_consumer`]). Where the supply is measured,
//! [`LedgerCheck`] compares the ledger's estimate of an interval with the
//! measured draw over the same interval.

use serde::{Deserialize, Serialize};

use crate::EnergyUse;

/// `[power.costs]`: what each action costs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnergyCosts {
    /// The board awake and idle (CPU, memory, SD card, regulators), W.
    pub awake_idle_w: f64,
    /// The board halted with `POWER_OFF_ON_HALT=1`, with the RTC and the
    /// battery monitors on, W.
    pub halted_w: f64,
    /// Extra power while capturing audio (USB microphone), W.
    pub audio_w: f64,
    /// One camera frame (sensor on, capture, transfer), J.
    pub camera_frame_j: f64,
    /// Powering the accelerator up from its load switch (settle, PCIe link,
    /// firmware), J.
    pub accelerator_wake_j: f64,
    /// One inference burst on the accelerator, J.
    pub burst_j: f64,
    /// One climate reading (BME280 forced measurement and the bus), J.
    pub climate_reading_j: f64,
    /// The cellular modem while powered for an upload window, W.
    pub cellular_w: f64,
    /// One satellite (Iridium SBD) session, J.
    pub satellite_session_j: f64,
    /// One boot and its halt (the board at full draw while starting and
    /// stopping), J.
    pub boot_j: f64,
    /// One install (a model staged and self-tested, or settings stored), J.
    pub install_j: f64,
}

impl Default for EnergyCosts {
    fn default() -> Self {
        EnergyCosts {
            awake_idle_w: 3.0,
            halted_w: 0.05,
            audio_w: 0.15,
            camera_frame_j: 0.4,
            accelerator_wake_j: 3.0,
            burst_j: 6.0,
            climate_reading_j: 0.001,
            cellular_w: 1.0,
            satellite_session_j: 60.0,
            boot_j: 120.0,
            install_j: 8.0,
        }
    }
}

impl EnergyCosts {
    /// Range checks, as `(key path relative to this table, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        for (v, k, max) in [
            (self.awake_idle_w, "awake_idle_w", 100.0),
            (self.halted_w, "halted_w", 100.0),
            (self.audio_w, "audio_w", 100.0),
            (self.camera_frame_j, "camera_frame_j", 10_000.0),
            (self.accelerator_wake_j, "accelerator_wake_j", 10_000.0),
            (self.burst_j, "burst_j", 10_000.0),
            (self.climate_reading_j, "climate_reading_j", 10_000.0),
            (self.cellular_w, "cellular_w", 100.0),
            (self.satellite_session_j, "satellite_session_j", 10_000.0),
            (self.boot_j, "boot_j", 10_000.0),
            (self.install_j, "install_j", 10_000.0),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                e.push((k.to_string(), format!("must be between 0 and {max}")));
            }
        }
        e
    }
}

/// Who spent the energy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Consumer {
    /// The board awake.
    Idle,
    /// The board halted.
    Halted,
    /// Audio capture.
    Audio,
    /// Camera frames.
    Camera,
    /// Accelerator wakes and bursts.
    Accelerator,
    /// Climate readings.
    Climate,
    /// Cellular upload windows.
    Cellular,
    /// Satellite sessions.
    Satellite,
    /// Boots (and their halts).
    Boot,
    /// Installs.
    Install,
}

impl Consumer {
    /// Every consumer, in report order.
    pub const ALL: [Consumer; 10] = [
        Consumer::Idle,
        Consumer::Halted,
        Consumer::Audio,
        Consumer::Camera,
        Consumer::Accelerator,
        Consumer::Climate,
        Consumer::Cellular,
        Consumer::Satellite,
        Consumer::Boot,
        Consumer::Install,
    ];

    /// Stable lower-case name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Consumer::Idle => "idle",
            Consumer::Halted => "halted",
            Consumer::Audio => "audio",
            Consumer::Camera => "camera",
            Consumer::Accelerator => "accelerator",
            Consumer::Climate => "climate",
            Consumer::Cellular => "cellular",
            Consumer::Satellite => "satellite",
            Consumer::Boot => "boot",
            Consumer::Install => "install",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Costed actions since some point: counts, and seconds of the timed ones.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Actions {
    /// Seconds awake.
    pub awake_s: f64,
    /// Seconds halted.
    pub halted_s: f64,
    /// Seconds of audio captured.
    pub audio_s: f64,
    /// Camera frames.
    pub camera_frames: u64,
    /// Accelerator wakes.
    pub accelerator_wakes: u64,
    /// Inference bursts.
    pub bursts: u64,
    /// Climate readings.
    pub climate_readings: u64,
    /// Seconds the cellular modem was powered.
    pub cellular_s: f64,
    /// Satellite sessions.
    pub satellite_sessions: u64,
    /// Boots.
    pub boots: u64,
    /// Installs.
    pub installs: u64,
}

impl Actions {
    /// The actions in an [`EnergyUse`] over `awake_s` seconds awake.
    pub fn from_use(used: &EnergyUse, awake_s: f64) -> Self {
        Actions {
            awake_s,
            audio_s: used.audio_seconds,
            camera_frames: used.camera_frames,
            bursts: used.bursts,
            climate_readings: used.climate_readings,
            satellite_sessions: used.uplink_sessions,
            installs: used.installs,
            ..Actions::default()
        }
    }

    /// Energy per consumer at `costs`, J, indexed as [`Consumer::ALL`].
    fn joules(&self, c: &EnergyCosts) -> [f64; 10] {
        [
            self.awake_s * c.awake_idle_w,
            self.halted_s * c.halted_w,
            self.audio_s * c.audio_w,
            self.camera_frames as f64 * c.camera_frame_j,
            self.accelerator_wakes as f64 * c.accelerator_wake_j + self.bursts as f64 * c.burst_j,
            self.climate_readings as f64 * c.climate_reading_j,
            self.cellular_s * c.cellular_w,
            self.satellite_sessions as f64 * c.satellite_session_j,
            self.boots as f64 * c.boot_j,
            self.installs as f64 * c.install_j,
        ]
    }

    /// Total energy at `costs`, J.
    pub fn total_j(&self, costs: &EnergyCosts) -> f64 {
        self.joules(costs).iter().sum()
    }
}

/// The running ledger: actions counted as they happen, energy per consumer.
#[derive(Clone, Debug, PartialEq)]
pub struct EnergyLedger {
    costs: EnergyCosts,
    joules: [f64; 10],
    actions: Actions,
}

impl EnergyLedger {
    /// An empty ledger at `costs`.
    pub fn new(costs: EnergyCosts) -> Self {
        EnergyLedger {
            costs,
            joules: [0.0; 10],
            actions: Actions::default(),
        }
    }

    /// The costs it counts at.
    pub fn costs(&self) -> &EnergyCosts {
        &self.costs
    }

    /// Counts `a`; returns its energy, J.
    pub fn record(&mut self, a: &Actions) -> f64 {
        let j = a.joules(&self.costs);
        for (sum, add) in self.joules.iter_mut().zip(j) {
            *sum += add;
        }
        let t = &mut self.actions;
        t.awake_s += a.awake_s;
        t.halted_s += a.halted_s;
        t.audio_s += a.audio_s;
        t.camera_frames += a.camera_frames;
        t.accelerator_wakes += a.accelerator_wakes;
        t.bursts += a.bursts;
        t.climate_readings += a.climate_readings;
        t.cellular_s += a.cellular_s;
        t.satellite_sessions += a.satellite_sessions;
        t.boots += a.boots;
        t.installs += a.installs;
        j.iter().sum()
    }

    /// Energy of one consumer so far, J.
    pub fn joules(&self, c: Consumer) -> f64 {
        self.joules[c.index()]
    }

    /// Energy per consumer so far, J, in [`Consumer::ALL`] order.
    pub fn per_consumer(&self) -> Vec<(Consumer, f64)> {
        Consumer::ALL.iter().map(|&c| (c, self.joules(c))).collect()
    }

    /// Total energy so far, J.
    pub fn total_j(&self) -> f64 {
        self.joules.iter().sum()
    }

    /// Every action counted so far.
    pub fn actions(&self) -> &Actions {
        &self.actions
    }
}

/// The ledger against a measured draw over the same interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LedgerCheck {
    /// The ledger's estimate, J.
    pub estimated_j: f64,
    /// The measured draw (the reading's average load times the interval), J.
    pub measured_j: f64,
}

impl LedgerCheck {
    /// Estimated over measured; `None` when nothing was measured.
    pub fn ratio(&self) -> Option<f64> {
        (self.measured_j.is_finite() && self.measured_j > 0.0 && self.estimated_j.is_finite())
            .then(|| self.estimated_j / self.measured_j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_is_charged_to_its_consumer() {
        let mut l = EnergyLedger::new(EnergyCosts::default());
        let j = l.record(&Actions {
            awake_s: 100.0,
            audio_s: 100.0,
            camera_frames: 10,
            accelerator_wakes: 1,
            bursts: 2,
            climate_readings: 1000,
            ..Actions::default()
        });
        assert!((l.joules(Consumer::Idle) - 300.0).abs() < 1e-9);
        assert!((l.joules(Consumer::Audio) - 15.0).abs() < 1e-9);
        assert!((l.joules(Consumer::Camera) - 4.0).abs() < 1e-9);
        assert!((l.joules(Consumer::Accelerator) - 15.0).abs() < 1e-9);
        assert!((l.joules(Consumer::Climate) - 1.0).abs() < 1e-9);
        assert!((j - 335.0).abs() < 1e-9);
        l.record(&Actions {
            halted_s: 3600.0,
            cellular_s: 60.0,
            satellite_sessions: 1,
            boots: 1,
            installs: 1,
            ..Actions::default()
        });
        assert!((l.joules(Consumer::Halted) - 180.0).abs() < 1e-9);
        assert!((l.joules(Consumer::Cellular) - 60.0).abs() < 1e-9);
        assert!((l.joules(Consumer::Satellite) - 60.0).abs() < 1e-9);
        assert!((l.joules(Consumer::Boot) - 120.0).abs() < 1e-9);
        assert!((l.total_j() - (335.0 + 180.0 + 60.0 + 60.0 + 120.0 + 8.0)).abs() < 1e-9);
        assert_eq!(l.actions().boots, 1);
        assert_eq!(l.per_consumer().len(), Consumer::ALL.len());
    }

    #[test]
    fn an_energy_use_maps_onto_actions() {
        let a = Actions::from_use(
            &EnergyUse {
                camera_frames: 3,
                climate_readings: 2,
                audio_seconds: 10.0,
                bursts: 1,
                uplink_sessions: 1,
                installs: 0,
            },
            10.0,
        );
        assert_eq!((a.camera_frames, a.satellite_sessions), (3, 1));
        let c = EnergyCosts::default();
        let want = 30.0 + 1.5 + 1.2 + 6.0 + 0.002 + 60.0;
        assert!((a.total_j(&c) - want).abs() < 1e-9);
    }

    #[test]
    fn the_check_ratio_needs_a_measured_draw() {
        let c = LedgerCheck {
            estimated_j: 90.0,
            measured_j: 100.0,
        };
        assert_eq!(c.ratio(), Some(0.9));
        let none = LedgerCheck {
            measured_j: 0.0,
            ..c
        };
        assert_eq!(none.ratio(), None);
    }

    #[test]
    fn validation_names_keys() {
        let c = EnergyCosts {
            halted_w: -1.0,
            boot_j: f64::NAN,
            ..EnergyCosts::default()
        };
        let keys: Vec<_> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["halted_w", "boot_j"]);
    }
}
