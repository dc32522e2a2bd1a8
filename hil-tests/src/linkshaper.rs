//! A serial line emulator for the field link: two pseudo-terminal pairs,
//! the node's end on one and the technician's end on the other, and a
//! relay that copies bytes both ways at the real rate of an 8N1 UART line
//! (10 bits per byte: `baud / 10` bytes per second).
//!
//! A pty pair alone moves bytes at memory speed whatever baud rate its
//! ends set; the shaper is what makes a link benchmark mean something.
//!
//! - **Pacing**: every byte has a departure time. A byte that finds the
//!   line idle starts at once; one that finds it busy starts when the
//!   previous byte ends. A byte is handed to the receiving end when its
//!   last bit (the stop bit) is on the wire: `10 / baud` seconds after it
//!   started. The schedule is absolute, so a late wake-up of the relay
//!   thread hands over everything that became due in one write and the
//!   line never drifts slower or faster than its rate.
//! - **Full duplex**: each direction has its own thread and its own line.
//! - **Counting**: bytes per direction, and the frames the field link's
//!   framing ends with a 0x00 (`docs/field-link.md`), each with its length
//!   and the moment its delimiter was delivered, so a benchmark can tell
//!   the chunks and batches from the replies and measure the gaps.
//!
//! The relay reads what the sender wrote as soon as it is written (like a
//! UART's transmit buffer in the kernel), so a sender's writes do not
//! block; what arrives at the other end arrives at the line's rate.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

/// Bits on the wire per byte for 8N1: start bit, 8 data bits, stop bit.
pub const BITS_PER_BYTE: u32 = 10;

/// Which way bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the technician's end to the node's end.
    ToNode,
    /// From the node's end to the technician's end.
    ToTechnician,
}

/// One frame delimiter (0x00) delivered to the receiving end.
#[derive(Debug, Clone, Copy)]
pub struct FrameMark {
    /// When the delimiter was handed to the receiving end.
    pub delivered: Instant,
    /// Wire bytes of the frame, delimiter included (1: an empty frame).
    pub wire_len: u64,
}

/// What one direction carried since the last [`Shaper::take`].
#[derive(Debug, Clone, Default)]
pub struct DirectionStats {
    /// Bytes delivered.
    pub bytes: u64,
    /// Every frame delimiter delivered, in order.
    pub frames: Vec<FrameMark>,
    /// When the first byte was delivered.
    pub first: Option<Instant>,
    /// When the last byte was delivered.
    pub last: Option<Instant>,
}

#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    frames: Vec<FrameMark>,
    first: Option<Instant>,
    last: Option<Instant>,
    /// Bytes of the frame in progress (since the last delimiter).
    open: u64,
}

/// The running line: two pty pairs and a relay thread per direction.
pub struct Shaper {
    baud: u32,
    node_path: PathBuf,
    technician_path: PathBuf,
    to_node: Arc<Counters>,
    to_technician: Arc<Counters>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    // The slave ends stay open for the line's life: a pty master reads
    // EIO while no one holds its slave open (between two sessions).
    _slaves: [OwnedFd; 2],
}

/// A raw pseudo-terminal pair: (master, slave, slave path).
fn raw_pty() -> std::io::Result<(File, OwnedFd, PathBuf)> {
    let pty = openpty(None, None)?;
    let mut t = tcgetattr(pty.slave.as_fd())?;
    cfmakeraw(&mut t);
    tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t)?;
    let path = nix::unistd::ttyname(pty.slave.as_fd())?;
    Ok((File::from(pty.master), pty.slave, path))
}

impl Shaper {
    /// Opens the two pty pairs and starts the relay at `baud` (bits per
    /// second, 8N1).
    pub fn start(baud: u32) -> std::io::Result<Shaper> {
        assert!(baud > 0, "a line needs a baud rate");
        let (node_master, node_slave, node_path) = raw_pty()?;
        let (tech_master, tech_slave, technician_path) = raw_pty()?;
        let to_node = Arc::new(Counters::default());
        let to_technician = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = vec![
            spawn_relay(
                tech_master.try_clone()?,
                node_master.try_clone()?,
                baud,
                to_node.clone(),
                stop.clone(),
            ),
            spawn_relay(
                node_master,
                tech_master,
                baud,
                to_technician.clone(),
                stop.clone(),
            ),
        ];
        Ok(Shaper {
            baud,
            node_path,
            technician_path,
            to_node,
            to_technician,
            stop,
            threads,
            _slaves: [node_slave, tech_slave],
        })
    }

    /// The line's rate in bits per second.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// The line's rate in bytes per second (8N1).
    pub fn bytes_per_second(&self) -> f64 {
        f64::from(self.baud) / f64::from(BITS_PER_BYTE)
    }

    /// How long `bytes` take on the wire.
    pub fn line_time(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.bytes_per_second())
    }

    /// The device the node opens (`[fieldlink] serial`).
    pub fn node_end(&self) -> &Path {
        &self.node_path
    }

    /// The device the technician opens (`field-tools link --port`).
    pub fn technician_end(&self) -> &Path {
        &self.technician_path
    }

    /// Bytes delivered so far in `dir` (since the last [`Shaper::take`]).
    pub fn bytes(&self, dir: Direction) -> u64 {
        self.counters(dir).bytes.load(Ordering::SeqCst)
    }

    /// What `dir` carried since the last call, and starts counting again.
    pub fn take(&self, dir: Direction) -> DirectionStats {
        let c = self.counters(dir);
        let mut log = c.log.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = c.bytes.swap(0, Ordering::SeqCst);
        let frames = std::mem::take(&mut log.frames);
        let (first, last) = (log.first.take(), log.last.take());
        DirectionStats {
            bytes,
            frames,
            first,
            last,
        }
    }

    fn counters(&self, dir: Direction) -> &Counters {
        match dir {
            Direction::ToNode => &self.to_node,
            Direction::ToTechnician => &self.to_technician,
        }
    }
}

impl Drop for Shaper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to` at `baud`, until `stop`.
fn spawn_relay(
    mut from: File,
    mut to: File,
    baud: u32,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let byte_s = f64::from(BITS_PER_BYTE) / f64::from(baud);
        // Bytes handed over per write at most: about a millisecond of line
        // time, so the receiver sees a steady trickle, not bursts.
        let piece = ((1e-3 / byte_s) as usize).max(1);
        // When the line finishes the last byte scheduled on it.
        let mut line_free = Instant::now();
        let mut buf = vec![0u8; 4096];
        while !stop.load(Ordering::SeqCst) {
            let ready = {
                let mut fds = [PollFd::new(from.as_fd(), PollFlags::POLLIN)];
                poll(&mut fds, PollTimeout::from(50u16))
            };
            match ready {
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            }
            let n = match from.read(&mut buf) {
                Ok(0) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // EIO while no one has the slave open: wait for an open.
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            // The first byte starts when it was read or when the line is
            // free, whichever is later; byte i is delivered at
            // start + (i + 1) byte times.
            let start = line_free.max(Instant::now());
            let due_at = |i: usize| start + Duration::from_secs_f64(i as f64 * byte_s);
            let mut sent = 0;
            while sent < n {
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(start).as_secs_f64();
                let due = ((elapsed / byte_s) as usize).min(n);
                if due > sent {
                    // Counted first: whoever sees the bytes sees them counted.
                    record(&counters, &buf[sent..due], now);
                    if to.write_all(&buf[sent..due]).is_err() {
                        return;
                    }
                    sent = due;
                } else {
                    let next = due_at((sent + piece).min(n));
                    std::thread::sleep(next.saturating_duration_since(now));
                }
            }
            line_free = due_at(n);
        }
    })
}

/// Counts `bytes` delivered at `at`, and the frames they end.
fn record(c: &Counters, bytes: &[u8], at: Instant) {
    let mut log = c.log.lock().unwrap_or_else(|e| e.into_inner());
    c.bytes.fetch_add(bytes.len() as u64, Ordering::SeqCst);
    log.first.get_or_insert(at);
    log.last = Some(at);
    for &b in bytes {
        log.open += 1;
        if b == 0 {
            let wire_len = std::mem::take(&mut log.open);
            log.frames.push(FrameMark {
                delivered: at,
                wire_len,
            });
        }
    }
}
