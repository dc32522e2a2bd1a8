//! The node's recent log lines, kept in memory for `field-tools link logs`
//! (`Request::LogsTail`, `docs/field-link.md`).
//!
//! [`RingLayer`] is a `tracing` layer: it formats each event the node's log
//! filter lets through into one compact [`LogLine`] (the message, then the
//! fields as `key=value`) and pushes it into a [`LogRing`], a bounded queue
//! of the last lines: at most [`RING_LINES`] lines and [`RING_BYTES`] bytes
//! of text, the oldest dropped first. A line's text is cut at
//! [`MAX_MESSAGE_LEN`] bytes while it is formatted, so no event, however
//! large its fields, costs more.
//!
//! Logging never waits for a reader: the layer only `try_lock`s the ring.
//! A line that finds the ring locked (a reader copying lines, for
//! microseconds) is dropped and counted; the next line pushed takes its
//! sequence number along, so a reader sees the gap as missed lines.
//!
//! Every line pushed gets the next sequence number. A reader keeps the
//! number of the next line it wants ([`LogRing::read`]); lines dropped
//! from the ring (or at the lock) before it read them show as gaps, and are
//! counted as missed.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, TryLockError};

use messages::link::{LogLevel, LogLine};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// Lines the node's ring holds at most.
pub const RING_LINES: usize = 1024;
/// Bytes of text (messages and targets) the node's ring holds at most.
pub const RING_BYTES: usize = 256 * 1024;
/// A line's message (with its fields) is cut at this many bytes.
pub const MAX_MESSAGE_LEN: usize = 512;
/// A line's target (module path) is cut at this many bytes.
pub const MAX_TARGET_LEN: usize = 64;
/// What [`LogRing::read`] counts for a line besides its text: its time,
/// level and lengths once framed on the field link.
pub const LINE_COST: usize = 16;

/// One line held, with its sequence number.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    line: LogLine,
}

impl Entry {
    /// Heap bytes of its text.
    fn text_bytes(&self) -> usize {
        self.line.message.capacity() + self.line.target.capacity()
    }
}

#[derive(Debug)]
struct Lines {
    ring: VecDeque<Entry>,
    /// Sum of [`Entry::text_bytes`] of the lines held.
    bytes: usize,
    /// The sequence number of the next line pushed.
    next_seq: u64,
    /// Lines dropped from the ring to make room.
    evicted: u64,
}

#[derive(Debug)]
struct Inner {
    lines: Mutex<Lines>,
    max_lines: usize,
    max_bytes: usize,
    /// Lines dropped because the ring was locked, not yet given a number.
    busy_pending: AtomicU64,
    /// Lines dropped because the ring was locked, in all.
    busy_drops: AtomicU64,
}

/// A bounded ring of recent log lines, shared by the logging layer and the
/// field link's sessions (cloning shares it).
#[derive(Debug, Clone)]
pub struct LogRing {
    inner: Arc<Inner>,
}

/// What [`LogRing::read`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadLines {
    /// Lines at or above the level asked, oldest first.
    pub lines: Vec<LogLine>,
    /// The sequence number to read from next time.
    pub next: u64,
    /// Lines between the reader's position and `next` that were dropped
    /// before they could be read.
    pub missed: u64,
    /// True when `next` is the ring's next line: nothing more to read now.
    pub caught_up: bool,
}

/// The ring's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Lines held.
    pub lines: usize,
    /// Heap bytes of the text held.
    pub bytes: usize,
    /// Lines pushed (or dropped at the lock) since the ring was made.
    pub total: u64,
    /// Lines dropped from the ring to make room.
    pub evicted: u64,
    /// Lines dropped because a reader held the ring's lock.
    pub busy_drops: u64,
}

impl Default for LogRing {
    fn default() -> Self {
        LogRing::new(RING_LINES, RING_BYTES)
    }
}

impl LogRing {
    /// An empty ring of at most `max_lines` lines and `max_bytes` bytes of
    /// text (at least one line is always kept).
    pub fn new(max_lines: usize, max_bytes: usize) -> LogRing {
        let max_lines = max_lines.max(1);
        LogRing {
            inner: Arc::new(Inner {
                lines: Mutex::new(Lines {
                    ring: VecDeque::with_capacity(max_lines),
                    bytes: 0,
                    next_seq: 0,
                    evicted: 0,
                }),
                max_lines,
                max_bytes,
                busy_pending: AtomicU64::new(0),
                busy_drops: AtomicU64::new(0),
            }),
        }
    }

    /// The ring the node's log writes into (see [`RingLayer`]).
    pub fn global() -> &'static LogRing {
        static GLOBAL: OnceLock<LogRing> = OnceLock::new();
        GLOBAL.get_or_init(LogRing::default)
    }

    /// Adds a line, dropping the oldest ones while the ring is over its
    /// bounds. Never waits: when the ring is locked the line is dropped and
    /// counted. Text longer than [`MAX_MESSAGE_LEN`] / [`MAX_TARGET_LEN`]
    /// is cut.
    pub fn push(&self, mut line: LogLine) {
        truncate(&mut line.message, MAX_MESSAGE_LEN);
        truncate(&mut line.target, MAX_TARGET_LEN);
        line.message.shrink_to_fit();
        line.target.shrink_to_fit();
        let mut lines = match self.inner.lines.try_lock() {
            Ok(l) => l,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                self.inner.busy_pending.fetch_add(1, Ordering::Relaxed);
                self.inner.busy_drops.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        // Lines dropped at the lock take their numbers: readers see a gap.
        let skipped = self.inner.busy_pending.swap(0, Ordering::Relaxed);
        let seq = lines.next_seq.saturating_add(skipped);
        lines.next_seq = seq.saturating_add(1);
        let entry = Entry { seq, line };
        lines.bytes += entry.text_bytes();
        lines.ring.push_back(entry);
        while lines.ring.len() > self.inner.max_lines
            || (lines.bytes > self.inner.max_bytes && lines.ring.len() > 1)
        {
            match lines.ring.pop_front() {
                Some(old) => {
                    lines.bytes -= old.text_bytes();
                    lines.evicted += 1;
                }
                None => break,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.inner.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where to start reading to get the last `n` lines at or above
    /// `level` (fewer when the ring holds fewer).
    pub fn tail_start(&self, n: u32, level: LogLevel) -> u64 {
        let lines = self.lock();
        let mut start = lines.next_seq;
        let mut found = 0u32;
        for e in lines.ring.iter().rev() {
            if found >= n {
                break;
            }
            if e.line.level <= level {
                found += 1;
                start = e.seq;
            }
        }
        start
    }

    /// Lines numbered from `from` up to (not including) `to`, at or above
    /// `level`: at most `max_lines` of them and, past the first, at most
    /// `max_bytes` counted as their text plus [`LINE_COST`] each.
    pub fn read(
        &self,
        from: u64,
        to: u64,
        level: LogLevel,
        max_lines: usize,
        max_bytes: usize,
    ) -> ReadLines {
        let lines = self.lock();
        let mut out = ReadLines {
            next: from,
            ..Default::default()
        };
        let mut bytes = 0usize;
        let mut full = false;
        let first = lines.ring.partition_point(|e| e.seq < from);
        for e in lines.ring.range(first..) {
            if e.seq >= to {
                break;
            }
            if e.line.level <= level {
                let len = e.line.message.len() + e.line.target.len() + LINE_COST;
                if out.lines.len() >= max_lines
                    || (!out.lines.is_empty() && bytes + len > max_bytes)
                {
                    full = true;
                    break;
                }
                bytes += len;
                out.lines.push(e.line.clone());
            }
            out.missed += e.seq - out.next;
            out.next = e.seq + 1;
        }
        let end = lines.next_seq.min(to);
        if !full && out.next < end {
            // Numbers below the end that the ring never held: lines
            // dropped at the lock.
            out.missed += end - out.next;
            out.next = end;
        }
        out.caught_up = out.next >= end;
        out
    }

    /// The ring's counters.
    pub fn stats(&self) -> RingStats {
        let lines = self.lock();
        RingStats {
            lines: lines.ring.len(),
            bytes: lines.bytes,
            total: lines.next_seq + self.inner.busy_pending.load(Ordering::Relaxed),
            evicted: lines.evicted,
            busy_drops: self.inner.busy_drops.load(Ordering::Relaxed),
        }
    }
}

/// Cuts `s` to at most `max` bytes, at a character boundary, marking the
/// cut with `…` (within the bound).
fn truncate(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mark = '…';
    let mut end = max.saturating_sub(mark.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push(mark);
}

/// A `fmt::Write` that keeps at most `max` bytes and drops the rest, so a
/// huge field never gets formatted into memory.
struct Bounded<'a> {
    s: &'a mut String,
    max: usize,
}

impl std::fmt::Write for Bounded<'_> {
    fn write_str(&mut self, part: &str) -> std::fmt::Result {
        let room = self.max.saturating_sub(self.s.len());
        if part.len() <= room {
            self.s.push_str(part);
            return Ok(());
        }
        let mut end = room;
        while end > 0 && !part.is_char_boundary(end) {
            end -= 1;
        }
        self.s.push_str(&part[..end]);
        // Stops the formatting of this value: nothing more fits.
        Err(std::fmt::Error)
    }
}

/// Collects an event's message and fields, bounded.
struct LineVisitor {
    message: String,
    fields: String,
}

/// Room for the text plus the cut mark: [`truncate`] then cuts exactly.
const FORMAT_LIMIT: usize = MAX_MESSAGE_LEN + 4;

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = Bounded {
                s: &mut self.message,
                max: FORMAT_LIMIT,
            }
            .write_str(value);
        } else {
            let _ = write!(
                Bounded {
                    s: &mut self.fields,
                    max: FORMAT_LIMIT,
                },
                " {}={value:?}",
                field.name()
            );
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(
                Bounded {
                    s: &mut self.message,
                    max: FORMAT_LIMIT,
                },
                "{value:?}"
            );
        } else {
            let _ = write!(
                Bounded {
                    s: &mut self.fields,
                    max: FORMAT_LIMIT,
                },
                " {}={value:?}",
                field.name()
            );
        }
    }
}

fn level(l: &tracing::Level) -> LogLevel {
    match *l {
        tracing::Level::ERROR => LogLevel::Error,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::DEBUG => LogLevel::Debug,
        tracing::Level::TRACE => LogLevel::Trace,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The `tracing` layer that copies every event it sees into a [`LogRing`].
#[derive(Debug, Clone)]
pub struct RingLayer {
    ring: LogRing,
}

impl RingLayer {
    /// A layer writing into `ring`.
    pub fn new(ring: LogRing) -> RingLayer {
        RingLayer { ring }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RingLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut v = LineVisitor {
            message: String::new(),
            fields: String::new(),
        };
        event.record(&mut v);
        let mut message = v.message;
        let _ = Bounded {
            s: &mut message,
            max: FORMAT_LIMIT,
        }
        .write_str(&v.fields);
        self.ring.push(LogLine {
            time_ms: now_ms(),
            level: level(meta.level()),
            target: meta.target().to_string(),
            message,
        });
    }
}

#[cfg(test)]
mod tests;
