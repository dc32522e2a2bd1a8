//! CPU cost of audio capture plus conversion, per second of audio, through
//! the real ALSA stack (the `file` plugin replays a raw PCM file as a
//! capture device; see docs/testing.md).
//!
//! `cargo run --release -p node --example audio_capture_bench [SECONDS]`
//!
//! For each device format (16 kHz mono, 48 kHz stereo, 44.1 kHz mono) it
//! captures SECONDS (default 60) of audio into 16 kHz mono chunks and prints
//! the process CPU time (user + system, getrusage) per second of audio. The
//! `null` slave has no clock, so the audio is fed through a FIFO by a thread
//! at 20 times real time in 50 ms blocks: capture blocks between blocks as it
//! would on a sound card. The writer thread's few write calls are counted
//! too, so the figure is an upper bound.

use std::sync::Arc;

use node::clock::SystemClock;
use node::sensors::Microphone;
use node::sensors::alsa_mic::{AlsaMicrophone, MicSettings};
use node::sensors::health::HealthHandle;

fn cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() -> anyhow::Result<()> {
    let seconds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir()?;
    let formats = [(16_000u32, 1u16), (48_000, 2), (44_100, 1)];
    let mut conf = String::new();
    let mut feeds = Vec::new();
    for (rate, ch) in formats {
        let n = rate as usize * seconds;
        let mut bytes = Vec::with_capacity(n * usize::from(ch) * 2);
        let mut x: u32 = 12345;
        for i in 0..n {
            // A tone plus noise, so nothing is trivially compressible.
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = ((x >> 16) as f32 / 65536.0 - 0.5) * 0.1;
            let s = (0.3 * (i as f32 * 0.07).sin() + noise) * 32767.0;
            for _ in 0..ch {
                bytes.extend_from_slice(&(s as i16).to_le_bytes());
            }
        }
        let path = dir.path().join(format!("r{rate}c{ch}.fifo"));
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } != 0 {
            anyhow::bail!(
                "mkfifo {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        feeds.push((
            path.clone(),
            bytes,
            rate as usize * usize::from(ch) * 2 / 20,
        ));
        conf += &format!(
            "pcm.r{rate}c{ch} {{ type file slave.pcm \"null\" file \"/dev/null\" infile \"{}\" format \"raw\" }}\n",
            path.display()
        );
    }
    let conf_path = dir.path().join("asound.conf");
    std::fs::write(&conf_path, conf)?;
    // SAFETY: set before anything in this process uses ALSA.
    unsafe {
        std::env::set_var(
            "ALSA_CONFIG_PATH",
            format!("/usr/share/alsa/alsa.conf:{}", conf_path.display()),
        )
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("| device format | audio captured | CPU time | CPU per second of audio |");
    println!("|---|---|---|---|");
    for ((rate, ch), (fifo, bytes, block)) in formats.into_iter().zip(feeds) {
        let writer = std::thread::spawn(move || -> std::io::Result<()> {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&fifo)?;
            for b in bytes.chunks(block) {
                f.write_all(b)?;
                std::thread::sleep(std::time::Duration::from_micros(2_500));
            }
            // Keep the FIFO open until the reader has what it needs.
            std::thread::sleep(std::time::Duration::from_secs(2));
            Ok(())
        });
        let settings = MicSettings {
            name: format!("alsa:r{rate}c{ch}"),
            rate_hz: rate,
            channels: ch,
            buffer_ms: 4000,
            ..MicSettings::default()
        };
        let want = 16_000 * seconds;
        let (got, cpu) = rt.block_on(async {
            let before = cpu_s();
            let mut mic = AlsaMicrophone::open(
                settings,
                16_000,
                500,
                Arc::new(SystemClock),
                HealthHandle::detached("audio"),
            )?;
            let mut got = 0usize;
            while got < want {
                match mic.next_chunk().await {
                    Ok(Some(c)) => got += c.samples.len(),
                    Ok(None) => break,
                    Err(e) => anyhow::bail!("capture failed: {e}"),
                }
            }
            drop(mic);
            anyhow::Ok((got, cpu_s() - before))
        })?;
        let _ = writer.join();
        let audio_s = got as f64 / 16_000.0;
        println!(
            "| {rate} Hz, {ch} ch, S16 | {audio_s:.0} s | {cpu:.3} s | {:.2} ms |",
            cpu * 1000.0 / audio_s
        );
    }
    Ok(())
}
