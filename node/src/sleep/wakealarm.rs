//! The RTC's wake alarm, `<root>/sys/class/rtc/rtc0/wakealarm`: seconds
//! since the epoch, written as text. The kernel refuses a new alarm while
//! one is set, so [`schedule`] first writes `0` (which clears it), then the
//! absolute time. Reading it gives the alarm's time, or an empty line once
//! it has fired or been cleared.

use std::path::{Path, PathBuf};

/// The wake alarm file under a sysfs root (`/` on a node).
pub fn path(root: &Path) -> PathBuf {
    root.join("sys/class/rtc/rtc0/wakealarm")
}

/// Why the alarm could not be set or read.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    /// Writing or reading the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds something other than seconds.
    #[error("{}: not a time in seconds: {text:?}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        text: String,
    },
}

/// Clears the alarm, then sets it to `epoch_s`.
pub fn schedule(root: &Path, epoch_s: i64) -> Result<(), AlarmError> {
    let p = path(root);
    let write = |text: String| {
        std::fs::write(&p, text).map_err(|source| AlarmError::Io {
            path: p.clone(),
            source,
        })
    };
    write("0\n".to_string())?;
    write(format!("{epoch_s}\n"))
}

/// Checks that the alarm can be written (the file opens for writing),
/// without changing it: the node checks before it stops to sleep.
pub fn check_writable(root: &Path) -> Result<(), AlarmError> {
    let p = path(root);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .map(drop)
        .map_err(|source| AlarmError::Io { path: p, source })
}

/// The alarm set now, seconds since the epoch; `None` when none is (an
/// empty file, or `0`).
pub fn read(root: &Path) -> Result<Option<i64>, AlarmError> {
    let p = path(root);
    let text = std::fs::read_to_string(&p).map_err(|source| AlarmError::Io {
        path: p.clone(),
        source,
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<i64>() {
        Ok(0) => Ok(None),
        Ok(s) => Ok(Some(s)),
        Err(_) => Err(AlarmError::Parse {
            path: p,
            text: t.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_writes_the_absolute_time_and_read_gives_it_back() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(path(t.path()).parent().unwrap()).unwrap();
        std::fs::write(path(t.path()), "").unwrap();
        assert_eq!(read(t.path()).unwrap(), None);
        schedule(t.path(), 1_780_300_800).unwrap();
        assert_eq!(
            std::fs::read_to_string(path(t.path())).unwrap(),
            "1780300800\n"
        );
        assert_eq!(read(t.path()).unwrap(), Some(1_780_300_800));
        std::fs::write(path(t.path()), "0\n").unwrap();
        assert_eq!(read(t.path()).unwrap(), None);
        std::fs::write(path(t.path()), "soon").unwrap();
        assert!(matches!(read(t.path()), Err(AlarmError::Parse { .. })));
    }

    #[test]
    fn the_check_opens_for_writing_and_changes_nothing() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(path(t.path()).parent().unwrap()).unwrap();
        std::fs::write(path(t.path()), "1780300800\n").unwrap();
        check_writable(t.path()).unwrap();
        assert_eq!(read(t.path()).unwrap(), Some(1_780_300_800));
    }

    #[test]
    fn a_missing_rtc_is_an_error_not_a_panic() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            check_writable(t.path()),
            Err(AlarmError::Io { .. })
        ));
        assert!(matches!(schedule(t.path(), 1), Err(AlarmError::Io { .. })));
        assert!(matches!(read(t.path()), Err(AlarmError::Io { .. })));
    }
}
