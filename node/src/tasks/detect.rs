//! The detection task: feeds every sensor message to the trigger detector,
//! and hands each finalised event to the store, after the optional costly
//! classification burst that the power policy must allow.

use std::sync::Arc;

use fusion::{Detection, Detector, Modality};
use messages::{EventClass, ModelVersion};
use power::{Decision, PowerStatus, Step};
use tokio::sync::{mpsc, watch};

use super::{Counters, SensorMsg};

/// A costly classifier that refines the triggers' class (the fusion model,
/// run on the accelerator in a burst). The trigger-only node has none.
pub trait Classifier: Send + 'static {
    /// The model version written into the records it classifies.
    fn version(&self) -> ModelVersion;
    /// Classifies one event: class and confidence.
    fn classify(&mut self, detection: &Detection) -> Result<(EventClass, f32), String>;
}

/// An event ready to be stored.
#[derive(Debug, Clone)]
pub struct Classified {
    /// The detection, with the class of whichever detector had the last word.
    pub detection: Detection,
    /// Which detector that was.
    pub model: ModelVersion,
}

/// The detector plus the optional classifier and the power gate in front of it.
pub struct DetectStage {
    detector: Detector,
    classifier: Option<Box<dyn Classifier>>,
    power: watch::Receiver<PowerStatus>,
    counters: Arc<Counters>,
    burst_denied: bool,
}

impl DetectStage {
    /// A stage; `absent` modalities are closed from the start.
    pub fn new(
        detector: Detector,
        classifier: Option<Box<dyn Classifier>>,
        power: watch::Receiver<PowerStatus>,
        counters: Arc<Counters>,
        absent: &[Modality],
    ) -> Self {
        let mut detector = detector;
        for m in absent {
            detector.set_available(*m, false);
            detector.close(*m);
        }
        DetectStage {
            detector,
            classifier,
            power,
            counters,
            burst_denied: false,
        }
    }

    /// Applies one sensor message.
    pub fn push(&mut self, msg: SensorMsg) {
        match msg {
            SensorMsg::Audio(c) => self.detector.push_audio(&c),
            SensorMsg::Frame(f) => self.detector.push_frame(&f),
            SensorMsg::Climate(s) => self.detector.push_climate(&s),
            SensorMsg::Available(m, a) => self.detector.set_available(m, a),
            SensorMsg::Closed(m) => self.detector.close(m),
        }
    }

    /// Events finalised so far (all of them when `finish`).
    pub fn take(&mut self, finish: bool) -> Vec<Classified> {
        let ds = if finish {
            self.detector.finish()
        } else {
            self.detector.poll()
        };
        ds.into_iter().map(|d| self.classify(d)).collect()
    }

    fn classify(&mut self, detection: Detection) -> Classified {
        let triggers_only = Classified {
            detection: detection.clone(),
            model: ModelVersion::TRIGGERS_ONLY,
        };
        let Some(classifier) = self.classifier.as_mut() else {
            return triggers_only;
        };
        let decision = self.power.borrow().decide(Step::InferenceBurst);
        match decision {
            Decision::Deny(reason) => {
                Counters::add(&self.counters.bursts_skipped, 1);
                if !self.burst_denied {
                    tracing::warn!(step = Step::InferenceBurst.as_str(), reason = %reason, "skipping inference bursts; events keep the triggers' class");
                }
                self.burst_denied = true;
                triggers_only
            }
            Decision::Allow => {
                self.burst_denied = false;
                Counters::add(&self.counters.bursts, 1);
                match classifier.classify(&detection) {
                    Ok((class, confidence)) => Classified {
                        detection: Detection {
                            class,
                            confidence,
                            ..detection
                        },
                        model: classifier.version(),
                    },
                    Err(e) => {
                        tracing::error!(error = %e, "classification failed; the event keeps the triggers' class");
                        triggers_only
                    }
                }
            }
        }
    }
}

/// Runs until every sensor task has dropped its sender, then finalises
/// everything pending and returns.
pub async fn run(
    mut stage: DetectStage,
    mut rx: mpsc::Receiver<SensorMsg>,
    tx: mpsc::Sender<Classified>,
) {
    let mut batch = Vec::with_capacity(32);
    while rx.recv_many(&mut batch, 32).await > 0 {
        for msg in batch.drain(..) {
            stage.push(msg);
        }
        for c in stage.take(false) {
            if tx.send(c).await.is_err() {
                return;
            }
        }
    }
    for c in stage.take(true) {
        if tx.send(c).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::{KeyFeatures, ModalityScores};
    use power::{PolicyConfig, PowerPolicy, PowerReading};

    struct Fixed;
    impl Classifier for Fixed {
        fn version(&self) -> ModelVersion {
            ModelVersion(3)
        }
        fn classify(&mut self, _: &Detection) -> Result<(EventClass, f32), String> {
            Ok((EventClass::Wildlife, 0.9))
        }
    }

    fn status(soc: f64) -> PowerStatus {
        PowerPolicy::new(PolicyConfig::default()).update(PowerReading {
            t_ms: 0,
            soc,
            solar_w: 0.0,
            load_w: 3.0,
        })
    }

    fn detection() -> Detection {
        Detection {
            start_ms: 0,
            end_ms: 1000,
            class: EventClass::Unknown,
            confidence: 0.4,
            scores: ModalityScores::default(),
            features: KeyFeatures::default(),
        }
    }

    #[test]
    fn bursts_run_only_when_the_policy_allows() {
        let (tx, rx) = watch::channel(status(0.9));
        let counters = Arc::new(Counters::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &[]);
        let c = stage.classify(detection());
        assert_eq!(
            (c.detection.class, c.model),
            (EventClass::Wildlife, ModelVersion(3))
        );
        tx.send_replace(status(0.05));
        let c = stage.classify(detection());
        assert_eq!(
            (c.detection.class, c.model),
            (EventClass::Unknown, ModelVersion::TRIGGERS_ONLY)
        );
        assert_eq!(Counters::get(&counters.bursts), 1);
        assert_eq!(Counters::get(&counters.bursts_skipped), 1);
    }
}
