//! The uplink loop: one task that owns the MQTT link handle and its event
//! stream and the scheduler. A round (on a timer, when an item is stored,
//! when a link changes, on `flush_outbox`) asks the scheduler what to do
//! with the outbox's pending items minus those in flight; items leave the
//! outbox only when their PUBACK arrives (`confirm_delivered`, batched).
//! Items reported not delivered are re-sent from the outbox by a later
//! round.
//!
//! With `[uplink.sbd]`, the modem task (`super::sbd`) owns the satellite
//! link. While MQTT is down and items wait, a round asks it for the signal
//! (at most every `sbd_min_interval_ms`, and not more often than rounds);
//! on `SendSbd` the packed message goes to that task, one at a time. Its
//! ids count as in flight until the result comes back, so MQTT does not
//! send them meanwhile (simplest: one owner per item at a time). Only
//! `Delivered` confirms them; any other outcome leaves them in the outbox.
//! A message the gateway refuses for good because of the message (MO status
//! 12, 14) counts against each item it carried (`uplink::sbd::Quarantine`,
//! kept in `<data_dir>/sbd-refusals`): such an item goes again alone, and
//! after `max_permanent_failures` refusals it is quarantined, kept in the
//! outbox for MQTT and never again offered to the satellite. A locked modem
//! (16) counts against no item and is left alone for
//! `sbd_locked_retry_ms` before the next signal check. MT messages are
//! parsed as binary commands and obeyed like MQTT ones. With
//! `[power.loads.satellite]` the modem task powers the modem for its
//! requests only (`super::sbd`). Every session the modem ran is counted
//! (`Counters::sbd_sessions`) for the power task's energy accounting.
//!
//! With a switched modem (`super::window`), MQTT runs only inside upload
//! windows: before each round the window is moved on (opened when
//! something is worth sending, up once the interface is, closed when
//! drained, too long or denied); the MQTT client starts when it is up and
//! is shut down before the modem is switched off. Items acknowledged by
//! then are confirmed; every other item handed to MQTT goes back to
//! pending (nothing leaves the outbox without its PUBACK). While a window
//! is open the satellite carries nothing; between windows it carries what
//! may go by satellite, as when MQTT is down.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use messages::{Command, Message, Priority};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior};
use uplink::mqtt::{Kind, LinkEvent, MqttLink, OutgoingMessage, PayloadFormat};
use uplink::scheduler::{Action, CreditsLeft, NoRefusals, Round, SbdRefusals, SbdState, Scheduler};
use uplink::store::PendingItem;
use uplink::{EventStore, StoreError};

use super::sbd::{SbdReport, SbdRequest};
use super::window::{CloseReason, Poll, Window, worth_sending};
use super::{Control, NodeTime, StatusSource, UplinkConfig, UplinkOutcome, UplinkParts};
use uplink::mqtt::MqttConfig;

/// How far Iridium network time can be off as the node reads it: the
/// 90 ms frame it counts in, plus the serial round trip and the time the
/// report waits, with room to spare, ms.
const IRIDIUM_TIME_UNCERTAINTY_MS: u32 = 1_000;
/// Acknowledged items removed from the store in one durable change, at
/// least (`Uplink::confirm_due`).
const CONFIRM_GROUP: usize = 512;
/// Items in flight beyond one round's `mqtt_batch`, at most: room for one
/// group being removed and the next gathering. Past it a round sends
/// nothing by MQTT until a removal ends, so a store slower than the link
/// holds back the link instead of piling up acknowledged items (and the
/// memory of removing them in one change).
const IN_FLIGHT_SLACK: usize = 2 * CONFIRM_GROUP;

/// Credits left as the modem task last reported them (none before).
#[derive(Clone, Copy, Default)]
struct Credits((u32, u32));

impl CreditsLeft for Credits {
    fn credits_left(&self, _now_ms: i64) -> (u32, u32) {
        self.0
    }
}

/// The uplink's side of the satellite link.
struct Satellite {
    requests: tokio::sync::mpsc::Sender<SbdRequest>,
    task: tokio::task::JoinHandle<()>,
    state: SbdState,
    credits: Credits,
    /// Ids of the message being sent, if any.
    sending: Option<Vec<u64>>,
    signal_asked: bool,
    last_signal: Option<Instant>,
    /// `<data_dir>/sbd-last-session`: when the last session began, so that
    /// `sbd_min_interval_ms` also holds across restarts (a node in a
    /// brown-out reboot loop must not open a session at every boot).
    last_session_file: std::path::PathBuf,
    /// Items whose messages the gateway refused for good, and those
    /// quarantined (`<data_dir>/sbd-refusals`).
    quarantine: uplink::sbd::Quarantine,
    /// The last refusal said the modem is locked (MO status 16): when it
    /// said so. Cleared by a delivery. Logged when it starts and ends; no
    /// signal check until `sbd_locked_retry_ms` after it.
    locked: Option<Instant>,
}

/// The last session's start from `file`, no later than `now_ms` (a clock
/// that went back must not block the link for the difference). A missing or
/// unreadable file is no session.
fn read_last_session(file: &std::path::Path, now_ms: i64) -> Option<i64> {
    let text = std::fs::read_to_string(file).ok()?;
    match text.trim().parse::<i64>() {
        Ok(ms) => Some(ms.min(now_ms)),
        Err(e) => {
            tracing::warn!(path = %file.display(), error = %e, "satellite last-session file does not parse; ignored");
            None
        }
    }
}

pub(super) struct Uplink {
    cfg: UplinkConfig,
    store: Arc<EventStore>,
    power: watch::Receiver<power::PowerStatus>,
    status: StatusSource,
    time: NodeTime,
    scheduler: Scheduler,
    payload: PayloadFormat,
    mqtt_up: bool,
    sat: Option<Satellite>,
    /// Handed to a link, not yet confirmed or reported lost.
    /// Ids handed to a link and not yet removed, with their priority (so
    /// the removal looks up one index entry, not four).
    in_flight: HashMap<u64, Priority>,
    /// Acknowledged by the link, not yet removed from the store (gathered
    /// into groups, see `confirm_due`; also those whose removal failed).
    unconfirmed: Vec<u64>,
    /// The removal of acknowledged items running now, if any.
    confirming: Option<Confirming>,
    /// The last wait/skip reason logged at info, to log changes only.
    last_state: Option<String>,
    out: UplinkOutcome,
    incoming: std::path::PathBuf,
    update_cap: u64,
    /// `<prefix>/<node>/update` when MQTT is configured.
    update_topic: Option<String>,
    /// Progress reports waiting to be published on `update/status`.
    update_replies: Vec<Vec<u8>>,
    /// The switched loads when they include the satellite modem's.
    sat_loads: Option<power::SwitchedLoads>,
    /// The switched modem's windows, when MQTT rides on one.
    window: Option<Window>,
    /// The MQTT settings, for a link started in each window.
    mqtt_cfg: Option<MqttConfig>,
    /// Bytes of the items handed to MQTT in the open window.
    window_bytes: HashMap<u64, u64>,
}

/// A removal of delivered items running on the blocking pool.
struct Confirming {
    ids: Vec<u64>,
    handle: tokio::task::JoinHandle<Result<usize, StoreError>>,
}

/// The result of a removal started by `start_confirm`.
async fn join_removal(
    handle: tokio::task::JoinHandle<Result<usize, StoreError>>,
) -> Result<usize, String> {
    match handle.await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("store worker failed: {e}")),
    }
}

/// Waits for the running removal, or forever when none runs.
async fn removal_done(c: &mut Option<Confirming>) -> Result<usize, String> {
    match c {
        Some(c) => match (&mut c.handle).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("store worker failed: {e}")),
        },
        None => std::future::pending().await,
    }
}

/// Runs a blocking store call off the async thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("store worker failed: {e}")),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Uplink {
    pub(super) fn new(parts: UplinkParts) -> Uplink {
        let UplinkParts {
            cfg,
            store,
            power,
            status,
            time,
            incoming,
            update_cap,
            loads,
            sys_root,
        } = parts;
        let update_topic = cfg.mqtt.as_ref().map(|m| m.topics().update);
        let window = match (&loads, &cfg.mqtt) {
            (Some(l), Some(_)) => {
                let draw_mw = l
                    .report()
                    .loads
                    .get(power::Load::Modem.as_str())
                    .map_or(0.0, |s| s.draw_mw);
                Window::new(cfg.window.clone(), l, power::Load::Modem, draw_mw, sys_root)
            }
            _ => None,
        };
        let mqtt_cfg = window.as_ref().and(cfg.mqtt.clone());
        let sat_loads = loads.filter(|l| l.has(power::Load::Satellite));
        Uplink {
            sat_loads,
            scheduler: Scheduler::new(cfg.scheduler.clone()),
            payload: cfg
                .mqtt
                .as_ref()
                .map_or_else(Default::default, |m| m.payload),
            cfg,
            store,
            power,
            status,
            time,
            mqtt_up: false,
            sat: None,
            in_flight: HashMap::new(),
            unconfirmed: Vec::new(),
            confirming: None,
            last_state: None,
            out: UplinkOutcome::default(),
            incoming,
            update_cap,
            update_topic,
            update_replies: Vec::new(),
            mqtt_cfg,
            window,
            window_bytes: HashMap::new(),
        }
    }

    pub(super) async fn run(
        mut self,
        mqtt: Option<(MqttLink, UnboundedReceiver<LinkEvent>)>,
        wake: Arc<Notify>,
        mut control: watch::Receiver<Control>,
    ) -> UplinkOutcome {
        let (mut link, mut events) = match mqtt {
            Some((l, e)) => (Some(l), Some(e)),
            None => (None, None),
        };
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.round_interval_ms));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut expire_tick =
            tokio::time::interval(Duration::from_millis(self.cfg.expire_interval_ms));
        expire_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut drain_until: Option<Instant> = None;
        let mut round_due = true;
        let mut sbd_reports = None;
        if let Some(cfg) = self.cfg.sbd.clone() {
            let data_dir = self
                .store
                .dir()
                .parent()
                .map_or_else(|| std::path::PathBuf::from("."), |p| p.to_path_buf());
            let max_refusals = cfg.max_permanent_failures;
            let power = self
                .sat_loads
                .as_ref()
                .and_then(|l| super::sbd::SatellitePower::new(l, cfg.power_hold_ms));
            if power.is_some() {
                tracing::info!(
                    hold_ms = cfg.power_hold_ms,
                    "satellite modem switched: on for its sessions only"
                );
            }
            let (requests, reports, task) =
                super::sbd::spawn(cfg, data_dir.join("sbd-budget"), power);
            sbd_reports = Some(reports);
            let last_session_file = data_dir.join("sbd-last-session");
            if let Some(ms) = read_last_session(&last_session_file, self.time.now_ms()) {
                self.scheduler.sbd_session_started(ms);
                tracing::info!(
                    last_session_ms = ms,
                    "satellite minimum interval counts from the last session before the restart"
                );
            }
            let refusals_file = data_dir.join("sbd-refusals");
            let opened = uplink::sbd::Quarantine::open(&refusals_file, max_refusals);
            if let Some(e) = &opened.unreadable {
                tracing::warn!(error = %e, "satellite refusal counts unreadable; counting from none");
            }
            for (line, text) in &opened.bad_lines {
                tracing::warn!(path = %refusals_file.display(), line, text = %text, "satellite refusal count does not parse; ignored");
            }
            self.sat = Some(Satellite {
                requests,
                task,
                state: SbdState::Unavailable,
                credits: Credits::default(),
                sending: None,
                signal_asked: false,
                last_signal: None,
                last_session_file,
                quarantine: opened.quarantine,
                locked: None,
            });
            self.prune_quarantine().await;
            if let Some(q) = self.sat.as_ref().map(|s| &s.quarantine)
                && !q.ids().is_empty()
            {
                tracing::info!(
                    refused = q.ids().len(),
                    quarantined = q.quarantined(),
                    max_refusals = q.max_refusals(),
                    "satellite refusals carried over from before the restart"
                );
            }
        }
        tracing::info!(
            sbd = self.sat.is_some(),
            mqtt = link.is_some(),
            payload = ?self.payload,
            "uplink started"
        );
        self.status
            .shared
            .uplink
            .started(self.cfg.mqtt.is_some(), self.sat.is_some());
        self.publish_windows();
        loop {
            self.start_confirm();
            if round_due {
                round_due = false;
                self.window_step(&mut link, &mut events, drain_until.is_some())
                    .await;
                self.round(link.as_ref()).await;
            }
            let c = *control.borrow_and_update();
            match c {
                Control::Stop => break,
                Control::Drain if drain_until.is_none() => {
                    let wait = Duration::from_millis(self.cfg.drain_timeout_ms);
                    tracing::info!(
                        timeout_ms = self.cfg.drain_timeout_ms,
                        "uplink draining the outbox before exit"
                    );
                    drain_until = Some(Instant::now() + wait);
                }
                _ => {}
            }
            if let Some(until) = drain_until {
                if self.in_flight.is_empty() && self.unconfirmed.is_empty() && self.outbox_empty() {
                    tracing::info!("outbox drained");
                    break;
                }
                if Instant::now() >= until {
                    tracing::warn!(
                        left = self.outbox_len(),
                        in_flight = self.in_flight.len(),
                        "drain timeout: exiting with items still in the outbox"
                    );
                    break;
                }
            }
            // Handlers below never start a removal (only the top of the
            // loop does), so the one taken out here is the only one.
            let mut confirming = self.confirming.take();
            tokio::select! {
                r = removal_done(&mut confirming), if confirming.is_some() => {
                    if let Some(c) = confirming.take() {
                        self.confirmed(c.ids, r);
                    }
                    round_due = true;
                }
                ev = recv(&mut events) => match ev {
                    Some(ev) => {
                        round_due |= self.on_link_events(ev, &mut events).await;
                        self.publish_update_results(link.as_ref()).await;
                        if let Some(l) = link.as_ref() {
                            for payload in std::mem::take(&mut self.update_replies) {
                                let msg = OutgoingMessage {
                                    id: 0,
                                    kind: Kind::UpdateStatus,
                                    payload,
                                };
                                if l.send(msg).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    None => {
                        tracing::error!("the MQTT link stopped unexpectedly");
                        events = None;
                        self.mqtt_up = false;
                    }
                },
                rep = recv(&mut sbd_reports) => match rep {
                    Some(rep) => round_due |= self.on_sbd(rep).await,
                    None => {
                        tracing::error!("the satellite modem task stopped unexpectedly");
                        sbd_reports = None;
                        if let Some(sat) = self.sat.as_mut() {
                            sat.state = SbdState::Unavailable;
                        }
                    }
                },
                () = wake.notified() => round_due = true,
                () = self.status.shared.update.result_ready() => {
                    self.publish_update_results(link.as_ref()).await;
                }
                _ = tick.tick() => round_due = true,
                _ = expire_tick.tick() => self.expire().await,
                r = control.changed() => if r.is_err() { break },
                () = sleep_until(drain_until) => {}
                () = sleep_until(self.window.as_ref().and_then(Window::next_check)) => round_due = true,
            }
            if confirming.is_some() {
                self.confirming = confirming;
            }
        }
        self.shutdown(link, events).await
    }

    /// Publishes the update task's results on `update/status` while MQTT
    /// is up; they wait for the link otherwise (the status record of each
    /// result is in the outbox either way).
    async fn publish_update_results(&mut self, link: Option<&MqttLink>) {
        let Some(l) = link.filter(|_| self.mqtt_up) else {
            return;
        };
        let mut results = self.status.shared.update.take_results().into_iter();
        while let Some(p) = results.next() {
            let payload = match serde_json::to_vec(&p) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "update result does not serialise");
                    continue;
                }
            };
            let msg = OutgoingMessage {
                id: 0,
                kind: Kind::UpdateStatus,
                payload,
            };
            if l.send(msg).await.is_err() {
                let mut left = vec![p];
                left.extend(results);
                self.status.shared.update.put_back(left);
                return;
            }
            tracing::info!(transfer = %p.transfer, state = %p.state, version = p.version, "update result published on update/status");
        }
    }

    fn outbox_len(&self) -> u64 {
        self.store.queue_depth().iter().map(|&n| u64::from(n)).sum()
    }

    fn outbox_empty(&self) -> bool {
        self.outbox_len() == 0
    }

    async fn expire(&mut self) {
        let store = self.store.clone();
        let now = self.time.now_ms();
        if let Err(e) = blocking(move || store.expire(now)).await {
            tracing::error!(error = %e, "outbox expiry failed; retried later");
        }
        self.prune_quarantine().await;
    }

    /// Forgets the refusal counts of items no longer in the outbox
    /// (expired, evicted, or delivered before a restart).
    async fn prune_quarantine(&mut self) {
        let Some(ids) = self.sat.as_ref().map(|s| s.quarantine.ids()) else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let store = self.store.clone();
        let gone = blocking(move || {
            let mut gone = Vec::new();
            for id in ids {
                // A record that does not decode is still there.
                if matches!(store.get_message(id), Ok(None)) {
                    gone.push(id);
                }
            }
            Ok(gone)
        })
        .await;
        match gone {
            Ok(gone) if !gone.is_empty() => {
                tracing::debug!(
                    count = gone.len(),
                    "satellite refusals of items gone from the outbox forgotten"
                );
                self.forget_refusals(&gone);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check refused items against the outbox"),
        }
    }

    /// Forgets the refusal counts of `ids` (delivered, or gone), durably.
    fn forget_refusals(&mut self, ids: &[u64]) {
        let Some(sat) = self.sat.as_mut() else { return };
        if sat.quarantine.forget(ids)
            && let Err(e) = sat.quarantine.save()
        {
            tracing::warn!(error = %e, "cannot save the satellite refusal counts; they are kept in memory");
        }
    }

    /// Handles `first` and every event already queued behind it; delivery
    /// confirmations are batched into one durable store change. Returns
    /// whether a round should run.
    async fn on_link_events(
        &mut self,
        first: LinkEvent,
        events: &mut Option<UnboundedReceiver<LinkEvent>>,
    ) -> bool {
        let mut batch = vec![first];
        if let Some(rx) = events.as_mut() {
            while batch.len() < 1024
                && let Ok(e) = rx.try_recv()
            {
                batch.push(e);
            }
        }
        let mut delivered = Vec::new();
        let mut round = false;
        for ev in batch {
            match ev {
                LinkEvent::Delivered { id } => delivered.push(id),
                LinkEvent::Up => {
                    self.status.shared.uplink.mqtt_up();
                    self.mqtt_up = true;
                    round = true;
                }
                LinkEvent::Down { reason } => {
                    self.status.shared.uplink.mqtt_down(&reason);
                    self.mqtt_up = false;
                    tracing::debug!(error = %reason, "uplink: mqtt down");
                }
                LinkEvent::ConnectFailed { reason, retry_in } => {
                    self.status.shared.uplink.mqtt_down(&reason);
                    tracing::debug!(error = %reason, retry_ms = retry_in.as_millis() as u64, "uplink: mqtt connect failed");
                }
                LinkEvent::NotDelivered { ids } => {
                    self.out.not_delivered += ids.len() as u64;
                    for id in &ids {
                        self.in_flight.remove(id);
                    }
                    tracing::debug!(
                        count = ids.len(),
                        "items not delivered; they stay in the outbox"
                    );
                    round |= self.mqtt_up;
                }
                LinkEvent::Downlink { topic, payload } => {
                    if self.update_topic.as_deref() == Some(topic.as_str()) {
                        self.on_update_message(payload).await;
                    } else {
                        round |= self.on_command(&topic, &payload).await;
                    }
                }
            }
        }
        if !delivered.is_empty() {
            if let Some(w) = self.window.as_mut() {
                let bytes = delivered
                    .iter()
                    .filter_map(|id| self.window_bytes.remove(id))
                    .sum();
                w.delivered(delivered.len() as u64, bytes);
            }
            self.status.shared.uplink.mqtt_delivered(self.time.now_ms());
            self.unconfirmed.extend(delivered);
            round = true;
        }
        round
    }

    /// Whether the acknowledged items should be removed from the store now:
    /// once [`CONFIRM_GROUP`] have gathered, or when every item in flight is
    /// acknowledged (no later acknowledgement would come to trigger it).
    /// Each removal costs a durability barrier (fsync) whatever its size, so
    /// removing a backlog in groups is what lets the link run at its rate;
    /// until then the items stay in flight and are never sent again.
    fn confirm_due(&self) -> bool {
        !self.unconfirmed.is_empty()
            && (self.unconfirmed.len() >= CONFIRM_GROUP
                || self.unconfirmed.len() >= self.in_flight.len())
    }

    /// Removes delivered items from the outbox, durably; only then are they
    /// out of flight (so they are never re-sent meanwhile).
    async fn confirm(&mut self, ids: Vec<u64>) {
        let store = self.store.clone();
        let batch = self.with_priorities(&ids);
        let result = blocking(move || store.confirm_delivered_hinted(&batch)).await;
        self.confirmed(ids, result);
    }

    /// `ids` with the priorities they were sent with, as removal hints.
    fn with_priorities(&self, ids: &[u64]) -> Vec<(u64, Option<Priority>)> {
        ids.iter()
            .map(|id| (*id, self.in_flight.get(id).copied()))
            .collect()
    }

    /// Starts removing the acknowledged MQTT items on the blocking pool when
    /// [`Self::confirm_due`] and no removal is running, so the link keeps
    /// sending and reading acknowledgements meanwhile. The items stay in
    /// flight (never re-sent) until [`Self::confirmed`] sees the result.
    fn start_confirm(&mut self) {
        if self.confirming.is_some() || !self.confirm_due() {
            return;
        }
        let ids = std::mem::take(&mut self.unconfirmed);
        let store = self.store.clone();
        let batch = self.with_priorities(&ids);
        let handle = tokio::task::spawn_blocking(move || store.confirm_delivered_hinted(&batch));
        self.confirming = Some(Confirming { ids, handle });
    }

    /// Waits for the removal [`Self::start_confirm`] started, if any.
    async fn finish_confirm(&mut self) {
        if let Some(c) = self.confirming.take() {
            let result = join_removal(c.handle).await;
            self.confirmed(c.ids, result);
        }
    }

    /// Books the result of removing delivered items.
    fn confirmed(&mut self, ids: Vec<u64>, result: Result<usize, String>) {
        match result {
            Ok(removed) => {
                for id in &ids {
                    self.in_flight.remove(id);
                }
                self.forget_refusals(&ids);
                self.out.delivered += ids.len() as u64;
                self.status.shared.delivered_at(self.time.now_ms());
                self.status.shared.uplink.delivered(ids.len());
                tracing::debug!(count = ids.len(), removed, "deliveries confirmed");
            }
            Err(e) => {
                tracing::error!(error = %e, count = ids.len(), "cannot confirm deliveries; retrying (they are not re-sent meanwhile)");
                self.unconfirmed.extend(ids);
            }
        }
    }

    /// Acts on a downlink command if it parses and is allowed; returns
    /// whether a round should run now.
    async fn on_command(&mut self, topic: &str, payload: &[u8]) -> bool {
        let parsed = messages::parse_json(payload);
        self.obey(topic, payload.len(), parsed).await
    }

    /// Checks a parsed (or not) downlink command from `topic` (an MQTT
    /// topic, or `sbd-mt`) against `allowed_commands` and carries it out.
    async fn obey(
        &mut self,
        topic: &str,
        bytes: usize,
        parsed: Result<Command, messages::command::CommandError>,
    ) -> bool {
        let cmd = match parsed {
            Ok(c) => c,
            Err(e) => {
                self.out.commands_rejected += 1;
                tracing::warn!(topic, bytes, error = %e, "downlink command rejected: does not parse");
                return false;
            }
        };
        if !cmd.is_allowed(&self.cfg.allowed_commands) {
            self.out.commands_rejected += 1;
            tracing::warn!(
                topic,
                command = cmd.name(),
                "downlink command rejected: not in [uplink] allowed_commands"
            );
            return false;
        }
        tracing::info!(topic, command = cmd.name(), "downlink command accepted");
        match cmd {
            Command::SendStatus => {
                let status = self.status.clone();
                let now = self.time.now_ms();
                match blocking(move || status.append_for(now, messages::StatusCause::Requested))
                    .await
                {
                    Ok(s) => {
                        self.out.commands_done += 1;
                        tracing::info!(id = s.id, "status record stored on command");
                    }
                    Err(e) => tracing::error!(error = %e, "cannot store a status record"),
                }
                true
            }
            Command::FlushOutbox => {
                // MQTT rounds send without waiting; a satellite message
                // would still wait for the scheduler's batching rules.
                self.out.commands_done += 1;
                true
            }
            other => {
                self.out.commands_rejected += 1;
                tracing::warn!(
                    command = other.name(),
                    "downlink command not implemented by this node; rejected"
                );
                false
            }
        }
    }

    fn log_state(&mut self, code: &str, detail: &str) {
        if self.last_state.as_deref() != Some(code) {
            tracing::info!(state = code, detail, "uplink state");
            self.last_state = Some(code.to_string());
        }
    }

    async fn round(&mut self, link: Option<&MqttLink>) {
        self.out.rounds += 1;
        let now = self.time.now_ms();
        let power = self.power.borrow().uplink.clone();
        // Quarantined items come first in sending order but do not go by
        // satellite: read that many more, so that they never hide the rest.
        let quarantined = self.sat.as_ref().map_or(0, |s| s.quarantine.quarantined());
        // Items in flight are skipped without being read back; while MQTT
        // is up, a round reads no more than the room left in flight.
        let batch = self.scheduler.config().mqtt_batch;
        let room = (batch + IN_FLIGHT_SLACK).saturating_sub(self.in_flight.len());
        let mqtt_up = self.mqtt_up && link.is_some();
        if mqtt_up && room == 0 {
            tracing::debug!(
                in_flight = self.in_flight.len(),
                "uplink round: in flight full, waiting for removals"
            );
            return;
        }
        let limit = if mqtt_up { batch.min(room) } else { batch } + quarantined;
        let store = self.store.clone();
        let skip: HashSet<u64> = self.in_flight.keys().copied().collect();
        let pending =
            match blocking(move || store.pending_except(Priority::Low, limit, &skip)).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox; retrying next round");
                    return;
                }
            };
        let items: Vec<PendingItem> = pending
            .items
            .into_iter()
            .filter(|i| !self.in_flight.contains_key(&i.id))
            .map(|mut i| {
                self.time.restamp(&mut i);
                i
            })
            .collect();
        self.ask_signal(mqtt_up, &items, power.allowed());
        let window_open = self.window.as_ref().is_some_and(Window::is_open);
        let (sbd, credits) = match &self.sat {
            // One satellite send at a time, and none while a window of the
            // switched modem is open.
            Some(sat) if sat.sending.is_none() && !window_open => (sat.state, sat.credits),
            _ => (SbdState::Unavailable, Credits::default()),
        };
        let refusals: &dyn SbdRefusals = match &self.sat {
            Some(sat) => &sat.quarantine,
            None => &NoRefusals,
        };
        let decision = self.scheduler.decide(&Round {
            now_ms: now,
            mqtt_up,
            sbd,
            power: &power,
            credits: &credits,
            items: &items,
            sbd_refusals: refusals,
        });
        self.status.shared.uplink.round(&decision.action);
        for e in &decision.unpackable {
            tracing::warn!(error = %e, "item cannot go by satellite; it waits for MQTT");
        }
        match decision.action {
            Action::SendMqtt { ids } => {
                tracing::debug!(
                    action = "mqtt",
                    ids = ids.len(),
                    in_flight = self.in_flight.len(),
                    "uplink round"
                );
                self.log_state("sending_mqtt", "MQTT up: sending the outbox");
                let Some(link) = link else { return };
                let by_id: BTreeMap<u64, &PendingItem> = items.iter().map(|i| (i.id, i)).collect();
                for id in ids {
                    let Some(item) = by_id.get(&id) else { continue };
                    let Some(msg) = self.encode(item) else {
                        continue;
                    };
                    self.in_flight.insert(id, item.priority);
                    if self.window.is_some() {
                        self.window_bytes.insert(id, item.bytes.len() as u64);
                    }
                    // In a window, a link that takes nothing more (its
                    // in-flight messages unacknowledged) must not hold the
                    // loop past the window's end.
                    let ends = self.window.as_ref().and_then(Window::ends_at);
                    let sent = match ends {
                        Some(at) => tokio::time::timeout_at(at, link.send(msg)).await.ok(),
                        None => Some(link.send(msg).await),
                    };
                    let Some(sent) = sent else {
                        self.in_flight.remove(&id);
                        self.window_bytes.remove(&id);
                        tracing::debug!(id, "link window at its end: no more sent in it");
                        return;
                    };
                    if sent.is_err() {
                        tracing::error!("the MQTT link has stopped; nothing more is sent");
                        self.in_flight.remove(&id);
                        self.mqtt_up = false;
                        return;
                    }
                }
            }
            Action::SendSbd {
                ids,
                message,
                credits,
                trigger,
            } => {
                let priority = items
                    .iter()
                    .filter(|i| ids.contains(&i.id))
                    .map(|i| i.priority)
                    .max()
                    .unwrap_or(Priority::Low);
                let Some(sat) = self.sat.as_mut() else {
                    tracing::warn!(
                        ids = ids.len(),
                        "satellite send decided but no satellite link is configured"
                    );
                    return;
                };
                let request = SbdRequest::Send {
                    message,
                    ids: ids.clone(),
                    priority,
                };
                if let Err(e) = sat.requests.try_send(request) {
                    tracing::error!(error = %e, "the satellite modem task does not take the message; retried later");
                    return;
                }
                self.scheduler.sbd_session_started(now);
                if let Err(e) = uplink::store::durable::replace_atomically(
                    &sat.last_session_file,
                    format!("{now}\n").as_bytes(),
                ) {
                    tracing::warn!(error = %e, "cannot persist the satellite session time; the minimum interval restarts with the node");
                }
                tracing::info!(
                    action = "sbd",
                    ids = ids.len(),
                    credits,
                    trigger = ?trigger,
                    priority = ?priority,
                    "sending by satellite"
                );
                self.last_state = Some("sending_sbd".into());
                for id in &ids {
                    // A priority not found is only a hint missed.
                    let p = items
                        .iter()
                        .find(|i| i.id == *id)
                        .map_or(priority, |i| i.priority);
                    self.in_flight.insert(*id, p);
                }
                sat.sending = Some(ids);
            }
            Action::Wait { reason } => {
                tracing::debug!(
                    action = "wait",
                    reason = reason.code(),
                    ids = 0,
                    in_flight = self.in_flight.len(),
                    "uplink round"
                );
                if !matches!(reason, uplink::scheduler::WaitReason::NothingPending)
                    || self.in_flight.is_empty()
                {
                    self.log_state(reason.code(), &reason.to_string());
                }
            }
            Action::Skip { reason } => {
                tracing::debug!(action = "skip", reason = %reason, ids = 0, "uplink round");
                self.log_state("power_denied", &reason);
            }
        }
    }

    /// Moves the switched modem's window on (see the module docs): polls an
    /// opening one, starts MQTT once it is up, closes it when drained, too
    /// long or denied, opens one when something is worth sending.
    async fn window_step(
        &mut self,
        link: &mut Option<MqttLink>,
        events: &mut Option<UnboundedReceiver<LinkEvent>>,
        draining: bool,
    ) {
        let Some(w) = self.window.as_mut() else {
            return;
        };
        match w.poll() {
            Poll::Up => self.start_mqtt(link, events).await,
            Poll::Failed(_) => self.publish_windows(),
            Poll::Wait(_) | Poll::Idle => {}
        }
        let power_allows = self.power.borrow().uplink.allowed();
        let requested = self.status.shared.uplink.take_window_request() || draining;
        let batch = self.scheduler.config().mqtt_batch;
        let store = self.store.clone();
        let skip: HashSet<u64> = self.in_flight.keys().copied().collect();
        let items = match blocking(move || store.pending_except(Priority::Low, batch, &skip)).await
        {
            Ok(p) => p.items,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox for the link window; retrying next round");
                return;
            }
        };
        let Some(w) = self.window.as_mut() else {
            return;
        };
        let worth = worth_sending(w.config(), &items, self.time.now_ms(), requested);
        if w.is_open() {
            let done = if w.reason() == super::window::OpenReason::Request {
                items.is_empty()
            } else {
                worth.is_none()
            };
            let drained = done
                && self.in_flight.is_empty()
                && self.unconfirmed.is_empty()
                && self.confirming.is_none();
            if let Some(reason) = w.should_close(power_allows, drained) {
                self.close_window(reason, link, events).await;
            }
        } else if let Some(reason) = worth {
            match w.open_if_allowed(reason, power_allows) {
                Ok(true) => {
                    // A modem without settle time may be up at once.
                    if w.poll() == Poll::Up {
                        self.start_mqtt(link, events).await;
                    }
                }
                Ok(false) => {}
                Err(_failed) => {}
            }
            self.publish_windows();
        }
    }

    /// Starts the MQTT client in a window that just came up; a client that
    /// cannot start fails the window.
    async fn start_mqtt(
        &mut self,
        link: &mut Option<MqttLink>,
        events: &mut Option<UnboundedReceiver<LinkEvent>>,
    ) {
        let Some(cfg) = self.mqtt_cfg.as_ref() else {
            return;
        };
        match MqttLink::start(cfg) {
            Ok((l, e)) => {
                *link = Some(l);
                *events = Some(e);
            }
            Err(e) => {
                tracing::error!(error = %e, "MQTT client not started in the link window");
                self.close_window(CloseReason::LinkFailed, link, events)
                    .await;
            }
        }
    }

    /// Closes the open window: shuts the MQTT client down (it waits a few
    /// seconds for outstanding acknowledgements and reports the rest not
    /// delivered), books what it reported, puts every other item it held
    /// back to pending, then switches the modem off.
    async fn close_window(
        &mut self,
        reason: CloseReason,
        link: &mut Option<MqttLink>,
        events: &mut Option<UnboundedReceiver<LinkEvent>>,
    ) {
        if let Some(l) = link.take()
            && l.shutdown().await.is_err()
        {
            tracing::error!("the MQTT link task failed while the window closed");
        }
        if let Some(mut rx) = events.take()
            && let Ok(first) = rx.try_recv()
        {
            let mut rest = Some(rx);
            // Everything it reported: acknowledgements, what stays unconfirmed.
            let mut next = Some(first);
            while let Some(ev) = next.take() {
                self.on_link_events(ev, &mut rest).await;
                next = rest.as_mut().and_then(|r| r.try_recv().ok());
            }
        }
        self.mqtt_up = false;
        self.status
            .shared
            .uplink
            .mqtt_down(&format_args!("link window closed ({})", reason.as_str()));
        let sbd: HashSet<u64> = self
            .sat
            .as_ref()
            .and_then(|s| s.sending.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        let acked: HashSet<u64> = self
            .unconfirmed
            .iter()
            .chain(self.confirming.iter().flat_map(|c| c.ids.iter()))
            .copied()
            .collect();
        let back: Vec<u64> = self
            .in_flight
            .keys()
            .filter(|id| !sbd.contains(id) && !acked.contains(id))
            .copied()
            .collect();
        if !back.is_empty() {
            tracing::info!(
                count = back.len(),
                "items in flight at the window's close stay in the outbox"
            );
            self.not_sent(&back);
        }
        self.window_bytes.clear();
        if let Some(w) = self.window.as_mut() {
            w.close(reason);
        }
        self.publish_windows();
    }

    /// The windows' figures, for the status line and the field link.
    fn publish_windows(&self) {
        if let Some(w) = self.window.as_ref() {
            self.status.shared.uplink.set_windows(w.stats().clone());
        }
    }

    /// Asks the modem for its signal when it may be needed: the power
    /// policy allowing the uplink (a switched modem is powered for the
    /// check), MQTT down, the modem idle, items at or above
    /// `sbd_min_priority` waiting, and the last answer older than
    /// `sbd_min_interval_ms` (and a round).
    fn ask_signal(&mut self, mqtt_up: bool, items: &[PendingItem], power_allows: bool) {
        let c = self.scheduler.config();
        let min = c.sbd_min_priority;
        let every = Duration::from_millis(c.sbd_min_interval_ms.max(self.cfg.round_interval_ms));
        let Some(sat) = self.sat.as_mut() else { return };
        if !power_allows
            || mqtt_up
            || sat.sending.is_some()
            || sat.signal_asked
            || !items.iter().any(|i| i.priority >= min)
            || sat.last_signal.is_some_and(|t| t.elapsed() < every)
            || sat
                .locked
                .is_some_and(|t| t.elapsed() < Duration::from_millis(c.sbd_locked_retry_ms))
        {
            return;
        }
        if sat.requests.try_send(SbdRequest::Signal).is_ok() {
            sat.signal_asked = true;
            sat.last_signal = Some(Instant::now());
        }
    }

    /// Handles what the modem task reported; returns whether a round
    /// should run now.
    async fn on_sbd(&mut self, report: SbdReport) -> bool {
        let Some(sat) = self.sat.as_mut() else {
            return false;
        };
        match report {
            SbdReport::NetworkTime { unix_ms, read_at } => {
                let age = i64::try_from(read_at.elapsed().as_millis()).unwrap_or(i64::MAX);
                let unix_ms = unix_ms.saturating_add(age);
                tracing::info!(
                    unix_ms,
                    difference_ms = unix_ms.saturating_sub(self.time.now_ms()),
                    "Iridium network time read; offered to the node's clock"
                );
                self.time.offer_reference(
                    crate::timekeeping::guarded::ReferenceSource::Iridium,
                    unix_ms,
                    IRIDIUM_TIME_UNCERTAINTY_MS,
                );
                false
            }
            SbdReport::Unavailable { error } => {
                self.status.shared.uplink.sbd_down(&error);
                sat.signal_asked = false;
                sat.state = SbdState::Unavailable;
                tracing::debug!(error = %error, "satellite modem unavailable");
                false
            }
            SbdReport::Signal { bars, credits } => {
                self.status.shared.uplink.sbd_ready(credits);
                sat.signal_asked = false;
                sat.state = SbdState::Ready { signal_bars: bars };
                sat.credits = Credits(credits);
                tracing::debug!(
                    bars,
                    credits_day = credits.0,
                    credits_month = credits.1,
                    "satellite signal"
                );
                true
            }
            SbdReport::Sent {
                ids,
                result,
                credits,
            } => {
                sat.sending = None;
                sat.credits = Credits(credits);
                let report = match result {
                    Ok(r) => {
                        // For the power task's energy accounting.
                        crate::tasks::Counters::add(
                            &self.status.counters.sbd_sessions,
                            u64::from(r.sessions),
                        );
                        r
                    }
                    Err(error) => {
                        sat.state = SbdState::Unavailable;
                        self.not_sent(&ids);
                        tracing::warn!(ids = ids.len(), error = %error, "satellite send failed; the items stay in the outbox");
                        return false;
                    }
                };
                match report.outcome {
                    uplink::sbd::MoOutcome::Delivered { momsn, ids: sent } => {
                        if sat.locked.take().is_some() {
                            tracing::info!("satellite modem no longer locked: a message went");
                        }
                        self.status.shared.uplink.sbd_delivered(self.time.now_ms());
                        tracing::info!(
                            momsn,
                            ids = sent.len(),
                            sessions = report.sessions,
                            credits = report.credits,
                            "satellite message delivered"
                        );
                        let others: Vec<u64> =
                            ids.iter().copied().filter(|i| !sent.contains(i)).collect();
                        self.not_sent(&others);
                        self.confirm(sent).await;
                    }
                    uplink::sbd::MoOutcome::Failed { status } => {
                        self.out.sbd_refused += 1;
                        self.not_sent(&ids);
                        self.on_refused(status, &ids, report.sessions, report.credits);
                    }
                    other => {
                        tracing::warn!(
                            ids = ids.len(),
                            outcome = ?other,
                            sessions = report.sessions,
                            credits = report.credits,
                            "satellite message not delivered; the items stay in the outbox"
                        );
                        self.not_sent(&ids);
                    }
                }
                for mt in report.mt {
                    match mt {
                        uplink::sbd::MtMessage::Received { mtmsn, payload } => {
                            tracing::info!(
                                mtmsn,
                                bytes = payload.len(),
                                "satellite downlink message"
                            );
                            if payload.starts_with(models::bundle::meta::BUNDLE_MAGIC) {
                                self.queue_bundle(mtmsn, payload).await;
                                continue;
                            }
                            let parsed = messages::command::parse_mt(&payload);
                            self.obey("sbd-mt", payload.len(), parsed).await;
                        }
                        uplink::sbd::MtMessage::Unreadable { mtmsn, error } => {
                            tracing::warn!(mtmsn, error = %error, "satellite downlink message unreadable");
                        }
                    }
                }
                true
            }
        }
    }

    /// A message of the MQTT update topic: a piece of a bundle in transit.
    /// The reply goes out on `update/status` after this batch of events.
    async fn on_update_message(&mut self, payload: Vec<u8>) {
        // The node's trust decision on the metadata, from the persisted
        // trust state (read-only); without one the update task decides.
        let data_dir = self.incoming.parent().map(|d| d.to_path_buf());
        let trust_path = data_dir
            .as_ref()
            .map(|d| d.join("update").join("trust.bin"));
        let now_ms = self.time.now_ms();
        let cap = self.update_cap;
        let receiver = crate::update::receive::Receiver::new(self.incoming.clone(), cap)
            .with_check(Box::new(move |bundle| {
                let Some(bytes) = trust_path.as_ref().and_then(|p| std::fs::read(p).ok()) else {
                    return Ok(());
                };
                let trust = models::bundle::TrustState::from_bytes(&bytes)
                    .map_err(|e| format!("trust state unreadable: {e}"))?;
                let floor = match &data_dir {
                    Some(d) => crate::update::install::time_floor_s(
                        &trust,
                        d,
                        now_ms,
                        crate::update::install::BUILD_UNIX_S,
                    ),
                    None => trust.time_floor(
                        u64::try_from(now_ms.max(0) / 1000).unwrap_or(0),
                        crate::update::install::BUILD_UNIX_S,
                    ),
                };
                trust
                    .check_metadata(bundle, &crate::update::install::expect(), floor, cap)
                    .map_err(|r| format!("{}: {r}", r.code()))
            }));
        let progress = tokio::task::spawn_blocking(move || receiver.on_message(&payload)).await;
        match progress {
            Ok(p) => {
                if p.state == "refused" {
                    tracing::warn!(transfer = %p.transfer, reason = %p.reason, "update transfer refused");
                    // A bundle whose announce was read: reported like any
                    // refusal (garbage on the topic is only answered).
                    if !p.transfer.is_empty() {
                        crate::update::report::Reporter::new(self.status.clone())
                            .report_transfer_refused(&p, self.time.now_ms())
                            .await;
                    }
                }
                match serde_json::to_vec(&p) {
                    Ok(bytes) => self.update_replies.push(bytes),
                    Err(e) => tracing::error!(error = %e, "update progress does not serialise"),
                }
            }
            Err(e) => tracing::error!(error = %e, "update receiver failed"),
        }
    }

    /// A signed bundle received by satellite: a settings bundle is queued
    /// in the drop folder, where the update task verifies and installs it
    /// like any other. Models do not travel by satellite.
    async fn queue_bundle(&mut self, mtmsn: u32, payload: Vec<u8>) {
        let header = models::bundle::Bundle::parse_header(&payload);
        let meta = match header {
            Ok((b, _)) => b.meta,
            Err(e) => {
                self.out.commands_rejected += 1;
                tracing::warn!(mtmsn, error = %e, "satellite bundle rejected: does not parse");
                self.refuse_bundle(&payload, format!("malformed: {e}"))
                    .await;
                return;
            }
        };
        if meta.kind != models::bundle::Kind::Settings {
            self.out.commands_rejected += 1;
            tracing::warn!(
                mtmsn,
                kind = meta.kind.as_str(),
                "satellite bundle rejected: only settings bundles travel by satellite"
            );
            self.refuse_bundle(
                &payload,
                "wrong_link: only settings bundles travel by satellite".into(),
            )
            .await;
            return;
        }
        let dir = self.incoming.clone();
        let path = dir.join(format!("settings-sbd-{:020}-{mtmsn:05}.fnb", meta.version));
        let p = path.clone();
        let written = tokio::task::spawn_blocking(move || {
            uplink::store::durable::create_dir_durably(&dir).map_err(|e| e.to_string())?;
            uplink::store::durable::replace_atomically(&p, &payload).map_err(|e| e.to_string())
        })
        .await;
        match written {
            Ok(Ok(())) => {
                self.out.commands_done += 1;
                tracing::info!(mtmsn, version = meta.version, path = %path.display(), "settings bundle received by satellite; queued for the update task");
            }
            Ok(Err(e)) => {
                self.out.commands_rejected += 1;
                tracing::error!(mtmsn, error = %e, "cannot queue a settings bundle received by satellite");
            }
            Err(e) => {
                self.out.commands_rejected += 1;
                tracing::error!(mtmsn, error = %e, "cannot queue a settings bundle received by satellite");
            }
        }
    }

    /// Reports a bundle received by satellite and refused before the drop
    /// folder, as other refusals are: a status record at priority high
    /// (and the last result of those to come), and a result for
    /// `update/status`.
    async fn refuse_bundle(&mut self, payload: &[u8], reason: String) {
        let from = crate::update::report::origin_of(payload);
        let (kind, name, version) = from.meta.clone().unwrap_or_default();
        let p = crate::update::receive::Progress {
            transfer: from.transfer,
            kind,
            name,
            version,
            received: from.total,
            total: from.total,
            state: "refused".into(),
            reason,
        };
        crate::update::report::Reporter::new(self.status.clone())
            .report_transfer_refused(&p, self.time.now_ms())
            .await;
        self.status.shared.update.push_result(p);
    }

    /// The gateway refused a message carrying `ids` for good (MO status
    /// `status`). Because of the message (12, 14): each item counts a
    /// refusal, goes again alone, and is quarantined at
    /// `max_permanent_failures`. Because the modem is locked (16): no item
    /// is to blame; the modem counts as unavailable, and its signal is not
    /// checked again before `sbd_locked_retry_ms`.
    fn on_refused(&mut self, status: u8, ids: &[u64], sessions: u32, credits: u32) {
        let Some(sat) = self.sat.as_mut() else { return };
        match uplink::sbd::refusal_cause(status) {
            Some(uplink::sbd::RefusalCause::ModemLocked) => {
                sat.state = SbdState::Unavailable;
                self.status
                    .shared
                    .uplink
                    .sbd_down(&format_args!("modem locked (MO status {status})"));
                let retry_ms = self.scheduler.config().sbd_locked_retry_ms;
                if sat.locked.replace(Instant::now()).is_none() {
                    tracing::error!(
                        status,
                        ids = ids.len(),
                        retry_ms,
                        "satellite modem locked: it may make no SBD call (AT+CULK); the items stay in the outbox, not counted against them, and the modem is tried again after retry_ms"
                    );
                } else {
                    tracing::warn!(
                        status,
                        retry_ms,
                        "satellite modem still locked; tried again after retry_ms"
                    );
                }
            }
            cause => {
                if cause.is_none() {
                    // Not a documented permanent status: still bounded.
                    tracing::warn!(
                        status,
                        "unknown permanent MO status; counted against the message's items"
                    );
                }
                let quarantined = sat.quarantine.record(ids);
                if let Err(e) = sat.quarantine.save() {
                    tracing::warn!(error = %e, "cannot save the satellite refusal counts; they are kept in memory");
                }
                let q = &sat.quarantine;
                let refusals = ids.iter().map(|&id| q.refusals(id)).max().unwrap_or(0);
                tracing::warn!(
                    status,
                    ids = ids.len(),
                    alone = ids.len() == 1,
                    refusals,
                    max_refusals = q.max_refusals(),
                    sessions,
                    credits,
                    "satellite message refused for good by the gateway; its items stay in the outbox (each goes again alone until quarantined)"
                );
                if !quarantined.is_empty() {
                    self.out.sbd_quarantined += quarantined.len() as u64;
                    tracing::warn!(
                        status,
                        count = quarantined.len(),
                        ids = ?quarantined,
                        refusals = q.max_refusals(),
                        held = q.quarantined(),
                        "items quarantined for the satellite link: every message that carried them was refused; kept in the outbox, they go by MQTT only"
                    );
                }
            }
        }
    }

    /// Ids handed to the satellite and not delivered: out of flight, so a
    /// later round offers them again.
    fn not_sent(&mut self, ids: &[u64]) {
        self.out.not_delivered += ids.len() as u64;
        for id in ids {
            self.in_flight.remove(id);
        }
    }

    fn encode(&self, item: &PendingItem) -> Option<OutgoingMessage> {
        let (kind, payload) = match (&item.message, self.payload) {
            (Message::Event(_), PayloadFormat::Binary) => (Kind::Event, item.bytes.clone()),
            (Message::Status(_), PayloadFormat::Binary) => (Kind::Status, item.bytes.clone()),
            (Message::Event(e), PayloadFormat::Json) => {
                (Kind::Event, PayloadFormat::Json.encode_event(e))
            }
            (Message::Status(s), PayloadFormat::Json) => match serde_json::to_vec(s) {
                Ok(b) => (Kind::Status, b),
                Err(e) => {
                    tracing::error!(id = item.id, error = %e, "status record does not serialise as JSON; not sent");
                    return None;
                }
            },
        };
        Some(OutgoingMessage {
            id: item.id,
            kind,
            payload,
        })
    }

    async fn shutdown(
        mut self,
        mut link: Option<MqttLink>,
        mut events: Option<UnboundedReceiver<LinkEvent>>,
    ) -> UplinkOutcome {
        if let Some(sat) = self.sat.as_ref() {
            // A send cut here may still have reached the gateway: its items
            // stay in the outbox and go again (receivers drop duplicates).
            sat.task.abort();
        }
        if self.window.as_ref().is_some_and(Window::is_open) {
            self.close_window(CloseReason::Stopped, &mut link, &mut events)
                .await;
        }
        if let Some(link) = link
            && link.shutdown().await.is_err()
        {
            tracing::error!("the MQTT link task failed during shutdown");
        }
        // Acknowledgements that arrived during the link's shutdown grace.
        if let Some(mut rx) = events {
            let mut delivered = Vec::new();
            while let Ok(ev) = rx.try_recv() {
                if let LinkEvent::Delivered { id } = ev {
                    delivered.push(id);
                }
            }
            self.unconfirmed.extend(delivered);
        }
        self.finish_confirm().await;
        let acknowledged = std::mem::take(&mut self.unconfirmed);
        if !acknowledged.is_empty() {
            self.confirm(acknowledged).await;
        }
        self.out.left_in_outbox = self.outbox_len();
        if let Some(sat) = self.sat.take() {
            self.out.sbd_quarantine_held = sat.quarantine.quarantined() as u64;
        }
        self.status.shared.uplink.stopped();
        tracing::info!(
            delivered = self.out.delivered,
            not_delivered = self.out.not_delivered,
            left = self.out.left_in_outbox,
            sbd_refused = self.out.sbd_refused,
            sbd_quarantined = self.out.sbd_quarantined,
            sbd_quarantine_held = self.out.sbd_quarantine_held,
            "uplink stopped"
        );
        self.out
    }
}

async fn recv<T>(events: &mut Option<UnboundedReceiver<T>>) -> Option<T> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::read_last_session;
    use super::*;
    use messages::{StatusCause, UpdateOutcome};
    use models::bundle::keys::generate;
    use models::bundle::{Bundle, Metadata, Target};

    /// An uplink without links, its outbox and its drop folder in `dir`.
    fn uplink(dir: &std::path::Path) -> (Uplink, Arc<EventStore>) {
        let (store, _) =
            EventStore::open(&dir.join("store"), &uplink::StoreConfig::default()).unwrap();
        let store = Arc::new(store);
        let status =
            power::PowerPolicy::new(power::PolicyConfig::default()).update(power::PowerReading {
                t_ms: 0,
                soc: 0.9,
                solar_w: 0.0,
                load_w: 3.0,
                battery_mv: None,
            });
        let (_power_tx, power) = watch::channel(status);
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::SystemClock);
        let status = StatusSource {
            node_id: "n1".into(),
            board: crate::sensors::health::HealthBoard::default(),
            power: power.clone(),
            store: store.clone(),
            shared: Arc::new(crate::uplink::SharedState::default()),
            started_ms: 0,
            thermal_zone: dir.join("no-thermal-zone"),
            counters: Arc::new(crate::tasks::Counters::default()),
            clock: None,
        };
        let up = Uplink::new(UplinkParts {
            cfg: UplinkConfig::default(),
            store: store.clone(),
            power,
            status,
            time: NodeTime::current(clock),
            incoming: dir.join("incoming"),
            update_cap: 1 << 20,
            loads: None,
            sys_root: dir.join("no-sysfs"),
        });
        (up, store)
    }

    fn bundle(meta: Metadata) -> Vec<u8> {
        let mut b = Bundle::new(meta, vec![1, 2, 3]);
        b.sign(&generate([10; 32]));
        b.sign(&generate([11; 32]));
        b.to_bytes().unwrap()
    }

    /// The update results in the outbox, as (result, reason).
    fn results(store: &EventStore) -> Vec<(UpdateOutcome, String, messages::Priority)> {
        store
            .pending(messages::Priority::Low, 100)
            .unwrap()
            .items
            .into_iter()
            .filter_map(|i| match i.message {
                Message::Status(s) if s.cause == StatusCause::UpdateResult => {
                    let l = s.update.last?;
                    Some((l.result, l.reason.as_str().to_string(), i.priority))
                }
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_bundle_refused_by_satellite_is_reported_as_an_update_result() {
        let dir = tempfile::tempdir().unwrap();
        let (mut up, store) = uplink(dir.path());
        // A model bundle: models do not travel by satellite.
        let mut meta = Metadata::settings("fusion", 9, 1, u64::MAX, [0; 3]);
        meta.kind = models::bundle::Kind::Model;
        meta.target = Target {
            min_firmware: [0; 3],
            model: Some(crate::update::install::expect().model),
        };
        up.queue_bundle(4, bundle(meta)).await;
        let r = results(&store);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].0, UpdateOutcome::Refused);
        assert!(r[0].1.starts_with("wrong_link"), "{r:?}");
        assert_eq!(r[0].2, messages::Priority::High);
        let shared = &up.status.shared.update;
        let last = shared.status().last.expect("later records carry it");
        assert_eq!((last.name.as_str(), last.version), ("fusion", 9));
        let published = shared.take_results();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].state, "refused");
        assert_eq!(published[0].transfer.len(), 16, "{published:?}");
        // An MT message that starts like a bundle but does not read.
        up.queue_bundle(5, b"FNB1 not a bundle".to_vec()).await;
        let r = results(&store);
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[1].1.starts_with("malformed"), "{r:?}");
        assert_eq!(up.out.commands_rejected, 2);
        assert_eq!(
            crate::tasks::Counters::get(&up.status.counters.updates_refused),
            2
        );
        assert!(!dir.path().join("incoming").exists());
        // A settings bundle is still queued for the update task, and is
        // not a result yet.
        let settings = bundle(Metadata::settings("settings", 3, 1, u64::MAX, [0; 3]));
        up.queue_bundle(6, settings).await;
        assert_eq!(up.out.commands_done, 1);
        assert_eq!(results(&store).len(), 2);
        assert_eq!(
            std::fs::read_dir(dir.path().join("incoming"))
                .unwrap()
                .count(),
            1
        );
    }

    #[test]
    fn the_last_session_time_reads_back_clamped_and_tolerates_bad_files() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("sbd-last-session");
        assert_eq!(read_last_session(&f, 5_000), None);
        std::fs::write(&f, "4000\n").unwrap();
        assert_eq!(read_last_session(&f, 5_000), Some(4_000));
        // A clock that went back: counted from now, not from the future.
        assert_eq!(read_last_session(&f, 1_000), Some(1_000));
        std::fs::write(&f, "garbage").unwrap();
        assert_eq!(read_last_session(&f, 5_000), None);
    }
}
