//! `field-tools link events`: the events stream with credit, and with
//! `--follow` a reconnect loop that resumes from the last batch's cursor,
//! so a cut cable costs neither a duplicate nor a gap.

use std::time::Duration;

use messages::EventRecord;
use messages::link::{EventsRequest, Request, Response, StreamEnd};

use super::client::{Client, LinkError, connect_as};
use super::stream::Stream;
use super::transport::Target;

/// Credit granted at a time; more is granted when half is used. About
/// 11 KB of events: with 64 (a batch and a half) the line sat idle between
/// batches at 921,600 baud.
pub const CREDIT: u32 = 256;

/// What to ask for.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventsQuery {
    /// Only ids above this.
    pub after_id: Option<u64>,
    /// Only events that started at or after this time, ms.
    pub since_ms: Option<i64>,
    /// At most this many events in all.
    pub limit: Option<u32>,
    /// Keep the stream open; reconnect when it is cut.
    pub follow: bool,
}

/// How a reconnecting follow waits between attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first wait.
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// What the stream did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsOutcome {
    /// Events handed to the sink.
    pub events: u64,
    /// The last resume cursor received.
    pub resume_after_id: Option<u64>,
    /// Connections made (more than one after a cut with `--follow`).
    pub connections: u32,
    /// How the stream ended (`None`: it never ended, e.g. interrupted).
    pub end: Option<StreamEnd>,
}

/// Streams events to `sink` in id order. Without `follow`, a lost
/// connection is an error; with it, the stream is opened again after a
/// backoff with `after_id` = the last cursor received, forever (until the
/// node ends the stream, or the process is stopped).
/// With `key`, every session is authenticated first (a node with
/// `reads_need_auth`).
pub async fn stream_events(
    target: &Target,
    key: Option<&ed25519_dalek::SigningKey>,
    query: EventsQuery,
    backoff: Backoff,
    mut sink: impl FnMut(&EventRecord) -> std::io::Result<()>,
    mut on_reconnect: impl FnMut(&LinkError, Duration),
) -> Result<EventsOutcome, LinkError> {
    let mut out = EventsOutcome {
        resume_after_id: query.after_id,
        ..Default::default()
    };
    let mut last_printed = query.after_id;
    let mut wait = backoff.min;
    loop {
        let connected_before = out.connections;
        let attempt = async {
            let mut client = connect_as(target, key).await?;
            out.connections += 1;
            let remaining = query
                .limit
                .map(|l| l.saturating_sub(u32::try_from(out.events).unwrap_or(u32::MAX)));
            one_stream(
                &mut client,
                query,
                remaining,
                &mut out,
                &mut last_printed,
                &mut sink,
            )
            .await
        };
        // This client never cancels: a `Cancelled` end means the node ended
        // the session (it is stopping); a follow waits for it to return.
        let result = match attempt.await {
            Ok(StreamEnd::Cancelled) if query.follow => Err(LinkError::Lost(
                "the node ended the stream (it is stopping)".into(),
            )),
            other => other,
        };
        match result {
            Ok(end) => {
                out.end = Some(end);
                return Ok(out);
            }
            Err(e) if query.follow && e.is_connection() => {
                // A connection that worked resets the backoff.
                if out.connections > connected_before {
                    wait = backoff.min;
                }
                on_reconnect(&e, wait);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(backoff.max);
            }
            Err(e) => return Err(e),
        }
    }
}

async fn one_stream(
    client: &mut Client,
    query: EventsQuery,
    limit: Option<u32>,
    out: &mut EventsOutcome,
    last_printed: &mut Option<u64>,
    sink: &mut impl FnMut(&EventRecord) -> std::io::Result<()>,
) -> Result<StreamEnd, LinkError> {
    if limit == Some(0) {
        return Ok(StreamEnd::LimitReached);
    }
    let mut stream = Stream::open(
        client,
        Request::Events(EventsRequest {
            after_id: out.resume_after_id,
            since_ms: query.since_ms,
            limit,
            follow: query.follow,
            credit: CREDIT,
        }),
        query.follow,
        CREDIT,
        "events",
    )
    .await?;
    // A follow stream may be quiet for hours: the stream pings instead.
    loop {
        match stream.next(client).await? {
            Response::EventBatch(b) => {
                for e in &b.events {
                    // The node never repeats an id; a guard costs nothing.
                    if last_printed.is_some_and(|l| e.id <= l) {
                        continue;
                    }
                    sink(e).map_err(|e| LinkError::Lost(format!("writing the output: {e}")))?;
                    *last_printed = Some(e.id);
                    out.events += 1;
                }
                // Printed first, then the cursor moves: a cut between the
                // two repeats nothing (the guard above) and skips nothing.
                out.resume_after_id = b.resume_after_id.max(out.resume_after_id);
                if let Some(end) = b.end {
                    return Ok(end);
                }
                stream.consumed(client, b.events.len()).await?;
            }
            other => return Err(stream.unexpected(&other)),
        }
    }
}
