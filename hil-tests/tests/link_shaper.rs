//! The serial line emulator (`hil_tests::linkshaper`) that the field-link
//! benchmark runs on: bytes arrive intact and in order both ways at once,
//! the relay counts exactly what it carried and the frames it ended, and
//! the line is no faster than its baud rate (a lower bound on the time a
//! transfer takes; no upper bound is checked, the machine may be busy).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use hil_tests::linkshaper::{Direction, Shaper};

fn open(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap()
}

/// `n` bytes of a pattern with no 0x00 in it (seeded by `seed`).
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 31 + usize::from(seed) * 7) % 255) as u8 + 1)
        .collect()
}

/// Writes `data` to `w` in pieces of `piece` bytes, from a thread.
fn writer(mut w: File, data: Vec<u8>, piece: usize) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        let started = Instant::now();
        for p in data.chunks(piece) {
            w.write_all(p).unwrap();
        }
        started
    })
}

/// Reads exactly `n` bytes from `r`, from a thread; returns them and when
/// the last one arrived.
fn reader(mut r: File, n: usize) -> std::thread::JoinHandle<(Vec<u8>, Instant)> {
    std::thread::spawn(move || {
        let mut got = vec![0u8; n];
        r.read_exact(&mut got).unwrap();
        (got, Instant::now())
    })
}

#[test]
fn bytes_cross_both_ways_intact_in_order_counted_and_paced() {
    let baud = 230_400;
    let line = Shaper::start(baud).unwrap();
    assert_eq!(line.baud(), baud);
    assert_eq!(line.bytes_per_second(), 23_040.0);
    let node = open(line.node_end());
    let tech = open(line.technician_end());

    // Half a second of line time each way, both ways at once.
    let n = 11_520;
    let up = pattern(n, 1);
    let down = pattern(n, 2);
    let to_node = reader(node.try_clone().unwrap(), n);
    let to_tech = reader(tech.try_clone().unwrap(), n);
    let w1 = writer(tech, up.clone(), 700);
    let w2 = writer(node, down.clone(), 333);
    let started_up = w1.join().unwrap();
    let started_down = w2.join().unwrap();
    let (got_up, done_up) = to_node.join().unwrap();
    let (got_down, done_down) = to_tech.join().unwrap();
    assert!(
        got_up == up,
        "technician to node: bytes changed or reordered"
    );
    assert!(
        got_down == down,
        "node to technician: bytes changed or reordered"
    );

    // Exact counts per direction, and no frame (no 0x00 was sent).
    let s_up = line.take(Direction::ToNode);
    let s_down = line.take(Direction::ToTechnician);
    assert_eq!(s_up.bytes, n as u64);
    assert_eq!(s_down.bytes, n as u64);
    assert!(s_up.frames.is_empty() && s_down.frames.is_empty());
    assert!(s_up.first.unwrap() <= s_up.last.unwrap());
    // Counting starts again after `take`.
    assert_eq!(line.bytes(Direction::ToNode), 0);

    // Pacing: n bytes at this rate take at least n * 10 / baud seconds,
    // each way (full duplex: not twice that for both). Slack: the first
    // byte may start a little before the writer's clock was read.
    let least = line.line_time(n as u64) - Duration::from_millis(20);
    assert_eq!(line.line_time(n as u64), Duration::from_millis(500));
    let took_up = done_up - started_up;
    let took_down = done_down - started_down;
    assert!(took_up >= least, "{n} bytes to the node in {took_up:?}");
    assert!(
        took_down >= least,
        "{n} bytes to the technician in {took_down:?}"
    );
}

#[test]
fn frames_are_counted_with_their_lengths_each_way() {
    let line = Shaper::start(921_600).unwrap();
    let mut node = open(line.node_end());
    let mut tech = open(line.technician_end());

    // Three frames and an empty one, as the field link writes them.
    let mut frames = Vec::new();
    for len in [7usize, 300, 2_100] {
        let mut f = pattern(len, len as u8);
        f.push(0);
        frames.push(f);
    }
    frames.push(vec![0]);
    let all: Vec<u8> = frames.concat();
    tech.write_all(&all).unwrap();
    let mut got = vec![0u8; all.len()];
    node.read_exact(&mut got).unwrap();
    assert_eq!(got, all);
    let s = line.take(Direction::ToNode);
    assert_eq!(s.bytes, all.len() as u64);
    let lens: Vec<u64> = s.frames.iter().map(|f| f.wire_len).collect();
    assert_eq!(lens, [8, 301, 2_101, 1]);
    assert!(
        s.frames
            .windows(2)
            .all(|w| w[0].delivered <= w[1].delivered)
    );

    // The other way, after the line was idle: counted on its own.
    std::thread::sleep(Duration::from_millis(100));
    node.write_all(&[0x42, 0x00]).unwrap();
    let mut two = [0u8; 2];
    tech.read_exact(&mut two).unwrap();
    assert_eq!(two, [0x42, 0x00]);
    let s = line.take(Direction::ToTechnician);
    assert_eq!(s.bytes, 2);
    assert_eq!(s.frames.len(), 1);
    assert_eq!(s.frames[0].wire_len, 2);
    assert_eq!(line.take(Direction::ToNode).bytes, 0);
}
