//! The status task: every `interval_ms`, one structured log line with each
//! sensor's health and the power state, so that a technician reading the log
//! (or, later, the uplink's status record) sees a degraded sensor without
//! waiting for the end of the run.

use std::sync::Arc;

use power::PowerStatus;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::sensors::health::HealthBoard;
use crate::shutdown::Shutdown;

/// Logs the status until shutdown.
pub async fn run(
    board: HealthBoard,
    power: watch::Receiver<PowerStatus>,
    clock: Arc<dyn Clock>,
    interval_ms: u64,
    mut shutdown: Shutdown,
) {
    let mut next = clock.now_ms() + interval_ms as i64;
    loop {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = clock.sleep_until(next) => {}
        }
        next += interval_ms as i64;
        let sensors = board.snapshot();
        let state = |name: &str| sensors.get(name).map_or("absent", |s| s.health.as_str());
        let p = power.borrow().clone();
        tracing::info!(
            audio = state("audio"),
            camera = state("camera"),
            climate = state("climate"),
            mode = p.mode.as_str(),
            soc = p.reading.soc,
            "status"
        );
    }
}
