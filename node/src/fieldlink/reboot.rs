//! `Reboot`: a technician's request to restart the node. The session
//! answers `Rebooting` first, then asks the node to stop after
//! [`REBOOT_DELAY_MS`]; the node stops exactly as on SIGTERM (every
//! detected event stored, the store flushed, the uplink stopped) and
//! `fieldnode run` exits with [`REBOOT_EXIT_CODE`], so that its service
//! manager starts it again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// The exit code of `fieldnode run` after a reboot asked over the field
/// link (`EX_TEMPFAIL` of `sysexits.h`: stopped, to be started again). A
/// service manager restarts the node on it (systemd: `Restart=on-failure`
/// or `Restart=always`).
pub const REBOOT_EXIT_CODE: u8 = 75;

/// How long after its reply the node starts stopping, ms: time for the
/// reply to leave a slow serial line.
pub const REBOOT_DELAY_MS: u32 = 250;

/// Shared between the link's sessions and the node's run: set once, never
/// cleared.
#[derive(Debug, Default)]
pub struct RebootRequest {
    requested: AtomicBool,
    notify: Notify,
}

impl RebootRequest {
    /// Asks the node to stop now.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Asks the node to stop after `delay` (on the caller's runtime).
    pub fn request_after(self: &Arc<Self>, delay: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.request();
        });
    }

    /// True once a reboot was asked.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Completes when a reboot is asked (at once if it was).
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_requested() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_wakes_the_waiter_once_and_for_all() {
        let r = Arc::new(RebootRequest::default());
        let waiter = tokio::spawn({
            let r = r.clone();
            async move { r.wait().await }
        });
        assert!(!r.is_requested());
        r.request_after(Duration::ZERO);
        waiter.await.unwrap();
        assert!(r.is_requested());
        // Already asked: completes at once.
        r.wait().await;
    }
}
