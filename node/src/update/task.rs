//! The update task: looks in `<data_dir>/incoming/` for bundles (`*.fnb`,
//! oldest name first), offers each to the [`Installer`], and runs a model's
//! trial through the detection stage. A deferred bundle stays for the next
//! look; a refused or finished one is removed. Results go to the operator
//! through [`Reporter`] (a deferral once per bundle and kind of reason).
//! Each look first takes the refusals `fieldnode update apply` left, into
//! the install state and to the operator.
//! A bundle the field link pushed ([`Handoff`]) is looked at as soon as it
//! arrives; the link gets the result of its offer, and with the
//! technician's `force_power` the power policy is set aside when the node
//! sees an external supply ([`power::PowerReading::external_supply`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use power::PowerStatus;
use tokio::sync::{mpsc, oneshot, watch};

use super::handoff::Handoff;
use super::install::{Installer, Offer, Temperatures};
use super::live;
use super::report::{Origin, Reporter, origin, reason_kind};
use super::state::Outcome;
use crate::clock::Clock;
use crate::shutdown::Shutdown;
use crate::tasks::Counters;
use crate::tasks::detect::{ModelSwap, TrialOutcome};

/// The bundles waiting in `dir`, by name.
pub fn pending(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "fnb") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove a handled bundle");
    }
}

fn report(o: &Outcome, counters: &Counters) {
    match o.result.as_str() {
        "installed" => {
            Counters::add(&counters.updates_installed, 1);
            tracing::info!(kind = %o.kind, name = %o.name, version = o.version, reason = %o.reason, "update installed");
        }
        "deferred" => {
            tracing::info!(kind = %o.kind, name = %o.name, version = o.version, reason = %o.reason, "update deferred");
        }
        "on_trial" => {
            tracing::info!(kind = %o.kind, name = %o.name, version = o.version, reason = %o.reason, "update on trial");
        }
        _ => {
            counters.count_refusal(&o.result, &o.reason);
            tracing::warn!(kind = %o.kind, name = %o.name, version = o.version, result = %o.result, reason = %o.reason, "update not installed");
        }
    }
}

/// A model on trial in the detect stage, waiting for its outcome.
pub struct PendingTrial {
    meta: Box<models::bundle::Metadata>,
    path: PathBuf,
    origin: Origin,
    done: oneshot::Receiver<TrialOutcome>,
}

/// The update task's parts.
pub struct Updater {
    /// The installer, shared with the run summary.
    pub installer: Arc<Mutex<Installer>>,
    /// The drop folder.
    pub incoming: PathBuf,
    /// How often it is looked at, ms.
    pub scan_interval_ms: u64,
    /// The power policy's status.
    pub power: watch::Receiver<PowerStatus>,
    /// Where models go on trial.
    pub swaps: mpsc::Sender<ModelSwap>,
    /// The node's clock.
    pub clock: Arc<dyn Clock>,
    /// Counters (the enclosure temperature, update counts).
    pub counters: Arc<Counters>,
    /// The kind of reason each waiting bundle was last deferred for.
    deferrals: HashMap<PathBuf, String>,
    reporter: Option<Reporter>,
    live: Option<watch::Sender<live::Settings>>,
    handoff: Option<Arc<Handoff>>,
    soc_thermal_zone: Option<PathBuf>,
}

impl Updater {
    /// The parts of an update task.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        installer: Arc<Mutex<Installer>>,
        incoming: PathBuf,
        scan_interval_ms: u64,
        power: watch::Receiver<PowerStatus>,
        swaps: mpsc::Sender<ModelSwap>,
        clock: Arc<dyn Clock>,
        counters: Arc<Counters>,
    ) -> Updater {
        Updater {
            installer,
            incoming,
            scan_interval_ms,
            power,
            swaps,
            clock,
            counters,
            deferrals: HashMap::new(),
            reporter: None,
            live: None,
            handoff: None,
            soc_thermal_zone: None,
        }
    }

    /// Reads the SoC temperature for the install gate from `path` (a sysfs
    /// thermal zone, millidegrees).
    pub fn set_soc_thermal_zone(&mut self, path: PathBuf) {
        self.soc_thermal_zone = Some(path);
    }

    /// Takes bundles the field link hands over through `handoff`.
    pub fn set_handoff(&mut self, handoff: Arc<Handoff>) {
        self.handoff = Some(handoff);
    }

    /// Sends installed settings on `tx`, to apply while the node runs.
    pub fn set_live_settings(&mut self, tx: watch::Sender<live::Settings>) {
        self.live = Some(tx);
    }

    /// Reports results through `reporter` from now on, starting with the
    /// install state as it is (and a trial that a restart rolled back).
    pub async fn set_reporter(&mut self, reporter: Reporter) {
        let (state, rolled_back) = {
            let mut i = self.installer.lock().unwrap_or_else(|e| e.into_inner());
            let r = i.take_restart_rollback();
            (i.state().clone(), r)
        };
        reporter.set_state(&state);
        if let Some(o) = rolled_back {
            reporter
                .report(&state, &o, &Origin::default(), self.clock.now_ms())
                .await;
        }
        self.reporter = Some(reporter);
    }

    /// Sends a result to the operator (outbox and `update/status`).
    async fn send(&self, o: &Outcome, from: &Origin) {
        let Some(r) = &self.reporter else {
            return;
        };
        let state = self
            .installer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .state()
            .clone();
        r.report(&state, o, from, self.clock.now_ms()).await;
    }

    /// Offers every waiting bundle, oldest first, until one goes on trial
    /// (returned: its outcome comes from the detect stage) or none is left.
    /// The node runs one pass before its sensors start, so a bundle that
    /// waited for a restart is handled before the first event.
    pub async fn pass(&mut self) -> Option<PendingTrial> {
        // Refusals by `fieldnode update apply`: recorded and reported.
        let inst = self.installer.clone();
        let left = tokio::task::spawn_blocking(move || {
            inst.lock()
                .unwrap_or_else(|e| e.into_inner())
                .take_left_refusals()
        })
        .await
        .unwrap_or_default();
        for o in left {
            report(&o, &self.counters);
            self.send(&o, &Origin::default()).await;
        }
        let waiting = pending(&self.incoming);
        self.deferrals.retain(|p, _| waiting.contains(p));
        for path in waiting {
            let mut status = self.power.borrow().clone();
            let asked = self.handoff.as_ref().and_then(|h| h.take(&path));
            if let Some(a) = &asked
                && a.force_power
            {
                force_power(&mut status, &path);
            }
            let air_c = self.counters.air_temp_c();
            let zone = self.soc_thermal_zone.clone();
            let now = self.clock.now_ms();
            let inst = self.installer.clone();
            let p = path.clone();
            let offered = tokio::task::spawn_blocking(move || {
                let temps = Temperatures {
                    air_c,
                    soc_c: zone
                        .as_deref()
                        .and_then(crate::uplink::status::read_thermal_zone)
                        .map(|c100| f64::from(c100) / 100.0),
                };
                let mut i = inst.lock().unwrap_or_else(|e| e.into_inner());
                match std::fs::File::open(&p) {
                    Ok(f) => Some(i.offer(f, &status, temps, now)),
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "cannot open a bundle");
                        None
                    }
                }
            })
            .await;
            let Ok(Some(offer)) = offered else {
                continue;
            };
            let from = {
                let p = path.clone();
                tokio::task::spawn_blocking(move || origin(&p))
                    .await
                    .unwrap_or_default()
            };
            let o = offer.outcome().clone();
            if matches!(o.result.as_str(), "on_trial" | "installed" | "rolled_back") {
                Counters::add(&self.counters.installs, 1);
            }
            if let Some(a) = asked {
                // The link may have stopped waiting; the result is reported
                // below all the same.
                let _ = a.reply.send(o.clone());
            }
            match offer {
                Offer::Deferred(o) => {
                    let kind = reason_kind(&o.reason);
                    if self.deferrals.get(&path) != Some(&kind) {
                        report(&o, &self.counters);
                        self.send(&o, &from).await;
                        self.deferrals.insert(path.clone(), kind);
                    }
                    Counters::add(&self.counters.updates_deferred, 1);
                    continue;
                }
                Offer::Refused(_) => {
                    report(&o, &self.counters);
                    self.send(&o, &from).await;
                    remove(&path);
                }
                Offer::Settings(_, settings) => {
                    report(&o, &self.counters);
                    if let Some(tx) = &self.live {
                        tracing::info!(
                            version = settings.version,
                            "settings from a signed update applied while running"
                        );
                        tx.send_replace(Some(std::sync::Arc::new(*settings)));
                    }
                    self.send(&o, &from).await;
                    remove(&path);
                }
                Offer::Trial { model, meta, .. } => {
                    report(&o, &self.counters);
                    self.send(&o, &from).await;
                    let (done_tx, done_rx) = oneshot::channel();
                    let bursts = self.installer.lock().map(|i| i.trial_bursts()).unwrap_or(1);
                    let swap = ModelSwap {
                        classifier: model,
                        bursts,
                        done: done_tx,
                    };
                    if self.swaps.send(swap).await.is_err() {
                        return None;
                    }
                    return Some(PendingTrial {
                        meta,
                        path,
                        origin: from,
                        done: done_rx,
                    });
                }
            }
        }
        None
    }

    /// Waits for a trial's outcome and commits or rolls back. `false` when
    /// the node is stopping (the trial stays on record: the next start
    /// rolls it back and offers the bundle again).
    async fn finish(&mut self, trial: PendingTrial, shutdown: &mut Shutdown) -> bool {
        let result = tokio::select! {
            _ = shutdown.wait() => return false,
            r = trial.done => r,
        };
        let now = self.clock.now_ms();
        let o = {
            let mut i = self.installer.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(TrialOutcome::Passed) => i.commit(&trial.meta, now),
                Ok(TrialOutcome::Failed(reason)) => {
                    i.roll_back(&trial.meta, format!("trial: {reason}"), now)
                }
                Err(_) => return false,
            }
        };
        report(&o, &self.counters);
        self.send(&o, &trial.origin).await;
        remove(&trial.path);
        true
    }

    /// Runs until shutdown, starting with the trial of the first pass, if
    /// any.
    pub async fn run(mut self, first: Option<PendingTrial>, mut shutdown: Shutdown) {
        let mut trial = first;
        loop {
            if let Some(t) = trial.take()
                && !self.finish(t, &mut shutdown).await
            {
                return;
            }
            trial = self.pass().await;
            if trial.is_some() {
                continue;
            }
            let next = self.clock.now_ms() + self.scan_interval_ms as i64;
            let handoff = self.handoff.clone();
            let woken = async move {
                match handoff {
                    Some(h) => h.woken().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = self.clock.sleep_until(next) => {}
                _ = woken => {}
            }
        }
    }
}

/// Sets the power policy aside for one install the technician forced, when
/// the node sees an external supply; otherwise the policy decides as usual.
fn force_power(status: &mut PowerStatus, path: &Path) {
    if status.reading.external_supply() {
        if let power::Decision::Deny(why) = &status.install {
            tracing::warn!(path = %path.display(), policy = %why, solar_w = status.reading.solar_w, load_w = status.reading.load_w, "update: power policy set aside (force_power from the field link, external supply seen)");
        }
        status.install = power::Decision::Allow;
    } else {
        tracing::warn!(path = %path.display(), solar_w = status.reading.solar_w, load_w = status.reading.load_w, "update: force_power not applied: no external supply seen now");
    }
}

#[cfg(test)]
#[path = "task_tests.rs"]
mod tests;
