//! The `field-tools events` command, through the program itself: a node data
//! directory with three stored events is printed as JSON lines and as CSV
//! with the documented field names and values, `--since` filters by start
//! time in every form it accepts, and bad input is a clear error, never a
//! panic.

use std::path::Path;
use std::process::{Command, Output};

use messages::{EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_field-tools");

/// 2023-11-14T22:13:20Z, the first event's start.
const T0: i64 = 1_700_000_000_000;

/// The JSON field names of `docs/wire-format.md` ("JSON view"), in the CSV
/// header's order.
const FIELDS: [&str; 22] = [
    "id",
    "node_id",
    "start_ms",
    "end_ms",
    "class",
    "confidence",
    "score_audio",
    "score_camera",
    "score_climate",
    "audio_snr_db",
    "audio_peak_hz",
    "motion_area",
    "motion_x",
    "motion_y",
    "temp_delta_c",
    "temp_c",
    "model_version",
    "time_source",
    "time_uncertainty_ms",
    "time_restamped",
    "time_boot",
    "time_mono_ms",
];

/// The three events, one minute apart, each with other fields present.
fn record(i: usize, id: u64) -> EventRecord {
    let start_ms = T0 + i as i64 * 60_000;
    match i {
        0 => EventRecord {
            id,
            node_id: "node-a".into(),
            start_ms,
            duration_ms: 1500,
            class: EventClass::Wildlife,
            confidence: Permille(700),
            scores: ModalityScores {
                audio: Some(Permille(800)),
                camera: Some(Permille(250)),
                climate: None,
            },
            features: KeyFeatures {
                audio_snr_db10: Some(125),
                audio_peak_hz: Some(2400),
                motion_area: Some(Permille(50)),
                motion_centroid: Some((0, 255)),
                temp_delta_c100: None,
                temp_c100: Some(1850),
            },
            model: ModelVersion(0),
            time: Default::default(),
            mono: None,
        },
        1 => EventRecord {
            id,
            node_id: "node-a".into(),
            start_ms,
            duration_ms: 30_000,
            class: EventClass::MachineryAnomaly,
            confidence: Permille(900),
            scores: ModalityScores {
                audio: Some(Permille(500)),
                camera: None,
                climate: Some(Permille(500)),
            },
            features: KeyFeatures {
                temp_delta_c100: Some(-150),
                temp_c100: Some(4200),
                ..KeyFeatures::default()
            },
            model: ModelVersion(3),
            time: messages::TimeQuality {
                source: messages::TimeSource::Iridium,
                uncertainty_ms: Some(1_200),
                restamped: true,
            },
            mono: None,
        },
        _ => EventRecord {
            id,
            node_id: "node-a".into(),
            start_ms,
            duration_ms: 12_000,
            class: EventClass::HumanActivity,
            confidence: Permille(1000),
            scores: ModalityScores::default(),
            features: KeyFeatures::default(),
            model: ModelVersion(0),
            time: messages::TimeQuality {
                source: messages::TimeSource::Untrusted,
                ..Default::default()
            },
            mono: Some(messages::MonoRef {
                boot: 0x5e3a_0c11_9d24_7f60,
                offset_ms: 61_250,
            }),
        },
    }
}

/// A data directory holding `store/` with the three events.
fn data_dir(root: &Path) -> std::path::PathBuf {
    let data = root.join("node");
    let (store, report) =
        uplink::EventStore::open(&data.join("store"), &uplink::StoreConfig::default()).unwrap();
    assert!(report.quarantined.is_none());
    for i in 0..3 {
        store.append(|id| record(i, id)).unwrap();
    }
    store.flush_durable().unwrap();
    drop(store);
    data
}

/// What each event must print as, from the documented scales (not through
/// `EventJson`): ids 1, 2, 3 in a fresh store.
fn expected() -> Vec<Value> {
    vec![
        json!({
            "id": 1, "node_id": "node-a", "start_ms": T0, "end_ms": T0 + 1500,
            "class": "wildlife", "confidence": 0.7,
            "score_audio": 0.8, "score_camera": 0.25, "score_climate": null,
            "audio_snr_db": 12.5, "audio_peak_hz": 2400, "motion_area": 0.05,
            "motion_x": 0.0, "motion_y": 1.0,
            "temp_delta_c": null, "temp_c": 18.5, "model_version": 0,
            "time_source": "unknown", "time_uncertainty_ms": null, "time_restamped": false,
            "time_boot": null, "time_mono_ms": null,
        }),
        json!({
            "id": 2, "node_id": "node-a", "start_ms": T0 + 60_000, "end_ms": T0 + 90_000,
            "class": "machinery_anomaly", "confidence": 0.9,
            "score_audio": 0.5, "score_camera": null, "score_climate": 0.5,
            "audio_snr_db": null, "audio_peak_hz": null, "motion_area": null,
            "motion_x": null, "motion_y": null,
            "temp_delta_c": -1.5, "temp_c": 42.0, "model_version": 3,
            "time_source": "iridium", "time_uncertainty_ms": 1200, "time_restamped": true,
            "time_boot": null, "time_mono_ms": null,
        }),
        json!({
            "id": 3, "node_id": "node-a", "start_ms": T0 + 120_000, "end_ms": T0 + 132_000,
            "class": "human_activity", "confidence": 1.0,
            "score_audio": null, "score_camera": null, "score_climate": null,
            "audio_snr_db": null, "audio_peak_hz": null, "motion_area": null,
            "motion_x": null, "motion_y": null,
            "temp_delta_c": null, "temp_c": null, "model_version": 0,
            "time_source": "untrusted", "time_uncertainty_ms": null, "time_restamped": false,
            "time_boot": "5e3a0c119d247f60", "time_mono_ms": 61_250,
        }),
    ]
}

fn events(args: &[&str]) -> Output {
    Command::new(BIN).arg("events").args(args).output().unwrap()
}

/// Runs `events` and requires success with nothing but the output.
fn ok(args: &[&str]) -> String {
    let out = events(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "events {args:?}: {:?}\n{err}",
        out.status
    );
    assert!(err.is_empty(), "events {args:?} wrote to stderr:\n{err}");
    String::from_utf8(out.stdout).unwrap()
}

/// JSON lines as objects, checking that each line is one object with
/// exactly the documented field names.
fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
            let mut names: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            let mut fields = FIELDS.to_vec();
            names.sort();
            fields.sort();
            assert_eq!(names, fields, "field names of {line}");
            v
        })
        .collect()
}

/// Numbers compared as f64 (f32 values print in their shortest form), the
/// rest exactly.
fn assert_same(got: &Value, want: &Value) {
    for f in FIELDS {
        match (&got[f], &want[f]) {
            (Value::Number(g), Value::Number(w)) => {
                let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
                assert!((g - w).abs() < 1e-6, "{f}: got {g}, want {w} in {got}");
            }
            (g, w) => assert_eq!(g, w, "{f} in {got}"),
        }
    }
}

fn ids(v: &[Value]) -> Vec<u64> {
    v.iter().map(|e| e["id"].as_u64().unwrap()).collect()
}

#[test]
fn jsonl_prints_one_object_per_event_with_the_documented_fields() {
    let t = tempfile::tempdir().unwrap();
    let data = data_dir(t.path());
    let d = data.to_str().unwrap();
    let got = jsonl(&ok(&["--data-dir", d, "--format", "jsonl"]));
    let want = expected();
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(&want) {
        assert_same(g, w);
    }
    // jsonl is the default format.
    assert_eq!(jsonl(&ok(&["--data-dir", d])), got);
    // Integers print as integers, not as floats.
    assert!(got[0]["start_ms"].is_i64() && got[1]["audio_peak_hz"].is_null());
    assert!(got[0]["audio_peak_hz"].is_u64() && got[1]["model_version"].is_u64());
}

#[test]
fn since_keeps_events_starting_at_or_after_the_time_in_every_form() {
    let t = tempfile::tempdir().unwrap();
    let data = data_dir(t.path());
    let d = data.to_str().unwrap();
    let since = |s: &str| ids(&jsonl(&ok(&["--data-dir", d, "--since", s])));
    // The second event starts at 2023-11-14T22:14:20Z: the bound is inclusive.
    assert_eq!(since("2023-11-14T22:14:20Z"), [2, 3]);
    assert_eq!(since("2023-11-14T23:14:20+01:00"), [2, 3], "offset");
    assert_eq!(since("2023-11-14T22:14:20.000Z"), [2, 3], "fraction");
    assert_eq!(since("2023-11-14T22:14:20.001Z"), [3], "one ms later");
    assert_eq!(since("2023-11-14T22:14:19.999Z"), [2, 3], "one ms earlier");
    // Milliseconds since the epoch.
    assert_eq!(since(&(T0 + 60_000).to_string()), [2, 3]);
    assert_eq!(since(&(T0 + 60_001).to_string()), [3]);
    assert_eq!(since(&T0.to_string()), [1, 2, 3]);
    assert_eq!(since("0"), [1, 2, 3]);
    // After every event: nothing, and still success.
    assert_eq!(since("2030-01-01T00:00:00Z"), Vec::<u64>::new());
    // The values of a filtered event are those of the unfiltered one.
    let got = jsonl(&ok(&["--data-dir", d, "--since", "2023-11-14T22:15:00Z"]));
    assert_eq!(got.len(), 1);
    assert_same(&got[0], &expected()[2]);
    // And with CSV: the header, then the kept rows.
    let csv = ok(&[
        "--data-dir",
        d,
        "--format",
        "csv",
        "--since",
        "2023-11-14T22:14:20Z",
    ]);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(FIELDS.join(",").as_str()));
    let kept: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(kept, ["2", "3"]);
}

#[test]
fn csv_prints_a_header_and_one_row_per_event_with_the_same_values() {
    let t = tempfile::tempdir().unwrap();
    let data = data_dir(t.path());
    let d = data.to_str().unwrap();
    let text = ok(&["--data-dir", d, "--format", "csv"]);
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, FIELDS, "CSV header");
    let rows: Vec<csv::StringRecord> = r.records().map(|r| r.unwrap()).collect();
    let want = expected();
    assert_eq!(rows.len(), want.len(), "{text}");
    for (row, w) in rows.iter().zip(&want) {
        assert_eq!(row.len(), FIELDS.len(), "{row:?}");
        for (cell, f) in row.iter().zip(FIELDS) {
            match &w[f] {
                Value::Null => assert_eq!(cell, "", "{f}: null is an empty cell in {row:?}"),
                Value::String(s) => assert_eq!(cell, s, "{f} in {row:?}"),
                Value::Bool(b) => assert_eq!(cell, b.to_string(), "{f} in {row:?}"),
                Value::Number(n) => {
                    let got: f64 = cell
                        .parse()
                        .unwrap_or_else(|e| panic!("{f}: `{cell}` is not a number ({e})"));
                    let want = n.as_f64().unwrap();
                    assert!((got - want).abs() < 1e-6, "{f}: got {cell}, want {want}");
                }
                other => panic!("unexpected {other} for {f}"),
            }
        }
    }
    // Exact text of the first row: shortest forms, empty cells for absent values.
    assert_eq!(
        text.lines().nth(1).unwrap(),
        format!(
            "1,node-a,{T0},{},wildlife,0.7,0.8,0.25,,12.5,2400,0.05,0.0,1.0,,18.5,0,unknown,,false,,",
            T0 + 1500
        )
    );
    // The same values as the JSON lines.
    let json = jsonl(&ok(&["--data-dir", d, "--format", "jsonl"]));
    for (row, j) in rows.iter().zip(&json) {
        assert_eq!(row.get(0).unwrap(), j["id"].to_string());
        assert_eq!(row.get(2).unwrap(), j["start_ms"].to_string());
        assert_eq!(row.get(4).unwrap(), j["class"].as_str().unwrap());
    }
}

/// A failure: non-zero exit, nothing on stdout, no panic, and stderr
/// containing each of `needles`.
fn assert_fails(args: &[&str], needles: &[&str]) {
    let out = events(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "events {args:?} succeeded:\n{err}");
    assert!(out.status.code().is_some(), "killed by a signal: {out:?}");
    assert!(
        !err.contains("panicked"),
        "events {args:?} panicked:\n{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "events {args:?} printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(
            err.contains(n),
            "events {args:?}: `{n}` not in stderr:\n{err}"
        );
    }
}

#[test]
fn a_bad_since_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let data = data_dir(t.path());
    let d = data.to_str().unwrap();
    for bad in [
        "yesterday",
        "2023-11-14",
        "2023-11-14 22:14:20",
        "2023-11-14T22:14:20",
        "12.5",
        "",
    ] {
        assert_fails(
            &["--data-dir", d, "--since", bad],
            &["--since", "RFC 3339", &format!("`{bad}`")],
        );
    }
}

#[test]
fn a_missing_data_dir_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    // No such directory.
    let missing = t.path().join("no-such-node");
    let m = missing.to_str().unwrap();
    assert_fails(&["--data-dir", m], &["no event store", m]);
    assert_fails(
        &["--data-dir", m, "--format", "csv"],
        &["no event store", m],
    );
    // A directory that is not a node's data directory (no store/ in it).
    let empty = t.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = empty.to_str().unwrap();
    assert_fails(&["--data-dir", e], &["no event store", e]);
    // Nothing was created in either.
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    // --data-dir is required.
    assert_fails(&[], &["--data-dir"]);
}
