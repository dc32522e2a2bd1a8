//! The node's side of the field link (`docs/field-link.md`): serves
//! `field-tools link` on a Unix socket and/or a serial device.
//!
//! It runs on its own thread with its own tokio runtime on real time, like
//! the uplink: the node's runtime may run on tokio's paused clock (a replay
//! at `--speed max`), where the link's timeouts would fire at once, and a
//! technician's slow cable must never hold up detection, storage or the
//! uplink. It reads the store on blocking threads and only ever takes the
//! store's own short locks.
//!
//! - [`config`]: the `[fieldlink]` table;
//! - [`listen`]: the transports (socket, serial);
//! - [`session`]: one session over any byte stream: handshake, requests,
//!   the events and log streams with credit, `Reboot`;
//! - [`events`]: reading one batch of durable events from the store;
//! - [`logs`]: a log stream over the node's log ring ([`crate::logring`]);
//! - [`replies`]: the requests answered in one reply, from [`NodeView`];
//! - [`probe`]: `Probe` from what the running sensors report;
//! - [`push`], [`push_store`]: `BundlePush`, the partial bundle on disk
//!   and its hand-over to the update task;
//! - [`reboot`]: the reboot request and the exit code it ends the node with;
//! - [`timeref`]: the technician's time reference `TimeSet` records.
//!
//! Served: every request. Reads: Status, Events (since / after_id / limit / follow,
//! with credit and resume), LogsTail, TimeGet, ConfigShow, ConfigValidate,
//! UplinkStatus and OutboxStats (from the running uplink's live state).
//! In an authenticated session: TimeSet (recorded as a time reference; the
//! clock is not set), ConfigSet (the file replaced atomically, applied
//! from the next start), Probe (the running sensors' health, no device
//! touched), UplinkFlush (a round of the running uplink now) and Reboot
//! (the node stops as on SIGTERM and exits with [`REBOOT_EXIT_CODE`]) and
//! BundlePush (into the drop folder, installed by the update task with the
//! power gate, which `force_power` sets aside on an external supply).

pub mod config;
pub mod events;
pub mod listen;
pub mod logs;
pub mod probe;
pub mod push;
pub mod push_store;
pub mod reboot;
pub mod replies;
pub mod session;
pub mod timeref;

use std::sync::Arc;

use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::{Config, SensorSource};
use crate::uplink::{NodeTime, StatusSource};
pub use config::FieldLinkConfig;
pub use reboot::{REBOOT_EXIT_CODE, RebootRequest};
pub use replies::{LinkShared, NodeView};
pub use session::Limits;

/// The running field link; dropping it stops it (and waits for its thread,
/// at most about a second).
pub struct FieldLink {
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FieldLink {
    /// Starts the link when `[fieldlink]` names a socket or a serial
    /// device; logs and returns `None` otherwise or when it cannot start
    /// (the node runs on without it). Call it inside the node's runtime.
    /// `reboot` is set when a technician asks for a reboot; pushed bundles
    /// go to the update task through `updates` (`None`: updates are off);
    /// `config` is the configuration file's in force (`cfg` is the one the
    /// node runs, with the installed settings patch).
    pub fn start_if_configured(
        cfg: &Config,
        config: Arc<crate::update::live::ConfigInForce>,
        status: &StatusSource,
        clock: Arc<dyn Clock>,
        reboot: Arc<RebootRequest>,
        updates: Option<Arc<crate::update::handoff::Handoff>>,
    ) -> Option<FieldLink> {
        let fl = &cfg.fieldlink;
        if !fl.enabled() {
            return None;
        }
        let view = Arc::new(NodeView {
            status: status.clone(),
            time: NodeTime::current(clock),
            time_source: match cfg.node.sensors {
                SensorSource::Scene => "scene",
                SensorSource::Hardware => "system",
            },
            config,
            config_file: fl.config_file.clone(),
            reads_need_auth: fl.reads_need_auth,
            trusted_keys: fl.trusted_keys(),
            data_dir: cfg.node.data_dir.clone(),
            shared: Arc::new(LinkShared::load(&cfg.node.data_dir)),
            logs: crate::logring::LogRing::global().clone(),
            reboot,
            updates,
        });
        match Self::start(fl.clone(), view, Limits::default()) {
            Ok(link) => Some(link),
            Err(e) => {
                tracing::error!(error = %e, "field link not started");
                None
            }
        }
    }

    /// Starts the link's thread and binds its socket (errors from binding
    /// are returned; a serial device that does not open is retried).
    pub fn start(
        cfg: FieldLinkConfig,
        view: Arc<NodeView>,
        limits: Limits,
    ) -> Result<FieldLink, StartError> {
        let (stop, stop_rx) = watch::channel(false);
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("fieldlink".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = started_tx.send(Err(StartError::Thread(e)));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut tasks = Vec::new();
                    if let Some(path) = cfg.socket.clone() {
                        match listen::bind(&path) {
                            Ok(l) => tasks.push(tokio::spawn(listen::serve_socket(
                                l,
                                path,
                                view.clone(),
                                limits,
                                stop_rx.clone(),
                            ))),
                            Err(e) => {
                                let _ = started_tx.send(Err(StartError::Listen(e)));
                                return;
                            }
                        }
                    }
                    if let Some(path) = cfg.serial.clone() {
                        tasks.push(tokio::spawn(listen::serve_serial(
                            path,
                            cfg.baud,
                            view.clone(),
                            limits,
                            stop_rx.clone(),
                        )));
                    }
                    let _ = started_tx.send(Ok(()));
                    for t in tasks {
                        let _ = t.await;
                    }
                });
                rt.shutdown_timeout(std::time::Duration::from_secs(1));
            })
            .map_err(StartError::Thread)?;
        match started_rx.recv() {
            Ok(Ok(())) => Ok(FieldLink {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Thread(std::io::Error::other(
                    "the field link thread ended before starting",
                )))
            }
        }
    }
}

impl Drop for FieldLink {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why the link did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The socket could not be bound.
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    /// The thread or its runtime could not be created.
    #[error("field link thread: {0}")]
    Thread(std::io::Error),
}

#[cfg(test)]
mod command_tests;
#[cfg(test)]
mod push_tests;
#[cfg(test)]
mod tests;
