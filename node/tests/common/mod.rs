//! Scene pieces shared by the node's replay tests.

use std::path::Path;

/// Sampling rate of [`write_tone_wav`]'s file, Hz.
pub const RATE: u32 = 16_000;

/// Writes `secs` seconds of 16-bit mono audio at [`RATE`] to `path`:
/// deterministic low-level white noise (so the trigger has a floor), with a
/// loud 3 kHz tone during each `(start_s, end_s)` of `tones`.
pub fn write_tone_wav(path: &Path, secs: u32, tones: &[(f64, f64)]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut lcg: u32 = 0x1234_5678;
    for i in 0..secs * RATE {
        lcg = lcg.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let noise = f64::from((lcg >> 16) as i16 as i32 % 60);
        let t = f64::from(i) / f64::from(RATE);
        let tone = if tones.iter().any(|&(a, b)| t >= a && t < b) {
            8_000.0 * (2.0 * std::f64::consts::PI * 3_000.0 * t).sin()
        } else {
            0.0
        };
        w.write_sample((noise + tone).round() as i16).unwrap();
    }
    w.finalize().unwrap();
}
