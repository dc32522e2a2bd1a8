//! The sleep record, `<data_dir>/sleep.json`: written before the node
//! halts (why, when, the planned wake, the battery), completed at the next
//! start with how and when the node woke. It is replaced atomically
//! (write, fsync, rename, fsync of the directory), so a power cut leaves
//! either the old record or the new one.

use std::path::{Path, PathBuf};

use messages::{LastSleep, SleepReasonCode, WakeCause};
use power::{SleepReason, WakeBound};
use serde::{Deserialize, Serialize};

/// The record's file in a data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("sleep.json")
}

/// One sleep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SleepRecord {
    /// Why the node slept.
    pub reason: SleepReason,
    /// When it halted, ms since the epoch (the node's clock).
    pub slept_at_ms: i64,
    /// When the RTC was set to wake it, ms since the epoch.
    pub planned_wake_ms: i64,
    /// Which bound set the wake.
    pub bound: WakeBound,
    /// State of charge at the halt, 0..1.
    pub soc: f64,
    /// Battery voltage at the halt, mV, where measured.
    pub battery_mv: Option<u32>,
    /// Set at the next start: when and how the node woke.
    pub woke: Option<Woke>,
}

/// How a sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Woke {
    /// The node's clock at the start, ms since the epoch.
    pub at_ms: i64,
    /// How it started.
    pub cause: WakeCause,
}

impl SleepRecord {
    /// The sleep as a status record reports it, once the node has woken.
    pub fn last_sleep(&self) -> Option<LastSleep> {
        let woke = self.woke?;
        let secs = |ms: i64| u32::try_from(ms.max(0) / 1000).unwrap_or(u32::MAX);
        Some(LastSleep {
            reason: match self.reason {
                SleepReason::LowBattery => SleepReasonCode::LowBattery,
                SleepReason::EnergySaving => SleepReasonCode::EnergySaving,
            },
            slept_s: secs(woke.at_ms - self.slept_at_ms),
            planned_s: secs(self.planned_wake_ms - self.slept_at_ms),
            wake: woke.cause,
        })
    }
}

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading failed.
    #[error("{}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a sleep record.
    #[error("{}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Writing failed.
    #[error("{}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: uplink::StoreError,
    },
}

/// The record in `data_dir`; `None` when there is none.
pub fn read(data_dir: &Path) -> Result<Option<SleepRecord>, RecordError> {
    let p = path(data_dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(RecordError::Read { path: p, source }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| RecordError::Malformed {
            path: p,
            reason: e.to_string(),
        })
}

/// Replaces the record in `data_dir`, durably.
pub fn write(data_dir: &Path, record: &SleepRecord) -> Result<(), RecordError> {
    let p = path(data_dir);
    let bytes = serde_json::to_vec(record).map_err(|e| RecordError::Malformed {
        path: p.clone(),
        reason: e.to_string(),
    })?;
    uplink::store::durable::replace_atomically(&p, &bytes)
        .map_err(|source| RecordError::Write { path: p, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SleepRecord {
        SleepRecord {
            reason: SleepReason::LowBattery,
            slept_at_ms: 1_780_272_000_500,
            planned_wake_ms: 1_780_293_601_000,
            bound: WakeBound::MaxSleep,
            soc: 0.08,
            battery_mv: Some(12_100),
            woke: None,
        }
    }

    #[test]
    fn a_record_round_trips_and_reports_its_sleep_once_woken() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(read(t.path()).unwrap(), None);
        let mut r = record();
        write(t.path(), &r).unwrap();
        assert_eq!(read(t.path()).unwrap(), Some(r.clone()));
        assert_eq!(r.last_sleep(), None);
        r.woke = Some(Woke {
            at_ms: 1_780_293_605_400,
            cause: WakeCause::Rtc,
        });
        write(t.path(), &r).unwrap();
        let back = read(t.path()).unwrap().unwrap();
        assert_eq!(
            back.last_sleep(),
            Some(LastSleep {
                reason: SleepReasonCode::LowBattery,
                slept_s: 21_604,
                planned_s: 21_600,
                wake: WakeCause::Rtc,
            })
        );
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(path(t.path()), b"{\"reason\":").unwrap();
        assert!(matches!(read(t.path()), Err(RecordError::Malformed { .. })));
    }
}
