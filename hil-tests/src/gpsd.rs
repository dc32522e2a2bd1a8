//! A GNSS receiver for the time tests: a real `gpsd` on a free loopback
//! port, reading NMEA 0183 sentences (`$GPRMC`, `$GPGGA`) that a thread
//! writes into a pty pair, as a receiver on a UART would.
//!
//! The sentences carry the time a closure gives (the "sky's" time), with or
//! without a fix, so a test can run a node whose own clock is wrong against
//! a receiver that knows better.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use time::OffsetDateTime;

/// What can go wrong starting the receiver.
#[derive(Debug, thiserror::Error)]
pub enum GpsdError {
    /// `gpsd` is not installed.
    #[error("gpsd not found ({0}); run scripts/setup (Debian package gpsd)")]
    NotInstalled(String),
    /// A pty, a file or a socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// gpsd did not accept connections in time.
    #[error("gpsd did not listen on port {0}; its log: {1}")]
    NotListening(u16, String),
}

/// The sky's time, ms since the Unix epoch.
pub type SkyTime = Box<dyn Fn() -> i64 + Send>;

/// A running gpsd fed by an NMEA writer; stopped on drop.
pub struct GpsdReceiver {
    port: u16,
    fix: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
    child: Option<Child>,
    dir: tempfile::TempDir,
    _slave: OwnedFd,
}

/// `$body*CS\r\n` with the NMEA checksum (XOR of the body's bytes).
pub fn sentence(body: &str) -> String {
    let cs = body.bytes().fold(0u8, |a, b| a ^ b);
    format!("${body}*{cs:02X}\r\n")
}

/// The RMC and GGA sentences for `unix_ms`, with a fix or without.
pub fn sentences(unix_ms: i64, fix: bool) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let hms = format!(
        "{:02}{:02}{:02}.{:02}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond() / 10
    );
    let dmy = format!(
        "{:02}{:02}{:02}",
        t.day(),
        u8::from(t.month()),
        t.year().rem_euclid(100)
    );
    let (status, quality, sats) = if fix { ("A", 1, 8) } else { ("V", 0, 0) };
    sentence(&format!(
        "GPRMC,{hms},{status},4807.038,N,01131.000,E,000.0,000.0,{dmy},,,{}",
        if fix { "A" } else { "N" }
    )) + &sentence(&format!(
        "GPGGA,{hms},4807.038,N,01131.000,E,{quality},{sats:02},0.9,545.4,M,46.9,M,,"
    ))
}

impl GpsdReceiver {
    /// Starts gpsd on a free loopback port and the NMEA writer (a fix from
    /// the start when `fix`); returns once gpsd accepts connections.
    pub fn start(sky: SkyTime, fix: bool) -> Result<GpsdReceiver, GpsdError> {
        Command::new("gpsd")
            .arg("-V")
            .output()
            .map_err(|e| GpsdError::NotInstalled(e.to_string()))?;
        let pty = openpty(None, None).map_err(std::io::Error::from)?;
        let mut t = tcgetattr(pty.slave.as_fd()).map_err(std::io::Error::from)?;
        cfmakeraw(&mut t);
        tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t).map_err(std::io::Error::from)?;
        let path: PathBuf =
            nix::unistd::ttyname(pty.slave.as_fd()).map_err(std::io::Error::from)?;
        let dir = tempfile::tempdir()?;
        let port = crate::mosquitto::free_port()?;
        let log = File::create(dir.path().join("gpsd.log"))?;
        // -N: foreground; -n: read the device without waiting for a client;
        // -b: read-only (never reconfigure the "receiver"); -F: its control
        // socket in the test's directory, not /run.
        let child = Command::new("gpsd")
            .args(["-N", "-n", "-b", "-S", &port.to_string(), "-F"])
            .arg(dir.path().join("gpsd.sock"))
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let fix = Arc::new(AtomicBool::new(fix));
        let stop = Arc::new(AtomicBool::new(false));
        let mut master = File::from(pty.master);
        let writer = {
            let (fix, stop) = (fix.clone(), stop.clone());
            std::thread::Builder::new()
                .name("nmea".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let s = sentences(sky(), fix.load(Ordering::Relaxed));
                        // gpsd may not have opened the device yet; a pty
                        // master buffers what it cannot take.
                        let _ = master.write_all(s.as_bytes());
                        std::thread::sleep(Duration::from_millis(250));
                    }
                })?
        };
        let rx = GpsdReceiver {
            port,
            fix,
            stop,
            writer: Some(writer),
            child: Some(child),
            dir,
            _slave: pty.slave,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(GpsdError::NotListening(port, rx.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(rx)
    }

    /// gpsd's address, `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the sentences report a fix from now on.
    pub fn set_fix(&self, fix: bool) {
        self.fix.store(fix, Ordering::Relaxed);
    }

    /// What gpsd wrote to its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gpsd.log")).unwrap_or_default()
    }
}

impl Drop for GpsdReceiver {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stop.store(true, Ordering::Relaxed);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}
