//! What the running uplink shares with the field link: its link states,
//! delivery counters and the last scheduler round, written by the uplink
//! task as they change and read by the link's `UplinkStatus`,
//! `OutboxStats` and `UplinkFlush`; and a way to ask it for a round now.
//! Counters are atomics; the link states sit behind one short lock that
//! neither side holds across anything else.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use messages::link::{LinkState, UplinkInfo, UplinkRound, UplinkStatusReply};
use tokio::sync::Notify;
use uplink::scheduler::Action;

/// One link as the uplink last saw it.
#[derive(Debug, Default, Clone)]
struct LinkView {
    configured: bool,
    up: bool,
    last_success_ms: Option<i64>,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Links {
    mqtt: LinkView,
    sbd: LinkView,
    /// Satellite credits left (day, month), as the modem task last said.
    sbd_credits: Option<(u32, u32)>,
    /// The power policy denied the last round.
    held: Option<String>,
    last_round: Option<UplinkRound>,
}

/// The uplink's live state (see the module docs).
#[derive(Debug, Default)]
pub struct UplinkLive {
    running: AtomicBool,
    delivered: AtomicU64,
    rounds: AtomicU64,
    waker: OnceLock<Arc<Notify>>,
    links: Mutex<Links>,
    /// A window of the switched modem was asked for (`flush`).
    window_requested: AtomicBool,
    /// The switched modem's windows, when it has them.
    windows: Mutex<Option<super::window::WindowStats>>,
}

impl UplinkLive {
    fn links(&self) -> MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The uplink task started, with these links configured.
    pub fn started(&self, mqtt: bool, sbd: bool) {
        let mut l = self.links();
        l.mqtt.configured = mqtt;
        l.sbd.configured = sbd;
        self.running.store(true, Ordering::Relaxed);
    }

    /// The uplink task stopped.
    pub fn stopped(&self) {
        self.running.store(false, Ordering::Relaxed);
    }

    /// True while the uplink task runs.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// The uplink's wake-up (a round runs when it is notified).
    pub fn set_waker(&self, wake: Arc<Notify>) {
        let _ = self.waker.set(wake);
    }

    /// Asks the running uplink for a round now (and, with a switched
    /// modem, for a window, which then drains the outbox); false when it
    /// does not run.
    pub fn flush(&self) -> bool {
        match self.waker.get() {
            Some(w) if self.is_running() => {
                self.window_requested.store(true, Ordering::Relaxed);
                w.notify_one();
                true
            }
            _ => false,
        }
    }

    /// Whether a window was asked for since the last call.
    pub fn take_window_request(&self) -> bool {
        self.window_requested.swap(false, Ordering::Relaxed)
    }

    /// The switched modem's windows so far.
    pub fn set_windows(&self, stats: super::window::WindowStats) {
        *self.windows.lock().unwrap_or_else(|p| p.into_inner()) = Some(stats);
    }

    /// The switched modem's windows so far; `None` without one.
    pub fn windows(&self) -> Option<super::window::WindowStats> {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// MQTT connected.
    pub fn mqtt_up(&self) {
        let mut l = self.links();
        l.mqtt.up = true;
        l.mqtt.last_error = None;
    }

    /// MQTT lost or failed to connect.
    pub fn mqtt_down(&self, error: &dyn std::fmt::Display) {
        let mut l = self.links();
        l.mqtt.up = false;
        l.mqtt.last_error = Some(error.to_string());
    }

    /// MQTT delivered items at `t_ms`.
    pub fn mqtt_delivered(&self, t_ms: i64) {
        let mut l = self.links();
        l.mqtt.last_success_ms = l.mqtt.last_success_ms.max(Some(t_ms));
    }

    /// The satellite modem answered (signal and credits).
    pub fn sbd_ready(&self, credits: (u32, u32)) {
        let mut l = self.links();
        l.sbd.up = true;
        l.sbd.last_error = None;
        l.sbd_credits = Some(credits);
    }

    /// The satellite modem is unavailable.
    pub fn sbd_down(&self, error: &dyn std::fmt::Display) {
        let mut l = self.links();
        l.sbd.up = false;
        l.sbd.last_error = Some(error.to_string());
    }

    /// A satellite message was delivered at `t_ms`.
    pub fn sbd_delivered(&self, t_ms: i64) {
        let mut l = self.links();
        l.sbd.last_success_ms = l.sbd.last_success_ms.max(Some(t_ms));
    }

    /// `n` items were confirmed delivered and left the outbox.
    pub fn delivered(&self, n: usize) {
        self.delivered.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Items delivered since the node started.
    pub fn delivered_total(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Records what a scheduler round decided.
    pub fn round(&self, action: &Action) {
        let (name, items, detail) = match action {
            Action::SendMqtt { ids } => ("mqtt", ids.len(), String::new()),
            Action::SendSbd { ids, .. } => ("sbd", ids.len(), String::new()),
            Action::Wait { reason } => ("wait", 0, reason.to_string()),
            Action::Skip { reason } => ("held", 0, reason.clone()),
        };
        let mut l = self.links();
        l.held = matches!(action, Action::Skip { .. }).then(|| detail.clone());
        l.last_round = Some(UplinkRound {
            action: name.into(),
            items: u32::try_from(items).unwrap_or(u32::MAX),
            detail,
        });
        drop(l);
        self.rounds.fetch_add(1, Ordering::Relaxed);
    }

    /// Rounds decided so far.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// What the last round decided.
    pub fn last_round(&self) -> Option<UplinkRound> {
        self.links().last_round.clone()
    }

    /// The links as `UplinkStatus` reports them.
    pub fn status(&self) -> UplinkStatusReply {
        let l = self.links();
        let running = self.is_running();
        let info = |name: &str, v: &LinkView| UplinkInfo {
            link: name.into(),
            state: match (running && v.configured, &l.held, v.up) {
                (false, _, _) => LinkState::Disabled,
                (true, Some(_), _) => LinkState::Held,
                (true, None, true) => LinkState::Up,
                (true, None, false) => LinkState::Down,
            },
            last_success_ms: v.last_success_ms,
            last_error: v.last_error.clone(),
        };
        UplinkStatusReply {
            links: vec![info("mqtt", &l.mqtt), info("sbd", &l.sbd)],
            sbd_credits_left: l
                .sbd_credits
                .filter(|_| l.sbd.configured)
                .map(|(day, month)| day.min(month)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_state_follows_the_uplink() {
        let live = UplinkLive::default();
        // Not running: every link disabled, nothing to flush.
        assert!(
            live.status()
                .links
                .iter()
                .all(|l| l.state == LinkState::Disabled)
        );
        assert!(!live.flush());
        live.set_waker(Arc::new(Notify::new()));
        live.started(true, false);
        assert!(live.flush());
        live.mqtt_down(&"connection refused");
        let s = live.status();
        assert_eq!(s.links[0].state, LinkState::Down);
        assert_eq!(s.links[0].last_error.as_deref(), Some("connection refused"));
        assert_eq!(s.links[1].state, LinkState::Disabled);
        assert_eq!(s.sbd_credits_left, None);
        live.mqtt_up();
        live.mqtt_delivered(5_000);
        live.mqtt_delivered(4_000);
        live.delivered(3);
        live.round(&Action::SendMqtt { ids: vec![1, 2, 3] });
        let s = live.status();
        assert_eq!(s.links[0].state, LinkState::Up);
        assert_eq!(s.links[0].last_success_ms, Some(5_000));
        assert_eq!(live.delivered_total(), 3);
        assert_eq!(live.rounds(), 1);
        assert_eq!(
            live.last_round().map(|r| (r.action, r.items)),
            Some(("mqtt".into(), 3))
        );
        live.round(&Action::Skip {
            reason: "battery low".into(),
        });
        assert_eq!(live.status().links[0].state, LinkState::Held);
        assert_eq!(
            live.last_round().map(|r| r.detail),
            Some("battery low".into())
        );
        assert!(live.take_window_request(), "a flush asks for a window");
        assert!(!live.take_window_request());
        assert_eq!(live.windows(), None);
        live.stopped();
        assert!(!live.flush());
        assert!(!live.take_window_request());
    }
}
