//! Measures what a day of events costs on the satellite link: the node runs
//! the bundled demo scene (120 s), its stored events are repeated to fill 24
//! hours (same rate and shapes, ids and times continuing), one status report
//! per hour is added, and the day is sent (a) one record per SBD message and
//! (b) packed, either as full messages or in hourly batches (a session per
//! hour, the last message of each batch partly filled), as the node packs
//! them and, for comparison, as the packing's version 1 did (without the
//! record count and the checksum).
//!
//! `cargo test -p hil-tests --test sbd_measure -- --nocapture` prints the figures.

mod common;

use std::path::Path;

use field_tools::events;
use messages::pack::{SBD_MO_MAX, credits_for, pack, unpack};
use messages::{DropCounters, Message, ModelVersion, PowerModeCode, SensorHealth, StatusRecord};

const HOUR_MS: i64 = 3_600_000;

fn status(id: u64, node: &str, time_ms: i64, hour: u32) -> StatusRecord {
    StatusRecord {
        id,
        node_id: node.to_owned(),
        time_ms,
        uptime_s: hour * 3600,
        battery_permille: 800 - (hour as u16) * 5,
        battery_mv: 12_700 - (hour as u16) * 10,
        power_mode: PowerModeCode::Normal,
        air_temp_c100: Some(1_850),
        board_temp_c100: Some(4_200),
        sensors: SensorHealth::default(),
        queue: [0, 3, 0, 0],
        drops: DropCounters::default(),
        model: ModelVersion(0),
        last_contact_ms: Some(time_ms - HOUR_MS),
        cause: Default::default(),
        update: Default::default(),
        disk: Default::default(),
        clock: Default::default(),
        // Like the disk and clock parts, left out: the figures are the
        // events' (the detector's counts add 0 to 3 bytes to a status
        // record packed, `messages::pack` tests).
        detection: None,
        not_stored: None,
    }
}

struct Cost {
    messages: usize,
    bytes: usize,
    credits: u32,
}

/// Bytes the header of the packing's version 2 adds to version 1's: the
/// record count and the CRC-16.
const V2_HEADER_EXTRA: usize = 3;

/// The cost of packing `batches`, as the node does (`version_1` false), or
/// as a node of the packing's version 1 did: the same records without the
/// record count and the checksum, so 3 bytes more room per message.
fn packed_cost(batches: &[Vec<Message>], node: &str, version_1: bool) -> Cost {
    let mut c = Cost {
        messages: 0,
        bytes: 0,
        credits: 0,
    };
    let extra = if version_1 { V2_HEADER_EXTRA } else { 0 };
    for batch in batches {
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let p = pack(rest, SBD_MO_MAX + extra).unwrap();
            let mut bytes = p.bytes;
            if version_1 {
                let mut v1 = vec![messages::pack::PACK_VERSION_1];
                v1.extend_from_slice(&bytes[1 + V2_HEADER_EXTRA..]);
                bytes = v1;
            }
            assert!(bytes.len() <= SBD_MO_MAX);
            let back = unpack(&bytes, node).unwrap();
            assert_eq!(back, rest[..back.len()].to_vec());
            c.messages += 1;
            c.bytes += bytes.len();
            c.credits += credits_for(bytes.len());
            rest = &rest[p.ids_included.len()..];
        }
    }
    c
}

#[test]
fn a_day_of_demo_events_on_the_satellite_link() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let scene = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes/demo");
    let out = common::node_run(&scene, &data, &["--speed", "max"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = events::read_events(&data, None).unwrap();
    let scene_events = read.events;
    assert!(!scene_events.is_empty(), "the demo scene gives events");
    let node = scene_events[0].node_id.clone();
    let scene_ms: i64 = 120_000;
    let tiles = (24 * HOUR_MS / scene_ms) as usize;

    // The day: the scene's events repeated, ids continuing, one status per hour.
    let mut day: Vec<Message> = Vec::new();
    let mut next_id = scene_events[0].id;
    let t0 = scene_events[0].start_ms;
    let mut next_status = t0 + HOUR_MS;
    let mut hour = 1;
    for tile in 0..tiles {
        for e in &scene_events {
            let mut e = e.clone();
            e.start_ms += tile as i64 * scene_ms;
            while e.start_ms >= next_status {
                day.push(Message::Status(status(next_id, &node, next_status, hour)));
                next_id += 1;
                next_status += HOUR_MS;
                hour += 1;
            }
            e.id = next_id;
            next_id += 1;
            day.push(Message::Event(e));
        }
    }
    let n_events = day
        .iter()
        .filter(|m| matches!(m, Message::Event(_)))
        .count();

    // (a) one record per message, as stored.
    let single_bytes: usize = day.iter().map(|m| m.encode().len()).sum();
    let single_credits: u32 = day.iter().map(|m| credits_for(m.encode().len())).sum();
    // (b) packed into full messages, and in hourly batches.
    let full = packed_cost(std::slice::from_ref(&day), &node, false);
    let full_v1 = packed_cost(std::slice::from_ref(&day), &node, true);
    let mut hourly: Vec<Vec<Message>> = Vec::new();
    for m in &day {
        let t = match m {
            Message::Event(e) => e.start_ms,
            Message::Status(s) => s.time_ms,
        };
        let h = ((t - t0) / HOUR_MS) as usize;
        if hourly.len() <= h {
            hourly.resize(h + 1, Vec::new());
        }
        hourly[h].push(m.clone());
    }
    let batched = packed_cost(&hourly, &node, false);
    let batched_v1 = packed_cost(&hourly, &node, true);

    let per = |x: f64| x / n_events as f64;
    eprintln!(
        "demo scene: {} events in 120 s; a day: {n_events} events + {} status reports",
        scene_events.len(),
        day.len() - n_events
    );
    eprintln!(
        "one record per message: {:.1} bytes/event, {:.2} credits/event ({} messages, {single_credits} credits)",
        per(single_bytes as f64),
        per(f64::from(single_credits)),
        day.len()
    );
    for (name, c) in [
        ("packed, full messages", &full),
        ("packed, hourly sessions", &batched),
        ("packed v1 (no count, no checksum), full messages", &full_v1),
        (
            "packed v1 (no count, no checksum), hourly sessions",
            &batched_v1,
        ),
    ] {
        eprintln!(
            "{name}: {:.1} bytes/event, {:.3} credits/event ({} messages, {} credits, {:.0} bytes/message)",
            per(c.bytes as f64),
            per(f64::from(c.credits)),
            c.messages,
            c.credits,
            c.bytes as f64 / c.messages as f64
        );
    }
    assert!(
        full.credits * 10 < single_credits * 6,
        "packing saves at least 40% of the credits"
    );
    // The record count and the checksum: 3 bytes per message, at most 2 %
    // more credits.
    for (v2, v1) in [(&full, &full_v1), (&batched, &batched_v1)] {
        assert!(
            v2.credits * 100 <= v1.credits * 102,
            "version 2 costs {} credits, version 1 {}",
            v2.credits,
            v1.credits
        );
    }
    // Greedy packing is not optimal either way, so batching by hour may
    // land a credit above or below: it must cost no more than 5 % extra.
    assert!(
        batched.credits * 100 <= full.credits * 105,
        "hourly sessions cost {} credits, full messages {}",
        batched.credits,
        full.credits
    );
}
