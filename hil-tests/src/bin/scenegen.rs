//! `scenegen`: writes a scene directory (see `docs/scenes.md`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use hil_tests::scenegen::{Preset, SceneSpec, generate};

#[derive(Parser)]
#[command(
    name = "scenegen",
    about = "Writes a labelled scene for the node to replay"
)]
struct Args {
    /// demo, wildlife, machinery, human, background or mixed.
    #[arg(long)]
    preset: Preset,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long)]
    seed: u64,
    /// Length in seconds (demo: 120, others: 600).
    #[arg(long)]
    duration: Option<f32>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Audio sample rate, Hz.
    #[arg(long, default_value_t = 16_000)]
    audio_rate: u32,
    /// Frame size, WxH.
    #[arg(long, default_value = "80x60")]
    camera_size: String,
    /// Frames per second.
    #[arg(long, default_value_t = 2)]
    camera_fps: u32,
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
    /// Scene start, RFC 3339.
    #[arg(long)]
    start: Option<String>,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let mut spec = SceneSpec::new(a.preset, a.seed);
    if let Some(d) = a.duration {
        spec.duration_s = d;
    }
    let (w, h) = a
        .camera_size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--camera-size must be WxH, e.g. 80x60"))?;
    spec.camera_w = w;
    spec.camera_h = h;
    spec.audio_rate = a.audio_rate;
    spec.camera_fps = a.camera_fps;
    spec.climate_period_s = a.climate_period;
    spec.audio = !a.no_audio;
    spec.camera = !a.no_camera;
    spec.climate = !a.no_climate;
    if let Some(s) = a.start {
        spec.start = s;
    }
    let summary = generate(&spec, &a.out)?;
    println!("{}: {} labels", summary.dir.display(), summary.labels.len());
    for l in &summary.labels {
        println!("  {:>8.2} {:>8.2}  {}", l.start_s, l.end_s, l.class);
    }
    Ok(())
}
