use std::io::Write;
use std::sync::atomic::AtomicU64;

use tracing_subscriber::layer::SubscriberExt as _;

use super::*;

/// A clock moved by hand, in milliseconds from a fixed start.
#[derive(Clone)]
struct HandClock {
    start: Instant,
    ms: Arc<AtomicU64>,
}

impl HandClock {
    fn new() -> HandClock {
        HandClock {
            start: Instant::now(),
            ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn advance(&self, d: Duration) {
        self.ms.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
    }

    fn now(&self) -> Now {
        let c = self.clone();
        Arc::new(move || c.start + Duration::from_millis(c.ms.load(Ordering::SeqCst)))
    }
}

/// What the subscriber wrote, line by line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const LIMIT: FloodLimit = FloodLimit {
    lines: 5,
    window: Duration::from_secs(60),
    min_level: Level::WARN,
};

/// Runs `f` under a subscriber that writes to a capture through `gate`.
fn with_gate(gate: &FloodGate, f: impl FnOnce()) -> Captured {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || writer.clone()),
        )
        .with(gate.clone());
    tracing::subscriber::with_default(subscriber, f);
    out
}

fn reject(n: u32) {
    tracing::warn!(request = n, error = "bad form", "callback rejected");
}

#[test]
fn a_flood_from_one_call_site_writes_its_allowance_and_one_summary() {
    let clock = HandClock::new();
    let gate = FloodGate::with_clock(LIMIT, clock.now());
    let out = with_gate(&gate, || {
        for n in 0..1000 {
            reject(n);
            clock.advance(Duration::from_millis(10));
        }
        assert_eq!(gate.emit_summaries(), 1);
        // Nothing lost since: no second summary.
        assert_eq!(gate.emit_summaries(), 0);
    });
    assert_eq!(out.count("callback rejected"), 5 + 1);
    assert_eq!(gate.lost_total(), 995);
    let summary = out
        .lines()
        .into_iter()
        .find(|l| l.contains("repeated log lines not written"))
        .expect("a summary line");
    assert!(summary.contains("lost=995"), "{summary}");
    // The first lost line: request 5, with its fields.
    assert!(summary.contains("callback rejected request=5"), "{summary}");
}

#[test]
fn lines_whose_fields_differ_are_still_one_kind() {
    let gate = FloodGate::with_clock(LIMIT, HandClock::new().now());
    let out = with_gate(&gate, || {
        for n in 0..50 {
            tracing::error!(peer = %format!("10.0.0.{n}"), code = n, "link failed");
        }
    });
    assert_eq!(out.count("link failed"), 5);
    assert_eq!(gate.lost_total(), 45);
}

#[test]
fn call_sites_are_limited_independently() {
    let gate = FloodGate::with_clock(LIMIT, HandClock::new().now());
    let out = with_gate(&gate, || {
        for n in 0..20 {
            reject(n);
            tracing::warn!("microphone overrun");
        }
    });
    assert_eq!(out.count("callback rejected"), 5);
    assert_eq!(out.count("microphone overrun"), 5);
    let summaries = gate.take_summaries();
    assert_eq!(summaries.len(), 2);
    assert!(summaries.iter().all(|s| s.lost == 15));
}

#[test]
fn lines_less_severe_than_the_limit_pass_untouched() {
    let gate = FloodGate::with_clock(LIMIT, HandClock::new().now());
    let out = with_gate(&gate, || {
        for n in 0..100 {
            tracing::info!(id = n, "event stored");
        }
    });
    assert_eq!(out.count("event stored"), 100);
    assert_eq!(gate.lost_total(), 0);
    assert!(gate.take_summaries().is_empty());
}

#[test]
fn a_persistent_flood_writes_only_summaries_until_a_quiet_window() {
    let clock = HandClock::new();
    let gate = FloodGate::with_clock(LIMIT, clock.now());
    let out = with_gate(&gate, || {
        // Ten minutes of one line per second.
        for n in 0..600 {
            reject(n);
            if n % 60 == 59 {
                gate.emit_summaries();
            }
            clock.advance(Duration::from_secs(1));
        }
        // Quiet for two windows: the allowance comes back.
        clock.advance(Duration::from_secs(150));
        for n in 0..10 {
            reject(n);
        }
        gate.emit_summaries();
    });
    let written = out
        .lines()
        .into_iter()
        .filter(|l| l.contains("callback rejected") && !l.contains("repeated log lines"))
        .count();
    // 5 in the first minute, none while flooding, 5 after the quiet spell.
    assert_eq!(written, 10);
    // One summary per minute of flood and one for the last burst.
    assert_eq!(out.count("repeated log lines not written"), 11);
    assert_eq!(gate.lost_total(), 595 + 5);
}

#[test]
fn a_sparse_kind_is_never_limited() {
    let clock = HandClock::new();
    let gate = FloodGate::with_clock(LIMIT, clock.now());
    let out = with_gate(&gate, || {
        for n in 0..100 {
            reject(n);
            clock.advance(Duration::from_secs(20));
        }
    });
    assert_eq!(out.count("callback rejected"), 100);
    assert_eq!(gate.lost_total(), 0);
}

#[test]
fn a_long_lost_line_is_cut_in_its_summary() {
    let gate = FloodGate::with_clock(LIMIT, HandClock::new().now());
    let huge = "x".repeat(100_000);
    with_gate(&gate, || {
        for _ in 0..6 {
            tracing::warn!(body = %huge, "undecodable");
        }
    });
    let s = gate.take_summaries();
    assert_eq!(s.len(), 1);
    assert!(s[0].example.chars().count() <= describe::MAX_CHARS + 1);
    assert!(
        s[0].example.starts_with("undecodable body="),
        "{}",
        s[0].example
    );
}
