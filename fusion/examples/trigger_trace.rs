//! Runs the detector's triggers over a scene's `audio.wav` (16-bit PCM,
//! any rate, channels averaged) and prints the audio activations: a
//! diagnostic for tuning the audio trigger on recordings.
//!
//!     cargo run --release -p fusion --example trigger_trace -- SCENE/audio.wav
//!
//! With `TRACE_BANDS` set it also prints, every 5 s (`TRACE_BANDS=K`:
//! every K half seconds), each band's excess over its floor, spread, floor
//! and margin (dB), as `excess/spread/floor/margin`.

use fusion::audio_trigger::AudioTrigger;
use fusion::{AudioChunk, AudioTriggerConfig};

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: trigger_trace AUDIO.wav")?;
    let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    let (rate, channels, data) = parse_wav(&bytes).ok_or("not a 16-bit PCM WAV")?;
    let mut t = AudioTrigger::new(&AudioTriggerConfig::default(), rate);
    let frame = channels.max(1) * 2;
    let samples: Vec<f32> = data
        .chunks_exact(frame)
        .map(|f| {
            f.chunks_exact(2)
                .map(|s| f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0)
                .sum::<f32>()
                / channels.max(1) as f32
        })
        .collect();
    // Every this many half-second chunks (TRACE_BANDS=K; empty: 10).
    let trace_every = std::env::var("TRACE_BANDS")
        .ok()
        .map(|v| v.parse::<usize>().unwrap_or(10).max(1));
    let chunk = rate as usize / 2;
    for (i, c) in samples.chunks(chunk).enumerate() {
        t.push(&AudioChunk {
            start_ms: i as i64 * 500,
            sample_rate: rate,
            samples: c.to_vec(),
        });
        for a in t.take() {
            println!(
                "{:8.1} {:8.1} {:5.2} {:?}",
                a.start_ms as f64 / 1e3,
                a.end_ms as f64 / 1e3,
                a.score,
                a.features
            );
        }
        if trace_every.is_some_and(|k| i % k == 0) {
            let n = t.levels_db().len();
            let row: Vec<String> = (0..n)
                .map(|b| {
                    format!(
                        "{:.0}/{:.0}/{:.0}/{:.0}",
                        t.levels_db()[b] - t.noise().floor_db(b),
                        t.noise().spread_db(b),
                        t.noise().floor_db(b),
                        t.margins_db()[b]
                    )
                })
                .collect();
            println!("t={:7.1} {}", i as f64 / 2.0, row.join(" "));
        }
    }
    t.finish();
    for a in t.take() {
        println!(
            "{:8.1} {:8.1} {:5.2} {:?}",
            a.start_ms as f64 / 1e3,
            a.end_ms as f64 / 1e3,
            a.score,
            a.features
        );
    }
    println!("windy frames {} of {}", t.windy_frames(), t.frames());
    Ok(())
}

/// (rate, channels, sample bytes) of a PCM WAV.
fn parse_wav(b: &[u8]) -> Option<(u32, usize, &[u8])> {
    if b.get(0..4)? != b"RIFF" || b.get(8..12)? != b"WAVE" {
        return None;
    }
    let (mut pos, mut fmt) = (12usize, None);
    while pos + 8 <= b.len() {
        let id = b.get(pos..pos + 4)?;
        let len = u32::from_le_bytes(b.get(pos + 4..pos + 8)?.try_into().ok()?) as usize;
        let body = b.get(pos + 8..(pos + 8 + len).min(b.len()))?;
        if id == b"fmt " {
            let ch = u16::from_le_bytes(body.get(2..4)?.try_into().ok()?) as usize;
            let rate = u32::from_le_bytes(body.get(4..8)?.try_into().ok()?);
            let bits = u16::from_le_bytes(body.get(14..16)?.try_into().ok()?);
            if bits != 16 {
                return None;
            }
            fmt = Some((rate, ch));
        } else if id == b"data" {
            let (rate, ch) = fmt?;
            return Some((rate, ch, body));
        }
        pos += 8 + len + (len & 1);
    }
    None
}
