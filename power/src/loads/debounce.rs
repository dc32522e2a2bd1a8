//! [`Debouncer`]: a level read at intervals counts as changed only once it
//! has read the same for `debounce_ms` (a bouncing contact or a noisy PIR
//! output makes no edge), and each debounced rise is an edge.

/// A debounced input level; times are the caller's clock, ms.
#[derive(Debug, Clone)]
pub struct Debouncer {
    debounce_ms: i64,
    /// The debounced level.
    level: bool,
    /// A level other than `level`, and since when it has read so.
    candidate: Option<(bool, i64)>,
}

impl Debouncer {
    /// Starts at `initial` (the level the line had when it was opened).
    pub fn new(debounce_ms: u64, initial: bool) -> Debouncer {
        Debouncer {
            debounce_ms: i64::try_from(debounce_ms).unwrap_or(i64::MAX),
            level: initial,
            candidate: None,
        }
    }

    /// The debounced level.
    pub fn level(&self) -> bool {
        self.level
    }

    /// Takes a reading at `t_ms`; returns the new level when the debounced
    /// level changes with it.
    pub fn read(&mut self, t_ms: i64, raw: bool) -> Option<bool> {
        if raw == self.level {
            self.candidate = None;
            return None;
        }
        let since = match self.candidate {
            Some((l, since)) if l == raw => since,
            _ => {
                self.candidate = Some((raw, t_ms));
                t_ms
            }
        };
        if t_ms.saturating_sub(since) >= self.debounce_ms {
            self.level = raw;
            self.candidate = None;
            Some(raw)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(d: &mut Debouncer, reads: &[(i64, bool)]) -> Vec<(i64, bool)> {
        reads
            .iter()
            .filter_map(|&(t, l)| d.read(t, l).map(|e| (t, e)))
            .collect()
    }

    #[test]
    fn a_level_counts_once_it_held_for_the_debounce_time() {
        let mut d = Debouncer::new(100, false);
        let reads = [
            (0, false),
            // Bounces shorter than 100 ms: nothing.
            (50, true),
            (100, false),
            (150, true),
            (200, true),
            // Held from 150 to 250: the rise.
            (250, true),
            (300, true),
            (350, false),
            (400, true),
            (450, false),
            (500, false),
            (550, false),
        ];
        assert_eq!(edges(&mut d, &reads), [(250, true), (550, false)]);
        assert!(!d.level());
    }

    #[test]
    fn zero_debounce_follows_every_reading_and_the_initial_level_is_no_edge() {
        let mut d = Debouncer::new(0, true);
        assert_eq!(d.read(0, true), None);
        assert_eq!(d.read(10, false), Some(false));
        assert_eq!(d.read(20, true), Some(true));
    }
}
