//! Reporting update results to the operator. Every install, trial,
//! rollback and refusal, and the first deferral of a bundle for each kind
//! of reason, becomes:
//! - a status record made at once with cause `update_result` (stored in
//!   the outbox at priority high, so it reaches the operator over MQTT or
//!   satellite), whose update part carries the installed versions and
//!   this result;
//! - a report on the MQTT `update/status` topic (the JSON of
//!   [`super::receive::Progress`] with the result as its `state`), which
//!   `field-tools bundle publish` follows to the end.
//!
//! Every later status record carries the installed versions and the last
//! result too ([`UpdateShared`]).

use std::sync::Mutex;

use messages::{BundleKindCode, ShortText, StatusCause, UpdateOutcome, UpdateResult, UpdateStatus};
use tokio::sync::Notify;

use super::receive::Progress;
use super::state::{InstallState, Outcome};
use crate::uplink::StatusSource;

/// The update part of a status record, from the install state.
pub fn update_status(state: &InstallState) -> UpdateStatus {
    UpdateStatus {
        model_active: state.active.as_ref().map_or(0, |a| a.version),
        model_staged: state.trial.as_ref().map(|t| t.version),
        settings: state.settings_version,
        last: state.last.as_ref().map(update_result),
    }
}

/// An outcome as the status record carries it (texts cut to their caps).
pub fn update_result(o: &Outcome) -> UpdateResult {
    UpdateResult {
        kind: BundleKindCode::parse(&o.kind),
        name: ShortText::new(&o.name),
        version: o.version,
        // Outcomes are made with these names only; an unknown one (a state
        // file from elsewhere) reads as a refusal.
        result: UpdateOutcome::parse(&o.result).unwrap_or(UpdateOutcome::Refused),
        reason: ShortText::new(&o.reason),
    }
}

/// Results kept for `update/status` while MQTT is down.
pub const RESULTS_KEPT: usize = 32;

/// What the update task shares with the status records and the uplink.
#[derive(Debug, Default)]
pub struct UpdateShared {
    status: Mutex<UpdateStatus>,
    results: Mutex<Vec<Progress>>,
    ready: Notify,
}

impl UpdateShared {
    /// The update part of the next status record.
    pub fn status(&self) -> UpdateStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records what is installed and the last result.
    pub fn set_status(&self, s: UpdateStatus) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// Queues a result for `update/status` and wakes the uplink. At most
    /// [`RESULTS_KEPT`] wait (the oldest go first): a node whose MQTT link
    /// stays down keeps its results in the outbox, not in memory.
    pub fn push_result(&self, p: Progress) {
        let mut r = self.results.lock().unwrap_or_else(|e| e.into_inner());
        r.push(p);
        let over = r.len().saturating_sub(RESULTS_KEPT);
        r.drain(..over);
        drop(r);
        self.ready.notify_one();
    }

    /// The results waiting to be published, oldest first.
    pub fn take_results(&self) -> Vec<Progress> {
        std::mem::take(&mut *self.results.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts results back in front (the link was down).
    pub fn put_back(&self, mut earlier: Vec<Progress>) {
        let mut r = self.results.lock().unwrap_or_else(|e| e.into_inner());
        earlier.append(&mut r);
        *r = earlier;
    }

    /// Completes when a result was queued.
    pub async fn result_ready(&self) {
        self.ready.notified().await;
    }
}

/// Where a bundle came from, as far as the result report needs it: the
/// MQTT transfer id (the first 8 bytes of the SHA-256 of its header, hex)
/// and its payload length; empty and 0 when the file is not a bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Transfer id, hex.
    pub transfer: String,
    /// Payload length, bytes.
    pub total: u64,
    /// The metadata's kind, name and version, when it reads.
    pub meta: Option<(String, String, u64)>,
}

/// The largest header a bundle can have: magic, metadata length, metadata
/// (at most 65535 bytes), signature count, 255 signatures.
pub const HEADER_MAX: u64 = 4 + 2 + 65_535 + 1 + 255 * 72;

/// Reads the header of the bundle at `path` (never more than a header's
/// largest size).
pub fn origin(path: &std::path::Path) -> Origin {
    use std::io::Read;
    let mut buf = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(HEADER_MAX).read_to_end(&mut buf));
    if read.is_err() {
        return Origin::default();
    }
    origin_of(&buf)
}

/// The origin of a bundle's bytes (a header, or a whole bundle).
pub fn origin_of(buf: &[u8]) -> Origin {
    use sha2::{Digest, Sha256};
    match models::bundle::Bundle::parse_header(buf) {
        Ok((b, len)) => Origin {
            transfer: Sha256::digest(&buf[..len.min(buf.len())])[..8]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect(),
            total: b.meta.payload_len,
            meta: Some((
                b.meta.kind.as_str().to_string(),
                b.meta.name.clone(),
                b.meta.version,
            )),
        },
        Err(_) => Origin::default(),
    }
}

/// Reports results to the outbox and the uplink.
#[derive(Clone)]
pub struct Reporter {
    status: StatusSource,
}

impl Reporter {
    /// Reports through `status` (its shared state and its store).
    pub fn new(status: StatusSource) -> Reporter {
        Reporter { status }
    }

    /// Records the install state for the status records to come.
    pub fn set_state(&self, state: &InstallState) {
        self.status.shared.update.set_status(update_status(state));
    }

    /// Reports one result: the installed versions and this outcome in a
    /// status record stored at once (priority high), and on
    /// `update/status`.
    pub async fn report(&self, state: &InstallState, o: &Outcome, from: &Origin, now_ms: i64) {
        let mut o = o.clone();
        if let (true, Some((kind, name, version))) = (o.kind == "unknown", &from.meta) {
            o.kind = kind.clone();
            o.name = name.clone();
            o.version = *version;
        }
        self.store(update_status(state), &o, now_ms).await;
        self.status.shared.update.push_result(Progress {
            transfer: from.transfer.clone(),
            kind: o.kind.clone(),
            name: o.name.clone(),
            version: o.version,
            received: from.total,
            total: from.total,
            state: o.result.clone(),
            reason: o.reason.clone(),
        });
    }

    /// Reports a bundle refused before it reached the drop folder (at its
    /// MQTT announce or while its payload arrived; received by satellite
    /// unreadable or not a settings bundle): a status record stored at
    /// once (priority high), and the last result of the status records to
    /// come. It is counted as a refusal. The answer on `update/status` is
    /// the caller's (an MQTT transfer's refusal is the reply to its
    /// message). The install state is unchanged.
    pub async fn report_transfer_refused(&self, p: &Progress, now_ms: i64) {
        let o = Outcome {
            t_ms: now_ms,
            kind: if p.kind.is_empty() {
                "unknown".into()
            } else {
                p.kind.clone()
            },
            name: p.name.clone(),
            version: p.version,
            result: "refused".into(),
            reason: p.reason.clone(),
        };
        self.status.counters.count_refusal(&o.result, &o.reason);
        self.store(self.status.shared.update.status(), &o, now_ms)
            .await;
    }

    /// Records `o` as the last result over `st` and stores a status record
    /// made for it.
    async fn store(&self, mut st: UpdateStatus, o: &Outcome, now_ms: i64) {
        st.last = Some(update_result(o));
        self.status.shared.update.set_status(st);
        let source = self.status.clone();
        let stored = tokio::task::spawn_blocking(move || {
            source.append_for(now_ms, StatusCause::UpdateResult)
        })
        .await;
        match stored {
            Ok(Ok(r)) => {
                tracing::info!(id = r.id, result = %o.result, version = o.version, "update result stored in the outbox")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, result = %o.result, "cannot store the update result in the outbox")
            }
            Err(e) => tracing::error!(error = %e, "update result worker failed"),
        }
    }
}

/// The part of a deferral's reason that names its kind (the power mode,
/// the charge, the temperature), without its figures: a deferral is
/// reported once per bundle and kind of reason, not at every look.
pub fn reason_kind(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| !c.is_ascii_digit() && !matches!(c, '.' | '-' | '%'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::state::SlotModel;

    fn outcome(result: &str, reason: &str) -> Outcome {
        Outcome {
            t_ms: 5,
            kind: "model".into(),
            name: "fusion".into(),
            version: 7,
            result: result.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn the_install_state_maps_onto_the_status_records_update_part() {
        assert!(update_status(&InstallState::default()).is_empty());
        let state = InstallState {
            active: Some(SlotModel {
                slot: "b".into(),
                version: 6,
            }),
            trial: Some(SlotModel {
                slot: "a".into(),
                version: 7,
            }),
            settings_version: 2,
            settings_name: Some("settings".into()),
            last: Some(outcome("on_trial", &"self-test passed ".repeat(10))),
        };
        let u = update_status(&state);
        assert_eq!(
            (u.model_active, u.model_staged, u.settings),
            (6, Some(7), 2)
        );
        let last = u.last.unwrap();
        assert_eq!(last.result, UpdateOutcome::OnTrial);
        assert_eq!(last.kind, BundleKindCode::Model);
        assert_eq!(
            last.reason.as_str().len(),
            messages::update_status::REASON_MAX
        );
        assert!(last.reason.as_str().starts_with("self-test passed"));
        assert_eq!(
            update_result(&outcome("exploded", "")).result,
            UpdateOutcome::Refused
        );
    }

    #[test]
    fn a_deferrals_kind_of_reason_ignores_its_figures() {
        let a = reason_kind("install deferred in normal mode (battery 31%): below 50%");
        let b = reason_kind("install deferred in normal mode (battery 29.5%): below 50%");
        assert_eq!(a, b);
        assert_ne!(
            a,
            reason_kind("install deferred in saver mode (battery 29%)")
        );
        assert_ne!(a, reason_kind("enclosure at -12.0 °C, outside -10..50 °C"));
    }

    #[test]
    fn results_queue_in_order_and_go_back_in_front() {
        let s = UpdateShared::default();
        let p = |state: &str| Progress {
            transfer: String::new(),
            kind: "model".into(),
            name: "fusion".into(),
            version: 1,
            received: 0,
            total: 0,
            state: state.into(),
            reason: String::new(),
        };
        s.push_result(p("on_trial"));
        let first = s.take_results();
        s.push_result(p("installed"));
        s.put_back(first);
        let states: Vec<String> = s.take_results().into_iter().map(|p| p.state).collect();
        assert_eq!(states, ["on_trial", "installed"]);
        assert!(s.take_results().is_empty());
        for i in 0..RESULTS_KEPT + 5 {
            s.push_result(p(&format!("r{i}")));
        }
        let kept = s.take_results();
        assert_eq!(kept.len(), RESULTS_KEPT);
        assert_eq!(kept[0].state, "r5");
    }

    #[test]
    fn the_origin_of_a_bundle_is_its_transfer_id_and_length() {
        use models::bundle::{Bundle, Metadata};
        use sha2::{Digest, Sha256};
        let dir = tempfile::tempdir().unwrap();
        let meta = Metadata::settings("settings", 3, 0, 10, [0, 0, 0]);
        let b = Bundle::new(meta, vec![1, 2, 3]);
        let bytes = b.to_bytes().unwrap();
        let header = b.header_bytes().unwrap();
        let path = dir.path().join("x.fnb");
        std::fs::write(&path, &bytes).unwrap();
        let o = origin(&path);
        let want: String = Sha256::digest(&header)[..8]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        assert_eq!(o.transfer, want);
        assert_eq!(o.total, 3);
        assert_eq!(o.meta, Some(("settings".into(), "settings".into(), 3)));
        std::fs::write(&path, b"not a bundle").unwrap();
        assert_eq!(origin(&path), Origin::default());
        assert_eq!(origin(&dir.path().join("missing")), Origin::default());
    }
}
