//! The uplink: drains the outbox (the durable store) over the configured
//! links, confirms items only on delivery, obeys allowed downlink commands,
//! and expires old items.
//!
//! It runs on its own thread with its own tokio runtime on real time: the
//! node's runtime may run on tokio's paused clock (a replay at `--speed
//! max`), on which network timeouts would fire at once. It reads the node's
//! clock through [`NodeTime`] (the node runtime's handle), so record times,
//! expiry and status times stay on one clock.
//!
//! - [`config`]: the `[uplink]` table;
//! - [`status`]: the status record and what it is built from;
//! - [`live`]: the running uplink's state, shared with the field link;
//! - `sbd`: the task that owns the satellite modem;
//! - `task`: the loop (links, scheduler rounds, confirmations, commands);
//! - [`window`]: upload windows of the switched cellular modem
//!   (`[uplink.window]`, `[power.loads.modem]`).

pub mod config;
pub mod live;
mod sbd;
pub mod status;
mod task;
pub mod window;

use std::sync::Arc;

use power::PowerStatus;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot, watch};
use uplink::EventStore;
use uplink::mqtt::{MqttLink, StartError};

use crate::clock::Clock;
pub use config::{SbdConfig, UplinkConfig};
pub use status::{SharedState, StatusSource};

/// The node's clock, readable from another runtime: reads it inside the
/// node runtime's context, so a paused (replay) clock reads correctly.
#[derive(Clone)]
pub struct NodeTime {
    handle: Handle,
    clock: Arc<dyn Clock>,
}

impl NodeTime {
    /// The clock of the runtime this is called on.
    ///
    /// # Panics
    /// Outside a tokio runtime (a bug: the node always calls it inside one).
    pub fn current(clock: Arc<dyn Clock>) -> NodeTime {
        NodeTime {
            handle: Handle::current(),
            clock,
        }
    }

    /// The node's time now, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        let _inside = self.handle.enter();
        self.clock.now_ms()
    }

    /// Offers another source's time to the node's clock
    /// ([`Clock::offer_reference`]).
    pub fn offer_reference(
        &self,
        source: crate::timekeeping::guarded::ReferenceSource,
        unix_ms: i64,
        uncertainty_ms: u32,
    ) {
        let _inside = self.handle.enter();
        self.clock.offer_reference(source, unix_ms, uncertainty_ms);
    }

    /// Re-stamps an event stored while the time was untrusted, when the
    /// clock has since learned the correction ([`Clock::stamp`]): the copy
    /// that goes out carries the corrected time (the stored record is
    /// left as it was). Returns whether it changed.
    pub fn restamp(&self, item: &mut uplink::store::PendingItem) -> bool {
        let messages::Message::Event(e) = &mut item.message else {
            return false;
        };
        if e.time.source != messages::TimeSource::Untrusted {
            return false;
        }
        let (t, q) = {
            let _inside = self.handle.enter();
            self.clock.stamp(e.start_ms)
        };
        if !q.restamped {
            return false;
        }
        tracing::debug!(
            id = e.id,
            from_ms = e.start_ms,
            to_ms = t,
            source = q.source.as_str(),
            "event re-stamped for sending"
        );
        e.start_ms = t;
        e.time = q;
        item.time_ms = t;
        item.bytes = item.message.encode();
        true
    }
}

/// What the uplink did in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UplinkOutcome {
    /// Items confirmed delivered and removed from the outbox.
    pub delivered: u64,
    /// Items handed to a link and reported not delivered (re-sent later).
    pub not_delivered: u64,
    /// Scheduler rounds decided.
    pub rounds: u64,
    /// Downlink commands carried out.
    pub commands_done: u64,
    /// Downlink commands rejected (do not parse, or not allowed).
    pub commands_rejected: u64,
    /// Items still in the outbox when the uplink stopped.
    pub left_in_outbox: u64,
    /// Satellite messages the gateway refused for good (MO status 12, 14
    /// or 16).
    pub sbd_refused: u64,
    /// Items quarantined in this run: messages carrying them were refused
    /// `[uplink.sbd] max_permanent_failures` times; kept in the outbox,
    /// no longer sent by satellite.
    pub sbd_quarantined: u64,
    /// Items in quarantine when the uplink stopped (this run's and earlier
    /// runs', still in the outbox).
    pub sbd_quarantine_held: u64,
}

/// Why the uplink did not start.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// The MQTT link refused its configuration or TLS files.
    #[error("[uplink.mqtt]: {0}")]
    Mqtt(#[from] StartError),
    /// The uplink thread or its runtime could not be created.
    #[error("uplink thread: {0}")]
    Thread(std::io::Error),
}

/// How the node tells the uplink to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    /// Keep forwarding until the outbox is empty or `drain_timeout_ms` passed.
    Drain,
    /// Stop sending now.
    Stop,
}

/// What the uplink works with.
pub struct UplinkParts {
    /// `[uplink]`, with `mqtt.node_id` filled in.
    pub cfg: UplinkConfig,
    /// The outbox.
    pub store: Arc<EventStore>,
    /// The power task's status (its `uplink` decision).
    pub power: watch::Receiver<PowerStatus>,
    /// For status records on command.
    pub status: StatusSource,
    /// The node's clock.
    pub time: NodeTime,
    /// Where a signed bundle received by satellite is queued for the
    /// update task (`<data_dir>/incoming`).
    pub incoming: std::path::PathBuf,
    /// Largest bundle taken over the update topic, bytes.
    pub update_cap: u64,
    /// The switched loads: with a modem line (`[power.loads.modem]`) and
    /// MQTT, the modem is powered only for upload windows (`window`); with
    /// a satellite line (`[power.loads.satellite]`) and `[uplink.sbd]`, the
    /// satellite modem only for its requests (`sbd`).
    pub loads: Option<power::SwitchedLoads>,
    /// The root the modem's interface is read under (`[power.sysfs] root`).
    pub sys_root: std::path::PathBuf,
}

impl UplinkParts {
    /// Whether MQTT rides on a switched modem, powered for windows only.
    pub fn windowed(&self) -> bool {
        self.cfg.mqtt.is_some()
            && self
                .loads
                .as_ref()
                .is_some_and(|l| l.has(power::Load::Modem))
    }
}

/// What [`MqttLink::start`] checks before it connects.
fn check_mqtt(cfg: &uplink::mqtt::MqttConfig) -> Result<(), StartError> {
    cfg.validate()?;
    if let Some(files) = &cfg.tls {
        uplink::mqtt::tls::client_config(files)?;
    }
    Ok(())
}

/// The running uplink.
pub struct UplinkHandle {
    control: watch::Sender<Control>,
    wake: Arc<Notify>,
    done: oneshot::Receiver<UplinkOutcome>,
    thread: std::thread::JoinHandle<()>,
}

impl UplinkHandle {
    /// Starts the uplink thread and its links.
    pub fn start(parts: UplinkParts) -> Result<UplinkHandle, UplinkError> {
        let (control, control_rx) = watch::channel(Control::Run);
        let wake = Arc::new(Notify::new());
        let (done_tx, done) = oneshot::channel();
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let task_wake = wake.clone();
        let thread = std::thread::Builder::new()
            .name("uplink".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = started_tx.send(Err(UplinkError::Thread(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    // With windows the link starts in each window; its
                    // configuration and TLS files are checked now.
                    let mqtt = if parts.windowed() {
                        match parts.cfg.mqtt.as_ref().map(check_mqtt).transpose() {
                            Ok(_) => None,
                            Err(e) => {
                                let _ = started_tx.send(Err(UplinkError::Mqtt(e)));
                                return;
                            }
                        }
                    } else {
                        match parts.cfg.mqtt.as_ref().map(MqttLink::start).transpose() {
                            Ok(m) => m,
                            Err(e) => {
                                let _ = started_tx.send(Err(UplinkError::Mqtt(e)));
                                return;
                            }
                        }
                    };
                    let _ = started_tx.send(Ok(()));
                    let outcome = task::Uplink::new(parts)
                        .run(mqtt, task_wake, control_rx)
                        .await;
                    let _ = done_tx.send(outcome);
                });
            })
            .map_err(UplinkError::Thread)?;
        match started_rx.recv() {
            Ok(Ok(())) => Ok(UplinkHandle {
                control,
                wake,
                done,
                thread,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(UplinkError::Thread(std::io::Error::other(
                    "the uplink thread ended before starting",
                )))
            }
        }
    }

    /// Wakes the uplink: something was stored.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Keeps forwarding until the outbox is empty (or `drain_timeout_ms`),
    /// then stops.
    pub async fn drain_and_stop(self) -> UplinkOutcome {
        self.finish(Control::Drain).await
    }

    /// Stops sending now (what was acknowledged meanwhile is confirmed).
    pub async fn stop(self) -> UplinkOutcome {
        self.finish(Control::Stop).await
    }

    async fn finish(self, how: Control) -> UplinkOutcome {
        let UplinkHandle {
            control,
            done,
            thread,
            ..
        } = self;
        control.send_replace(how);
        let outcome = done.await.unwrap_or_else(|_| {
            tracing::error!("the uplink thread ended without a report");
            UplinkOutcome::default()
        });
        // Joining blocks until the runtime is dropped: off the async threads.
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timekeeping::floor::TimeFloor;
    use crate::timekeeping::guarded::{GuardedClock, ReferenceSource, TimeSources};
    use crate::timekeeping::kernel::KernelSync;
    use messages::{EventRecord, Message, TimeSource};
    use std::sync::atomic::{AtomicI64, Ordering};

    const NOW: i64 = 1_780_000_000_000;

    /// A system clock reset to 1970 and a monotonic clock the test moves.
    #[derive(Default)]
    struct Reset {
        mono: AtomicI64,
    }

    impl TimeSources for Arc<Reset> {
        fn wall_ms(&self) -> i64 {
            5_000 + self.mono.load(Ordering::SeqCst)
        }
        fn mono_ms(&self) -> i64 {
            self.mono.load(Ordering::SeqCst)
        }
        fn kernel(&self) -> Option<KernelSync> {
            None
        }
    }

    fn item(e: EventRecord) -> uplink::store::PendingItem {
        let message = Message::Event(e);
        uplink::store::PendingItem {
            id: message.id(),
            priority: messages::Priority::Normal,
            time_ms: 0,
            bytes: message.encode(),
            message,
        }
    }

    #[tokio::test]
    async fn an_event_stored_untrusted_goes_out_re_stamped_once_trusted_time_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let floor_ms = NOW - 86_400_000;
        let floor = TimeFloor::open(dir.path(), floor_ms).unwrap();
        let sources = Arc::new(Reset::default());
        let clock = Arc::new(GuardedClock::new(sources.clone(), floor));
        let time = NodeTime::current(clock.clone());
        sources.mono.store(10_000, Ordering::SeqCst);
        let t = clock.now_ms();
        let (start_ms, quality) = clock.stamp(t);
        assert_eq!(quality.source, TimeSource::Untrusted);
        let mut e = EventRecord {
            id: 3,
            node_id: "n".into(),
            start_ms,
            duration_ms: 1_000,
            class: messages::EventClass::Wildlife,
            confidence: messages::Permille(900),
            scores: Default::default(),
            features: Default::default(),
            model: messages::ModelVersion(7),
            time: quality,
            mono: None,
        };
        // Still untrusted: it goes out as stored.
        let mut i = item(e.clone());
        assert!(!time.restamp(&mut i));
        assert_eq!(i.message, Message::Event(e.clone()));
        // Iridium time arrives 5 s later.
        sources.mono.store(15_000, Ordering::SeqCst);
        clock.offer(ReferenceSource::Iridium, NOW, 1_000);
        let mut i = item(e.clone());
        assert!(time.restamp(&mut i));
        let Message::Event(sent) = &i.message else {
            panic!("an event")
        };
        assert_eq!(sent.start_ms, NOW - 5_000);
        assert_eq!(sent.time.source, TimeSource::Iridium);
        assert!(sent.time.restamped);
        assert_eq!(sent.time.uncertainty_ms, Some(1_000));
        assert_eq!(i.time_ms, NOW - 5_000);
        assert_eq!(
            messages::decode_message(&i.bytes).ok(),
            Some(i.message.clone())
        );
        // A record that was never untrusted is left alone.
        e.time.source = TimeSource::Plausible;
        let mut i = item(e);
        assert!(!time.restamp(&mut i));
    }
}
