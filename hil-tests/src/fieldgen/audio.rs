//! `audio.wav`: every sound source mixed block by block and streamed to a
//! 16-bit PCM file.
//!
//! Sources heard from one direction (calls, voices, footsteps, the machine,
//! the distant road and aircraft, rain, insects) are mixed once; on a stereo
//! recorder the second channel hears that mix a few samples later and a
//! little quieter. Wind and the preamplifier's self-noise are generated per
//! microphone. The recorder's input gain (with its steps) is applied last and
//! what exceeds full scale is clipped.

use std::path::Path;

use super::FieldgenError;
use super::ambience::{DistantVoice, InsectVoice, RainVoice, WindVoice};
use super::human::HumanVoice;
use super::machine::MachineVoice;
use super::plan::{AudioFormat, Plan};
use super::signal::{Noise, db};
use super::wildlife::CallVoice;

const BLOCK: usize = 4096;

/// A source that only sounds during its event.
enum EventVoice {
    Call(CallVoice),
    Human(HumanVoice),
}

impl EventVoice {
    fn span(&self) -> (f64, f64) {
        match self {
            EventVoice::Call(v) => v.span(),
            EventVoice::Human(v) => v.span(),
        }
    }

    fn add(&mut self, n0: u64, out: &mut [f32]) {
        match self {
            EventVoice::Call(v) => v.add(n0, out),
            EventVoice::Human(v) => v.add(n0, out),
        }
    }
}

/// Derives the seed of source number `k`.
fn sub_seed(seed: u64, k: u64) -> u64 {
    seed ^ (k + 1).wrapping_mul(0xA076_1D64_78BD_642F)
}

/// Writes the scene's audio to `path`.
pub fn write_wav(plan: &Plan, fmt: AudioFormat, path: &Path) -> Result<(), FieldgenError> {
    let wav_err = |e| FieldgenError::Wav {
        path: path.to_path_buf(),
        source: e,
    };
    let spec = hound::WavSpec {
        channels: fmt.channels,
        sample_rate: fmt.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).map_err(wav_err)?;
    let rate = fmt.rate;
    let rate_f = f64::from(rate);
    let total = (plan.duration * rate_f).round() as u64;
    let seed = plan.audio_seed;

    let mut events: Vec<EventVoice> = plan
        .calls
        .iter()
        .enumerate()
        .map(|(i, c)| EventVoice::Call(CallVoice::new(c, rate, sub_seed(seed, 100 + i as u64))))
        .chain(plan.people.iter().enumerate().map(|(i, h)| {
            EventVoice::Human(HumanVoice::new(h, rate, sub_seed(seed, 10_000 + i as u64)))
        }))
        .collect();
    events.sort_by(|a, b| a.span().0.total_cmp(&b.span().0));
    let mut events = events.into_iter().peekable();
    let mut live: Vec<EventVoice> = Vec::new();

    let mut machine = plan
        .machine
        .as_ref()
        .map(|m| MachineVoice::new(m, rate, sub_seed(seed, 1)));
    let mut distant = DistantVoice::new(&plan.distant, plan.duration, rate, sub_seed(seed, 2));
    let mut rain = RainVoice::new(&plan.rain, rate, sub_seed(seed, 3));
    let mut insects = (!plan.insects.is_empty()).then(|| InsectVoice::new(&plan.insects, rate));
    let turb = sub_seed(seed, 4);
    let channels = usize::from(fmt.channels.max(1));
    let mut winds: Vec<WindVoice> = (0..channels)
        .map(|c| WindVoice::new(&plan.wind, rate, sub_seed(seed, 5 + c as u64), turb))
        .collect();
    let mut hiss = Noise::new(sub_seed(seed, 9));
    let mut pick = Noise::new(sub_seed(seed, 10));
    let self_noise = db(-72.0 + 12.0 * pick.unit());
    // The second microphone: a little later, a little quieter.
    let delay = (pick.unit() * 12.0) as usize + 1;
    let second_gain = 0.8 + 0.2 * pick.unit();

    let mut common = vec![0f32; BLOCK];
    let mut history = vec![0f32; delay];
    let mut chans = vec![vec![0f32; BLOCK]; channels];
    let mut n0 = 0u64;
    while n0 < total {
        let len = (total - n0).min(BLOCK as u64) as usize;
        let t0 = n0 as f64 / rate_f;
        let t1 = (n0 + len as u64) as f64 / rate_f;
        let common = &mut common[..len];
        common.fill(0.0);

        while let Some(e) = events.next_if(|e| e.span().0 < t1) {
            live.push(e);
        }
        for e in &mut live {
            e.add(n0, common);
        }
        live.retain(|e| e.span().1 > t1);
        if let Some(m) = &mut machine {
            m.add(n0, common);
        }
        distant.add(n0, common);
        rain.add(n0, common);
        if let Some(i) = &mut insects {
            i.add(n0, common);
        }

        for (c, ch) in chans.iter_mut().enumerate() {
            let ch = &mut ch[..len];
            if c == 0 {
                ch.copy_from_slice(common);
            } else {
                for (i, o) in ch.iter_mut().enumerate() {
                    let x = if i < delay {
                        history[i]
                    } else {
                        common[i - delay]
                    };
                    *o = second_gain * x;
                }
            }
            winds[c].add(n0, ch);
            for o in ch.iter_mut() {
                *o += self_noise * hiss.normal();
            }
        }
        if len >= delay {
            history.copy_from_slice(&common[len - delay..]);
        }

        let g0 = db(plan.gain_db.at(t0));
        let g1 = db(plan.gain_db.at(t1));
        let mut w = writer.get_i16_writer((len * channels) as u32);
        for i in 0..len {
            let g = g0 + (g1 - g0) * (i as f32 / len as f32);
            for ch in &chans {
                let x = (ch[i] * g).clamp(-1.0, 1.0);
                w.write_sample((x * 32767.0).round() as i16);
            }
        }
        w.flush().map_err(wav_err)?;
        n0 += len as u64;
    }
    writer.finalize().map_err(wav_err)?;
    Ok(())
}
