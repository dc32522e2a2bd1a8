//! Reading a node's stored events from its data directory.
//!
//! The card must not change: the store is copied to a temporary directory
//! and the copy is opened (opening a sled database may write to it).

use std::io::Write;
use std::path::{Path, PathBuf};

use messages::{EventJson, EventRecord};
use uplink::{EventStore, StoreConfig};

/// Why events could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// No store in the data directory.
    #[error("no event store at {} (is this a node's data directory?)", .0.display())]
    NoStore(PathBuf),
    /// Copying failed.
    #[error("copying {}: {source}", path.display())]
    Copy {
        /// What.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] uplink::StoreError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(String),
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), EventsError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EventsError::Copy { path, source }
    };
    std::fs::create_dir_all(to).map_err(err(to))?;
    for entry in std::fs::read_dir(from).map_err(err(from))? {
        let entry = entry.map_err(err(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(err(&src))?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(err(&src))?;
        }
    }
    Ok(())
}

/// Events read from a data directory, plus the records that did not decode.
#[derive(Debug, Default)]
pub struct ReadEvents {
    /// Events in id order.
    pub events: Vec<EventRecord>,
    /// `(id, reason)` of records that could not be read.
    pub bad: Vec<String>,
}

/// Reads every event of `data_dir/store` whose start is at or after `since_ms`.
pub fn read_events(data_dir: &Path, since_ms: Option<i64>) -> Result<ReadEvents, EventsError> {
    let store_dir = data_dir.join("store");
    if !store_dir.is_dir() {
        return Err(EventsError::NoStore(store_dir));
    }
    let tmp = tempfile::tempdir().map_err(|source| EventsError::Copy {
        path: std::env::temp_dir(),
        source,
    })?;
    let copy = tmp.path().join("store");
    copy_dir(&store_dir, &copy)?;
    // The id reservation and the journal live beside the database; the
    // journal holds every item not yet delivered, even when sled's files are
    // damaged.
    for name in ["store.ids", "store.journal"] {
        let side = data_dir.join(name);
        if side.is_file() {
            std::fs::copy(&side, tmp.path().join(name))
                .map_err(|source| EventsError::Copy { path: side, source })?;
        }
    }
    let (store, report) = EventStore::open(&copy, &StoreConfig::default())?;
    let mut out = ReadEvents::default();
    if let Some(why) = report.reason {
        out.bad.push(format!(
            "the database does not open ({why}); {} items recovered from the journal (events delivered before are not in it)",
            report.restored.len()
        ));
    }
    for r in store.iter_from(0) {
        match r {
            Ok(e) if since_ms.is_none_or(|s| e.start_ms >= s) => out.events.push(e),
            Ok(_) => {}
            Err(e) => out.bad.push(e.to_string()),
        }
    }
    Ok(out)
}

/// The column names of the CSV output: the JSON field names, in order.
pub const CSV_COLUMNS: [&str; 22] = [
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

/// Writes events as JSON lines.
pub fn write_jsonl(events: &[EventRecord], mut out: impl Write) -> Result<(), EventsError> {
    for e in events {
        let line = serde_json::to_string(&EventJson::from(e))
            .map_err(|e| EventsError::Output(e.to_string()))?;
        writeln!(out, "{line}").map_err(|e| EventsError::Output(e.to_string()))?;
    }
    Ok(())
}

/// One CSV row of [`CSV_COLUMNS`] for an event.
pub fn csv_row(j: &EventJson) -> Result<Vec<String>, serde_json::Error> {
    // Through text, so f32 values print as their shortest form (0.7, not 0.699999988).
    let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(j)?)?;
    Ok(CSV_COLUMNS
        .iter()
        .map(|c| match &v[*c] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect())
}

/// Writes events as CSV with a header row of [`CSV_COLUMNS`].
pub fn write_csv(events: &[EventRecord], out: impl Write) -> Result<(), EventsError> {
    let mut w = csv::Writer::from_writer(out);
    let o = |e: csv::Error| EventsError::Output(e.to_string());
    w.write_record(CSV_COLUMNS).map_err(o)?;
    for e in events {
        let row = csv_row(&EventJson::from(e)).map_err(|e| EventsError::Output(e.to_string()))?;
        w.write_record(&row).map_err(o)?;
    }
    w.flush().map_err(|e| EventsError::Output(e.to_string()))
}

/// Parses `--since`: RFC 3339, or milliseconds since the Unix epoch.
pub fn parse_since(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            format!("expected an RFC 3339 time or milliseconds since the epoch, found `{s}`")
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::{EventClass, KeyFeatures, ModalityScores, ModelVersion, Permille};

    fn rec(id: u64) -> EventRecord {
        EventRecord {
            id,
            node_id: "n".into(),
            start_ms: id as i64 * 1000,
            duration_ms: 500,
            class: EventClass::Wildlife,
            confidence: Permille(700),
            scores: ModalityScores {
                audio: Some(Permille(500)),
                camera: None,
                climate: None,
            },
            features: KeyFeatures::default(),
            model: ModelVersion(0),
            time: Default::default(),
            mono: None,
        }
    }

    #[test]
    fn csv_header_matches_json_names_and_order() {
        let v = serde_json::to_value(EventJson::from(&rec(1))).unwrap();
        let mut names: Vec<&str> = v.as_object().unwrap().keys().map(|s| s.as_str()).collect();
        let mut cols = CSV_COLUMNS.to_vec();
        names.sort();
        cols.sort();
        assert_eq!(names, cols);
        let mut out = Vec::new();
        write_csv(&[rec(1)], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "1,n,1000,1500,wildlife,0.7,0.5,,,,,,,,,,0,unknown,,false,,"
        );
    }

    #[test]
    fn reads_a_copy_and_filters_by_time() {
        let t = tempfile::tempdir().unwrap();
        {
            let (s, _) =
                EventStore::open(&t.path().join("store"), &StoreConfig::default()).unwrap();
            for _ in 0..5 {
                s.append(rec).unwrap();
            }
        }
        let before = std::fs::read(t.path().join("store/db")).unwrap();
        let all = read_events(t.path(), None).unwrap();
        assert_eq!(all.events.len(), 5);
        let later = read_events(t.path(), Some(3000)).unwrap();
        assert_eq!(
            later.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        assert_eq!(
            std::fs::read(t.path().join("store/db")).unwrap(),
            before,
            "the card was modified"
        );
        let mut out = Vec::new();
        write_jsonl(&later.events, &mut out).unwrap();
        let first: EventJson =
            serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first, EventJson::from(&rec(3)));
    }

    #[test]
    fn a_damaged_database_is_read_from_the_journal_without_touching_the_card() {
        let t = tempfile::tempdir().unwrap();
        {
            let (s, _) =
                EventStore::open(&t.path().join("store"), &StoreConfig::default()).unwrap();
            for _ in 0..5 {
                s.append(rec).unwrap();
            }
        }
        for name in ["conf", "db"] {
            let p = t.path().join("store").join(name);
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(64).max(64);
            std::fs::write(&p, vec![0xA5; len as usize]).unwrap();
        }
        let damaged = std::fs::read(t.path().join("store/db")).unwrap();
        let got = read_events(t.path(), None).unwrap();
        assert_eq!(
            got.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(got.bad.len(), 1, "{:?}", got.bad);
        assert!(got.bad[0].contains("5 items recovered from the journal"));
        assert_eq!(std::fs::read(t.path().join("store/db")).unwrap(), damaged);
        let quarantined = std::fs::read_dir(t.path())
            .unwrap()
            .filter_map(Result::ok)
            .any(|e| e.file_name().to_string_lossy().contains("corrupt"));
        assert!(!quarantined, "the card was modified");
    }

    #[test]
    fn missing_store_and_bad_since_are_clear() {
        let t = tempfile::tempdir().unwrap();
        assert!(
            read_events(t.path(), None)
                .unwrap_err()
                .to_string()
                .contains("no event store")
        );
        assert_eq!(parse_since("1000"), Ok(1000));
        assert_eq!(parse_since("1970-01-01T00:00:01Z"), Ok(1000));
        assert!(parse_since("yesterday").is_err());
    }
}
