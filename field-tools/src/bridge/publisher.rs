//! The bridge's MQTT side: one task owns rumqttc's `EventLoop::poll()` and
//! publishes batches (the records of one callback) at QoS 1. A batch is
//! answered `Ok` only when the PUBACK of every one of its messages arrived
//! (packet ids matched with `uplink::mqtt::tracker`); when the connection
//! drops, every unconfirmed batch is answered with an error, so that the
//! HTTP side can ask RockBLOCK to deliver again. While disconnected, new
//! batches are refused at once. Reconnects use jittered exponential backoff.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uplink::mqtt::TlsFiles;
use uplink::mqtt::backoff::Backoff;
use uplink::mqtt::tracker::{Tag, Tracker};

/// Where and how the publisher connects.
#[derive(Clone, Debug)]
pub struct PublisherOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Mutual TLS files; `None` is plain TCP.
    pub tls: Option<TlsFiles>,
    /// MQTT client id (clean session).
    pub client_id: String,
    /// Publishes awaiting their PUBACK, at most.
    pub max_in_flight: u16,
    /// First reconnect delay, ms.
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, ms.
    pub reconnect_max_ms: u64,
}

/// One message to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Why a batch was not confirmed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PublishError {
    /// Not connected to the broker.
    #[error("not connected to the broker")]
    Down,
    /// The connection ended before every PUBACK arrived.
    #[error("connection lost before every PUBACK arrived: {0}")]
    Lost(String),
    /// rumqttc refused the request.
    #[error("publish request refused: {0}")]
    Refused(String),
    /// The publisher task has ended.
    #[error("publisher stopped")]
    Stopped,
}

/// Why the publisher did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] uplink::mqtt::TlsError),
}

struct Batch {
    messages: Vec<Publish>,
    reply: oneshot::Sender<Result<(), PublishError>>,
}

/// Handle to the publisher task.
pub struct Publisher {
    tx: mpsc::Sender<Batch>,
    connected: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Starts the task on the current runtime; it connects in the background.
    pub fn start(opts: &PublisherOptions) -> Result<Publisher, StartError> {
        let mut mqtt = MqttOptions::new(opts.client_id.clone(), opts.host.clone(), opts.port);
        mqtt.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_inflight(opts.max_in_flight.max(1));
        if let Some(files) = &opts.tls {
            let config = uplink::mqtt::tls::client_config(files)?;
            mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        let capacity = usize::from(opts.max_in_flight.max(1)) + 8;
        let (client, eventloop) = AsyncClient::new(mqtt, capacity);
        let (tx, rx) = mpsc::channel(64);
        let (connected_tx, connected) = watch::channel(false);
        let task = Task {
            client,
            eventloop,
            max_in_flight: usize::from(opts.max_in_flight.max(1)),
            backoff: Backoff::new(opts.reconnect_min_ms, opts.reconnect_max_ms),
            tracker: Tracker::default(),
            connected: connected_tx,
            next_seq: 0,
            next_batch: 0,
            pending: VecDeque::new(),
            batch_of: HashMap::new(),
            batches: HashMap::new(),
        };
        let task = tokio::spawn(task.run(rx));
        Ok(Publisher {
            tx,
            connected,
            task,
        })
    }

    /// Publishes `messages` at QoS 1; returns when the broker acknowledged
    /// every one of them, or with the reason it did not.
    pub async fn publish(&self, messages: Vec<Publish>) -> Result<(), PublishError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Batch { messages, reply })
            .await
            .map_err(|_| PublishError::Stopped)?;
        answer.await.map_err(|_| PublishError::Stopped)?
    }

    /// Whether the broker connection is up now.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// A receiver that sees every change of the connection state.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.clone()
    }

    /// Stops taking batches, disconnects and waits for the task to end.
    pub async fn shutdown(self) {
        let Publisher { tx, task, .. } = self;
        drop(tx);
        let _ = task.await;
    }
}

struct BatchState {
    remaining: usize,
    reply: oneshot::Sender<Result<(), PublishError>>,
}

struct Task {
    client: AsyncClient,
    eventloop: EventLoop,
    max_in_flight: usize,
    backoff: Backoff,
    tracker: Tracker,
    connected: watch::Sender<bool>,
    next_seq: u64,
    next_batch: u64,
    /// Messages of accepted batches not yet handed to rumqttc: (seq, message).
    pending: VecDeque<(u64, Publish)>,
    /// Message seq → batch id.
    batch_of: HashMap<u64, u64>,
    batches: HashMap<u64, BatchState>,
}

impl Task {
    fn is_up(&self) -> bool {
        *self.connected.borrow()
    }

    async fn run(mut self, mut input: mpsc::Receiver<Batch>) {
        let mut retry_at: Option<Instant> = None;
        loop {
            tokio::select! {
                polled = self.eventloop.poll(), if retry_at.is_none() => match polled {
                    Ok(event) => self.on_event(event),
                    Err(e) => retry_at = Some(self.on_error(&e)),
                },
                () = async {
                    if let Some(at) = retry_at { tokio::time::sleep_until(at).await }
                }, if retry_at.is_some() => retry_at = None,
                batch = input.recv(), if self.pending.is_empty() => match batch {
                    Some(batch) => self.accept(batch),
                    None => break,
                },
            }
            self.feed();
        }
        if self.is_up() {
            // Best effort: nothing is left unanswered (fail_all below).
            let _ = self.client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_secs(2), self.eventloop.poll()).await;
        }
        self.fail_all(&PublishError::Stopped);
    }

    fn accept(&mut self, batch: Batch) {
        if !self.is_up() {
            let _ = batch.reply.send(Err(PublishError::Down));
            return;
        }
        if batch.messages.is_empty() {
            let _ = batch.reply.send(Ok(()));
            return;
        }
        let id = self.next_batch;
        self.next_batch += 1;
        self.batches.insert(
            id,
            BatchState {
                remaining: batch.messages.len(),
                reply: batch.reply,
            },
        );
        for m in batch.messages {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.batch_of.insert(seq, id);
            self.pending.push_back((seq, m));
        }
    }

    /// Hands pending messages to rumqttc while the in-flight window allows.
    fn feed(&mut self) {
        while self.is_up() && self.tracker.outstanding() < self.max_in_flight {
            let Some((seq, m)) = self.pending.pop_front() else {
                break;
            };
            match self
                .client
                .try_publish(m.topic.clone(), QoS::AtLeastOnce, false, m.payload)
            {
                Ok(()) => self.tracker.handed(Tag::Message(seq)),
                Err(e) => {
                    tracing::warn!(topic = %m.topic, error = %e, "bridge publish request refused");
                    self.fail_seq(seq, PublishError::Refused(e.to_string()));
                }
            }
        }
    }

    /// Fails the batch of `seq` (and drops its other pending messages).
    fn fail_seq(&mut self, seq: u64, error: PublishError) {
        if let Some(batch) = self.batch_of.remove(&seq) {
            self.pending
                .retain(|(s, _)| self.batch_of.get(s).is_none_or(|b| *b != batch));
            self.batch_of.retain(|_, b| *b != batch);
            if let Some(state) = self.batches.remove(&batch) {
                let _ = state.reply.send(Err(error));
            }
        }
    }

    fn fail_all(&mut self, error: &PublishError) {
        self.tracker.drain();
        self.pending.clear();
        self.batch_of.clear();
        for (_, state) in self.batches.drain() {
            let _ = state.reply.send(Err(error.clone()));
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                self.backoff.reset();
                self.connected.send_replace(true);
                tracing::info!("bridge connected to the broker");
            }
            Event::Incoming(Packet::PubAck(ack)) => match self.tracker.acked(ack.pkid) {
                Some(Tag::Message(seq)) => {
                    if let Some(batch) = self.batch_of.remove(&seq)
                        && let Some(state) = self.batches.get_mut(&batch)
                    {
                        state.remaining = state.remaining.saturating_sub(1);
                        if state.remaining == 0
                            && let Some(state) = self.batches.remove(&batch)
                        {
                            let _ = state.reply.send(Ok(()));
                        }
                    }
                }
                Some(Tag::Internal) => {}
                None => tracing::warn!(pkid = ack.pkid, "PUBACK for no known publish"),
            },
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
    /// (rumqttc reconnects on the next poll) and fail what is unconfirmed.
    fn broken(&mut self, why: &str) {
        tracing::error!(error = why, "bridge delivery tracking lost; reconnecting");
        self.eventloop.clean();
        self.connected.send_replace(false);
        self.fail_all(&PublishError::Lost(why.to_string()));
    }

    fn on_error(&mut self, e: &ConnectionError) -> Instant {
        let was_up = self.connected.send_replace(false);
        self.fail_all(&PublishError::Lost(e.to_string()));
        let retry_in = self.backoff.next_delay(&mut rand::rng());
        let retry_ms = u64::try_from(retry_in.as_millis()).unwrap_or(u64::MAX);
        if was_up {
            tracing::warn!(error = %e, retry_ms, "bridge lost the broker");
        } else {
            tracing::warn!(error = %e, retry_ms, "bridge could not connect to the broker");
        }
        Instant::now() + retry_in
    }
}
