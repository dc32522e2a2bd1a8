//! The detection task: feeds every sensor message to the trigger detector and
//! the feature history, and hands each finalised event to the store, after
//! the optional classification burst that the power policy must allow.
//!
//! Events finalised together form one burst: their features go to the
//! classifier in one batch. A model's verdict below its class's
//! `[fusion] thresholds` becomes `unknown` (stored, at low priority, and
//! counted as `events_uncertain`) rather than a confident wrong class.
//! Classes listed in `[fusion] exclude` are not stored; they are counted
//! (`events_excluded`) and logged. Events of one class that follow each
//! other within `[fusion] join_gap_ms` are stored as one ([`super::bouts`];
//! counted as `events_joined`).
//!
//! The detector hands over every event, including those its rules call
//! background (wind, rain, a hum): with a model, the model decides; without
//! one (or when the power policy denies the burst) they are dropped unless
//! `[detector.merge] report_background`, and counted (`background_dropped`).
//! For such an event, a model's wildlife or human-activity class below
//! `[fusion] overrule_background` (the confidence needed to overrule the
//! rules; a steady machine is a hum to them) or a class that rests on the
//! climate (the climate's share of the verdict at least
//! [`CLIMATE_LED_SHARE`]) is `unknown` too: the climate is context. An `unknown` that joins no surer
//! event of its bout and that the rules called background is not stored
//! unless `[fusion] store_uncertain_background` (counted as
//! `uncertain_background`).
//!
//! When the audio trigger starts hearing something (a confirmed activation
//! opens), the on-demand camera is asked for ([`CameraDemand`]); the camera
//! task decides whether that matters in the current power mode.
//!
//! With an accelerator supply in `[power.loads]`, a burst the policy allows
//! first switches the supply on and waits its settle time, and the supply
//! goes off again after `[fusion] idle_release_ms` without a burst, once the
//! model is released (`crate::loads`).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use fusion::features::{EventFeatures, FeatureBank};
use fusion::{Classifier, Detection, Detector, FusionConfig, Modality};
use messages::{EventClass, ModelVersion, Permille};
use power::{Decision, PowerStatus, Step};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::bouts::BoutJoiner;
use super::demand::{CameraDemand, DemandSource};
use super::{Counters, SensorMsg};
use crate::loads::AcceleratorSupply;
use crate::sensors::health::HealthHandle;

/// A model's class for an event the triggers' rules call background that
/// rests this much on the climate (its share of the verdict, see
/// `fusion::classifier`) is `unknown`: the climate is context for what was
/// heard and seen, not evidence of its own.
pub const CLIMATE_LED_SHARE: f32 = 0.5;

/// A new model to run on trial: the next `bursts` bursts run on it. If one
/// fails, the previous classifier is put back. The outcome goes to `done`.
pub struct ModelSwap {
    /// The model on trial (already self-tested).
    pub classifier: Box<dyn Classifier>,
    /// Bursts it must pass.
    pub bursts: u32,
    /// Where the outcome goes.
    pub done: tokio::sync::oneshot::Sender<TrialOutcome>,
}

/// How a trial ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOutcome {
    /// Every trial burst ran.
    Passed,
    /// A burst failed; the previous classifier is back.
    Failed(String),
}

struct Trial {
    previous: Option<Box<dyn Classifier>>,
    bursts_left: u32,
    done: tokio::sync::oneshot::Sender<TrialOutcome>,
}

/// An event ready to be stored.
#[derive(Debug, Clone)]
pub struct Classified {
    /// The detection, with the class of whichever detector had the last word.
    pub detection: Detection,
    /// Which detector that was.
    pub model: ModelVersion,
    /// For a model's verdict made `unknown` (below its class's threshold,
    /// or resting on the climate): the class it fell short in.
    pub short_of: Option<EventClass>,
    /// Whether the triggers' own rules called the event background. Kept
    /// for a joined event only if every part was.
    pub rules_background: bool,
}

/// One line of the feature dump (`[fusion] dump_features`).
#[derive(Serialize)]
struct DumpLine<'a> {
    start_ms: i64,
    end_ms: i64,
    trigger_class: &'static str,
    features: &'a EventFeatures,
}

/// The detector plus the feature history, the optional classifier and the
/// power gate in front of it.
pub struct DetectStage {
    detector: Detector,
    bank: FeatureBank,
    classifier: Option<Box<dyn Classifier>>,
    power: watch::Receiver<PowerStatus>,
    counters: Arc<Counters>,
    burst_denied: bool,
    thresholds: BTreeMap<EventClass, f32>,
    exclude: Vec<EventClass>,
    store_uncertain_background: bool,
    overrule_background: f32,
    bouts: BoutJoiner,
    dump: Option<std::io::BufWriter<std::fs::File>>,
    latest_ms: i64,
    health: Option<HealthHandle>,
    last_error: Option<String>,
    swaps: Option<mpsc::Receiver<ModelSwap>>,
    trial: Option<Trial>,
    settings: Option<watch::Receiver<crate::update::live::Settings>>,
    accelerator: Option<AcceleratorSupply>,
    camera_demand: Option<Arc<CameraDemand>>,
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
        let bouts = BoutJoiner::new(FusionConfig::default().join_gap_ms, detector.max_event_ms());
        for m in absent {
            detector.set_available(*m, false);
            detector.close(*m);
        }
        DetectStage {
            detector,
            bank: FeatureBank::new(),
            classifier,
            power,
            counters,
            burst_denied: false,
            thresholds: BTreeMap::new(),
            exclude: Vec::new(),
            store_uncertain_background: false,
            overrule_background: 0.0,
            bouts,
            dump: None,
            latest_ms: i64::MIN,
            health: None,
            last_error: None,
            swaps: None,
            trial: None,
            settings: None,
            accelerator: None,
            camera_demand: None,
        }
    }

    /// Asks `demand` for the camera when the audio trigger starts hearing
    /// something.
    pub fn with_camera_demand(mut self, demand: Arc<CameraDemand>) -> Self {
        self.camera_demand = Some(demand);
        self
    }

    /// Switches the accelerator's supply around bursts (see the module
    /// documentation); `None` leaves the supply alone.
    pub fn with_accelerator_supply(mut self, supply: Option<AcceleratorSupply>) -> Self {
        self.accelerator = supply;
        self
    }

    /// When the accelerator's supply is due to go off; `None` while off or
    /// without a switched supply.
    pub fn release_due(&self) -> Option<tokio::time::Instant> {
        self.accelerator.as_ref().and_then(|a| a.release_due())
    }

    /// Releases the model and switches the accelerator's supply off if it
    /// has been idle for `[fusion] idle_release_ms`.
    pub fn release_if_due(&mut self) -> bool {
        match self.accelerator.as_mut() {
            Some(a) => a.release_if_due(self.classifier.as_mut()),
            None => false,
        }
    }

    /// Releases the model and switches the accelerator's supply off now (at
    /// the end of the run). Without a switched supply, nothing changes.
    pub fn power_down(&mut self) {
        if let Some(a) = self.accelerator.as_mut() {
            a.release(self.classifier.as_mut());
        }
    }

    /// Before a burst: switches the accelerator's supply on and waits its
    /// settle time, if a burst will run (a classifier that can run, and the
    /// power policy allows it).
    async fn wake_accelerator(&mut self) {
        let Some(a) = self.accelerator.as_mut() else {
            return;
        };
        let runnable = self
            .classifier
            .as_ref()
            .is_some_and(|c| !c.status().starts_with("unavailable"));
        let allowed = matches!(
            self.power.borrow().decide(Step::InferenceBurst),
            Decision::Allow
        );
        if runnable && allowed {
            a.wake().await;
        }
    }

    /// Reports the classifier's state on `health` (the `model` entry).
    pub fn with_health(mut self, health: HealthHandle) -> Self {
        self.health = Some(health);
        self
    }

    /// Applies `[fusion]`: thresholds, exclusions and the feature dump.
    pub fn with_fusion_config(mut self, cfg: &FusionConfig) -> std::io::Result<Self> {
        self.set_classes(cfg);
        if let Some(path) = &cfg.dump_features {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            self.dump = Some(std::io::BufWriter::new(f));
        }
        Ok(self)
    }

    fn set_classes(&mut self, cfg: &FusionConfig) {
        self.thresholds = cfg
            .thresholds
            .iter()
            .filter_map(|(k, v)| EventClass::parse(k).map(|c| (c, *v)))
            .collect();
        self.exclude = cfg
            .exclude
            .iter()
            .filter_map(|k| EventClass::parse(k))
            .collect();
        self.store_uncertain_background = cfg.store_uncertain_background;
        self.overrule_background = cfg.overrule_background;
        self.bouts.set_gap(cfg.join_gap_ms);
    }

    /// Takes the class thresholds and exclusions of settings installed
    /// while the node runs from `rx`, before each burst.
    pub fn with_live_settings(
        mut self,
        rx: watch::Receiver<crate::update::live::Settings>,
    ) -> Self {
        self.settings = Some(rx);
        self
    }

    fn poll_settings(&mut self) {
        let Some(s) = self
            .settings
            .as_mut()
            .and_then(crate::update::live::changed)
        else {
            return;
        };
        self.set_classes(&s.fusion);
        tracing::info!(
            version = s.version,
            thresholds = ?self.thresholds,
            exclude = ?self.exclude,
            "class thresholds and exclusions from installed settings in force"
        );
    }

    /// Applies one sensor message.
    pub fn push(&mut self, msg: SensorMsg) {
        match msg {
            SensorMsg::Audio(c) => {
                self.latest_ms = self.latest_ms.max(c.end_ms());
                self.bank.push_audio(&c);
                let heard = self.detector.audio_heard();
                self.detector.push_audio(&c);
                if self.detector.audio_heard() > heard
                    && let Some(d) = &self.camera_demand
                {
                    d.request(DemandSource::Audio, c.end_ms(), &self.counters);
                }
            }
            SensorMsg::Frame(f) => {
                self.latest_ms = self.latest_ms.max(f.t_ms);
                self.detector.push_frame(&f);
                if let Some(m) = self.detector.frame_motion() {
                    self.bank.push_motion(m);
                }
            }
            SensorMsg::Climate(s) => {
                self.latest_ms = self.latest_ms.max(s.t_ms);
                self.bank.push_climate(&s);
                self.detector.push_climate(&s);
            }
            SensorMsg::Available(m, a) => {
                if !a {
                    self.bank.stopped(m);
                }
                self.detector.set_available(m, a);
            }
            SensorMsg::Closed(m) => self.detector.close(m),
        }
    }

    /// Events finalised so far (all of them when `finish`), classified in
    /// one burst, without the excluded ones.
    pub async fn take(&mut self, finish: bool) -> Vec<Classified> {
        self.poll_swaps();
        self.poll_settings();
        let ds = if finish {
            self.detector.finish()
        } else {
            self.detector.poll()
        };
        let bound = if finish {
            i64::MAX
        } else {
            self.detector.next_start_bound_ms()
        };
        // Before the early return: a heat rise put down to the sun moves its
        // counter without emitting anything.
        let stats = self.detector.stats();
        Counters::set(&self.counters.events_cut_at_max, stats.events_cut_at_max);
        Counters::set(&self.counters.sun_heat_rises, stats.sun_heat_rises);
        if ds.is_empty() {
            if let Some(c) = self.classifier.as_mut() {
                c.release_if_idle(self.latest_ms);
            }
            self.release_if_due();
            return self.join_bouts(Vec::new(), bound);
        }
        let feats: Vec<EventFeatures> = ds
            .iter()
            .map(|d| shown_to_model(self.bank.event(d.start_ms, d.span_end_ms), d))
            .collect();
        self.write_dump(&ds, &feats);
        let classified = self.burst(ds, &feats).await;
        let kept: Vec<Classified> = classified
            .into_iter()
            .filter(|c| self.keep_unclassified(c))
            .map(|c| self.apply_threshold(c))
            .filter(|c| self.keep(c))
            .collect();
        self.join_bouts(kept, bound)
    }

    /// Passes `kept` through the bout joiner: what no later event can join,
    /// without the uncertain events that are background to the triggers.
    fn join_bouts(&mut self, kept: Vec<Classified>, bound: i64) -> Vec<Classified> {
        let out = self.bouts.push(kept, bound);
        Counters::set(&self.counters.events_joined, self.bouts.joined());
        out.into_iter().filter(|c| self.keep_uncertain(c)).collect()
    }

    /// An event the model could not place (`unknown`, joined to no surer
    /// verdict) that the triggers' rules call background is not stored
    /// unless `[fusion] store_uncertain_background`: neither detector finds
    /// anything there. Counted as `uncertain_background`.
    fn keep_uncertain(&self, c: &Classified) -> bool {
        if c.detection.class != EventClass::Unknown
            || !c.rules_background
            || c.model == ModelVersion::TRIGGERS_ONLY
            || self.store_uncertain_background
        {
            return true;
        }
        Counters::add(&self.counters.uncertain_background, 1);
        tracing::debug!(
            short_of = c.short_of.map(EventClass::as_str),
            confidence = c.detection.confidence,
            start_ms = c.detection.start_ms,
            end_ms = c.detection.end_ms,
            "unknown and background to the triggers: not stored"
        );
        false
    }

    /// An event that only the triggers classed as background (no model, or
    /// no burst allowed) is kept only with `[detector.merge]
    /// report_background`; otherwise it is counted as `background_dropped`.
    fn keep_unclassified(&self, c: &Classified) -> bool {
        if c.model != ModelVersion::TRIGGERS_ONLY
            || c.detection.class != EventClass::Background
            || self.detector.reports_background()
        {
            return true;
        }
        Counters::add(&self.counters.background_dropped, 1);
        tracing::debug!(
            start_ms = c.detection.start_ms,
            end_ms = c.detection.end_ms,
            "background by the triggers alone: not stored"
        );
        false
    }

    fn write_dump(&mut self, ds: &[Detection], feats: &[EventFeatures]) {
        let Some(w) = self.dump.as_mut() else {
            return;
        };
        let mut result = Ok(());
        for (d, f) in ds.iter().zip(feats) {
            let line = DumpLine {
                start_ms: d.start_ms,
                end_ms: d.span_end_ms,
                trigger_class: d.class.as_str(),
                features: f,
            };
            result = result
                .and_then(|_| serde_json::to_writer(&mut *w, &line).map_err(std::io::Error::other))
                .and_then(|_| w.write_all(b"\n"));
        }
        if let Err(e) = result.and_then(|_| w.flush()) {
            tracing::error!(error = %e, "cannot write the feature dump; stopping it");
            self.dump = None;
        }
    }

    /// A model's event class below its threshold becomes `unknown`, and so,
    /// for an event the triggers' rules call background, does a class below
    /// `overrule_background` (the model must be surer to overrule the
    /// rules) or one that rests on the climate (at least
    /// [`CLIMATE_LED_SHARE`] of the verdict): the climate is context, and
    /// what was heard and seen shows nothing but background. The thresholds are the
    /// model's calibrated probabilities, so the triggers' own classes
    /// (model version 0) keep theirs; background stays background.
    fn apply_threshold(&self, mut c: Classified) -> Classified {
        let class = c.detection.class;
        if c.model == ModelVersion::TRIGGERS_ONLY
            || matches!(class, EventClass::Background | EventClass::Unknown)
        {
            return c;
        }
        let below = self
            .thresholds
            .get(&class)
            .is_some_and(|&t| c.detection.confidence < t);
        let climate = c.detection.scores.climate.map_or(0.0, Permille::fraction);
        let climate_led = c.rules_background && climate >= CLIMATE_LED_SHARE;
        // A steady machine is a hum to the rules (floor, by design): their
        // background says nothing against a machinery verdict.
        let weak_overrule = c.rules_background
            && class != EventClass::MachineryAnomaly
            && c.detection.confidence < self.overrule_background;
        if below || climate_led || weak_overrule {
            Counters::add(&self.counters.events_uncertain, 1);
            tracing::debug!(
                class = class.as_str(),
                confidence = c.detection.confidence,
                climate_share = climate,
                below_threshold = below,
                weak_overrule,
                start_ms = c.detection.start_ms,
                "stored as unknown"
            );
            c.detection.class = EventClass::Unknown;
            c.short_of = Some(class);
        }
        c
    }

    fn keep(&self, c: &Classified) -> bool {
        let class = c.detection.class;
        if self.exclude.contains(&class) {
            Counters::add(&self.counters.events_excluded, 1);
            tracing::debug!(
                class = class.as_str(),
                confidence = c.detection.confidence,
                start_ms = c.detection.start_ms,
                "event not stored: class excluded"
            );
            return false;
        }
        true
    }

    /// One burst: the accelerator's supply on (when switched), then
    /// [`classify`](Self::classify).
    async fn burst(&mut self, ds: Vec<Detection>, feats: &[EventFeatures]) -> Vec<Classified> {
        self.wake_accelerator().await;
        let classified = self.classify(ds, feats);
        if let Some(a) = self.accelerator.as_mut() {
            a.used();
        }
        classified
    }

    fn classify(&mut self, ds: Vec<Detection>, feats: &[EventFeatures]) -> Vec<Classified> {
        let triggers_only = |ds: Vec<Detection>| {
            ds.into_iter()
                .map(|detection| Classified {
                    rules_background: detection.class == EventClass::Background,
                    detection,
                    model: ModelVersion::TRIGGERS_ONLY,
                    short_of: None,
                })
                .collect()
        };
        let Some(classifier) = self.classifier.as_mut() else {
            return triggers_only(ds);
        };
        let decision = self.power.borrow().decide(Step::InferenceBurst);
        match decision {
            Decision::Deny(reason) => {
                Counters::add(&self.counters.bursts_skipped, 1);
                if !self.burst_denied {
                    tracing::warn!(step = Step::InferenceBurst.as_str(), reason = %reason, "skipping inference bursts; events keep the triggers' class");
                }
                self.burst_denied = true;
                triggers_only(ds)
            }
            Decision::Allow => {
                self.burst_denied = false;
                Counters::add(&self.counters.bursts, 1);
                let result = classifier.classify(feats);
                let on_trial = match &result {
                    Ok(v) if v.len() == ds.len() => Ok(()),
                    Ok(_) => Err("wrong number of verdicts".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match &result {
                    Ok(_) => {
                        if self.last_error.take().is_some() {
                            tracing::info!("classification works again");
                        }
                        if let Some(h) = &self.health {
                            h.set_ok();
                        }
                    }
                    Err(e) => {
                        Counters::add(&self.counters.bursts_failed, 1);
                        let msg = e.to_string();
                        if self.last_error.as_deref() != Some(msg.as_str()) {
                            tracing::error!(error = %msg, events = ds.len(), "classification failed; events keep the triggers' class");
                        }
                        if let Some(h) = &self.health {
                            h.count("inference");
                            h.set_degraded(format!("{msg}; triggers only"));
                        }
                        self.last_error = Some(msg);
                    }
                }
                let out = match result {
                    Ok(verdicts) if verdicts.len() == ds.len() => {
                        let model = classifier.version();
                        ds.into_iter()
                            .zip(verdicts)
                            .map(|(d, v)| {
                                let mut scores = v.contributions;
                                // The climate was there, but the sun's heat
                                // was kept from the model: it contributed
                                // nothing (not absent).
                                if d.heat_from_sun && d.scores.climate.is_some() {
                                    scores.climate = Some(Permille(0));
                                }
                                Classified {
                                    rules_background: d.class == EventClass::Background,
                                    detection: Detection {
                                        class: v.class,
                                        confidence: v.confidence,
                                        scores,
                                        ..d
                                    },
                                    model,
                                    short_of: None,
                                }
                            })
                            .collect()
                    }
                    Ok(verdicts) => {
                        tracing::error!(
                            events = ds.len(),
                            verdicts = verdicts.len(),
                            "classifier returned the wrong number of verdicts; events keep the triggers' class"
                        );
                        triggers_only(ds)
                    }
                    Err(_) => triggers_only(ds),
                };
                self.trial_burst(on_trial);
                out
            }
        }
    }

    /// Takes new models to try from `swaps`.
    pub fn with_swaps(mut self, swaps: mpsc::Receiver<ModelSwap>) -> Self {
        self.swaps = Some(swaps);
        self
    }

    /// Starts the trial of a model handed over on the swap channel.
    fn poll_swaps(&mut self) {
        let Some(rx) = self.swaps.as_mut() else {
            return;
        };
        while let Ok(swap) = rx.try_recv() {
            if let Some(t) = self.trial.take() {
                self.classifier = t.previous;
                let _ = t
                    .done
                    .send(TrialOutcome::Failed("replaced by a newer model".into()));
            }
            let version = swap.classifier.version().0;
            let previous = self.classifier.replace(swap.classifier);
            tracing::info!(version, bursts = swap.bursts, "model on trial");
            if swap.bursts == 0 {
                let _ = swap.done.send(TrialOutcome::Passed);
                continue;
            }
            self.trial = Some(Trial {
                previous,
                bursts_left: swap.bursts,
                done: swap.done,
            });
        }
    }

    /// Counts a burst of the model on trial; a failure puts the previous
    /// classifier back.
    fn trial_burst(&mut self, result: Result<(), String>) {
        let Some(t) = self.trial.as_mut() else {
            return;
        };
        match result {
            Ok(()) => {
                t.bursts_left = t.bursts_left.saturating_sub(1);
                if t.bursts_left == 0
                    && let Some(t) = self.trial.take()
                {
                    let _ = t.done.send(TrialOutcome::Passed);
                }
            }
            Err(reason) => {
                if let Some(t) = self.trial.take() {
                    tracing::error!(reason = %reason, "model failed its trial; the previous model is back");
                    self.classifier = t.previous;
                    let _ = t.done.send(TrialOutcome::Failed(reason));
                }
            }
        }
    }

    /// The classifier's status line, or `None` without a classifier.
    pub fn classifier_status(&self) -> Option<String> {
        self.classifier.as_ref().map(|c| c.status())
    }
}

/// Runs until every sensor task has dropped its sender, then finalises
/// everything pending, releases the accelerator's switched supply and
/// returns.
pub async fn run(
    mut stage: DetectStage,
    rx: mpsc::Receiver<SensorMsg>,
    tx: mpsc::Sender<Classified>,
) {
    drive(&mut stage, rx, tx).await;
    stage.power_down();
}

async fn drive(
    stage: &mut DetectStage,
    mut rx: mpsc::Receiver<SensorMsg>,
    tx: mpsc::Sender<Classified>,
) {
    let mut batch = Vec::with_capacity(32);
    loop {
        let due = stage.release_due();
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, 32) => n,
            () = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                stage.release_if_due();
                continue;
            }
        };
        if n == 0 {
            break;
        }
        for msg in batch.drain(..) {
            stage.push(msg);
        }
        for c in stage.take(false).await {
            if tx.send(c).await.is_err() {
                return;
            }
        }
    }
    for c in stage.take(true).await {
        if tx.send(c).await.is_err() {
            return;
        }
    }
}

/// What the model is shown of an event: its features, without the climate
/// when the sun explains the heat over it (as if the sensor were missing).
fn shown_to_model(f: EventFeatures, d: &Detection) -> EventFeatures {
    if d.heat_from_sun {
        f.without(Modality::Climate)
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::{KeyFeatures, ModalityScores};
    use power::{PolicyConfig, PowerPolicy, PowerReading};

    /// Says wildlife at 0.9, with contributions from what it was shown
    /// (audio all of it, climate none; `None` for what it was not shown).
    struct Fixed;
    impl Classifier for Fixed {
        fn version(&self) -> ModelVersion {
            ModelVersion(3)
        }
        fn classify(
            &mut self,
            events: &[EventFeatures],
        ) -> Result<Vec<fusion::Verdict>, fusion::ClassifyError> {
            Ok(events
                .iter()
                .map(|f| fusion::Verdict {
                    class: EventClass::Wildlife,
                    confidence: 0.9,
                    contributions: ModalityScores {
                        audio: f.audio.as_ref().map(|_| Permille(1000)),
                        camera: None,
                        climate: f.climate.as_ref().map(|_| Permille(0)),
                    },
                })
                .collect())
        }
        fn status(&self) -> String {
            "loaded".into()
        }
    }

    fn status(soc: f64) -> PowerStatus {
        PowerPolicy::new(PolicyConfig::default()).update(PowerReading {
            t_ms: 0,
            soc,
            solar_w: 0.0,
            load_w: 3.0,
            battery_mv: None,
        })
    }

    fn detection() -> Detection {
        Detection {
            start_ms: 0,
            end_ms: 1000,
            span_end_ms: 1000,
            class: EventClass::Unknown,
            confidence: 0.4,
            scores: ModalityScores::default(),
            features: KeyFeatures::default(),
            heat_from_sun: false,
        }
    }

    #[test]
    fn the_suns_heat_is_kept_from_the_model_and_contributes_nothing() {
        let (_tx, rx) = watch::channel(status(0.9));
        let counters = Arc::new(Counters::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters, &[]);
        let f = EventFeatures {
            audio: Some(vec![1.0; 4]),
            camera: None,
            climate: Some(vec![2.0; 4]),
        };
        let shade = Detection {
            scores: ModalityScores {
                audio: Some(Permille(800)),
                camera: None,
                climate: Some(Permille(200)),
            },
            ..detection()
        };
        let sun = Detection {
            heat_from_sun: true,
            ..shade.clone()
        };
        // In the shade the model sees the climate.
        let shown = shown_to_model(f.clone(), &shade);
        assert_eq!(shown, f);
        // In the sun it does not; the record still says the sensor was
        // there (contribution 0, not absent).
        let shown = shown_to_model(f.clone(), &sun);
        assert_eq!(shown.climate, None);
        assert_eq!(shown.audio, f.audio);
        let c = stage.classify(vec![sun], &[shown]).remove(0);
        assert_eq!(c.detection.scores.climate, Some(Permille(0)));
        assert_eq!(c.detection.scores.audio, Some(Permille(1000)));
        // A sunlit event without a climate sensor stays without one.
        let no_sensor = Detection {
            heat_from_sun: true,
            scores: ModalityScores {
                climate: None,
                ..shade.scores
            },
            ..detection()
        };
        let shown = shown_to_model(f.without(Modality::Climate), &no_sensor);
        let c = stage.classify(vec![no_sensor], &[shown]).remove(0);
        assert_eq!(c.detection.scores.climate, None);
    }

    #[test]
    fn bursts_run_only_when_the_policy_allows() {
        let (tx, rx) = watch::channel(status(0.9));
        let counters = Arc::new(Counters::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &[]);
        let f = [EventFeatures::default()];
        let c = stage.classify(vec![detection()], &f).remove(0);
        assert_eq!(
            (c.detection.class, c.model),
            (EventClass::Wildlife, ModelVersion(3))
        );
        tx.send_replace(status(0.05));
        let c = stage.classify(vec![detection()], &f).remove(0);
        assert_eq!(
            (c.detection.class, c.model),
            (EventClass::Unknown, ModelVersion::TRIGGERS_ONLY)
        );
        assert_eq!(Counters::get(&counters.bursts), 1);
        assert_eq!(Counters::get(&counters.bursts_skipped), 1);
    }

    #[test]
    fn installed_settings_change_thresholds_and_exclusions_before_the_next_burst() {
        let (_tx, rx) = watch::channel(status(0.9));
        let counters = Arc::new(Counters::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let (live_tx, live_rx) = crate::update::live::channel();
        let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &[])
            .with_live_settings(live_rx);
        let f = [EventFeatures::default()];
        let verdict = |stage: &mut DetectStage| {
            stage.poll_settings();
            let c = stage.classify(vec![detection()], &f).remove(0);
            let c = stage.apply_threshold(c);
            (c.detection.class, stage.keep(&c))
        };
        assert_eq!(verdict(&mut stage), (EventClass::Wildlife, true));
        let mut cfg = crate::config::Config::default();
        cfg.fusion.thresholds.insert("wildlife".into(), 0.95);
        live_tx.send_replace(Some(Arc::new(crate::update::live::LiveSettings::of(
            &cfg, 2,
        ))));
        assert_eq!(verdict(&mut stage), (EventClass::Unknown, true));
        assert_eq!(Counters::get(&counters.events_uncertain), 1);
        cfg.fusion.thresholds.insert("wildlife".into(), 0.5);
        cfg.fusion.exclude = vec!["wildlife".into()];
        live_tx.send_replace(Some(Arc::new(crate::update::live::LiveSettings::of(
            &cfg, 3,
        ))));
        assert_eq!(verdict(&mut stage), (EventClass::Wildlife, false));
        assert_eq!(Counters::get(&counters.events_excluded), 1);
    }

    #[test]
    fn background_by_the_rules_goes_to_the_model_and_is_dropped_only_without_one() {
        let background = || Detection {
            class: EventClass::Background,
            ..detection()
        };
        let f = [EventFeatures::default()];
        let (tx, rx) = watch::channel(status(0.9));
        let counters = Arc::new(Counters::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &[]);
        let c = stage.classify(vec![background()], &f).remove(0);
        assert!(stage.keep_unclassified(&c), "the model's verdict decides");
        assert_eq!(c.detection.class, EventClass::Wildlife);
        tx.send_replace(status(0.05));
        let c = stage.classify(vec![background()], &f).remove(0);
        assert!(
            !stage.keep_unclassified(&c),
            "no burst: the rules' background is dropped"
        );
        assert_eq!(Counters::get(&counters.background_dropped), 1);

        let mut cfg = fusion::DetectorConfig::default();
        cfg.merge.report_background = true;
        let (_tx, rx) = watch::channel(status(0.9));
        let stage = DetectStage::new(Detector::new(&cfg, 16_000), None, rx, counters.clone(), &[]);
        let c = Classified {
            detection: background(),
            model: ModelVersion::TRIGGERS_ONLY,
            short_of: None,
            rules_background: true,
        };
        assert!(stage.keep_unclassified(&c), "report_background keeps it");
        assert_eq!(Counters::get(&counters.background_dropped), 1);
    }

    /// A classified event through the thresholds and the bouts: its class,
    /// how many events were stored, and the counts of unsure events and of
    /// those not stored as background to the rules.
    fn threshold_outcome(
        stage: &mut DetectStage,
        counters: &Counters,
        c: Classified,
    ) -> (EventClass, usize, u64, u64) {
        let c = stage.apply_threshold(c);
        let class = c.detection.class;
        let stored = stage.join_bouts(vec![c], i64::MAX).len();
        (
            class,
            stored,
            Counters::get(&counters.events_uncertain),
            Counters::get(&counters.uncertain_background),
        )
    }

    #[test]
    fn a_verdict_resting_on_the_climate_for_what_the_rules_call_background_is_unsure() {
        let f = [EventFeatures::default()];
        // Fixed says wildlife at 0.9, above the default threshold.
        let run = |rules: EventClass, climate: u16| {
            let (_tx, rx) = watch::channel(status(0.9));
            let counters = Arc::new(Counters::default());
            let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
            let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &[])
                .with_fusion_config(&FusionConfig::default())
                .expect("no dump file");
            let d = Detection {
                class: rules,
                ..detection()
            };
            let mut c = stage.classify(vec![d], &f).remove(0);
            c.detection.scores = ModalityScores {
                audio: Some(Permille(1000 - climate)),
                camera: None,
                climate: Some(Permille(climate)),
            };
            threshold_outcome(&mut stage, &counters, c)
        };
        assert_eq!(
            run(EventClass::Background, 600),
            (EventClass::Unknown, 0, 1, 1),
            "heard: background; the class rests on the climate"
        );
        assert_eq!(
            run(EventClass::Background, 400),
            (EventClass::Wildlife, 1, 0, 0),
            "the sound carries the verdict"
        );
        assert_eq!(
            run(EventClass::Wildlife, 600),
            (EventClass::Wildlife, 1, 0, 0),
            "the rules heard a call: the climate is context for it"
        );
    }

    #[test]
    fn a_class_that_overrules_what_the_rules_call_background_must_be_sure() {
        let f = [EventFeatures::default()];
        let run_as =
            |rules: EventClass, verdict: EventClass, confidence: f32, overrule: Option<f32>| {
                let (_tx, rx) = watch::channel(status(0.9));
                let counters = Arc::new(Counters::default());
                let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
                let mut cfg = FusionConfig::default();
                if let Some(o) = overrule {
                    cfg.overrule_background = o;
                }
                let mut stage =
                    DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &[])
                        .with_fusion_config(&cfg)
                        .expect("no dump file");
                let d = Detection {
                    class: rules,
                    ..detection()
                };
                let mut c = stage.classify(vec![d], &f).remove(0);
                c.detection.class = verdict;
                c.detection.confidence = confidence;
                threshold_outcome(&mut stage, &counters, c)
            };
        let run = |rules: EventClass, confidence: f32, overrule: Option<f32>| {
            run_as(rules, EventClass::Wildlife, confidence, overrule)
        };
        assert_eq!(
            run(EventClass::Background, 0.6, None),
            (EventClass::Unknown, 0, 1, 1),
            "above the class threshold, not sure enough to overrule the rules"
        );
        assert_eq!(
            run(EventClass::Background, 0.8, None),
            (EventClass::Wildlife, 1, 0, 0),
            "sure enough"
        );
        assert_eq!(
            run(EventClass::Wildlife, 0.6, None),
            (EventClass::Wildlife, 1, 0, 0),
            "the rules heard a call too"
        );
        assert_eq!(
            run(EventClass::Background, 0.6, Some(0.5)),
            (EventClass::Wildlife, 1, 0, 0),
            "overruling set at the class threshold"
        );
        assert_eq!(
            run_as(
                EventClass::Background,
                EventClass::MachineryAnomaly,
                0.6,
                None
            ),
            (EventClass::MachineryAnomaly, 1, 0, 0),
            "a steady machine is a hum to the rules: their background says nothing against it"
        );
    }

    #[test]
    fn an_unsure_verdict_on_what_the_rules_call_background_is_not_stored_unless_a_bout_takes_it() {
        let at = |start_ms: i64, class: EventClass| Detection {
            start_ms,
            end_ms: start_ms + 1000,
            span_end_ms: start_ms + 1000,
            class,
            ..detection()
        };
        let f = [EventFeatures::default()];
        let run = |store: bool, rules: EventClass| {
            let (_tx, rx) = watch::channel(status(0.9));
            let counters = Arc::new(Counters::default());
            let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
            let mut cfg = FusionConfig::default();
            // Fixed says wildlife at 0.9: below this threshold, unsure.
            cfg.thresholds.insert("wildlife".into(), 0.95);
            cfg.store_uncertain_background = store;
            let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &[])
                .with_fusion_config(&cfg)
                .expect("no dump file");
            let c = stage.classify(vec![at(0, rules)], &f).remove(0);
            let c = stage.apply_threshold(c);
            let stored = stage.join_bouts(vec![c], i64::MAX);
            let classes: Vec<EventClass> = stored.iter().map(|c| c.detection.class).collect();
            (classes, Counters::get(&counters.uncertain_background))
        };
        assert_eq!(run(false, EventClass::Background), (vec![], 1));
        assert_eq!(
            run(false, EventClass::Wildlife),
            (vec![EventClass::Unknown], 0),
            "the rules heard something: unknown is stored"
        );
        assert_eq!(
            run(true, EventClass::Background),
            (vec![EventClass::Unknown], 0),
            "store_uncertain_background keeps it"
        );

        // The unsure tail of a bout, drowned by a gust, joins the sure
        // verdict before it and is stored with it.
        let (_tx, rx) = watch::channel(status(0.9));
        let counters = Arc::new(Counters::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &[]);
        let sure = stage
            .classify(vec![at(0, EventClass::Wildlife)], &f)
            .remove(0);
        let mut tail = stage
            .classify(vec![at(3000, EventClass::Background)], &f)
            .remove(0);
        tail.detection.class = EventClass::Unknown;
        tail.short_of = Some(EventClass::Wildlife);
        let stored = stage.join_bouts(vec![sure, tail.clone()], i64::MAX);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].detection.class, EventClass::Wildlife);
        assert_eq!(
            (stored[0].detection.start_ms, stored[0].detection.end_ms),
            (0, 4000)
        );
        assert_eq!(Counters::get(&counters.uncertain_background), 0);
        // Two unsure pieces that are both background to the rules stay so
        // when joined.
        let mut other = tail.clone();
        other.detection.start_ms = 5000;
        other.detection.end_ms = 6000;
        assert!(
            stage
                .join_bouts(vec![tail.clone(), other.clone()], i64::MAX)
                .is_empty()
        );
        assert_eq!(Counters::get(&counters.uncertain_background), 1);
        // One unsure piece the rules heard something in: the bout is kept
        // as unknown, even where the surer piece was background to them.
        let mut heard = other;
        heard.rules_background = false;
        heard.detection.confidence = tail.detection.confidence - 0.1;
        let stored = stage.join_bouts(vec![tail, heard], i64::MAX);
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].detection.class, EventClass::Unknown);
        assert_eq!(Counters::get(&counters.uncertain_background), 1);
    }

    /// A classifier that notes, on tokio's clock, when it ran a burst and
    /// when it was released.
    struct Timed {
        seen: Arc<std::sync::Mutex<Vec<(tokio::time::Instant, &'static str)>>>,
        status: &'static str,
    }
    impl Classifier for Timed {
        fn version(&self) -> ModelVersion {
            ModelVersion(3)
        }
        fn classify(
            &mut self,
            events: &[EventFeatures],
        ) -> Result<Vec<fusion::Verdict>, fusion::ClassifyError> {
            let now = tokio::time::Instant::now();
            self.seen.lock().unwrap().push((now, "burst"));
            Fixed.classify(events)
        }
        fn release(&mut self) {
            let now = tokio::time::Instant::now();
            self.seen.lock().unwrap().push((now, "release"));
        }
        fn status(&self) -> String {
            self.status.into()
        }
    }

    fn accelerator_loads() -> (power::loads::FakeSwitch, power::SwitchedLoads) {
        let fake = power::loads::FakeSwitch::new();
        let cfg = power::LoadsConfig {
            accelerator: Some(power::loads::LoadLine {
                pin: 17,
                active_low: false,
                settle_ms: 300,
                draw_mw: 2500.0,
            }),
            ..power::LoadsConfig::default()
        };
        let loads = power::SwitchedLoads::new(Box::new(fake.clone()), &cfg);
        (fake, loads)
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_powers_the_accelerator_first_and_the_idle_release_powers_it_down() {
        use std::time::Duration;
        use tokio::time::Instant;
        let ms = Duration::from_millis;
        let (fake, loads) = accelerator_loads();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let classifier = Timed {
            seen: seen.clone(),
            status: "released",
        };
        let (_tx, rx) = watch::channel(status(0.9));
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let counters = Arc::new(Counters::default());
        let mut stage = DetectStage::new(det, Some(Box::new(classifier)), rx, counters, &[])
            .with_accelerator_supply(AcceleratorSupply::new(&loads, 5_000));
        let f = [EventFeatures::default()];
        let t0 = Instant::now();
        assert_eq!(stage.release_due(), None, "off before the first burst");

        let c = stage.burst(vec![detection()], &f).await.remove(0);
        assert_eq!(c.model, ModelVersion(3));
        // Switched on at once, the burst ran after the settle time.
        let on: Vec<_> = fake.log().iter().map(|s| (s.at - t0, s.on)).collect();
        assert_eq!(on, [(ms(0), true)]);
        assert_eq!(seen.lock().unwrap()[0], (t0 + ms(300), "burst"));
        assert_eq!(stage.release_due(), Some(t0 + ms(5_300)));

        // Another burst before the release keeps it on, without switching
        // or settling again, and starts the idle time again.
        tokio::time::advance(ms(2_000)).await;
        stage.burst(vec![detection()], &f).await;
        assert_eq!(seen.lock().unwrap()[1], (t0 + ms(2_300), "burst"));
        assert!(!stage.release_if_due());
        tokio::time::sleep_until(stage.release_due().unwrap()).await;
        assert!(stage.release_if_due());
        assert_eq!(stage.release_due(), None);
        // The model is released before its supply goes off.
        let off = t0 + ms(7_300);
        assert_eq!(seen.lock().unwrap()[2], (off, "release"));
        let log: Vec<_> = fake.log().iter().map(|s| (s.at - t0, s.on)).collect();
        assert_eq!(log, [(ms(0), true), (ms(7_300), false)]);
        let a = &loads.report().loads["accelerator"];
        assert_eq!((a.wakes, a.on_ms, a.on), (1, 7_300, false));
        assert!((a.energy_j - 2.5 * 7.3).abs() < 1e-9, "{}", a.energy_j);

        // The next burst wakes it again; the end of the run powers it down.
        stage.burst(vec![detection()], &f).await;
        assert!(loads.is_on(power::Load::Accelerator));
        stage.power_down();
        assert!(!loads.is_on(power::Load::Accelerator));
        assert_eq!(loads.report().loads["accelerator"].wakes, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn no_burst_no_power_denied_or_unavailable_bursts_leave_the_supply_off() {
        let (fake, loads) = accelerator_loads();
        let f = [EventFeatures::default()];
        let det = || Detector::new(&fusion::DetectorConfig::default(), 16_000);
        // The power policy denies the burst.
        let (_tx, rx) = watch::channel(status(0.05));
        let mut stage = DetectStage::new(
            det(),
            Some(Box::new(Fixed)),
            rx,
            Arc::new(Counters::default()),
            &[],
        )
        .with_accelerator_supply(AcceleratorSupply::new(&loads, 5_000));
        stage.burst(vec![detection()], &f).await;
        // A classifier that cannot run.
        let (_tx, rx) = watch::channel(status(0.9));
        let unavailable = Timed {
            seen: Arc::default(),
            status: "unavailable (no library)",
        };
        let mut stage = DetectStage::new(
            det(),
            Some(Box::new(unavailable)),
            rx,
            Arc::new(Counters::default()),
            &[],
        )
        .with_accelerator_supply(AcceleratorSupply::new(&loads, 5_000));
        stage.burst(vec![detection()], &f).await;
        assert!(fake.log().is_empty(), "{:?}", fake.log());
        // No accelerator line: no supply to drive.
        let none = power::SwitchedLoads::new(
            Box::new(power::loads::FakeSwitch::new()),
            &power::LoadsConfig::default(),
        );
        assert!(AcceleratorSupply::new(&none, 5_000).is_none());
    }

    #[test]
    fn the_camera_is_asked_for_when_the_audio_trigger_starts_hearing_something() {
        use rand::{Rng, SeedableRng};
        let (_tx, rx) = watch::channel(status(0.3));
        let counters = Arc::new(Counters::default());
        let demand = Arc::new(CameraDemand::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let mut stage = DetectStage::new(det, None, rx, counters.clone(), &[])
            .with_camera_demand(demand.clone());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut x: Vec<f32> = (0..16_000 * 20)
            .map(|_| (rng.random::<f32>() - 0.5) * 0.02)
            .collect();
        // A 0.4 s call at 15 s.
        let mut ph = 0f32;
        for v in x[240_000..246_400].iter_mut() {
            ph += 2.0 * std::f32::consts::PI * 3200.0 / 16_000.0;
            *v += 0.2 * ph.sin();
        }
        for (i, c) in x.chunks(8000).enumerate() {
            stage.push(SensorMsg::Audio(fusion::AudioChunk {
                start_ms: i as i64 * 500,
                sample_rate: 16_000,
                samples: c.to_vec(),
            }));
            let t = i as i64 * 500;
            // Nothing heard before the call; asked with the chunk that
            // holds its start.
            assert_eq!(demand.last_ms().is_some(), t >= 15_000, "at {t} ms");
        }
        assert_eq!(demand.last_ms(), Some(15_500));
        assert_eq!(Counters::get(&counters.camera_requests_audio), 1);
    }

    /// Runs `x` (16 kHz, audio only) through a stage whose model calls
    /// everything wildlife, with `[fusion] join_gap_ms = gap`: the events
    /// stored and the events joined.
    async fn stored_with_join_gap(x: &[f32], gap: u32) -> (Vec<(i64, i64)>, u64) {
        let (_tx, rx) = watch::channel(status(0.9));
        let counters = Arc::new(Counters::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let absent = [Modality::Camera, Modality::Climate];
        let cfg = FusionConfig {
            join_gap_ms: gap,
            ..FusionConfig::default()
        };
        let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &absent)
            .with_fusion_config(&cfg)
            .expect("no dump file");
        let mut stored = Vec::new();
        for (i, c) in x.chunks(8000).enumerate() {
            stage.push(SensorMsg::Audio(fusion::AudioChunk {
                start_ms: i as i64 * 500,
                sample_rate: 16_000,
                samples: c.to_vec(),
            }));
            stored.extend(stage.take(false).await);
        }
        stored.extend(stage.take(true).await);
        let spans = stored
            .iter()
            .map(|c| (c.detection.start_ms, c.detection.end_ms))
            .collect();
        (spans, Counters::get(&counters.events_joined))
    }

    #[tokio::test]
    async fn events_of_one_class_a_few_seconds_apart_are_stored_as_one() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut x: Vec<f32> = (0..16_000 * 120)
            .map(|_| (rng.random::<f32>() - 0.5) * 0.02)
            .collect();
        // Two sounds the triggers keep apart (a 3.2 kHz whistle, then 4.5 s
        // later a 400 Hz one two octaves down), and a third 40 s later.
        let mut add = |at_s: usize, hz: f32| {
            let mut ph = 0f32;
            for v in x[at_s * 16_000..at_s * 16_000 + 16_000].iter_mut() {
                ph += 2.0 * std::f32::consts::PI * hz / 16_000.0;
                *v += 0.2 * ph.sin();
            }
        };
        add(40, 3200.0);
        add(45, 400.0);
        add(85, 3200.0);
        let (apart, joined) = stored_with_join_gap(&x, 0).await;
        assert_eq!(apart.len(), 3, "{apart:?}");
        assert_eq!(joined, 0);
        let (bouts, joined) = stored_with_join_gap(&x, 6_000).await;
        assert_eq!(bouts.len(), 2, "{bouts:?}");
        assert_eq!(joined, 1);
        assert_eq!(bouts[0], (apart[0].0, apart[1].1));
        assert_eq!(bouts[1], apart[2]);
    }

    #[tokio::test]
    async fn a_heat_rise_put_down_to_the_sun_is_counted_though_nothing_is_stored() {
        let (_tx, rx) = watch::channel(status(0.9));
        let counters = Arc::new(Counters::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let mut stage = DetectStage::new(det, None, rx, counters.clone(), &[Modality::Audio]);
        let mut stored = Vec::new();
        // The sun comes out at 100 s (the view brightens by half) and the
        // enclosure warms by 4 °C over the 4 minutes from 140 s.
        for i in 0..1200i64 {
            let t = i * 500;
            let light = if t < 100_000 { 80.0 } else { 120.0 };
            stage.push(SensorMsg::Frame(fusion::GrayFrame {
                t_ms: t,
                width: 8,
                height: 6,
                luma: (0..48u32)
                    .map(|p| (light * (0.8 + 0.05 * (p % 7) as f32)) as u8)
                    .collect(),
                exposure: None,
            }));
            if i % 20 == 0 {
                let warm = ((t - 140_000) as f32 / 240_000.0).clamp(0.0, 1.0);
                stage.push(SensorMsg::Climate(fusion::ClimateSample {
                    t_ms: t,
                    temperature_c: 15.0 + 4.0 * warm,
                    humidity_pct: 50.0,
                    pressure_hpa: 1000.0,
                }));
            }
            stored.extend(stage.take(false).await);
        }
        // Counted as soon as the rise closed, before the end of the input.
        assert_eq!(Counters::get(&counters.sun_heat_rises), 1);
        stored.extend(stage.take(true).await);
        assert!(stored.is_empty(), "{stored:?}");
        assert_eq!(Counters::get(&counters.sun_heat_rises), 1);
    }

    /// A model on trial whose bursts fail.
    struct Failing;
    impl Classifier for Failing {
        fn version(&self) -> ModelVersion {
            ModelVersion(7)
        }
        fn classify(
            &mut self,
            _events: &[EventFeatures],
        ) -> Result<Vec<fusion::Verdict>, fusion::ClassifyError> {
            Err(fusion::ClassifyError::Inference(
                "output tensor missing".into(),
            ))
        }
        fn status(&self) -> String {
            "loaded".into()
        }
    }

    #[test]
    fn a_trial_that_fails_on_a_burst_puts_the_previous_classifier_back() {
        let (_tx, rx) = watch::channel(status(0.9));
        let counters = Arc::new(Counters::default());
        let det = Detector::new(&fusion::DetectorConfig::default(), 16_000);
        let (swap_tx, swap_rx) = mpsc::channel(1);
        let mut stage = DetectStage::new(det, Some(Box::new(Fixed)), rx, counters.clone(), &[])
            .with_swaps(swap_rx);
        let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
        swap_tx
            .try_send(ModelSwap {
                classifier: Box::new(Failing),
                bursts: 3,
                done: done_tx,
            })
            .unwrap_or_else(|_| panic!("the swap channel is open"));
        stage.poll_swaps();
        let f = [EventFeatures::default()];
        // The first burst on trial fails: its event keeps the triggers' class.
        let c = stage.classify(vec![detection()], &f).remove(0);
        assert_eq!(
            (c.detection.class, c.model),
            (EventClass::Unknown, ModelVersion::TRIGGERS_ONLY)
        );
        assert_eq!(Counters::get(&counters.bursts_failed), 1);
        // The trial ended as failed, with the classifier's error.
        match done_rx.try_recv() {
            Ok(TrialOutcome::Failed(reason)) => {
                assert!(reason.contains("output tensor missing"), "{reason}")
            }
            other => panic!("the trial did not fail: {other:?}"),
        }
        // The previous classifier is back for the next burst.
        let c = stage.classify(vec![detection()], &f).remove(0);
        assert_eq!(
            (c.detection.class, c.model),
            (EventClass::Wildlife, ModelVersion(3))
        );
        assert_eq!(Counters::get(&counters.bursts_failed), 1);
    }
}
