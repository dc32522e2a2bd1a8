//! The second scene family, `fieldgen`: the same seed gives the same bytes,
//! every condition and option writes files the node's scene reader accepts
//! (and the node replays), labels lie inside the scene, formats and missing
//! modalities are as asked, and the signals carry what the conditions say.

use std::path::{Path, PathBuf};
use std::process::Command;

use hil_tests::fieldgen::{self, Condition, Options};
use node::scene::Scene;

const FIELDGEN: &str = env!("CARGO_BIN_EXE_fieldgen");
const NODE: &str = env!("CARGO_BIN_EXE_hil-fieldnode");

/// Runs the `fieldgen` program with `args` into `out`.
fn fieldgen_cli(out: &Path, args: &[&str]) -> std::process::Output {
    Command::new(FIELDGEN)
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

fn short(seed: u64, condition: Condition) -> Options {
    Options {
        duration_s: 12.0,
        condition,
        audio_rate: Some(8_000),
        camera_size: Some((64, 48)),
        camera_fps: Some(2),
        ..Options::new(seed)
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p: PathBuf| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn read_labels(dir: &Path) -> Vec<(f64, f64, String)> {
    let text = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("start_s,end_s,class"));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 3, "{l}");
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_string(),
            )
        })
        .collect()
}

fn wav_mono(path: &Path) -> (hound::WavSpec, Vec<Vec<f32>>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let ch = usize::from(spec.channels);
    let mut out = vec![Vec::new(); ch];
    for (i, s) in r.samples::<i16>().enumerate() {
        out[i % ch].push(f32::from(s.unwrap()) / 32768.0);
    }
    (spec, out)
}

#[test]
fn same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let t = tempfile::tempdir().unwrap();
    let opts = Options {
        channels: Some(2),
        ..short(5, Condition::Random)
    };
    fieldgen::generate(&opts, &t.path().join("a")).unwrap();
    fieldgen::generate(&opts, &t.path().join("b")).unwrap();
    fieldgen::generate(&Options { seed: 6, ..opts }, &t.path().join("c")).unwrap();
    let a = files(&t.path().join("a"));
    assert_eq!(
        a.len(),
        5,
        "{:?}",
        a.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(a, files(&t.path().join("b")));
    let c = files(&t.path().join("c"));
    let audio = |v: &[(String, Vec<u8>)]| v.iter().find(|f| f.0 == "audio.wav").unwrap().1.clone();
    assert_ne!(audio(&a), audio(&c));
}

#[test]
fn every_condition_and_format_is_accepted_by_the_scene_reader() {
    let t = tempfile::tempdir().unwrap();
    let formats: [(u32, u16, (u32, u32), u32); 6] = [
        (8_000, 1, (64, 48), 1),
        (16_000, 2, (80, 60), 2),
        (22_050, 1, (96, 72), 3),
        (32_000, 2, (120, 90), 4),
        (44_100, 1, (128, 96), 5),
        (48_000, 2, (160, 120), 1),
    ];
    for (i, (c, (rate, ch, size, fps))) in Condition::ALL.into_iter().zip(formats).enumerate() {
        for background_only in [false, true] {
            let dir = t.path().join(format!("{c}-{background_only}"));
            let opts = Options {
                duration_s: 9.0,
                condition: c,
                background_only,
                audio_rate: Some(rate),
                channels: Some(ch),
                camera_size: Some(size),
                camera_fps: Some(fps),
                ..Options::new(100 + i as u64)
            };
            fieldgen::generate(&opts, &dir).unwrap();
            let scene = Scene::open(&dir).unwrap_or_else(|e| panic!("{c}: {e}"));
            assert!(scene.audio.is_some() && scene.camera.is_some() && scene.climate.is_some());
            assert!(
                (scene.duration_ms - 9_000).abs() <= 1_000,
                "{c}: {} ms",
                scene.duration_ms
            );
        }
    }
    // Formats drawn by the seed are accepted too.
    for seed in 0..4 {
        let dir = t.path().join(format!("drawn-{seed}"));
        let opts = Options {
            duration_s: 3.0,
            ..Options::new(seed)
        };
        fieldgen::generate(&opts, &dir).unwrap();
        Scene::open(&dir).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn the_node_replays_a_fieldgen_scene_to_its_end() {
    let t = tempfile::tempdir().unwrap();
    let scene = t.path().join("scene");
    let out = fieldgen_cli(
        &scene,
        &[
            "--seed",
            "3",
            "--duration",
            "15",
            "--condition",
            "windy",
            "--audio-rate",
            "16000",
            "--camera-size",
            "80x60",
            "--camera-fps",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(NODE)
        .args(["run", "--speed", "max", "--exit-at-end", "--scene"])
        .arg(&scene)
        .arg("--data-dir")
        .arg(t.path().join("data"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "fieldnode: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn labels_lie_inside_the_scene_and_name_known_classes() {
    let t = tempfile::tempdir().unwrap();
    let mut classes = std::collections::BTreeSet::new();
    for seed in 0..24 {
        let dir = t.path().join(seed.to_string());
        let c = Condition::ALL[seed as usize % Condition::ALL.len()];
        let opts = Options {
            duration_s: 900.0,
            audio: false,
            camera: false,
            ..Options::new(seed)
        };
        let opts = Options {
            condition: c,
            ..opts
        };
        fieldgen::generate(&opts, &dir).unwrap();
        let labels = read_labels(&dir);
        assert!(
            labels.iter().any(|l| l.2 != "background"),
            "seed {seed}: no class event in 900 s"
        );
        for (a, b, class) in labels {
            assert!(0.0 <= a && a < b && b <= 900.0, "seed {seed}: {a}..{b}");
            assert!(
                [
                    "wildlife",
                    "machinery_anomaly",
                    "human_activity",
                    "background"
                ]
                .contains(&class.as_str()),
                "{class}"
            );
            classes.insert(class);
        }
    }
    assert_eq!(classes.len(), 4, "{classes:?}");
}

#[test]
fn background_only_has_no_class_events() {
    let t = tempfile::tempdir().unwrap();
    for seed in 0..6 {
        let dir = t.path().join(seed.to_string());
        let opts = Options {
            duration_s: 1800.0,
            condition: Condition::Windy,
            background_only: true,
            audio: false,
            camera: false,
            ..Options::new(seed)
        };
        let s = fieldgen::generate(&opts, &dir).unwrap();
        assert!(s.plan.calls.is_empty() && s.plan.people.is_empty() && s.plan.crossings.is_empty());
        assert!(read_labels(&dir).iter().all(|l| l.2 == "background"));
    }
}

#[test]
fn stereo_48k_scene_has_two_slightly_different_channels() {
    let t = tempfile::tempdir().unwrap();
    let out = fieldgen_cli(
        t.path(),
        &[
            "--seed",
            "11",
            "--duration",
            "4",
            "--audio-rate",
            "48000",
            "--channels",
            "2",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (spec, ch) = wav_mono(&t.path().join("audio.wav"));
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 48_000, 16)
    );
    assert_eq!(ch[0].len(), 4 * 48_000);
    assert_ne!(ch[0], ch[1]);
    let energy = |x: &[f32]| x.iter().map(|v| v * v).sum::<f32>();
    let (e0, e1) = (energy(&ch[0]), energy(&ch[1]));
    assert!(
        e0 > 0.0 && e1 > 0.0 && (e0 / e1).log10().abs() < 1.0,
        "{e0} {e1}"
    );
}

#[test]
fn missing_modality_options_leave_the_file_out_and_the_rest_unchanged() {
    let t = tempfile::tempdir().unwrap();
    let full = t.path().join("full");
    let base = [
        "--seed",
        "21",
        "--duration",
        "10",
        "--audio-rate",
        "8000",
        "--camera-size",
        "64x48",
    ];
    assert!(fieldgen_cli(&full, &base).status.success());
    for (flag, file) in [
        ("--no-audio", "audio.wav"),
        ("--no-camera", "camera.y4m"),
        ("--no-climate", "climate.csv"),
    ] {
        let dir = t.path().join(flag);
        // A stale file from an earlier run is removed too.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), b"stale").unwrap();
        let mut args = base.to_vec();
        args.push(flag);
        let out = fieldgen_cli(&dir, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!dir.join(file).exists(), "{flag} still wrote {file}");
        Scene::open(&dir).unwrap();
        for other in ["audio.wav", "camera.y4m", "climate.csv", "labels.csv"] {
            if other != file {
                assert_eq!(
                    std::fs::read(dir.join(other)).unwrap(),
                    std::fs::read(full.join(other)).unwrap(),
                    "{flag} changed {other}"
                );
            }
        }
    }
}

#[test]
fn the_program_prints_the_labels_and_refuses_bad_options() {
    let t = tempfile::tempdir().unwrap();
    let out = fieldgen_cli(
        &t.path().join("s"),
        &[
            "--seed",
            "8",
            "--duration",
            "60",
            "--no-audio",
            "--no-camera",
            "--start",
            "2026-07-01T12:00:00+02:00",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let labels = read_labels(&t.path().join("s"));
    assert!(
        text.contains(&format!("labels ({})", labels.len())),
        "{text}"
    );
    let toml = std::fs::read_to_string(t.path().join("s/scene.toml")).unwrap();
    assert!(
        toml.contains("start = \"2026-07-01T12:00:00+02:00\""),
        "{toml}"
    );
    assert!(toml.contains("preset = \"fieldgen-random\""), "{toml}");
    for bad in [
        &["--condition", "stormy"][..],
        &["--camera-size", "64by48"],
        &["--camera-size", "63x48"],
        &["--channels", "3"],
        &["--duration", "0"],
        &["--start", "noon"],
    ] {
        let mut args = vec!["--seed", "1"];
        args.extend_from_slice(bad);
        let out = fieldgen_cli(&t.path().join("bad"), &args);
        assert!(!out.status.success(), "{bad:?} accepted");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

#[test]
fn labelled_gusts_are_louder_than_the_wind_around_them() {
    let t = tempfile::tempdir().unwrap();
    let (mut louder, mut gusts) = (0, 0);
    for seed in 1..=4u64 {
        let dir = t.path().join(seed.to_string());
        let opts = Options {
            duration_s: 120.0,
            background_only: true,
            camera: false,
            climate: false,
            channels: Some(1),
            ..short(seed, Condition::Windy)
        };
        let s = fieldgen::generate(&opts, &dir).unwrap();
        let (_, ch) = wav_mono(&dir.join("audio.wav"));
        let x = &ch[0];
        let mut second: Vec<f32> = x.chunks(8_000).map(rms).collect();
        second.sort_by(f32::total_cmp);
        let quiet = second[second.len() / 4];
        for l in s.plan.labels.iter().filter(|l| l.what.contains("gust")) {
            let seg = &x[(l.start * 8_000.0) as usize..((l.end * 8_000.0) as usize).min(x.len())];
            gusts += 1;
            if rms(seg) > 1.4 * quiet {
                louder += 1;
            }
        }
    }
    assert!(gusts >= 4, "only {gusts} strong gusts in 8 windy minutes");
    assert!(
        louder * 4 >= gusts * 3,
        "{louder} of {gusts} gusts louder than the quieter wind"
    );
}

#[test]
fn night_frames_are_grey_low_contrast_ir() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("n");
    let opts = Options {
        audio: false,
        climate: false,
        ..short(4, Condition::Night)
    };
    let s = fieldgen::generate(&opts, &dir).unwrap();
    assert!(s.plan.sky.is_night(0.0) && s.plan.sky.is_night(12.0));
    let mut r = node::scene::y4m::Y4mReader::open(&dir.join("camera.y4m")).unwrap();
    let mut frames = 0;
    while let Some(f) = r.next_frame(true).unwrap() {
        let l = f.luma.unwrap();
        let mean = l.iter().map(|&v| f32::from(v)).sum::<f32>() / l.len() as f32;
        let (lo, hi) = (l.iter().min().unwrap(), l.iter().max().unwrap());
        assert!((30.0..170.0).contains(&mean), "mean {mean}");
        assert!(*lo > 0 || *hi < 255, "IR frames do not saturate both ends");
        frames += 1;
    }
    assert_eq!(frames, 24);
}

/// Each frame's luma and `XEXPOSURE` of a scene's video.
fn frames_and_exposures(dir: &Path) -> Vec<(Vec<u8>, Option<f32>)> {
    let mut r = node::scene::y4m::Y4mReader::open(&dir.join("camera.y4m")).unwrap();
    let mut v = Vec::new();
    while let Some(f) = r.next_frame(true).unwrap() {
        v.push((f.luma.unwrap(), f.exposure));
    }
    v
}

#[test]
fn reported_exposure_is_in_daylight_frame_headers_and_changes_no_pixel() {
    let t = tempfile::tempdir().unwrap();
    for (condition, night) in [(Condition::Calm, false), (Condition::Night, true)] {
        let plain = t.path().join(format!("plain-{night}"));
        let s = fieldgen::generate(&short(4, condition), &plain).unwrap();
        assert_eq!(s.plan.sky.is_night(0.0), night);
        let reported = t.path().join(format!("reported-{night}"));
        let opts = Options {
            report_exposure: true,
            ..short(4, condition)
        };
        fieldgen::generate(&opts, &reported).unwrap();
        let a = frames_and_exposures(&plain);
        let b = frames_and_exposures(&reported);
        assert_eq!(a.len(), 24);
        for ((la, ea), (lb, eb)) in a.iter().zip(&b) {
            assert_eq!(la, lb, "the pixels are the same");
            assert_eq!(*ea, None);
            // By day the auto-exposure's choice; the IR frames of the night
            // carry none.
            assert_eq!(eb.is_some(), !night, "{eb:?}");
            assert!(eb.is_none_or(|e| e > 0.0));
        }
        Scene::open(&reported).unwrap();
    }
}

#[test]
fn a_machine_anomaly_heats_the_sensor_and_it_cools_after() {
    let t = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for seed in 0..60 {
        let dir = t.path().join(seed.to_string());
        let opts = Options {
            duration_s: 2400.0,
            condition: Condition::Hum,
            audio: false,
            camera: false,
            // Night: no sun on the enclosure to confuse the reading.
            start: Some("2026-03-01T01:00:00Z".to_string()),
            ..Options::new(seed)
        };
        let s = fieldgen::generate(&opts, &dir).unwrap();
        let heat = &s.plan.climate.machine_heat;
        let Some(h) = heat.first().filter(|h| {
            h.end - h.start >= 120.0
                && h.end + 600.0 < 2400.0
                && heat.iter().skip(1).all(|o| o.start > h.end + 900.0)
        }) else {
            continue;
        };
        let rows = node::scene::climate::read_climate_csv(&dir.join("climate.csv")).unwrap();
        let temp_at = |t: f64| {
            rows.iter()
                .min_by(|a, b| (a.t_s - t).abs().total_cmp(&(b.t_s - t).abs()))
                .map(|r| r.temperature_c)
                .unwrap()
        };
        let expected = h.rise * (1.0 - (-(h.end - h.start) as f32 / h.tau_rise).exp());
        let rise = temp_at(h.end) - temp_at(h.start);
        assert!(
            rise > 0.6 * expected - 0.4,
            "seed {seed}: rose {rise}, expected {expected}"
        );
        let after = temp_at(h.end + 600.0);
        assert!(
            after < temp_at(h.end),
            "seed {seed}: no cooling after the anomaly"
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} scenes had a clear anomaly");
}
