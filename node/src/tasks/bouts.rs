//! Joins classified events into bouts: events the model gives the same
//! class that follow each other within `[fusion] join_gap_ms` become one
//! stored event. The triggers split a bird's song bout, a speaker's
//! sentences or a machine's bursts at pauses longer than their merge gap;
//! stored apart, each piece costs a record, a satellite message's bytes and
//! a line in the researcher's table, and tells less than the whole bout.
//!
//! Only events of one class join (`wildlife`, `machinery_anomaly`,
//! `human_activity`), and only events of the same detector (model version):
//! the triggers' own classes and events of different classes stay apart.
//! An `unknown` verdict (below its class's threshold) counts as the class
//! it fell short in: the uncertain tail of a bout, a song half drowned by a
//! gust, joins the sure verdict beside it. A joined event spans both, keeps
//! the class and key features of the surer verdict (a class over
//! `unknown`, then the higher confidence), and never grows beyond the
//! detector's `merge.max_event_ms`.
//!
//! The last event is held back until no later event can join it: the
//! detector reports how early its next event can start
//! (`Detector::next_start_bound_ms`). A held event is not yet stored, like
//! an activation still open, so a power cut loses it with them.

use messages::EventClass;

use super::detect::Classified;

/// Joins same-class events closer than a gap (see the module documentation).
#[derive(Debug)]
pub struct BoutJoiner {
    gap_ms: i64,
    max_ms: i64,
    held: Option<Classified>,
    joined: u64,
}

impl BoutJoiner {
    /// A joiner for `gap_ms` (0: never joins, holds nothing) and events of
    /// at most `max_event_ms`.
    pub fn new(gap_ms: u32, max_event_ms: u32) -> Self {
        BoutJoiner {
            gap_ms: i64::from(gap_ms),
            max_ms: i64::from(max_event_ms),
            held: None,
            joined: 0,
        }
    }

    /// Changes the gap (live settings); a held event is kept.
    pub fn set_gap(&mut self, gap_ms: u32) {
        self.gap_ms = i64::from(gap_ms);
    }

    /// Events joined into an earlier one so far.
    pub fn joined(&self) -> u64 {
        self.joined
    }

    /// The class an event joins by: its own, or for `unknown` the class
    /// it fell short in; `None` for classes that never join.
    fn bout_class(c: &Classified) -> Option<EventClass> {
        let class = match c.detection.class {
            EventClass::Unknown => c.short_of?,
            other => other,
        };
        matches!(
            class,
            EventClass::Wildlife | EventClass::MachineryAnomaly | EventClass::HumanActivity
        )
        .then_some(class)
    }

    fn can_join(&self, a: &Classified, b: &Classified) -> bool {
        let (x, y) = (&a.detection, &b.detection);
        self.gap_ms > 0
            && a.model == b.model
            && Self::bout_class(a).is_some()
            && Self::bout_class(a) == Self::bout_class(b)
            && y.start_ms >= x.start_ms
            && y.start_ms.saturating_sub(x.end_ms) <= self.gap_ms
            && x.end_ms.max(y.end_ms).saturating_sub(x.start_ms) <= self.max_ms
    }

    fn join(a: Classified, b: Classified) -> Classified {
        let end_ms = a.detection.end_ms.max(b.detection.end_ms);
        let span_end_ms = a.detection.span_end_ms.max(b.detection.span_end_ms);
        let start_ms = a.detection.start_ms;
        let sure = |c: &Classified| {
            (
                c.detection.class != EventClass::Unknown,
                c.detection.confidence,
            )
        };
        let rules_background = a.rules_background && b.rules_background;
        let mut best = if sure(&b) > sure(&a) { b } else { a };
        best.rules_background = rules_background;
        best.detection.start_ms = start_ms;
        best.detection.end_ms = end_ms;
        best.detection.span_end_ms = span_end_ms;
        best
    }

    /// Takes `events` (in start order, as the detector finalises them) and
    /// returns the events that are final: no event starting at or after
    /// `bound_ms` can join them (`i64::MAX` at the end of the input
    /// releases everything).
    pub fn push(&mut self, events: Vec<Classified>, bound_ms: i64) -> Vec<Classified> {
        let mut out = Vec::new();
        for e in events {
            match self.held.take() {
                Some(h) if self.can_join(&h, &e) => {
                    self.joined += 1;
                    tracing::debug!(
                        class = h.detection.class.as_str(),
                        start_ms = h.detection.start_ms,
                        joined_start_ms = e.detection.start_ms,
                        "event joined to the previous one of its bout"
                    );
                    self.held = Some(Self::join(h, e));
                    continue;
                }
                Some(h) => out.push(h),
                None => {}
            }
            if self.gap_ms > 0 && Self::bout_class(&e).is_some() {
                self.held = Some(e);
            } else {
                out.push(e);
            }
        }
        if let Some(h) = self.held.take() {
            if h.detection.end_ms.saturating_add(self.gap_ms) < bound_ms {
                out.push(h);
            } else {
                self.held = Some(h);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion::Detection;
    use messages::{KeyFeatures, ModalityScores, ModelVersion};

    fn ev(start: i64, end: i64, class: EventClass, confidence: f32) -> Classified {
        Classified {
            detection: Detection {
                start_ms: start,
                end_ms: end,
                span_end_ms: end,
                class,
                confidence,
                scores: ModalityScores::default(),
                features: KeyFeatures {
                    audio_peak_hz: Some((start / 1000) as u16),
                    ..KeyFeatures::default()
                },
                heat_from_sun: false,
            },
            model: ModelVersion(3),
            short_of: None,
            rules_background: false,
        }
    }

    /// An `unknown` verdict that fell short in `class`.
    fn uncertain(start: i64, end: i64, class: EventClass, confidence: f32) -> Classified {
        Classified {
            short_of: Some(class),
            ..ev(start, end, EventClass::Unknown, confidence)
        }
    }

    fn spans(v: &[Classified]) -> Vec<(i64, i64, EventClass)> {
        v.iter()
            .map(|c| (c.detection.start_ms, c.detection.end_ms, c.detection.class))
            .collect()
    }

    const W: EventClass = EventClass::Wildlife;
    const H: EventClass = EventClass::HumanActivity;

    #[test]
    fn songs_of_a_bout_become_one_event_with_the_surest_verdicts_features() {
        let mut j = BoutJoiner::new(6_000, 180_000);
        let out = j.push(
            vec![
                ev(10_000, 14_000, W, 0.7),
                ev(17_500, 20_000, W, 0.9),
                ev(24_000, 26_000, W, 0.6),
            ],
            27_000,
        );
        // Held: a later event could still join.
        assert!(out.is_empty());
        let out = j.push(Vec::new(), 32_001);
        assert_eq!(spans(&out), vec![(10_000, 26_000, W)]);
        assert_eq!(out[0].detection.confidence, 0.9);
        assert_eq!(out[0].detection.features.audio_peak_hz, Some(17));
        assert_eq!(j.joined(), 2);
    }

    #[test]
    fn other_classes_unknown_far_events_and_other_detectors_stay_apart() {
        let mut j = BoutJoiner::new(6_000, 180_000);
        let mut triggers = ev(50_000, 52_000, H, 0.8);
        triggers.model = ModelVersion::TRIGGERS_ONLY;
        let out = j.push(
            vec![
                ev(10_000, 14_000, W, 0.7),
                ev(16_000, 18_000, H, 0.9),
                ev(20_000, 22_000, EventClass::Unknown, 0.4),
                ev(23_000, 25_000, EventClass::Unknown, 0.4),
                ev(40_000, 42_000, H, 0.9),
                ev(48_500, 49_000, H, 0.9),
                triggers,
            ],
            i64::MAX,
        );
        assert_eq!(
            spans(&out),
            vec![
                (10_000, 14_000, W),
                (16_000, 18_000, H),
                (20_000, 22_000, EventClass::Unknown),
                (23_000, 25_000, EventClass::Unknown),
                (40_000, 42_000, H),
                (48_500, 49_000, H),
                (50_000, 52_000, H),
            ]
        );
        assert_eq!(j.joined(), 0);
    }

    #[test]
    fn an_uncertain_piece_joins_the_sure_verdict_of_its_class_beside_it() {
        let mut j = BoutJoiner::new(6_000, 180_000);
        let out = j.push(
            vec![
                ev(10_000, 16_000, W, 0.95),
                uncertain(19_000, 27_000, W, 0.42),
                uncertain(40_000, 45_000, H, 0.45),
                ev(48_000, 50_000, W, 0.9),
                uncertain(60_000, 62_000, W, 0.4),
                uncertain(64_000, 66_000, W, 0.45),
            ],
            i64::MAX,
        );
        assert_eq!(
            spans(&out),
            vec![
                (10_000, 27_000, W),
                (40_000, 45_000, EventClass::Unknown),
                (48_000, 50_000, W),
                (60_000, 66_000, EventClass::Unknown),
            ]
        );
        assert_eq!(out[0].detection.confidence, 0.95);
        assert_eq!(out[3].detection.confidence, 0.45);
        assert_eq!(out[3].short_of, Some(W));
        assert_eq!(j.joined(), 2);
    }

    #[test]
    fn a_bout_never_grows_beyond_the_longest_event() {
        let mut j = BoutJoiner::new(6_000, 20_000);
        let out = j.push(
            vec![
                ev(0, 8_000, W, 0.7),
                ev(10_000, 18_000, W, 0.7),
                ev(20_000, 28_000, W, 0.7),
            ],
            i64::MAX,
        );
        assert_eq!(spans(&out), vec![(0, 18_000, W), (20_000, 28_000, W)]);
    }

    #[test]
    fn a_held_event_waits_for_the_detectors_bound_and_zero_gap_holds_nothing() {
        let mut j = BoutJoiner::new(6_000, 180_000);
        assert!(j.push(vec![ev(0, 2_000, W, 0.7)], 5_000).is_empty());
        // An activation that started at 7 s may still become an event.
        assert!(j.push(Vec::new(), 7_000).is_empty());
        let out = j.push(vec![ev(7_000, 30_000, W, 0.8)], 31_000);
        assert!(out.is_empty());
        let out = j.push(Vec::new(), i64::MAX);
        assert_eq!(spans(&out), vec![(0, 30_000, W)]);

        let mut off = BoutJoiner::new(0, 180_000);
        let out = off.push(vec![ev(0, 2_000, W, 0.7), ev(3_000, 4_000, W, 0.7)], 4_000);
        assert_eq!(spans(&out), vec![(0, 2_000, W), (3_000, 4_000, W)]);
    }
}
