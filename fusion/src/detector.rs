//! The detector: the three triggers, and the merger that joins their
//! activations into events once no future input can change them.
//!
//! Determinism: every trigger depends only on its own input sequence, and
//! each reports a *safe time* before which it can no longer start or extend
//! an activation. An event is finalised only when it ends (plus the merge
//! gap) before the smallest safe time of the modalities still open, so how
//! pushes of different modalities interleave never changes the output.
//!
//! Every event is emitted with the triggers' class, background included:
//! whoever holds the classifier decides what to keep (the fusion model,
//! when one runs, sees the events the rules alone would call wind or rain).

use std::collections::VecDeque;

use messages::{KeyFeatures, ModalityScores, Permille};

use crate::activation::{Activation, AudioFeatures, Features};
use crate::audio_trigger::AudioTrigger;
use crate::classify::{Evidence, classify};
use crate::climate_trigger::ClimateTrigger;
use crate::config::DetectorConfig;
use crate::light::LightHistory;
use crate::motion::MotionTrigger;
use crate::{AudioChunk, ClimateSample, Detection, GrayFrame, Modality};

/// Counters of what the detector saw and refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DetectorStats {
    /// Audio chunks at another sample rate than the detector's (ignored).
    pub audio_rate_mismatch: u64,
    /// Frames refused (size mismatch, time going backwards).
    pub bad_frames: u64,
    /// Climate readings refused (not finite, time going backwards).
    pub bad_climate: u64,
    /// Events finalised.
    pub events: u64,
    /// Events closed at `merge.max_event_ms` while activations went on.
    pub events_cut_at_max: u64,
    /// Heat rises that came after the view brightened
    /// (`climate.sun_brightening`): the sun on the enclosure, neither
    /// emitted nor context of the events they overlap.
    pub sun_heat_rises: u64,
}

#[derive(Debug, Clone, Copy)]
struct ModalityState {
    closed: bool,
    available: bool,
    /// Availability changes, stamped with the modality's own time.
    ever_available: bool,
}

/// The trigger-only detector.
pub struct Detector {
    cfg: DetectorConfig,
    rate: u32,
    audio: AudioTrigger,
    motion: MotionTrigger,
    climate: ClimateTrigger,
    /// The view's light, to tell the sun's heat from a machine's.
    light: LightHistory,
    state: [ModalityState; 3],
    /// Availability changes per modality: (modality time, available).
    avail_log: [Vec<(i64, bool)>; 3],
    /// Available again, from the time of the modality's next input.
    resuming: [bool; 3],
    pending: Vec<Activation>,
    /// Climate activations (by start) already attached to an event as
    /// context.
    climate_used: Vec<i64>,
    /// Climate activations (by start) kept out of events' context as the
    /// sun, with how much the view had brightened.
    sun_rises: Vec<(i64, f32)>,
    temps: VecDeque<(i64, f32)>,
    out: Vec<Detection>,
    stats: DetectorStats,
}

fn idx(m: Modality) -> usize {
    match m {
        Modality::Audio => 0,
        Modality::Camera => 1,
        Modality::Climate => 2,
    }
}

fn audio_of(a: &Activation) -> Option<AudioFeatures> {
    match a.features {
        Features::Audio(f) => Some(f),
        _ => None,
    }
}

/// Two audio activations are repeats of one call: neither has much energy
/// below 300 Hz (wind gusts and rumble, which are alike too, never bridge
/// events this way), their dominant frequencies are within half an octave
/// and their energy splits over the low, mid and high bands differ by at
/// most 0.4 in total.
fn sounds_alike(a: &AudioFeatures, b: &AudioFeatures) -> bool {
    const MAX_LOW_SHARE: f32 = 0.15;
    if !(a.peak_hz > 0.0 && b.peak_hz > 0.0)
        || a.band_share[0] > MAX_LOW_SHARE
        || b.band_share[0] > MAX_LOW_SHARE
    {
        return false;
    }
    let octaves = (a.peak_hz / b.peak_hz).log2().abs();
    let shares: f32 = a
        .band_share
        .iter()
        .zip(&b.band_share)
        .map(|(x, y)| (x - y).abs())
        .sum();
    octaves <= 0.5 && shares <= 0.4
}

impl Detector {
    /// A detector for audio at `audio_sample_rate` Hz.
    pub fn new(cfg: &DetectorConfig, audio_sample_rate: u32) -> Self {
        let st = ModalityState {
            closed: false,
            available: true,
            ever_available: true,
        };
        Detector {
            cfg: cfg.clone(),
            rate: audio_sample_rate,
            audio: AudioTrigger::new(&cfg.audio, audio_sample_rate),
            motion: MotionTrigger::new(&cfg.motion),
            climate: ClimateTrigger::new(&cfg.climate),
            light: LightHistory::new(),
            state: [st; 3],
            avail_log: [Vec::new(), Vec::new(), Vec::new()],
            resuming: [false; 3],
            pending: Vec::new(),
            climate_used: Vec::new(),
            sun_rises: Vec::new(),
            temps: VecDeque::new(),
            out: Vec::new(),
            stats: DetectorStats::default(),
        }
    }

    /// Feeds audio.
    pub fn push_audio(&mut self, chunk: &AudioChunk) {
        if chunk.sample_rate != self.rate {
            self.stats.audio_rate_mismatch += 1;
            tracing::warn!(
                expected = self.rate,
                got = chunk.sample_rate,
                "audio chunk at the wrong rate ignored"
            );
            return;
        }
        self.resumed(Modality::Audio, chunk.start_ms);
        self.audio.push(chunk);
        self.pending.extend(self.audio.take());
    }

    /// Audio activations confirmed so far: it rises as soon as the audio
    /// trigger is sure it hears something, before the activation ends.
    pub fn audio_heard(&self) -> u64 {
        self.audio.confirmed()
    }

    /// A modality available again has its first input at `t_ms`: that is
    /// when it counts as available.
    fn resumed(&mut self, m: Modality, t_ms: i64) {
        let i = idx(m);
        if std::mem::take(&mut self.resuming[i]) {
            self.avail_log[i].push((t_ms, true));
        }
    }

    /// What the motion trigger saw in the last frame fed, for the camera
    /// features ([`crate::features::FeatureBank::push_motion`]).
    pub fn frame_motion(&self) -> Option<&crate::motion::FrameMotion> {
        self.motion.frame_motion()
    }

    /// Feeds a camera frame.
    pub fn push_frame(&mut self, frame: &GrayFrame) {
        self.resumed(Modality::Camera, frame.t_ms);
        if !self.motion.push(frame) {
            self.stats.bad_frames += 1;
            tracing::warn!(
                t_ms = frame.t_ms,
                width = frame.width,
                height = frame.height,
                len = frame.luma.len(),
                "malformed frame ignored"
            );
            return;
        }
        self.light.push(frame);
        self.pending.extend(self.motion.take());
    }

    /// Feeds a climate reading.
    pub fn push_climate(&mut self, s: &ClimateSample) {
        self.resumed(Modality::Climate, s.t_ms);
        if !self.climate.push(s) {
            self.stats.bad_climate += 1;
            tracing::warn!(t_ms = s.t_ms, "malformed climate reading ignored");
            return;
        }
        self.temps.push_back((s.t_ms, s.temperature_c));
        while self.temps.len() > 720 {
            self.temps.pop_front();
        }
        self.pending.extend(self.climate.take());
    }

    fn modality_time(&self, m: Modality) -> i64 {
        match m {
            Modality::Audio => self.audio.safe_ms(),
            Modality::Camera => self.motion.safe_ms(),
            Modality::Climate => self.climate.safe_ms(),
        }
    }

    /// Marks a modality (un)available: absent, degraded or off by policy. An
    /// unavailable modality no longer holds events back, and events while it
    /// is unavailable carry no score for it. Available again, it counts as
    /// available from its next input (not from where it stopped), and the
    /// camera's motion trigger starts its background again from its next
    /// frame: the scene may have changed while nobody looked.
    pub fn set_available(&mut self, m: Modality, available: bool) {
        let i = idx(m);
        if self.state[i].available == available {
            return;
        }
        if !available {
            // Whatever it was seeing ends here.
            match m {
                Modality::Audio => self.audio.finish(),
                Modality::Camera => self.motion.finish(),
                Modality::Climate => self.climate.finish(),
            }
            self.collect();
        }
        let t = self.modality_time(m);
        if available && !self.avail_log[i].is_empty() {
            self.resuming[i] = true;
            if m == Modality::Camera {
                self.motion.restart();
            }
        } else {
            self.resuming[i] = false;
            self.avail_log[i].push((t, available));
        }
        self.state[i].available = available;
        if !available && self.avail_log[i].len() == 1 && t == i64::MIN {
            self.state[i].ever_available = false;
        } else if available {
            self.state[i].ever_available = true;
        }
    }

    /// The modality's input has ended.
    pub fn close(&mut self, m: Modality) {
        match m {
            Modality::Audio => self.audio.finish(),
            Modality::Camera => self.motion.finish(),
            Modality::Climate => self.climate.finish(),
        }
        self.collect();
        self.state[idx(m)].closed = true;
    }

    fn collect(&mut self) {
        self.pending.extend(self.audio.take());
        self.pending.extend(self.motion.take());
        self.pending.extend(self.climate.take());
    }

    /// The time before which every event is final, if any modality is open.
    pub fn watermark_ms(&self) -> Option<i64> {
        Modality::ALL
            .iter()
            .filter(|m| {
                let s = self.state[idx(**m)];
                !s.closed && s.available
            })
            .map(|&m| match m {
                Modality::Climate => self.climate_hold_ms(),
                _ => self.modality_time(m),
            })
            .min()
    }

    /// How far the climate holds events back: until no new rise could
    /// start before them (the oldest reading of the climate trigger's rate
    /// window, a minute back by default). While the microphone listens, a
    /// heat rise is context (see [`Detector::finalise`]): an open rise is
    /// attached as far as it has come, and events never wait for it to end
    /// (a machine warming for half an hour would hold every event heard
    /// meanwhile, and their sound would be gone from the feature history
    /// by then). A rise that began without the microphone clusters like
    /// any activation and holds events until it closes.
    fn climate_hold_ms(&self) -> i64 {
        match self.climate.open_so_far() {
            Some(o) if !self.available_at(Modality::Audio, o.start_ms) => o.start_ms,
            _ => self.climate.next_start_ms(),
        }
    }

    /// Events finalised so far, in start order.
    pub fn poll(&mut self) -> Vec<Detection> {
        self.collect();
        let safe = self.watermark_ms().unwrap_or(i64::MAX);
        self.finalise(safe);
        std::mem::take(&mut self.out)
    }

    /// End of input: finalises everything.
    pub fn finish(&mut self) -> Vec<Detection> {
        self.audio.finish();
        self.motion.finish();
        self.climate.finish();
        self.collect();
        self.finalise(i64::MAX);
        std::mem::take(&mut self.out)
    }

    /// No event finalised later can start before this time: the earliest
    /// of the watermark and the start of every activation not yet
    /// finalised (`i64::MAX` once nothing is open or pending).
    pub fn next_start_bound_ms(&self) -> i64 {
        let pending = self.pending.iter().map(|a| a.start_ms).min();
        // An open heat rise that no event took as context may yet be an
        // event of its own, from its start.
        let open = self
            .climate
            .open_so_far()
            .filter(|o| {
                !self.climate_used.contains(&o.start_ms)
                    && !self.sun_rises.iter().any(|(k, _)| *k == o.start_ms)
            })
            .map(|o| o.start_ms);
        self.watermark_ms()
            .unwrap_or(i64::MAX)
            .min(pending.unwrap_or(i64::MAX))
            .min(open.unwrap_or(i64::MAX))
    }

    /// The longest an event may be (`merge.max_event_ms`), ms.
    pub fn max_event_ms(&self) -> u32 {
        self.cfg.merge.max_event_ms
    }

    /// Whether events the triggers class as background are to be kept when
    /// no model gives its verdict (`merge.report_background`).
    pub fn reports_background(&self) -> bool {
        self.cfg.merge.report_background
    }

    /// Counters.
    pub fn stats(&self) -> DetectorStats {
        self.stats
    }

    fn finalise(&mut self, safe: i64) {
        if self.pending.is_empty() {
            return;
        }
        self.pending
            .sort_by_key(|a| (a.start_ms, idx(a.modality), a.end_ms));
        // While the microphone listens, climate is context: it never
        // extends or joins events (sun on the enclosure, a machine cooling
        // for minutes); it is attached to the events it overlaps, and a rise
        // that overlaps none is an event of its own. Without audio, climate
        // activations cluster like the others.
        let pending = std::mem::take(&mut self.pending);
        let (climate, main): (Vec<Activation>, Vec<Activation>) =
            pending.into_iter().partition(|a| {
                a.modality == Modality::Climate && self.available_at(Modality::Audio, a.start_ms)
            });
        // A rise still open is context as far as it has come.
        let open_rise = self
            .climate
            .open_so_far()
            .filter(|o| self.available_at(Modality::Audio, o.start_ms));
        let gap = i64::from(self.cfg.merge.gap_ms);
        let repeat_gap = i64::from(self.cfg.merge.repeat_gap_ms);
        let max = i64::from(self.cfg.merge.max_event_ms);
        let mut taken = 0;
        while taken < main.len() {
            let mut end = main[taken].end_ms;
            let start = main[taken].start_ms;
            let mut cut = false;
            // The cluster's latest audio activation: a later one that sounds
            // alike joins within `repeat_gap` (the next song of a bout).
            let mut last_audio = audio_of(&main[taken]).map(|f| (main[taken].end_ms, f));
            let mut j = taken + 1;
            while j < main.len() {
                let next = &main[j];
                let near = next.start_ms <= end + gap;
                let repeat = match (last_audio, audio_of(next)) {
                    (Some((t, a)), Some(b)) => {
                        next.start_ms <= t + repeat_gap && sounds_alike(&a, &b)
                    }
                    _ => false,
                };
                if !near && !repeat {
                    break;
                }
                if main[j].end_ms.max(end) - start > max {
                    cut = true;
                    break;
                }
                end = end.max(next.end_ms);
                if let Some(f) = audio_of(next) {
                    last_audio = Some((next.end_ms, f));
                }
                j += 1;
            }
            // A modality lagging behind may still start an activation at its
            // safe time, so a cluster is complete only once that is past it
            // (and past the reach of a repeat of its last sound).
            let reach = last_audio.map_or(i64::MIN, |(t, _)| t.saturating_add(repeat_gap));
            let complete = end.saturating_add(gap).max(reach) < safe;
            if !complete {
                break;
            }
            if cut {
                // Cut at the length limit: a symptom (something that never
                // stops, or a floor that never learned it). Counted once the
                // event is final: an incomplete cluster is looked at again
                // on every pass.
                self.stats.events_cut_at_max += 1;
                tracing::info!(
                    start_ms = start,
                    end_ms = end,
                    max_event_ms = max,
                    "event cut at its maximum length"
                );
            }
            // Heat the sun explains is no evidence of the event it
            // overlaps: a gust heard while the sun warms the enclosure is
            // not a machine warming up.
            let mut context = Vec::new();
            let mut heat_from_sun = false;
            for c in climate
                .iter()
                .chain(&open_rise)
                .filter(|c| c.start_ms <= end + gap && c.end_ms >= start - gap)
            {
                let key = c.start_ms;
                if self.sun_rises.iter().any(|(k, _)| *k == key) {
                    heat_from_sun = true;
                    continue;
                }
                if !self.climate_used.contains(&key) {
                    if let Some(brightening) = self.sun_brightening(c.start_ms) {
                        self.sun_rises.push((key, brightening));
                        heat_from_sun = true;
                        continue;
                    }
                    self.climate_used.push(key);
                }
                context.push(c.clone());
            }
            let cluster: Vec<Activation> = main[taken..j].to_vec();
            self.emit(&cluster, &context, heat_from_sun);
            taken = j;
        }
        // Climate activations that no later event can overlap are done
        // with: one that was context of no event is an event of its own
        // (heat with no sound or motion to go with it), never joined to
        // others.
        let horizon = main.get(taken).map_or(safe, |a| a.start_ms.min(safe));
        self.pending = main.into_iter().skip(taken).collect();
        for c in climate {
            if c.end_ms.saturating_add(gap) >= horizon {
                self.pending.push(c);
            } else if let Some(i) = self.climate_used.iter().position(|&u| u == c.start_ms) {
                self.climate_used.swap_remove(i);
            } else if let Some(i) = self.sun_rises.iter().position(|(k, _)| *k == c.start_ms) {
                let (_, brightening) = self.sun_rises.swap_remove(i);
                self.count_sun(c.start_ms, c.end_ms, brightening);
            } else {
                self.emit(std::slice::from_ref(&c), &[], false);
            }
        }
        self.out.sort_by_key(|d| d.start_ms);
    }

    fn available_at(&self, m: Modality, t: i64) -> bool {
        let i = idx(m);
        if !self.state[i].ever_available && self.avail_log[i].is_empty() {
            return false;
        }
        let mut a = true;
        for &(since, av) in &self.avail_log[i] {
            if since <= t {
                a = av;
            }
        }
        a
    }

    /// Whether a cluster is heat alone that the sun explains: climate
    /// activations only, and the view had brightened by
    /// `climate.sun_brightening` when the rise started.
    fn sun_heat(&mut self, cluster: &[Activation], context: &[Activation]) -> bool {
        let heat_alone = context.is_empty()
            && !cluster.is_empty()
            && cluster.iter().all(|a| a.modality == Modality::Climate);
        if !heat_alone {
            return false;
        }
        let start = cluster.iter().map(|a| a.start_ms).min().unwrap_or(0);
        let Some(brightening) = self.sun_brightening(start) else {
            return false;
        };
        let end = cluster.iter().map(|a| a.end_ms).max().unwrap_or(start);
        self.count_sun(start, end, brightening);
        true
    }

    /// How much the view had brightened when a heat rise started at
    /// `start_ms`, if that is at least `climate.sun_brightening` (the test
    /// on): the sun on the enclosure.
    fn sun_brightening(&self, start_ms: i64) -> Option<f32> {
        let limit = self.cfg.climate.sun_brightening;
        if limit <= 0.0 {
            return None;
        }
        self.light
            .brightening(start_ms)
            .filter(|&brightening| brightening >= limit)
    }

    fn count_sun(&mut self, start_ms: i64, end_ms: i64, brightening: f32) {
        self.stats.sun_heat_rises += 1;
        tracing::info!(
            start_ms,
            end_ms,
            brightening,
            "heat rise after the view brightened: the sun on the enclosure, not an event"
        );
    }

    fn emit(&mut self, cluster: &[Activation], context: &[Activation], heat_from_sun: bool) {
        let start = cluster.iter().map(|a| a.start_ms).min().unwrap_or(0);
        let end = cluster
            .iter()
            .map(|a| a.end_ms)
            .max()
            .unwrap_or(start)
            .max(start);
        if end - start < i64::from(self.cfg.merge.min_event_ms) || self.sun_heat(cluster, context) {
            return;
        }
        let mut ev = Evidence::default();
        let mut best = [0f32; 3];
        let (mut audio_start, mut audio_end) = (i64::MAX, i64::MIN);
        for a in cluster.iter().chain(context) {
            let i = idx(a.modality);
            let stronger = a.score >= best[i];
            best[i] = best[i].max(a.score);
            match a.features {
                Features::Audio(f) => {
                    audio_start = audio_start.min(a.start_ms);
                    audio_end = audio_end.max(a.end_ms);
                    if stronger {
                        ev.audio = Some(f);
                    }
                }
                Features::Motion(f) => {
                    let m = ev.motion.get_or_insert(f);
                    if f.max_area > m.max_area {
                        m.max_area = f.max_area;
                        m.centroid = f.centroid;
                    }
                    m.max_height = m.max_height.max(f.max_height);
                }
                Features::Climate(f) => {
                    let c = ev.climate.get_or_insert(f);
                    c.temp_delta_c = c.temp_delta_c.max(f.temp_delta_c);
                    c.max_rate_c_per_min = c.max_rate_c_per_min.max(f.max_rate_c_per_min);
                }
            }
        }
        ev.audio_ms = if ev.audio.is_some() {
            (audio_end - audio_start).max(0)
        } else {
            0
        };
        let (class, confidence) = classify(&ev);
        let score = |m: Modality| {
            self.available_at(m, start)
                .then(|| Permille::from_fraction(best[idx(m)]))
        };
        let scores = ModalityScores {
            audio: score(Modality::Audio),
            camera: score(Modality::Camera),
            climate: score(Modality::Climate),
        };
        let temp_at = self
            .temps
            .iter()
            .filter(|(t, _)| *t >= start && *t <= end.max(start))
            .map(|(_, v)| *v)
            .fold((0f32, 0u32), |(s, n), v| (s + v, n + 1));
        let temp_c = ev
            .climate
            .map(|c| c.mean_temp_c)
            .or((temp_at.1 > 0).then(|| temp_at.0 / temp_at.1 as f32));
        let c100 = |v: f32| {
            (v * 100.0)
                .round()
                .clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16
        };
        let features = KeyFeatures {
            audio_snr_db10: ev
                .audio
                .map(|a| (a.peak_snr_db * 10.0).round().clamp(0.0, 32_000.0) as i16),
            audio_peak_hz: ev
                .audio
                .map(|a| a.peak_hz.round().clamp(0.0, 65_535.0) as u16),
            motion_area: ev.motion.map(|m| Permille::from_fraction(m.max_area)),
            motion_centroid: ev.motion.map(|m| {
                (
                    (m.centroid.0 * 255.0).round() as u8,
                    (m.centroid.1 * 255.0).round() as u8,
                )
            }),
            temp_delta_c100: ev.climate.map(|c| c100(c.temp_delta_c)),
            temp_c100: temp_c.map(c100),
        };
        self.stats.events += 1;
        // A heat rise ends at its highest reading, not when its rate over
        // the window has fallen: the span stays for the features.
        let settled = cluster
            .iter()
            .map(Activation::settled_end_ms)
            .max()
            .unwrap_or(end)
            .clamp(start, end);
        self.out.push(Detection {
            start_ms: start,
            end_ms: settled,
            span_end_ms: end,
            class,
            confidence,
            scores,
            features,
            heat_from_sun,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::EventClass;
    use rand::{Rng, SeedableRng};

    /// 60 s: noise, a bird chirp burst at 20 s, a blob crossing at 19..25 s,
    /// a machine knocking from 40 s with heat rising.
    fn inputs() -> (Vec<AudioChunk>, Vec<GrayFrame>, Vec<ClimateSample>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let rate = 16_000;
        let mut x: Vec<f32> = (0..rate * 60)
            .map(|_| (rng.random::<f32>() - 0.5) * 0.01)
            .collect();
        for call in 0..5 {
            let s0 = (20.0 + call as f32 * 0.4) * rate as f32;
            let mut ph = 0f32;
            for i in 0..3200 {
                let f = 3000.0 + 1000.0 * i as f32 / 3200.0;
                ph += 2.0 * std::f32::consts::PI * f / rate as f32;
                x[s0 as usize + i] += 0.2 * ph.sin();
            }
        }
        // Knocks at 10 Hz ringing a 2.5 kHz resonance, from 40 s to 58 s.
        for k in 0..180 {
            let s0 = (40.0 + k as f32 * 0.1) * rate as f32;
            for i in 0..400 {
                let t = i as f32 / rate as f32;
                x[s0 as usize + i] +=
                    0.15 * (-t * 150.0).exp() * (2.0 * std::f32::consts::PI * 2500.0 * t).sin();
            }
        }
        let audio = x
            .chunks(8000)
            .enumerate()
            .map(|(i, c)| AudioChunk {
                start_ms: i as i64 * 500,
                sample_rate: rate as u32,
                samples: c.to_vec(),
            })
            .collect();
        let frames = (0..120)
            .map(|i| {
                let mut px: Vec<u8> = (0..80 * 60).map(|j| (100 + (j * 31) % 19) as u8).collect();
                if (38..50).contains(&i) {
                    let x0 = 5 + (i - 38) * 5;
                    for y in 30..34 {
                        for xx in x0..x0 + 5 {
                            px[y * 80 + xx] = 20;
                        }
                    }
                }
                GrayFrame {
                    t_ms: i as i64 * 500,
                    width: 80,
                    height: 60,
                    luma: px,
                    exposure: None,
                }
            })
            .collect();
        let climate = (0..60)
            .map(|i| {
                let t = i * 1000;
                let temp = if t > 40_000 {
                    15.0 + (t - 40_000) as f32 / 5_000.0
                } else {
                    15.0
                };
                ClimateSample {
                    t_ms: t,
                    temperature_c: temp,
                    humidity_pct: 50.0,
                    pressure_hpa: 1000.0,
                }
            })
            .collect();
        (audio, frames, climate)
    }

    fn run(order: &str) -> Vec<Detection> {
        let (a, f, c) = inputs();
        let mut d = Detector::new(&DetectorConfig::default(), 16_000);
        let mut out = Vec::new();
        match order {
            "sequential" => {
                for x in &a {
                    d.push_audio(x);
                    out.extend(d.poll());
                }
                d.close(Modality::Audio);
                for x in &f {
                    d.push_frame(x);
                    out.extend(d.poll());
                }
                d.close(Modality::Camera);
                for x in &c {
                    d.push_climate(x);
                    out.extend(d.poll());
                }
            }
            _ => {
                let n = a.len().max(f.len()).max(c.len());
                for i in 0..n {
                    if let Some(x) = c.get(i) {
                        d.push_climate(x);
                    }
                    if let Some(x) = f.get(i) {
                        d.push_frame(x);
                    }
                    if let Some(x) = a.get(i) {
                        d.push_audio(x);
                    }
                    out.extend(d.poll());
                }
            }
        }
        out.extend(d.finish());
        out
    }

    /// The camera off from 10 s to 30 s (on demand, or by the policy), as
    /// the node's camera task tells it: unavailable at once, available
    /// again just before its next frame.
    #[test]
    fn a_camera_that_was_off_counts_as_missing_until_its_next_frame() {
        let (a, f, c) = inputs();
        let mut d = Detector::new(&DetectorConfig::default(), 16_000);
        let mut out = Vec::new();
        for i in 0..120 {
            let t = i as i64 * 500;
            if t == 10_000 {
                d.set_available(Modality::Camera, false);
            }
            if t == 30_000 {
                d.set_available(Modality::Camera, true);
            }
            if !(10_000..30_000).contains(&t) {
                d.push_frame(&f[i]);
            }
            d.push_audio(&a[i]);
            if i % 2 == 0 {
                d.push_climate(&c[i / 2]);
            }
            out.extend(d.poll());
        }
        out.extend(d.finish());
        let call = out
            .iter()
            .find(|e| (19_000..=21_000).contains(&e.start_ms))
            .unwrap_or_else(|| panic!("no event for the call: {out:?}"));
        // The camera was off for the call: its score is missing, not 0.
        assert_eq!(call.scores.camera, None, "{call:?}");
        assert!(call.scores.audio.is_some(), "{call:?}");
        let knocks = out
            .iter()
            .find(|e| (39_000..=42_000).contains(&e.start_ms))
            .unwrap_or_else(|| panic!("no event for the knocks: {out:?}"));
        assert!(knocks.scores.camera.is_some(), "{knocks:?}");
        // Nothing came of the scene looking different after the gap.
        assert!(
            out.iter().all(|e| !(30_000..32_000).contains(&e.start_ms)),
            "{out:?}"
        );
    }

    #[test]
    fn interleaving_does_not_change_the_detections() {
        let a = run("sequential");
        let b = run("round-robin");
        assert_eq!(a, b);
        assert!(a.iter().any(|d| d.class == EventClass::Wildlife), "{a:?}");
        assert!(
            a.iter().any(|d| d.class == EventClass::MachineryAnomaly),
            "{a:?}"
        );
    }

    /// `samples` of 16 kHz audio in 500 ms chunks, and climate readings
    /// every 10 s of `temp(t_ms)`; `audio`: whether the microphone exists.
    fn run_audio_climate(
        samples: &[f32],
        temp: impl Fn(i64) -> f32,
        audio: bool,
    ) -> (Vec<Detection>, DetectorStats) {
        run_with_light(&DetectorConfig::default(), samples, temp, audio, None)
    }

    /// The same, with a camera when `light` is given: a still, textured
    /// view every 500 ms whose brightness is `light(t_ms)` (0..1).
    fn run_with_light(
        cfg: &DetectorConfig,
        samples: &[f32],
        temp: impl Fn(i64) -> f32,
        audio: bool,
        light: Option<&dyn Fn(i64) -> f32>,
    ) -> (Vec<Detection>, DetectorStats) {
        run_with_camera(cfg, samples, temp, audio, light, Exposure::Fixed)
    }

    /// How the test camera exposes its frames.
    #[derive(Clone, Copy, PartialEq)]
    enum Exposure {
        /// One exposure throughout: the frames follow the light.
        Fixed,
        /// Auto-exposure holds the frames at the first light, and each
        /// frame says the exposure it was taken with (or does not).
        Auto { reported: bool },
    }

    fn run_with_camera(
        cfg: &DetectorConfig,
        samples: &[f32],
        temp: impl Fn(i64) -> f32,
        audio: bool,
        light: Option<&dyn Fn(i64) -> f32>,
        exposure: Exposure,
    ) -> (Vec<Detection>, DetectorStats) {
        let mut d = Detector::new(cfg, 16_000);
        if light.is_none() {
            d.set_available(Modality::Camera, false);
            d.close(Modality::Camera);
        }
        if !audio {
            d.set_available(Modality::Audio, false);
            d.close(Modality::Audio);
        }
        let seconds = samples.len() as i64 / 16_000;
        let mut out = Vec::new();
        for (i, c) in samples.chunks(8000).enumerate() {
            if audio {
                d.push_audio(&AudioChunk {
                    start_ms: i as i64 * 500,
                    sample_rate: 16_000,
                    samples: c.to_vec(),
                });
            }
            if let Some(light) = light {
                let t = i as i64 * 500;
                // The frames' level, and the exposure (the light at the
                // sensor goes as the level to the power 2.2).
                let (level, reported) = match exposure {
                    Exposure::Fixed => (light(t), None),
                    Exposure::Auto { reported } => (
                        light(0),
                        reported.then(|| 1000.0 * (light(0) / light(t)).powf(2.2)),
                    ),
                };
                let luma = (0..16 * 12)
                    .map(|p| (255.0 * level * (0.6 + 0.4 * ((p * 7) % 11) as f32 / 10.0)) as u8)
                    .collect();
                d.push_frame(&GrayFrame {
                    t_ms: t,
                    width: 16,
                    height: 12,
                    luma,
                    exposure: reported,
                });
            }
            if i % 20 == 0 {
                let t = i as i64 * 500;
                d.push_climate(&ClimateSample {
                    t_ms: t,
                    temperature_c: temp(t),
                    humidity_pct: 50.0,
                    pressure_hpa: 1000.0,
                });
            }
            out.extend(d.poll());
        }
        assert!(seconds > 0);
        out.extend(d.finish());
        (out, d.stats())
    }

    /// Sun on the enclosure: +4 °C over 4 minutes from 60 s.
    fn sun(t: i64) -> f32 {
        15.0 + 4.0 * ((t - 60_000) as f32 / 240_000.0).clamp(0.0, 1.0)
    }

    fn quiet_with_call(seconds: usize, call_at_s: f32) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut x: Vec<f32> = (0..16_000 * seconds)
            .map(|_| (rng.random::<f32>() - 0.5) * 0.01)
            .collect();
        let s0 = (call_at_s * 16_000.0) as usize;
        let mut ph = 0f32;
        for i in 0..16_000 {
            ph += 2.0 * std::f32::consts::PI * (3000.0 + 500.0 * (i % 3200) as f32 / 3200.0)
                / 16_000.0;
            x[s0 + i] += 0.1 * ph.sin();
        }
        x
    }

    #[test]
    fn a_long_heat_rise_holds_no_event_back() {
        // A machine warms the enclosure by 0.8 °C a minute for 20 minutes
        // from 60 s; calls at 300 s and 600 s.
        let warm = |t: i64| 15.0 + 0.8 * ((t - 60_000) as f32 / 60_000.0).clamp(0.0, 20.0);
        let mut x = quiet_with_call(1_500, 300.0);
        let y = quiet_with_call(1_500, 600.0);
        for (a, b) in x.iter_mut().zip(&y) {
            *a += b;
        }
        let mut d = Detector::new(&DetectorConfig::default(), 16_000);
        d.set_available(Modality::Camera, false);
        d.close(Modality::Camera);
        // (event, input time when it came out)
        let mut out = Vec::new();
        for (i, c) in x.chunks(8000).enumerate() {
            let t = i as i64 * 500;
            d.push_audio(&AudioChunk {
                start_ms: t,
                sample_rate: 16_000,
                samples: c.to_vec(),
            });
            if i % 20 == 0 {
                d.push_climate(&ClimateSample {
                    t_ms: t,
                    temperature_c: warm(t),
                    humidity_pct: 50.0,
                    pressure_hpa: 1000.0,
                });
            }
            out.extend(d.poll().into_iter().map(|e| (e, t)));
        }
        out.extend(d.finish().into_iter().map(|e| (e, i64::MAX)));
        assert_eq!(out.len(), 2, "{out:?}");
        for ((e, at), call_ms) in out.iter().zip([300_000, 600_000]) {
            assert!(
                (call_ms - 1_000..=call_ms + 1_000).contains(&e.start_ms),
                "{e:?}"
            );
            // Out within two minutes of the call, while the rise goes on
            // (it ends at 1260 s)...
            assert!(*at < call_ms + 120_000, "{e:?} at {at}");
            // ...with the rise so far as its context.
            let delta = e.features.temp_delta_c100.unwrap_or(0);
            assert!(delta >= 200, "{e:?}");
        }
    }

    #[test]
    fn climate_is_context_and_never_stretches_an_event() {
        // A one-second call at 120 s, in the middle of the sun's warming.
        let x = quiet_with_call(400, 120.0);
        let (out, stats) = run_audio_climate(&x, sun, true);
        assert_eq!(out.len(), 1, "{out:?}");
        let e = &out[0];
        assert!(e.end_ms - e.start_ms < 3_000, "{e:?}");
        assert!((119_000..=121_000).contains(&e.start_ms), "{e:?}");
        assert_eq!(stats.events_cut_at_max, 0);
        // The warming is context of the event it overlaps.
        assert!(e.features.temp_delta_c100.is_some(), "{e:?}");
        // Warming alone is one event of its own, as long as the warming.
        let silent = vec![0.0f32; 16_000 * 400];
        let (out, _) = run_audio_climate(&silent, sun, true);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].end_ms - out[0].start_ms <= 300_000, "{out:?}");
    }

    #[test]
    fn events_cut_at_the_length_limit_are_counted() {
        // Calls every 2 s for 200 s chain into one activation run; the
        // limit cuts it.
        let mut x = quiet_with_call(220, 10.0);
        for k in 0..100 {
            let s0 = (10.0 + 2.0 * k as f32) as usize * 16_000;
            for i in 0..8_000 {
                x[s0 + i] +=
                    0.1 * (2.0 * std::f32::consts::PI * 3500.0 * i as f32 / 16_000.0).sin();
            }
        }
        let mut cfg = DetectorConfig::default();
        cfg.merge.max_event_ms = 60_000;
        let mut d = audio_detector(&cfg);
        // Polled after every chunk, as the node does.
        let mut out = Vec::new();
        for (i, c) in x.chunks(8000).enumerate() {
            d.push_audio(&chunk(i, c));
            out.extend(d.poll());
        }
        out.extend(d.finish());
        assert!(out.len() >= 3, "{out:?}");
        // Each event followed within the merge gap by the next was cut (it
        // would have been joined otherwise), and counted once, however
        // many passes looked at it before it was final.
        let gap = i64::from(cfg.merge.gap_ms);
        let cut = out
            .windows(2)
            .filter(|w| w[1].start_ms - w[0].end_ms <= gap)
            .count() as u64;
        assert!(cut >= 2, "{out:?}");
        assert_eq!(d.stats().events_cut_at_max, cut, "{out:?}");
        assert!(out.iter().all(|e| e.end_ms - e.start_ms <= 60_000));
    }

    /// Adds a one-second tone sweep of `hz`..`hz`·1.15 at `at_s`.
    fn add_call(x: &mut [f32], at_s: f32, hz: f32) {
        let s0 = (at_s * 16_000.0) as usize;
        let mut ph = 0f32;
        for i in 0..16_000 {
            ph += 2.0 * std::f32::consts::PI * hz * (1.0 + 0.15 * i as f32 / 16_000.0) / 16_000.0;
            x[s0 + i] += 0.1 * ph.sin();
        }
    }

    /// A detector with only the microphone (16 kHz).
    fn audio_detector(cfg: &DetectorConfig) -> Detector {
        let mut d = Detector::new(cfg, 16_000);
        for m in [Modality::Camera, Modality::Climate] {
            d.set_available(m, false);
            d.close(m);
        }
        d
    }

    /// The `i`th half-second chunk of 16 kHz audio.
    fn chunk(i: usize, c: &[f32]) -> AudioChunk {
        AudioChunk {
            start_ms: i as i64 * 500,
            sample_rate: 16_000,
            samples: c.to_vec(),
        }
    }

    fn audio_only(x: &[f32]) -> Vec<Detection> {
        let mut d = audio_detector(&DetectorConfig::default());
        let mut out = Vec::new();
        for (i, c) in x.chunks(8000).enumerate() {
            d.push_audio(&chunk(i, c));
            out.extend(d.poll());
        }
        out.extend(d.finish());
        out
    }

    #[test]
    fn a_bout_of_alike_calls_is_one_event_and_different_sounds_are_not() {
        // Three calls at 3 kHz 5 s apart (4 s of silence between them,
        // beyond gap_ms): one event of the bout.
        let mut x = quiet_with_call(120, 20.0);
        add_call(&mut x, 25.0, 3000.0);
        add_call(&mut x, 30.0, 3000.0);
        let out = audio_only(&x);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!((19_000..=21_000).contains(&out[0].start_ms), "{out:?}");
        assert!(out[0].end_ms >= 31_000, "{out:?}");
        // The same calls 10 s apart stay apart.
        let mut x = quiet_with_call(120, 20.0);
        add_call(&mut x, 30.0, 3000.0);
        add_call(&mut x, 40.0, 3000.0);
        assert_eq!(audio_only(&x).len(), 3);
        // A call, then 5 s later a low sound two octaves down: two events.
        let mut x = quiet_with_call(120, 20.0);
        add_call(&mut x, 25.0, 500.0);
        assert_eq!(audio_only(&x).len(), 2);
    }

    #[test]
    fn no_event_starts_before_the_bound_given_earlier() {
        // Calls of several kinds and gaps: whatever the detector finalises
        // later starts at or after the bound it gave before.
        let mut x = quiet_with_call(200, 20.0);
        for (at, hz) in [
            (25.0, 3000.0),
            (30.0, 3000.0),
            (60.0, 500.0),
            (100.0, 1200.0),
        ] {
            add_call(&mut x, at, hz);
        }
        let mut d = audio_detector(&DetectorConfig::default());
        let mut bounds = Vec::new();
        let mut seen = 0;
        for (i, c) in x.chunks(8000).enumerate() {
            d.push_audio(&chunk(i, c));
            let out = d.poll();
            for e in &out {
                for &b in &bounds {
                    assert!(e.start_ms >= b, "{e:?} starts before the bound {b}");
                }
            }
            seen += out.len();
            let b = d.next_start_bound_ms();
            assert!(b <= (i as i64 + 1) * 500, "bound {b} beyond the input");
            bounds.push(b);
        }
        let rest = d.finish();
        assert!(rest.iter().all(|e| bounds.iter().all(|&b| e.start_ms >= b)));
        assert!(seen + rest.len() >= 3, "{seen} + {} events", rest.len());
    }

    /// The sun comes out from behind a cloud between 100 and 120 s: the
    /// view brightens by half.
    fn sun_out(t: i64) -> f32 {
        0.4 + 0.2 * ((t - 100_000) as f32 / 20_000.0).clamp(0.0, 1.0)
    }

    /// The enclosure in that sun: +4 °C over 4 minutes from 140 s.
    fn sun_late(t: i64) -> f32 {
        sun(t - 80_000)
    }

    #[test]
    fn heat_after_the_view_brightened_is_the_sun() {
        let cfg = DetectorConfig::default();
        let silent = vec![0.0f32; 16_000 * 480];
        let sun = sun_late;
        // Nothing heard or seen, the enclosure warms after the view
        // brightened: the sun, no event.
        let (out, stats) = run_with_light(&cfg, &silent, sun, true, Some(&sun_out));
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(stats.sun_heat_rises, 1);
        // The same warming under a steady light is an event.
        let (out, stats) = run_with_light(&cfg, &silent, sun, true, Some(&|_| 0.5));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].class, EventClass::MachineryAnomaly);
        assert_eq!(stats.sun_heat_rises, 0);
        // A call in the sun's warming is still an event, but the warming
        // is not its context: the sun explains it (a gust heard while the
        // sun warms the enclosure is not a machine warming up).
        let x = quiet_with_call(480, 200.0);
        let (out, stats) = run_with_light(&cfg, &x, sun, true, Some(&sun_out));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].features.temp_delta_c100.is_none(), "{out:?}");
        assert!(out[0].heat_from_sun, "{out:?}");
        assert_eq!(stats.sun_heat_rises, 1);
        // Under a steady light the same warming is the call's context.
        let (out, stats) = run_with_light(&cfg, &x, sun, true, Some(&|_| 0.5));
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].features.temp_delta_c100.is_some(), "{out:?}");
        assert!(!out[0].heat_from_sun, "{out:?}");
        assert_eq!(stats.sun_heat_rises, 0);
        // Without the microphone too, heat alone after the view brightened
        // is the sun.
        let (out, stats) = run_with_light(&cfg, &silent, sun, false, Some(&sun_out));
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(stats.sun_heat_rises, 1);
        // Turned off, the rise is an event whatever the light.
        let mut off = cfg.clone();
        off.climate.sun_brightening = 0.0;
        let (out, _) = run_with_light(&off, &silent, sun, true, Some(&sun_out));
        assert_eq!(out.len(), 1, "{out:?}");
    }

    #[test]
    fn an_auto_exposure_camera_shows_the_sun_through_its_exposure() {
        let cfg = DetectorConfig::default();
        let silent = vec![0.0f32; 16_000 * 480];
        let run =
            |exposure| run_with_camera(&cfg, &silent, sun_late, true, Some(&sun_out), exposure);
        // The camera's auto-exposure keeps the frames' brightness, and
        // the exposure it reports says the light grew: the sun.
        let (out, stats) = run(Exposure::Auto { reported: true });
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(stats.sun_heat_rises, 1);
        // Without the exposure the sun is hidden: the rise is an event.
        let (out, stats) = run(Exposure::Auto { reported: false });
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(stats.sun_heat_rises, 0);
    }

    #[test]
    fn without_audio_a_heat_rise_is_an_event_of_its_own() {
        let x = vec![0.0f32; 16_000 * 400];
        let (out, _) = run_audio_climate(&x, sun, false);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].class, EventClass::MachineryAnomaly);
        // The sun stops warming at 300 s: the event ends at its last high,
        // its evidence goes on until the rate over the window fell.
        let e = &out[0];
        assert!((290_000..=310_000).contains(&e.end_ms), "{e:?}");
        assert!(e.span_end_ms > e.end_ms, "{e:?}");
    }

    #[test]
    fn absent_modalities_have_no_score() {
        let (a, _, _) = inputs();
        let mut d = Detector::new(&DetectorConfig::default(), 16_000);
        d.set_available(Modality::Camera, false);
        d.close(Modality::Camera);
        d.set_available(Modality::Climate, false);
        d.close(Modality::Climate);
        for x in &a {
            d.push_audio(x);
        }
        let out = d.finish();
        assert!(!out.is_empty());
        for e in &out {
            assert_eq!((e.scores.camera, e.scores.climate), (None, None), "{e:?}");
            assert!(e.scores.audio.is_some());
        }
    }

    #[test]
    fn malformed_input_is_counted_not_fatal() {
        let mut d = Detector::new(&DetectorConfig::default(), 16_000);
        d.push_audio(&AudioChunk {
            start_ms: 0,
            sample_rate: 8_000,
            samples: vec![0.0; 100],
        });
        d.push_frame(&GrayFrame {
            t_ms: 0,
            width: 4,
            height: 4,
            luma: vec![1; 3],
            exposure: None,
        });
        d.push_climate(&ClimateSample {
            t_ms: 0,
            temperature_c: f32::NAN,
            humidity_pct: 0.0,
            pressure_hpa: 0.0,
        });
        let s = d.stats();
        assert_eq!(
            (s.audio_rate_mismatch, s.bad_frames, s.bad_climate),
            (1, 1, 1)
        );
        assert!(d.finish().is_empty());
    }
}
