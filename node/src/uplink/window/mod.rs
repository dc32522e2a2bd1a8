//! Upload windows of the switched cellular modem (`[power.loads.modem]`,
//! MQTT rides on it): the modem is powered only while a window is open.
//!
//! - A window **opens** when something is worth sending — an item at or
//!   above `min_priority`, an item older than `max_age_ms`, a status record,
//!   or a request (the field link's `UplinkFlush`, or the drain before an
//!   exit at the end of a scene) — the power policy allows
//!   [`power::Step::Uplink`], and `min_gap_ms` have passed since the last
//!   window closed (a request does not wait for the gap).
//! - Opening switches the modem on; after its settle time the window waits
//!   (polling every [`POLL`]) for the interface to be up with a route
//!   ([`netif`]); only then is it *up* and the MQTT client started. An
//!   interface not ready `interface_timeout_ms` after the settle time fails
//!   the window: the modem is switched off and the window counted failed.
//! - A window **closes** when nothing worth sending is left and nothing is
//!   in flight (`drained`; a window opened on request drains the whole
//!   outbox), at `max_window_ms` after the switch-on
//!   (`max_length`), when the policy withdraws the uplink
//!   (`power_denied`), or when the uplink stops (`stopped`).
//!
//! Each window's record ([`WindowRecord`]: why it opened and closed, how
//! long the modem was on, its energy at the load's `draw_mw`, the messages
//! and bytes delivered, success) and the totals ([`WindowStats`]) are what
//! the node reports; times are tokio's clock of the task that drives the
//! window.

pub mod config;
pub mod netif;

use std::path::PathBuf;
use std::time::Duration;

use messages::Message;
use power::{Load, SwitchedLoads};
use serde::Serialize;
use tokio::time::Instant;
use uplink::store::PendingItem;

pub use config::WindowConfig;

/// How often the interface is read while a window waits for it.
pub const POLL: Duration = Duration::from_millis(500);

/// Why a window opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenReason {
    /// An item at or above `min_priority` waits.
    Priority,
    /// An item has waited `max_age_ms`.
    Age,
    /// A status record waits.
    Status,
    /// Asked for (the field link's `UplinkFlush`).
    Request,
}

impl OpenReason {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OpenReason::Priority => "priority",
            OpenReason::Age => "age",
            OpenReason::Status => "status",
            OpenReason::Request => "request",
        }
    }
}

/// Why a window closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// What it was for went out.
    Drained,
    /// `max_window_ms` reached.
    MaxLength,
    /// The power policy withdrew the uplink.
    PowerDenied,
    /// The interface was not up with a route in time.
    InterfaceTimeout,
    /// The modem could not be switched on.
    SwitchFailed,
    /// The MQTT client could not start (its configuration or TLS files).
    LinkFailed,
    /// The uplink stopped.
    Stopped,
}

impl CloseReason {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Drained => "drained",
            CloseReason::MaxLength => "max_length",
            CloseReason::PowerDenied => "power_denied",
            CloseReason::InterfaceTimeout => "interface_timeout",
            CloseReason::SwitchFailed => "switch_failed",
            CloseReason::LinkFailed => "link_failed",
            CloseReason::Stopped => "stopped",
        }
    }
}

/// One window, once closed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowRecord {
    /// Why it opened.
    pub opened: OpenReason,
    /// Why it closed.
    pub closed: CloseReason,
    /// The modem's time on, from switch-on to switch-off, ms.
    pub duration_ms: u64,
    /// Its energy: `duration_ms` × the load's `draw_mw`, joules.
    pub energy_j: f64,
    /// The interface came up (the link could be used).
    pub link_up: bool,
    /// Items delivered in it.
    pub messages: u64,
    /// Their bytes (as stored).
    pub bytes: u64,
    /// It closed drained: what it opened for went out.
    pub success: bool,
}

/// Every window so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WindowStats {
    /// Windows opened (closed ones and the one open now).
    pub opened: u64,
    /// Closed without success.
    pub failed: u64,
    /// The modem's time on in closed windows, ms.
    pub on_ms: u64,
    /// Their energy, joules.
    pub energy_j: f64,
    /// Items delivered in windows.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The last closed window.
    pub last: Option<WindowRecord>,
}

impl WindowStats {
    fn add(&mut self, r: &WindowRecord) {
        if !r.success {
            self.failed += 1;
        }
        self.on_ms += r.duration_ms;
        self.energy_j += r.energy_j;
        self.messages += r.messages;
        self.bytes += r.bytes;
        self.last = Some(r.clone());
    }
}

/// What to open a window for, among `items` (a round's read of the outbox,
/// in sending order) at `now_ms` of the records' clock; `requested` when
/// one was asked for.
pub fn worth_sending(
    cfg: &WindowConfig,
    items: &[PendingItem],
    now_ms: i64,
    requested: bool,
) -> Option<OpenReason> {
    let max_age = i64::try_from(cfg.max_age_ms).unwrap_or(i64::MAX);
    if requested {
        Some(OpenReason::Request)
    } else if items.iter().any(|i| i.priority >= cfg.min_priority) {
        Some(OpenReason::Priority)
    } else if items
        .iter()
        .any(|i| now_ms.saturating_sub(i.time_ms) >= max_age)
    {
        Some(OpenReason::Age)
    } else if items
        .iter()
        .any(|i| matches!(i.message, Message::Status(_)))
    {
        Some(OpenReason::Status)
    } else {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    /// Switched on; waiting for the settle time, then the interface.
    Opening {
        ready_at: Instant,
        deadline: Instant,
    },
    /// The interface is up with a route.
    Up,
}

/// What [`Window::poll`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// Nothing changed; look again at this time.
    Wait(Instant),
    /// The interface just came up: start the link.
    Up,
    /// The window failed and is closed.
    Failed(WindowRecord),
    /// Closed, or up: nothing to wait for.
    Idle,
}

/// The cellular modem's windows (see the module documentation).
pub struct Window {
    cfg: WindowConfig,
    loads: SwitchedLoads,
    load: Load,
    draw_mw: f64,
    sys_root: PathBuf,
    phase: Phase,
    opened_at: Instant,
    reason: OpenReason,
    last_close: Option<Instant>,
    messages: u64,
    bytes: u64,
    stats: WindowStats,
}

impl Window {
    /// Windows of `load` in `loads` (`None` when it is not configured), its
    /// interface read under `sys_root`.
    pub fn new(
        cfg: WindowConfig,
        loads: &SwitchedLoads,
        load: Load,
        draw_mw: f64,
        sys_root: PathBuf,
    ) -> Option<Window> {
        loads.has(load).then(|| Window {
            cfg,
            loads: loads.clone(),
            load,
            draw_mw,
            sys_root,
            phase: Phase::Closed,
            opened_at: Instant::now(),
            reason: OpenReason::Request,
            last_close: None,
            messages: 0,
            bytes: 0,
            stats: WindowStats::default(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// A window is open (opening or up).
    pub fn is_open(&self) -> bool {
        self.phase != Phase::Closed
    }

    /// The interface is up: the link may be used.
    pub fn is_up(&self) -> bool {
        self.phase == Phase::Up
    }

    /// The figures so far.
    pub fn stats(&self) -> &WindowStats {
        &self.stats
    }

    /// When the gap after the last window ends (now or earlier when there
    /// was none).
    pub fn gap_ends(&self) -> Option<Instant> {
        self.last_close
            .map(|t| t + Duration::from_millis(self.cfg.min_gap_ms))
    }

    /// Why the open (or last) window opened.
    pub fn reason(&self) -> OpenReason {
        self.reason
    }

    /// Opens a window for `reason` if one may open now (closed, the gap
    /// over unless it was asked for, the policy allowing the uplink):
    /// switches the modem on.
    /// Returns the failed window's record when the switch refused.
    pub fn open_if_allowed(
        &mut self,
        reason: OpenReason,
        power_allows: bool,
    ) -> Result<bool, WindowRecord> {
        let now = Instant::now();
        let gap_holds = reason != OpenReason::Request && self.gap_ends().is_some_and(|t| now < t);
        if self.is_open() || !power_allows || gap_holds {
            return Ok(false);
        }
        self.opened_at = now;
        self.reason = reason;
        self.messages = 0;
        self.bytes = 0;
        self.stats.opened += 1;
        match self.loads.switch_on(self.load) {
            Ok(ready_at) => {
                let deadline = ready_at + Duration::from_millis(self.cfg.interface_timeout_ms);
                self.phase = Phase::Opening { ready_at, deadline };
                tracing::info!(
                    target: "uplink::window",
                    reason = reason.as_str(),
                    interface = %self.cfg.interface,
                    "link window opened: modem on"
                );
                Ok(true)
            }
            Err(_) => {
                // Logged and counted by the loads; the window is over.
                self.phase = Phase::Opening {
                    ready_at: now,
                    deadline: now,
                };
                Err(self.close(CloseReason::SwitchFailed))
            }
        }
    }

    /// Moves an opening window on: after the settle time, reads the
    /// interface; up with a route → [`Poll::Up`]; past the deadline → the
    /// window fails and closes.
    pub fn poll(&mut self) -> Poll {
        let Phase::Opening { ready_at, deadline } = self.phase else {
            return Poll::Idle;
        };
        let now = Instant::now();
        if now < ready_at {
            return Poll::Wait(ready_at);
        }
        let state = netif::read(&self.sys_root, &self.cfg.interface);
        if state.ready() {
            self.phase = Phase::Up;
            tracing::info!(
                target: "uplink::window",
                interface = %self.cfg.interface,
                after_ms = now.saturating_duration_since(self.opened_at).as_millis() as u64,
                "link window up: interface up with a route"
            );
            return Poll::Up;
        }
        if now >= deadline {
            tracing::warn!(
                target: "uplink::window",
                interface = %self.cfg.interface,
                operstate = state.operstate.as_deref().unwrap_or("absent"),
                route = state.route,
                timeout_ms = self.cfg.interface_timeout_ms,
                "link window failed: the interface did not come up with a route; modem off"
            );
            return Poll::Failed(self.close(CloseReason::InterfaceTimeout));
        }
        Poll::Wait((now + POLL).min(deadline))
    }

    /// When the driver should look at the window again: the next interface
    /// read, or the window's longest length.
    pub fn next_check(&self) -> Option<Instant> {
        let end = self.opened_at + Duration::from_millis(self.cfg.max_window_ms);
        match self.phase {
            Phase::Closed => None,
            Phase::Opening { ready_at, .. } => {
                let now = Instant::now();
                Some(if now < ready_at { ready_at } else { now + POLL }.min(end))
            }
            Phase::Up => Some(end),
        }
    }

    /// When the open window reaches `max_window_ms`; `None` while closed.
    pub fn ends_at(&self) -> Option<Instant> {
        self.is_open()
            .then(|| self.opened_at + Duration::from_millis(self.cfg.max_window_ms))
    }

    /// Why the open window should close now, if it should: the policy
    /// withdrew the uplink, its longest length is reached, or (once up)
    /// `drained`.
    pub fn should_close(&self, power_allows: bool, drained: bool) -> Option<CloseReason> {
        if !self.is_open() {
            return None;
        }
        if !power_allows {
            Some(CloseReason::PowerDenied)
        } else if Instant::now() >= self.opened_at + Duration::from_millis(self.cfg.max_window_ms) {
            Some(CloseReason::MaxLength)
        } else if drained && self.is_up() {
            Some(CloseReason::Drained)
        } else {
            None
        }
    }

    /// Items delivered in the open window.
    pub fn delivered(&mut self, messages: u64, bytes: u64) {
        if self.is_open() {
            self.messages += messages;
            self.bytes += bytes;
        }
    }

    /// Closes the window: switches the modem off and returns its record.
    /// The caller stops the link first.
    pub fn close(&mut self, reason: CloseReason) -> WindowRecord {
        let now = Instant::now();
        let link_up = self.is_up();
        let _ = self.loads.power_off(self.load);
        let on = now.saturating_duration_since(self.opened_at);
        let on = if reason == CloseReason::SwitchFailed {
            Duration::ZERO
        } else {
            on
        };
        let record = WindowRecord {
            opened: self.reason,
            closed: reason,
            duration_ms: u64::try_from(on.as_millis()).unwrap_or(u64::MAX),
            energy_j: power::loads::bank::energy_j(self.draw_mw, on),
            link_up,
            messages: self.messages,
            bytes: self.bytes,
            success: reason == CloseReason::Drained,
        };
        self.stats.add(&record);
        self.phase = Phase::Closed;
        self.last_close = Some(now);
        tracing::info!(
            target: "uplink::window",
            opened = record.opened.as_str(),
            closed = record.closed.as_str(),
            duration_ms = record.duration_ms,
            energy_j = record.energy_j,
            link_up = record.link_up,
            messages = record.messages,
            bytes = record.bytes,
            success = record.success,
            windows = self.stats.opened,
            failed = self.stats.failed,
            "link window closed: modem off"
        );
        record
    }
}

#[cfg(test)]
mod tests;
