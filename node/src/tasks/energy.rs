//! The node's energy ledger, shared by the power task (which counts every
//! costed action at each reading: audio seconds, camera frames, climate
//! readings, bursts, installs, satellite sessions, the time awake, and at
//! start the boot and the sleep it ended; with switched loads ([`EnergyBook::count_loads`])
//! also the accelerator's wakes and the modem's time on, as the cellular
//! modem's) and the status task (which logs the energy per
//! consumer). Where the supply is measured (monitors or sysfs, not the
//! simulation), the ledger's estimate is compared with the measured draw
//! over the same readings: the ratio is estimated over measured.

use std::sync::Mutex;

use power::{Actions, Consumer, EnergyCosts, EnergyLedger, LedgerCheck};
use power::{Load, SwitchedLoads};

/// The ledger and its check against the measured draw.
#[derive(Debug)]
pub struct EnergyBook {
    measured: bool,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    ledger: EnergyLedger,
    check: LedgerCheck,
    loads: Option<LoadsSeen>,
}

/// The switched loads, and their counts at the last reading.
struct LoadsSeen {
    loads: SwitchedLoads,
    accelerator_wakes: u64,
    modem_on_ms: u64,
}

impl std::fmt::Debug for LoadsSeen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadsSeen")
            .field("accelerator_wakes", &self.accelerator_wakes)
            .field("modem_on_ms", &self.modem_on_ms)
            .finish()
    }
}

impl LoadsSeen {
    /// The accelerator's wakes and the modem's seconds on since the last
    /// call.
    fn take(&mut self) -> (u64, f64) {
        let report = self.loads.report();
        let get = |l: Load| report.loads.get(l.as_str());
        let wakes = get(Load::Accelerator).map_or(0, |s| s.wakes);
        let on_ms = get(Load::Modem).map_or(0, |s| s.on_ms);
        let d = (
            wakes.saturating_sub(self.accelerator_wakes),
            on_ms.saturating_sub(self.modem_on_ms) as f64 / 1000.0,
        );
        self.accelerator_wakes = wakes;
        self.modem_on_ms = on_ms;
        d
    }
}

/// What the status line reports.
#[derive(Debug, Clone, PartialEq)]
pub struct EnergySnapshot {
    /// Energy per consumer since the start, Wh, consumers with none left out.
    pub per_consumer_wh: Vec<(Consumer, f64)>,
    /// Total since the start, Wh.
    pub total_wh: f64,
    /// Estimated over measured over the readings of a measured supply.
    pub ratio: Option<f64>,
}

impl EnergySnapshot {
    /// `idle=1.234 audio=0.050 ...`, Wh.
    pub fn per_consumer_text(&self) -> String {
        self.per_consumer_wh
            .iter()
            .map(|(c, wh)| format!("{}={wh:.3}", c.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl EnergyBook {
    /// A ledger at `costs`; `measured`: the supply's load is measured.
    pub fn new(costs: EnergyCosts, measured: bool) -> Self {
        EnergyBook {
            measured,
            inner: Mutex::new(Inner {
                ledger: EnergyLedger::new(costs),
                check: LedgerCheck {
                    estimated_j: 0.0,
                    measured_j: 0.0,
                },
                loads: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From now on each reading also counts the accelerator's wakes and the
    /// modem's time on (charged at `cellular_w`) that `loads` switched.
    pub fn count_loads(&self, loads: &SwitchedLoads) {
        let mut seen = LoadsSeen {
            loads: loads.clone(),
            accelerator_wakes: 0,
            modem_on_ms: 0,
        };
        // What happened before this call is not this ledger's.
        seen.take();
        self.lock().loads = Some(seen);
    }

    /// Counts actions outside a reading (the boot, the sleep it ended).
    pub fn record(&self, a: &Actions) -> f64 {
        self.lock().ledger.record(a)
    }

    /// Counts one reading's interval: `a` spent, and the supply's
    /// average load `load_w` over the same `a.awake_s`.
    pub fn reading(&self, a: &Actions, load_w: f64) -> f64 {
        let mut g = self.lock();
        let mut a = *a;
        if let Some(seen) = g.loads.as_mut() {
            let (wakes, modem_s) = seen.take();
            a.accelerator_wakes += wakes;
            a.cellular_s += modem_s;
        }
        let a = &a;
        let j = g.ledger.record(a);
        if self.measured && load_w.is_finite() && load_w >= 0.0 && a.awake_s > 0.0 {
            g.check.estimated_j += j;
            g.check.measured_j += load_w * a.awake_s;
        }
        j
    }

    /// The figures for the status line.
    pub fn snapshot(&self) -> EnergySnapshot {
        let g = self.lock();
        EnergySnapshot {
            per_consumer_wh: g
                .ledger
                .per_consumer()
                .into_iter()
                .filter(|(_, j)| *j > 0.0)
                .map(|(c, j)| (c, j / 3600.0))
                .collect(),
            total_wh: g.ledger.total_j() / 3600.0,
            ratio: g.check.ratio(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_supply_gives_a_ratio_and_a_simulated_one_none() {
        let book = EnergyBook::new(EnergyCosts::default(), true);
        book.record(&Actions {
            boots: 1,
            ..Actions::default()
        });
        // 10 s awake with audio: 31.5 J estimated; 3.5 W measured: 35 J.
        let a = Actions {
            awake_s: 10.0,
            audio_s: 10.0,
            ..Actions::default()
        };
        assert!((book.reading(&a, 3.5) - 31.5).abs() < 1e-9);
        let s = book.snapshot();
        let r = s.ratio.unwrap_or(0.0);
        assert!((r - 0.9).abs() < 1e-9, "{r}");
        // The boot counts in the ledger, not in the check.
        assert!((s.total_wh - (120.0 + 31.5) / 3600.0).abs() < 1e-12);
        assert_eq!(
            s.per_consumer_text(),
            "idle=0.008 audio=0.000 boot=0.033",
            "{s:?}"
        );
        let sim = EnergyBook::new(EnergyCosts::default(), false);
        sim.reading(&a, 3.5);
        assert_eq!(sim.snapshot().ratio, None);
        // A reading without a finite load is left out of the check.
        book.reading(&a, f64::NAN);
        assert!((book.snapshot().ratio.unwrap_or(0.0) - 0.9).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn the_accelerator_wakes_and_the_modem_time_on_are_counted_from_the_loads() {
        use power::LoadsConfig;
        use power::loads::{FakeSwitch, LoadLine};
        let line = |pin| LoadLine {
            pin,
            active_low: false,
            settle_ms: 100,
            draw_mw: 1000.0,
        };
        let cfg = LoadsConfig {
            accelerator: Some(line(17)),
            modem: Some(line(22)),
            ..LoadsConfig::default()
        };
        let loads = SwitchedLoads::new(Box::new(FakeSwitch::new()), &cfg);
        // A wake before the ledger counts the loads is not its own.
        loads.power_on(Load::Accelerator).await.unwrap();
        loads.power_off(Load::Accelerator).unwrap();
        let book = EnergyBook::new(EnergyCosts::default(), false);
        book.count_loads(&loads);
        for _ in 0..2 {
            loads.power_on(Load::Accelerator).await.unwrap();
            loads.power_off(Load::Accelerator).unwrap();
        }
        loads.power_on(Load::Modem).await.unwrap();
        tokio::time::advance(std::time::Duration::from_millis(9_900)).await;
        loads.power_off(Load::Modem).unwrap();
        book.reading(&Actions::default(), f64::NAN);
        let costs = EnergyCosts::default();
        let wh = |c: Consumer| {
            book.snapshot()
                .per_consumer_wh
                .iter()
                .find(|(k, _)| *k == c)
                .map_or(0.0, |(_, wh)| *wh)
        };
        let (accel, cell) = (Consumer::Accelerator, Consumer::Cellular);
        assert!((wh(accel) - 2.0 * costs.accelerator_wake_j / 3600.0).abs() < 1e-9);
        assert!((wh(cell) - 10.0 * costs.cellular_w / 3600.0).abs() < 1e-9);
        // Counted once: a second reading adds nothing.
        book.reading(&Actions::default(), f64::NAN);
        assert!((wh(accel) - 2.0 * costs.accelerator_wake_j / 3600.0).abs() < 1e-9);
    }
}
