//! Corrections of untrusted spans, kept across restarts.
//!
//! When trusted time ends an untrusted span, the times handed out in the
//! span are known to be off by the correction. Events stored in the span
//! keep their untrusted time in the store; the uplink re-stamps the copy it
//! sends. A restart between the correction and the sending must not lose
//! the correction, so each corrected span is written to
//! `<data_dir>/time/corrections`, one line per span (`from_ms to_ms
//! correction_ms source uncertainty_ms|-`, decimal), replaced atomically
//! and fsynced like the floor. The last [`MAX_KEPT`] spans are kept.

use std::path::{Path, PathBuf};

use messages::{TimeQuality, TimeSource};
use uplink::store::durable::{create_dir_durably, replace_atomically};

use super::floor::FloorError;

/// Corrected spans kept (older ones are forgotten: their events have long
/// been sent, or are beyond re-stamping).
pub const MAX_KEPT: usize = 64;

/// A span of times handed out while untrusted, and its correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Correction {
    /// First time handed out in the span, ms.
    pub from_ms: i64,
    /// Last time handed out in the span, ms.
    pub to_ms: i64,
    /// Add this to a time in `[from_ms, to_ms]`, ms.
    pub correction_ms: i64,
    /// The quality of a corrected time (its source and uncertainty,
    /// `restamped` set).
    pub quality: TimeQuality,
}

impl Correction {
    /// True when `t_ms` was handed out in this span.
    pub fn covers(&self, t_ms: i64) -> bool {
        (self.from_ms..=self.to_ms).contains(&t_ms)
    }

    fn line(&self) -> String {
        format!(
            "{} {} {} {} {}\n",
            self.from_ms,
            self.to_ms,
            self.correction_ms,
            self.quality.source.as_str(),
            self.quality
                .uncertainty_ms
                .map_or_else(|| "-".to_string(), |u| u.to_string())
        )
    }

    fn parse(line: &str) -> Option<Correction> {
        let mut f = line.split_ascii_whitespace();
        let from_ms = f.next()?.parse().ok()?;
        let to_ms = f.next()?.parse().ok()?;
        let correction_ms = f.next()?.parse().ok()?;
        let source = TimeSource::parse(f.next()?)?;
        let uncertainty_ms = match f.next()? {
            "-" => None,
            u => Some(u.parse().ok()?),
        };
        if f.next().is_some() || from_ms > to_ms {
            return None;
        }
        Some(Correction {
            from_ms,
            to_ms,
            correction_ms,
            quality: TimeQuality {
                source,
                uncertainty_ms,
                restamped: true,
            },
        })
    }
}

/// The persisted corrections (in memory only without a directory).
#[derive(Debug, Default)]
pub struct Corrections {
    path: Option<PathBuf>,
    spans: Vec<Correction>,
}

/// The file, under the data directory's `time` directory.
pub fn path(time_dir: &Path) -> PathBuf {
    time_dir.join("corrections")
}

impl Corrections {
    /// Reads the corrections kept in `time_dir` (`None`: kept in memory
    /// only). A missing file is none yet; unreadable lines are skipped and
    /// counted in the second value (the caller logs them; the file is
    /// rewritten at the next correction).
    pub fn open(time_dir: Option<&Path>) -> Result<(Corrections, usize), FloorError> {
        let Some(dir) = time_dir else {
            return Ok((Corrections::default(), 0));
        };
        let path = path(dir);
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(FloorError::Io { path, source }),
        };
        let mut spans = Vec::new();
        let mut bad = 0;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match Correction::parse(line) {
                Some(c) => spans.push(c),
                None => bad += 1,
            }
        }
        let keep_from = spans.len().saturating_sub(MAX_KEPT);
        spans.drain(..keep_from);
        Ok((
            Corrections {
                path: Some(path),
                spans,
            },
            bad,
        ))
    }

    /// The corrections, oldest first.
    pub fn spans(&self) -> &[Correction] {
        &self.spans
    }

    /// The correction of the latest span that covers `t_ms`.
    pub fn find(&self, t_ms: i64) -> Option<&Correction> {
        self.spans.iter().rev().find(|c| c.covers(t_ms))
    }

    /// Keeps `c` (persisted before it returns, when there is a file).
    pub fn record(&mut self, c: Correction) -> Result<(), FloorError> {
        self.spans.push(c);
        let keep_from = self.spans.len().saturating_sub(MAX_KEPT);
        self.spans.drain(..keep_from);
        self.persist()
    }

    /// Forgets the spans that reach `t_ms` or later: times from `t_ms` on
    /// will be handed out again (the floor was lowered), and a span could
    /// not tell them from its own. Returns how many were forgotten.
    pub fn forget_from(&mut self, t_ms: i64) -> Result<usize, FloorError> {
        let before = self.spans.len();
        self.spans.retain(|c| c.to_ms < t_ms);
        let gone = before - self.spans.len();
        if gone > 0 {
            self.persist()?;
        }
        Ok(gone)
    }

    fn persist(&self) -> Result<(), FloorError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            create_dir_durably(dir).map_err(|source| FloorError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let text: String = self.spans.iter().map(Correction::line).collect();
        replace_atomically(path, text.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(from_ms: i64, to_ms: i64, correction_ms: i64) -> Correction {
        Correction {
            from_ms,
            to_ms,
            correction_ms,
            quality: TimeQuality {
                source: TimeSource::Iridium,
                uncertainty_ms: Some(1_000),
                restamped: true,
            },
        }
    }

    #[test]
    fn corrections_survive_a_restart_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, bad) = Corrections::open(Some(dir.path())).unwrap();
        assert_eq!(bad, 0);
        assert!(log.spans().is_empty());
        log.record(c(1_000, 2_000, 500)).unwrap();
        let mut none = c(3_000, 4_000, -7);
        none.quality.uncertainty_ms = None;
        none.quality.source = TimeSource::Synced;
        log.record(none).unwrap();
        let (log, _) = Corrections::open(Some(dir.path())).unwrap();
        assert_eq!(log.spans(), &[c(1_000, 2_000, 500), none]);
        assert_eq!(log.find(1_500).map(|c| c.correction_ms), Some(500));
        assert_eq!(log.find(3_000).map(|c| c.correction_ms), Some(-7));
        assert_eq!(log.find(2_500), None);

        let (mut log, _) = Corrections::open(Some(dir.path())).unwrap();
        for i in 0..(MAX_KEPT as i64 + 10) {
            log.record(c(i * 10, i * 10 + 5, i)).unwrap();
        }
        let (log, _) = Corrections::open(Some(dir.path())).unwrap();
        assert_eq!(log.spans().len(), MAX_KEPT);
        assert_eq!(log.spans()[0].correction_ms, 10, "the oldest are dropped");
    }

    #[test]
    fn unreadable_lines_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            path(dir.path()),
            b"1000 2000 500 iridium 1000\ngarbage\n5 4 1 gnss -\n3000 4000 1 moon -\n\xff\xfe\n6000 7000 9 gnss - extra\n8000 9000 3 gnss -\n",
        )
        .unwrap();
        let (log, bad) = Corrections::open(Some(dir.path())).unwrap();
        assert_eq!(bad, 5);
        assert_eq!(log.spans().len(), 2);
        assert_eq!(log.spans()[1].quality.source, TimeSource::Gnss);
    }

    #[test]
    fn spans_reaching_a_lowered_floor_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = Corrections::open(Some(dir.path())).unwrap();
        log.record(c(1_000, 2_000, 5)).unwrap();
        log.record(c(3_000, 4_000, 5)).unwrap();
        assert_eq!(log.forget_from(3_500).unwrap(), 1);
        let (log, _) = Corrections::open(Some(dir.path())).unwrap();
        assert_eq!(log.spans(), &[c(1_000, 2_000, 5)]);
    }

    #[test]
    fn without_a_directory_nothing_is_written() {
        let (mut log, _) = Corrections::open(None).unwrap();
        log.record(c(1, 2, 3)).unwrap();
        assert_eq!(log.find(1).map(|c| c.correction_ms), Some(3));
    }
}
