//! `fieldgen`: writes a scene of the second generated family (see
//! `hil_tests::fieldgen` and docs/scenes.md) and prints its labels.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hil_tests::fieldgen::{self, Condition, Options};

/// Writes a generated field scene (audio, camera, climate, labels) from a
/// seed. Options not given are chosen by the seed.
#[derive(Parser, Debug)]
#[command(name = "fieldgen", version)]
struct Args {
    /// Seed: the same seed and options give the same bytes.
    #[arg(long)]
    seed: u64,
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Length of the scene, seconds.
    #[arg(long, default_value_t = 600.0)]
    duration: f64,
    /// Dominant condition: calm, windy, hum, rain, night or random.
    #[arg(long, default_value = "random")]
    condition: String,
    /// No labelled class events (background episodes still happen).
    #[arg(long)]
    background_only: bool,
    /// Audio sampling rate, Hz (e.g. 8000, 16000, 22050, 32000, 44100, 48000).
    #[arg(long)]
    audio_rate: Option<u32>,
    /// Audio channels, 1 or 2.
    #[arg(long)]
    channels: Option<u16>,
    /// Camera frame size, WxH (e.g. 160x120).
    #[arg(long)]
    camera_size: Option<String>,
    /// Camera frames per second.
    #[arg(long)]
    camera_fps: Option<u32>,
    /// Leave out audio.wav.
    #[arg(long)]
    no_audio: bool,
    /// Leave out camera.y4m.
    #[arg(long)]
    no_camera: bool,
    /// Leave out climate.csv.
    #[arg(long)]
    no_climate: bool,
    /// Scene start, RFC 3339 (default: chosen by the seed).
    #[arg(long)]
    start: Option<String>,
    /// Daylight frames say the exposure the camera's auto-exposure chose
    /// (`FRAME XEXPOSURE=...` in camera.y4m), as a camera that reports it.
    #[arg(long)]
    report_exposure: bool,
}

fn options(a: &Args) -> Result<Options, fieldgen::FieldgenError> {
    Ok(Options {
        seed: a.seed,
        duration_s: a.duration,
        condition: a.condition.parse::<Condition>()?,
        background_only: a.background_only,
        audio_rate: a.audio_rate,
        channels: a.channels,
        camera_size: a
            .camera_size
            .as_deref()
            .map(fieldgen::parse_size)
            .transpose()?,
        camera_fps: a.camera_fps,
        audio: !a.no_audio,
        camera: !a.no_camera,
        climate: !a.no_climate,
        start: a.start.clone(),
        report_exposure: a.report_exposure,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = options(&args).and_then(|o| fieldgen::generate(&o, &args.out));
    match result {
        Ok(s) => {
            let p = &s.plan;
            println!(
                "fieldgen: {} ({} s, condition {}, start {})",
                args.out.display(),
                p.duration,
                p.condition,
                p.start_text()
            );
            if let Some(a) = p.audio {
                println!("  audio.wav    {} Hz, {} channel(s)", a.rate, a.channels);
            }
            if let Some(c) = p.camera {
                println!(
                    "  camera.y4m   {}x{} at {} fps ({})",
                    c.width,
                    c.height,
                    c.fps,
                    if c.chroma_420 { "4:2:0" } else { "mono" }
                );
            }
            if let Some(step) = p.climate_step {
                println!("  climate.csv  every {step} s");
            }
            println!("  labels ({}):", p.labels.len());
            for l in &p.labels {
                println!(
                    "    {:>9.2} {:>9.2}  {:<17} {}",
                    l.start, l.end, l.class, l.what
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fieldgen: {e}");
            ExitCode::from(2)
        }
    }
}
