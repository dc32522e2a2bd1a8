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
