//! Runs the camera motion trigger over a scene's `camera.y4m` the way the
//! node sees it (frames reduced to the analysis size, one captured every
//! camera interval) and prints the camera activations: a diagnostic for the
//! motion trigger on recordings and other generators' scenes.
//!
//!     cargo run --release -p node --example motion_trace -- SCENE/camera.y4m [WIDTH HEIGHT [INTERVAL_MS]]
//!
//! Defaults: the node's `camera.analysis_width` × `analysis_height` (80 × 60)
//! and the power policy's normal camera interval (500 ms).

use std::io::Write;

use fusion::MotionConfig;
use fusion::motion::MotionTrigger;
use node::sensors::Camera;
use node::sensors::replay::ReplayCamera;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args
        .first()
        .ok_or("usage: motion_trace CAMERA.y4m [WIDTH HEIGHT [INTERVAL_MS]]")?;
    let num = |i: usize, default: u32| -> Result<u32, String> {
        args.get(i).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("not a number: {v}"))
        })
    };
    let (w, h, every) = (num(1, 80)?, num(2, 60)?, num(3, 500)?);
    let mut camera = ReplayCamera::open(std::path::Path::new(path), 0, w, h)
        .map_err(|e| format!("{path}: {e}"))?;
    let mut trigger = MotionTrigger::new(&MotionConfig::default());
    let mut out = std::io::stdout().lock();
    let mut t = 0i64;
    loop {
        let frame = camera.capture(t).map_err(|e| format!("{path}: {e}"))?;
        let Some(frame) = frame else { break };
        trigger.push(&frame);
        if print(&mut out, &mut trigger).is_err() {
            // The reader went away (`| head`).
            return Ok(());
        }
        t += i64::from(every);
    }
    trigger.finish();
    if print(&mut out, &mut trigger).is_ok() {
        let _ = writeln!(out, "light changes {}", trigger.light_changes());
    }
    Ok(())
}

fn print(out: &mut impl Write, t: &mut MotionTrigger) -> std::io::Result<()> {
    for a in t.take() {
        writeln!(
            out,
            "{:8.1} {:8.1} {:?}",
            a.start_ms as f64 / 1e3,
            a.end_ms as f64 / 1e3,
            a.features
        )?;
    }
    Ok(())
}
