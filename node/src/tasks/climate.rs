//! The climate task: one reading per interval that the power policy sets.

use std::sync::Arc;

use fusion::Modality;
use power::PowerStatus;
use tokio::sync::{mpsc, watch};

use super::{Counters, SensorMsg};
use crate::clock::Clock;
use crate::sensors::ClimateSensor;
use crate::shutdown::Shutdown;

/// Runs until the sensor ends, fails, `until_ms`, or shutdown. Readings are
/// taken at scheduled times from `first_ms` on, so replays are exact at any speed.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut sensor: impl ClimateSensor,
    tx: mpsc::Sender<SensorMsg>,
    clock: Arc<dyn Clock>,
    power: watch::Receiver<PowerStatus>,
    counters: Arc<Counters>,
    first_ms: i64,
    until_ms: Option<i64>,
    mut shutdown: Shutdown,
) {
    let mut now = first_ms;
    clock.sleep_until(now).await;
    loop {
        if until_ms.is_some_and(|end| now >= end) {
            let _ = tx.send(SensorMsg::Closed(Modality::Climate)).await;
            return;
        }
        let interval = power.borrow().climate_interval_ms;
        match sensor.read(now) {
            Ok(Some(sample)) => {
                Counters::add(&counters.climate_readings, 1);
                if tx.send(SensorMsg::Climate(sample)).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                tracing::info!(sensor = "climate", "stream ended");
                let _ = tx.send(SensorMsg::Closed(Modality::Climate)).await;
                return;
            }
            Err(e) => {
                Counters::add(&counters.sensor_errors, 1);
                tracing::error!(sensor = "climate", error = %e, "climate sensor failed; detection goes on without it");
                let _ = tx.send(SensorMsg::Closed(Modality::Climate)).await;
                return;
            }
        }
        let next = now + interval as i64;
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = clock.sleep_until(next) => {}
        }
        now = next;
    }
}
