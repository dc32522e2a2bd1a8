//! The microphone task: forwards chunks to the detector until the stream ends,
//! fails, or shutdown.

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
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => return,
            next = mic.next_chunk() => next,
        };
        let msg = match next {
            Ok(Some(chunk)) => {
                let ms = (chunk.samples.len() as u64 * 1000) / u64::from(chunk.sample_rate.max(1));
                Counters::add(&counters.audio_ms, ms);
                SensorMsg::Audio(chunk)
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
