//! Bundles handed to the update task by the field link (`BundlePush`): the
//! link puts a pushed bundle into the drop folder like any other delivery,
//! and asks here for the task's result on that file, with or without the
//! technician's `force_power`. The task looks at once when woken, instead
//! of at its next scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::{Notify, oneshot};

use super::state::Outcome;

/// What the link asked for one file of the drop folder.
pub struct Request {
    /// Install even if the power policy would defer it, when the node
    /// still sees an external supply as the task takes the bundle.
    pub force_power: bool,
    /// Where the task's result goes.
    pub reply: oneshot::Sender<Outcome>,
}

/// Shared by the field link (which hands bundles over) and the update task
/// (which takes them).
#[derive(Default)]
pub struct Handoff {
    wake: Notify,
    requests: Mutex<HashMap<PathBuf, Request>>,
}

impl Handoff {
    /// Registers interest in the task's result for `path` (a file about to
    /// be moved into the drop folder). A registration for the same path
    /// replaces the previous one.
    pub fn register(&self, path: PathBuf, force_power: bool) -> oneshot::Receiver<Outcome> {
        let (reply, rx) = oneshot::channel();
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path, Request { force_power, reply });
        rx
    }

    /// Forgets the registration for `path` (the file never reached the
    /// drop folder).
    pub fn forget(&self, path: &Path) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }

    /// Wakes the update task for a look at the drop folder now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Completes when [`Handoff::wake`] was called (a call made while
    /// nobody waited counts for the next wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The request for `path`, taken by the task when it offers the file.
    pub fn take(&self, path: &Path) -> Option<Request> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path)
    }
}
