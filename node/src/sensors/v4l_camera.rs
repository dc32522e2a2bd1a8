//! USB (UVC) cameras through V4L2 (`v4l` crate), and the settings of both
//! camera sources (`[camera.device]`).
//!
//! [`V4lCamera`] opens `/dev/videoN`, negotiates a pixel format (YUYV when
//! the camera offers it at the requested size, else MJPEG), and captures
//! from an mmap stream. Each capture first drops the frames queued since the
//! previous one (so the frame is fresh, not up to four buffers old), skips
//! `warmup_frames` after a stream start (auto exposure settles), and decodes
//! through [`super::frames`]. A frame that does not decode is skipped and
//! counted (`corrupt_frame`), up to three in a row. A device error drops the
//! device and reports [`SensorError::Unavailable`]; it is reopened at a later
//! capture with exponential backoff (counted as `reopen`). When captures are
//! further apart than `idle_close_ms`, the device is closed after each one
//! (a streaming UVC camera draws 100 to 250 mA) and reopened for the next.
//!
//! The device code is kept thin: everything it does to the bytes lives in
//! `frames.rs` and is tested there. The `v4l` crate panics on a few device
//! answers (a non-UTF-8 card name, an unknown colorspace, a failing
//! `STREAMOFF` on drop), so every call into it runs under `catch_unwind`.
//!
//! With each frame the camera's current exposure is read (the exposure
//! time control, times the gain control where there is one) and handed on
//! with the frame ([`GrayFrame::exposure`]): with auto-exposure it is what
//! tells a brighter view from the same view exposed shorter. A camera
//! without an exposure time control, or that refuses to read it, gives
//! frames without an exposure (asked once per open). Many UVC cameras
//! report the value their auto-exposure chose; some report only the last
//! manual setting, and then the exposure says nothing (`docs/hardware.md`).

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fusion::GrayFrame;
use serde::{Deserialize, Serialize};
use v4l::buffer::{Flags as BufFlags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::{Device, Format, FourCC};

use super::frames::{self, FrameError, PixelFormat};
use super::health::HealthHandle;
use super::{Camera, SensorError};

const SENSOR: &str = "camera";

/// Where frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraSource {
    /// A V4L2 capture device (USB/UVC camera): [`V4lCamera`].
    #[default]
    V4l,
    /// Raw I420 frames on the stdout of a command (`rpicam-vid` for CSI
    /// cameras): [`super::pipe_camera::PipeCamera`].
    Pipe,
}

/// Which V4L2 pixel format to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormatChoice {
    /// YUYV if offered at the requested size and that size is at most
    /// 640×480 (uncompressed: no decoding cost; larger YUYV sizes run at a
    /// few frames per second on USB 2), else MJPEG, else YUYV at whatever
    /// size the driver picks.
    #[default]
    Auto,
    /// YUYV only.
    Yuyv,
    /// MJPEG only.
    Mjpeg,
}

/// The default `pipe_command`: `rpicam-vid` writing raw I420 at 640×480,
/// 2 fps, to its stdout, and each frame's metadata (the exposure its
/// auto-exposure chose) to its stderr.
pub fn default_pipe_command() -> Vec<String> {
    [
        "rpicam-vid",
        "-t",
        "0",
        "-n",
        "--codec",
        "yuv420",
        "--width",
        "640",
        "--height",
        "480",
        "--framerate",
        "2",
        "--metadata",
        "/dev/stderr",
        "--metadata-format",
        "txt",
        "-o",
        "-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `[camera.device]`: the camera hardware (used with `sensors = "hardware"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CameraDeviceSettings {
    /// `v4l` (USB/UVC camera) or `pipe` (frames from `pipe_command`).
    pub source: CameraSource,
    /// The V4L2 device (`v4l`): `/dev/video0`, or a stable
    /// `/dev/v4l/by-id/...` path.
    pub device: PathBuf,
    /// `auto`, `yuyv` or `mjpeg` (`v4l` only; a pipe delivers I420).
    pub pixel_format: PixelFormatChoice,
    /// Requested frame width, pixels (`v4l`: the driver may pick another
    /// size, which is then used; `pipe`: must match the command's).
    pub width: u32,
    /// Requested frame height, pixels.
    pub height: u32,
    /// Frames skipped after each stream start, while auto exposure settles.
    pub warmup_frames: u32,
    /// When captures are further apart than this, the camera is closed after
    /// each capture and reopened for the next, ms.
    pub idle_close_ms: u64,
    /// A capture that gets no frame for this long fails, ms.
    pub frame_timeout_ms: u64,
    /// The command (`pipe`) writing raw I420 frames of `width`×`height` to
    /// its stdout, as an argument vector (no shell).
    pub pipe_command: Vec<String>,
}

impl Default for CameraDeviceSettings {
    fn default() -> Self {
        CameraDeviceSettings {
            source: CameraSource::V4l,
            device: PathBuf::from("/dev/video0"),
            pixel_format: PixelFormatChoice::Auto,
            width: 640,
            height: 480,
            warmup_frames: 2,
            idle_close_ms: 10_000,
            frame_timeout_ms: 3000,
            pipe_command: default_pipe_command(),
        }
    }
}

/// The value following `flag` in an argument vector (`--width 640` or
/// `--width=640`).
fn arg_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            argv.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(flag)?.strip_prefix('=')
        }
    })
}

impl CameraDeviceSettings {
    /// Problems, as (key under `camera.device`, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        let mut bad = |k: &str, m: String| e.push((k.to_string(), m));
        for (key, v) in [("width", self.width), ("height", self.height)] {
            if !(16..=frames::MAX_SIDE).contains(&v) || !v.is_multiple_of(2) {
                bad(
                    key,
                    format!("must be an even number between 16 and {}", frames::MAX_SIDE),
                );
            }
        }
        if self.warmup_frames > 100 {
            bad("warmup_frames", "must be at most 100".into());
        }
        if self.idle_close_ms > 86_400_000 {
            bad(
                "idle_close_ms",
                "must be at most 86400000 ms (a day)".into(),
            );
        }
        if !(100..=60_000).contains(&self.frame_timeout_ms) {
            bad(
                "frame_timeout_ms",
                "must be between 100 and 60000 ms".into(),
            );
        }
        match self.source {
            CameraSource::V4l => {
                if self.device.as_os_str().is_empty() {
                    bad("device", "must not be empty (e.g. \"/dev/video0\")".into());
                }
            }
            CameraSource::Pipe => {
                if self
                    .pipe_command
                    .first()
                    .is_none_or(|p| p.trim().is_empty())
                {
                    bad(
                        "pipe_command",
                        "must name a program (e.g. [\"rpicam-vid\", ...])".into(),
                    );
                }
                for (flag, v) in [("--width", self.width), ("--height", self.height)] {
                    if let Some(arg) = arg_value(&self.pipe_command, flag)
                        && arg.parse::<u32>() != Ok(v)
                    {
                        bad(
                            "pipe_command",
                            format!(
                                "{flag} {arg} does not match camera.device.{} = {v}",
                                &flag[2..]
                            ),
                        );
                    }
                }
                if arg_value(&self.pipe_command, "--metadata").is_some()
                    && let Some(format) = arg_value(&self.pipe_command, "--metadata-format")
                    && format != "txt"
                {
                    bad(
                        "pipe_command",
                        format!(
                            "--metadata-format {format}: the node reads the exposure from txt metadata"
                        ),
                    );
                }
                if let Some(codec) = arg_value(&self.pipe_command, "--codec")
                    && codec != "yuv420"
                {
                    bad(
                        "pipe_command",
                        format!("--codec {codec}: the pipe reads raw frames, use --codec yuv420"),
                    );
                }
            }
        }
        e
    }
}

/// Exponential backoff between attempts to (re)open a camera.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    delay: Duration,
    until: Option<Instant>,
}

impl Backoff {
    /// First wait `initial`, doubling up to `max`.
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            delay: initial,
            until: None,
        }
    }

    /// An attempt failed at `now`: the next one waits; returns how long.
    pub(crate) fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.delay;
        self.until = Some(now + wait);
        self.delay = (self.delay * 2).min(self.max);
        wait
    }

    /// How long until the next attempt may be made (`None`: now).
    pub(crate) fn remaining(&self, now: Instant) -> Option<Duration> {
        self.until
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Whether the last attempt failed (the next one is a retry).
    pub(crate) fn retrying(&self) -> bool {
        self.until.is_some()
    }

    /// It works again: the next failure waits `initial`.
    pub(crate) fn succeeded(&mut self) {
        self.delay = self.initial;
        self.until = None;
    }
}

/// Runs a call into the `v4l` crate, turning its panics into errors.
fn guarded<T>(what: &str, f: impl FnOnce() -> io::Result<T>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: unexpected answer from the driver")),
    }
}

const ENODEV: i32 = 19;
const ENOTTY: i32 = 25;
const POLLIN: i16 = 0x001;
/// Buffers in the mmap stream.
const BUFFERS: u32 = 4;
/// Frames that fail to decode before a capture gives up.
const CORRUPT_TRIES: u32 = 3;
/// `V4L2_CID_EXPOSURE_ABSOLUTE` (camera class base + 2): exposure time in
/// units of 100 µs.
const CID_EXPOSURE_ABSOLUTE: u32 = 0x009a_0902;
/// `V4L2_CID_GAIN` (user class base + 19).
const CID_GAIN: u32 = 0x0098_0913;

/// Stops and releases a stream without letting the `v4l` crate panic: if
/// `STREAMOFF` fails (other than for an unplugged device), the stream's
/// buffers are leaked rather than dropped (its `Drop` would panic).
fn close_stream(mut stream: Stream<'static>) {
    match stream.stop() {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(ENODEV) => {}
        Err(e) => {
            tracing::warn!(sensor = SENSOR, error = %e, "cannot stop the V4L2 stream; leaking its buffers");
            std::mem::forget(stream);
            return;
        }
    }
    if catch_unwind(AssertUnwindSafe(move || drop(stream))).is_err() {
        tracing::warn!(sensor = SENSOR, "releasing the V4L2 buffers failed");
    }
}

/// An open device: the negotiated format and, once capturing, its stream.
struct OpenDevice {
    stream: Option<Stream<'static>>,
    device: Option<Device>,
    format: PixelFormat,
    width: u32,
    height: u32,
    /// Bytes per line (YUYV).
    stride: u32,
    /// Whether the stream has been started (its first `next`).
    started: bool,
    /// Whether the exposure time control read (`None` until first asked),
    /// and whether the gain control did.
    exposure_control: Option<bool>,
    gain_control: bool,
}

impl Drop for OpenDevice {
    fn drop(&mut self) {
        if let Some(s) = self.stream.take() {
            close_stream(s);
        }
        if let Some(d) = self.device.take()
            && catch_unwind(AssertUnwindSafe(move || drop(d))).is_err()
        {
            tracing::warn!(sensor = SENSOR, "closing the V4L2 device failed");
        }
    }
}

/// Why a device could not be opened.
enum OpenError {
    /// It will not work this run (missing, no permission, not a camera, no
    /// usable format).
    Permanent(String),
    /// It may work later (busy, I/O error).
    Transient(String),
}

impl OpenError {
    fn message(&self) -> &str {
        match self {
            OpenError::Permanent(m) | OpenError::Transient(m) => m,
        }
    }
}

/// Whether the device offers `fourcc` at exactly `w`×`h`.
fn offers_size(device: &Device, fourcc: FourCC, w: u32, h: u32) -> bool {
    let sizes =
        guarded("VIDIOC_ENUM_FRAMESIZES", || device.enum_framesizes(fourcc)).unwrap_or_default();
    sizes.into_iter().any(|s| match s.size {
        FrameSizeEnum::Discrete(d) => d.width == w && d.height == h,
        FrameSizeEnum::Stepwise(s) => {
            let fits = |v: u32, min: u32, max: u32, step: u32| {
                (min..=max).contains(&v) && (step == 0 || (v - min).is_multiple_of(step))
            };
            fits(w, s.min_width, s.max_width, s.step_width)
                && fits(h, s.min_height, s.max_height, s.step_height)
        }
    })
}

/// Opens the device and sets its format.
fn open_device(s: &CameraDeviceSettings) -> Result<OpenDevice, OpenError> {
    let path = s.device.display();
    let device = match Device::with_path(&s.device) {
        Ok(d) => d,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Err(OpenError::Permanent(format!("cannot open {path}: {e}")));
        }
        Err(e) => return Err(OpenError::Transient(format!("cannot open {path}: {e}"))),
    };
    let caps = match catch_unwind(AssertUnwindSafe(|| device.query_caps())) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) if e.raw_os_error() == Some(ENOTTY) => {
            return Err(OpenError::Permanent(format!("{path} is not a V4L2 device")));
        }
        Ok(Err(e)) => return Err(OpenError::Transient(format!("VIDIOC_QUERYCAP: {e}"))),
        Err(_) => {
            return Err(OpenError::Transient(
                "VIDIOC_QUERYCAP: unexpected answer from the driver".into(),
            ));
        }
    };
    if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE)
        || !caps.capabilities.contains(CapFlags::STREAMING)
    {
        return Err(OpenError::Permanent(format!(
            "{path} ({}) is not a streaming video capture device",
            caps.card
        )));
    }
    let offered: Vec<FourCC> = guarded("VIDIOC_ENUM_FMT", || device.enum_formats())
        .map_err(OpenError::Transient)?
        .into_iter()
        .map(|d| d.fourcc)
        .collect();
    let has = |f: PixelFormat| {
        offered
            .iter()
            .any(|c| PixelFormat::from_fourcc(&c.repr) == Some(f))
    };
    let names = || {
        offered
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let wanted = match s.pixel_format {
        PixelFormatChoice::Yuyv | PixelFormatChoice::Mjpeg => {
            let f = if s.pixel_format == PixelFormatChoice::Yuyv {
                PixelFormat::Yuyv
            } else {
                PixelFormat::Mjpeg
            };
            if !has(f) {
                return Err(OpenError::Permanent(format!(
                    "{path} does not offer {f} (it offers {})",
                    names()
                )));
            }
            f
        }
        PixelFormatChoice::Auto => {
            let yuyv_fits = has(PixelFormat::Yuyv)
                && u64::from(s.width) * u64::from(s.height) <= 640 * 480
                && offers_size(
                    &device,
                    FourCC::new(&PixelFormat::Yuyv.fourcc()),
                    s.width,
                    s.height,
                );
            if yuyv_fits {
                PixelFormat::Yuyv
            } else if has(PixelFormat::Mjpeg) {
                PixelFormat::Mjpeg
            } else if has(PixelFormat::Yuyv) {
                PixelFormat::Yuyv
            } else {
                return Err(OpenError::Permanent(format!(
                    "{path} offers neither YUYV nor MJPEG (it offers {})",
                    names()
                )));
            }
        }
    };
    let request = Format::new(s.width, s.height, FourCC::new(&wanted.fourcc()));
    let got =
        guarded("VIDIOC_S_FMT", || device.set_format(&request)).map_err(OpenError::Transient)?;
    let format = match PixelFormat::from_fourcc(&got.fourcc.repr) {
        Some(f @ (PixelFormat::Yuyv | PixelFormat::Mjpeg)) => f,
        _ => {
            return Err(OpenError::Permanent(format!(
                "{path} switched to {} when asked for {wanted}",
                got.fourcc
            )));
        }
    };
    if got.width == 0
        || got.height == 0
        || got.width > frames::MAX_SIDE
        || got.height > frames::MAX_SIDE
    {
        return Err(OpenError::Permanent(format!(
            "{path} chose an unusable size {}x{}",
            got.width, got.height
        )));
    }
    tracing::info!(
        sensor = SENSOR,
        device = %path,
        card = %caps.card,
        driver = %caps.driver,
        format = %format,
        width = got.width,
        height = got.height,
        requested_width = s.width,
        requested_height = s.height,
        "camera format negotiated"
    );
    Ok(OpenDevice {
        stream: None,
        device: Some(device),
        format,
        width: got.width,
        height: got.height,
        stride: got.stride,
        started: false,
        exposure_control: None,
        gain_control: false,
    })
}

/// Why a capture got no frame.
enum GrabError {
    /// The device failed (or timed out); it must be reopened.
    Device(String),
    /// Only undecodable frames.
    Corrupt(FrameError),
}

impl OpenDevice {
    /// Waits up to `timeout_ms` for the next frame and hands its bytes (and
    /// whether the driver flagged it as damaged) to `f`. The first call
    /// queues the buffers and starts the stream.
    fn with_next_frame<T>(
        &mut self,
        timeout_ms: i32,
        f: impl FnOnce(&[u8], bool) -> T,
    ) -> Result<T, GrabError> {
        let (Some(stream), Some(device)) = (self.stream.as_mut(), self.device.as_ref()) else {
            return Err(GrabError::Device("the device is closed".into()));
        };
        if self.started {
            // `next` on a timed-out dequeue leaves the mmap stream unusable
            // (it re-queues a queued buffer), so wait here, not in `next`.
            let ready = guarded("poll", || device.handle().poll(POLLIN, timeout_ms))
                .map_err(GrabError::Device)?;
            if ready == 0 {
                return Err(GrabError::Device(format!("no frame for {timeout_ms} ms")));
            }
        }
        // Before the start, `next` starts the stream and waits with the
        // stream's own timeout; a timeout there closes the device anyway.
        self.started = true;
        guarded("VIDIOC_DQBUF", || {
            let (buf, meta) = stream.next()?;
            let used = (meta.bytesused as usize).min(buf.len());
            Ok(f(&buf[..used], meta.flags.contains(BufFlags::ERROR)))
        })
        .map_err(GrabError::Device)
    }

    /// The exposure the camera is using: exposure time times gain (a gain
    /// of 0 or one that cannot be read counts as 1). `None` when the
    /// device has no exposure time control it lets be read.
    fn exposure(&mut self) -> Option<f32> {
        let device = self.device.as_ref()?;
        if self.exposure_control == Some(false) {
            return None;
        }
        let read = |id: u32| {
            guarded("VIDIOC_G_EXT_CTRLS", || device.control(id))
                .ok()
                .and_then(|c| match c.value {
                    v4l::control::Value::Integer(v) if v > 0 => Some(v as f32),
                    _ => None,
                })
        };
        let first = self.exposure_control.is_none();
        let time = read(CID_EXPOSURE_ABSOLUTE);
        // The gain is asked for only while it answers (and only when there
        // is an exposure time to scale).
        let gain = time
            .filter(|_| first || self.gain_control)
            .and_then(|_| read(CID_GAIN));
        if first {
            self.exposure_control = Some(time.is_some());
            self.gain_control = gain.is_some();
            tracing::debug!(
                sensor = SENSOR,
                exposure = time.is_some(),
                gain = self.gain_control,
                "exposure controls"
            );
        }
        time.map(|t| t * gain.unwrap_or(1.0))
    }

    /// Makes the next frame a fresh one: on a stream start, skips the
    /// warm-up frames; on a running stream, drops the frames queued since
    /// the last capture (without waiting).
    fn prepare(&mut self, warmup_frames: u32, timeout_ms: i32) -> Result<(), GrabError> {
        let Some(device) = self.device.as_ref() else {
            return Err(GrabError::Device("the device is closed".into()));
        };
        if self.stream.is_none() {
            let mut stream = guarded("VIDIOC_REQBUFS", || {
                Stream::with_buffers(device, Type::VideoCapture, BUFFERS)
            })
            .map_err(GrabError::Device)?;
            stream.set_timeout(Duration::from_millis(timeout_ms as u64));
            self.stream = Some(stream);
            self.started = false;
            for _ in 0..warmup_frames {
                self.with_next_frame(timeout_ms, |_, _| ())?;
            }
            return Ok(());
        }
        let handle = device.handle();
        for _ in 0..=BUFFERS {
            let ready = guarded("poll", || handle.poll(POLLIN, 0)).map_err(GrabError::Device)?;
            if ready == 0 {
                break;
            }
            self.with_next_frame(0, |_, _| ())?;
        }
        Ok(())
    }
}

/// Decodes one driver buffer (YUYV rows may be padded to `stride`).
#[allow(clippy::too_many_arguments)]
fn decode(
    format: PixelFormat,
    w: u32,
    h: u32,
    stride: u32,
    bytes: &[u8],
    max_w: u32,
    max_h: u32,
    t_ms: i64,
) -> Result<GrayFrame, FrameError> {
    if format == PixelFormat::Yuyv {
        let row = w as usize * 2;
        let stride = (stride as usize).max(row);
        let expected = row * h as usize;
        if stride != row || bytes.len() > expected {
            let packed =
                frames::pack_rows(bytes, row, stride, h as usize).ok_or(FrameError::Length {
                    format,
                    expected: stride * h as usize,
                    actual: bytes.len(),
                })?;
            return frames::reduce(format, w, h, &packed, max_w, max_h, t_ms);
        }
    }
    frames::reduce(format, w, h, bytes, max_w, max_h, t_ms)
}

/// A UVC camera.
pub struct V4lCamera {
    settings: CameraDeviceSettings,
    max_w: u32,
    max_h: u32,
    health: HealthHandle,
    dev: Option<OpenDevice>,
    last_t_ms: Option<i64>,
    backoff: Backoff,
}

impl V4lCamera {
    /// Opens `settings.device` and negotiates its format; frames are reduced
    /// to fit `max_w`×`max_h`. A device that is missing, not accessible, not
    /// a capture device or offers no usable format is
    /// [`SensorError::Absent`]; one that fails otherwise (busy) is opened
    /// degraded and retried at each capture with backoff.
    pub fn open(
        settings: &CameraDeviceSettings,
        max_w: u32,
        max_h: u32,
        health: HealthHandle,
    ) -> Result<V4lCamera, SensorError> {
        let mut cam = V4lCamera {
            settings: settings.clone(),
            max_w,
            max_h,
            health,
            dev: None,
            last_t_ms: None,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        };
        match open_device(&cam.settings) {
            Ok(d) => cam.dev = Some(d),
            Err(OpenError::Permanent(m)) => {
                return Err(SensorError::Absent {
                    sensor: SENSOR,
                    reason: m,
                });
            }
            Err(OpenError::Transient(m)) => cam.fail(m),
        }
        Ok(cam)
    }

    /// The negotiated format and size, while the device is open.
    pub fn format(&self) -> Option<(PixelFormat, u32, u32)> {
        self.dev.as_ref().map(|d| (d.format, d.width, d.height))
    }

    fn timeout_ms(&self) -> i32 {
        self.settings.frame_timeout_ms.clamp(1, 600_000) as i32
    }

    /// Drops the device, marks the camera degraded and schedules a reopen.
    fn fail(&mut self, reason: String) {
        self.dev = None;
        let retry = self.backoff.failed(Instant::now());
        tracing::warn!(
            sensor = SENSOR,
            device = %self.settings.device.display(),
            reason = %reason,
            retry_in_ms = retry.as_millis() as u64,
            "camera failed"
        );
        self.health.set_degraded(reason);
    }

    fn unavailable(reason: String) -> SensorError {
        SensorError::Unavailable {
            sensor: SENSOR,
            reason,
        }
    }

    fn grab(&mut self, t_ms: i64) -> Result<GrayFrame, GrabError> {
        let timeout = self.timeout_ms();
        let (max_w, max_h) = (self.max_w, self.max_h);
        let Some(dev) = self.dev.as_mut() else {
            return Err(GrabError::Device("the device is closed".into()));
        };
        dev.prepare(self.settings.warmup_frames, timeout)?;
        let (format, w, h, stride) = (dev.format, dev.width, dev.height, dev.stride);
        let mut last = None;
        for _ in 0..CORRUPT_TRIES {
            let decoded = dev.with_next_frame(timeout, |bytes, damaged| {
                if damaged {
                    return Err(FrameError::Damaged);
                }
                decode(format, w, h, stride, bytes, max_w, max_h, t_ms)
            })?;
            match decoded {
                Ok(f) => {
                    return Ok(GrayFrame {
                        exposure: dev.exposure(),
                        ..f
                    });
                }
                Err(e) => {
                    self.health.count("corrupt_frame");
                    tracing::debug!(sensor = SENSOR, error = %e, "corrupt frame skipped");
                    last = Some(e);
                }
            }
        }
        Err(GrabError::Corrupt(last.unwrap_or(FrameError::Damaged)))
    }
}

impl Camera for V4lCamera {
    fn capture(&mut self, t_ms: i64) -> Result<Option<GrayFrame>, SensorError> {
        let idle = self
            .last_t_ms
            .is_some_and(|p| t_ms.saturating_sub(p) > self.settings.idle_close_ms as i64);
        self.last_t_ms = Some(t_ms);
        if self.dev.is_none() {
            if let Some(wait) = self.backoff.remaining(Instant::now()) {
                return Err(Self::unavailable(format!(
                    "reopening in {} ms",
                    wait.as_millis()
                )));
            }
            if self.backoff.retrying() {
                self.health.count("reopen");
            }
            match open_device(&self.settings) {
                Ok(d) => self.dev = Some(d),
                Err(e) => {
                    let m = e.message().to_string();
                    self.fail(m.clone());
                    return Err(Self::unavailable(m));
                }
            }
        }
        let result = self.grab(t_ms);
        if idle {
            tracing::debug!(sensor = SENSOR, "closing the camera until the next capture");
            self.dev = None;
        }
        match result {
            Ok(frame) => {
                self.backoff.succeeded();
                self.health.set_ok();
                Ok(Some(frame))
            }
            Err(GrabError::Corrupt(e)) => {
                let m = format!("{CORRUPT_TRIES} corrupt frames in a row: {e}");
                self.health.set_degraded(m.clone());
                Err(Self::unavailable(m))
            }
            Err(GrabError::Device(m)) => {
                self.health.count("device_error");
                self.fail(m.clone());
                Err(Self::unavailable(m))
            }
        }
    }

    fn blocking(&self) -> bool {
        true
    }

    fn standby(&mut self) {
        // The next capture opens the device; the time off is no reason to
        // close it again after that capture.
        self.last_t_ms = None;
        if self.dev.take().is_some() {
            tracing::debug!(sensor = SENSOR, "camera closed for standby");
        }
    }
}

/// One format a device offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct V4lFormatInfo {
    /// Four-character code (`YUYV`, `MJPG`, ...).
    pub fourcc: String,
    /// The driver's description.
    pub description: String,
    /// Whether the node can use it.
    pub supported: bool,
    /// A few frame sizes (`640x480`, or a range `160x120..1920x1080`).
    pub sizes: Vec<String>,
}

/// One V4L2 device, for `fieldnode probe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct V4lDeviceInfo {
    /// `/dev/videoN`.
    pub path: PathBuf,
    /// Card name.
    pub card: String,
    /// Driver name.
    pub driver: String,
    /// Whether it is a streaming capture device (UVC cameras also create a
    /// metadata node, which is not).
    pub capture: bool,
    /// Formats offered.
    pub formats: Vec<V4lFormatInfo>,
    /// Why it could not be queried.
    pub error: Option<String>,
}

impl V4lDeviceInfo {
    /// One line: card, driver, formats.
    pub fn summary(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        let formats: Vec<String> = self
            .formats
            .iter()
            .map(|f| format!("{} ({})", f.fourcc, f.sizes.join(" ")))
            .collect();
        format!(
            "{} [{}]{}: {}",
            self.card,
            self.driver,
            if self.capture {
                ""
            } else {
                " (not a capture device)"
            },
            if formats.is_empty() {
                "no formats".to_string()
            } else {
                formats.join(", ")
            }
        )
    }
}

/// Sizes shown per format.
const SIZES_SHOWN: usize = 6;

fn describe(path: PathBuf) -> V4lDeviceInfo {
    let mut info = V4lDeviceInfo {
        path,
        card: String::new(),
        driver: String::new(),
        capture: false,
        formats: Vec::new(),
        error: None,
    };
    let device = match guarded("open", || Device::with_path(&info.path)) {
        Ok(d) => d,
        Err(e) => {
            info.error = Some(e);
            return info;
        }
    };
    match guarded("VIDIOC_QUERYCAP", || device.query_caps()) {
        Ok(c) => {
            info.card = c.card;
            info.driver = c.driver;
            info.capture = c.capabilities.contains(CapFlags::VIDEO_CAPTURE)
                && c.capabilities.contains(CapFlags::STREAMING);
        }
        Err(e) => {
            info.error = Some(e);
            return info;
        }
    }
    let formats = guarded("VIDIOC_ENUM_FMT", || device.enum_formats()).unwrap_or_default();
    for d in formats {
        let sizes = guarded("VIDIOC_ENUM_FRAMESIZES", || {
            device.enum_framesizes(d.fourcc)
        })
        .unwrap_or_default();
        let mut shown = Vec::new();
        for s in sizes.into_iter().take(SIZES_SHOWN) {
            shown.push(match s.size {
                FrameSizeEnum::Discrete(d) => format!("{}x{}", d.width, d.height),
                FrameSizeEnum::Stepwise(s) => format!(
                    "{}x{}..{}x{}",
                    s.min_width, s.min_height, s.max_width, s.max_height
                ),
            });
        }
        info.formats.push(V4lFormatInfo {
            fourcc: d.fourcc.to_string(),
            description: d.description,
            supported: matches!(
                PixelFormat::from_fourcc(&d.fourcc.repr),
                Some(PixelFormat::Yuyv | PixelFormat::Mjpeg)
            ),
            sizes: shown,
        });
    }
    info
}

/// Every `/dev/videoN`, with its card, driver and formats; empty when there
/// is none.
pub fn list_devices() -> Vec<V4lDeviceInfo> {
    list_devices_in(Path::new("/dev"))
}

/// Every `videoN` in `dev` (normally `/dev`), by number.
pub fn list_devices_in(dev: &Path) -> Vec<V4lDeviceInfo> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(dev)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name();
                    let n = name.to_str()?.strip_prefix("video")?.parse::<u32>().ok()?;
                    Some((n, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.into_iter().map(|(_, p)| describe(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_defaults_and_toml() {
        let s: CameraDeviceSettings = toml::from_str("").unwrap();
        assert_eq!(s, CameraDeviceSettings::default());
        assert!(s.validate().is_empty());
        assert_eq!(s.pipe_command[0], "rpicam-vid");
        let s: CameraDeviceSettings = toml::from_str(
            "source = \"pipe\"\npixel_format = \"mjpeg\"\nwidth = 320\nheight = 240\npipe_command = [\"sh\", \"-c\", \"cat f\"]",
        )
        .unwrap();
        assert_eq!(s.source, CameraSource::Pipe);
        assert_eq!(s.pixel_format, PixelFormatChoice::Mjpeg);
        assert!(s.validate().is_empty());
        assert!(toml::from_str::<CameraDeviceSettings>("source = \"usb\"").is_err());
    }

    #[test]
    fn settings_are_validated() {
        let s = CameraDeviceSettings {
            width: 641,
            height: 0,
            frame_timeout_ms: 5,
            ..Default::default()
        };
        let keys: Vec<String> = s.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["width", "height", "frame_timeout_ms"]);
        // The pipe's command must agree with the size.
        let s = CameraDeviceSettings {
            source: CameraSource::Pipe,
            width: 320,
            height: 240,
            ..Default::default()
        };
        let e = s.validate();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].1.contains("--width 640"), "{e:?}");
        let s = CameraDeviceSettings {
            source: CameraSource::Pipe,
            pipe_command: vec![],
            ..Default::default()
        };
        assert_eq!(s.validate()[0].0, "pipe_command");
        let mut argv = default_pipe_command();
        argv[5] = "mjpeg".into();
        let s = CameraDeviceSettings {
            source: CameraSource::Pipe,
            pipe_command: argv,
            ..Default::default()
        };
        assert!(s.validate()[0].1.contains("yuv420"));
        // The exposure is read from txt metadata only.
        let mut argv = default_pipe_command();
        let i = argv.iter().position(|a| a == "txt").unwrap();
        argv[i] = "json".into();
        let s = CameraDeviceSettings {
            source: CameraSource::Pipe,
            pipe_command: argv,
            ..Default::default()
        };
        let e = s.validate();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].1.contains("--metadata-format json"), "{e:?}");
        let s = CameraDeviceSettings {
            source: CameraSource::Pipe,
            ..Default::default()
        };
        assert_eq!(s.validate(), vec![], "the default command is valid");
    }

    #[test]
    fn backoff_doubles_to_the_maximum_and_resets() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        assert!(!b.retrying());
        assert_eq!(b.remaining(t0), None);
        let waits: Vec<u64> = (0..8).map(|_| b.failed(t0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert!(b.retrying());
        assert_eq!(b.remaining(t0), Some(Duration::from_secs(60)));
        assert_eq!(b.remaining(t0 + Duration::from_secs(61)), None);
        b.succeeded();
        assert_eq!(b.failed(t0).as_secs(), 1);
    }

    #[test]
    fn padded_yuyv_rows_are_decoded() {
        // 4x2 YUYV with rows padded to 12 bytes.
        let rows = [
            [10u8, 0, 20, 0, 30, 0, 40, 0, 9, 9, 9, 9],
            [50, 0, 60, 0, 70, 0, 80, 0, 9, 9, 9, 9],
        ];
        let bytes: Vec<u8> = rows.concat();
        let f = decode(PixelFormat::Yuyv, 4, 2, 12, &bytes, 80, 60, 5).unwrap();
        assert_eq!(f.luma, [10, 20, 30, 40, 50, 60, 70, 80]);
        // Unpadded, with the driver reporting more bytes than a frame.
        let mut bytes: Vec<u8> = rows.iter().flat_map(|r| r[..8].to_vec()).collect();
        bytes.extend([0u8; 8]);
        let f = decode(PixelFormat::Yuyv, 4, 2, 8, &bytes, 80, 60, 5).unwrap();
        assert_eq!(f.luma, [10, 20, 30, 40, 50, 60, 70, 80]);
        assert!(decode(PixelFormat::Yuyv, 4, 2, 12, &bytes[..10], 80, 60, 5).is_err());
    }

    #[test]
    fn no_video_devices_is_an_empty_list() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("null"), b"").unwrap();
        std::fs::write(dir.path().join("videox"), b"").unwrap();
        assert!(list_devices_in(dir.path()).is_empty());
        assert!(list_devices_in(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn a_file_that_is_not_a_device_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("video3"), b"").unwrap();
        let found = list_devices_in(dir.path());
        assert_eq!(found.len(), 1);
        assert!(!found[0].capture);
        assert!(found[0].error.is_some(), "{:?}", found[0]);
    }

    #[test]
    fn a_missing_device_is_absent() {
        let settings = CameraDeviceSettings {
            device: "/nonexistent/video9".into(),
            ..Default::default()
        };
        let r = V4lCamera::open(&settings, 80, 60, HealthHandle::detached("camera"));
        assert!(matches!(r, Err(SensorError::Absent { .. })));
        // A regular file opens but is not a capture device.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("video0");
        std::fs::write(&path, b"").unwrap();
        let settings = CameraDeviceSettings {
            device: path,
            ..Default::default()
        };
        let r = V4lCamera::open(&settings, 80, 60, HealthHandle::detached("camera"));
        match r {
            Err(SensorError::Absent { reason, .. }) => {
                assert!(reason.contains("not a V4L2 device"))
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("a regular file opened as a camera"),
        }
    }
}
