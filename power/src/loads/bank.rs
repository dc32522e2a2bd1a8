//! [`SwitchedLoads`]: the node's loads behind one [`LoadSwitch`], with their
//! settle times and their accounting.
//!
//! Times are tokio's ([`tokio::time::Instant`]): real time on the node, the
//! paused clock in tests and in a replay at `--speed max`. For each load the
//! bank keeps:
//! - `wakes`: successful switch-ons;
//! - `failures`: switch-ons or switch-offs its switch refused;
//! - the time on (the spans between a successful switch-on and switch-off,
//!   and the current span when it is still on) and its energy, time on ×
//!   [`LoadLine::draw_mw`].
//!
//! A switch-on that fails leaves the load counted as off; a switch-off that
//! fails leaves it counted as on, since neither is known to have happened.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::{Load, LoadError, LoadLine, LoadSwitch, LoadsConfig};

/// One load's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadStats {
    /// The BCM GPIO of its switch.
    pub pin: u8,
    /// On when the report was made.
    pub on: bool,
    /// Successful switch-ons.
    pub wakes: u64,
    /// Switchings that failed.
    pub failures: u64,
    /// Time on, milliseconds.
    pub on_ms: u64,
    /// The configured draw while on, milliwatts.
    pub draw_mw: f64,
    /// Energy used: time on × draw, joules.
    pub energy_j: f64,
}

/// Every configured load's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadsReport {
    /// The switch's name (`gpio`, `simulated`, `unavailable`).
    pub switch: String,
    /// Per load, by name.
    pub loads: BTreeMap<String, LoadStats>,
    /// The sum of the loads' energy, joules.
    pub energy_j: f64,
}

struct Line {
    cfg: LoadLine,
    on_since: Option<Instant>,
    ready_at: Instant,
    on_time: Duration,
    wakes: u64,
    failures: u64,
}

impl Line {
    fn on_time(&self, now: Instant) -> Duration {
        self.on_time
            + self
                .on_since
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    fn stats(&self, now: Instant) -> LoadStats {
        let on_time = self.on_time(now);
        LoadStats {
            pin: self.cfg.pin,
            on: self.on_since.is_some(),
            wakes: self.wakes,
            failures: self.failures,
            on_ms: on_time.as_millis() as u64,
            draw_mw: self.cfg.draw_mw,
            energy_j: energy_j(self.cfg.draw_mw, on_time),
        }
    }
}

/// Energy of `draw_mw` for `on`, joules.
pub fn energy_j(draw_mw: f64, on: Duration) -> f64 {
    draw_mw / 1000.0 * on.as_secs_f64()
}

struct Bank {
    switch: Box<dyn LoadSwitch>,
    lines: BTreeMap<Load, Line>,
}

/// The configured loads behind one switch; cheap to clone (shared).
#[derive(Clone)]
pub struct SwitchedLoads {
    inner: Arc<Mutex<Bank>>,
}

impl std::fmt::Debug for SwitchedLoads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchedLoads")
            .field("report", &self.report())
            .finish()
    }
}

impl SwitchedLoads {
    /// The loads of `cfg` on `switch`, all counted as off. (The switch's
    /// implementation puts each line at its off level when it opens.)
    pub fn new(switch: Box<dyn LoadSwitch>, cfg: &LoadsConfig) -> SwitchedLoads {
        let now = Instant::now();
        let lines = cfg
            .lines()
            .map(|(load, cfg)| {
                (
                    load,
                    Line {
                        cfg: cfg.clone(),
                        on_since: None,
                        ready_at: now,
                        on_time: Duration::ZERO,
                        wakes: 0,
                        failures: 0,
                    },
                )
            })
            .collect();
        SwitchedLoads {
            inner: Arc::new(Mutex::new(Bank { switch, lines })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Bank> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `load` is configured.
    pub fn has(&self, load: Load) -> bool {
        self.lock().lines.contains_key(&load)
    }

    /// Whether `load` is (counted as) on.
    pub fn is_on(&self, load: Load) -> bool {
        self.lock()
            .lines
            .get(&load)
            .is_some_and(|l| l.on_since.is_some())
    }

    /// Switches `load` on if it is off and returns when it will have
    /// settled (now or earlier when it was already on and settled).
    pub fn switch_on(&self, load: Load) -> Result<Instant, LoadError> {
        let mut bank = self.lock();
        let Bank { switch, lines } = &mut *bank;
        let line = lines.get_mut(&load).ok_or(LoadError::NotConfigured(load))?;
        if line.on_since.is_some() {
            return Ok(line.ready_at);
        }
        let now = Instant::now();
        match switch.set(load, true) {
            Ok(()) => {
                line.on_since = Some(now);
                line.ready_at = now + Duration::from_millis(line.cfg.settle_ms);
                line.wakes += 1;
                tracing::debug!(
                    load = load.as_str(),
                    pin = line.cfg.pin,
                    settle_ms = line.cfg.settle_ms,
                    wakes = line.wakes,
                    "load switched on"
                );
                Ok(line.ready_at)
            }
            Err(e) => {
                line.failures += 1;
                tracing::warn!(
                    load = load.as_str(),
                    pin = line.cfg.pin,
                    switch = switch.name(),
                    kind = e.kind(),
                    error = %e,
                    failures = line.failures,
                    "cannot switch a load on"
                );
                Err(e)
            }
        }
    }

    /// Switches `load` on if it is off and waits until it has settled (its
    /// `settle_ms` after the switch-on, on tokio's clock).
    pub async fn power_on(&self, load: Load) -> Result<(), LoadError> {
        let ready = self.switch_on(load)?;
        tokio::time::sleep_until(ready).await;
        Ok(())
    }

    /// Switches `load` off if it is on.
    pub fn power_off(&self, load: Load) -> Result<(), LoadError> {
        let mut bank = self.lock();
        let Bank { switch, lines } = &mut *bank;
        let line = lines.get_mut(&load).ok_or(LoadError::NotConfigured(load))?;
        let Some(since) = line.on_since else {
            return Ok(());
        };
        match switch.set(load, false) {
            Ok(()) => {
                let now = Instant::now();
                let span = now.saturating_duration_since(since);
                line.on_time += span;
                line.on_since = None;
                tracing::debug!(
                    load = load.as_str(),
                    pin = line.cfg.pin,
                    on_ms = span.as_millis() as u64,
                    energy_j = energy_j(line.cfg.draw_mw, span),
                    "load switched off"
                );
                Ok(())
            }
            Err(e) => {
                line.failures += 1;
                tracing::warn!(
                    load = load.as_str(),
                    pin = line.cfg.pin,
                    switch = switch.name(),
                    kind = e.kind(),
                    error = %e,
                    failures = line.failures,
                    "cannot switch a load off"
                );
                Err(e)
            }
        }
    }

    /// Switches every load that is on off, in the reverse of [`Load::ALL`];
    /// failures are logged and counted.
    pub fn power_off_all(&self) {
        for load in Load::ALL.into_iter().rev() {
            if self.is_on(load) {
                let _ = self.power_off(load);
            }
        }
    }

    /// Each load's figures now.
    pub fn report(&self) -> LoadsReport {
        let bank = self.lock();
        let now = Instant::now();
        let loads: BTreeMap<String, LoadStats> = bank
            .lines
            .iter()
            .map(|(l, line)| (l.as_str().to_string(), line.stats(now)))
            .collect();
        LoadsReport {
            switch: bank.switch.name().to_string(),
            energy_j: loads.values().map(|s| s.energy_j).sum(),
            loads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loads::FakeSwitch;

    fn cfg() -> LoadsConfig {
        LoadsConfig {
            accelerator: Some(LoadLine {
                pin: 17,
                active_low: false,
                settle_ms: 250,
                draw_mw: 3000.0,
            }),
            camera: Some(LoadLine {
                pin: 27,
                active_low: true,
                settle_ms: 1000,
                draw_mw: 1200.0,
            }),
            ..LoadsConfig::default()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn power_on_waits_the_settle_time_and_switches_once() {
        let fake = FakeSwitch::new();
        let loads = SwitchedLoads::new(Box::new(fake.clone()), &cfg());
        let t0 = Instant::now();
        loads.power_on(Load::Accelerator).await.unwrap();
        assert_eq!(Instant::now() - t0, ms(250), "settle time honoured");
        assert!(loads.is_on(Load::Accelerator));
        // Already on and settled: no wait, no second switching.
        loads.power_on(Load::Accelerator).await.unwrap();
        assert_eq!(Instant::now() - t0, ms(250));
        assert_eq!(fake.log().len(), 1);
        assert_eq!(fake.log()[0].at, t0);
        assert!(fake.log()[0].on);
        assert_eq!(loads.report().loads["accelerator"].wakes, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_user_waits_only_for_the_rest_of_the_settle_time() {
        let fake = FakeSwitch::new();
        let loads = SwitchedLoads::new(Box::new(fake.clone()), &cfg());
        let t0 = Instant::now();
        assert_eq!(loads.switch_on(Load::Camera).unwrap(), t0 + ms(1000));
        tokio::time::advance(ms(400)).await;
        loads.power_on(Load::Camera).await.unwrap();
        assert_eq!(Instant::now() - t0, ms(1000));
        assert_eq!(fake.log().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn time_on_and_energy_add_up_over_wakes() {
        let fake = FakeSwitch::new();
        let loads = SwitchedLoads::new(Box::new(fake.clone()), &cfg());
        let t0 = Instant::now();
        for _ in 0..3 {
            loads.power_on(Load::Accelerator).await.unwrap();
            tokio::time::advance(ms(750)).await;
            loads.power_off(Load::Accelerator).unwrap();
            tokio::time::advance(ms(5000)).await;
        }
        // Off twice is harmless and not a switching.
        loads.power_off(Load::Accelerator).unwrap();
        let r = loads.report();
        let a = &r.loads["accelerator"];
        assert_eq!((a.wakes, a.failures, a.on), (3, 0, false));
        assert_eq!(a.on_ms, 3 * 1000);
        assert!((a.energy_j - 3.0 * 3.0).abs() < 1e-9, "{}", a.energy_j);
        assert_eq!(
            r.loads["camera"],
            LoadStats {
                pin: 27,
                draw_mw: 1200.0,
                ..LoadStats::default()
            }
        );
        assert!((r.energy_j - a.energy_j).abs() < 1e-12);
        assert_eq!(r.switch, "simulated");
        let times: Vec<(Duration, bool)> = fake.log().iter().map(|s| (s.at - t0, s.on)).collect();
        assert_eq!(
            times,
            [
                (ms(0), true),
                (ms(1000), false),
                (ms(6000), true),
                (ms(7000), false),
                (ms(12_000), true),
                (ms(13_000), false)
            ]
        );
        // A load still on counts up to the report.
        loads.power_on(Load::Camera).await.unwrap();
        tokio::time::advance(ms(1000)).await;
        let c = &loads.report().loads["camera"];
        assert_eq!((c.on, c.on_ms), (true, 2000));
        assert!((c.energy_j - 2.4).abs() < 1e-9);
        loads.power_off_all();
        assert!(!loads.is_on(Load::Camera));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_counted_and_leave_the_state_as_it_was() {
        let fake = FakeSwitch::new();
        let loads = SwitchedLoads::new(Box::new(fake.clone()), &cfg());
        fake.fail(Load::Accelerator, true);
        let e = loads.power_on(Load::Accelerator).await.unwrap_err();
        assert_eq!(e.kind(), "switch");
        assert!(!loads.is_on(Load::Accelerator));
        fake.fail(Load::Accelerator, false);
        loads.power_on(Load::Accelerator).await.unwrap();
        fake.fail(Load::Accelerator, true);
        assert!(loads.power_off(Load::Accelerator).is_err());
        assert!(loads.is_on(Load::Accelerator), "still counted as on");
        let a = &loads.report().loads["accelerator"];
        assert_eq!((a.wakes, a.failures), (1, 2));
        assert_eq!(
            loads.power_on(Load::Modem).await,
            Err(LoadError::NotConfigured(Load::Modem))
        );
        assert!(!loads.has(Load::Modem) && loads.has(Load::Camera));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unavailable_gpio_fails_every_switching() {
        let why = LoadError::Unavailable("no /dev/gpiomem0".into());
        let loads = SwitchedLoads::new(
            Box::new(crate::loads::UnavailableSwitch(why.clone())),
            &cfg(),
        );
        assert_eq!(loads.power_on(Load::Camera).await, Err(why));
        let r = loads.report();
        assert_eq!(r.switch, "unavailable");
        assert_eq!(r.loads["camera"].failures, 1);
    }
}
