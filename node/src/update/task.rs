//! The update task: looks in `<data_dir>/incoming/` for bundles (`*.fnb`,
//! oldest name first), offers each to the [`Installer`], and runs a model's
//! trial through the detection stage. A deferred bundle stays for the next
//! look; a refused or finished one is removed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use power::PowerStatus;
use tokio::sync::{mpsc, oneshot, watch};

use super::install::{Installer, Offer};
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
            Counters::add(&counters.updates_refused, 1);
            tracing::warn!(kind = %o.kind, name = %o.name, version = o.version, result = %o.result, reason = %o.reason, "update not installed");
        }
    }
}

/// Runs until shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    installer: Arc<Mutex<Installer>>,
    incoming: PathBuf,
    scan_interval_ms: u64,
    power: watch::Receiver<PowerStatus>,
    swaps: mpsc::Sender<ModelSwap>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    mut shutdown: Shutdown,
) {
    let mut last_deferral: Option<String> = None;
    loop {
        for path in pending(&incoming) {
            let status = power.borrow().clone();
            let temp = counters.air_temp_c();
            let now = clock.now_ms();
            let inst = installer.clone();
            let p = path.clone();
            let offered = tokio::task::spawn_blocking(move || {
                let mut i = inst.lock().unwrap_or_else(|e| e.into_inner());
                match std::fs::File::open(&p) {
                    Ok(f) => Some(i.offer(f, &status, temp, now)),
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
            let o = offer.outcome().clone();
            match offer {
                Offer::Deferred(o) => {
                    if last_deferral.as_deref() != Some(o.reason.as_str()) {
                        report(&o, &counters);
                        last_deferral = Some(o.reason.clone());
                    }
                    Counters::add(&counters.updates_deferred, 1);
                    continue;
                }
                Offer::Refused(_) | Offer::Settings(_) => {
                    report(&o, &counters);
                    remove(&path);
                }
                Offer::Trial { model, meta, .. } => {
                    report(&o, &counters);
                    let (done_tx, done_rx) = oneshot::channel();
                    let bursts = installer.lock().map(|i| i.trial_bursts()).unwrap_or(1);
                    let swap = ModelSwap {
                        classifier: model,
                        bursts,
                        done: done_tx,
                    };
                    if swaps.send(swap).await.is_err() {
                        return;
                    }
                    let result = tokio::select! {
                        _ = shutdown.wait() => return,
                        r = done_rx => r,
                    };
                    let now = clock.now_ms();
                    let mut i = installer.lock().unwrap_or_else(|e| e.into_inner());
                    let o = match result {
                        Ok(TrialOutcome::Passed) => i.commit(&meta, now),
                        Ok(TrialOutcome::Failed(reason)) => {
                            i.roll_back(&meta, format!("trial: {reason}"), now)
                        }
                        // Detection stopped before the trial ended: the
                        // node is stopping. The trial stays on record and
                        // the next start rolls it back and offers the
                        // bundle again.
                        Err(_) => return,
                    };
                    drop(i);
                    report(&o, &counters);
                    remove(&path);
                }
            }
            last_deferral = None;
        }
        let next = clock.now_ms() + scan_interval_ms as i64;
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = clock.sleep_until(next) => {}
        }
    }
}
