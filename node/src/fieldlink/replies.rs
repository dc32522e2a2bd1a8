//! The replies to the read requests this node serves, from what the running
//! node shares with the link ([`NodeView`]). Every store, file or
//! configuration read runs on a blocking thread.

use std::path::PathBuf;
use std::sync::Arc;

use messages::link::{
    ApplyWhen, ConfigOutcome, ConfigProblem, ConfigText, ErrorCode, ErrorReply, LinkState,
    OutboxStatsReply, Request, Response, TimeReply, UplinkInfo, UplinkStatusReply,
};

use crate::config::Config;
use crate::uplink::{NodeTime, StatusSource};

/// What the running node shares with the field link.
#[derive(Clone)]
pub struct NodeView {
    /// Builds status records (and holds the store).
    pub status: StatusSource,
    /// The node's clock.
    pub time: NodeTime,
    /// Where the node's time comes from: `scene` (a replay) or `system`.
    pub time_source: &'static str,
    /// The configuration the node runs with.
    pub config: Arc<Config>,
    /// The configuration file it was started with, if any.
    pub config_file: Option<PathBuf>,
    /// The file's text when the node started (to tell a later edit).
    pub config_text_at_start: Option<String>,
    /// True while the uplink task runs: its delivery counters and link
    /// states live there and are not shared with the link yet.
    pub uplink_running: bool,
    /// `[fieldlink] reads_need_auth`.
    pub reads_need_auth: bool,
}

/// An error reply.
pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error(ErrorReply {
        code,
        message: message.into(),
    })
}

/// The requests this node answers (besides the session's own: Hello, Ping,
/// Credit, Cancel, Events). Everything else is answered `unknown_request`.
pub fn served(req: &Request, uplink_running: bool) -> bool {
    match req {
        Request::Status
        | Request::ConfigShow
        | Request::ConfigValidate { .. }
        | Request::TimeGet => true,
        Request::OutboxStats | Request::UplinkStatus => !uplink_running,
        _ => false,
    }
}

/// Why a request is not served, for the technician.
pub fn not_served(req: &Request, uplink_running: bool) -> String {
    match req {
        Request::OutboxStats | Request::UplinkStatus if uplink_running => format!(
            "`{}` is not served by this node while its uplink runs (the uplink's counters are not shared with the field link yet)",
            req.name()
        ),
        _ => format!(
            "`{}` is not served by this node; it serves hello, ping, status, events, time_get, config_show, config_validate{}",
            req.name(),
            if uplink_running {
                ""
            } else {
                ", outbox_stats, uplink_status"
            }
        ),
    }
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
    /// The reply to a served read request (see [`served`]).
    pub async fn answer(&self, req: &Request) -> Response {
        let r = match req {
            Request::Status => self.status().await,
            Request::TimeGet => Ok(Response::Time(TimeReply {
                unix_ms: self.time.now_ms(),
                uncertainty_ms: None,
                source: self.time_source.into(),
            })),
            Request::ConfigShow => self.config_show().await,
            Request::ConfigValidate { toml } => self.config_validate(toml.clone()).await,
            Request::OutboxStats if !self.uplink_running => self.outbox_stats().await,
            Request::UplinkStatus if !self.uplink_running => {
                Ok(Response::UplinkStatus(UplinkStatusReply {
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
                }))
            }
            other => Err(error(
                ErrorCode::UnknownRequest,
                not_served(other, self.uplink_running),
            )),
        };
        r.unwrap_or_else(|e| e)
    }

    async fn status(&self) -> Result<Response, Response> {
        let (status, time) = (self.status.clone(), self.time.clone());
        // Reads the store's counters (its lock): off the async threads.
        blocking(move || Ok(Response::Status(status.build(0, time.now_ms())))).await
    }

    async fn outbox_stats(&self) -> Result<Response, Response> {
        let store = self.status.store.clone();
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
                // The uplink does not run: nothing left by delivery.
                delivered_since_start: 0,
            }))
        })
        .await
    }

    async fn config_show(&self) -> Result<Response, Response> {
        let file = self.config_file.clone();
        let at_start = self.config_text_at_start.clone();
        let config = self.config.clone();
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
        blocking(move || {
            Ok(Response::ConfigChecked(
                match Config::from_toml_str(&text) {
                    Err(errors) => ConfigOutcome::Invalid {
                        problems: errors
                            .0
                            .into_iter()
                            .map(|e| ConfigProblem {
                                key: e.key,
                                problem: e.message,
                            })
                            .collect(),
                    },
                    Ok(new) => {
                        let changed = changed_keys(&current, &new)?;
                        ConfigOutcome::Valid {
                            // The node applies no configuration change while it
                            // runs: every change waits for the next start.
                            applies: if changed.is_empty() {
                                ApplyWhen::Live
                            } else {
                                ApplyWhen::NextStart
                            },
                            changed,
                        }
                    }
                },
            ))
        })
        .await
    }
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
