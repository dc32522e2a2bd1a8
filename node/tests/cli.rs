//! The `fieldnode` binary on bad input: each case is a clear error naming
//! what is wrong, a non-zero exit, and never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_fieldnode");

/// A tiny valid scene: 2 s of audio, climate and camera.
fn scene(dir: &Path) -> PathBuf {
    let s = dir.join("scene");
    std::fs::create_dir_all(&s).unwrap();
    std::fs::write(s.join("scene.toml"), "start = \"2026-06-01T05:30:00Z\"\n").unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(s.join("audio.wav"), spec).unwrap();
    for i in 0..32_000u32 {
        w.write_sample(((i * 7919) % 200) as i16 - 100).unwrap();
    }
    w.finalize().unwrap();
    std::fs::write(
        s.join("climate.csv"),
        "t_s,temperature_c,humidity_pct,pressure_hpa\n0,14,80,1012\n1,14,80,1012\n",
    )
    .unwrap();
    let mut y4m = b"YUV4MPEG2 W8 H6 F2:1 Cmono\n".to_vec();
    for i in 0..4u8 {
        y4m.extend_from_slice(b"FRAME\n");
        y4m.extend(std::iter::repeat_n(100 + i, 48));
    }
    std::fs::write(s.join("camera.y4m"), y4m).unwrap();
    s
}

fn fieldnode(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn run_on(scene: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "--scene",
        scene.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--speed",
        "max",
        "--exit-at-end",
    ];
    args.extend_from_slice(extra);
    fieldnode(&args, scene.parent().unwrap())
}

fn assert_clear_failure(out: &Output, wanted: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr:\n{err}");
    assert!(!err.contains("panicked"), "panic:\n{err}");
    for w in wanted {
        assert!(err.contains(w), "stderr lacks {w:?}:\n{err}");
    }
}

#[test]
fn a_valid_tiny_scene_runs() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path());
    let out = run_on(&s, &t.path().join("data"), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("replayed 2.0 s of scene"), "{stdout}");
    assert!(t.path().join("data/store").is_dir());
}

#[test]
fn a_looped_scene_replays_every_pass_with_time_running_on() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path());
    let out = run_on(
        &s,
        &t.path().join("data"),
        &["--loops", "3", "--output", "jsonl"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .unwrap_or_else(|| panic!("no summary line in {stdout}"));
    // Three passes of 2 s: 6 s of scene time, the audio and video of all three.
    assert_eq!(summary["scene_ms"], 6_000, "{summary}");
    assert_eq!(summary["audio_s"], 6.0, "{summary}");
    assert_eq!(summary["camera_frames"], 3 * 4, "{summary}");
    let out = run_on(&s, &t.path().join("data2"), &["--loops", "0"]);
    assert_clear_failure(&out, &["--loops"]);
}

#[test]
fn truncated_wav_names_file_and_offset() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path());
    let wav = std::fs::read(s.join("audio.wav")).unwrap();
    std::fs::write(s.join("audio.wav"), &wav[..wav.len() / 2]).unwrap();
    assert_clear_failure(
        &run_on(&s, &t.path().join("d"), &[]),
        &["audio.wav", "byte offset", "truncated"],
    );
    std::fs::write(s.join("audio.wav"), b"RIFF").unwrap();
    assert_clear_failure(
        &run_on(&s, &t.path().join("d"), &[]),
        &["audio.wav", "RIFF/WAVE"],
    );
}

#[test]
fn malformed_csv_names_line_and_column() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path());
    std::fs::write(
        s.join("climate.csv"),
        "t_s,temperature_c,humidity_pct,pressure_hpa\n0,14,80,1012\n1,14,eighty,1012\n",
    )
    .unwrap();
    assert_clear_failure(
        &run_on(&s, &t.path().join("d"), &[]),
        &["climate.csv", "line 3", "humidity_pct", "expected a number"],
    );
}

#[test]
fn truncated_or_malformed_y4m_names_offset() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path());
    let y = std::fs::read(s.join("camera.y4m")).unwrap();
    std::fs::write(s.join("camera.y4m"), &y[..y.len() - 10]).unwrap();
    assert_clear_failure(
        &run_on(&s, &t.path().join("d"), &[]),
        &["camera.y4m", "byte offset", "frame 3"],
    );
    std::fs::write(s.join("camera.y4m"), b"YUV4MPEG2 W8 H6 F2:1 C422\n").unwrap();
    assert_clear_failure(
        &run_on(&s, &t.path().join("d"), &[]),
        &["camera.y4m", "C422"],
    );
}

#[test]
fn missing_scene_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    assert_clear_failure(
        &run_on(&t.path().join("nope"), &t.path().join("d"), &[]),
        &["scene.toml", "missing"],
    );
}

#[test]
fn unknown_key_and_out_of_range_value_are_reported_together() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[audio]\nsample_rate = 16000\n[power.policy]\nsaver_below_soc = 3.0\n",
    )
    .unwrap();
    let out = fieldnode(&["check-config", cfg.to_str().unwrap()], t.path());
    assert_clear_failure(
        &out,
        &[
            "bad.toml",
            "2 configuration error(s)",
            "audio.sample_rate: unknown key",
            "power.policy.saver_below_soc: must be",
        ],
    );
    // The same configuration refuses to run.
    let s = scene(t.path());
    assert_clear_failure(
        &run_on(
            &s,
            &t.path().join("d"),
            &["--config", cfg.to_str().unwrap()],
        ),
        &["audio.sample_rate"],
    );
}

#[test]
fn a_toml_syntax_error_names_file_and_line() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("broken.toml");
    std::fs::write(&cfg, "[node]\nid = \"n1\"\n[audio\nchunk_ms = 500\n").unwrap();
    let out = fieldnode(&["check-config", cfg.to_str().unwrap()], t.path());
    assert_clear_failure(&out, &["broken.toml", "line 3"]);
}

#[test]
fn the_example_configuration_checks() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/fieldnode.toml");
    let out = fieldnode(
        &["check-config", example.to_str().unwrap()],
        Path::new(env!("CARGO_MANIFEST_DIR")),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unwritable_data_dir_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let s = scene(t.path());
    // A regular file where a directory is needed: fails even for root.
    let file = t.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    assert_clear_failure(
        &run_on(&s, &file.join("data"), &[]),
        &["data directory", "not-a-dir"],
    );
}

/// Writes a CA and a v3 client certificate for `cn` into `dir`: (ca, cert, key).
fn client_cert(dir: &Path, cn: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("node.pem"),
        dir.join("node.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[test]
fn check_config_reads_the_mqtt_certificates() {
    let t = tempfile::tempdir().unwrap();
    let (ca, cert, key) = client_cert(t.path(), "n1");
    let write = |id: &str| {
        let cfg = t.path().join(format!("{id}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[node]\nid = \"{id}\"\n[uplink]\nenabled = true\n[uplink.mqtt]\nhost = \"127.0.0.1\"\n\
                 [uplink.mqtt.tls]\nca = {ca:?}\ncert = {cert:?}\nkey = {key:?}\n"
            ),
        )
        .unwrap();
        cfg
    };
    let good = fieldnode(&["check-config", write("n1").to_str().unwrap()], t.path());
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    // The same files for another node: the broker's ACL would read the CN.
    let out = fieldnode(
        &["check-config", write("pump-7").to_str().unwrap()],
        t.path(),
    );
    assert_clear_failure(
        &out,
        &["pump-7.toml", "uplink.mqtt.tls", "CN is \"n1\"", "node.pem"],
    );
}
