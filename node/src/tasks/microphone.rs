//! The microphone task: forwards chunks to the detector until the stream ends,
//! fails for good, or shutdown. While the microphone is out (a transient
//! error: its driver is reopening it) the detector is told audio is
//! unavailable, and told again when it is back.

use std::sync::Arc;

use fusion::Modality;
use tokio::sync::mpsc;

use super::{Counters, SensorMsg};
use crate::sensors::Microphone;
use crate::shutdown::Shutdown;

/// Runs until the microphone's stream ends or shutdown.
pub async fn run(
    mut mic: impl Microphone,
    tx: mpsc::Sender<SensorMsg>,
    counters: Arc<Counters>,
    mut shutdown: Shutdown,
) {
    let mut available = true;
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => return,
            next = mic.next_chunk() => next,
        };
        let msg = match next {
            Ok(Some(chunk)) => {
                let ms = (chunk.samples.len() as u64 * 1000) / u64::from(chunk.sample_rate.max(1));
                Counters::add(&counters.audio_ms, ms);
                if !available {
                    available = true;
                    if tx
                        .send(SensorMsg::Available(Modality::Audio, true))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                SensorMsg::Audio(chunk)
            }
            Err(e) if e.is_transient() => {
                Counters::add(&counters.sensor_errors, 1);
                if !available {
                    continue;
                }
                available = false;
                tracing::warn!(sensor = "audio", error = %e, "microphone out; detecting without audio until it is back");
                SensorMsg::Available(Modality::Audio, false)
            }
            Ok(None) => {
                tracing::info!(sensor = "audio", "stream ended");
                let _ = tx.send(SensorMsg::Closed(Modality::Audio)).await;
                return;
            }
            Err(e) => {
                Counters::add(&counters.sensor_errors, 1);
                tracing::error!(sensor = "audio", error = %e, "microphone failed; detection goes on without audio");
                let _ = tx.send(SensorMsg::Closed(Modality::Audio)).await;
                return;
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}
