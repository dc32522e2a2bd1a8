//! The status task: every `interval_ms`, one structured log line with each
//! sensor's health, the power state, the energy ledger (Wh per consumer,
//! and estimated over measured where the supply is measured) and the
//! detector's health counters (events cut at their maximum length, joined
//! into bouts, stored as `unknown`, heat rises put down to the sun), so
//! that a technician reading the log sees a degraded sensor or a trigger
//! that never lets go without waiting for the end of the run; and, when
//! the uplink is enabled, a status record (`messages::StatusRecord`) appended
//! to the outbox every `[uplink] status_interval_ms`. It stops at shutdown or
//! when every sensor has ended (a replay's clock means nothing after that).

use std::sync::Arc;

use power::PowerStatus;
use tokio::sync::watch;

use super::Counters;
use super::energy::EnergyBook;
use crate::clock::Clock;
use crate::sensors::health::HealthBoard;
use crate::shutdown::Shutdown;
use crate::uplink::StatusSource;

/// Status records to append: what they are built from and how often (ms).
pub type StatusRecords = Option<(StatusSource, u64)>;

fn log_status(
    board: &HealthBoard,
    power: &watch::Receiver<PowerStatus>,
    energy: Option<&EnergyBook>,
    counters: &Counters,
    shared: Option<&crate::uplink::SharedState>,
) {
    let sensors = board.snapshot();
    let state = |name: &str| sensors.get(name).map_or("absent", |s| s.health.as_str());
    let p = power.borrow().clone();
    let e = energy.map(EnergyBook::snapshot);
    tracing::info!(
        audio = state("audio"),
        camera = state("camera"),
        climate = state("climate"),
        mode = p.mode.as_str(),
        soc = p.reading.soc,
        energy_wh = e.as_ref().map_or(0.0, |e| e.total_wh),
        energy = %e.as_ref().map_or(String::new(), |e| e.per_consumer_text()),
        ledger_vs_measured = %e
            .as_ref()
            .and_then(|e| e.ratio)
            .map_or("unmeasured".to_string(), |r| format!("{r:.3}")),
        events_cut_at_max = Counters::get(&counters.events_cut_at_max),
        events_joined = Counters::get(&counters.events_joined),
        events_uncertain = Counters::get(&counters.events_uncertain),
        uncertain_background = Counters::get(&counters.uncertain_background),
        sun_heat_rises = Counters::get(&counters.sun_heat_rises),
        "status"
    );
    // The switched modem's upload windows, when it has them.
    if let Some(w) = shared.and_then(|s| s.uplink.windows()) {
        let last = w.last.as_ref();
        tracing::info!(
            windows = w.opened,
            windows_failed = w.failed,
            window_on_ms = w.on_ms,
            window_energy_j = w.energy_j,
            window_messages = w.messages,
            window_bytes = w.bytes,
            last_opened = last.map_or("none", |l| l.opened.as_str()),
            last_closed = last.map_or("none", |l| l.closed.as_str()),
            last_ms = last.map_or(0, |l| l.duration_ms),
            last_energy_j = last.map_or(0.0, |l| l.energy_j),
            last_messages = last.map_or(0, |l| l.messages),
            last_success = last.is_some_and(|l| l.success),
            "status: link windows"
        );
    }
}

/// Logs the status (and appends status records) until shutdown or until
/// `sensors_done` turns true.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    board: HealthBoard,
    power: watch::Receiver<PowerStatus>,
    clock: Arc<dyn Clock>,
    interval_ms: u64,
    records: StatusRecords,
    energy: Option<Arc<EnergyBook>>,
    counters: Arc<Counters>,
    mut sensors_done: watch::Receiver<bool>,
    mut shutdown: Shutdown,
) {
    let mut next_log = clock.now_ms() + interval_ms as i64;
    let mut next_record = records
        .as_ref()
        .map(|(_, every)| clock.now_ms() + *every as i64);
    loop {
        let next = next_record.map_or(next_log, |r| r.min(next_log));
        tokio::select! {
            _ = shutdown.wait() => return,
            r = sensors_done.wait_for(|done| *done) => {
                // Done, or the node dropped the sender: nothing more to report.
                let _ = r;
                return;
            }
            _ = clock.sleep_until(next) => {}
        }
        let now = clock.now_ms();
        if now >= next_log {
            next_log += interval_ms as i64;
            log_status(
                &board,
                &power,
                energy.as_deref(),
                &counters,
                records.as_ref().map(|(s, _)| &*s.shared),
            );
        }
        if let (Some((source, every)), Some(at)) = (&records, next_record.as_mut())
            && now >= *at
        {
            *at += *every as i64;
            let source = source.clone();
            match tokio::task::spawn_blocking(move || source.append(now)).await {
                Ok(Ok(s)) => tracing::debug!(id = s.id, queue = ?s.queue, "status record stored"),
                Ok(Err(e)) => tracing::error!(error = %e, "cannot store a status record"),
                Err(e) => tracing::error!(error = %e, "status record worker failed"),
            }
        }
    }
}
