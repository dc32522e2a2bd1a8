//! The uplink loop: one task that owns the MQTT link handle and its event
//! stream and the scheduler. A round (on a timer, when an item is stored,
//! when a link changes, on `flush_outbox`) asks the scheduler what to do
//! with the outbox's pending items minus those in flight; items leave the
//! outbox only when their PUBACK arrives (`confirm_delivered`, batched).
//! Items reported not delivered are re-sent from the outbox by a later
//! round.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use messages::{Command, Message, Priority};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior};
use uplink::mqtt::{Kind, LinkEvent, MqttLink, OutgoingMessage, PayloadFormat};
use uplink::scheduler::{Action, CreditsLeft, Round, SbdState, Scheduler};
use uplink::store::PendingItem;
use uplink::{EventStore, StoreError};

use super::{Control, NodeTime, StatusSource, UplinkConfig, UplinkOutcome, UplinkParts};

/// No satellite link: no credits.
struct NoSatellite;

impl CreditsLeft for NoSatellite {
    fn credits_left(&self, _now_ms: i64) -> (u32, u32) {
        (0, 0)
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
    /// Handed to a link, not yet confirmed or reported lost.
    in_flight: HashSet<u64>,
    /// Delivered but the store failed to confirm: retried each round.
    unconfirmed: Vec<u64>,
    /// The last wait/skip reason logged at info, to log changes only.
    last_state: Option<String>,
    out: UplinkOutcome,
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
        } = parts;
        Uplink {
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
            in_flight: HashSet::new(),
            unconfirmed: Vec::new(),
            last_state: None,
            out: UplinkOutcome::default(),
        }
    }

    pub(super) async fn run(
        mut self,
        mqtt: Option<(MqttLink, UnboundedReceiver<LinkEvent>)>,
        wake: Arc<Notify>,
        mut control: watch::Receiver<Control>,
    ) -> UplinkOutcome {
        let (link, mut events) = match mqtt {
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
        tracing::info!(
            mqtt = link.is_some(),
            payload = ?self.payload,
            "uplink started"
        );
        loop {
            if round_due {
                round_due = false;
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
            tokio::select! {
                ev = recv(&mut events) => match ev {
                    Some(ev) => round_due |= self.on_link_events(ev, &mut events).await,
                    None => {
                        tracing::error!("the MQTT link stopped unexpectedly");
                        events = None;
                        self.mqtt_up = false;
                    }
                },
                () = wake.notified() => round_due = true,
                _ = tick.tick() => round_due = true,
                _ = expire_tick.tick() => self.expire().await,
                r = control.changed() => if r.is_err() { break },
                () = sleep_until(drain_until) => {}
            }
        }
        self.shutdown(link, events).await
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
                    self.mqtt_up = true;
                    round = true;
                }
                LinkEvent::Down { reason } => {
                    self.mqtt_up = false;
                    tracing::debug!(error = %reason, "uplink: mqtt down");
                }
                LinkEvent::ConnectFailed { reason, retry_in } => {
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
                    round |= self.on_command(&topic, &payload).await;
                }
            }
        }
        if !delivered.is_empty() {
            self.confirm(delivered).await;
            round = true;
        }
        round
    }

    /// Removes delivered items from the outbox, durably; only then are they
    /// out of flight (so they are never re-sent meanwhile).
    async fn confirm(&mut self, ids: Vec<u64>) {
        let store = self.store.clone();
        let batch = ids.clone();
        match blocking(move || store.confirm_delivered(&batch)).await {
            Ok(removed) => {
                for id in &ids {
                    self.in_flight.remove(id);
                }
                self.out.delivered += ids.len() as u64;
                self.status.shared.delivered_at(self.time.now_ms());
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
        let cmd = match messages::parse_json(payload) {
            Ok(c) => c,
            Err(e) => {
                self.out.commands_rejected += 1;
                tracing::warn!(topic, bytes = payload.len(), error = %e, "downlink command rejected: does not parse");
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
                match blocking(move || status.append(now)).await {
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
        if !self.unconfirmed.is_empty() {
            let ids = std::mem::take(&mut self.unconfirmed);
            self.confirm(ids).await;
        }
        self.out.rounds += 1;
        let now = self.time.now_ms();
        let power = self.power.borrow().uplink.clone();
        let limit = self.in_flight.len() + self.scheduler.config().mqtt_batch;
        let store = self.store.clone();
        let pending = match blocking(move || store.pending(Priority::Low, limit)).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox; retrying next round");
                return;
            }
        };
        let items: Vec<PendingItem> = pending
            .items
            .into_iter()
            .filter(|i| !self.in_flight.contains(&i.id))
            .collect();
        let decision = self.scheduler.decide(&Round {
            now_ms: now,
            mqtt_up: self.mqtt_up && link.is_some(),
            sbd: SbdState::Unavailable,
            power: &power,
            credits: &NoSatellite,
            items: &items,
        });
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
                    self.in_flight.insert(id);
                    if link.send(msg).await.is_err() {
                        tracing::error!("the MQTT link has stopped; nothing more is sent");
                        self.in_flight.remove(&id);
                        self.mqtt_up = false;
                        return;
                    }
                }
            }
            Action::SendSbd { ids, .. } => {
                // Unreachable while no modem is configured (SbdState::Unavailable).
                tracing::warn!(
                    ids = ids.len(),
                    "satellite send decided but no satellite link is configured"
                );
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
        link: Option<MqttLink>,
        events: Option<UnboundedReceiver<LinkEvent>>,
    ) -> UplinkOutcome {
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
            delivered.extend(std::mem::take(&mut self.unconfirmed));
            if !delivered.is_empty() {
                self.confirm(delivered).await;
            }
        }
        self.out.left_in_outbox = self.outbox_len();
        tracing::info!(
            delivered = self.out.delivered,
            not_delivered = self.out.not_delivered,
            left = self.out.left_in_outbox,
            "uplink stopped"
        );
        self.out
    }
}

async fn recv(events: &mut Option<UnboundedReceiver<LinkEvent>>) -> Option<LinkEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
