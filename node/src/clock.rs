//! Time for the event loop. Every task asks the injected [`Clock`] what time it
//! is and sleeps until a time of the clock, so that real time, a scene replayed
//! at any speed, and a test with tokio's paused time behave the same.
//!
//! Replay "as fast as possible" is the same [`ReplayClock`] run on a
//! current-thread runtime with tokio's clock paused: tokio then jumps to the
//! next timer whenever every task is waiting, so the pipeline sees exactly the
//! sequence of times it would see in real time.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A source of UTC time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now_ms(&self) -> i64;
    /// Completes when the clock reaches `t_ms` (at once if it already has).
    fn sleep_until(&self, t_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
    /// Another source's time, now, with its uncertainty (scene time and
    /// the plain system clock ignore it; see [`crate::timekeeping`]).
    fn offer_reference(
        &self,
        _source: crate::timekeeping::guarded::ReferenceSource,
        _unix_ms: i64,
        _uncertainty_ms: u32,
    ) {
    }
    /// An event at `t_ms` was made durable (raises the time floor).
    fn event_stored(&self, _t_ms: i64) {}
    /// How far the clock can be trusted, where it judges itself.
    fn report(&self) -> Option<crate::timekeeping::ClockReport> {
        None
    }
    /// The time to record for an event that started at `t_ms` (a time this
    /// clock handed out), and its quality. A clock that judges itself
    /// corrects a time handed out while it was untrusted once trusted time
    /// has arrived.
    fn stamp(&self, t_ms: i64) -> (i64, messages::TimeQuality) {
        (t_ms, messages::TimeQuality::default())
    }
    /// [`Clock::stamp`], with the event's place on the monotonic clock of
    /// this boot while the time is untrusted (a clock that does not judge
    /// itself has none).
    fn stamp_mono(&self, t_ms: i64) -> (i64, messages::TimeQuality, Option<messages::MonoRef>) {
        let (t, q) = self.stamp(t_ms);
        (t, q, None)
    }
}

/// Scene time: the scene's start plus the elapsed tokio time times a speed.
#[derive(Debug, Clone)]
pub struct ReplayClock {
    start_ms: i64,
    origin: Instant,
    speed: f64,
}

impl ReplayClock {
    /// A clock that reads `start_ms` now and runs `speed` times faster than
    /// tokio's clock (which may be paused).
    pub fn new(start_ms: i64, speed: f64) -> Self {
        ReplayClock {
            start_ms,
            origin: Instant::now(),
            speed: if speed > 0.0 { speed } else { 1.0 },
        }
    }

    fn instant_of(&self, t_ms: i64) -> Instant {
        let scene_ms = (t_ms - self.start_ms).max(0) as f64;
        self.origin + Duration::from_secs_f64(scene_ms / 1000.0 / self.speed)
    }
}

impl Clock for ReplayClock {
    fn stamp(&self, t_ms: i64) -> (i64, messages::TimeQuality) {
        let quality = messages::TimeQuality {
            source: messages::TimeSource::Scene,
            ..Default::default()
        };
        (t_ms, quality)
    }

    fn now_ms(&self) -> i64 {
        let elapsed = self.origin.elapsed().as_secs_f64() * self.speed;
        self.start_ms + (elapsed * 1000.0) as i64
    }

    fn sleep_until(&self, t_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let at = self.instant_of(t_ms);
        Box::pin(tokio::time::sleep_until(at))
    }
}

/// The system's UTC clock, for real sensors.
#[derive(Debug, Clone, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_millis() as i64,
            Err(e) => -(e.duration().as_millis() as i64),
        }
    }

    fn sleep_until(&self, t_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = (t_ms - self.now_ms()).max(0) as u64;
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn replay_clock_follows_tokio_time_at_its_speed() {
        let c = ReplayClock::new(1_000_000, 10.0);
        assert_eq!(c.now_ms(), 1_000_000);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(c.now_ms(), 1_010_000);
        c.sleep_until(1_030_000).await;
        assert_eq!(c.now_ms(), 1_030_000);
        // A time in the past returns at once.
        c.sleep_until(0).await;
        assert_eq!(c.now_ms(), 1_030_000);
    }
}
