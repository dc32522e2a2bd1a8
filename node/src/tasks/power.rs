//! The power task: reads the supply at a fixed interval, charges it with the
//! energy the other tasks spent, updates the policy and publishes what it
//! allows. Mode changes are logged with the reading that caused them. When
//! the policy calls for a deep sleep and a wake can be planned
//! ([`power::plan_wake`]), it asks the node to stop and sleep
//! ([`crate::sleep::SleepRequest`]) and ends. Each reading's interval is
//! counted in the energy ledger ([`super::energy::EnergyBook`]).

use std::sync::Arc;

use power::{EnergyUse, PowerPolicy, PowerSource, PowerStatus, SupplyHealth};
use tokio::sync::watch;

use super::Counters;
use crate::clock::Clock;
use crate::shutdown::Shutdown;

#[derive(Default, Clone, Copy)]
struct Seen {
    camera_frames: u64,
    climate_readings: u64,
    audio_ms: u64,
    bursts: u64,
    installs: u64,
    sbd_sessions: u64,
}

fn take_use(counters: &Counters, seen: &mut Seen) -> EnergyUse {
    let now = Seen {
        camera_frames: Counters::get(&counters.camera_frames),
        climate_readings: Counters::get(&counters.climate_readings),
        audio_ms: Counters::get(&counters.audio_ms),
        bursts: Counters::get(&counters.bursts),
        installs: Counters::get(&counters.installs),
        sbd_sessions: Counters::get(&counters.sbd_sessions),
    };
    let used = EnergyUse {
        camera_frames: now.camera_frames - seen.camera_frames,
        climate_readings: now.climate_readings - seen.climate_readings,
        audio_seconds: (now.audio_ms - seen.audio_ms) as f64 / 1000.0,
        bursts: now.bursts - seen.bursts,
        uplink_sessions: now.sbd_sessions - seen.sbd_sessions,
        installs: now.installs - seen.installs,
    };
    *seen = now;
    used
}

/// Reads the supply once and returns the first status (before tasks start).
pub fn initial_status(
    source: &mut dyn PowerSource,
    policy: &mut PowerPolicy,
    t_ms: i64,
) -> PowerStatus {
    policy.update(source.read(t_ms, EnergyUse::default()))
}

/// Where a sleep the policy calls goes.
pub struct SleepPlanning {
    /// The request the node's run waits on.
    pub request: Arc<crate::sleep::SleepRequest>,
    /// `[power.sleep]`, to plan the wake.
    pub cfg: power::SleepConfig,
    /// The sysfs root the wake alarm is under.
    pub sys_root: std::path::PathBuf,
    /// False in a replay: the host's own alarm (under `/`) is never set.
    pub hardware: bool,
}

impl SleepPlanning {
    /// A replay on the host's own sysfs: no alarm is ever set.
    fn replay_without_alarm(&self) -> bool {
        !self.hardware && self.sys_root == std::path::Path::new("/")
    }

    /// Why the wake alarm cannot be set, if it cannot: then the node stays
    /// awake rather than stop for a sleep nothing would end.
    fn alarm_unusable(&self) -> Option<String> {
        if self.replay_without_alarm() {
            return Some(
                "a replay sets the wake alarm only under a fake sysfs tree ([power.sysfs] root)"
                    .to_string(),
            );
        }
        crate::sleep::wakealarm::check_writable(&self.sys_root)
            .err()
            .map(|e| e.to_string())
    }
}

/// Runs until shutdown, until `done` says the sensors have all ended, or
/// until it has asked for a sleep.
/// Readings fall at `start_ms` + k x `interval_ms` (the time of the initial
/// status), whatever the task's own start was delayed by, so a replay at any
/// speed reads the supply at the same scene times. Settings installed
/// while the node runs (`settings`) replace the policy's thresholds and
/// cadences from the next reading.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut source: Box<dyn PowerSource>,
    mut policy: PowerPolicy,
    tx: watch::Sender<PowerStatus>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    start_ms: i64,
    interval_ms: u64,
    mut done: watch::Receiver<bool>,
    mut settings: Option<watch::Receiver<crate::update::live::Settings>>,
    sleep: Option<SleepPlanning>,
    energy: Option<Arc<super::energy::EnergyBook>>,
    mut shutdown: Shutdown,
) {
    // Set once the wake alarm proved unusable: no more sleep this run.
    let mut no_alarm = false;
    let mut seen = Seen::default();
    let mut next = start_ms + interval_ms as i64;
    let mut health = source.health();
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = done.wait_for(|d| *d) => return,
            _ = clock.sleep_until(next) => {}
        }
        if let Some(s) = settings.as_mut().and_then(crate::update::live::changed) {
            tracing::info!(
                version = s.version,
                "power thresholds and cadences from installed settings in force"
            );
            policy.set_config(s.policy.clone());
        }
        let before = policy.mode();
        let used = take_use(&counters, &mut seen);
        let reading = source.read(next, used);
        let now = source.health();
        if let Some(book) = &energy {
            // Only a measured reading checks the ledger.
            let load_w = if now == SupplyHealth::Ok {
                reading.load_w
            } else {
                f64::NAN
            };
            book.reading(
                &power::Actions::from_use(&used, interval_ms as f64 / 1000.0),
                load_w,
            );
        }
        if now != health {
            match &now {
                SupplyHealth::Ok => {
                    tracing::info!(was = health.as_str(), "power monitors answer again")
                }
                SupplyHealth::Degraded(why) | SupplyHealth::Absent(why) => tracing::warn!(
                    state = now.as_str(),
                    reason = %why,
                    "power readings not measured; carrying on from the last good one"
                ),
            }
            health = now;
        }
        let status = policy.update(reading);
        if status.mode != before {
            tracing::warn!(
                from = before.as_str(),
                to = status.mode.as_str(),
                soc = reading.soc,
                solar_w = reading.solar_w,
                load_w = reading.load_w,
                "power mode changed"
            );
        } else {
            tracing::debug!(
                mode = status.mode.as_str(),
                soc = reading.soc,
                solar_w = reading.solar_w,
                load_w = reading.load_w,
                "power reading"
            );
        }
        let call = status.sleep;
        tx.send_replace(status);
        if let (Some(call), Some(plan), false) = (call, &sleep, no_alarm) {
            let wake = power::plan_wake(&plan.cfg, next);
            match (wake, wake.and_then(|_| plan.alarm_unusable())) {
                (Some(_), Some(why)) if plan.replay_without_alarm() => {
                    // Expected in a replay on the host's own sysfs: the run
                    // stays awake, as the scene's recording did.
                    no_alarm = true;
                    tracing::info!(
                        target: "sleep",
                        reason = call.reason.as_str(),
                        why = %why,
                        "deep sleep called; a replay without a fake sysfs tree stays awake"
                    );
                }
                (Some(_), Some(why)) => {
                    no_alarm = true;
                    tracing::error!(
                        target: "sleep",
                        reason = call.reason.as_str(),
                        error = %why,
                        "deep sleep called but the RTC wake alarm cannot be set; staying awake for this run"
                    );
                }
                (Some(wake), None) => {
                    tracing::warn!(
                        target: "sleep",
                        reason = call.reason.as_str(),
                        soc = call.soc,
                        solar_w = call.solar_w,
                        wake_ms = wake.wake_ms,
                        bound = wake.bound.as_str(),
                        "power policy calls for deep sleep; stopping"
                    );
                    plan.request.request(crate::sleep::PlannedSleep {
                        reason: call.reason,
                        at_ms: next,
                        wake,
                        soc: call.soc,
                        battery_mv: reading.battery_mv,
                    });
                    return;
                }
                (None, _) => tracing::debug!(
                    target: "sleep",
                    "sleep called but the wake would be closer than min_sleep_s; staying awake"
                ),
            }
        }
        next += interval_ms as i64;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use power::{EnergyCosts, PolicyConfig, PowerReading};

    use super::*;
    use crate::tasks::energy::EnergyBook;

    /// A measured supply: a constant 3.5 W load, the sun out.
    struct Measured;

    impl PowerSource for Measured {
        fn read(&mut self, t_ms: i64, _used: EnergyUse) -> PowerReading {
            PowerReading {
                t_ms,
                soc: 0.8,
                solar_w: 20.0,
                load_w: 3.5,
                battery_mv: None,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn each_reading_is_counted_in_the_ledger_and_checked_against_the_measured_draw() {
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::ReplayClock::new(0, 1.0));
        let counters = Arc::new(Counters::default());
        let mut policy = PowerPolicy::new(PolicyConfig::default());
        let first = initial_status(&mut Measured, &mut policy, 0);
        let (tx, _rx) = watch::channel(first);
        let (_done_tx, done_rx) = watch::channel(false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let book = Arc::new(EnergyBook::new(EnergyCosts::default(), true));
        // 30 s of audio, 3 frames and 2 satellite sessions before the
        // first reading.
        Counters::add(&counters.audio_ms, 30_000);
        Counters::add(&counters.camera_frames, 3);
        Counters::add(&counters.sbd_sessions, 2);
        let task = tokio::spawn(run(
            Box::new(Measured),
            policy,
            tx,
            clock,
            counters,
            0,
            10_000,
            done_rx,
            None,
            None,
            Some(book.clone()),
            shutdown,
        ));
        // Three readings, at 10, 20 and 30 s.
        tokio::time::sleep(Duration::from_millis(30_500)).await;
        trigger.trigger();
        task.await.unwrap();
        let s = book.snapshot();
        // 30 s awake at 3 W, 30 s of audio at 0.15 W, 3 frames of 0.4 J,
        // 2 satellite sessions of 60 J.
        let estimated = 90.0 + 4.5 + 1.2 + 120.0;
        assert!((s.total_wh - estimated / 3600.0).abs() < 1e-9, "{s:?}");
        // Measured: 3.5 W over the same 30 s.
        let ratio = s.ratio.unwrap_or(0.0);
        assert!((ratio - estimated / 105.0).abs() < 1e-9, "{ratio}");
        assert_eq!(
            s.per_consumer_text(),
            "idle=0.025 audio=0.001 camera=0.000 satellite=0.033"
        );
    }
}
