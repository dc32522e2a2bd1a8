//! [`Quarantine`]: the outbox items whose satellite messages the gateway
//! refused for good (MO status 12 or 14: the message's size or segments),
//! and how many times.
//!
//! An item refused once goes again alone, in a message of its own (the
//! smallest the packing makes, and one that no other item's fault can sink);
//! once messages carrying it were refused `max_refusals` times, it is
//! *quarantined*: it stays in the outbox (nothing leaves the outbox before a
//! link confirms delivery) and may still go by MQTT, but it is no longer
//! offered to the satellite link. The counts are kept in a small text file
//! beside the store (`<data_dir>/sbd-refusals`), replaced atomically, so
//! they survive a restart; an item delivered by another link, expired or
//! evicted is forgotten.
//!
//! The scheduler reads it through [`crate::scheduler::SbdRefusals`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Why the refusal counts could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    /// The file exists but could not be read.
    #[error("satellite refusals {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The counts could not be written (they are kept in memory).
    #[error("satellite refusals: {0}")]
    Write(#[from] StoreError),
}

/// The refusal count of every item a gateway refused, kept in a file.
#[derive(Debug)]
pub struct Quarantine {
    path: PathBuf,
    max_refusals: u32,
    counts: BTreeMap<u64, u32>,
}

/// What [`Quarantine::open`] read.
#[derive(Debug)]
pub struct Opened {
    /// The counts.
    pub quarantine: Quarantine,
    /// Lines of the file that did not parse (skipped), with their number.
    pub bad_lines: Vec<(usize, String)>,
    /// The file could not be read at all: the counts start empty.
    pub unreadable: Option<QuarantineError>,
}

impl Quarantine {
    /// Reads the counts of `path` (none when the file does not exist). An
    /// item is quarantined once messages carrying it were refused
    /// `max_refusals` times (at least 1).
    pub fn open(path: &Path, max_refusals: u32) -> Opened {
        let mut q = Quarantine {
            path: path.to_path_buf(),
            max_refusals: max_refusals.max(1),
            counts: BTreeMap::new(),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Opened {
                    quarantine: q,
                    bad_lines: Vec::new(),
                    unreadable: Some(QuarantineError::Read {
                        path: path.to_path_buf(),
                        source,
                    }),
                };
            }
        };
        let mut bad_lines = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_ascii_whitespace();
            let parsed = match (fields.next(), fields.next(), fields.next()) {
                (Some(id), Some(count), None) => id.parse::<u64>().ok().zip(count.parse().ok()),
                _ => None,
            };
            match parsed {
                Some((id, count)) if count > 0 => {
                    q.counts.insert(id, count);
                }
                _ => bad_lines.push((n + 1, line.chars().take(80).collect())),
            }
        }
        Opened {
            quarantine: q,
            bad_lines,
            unreadable: None,
        }
    }

    /// Messages carrying `id` that were refused for good.
    pub fn refusals(&self, id: u64) -> u32 {
        self.counts.get(&id).copied().unwrap_or(0)
    }

    /// True when `id` no longer goes by satellite.
    pub fn is_quarantined(&self, id: u64) -> bool {
        self.refusals(id) >= self.max_refusals
    }

    /// Refusals after which an item is quarantined.
    pub fn max_refusals(&self) -> u32 {
        self.max_refusals
    }

    /// Items quarantined (as far as this knows, in the outbox).
    pub fn quarantined(&self) -> usize {
        self.counts
            .values()
            .filter(|&&n| n >= self.max_refusals)
            .count()
    }

    /// Every item with a refusal.
    pub fn ids(&self) -> Vec<u64> {
        self.counts.keys().copied().collect()
    }

    /// Counts a refusal of a message that carried `ids`; returns those it
    /// quarantines now (not those quarantined before). In memory: call
    /// [`Quarantine::save`] to keep it.
    pub fn record(&mut self, ids: &[u64]) -> Vec<u64> {
        let mut now = Vec::new();
        for &id in ids {
            let n = self.counts.entry(id).or_insert(0);
            let before = *n;
            *n = n.saturating_add(1);
            if before < self.max_refusals && *n >= self.max_refusals {
                now.push(id);
            }
        }
        now
    }

    /// Forgets `ids` (delivered by any link); returns whether any was known.
    pub fn forget(&mut self, ids: &[u64]) -> bool {
        let before = self.counts.len();
        for id in ids {
            self.counts.remove(id);
        }
        self.counts.len() != before
    }

    /// Keeps only the items `keep` says are still in the outbox; returns
    /// how many were forgotten.
    pub fn retain(&mut self, keep: impl Fn(u64) -> bool) -> usize {
        let before = self.counts.len();
        self.counts.retain(|&id, _| keep(id));
        before - self.counts.len()
    }

    /// Writes the counts to the file, atomically (removes nothing else).
    pub fn save(&self) -> Result<(), QuarantineError> {
        let mut text = String::from(
            "# outbox id, satellite messages carrying it refused for good (MO status 12, 14)\n",
        );
        for (id, n) in &self.counts {
            text.push_str(&format!("{id} {n}\n"));
        }
        crate::store::durable::replace_atomically(&self.path, text.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_quarantined_after_max_refusals_and_the_counts_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sbd-refusals");
        let opened = Quarantine::open(&path, 3);
        assert!(opened.bad_lines.is_empty() && opened.unreadable.is_none());
        let mut q = opened.quarantine;
        assert_eq!(q.record(&[1, 2, 3]), Vec::<u64>::new());
        assert_eq!(q.record(&[2]), Vec::<u64>::new());
        assert_eq!(q.refusals(2), 2);
        assert!(!q.is_quarantined(2));
        assert_eq!(q.record(&[2]), vec![2]);
        assert!(q.is_quarantined(2));
        // Refused again (it no longer should be offered): not "new" again.
        assert_eq!(q.record(&[2]), Vec::<u64>::new());
        assert_eq!(q.quarantined(), 1);
        q.save().unwrap();

        let mut q = Quarantine::open(&path, 3).quarantine;
        assert_eq!((q.refusals(1), q.refusals(2), q.refusals(9)), (1, 4, 0));
        assert!(q.is_quarantined(2));
        // Delivered by MQTT, expired or evicted: forgotten.
        assert!(q.forget(&[2, 7]));
        assert!(!q.forget(&[7]));
        assert_eq!(q.retain(|id| id != 3), 1);
        assert_eq!(q.ids(), vec![1]);
        q.save().unwrap();
        assert_eq!(Quarantine::open(&path, 3).quarantine.ids(), vec![1]);
        // A lower limit applies to the counts kept.
        assert!(Quarantine::open(&path, 1).quarantine.is_quarantined(1));
        assert!(Quarantine::open(&path, 0).quarantine.is_quarantined(1));
    }

    #[test]
    fn a_damaged_file_keeps_what_parses_and_says_what_did_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sbd-refusals");
        std::fs::write(&path, "# comment\n5 2\nseven 1\n6 0\n8 1 extra\n\n9 3").unwrap();
        let opened = Quarantine::open(&path, 3);
        assert_eq!(opened.quarantine.ids(), vec![5, 9]);
        assert_eq!(
            opened.bad_lines.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        // A directory where the file should be: unreadable, empty counts,
        // and saving fails with an error (never a panic).
        let opened = Quarantine::open(dir.path(), 3);
        assert!(opened.unreadable.is_some());
        assert!(opened.quarantine.ids().is_empty());
        assert!(opened.quarantine.save().is_err());
    }
}
