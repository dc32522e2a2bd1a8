//! Switched loads in the node (`[power.loads]`, `power::loads`): the loads
//! that stay on while the node runs, and the accelerator's supply, which a
//! burst switches on and the idle release switches off.
//!
//! - At start, the sensor power, the camera and the modem (those
//!   configured, in that order) are switched on, each given its settle time
//!   before the next, before any device is opened; at the end of the run,
//!   once the uplink has stopped, every load is switched off. A modem that
//!   carries MQTT (the uplink enabled with `[uplink.mqtt]`) is not: the
//!   uplink powers it for upload windows only (`crate::uplink::window`).
//!   The satellite modem is never on for the run: the uplink's modem task
//!   powers it for its requests (`crate::uplink`'s `sbd`).
//! - The camera's load, on at start so that its device opens, then follows
//!   the camera task (`crate::tasks::camera`): off while the power policy
//!   has the camera off or it is on demand and not asked for, on again
//!   (with its settle time) before its next capture.
//! - [`AcceleratorSupply`]: before a burst the detect task switches the
//!   accelerator's supply on and waits its settle time; the burst then wakes
//!   the model on it. After `[fusion] idle_release_ms` without a burst (on
//!   tokio's clock), the model is released and only then is the supply
//!   switched off. The last burst's release also happens when the detect
//!   task ends.
//!
//! With no `[power.loads]`, none of this exists and the node behaves as it
//! did without switched loads.

use std::time::Duration;

use fusion::Classifier;
use power::{Load, SwitchedLoads};
use tokio::time::Instant;

/// The loads switched on for the whole run, in the order they are powered
/// (the modem only when it has no upload windows).
pub const ALWAYS_ON: [Load; 3] = [Load::Sensors, Load::Camera, Load::Modem];

/// Switches on the configured loads of [`ALWAYS_ON`], one after the other,
/// each after the previous one has settled; not the modem when
/// `modem_windows` (the uplink powers it for its windows). A load that
/// cannot be switched is logged and counted by `loads`; the others go on.
pub async fn power_up_always_on(loads: &SwitchedLoads, modem_windows: bool) {
    for load in ALWAYS_ON {
        if load == Load::Modem && modem_windows {
            if loads.has(load) {
                tracing::info!(load = load.as_str(), "load on for upload windows only");
            }
            continue;
        }
        if loads.has(load) && loads.power_on(load).await.is_ok() {
            tracing::info!(load = load.as_str(), "load on for the run");
        }
    }
}

/// Switches every load off when dropped, so an early return of a run does
/// not leave them powered.
pub struct OffOnDrop(pub SwitchedLoads);

impl Drop for OffOnDrop {
    fn drop(&mut self) {
        self.0.power_off_all();
    }
}

/// The accelerator's supply as the detect task drives it; see the module
/// documentation.
pub struct AcceleratorSupply {
    loads: SwitchedLoads,
    idle_release: Duration,
    last_use: Instant,
}

impl AcceleratorSupply {
    /// The supply of `loads`' accelerator line, released after
    /// `idle_release_ms` without a burst; `None` without such a line.
    pub fn new(loads: &SwitchedLoads, idle_release_ms: u64) -> Option<AcceleratorSupply> {
        loads.has(Load::Accelerator).then(|| AcceleratorSupply {
            loads: loads.clone(),
            idle_release: Duration::from_millis(idle_release_ms),
            last_use: Instant::now(),
        })
    }

    /// Switches the supply on if it is off and waits until it has settled.
    /// A failure is logged and counted by the loads; the burst goes on (the
    /// accelerator's own wake then tells whether it is there).
    pub async fn wake(&mut self) {
        let _ = self.loads.power_on(Load::Accelerator).await;
        self.last_use = Instant::now();
    }

    /// A burst just ran: the idle time starts again.
    pub fn used(&mut self) {
        self.last_use = Instant::now();
    }

    /// When the supply is due to be switched off; `None` while it is off.
    pub fn release_due(&self) -> Option<Instant> {
        self.loads
            .is_on(Load::Accelerator)
            .then(|| self.last_use + self.idle_release)
    }

    /// Releases the model and switches the supply off if it has been idle
    /// long enough; returns whether it did.
    pub fn release_if_due(&mut self, classifier: Option<&mut Box<dyn Classifier>>) -> bool {
        match self.release_due() {
            Some(due) if Instant::now() >= due => {
                self.release(classifier);
                true
            }
            _ => false,
        }
    }

    /// Releases the model, then switches the supply off (if it is on).
    pub fn release(&mut self, classifier: Option<&mut Box<dyn Classifier>>) {
        if !self.loads.is_on(Load::Accelerator) {
            return;
        }
        if let Some(c) = classifier {
            c.release();
        }
        if self.loads.power_off(Load::Accelerator).is_ok() {
            tracing::debug!(
                idle_ms = self.idle_release.as_millis() as u64,
                "accelerator released and its supply switched off"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use power::loads::{FakeSwitch, LoadLine};
    use power::{LoadsConfig, SwitchedLoads};

    use super::*;

    fn line(pin: u8, settle_ms: u64) -> Option<LoadLine> {
        Some(LoadLine {
            pin,
            active_low: false,
            settle_ms,
            draw_mw: 1000.0,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn loads_for_the_run_go_on_in_order_each_after_the_previous_settled_and_off_in_reverse() {
        let fake = FakeSwitch::new();
        let cfg = LoadsConfig {
            sensors: line(5, 50),
            camera: line(6, 1_500),
            accelerator: line(17, 300),
            modem: line(22, 500),
            satellite: line(23, 1_000),
        };
        let loads = SwitchedLoads::new(Box::new(fake.clone()), &cfg);
        let t0 = Instant::now();
        power_up_always_on(&loads, false).await;
        // Done once the last one has settled.
        assert_eq!(Instant::now() - t0, Duration::from_millis(2_050));
        assert!(
            !loads.is_on(Load::Accelerator),
            "the accelerator waits for a burst"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(OffOnDrop(loads.clone()));
        let log: Vec<(u64, &str, bool)> = fake
            .log()
            .iter()
            .map(|s| ((s.at - t0).as_millis() as u64, s.load.as_str(), s.on))
            .collect();
        assert_eq!(
            log,
            [
                (0, "sensors", true),
                (50, "camera", true),
                (1_550, "modem", true),
                (12_050, "modem", false),
                (12_050, "camera", false),
                (12_050, "sensors", false),
            ]
        );
        let r = loads.report();
        assert_eq!(r.loads["modem"].on_ms, 10_500);
        assert_eq!(r.loads["accelerator"].wakes, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_modem_with_upload_windows_stays_off_at_start() {
        let fake = FakeSwitch::new();
        let cfg = LoadsConfig {
            sensors: line(5, 50),
            modem: line(22, 500),
            ..LoadsConfig::default()
        };
        let loads = SwitchedLoads::new(Box::new(fake.clone()), &cfg);
        power_up_always_on(&loads, true).await;
        assert!(loads.is_on(Load::Sensors));
        assert!(!loads.is_on(Load::Modem));
        assert!(fake.log_of(Load::Modem).is_empty());
    }
}
