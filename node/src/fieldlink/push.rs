//! `BundlePush` in a session (`docs/field-link.md`, "Pushing a bundle"):
//! `Begin` claims the push for this session (one session pushes at a time)
//! and answers how much of that bundle the node holds; `Chunk` appends at
//! the offset held; `Commit` checks the whole file against `Begin`, moves
//! it into the drop folder (`<data_dir>/incoming/`), where the update task
//! verifies and installs it as any delivered bundle, wakes the task and
//! answers with its result. The files are in [`super::push_store`]; every
//! file access runs on a blocking thread.

use std::time::Duration;

use messages::link::{BundleOutcome, BundlePush, ErrorCode, InstallWhen, Response};

use super::push_store::{self, Active, PushError};
use super::replies::{NodeView, error};
use crate::update::Outcome;

/// How long a `Commit` waits for the update task's result before it
/// answers `Queued`: under the session's own limit for the request (4/5 of
/// the client's 60 s).
pub const COMMIT_WAIT: Duration = Duration::from_secs(40);

/// One session's part in pushing.
#[derive(Debug)]
pub struct SessionPush {
    /// The session's number among the link's sessions (who owns the push).
    pub serial: u64,
    /// The bundle this session began.
    pub active: Option<Active>,
}

impl SessionPush {
    /// A session that has begun nothing.
    pub fn new(serial: u64) -> SessionPush {
        SessionPush {
            serial,
            active: None,
        }
    }

    /// Ends this session's push (the partial file stays on disk) and lets
    /// another session begin one.
    pub fn release(&mut self, view: &NodeView) {
        self.active = None;
        let mut owner = view
            .shared
            .push_owner
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *owner == Some(self.serial) {
            *owner = None;
        }
    }

    /// Takes the push for this session, unless another one holds it.
    fn claim(&self, view: &NodeView) -> bool {
        let mut owner = view
            .shared
            .push_owner
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match *owner {
            Some(other) if other != self.serial => false,
            _ => {
                *owner = Some(self.serial);
                true
            }
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(ErrorCode::Internal, format!("the node failed: {e}")))
}

fn push_error(e: PushError) -> Response {
    let code = match e {
        PushError::Io(_) => ErrorCode::Internal,
        _ => ErrorCode::InvalidArgument,
    };
    error(code, e.to_string())
}

fn not_begun() -> Response {
    error(
        ErrorCode::InvalidArgument,
        "no bundle begun in this session: send Begin first",
    )
}

/// Answers one step of a push.
pub async fn step(view: &NodeView, push: &mut SessionPush, step: BundlePush) -> Response {
    match step {
        BundlePush::Begin {
            kind,
            total_len,
            sha256,
        } => {
            if !push.claim(view) {
                return error(
                    ErrorCode::Busy,
                    "another session is pushing a bundle: retry when it ends (a partial bundle stays on the node)",
                );
            }
            let dir = push_store::dir(&view.data_dir);
            let cap = view.config.config().update.max_bundle_bytes;
            match blocking(move || push_store::begin(&dir, cap, kind, total_len, sha256)).await {
                Ok(Ok(active)) => {
                    tracing::info!(
                        kind = ?kind,
                        total_len,
                        held = active.offset,
                        sha256 = %hex(&sha256),
                        "field link: bundle push begun"
                    );
                    let offset = active.offset;
                    push.active = Some(active);
                    Response::BundleOffset { offset }
                }
                Ok(Err(e)) => {
                    tracing::warn!(total_len, cap, error = %e, "field link: bundle push refused at Begin");
                    push.release(view);
                    push_error(e)
                }
                Err(r) => {
                    push.release(view);
                    r
                }
            }
        }
        BundlePush::Chunk { offset, data } => {
            let Some(mut active) = push.active.clone() else {
                return not_begun();
            };
            let held_before = active.offset;
            let dir = push_store::dir(&view.data_dir);
            let written = blocking(move || {
                let r = push_store::chunk(&dir, &mut active, offset, &data);
                (r, active)
            })
            .await;
            match written {
                Ok((Ok(held), active)) => {
                    if offset != held_before {
                        tracing::debug!(
                            offset,
                            held,
                            "field link: chunk not at the offset held; not written"
                        );
                    }
                    push.active = Some(active);
                    Response::BundleOffset { offset: held }
                }
                Ok((Err(e), _)) => {
                    tracing::warn!(offset, error = %e, "field link: chunk refused");
                    push_error(e)
                }
                Err(r) => r,
            }
        }
        BundlePush::Commit { force_power } => commit(view, push, force_power).await,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `Commit`: the checks, the hand-over to the update task and its result.
async fn commit(view: &NodeView, push: &mut SessionPush, force_power: bool) -> Response {
    let Some(active) = push.active.clone() else {
        return not_begun();
    };
    if force_power {
        let reading = view.status.power.borrow().reading;
        if !reading.external_supply() {
            tracing::warn!(
                solar_w = reading.solar_w,
                load_w = reading.load_w,
                "field link: force_power refused: no external supply seen"
            );
            return error(
                ErrorCode::InvalidArgument,
                format!(
                    "force_power refused: the node sees no external supply (charge input {:.1} W, not above the load of {:.1} W); connect the charger to the node's charge input, or commit without force_power (the bundle is kept)",
                    reading.solar_w, reading.load_w
                ),
            );
        }
    }
    let dir = push_store::dir(&view.data_dir);
    let checked = {
        let active = active.clone();
        blocking(move || push_store::finish(&dir, &active)).await
    };
    let whole = match checked {
        Ok(Ok(w)) => w,
        Ok(Err(refused)) => {
            tracing::warn!(code = refused.code, reason = %refused.reason, kept = refused.kept, "field link: pushed bundle refused at Commit");
            if !refused.kept {
                push.release(view);
            }
            return Response::BundleCommitted(BundleOutcome::Refused {
                code: refused.code.into(),
                reason: refused.reason,
            });
        }
        Err(r) => return r,
    };
    push.release(view);
    let Some(handoff) = view.updates.clone() else {
        let path = whole.path.clone();
        let _ = blocking(move || std::fs::remove_file(path)).await;
        tracing::warn!("field link: pushed bundle refused: updates are off on this node");
        return Response::BundleCommitted(BundleOutcome::Refused {
            code: "updates_off".into(),
            reason: "this node takes no update: it has no trust root ([update] root), or its trust state is unreadable".into(),
        });
    };
    let incoming = view.data_dir.join("incoming");
    let name = whole.incoming_name();
    let dest = incoming.join(&name);
    // Asked for before the file is there: the task may take it at once.
    let result = handoff.register(dest.clone(), force_power);
    let moved = {
        let whole = whole.clone();
        blocking(move || push_store::hand_over(&whole, &incoming, &name)).await
    };
    match moved {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            handoff.forget(&dest);
            tracing::error!(error = %e, "field link: pushed bundle not queued");
            return push_error(e);
        }
        Err(r) => {
            handoff.forget(&dest);
            return r;
        }
    }
    handoff.wake();
    tracing::info!(
        kind = whole.kind,
        name = %whole.name,
        version = whole.version,
        bytes = active.total_len,
        force_power,
        path = %dest.display(),
        "field link: pushed bundle queued for the update task"
    );
    let outcome = match tokio::time::timeout(COMMIT_WAIT, result).await {
        Ok(Ok(o)) => outcome_of(&o),
        _ => {
            tracing::info!(path = %dest.display(), "field link: no result from the update task within the wait; the bundle stays queued");
            BundleOutcome::Queued {
                install: InstallWhen::Now,
            }
        }
    };
    Response::BundleCommitted(outcome)
}

/// The code a result's reason starts with (`signatures: ...`), or
/// `fallback`.
fn code_of(reason: &str, fallback: &str) -> String {
    reason
        .split_once(':')
        .map(|(c, _)| c)
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        .unwrap_or(fallback)
        .to_string()
}

/// The link's form of an update task's result.
pub fn outcome_of(o: &Outcome) -> BundleOutcome {
    let reason = o.reason.clone();
    match o.result.as_str() {
        "installed" => BundleOutcome::Installed { reason },
        "on_trial" => BundleOutcome::OnTrial { reason },
        "deferred" => BundleOutcome::Deferred { reason },
        "rolled_back" => BundleOutcome::RolledBack {
            code: code_of(&reason, "rolled_back"),
            reason,
        },
        _ => BundleOutcome::Refused {
            code: code_of(&reason, "refused"),
            reason,
        },
    }
}
