//! The replies to the requests answered in one reply (the session handles
//! the handshake, the streams and `Reboot`, and checks authentication
//! first), from what the running node shares with the link ([`NodeView`]).
//! Every store, file or configuration access runs on a blocking thread.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messages::link::{
    ApplyWhen, ConfigOutcome, ConfigProblem, ConfigText, ErrorCode, ErrorReply, LinkState,
    OutboxStatsReply, Request, Response, TimeReply, UplinkInfo, UplinkStatusReply,
};

use super::reboot::RebootRequest;

use super::timeref::{self, Now, TimeReference};
use crate::config::Config;
use crate::logring::LogRing;
use crate::update::live::{ConfigInForce, key_is_live};
use crate::uplink::{NodeTime, StatusSource};

/// The earliest and latest time a `TimeSet` may carry (2000-01-01 and
/// 2100-01-01 UTC): anything else is a mistake, not a time.
const TIME_SET_RANGE_MS: std::ops::Range<i64> = 946_684_800_000..4_102_444_800_000;

/// What the running node shares with the field link.
#[derive(Clone)]
pub struct NodeView {
    /// Builds status records (and holds the store).
    pub status: StatusSource,
    /// The node's clock.
    pub time: NodeTime,
    /// Where the node's time comes from: `scene` (a replay) or `system`.
    pub time_source: &'static str,
    /// The configuration file's settings in force (without the installed
    /// settings patch), its text, and what changes live.
    pub config: Arc<ConfigInForce>,
    /// The configuration file it was started with, if any.
    pub config_file: Option<PathBuf>,
    /// `[fieldlink] reads_need_auth`.
    pub reads_need_auth: bool,
    /// `[fieldlink] technician_keys`, as key bytes.
    pub trusted_keys: Vec<[u8; 32]>,
    /// The node's data directory (`TimeSet` stores its reference under it).
    pub data_dir: PathBuf,
    /// What the sessions share while the link runs.
    pub shared: Arc<LinkShared>,
    /// The node's recent log lines (`LogsTail`).
    pub logs: LogRing,
    /// Set by `Reboot`: the node stops and exits to be restarted.
    pub reboot: Arc<RebootRequest>,
    /// Where a pushed bundle goes to be installed; `None` when the node
    /// takes no update (no trust root).
    pub updates: Option<Arc<crate::update::handoff::Handoff>>,
}

/// How long `UplinkFlush` waits for the round it asked for, at most.
const FLUSH_WAIT: Duration = Duration::from_secs(3);

/// State shared by every session of the link.
#[derive(Debug, Default)]
pub struct LinkShared {
    /// The last technician time reference (also on disk).
    pub time_ref: Mutex<Option<TimeReference>>,
    /// Held while a `ConfigSet` replaces the file: one at a time.
    pub config_write: Mutex<()>,
    /// Authentication attempts refused since the link started.
    pub auth_refusals: AtomicU64,
    /// Sessions started, to number them.
    pub sessions: AtomicU64,
    /// The session that is pushing a bundle, by number.
    pub push_owner: Mutex<Option<u64>>,
}

impl LinkShared {
    /// With the time reference stored under `data_dir`, if any (a damaged
    /// file is logged and ignored: the next `TimeSet` replaces it).
    pub fn load(data_dir: &std::path::Path) -> LinkShared {
        let time_ref = match TimeReference::load(&timeref::path(data_dir)) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "field link: the stored time reference is not readable; ignored");
                None
            }
        };
        LinkShared {
            time_ref: Mutex::new(time_ref),
            ..Default::default()
        }
    }
}

/// An error reply.
pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error(ErrorReply {
        code,
        message: message.into(),
    })
}

/// Why a request is not answered here, for the technician (the session
/// answers the others itself).
fn not_served(req: &Request) -> String {
    format!("`{}` is not served by this node", req.name())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(message)) => Err(error(ErrorCode::Internal, message)),
        Err(e) => Err(error(ErrorCode::Internal, format!("the node failed: {e}"))),
    }
}

impl NodeView {
    /// The reply to a request answered in one reply from the node's state.
    pub async fn answer(&self, req: &Request) -> Response {
        let r = match req {
            Request::Status => self.status().await,
            Request::TimeGet => self.time_get().await,
            Request::TimeSet {
                unix_ms,
                uncertainty_ms,
            } => self.time_set(*unix_ms, *uncertainty_ms).await,
            Request::ConfigSet { toml } => self.config_set(toml.clone()).await,
            Request::ConfigShow => self.config_show().await,
            Request::ConfigValidate { toml } => self.config_validate(toml.clone()).await,
            Request::OutboxStats => self.outbox_stats().await,
            Request::UplinkStatus => Ok(Response::UplinkStatus(self.uplink_status())),
            Request::UplinkFlush => self.uplink_flush().await,
            Request::Probe => Ok(Response::Probe(super::probe::probe(self))),
            other => Err(error(ErrorCode::UnknownRequest, not_served(other))),
        };
        r.unwrap_or_else(|e| e)
    }

    /// The technician's time carried forward when there is a reference,
    /// else the node's clock. On a blocking thread: the reference's lock
    /// is held while a `TimeSet` writes it.
    async fn time_get(&self) -> Result<Response, Response> {
        let shared = self.shared.clone();
        let carried = blocking(move || {
            let reference = shared
                .time_ref
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            Ok(reference.and_then(|r| r.carried(&Now::read())))
        })
        .await?;
        Ok(Response::Time(match carried {
            Some((unix_ms, uncertainty)) => TimeReply {
                unix_ms,
                uncertainty_ms: Some(uncertainty),
                source: "technician".into(),
            },
            None => TimeReply {
                unix_ms: self.time.now_ms(),
                uncertainty_ms: None,
                source: self.time_source.into(),
            },
        }))
    }

    /// Records the technician's time as the node's time reference (durably)
    /// and answers how far it is from the node's clock. The clock itself is
    /// not changed.
    async fn time_set(&self, unix_ms: i64, uncertainty_ms: u32) -> Result<Response, Response> {
        if !TIME_SET_RANGE_MS.contains(&unix_ms) {
            return Err(error(
                ErrorCode::InvalidArgument,
                format!("{unix_ms} ms is not a time between the years 2000 and 2100"),
            ));
        }
        let node_ms = self.time.now_ms();
        let file = timeref::path(&self.data_dir);
        let shared = self.shared.clone();
        let step_ms = unix_ms.saturating_sub(node_ms);
        blocking(move || {
            let reference = TimeReference::received(unix_ms, uncertainty_ms, node_ms, &Now::read());
            let mut current = shared.time_ref.lock().unwrap_or_else(|p| p.into_inner());
            reference
                .store(&file)
                .map_err(|e| format!("cannot store the time reference: {e}"))?;
            *current = Some(reference);
            Ok(())
        })
        .await?;
        self.time.offer_reference(
            crate::timekeeping::guarded::ReferenceSource::FieldLink,
            unix_ms,
            uncertainty_ms,
        );
        tracing::info!(
            unix_ms,
            uncertainty_ms,
            node_ms,
            step_ms,
            "field link: technician time recorded (the system clock is not changed; the node's clock takes it if it is untrusted or disagrees)"
        );
        Ok(Response::TimeSet { step_ms })
    }

    /// Checks the text as `ConfigValidate` does and, when valid, replaces
    /// the node's configuration file with it durably, keeping the previous
    /// text as `<file>.prev`.
    async fn config_set(&self, text: String) -> Result<Response, Response> {
        let Some(file) = self.config_file.clone() else {
            return Err(error(
                ErrorCode::InvalidArgument,
                "this node was started without a configuration file (fieldnode run --config FILE): there is no file to replace",
            ));
        };
        let checked =
            check_config(&self.config, &text).map_err(|e| error(ErrorCode::Internal, e))?;
        let (outcome, new) = (checked.outcome, checked.config);
        if let ConfigOutcome::Invalid { problems } = &outcome {
            tracing::info!(
                problems = problems.len(),
                "field link: configuration refused; nothing written"
            );
            return Ok(Response::ConfigSet(outcome));
        }
        let shared = self.shared.clone();
        let target = file.clone();
        let written = text.clone();
        blocking(move || {
            let _one_at_a_time = shared
                .config_write
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            replace_keeping_prev(&target, written.as_bytes())
        })
        .await?;
        if let ConfigOutcome::Valid { changed, applies } = &outcome {
            match (applies, new) {
                (ApplyWhen::Live, Some(new)) if !changed.is_empty() => {
                    // Checked just before: fails only if a settings bundle
                    // was installed meanwhile; the file applies at the next
                    // start all the same.
                    if let Err(e) = self.config.apply(new, text) {
                        tracing::warn!(file = %file.display(), error = %e, "field link: configuration file replaced; not applied live");
                        return Ok(Response::ConfigSet(ConfigOutcome::Valid {
                            changed: changed.clone(),
                            applies: ApplyWhen::NextStart,
                        }));
                    }
                    tracing::info!(file = %file.display(), changed = ?changed, "field link: configuration file replaced and applied live");
                }
                (ApplyWhen::Live, _) => {
                    tracing::info!(file = %file.display(), "field link: configuration file replaced; nothing changed");
                }
                _ => {
                    tracing::info!(file = %file.display(), changed = ?changed, "field link: configuration file replaced; applies from the next start");
                }
            }
        }
        Ok(Response::ConfigSet(outcome))
    }

    async fn status(&self) -> Result<Response, Response> {
        let (status, time) = (self.status.clone(), self.time.clone());
        // Reads the store's counters (its lock): off the async threads.
        blocking(move || Ok(Response::Status(Box::new(status.build(0, time.now_ms()))))).await
    }

    async fn outbox_stats(&self) -> Result<Response, Response> {
        let store = self.status.store.clone();
        let live = self.status.shared.clone();
        blocking(move || {
            let stats = store.queue_stats();
            let oldest_ms = match store.iter_messages_from(0).next() {
                Some(Ok(messages::Message::Event(e))) => Some(e.start_ms),
                Some(Ok(messages::Message::Status(s))) => Some(s.time_ms),
                Some(Err(e)) => return Err(format!("reading the outbox: {e}")),
                None => None,
            };
            Ok(Response::OutboxStats(OutboxStatsReply {
                queue: store.queue_depth(),
                bytes: stats.total_bytes(),
                budget_bytes: store.outbox_config().budget.max_record_bytes,
                oldest_ms,
                drops: store.drop_counters(),
                delivered_since_start: live.uplink.delivered_total(),
            }))
        })
        .await
    }

    /// The uplink's links as the running uplink last reported them; every
    /// link `Disabled` when it does not run.
    fn uplink_status(&self) -> UplinkStatusReply {
        let live = &self.status.shared.uplink;
        if live.is_running() {
            return live.status();
        }
        UplinkStatusReply {
            links: ["mqtt", "sbd"]
                .into_iter()
                .map(|link| UplinkInfo {
                    link: link.into(),
                    state: LinkState::Disabled,
                    last_success_ms: None,
                    last_error: None,
                })
                .collect(),
            sbd_credits_left: None,
        }
    }

    /// Asks the running uplink for a round now and answers what it decided
    /// (waiting for it at most [`FLUSH_WAIT`]).
    async fn uplink_flush(&self) -> Result<Response, Response> {
        let store = self.status.store.clone();
        let queued = blocking(move || Ok(store.queue_depth().iter().sum::<u32>())).await?;
        let live = self.status.shared.clone();
        let before = live.uplink.rounds();
        if !live.uplink.flush() {
            return Err(error(
                ErrorCode::InvalidArgument,
                "the uplink does not run on this node ([uplink] enabled = false, or it failed to start): nothing can be sent",
            ));
        }
        let deadline = tokio::time::Instant::now() + FLUSH_WAIT;
        while live.uplink.rounds() == before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let round = (live.uplink.rounds() != before)
            .then(|| live.uplink.last_round())
            .flatten();
        tracing::info!(
            queued,
            action = round.as_ref().map_or("none", |r| r.action.as_str()),
            items = round.as_ref().map_or(0, |r| r.items),
            "field link: uplink flush"
        );
        Ok(Response::UplinkFlush { queued, round })
    }

    async fn config_show(&self) -> Result<Response, Response> {
        let file = self.config_file.clone();
        let at_start = self.config.text();
        let config = self.config.config();
        blocking(move || match file {
            Some(path) => {
                let toml = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let pending_restart = at_start.as_deref() != Some(toml.as_str());
                Ok(Response::Config(ConfigText {
                    toml,
                    pending_restart,
                }))
            }
            None => {
                let text = toml::to_string(&*config)
                    .map_err(|e| format!("cannot show the configuration: {e}"))?;
                Ok(Response::Config(ConfigText {
                    toml: format!(
                        "# No configuration file: the node runs on its defaults and command-line options.\n{text}"
                    ),
                    pending_restart: false,
                }))
            }
        })
        .await
    }

    async fn config_validate(&self, text: String) -> Result<Response, Response> {
        let current = self.config.clone();
        blocking(move || check_config(&current, &text).map(|c| Response::ConfigChecked(c.outcome)))
            .await
    }
}

/// A configuration text checked against the one in force.
struct Checked {
    outcome: ConfigOutcome,
    /// The text's configuration, when valid.
    config: Option<Config>,
}

/// What `ConfigValidate` answers and `ConfigSet` does for `text`, against
/// the configuration in force: a change applies live when every changed key
/// can change live ([`crate::update::live::key_is_live`]) and the installed
/// settings patch still fits over it; otherwise from the next start.
fn check_config(current: &ConfigInForce, text: &str) -> Result<Checked, String> {
    Ok(match Config::from_toml_str(text) {
        Err(errors) => Checked {
            outcome: ConfigOutcome::Invalid {
                problems: errors
                    .0
                    .into_iter()
                    .map(|e| ConfigProblem {
                        key: e.key,
                        problem: e.message,
                    })
                    .collect(),
            },
            config: None,
        },
        Ok(new) => {
            let changed = changed_keys(&current.config(), &new)?;
            let live = changed.iter().all(|k| key_is_live(k))
                && (changed.is_empty() || current.live_settings(&new).is_ok());
            Checked {
                outcome: ConfigOutcome::Valid {
                    applies: if live {
                        ApplyWhen::Live
                    } else {
                        ApplyWhen::NextStart
                    },
                    changed,
                },
                config: Some(new),
            }
        }
    })
}

/// `<file>.prev`.
pub fn prev_path(file: &std::path::Path) -> PathBuf {
    let mut name = file
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".prev");
    file.with_file_name(name)
}

/// Replaces `file` with `bytes` so that a power cut leaves the old or the
/// new text, never a mix: first the current text is kept as `<file>.prev`
/// (atomically), then the new text goes through a synced temporary file
/// renamed over `file`, and the directory is synced after each rename.
/// Both keep the file's permissions (a configuration may be readable by
/// its owner only).
pub fn replace_keeping_prev(file: &std::path::Path, bytes: &[u8]) -> Result<(), String> {
    match std::fs::read(file) {
        Ok(old) => {
            let perms = std::fs::metadata(file).ok().map(|m| m.permissions());
            replace_with_perms(&prev_path(file), &old, perms.clone())
                .map_err(|e| format!("cannot keep the previous configuration: {e}"))?;
            replace_with_perms(file, bytes, perms)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => replace_with_perms(file, bytes, None),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    }
    .map_err(|e| format!("cannot write the configuration: {e}"))
}

/// Temporary file beside `path` (with `perms` when given), synced, renamed
/// over `path`; then the directory is synced.
fn replace_with_perms(
    path: &std::path::Path,
    bytes: &[u8],
    perms: Option<std::fs::Permissions>,
) -> Result<(), String> {
    use std::io::Write;
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let fail =
        |what: &str, p: &std::path::Path, e: std::io::Error| format!("{what} {}: {e}", p.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| fail("create", &tmp, e))?;
    if let Some(perms) = perms {
        f.set_permissions(perms)
            .map_err(|e| fail("set the permissions of", &tmp, e))?;
    }
    f.write_all(bytes).map_err(|e| fail("write", &tmp, e))?;
    f.sync_all().map_err(|e| fail("fsync", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| fail("rename over", path, e))?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    uplink::store::durable::sync_dir(dir).map_err(|e| e.to_string())
}

/// Dotted paths of the keys whose value differs between two configurations.
pub fn changed_keys(old: &Config, new: &Config) -> Result<Vec<String>, String> {
    let as_value = |c: &Config| {
        toml::Value::try_from(c).map_err(|e| format!("cannot compare configurations: {e}"))
    };
    let mut out = Vec::new();
    diff("", &as_value(old)?, &as_value(new)?, &mut out);
    Ok(out)
}

fn diff(path: &str, a: &toml::Value, b: &toml::Value, out: &mut Vec<String>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (toml::Value::Table(a), toml::Value::Table(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(&join(k), x, y, out),
                    _ => out.push(join(k)),
                }
            }
        }
        (a, b) if a != b => out.push(path.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_name_the_dotted_paths() {
        let old = Config::default();
        let new =
            Config::from_toml_str("[power]\ninterval_ms = 20000\n[node]\nid = \"x1\"\n").unwrap();
        assert_eq!(
            changed_keys(&old, &new).unwrap(),
            ["node.id", "power.interval_ms"]
        );
        assert!(changed_keys(&old, &old).unwrap().is_empty());
    }
}
