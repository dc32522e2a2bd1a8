//! The microphone through cpal's ALSA host, with a watchdog.
//!
//! A capture thread owns the cpal stream (cpal streams stay on the thread
//! that built them, and opening an ALSA device may block). The audio
//! callback converts samples to `f32` and pushes whole frames into a
//! lock-free ring ([`rtrb`]): it never blocks and never allocates; frames
//! that do not fit are dropped and counted (an overrun).
//!
//! The tokio side ([`AlsaMicrophone::next_chunk`]) drains the ring, converts
//! to the pipeline's mono rate ([`MonoConverter`]) and watches the stream: a
//! stream that reports an error, stops delivering for `stall_ms`, or delivers
//! digital silence (every sample exactly zero) for `silence_ms` is dropped
//! and reopened with exponential backoff. Meanwhile the microphone's health
//! is degraded (with the reason) and `next_chunk` returns
//! [`SensorError::Unavailable`], so detection goes on without audio. A
//! capture thread stuck in the driver is abandoned, not waited for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use fusion::AudioChunk;
use serde::{Deserialize, Serialize};

use super::audio_convert::MonoConverter;
use super::health::HealthHandle;
use super::{Microphone, SensorError};
use crate::clock::Clock;

/// `[audio.device]`: which capture device and how to watch it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MicSettings {
    /// `default` (the system's default input), a cpal device id such as
    /// `alsa:hw:CARD=Device,DEV=0`, or a part of a device's name.
    pub name: String,
    /// Rate to open the device at, Hz; 0 = the pipeline rate if the device
    /// offers it, else the device's default rate.
    pub rate_hz: u32,
    /// Channels to open; 0 = the device's default.
    pub channels: u16,
    /// Ring buffer between the audio callback and the pipeline, ms.
    pub buffer_ms: u32,
    /// A stream that delivers nothing for this long is reopened, ms.
    pub stall_ms: u64,
    /// A stream that delivers only zeros for this long is reopened, ms.
    pub silence_ms: u64,
    /// First wait before reopening, ms; doubles up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    /// Longest wait between reopen attempts, ms.
    pub backoff_max_ms: u64,
    /// An open that has not finished after this long is abandoned (its
    /// thread is left blocked in the driver) and retried later, ms.
    pub open_timeout_ms: u64,
}

impl Default for MicSettings {
    fn default() -> Self {
        MicSettings {
            name: "default".into(),
            rate_hz: 0,
            channels: 0,
            buffer_ms: 2000,
            stall_ms: 2000,
            silence_ms: 30_000,
            backoff_initial_ms: 1000,
            backoff_max_ms: 60_000,
            open_timeout_ms: 5_000,
        }
    }
}

impl MicSettings {
    /// Problems, as (key under `audio.device`, message).
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        let mut bad = |k: &str, m: &str| e.push((k.to_string(), m.to_string()));
        if self.name.trim().is_empty() {
            bad("name", "must not be empty (use \"default\")");
        }
        if self.rate_hz != 0 && !(4_000..=384_000).contains(&self.rate_hz) {
            bad("rate_hz", "must be 0 or between 4000 and 384000 Hz");
        }
        if self.channels > 32 {
            bad("channels", "must be between 0 and 32");
        }
        if !(100..=60_000).contains(&self.buffer_ms) {
            bad("buffer_ms", "must be between 100 and 60000 ms");
        }
        if self.stall_ms < 100 {
            bad("stall_ms", "must be at least 100 ms");
        }
        if self.silence_ms < 100 {
            bad("silence_ms", "must be at least 100 ms");
        }
        if self.backoff_initial_ms == 0 || self.backoff_initial_ms > self.backoff_max_ms {
            bad(
                "backoff_initial_ms",
                "must be at least 1 ms and at most backoff_max_ms",
            );
        }
        if !(100..=600_000).contains(&self.open_timeout_ms) {
            bad("open_timeout_ms", "must be between 100 and 600000 ms");
        }
        e
    }
}

/// What the callback and the tokio side share.
#[derive(Debug, Default)]
struct Shared {
    /// Frames the callback delivered into the ring.
    frames: AtomicU64,
    /// Frames dropped because the ring was full.
    dropped: AtomicU64,
    /// Set by the error callback.
    failed: AtomicBool,
    error: Mutex<Option<String>>,
}

/// An open stream: its thread, the ring's consumer side, the format.
struct Capture {
    consumer: rtrb::Consumer<f32>,
    shared: Arc<Shared>,
    stop: std::sync::mpsc::Sender<()>,
    /// Set when its thread has ended (the stream closed).
    ended: Arc<AtomicBool>,
    channels: u16,
    rate: u32,
}

impl Drop for Capture {
    fn drop(&mut self) {
        // The thread drops the stream and exits; not joined (it may be stuck
        // in the driver, and a stuck thread must not stop the node).
        let _ = self.stop.send(());
    }
}

/// A capture thread that is opening the device. The tokio side polls it and
/// never waits on it: opening an ALSA device can block for good (a FIFO
/// without a writer, a USB device half gone).
struct Opening {
    ready: std::sync::mpsc::Receiver<Result<(u16, u32), String>>,
    consumer: std::sync::mpsc::Receiver<rtrb::Consumer<f32>>,
    shared: Arc<Shared>,
    stop: std::sync::mpsc::Sender<()>,
    /// Set when the thread has ended.
    ended: Arc<AtomicBool>,
}

impl Opening {
    /// `None` while the open is still going on.
    fn poll(&mut self) -> Option<Result<Capture, String>> {
        use std::sync::mpsc::TryRecvError;
        match self.ready.try_recv() {
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(
                "the capture thread ended before the stream opened".into(),
            )),
            Ok(Err(e)) => Some(Err(e)),
            Ok(Ok((channels, rate))) => Some(self.finish(channels, rate)),
        }
    }

    /// Waits up to `timeout` for the open to finish (at start-up, before
    /// the event loop runs). `Err(None)` = still blocked.
    fn wait(&mut self, timeout: std::time::Duration) -> Result<Capture, Option<String>> {
        use std::sync::mpsc::RecvTimeoutError;
        match self.ready.recv_timeout(timeout) {
            Err(RecvTimeoutError::Timeout) => Err(None),
            Err(RecvTimeoutError::Disconnected) => Err(Some(
                "the capture thread ended before the stream opened".into(),
            )),
            Ok(Err(e)) => Err(Some(e)),
            Ok(Ok((channels, rate))) => self.finish(channels, rate).map_err(Some),
        }
    }

    fn finish(&mut self, channels: u16, rate: u32) -> Result<Capture, String> {
        // Sent before `ready`, so it is already there.
        let consumer = self
            .consumer
            .try_recv()
            .map_err(|_| "the capture thread ended before the stream opened".to_string())?;
        Ok(Capture {
            consumer,
            shared: self.shared.clone(),
            stop: self.stop.clone(),
            ended: self.ended.clone(),
            channels,
            rate,
        })
    }
}

/// Marks the capture thread ended when dropped (last thing it owns).
struct Ended(Arc<AtomicBool>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Finds the configured input device.
pub fn find_device(host: &cpal::Host, name: &str) -> Result<cpal::Device, String> {
    if name == "default" {
        return host
            .default_input_device()
            .ok_or_else(|| "no default audio input device".to_string());
    }
    if let Ok(id) = name.parse::<cpal::DeviceId>()
        && let Some(d) = host.device_by_id(&id)
    {
        return Ok(d);
    }
    let devices = host
        .input_devices()
        .map_err(|e| format!("cannot list audio inputs: {e}"))?;
    for d in devices {
        let label = d.description().map(|x| x.name().to_string());
        let id = d.id().map(|x| x.to_string());
        if label.as_deref().is_ok_and(|l| l.contains(name))
            || id.as_deref().is_ok_and(|i| i.contains(name))
        {
            return Ok(d);
        }
    }
    Err(format!("no audio input matches {name:?}"))
}

/// Chooses the stream configuration: the configured rate and channels, else
/// the pipeline rate if offered, else the device's default.
fn choose_config(
    device: &cpal::Device,
    s: &MicSettings,
    pipeline_rate: u32,
) -> Result<cpal::SupportedStreamConfig, String> {
    let default = device
        .default_input_config()
        .map_err(|e| format!("no input configuration: {e}"))?;
    let want_rate = if s.rate_hz != 0 {
        s.rate_hz
    } else {
        pipeline_rate
    };
    let want_ch = if s.channels != 0 {
        s.channels
    } else {
        default.channels()
    };
    let ranges: Vec<_> = device
        .supported_input_configs()
        .map_err(|e| format!("cannot list input configurations: {e}"))?
        .collect();
    let fits = |r: &cpal::SupportedStreamConfigRange, ch: u16| {
        r.channels() == ch
            && (r.min_sample_rate()..=r.max_sample_rate()).contains(&want_rate)
            && matches!(
                r.sample_format(),
                cpal::SampleFormat::I16 | cpal::SampleFormat::I32 | cpal::SampleFormat::F32
            )
    };
    // 16-bit first: what most microphones deliver natively, and what a raw
    // replay file holds.
    let rank = |r: &cpal::SupportedStreamConfigRange| match r.sample_format() {
        cpal::SampleFormat::I16 => 0,
        cpal::SampleFormat::I32 => 1,
        _ => 2,
    };
    if let Some(r) = ranges
        .iter()
        .filter(|r| fits(r, want_ch))
        .min_by_key(|r| rank(r))
    {
        return Ok((*r).with_sample_rate(want_rate));
    }
    if s.rate_hz != 0 || s.channels != 0 {
        return Err(format!(
            "the device does not offer {want_ch} channel(s) at {want_rate} Hz"
        ));
    }
    Ok(default)
}

fn push_frames<T: Copy>(
    data: &[T],
    ch: usize,
    to_f32: impl Fn(T) -> f32,
    producer: &mut rtrb::Producer<f32>,
    shared: &Shared,
) {
    let frames = data.len() / ch;
    let fit = (producer.slots() / ch).min(frames);
    if let Ok(chunk) = producer.write_chunk_uninit(fit * ch) {
        chunk.fill_from_iter(data[..fit * ch].iter().map(|&x| to_f32(x)));
    }
    shared.frames.fetch_add(fit as u64, Ordering::Relaxed);
    if fit < frames {
        shared
            .dropped
            .fetch_add((frames - fit) as u64, Ordering::Relaxed);
    }
}

/// Starts a capture thread that opens the device and plays the stream; the
/// result arrives through the returned [`Opening`].
fn open_capture(s: &MicSettings, pipeline_rate: u32) -> Result<Opening, String> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(u16, u32), String>>();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (cons_tx, cons_rx) = std::sync::mpsc::channel::<rtrb::Consumer<f32>>();
    let shared = Arc::new(Shared::default());
    let settings = s.clone();
    let sh = shared.clone();
    let ended = Arc::new(AtomicBool::new(false));
    let ended_guard = Ended(ended.clone());
    std::thread::Builder::new()
        .name("audio-capture".into())
        .spawn(move || {
            let _ended = ended_guard;
            let built = (|| {
                let host = cpal::host_from_id(cpal::HostId::Alsa)
                    .map_err(|e| format!("ALSA host unavailable: {e}"))?;
                let device = find_device(&host, &settings.name)?;
                let sc = choose_config(&device, &settings, pipeline_rate)?;
                let config = sc.config();
                let ch = usize::from(config.channels.max(1));
                let cap = (u64::from(config.sample_rate) * u64::from(settings.buffer_ms) / 1000)
                    as usize
                    * ch;
                let (mut producer, consumer) = rtrb::RingBuffer::<f32>::new(cap.max(ch * 64));
                let sh2 = sh.clone();
                let on_error = move |e: cpal::Error| {
                    sh2.failed.store(true, Ordering::Relaxed);
                    if let Ok(mut g) = sh2.error.lock() {
                        *g = Some(e.to_string());
                    }
                };
                let sh3 = sh.clone();
                let stream = match sc.sample_format() {
                    cpal::SampleFormat::I16 => device.build_input_stream::<i16, _, _>(
                        config,
                        move |d: &[i16], _: &cpal::InputCallbackInfo| {
                            push_frames(d, ch, |x| f32::from(x) / 32768.0, &mut producer, &sh3)
                        },
                        on_error,
                        None,
                    ),
                    cpal::SampleFormat::I32 => device.build_input_stream::<i32, _, _>(
                        config,
                        move |d: &[i32], _: &cpal::InputCallbackInfo| {
                            push_frames(d, ch, |x| x as f32 / 2_147_483_648.0, &mut producer, &sh3)
                        },
                        on_error,
                        None,
                    ),
                    cpal::SampleFormat::F32 => device.build_input_stream::<f32, _, _>(
                        config,
                        move |d: &[f32], _: &cpal::InputCallbackInfo| {
                            push_frames(d, ch, |x| x, &mut producer, &sh3)
                        },
                        on_error,
                        None,
                    ),
                    other => return Err(format!("unsupported sample format {other}")),
                }
                .map_err(|e| format!("cannot open the input stream: {e}"))?;
                stream
                    .play()
                    .map_err(|e| format!("cannot start the input stream: {e}"))?;
                Ok((stream, consumer, config.channels, config.sample_rate))
            })();
            match built {
                Ok((stream, consumer, ch, rate)) => {
                    let _ = cons_tx.send(consumer);
                    let _ = ready_tx.send(Ok((ch, rate)));
                    // Until told to stop (or the microphone is gone).
                    let _ = stop_rx.recv();
                    drop(stream);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })
        .map_err(|e| format!("cannot start the capture thread: {e}"))?;
    Ok(Opening {
        ready: ready_rx,
        consumer: cons_rx,
        shared,
        stop: stop_tx,
        ended,
    })
}

/// The microphone: a watched ALSA capture stream delivering mono chunks at
/// the pipeline rate.
pub struct AlsaMicrophone {
    settings: MicSettings,
    rate: u32,
    chunk: usize,
    clock: Arc<dyn Clock>,
    health: HealthHandle,
    capture: Option<(Capture, MonoConverter)>,
    /// An open in progress, with the clock time it started.
    opening: Option<(Opening, i64)>,
    /// Whether the last capture thread (a dropped stream, or an abandoned
    /// open) has ended. No other open starts until it has: one thread at
    /// most is ever left blocked in the driver, however long it hangs.
    last_thread: Option<Arc<AtomicBool>>,
    /// Time of the next output sample, once anchored to the clock.
    next_ms: Option<f64>,
    /// Delivered-frame count, drop count and clock time at the last check.
    seen_frames: u64,
    seen_dropped: u64,
    last_data_ms: i64,
    /// Device frames of continuous digital silence so far.
    silent_frames: u64,
    /// When to try opening again, and the current backoff.
    retry_at_ms: i64,
    backoff_ms: u64,
    scratch: Vec<f32>,
    /// Paused: no stream until the next `next_chunk`.
    paused: bool,
}

impl AlsaMicrophone {
    /// Opens the configured device for mono chunks of `chunk_ms` at `rate`
    /// Hz. A device that cannot be found or opened is an error here (the
    /// node then runs without audio); later failures are handled by the
    /// watchdog.
    pub fn open(
        settings: MicSettings,
        rate: u32,
        chunk_ms: u32,
        clock: Arc<dyn Clock>,
        health: HealthHandle,
    ) -> Result<Self, SensorError> {
        let mut mic = AlsaMicrophone {
            rate,
            chunk: (u64::from(rate) * u64::from(chunk_ms) / 1000).max(1) as usize,
            backoff_ms: settings.backoff_initial_ms,
            settings,
            clock,
            health,
            capture: None,
            opening: None,
            last_thread: None,
            next_ms: None,
            seen_frames: 0,
            seen_dropped: 0,
            last_data_ms: 0,
            silent_frames: 0,
            retry_at_ms: 0,
            scratch: Vec::new(),
            paused: false,
        };
        let timeout = std::time::Duration::from_millis(mic.settings.open_timeout_ms);
        let absent = |reason: String| SensorError::Absent {
            sensor: "audio",
            reason,
        };
        let mut opening = open_capture(&mic.settings, mic.rate).map_err(absent)?;
        match opening.wait(timeout) {
            Ok(cap) => mic.install(cap).map_err(absent)?,
            Err(Some(reason)) => return Err(absent(reason)),
            Err(None) => {
                return Err(absent(format!(
                    "opening the device did not finish within {} ms",
                    mic.settings.open_timeout_ms
                )));
            }
        }
        Ok(mic)
    }

    /// Takes an opened stream into use.
    fn install(&mut self, cap: Capture) -> Result<(), String> {
        let conv =
            MonoConverter::new(cap.channels, cap.rate, self.rate).map_err(|e| e.to_string())?;
        tracing::info!(
            device = %self.settings.name,
            channels = cap.channels,
            rate_hz = cap.rate,
            "microphone open"
        );
        self.capture = Some((cap, conv));
        self.next_ms = None;
        self.seen_frames = 0;
        self.seen_dropped = 0;
        self.silent_frames = 0;
        self.last_data_ms = self.clock.now_ms();
        Ok(())
    }

    /// Drives a reopen without ever waiting on the driver: starts one when
    /// it is due, and checks on one in progress. `Ok(true)` = the stream is
    /// open again; `Ok(false)` = still opening.
    fn drive_reopen(&mut self) -> Result<bool, SensorError> {
        let now = self.clock.now_ms();
        if self.opening.is_none() {
            if let Some(ended) = &self.last_thread {
                if !ended.load(Ordering::Relaxed) {
                    return Err(self.fail(
                        "open",
                        "the previous stream is still blocked in the driver".into(),
                    ));
                }
                self.last_thread = None;
            }
            match open_capture(&self.settings, self.rate) {
                Ok(o) => self.opening = Some((o, now)),
                Err(reason) => return Err(self.fail("open", format!("cannot reopen: {reason}"))),
            }
        }
        let Some((opening, started_ms)) = self.opening.as_mut() else {
            return Ok(false);
        };
        match opening.poll() {
            Some(Ok(cap)) => {
                self.opening = None;
                if let Err(reason) = self.install(cap) {
                    return Err(self.fail("open", format!("cannot reopen: {reason}")));
                }
                Ok(true)
            }
            Some(Err(reason)) => {
                self.opening = None;
                Err(self.fail("open", format!("cannot reopen: {reason}")))
            }
            None if now - *started_ms >= self.settings.open_timeout_ms as i64 => {
                let waited = now - *started_ms;
                if let Some((o, _)) = self.opening.take() {
                    self.last_thread = Some(o.ended.clone());
                }
                Err(self.fail(
                    "open_timeout",
                    format!("reopening did not finish within {waited} ms; the open is abandoned"),
                ))
            }
            None => Ok(false),
        }
    }

    /// Drops the stream and schedules a reopen; returns the error to report.
    fn fail(&mut self, kind: &'static str, reason: String) -> SensorError {
        if let Some((cap, _)) = self.capture.take() {
            // Told to stop; its thread may stay in the driver a while.
            self.last_thread = Some(cap.ended.clone());
        }
        self.health.count(kind);
        self.health.set_degraded(reason.clone());
        let now = self.clock.now_ms();
        self.retry_at_ms = now + self.backoff_ms as i64;
        tracing::warn!(sensor = "audio", kind, reason = %reason, retry_in_ms = self.backoff_ms, "microphone stream dropped");
        self.backoff_ms = (self.backoff_ms * 2).min(self.settings.backoff_max_ms);
        SensorError::Unavailable {
            sensor: "audio",
            reason,
        }
    }

    /// Overruns seen: the looks at the ring that found frames dropped by
    /// the callback because it was full (the frames are in the log).
    pub fn overruns(&self) -> u64 {
        self.health.errors("overrun")
    }

    /// Moves what the callback delivered into the converter; checks the
    /// stream's health. `Err` = the stream was dropped.
    fn pump(&mut self) -> Result<(), SensorError> {
        let now = self.clock.now_ms();
        let Some((cap, conv)) = self.capture.as_mut() else {
            return Ok(());
        };
        if cap.shared.failed.load(Ordering::Relaxed) {
            let msg = cap
                .shared
                .error
                .lock()
                .ok()
                .and_then(|g| g.clone())
                .unwrap_or_else(|| "stream error".into());
            return Err(self.fail("stream_error", format!("stream error: {msg}")));
        }
        let n = cap.consumer.slots();
        self.scratch.clear();
        if let Ok(chunk) = cap.consumer.read_chunk(n) {
            let (a, b) = chunk.as_slices();
            self.scratch.extend_from_slice(a);
            self.scratch.extend_from_slice(b);
            chunk.commit_all();
        }
        let frames = cap.shared.frames.load(Ordering::Relaxed);
        let dropped = cap.shared.dropped.load(Ordering::Relaxed);
        let (ch, rate) = (usize::from(cap.channels.max(1)), cap.rate);
        if dropped > self.seen_dropped {
            // One overrun per look that found frames dropped, however many
            // (a device that delivers faster than real time drops millions).
            self.health.count("overrun");
            tracing::warn!(
                sensor = "audio",
                frames = dropped - self.seen_dropped,
                "audio overrun: frames dropped"
            );
            self.seen_dropped = dropped;
            // Time is no longer contiguous: anchor again.
            self.next_ms = None;
        }
        if frames > self.seen_frames || !self.scratch.is_empty() {
            self.seen_frames = frames;
            self.last_data_ms = now;
        } else if now - self.last_data_ms >= self.settings.stall_ms as i64 {
            let ms = now - self.last_data_ms;
            return Err(self.fail("stall", format!("no audio for {ms} ms")));
        }
        if !self.scratch.is_empty() {
            // The longest run of all-zero frames, carried across reads.
            let limit = self.settings.silence_ms * u64::from(rate) / 1000;
            let mut longest = 0;
            for frame in self.scratch.chunks_exact(ch) {
                if frame.iter().all(|&x| x == 0.0) {
                    self.silent_frames += 1;
                    longest = longest.max(self.silent_frames);
                } else {
                    self.silent_frames = 0;
                }
            }
            if self.next_ms.is_none() {
                // The oldest sample just read was recorded this long ago.
                let buffered_ms = (self.scratch.len() / ch) as f64 * 1000.0 / f64::from(rate)
                    + conv.ready() as f64 * 1000.0 / f64::from(self.rate);
                self.next_ms = Some(now as f64 - buffered_ms);
            }
            conv.push(&self.scratch);
            if longest >= limit.max(1) {
                let s = longest * 1000 / u64::from(rate.max(1));
                return Err(self.fail("silence", format!("digital silence for {s} ms")));
            }
        }
        Ok(())
    }
}

impl Microphone for AlsaMicrophone {
    async fn next_chunk(&mut self) -> Result<Option<AudioChunk>, SensorError> {
        let poll_ms = (self.chunk as u64 * 1000 / u64::from(self.rate.max(1)) / 4).clamp(5, 100);
        if self.paused {
            self.paused = false;
            // The stream closed by the pause: its thread ends within a few
            // milliseconds unless the driver holds it.
            let deadline = self.clock.now_ms() + self.settings.open_timeout_ms as i64;
            while self
                .last_thread
                .as_ref()
                .is_some_and(|ended| !ended.load(Ordering::Relaxed))
                && self.clock.now_ms() < deadline
            {
                let next = self.clock.now_ms() + poll_ms as i64;
                self.clock.sleep_until(next).await;
            }
            self.retry_at_ms = self.clock.now_ms();
            tracing::debug!(sensor = "audio", "microphone capture resumed");
        }
        loop {
            if self.capture.is_none() {
                if self.opening.is_none() {
                    self.clock.sleep_until(self.retry_at_ms).await;
                }
                if !self.drive_reopen()? {
                    let next = self.clock.now_ms() + poll_ms as i64;
                    self.clock.sleep_until(next).await;
                    continue;
                }
            }
            self.pump()?;
            if let Some((_, conv)) = self.capture.as_mut()
                && let Some(samples) = conv.take(self.chunk)
            {
                let start = self.next_ms.unwrap_or(self.clock.now_ms() as f64);
                self.next_ms = Some(start + samples.len() as f64 * 1000.0 / f64::from(self.rate));
                // Recovered once real sound flows again: exact zeros are
                // what a dead microphone delivers, never a quiet place.
                if !self.health.is_ok() && samples.iter().any(|&x| x != 0.0) {
                    self.health.set_ok();
                    self.backoff_ms = self.settings.backoff_initial_ms;
                }
                return Ok(Some(AudioChunk {
                    start_ms: start.round() as i64,
                    sample_rate: self.rate,
                    samples,
                }));
            }
            let next = self.clock.now_ms() + poll_ms as i64;
            self.clock.sleep_until(next).await;
        }
    }

    fn pause(&mut self) {
        if let Some((cap, _)) = self.capture.take() {
            // Dropping it tells its thread to drop the stream.
            self.last_thread = Some(cap.ended.clone());
        }
        if let Some((opening, _)) = self.opening.take() {
            // Its stop channel closes with it: the thread drops the stream
            // as soon as the open finishes.
            self.last_thread = Some(opening.ended.clone());
        }
        self.next_ms = None;
        self.paused = true;
        tracing::debug!(sensor = "audio", "microphone capture stopped");
    }
}
