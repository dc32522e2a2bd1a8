//! The costly classifier that refines the triggers' class in a burst, and how
//! a model's class probabilities become a verdict: class, confidence and each
//! modality's contribution.
//!
//! A modality's contribution is measured, not guessed: each event is run once
//! with every present modality and once more with each present modality
//! masked out, in the same batch. Without modality `m`, the winning class's
//! log-odds drop by `d_m` (0 if they rise); the contribution of `m` is its
//! share `d_m / Σ d` of those drops, so the present modalities' contributions
//! add up to 1 (all 0 when no modality's removal lowers the answer), and a
//! confident model still tells which modality carried the decision. `None`
//! means the modality was absent.

use messages::{EventClass, ModalityScores, ModelVersion, Permille};

use crate::Modality;
use crate::features::EventFeatures;

/// The model's classes, in output order.
pub const MODEL_CLASSES: [EventClass; 4] = [
    EventClass::Wildlife,
    EventClass::MachineryAnomaly,
    EventClass::HumanActivity,
    EventClass::Background,
];

/// What the classifier says about one event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// The most probable class.
    pub class: EventClass,
    /// Its probability, 0..=1.
    pub confidence: f32,
    /// Per-modality contribution (see the module doc).
    pub contributions: ModalityScores,
}

/// Why a burst could not be classified.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The accelerator or its runtime is not usable.
    #[error("accelerator unavailable: {0}")]
    Unavailable(String),
    /// Inference ran but failed or returned something unexpected.
    #[error("inference failed: {0}")]
    Inference(String),
}

/// A costly classifier run on the accelerator, one burst at a time.
pub trait Classifier: Send {
    /// The model version written into the records it classifies.
    fn version(&self) -> ModelVersion;
    /// Classifies a burst of events: one verdict per event, in order.
    fn classify(&mut self, events: &[EventFeatures]) -> Result<Vec<Verdict>, ClassifyError>;
    /// Releases the accelerator if it was idle for long enough; `now_ms` is
    /// the node's clock.
    fn release_if_idle(&mut self, _now_ms: i64) {}
    /// Releases the accelerator now, however long it was idle (before its
    /// supply is switched off). A no-op when it is not awake.
    fn release(&mut self) {}
    /// One line for the status report (`loaded`, `released`, `unavailable: ...`).
    fn status(&self) -> String;
}

/// The rows a burst runs for one event: the event itself, then the event
/// without each present modality (for the contributions).
pub fn ablation_rows(f: &EventFeatures) -> Vec<(Option<Modality>, EventFeatures)> {
    let mut rows = vec![(None, f.clone())];
    for m in Modality::ALL {
        if f.has(m) {
            rows.push((Some(m), f.without(m)));
        }
    }
    rows
}

/// The verdict from the probabilities of the full row and of the rows
/// without one modality each.
pub fn verdict(full: [f32; 4], without: &[(Modality, [f32; 4])]) -> Verdict {
    let best = (0..4)
        .max_by(|&a, &b| full[a].total_cmp(&full[b]))
        .unwrap_or(3);
    let p = full[best];
    let log_odds = |p: f32| {
        let p = if p.is_finite() {
            p.clamp(1e-7, 1.0 - 1e-7)
        } else {
            0.5
        };
        (p / (1.0 - p)).ln()
    };
    let drops: Vec<(Modality, f32)> = without
        .iter()
        .map(|(m, probs)| (*m, (log_odds(p) - log_odds(probs[best])).max(0.0)))
        .collect();
    let total: f32 = drops.iter().map(|(_, d)| d).sum();
    let contribution = |m: Modality| {
        drops.iter().find(|(w, _)| *w == m).map(|(_, d)| {
            if total > 0.0 {
                Permille::from_fraction(d / total)
            } else {
                Permille(0)
            }
        })
    };
    Verdict {
        class: MODEL_CLASSES[best],
        confidence: if p.is_finite() {
            p.clamp(0.0, 1.0)
        } else {
            0.0
        },
        contributions: ModalityScores {
            audio: contribution(Modality::Audio),
            camera: contribution(Modality::Camera),
            climate: contribution(Modality::Climate),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contributions_are_shares_of_the_log_odds_lost_and_absent_is_none() {
        let v = verdict(
            [0.8, 0.05, 0.1, 0.05],
            &[
                (Modality::Audio, [0.3, 0.1, 0.3, 0.3]),
                (Modality::Camera, [0.9, 0.0, 0.05, 0.05]),
            ],
        );
        assert_eq!(v.class, EventClass::Wildlife);
        assert!((v.confidence - 0.8).abs() < 1e-6);
        assert_eq!(v.contributions.audio, Some(Permille(1000)));
        assert_eq!(v.contributions.camera, Some(Permille(0)));
        assert_eq!(v.contributions.climate, None);
        // A saturated model still tells which modality carried it:
        // log-odds 13.8 whole, 9.2 without audio, 11.5 without camera.
        let v = verdict(
            [0.999_999, 0.0, 0.0, 0.000_001],
            &[
                (Modality::Audio, [0.9999, 0.0, 0.0, 0.0001]),
                (Modality::Camera, [0.99999, 0.0, 0.0, 0.00001]),
            ],
        );
        let (a, c) = (
            v.contributions.audio.unwrap().0,
            v.contributions.camera.unwrap().0,
        );
        assert!(a > c && c > 0 && a + c >= 999 && a + c <= 1001, "{a} {c}");
        // No removal lowers the answer: no modality gets credit.
        let v = verdict(
            [0.6, 0.2, 0.1, 0.1],
            &[(Modality::Climate, [0.7, 0.1, 0.1, 0.1])],
        );
        assert_eq!(v.contributions.climate, Some(Permille(0)));
        let nan = verdict([f32::NAN; 4], &[]);
        assert_eq!(nan.confidence, 0.0);
    }

    #[test]
    fn rows_ablate_present_modalities_only() {
        let f = EventFeatures {
            audio: Some(vec![0.0; crate::features::AUDIO_DIM]),
            camera: None,
            climate: Some(vec![0.0; crate::features::CLIMATE_DIM]),
        };
        let rows = ablation_rows(&f);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].0, Some(Modality::Audio));
        assert!(!rows[1].1.has(Modality::Audio) && rows[1].1.has(Modality::Climate));
        assert_eq!(rows[2].0, Some(Modality::Climate));
    }
}
