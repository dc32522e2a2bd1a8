//! The wake line task: reads `[power.sleep.wake_line]` (a PIR's output, for
//! example) every `poll_ms` while the node runs, debounces it
//! (`debounce_ms`, [`power::loads::Debouncer`]), counts each rise
//! (`wake_line_triggers`) and asks for the on-demand camera
//! ([`CameraDemand`]). The line starts as released, so a line already
//! asserted when the node starts (the PIR that woke it) is a rise too.
//!
//! A line that cannot be read is a health state (`wake_line` on the health
//! board: degraded with the reason, logged when it changes, each failed
//! read counted as `read`), never a crash: the task keeps reading, and the
//! line is ok again at its next good read.

use std::sync::Arc;

use power::loads::{Debouncer, InputLine, InputLineConfig};

use super::Counters;
use super::demand::{CameraDemand, DemandSource};
use crate::clock::Clock;
use crate::sensors::health::HealthHandle;
use crate::shutdown::Shutdown;

/// Runs until shutdown.
pub async fn run(
    mut line: Box<dyn InputLine>,
    cfg: InputLineConfig,
    demand: Arc<CameraDemand>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    health: HealthHandle,
    mut shutdown: Shutdown,
) {
    let mut debouncer = Debouncer::new(cfg.debounce_ms, false);
    let poll = cfg.poll_ms.max(1) as i64;
    let mut now = clock.now_ms();
    health.set_ok();
    loop {
        match line.is_active() {
            Ok(level) => {
                health.set_ok();
                if debouncer.read(now, level) == Some(true) {
                    Counters::add(&counters.wake_line_triggers, 1);
                    tracing::info!(
                        pin = cfg.pin,
                        triggers = Counters::get(&counters.wake_line_triggers),
                        "wake line asserted"
                    );
                    demand.request(DemandSource::WakeLine, now, &counters);
                }
            }
            Err(e) => {
                health.count("read");
                health.set_degraded(format!("cannot read GPIO {}: {e}", cfg.pin));
            }
        }
        let next = now + poll;
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = clock.sleep_until(next) => now = next,
        }
    }
}

#[cfg(test)]
mod tests {
    use power::loads::{FakeInput, Pull};

    use super::*;
    use crate::clock::ReplayClock;
    use crate::sensors::health::{Health, HealthBoard};

    fn cfg() -> InputLineConfig {
        InputLineConfig {
            pin: 22,
            active_low: false,
            pull: Pull::Down,
            poll_ms: 50,
            debounce_ms: 100,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn rises_are_debounced_counted_and_ask_for_the_camera_and_a_failing_line_is_a_health_state()
     {
        let clock: Arc<dyn Clock> = Arc::new(ReplayClock::new(0, 1.0));
        let pir = FakeInput::new();
        let demand = Arc::new(CameraDemand::default());
        let counters = Arc::new(Counters::default());
        let board = HealthBoard::default();
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(run(
            Box::new(pir.clone()),
            cfg(),
            demand.clone(),
            clock.clone(),
            counters.clone(),
            board.sensor("wake_line"),
            shutdown,
        ));
        // A 60 ms blip: a bounce, not a detection.
        clock.sleep_until(1_000).await;
        pir.set(true);
        clock.sleep_until(1_060).await;
        pir.set(false);
        clock.sleep_until(2_000).await;
        assert_eq!(demand.last_ms(), None);
        // A PIR detection: high for 2.5 s.
        clock.sleep_until(3_010).await;
        pir.set(true);
        clock.sleep_until(5_510).await;
        pir.set(false);
        // Read high at 3050, held until 3150.
        assert_eq!(demand.last_ms(), Some(3_150));
        assert_eq!(Counters::get(&counters.wake_line_triggers), 1);
        assert_eq!(Counters::get(&counters.camera_requests_wake_line), 1);
        // The line fails: degraded, not ended; back at its next good read.
        clock.sleep_until(6_000).await;
        pir.fail(true);
        clock.sleep_until(7_000).await;
        let h = board.sensor("wake_line").snapshot();
        assert!(matches!(h.health, Health::Degraded { .. }), "{h:?}");
        assert_eq!(h.outages, 1, "one outage however many failed reads");
        assert!(h.errors.get("read").copied().unwrap_or(0) >= 19, "{h:?}");
        pir.fail(false);
        pir.set(true);
        clock.sleep_until(8_000).await;
        assert!(board.sensor("wake_line").is_ok());
        assert_eq!(Counters::get(&counters.wake_line_triggers), 2);
        trigger.trigger();
        task.await.unwrap();
    }
}
