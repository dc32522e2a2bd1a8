use super::*;
use messages::encode_event;
use messages::{EventClass, KeyFeatures, ModalityScores, ModelVersion, Permille};

fn rec(id: u64) -> EventRecord {
    EventRecord {
        id,
        node_id: "n1".into(),
        start_ms: 1_780_000_000_000 + id as i64 * 1000,
        duration_ms: 1500,
        class: EventClass::Wildlife,
        confidence: Permille(800),
        scores: ModalityScores {
            audio: Some(Permille(900)),
            camera: None,
            climate: Some(Permille(0)),
        },
        features: KeyFeatures {
            audio_peak_hz: Some(3100),
            ..KeyFeatures::default()
        },
        model: ModelVersion::TRIGGERS_ONLY,
        time: Default::default(),
        mono: None,
    }
}

fn open(dir: &Path) -> (EventStore, OpenReport) {
    EventStore::open(dir, &StoreConfig::default()).unwrap()
}

#[test]
fn appended_events_survive_reopen() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let mut stored = Vec::new();
    {
        let (s, r) = open(&dir);
        assert_eq!((r.next_id, r.stored, r.quarantined), (1, 0, None));
        for _ in 0..5 {
            stored.push(s.append(rec).unwrap());
        }
        stored.extend(s.append_batch(3, rec).unwrap());
    }
    let (s, r) = open(&dir);
    assert_eq!(r.stored, 8);
    let back: Vec<_> = s.iter_from(0).map(|r| r.unwrap()).collect();
    assert_eq!(back, stored);
    assert_eq!(s.get(stored[2].id).unwrap().as_ref(), Some(&stored[2]));
    assert_eq!(s.get(9999).unwrap(), None);
}

#[test]
fn ids_increase_across_reopen_and_after_removal() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let mut last = 0;
    for round in 0..4 {
        let (s, _) = open(&dir);
        for _ in 0..3 {
            let r = s.append(rec).unwrap();
            assert!(r.id > last, "round {round}: {} after {last}", r.id);
            last = r.id;
        }
        // Delivering the newest must not let its id come back.
        s.remove_delivered(&[last]).unwrap();
        assert_eq!(s.get(last).unwrap(), None);
    }
    let (s, _) = open(&dir);
    assert!(s.append(rec).unwrap().id > last);
}

#[test]
fn a_corrupt_database_is_quarantined_its_items_restored_from_the_journal_and_ids_stay_above() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let last = {
        let (s, _) = open(&dir);
        (0..10).map(|_| s.append(rec).unwrap().id).max().unwrap()
    };
    // Garbage over sled's files.
    for name in ["conf", "db"] {
        let p = dir.join(name);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(64).max(64);
        std::fs::write(&p, vec![0xA5; len as usize]).unwrap();
    }
    let (s, r) = open(&dir);
    let moved = r.quarantined.clone().expect("quarantined");
    assert!(
        moved.exists() && moved.to_string_lossy().contains("store.corrupt-"),
        "{moved:?}"
    );
    assert!(r.reason.is_some());
    // Every acknowledged event is back, from the journal beside the database.
    assert_eq!((r.stored, r.restored.len()), (10, 10));
    assert_eq!(s.iter_from(0).filter(|e| e.is_ok()).count(), 10);
    assert!(r.next_id > last, "next id {} not above {last}", r.next_id);
    let new = s.append(rec).unwrap();
    assert!(new.id > last);
    drop(s);
    let (_, r) = open(&dir);
    assert_eq!((r.stored, r.quarantined, r.restored.len()), (11, None, 0));
}

#[test]
fn undecodable_record_is_reported_and_iteration_goes_on() {
    let t = tempfile::tempdir().unwrap();
    let (s, _) = open(&t.path().join("store"));
    let a = s.append(rec).unwrap();
    s.insert_raw_for_test(a.id + 1, &[1, 0xff, 0xff]).unwrap();
    s.insert_raw_for_test(a.id + 2, &encode_event(&rec(a.id + 2)))
        .unwrap();
    let items: Vec<_> = s.iter_from(0).collect();
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[2].is_ok());
    match &items[1] {
        Err(StoreError::Decode { id, .. }) => assert_eq!(*id, a.id + 1),
        other => panic!("{other:?}"),
    }
    assert!(s.get(a.id + 1).is_err());
}

#[test]
fn a_second_opener_gets_a_clear_locked_error() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let (_s, _) = open(&dir);
    match EventStore::open(&dir, &StoreConfig::default()) {
        Err(StoreError::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        !t.path().read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("corrupt"))
    );
}

#[test]
fn a_tampered_id_reservation_is_an_error_not_a_reset() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    drop(open(&dir).0.append(rec).unwrap());
    std::fs::write(t.path().join("store.ids"), "garbage").unwrap();
    let e = EventStore::open(&dir, &StoreConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("store.ids") && e.contains("expected a number"),
        "{e}"
    );
}

/// Bytes written to the block device per durably stored event, for
/// docs/performance.md: `cargo test -p uplink --release -- --ignored --nocapture bytes_written`.
#[test]
#[ignore]
fn bytes_written_per_event() {
    fn write_bytes() -> u64 {
        let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
    // On the real disk, not a tmpfs, so that write_bytes counts.
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    std::fs::create_dir_all(&base).unwrap();
    let t = tempfile::tempdir_in(base).unwrap();
    let (s, _) = open(&t.path().join("store"));
    let n = 1000;
    let before = write_bytes();
    for _ in 0..n {
        s.append(rec).unwrap();
    }
    let after = write_bytes();
    println!(
        "{n} events appended one by one: {} bytes written, {} bytes per event; store {} bytes on disk; encoded record {} bytes",
        after - before,
        (after - before) / n,
        s.bytes_on_disk().unwrap(),
        encode_event(&rec(1)).len()
    );
}

#[test]
fn delivered_items_are_not_restored_and_a_lost_journal_is_rebuilt() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("store");
    let ids: Vec<u64> = {
        let (s, _) = open(&dir);
        let ids = (0..6)
            .map(|_| s.append(rec).unwrap().id)
            .collect::<Vec<_>>();
        s.confirm_delivered(&ids[..2]).unwrap();
        ids
    };
    // The database vanishes (a quarantine, or a wiped directory): what was
    // delivered stays gone, the rest comes back.
    std::fs::remove_dir_all(&dir).unwrap();
    let (s, r) = open(&dir);
    assert_eq!((r.stored, r.restored.len()), (4, 4));
    assert!(s.get(ids[0]).unwrap().is_none());
    assert!(s.get(ids[5]).unwrap().is_some());
    drop(s);
    // The journal vanishes: rebuilt from the database on open.
    std::fs::remove_file(journal::journal_path(&dir)).unwrap();
    let (s, r) = open(&dir);
    assert_eq!((r.stored, r.restored.len()), (4, 0));
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
    let (_, r) = open(&dir);
    assert_eq!((r.stored, r.restored.len()), (4, 4));
}
