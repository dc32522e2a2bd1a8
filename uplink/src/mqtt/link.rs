//! The MQTT link task: one tokio task owns rumqttc's `EventLoop::poll()` and
//! never blocks on the caller; the caller talks to it through [`MqttLink`]
//! (a bounded queue of [`OutgoingMessage`]s) and hears back through an
//! unbounded stream of [`LinkEvent`]s.
//!
//! Delivery semantics (see `docs/mqtt.md`):
//! - every message is published at QoS 1 and counts as delivered only when
//!   the PUBACK of its own packet id arrives ([`LinkEvent::Delivered`]);
//! - the session is clean (`clean_session = true`): after a reconnect the
//!   broker has no state of ours and rumqttc drops what it still held, so
//!   when a connection ends every unconfirmed message is reported once in
//!   [`LinkEvent::NotDelivered`], and the caller re-sends it from its
//!   durable outbox after the next [`LinkEvent::Up`];
//! - a message given while the link is down is reported `NotDelivered` at once;
//! - a message may arrive at the broker and still be reported `NotDelivered`
//!   (its PUBACK was lost): the receiver drops duplicates by event id.

use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS,
    SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::config::{ConfigError, MqttConfig, Topics};
use super::tls::{TlsError, client_config};
use super::tracker::{Tag, Tracker};

/// How long shutdown waits for outstanding PUBACKs (including the retained
/// `offline` state) before it disconnects anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The retained payloads of the state topic.
pub const STATE_ONLINE: &[u8] = b"online";
/// See [`STATE_ONLINE`]; also the last will.
pub const STATE_OFFLINE: &[u8] = b"offline";

/// Which topic a message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `<prefix>/<node>/events`.
    Event,
    /// `<prefix>/<node>/status`.
    Status,
    /// `<prefix>/<node>/update/status`: a progress report, not from the
    /// outbox (no `Delivered` or `NotDelivered` is reported for it; while
    /// the link is down it is dropped, and the sender asks again).
    UpdateStatus,
}

/// One record to publish. The payload already carries `id` (the caller
/// encodes it); `id` is how the link reports the outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The caller's id for the record (the outbox id).
    pub id: u64,
    /// Event or status.
    pub kind: Kind,
    /// The encoded record.
    pub payload: Vec<u8>,
}

/// Why a connection ended or could not be made.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// TLS failed: an untrusted or mismatched certificate, a refused client certificate.
    #[error("TLS: {0}")]
    Tls(String),
    /// The broker answered CONNECT with a refusal.
    #[error("broker refused the connection: {0}")]
    Refused(String),
    /// No answer in time.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The network failed (refused, reset, closed).
    #[error("network: {0}")]
    Network(String),
    /// The broker or the client broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl LinkError {
    fn from_connection(e: &ConnectionError) -> LinkError {
        match e {
            ConnectionError::Tls(t) => LinkError::Tls(t.to_string()),
            ConnectionError::ConnectionRefused(code) => LinkError::Refused(format!("{code:?}")),
            ConnectionError::NetworkTimeout | ConnectionError::FlushTimeout => {
                LinkError::Timeout(e.to_string())
            }
            // rustls reports handshake failures and alerts (e.g. the broker
            // refusing our certificate after a TLS 1.3 handshake) as I/O
            // errors, which rumqttc may wrap again in a state error.
            _ if is_tls_failure(e) => LinkError::Tls(e.to_string()),
            ConnectionError::Io(io) => LinkError::Network(io.to_string()),
            ConnectionError::MqttState(_)
            | ConnectionError::NotConnAck(_)
            | ConnectionError::RequestsDone => LinkError::Protocol(e.to_string()),
        }
    }
}

/// Whether a rustls error is anywhere in the chain (io::Error hides its
/// inner error from `source()`, so look inside each one).
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && is_tls_failure(inner)
        {
            return true;
        }
        cur = err.source();
    }
    // Some wrappers keep only the message of the I/O error.
    e.to_string().contains("received fatal alert")
}

/// What the link tells its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkEvent {
    /// Connected (CONNACK received); `online` is being published and the
    /// command topic subscribed. Re-send everything unconfirmed now.
    Up,
    /// An established connection ended.
    Down {
        /// Why.
        reason: LinkError,
    },
    /// A connection attempt failed; the next one starts after `retry_in`.
    ConnectFailed {
        /// Why.
        reason: LinkError,
        /// The jittered backoff delay.
        retry_in: Duration,
    },
    /// The broker acknowledged this message (PUBACK).
    Delivered {
        /// The message's id.
        id: u64,
    },
    /// These messages were not confirmed and never will be: re-send them.
    NotDelivered {
        /// Their ids, ascending.
        ids: Vec<u64>,
    },
    /// A message on the node's command or update topic, unparsed.
    Downlink {
        /// The topic it arrived on.
        topic: String,
        /// Its bytes.
        payload: Vec<u8>,
    },
}

/// Why the link did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The link task has ended (after shutdown, or it panicked).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the MQTT link has stopped")]
pub struct LinkClosed;

/// Largest MQTT packet the link takes or sends, bytes (update chunks of
/// up to 32 KiB plus their header fit).
pub const MAX_PACKET: usize = 64 * 1024;

/// Handle to the running link. Dropping it shuts the link down gracefully
/// in the background; [`MqttLink::shutdown`] waits for that.
#[derive(Debug)]
pub struct MqttLink {
    tx: mpsc::Sender<OutgoingMessage>,
    task: JoinHandle<()>,
    /// Tells the task to stop even while it takes no message (its
    /// in-flight messages unacknowledged, as with a broker that stopped
    /// answering).
    stop: std::sync::Arc<tokio::sync::Notify>,
}

impl MqttLink {
    /// Validates `cfg`, loads its TLS files and starts the link task on the
    /// current tokio runtime. It connects in the background; wait for
    /// [`LinkEvent::Up`] before sending.
    pub fn start(
        cfg: &MqttConfig,
    ) -> Result<(MqttLink, mpsc::UnboundedReceiver<LinkEvent>), StartError> {
        cfg.validate()?;
        let topics = cfg.topics();
        let mut opts = MqttOptions::new(cfg.client_id(), cfg.host.clone(), cfg.port);
        opts.set_keep_alive(cfg.keepalive())
            .set_clean_session(true)
            .set_inflight(cfg.max_in_flight)
            .set_last_will(LastWill::new(
                topics.state.clone(),
                STATE_OFFLINE,
                QoS::AtLeastOnce,
                true,
            ));
        if let Some(files) = &cfg.tls {
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                client_config(files)?,
            )));
        }
        // Room for every in-flight message plus the link's own requests.
        let capacity = usize::from(cfg.max_in_flight) + 8;
        // Update chunks are up to UPDATE_CHUNK_MAX bytes: room for them.
        opts.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        let (client, mut eventloop) = AsyncClient::new(opts, capacity);
        let mut net = eventloop.network_options();
        net.set_connection_timeout(cfg.connect_timeout_s);
        eventloop.set_network_options(net);

        let (tx, input) = mpsc::channel(usize::from(cfg.max_in_flight));
        let (events_tx, events) = mpsc::unbounded_channel();
        let task = Task {
            client,
            eventloop,
            topics,
            max_in_flight: usize::from(cfg.max_in_flight),
            backoff: Backoff::new(cfg.reconnect_min_ms, cfg.reconnect_max_ms),
            tracker: Tracker::default(),
            connected: false,
            events: events_tx,
        };
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(task.run(input, stop.clone()));
        Ok((MqttLink { tx, task, stop }, events))
    }

    /// Queues a message. Waits while the link has `max_in_flight` messages
    /// unacknowledged; returns at once while the link is down (the message is
    /// then reported `NotDelivered`).
    pub async fn send(&self, msg: OutgoingMessage) -> Result<(), LinkClosed> {
        self.tx.send(msg).await.map_err(|_| LinkClosed)
    }

    /// Publishes the retained `offline` state, waits (a few seconds at most)
    /// for outstanding acknowledgements, disconnects cleanly and reports what
    /// stayed unconfirmed (and what was still queued) as `NotDelivered`;
    /// returns when the task has ended, also while the broker does not
    /// answer.
    pub async fn shutdown(self) -> Result<(), LinkClosed> {
        let MqttLink { tx, task, stop } = self;
        drop(tx);
        stop.notify_one();
        task.await.map_err(|_| LinkClosed)
    }
}

struct Task {
    client: AsyncClient,
    eventloop: EventLoop,
    topics: Topics,
    max_in_flight: usize,
    backoff: Backoff,
    tracker: Tracker,
    connected: bool,
    events: mpsc::UnboundedSender<LinkEvent>,
}

impl Task {
    fn emit(&self, event: LinkEvent) {
        // A caller that dropped its receiver no longer cares; keep running.
        let _ = self.events.send(event);
    }

    fn not_delivered(&self, ids: Vec<u64>) {
        if !ids.is_empty() {
            tracing::debug!(count = ids.len(), "mqtt messages not delivered");
            self.emit(LinkEvent::NotDelivered { ids });
        }
    }

    async fn run(
        mut self,
        mut input: mpsc::Receiver<OutgoingMessage>,
        stop: std::sync::Arc<tokio::sync::Notify>,
    ) {
        let mut retry_at: Option<Instant> = None;
        loop {
            let can_take = !self.connected || self.tracker.outstanding() < self.max_in_flight;
            tokio::select! {
                // Only while no message can be taken: otherwise the queue
                // runs dry and ends the loop, as before.
                () = stop.notified(), if !can_take => {
                    // Queued messages not handed to rumqttc: not delivered.
                    let mut queued = Vec::new();
                    while let Ok(msg) = input.try_recv() {
                        if msg.kind != Kind::UpdateStatus {
                            queued.push(msg.id);
                        }
                    }
                    self.not_delivered(queued);
                    break;
                }
                polled = self.eventloop.poll(), if retry_at.is_none() => match polled {
                    Ok(event) => self.on_event(event),
                    Err(e) => retry_at = Some(self.on_error(&e)),
                },
                () = sleep_until(retry_at), if retry_at.is_some() => retry_at = None,
                msg = input.recv(), if can_take => match msg {
                    Some(msg) => self.publish(msg),
                    None => break,
                },
            }
        }
        self.shutdown().await;
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                self.connected = true;
                self.backoff.reset();
                tracing::info!(state = %self.topics.state, "mqtt link up");
                for topic in [&self.topics.cmd, &self.topics.update] {
                    if let Err(e) = self.client.try_subscribe(topic.clone(), QoS::AtLeastOnce) {
                        tracing::warn!(topic = %topic, error = %e, "mqtt subscribe request failed");
                    }
                }
                self.publish_state(STATE_ONLINE);
                self.emit(LinkEvent::Up);
            }
            Event::Incoming(Packet::PubAck(ack)) => match self.tracker.acked(ack.pkid) {
                Some(Tag::Message(id)) => self.emit(LinkEvent::Delivered { id }),
                Some(Tag::Internal) => {}
                None => tracing::warn!(pkid = ack.pkid, "mqtt PUBACK for no known publish"),
            },
            Event::Incoming(Packet::Publish(p)) => {
                if p.topic == self.topics.cmd || p.topic == self.topics.update {
                    self.emit(LinkEvent::Downlink {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                    });
                } else {
                    tracing::warn!(topic = %p.topic, "mqtt message on a topic not subscribed; ignored");
                }
            }
            Event::Incoming(Packet::SubAck(s))
                if s.return_codes.contains(&SubscribeReasonCode::Failure) =>
            {
                tracing::warn!(topic = %self.topics.cmd, "broker refused a subscription (command or update topic; ACL?)");
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Err(e) = self.tracker.written(pkid) {
                    self.broken(&e.to_string());
                }
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => {
                if let Err(e) = self.tracker.collided(pkid) {
                    self.broken(&e.to_string());
                }
            }
            _ => {}
        }
    }

    /// The event stream no longer matches the tracker: drop the connection
    /// (rumqttc reconnects on the next poll) and report everything unconfirmed.
    fn broken(&mut self, why: &str) {
        tracing::error!(error = why, "mqtt delivery tracking lost; reconnecting");
        self.eventloop.clean();
        self.connected = false;
        let ids = self.tracker.drain();
        self.not_delivered(ids);
        self.emit(LinkEvent::Down {
            reason: LinkError::Protocol(why.to_string()),
        });
    }

    /// Handles a failed poll; returns when to try again.
    fn on_error(&mut self, e: &ConnectionError) -> Instant {
        let reason = LinkError::from_connection(e);
        let was_up = std::mem::replace(&mut self.connected, false);
        let ids = self.tracker.drain();
        self.not_delivered(ids);
        let retry_in = self.backoff.next_delay(&mut rand::rng());
        if was_up {
            tracing::warn!(error = %reason, retry_ms = retry_in.as_millis() as u64, "mqtt link down");
            self.emit(LinkEvent::Down { reason });
        } else {
            tracing::warn!(error = %reason, retry_ms = retry_in.as_millis() as u64, "mqtt connect failed");
            self.emit(LinkEvent::ConnectFailed { reason, retry_in });
        }
        Instant::now() + retry_in
    }

    fn publish_state(&mut self, state: &'static [u8]) -> bool {
        match self
            .client
            .try_publish(self.topics.state.clone(), QoS::AtLeastOnce, true, state)
        {
            Ok(()) => {
                self.tracker.handed(Tag::Internal);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "mqtt state publish request failed");
                false
            }
        }
    }

    fn publish(&mut self, msg: OutgoingMessage) {
        if msg.kind == Kind::UpdateStatus {
            if self.connected
                && self
                    .client
                    .try_publish(
                        self.topics.update_status.clone(),
                        QoS::AtLeastOnce,
                        false,
                        msg.payload,
                    )
                    .is_ok()
            {
                self.tracker.handed(Tag::Internal);
            }
            return;
        }
        if !self.connected {
            self.not_delivered(vec![msg.id]);
            return;
        }
        let topic = match msg.kind {
            Kind::Event | Kind::UpdateStatus => &self.topics.events,
            Kind::Status => &self.topics.status,
        };
        match self
            .client
            .try_publish(topic.clone(), QoS::AtLeastOnce, false, msg.payload)
        {
            Ok(()) => self.tracker.handed(Tag::Message(msg.id)),
            Err(e) => {
                tracing::warn!(id = msg.id, error = %e, "mqtt publish request failed");
                self.not_delivered(vec![msg.id]);
            }
        }
    }

    async fn shutdown(mut self) {
        if self.connected && self.publish_state(STATE_OFFLINE) {
            let deadline = Instant::now() + SHUTDOWN_GRACE;
            while self.connected && self.tracker.outstanding() > 0 {
                match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                    Ok(Ok(event)) => self.on_event(event),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "mqtt connection lost during shutdown");
                        self.connected = false;
                    }
                    Err(_) => {
                        tracing::warn!(
                            outstanding = self.tracker.outstanding(),
                            "mqtt shutdown: acknowledgements still missing"
                        );
                        break;
                    }
                }
            }
            if self.connected && self.client.try_disconnect().is_ok() {
                let deadline = Instant::now() + SHUTDOWN_GRACE;
                loop {
                    match tokio::time::timeout_at(deadline, self.eventloop.poll()).await {
                        Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => {
                            break;
                        }
                        Ok(Ok(event)) => self.on_event(event),
                    }
                }
            }
        }
        let ids = self.tracker.drain();
        self.not_delivered(ids);
        tracing::info!("mqtt link stopped");
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
