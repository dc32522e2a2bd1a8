//! `field-tools link logs`: the node's recent log lines, a stream with
//! credit; with `--follow`, new lines as the node logs them (pinging while
//! quiet) until interrupted. Log lines have no resume: after a cut, run the
//! command again.

use messages::link::{LogLevel, LogLine, LogsTailRequest, Request, Response, StreamEnd};

use super::client::{Client, LinkError};
use super::stream::Stream;

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
    let mut stream = Stream::open(
        client,
        Request::LogsTail(LogsTailRequest {
            lines: query.lines,
            follow: query.follow,
            credit: CREDIT,
            level: query.level,
        }),
        query.follow,
        CREDIT,
        "logs_tail",
    )
    .await?;
    let mut out = LogsOutcome::default();
    loop {
        match stream.next(client).await? {
            Response::LogBatch(b) => {
                if b.missed > 0 {
                    out.missed += u64::from(b.missed);
                    on_missed(b.missed);
                }
                for line in &b.lines {
                    sink(line).map_err(|e| LinkError::Lost(format!("writing the output: {e}")))?;
                    out.lines += 1;
                }
                if let Some(end) = b.end {
                    out.end = Some(end);
                    return Ok(out);
                }
                stream.consumed(client, b.lines.len()).await?;
            }
            other => return Err(stream.unexpected(&other)),
        }
    }
}
