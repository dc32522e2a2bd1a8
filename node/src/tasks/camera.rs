//! The camera task: captures frames at the cadence the power policy allows,
//! and marks the camera unavailable while the policy has it off or the
//! device is out (a transient error: the driver retries at the next frame).
//! A device that blocks is called on tokio's blocking pool.

use std::sync::Arc;

use fusion::Modality;
use power::{PowerStatus, Step};
use tokio::sync::{mpsc, watch};

use super::{Counters, SensorMsg};
use crate::clock::Clock;
use crate::sensors::Camera;
use crate::shutdown::Shutdown;

/// Where the camera task stops on its own.
#[derive(Debug, Clone, Copy)]
pub struct CameraPlan {
    /// Time of the first capture. Captures happen at scheduled times, not at
    /// whatever time the task wakes up, so replays are exact at any speed.
    pub first_ms: i64,
    /// Stop at this time (the end of a replayed scene), if any.
    pub until_ms: Option<i64>,
    /// How often to look at the policy again while the camera is off, ms.
    pub recheck_ms: u64,
}

/// Captures one frame, on the blocking pool if the device blocks.
pub(crate) async fn capture<C: Camera>(
    camera: &Arc<std::sync::Mutex<C>>,
    t_ms: i64,
) -> Result<Option<fusion::GrayFrame>, crate::sensors::SensorError> {
    let lock = move |c: &std::sync::Mutex<C>| -> Result<Option<fusion::GrayFrame>, crate::sensors::SensorError> {
        let mut g = c.lock().unwrap_or_else(|p| p.into_inner());
        g.capture(t_ms)
    };
    let blocking = camera.lock().unwrap_or_else(|p| p.into_inner()).blocking();
    if !blocking {
        return lock(camera);
    }
    let c = camera.clone();
    match tokio::task::spawn_blocking(move || lock(&c)).await {
        Ok(r) => r,
        Err(e) => Err(crate::sensors::SensorError::Unavailable {
            sensor: "camera",
            reason: format!("capture did not complete: {e}"),
        }),
    }
}

/// Runs until the camera ends, fails for good, the plan's end, or shutdown.
pub async fn run(
    camera: impl Camera,
    tx: mpsc::Sender<SensorMsg>,
    clock: Arc<dyn Clock>,
    power: watch::Receiver<PowerStatus>,
    counters: Arc<Counters>,
    plan: CameraPlan,
    mut shutdown: Shutdown,
) {
    let camera = Arc::new(std::sync::Mutex::new(camera));
    let mut on = true;
    let mut device_ok = true;
    let mut now = plan.first_ms;
    clock.sleep_until(now).await;
    loop {
        if plan.until_ms.is_some_and(|end| now >= end) {
            let _ = tx.send(SensorMsg::Closed(Modality::Camera)).await;
            return;
        }
        let status = power.borrow().clone();
        let next = match (status.decide(Step::CameraFrame), status.camera_interval_ms) {
            (power::Decision::Allow, Some(interval)) => {
                if !on {
                    on = true;
                    tracing::info!(
                        sensor = "camera",
                        mode = status.mode.as_str(),
                        interval_ms = interval,
                        "camera back on"
                    );
                    if device_ok
                        && tx
                            .send(SensorMsg::Available(Modality::Camera, true))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                // A capture stuck in the driver must not hold up shutdown.
                let captured = tokio::select! {
                    _ = shutdown.wait() => return,
                    r = capture(&camera, now) => r,
                };
                match captured {
                    Ok(Some(frame)) => {
                        Counters::add(&counters.camera_frames, 1);
                        if !device_ok {
                            device_ok = true;
                            if tx
                                .send(SensorMsg::Available(Modality::Camera, true))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        if tx.send(SensorMsg::Frame(frame)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.is_transient() => {
                        Counters::add(&counters.sensor_errors, 1);
                        if device_ok {
                            device_ok = false;
                            tracing::warn!(sensor = "camera", error = %e, "camera out; detecting without it until it is back");
                            if tx
                                .send(SensorMsg::Available(Modality::Camera, false))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                    Ok(None) => {
                        tracing::info!(sensor = "camera", "stream ended");
                        let _ = tx.send(SensorMsg::Closed(Modality::Camera)).await;
                        return;
                    }
                    Err(e) => {
                        Counters::add(&counters.sensor_errors, 1);
                        tracing::error!(sensor = "camera", error = %e, "camera failed; detection goes on without it");
                        let _ = tx.send(SensorMsg::Closed(Modality::Camera)).await;
                        return;
                    }
                }
                now + interval as i64
            }
            (decision, _) => {
                Counters::add(&counters.camera_skipped, 1);
                if on {
                    on = false;
                    // Unavailable from now on whatever the device does; the
                    // device's state is known again at the next capture.
                    device_ok = true;
                    let reason = match decision {
                        power::Decision::Deny(why) => why,
                        power::Decision::Allow => "no camera cadence".into(),
                    };
                    tracing::warn!(step = Step::CameraFrame.as_str(), reason = %reason, "skipping camera frames");
                    if tx
                        .send(SensorMsg::Available(Modality::Camera, false))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                now + plan.recheck_ms as i64
            }
        };
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = clock.sleep_until(next) => {}
        }
        now = next;
    }
}
