//! The outbox on a real, small filesystem that fills up: a tmpfs mounted for
//! the test (needs root; `DISK_PRESSURE_REQUIRE_MOUNT=1` makes a refused
//! mount a failure instead of a skip). It drives `uplink::EventStore`
//! directly with the real free-space reading (`statvfs`):
//!
//! 1. appends mixed-priority events until the free space drops below the
//!    reserve (`min_free_bytes`);
//! 2. keeps appending: the store evicts (lowest priority, oldest first,
//!    counted as `evicted_disk`), never reports "no space left", and every
//!    high or urgent event is stored while lower-priority items remain;
//! 3. fills the rest of the filesystem with another file until the kernel
//!    says ENOSPC: appends then fail with `StoreError::DiskFull` (or are
//!    stored), never panic; once the file is gone, appends work again;
//! 4. reopens: every acknowledged item not evicted or delivered is there,
//!    the accounting needed no repair, the counters match.
//!
//! A second test fills a tmpfs that holds only the database (the journal
//! is on the larger filesystem beside it), so that sled's own write fails:
//! the store reopens the database by itself once space is back, and loses
//! nothing acknowledged.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use messages::{
    EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille, Priority,
};
use uplink::outbox::{BudgetConfig, OutboxConfig};
use uplink::store::{DiskState, Statvfs};
use uplink::{EventStore, StoreConfig, StoreError};

const MIB: u64 = 1 << 20;
/// The filesystem: small enough to fill in seconds, large enough for sled.
const FS_BYTES: u64 = 24 * MIB;
/// The reserve the store keeps.
const RESERVE: u64 = 8 * MIB;
const T0: i64 = 1_780_000_000_000;
/// Appends made below the reserve. sled's files and the journal keep
/// growing a little per append while the outbox stays the same size
/// (about 15 KiB per append of 40 events measured here), so this stays well
/// inside the reserve.
const BELOW_ROUNDS: u64 = 200;

/// A tmpfs mounted on a temporary directory, unmounted on drop (also when
/// the test fails).
struct Tmpfs {
    path: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Tmpfs {
    fn mount(size: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut fs = Tmpfs::mount_at(dir.path(), size)?;
        fs._dir = Some(dir);
        Ok(fs)
    }

    /// Mounts on `path`, an existing directory.
    fn mount_at(path: &Path, size: u64) -> Result<Tmpfs, String> {
        let path = path.to_path_buf();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs refused: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { path, _dir: None })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds a file: detach it now, freed when released.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

fn event(p: Priority, id: u64) -> EventRecord {
    let (class, conf) = match p {
        Priority::Low => (EventClass::Background, 500),
        Priority::Normal => (EventClass::Wildlife, 500),
        Priority::High => (EventClass::Wildlife, 900),
        Priority::Urgent => (EventClass::MachineryAnomaly, 950),
    };
    EventRecord {
        id,
        node_id: "disk-pressure".into(),
        start_ms: T0 + id as i64,
        duration_ms: 1000,
        class,
        confidence: Permille(conf),
        scores: ModalityScores::default(),
        features: KeyFeatures::default(),
        model: ModelVersion::TRIGGERS_ONLY,
        time: Default::default(),
        mono: None,
    }
}

fn free(path: &Path) -> u64 {
    use uplink::store::FreeSpace;
    Statvfs
        .free_bytes(path)
        .expect("statvfs on the tmpfs")
        .expect("a tmpfs has a size")
}

/// What the test knows is stored: id -> priority, and the counts of what
/// left for the disk.
#[derive(Default)]
struct Model {
    stored: BTreeMap<u64, Priority>,
    evicted_disk: [u64; 4],
    disk_full_errors: u64,
}

impl Model {
    /// Appends `ps` as one batch; checks what left against what stays.
    fn append(&mut self, s: &EventStore, ps: &[Priority], ctx: &str) -> Result<(), StoreError> {
        let mut i = 0;
        let a = s.append_messages(ps.len(), |id| {
            let m = messages::Message::Event(event(ps[i], id));
            i += 1;
            m
        })?;
        for &(id, p) in &a.evicted {
            assert_eq!(self.stored.remove(&id), Some(p), "{ctx}: evicted {id}");
        }
        for &(id, p) in a.evicted.iter().chain(&a.dropped) {
            assert!(
                a.for_disk.contains(&id),
                "{ctx}: {id} left for the item or byte budget, which this test never reaches"
            );
            self.evicted_disk[p.index()] += 1;
        }
        for (m, p) in &a.stored {
            self.stored.insert(m.id(), *p);
        }
        // What left ranks below everything that stays (priority, then id):
        // so a new high or urgent event is never refused while anything
        // lower is stored.
        let worst_gone = a
            .evicted
            .iter()
            .chain(&a.dropped)
            .map(|&(id, p)| (p, id))
            .max();
        let best_left = self.stored.iter().map(|(&id, &p)| (p, id)).min();
        if let (Some(g), Some(b)) = (worst_gone, best_left) {
            assert!(g < b, "{ctx}: {g:?} left while {b:?} stays");
        }
        Ok(())
    }

    fn check(&self, s: &EventStore, ctx: &str) {
        let got = outbox(s, ctx);
        assert_eq!(got.len(), self.stored.len(), "{ctx}: item count");
        assert!(
            got == self.stored,
            "{ctx}: the outbox differs from what was acknowledged"
        );
        let d = s.drop_stats();
        assert_eq!(d.evicted_disk, self.evicted_disk, "{ctx}: evicted_disk");
        assert_eq!(d.evicted_budget, [0; 4], "{ctx}: evicted_budget");
    }
}

/// Every item in the outbox, id -> priority.
fn outbox(s: &EventStore, ctx: &str) -> BTreeMap<u64, Priority> {
    s.pending(Priority::Low, usize::MAX)
        .unwrap_or_else(|e| panic!("{ctx}: pending: {e}"))
        .items
        .into_iter()
        .map(|i| (i.id, i.priority))
        .collect()
}

/// A batch of mostly low and normal events with some high and urgent ones.
fn batch(round: u64) -> Vec<Priority> {
    (0..40u64)
        .map(|i| match (round * 40 + i) % 10 {
            0..=4 => Priority::Low,
            5..=7 => Priority::Normal,
            8 => Priority::High,
            _ => Priority::Urgent,
        })
        .collect()
}

#[test]
fn a_filling_filesystem_evicts_by_priority_then_fails_cleanly_and_loses_nothing() {
    let fs = match Tmpfs::mount(FS_BYTES) {
        Ok(fs) => fs,
        Err(why) if std::env::var_os("DISK_PRESSURE_REQUIRE_MOUNT").is_none() => {
            eprintln!(
                "SKIPPED: {why} (run as root, or set DISK_PRESSURE_REQUIRE_MOUNT=1 to fail); \
                 uplink's store::disk_tests cover the rules on a simulated disk"
            );
            return;
        }
        Err(why) => panic!("{why}"),
    };
    let dir = fs.path.join("store");
    let cfg = OutboxConfig {
        budget: BudgetConfig {
            max_items: 10_000_000,
            max_record_bytes: 1 << 34,
            min_free_bytes: RESERVE,
        },
        ..OutboxConfig::default()
    };
    assert!(cfg.validate().is_empty());
    let store_cfg = StoreConfig {
        cache_capacity_bytes: 1 << 20,
    };
    let (s, _) = EventStore::open_with(&dir, &store_cfg, cfg.clone()).expect("open on tmpfs");
    let mut model = Model::default();

    // 1. Fill to the reserve.
    let mut round = 0;
    while s.disk_status().state == DiskState::Ok {
        assert!(round < 5000, "the free space never fell below the reserve");
        let ctx = format!("filling, round {round}");
        model
            .append(&s, &batch(round), &ctx)
            .expect("append above the reserve");
        round += 1;
    }
    assert_eq!(model.evicted_disk, [0; 4], "evicted above the reserve");
    let status = s.disk_status();
    assert_eq!(status.state, DiskState::Evicting);
    assert!(status.free_bytes.is_some_and(|f| f < RESERVE), "{status:?}");
    let items_at_reserve = model.stored.len();
    let footprint = |s: &EventStore| {
        let q = s.queue_stats();
        q.total_bytes() + uplink::store::KEY_BYTES_PER_ITEM * q.total_items()
    };
    let footprint_at_reserve = footprint(&s);
    let store_files = |fs: &Path| {
        s.bytes_on_disk().expect("store size")
            + std::fs::metadata(fs.join("store.journal")).map_or(0, |m| m.len())
    };
    let files_at_reserve = store_files(&fs.path);
    let mut lowest_free = free(&fs.path);
    let mut largest_batch = 0;

    // 2. Below the reserve: evict, never run out of space.
    for r in 0..BELOW_ROUNDS {
        let ctx = format!("below the reserve, round {r}");
        model
            .append(&s, &batch(round + r), &ctx)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        lowest_free = lowest_free.min(free(&fs.path));
        let b = batch(round + r);
        largest_batch = largest_batch.max(b.len());
    }
    round += BELOW_ROUNDS;
    model.check(&s, "below the reserve");
    let evicted: u64 = model.evicted_disk.iter().sum();
    assert!(evicted > 0, "nothing evicted below the reserve");
    // Lowest priority first: every low went before any normal, and no
    // urgent event was evicted while lower ones were stored.
    let [low, normal, high, urgent] = model.evicted_disk;
    assert!(low > 0, "{:?}", model.evicted_disk);
    if normal + high + urgent > 0 {
        assert_eq!(
            s.queue_depth()[0],
            0,
            "a higher item left while lows remain"
        );
    }
    // The outbox stopped growing: its record and key bytes are at most
    // what they were at the reserve (plus the append that crossed it).
    assert!(
        footprint(&s) <= footprint_at_reserve,
        "the outbox grew below the reserve: {} record and key bytes, {footprint_at_reserve} at the reserve",
        footprint(&s)
    );
    assert!(
        model.stored.len() <= items_at_reserve + largest_batch,
        "the outbox kept growing below the reserve: {} items, {items_at_reserve} at the reserve",
        model.stored.len()
    );
    assert!(
        lowest_free > 0,
        "the filesystem filled up below the reserve"
    );
    eprintln!(
        "reserve reached after {} rounds with {items_at_reserve} items; evicted for the disk {:?}; \
         store files {files_at_reserve} -> {} bytes over {BELOW_ROUNDS} appends; lowest free {lowest_free} bytes",
        round - BELOW_ROUNDS,
        model.evicted_disk,
        store_files(&fs.path)
    );

    // 3. Another writer fills the filesystem to the last byte.
    let filler_path = fs.path.join("filler");
    let filler = fill(&fs.path);
    assert!(
        free(&fs.path) < 64 * 1024,
        "filler left {} bytes",
        free(&fs.path)
    );
    let mut full_seen = false;
    for r in 0..5 {
        let ctx = format!("disk full, round {r}");
        match model.append(&s, &batch(round + r), &ctx) {
            Ok(()) => {}
            Err(e) => {
                assert!(
                    matches!(e, StoreError::DiskFull { .. }) && e.is_storage_full(),
                    "{ctx}: expected DiskFull, got {e:?}"
                );
                model.disk_full_errors += 1;
                full_seen = true;
            }
        }
    }
    round += 5;
    assert!(full_seen, "appends on a full filesystem never reported it");
    assert_eq!(s.disk_status().state, DiskState::Full);
    // When the full filesystem failed sled's own write (not the journal's),
    // sled 0.34 returns that error for every later call on the handle until
    // the store is opened again, as the node's restart does: then only the
    // reopened store is checked (docs/outbox.md, "A full disk").
    let poisoned = match s.pending(Priority::Low, usize::MAX) {
        Err(e) if e.is_storage_full() => {
            eprintln!("sled kept the full disk's error ({e}); reopening the store");
            true
        }
        _ => false,
    };
    if !poisoned {
        model.check(&s, "after the full disk");
    }

    // The other writer goes away: appends work again.
    drop(filler);
    std::fs::remove_file(&filler_path).expect("remove filler");
    let s = if poisoned {
        drop(s);
        let (s, report) = EventStore::open_with(&dir, &store_cfg, cfg.clone())
            .expect("reopen after the full disk");
        // Every acknowledged item is there; the journal may also put back
        // the items of the append that sled failed (taken by the journal,
        // never acknowledged), which from now on count as stored.
        let got = outbox(&s, "after reopening");
        for (id, p) in &model.stored {
            assert_eq!(
                got.get(id),
                Some(p),
                "acknowledged item {id} lost: {report:?}"
            );
        }
        model.stored = got;
        s
    } else {
        s
    };
    model
        .append(&s, &batch(round), "after the filler is gone")
        .unwrap_or_else(|e| panic!("append after space came back: {e}"));
    assert_ne!(s.disk_status().state, DiskState::Full);
    model.check(&s, "space back");
    let (q, d) = (s.queue_stats(), s.drop_stats());
    drop(s);

    // 4. Reopen: nothing acknowledged is missing, nothing needed a repair.
    let (s, report) = EventStore::open_with(&dir, &store_cfg, cfg).expect("reopen");
    assert!(!report.repaired, "{report:?}");
    assert!(report.quarantined.is_none(), "{report:?}");
    assert_eq!((s.queue_stats(), s.drop_stats()), (q, d));
    model.check(&s, "reopened");
    eprintln!(
        "{} items kept, {} DiskFull errors, journal damaged blocks {}",
        model.stored.len(),
        model.disk_full_errors,
        report.journal_damaged_blocks
    );
    drop(s);
    drop(fs);
}

/// Fills `dir`'s filesystem to the last byte with `dir/filler`.
fn fill(dir: &Path) -> std::fs::File {
    let mut filler = std::fs::File::create(dir.join("filler")).expect("create filler");
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut small = false;
    loop {
        match filler.write(if small { &chunk[..512] } else { &chunk }) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) && !small => small = true,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filler: {e}"),
        }
    }
    let _ = filler.sync_all();
    filler
}

#[test]
fn a_database_write_failed_for_space_is_reopened_once_space_is_back() {
    let parent = tempfile::tempdir().expect("tempdir");
    let dir = parent.path().join("store");
    std::fs::create_dir(&dir).expect("store dir");
    let fs = match Tmpfs::mount_at(&dir, 6 * MIB) {
        Ok(fs) => fs,
        Err(why) if std::env::var_os("DISK_PRESSURE_REQUIRE_MOUNT").is_none() => {
            eprintln!("SKIPPED: {why} (run as root, or set DISK_PRESSURE_REQUIRE_MOUNT=1 to fail)");
            return;
        }
        Err(why) => panic!("{why}"),
    };
    // No reserve: the test wants the write itself to hit the full disk.
    let cfg = OutboxConfig {
        budget: BudgetConfig {
            min_free_bytes: 0,
            ..BudgetConfig::default()
        },
        ..OutboxConfig::default()
    };
    let store_cfg = StoreConfig {
        cache_capacity_bytes: 1 << 20,
    };
    let (s, _) = EventStore::open_with(&dir, &store_cfg, cfg.clone()).expect("open on tmpfs");
    let mut model = Model::default();
    for round in 0..20 {
        model
            .append(&s, &batch(round), "before the disk fills")
            .expect("append with room");
    }
    let acknowledged = model.stored.clone();
    assert_eq!(acknowledged.len(), 800, "stored before the disk filled");

    let filler = fill(&fs.path);
    let mut failed = 0;
    let mut round = 20;
    while failed < 3 {
        assert!(round < 2_000, "sled never ran out of space on a full tmpfs");
        match model.append(&s, &batch(round), "disk full") {
            Ok(()) => {}
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        StoreError::DiskFull { .. }
                            | StoreError::Db { .. }
                            | StoreError::Io { .. }
                            | StoreError::Reopening { .. }
                    ),
                    "unexpected error on a full disk: {e:?}"
                );
                failed += 1;
            }
        }
        round += 1;
    }
    eprintln!("the database's writes failed from round {}", round - 3);

    // Space comes back: the next append reopens the database and works,
    // without the store being opened again from outside.
    drop(filler);
    std::fs::remove_file(fs.path.join("filler")).expect("remove filler");
    model
        .append(&s, &batch(round), "space back")
        .unwrap_or_else(|e| panic!("append after space came back: {e}"));
    let got = outbox(&s, "after reopening");
    for (id, p) in &model.stored {
        assert_eq!(got.get(id), Some(p), "acknowledged item {id} lost");
    }
    assert!(acknowledged.iter().all(|(id, p)| got.get(id) == Some(p)));
    // Items of the failed writes that the journal held were put back: they
    // are stored now, and counted as such.
    let extra = got.len() - model.stored.len();
    assert_eq!(s.len(), got.len(), "the accounting after reopening");
    let (q, d) = (s.queue_stats(), s.drop_stats());
    drop(s);

    // A cold open finds the same, with nothing to repair.
    let (s, report) = EventStore::open_with(&dir, &store_cfg, cfg).expect("reopen");
    assert!(!report.repaired, "{report:?}");
    assert!(report.quarantined.is_none(), "{report:?}");
    assert_eq!((s.queue_stats(), s.drop_stats()), (q, d));
    eprintln!(
        "{} items acknowledged and kept, {extra} of the failed writes put back by the journal",
        model.stored.len()
    );
    drop(s);
    drop(fs);
}
