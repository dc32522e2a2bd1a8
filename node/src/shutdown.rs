//! The shutdown signal every task receives.
//!
//! It also tells the service manager how the run goes (`crate::service`,
//! no-ops without `NOTIFY_SOCKET`): a run makes its channel once its store
//! is open (`STATUS=`), the first task that waits on the signal means the
//! tasks run (`READY=1`), and triggering it means the node stops
//! (`STOPPING=1`).

use tokio::sync::watch;

use crate::service;

/// Triggers shutdown; dropping it also triggers it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A task's view of the shutdown signal.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and its first receiver. Called by a run once its store is
/// open, inside its runtime.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    service::global().run_started();
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Tells every task to stop.
    pub fn trigger(&self) {
        service::global().stopping();
        self.0.send_replace(true);
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        // The receivers see the sender gone; the service manager hears it.
        service::global().stopping();
    }
}

impl Shutdown {
    /// True once shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when shutdown is triggered (or its trigger dropped).
    pub async fn wait(&mut self) {
        // A task waiting here is a task that runs.
        service::global().task_running();
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}
