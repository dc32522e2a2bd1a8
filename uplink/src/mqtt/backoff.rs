//! Reconnect delays: exponential from a minimum to a maximum, each delay
//! drawn uniformly from its upper half ("equal jitter"), so that a fleet
//! that lost its broker at once does not come back at once.

use std::time::Duration;

use rand::Rng;

/// Jittered exponential backoff.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    failures: u32,
}

impl Backoff {
    /// Delays between `min_ms` and `max_ms` (`min_ms <= max_ms`, both > 0).
    pub fn new(min_ms: u64, max_ms: u64) -> Backoff {
        let min_ms = min_ms.max(1);
        Backoff {
            min_ms,
            max_ms: max_ms.max(min_ms),
            failures: 0,
        }
    }

    /// The delay before the next attempt after one more failure.
    pub fn next_delay(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self
            .min_ms
            .saturating_mul(1u64 << self.failures.min(32))
            .min(self.max_ms);
        self.failures = self.failures.saturating_add(1);
        let floor = (ceiling / 2).max(self.min_ms.min(ceiling));
        Duration::from_millis(rng.random_range(floor..=ceiling))
    }

    /// A connection succeeded: start again from the minimum.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn delays_grow_jittered_up_to_the_maximum_and_reset() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut b = Backoff::new(100, 1_000);
        let d: Vec<u64> = (0..8)
            .map(|_| b.next_delay(&mut rng).as_millis() as u64)
            .collect();
        assert_eq!(d[0], 100, "first delay is the minimum");
        for (i, ms) in d.iter().enumerate() {
            let ceiling = (100u64 << i).min(1_000);
            assert!(*ms <= ceiling && *ms >= (ceiling / 2).max(100), "{i}: {ms}");
        }
        assert!(d[7] >= 500, "capped at the maximum's upper half: {d:?}");
        b.reset();
        assert_eq!(b.next_delay(&mut rng).as_millis(), 100);
    }

    #[test]
    fn jitter_spreads_nodes_apart() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let delays: std::collections::BTreeSet<u128> = (0..20)
            .map(|_| {
                let mut b = Backoff::new(1_000, 60_000);
                b.next_delay(&mut rng);
                b.next_delay(&mut rng);
                b.next_delay(&mut rng).as_millis()
            })
            .collect();
        assert!(delays.len() > 10, "{delays:?}");
    }
}
