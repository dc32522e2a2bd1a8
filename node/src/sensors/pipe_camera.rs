//! Frames piped from a command: the source for Raspberry Pi CSI cameras,
//! which on a Pi 5 deliver frames through libcamera rather than a plain
//! V4L2 capture node. `rpicam-vid --codec yuv420 -o -` writes raw I420
//! frames (`w*h*3/2` bytes each, no header) to its stdout.
//!
//! [`PipeCamera`] runs the configured command (an argument vector, no shell)
//! with its stdout piped. A reader thread reads whole frames and keeps only
//! the latest one (with a sequence number), so the command never blocks on
//! a full pipe; a partial frame at the end of the output is dropped.
//! [`Camera::capture`] returns the latest frame it has not returned yet,
//! waiting up to `frame_timeout_ms` for one, reduced to the analysis size.
//!
//! Failures: no frame within the timeout, or the command exiting or closing
//! its output, make the capture [`SensorError::Unavailable`] and the health
//! degraded (with the command's last stderr line, which is where
//! `rpicam-vid` explains itself); the command is killed and started again at
//! a later capture, with exponential backoff (1 s doubling to 60 s, counted
//! as `restart`). A command that cannot be found when the camera is opened
//! is [`SensorError::Absent`]: on a node without `rpicam-apps` the camera is
//! absent for the run, with the reason in its health.
//!
//! Exposure: `rpicam-vid --metadata /dev/stderr --metadata-format txt` (in
//! the default command) writes each frame's metadata to its stderr as
//! `Name=value` lines, a blank line after each frame's. The stderr thread
//! takes `ExposureTime` (µs) times `AnalogueGain` and `DigitalGain` from each
//! complete block and a frame carries the latest ([`GrayFrame::exposure`],
//! at most a frame behind: the metadata follows the frame's bytes). The
//! metadata lines are not log lines: they are neither logged nor kept as
//! the command's last word. Without them frames carry no exposure.
//!
//! Power: when captures are further apart than `idle_close_ms`, the command
//! is killed after each capture and started again for the next. The
//! trade-off: `rpicam-vid` takes about a second to start (camera probing,
//! auto exposure), which the next capture waits for, and `warmup_frames`
//! frames are skipped after each start; below a frame every ~10 s that costs
//! less than keeping the sensor and ISP streaming.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fusion::GrayFrame;

use super::frames::{self, PixelFormat};
use super::health::HealthHandle;
use super::v4l_camera::{Backoff, CameraDeviceSettings};
use super::{Camera, SensorError};

const SENSOR: &str = "camera";
/// Longest stderr line kept for the health reason, characters.
const STDERR_KEPT: usize = 200;
/// Longest stderr line read at once, bytes.
const STDERR_LINE_MAX: u64 = 4096;

/// What the reader threads share with the camera.
#[derive(Default)]
struct Shared {
    state: Mutex<Latest>,
    cond: Condvar,
    /// The command's last non-empty stderr line.
    last_stderr: Mutex<String>,
    /// Set when the command's stderr has ended.
    stderr_done: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Latest> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn last_stderr(&self) -> String {
        self.last_stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[derive(Default)]
struct Latest {
    /// Whole frames read so far.
    seq: u64,
    /// The latest frame (empty once taken).
    frame: Vec<u8>,
    /// Why the output ended, once it has.
    ended: Option<String>,
    /// The exposure of the latest complete metadata block.
    exposure: Option<f32>,
}

/// Reads until `buf` is full or the stream ends; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The reader thread: whole frames into `shared`, until the output ends.
fn read_frames(mut out: ChildStdout, frame_len: usize, shared: Arc<Shared>) {
    let mut buf = vec![0u8; frame_len];
    let end = loop {
        buf.resize(frame_len, 0);
        match read_full(&mut out, &mut buf) {
            Ok(n) if n == frame_len => {
                let mut l = shared.lock();
                std::mem::swap(&mut l.frame, &mut buf);
                l.seq += 1;
                drop(l);
                shared.cond.notify_all();
            }
            Ok(0) => break "the camera command closed its output".to_string(),
            Ok(n) => {
                break format!(
                    "the camera command's output ended inside a frame ({n} of {frame_len} bytes)"
                );
            }
            Err(e) => break format!("reading the camera command's output: {e}"),
        }
    };
    shared.lock().ended = Some(end);
    shared.cond.notify_all();
}

/// A metadata line (`Name=value`, the name letters and digits only): the
/// name and the value.
fn metadata_line(text: &str) -> Option<(&str, &str)> {
    let (name, value) = text.split_once('=')?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some((name, value.trim()))
}

/// One frame's metadata block, as far as it has come.
#[derive(Default)]
struct ExposureBlock {
    time_us: Option<f64>,
    analogue_gain: Option<f64>,
    digital_gain: Option<f64>,
}

impl ExposureBlock {
    fn take(&mut self, name: &str, value: &str) {
        let v = value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0);
        match name {
            "ExposureTime" => self.time_us = v,
            "AnalogueGain" => self.analogue_gain = v,
            "DigitalGain" => self.digital_gain = v,
            _ => {}
        }
    }

    /// The block's exposure (a missing gain counts as 1), and a fresh block.
    fn finish(&mut self) -> Option<f32> {
        let b = std::mem::take(self);
        let e =
            (b.time_us? * b.analogue_gain.unwrap_or(1.0) * b.digital_gain.unwrap_or(1.0)) as f32;
        (e.is_finite() && e > 0.0).then_some(e)
    }
}

/// The stderr thread: each log line to the log (debug), the last one kept;
/// each frame's metadata block to the exposure in `shared`.
fn read_stderr(err: impl Read, shared: Arc<Shared>) {
    let mut r = BufReader::new(err);
    let mut line = Vec::new();
    let mut block = ExposureBlock::default();
    let mut in_block = false;
    loop {
        line.clear();
        // A line longer than this is read in pieces: output without line
        // ends cannot grow the buffer without bound.
        match (&mut r).take(STDERR_LINE_MAX).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim();
                if text.is_empty() {
                    if std::mem::take(&mut in_block)
                        && let Some(e) = block.finish()
                    {
                        shared.lock().exposure = Some(e);
                    }
                    continue;
                }
                if let Some((name, value)) = metadata_line(text) {
                    block.take(name, value);
                    in_block = true;
                    continue;
                }
                tracing::debug!(sensor = SENSOR, line = %text, "camera command stderr");
                let kept: String = text.chars().take(STDERR_KEPT).collect();
                *shared.last_stderr.lock().unwrap_or_else(|p| p.into_inner()) = kept;
            }
        }
    }
    shared.stderr_done.store(true, Ordering::Release);
}

/// A running command.
struct Running {
    child: Child,
    shared: Arc<Shared>,
    /// Sequence number of the last frame returned or skipped.
    delivered: u64,
}

impl Running {
    /// Why the command stopped delivering: `what`, with its exit status if
    /// it has exited and its last stderr line (waiting up to `wait` for
    /// both).
    fn explain(&mut self, what: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                _ => break None,
            }
        };
        while !self.shared.stderr_done.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut m = what.to_string();
        if let Some(s) = status {
            m += &format!(" (command exited: {s})");
        }
        let err = self.shared.last_stderr();
        if !err.is_empty() {
            m += &format!(": {err}");
        }
        m
    }

    /// Kills the command and reaps it (in the background if it does not
    /// die at once, e.g. stuck in a driver).
    fn stop(mut self) {
        let _ = self.child.kill();
        for _ in 0..50 {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        let mut child = self.child;
        let _ = std::thread::Builder::new()
            .name("camera-reap".into())
            .spawn(move || {
                let _ = child.wait();
            });
    }
}

/// Whether `program` can be run: a path to an existing file, or a name
/// found in `PATH`.
fn find_program(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Why a capture got no frame.
enum WaitError {
    /// The command stalled or ended: it is restarted.
    Failed(String),
    /// A frame arrived but could not be reduced.
    Frame(frames::FrameError),
}

/// A camera whose frames come from a command's stdout.
pub struct PipeCamera {
    argv: Vec<String>,
    width: u32,
    height: u32,
    frame_len: usize,
    max_w: u32,
    max_h: u32,
    frame_timeout: Duration,
    idle_close_ms: u64,
    warmup_frames: u32,
    health: HealthHandle,
    running: Option<Running>,
    last_t_ms: Option<i64>,
    backoff: Backoff,
}

impl PipeCamera {
    /// Starts `settings.pipe_command`, which must write I420 frames of
    /// `settings.width`×`settings.height`; frames are reduced to fit
    /// `max_w`×`max_h`. [`SensorError::Absent`] if the command is empty or
    /// not found, the size unusable, or the command cannot be started.
    pub fn open(
        settings: &CameraDeviceSettings,
        max_w: u32,
        max_h: u32,
        health: HealthHandle,
    ) -> Result<PipeCamera, SensorError> {
        let absent = |reason: String| SensorError::Absent {
            sensor: SENSOR,
            reason,
        };
        let Some(program) = settings.pipe_command.first() else {
            return Err(absent("camera.device.pipe_command is empty".into()));
        };
        let frame_len = match (settings.width, settings.height) {
            (w, h) if w >= 2 && h >= 2 && w <= frames::MAX_SIDE && h <= frames::MAX_SIDE => {
                PixelFormat::I420.frame_len(w, h)
            }
            _ => None,
        };
        let Some(frame_len) = frame_len else {
            return Err(absent(format!(
                "unusable frame size {}x{}",
                settings.width, settings.height
            )));
        };
        if !find_program(program) {
            return Err(absent(format!("camera command not found: {program}")));
        }
        let mut cam = PipeCamera {
            argv: settings.pipe_command.clone(),
            width: settings.width,
            height: settings.height,
            frame_len,
            max_w,
            max_h,
            frame_timeout: Duration::from_millis(settings.frame_timeout_ms.max(1)),
            idle_close_ms: settings.idle_close_ms,
            warmup_frames: settings.warmup_frames,
            health,
            running: None,
            last_t_ms: None,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        };
        cam.running = Some(
            cam.start()
                .map_err(|e| absent(format!("cannot start {program}: {e}")))?,
        );
        Ok(cam)
    }

    /// Sets the restart backoff: the first wait, doubling up to `max`
    /// (default 1 s to 60 s).
    pub fn set_backoff(&mut self, initial: Duration, max: Duration) {
        self.backoff = Backoff::new(initial, max);
    }

    /// The process id of the running command, if any.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.child.id())
    }

    /// Starts the command and its reader threads.
    fn start(&self) -> std::io::Result<Running> {
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let shared = Arc::new(Shared::default());
        let threads = (|| {
            let out = child
                .stdout
                .take()
                .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
            let sh = shared.clone();
            let frame_len = self.frame_len;
            std::thread::Builder::new()
                .name("camera-pipe".into())
                .spawn(move || read_frames(out, frame_len, sh))?;
            if let Some(err) = child.stderr.take() {
                let sh = shared.clone();
                std::thread::Builder::new()
                    .name("camera-stderr".into())
                    .spawn(move || read_stderr(err, sh))?;
            }
            Ok::<_, std::io::Error>(())
        })();
        let running = Running {
            child,
            shared,
            delivered: 0,
        };
        if let Err(e) = threads {
            running.stop();
            return Err(e);
        }
        tracing::info!(
            sensor = SENSOR,
            pid = running.child.id(),
            command = %self.argv.join(" "),
            "camera command started"
        );
        Ok(running)
    }

    /// Kills the command (if running).
    fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop();
        }
    }

    /// Stops the command, marks the camera degraded, schedules a restart.
    fn fail(&mut self, reason: String) {
        self.stop();
        let retry = self.backoff.failed(Instant::now());
        tracing::warn!(
            sensor = SENSOR,
            reason = %reason,
            retry_in_ms = retry.as_millis() as u64,
            "camera command failed"
        );
        self.health.set_degraded(reason);
    }

    /// The next frame not returned yet (skipping the warm-up frames after a
    /// start), waiting up to the frame timeout for each.
    fn next_frame(&mut self, t_ms: i64) -> Result<GrayFrame, WaitError> {
        let timeout = self.frame_timeout;
        let Some(r) = self.running.as_mut() else {
            return Err(WaitError::Failed(
                "the camera command is not running".into(),
            ));
        };
        loop {
            let deadline = Instant::now() + timeout;
            let shared = r.shared.clone();
            let mut l = shared.lock();
            while l.seq <= r.delivered {
                if let Some(end) = l.ended.clone() {
                    drop(l);
                    self.health.count("exit");
                    return Err(WaitError::Failed(
                        r.explain(&end, Duration::from_millis(200)),
                    ));
                }
                let now = Instant::now();
                if now >= deadline {
                    drop(l);
                    self.health.count("stall");
                    let what = format!("no frame for {} ms", timeout.as_millis());
                    return Err(WaitError::Failed(r.explain(&what, Duration::ZERO)));
                }
                l = shared
                    .cond
                    .wait_timeout(l, deadline - now)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            let seq = l.seq;
            let bytes = std::mem::take(&mut l.frame);
            let exposure = l.exposure;
            drop(l);
            r.delivered = seq;
            if seq <= u64::from(self.warmup_frames) {
                continue;
            }
            return frames::reduce(
                PixelFormat::I420,
                self.width,
                self.height,
                &bytes,
                self.max_w,
                self.max_h,
                t_ms,
            )
            .map(|f| GrayFrame { exposure, ..f })
            .map_err(WaitError::Frame);
        }
    }
}

impl Camera for PipeCamera {
    fn capture(&mut self, t_ms: i64) -> Result<Option<GrayFrame>, SensorError> {
        let unavailable = |reason: String| SensorError::Unavailable {
            sensor: SENSOR,
            reason,
        };
        let idle = self
            .last_t_ms
            .is_some_and(|p| t_ms.saturating_sub(p) > self.idle_close_ms as i64);
        self.last_t_ms = Some(t_ms);
        if self.running.is_none() {
            if let Some(wait) = self.backoff.remaining(Instant::now()) {
                return Err(unavailable(format!(
                    "camera command restarting in {} ms",
                    wait.as_millis()
                )));
            }
            if self.backoff.retrying() {
                self.health.count("restart");
            }
            match self.start() {
                Ok(r) => self.running = Some(r),
                Err(e) => {
                    let m = format!("cannot start {}: {e}", self.argv[0]);
                    self.fail(m.clone());
                    return Err(unavailable(m));
                }
            }
        }
        let result = self.next_frame(t_ms);
        if idle {
            tracing::debug!(
                sensor = SENSOR,
                "stopping the camera command until the next capture"
            );
            self.stop();
        }
        match result {
            Ok(frame) => {
                self.backoff.succeeded();
                self.health.set_ok();
                Ok(Some(frame))
            }
            Err(WaitError::Failed(m)) => {
                self.fail(m.clone());
                Err(unavailable(m))
            }
            Err(WaitError::Frame(e)) => {
                self.health.count("corrupt_frame");
                let m = e.to_string();
                self.health.set_degraded(m.clone());
                Err(unavailable(m))
            }
        }
    }

    fn blocking(&self) -> bool {
        true
    }

    fn standby(&mut self) {
        // The next capture starts the command; the time off is no reason to
        // stop it again after that capture.
        self.last_t_ms = None;
        if self.running.is_some() {
            self.stop();
            tracing::debug!(sensor = SENSOR, "camera command stopped for standby");
        }
    }
}

impl Drop for PipeCamera {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sensors::frames::tests::i420;
    use crate::sensors::health::Health;

    const W: u32 = 64;
    const H: u32 = 48;

    /// Frame `i`'s luma: a ramp offset by `i`.
    fn luma(i: u32) -> Vec<u8> {
        (0..W * H).map(|p| ((p + i * 37) % 251) as u8).collect()
    }

    fn settings(script: &str) -> CameraDeviceSettings {
        CameraDeviceSettings {
            source: crate::sensors::v4l_camera::CameraSource::Pipe,
            width: W,
            height: H,
            warmup_frames: 0,
            idle_close_ms: 60_000,
            frame_timeout_ms: 2000,
            pipe_command: vec!["sh".into(), "-c".into(), script.into()],
            ..Default::default()
        }
    }

    /// Writes frame files `f0`.. and returns their paths.
    fn frame_files(dir: &Path, n: u32) -> Vec<String> {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("f{i}"));
                std::fs::write(&p, i420(W, H, &luma(i))).unwrap();
                p.display().to_string()
            })
            .collect()
    }

    fn open(s: &CameraDeviceSettings) -> (PipeCamera, HealthHandle) {
        let health = HealthHandle::detached("camera");
        let cam = PipeCamera::open(s, 80, 60, health.clone()).unwrap();
        (cam, health)
    }

    #[test]
    fn frames_arrive_in_order_with_their_luma() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame_files(dir.path(), 3);
        let script = format!(
            "for f in {} {} {}; do cat $f; sleep 0.4; done; exec sleep 30",
            f[0], f[1], f[2]
        );
        let mut s = settings(&script);
        s.frame_timeout_ms = 1500;
        let (mut cam, health) = open(&s);
        assert!(cam.blocking());
        for i in 0..3 {
            let frame = cam.capture(1000 + i64::from(i)).unwrap().unwrap();
            assert_eq!((frame.width, frame.height), (W, H));
            assert_eq!(frame.t_ms, 1000 + i64::from(i));
            assert_eq!(frame.luma, luma(i), "frame {i}");
            assert!(health.is_ok());
        }
        // No fourth frame: a stall.
        let e = cam.capture(2000).unwrap_err();
        assert!(e.is_transient());
        assert!(e.to_string().contains("no frame for 1500 ms"), "{e}");
        assert_eq!(health.errors("stall"), 1);
        assert!(
            matches!(health.health(), Health::Degraded { reason } if reason.contains("no frame"))
        );
        assert_eq!(cam.pid(), None, "the stalled command is killed");
    }

    #[test]
    fn frames_are_reduced_to_the_analysis_size() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h) = (640u32, 480u32);
        let lum = crate::sensors::frames::tests::gradient(w, h);
        let p = dir.path().join("vga");
        std::fs::write(&p, i420(w, h, &lum)).unwrap();
        let mut s = settings(&format!("cat {}; exec sleep 30", p.display()));
        (s.width, s.height) = (w, h);
        let (mut cam, _) = open(&s);
        let frame = cam.capture(0).unwrap().unwrap();
        assert_eq!((frame.width, frame.height), (80, 60));
        let expect = crate::sensors::downscale::downscale_luma(&lum, w, h, 80, 60).2;
        assert_eq!(frame.luma, expect);
    }

    #[test]
    fn frames_carry_the_exposure_from_the_metadata_on_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame_files(dir.path(), 2);
        // As rpicam-vid's txt metadata: a block of Name=value lines per
        // frame, each ended by a blank line, among ordinary log lines.
        let block = |time: &str, again: &str| {
            format!(
                "printf 'SensorTimestamp=123\\nExposureTime={time}\\nAnalogueGain={again}\\nDigitalGain=1.5\\nLux=200.5\\n\\n' >&2"
            )
        };
        let script = format!(
            "echo '[0:00:00.1] [42] INFO Camera starting' >&2; {}; sleep 0.3; cat {}; sleep 0.3; \
             {}; sleep 0.3; cat {}; sleep 0.3; \
             echo '[0:00:02.0] [42] ERROR device lost' >&2; {}; sleep 0.3; exit 1",
            block("10000", "2.0"),
            f[0],
            block("40000", "4.0"),
            f[1],
            block("abc", "1.0"),
        );
        let mut s = settings(&script);
        s.frame_timeout_ms = 3000;
        let (mut cam, _) = open(&s);
        let a = cam.capture(0).unwrap().unwrap();
        assert_eq!(a.luma, luma(0));
        assert_eq!(a.exposure, Some(30_000.0));
        let b = cam.capture(1).unwrap().unwrap();
        assert_eq!(b.exposure, Some(240_000.0));
        // The command's last word is its last log line, not metadata.
        let e = cam.capture(2).unwrap_err().to_string();
        assert!(e.contains("ERROR device lost"), "{e}");
    }

    #[test]
    fn metadata_lines_and_blocks_are_read_strictly() {
        assert_eq!(
            metadata_line("ExposureTime=33965"),
            Some(("ExposureTime", "33965"))
        );
        assert_eq!(
            metadata_line("ColourGains=(1.19, 1.70)").map(|m| m.0),
            Some("ColourGains")
        );
        for log in [
            "[0:00:01.2] [7] INFO a=b",
            "=5",
            "no equals here",
            "Exposure Time=5",
        ] {
            assert_eq!(metadata_line(log), None, "{log}");
        }
        let mut b = ExposureBlock::default();
        b.take("ExposureTime", "20000");
        assert_eq!(b.finish(), Some(20_000.0), "missing gains count as 1");
        assert_eq!(b.finish(), None, "finish starts a fresh block");
        for bad in ["-5", "0", "inf", "NaN", "x"] {
            b.take("ExposureTime", bad);
            b.take("AnalogueGain", "2");
            assert_eq!(b.finish(), None, "{bad}");
        }
        b.take("ExposureTime", "1000");
        b.take("AnalogueGain", "1e200");
        assert_eq!(b.finish(), None, "an overflowing product is no exposure");
    }

    #[test]
    fn partial_last_frame_is_not_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame_files(dir.path(), 2);
        let mut bytes = std::fs::read(&f[0]).unwrap();
        let second = std::fs::read(&f[1]).unwrap();
        bytes.extend_from_slice(&second[..second.len() / 2]);
        let p = dir.path().join("partial");
        std::fs::write(&p, bytes).unwrap();
        let (mut cam, health) = open(&settings(&format!("cat {}", p.display())));
        assert_eq!(cam.capture(0).unwrap().unwrap().luma, luma(0));
        let e = cam.capture(1).unwrap_err();
        assert!(e.is_transient());
        assert!(e.to_string().contains("inside a frame"), "{e}");
        assert_eq!(health.errors("exit"), 1);
        assert!(!health.is_ok());
    }

    #[test]
    fn a_command_that_exits_is_restarted_with_backoff_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame_files(dir.path(), 1);
        let script = dir.path().join("cam.sh");
        std::fs::write(&script, "echo 'ERROR: no cameras available' >&2; exit 3\n").unwrap();
        let mut s = settings("");
        s.pipe_command = vec!["sh".into(), script.display().to_string()];
        let (mut cam, health) = open(&s);
        cam.set_backoff(Duration::from_millis(100), Duration::from_millis(400));

        let e = cam.capture(0).unwrap_err();
        assert!(e.is_transient());
        let msg = e.to_string();
        assert!(msg.contains("closed its output"), "{msg}");
        assert!(msg.contains("no cameras available"), "{msg}");
        assert!(matches!(health.health(), Health::Degraded { .. }));
        // Within the backoff: not restarted yet.
        let e = cam.capture(1).unwrap_err();
        assert!(e.to_string().contains("restarting in"), "{e}");
        assert_eq!(health.errors("restart"), 0);
        // After it: restarted, fails again, the wait doubles.
        std::thread::sleep(Duration::from_millis(120));
        assert!(cam.capture(2).is_err());
        assert_eq!(health.errors("restart"), 1);
        assert_eq!(health.errors("exit"), 2);
        std::thread::sleep(Duration::from_millis(120));
        assert!(
            cam.capture(3)
                .unwrap_err()
                .to_string()
                .contains("restarting in")
        );

        // The camera comes back.
        let tmp = dir.path().join("cam.sh.new");
        std::fs::write(&tmp, format!("cat {}\nexec sleep 30\n", f[0])).unwrap();
        std::fs::rename(&tmp, &script).unwrap();
        std::thread::sleep(Duration::from_millis(120));
        let frame = cam.capture(4).unwrap().unwrap();
        assert_eq!(frame.luma, luma(0));
        assert!(health.is_ok());
        assert_eq!(health.errors("restart"), 2);
        assert_eq!(health.snapshot().outages, 1);
    }

    #[test]
    fn a_missing_command_is_absent() {
        for argv in [
            vec!["fieldnode-no-such-camera-command".to_string()],
            vec![
                "/nonexistent/rpicam-vid".to_string(),
                "-o".into(),
                "-".into(),
            ],
            vec![],
        ] {
            let mut s = settings("");
            s.pipe_command = argv.clone();
            let r = PipeCamera::open(&s, 80, 60, HealthHandle::detached("camera"));
            assert!(matches!(r, Err(SensorError::Absent { .. })), "{argv:?}");
        }
    }

    #[test]
    fn idle_close_stops_the_command_between_captures() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame_files(dir.path(), 1);
        let mut s = settings(&format!("while true; do cat {}; sleep 0.05; done", f[0]));
        s.idle_close_ms = 1000;
        let (mut cam, health) = open(&s);
        // Captures close together: the command keeps running.
        assert!(cam.capture(0).unwrap().is_some());
        assert!(cam.capture(500).unwrap().is_some());
        let pid = cam.pid();
        assert!(pid.is_some());
        // Far apart: stopped after the capture, started for the next.
        assert!(cam.capture(5000).unwrap().is_some());
        assert_eq!(cam.pid(), None);
        assert!(cam.capture(10_000).unwrap().is_some());
        assert_eq!(cam.pid(), None);
        assert!(health.is_ok());
        assert_eq!(health.errors("restart"), 0);
        // Close together again: kept running.
        assert!(cam.capture(10_500).unwrap().is_some());
        assert!(cam.pid().is_some());
    }

    #[test]
    fn standby_stops_the_command_and_the_next_capture_starts_it_without_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame_files(dir.path(), 1);
        let mut s = settings(&format!("while true; do cat {}; sleep 0.05; done", f[0]));
        s.idle_close_ms = 1000;
        let (mut cam, health) = open(&s);
        assert!(cam.capture(0).unwrap().is_some());
        let pid = cam.pid().unwrap();
        cam.standby();
        assert_eq!(cam.pid(), None);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still runs"
        );
        // Back a minute later (on demand): started again, and kept running
        // for the captures that follow, however long the time off was.
        assert!(cam.capture(60_000).unwrap().is_some());
        assert!(cam.pid().is_some());
        assert!(cam.capture(60_500).unwrap().is_some());
        assert!(health.is_ok());
        assert_eq!(health.errors("restart"), 0);
    }

    #[test]
    fn warmup_frames_are_skipped_after_a_start() {
        let dir = tempfile::tempdir().unwrap();
        let f = frame_files(dir.path(), 3);
        let script = format!(
            "for f in {} {} {}; do cat $f; sleep 0.2; done; exec sleep 30",
            f[0], f[1], f[2]
        );
        let mut s = settings(&script);
        s.warmup_frames = 2;
        let (mut cam, _) = open(&s);
        assert_eq!(cam.capture(0).unwrap().unwrap().luma, luma(2));
    }

    #[test]
    fn drop_kills_and_reaps_the_command() {
        let (cam, _) = open(&settings("exec sleep 30"));
        let pid = cam.pid().unwrap();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(cam);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists"
        );
    }

    #[test]
    fn garbage_output_never_panics() {
        // Random bytes are valid I420 (any byte is a pixel): frames come
        // out; an odd tail is dropped.
        let (mut cam, _) = open(&settings("head -c 10000 /dev/urandom; exec sleep 30"));
        let frame = cam.capture(0).unwrap().unwrap();
        assert_eq!(frame.luma.len(), (W * H) as usize);
    }
}
