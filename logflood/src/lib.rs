//! Flood limits for log lines.
//!
//! A microphone that overruns every second, a link that fails on every
//! attempt, or a stream of malformed requests from outside would each write
//! one warning per occurrence, and the log would grow without bound. A
//! [`FloodGate`] is a `tracing_subscriber` layer that lets each call site
//! (each `warn!` or `error!` in the source: one kind of message) write at
//! most [`FloodLimit::lines`] lines per [`FloodLimit::window`]. Lines
//! beyond that are counted, not written. While a kind keeps flooding (it
//! lost lines in the previous window too) it writes none at all until a
//! window passes without a loss.
//!
//! [`FloodGate::emit_summaries`] writes one line per kind that lost lines
//! since the last summary: how many, over how long, and the first lost
//! line. [`FloodGate::spawn_summaries`] calls it periodically on a thread of
//! its own, and a program calls it once more before it exits, so no count
//! is lost. A persistent flood therefore costs at most one line per kind
//! per summary period.
//!
//! Call sites, not field values, are the unit: a flood whose every line
//! differs (another request number, another error text) is still one kind,
//! and the gate's memory is bounded by the number of call sites in the
//! program. Lines less severe than [`FloodLimit::min_level`] pass
//! untouched, as do the summaries (target [`SUMMARY_TARGET`]).

mod describe;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The target of the summary lines; they are never limited.
pub const SUMMARY_TARGET: &str = "log_flood";

/// How many lines a kind of message may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodLimit {
    /// Lines per window and call site.
    pub lines: u32,
    /// Length of a window.
    pub window: Duration,
    /// The least severe level that is limited (WARN: warnings and errors).
    pub min_level: Level,
}

impl Default for FloodLimit {
    fn default() -> Self {
        FloodLimit {
            lines: 10,
            window: Duration::from_secs(60),
            min_level: Level::WARN,
        }
    }
}

/// What one kind of message lost since the last summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The call site's target (its module).
    pub target: &'static str,
    /// The call site's level.
    pub level: Level,
    /// The call site's source file and line, when known.
    pub file: Option<&'static str>,
    pub line: Option<u32>,
    /// Lines not written.
    pub lost: u64,
    /// From the first lost line to the last.
    pub over: Duration,
    /// The first lost line: its message and fields, shortened.
    pub example: String,
}

/// Where the gate reads the time; the clock of tests moves by hand.
pub type Now = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The per-call-site flood limit; a `tracing_subscriber` layer. Clones
/// share their state.
#[derive(Clone)]
pub struct FloodGate {
    inner: Arc<Inner>,
}

struct Inner {
    limit: FloodLimit,
    now: Now,
    sites: Mutex<HashMap<Identifier, Site>>,
    lost_total: AtomicU64,
}

/// One call site's count.
struct Site {
    meta: &'static Metadata<'static>,
    window_start: Instant,
    written: u32,
    /// Lines lost in the current window.
    window_lost: u64,
    /// The previous window lost lines: this one writes none.
    flooding: bool,
    /// Since the last summary.
    lost: u64,
    first_lost: Option<Instant>,
    last_lost: Option<Instant>,
    example: Option<String>,
}

impl Site {
    fn new(meta: &'static Metadata<'static>, now: Instant) -> Site {
        Site {
            meta,
            window_start: now,
            written: 0,
            window_lost: 0,
            flooding: false,
            lost: 0,
            first_lost: None,
            last_lost: None,
            example: None,
        }
    }

    /// Starts a new window if the current one is over.
    fn roll(&mut self, now: Instant, window: Duration) {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < window {
            return;
        }
        // A window with no attempt in between ends a flood too.
        self.flooding = self.window_lost > 0 && elapsed < window.saturating_mul(2);
        self.window_start = now;
        self.written = 0;
        self.window_lost = 0;
    }
}

impl FloodGate {
    /// A gate on the system's monotonic clock.
    pub fn new(limit: FloodLimit) -> FloodGate {
        FloodGate::with_clock(limit, Arc::new(Instant::now))
    }

    /// A gate reading the time from `now`.
    pub fn with_clock(limit: FloodLimit, now: Now) -> FloodGate {
        FloodGate {
            inner: Arc::new(Inner {
                limit,
                now,
                sites: Mutex::new(HashMap::new()),
                lost_total: AtomicU64::new(0),
            }),
        }
    }

    /// The limit in force.
    pub fn limit(&self) -> FloodLimit {
        self.inner.limit
    }

    /// Lines not written since the gate was made.
    pub fn lost_total(&self) -> u64 {
        self.inner.lost_total.load(Ordering::Relaxed)
    }

    /// Whether `event` may be written; counts it if not.
    pub fn admit(&self, event: &Event<'_>) -> bool {
        let meta = event.metadata();
        let limit = &self.inner.limit;
        // Level order: ERROR < WARN < INFO < DEBUG < TRACE.
        if *meta.level() > limit.min_level || meta.target() == SUMMARY_TARGET {
            return true;
        }
        let now = (self.inner.now)();
        let mut sites = self.sites();
        let site = sites
            .entry(meta.callsite())
            .or_insert_with(|| Site::new(meta, now));
        site.roll(now, limit.window);
        let allowance = if site.flooding { 0 } else { limit.lines };
        if site.written < allowance {
            site.written += 1;
            return true;
        }
        site.window_lost += 1;
        site.lost += 1;
        site.first_lost.get_or_insert(now);
        site.last_lost = Some(now);
        if site.example.is_none() {
            site.example = Some(describe::line(event));
        }
        self.inner.lost_total.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Takes what each kind lost since the last call, most lost first.
    pub fn take_summaries(&self) -> Vec<Summary> {
        let mut out: Vec<Summary> = self
            .sites()
            .values_mut()
            .filter(|s| s.lost > 0)
            .map(|s| {
                let over = match (s.first_lost, s.last_lost) {
                    (Some(a), Some(b)) => b.saturating_duration_since(a),
                    _ => Duration::ZERO,
                };
                let summary = Summary {
                    target: s.meta.target(),
                    level: *s.meta.level(),
                    file: s.meta.file(),
                    line: s.meta.line(),
                    lost: s.lost,
                    over,
                    example: s.example.take().unwrap_or_default(),
                };
                s.lost = 0;
                s.first_lost = None;
                s.last_lost = None;
                summary
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.lost));
        out
    }

    /// Writes one summary line per kind that lost lines since the last
    /// call; returns how many it wrote.
    pub fn emit_summaries(&self) -> usize {
        let summaries = self.take_summaries();
        for s in &summaries {
            tracing::warn!(
                target: SUMMARY_TARGET,
                kind = s.target,
                level = %s.level,
                file = s.file.unwrap_or("?"),
                line = s.line.unwrap_or(0),
                lost = s.lost,
                over_s = s.over.as_secs(),
                first = %s.example,
                "repeated log lines not written"
            );
        }
        summaries.len()
    }

    /// Calls [`FloodGate::emit_summaries`] every `every` on a thread of its
    /// own, for the life of the process.
    pub fn spawn_summaries(&self, every: Duration) -> std::io::Result<()> {
        let gate = self.clone();
        std::thread::Builder::new()
            .name("log-flood".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    gate.emit_summaries();
                }
            })
            .map(drop)
    }

    fn sites(&self) -> std::sync::MutexGuard<'_, HashMap<Identifier, Site>> {
        // A panic while holding the lock leaves counts, never a broken map.
        self.inner
            .sites
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<S: Subscriber> Layer<S> for FloodGate {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        self.admit(event)
    }
}

#[cfg(test)]
mod tests;
