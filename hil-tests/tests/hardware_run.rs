//! `fieldnode run --hardware` on this machine: the microphone is a real ALSA
//! capture device (the `file` plugin reading a FIFO that a thread feeds with
//! a generated scene's audio), while the camera and the BME280 are missing
//! (no `/dev/video*`, no `/dev/i2c-*` here). The node must say so, keep
//! running, detect from audio alone, and stop cleanly on SIGTERM.

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn the_node_runs_on_the_devices_it_finds_and_detects_with_audio_alone() {
    let t = tempfile::tempdir().unwrap();
    let scene = t.path().join("scene");
    // A human-activity event at 11.6..18.3 s of this scene.
    common::scenegen(
        &scene,
        &[
            "--preset",
            "human",
            "--seed",
            "3",
            "--duration",
            "30",
            "--no-camera",
            "--no-climate",
        ],
    );
    let mut wav = hound::WavReader::open(scene.join("audio.wav")).unwrap();
    assert_eq!(wav.spec().sample_rate, 16_000);
    let pcm: Vec<u8> = wav
        .samples::<i16>()
        .flat_map(|s| s.unwrap().to_le_bytes())
        .collect();

    let fifo = t.path().join("mic.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let conf = t.path().join("asound.conf");
    std::fs::write(
        &conf,
        format!(
            "pcm.fieldmic {{\n type file\n slave.pcm \"null\"\n file \"/dev/null\"\n infile \"{}\"\n format \"raw\"\n}}\n",
            fifo.display()
        ),
    )
    .unwrap();
    let config = t.path().join("node.toml");
    std::fs::write(
        &config,
        r#"
[node]
sensors = "hardware"
status_interval_ms = 2000

[audio.device]
name = "alsa:fieldmic"
rate_hz = 16000
channels = 1
stall_ms = 1500

[camera.device]
source = "v4l"
device = "/dev/video-not-here"

[climate]
i2c_bus = "/dev/i2c-not-here"
"#,
    )
    .unwrap();

    let mut child = std::process::Command::new(common::NODE)
        .args(["run", "--output", "jsonl", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(t.path().join("data"))
        .env(
            "ALSA_CONFIG_PATH",
            format!("/usr/share/alsa/alsa.conf:{}", conf.display()),
        )
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Open the FIFO once the node's ALSA device has it open for reading
    // (without a reader, a non-blocking open fails with ENXIO); give up if
    // the node dies first.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let f = loop {
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
        {
            Ok(f) => break f,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
            Err(e) => panic!("opening the FIFO: {e}"),
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "the node ended before opening the microphone ({status}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node never opened the microphone"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Back to blocking writes: the FIFO paces the writer like a sound card.
    nix::fcntl::fcntl(
        &f,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .unwrap();
    // Feed the microphone at three times real time, in 100 ms blocks.
    let writer = std::thread::spawn(move || {
        let mut f = f;
        for block in pcm.chunks(3_200) {
            if f.write_all(block).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(33));
        }
        // Hold the FIFO open a moment (a stall, as a dying microphone), then close.
        std::thread::sleep(Duration::from_millis(2_500));
    });
    writer.join().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the node failed:\n{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let events: Vec<&serde_json::Value> = lines.iter().filter_map(|v| v.get("stored")).collect();
    let summary = lines
        .iter()
        .find_map(|v| v.get("summary"))
        .unwrap_or_else(|| panic!("no summary:\n{stderr}"));
    let sensors = &summary["sensors"];
    assert_eq!(sensors["camera"]["state"], "absent", "{sensors}");
    assert_eq!(sensors["climate"]["state"], "absent", "{sensors}");
    assert!(
        sensors["climate"]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("/dev/i2c-not-here"),
        "{sensors}"
    );
    assert_ne!(sensors["audio"]["state"], "absent", "{sensors}");
    assert!(
        summary["audio_s"].as_f64().unwrap_or(0.0) >= 25.0,
        "{summary}"
    );
    assert!(
        !events.is_empty(),
        "nothing detected from the microphone:\n{stderr}"
    );
    for e in &events {
        assert!(
            e["score_camera"].is_null() && e["score_climate"].is_null(),
            "{e}"
        );
        assert!(!e["score_audio"].is_null(), "{e}");
    }
    assert!(stderr.contains("status"), "no status line:\n{stderr}");
}
