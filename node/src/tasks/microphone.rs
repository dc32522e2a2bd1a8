//! The microphone task: forwards chunks to the detector until the stream ends,
//! fails for good, or shutdown. While the microphone is out (a transient
//! error: its driver is reopening it) the detector is told audio is
//! unavailable, and told again when it is back.
//!
//! Duty cycle: while the power policy publishes one ([`power::AudioDuty`],
//! critical mode), the microphone listens only in its windows. At the first
//! chunk that ends outside a window the capture is stopped
//! ([`Microphone::pause`]: the device's stream is closed) and the detector
//! is told audio is unavailable; at the next window (or when the policy
//! drops the duty cycle) the capture starts again and audio is available
//! from its first chunk. Nothing is recorded in between, so nothing is
//! dropped or made up. Stops and the time stopped are counted
//! (`audio_pauses`, `audio_paused_ms`).

use std::sync::Arc;

use fusion::Modality;
use power::PowerStatus;
use tokio::sync::{mpsc, watch};

use super::{Counters, SensorMsg};
use crate::clock::Clock;
use crate::sensors::Microphone;
use crate::shutdown::Shutdown;

/// Waits, with the capture stopped, until the duty cycle lets the
/// microphone listen again (its next window, or the policy dropping the
/// duty cycle). `false` on shutdown.
async fn wait_for_window(
    clock: &dyn Clock,
    power: &mut watch::Receiver<PowerStatus>,
    shutdown: &mut Shutdown,
) -> bool {
    let mut policy_open = true;
    loop {
        let duty = power.borrow_and_update().audio_duty;
        let now = clock.now_ms();
        let Some(duty) = duty.filter(|d| !d.listening_at(now)) else {
            return true;
        };
        let next = duty.next_start(now);
        tokio::select! {
            _ = shutdown.wait() => return false,
            _ = clock.sleep_until(next) => {}
            r = power.changed(), if policy_open => policy_open = r.is_ok(),
        }
    }
}

/// Runs until the microphone's stream ends or shutdown.
pub async fn run(
    mut mic: impl Microphone,
    tx: mpsc::Sender<SensorMsg>,
    clock: Arc<dyn Clock>,
    mut power: watch::Receiver<PowerStatus>,
    counters: Arc<Counters>,
    mut shutdown: Shutdown,
) {
    let mut available = true;
    loop {
        let duty = power.borrow().audio_duty;
        let now = clock.now_ms();
        if let Some(duty) = duty.filter(|d| !d.listening_at(now)) {
            mic.pause();
            Counters::add(&counters.audio_pauses, 1);
            tracing::debug!(
                sensor = "audio",
                listen_ms = duty.listen_ms,
                cycle_ms = duty.cycle_ms,
                resume_ms = duty.next_start(now),
                "microphone stopped until its next listening window"
            );
            if available {
                available = false;
                if tx
                    .send(SensorMsg::Available(Modality::Audio, false))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let go_on = wait_for_window(clock.as_ref(), &mut power, &mut shutdown).await;
            Counters::add(
                &counters.audio_paused_ms,
                (clock.now_ms() - now).max(0) as u64,
            );
            if !go_on {
                return;
            }
            tracing::debug!(sensor = "audio", "microphone listening");
        }
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use fusion::AudioChunk;
    use power::{PolicyConfig, PowerPolicy, PowerReading};

    use super::*;
    use crate::clock::ReplayClock;
    use crate::sensors::SensorError;

    const RATE: u32 = 1_000;
    const CHUNK_MS: i64 = 500;

    /// What the fake microphone saw: its stream running or stopped, with
    /// the clock's times.
    #[derive(Default)]
    struct Seen {
        pauses: Vec<i64>,
        /// Chunks delivered (start, end).
        chunks: Vec<(i64, i64)>,
        /// A chunk asked for while the capture was stopped that would have
        /// started before the call: a dropped or made-up sample.
        violations: u32,
    }

    /// A device whose stream runs on the clock: a chunk is delivered when
    /// its last sample is recorded. Stopped, it records nothing; started
    /// again, its first chunk starts at the time of the call.
    struct ClockMic {
        clock: Arc<dyn Clock>,
        next_start: Option<i64>,
        seen: Arc<Mutex<Seen>>,
        end_ms: i64,
    }

    impl Microphone for ClockMic {
        async fn next_chunk(&mut self) -> Result<Option<AudioChunk>, SensorError> {
            let now = self.clock.now_ms();
            let start = match self.next_start {
                Some(s) => s,
                None => now,
            };
            if start < now - CHUNK_MS {
                self.seen.lock().unwrap().violations += 1;
            }
            if start >= self.end_ms {
                return Ok(None);
            }
            let end = start + CHUNK_MS;
            self.clock.sleep_until(end).await;
            self.next_start = Some(end);
            self.seen.lock().unwrap().chunks.push((start, end));
            Ok(Some(AudioChunk {
                start_ms: start,
                sample_rate: RATE,
                samples: vec![0.01; (CHUNK_MS as u32 * RATE / 1000) as usize],
            }))
        }

        fn pause(&mut self) {
            self.next_start = None;
            self.seen.lock().unwrap().pauses.push(self.clock.now_ms());
        }
    }

    fn status(soc: f64) -> PowerStatus {
        PowerPolicy::new(PolicyConfig {
            critical_audio_listen_s: 2,
            critical_audio_cycle_s: 6,
            ..PolicyConfig::default()
        })
        .update(PowerReading {
            t_ms: 0,
            soc,
            solar_w: 0.0,
            load_w: 3.0,
            battery_mv: None,
        })
    }

    struct Run {
        seen: Arc<Mutex<Seen>>,
        counters: Arc<Counters>,
        msgs: Vec<(i64, String)>,
    }

    /// Runs the task on a fake microphone from scene time 0 to `end_ms`,
    /// with `power` published, and collects what it sent.
    async fn run_for(end_ms: i64, power: watch::Receiver<PowerStatus>) -> Run {
        let clock: Arc<dyn Clock> = Arc::new(ReplayClock::new(0, 1.0));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mic = ClockMic {
            clock: clock.clone(),
            next_start: None,
            seen: seen.clone(),
            end_ms,
        };
        let counters = Arc::new(Counters::default());
        let (tx, mut rx) = mpsc::channel(16);
        let (_trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(run(
            mic,
            tx,
            clock.clone(),
            power,
            counters.clone(),
            shutdown,
        ));
        let mut msgs = Vec::new();
        while let Some(m) = rx.recv().await {
            let what = match m {
                SensorMsg::Audio(c) => format!("chunk {}", c.start_ms),
                SensorMsg::Available(m, a) => format!("{} {a}", m.as_str()),
                SensorMsg::Closed(m) => format!("closed {}", m.as_str()),
                other => format!("{other:?}"),
            };
            msgs.push((clock.now_ms(), what));
        }
        task.await.unwrap();
        Run {
            seen,
            counters,
            msgs,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn in_critical_mode_the_microphone_listens_two_seconds_of_every_six_and_is_stopped_between()
     {
        let (_tx, rx) = watch::channel(status(0.05));
        let r = run_for(18_000, rx).await;
        let seen = r.seen.lock().unwrap();
        // Stopped at the end of each window's last chunk.
        assert_eq!(seen.pauses, [2_000, 8_000, 14_000]);
        assert_eq!(
            seen.chunks,
            [
                (0, 500),
                (500, 1_000),
                (1_000, 1_500),
                (1_500, 2_000),
                (6_000, 6_500),
                (6_500, 7_000),
                (7_000, 7_500),
                (7_500, 8_000),
                (12_000, 12_500),
                (12_500, 13_000),
                (13_000, 13_500),
                (13_500, 14_000),
            ]
        );
        assert_eq!(seen.violations, 0);
        assert_eq!(Counters::get(&r.counters.audio_ms), 6_000);
        assert_eq!(Counters::get(&r.counters.audio_pauses), 3);
        assert_eq!(
            Counters::get(&r.counters.audio_paused_ms),
            4_000 * 2 + 4_000
        );
        // The detector sees audio unavailable for each stop and available
        // again with the first chunk after it.
        let avail: Vec<_> = r
            .msgs
            .iter()
            .filter(|(_, m)| !m.starts_with("chunk "))
            .cloned()
            .collect();
        assert_eq!(
            avail,
            [
                (2_000, "audio false".to_string()),
                (6_500, "audio true".to_string()),
                (8_000, "audio false".to_string()),
                (12_500, "audio true".to_string()),
                (14_000, "audio false".to_string()),
                (18_000, "closed audio".to_string()),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn outside_critical_mode_the_microphone_is_never_stopped() {
        let (_tx, rx) = watch::channel(status(0.3));
        let r = run_for(10_000, rx).await;
        let seen = r.seen.lock().unwrap();
        assert!(seen.pauses.is_empty());
        assert_eq!(seen.chunks.len(), 20);
        assert_eq!(Counters::get(&r.counters.audio_ms), 10_000);
        assert_eq!(Counters::get(&r.counters.audio_pauses), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn leaving_critical_mode_starts_the_stopped_microphone_at_once() {
        let (tx, rx) = watch::channel(status(0.05));
        let clock = ReplayClock::new(0, 1.0);
        let change = tokio::spawn(async move {
            clock.sleep_until(3_000).await;
            tx.send_replace(status(0.5));
            // Kept open until the run ends.
            clock.sleep_until(20_000).await;
        });
        let r = run_for(8_000, rx).await;
        change.abort();
        let seen = r.seen.lock().unwrap();
        assert_eq!(seen.pauses, [2_000]);
        // Listening again from 3 s, not from the next window at 6 s.
        assert_eq!(seen.chunks[4], (3_000, 3_500));
        assert_eq!(seen.chunks.len(), 4 + 10);
        assert_eq!(Counters::get(&r.counters.audio_paused_ms), 1_000);
    }
}
