//! CPU cost of turning one camera frame into the pipeline's 80×60 luma
//! image (`node::sensors::frames::reduce`), per pixel format, for a 640×480
//! frame: YUYV (UVC, uncompressed), MJPEG (UVC, compressed: a gradient plus
//! noise encoded at quality 85, so the decoder has real work) and I420
//! (`rpicam-vid --codec yuv420`).
//!
//! `cargo run --release -p node --example frame_decode_bench [ITERATIONS]`
//!
//! Wall time with `std::time::Instant` over ITERATIONS (default 500) frames
//! after a short warm-up, on one thread, so it equals CPU time on an idle
//! machine.

use std::hint::black_box;
use std::time::Instant;

use node::sensors::frames::{PixelFormat, reduce};

const W: u32 = 640;
const H: u32 = 480;

/// A gradient with noise, as a camera sees a dim scene.
fn test_luma() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..H)
        .flat_map(|y| (0..W).map(move |xx| (xx, y)))
        .map(|(xx, y)| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (x >> 24) as i32 % 24 - 12;
            let base = (xx * 200 / W + y * 40 / H) as i32;
            (base + noise).clamp(0, 255) as u8
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let luma = test_luma();

    let yuyv: Vec<u8> = luma
        .chunks(2)
        .flat_map(|p| [p[0], 128, p[1], 128])
        .collect();
    let mut i420 = luma.clone();
    i420.resize(luma.len() * 3 / 2, 128);
    // A colour JPEG (YCbCr 4:2:0, as UVC cameras send) of the same scene.
    let rgb: Vec<u8> = luma
        .iter()
        .enumerate()
        .flat_map(|(i, &v)| [v, v.saturating_add((i % 7) as u8), v / 2 + 60])
        .collect();
    let mut mjpeg = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut mjpeg, 85);
    enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
    enc.encode(&rgb, W as u16, H as u16, jpeg_encoder::ColorType::Rgb)?;

    println!("640x480 -> 80x60, {iterations} frames each, release build");
    println!(
        "{:<8} {:>12} {:>14} {:>10}",
        "format", "frame bytes", "us per frame", "fps (1 core)"
    );
    for (format, bytes) in [
        (PixelFormat::Yuyv, &yuyv),
        (PixelFormat::Mjpeg, &mjpeg),
        (PixelFormat::I420, &i420),
    ] {
        let f = reduce(format, W, H, bytes, 80, 60, 0)?;
        assert_eq!((f.width, f.height), (80, 60));
        for _ in 0..iterations / 10 + 1 {
            black_box(reduce(format, W, H, black_box(bytes), 80, 60, 0)?);
        }
        let t0 = Instant::now();
        for _ in 0..iterations {
            black_box(reduce(format, W, H, black_box(bytes), 80, 60, 0)?);
        }
        let us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
        println!(
            "{:<8} {:>12} {:>14.1} {:>12.0}",
            format.name(),
            bytes.len(),
            us,
            1e6 / us
        );
    }
    Ok(())
}
