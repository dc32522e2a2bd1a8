//! The board's real-time clock, read through sysfs.
//!
//! A Pi 5 has an RTC kept running by a rechargeable ML-2020 cell on J5; the
//! kernel sets the system clock from it at boot when it holds a valid time.
//! The node reads it on its own (`<sys>/class/rtc/rtc0/since_epoch`, whole
//! seconds) and its cell's voltage (`battery_voltage`, µV, where the driver
//! offers it), so that:
//!
//! - a system clock judged untrusted while the RTC reads a time at or
//!   above the floor takes the RTC's time (the clock was set wrong after
//!   boot, or the kernel did not take the RTC's time);
//! - the run summary reports the RTC's time and cell voltage: an RTC at
//!   1970 with a cell under [`LOW_CELL_MV`] says why the clock was wrong at
//!   boot, and that the cell needs charging or replacing;
//! - every status record reports whether there is an RTC, its time against
//!   the node's and its cell's voltage ([`Rtc::probe`]: an RTC whose time
//!   does not read still says so, with its cell).
//!
//! The sysfs root is injectable, so the tests read a fake tree.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// An ML-2020 cell below this no longer keeps the RTC running through a
/// power cut (3.0 V nominal; the Pi charges it to about 3.0 V when
/// charging is enabled).
pub const LOW_CELL_MV: u32 = 2_500;

/// What the RTC read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RtcReading {
    /// The RTC's time, ms since the epoch (whole seconds).
    pub unix_ms: i64,
    /// Its backup cell's voltage, mV, where the driver reports it.
    pub cell_mv: Option<u32>,
}

/// What an RTC's directory holds, each value where it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RtcProbe {
    /// The RTC's time, ms since the epoch (whole seconds); none when it
    /// does not read (an RTC that lost its time refuses the read).
    pub unix_ms: Option<i64>,
    /// Its backup cell's voltage, mV, where the driver reports it.
    pub cell_mv: Option<u32>,
}

impl RtcProbe {
    /// The reading, when the time read.
    pub fn reading(self) -> Option<RtcReading> {
        Some(RtcReading {
            unix_ms: self.unix_ms?,
            cell_mv: self.cell_mv,
        })
    }
}

impl From<RtcReading> for RtcProbe {
    fn from(r: RtcReading) -> RtcProbe {
        RtcProbe {
            unix_ms: Some(r.unix_ms),
            cell_mv: r.cell_mv,
        }
    }
}

/// The RTC under a sysfs root.
#[derive(Debug, Clone)]
pub struct Rtc {
    dir: PathBuf,
}

impl Rtc {
    /// The first RTC (`rtc0`) under `sys_root` (`/sys` on a node).
    pub fn new(sys_root: &Path) -> Rtc {
        Rtc {
            dir: sys_root.join("class").join("rtc").join("rtc0"),
        }
    }

    /// Reads the RTC; `None` when there is none or its time does not read
    /// (an RTC that lost its time refuses the read with EINVAL).
    pub fn read(&self) -> Option<RtcReading> {
        self.probe()?.reading()
    }

    /// Looks for the RTC and reads what it offers: `None` when there is no
    /// RTC (no `rtc0` directory), otherwise its time and its cell's voltage,
    /// each `None` where it does not read.
    pub fn probe(&self) -> Option<RtcProbe> {
        if !self.dir.is_dir() {
            return None;
        }
        let unix_ms = read_number::<i64>(&self.dir.join("since_epoch"))
            .and_then(|secs| secs.checked_mul(1000));
        let cell_mv = read_number::<u64>(&self.dir.join("battery_voltage"))
            .and_then(|uv| u32::try_from(uv / 1000).ok());
        Some(RtcProbe { unix_ms, cell_mv })
    }
}

fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(since_epoch: &str, battery: Option<&str>) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("class/rtc/rtc0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("since_epoch"), since_epoch).unwrap();
        if let Some(b) = battery {
            std::fs::write(dir.join("battery_voltage"), b).unwrap();
        }
        root
    }

    #[test]
    fn reads_the_time_and_the_cell_voltage() {
        let root = tree("1796000000\n", Some("3012000\n"));
        let r = Rtc::new(root.path()).read().unwrap();
        assert_eq!(r.unix_ms, 1_796_000_000_000);
        assert_eq!(r.cell_mv, Some(3_012));
        let root = tree("86\n", None);
        let r = Rtc::new(root.path()).read().unwrap();
        assert_eq!((r.unix_ms, r.cell_mv), (86_000, None));
    }

    #[test]
    fn no_rtc_or_an_unreadable_one_reads_as_none() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(Rtc::new(root.path()).read(), None);
        let root = tree("garbage", Some("3000000"));
        assert_eq!(Rtc::new(root.path()).read(), None);
        let root = tree("99999999999999999", None);
        assert_eq!(Rtc::new(root.path()).read(), None, "overflows ms");
        let root = tree("1796000000", Some("-5"));
        assert_eq!(Rtc::new(root.path()).read().unwrap().cell_mv, None);
    }

    #[test]
    fn a_probe_tells_no_rtc_from_one_whose_time_does_not_read() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(Rtc::new(root.path()).probe(), None, "no rtc0");
        // An RTC that lost its time: found, no time, its cell still read.
        let root = tree("garbage", Some("1180000\n"));
        let p = Rtc::new(root.path()).probe().unwrap();
        assert_eq!(
            p,
            RtcProbe {
                unix_ms: None,
                cell_mv: Some(1_180)
            }
        );
        assert_eq!(p.reading(), None);
        // No time file at all (the read refused), no cell file.
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("class/rtc/rtc0")).unwrap();
        assert_eq!(Rtc::new(root.path()).probe(), Some(RtcProbe::default()));
        // A readable one: the same as the reading.
        let root = tree("1796000000\n", Some("3012000\n"));
        let rtc = Rtc::new(root.path());
        assert_eq!(rtc.probe(), rtc.read().map(RtcProbe::from));
        assert_eq!(rtc.probe().unwrap().unix_ms, Some(1_796_000_000_000));
    }
}
