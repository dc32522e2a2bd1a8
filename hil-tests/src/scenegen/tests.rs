use super::*;

fn spec(preset: Preset, seed: u64, dur: f32) -> SceneSpec {
    SceneSpec {
        duration_s: dur,
        ..SceneSpec::new(preset, seed)
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let t = tempfile::tempdir().unwrap();
    let s = spec(Preset::Mixed, 3, 60.0);
    generate(&s, &t.path().join("a")).unwrap();
    generate(&s, &t.path().join("b")).unwrap();
    generate(&spec(Preset::Mixed, 4, 60.0), &t.path().join("c")).unwrap();
    assert_eq!(files(&t.path().join("a")), files(&t.path().join("b")));
    assert_ne!(files(&t.path().join("a")), files(&t.path().join("c")));
}

#[test]
fn headers_and_labels_are_well_formed() {
    let t = tempfile::tempdir().unwrap();
    let sum = generate(&spec(Preset::Mixed, 5, 300.0), t.path()).unwrap();
    let y4m = std::fs::read(t.path().join("camera.y4m")).unwrap();
    assert!(y4m.starts_with(b"YUV4MPEG2 W80 H60 F2:1 Ip A1:1 Cmono\nFRAME\n"));
    assert_eq!(y4m.len(), 37 + 600 * (6 + 4800));
    let csv = std::fs::read_to_string(t.path().join("climate.csv")).unwrap();
    assert!(csv.starts_with("t_s,temperature_c,humidity_pct,pressure_hpa\n0.0,"));
    let wav = hound::WavReader::open(t.path().join("audio.wav")).unwrap();
    assert_eq!(
        (wav.spec().sample_rate, wav.spec().channels, wav.duration()),
        (16_000, 1, 16_000 * 300)
    );
    assert!(!sum.labels.is_empty());
    let mut last_end = 0.0;
    for l in &sum.labels {
        assert!(
            l.start_s >= last_end && l.end_s > l.start_s && l.end_s <= 300.0,
            "{l:?}"
        );
        last_end = l.end_s;
    }
    let text = std::fs::read_to_string(t.path().join("labels.csv")).unwrap();
    assert_eq!(text.lines().count(), sum.labels.len() + 1);
}

#[test]
fn the_demo_has_every_class() {
    let t = tempfile::tempdir().unwrap();
    let sum = generate(&SceneSpec::new(Preset::Demo, 7), t.path()).unwrap();
    let classes: Vec<_> = sum.labels.iter().map(|l| l.class).collect();
    for c in [
        "wildlife",
        "machinery_anomaly",
        "human_activity",
        "background",
    ] {
        assert!(classes.contains(&c), "{classes:?}");
    }
}

fn band_energy(x: &[f32], rate: f32, lo: f32, hi: f32) -> f32 {
    // Energy through a band-pass cascade.
    let f0 = (lo * hi).sqrt();
    let q = f0 / (hi - lo);
    let mut a = dsp::Biquad::bandpass(rate, f0, q);
    let mut b = dsp::Biquad::bandpass(rate, f0, q);
    x.iter().map(|v| b.run(a.run(*v)).powi(2)).sum::<f32>() / x.len().max(1) as f32
}

#[test]
fn events_are_what_they_claim() {
    let s = SceneSpec::new(Preset::Demo, 7);
    let plan = plan::schedule(s.preset, s.seed, s.duration_s);
    let audio = render_audio(&s, &plan);
    let rate = 16_000.0;
    let seg = |a: f32, b: f32| &audio[(a * rate) as usize..(b * rate) as usize];
    let find = |class: &str| plan.iter().find(|p| p.kind.class() == class).unwrap();
    let w = find("wildlife");
    let quiet = seg(2.0, 10.0);
    let bird = seg(w.start_s, w.end_s);
    let ratio = band_energy(bird, rate, 2000.0, 7000.0) / band_energy(quiet, rate, 2000.0, 7000.0);
    assert!(ratio > 4.0, "bird band rises only {ratio}x");
    let h = find("human_activity");
    let voice = band_energy(seg(h.start_s, h.end_s), rate, 300.0, 2000.0)
        / band_energy(quiet, rate, 300.0, 2000.0);
    assert!(voice > 4.0, "voice band rises only {voice}x");
    // Machinery: the temperature rises by more than a degree during the anomaly.
    let m = find("machinery_anomaly");
    let readings = climate::readings(s.seed, &plan, s.duration_s, 1.0, 7.5);
    let at = |t: f32| {
        readings
            .iter()
            .min_by(|a, b| (a.t_s - t).abs().total_cmp(&(b.t_s - t).abs()))
            .unwrap()
            .temperature_c
    };
    assert!(
        at(m.end_s) - at(m.start_s) > 1.0,
        "{} -> {}",
        at(m.start_s),
        at(m.end_s)
    );
    // The person in view moves far more pixels than the animal does.
    let mut cam = camera::Camera::new(80, 60, s.seed, &plan, 7.5);
    let base = cam.frame(1.0);
    let moved = |cam: &mut camera::Camera, t: f32| {
        cam.frame(t)
            .iter()
            .zip(&base)
            .filter(|(a, b)| (**a as i32 - **b as i32).abs() > 20)
            .count()
    };
    let animal = moved(&mut cam, (w.start_s + w.end_s) / 2.0);
    let person = moved(&mut cam, (h.start_s + h.end_s) / 2.0);
    assert!(
        animal > 3 && person > animal,
        "animal {animal} px, person {person} px"
    );
}

#[test]
fn modalities_can_be_left_out() {
    let t = tempfile::tempdir().unwrap();
    let s = SceneSpec {
        camera: false,
        climate: false,
        ..spec(Preset::Human, 1, 30.0)
    };
    generate(&s, t.path()).unwrap();
    assert!(t.path().join("audio.wav").exists());
    assert!(!t.path().join("camera.y4m").exists() && !t.path().join("climate.csv").exists());
}

#[test]
fn bad_specs_are_errors() {
    let t = tempfile::tempdir().unwrap();
    assert!(generate(&spec(Preset::Mixed, 1, 1.0), t.path()).is_err());
    let s = SceneSpec {
        start: "noon".into(),
        ..spec(Preset::Mixed, 1, 30.0)
    };
    assert!(
        generate(&s, t.path())
            .unwrap_err()
            .to_string()
            .contains("RFC 3339")
    );
}

// ---- Field conditions ----

use conditions::Formats;

fn with(preset: Preset, seed: u64, dur: f32, c: Condition) -> SceneSpec {
    SceneSpec {
        duration_s: dur,
        ..SceneSpec::new(preset, seed).with_condition(c)
    }
}

/// FNV-1a, 64 bits: a fingerprint of a file's bytes.
fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn none_reproduces_the_bundled_demo_byte_for_byte() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenes/demo");
    let t = tempfile::tempdir().unwrap();
    let spec = SceneSpec::new(Preset::Demo, 7).with_condition(Condition::None);
    generate(&spec, t.path()).unwrap();
    let want = files(&demo);
    let got = files(t.path());
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|f| f.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&want));
    for ((name, a), (_, b)) in got.iter().zip(&want) {
        let first = a.iter().zip(b).position(|(x, y)| x != y);
        assert!(
            a.len() == b.len() && first.is_none(),
            "{name}: {} bytes generated, {} committed, first difference at byte {first:?}",
            a.len(),
            b.len()
        );
    }
}

/// Fingerprints of every preset's files (seed 4, 150 s) without conditions,
/// as the generator wrote them before field conditions existed (each preset
/// has labelled events in that time).
#[test]
fn none_leaves_every_preset_as_it_was() {
    // audio.wav, camera.y4m, climate.csv, labels.csv, scene.toml
    let want: [(Preset, [u64; 5]); 5] = [
        (
            Preset::Wildlife,
            [
                0xb9a281509adf6794,
                0x5ee8b30e59029de5,
                0xb7f145e63f66346a,
                0x3740f362b4494363,
                0x34db83c972e28bd1,
            ],
        ),
        (
            Preset::Machinery,
            [
                0xc5c66824954dcd2e,
                0x8f34e1910aa77da7,
                0xdcbe13cd47179a86,
                0x9d646630d0cc5214,
                0x48603fd25336ac7f,
            ],
        ),
        (
            Preset::Human,
            [
                0x50f10cbd545b9b1d,
                0xc0eb0af05469693a,
                0xb7f145e63f66346a,
                0x7ea4b7b3051c13f1,
                0x39b98d5a77ccd2b0,
            ],
        ),
        (
            Preset::Background,
            [
                0x1be25381ce6cc730,
                0xdc86f6dd874e400c,
                0xb7f145e63f66346a,
                0xac7659f2017de19b,
                0x3b3be21c21d52bd7,
            ],
        ),
        (
            Preset::Mixed,
            [
                0xe45d86bd502778f5,
                0xc8ec19bdcd56dced,
                0xb19163fac97f4057,
                0xd74d915563981e67,
                0x210955a5ac1b8b36,
            ],
        ),
    ];
    let t = tempfile::tempdir().unwrap();
    let mut got = Vec::new();
    for (preset, _) in &want {
        let dir = t.path().join(preset.as_str());
        generate(&spec(*preset, 4, 150.0), &dir).unwrap();
        let f: Vec<u64> = files(&dir).iter().map(|f| fingerprint(&f.1)).collect();
        got.push((*preset, [f[0], f[1], f[2], f[3], f[4]]));
    }
    assert_eq!(got, want, "{got:#x?}");
}

fn check_files(dir: &Path, s: &SceneSpec, sum: &SceneSummary) {
    let scene = node::scene::Scene::open(dir).unwrap();
    assert!(scene.audio.is_some() && scene.camera.is_some() && scene.climate.is_some());
    let wav = node::scene::wav::validate(&dir.join("audio.wav")).unwrap();
    assert_eq!(
        (wav.sample_rate, wav.channels, wav.frames),
        (
            s.audio_rate,
            s.channels,
            (s.duration_s * s.audio_rate as f32) as u64
        )
    );
    let y4m = node::scene::y4m::validate(&dir.join("camera.y4m")).unwrap();
    assert_eq!(
        (y4m.width, y4m.height, y4m.fps_num, y4m.frames),
        (
            s.camera_w,
            s.camera_h,
            s.camera_fps,
            (s.duration_s * s.camera_fps as f32) as u64
        )
    );
    let rows = node::scene::read_climate_csv(&dir.join("climate.csv")).unwrap();
    assert_eq!(rows.len(), (s.duration_s / s.climate_period_s) as usize + 1);
    for r in &rows {
        assert!(
            (-30.0..60.0).contains(&r.temperature_c) && (0.0..=100.0).contains(&r.humidity_pct),
            "{r:?}"
        );
    }
    let text = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    assert_eq!(text.lines().count(), sum.labels.len() + 1);
    let mut last_start = 0.0;
    for l in &sum.labels {
        assert!(
            l.start_s >= last_start && l.end_s > l.start_s && l.end_s <= s.duration_s,
            "{l:?}"
        );
        last_start = l.start_s;
    }
}

#[test]
fn each_condition_is_deterministic_and_readable_by_the_node() {
    let t = tempfile::tempdir().unwrap();
    let base = t.path().join("none");
    let none = generate(&spec(Preset::Mixed, 21, 40.0), &base).unwrap();
    for c in Condition::all().into_iter().skip(1) {
        let s = with(Preset::Mixed, 21, 40.0, c);
        let (a, b) = (t.path().join(c.as_str()), t.path().join("again"));
        let sum = generate(&s, &a).unwrap();
        generate(&s, &b).unwrap();
        assert_eq!(files(&a), files(&b), "{c:?} is not deterministic");
        assert_ne!(files(&a), files(&base), "{c:?} changes nothing");
        check_files(&a, &sum.spec, &sum);
        // Conditions add to the preset's labels; they never move them.
        for l in &none.labels {
            assert!(sum.labels.contains(l), "{c:?} lost {l:?}");
        }
    }
}

#[test]
fn random_draws_formats_unless_they_are_given() {
    let f: Vec<Formats> = (0..40).map(Formats::draw).collect();
    let rates: std::collections::BTreeSet<_> = f.iter().map(|f| f.audio_rate).collect();
    let fps: std::collections::BTreeSet<_> = f.iter().map(|f| f.camera_fps).collect();
    assert!(rates.len() >= 4 && rates.iter().all(|r| (8000..=48_000).contains(r)));
    assert!(fps.len() >= 3 && fps.iter().all(|r| (1..=5).contains(r)));
    assert!(f.iter().any(|f| f.channels == 1) && f.iter().any(|f| f.channels == 2));
    let s = SceneSpec {
        draw_formats: false,
        ..with(Preset::Human, 3, 20.0, Condition::Random)
    };
    let scene = prepare(&s).unwrap();
    assert_eq!(
        (
            scene.spec.audio_rate,
            scene.spec.channels,
            scene.spec.camera_fps
        ),
        (16_000, 1, 2)
    );
}

#[test]
fn stereo_and_rate_options() {
    let t = tempfile::tempdir().unwrap();
    let mono = SceneSpec {
        audio_rate: 8000,
        ..spec(Preset::Human, 2, 20.0)
    };
    let stereo = SceneSpec {
        channels: 2,
        ..mono.clone()
    };
    let sum = generate(&stereo, t.path()).unwrap();
    check_files(t.path(), &stereo, &sum);
    // The first channel is the mono scene; the second a slightly later,
    // weaker copy.
    let scene = prepare(&stereo).unwrap();
    let ch = render_channels(&scene.spec, &scene.plan, None);
    assert_eq!(ch[0], render_audio(&mono, &scene.plan));
    assert_ne!(ch[0], ch[1]);
    // Under conditions each channel has its own wind: the channels differ
    // most at low frequencies.
    let windy = SceneSpec {
        channels: 2,
        ..with(Preset::Human, 2, 20.0, Condition::Windy)
    };
    let scene = prepare(&windy).unwrap();
    let ch = render_channels(&scene.spec, &scene.plan, scene.field.as_ref());
    let diff: Vec<f32> = ch[0].iter().zip(&ch[1]).map(|(a, b)| a - b).collect();
    let e = |x: &[f32]| x.iter().map(|v| v * v).sum::<f32>();
    assert!(e(&diff) > 0.2 * e(&ch[0]), "the winds are not independent");
    assert!(
        generate(
            &SceneSpec {
                channels: 3,
                ..mono.clone()
            },
            t.path()
        )
        .is_err()
    );
}

#[test]
fn background_only_has_no_class_labels() {
    let t = tempfile::tempdir().unwrap();
    for c in [Condition::None, Condition::Hum, Condition::Random] {
        let s = SceneSpec {
            background_only: true,
            ..with(Preset::Mixed, 8, 300.0, c)
        };
        let scene = prepare(&s).unwrap();
        assert!(
            scene.plan.iter().all(|p| p.kind.class() == "background"),
            "{c:?}: {:?}",
            scene.plan
        );
        // Every background episode stays labelled.
        let all = prepare(&SceneSpec {
            background_only: false,
            ..s.clone()
        })
        .unwrap();
        let background: Vec<_> = all
            .plan
            .into_iter()
            .filter(|p| p.kind.class() == "background")
            .collect();
        assert_eq!(scene.plan, background, "{c:?}");
    }
    let s = SceneSpec {
        background_only: true,
        camera: false,
        climate: false,
        ..with(Preset::Mixed, 8, 30.0, Condition::Calm)
    };
    let sum = generate(&s, t.path()).unwrap();
    assert!(sum.labels.iter().all(|l| l.class == "background"));
    let toml = std::fs::read_to_string(t.path().join("scene.toml")).unwrap();
    assert!(toml.contains("condition calm, background only"), "{toml}");
}

#[test]
fn wind_raises_the_low_band_far_more_than_the_high_band() {
    let render = |c: Condition| {
        let scene = prepare(&with(Preset::Background, 4, 60.0, c)).unwrap();
        match &scene.field {
            None => render_audio(&scene.spec, &scene.plan),
            Some(f) => render_channels(&scene.spec, &scene.plan, Some(f)).remove(0),
        }
    };
    let (none, windy) = (render(Condition::None), render(Condition::Windy));
    let rate = 16_000.0;
    let band = |x: &[f32], lo: f32, hi: f32| band_energy(x, rate, lo, hi);
    // The energy the wind adds, in a band of 260 Hz and in one of 4 kHz.
    let low = band(&windy, 40.0, 300.0) - band(&none, 40.0, 300.0);
    let high = band(&windy, 2000.0, 6000.0) - band(&none, 2000.0, 6000.0);
    let rise = band(&windy, 40.0, 300.0) / band(&none, 40.0, 300.0);
    assert!(
        rise > 20.0 && low > 10.0 * high,
        "low band +{low:e} (x{rise}), high band +{high:e}"
    );
}

#[test]
fn gusts_spread_broadband() {
    let scene = prepare(&with(Preset::Background, 6, 120.0, Condition::Windy)).unwrap();
    let Some(f) = &scene.field else {
        panic!("windy has conditions")
    };
    let audio = render_channels(&scene.spec, &scene.plan, Some(f)).remove(0);
    let rate = 16_000.0;
    let g = f
        .wind
        .gusts
        .iter()
        .filter(|g| g.end_s < 118.0)
        .max_by(|a, b| a.rise_db.total_cmp(&b.rise_db))
        .unwrap();
    assert!(g.rise_db > 12.0, "{g:?}");
    let mid = (g.start_s + g.end_s) / 2.0;
    let seg = |a: f32, b: f32| &audio[(a * rate) as usize..(b * rate) as usize];
    let peak = seg(mid - 0.5, mid + 0.5);
    // The quietest second of the steady wind, away from any gust.
    let calm = (0..118)
        .map(|s| s as f32)
        .filter(|&s| {
            f.wind
                .gusts
                .iter()
                .all(|g| s + 1.0 < g.start_s || s > g.end_s)
        })
        .map(|s| seg(s, s + 1.0))
        .min_by(|a, b| {
            band_energy(a, rate, 40.0, 300.0).total_cmp(&band_energy(b, rate, 40.0, 300.0))
        })
        .unwrap();
    let high = band_energy(peak, rate, 2000.0, 6000.0) / band_energy(calm, rate, 2000.0, 6000.0);
    assert!(
        high > 10.0,
        "a {} dB gust raises 2-6 kHz only x{high}",
        g.rise_db
    );
}

#[test]
fn the_hum_lasts_the_whole_scene() {
    for preset in [Preset::Wildlife, Preset::Machinery] {
        let hum = prepare(&with(preset, 5, 60.0, Condition::Hum)).unwrap();
        let mains = hum
            .field
            .as_ref()
            .and_then(|f| f.mains.as_ref())
            .unwrap()
            .mains_hz;
        let none = prepare(&spec(preset, 5, 60.0)).unwrap();
        let a = render_channels(&hum.spec, &hum.plan, hum.field.as_ref()).remove(0);
        let b = render_audio(&none.spec, &none.plan);
        let rate = 16_000.0;
        let f = 2.0 * mains;
        for w in 0..12 {
            let (s, e) = (w * 80_000, (w + 1) * 80_000);
            let ratio = band_energy(&a[s..e], rate, f - 3.0, f + 3.0)
                / band_energy(&b[s..e], rate, f - 3.0, f + 3.0);
            assert!(
                ratio > 8.0,
                "{preset:?}: {f} Hz only x{ratio} in window {w}"
            );
        }
        // The machinery anomalies are still the only machine events.
        let classes = |p: &[Happening]| {
            p.iter()
                .filter(|h| h.kind.class() == "machinery_anomaly")
                .count()
        };
        assert_eq!(classes(&hum.plan), classes(&none.plan));
    }
}

fn frames(path: &Path) -> (usize, Vec<Vec<u8>>) {
    let bytes = std::fs::read(path).unwrap();
    let header_end = bytes.iter().position(|b| *b == b'\n').unwrap();
    let header = std::str::from_utf8(&bytes[..header_end]).unwrap();
    let dim = |p: char| -> usize {
        header
            .split(' ')
            .find_map(|f| f.strip_prefix(p))
            .unwrap()
            .parse()
            .unwrap()
    };
    let (w, h) = (dim('W'), dim('H'));
    let frames = bytes[header_end + 1..]
        .chunks(6 + w * h)
        .map(|c| c[6..].to_vec())
        .collect();
    (w, frames)
}

#[test]
fn night_frames_are_grey_low_contrast_and_noisy() {
    let t = tempfile::tempdir().unwrap();
    let only_camera = |s: SceneSpec| SceneSpec {
        audio: false,
        climate: false,
        ..s
    };
    generate(
        &only_camera(spec(Preset::Background, 9, 60.0)),
        &t.path().join("day"),
    )
    .unwrap();
    generate(
        &only_camera(with(Preset::Background, 9, 60.0, Condition::Night)),
        &t.path().join("night"),
    )
    .unwrap();
    // Local contrast of the ground: the mean difference between neighbouring
    // pixels of the bottom half, averaged over the frames (which takes the
    // noise out).
    let detail = |w: usize, f: &[Vec<u8>]| {
        let h = f[0].len() / w;
        let avg: Vec<f32> = (0..w * h)
            .map(|i| f.iter().map(|fr| f32::from(fr[i])).sum::<f32>() / f.len() as f32)
            .collect();
        let mut sum = 0.0;
        for y in h / 2..h {
            for x in 1..w {
                sum += (avg[y * w + x] - avg[y * w + x - 1]).abs();
            }
        }
        sum / ((h - h / 2) * (w - 1)) as f32
    };
    let (_, day) = frames(&t.path().join("day/camera.y4m"));
    let (_, night) = frames(&t.path().join("night/camera.y4m"));
    let jitter = |f: &[Vec<u8>]| {
        f.windows(2)
            .map(|p| {
                p[0].iter()
                    .zip(&p[1])
                    .map(|(a, b)| (f32::from(*a) - f32::from(*b)).abs())
                    .sum::<f32>()
                    / p[0].len() as f32
            })
            .sum::<f32>()
            / (f.len() - 1) as f32
    };
    let mean = |f: &[u8]| f.iter().map(|v| f32::from(*v)).sum::<f32>() / f.len() as f32;
    let (sn, sd) = (detail(80, &night), detail(80, &day));
    let (mn, md) = (mean(&night[0]), mean(&day[0]));
    let (jn, jd) = (jitter(&night), jitter(&day));
    assert!(
        sn < 0.6 * sd && mn < 0.7 * md && jn > 2.5 * jd,
        "ground detail {sn} vs {sd}, mean {mn} vs {md}, frame to frame {jn} vs {jd}"
    );
}

#[test]
fn vegetation_sways_in_the_wind_and_not_in_calm() {
    let t = tempfile::tempdir().unwrap();
    let moving = |c: Condition| {
        let s = SceneSpec {
            audio: false,
            climate: false,
            camera_fps: 5,
            ..with(Preset::Background, 12, 30.0, c)
        };
        let dir = t.path().join(c.as_str());
        generate(&s, &dir).unwrap();
        let (_, f) = frames(&dir.join("camera.y4m"));
        // Pixels that change by more than the noise between frames.
        f.windows(2)
            .map(|p| {
                p[0].iter()
                    .zip(&p[1])
                    .filter(|(a, b)| (i32::from(**a) - i32::from(**b)).abs() > 25)
                    .count()
            })
            .sum::<usize>()
    };
    let (calm, windy) = (moving(Condition::Calm), moving(Condition::Windy));
    assert!(windy > 20 * calm.max(1), "windy {windy}, calm {calm}");
}

#[test]
fn clouds_cool_the_enclosure_and_a_machine_warms_it() {
    use super::climate::Reading;
    let readings = |n: usize| -> Vec<Reading> {
        (0..n)
            .map(|k| Reading {
                t_s: k as f32 * 10.0,
                temperature_c: 20.0,
                humidity_pct: 60.0,
                pressure_hpa: 1010.0,
            })
            .collect()
    };
    let at = |r: &[Reading], t: f32| r[(t / 10.0) as usize].temperature_c;
    // Noon, a thick cloud from 600 to 1200 s.
    let sky = weather::Sky {
        overcast: 0.0,
        clouds: vec![(600.0, 1200.0, 0.8)],
    };
    let sun = enclosure::Enclosure {
        sun_c: 6.0,
        tau_s: 150.0,
        ..Default::default()
    };
    let mut r = readings(200);
    sun.apply(&mut r, &sky, 13.0);
    assert!(at(&r, 590.0) - at(&r, 600.0 + 240.0) > 2.5, "shade");
    assert!(at(&r, 1900.0) - at(&r, 1190.0) > 2.5, "sun again");
    assert!(r[60].humidity_pct < r[100].humidity_pct);
    // A machine started at 0 warms over minutes, cools slower than it warmed.
    let machine = enclosure::Enclosure {
        machine: Some(enclosure::MachineHeat {
            started_s: 0.0,
            heat_c: 4.0,
            tau_up_s: 200.0,
            tau_down_s: 800.0,
            loads: vec![(0.0, 1.0), (1500.0, 0.0)],
        }),
        tau_s: 150.0,
        ..Default::default()
    };
    let mut r = readings(400);
    machine.apply(&mut r, &weather::Sky::default(), 2.0);
    let rise = |t: f32| at(&r, t) - 20.0;
    assert!(rise(0.0) < 0.1 && rise(200.0) > 2.0 && rise(1490.0) > 3.8);
    assert!(rise(1500.0 + 200.0) > 2.8, "cools slowly: {}", rise(1700.0));
    assert!(rise(3900.0) < 0.2);
}

#[test]
fn windy_hum_is_the_windy_gales_over_the_hum() {
    let prep = |c: Condition| prepare(&with(Preset::Background, 9, 120.0, c)).unwrap();
    let (windy, both) = (prep(Condition::Windy), prep(Condition::WindyHum));
    let field = |s: &Scene| s.field.clone().unwrap();
    // The same gusts and labels as the windy condition ...
    assert_eq!(windy.plan, both.plan);
    assert_eq!(field(&windy).extra, field(&both).extra);
    // ... with the hum condition's machine under them.
    assert!(field(&windy).mains.is_none());
    let mains = field(&both).mains.unwrap().mains_hz;
    let render = |s: &Scene| render_channels(&s.spec, &s.plan, s.field.as_ref()).remove(0);
    let f = 2.0 * mains;
    let hum_band = |x: &[f32]| band_energy(x, 16_000.0, f - 3.0, f + 3.0);
    let (w, b) = (render(&windy), render(&both));
    assert!(
        // Loud enough to be heard over the gale in its strongest line.
        hum_band(&b) > 3.0 * hum_band(&w),
        "{f} Hz: {:e} with the hum, {:e} without",
        hum_band(&b),
        hum_band(&w)
    );
}
