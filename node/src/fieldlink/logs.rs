//! A `LogsTail` stream: the last lines of the node's log ring
//! ([`crate::logring`]), then (with `follow`) new lines as they are logged,
//! by credit. Lines the ring dropped before the stream sent them (it holds
//! the last [`crate::logring::RING_LINES`] lines at most) are counted in
//! the next batch's `missed`.

use std::time::Duration;

use messages::link::{LogBatch, LogLevel, LogsTailRequest, STREAM_BATCH_LEN, StreamEnd};
use tokio::time::Instant;

use crate::logring::LogRing;

/// Room kept in a batch for its framing and its other fields.
const BATCH_OVERHEAD: usize = 64;

/// An open log stream.
#[derive(Debug)]
pub struct LogStream {
    /// The id of the request that opened it.
    pub id: u32,
    /// Lines it may send before more credit.
    pub credit: u32,
    /// When to look for lines next (while it has credit).
    pub next: Instant,
    /// Lines sent.
    pub sent: u64,
    level: LogLevel,
    /// The ring's sequence number of the next line to send.
    from: u64,
    /// Sends lines numbered below this: the ring's next line when it was
    /// opened, without `follow`; no bound with it.
    until: u64,
    /// Lines dropped before they were sent, not yet reported.
    missed: u64,
}

impl LogStream {
    /// Opens a stream on `ring` for `req`.
    pub fn open(id: u32, req: &LogsTailRequest, ring: &LogRing) -> LogStream {
        LogStream {
            id,
            credit: req.credit,
            next: Instant::now(),
            sent: 0,
            level: req.level,
            from: ring.tail_start(req.lines, req.level),
            until: if req.follow {
                u64::MAX
            } else {
                ring.stats().total
            },
            missed: 0,
        }
    }

    /// The next batch to send, if any: lines (as credit allows), or the
    /// last batch of a stream without `follow` that sent everything. A
    /// stream that caught up looks again after `poll_again`.
    pub fn poll(&mut self, ring: &LogRing, poll_again: Duration) -> Option<LogBatch> {
        if self.credit == 0 {
            return None;
        }
        let max_lines = usize::try_from(self.credit).unwrap_or(usize::MAX);
        let r = ring.read(
            self.from,
            self.until,
            self.level,
            max_lines,
            STREAM_BATCH_LEN - BATCH_OVERHEAD,
        );
        self.from = r.next;
        self.missed += r.missed;
        self.next = Instant::now()
            + if r.caught_up {
                poll_again
            } else {
                Duration::ZERO
            };
        let complete = self.until != u64::MAX && r.caught_up;
        if r.lines.is_empty() && !complete {
            return None;
        }
        let n = u32::try_from(r.lines.len()).unwrap_or(u32::MAX);
        self.credit = self.credit.saturating_sub(n);
        self.sent += u64::from(n);
        Some(LogBatch {
            lines: r.lines,
            missed: u32::try_from(std::mem::take(&mut self.missed)).unwrap_or(u32::MAX),
            end: complete.then_some(StreamEnd::Complete),
        })
    }

    /// The last batch of a stream that ends early.
    pub fn end_batch(&mut self, end: StreamEnd) -> LogBatch {
        LogBatch {
            lines: Vec::new(),
            missed: u32::try_from(std::mem::take(&mut self.missed)).unwrap_or(u32::MAX),
            end: Some(end),
        }
    }
}
