//! Sensor health, one model for every sensor: ok, degraded (with a reason),
//! or absent; errors counted per kind; outages counted. Drivers update their
//! [`HealthHandle`]; the event loop reads it to tell the detector which
//! modalities work; the node's status reports the [`HealthBoard`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

/// The state of one sensor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// Delivering data.
    Ok,
    /// Present but not delivering usable data; being retried.
    Degraded {
        /// Why, for the technician.
        reason: String,
    },
    /// Not configured, not found, or given up on.
    Absent {
        /// Why.
        reason: String,
    },
}

impl Health {
    /// `ok`, `degraded` or `absent`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded { .. } => "degraded",
            Health::Absent { .. } => "absent",
        }
    }
}

/// What the status reports for one sensor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SensorStatus {
    /// Current state.
    #[serde(flatten)]
    pub health: Health,
    /// Errors seen, by kind (`bus`, `nack`, `stall`, `silence`, `corrupt_frame`, ...).
    pub errors: BTreeMap<&'static str, u64>,
    /// Times the sensor went from ok to degraded.
    pub outages: u64,
}

/// A sensor's health, shared between its driver and the event loop.
#[derive(Clone, Debug)]
pub struct HealthHandle {
    name: &'static str,
    inner: Arc<Mutex<SensorStatus>>,
}

impl HealthHandle {
    /// A handle for a sensor called `name`, starting ok. Not on a board:
    /// for tests and tools; the node uses [`HealthBoard::sensor`].
    pub fn detached(name: &'static str) -> HealthHandle {
        HealthHandle {
            name,
            inner: Arc::new(Mutex::new(SensorStatus {
                health: Health::Ok,
                errors: BTreeMap::new(),
                outages: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SensorStatus> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sensor's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Marks the sensor ok (logged when it recovers).
    pub fn set_ok(&self) {
        let mut s = self.lock();
        if s.health != Health::Ok {
            tracing::info!(
                sensor = self.name,
                was = s.health.as_str(),
                "sensor recovered"
            );
            s.health = Health::Ok;
        }
    }

    /// Marks the sensor degraded (logged, and counted as an outage, when it
    /// was ok).
    pub fn set_degraded(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut s = self.lock();
        match &s.health {
            Health::Degraded { reason: r } if *r == reason => {}
            Health::Ok => {
                tracing::warn!(sensor = self.name, reason = %reason, "sensor degraded");
                s.outages += 1;
                s.health = Health::Degraded { reason };
            }
            _ => {
                tracing::warn!(sensor = self.name, reason = %reason, "sensor still degraded");
                s.health = Health::Degraded { reason };
            }
        }
    }

    /// Marks the sensor absent.
    pub fn set_absent(&self, reason: impl Into<String>) {
        let reason = reason.into();
        let mut s = self.lock();
        if !matches!(&s.health, Health::Absent { reason: r } if *r == reason) {
            tracing::warn!(sensor = self.name, reason = %reason, "sensor absent");
            s.health = Health::Absent { reason };
        }
    }

    /// Counts one error of `kind`.
    pub fn count(&self, kind: &'static str) {
        *self.lock().errors.entry(kind).or_insert(0) += 1;
    }

    /// Errors of `kind` so far.
    pub fn errors(&self, kind: &str) -> u64 {
        self.lock().errors.get(kind).copied().unwrap_or(0)
    }

    /// Whether the sensor is delivering.
    pub fn is_ok(&self) -> bool {
        self.lock().health == Health::Ok
    }

    /// The current health.
    pub fn health(&self) -> Health {
        self.lock().health.clone()
    }

    /// A copy of the whole status.
    pub fn snapshot(&self) -> SensorStatus {
        self.lock().clone()
    }
}

/// Every sensor's health, for the node's status.
#[derive(Clone, Debug, Default)]
pub struct HealthBoard {
    sensors: Arc<Mutex<Vec<HealthHandle>>>,
}

impl HealthBoard {
    /// The handle of sensor `name`, created ok on first use.
    pub fn sensor(&self, name: &'static str) -> HealthHandle {
        let mut v = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = v.iter().find(|h| h.name == name) {
            return h.clone();
        }
        let h = HealthHandle::detached(name);
        v.push(h.clone());
        h
    }

    /// Every sensor's status, by name.
    pub fn snapshot(&self) -> BTreeMap<String, SensorStatus> {
        let v = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        v.iter()
            .map(|h| (h.name.to_string(), h.snapshot()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_counted_on_the_way_down_only() {
        let board = HealthBoard::default();
        let mic = board.sensor("audio");
        mic.set_degraded("stalled");
        mic.set_degraded("stalled");
        mic.set_degraded("reopen failed");
        mic.count("stall");
        mic.count("stall");
        assert!(!board.sensor("audio").is_ok());
        mic.set_ok();
        mic.set_degraded("silence");
        let s = &board.snapshot()["audio"];
        assert_eq!(s.outages, 2);
        assert_eq!(s.errors["stall"], 2);
        assert_eq!(
            s.health,
            Health::Degraded {
                reason: "silence".into()
            }
        );
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["state"], "degraded");
        assert_eq!(json["reason"], "silence");
    }
}
