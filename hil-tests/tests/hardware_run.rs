//! `fieldnode run --hardware` on this machine: the microphone is a real ALSA
//! capture device (the `file` plugin reading a FIFO that a thread feeds with
//! a generated scene's audio), while the camera and the BME280 are missing
//! (no `/dev/video*`, no `/dev/i2c-*` here). The node must say so, keep
//! running, and detect from audio alone. Then the microphone goes away in a
//! way that blocks: the FIFO stops delivering (a stall), then its writer
//! closes it, so the driver's next open of the FIFO never returns. The node must abandon that open, and still stop
//! cleanly and promptly on SIGTERM.

mod common;

use std::io::Write;
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
backoff_initial_ms = 3000
open_timeout_ms = 3000

[camera.device]
source = "v4l"
device = "/dev/video-not-here"

[climate]
i2c_bus = "/dev/i2c-not-here"
"#,
    )
    .unwrap();

    let out_log = t.path().join("stdout.jsonl");
    let err_log = t.path().join("stderr.log");
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
        .stdout(std::fs::File::create(&out_log).unwrap())
        .stderr(std::fs::File::create(&err_log).unwrap())
        .spawn()
        .unwrap();
    let log = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();

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
            panic!(
                "the node ended before opening the microphone ({status}):\n{}",
                log(&err_log)
            );
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the node never opened the microphone:\n{}", log(&err_log));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Back to blocking writes: the FIFO paces the writer like a sound card.
    nix::fcntl::fcntl(
        &f,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .unwrap();
    // Feed the microphone at three times real time, in 100 ms blocks; then
    // hold the FIFO open without writing: the stream stalls.
    let writer = std::thread::spawn(move || {
        let mut f = f;
        for block in pcm.chunks(3_200) {
            if f.write_all(block).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(33));
        }
        f
    });
    // A node that stops reading would block the writer for good: bounded.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !writer.is_finished() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the node stopped reading the microphone:\n{}",
                log(&err_log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let f = writer.join().unwrap();
    // Once the stall is seen (its kind as a log field value: a bare "stall"
    // also matches "install"), the writer goes: the dropped stream's read
    // ends, and the next open of the FIFO, with no writer, blocks.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !log(&err_log).contains("\"stall\"") {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the stall was not seen:\n{}", log(&err_log));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(f);
    // Wait until a reopen has blocked in the driver and been abandoned.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !log(&err_log).contains("\"open_timeout\"") {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no reopen was abandoned:\n{}", log(&err_log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Everything must be stored and the process gone well inside a service
    // manager's stop timeout, even with a thread blocked in the driver.
    let status = common::wait_or_fail(&mut child, Duration::from_secs(20), &err_log);
    let stderr = log(&err_log);
    assert!(status.success(), "the node failed:\n{stderr}");
    let stdout = log(&out_log);
    let lines: Vec<serde_json::Value> = stdout
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
        sensors["audio"]["errors"]["open_timeout"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "{sensors}"
    );
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
        // Stamped by the judged system clock (this machine's clock is above
        // the build time): never `unknown`, `scene` or `untrusted`.
        assert!(
            ["synced", "plausible"].contains(&e["time_source"].as_str().unwrap_or("")),
            "{e}"
        );
        assert_eq!(e["time_restamped"], false, "{e}");
    }
    assert!(stderr.contains("status"), "no status line:\n{stderr}");
}
