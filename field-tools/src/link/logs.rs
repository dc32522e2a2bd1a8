//! `field-tools link logs`: the node's recent log lines, a stream with
//! credit; with `--follow`, new lines as the node logs them (pinging while
//! quiet) until interrupted. Log lines have no resume: after a cut, run the
//! command again.

use std::time::Duration;

use messages::link::{self, LogLevel, LogLine, LogsTailRequest, Request, Response, StreamEnd};
use tokio::time::Instant;

use super::client::{Client, LinkError};

/// Credit granted at a time; more is granted when half is used.
pub const CREDIT: u32 = 256;

/// What to ask for.
#[derive(Debug, Clone, Copy)]
pub struct LogsQuery {
    /// The last this many lines first.
    pub lines: u32,
    /// Then new lines as they are logged.
    pub follow: bool,
    /// The most verbose level wanted.
    pub level: LogLevel,
}

/// What the stream did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogsOutcome {
    /// Lines handed to the sink.
    pub lines: u64,
    /// Lines the node dropped before it could send them.
    pub missed: u64,
    /// How the stream ended.
    pub end: Option<StreamEnd>,
}

/// Streams the node's log lines to `sink` (oldest first); `on_missed` is
/// told each time the node says it dropped lines.
pub async fn stream_logs(
    client: &mut Client,
    query: LogsQuery,
    mut sink: impl FnMut(&LogLine) -> std::io::Result<()>,
    mut on_missed: impl FnMut(u32),
) -> Result<LogsOutcome, LinkError> {
    let id = client
        .send(Request::LogsTail(LogsTailRequest {
            lines: query.lines,
            follow: query.follow,
            credit: CREDIT,
            level: query.level,
        }))
        .await?;
    let mut out = LogsOutcome::default();
    let mut credit = CREDIT;
    let reply_timeout = Duration::from_millis(link::REPLY_TIMEOUT_MS.into());
    let keepalive = Duration::from_millis(link::KEEPALIVE_INTERVAL_MS.into());
    let mut ping: Option<(u32, Instant)> = None;
    loop {
        let deadline = match (query.follow, ping) {
            (false, _) => Instant::now() + reply_timeout,
            (true, Some((_, sent))) => sent + reply_timeout,
            (true, None) => Instant::now() + keepalive,
        };
        let Some(r) = client.next(deadline).await? else {
            if query.follow && ping.is_none() {
                ping = Some((client.send(Request::Ping).await?, Instant::now()));
                continue;
            }
            return Err(LinkError::Timeout {
                request: if ping.is_some() { "ping" } else { "logs_tail" },
                timeout_ms: link::REPLY_TIMEOUT_MS,
            });
        };
        if ping.is_some_and(|(p, _)| p == r.id) {
            ping = None;
            continue;
        }
        if r.id != id {
            continue;
        }
        match r.body {
            Response::LogBatch(b) => {
                if b.missed > 0 {
                    out.missed += u64::from(b.missed);
                    on_missed(b.missed);
                }
                for line in &b.lines {
                    sink(line).map_err(|e| LinkError::Lost(format!("writing the output: {e}")))?;
                    out.lines += 1;
                }
                credit = credit.saturating_sub(u32::try_from(b.lines.len()).unwrap_or(u32::MAX));
                if let Some(end) = b.end {
                    out.end = Some(end);
                    return Ok(out);
                }
                if credit < CREDIT / 2 {
                    client
                        .send(Request::Credit {
                            stream: id,
                            items: CREDIT,
                        })
                        .await?;
                    credit += CREDIT;
                }
            }
            Response::Error(reply) => {
                return Err(LinkError::Refused {
                    request: "logs_tail",
                    reply,
                });
            }
            other => {
                return Err(LinkError::Unexpected {
                    request: "logs_tail",
                    reply: other.name(),
                });
            }
        }
    }
}
