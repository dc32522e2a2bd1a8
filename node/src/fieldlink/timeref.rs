//! The technician's time reference: what `TimeSet` records.
//!
//! The node never sets the system clock from the link. It keeps the
//! technician's time as a reference, durably in
//! `<data_dir>/fieldlink/time.toml` (replaced atomically: after a power cut
//! the file holds the previous reference or the new one, never a mix), and
//! `TimeGet` carries it forward on the monotonic clock, its uncertainty
//! growing by [`DRIFT_PPM`] of the time elapsed.
//!
//! Invariant: a reference is only used while the time elapsed since it was
//! received can be measured: on the same boot by the monotonic clock since
//! boot (`/proc/uptime`), across a reboot by the system clock, and not at
//! all when that clock went backwards.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How fast the uncertainty of a reference grows: the node's oscillator
/// may be this far off (100 ppm = 8.6 s a day, a generous bound for a
/// crystal at outdoor temperatures).
pub const DRIFT_PPM: u64 = 100;

/// The file, under the data directory.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("fieldlink").join("time.toml")
}

/// One `TimeSet`, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeReference {
    /// The technician's time, ms since the Unix epoch, UTC.
    pub unix_ms: i64,
    /// Its uncertainty as received, ms.
    pub uncertainty_ms: u32,
    /// The monotonic clock (since boot, `/proc/uptime`) when it was
    /// received, ms; `None` where it cannot be read.
    pub received_at_monotonic_ms: Option<u64>,
    /// The boot it was received in (`/proc/sys/kernel/random/boot_id`):
    /// the monotonic reading only compares within one boot.
    pub boot_id: Option<String>,
    /// The system clock when it was received, ms since the epoch.
    pub system_ms_at_receipt: i64,
    /// The node's own clock (the one that stamps events) at receipt, ms.
    pub node_ms_at_receipt: i64,
}

/// The monotonic clock since boot, ms (`/proc/uptime`, suspend included).
pub fn monotonic_ms() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some((secs * 1000.0) as u64)
}

/// This boot's id.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The system clock, ms since the epoch.
pub fn system_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Where the clocks stand when a reference is read or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Now {
    /// [`monotonic_ms`].
    pub monotonic_ms: Option<u64>,
    /// [`boot_id`].
    pub boot_id: Option<String>,
    /// [`system_ms`].
    pub system_ms: i64,
}

impl Now {
    /// The clocks now.
    pub fn read() -> Now {
        Now {
            monotonic_ms: monotonic_ms(),
            boot_id: boot_id(),
            system_ms: system_ms(),
        }
    }
}

impl TimeReference {
    /// The reference for the technician's `unix_ms` received at `now`,
    /// when the node's own clock read `node_ms`.
    pub fn received(unix_ms: i64, uncertainty_ms: u32, node_ms: i64, now: &Now) -> Self {
        TimeReference {
            unix_ms,
            uncertainty_ms,
            received_at_monotonic_ms: now.monotonic_ms,
            boot_id: now.boot_id.clone(),
            system_ms_at_receipt: now.system_ms,
            node_ms_at_receipt: node_ms,
        }
    }

    /// Time elapsed since receipt, ms, or `None` when it cannot be told.
    pub fn elapsed_ms(&self, now: &Now) -> Option<u64> {
        let same_boot = self.boot_id.is_some() && self.boot_id == now.boot_id;
        match (same_boot, self.received_at_monotonic_ms, now.monotonic_ms) {
            (true, Some(then), Some(at)) => at.checked_sub(then),
            _ => u64::try_from(now.system_ms.checked_sub(self.system_ms_at_receipt)?).ok(),
        }
    }

    /// The technician's time carried forward to `now` and its uncertainty
    /// (grown by [`DRIFT_PPM`] of the elapsed time, rounded up), or `None`.
    pub fn carried(&self, now: &Now) -> Option<(i64, u32)> {
        let elapsed = self.elapsed_ms(now)?;
        let unix_ms = self
            .unix_ms
            .saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX));
        let growth = elapsed.saturating_mul(DRIFT_PPM).div_ceil(1_000_000);
        let uncertainty = u64::from(self.uncertainty_ms).saturating_add(growth);
        Some((unix_ms, u32::try_from(uncertainty).unwrap_or(u32::MAX)))
    }

    /// The earliest the time can be now by this reference (carried forward,
    /// less its uncertainty), ms, or `None` when it cannot be told.
    pub fn lower_bound_ms(&self, now: &Now) -> Option<i64> {
        let (t, u) = self.carried(now)?;
        Some(t.saturating_sub(i64::from(u)))
    }

    /// Writes it to `file` atomically and durably (its directory is made
    /// durably when missing).
    pub fn store(&self, file: &Path) -> Result<(), String> {
        let text = toml::to_string(self).map_err(|e| format!("time reference: {e}"))?;
        if let Some(dir) = file.parent() {
            uplink::store::durable::create_dir_durably(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        uplink::store::durable::replace_atomically(file, text.as_bytes()).map_err(|e| e.to_string())
    }

    /// Reads the stored reference: `Ok(None)` when there is none.
    pub fn load(file: &Path) -> Result<Option<TimeReference>, String> {
        match std::fs::read_to_string(file) {
            Ok(text) => toml::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{}: {e}", file.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", file.display())),
        }
    }
}

/// The earliest the time can be now by the technician's stored reference
/// under `data_dir`, unix s: a floor for the update verifier on a node whose
/// clock is wrong. `None` without a usable reference (an unreadable file is
/// logged).
pub fn floor_s(data_dir: &Path) -> Option<u64> {
    let r = match TimeReference::load(&path(data_dir)) {
        Ok(r) => r?,
        Err(e) => {
            tracing::warn!(error = %e, "time reference unreadable; not used");
            return None;
        }
    };
    let ms = r.lower_bound_ms(&Now::read())?;
    u64::try_from(ms / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now(mono: Option<u64>, boot: &str, sys: i64) -> Now {
        Now {
            monotonic_ms: mono,
            boot_id: Some(boot.into()),
            system_ms: sys,
        }
    }

    #[test]
    fn carried_forward_on_the_monotonic_clock_within_a_boot() {
        let r = TimeReference::received(1_000_000, 50, 7, &now(Some(10_000), "a", 500));
        // The system clock was stepped back: the monotonic clock counts.
        let (t, u) = r.carried(&now(Some(20_000), "a", 0)).unwrap();
        assert_eq!(t, 1_010_000);
        assert_eq!(u, 51, "10 s at 100 ppm is 1 ms");
        // Another boot: the system clock counts, and not when it went back.
        let (t, _) = r.carried(&now(Some(5), "b", 2_500)).unwrap();
        assert_eq!(t, 1_002_000);
        assert_eq!(r.carried(&now(Some(5), "b", 400)), None);
    }

    #[test]
    fn the_lower_bound_is_the_carried_time_less_its_uncertainty() {
        let r = TimeReference::received(1_000_000, 50, 7, &now(Some(10_000), "a", 500));
        assert_eq!(
            r.lower_bound_ms(&now(Some(20_000), "a", 0)),
            Some(1_009_949)
        );
        assert_eq!(r.lower_bound_ms(&now(Some(5), "b", 400)), None);
    }

    #[test]
    fn the_floor_comes_from_the_stored_reference() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(floor_s(dir.path()), None);
        let r = TimeReference::received(1_900_000_000_000, 1_000, 3, &Now::read());
        r.store(&path(dir.path())).unwrap();
        let f = floor_s(dir.path()).unwrap();
        assert!((1_899_999_999..1_900_000_100).contains(&f), "{f}");
        std::fs::write(path(dir.path()), "garbage = ").unwrap();
        assert_eq!(floor_s(dir.path()), None);
    }

    #[test]
    fn stored_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = path(dir.path());
        assert_eq!(TimeReference::load(&file).unwrap(), None);
        let r = TimeReference::received(1_700_000_000_000, 250, 3, &Now::read());
        r.store(&file).unwrap();
        assert_eq!(TimeReference::load(&file).unwrap(), Some(r));
        std::fs::write(&file, "unix_ms = \"soon\"").unwrap();
        assert!(TimeReference::load(&file).is_err());
    }
}
