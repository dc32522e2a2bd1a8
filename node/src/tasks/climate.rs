//! The climate task: one reading per interval that the power policy sets.
//! While the sensor is out (a transient error: its driver re-probes it on
//! its own schedule) the detector is told climate is unavailable. A sensor
//! that blocks (an I2C transfer) is read on tokio's blocking pool.

use std::sync::Arc;

use fusion::Modality;
use power::PowerStatus;
use tokio::sync::{mpsc, watch};

use super::{Counters, SensorMsg};
use crate::clock::Clock;
use crate::sensors::ClimateSensor;
use crate::shutdown::Shutdown;

/// Takes one reading, on the blocking pool if the sensor blocks.
async fn read<S: ClimateSensor>(
    sensor: &Arc<std::sync::Mutex<S>>,
    t_ms: i64,
) -> Result<Option<fusion::ClimateSample>, crate::sensors::SensorError> {
    let once =
        move |s: &std::sync::Mutex<S>| s.lock().unwrap_or_else(|p| p.into_inner()).read(t_ms);
    if !sensor.lock().unwrap_or_else(|p| p.into_inner()).blocking() {
        return once(sensor);
    }
    let s = sensor.clone();
    match tokio::task::spawn_blocking(move || once(&s)).await {
        Ok(r) => r,
        Err(e) => Err(crate::sensors::SensorError::Unavailable {
            sensor: "climate",
            reason: format!("reading did not complete: {e}"),
        }),
    }
}

/// Runs until the sensor ends, fails for good, `until_ms`, or shutdown.
/// Readings are taken at scheduled times from `first_ms` on, so replays are
/// exact at any speed.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    sensor: impl ClimateSensor,
    tx: mpsc::Sender<SensorMsg>,
    clock: Arc<dyn Clock>,
    power: watch::Receiver<PowerStatus>,
    counters: Arc<Counters>,
    first_ms: i64,
    until_ms: Option<i64>,
    mut shutdown: Shutdown,
) {
    let sensor = Arc::new(std::sync::Mutex::new(sensor));
    let mut available = true;
    let mut now = first_ms;
    clock.sleep_until(now).await;
    loop {
        if until_ms.is_some_and(|end| now >= end) {
            let _ = tx.send(SensorMsg::Closed(Modality::Climate)).await;
            return;
        }
        let interval = power.borrow().climate_interval_ms;
        // A transfer stuck on the bus must not hold up shutdown.
        let reading = tokio::select! {
            _ = shutdown.wait() => return,
            r = read(&sensor, now) => r,
        };
        match reading {
            Ok(Some(sample)) => {
                counters.air_temp_c100.store(
                    (f64::from(sample.temperature_c) * 100.0).round() as i64,
                    std::sync::atomic::Ordering::Relaxed,
                );
                Counters::add(&counters.climate_readings, 1);
                if !available {
                    available = true;
                    if tx
                        .send(SensorMsg::Available(Modality::Climate, true))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if tx.send(SensorMsg::Climate(sample)).await.is_err() {
                    return;
                }
            }
            Err(e) if e.is_transient() => {
                Counters::add(&counters.sensor_errors, 1);
                if available {
                    available = false;
                    tracing::warn!(sensor = "climate", error = %e, "climate sensor out; detecting without it until it is back");
                    if tx
                        .send(SensorMsg::Available(Modality::Climate, false))
                        .await
                        .is_err()
                    {
                        return;
                    }
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
