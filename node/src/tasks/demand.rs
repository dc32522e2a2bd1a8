//! [`CameraDemand`]: requests for the on-demand camera. Audio activity (the
//! detect task, when the audio trigger starts hearing something) and the
//! wake line (a PIR's rise) ask for it; the camera task, when the power
//! policy has the camera on demand, keeps it on for the policy's hold time
//! after the latest request.

use std::sync::Mutex;

use tokio::sync::Notify;

use super::Counters;

/// Who asked for the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemandSource {
    /// The audio trigger started hearing something.
    Audio,
    /// The wake line (a PIR) rose.
    WakeLine,
}

impl DemandSource {
    /// Stable lower-case name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DemandSource::Audio => "audio",
            DemandSource::WakeLine => "wake_line",
        }
    }
}

/// The latest request for the camera, shared by the requesters and the
/// camera task.
#[derive(Debug, Default)]
pub struct CameraDemand {
    last_ms: Mutex<Option<i64>>,
    notify: Notify,
}

impl CameraDemand {
    /// A request from `source` at `t_ms` (the node's clock), counted in
    /// `counters`; wakes the camera task.
    pub fn request(&self, source: DemandSource, t_ms: i64, counters: &Counters) {
        {
            let mut last = self.last_ms.lock().unwrap_or_else(|e| e.into_inner());
            *last = Some(last.map_or(t_ms, |l| l.max(t_ms)));
        }
        Counters::add(
            match source {
                DemandSource::Audio => &counters.camera_requests_audio,
                DemandSource::WakeLine => &counters.camera_requests_wake_line,
            },
            1,
        );
        tracing::debug!(source = source.as_str(), t_ms, "camera requested");
        self.notify.notify_one();
    }

    /// The time of the latest request, if any.
    pub fn last_ms(&self) -> Option<i64> {
        *self.last_ms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes at the next request (or at once when one came since the
    /// last wait).
    pub async fn requested(&self) {
        self.notify.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_by_source_and_keep_the_latest_time() {
        let counters = Counters::default();
        let d = CameraDemand::default();
        assert_eq!(d.last_ms(), None);
        d.request(DemandSource::Audio, 5_000, &counters);
        // A request made before one already in (a late audio chunk) does
        // not move the time back.
        d.request(DemandSource::WakeLine, 4_000, &counters);
        assert_eq!(d.last_ms(), Some(5_000));
        // The wake-up is kept for the next wait.
        d.requested().await;
        assert_eq!(Counters::get(&counters.camera_requests_audio), 1);
        assert_eq!(Counters::get(&counters.camera_requests_wake_line), 1);
    }
}
