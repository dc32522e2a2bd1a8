//! Load switches and input lines without hardware: [`FakeSwitch`] records
//! every switching with its time (tokio's clock) and can be told to fail;
//! [`FakeInput`] is a line a test (or a simulation) sets. The node uses
//! them for switched loads when it replays a scene.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use super::{InputLine, Load, LoadError, LoadSwitch};

/// One switching the fake saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switching {
    /// When (tokio's clock).
    pub at: Instant,
    /// Which load.
    pub load: Load,
    /// Switched on (or off).
    pub on: bool,
}

#[derive(Default)]
struct State {
    log: Vec<Switching>,
    failing: BTreeSet<Load>,
}

/// A [`LoadSwitch`] that records; clones share the record, so a test keeps
/// one and hands the other to the node.
#[derive(Clone, Default)]
pub struct FakeSwitch {
    state: Arc<Mutex<State>>,
}

impl FakeSwitch {
    /// A switch with an empty record, failing nothing.
    pub fn new() -> FakeSwitch {
        FakeSwitch::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every switching so far, in order.
    pub fn log(&self) -> Vec<Switching> {
        self.lock().log.clone()
    }

    /// The switchings of one load.
    pub fn log_of(&self, load: Load) -> Vec<Switching> {
        self.lock()
            .log
            .iter()
            .filter(|s| s.load == load)
            .copied()
            .collect()
    }

    /// Makes switching `load` fail (or work again).
    pub fn fail(&self, load: Load, failing: bool) {
        let mut s = self.lock();
        if failing {
            s.failing.insert(load);
        } else {
            s.failing.remove(&load);
        }
    }
}

impl LoadSwitch for FakeSwitch {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn set(&mut self, load: Load, on: bool) -> Result<(), LoadError> {
        let mut s = self.lock();
        if s.failing.contains(&load) {
            return Err(LoadError::Switch {
                load,
                reason: "failure injected by the test".into(),
            });
        }
        s.log.push(Switching {
            at: Instant::now(),
            load,
            on,
        });
        Ok(())
    }
}

/// An [`InputLine`] whose level is set from outside, and which can be
/// told to fail; clones share both.
#[derive(Clone, Default)]
pub struct FakeInput {
    active: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
}

impl FakeInput {
    /// A line, not asserted.
    pub fn new() -> FakeInput {
        FakeInput::default()
    }

    /// Asserts or releases the line.
    pub fn set(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
    }

    /// Makes reading the line fail (or work again).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::Relaxed);
    }
}

impl InputLine for FakeInput {
    fn is_active(&mut self) -> Result<bool, LoadError> {
        if self.failing.load(Ordering::Relaxed) {
            return Err(LoadError::Unavailable(
                "failure injected by the test".into(),
            ));
        }
        Ok(self.active.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_fake_records_switchings_with_their_times_and_fails_on_demand() {
        let fake = FakeSwitch::new();
        let mut handed_out: Box<dyn LoadSwitch> = Box::new(fake.clone());
        let t0 = Instant::now();
        handed_out.set(Load::Modem, true).unwrap();
        tokio::time::advance(std::time::Duration::from_secs(2)).await;
        fake.fail(Load::Modem, true);
        assert!(handed_out.set(Load::Modem, false).is_err());
        fake.fail(Load::Modem, false);
        handed_out.set(Load::Modem, false).unwrap();
        handed_out.set(Load::Camera, true).unwrap();
        let modem: Vec<_> = fake
            .log_of(Load::Modem)
            .iter()
            .map(|s| (s.at - t0, s.on))
            .collect();
        assert_eq!(
            modem,
            [
                (std::time::Duration::ZERO, true),
                (std::time::Duration::from_secs(2), false)
            ]
        );
        assert_eq!(fake.log().len(), 3);

        let pir = FakeInput::new();
        let mut line: Box<dyn InputLine> = Box::new(pir.clone());
        assert!(!line.is_active().unwrap());
        pir.set(true);
        assert!(line.is_active().unwrap());
        pir.fail(true);
        assert!(line.is_active().is_err());
        pir.fail(false);
        assert!(line.is_active().unwrap());
    }
}
