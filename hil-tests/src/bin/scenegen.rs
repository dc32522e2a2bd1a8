//! `scenegen`: writes a scene directory (see `docs/scenes.md`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use hil_tests::scenegen::{Condition, Preset, SceneSpec, generate};

#[derive(Parser)]
#[command(
    name = "scenegen",
    about = "Writes a labelled scene for the node to replay",
    after_help = "\
Presets:
  demo        120 s: one wildlife, one human activity and one machinery anomaly event, a cloud shadow
  wildlife    bird song, barks and animals crossing the view, and background
  machinery   a machine running, with labelled anomalies (bearing faults that also heat it), and background
  human       speech and people walking through the view, and background
  background  wind, gusts, cloud shadows and rain only: a detector must stay quiet
  mixed       all classes in random order, with a machine running

Conditions (drawn from the seed, each part from its own random stream; none adds nothing):
  none    the preset's scene exactly as it has always been generated
  calm    light wind at the microphone (independent in each channel), sun on the enclosure,
          slight haze, sensor noise; no hum added
  windy   strong wind throughout (energy below a few hundred Hz) with gusts of seconds that
          spread broadband and overdrive the input; clouds passing over the sun (the view dims
          within seconds, the auto-exposure jumps, the enclosure cools by degrees); vegetation
          swaying in place
  hum     a machine humming at 50 or 60 Hz mains harmonics for the whole scene (a machine is
          added if the preset has none) and warming the enclosure over minutes, cooling
          exponentially when its load drops; its faults are only the preset's labelled
          machinery anomalies
  rain    rain (broadband hiss and impulsive drops) for most of the scene under an overcast
          sky, moderate wind, noisier darker frames, cooler and more humid
  night   starts at 22:30 UTC unless --start is given: infrared frames (grey, low contrast,
          noisy), a cold clear night, insect and frog choruses
  random  a mixture the seed picks: wind from calm to gale, rain or showers, insects, frogs,
          distant traffic and aircraft, hum, clouds, events overlapping other events, input
          gain changes and clipping, exposure jumps, infrared at night; the start hour and,
          unless --audio-rate, --channels, --camera-size or --camera-fps is given, the sample
          rate (8 to 48 kHz), channels, frame size and frame rate (1 to 5 fps)

Gusts of 10 dB or more, rain, aircraft and clouds over the sun are labelled background."
)]
struct Args {
    /// demo, wildlife, machinery, human, background or mixed.
    #[arg(long)]
    preset: Preset,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long)]
    seed: u64,
    /// Field conditions: none, calm, windy, hum, windy-hum, rain, night or random.
    #[arg(long, default_value = "none")]
    condition: Condition,
    /// Leave out the labelled events (wildlife, human activity, machinery
    /// anomalies); background episodes stay labelled.
    #[arg(long)]
    background_only: bool,
    /// Length in seconds (demo: 120, others: 600).
    #[arg(long)]
    duration: Option<f32>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Audio sample rate, Hz [default: 16000].
    #[arg(long)]
    audio_rate: Option<u32>,
    /// Audio channels, 1 or 2 [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=2))]
    channels: Option<u16>,
    /// Frame size, WxH [default: 80x60].
    #[arg(long)]
    camera_size: Option<String>,
    /// Frames per second [default: 2].
    #[arg(long)]
    camera_fps: Option<u32>,
    /// Seconds between climate readings.
    #[arg(long, default_value_t = 10.0)]
    climate_period: f32,
    /// Leave out the microphone.
    #[arg(long)]
    no_audio: bool,
    /// Leave out the camera.
    #[arg(long)]
    no_camera: bool,
    /// Leave out the climate sensor.
    #[arg(long)]
    no_climate: bool,
    /// Scene start, RFC 3339 [default: 2026-06-01T07:30:00Z; night:
    /// 2026-06-01T22:30:00Z; random: an hour drawn from the seed].
    #[arg(long)]
    start: Option<String>,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let mut spec = SceneSpec::new(a.preset, a.seed).with_condition(a.condition);
    if let Some(d) = a.duration {
        spec.duration_s = d;
    }
    spec.draw_formats = a.audio_rate.is_none()
        && a.channels.is_none()
        && a.camera_size.is_none()
        && a.camera_fps.is_none();
    if let Some(size) = &a.camera_size {
        let (w, h) = size
            .split_once('x')
            .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("--camera-size must be WxH, e.g. 80x60"))?;
        spec.camera_w = w;
        spec.camera_h = h;
    }
    if let Some(r) = a.audio_rate {
        spec.audio_rate = r;
    }
    if let Some(c) = a.channels {
        spec.channels = c;
    }
    if let Some(f) = a.camera_fps {
        spec.camera_fps = f;
    }
    spec.climate_period_s = a.climate_period;
    spec.audio = !a.no_audio;
    spec.camera = !a.no_camera;
    spec.climate = !a.no_climate;
    spec.background_only = a.background_only;
    if let Some(s) = a.start {
        spec.start = s;
    }
    let summary = generate(&spec, &a.out)?;
    // Written with `writeln!` so that a closed pipe is an error, not a panic.
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} labels",
        summary.dir.display(),
        summary.labels.len()
    )?;
    let s = &summary.spec;
    if s.condition != Condition::None {
        writeln!(
            out,
            "  condition {}, start {}, audio {} Hz x{}, camera {}x{} at {} fps",
            s.condition.as_str(),
            s.start,
            s.audio_rate,
            s.channels,
            s.camera_w,
            s.camera_h,
            s.camera_fps
        )?;
    }
    for l in &summary.labels {
        writeln!(out, "  {:>8.2} {:>8.2}  {}", l.start_s, l.end_s, l.class)?;
    }
    Ok(())
}
