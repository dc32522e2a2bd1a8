//! The ring's bounds, its sequence numbers and missed lines, and the layer.

use super::*;

fn line(level: LogLevel, message: &str) -> LogLine {
    LogLine {
        time_ms: 0,
        level,
        target: "node::test".into(),
        message: message.into(),
    }
}

fn messages(r: &ReadLines) -> Vec<&str> {
    r.lines.iter().map(|l| l.message.as_str()).collect()
}

#[test]
fn the_ring_keeps_the_last_lines_and_counts_what_it_dropped() {
    let ring = LogRing::new(3, 1 << 20);
    for i in 0..5 {
        ring.push(line(LogLevel::Info, &format!("l{i}")));
    }
    let s = ring.stats();
    assert_eq!((s.lines, s.total, s.evicted), (3, 5, 2));
    // A reader from the start missed the two dropped lines.
    let r = ring.read(0, u64::MAX, LogLevel::Trace, 100, 1 << 20);
    assert_eq!(messages(&r), ["l2", "l3", "l4"]);
    assert_eq!((r.missed, r.next, r.caught_up), (2, 5, true));
    // Nothing new: nothing read, nothing missed.
    let r = ring.read(5, u64::MAX, LogLevel::Trace, 100, 1 << 20);
    assert!(r.lines.is_empty() && r.missed == 0 && r.caught_up);
}

#[test]
fn the_byte_bound_holds_whatever_is_logged() {
    let ring = LogRing::new(10_000, 4_096);
    for i in 0..1_000 {
        ring.push(line(LogLevel::Info, &"x".repeat(i % 700)));
        assert!(ring.stats().bytes <= 4_096, "after {i}: {:?}", ring.stats());
    }
    // A huge message is cut, at a character boundary, with a mark.
    ring.push(line(LogLevel::Info, &"é".repeat(10_000)));
    let r = ring.read(
        ring.tail_start(1, LogLevel::Trace),
        u64::MAX,
        LogLevel::Trace,
        1,
        1 << 20,
    );
    let m = &r.lines[0].message;
    assert!(
        m.len() <= MAX_MESSAGE_LEN && m.ends_with('…'),
        "{}",
        m.len()
    );
}

#[test]
fn the_node_ring_is_bounded_in_memory() {
    // The node's ring at its worst: every line as long as allowed.
    let ring = LogRing::default();
    for _ in 0..3 * RING_LINES {
        ring.push(LogLine {
            time_ms: 0,
            level: LogLevel::Info,
            target: "t".repeat(1_000),
            message: "m".repeat(10_000),
        });
    }
    let s = ring.stats();
    assert!(s.bytes <= RING_BYTES, "{s:?}");
    let per_line = MAX_MESSAGE_LEN + MAX_TARGET_LEN;
    assert_eq!(s.lines, RING_BYTES / per_line, "{s:?}");
    let entries = RING_LINES * std::mem::size_of::<Entry>();
    eprintln!(
        "ring: {} lines of {per_line} B held, {} B of text, {} B of slots ({} B a slot)",
        s.lines,
        s.bytes,
        entries,
        std::mem::size_of::<Entry>()
    );
}

#[test]
fn reads_respect_level_count_and_size_and_resume_without_gaps() {
    let ring = LogRing::new(100, 1 << 20);
    for i in 0..10 {
        let level = if i % 2 == 0 {
            LogLevel::Warn
        } else {
            LogLevel::Debug
        };
        ring.push(line(level, &format!("l{i}")));
    }
    // Warnings only, two at a time: skipped debug lines are not missed.
    let r = ring.read(0, u64::MAX, LogLevel::Warn, 2, 1 << 20);
    assert_eq!(messages(&r), ["l0", "l2"]);
    assert_eq!((r.missed, r.caught_up), (0, false));
    let r = ring.read(r.next, u64::MAX, LogLevel::Warn, 100, 1 << 20);
    assert_eq!(messages(&r), ["l4", "l6", "l8"]);
    assert!(r.caught_up);
    // The last three at debug and above.
    let start = ring.tail_start(3, LogLevel::Trace);
    let r = ring.read(start, u64::MAX, LogLevel::Trace, 100, 1 << 20);
    assert_eq!(messages(&r), ["l7", "l8", "l9"]);
    // The last two warnings.
    let start = ring.tail_start(2, LogLevel::Warn);
    assert_eq!(
        messages(&ring.read(start, u64::MAX, LogLevel::Warn, 100, 1 << 20)),
        ["l6", "l8"]
    );
    // 0 lines: from the next line on.
    assert!(
        ring.read(
            ring.tail_start(0, LogLevel::Trace),
            u64::MAX,
            LogLevel::Trace,
            100,
            1 << 20
        )
        .lines
        .is_empty()
    );
    // Up to a bound: lines logged after it are not read.
    let r = ring.read(0, 3, LogLevel::Trace, 100, 1 << 20);
    assert_eq!(messages(&r), ["l0", "l1", "l2"]);
    assert!(r.caught_up);
    // The size limit: always at least one line, then within the bytes.
    let r = ring.read(0, u64::MAX, LogLevel::Trace, 100, 1);
    assert_eq!(messages(&r), ["l0"]);
}

#[test]
fn a_line_that_finds_the_ring_locked_is_dropped_counted_and_seen_as_missed() {
    let ring = LogRing::new(100, 1 << 20);
    ring.push(line(LogLevel::Info, "before"));
    {
        let _reader = ring.inner.lines.lock().unwrap();
        // Returns at once instead of waiting for the reader.
        ring.push(line(LogLevel::Info, "while locked"));
    }
    ring.push(line(LogLevel::Info, "after"));
    let s = ring.stats();
    assert_eq!((s.busy_drops, s.total, s.lines), (1, 3, 2));
    let r = ring.read(0, u64::MAX, LogLevel::Trace, 100, 1 << 20);
    assert_eq!(messages(&r), ["before", "after"]);
    assert_eq!(r.missed, 1);
}

#[test]
fn the_layer_formats_events_compactly() {
    use tracing_subscriber::layer::SubscriberExt;
    let ring = LogRing::new(100, 1 << 20);
    let subscriber = tracing_subscriber::registry().with(RingLayer::new(ring.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(sensor = "camera", reason = %"no frames", count = 3, "sensor degraded");
        tracing::info!(blob = %"z".repeat(100_000), "big");
    });
    let r = ring.read(0, u64::MAX, LogLevel::Trace, 100, 1 << 20);
    assert_eq!(r.lines.len(), 2);
    assert_eq!(r.lines[0].level, LogLevel::Warn);
    assert_eq!(
        r.lines[0].message,
        "sensor degraded sensor=\"camera\" reason=no frames count=3"
    );
    assert!(
        r.lines[0].target.ends_with("logring::tests"),
        "{}",
        r.lines[0].target
    );
    assert!(r.lines[0].time_ms > 0);
    assert!(r.lines[1].message.starts_with("big blob=zzz"));
    assert!(r.lines[1].message.len() <= MAX_MESSAGE_LEN);
}

#[test]
fn a_read_bounded_past_lines_dropped_at_the_lock_still_completes() {
    let ring = LogRing::new(100, 1 << 20);
    ring.push(line(LogLevel::Info, "a"));
    {
        let _reader = ring.inner.lines.lock().unwrap();
        ring.push(line(LogLevel::Info, "lost"));
    }
    // A stream without follow ends at the total, which counts the lost
    // line; the next line pushed is numbered past it.
    let until = ring.stats().total;
    ring.push(line(LogLevel::Info, "after"));
    let r = ring.read(0, until, LogLevel::Trace, 100, 1 << 20);
    assert_eq!(messages(&r), ["a"]);
    assert_eq!((r.missed, r.next, r.caught_up), (1, until, true));
}
