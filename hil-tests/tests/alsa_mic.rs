//! The microphone driver through the real ALSA stack: the ALSA `file` plugin
//! turns a raw PCM file (or a FIFO) into a capture device, and cpal opens it
//! like a sound card (`../shared/guide/hardware-without-hardware.md`).
//!
//! ALSA reads its configuration once per process, so every device these
//! tests use is defined in one `asound.conf`, written before the first test
//! touches ALSA. The `null` slave has no clock: capture runs as fast as the
//! ring takes it, so tests read exactly the file's length.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use node::clock::SystemClock;
use node::sensors::Microphone;
use node::sensors::alsa_mic::{AlsaMicrophone, MicSettings};
use node::sensors::health::HealthHandle;

struct Devices {
    _dir: tempfile::TempDir,
    fifo: PathBuf,
    /// A second live source, for the pause test (tests run in parallel).
    fifo_pause: PathBuf,
}

const RAMP_LEN: usize = 16_000;

fn ramp() -> Vec<i16> {
    (0..RAMP_LEN)
        .map(|i| ((i * 7919) % 65_536) as i32 - 32_768)
        .map(|x| x as i16)
        .collect()
}

fn tone_48k_stereo(seconds: f32, hz: f32) -> Vec<i16> {
    let n = (48_000.0 * seconds) as usize;
    (0..n)
        .flat_map(|i| {
            let x = (0.4 * (2.0 * std::f32::consts::PI * hz * i as f32 / 48_000.0).sin() * 32767.0)
                as i16;
            [x, x]
        })
        .collect()
}

fn write_raw(path: &Path, samples: &[i16]) {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn pcm(name: &str, infile: &Path) -> String {
    format!(
        "pcm.{name} {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n",
        infile.display()
    )
}

/// Writes the test devices and points ALSA at them (once per process).
fn devices() -> &'static Devices {
    static D: OnceLock<Devices> = OnceLock::new();
    D.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let ramp_path = dir.path().join("ramp.raw");
        write_raw(&ramp_path, &ramp());
        let tone_path = dir.path().join("tone.raw");
        write_raw(&tone_path, &tone_48k_stereo(2.0, 1000.0));
        let fifo = dir.path().join("live.fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let fifo_pause = dir.path().join("pause.fifo");
        nix::unistd::mkfifo(&fifo_pause, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let conf = dir.path().join("asound.conf");
        let mut text = String::new();
        text += &pcm("ramp", &ramp_path);
        text += &pcm("tone", &tone_path);
        text += &pcm("live", &fifo);
        text += &pcm("paused", &fifo_pause);

        std::fs::write(&conf, text).unwrap();
        // SAFETY: set before any thread of this test process uses ALSA, and
        // never changed afterwards.
        unsafe {
            std::env::set_var(
                "ALSA_CONFIG_PATH",
                format!("/usr/share/alsa/alsa.conf:{}", conf.display()),
            )
        };
        Devices {
            _dir: dir,
            fifo,
            fifo_pause,
        }
    })
}

fn settings(name: &str, rate: u32, channels: u16) -> MicSettings {
    MicSettings {
        name: format!("alsa:{name}"),
        rate_hz: rate,
        channels,
        buffer_ms: 4000,
        stall_ms: 600,
        silence_ms: 400,
        backoff_initial_ms: 200,
        backoff_max_ms: 400,
        // Generous: on a loaded machine the FIFO device's open (several
        // opens of the FIFO while cpal probes its formats) can take seconds,
        // and an abandoned open that got its data would then block in the
        // FIFO's read while the test's writer holds it.
        open_timeout_ms: 30_000,
    }
}

async fn read_n(mic: &mut AlsaMicrophone, n: usize) -> Vec<f32> {
    let mut got = Vec::new();
    while got.len() < n {
        match mic.next_chunk().await {
            Ok(Some(c)) => got.extend(c.samples),
            other => panic!("microphone stopped early: {other:?}"),
        }
    }
    got.truncate(n);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_arrive_intact() {
    devices();
    let health = HealthHandle::detached("audio");
    let mut mic = AlsaMicrophone::open(
        settings("ramp", 16_000, 1),
        16_000,
        100,
        Arc::new(SystemClock),
        health.clone(),
    )
    .unwrap();
    let got = read_n(&mut mic, RAMP_LEN).await;
    let want: Vec<f32> = ramp().iter().map(|&s| f32::from(s) / 32768.0).collect();
    let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(wrong, 0, "{wrong} of {RAMP_LEN} samples differ");
    assert!(health.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversion_keeps_a_tones_frequency() {
    devices();
    let mut mic = AlsaMicrophone::open(
        settings("tone", 48_000, 2),
        16_000,
        250,
        Arc::new(SystemClock),
        HealthHandle::detached("audio"),
    )
    .unwrap();
    // 1.5 s of the 2 s file, at 16 kHz mono.
    let got = read_n(&mut mic, 24_000).await;
    let steady = &got[1_600..];
    let ups = steady
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    let hz = ups as f64 * 16_000.0 / steady.len() as f64;
    assert!((hz - 1000.0).abs() < 5.0, "tone came out at {hz} Hz");
    let rms = (steady.iter().map(|x| x * x).sum::<f32>() / steady.len() as f32).sqrt();
    let want = 0.4 / std::f32::consts::SQRT_2;
    assert!((rms - want).abs() < 0.02, "rms {rms}, expected {want}");
}

/// A live source on the FIFO, from a thread: whenever a reader has it open,
/// streams `samples` (16 kHz mono) over and over at the pace of a real
/// microphone, at most [`LIVE_AHEAD_S`] ahead of real time (the device
/// reads as fast as data comes, so an unpaced source would outrun the
/// capture ring whenever the test's reader is slow: an overrun); when the
/// reader goes, waits for the next one. Until told to stop.
const LIVE_AHEAD_S: f64 = 0.5;

fn stream_fifo(
    fifo: PathBuf,
    samples: Vec<i16>,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    stream_fifo_counting(fifo, samples, Arc::default(), Arc::default())
}

/// [`stream_fifo`], counting in `gone` the times the reader went (the
/// write failing with EPIPE: the reading end was closed). While `quiet` is
/// set it writes nothing but keeps the FIFO open, so the capture stalls.
fn stream_fifo_counting(
    fifo: PathBuf,
    samples: Vec<i16>,
    gone: Arc<std::sync::atomic::AtomicU64>,
    quiet: Arc<std::sync::atomic::AtomicBool>,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    use std::os::unix::fs::OpenOptionsExt;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let pause = std::time::Duration::from_millis(20);
        let mut out: Option<std::fs::File> = None;
        let mut at = 0;
        // Since the reader opened it: when, and the bytes written.
        let mut since = std::time::Instant::now();
        let mut sent = 0u64;
        while stopped.try_recv().is_err() {
            let Some(f) = out.as_mut() else {
                // Non-blocking: fails (ENXIO) while no reader has it open.
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(&fifo)
                {
                    Ok(f) => {
                        out = Some(f);
                        since = std::time::Instant::now();
                        sent = 0;
                    }
                    Err(_) => std::thread::sleep(pause),
                }
                continue;
            };
            let due = (since.elapsed().as_secs_f64() + LIVE_AHEAD_S) * 16_000.0 * 2.0;
            if quiet.load(std::sync::atomic::Ordering::Relaxed) || sent as f64 >= due {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            let end = (at + 3_200).min(bytes.len());
            match f.write(&bytes[at..end]) {
                Ok(n) => {
                    at = (at + n) % bytes.len();
                    sent += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(pause),
                // The reader went (EPIPE): wait for the next one.
                Err(_) => {
                    gone.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    out = None;
                }
            }
        }
    });
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_reopens_a_stream_that_stops() {
    let d = devices();
    let tone: Vec<i16> = (0..16_000)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    // A live source until a second of audio has arrived, then it goes
    // quiet (no data at all) while holding the FIFO open. Live rather than
    // one second written once: cpal probing the device opens the FIFO
    // several times, and a probe that read the only second would leave the
    // real stream short of it.
    let quiet = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (close, writer) =
        stream_fifo_counting(d.fifo.clone(), tone.clone(), Arc::default(), quiet.clone());
    let health = HealthHandle::detached("audio");
    let mut s = settings("live", 16_000, 1);
    s.silence_ms = 60_000;
    let mut mic =
        AlsaMicrophone::open(s, 16_000, 100, Arc::new(SystemClock), health.clone()).unwrap();
    let first = read_n(&mut mic, 16_000).await;
    assert!(first.iter().any(|&x| x != 0.0));
    quiet.store(true, std::sync::atomic::Ordering::Relaxed);
    // Now nothing arrives: the watchdog must notice and drop the stream.
    let err = loop {
        match mic.next_chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("a live microphone does not end"),
            Err(e) => break e,
        }
    };
    assert!(err.is_transient(), "{err}");
    assert!(!health.is_ok());
    assert!(health.errors("stall") >= 1, "{:?}", health.snapshot());
    // The source goes: the dropped stream's read ends.
    let _ = close.send(());
    writer.join().unwrap();
    // The source comes back, live: the reopened stream delivers again,
    // however long the reopen takes on a loaded machine (it waits for the
    // old stream to leave the driver, then retries with backoff; an open
    // abandoned on the way gets data and ends instead of blocking).
    let (close, writer) = stream_fifo(d.fifo.clone(), tone);
    let mut recovered = Vec::new();
    for _ in 0..200 {
        match mic.next_chunk().await {
            Ok(Some(c)) => {
                recovered.extend(c.samples);
                if recovered.len() >= 8_000 {
                    break;
                }
            }
            Ok(None) => panic!("a live microphone does not end"),
            Err(e) => assert!(e.is_transient(), "{e}"),
        }
    }
    assert!(
        recovered.len() >= 8_000,
        "no audio after the source came back: {:?}",
        health.snapshot()
    );
    assert!(health.is_ok(), "{:?}", health.snapshot());
    assert_eq!(health.snapshot().outages, 1);
    drop(mic);
    let _ = close.send(());
    writer.join().unwrap();
}

/// The duty cycle's pause closes the stream for real: the device's reading
/// end goes (the source's writes fail with EPIPE), no failure is counted,
/// and the next chunk opens it again and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_closes_the_stream_and_the_next_chunk_opens_it_again() {
    use std::sync::atomic::Ordering;
    let d = devices();
    let tone: Vec<i16> = (0..16_000)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let gone = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (stop, writer) =
        stream_fifo_counting(d.fifo_pause.clone(), tone, gone.clone(), Arc::default());
    let health = HealthHandle::detached("audio");
    let mut s = settings("paused", 16_000, 1);
    s.silence_ms = 60_000;
    let mut mic =
        AlsaMicrophone::open(s, 16_000, 100, Arc::new(SystemClock), health.clone()).unwrap();
    let before = read_n(&mut mic, 8_000).await;
    assert!(before.iter().any(|&x| x != 0.0));
    // While the stream is open, the source has a reader.
    let gone_before = gone.load(Ordering::Relaxed);
    mic.pause();
    // The capture thread drops the stream; ALSA closes the FIFO. Waiting
    // for that event (bounded, so a stream left open fails the test).
    let mut closed = false;
    for _ in 0..500 {
        if gone.load(Ordering::Relaxed) > gone_before {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(closed, "the stream was not closed by the pause");
    assert!(health.is_ok(), "{:?}", health.snapshot());
    // The next chunk opens the device again and delivers, without a
    // failure counted.
    let after = read_n(&mut mic, 8_000).await;
    assert!(after.iter().any(|&x| x != 0.0));
    let h = health.snapshot();
    assert!(health.is_ok(), "{h:?}");
    assert_eq!(h.outages, 0, "{h:?}");
    assert!(h.errors.is_empty(), "{h:?}");
    drop(mic);
    let _ = stop.send(());
    writer.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_device_is_absent_not_a_panic() {
    devices();
    let r = AlsaMicrophone::open(
        settings("no_such_device_anywhere", 16_000, 1),
        16_000,
        100,
        Arc::new(SystemClock),
        HealthHandle::detached("audio"),
    );
    match r {
        Err(e) => assert!(!e.is_transient(), "{e}"),
        Ok(_) => panic!("opened a device that does not exist"),
    }
}
