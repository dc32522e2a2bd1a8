//! The deliveries published lately, so that RockBLOCK's retry of a message
//! that was published (its HTTP answer lost) is not published again. A
//! repeat that slips through (e.g. after a restart) is still harmless:
//! records carry ids and receivers drop duplicates.

use std::collections::{HashSet, VecDeque};

/// What identifies one delivery: modem, MO sequence number and payload
/// (MOMSN wraps at 65536, so the payload is part of the key).
pub type Key = (String, u32, Vec<u8>);

/// A bounded set of recent deliveries, oldest forgotten first.
#[derive(Debug)]
pub struct Recent {
    capacity: usize,
    order: VecDeque<Key>,
    set: HashSet<Key>,
}

impl Recent {
    /// Remembers at most `capacity` deliveries.
    pub fn new(capacity: usize) -> Recent {
        Recent {
            capacity,
            order: VecDeque::new(),
            set: HashSet::new(),
        }
    }

    /// Whether `key` was published lately.
    pub fn contains(&self, key: &Key) -> bool {
        self.set.contains(key)
    }

    /// Records that `key` was published.
    pub fn insert(&mut self, key: Key) {
        if self.capacity == 0 || !self.set.insert(key.clone()) {
            return;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(momsn: u32) -> Key {
        ("300234010753370".into(), momsn, vec![1, 2])
    }

    #[test]
    fn remembers_the_newest_only() {
        let mut r = Recent::new(2);
        r.insert(key(1));
        r.insert(key(2));
        r.insert(key(2));
        assert!(r.contains(&key(1)) && r.contains(&key(2)));
        r.insert(key(3));
        assert!(!r.contains(&key(1)));
        assert!(r.contains(&key(2)) && r.contains(&key(3)));
        assert!(!r.contains(&("300234010753370".into(), 2, vec![9])));
    }
}
