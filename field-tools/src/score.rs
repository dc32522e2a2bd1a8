//! Event-level scoring of stored events against a scene's `labels.csv`.
//!
//! An event matches a label when their intervals overlap (within
//! `tolerance_ms`). Each label and each event is matched at most once,
//! greedily by largest overlap. `background` labels are distractors: an
//! event that matches only those (or nothing) is a false alarm.
//!
//! Per class: TP = events of that class matched to a label of that class;
//! FP = events of that class that are not; FN = labels of that class not
//! matched by an event of that class. Detection recall ignores the class: a
//! label counts as found when any event overlaps it.

use std::path::Path;

use messages::{EventClass, EventRecord};
use serde::Serialize;

/// One row of `labels.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Start, ms from the scene start.
    pub start_ms: i64,
    /// End, ms from the scene start.
    pub end_ms: i64,
    /// Class (`background` labels are distractors).
    pub class: EventClass,
}

/// Why labels could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: line {line}: {problem}")]
pub struct LabelError {
    /// The file.
    pub path: String,
    /// The line.
    pub line: u64,
    /// What is wrong.
    pub problem: String,
}

/// Reads `labels.csv` (`start_s,end_s,class`).
pub fn read_labels(path: &Path) -> Result<Vec<Label>, LabelError> {
    let bad = |line: u64, problem: String| LabelError {
        path: path.display().to_string(),
        line,
        problem,
    };
    let mut rdr = csv::Reader::from_path(path).map_err(|e| bad(0, e.to_string()))?;
    let headers = rdr.headers().map_err(|e| bad(1, e.to_string()))?.clone();
    if headers
        .iter()
        .map(str::trim)
        .ne(["start_s", "end_s", "class"])
    {
        return Err(bad(1, "expected the header `start_s,end_s,class`".into()));
    }
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| bad(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let num = |i: usize| -> Result<f64, LabelError> {
            rec.get(i)
                .unwrap_or("")
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    bad(
                        line,
                        format!(
                            "expected a number of seconds in column {}, found `{}`",
                            i + 1,
                            rec.get(i).unwrap_or("")
                        ),
                    )
                })
        };
        let (s, e) = (num(0)?, num(1)?);
        if e < s {
            return Err(bad(line, "end_s is before start_s".into()));
        }
        let name = rec.get(2).unwrap_or("").trim();
        let class =
            EventClass::parse(name).ok_or_else(|| bad(line, format!("unknown class `{name}`")))?;
        out.push(Label {
            start_ms: (s * 1000.0).round() as i64,
            end_ms: (e * 1000.0).round() as i64,
            class,
        });
    }
    Ok(out)
}

/// Scores of one class.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassScore {
    /// Class name.
    pub class: String,
    /// Labels of the class.
    pub labels: u32,
    /// Events given the class.
    pub events: u32,
    /// True positives.
    pub tp: u32,
    /// False positives.
    pub fp: u32,
    /// False negatives.
    pub fn_: u32,
    /// TP / (TP + FP).
    pub precision: f64,
    /// TP / (TP + FN).
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Labels of the class overlapped by any event.
    pub detected: u32,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScoreReport {
    /// Per class (wildlife, machinery_anomaly, human_activity).
    pub classes: Vec<ClassScore>,
    /// Mean F1 over the classes that have labels or events.
    pub macro_f1: f64,
    /// Non-background labels overlapped by any event / all of them.
    pub detection_recall: f64,
    /// Events matching no non-background label.
    pub false_alarms: u32,
    /// Of those, events stored as `unknown` (the model could not place
    /// them; the node sends them at low priority).
    pub false_alarms_unknown: u32,
    /// False alarms per hour of scene.
    pub false_alarms_per_hour: f64,
    /// Events scored.
    pub events: u32,
    /// Hours of scene (from the labels' and events' extent, or as given).
    pub hours: f64,
    /// Median of |event length - label length| over matched pairs, s
    /// (`None` when nothing matched).
    pub length_error_median_s: Option<f64>,
}

const SCORED: [EventClass; 3] = [
    EventClass::Wildlife,
    EventClass::MachineryAnomaly,
    EventClass::HumanActivity,
];

/// Overlap of event `a` with label `b` widened by `tol` on both sides, ms
/// (negative when apart).
fn overlap(a: (i64, i64), b: (i64, i64), tol: i64) -> i64 {
    a.1.min(b.1 + tol) - a.0.max(b.0 - tol)
}

/// Scores `events` (UTC) against `labels` (relative to `scene_start_ms`),
/// over a scene of `scene_ms`.
pub fn score(
    events: &[EventRecord],
    labels: &[Label],
    scene_start_ms: i64,
    scene_ms: i64,
    tolerance_ms: i64,
) -> ScoreReport {
    let evs: Vec<(i64, i64, EventClass)> = events
        .iter()
        .map(|e| {
            (
                e.start_ms - scene_start_ms,
                e.end_ms() - scene_start_ms,
                e.class,
            )
        })
        .collect();
    let targets: Vec<&Label> = labels
        .iter()
        .filter(|l| l.class != EventClass::Background)
        .collect();
    // Greedy matching by overlap, ignoring class.
    let mut pairs: Vec<(i64, usize, usize)> = Vec::new();
    for (i, e) in evs.iter().enumerate() {
        for (j, l) in targets.iter().enumerate() {
            let o = overlap((e.0, e.1), (l.start_ms, l.end_ms), tolerance_ms);
            if o >= 0 {
                pairs.push((o, i, j));
            }
        }
    }
    // Prefer same-class pairs, then larger overlap.
    pairs.sort_by_key(|&(o, i, j)| {
        (
            std::cmp::Reverse(evs[i].2 == targets[j].class),
            std::cmp::Reverse(o),
            i,
            j,
        )
    });
    let mut ev_match = vec![None; evs.len()];
    let mut label_match = vec![None; targets.len()];
    for (_, i, j) in pairs {
        if ev_match[i].is_none() && label_match[j].is_none() {
            ev_match[i] = Some(j);
            label_match[j] = Some(i);
        }
    }
    let mut classes = Vec::new();
    for c in SCORED {
        let mut s = ClassScore {
            class: c.as_str().to_string(),
            ..Default::default()
        };
        s.labels = targets.iter().filter(|l| l.class == c).count() as u32;
        s.events = evs.iter().filter(|e| e.2 == c).count() as u32;
        s.tp = evs
            .iter()
            .enumerate()
            .filter(|(i, e)| e.2 == c && ev_match[*i].is_some_and(|j| targets[j].class == c))
            .count() as u32;
        s.fp = s.events - s.tp;
        s.fn_ = s.labels - s.tp;
        s.detected = targets
            .iter()
            .enumerate()
            .filter(|(j, l)| l.class == c && label_match[*j].is_some())
            .count() as u32;
        let ratio = |a: u32, b: u32| {
            if b == 0 {
                0.0
            } else {
                f64::from(a) / f64::from(b)
            }
        };
        s.precision = ratio(s.tp, s.tp + s.fp);
        s.recall = ratio(s.tp, s.tp + s.fn_);
        s.f1 = if s.precision + s.recall > 0.0 {
            2.0 * s.precision * s.recall / (s.precision + s.recall)
        } else {
            0.0
        };
        classes.push(s);
    }
    let active: Vec<&ClassScore> = classes.iter().filter(|c| c.labels + c.events > 0).collect();
    let macro_f1 = if active.is_empty() {
        0.0
    } else {
        active.iter().map(|c| c.f1).sum::<f64>() / active.len() as f64
    };
    let mut length_errors: Vec<f64> = ev_match
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let l = targets[(*m)?];
            let ev_len = evs[i].1 - evs[i].0;
            Some((ev_len - (l.end_ms - l.start_ms)).abs() as f64 / 1000.0)
        })
        .collect();
    length_errors.sort_by(f64::total_cmp);
    let length_error_median_s = match length_errors.len() {
        0 => None,
        n if n % 2 == 1 => Some(length_errors[n / 2]),
        n => Some((length_errors[n / 2 - 1] + length_errors[n / 2]) / 2.0),
    };
    let detected = label_match.iter().filter(|m| m.is_some()).count();
    let false_alarms = ev_match.iter().filter(|m| m.is_none()).count() as u32;
    let false_alarms_unknown = ev_match
        .iter()
        .zip(&evs)
        .filter(|(m, e)| m.is_none() && e.2 == EventClass::Unknown)
        .count() as u32;
    let hours = scene_ms as f64 / 3_600_000.0;
    ScoreReport {
        classes,
        macro_f1,
        detection_recall: if targets.is_empty() {
            1.0
        } else {
            detected as f64 / targets.len() as f64
        },
        false_alarms,
        false_alarms_unknown,
        false_alarms_per_hour: if hours > 0.0 {
            f64::from(false_alarms) / hours
        } else {
            0.0
        },
        events: evs.len() as u32,
        hours,
        length_error_median_s,
    }
}

impl std::fmt::Display for ScoreReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<18} {:>6} {:>6} {:>4} {:>4} {:>4} {:>9} {:>6} {:>5}",
            "class", "labels", "events", "tp", "fp", "fn", "precision", "recall", "f1"
        )?;
        for c in &self.classes {
            writeln!(
                f,
                "{:<18} {:>6} {:>6} {:>4} {:>4} {:>4} {:>9.2} {:>6.2} {:>5.2}",
                c.class, c.labels, c.events, c.tp, c.fp, c.fn_, c.precision, c.recall, c.f1
            )?;
        }
        writeln!(
            f,
            "macro F1 {:.3}; detection recall (any class) {:.3}",
            self.macro_f1, self.detection_recall
        )?;
        write!(
            f,
            "false alarms {} in {:.2} h ({:.1} per hour; {} unknown); {} events",
            self.false_alarms,
            self.hours,
            self.false_alarms_per_hour,
            self.false_alarms_unknown,
            self.events
        )?;
        if let Some(e) = self.length_error_median_s {
            write!(f, "; median |event - label| length {e:.1} s")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::{KeyFeatures, ModalityScores, ModelVersion, Permille};

    fn ev(id: u64, s: i64, e: i64, class: EventClass) -> EventRecord {
        EventRecord {
            id,
            node_id: "n".into(),
            start_ms: 1_000_000 + s,
            duration_ms: (e - s) as u32,
            class,
            confidence: Permille(500),
            scores: ModalityScores::default(),
            features: KeyFeatures::default(),
            model: ModelVersion(0),
            time: Default::default(),
            mono: None,
        }
    }

    fn lab(s: i64, e: i64, class: EventClass) -> Label {
        Label {
            start_ms: s,
            end_ms: e,
            class,
        }
    }

    use EventClass::*;

    #[test]
    fn exact_matches_confusions_misses_and_false_alarms() {
        let labels = [
            lab(0, 10_000, Wildlife),
            lab(20_000, 30_000, HumanActivity),
            lab(40_000, 50_000, MachineryAnomaly),
            lab(60_000, 70_000, Background),
        ];
        let events = [
            ev(1, 1_000, 9_000, Wildlife),        // TP
            ev(2, 21_000, 29_000, Wildlife),      // class confusion: FP wildlife, FN human
            ev(3, 61_000, 62_000, HumanActivity), // only background: false alarm
            ev(4, 80_000, 81_000, Unknown),       // nothing: false alarm
        ];
        let r = score(&events, &labels, 1_000_000, 3_600_000, 0);
        let w = &r.classes[0];
        assert_eq!((w.tp, w.fp, w.fn_), (1, 1, 0));
        let h = &r.classes[2];
        assert_eq!((h.tp, h.fp, h.fn_, h.detected), (0, 1, 1, 1));
        let m = &r.classes[1];
        assert_eq!((m.tp, m.fn_, m.detected), (0, 1, 0));
        assert_eq!(r.false_alarms, 2);
        assert_eq!(r.false_alarms_unknown, 1);
        assert!(r.to_string().contains("(2.0 per hour; 1 unknown)"), "{r}");
        assert!((r.detection_recall - 2.0 / 3.0).abs() < 1e-9);
        assert!((r.false_alarms_per_hour - 2.0).abs() < 1e-9);
        // Both matched events are 8 s long against labels of 10 s.
        assert_eq!(r.length_error_median_s, Some(2.0));
    }

    #[test]
    fn one_event_spanning_two_labels_matches_one() {
        let labels = [lab(0, 10_000, Wildlife), lab(12_000, 20_000, Wildlife)];
        let r = score(
            &[ev(1, 5_000, 15_000, Wildlife)],
            &labels,
            1_000_000,
            60_000,
            0,
        );
        assert_eq!((r.classes[0].tp, r.classes[0].fn_), (1, 1));
    }

    #[test]
    fn tolerance_lets_near_misses_match() {
        let labels = [lab(10_000, 20_000, Wildlife)];
        let near = [ev(1, 20_500, 21_000, Wildlife)];
        assert_eq!(score(&near, &labels, 1_000_000, 60_000, 0).classes[0].tp, 0);
        assert_eq!(
            score(&near, &labels, 1_000_000, 60_000, 1_000).classes[0].tp,
            1
        );
    }

    #[test]
    fn labels_parse_with_clear_errors() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("labels.csv");
        std::fs::write(&p, "start_s,end_s,class\n1.5,2,wildlife\n3,4,background\n").unwrap();
        assert_eq!(
            read_labels(&p).unwrap(),
            vec![lab(1500, 2000, Wildlife), lab(3000, 4000, Background)]
        );
        std::fs::write(&p, "start_s,end_s,class\n1,2,dragon\n").unwrap();
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("dragon"), "{e}");
        std::fs::write(&p, "start_s,end_s,class\n1,x,wildlife\n").unwrap();
        assert!(
            read_labels(&p)
                .unwrap_err()
                .to_string()
                .contains("column 2")
        );
    }
}
