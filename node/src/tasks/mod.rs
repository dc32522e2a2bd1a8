//! The event loop's long-lived tasks. Each owns one job, talks to the others
//! through bounded channels, reads time from the injected clock and stops on
//! the shutdown signal. See `docs/architecture.md` for the wiring.

pub mod bouts;
pub mod camera;
pub mod climate;
pub mod demand;
pub mod detect;
pub mod energy;
pub mod microphone;
pub mod power;
pub mod status;
pub mod store;
pub mod wake_line;

use std::sync::atomic::{AtomicU64, Ordering};

use fusion::{AudioChunk, ClimateSample, GrayFrame, Modality};

/// What sensor tasks send to the detection task.
#[derive(Debug)]
pub enum SensorMsg {
    /// Audio.
    Audio(AudioChunk),
    /// A camera frame.
    Frame(GrayFrame),
    /// A climate reading.
    Climate(ClimateSample),
    /// A sensor became (un)available: degraded, off by policy, or back.
    Available(Modality, bool),
    /// A sensor's stream ended.
    Closed(Modality),
}

/// Counters shared by the tasks: what was done and what was skipped, for the
/// power model, the run summary and the status record.
#[derive(Debug, Default)]
pub struct Counters {
    /// Camera frames captured.
    pub camera_frames: AtomicU64,
    /// Camera frames skipped because the power policy had the camera off.
    pub camera_skipped: AtomicU64,
    /// Climate readings taken.
    pub climate_readings: AtomicU64,
    /// The last air temperature read, 0.01 °C (meaningful once
    /// `climate_readings` > 0), for the status record.
    pub air_temp_c100: std::sync::atomic::AtomicI64,
    /// Milliseconds of audio captured.
    pub audio_ms: AtomicU64,
    /// Times the microphone's capture was stopped by the duty cycle.
    pub audio_pauses: AtomicU64,
    /// Milliseconds the microphone's capture was stopped by the duty cycle.
    pub audio_paused_ms: AtomicU64,
    /// Requests for the on-demand camera made by audio activity.
    pub camera_requests_audio: AtomicU64,
    /// Requests for the on-demand camera made by the wake line.
    pub camera_requests_wake_line: AtomicU64,
    /// Times the on-demand camera was switched on by a request.
    pub camera_demand_wakes: AtomicU64,
    /// Debounced rises of the wake line while the node ran (a PIR's
    /// detections).
    pub wake_line_triggers: AtomicU64,
    /// Inference bursts run.
    pub bursts: AtomicU64,
    /// Inference bursts skipped by the power policy.
    pub bursts_skipped: AtomicU64,
    /// Inference bursts that failed (events kept the triggers' class).
    pub bursts_failed: AtomicU64,
    /// Events not stored: class excluded.
    pub events_excluded: AtomicU64,
    /// Events not stored: background by the triggers' rules, and no model
    /// classified them.
    pub background_dropped: AtomicU64,
    /// Events the model classified below their class's threshold, or on
    /// the climate alone for what the rules call background (`unknown`).
    pub events_uncertain: AtomicU64,
    /// Of those, events not stored because the triggers' rules called them
    /// background and they joined no surer verdict (in the run summary).
    pub uncertain_background: AtomicU64,
    /// Events the detector cut at `merge.max_event_ms` (in the run summary
    /// and every status record's detection part).
    pub events_cut_at_max: AtomicU64,
    /// Heat rises with nothing heard or seen that the detector put down to
    /// the sun (the view had brightened; in the run summary).
    pub sun_heat_rises: AtomicU64,
    /// Events joined to the previous event of their class (`[fusion]
    /// join_gap_ms`; in the run summary and every status record's
    /// detection part).
    pub events_joined: AtomicU64,
    /// Sensor errors.
    pub sensor_errors: AtomicU64,
    /// Updates installed (models after their trial, settings).
    pub updates_installed: AtomicU64,
    /// Updates refused or rolled back.
    pub updates_refused: AtomicU64,
    /// The same, by result and reason code (`refused.rollback`,
    /// `rolled_back.self_test`, ...).
    pub updates_refused_by: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Offers deferred by the power policy or the temperature.
    pub updates_deferred: AtomicU64,
    /// Installs that used energy: a model staged and self-tested, or
    /// settings stored (for the power simulation's costs).
    pub installs: AtomicU64,
    /// Satellite sessions (`AT+SBDIX`) the modem ran, delivered or not.
    pub sbd_sessions: AtomicU64,
}

/// Duty-cycling while awake, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct DutyReport {
    /// Times the microphone's capture was stopped by the duty cycle.
    pub audio_pauses: u64,
    /// Time it was stopped, seconds.
    pub audio_paused_s: f64,
    /// Requests for the on-demand camera made by audio activity.
    pub camera_requests_audio: u64,
    /// Requests for the on-demand camera made by the wake line.
    pub camera_requests_wake_line: u64,
    /// Times the on-demand camera was switched on by a request.
    pub camera_demand_wakes: u64,
    /// Debounced rises of the wake line while the node ran.
    pub wake_line_triggers: u64,
}

impl Counters {
    /// The duty-cycling figures so far.
    pub fn duty(&self) -> DutyReport {
        DutyReport {
            audio_pauses: Self::get(&self.audio_pauses),
            audio_paused_s: Self::get(&self.audio_paused_ms) as f64 / 1000.0,
            camera_requests_audio: Self::get(&self.camera_requests_audio),
            camera_requests_wake_line: Self::get(&self.camera_requests_wake_line),
            camera_demand_wakes: Self::get(&self.camera_demand_wakes),
            wake_line_triggers: Self::get(&self.wake_line_triggers),
        }
    }

    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one refused or rolled-back update under its result and the
    /// code its reason starts with (`code: details`).
    pub fn count_refusal(&self, result: &str, reason: &str) {
        Self::add(&self.updates_refused, 1);
        let code = reason
            .split_once(':')
            .map(|(c, _)| c)
            .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .unwrap_or("other");
        let mut by = self
            .updates_refused_by
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *by.entry(format!("{result}.{code}")).or_default() += 1;
    }

    /// [`Counters::updates_refused_by`] as it stands.
    pub fn refusals_by_reason(&self) -> std::collections::BTreeMap<String, u64> {
        self.updates_refused_by
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set(c: &AtomicU64, n: u64) {
        c.store(n, Ordering::Relaxed);
    }

    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// The last air temperature, °C, once one was read.
    pub fn air_temp_c(&self) -> Option<f64> {
        (Self::get(&self.climate_readings) > 0)
            .then(|| self.air_temp_c100.load(Ordering::Relaxed) as f64 / 100.0)
    }
}
