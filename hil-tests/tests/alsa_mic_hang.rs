//! A capture device whose open never returns: the ALSA `file` plugin on a
//! FIFO that nothing writes blocks in `open(2)`. The driver must give up
//! after `open_timeout_ms` and report the microphone absent, not wait.
//!
//! A process with an open stuck in ALSA cannot open any other device (the
//! other tests would wait behind it), so this test has its own binary.

use std::sync::Arc;

use node::clock::SystemClock;
use node::sensors::alsa_mic::{AlsaMicrophone, MicSettings};
use node::sensors::health::HealthHandle;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_that_never_returns_is_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("hang.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let conf = dir.path().join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.hang {{\n  type file\n  slave.pcm \"null\"\n  file \"/dev/null\"\n  infile \"{}\"\n  format \"raw\"\n}}\n",
            fifo.display()
        ),
    )
    .unwrap();
    // SAFETY: set before any thread of this test process uses ALSA (this
    // binary has one test), and never changed afterwards.
    unsafe {
        std::env::set_var(
            "ALSA_CONFIG_PATH",
            format!("/usr/share/alsa/alsa.conf:{}", conf.display()),
        )
    };
    let settings = MicSettings {
        name: "alsa:hang".into(),
        rate_hz: 16_000,
        channels: 1,
        open_timeout_ms: 300,
        ..MicSettings::default()
    };
    let health = HealthHandle::detached("audio");
    let r = AlsaMicrophone::open(settings, 16_000, 100, Arc::new(SystemClock), health);
    match r {
        Err(e) => {
            assert!(!e.is_transient(), "{e}");
            assert!(
                e.to_string().contains("did not finish within 300 ms"),
                "{e}"
            );
        }
        Ok(_) => panic!("opened a device whose open never returns"),
    }
    // Release the abandoned thread: a writer lets its open return.
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
}
