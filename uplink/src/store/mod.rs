//! The durable event store (sled 0.34), the node's outbox.
//!
//! Invariants:
//! 1. **Durable before acknowledged.** [`EventStore::append`] returns only
//!    after the record is in the [`journal`] (a checksummed, block-aligned
//!    append-only log beside the database, fsynced), then in sled, sled has
//!    flushed, and every file of the database directory and the directory
//!    itself were `fsync`ed. sled's own flush uses `sync_file_range`, which
//!    does not reach a device's write cache; an SD card has one.
//!
//!    **The journal is the source of truth for recovery.** A torn page
//!    program can destroy bytes sled had already made durable (the power-cut
//!    sweep showed sled then refusing to open, or missing its last event).
//!    On open, every live journal item the database lacks is put back;
//!    removals (delivered, evicted, expired) are journaled too, so nothing
//!    delivered comes back. See `docs/reliability.md`.
//! 2. **Ids strictly increase and never repeat**, across restarts, after
//!    delivered events are removed, and after a corrupt database is
//!    quarantined. The record and the next id are written in one atomic sled
//!    batch, and a sidecar file beside the database (`<dir>.ids`, see
//!    [`ids`]) durably *reserves* ids in blocks before any is handed out. On
//!    open, the next id is the larger of sled's and the reservation's, so ids
//!    are unique and increasing but not dense (a restart skips to the end of
//!    the last reserved block).
//! 3. **A database that does not open is quarantined**: moved aside to
//!    `<dir>.corrupt-<unix seconds>`, logged as an error, and replaced by a
//!    fresh one, so the node keeps running. A panic inside sled while opening
//!    counts as corruption.
//! 4. **A record that does not decode is reported, never skipped silently**:
//!    iteration yields an error naming its id and goes on; [`EventStore::pending`]
//!    reports it, moves it out of the outbox (`x` + id) and counts it.
//! 5. **The outbox accounting is exact**: every change to records goes in one
//!    atomic sled batch with the index entries, per-priority counts and drop
//!    counters it affects, then through the durable flush; so a kill at any
//!    point neither loses an acknowledged item nor counts anything twice.
//!    Items leave only by [`EventStore::confirm_delivered`], budget eviction
//!    (the item and byte limits, or the disk reserve `min_free_bytes`) or
//!    expiry (see [`outbox`] and `docs/outbox.md`).
//! 6. **A full disk never costs an acknowledged item.** Free space is read
//!    through [`disk::FreeSpace`] before each append; below the reserve the
//!    append evicts (counted, same batch) before it grows the outbox. When a
//!    write still fails with "no space left" (ENOSPC), the journal is cut
//!    back to its last whole append, room is made and the append is retried
//!    a bounded number of times; then it fails with
//!    [`StoreError::DiskFull`], having acknowledged nothing, and the stored
//!    items are untouched.
//!
//! Layout in sled: one tree, `outbox`; see [`layout`].

pub mod disk;
pub mod durable;
mod ids;
pub mod journal;
mod layout;
mod outbox;
mod recount;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use messages::{DecodeError, EventRecord, Message, decode_event, decode_message};
use serde::{Deserialize, Serialize};

use crate::outbox::OutboxConfig;
use layout::{EVENT_PREFIX, NEXT_ID_KEY, event_key, key_id, u64_value};

pub use disk::{DiskState, DiskStatus, FakeFreeSpace, FreeSpace, Statvfs};
pub use ids::ID_BLOCK;
pub use layout::{DropStats, QueueStats};
pub use outbox::{Appended, ENOSPC_ATTEMPTS, Expired, KEY_BYTES_PER_ITEM, Pending, PendingItem};

/// Store settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoreConfig {
    /// sled's page cache, bytes (sled's default, 1 GiB, is far too much for a node).
    pub cache_capacity_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_capacity_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process holds the database.
    #[error("store {} is in use by another process", path.display())]
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// A file-system operation failed.
    #[error("store {}: {op}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// sled failed.
    #[error("store database: {op}: {source}")]
    Db {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: sled::Error,
    },
    /// The database is being reopened after a failed write (for a moment;
    /// or, when reopening failed, until the next write reopens it).
    #[error("store {}: the database is closed for reopening after a failed write", path.display())]
    Reopening {
        /// The database directory.
        path: PathBuf,
    },
    /// A stored record does not decode.
    #[error("stored record {id} does not decode: {source}")]
    Decode {
        /// Its id.
        id: u64,
        /// Why.
        source: DecodeError,
    },
    /// The outbox is full and the new item was the first to evict: it was
    /// lower in priority than everything stored. Counted as evicted.
    #[error(
        "outbox full: new {priority} item {id} is below everything stored; not stored (counted as evicted)"
    )]
    BudgetFull {
        /// The id it was given (never reused).
        id: u64,
        /// Its priority.
        priority: messages::Priority,
    },
    /// The filesystem had less than `min_free_bytes` free and the new item
    /// ranked below every stored item, so nothing could make room for it.
    /// Counted as evicted for the disk.
    #[error(
        "disk reserve: new {priority} item {id} is below everything stored and only {free_bytes} bytes are free (reserve {min_free_bytes}); not stored (counted as evicted)"
    )]
    DiskReserve {
        /// The id it was given (never reused).
        id: u64,
        /// Its priority.
        priority: messages::Priority,
        /// Free bytes on the filesystem when it was refused.
        free_bytes: u64,
        /// The configured reserve.
        min_free_bytes: u64,
    },
    /// No space left on the device (ENOSPC or a quota) while writing, after
    /// making room and retrying. Nothing of this append was acknowledged;
    /// the stored items are untouched. The caller keeps the items and tries
    /// again later.
    #[error(
        "store {}: no space left on the device ({op}) after {attempts} attempt(s), {} bytes free; not stored: {source}",
        path.display(),
        free_bytes.map_or_else(|| "unknown".to_string(), |f| f.to_string())
    )]
    DiskFull {
        /// The file or directory being written.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Free bytes read after the last attempt, if they could be read.
        free_bytes: Option<u64>,
        /// The error of the last attempt.
        source: std::io::Error,
    },
}

impl StoreError {
    /// True when the cause is a full filesystem (ENOSPC or a quota), whether
    /// already classified as [`StoreError::DiskFull`] or not.
    pub fn is_storage_full(&self) -> bool {
        match self {
            StoreError::DiskFull { .. } => true,
            StoreError::Io { source, .. } => disk::is_storage_full(source),
            StoreError::Db {
                source: sled::Error::Io(e),
                ..
            } => disk::is_storage_full(e),
            _ => false,
        }
    }
}

fn db_err(op: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Db { op, source }
}

/// What [`EventStore::open`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// Where a corrupt database was moved, if one was.
    pub quarantined: Option<PathBuf>,
    /// Why it was quarantined.
    pub reason: Option<String>,
    /// The id the next event will get.
    pub next_id: u64,
    /// Items (events and status reports) in the store.
    pub stored: u64,
    /// Records found without an outbox index entry (a database written
    /// before priorities) and given priority normal.
    pub unindexed: u64,
    /// The outbox index or its accounting (`m:stats`, `m:drops`) disagreed
    /// with the records and was repaired. Never true for a database written
    /// by this code, whatever the crash: a test checks it.
    pub repaired: bool,
    /// Ids of the items the journal put back: in the journal but not in the
    /// database (an append cut before sled's flush, never acknowledged; or
    /// what sled lost, or a quarantine took).
    pub restored: Vec<u64>,
    /// Journal blocks with a damaged entry: an append cut by a power loss
    /// (never acknowledged).
    pub journal_damaged_blocks: u64,
}

/// The durable event store.
pub struct EventStore {
    dir: PathBuf,
    /// Held for the store's lifetime: one opener at a time, even within a process.
    _lock: std::fs::File,
    cfg: StoreConfig,
    /// sled's handles; `None` only while [`EventStore::heal`] reopens them.
    sled: RwLock<Option<Sled>>,
    /// Set when a write to sled failed: sled 0.34 then fails every later
    /// call on the same handles, so the next write reopens them first.
    failed: AtomicBool,
    /// One reopening at a time.
    healing: Mutex<()>,
    outbox: OutboxConfig,
    /// Where the free space of the store's filesystem is read.
    free_space: Arc<dyn FreeSpace>,
    /// Held while a batch is built and applied: ids, accounting and sled
    /// change together.
    state: Mutex<State>,
}

/// The in-memory copy of what sled holds in `m:` keys, changed only after
/// the batch that writes them was applied.
struct State {
    ids: ids::Ids,
    stats: QueueStats,
    drops: DropStats,
    journal: journal::Journal,
    disk: disk::DiskMemo,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("dir", &self.dir)
            .finish()
    }
}

/// The open database and its outbox tree.
struct Sled {
    db: sled::Db,
    tree: sled::Tree,
}

struct OpenedDb {
    db: sled::Db,
    tree: sled::Tree,
    next: u64,
    recount: recount::Recount,
}

enum Opened {
    Ok(Box<OpenedDb>),
    Locked,
    /// The environment, not the data, is at fault (permissions, a full or
    /// read-only disk): never a reason to move the database aside.
    Environment(std::io::Error),
    Corrupt(String),
}

impl Opened {
    /// Errors that are not about the data become `StoreError`s; corruption
    /// stays a reason to quarantine.
    fn checked(
        self,
        dir: &Path,
        op: &'static str,
    ) -> Result<Result<Box<OpenedDb>, String>, StoreError> {
        match self {
            Opened::Ok(opened) => Ok(Ok(opened)),
            Opened::Locked => Err(StoreError::Locked {
                path: dir.to_path_buf(),
            }),
            Opened::Environment(source) => Err(StoreError::Io {
                path: dir.to_path_buf(),
                op,
                source,
            }),
            Opened::Corrupt(why) => Ok(Err(why)),
        }
    }
}

fn is_environmental(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        PermissionDenied
            | StorageFull
            | ReadOnlyFilesystem
            | QuotaExceeded
            | WouldBlock
            | OutOfMemory
            | Interrupted
            | NotADirectory
    ) || e.to_string().contains("could not acquire lock")
}

/// Opens sled, waiting up to ten seconds while it reports its lock as held.
/// The caller holds the store's own exclusive lock file, so no other process
/// can hold sled's: only this process's previous handle can, when its
/// threads are still letting go of the files just after it was dropped
/// (one second was not always enough on two loaded cores).
fn try_open(dir: &Path, cfg: &StoreConfig) -> Opened {
    for _ in 0..400 {
        match try_open_once(dir, cfg) {
            Opened::Locked => std::thread::sleep(std::time::Duration::from_millis(25)),
            other => return other,
        }
    }
    try_open_once(dir, cfg)
}

fn try_open_once(dir: &Path, cfg: &StoreConfig) -> Opened {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(cfg.cache_capacity_bytes)
        // Few, small writes: keep the files compact rather than fast.
        .mode(sled::Mode::LowSpace)
        // We flush (and fsync) when we acknowledge; no background flusher.
        .flush_every_ms(None);
    let opened = catch_unwind(AssertUnwindSafe(|| -> Result<OpenedDb, sled::Error> {
        let db = config.open()?;
        let tree = db.open_tree("outbox")?;
        // Sanity: read the next id and walk every key once.
        let mut next = match tree.get(NEXT_ID_KEY)? {
            Some(v) => u64_value(&v).ok_or_else(|| sled::Error::Corruption { at: None, bt: () })?,
            None => 1,
        };
        if let Some(kv) = tree.scan_prefix([EVENT_PREFIX]).next_back() {
            let (k, _) = kv?;
            if let Some(id) = key_id(&k) {
                next = next.max(id + 1);
            }
        }
        // Walks every record and index entry once.
        let recount = recount::recount(&tree)?;
        Ok(OpenedDb {
            db,
            tree,
            next,
            recount,
        })
    }));
    match opened {
        Ok(Ok(opened)) => Opened::Ok(Box::new(opened)),
        Ok(Err(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => {
            Opened::Locked
        }
        Ok(Err(sled::Error::Io(e))) if is_environmental(&e) => Opened::Environment(e),
        Ok(Err(e)) => Opened::Corrupt(e.to_string()),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Opened::Corrupt(format!("sled panicked while opening: {msg}"))
        }
    }
}

/// Takes an exclusive lock on `<dir>.lock` (beside the database, so it is
/// not moved by a quarantine).
fn lock_store(dir: &Path) -> Result<std::fs::File, StoreError> {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(".lock");
    let path = dir.with_file_name(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Io {
            path: path.clone(),
            op: "open lock file",
            source,
        })?;
    // A lock held for a moment by this process's own previous handle: a
    // child forked by another thread keeps a copy of every descriptor,
    // this one's too, until it execs (close-on-exec), and flock locks
    // belong to the open file, so a store closed and reopened meanwhile
    // finds it held. Another process holding it keeps it for good.
    let mut waited = 0;
    loop {
        match file.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if waited < LOCK_WAIT_STEPS => {
                waited += 1;
                std::thread::sleep(std::time::Duration::from_millis(25));
            }
            other => break lock_result(other, file, dir, path),
        }
    }
}

/// How many 25 ms waits [`lock_store`] makes for a held lock (2 s).
const LOCK_WAIT_STEPS: u32 = 80;

fn lock_result(
    r: Result<(), std::fs::TryLockError>,
    file: std::fs::File,
    dir: &Path,
    path: PathBuf,
) -> Result<std::fs::File, StoreError> {
    match r {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(StoreError::Io {
            path,
            op: "lock",
            source,
        }),
    }
}

impl EventStore {
    /// Opens (or creates) the store in `dir` with the default outbox policy;
    /// quarantines a corrupt one.
    pub fn open(dir: &Path, cfg: &StoreConfig) -> Result<(EventStore, OpenReport), StoreError> {
        EventStore::open_with(dir, cfg, OutboxConfig::default())
    }

    /// Opens (or creates) the store in `dir` with this outbox policy;
    /// quarantines a corrupt one. Repairs the outbox index of a database
    /// written before priorities (its records get priority normal).
    pub fn open_with(
        dir: &Path,
        cfg: &StoreConfig,
        outbox: OutboxConfig,
    ) -> Result<(EventStore, OpenReport), StoreError> {
        EventStore::open_with_free_space(dir, cfg, outbox, Arc::new(Statvfs))
    }

    /// [`EventStore::open_with`], reading the filesystem's free space from
    /// `free_space` (tests simulate a filling disk with
    /// [`FakeFreeSpace`]).
    pub fn open_with_free_space(
        dir: &Path,
        cfg: &StoreConfig,
        outbox: OutboxConfig,
        free_space: Arc<dyn FreeSpace>,
    ) -> Result<(EventStore, OpenReport), StoreError> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let fresh = !dir.exists();
        durable::create_dir_durably(parent).map_err(|e| StoreError::Io {
            path: parent.to_path_buf(),
            op: "create",
            source: e,
        })?;
        let lock = lock_store(dir)?;
        let (journal, replay) = journal::Journal::open(&journal::journal_path(dir))?;
        let id_file = ids::sidecar_path(dir);
        let reserved = ids::read_reserved(&id_file)?;
        let (mut quarantined, mut reason) = (None, None);
        let opened = match try_open(dir, cfg).checked(dir, "open")? {
            Ok(opened) => opened,
            Err(why) => {
                let moved = durable::quarantine(dir)?;
                tracing::error!(path = %dir.display(), moved_to = %moved.display(), reason = %why, "event store does not open: quarantined, starting a fresh one");
                quarantined = Some(moved);
                reason = Some(why);
                try_open(dir, cfg)
                    .checked(dir, "open a fresh database")?
                    .map_err(|why| StoreError::Io {
                        path: dir.to_path_buf(),
                        op: "open a fresh database after quarantine",
                        source: std::io::Error::other(why),
                    })?
            }
        };
        if fresh || quarantined.is_some() {
            // The new directory entry itself must survive a power cut.
            durable::sync_dir(parent)?;
        }
        let OpenedDb {
            db,
            tree,
            next: sled_next,
            recount,
        } = *opened;
        let next = sled_next
            .max(reserved)
            .max(replay.max_id.saturating_add(1))
            .max(1);
        let recount::Recount {
            stats,
            drops,
            repair,
            unindexed,
            orphans,
            drops_reset,
        } = recount;
        let store = EventStore {
            dir: dir.to_path_buf(),
            _lock: lock,
            cfg: cfg.clone(),
            sled: RwLock::new(Some(Sled { db, tree })),
            failed: AtomicBool::new(false),
            healing: Mutex::new(()),
            outbox,
            free_space,
            state: Mutex::new(State {
                ids: ids::Ids {
                    next,
                    reserved,
                    file: id_file,
                },
                stats,
                drops,
                journal,
                disk: disk::DiskMemo::default(),
            }),
        };
        let repaired = repair.is_some();
        if let Some(batch) = repair {
            if drops_reset {
                tracing::error!(path = %dir.display(), "outbox drop counters unreadable: reset to zero");
            }
            if unindexed + orphans > 0 {
                tracing::warn!(path = %dir.display(), unindexed, orphans, "outbox index repaired (records without priority get normal)");
            }
            store.apply(batch, "repair outbox index")?;
            store.flush_durable()?;
        }
        // After the repair, which writes the accounting it recounted.
        let restored = store.restore_from_journal(&replay.live)?;
        if !restored.is_empty() {
            tracing::warn!(path = %dir.display(), restored = restored.len(), "items in the journal but not in the database were put back");
        }
        let report = OpenReport {
            quarantined,
            reason,
            next_id: next,
            stored: store.state().stats.total_items(),
            unindexed,
            repaired,
            restored,
            journal_damaged_blocks: replay.damaged_blocks,
        };
        Ok((store, report))
    }

    /// The event with this id, if stored (a status report's id is a
    /// [`StoreError::Decode`] error: use [`EventStore::get_message`]).
    pub fn get(&self, id: u64) -> Result<Option<EventRecord>, StoreError> {
        match self
            .tree()?
            .get(event_key(id))
            .map_err(db_err("read event"))?
        {
            Some(v) => decode_event(&v)
                .map(Some)
                .map_err(|source| StoreError::Decode { id, source }),
            None => Ok(None),
        }
    }

    /// The item (event or status report) with this id, if stored.
    pub fn get_message(&self, id: u64) -> Result<Option<Message>, StoreError> {
        match self
            .tree()?
            .get(event_key(id))
            .map_err(db_err("read record"))?
        {
            Some(v) => decode_message(&v)
                .map(Some)
                .map_err(|source| StoreError::Decode { id, source }),
            None => Ok(None),
        }
    }

    /// Events from `id` on, in id order (status reports are left out: see
    /// [`EventStore::iter_messages_from`]). A record that fails to decode
    /// yields an error naming its id, and iteration goes on.
    pub fn iter_from(&self, id: u64) -> impl Iterator<Item = Result<EventRecord, StoreError>> + '_ {
        self.iter_messages_from(id).filter_map(|m| match m {
            Ok(Message::Event(e)) => Some(Ok(e)),
            Ok(Message::Status(_)) => None,
            Err(e) => Some(Err(e)),
        })
    }

    /// Every item from `id` on, in id order. A record that fails to decode
    /// yields an error naming its id, and iteration goes on.
    pub fn iter_messages_from(
        &self,
        id: u64,
    ) -> impl Iterator<Item = Result<Message, StoreError>> + '_ {
        let end = [EVENT_PREFIX + 1];
        let (tree, closed) = match self.tree() {
            Ok(t) => (Some(t), None),
            Err(e) => (None, Some(Err(e))),
        };
        closed.into_iter().chain(
            tree.into_iter()
                .flat_map(move |t| t.range(event_key(id).to_vec()..end.to_vec()))
                .map(|kv| {
                    let (k, v) = kv.map_err(db_err("scan records"))?;
                    let id = key_id(&k).unwrap_or(0);
                    decode_message(&v).map_err(|source| StoreError::Decode { id, source })
                }),
        )
    }

    /// Number of stored items (events and status reports), from the
    /// accounting: no scan.
    pub fn len(&self) -> usize {
        usize::try_from(self.state().stats.total_items()).unwrap_or(usize::MAX)
    }

    /// True when no item is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id the next record will get.
    pub fn next_id(&self) -> u64 {
        self.state().ids.next
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// sled flush, then fsync of every database file and the directory.
    pub fn flush_durable(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        if let Err(e) = db.flush() {
            return Err(self.write_failed("flush", e));
        }
        durable::sync_tree(&self.dir)
    }

    /// The outbox tree (a cheap handle), or an error while the database is
    /// being reopened.
    fn tree(&self) -> Result<sled::Tree, StoreError> {
        self.with_sled(|s| s.tree.clone())
    }

    fn db(&self) -> Result<sled::Db, StoreError> {
        self.with_sled(|s| s.db.clone())
    }

    fn with_sled<T>(&self, f: impl FnOnce(&Sled) -> T) -> Result<T, StoreError> {
        let guard = self.sled.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(f).ok_or_else(|| StoreError::Reopening {
            path: self.dir.clone(),
        })
    }

    /// Applies `batch` to the outbox tree; a failure marks the database
    /// for reopening (see [`EventStore::heal`]).
    fn apply(&self, batch: sled::Batch, op: &'static str) -> Result<(), StoreError> {
        self.tree()?
            .apply_batch(batch)
            .map_err(|e| self.write_failed(op, e))
    }

    /// A write to sled failed: sled keeps that error for every later call
    /// on these handles, so the next write reopens the database first.
    fn write_failed(&self, op: &'static str, source: sled::Error) -> StoreError {
        if !self.failed.swap(true, Ordering::SeqCst) {
            tracing::error!(path = %self.dir.display(), op, error = %source, "database write failed: it is reopened before the next write");
        }
        StoreError::Db { op, source }
    }

    /// Reopens the database if a write to it failed: drops sled's handles,
    /// opens the directory again (quarantining it if it no longer opens,
    /// as at start), takes the accounting from the recount, and puts back
    /// what the journal holds and the database lacks (the items of the
    /// failed write were never acknowledged; when the journal took them,
    /// they are stored from now on, and the caller that kept them may store
    /// them a second time under new ids). Does nothing when no write
    /// failed. Every write calls it first.
    pub fn heal(&self) -> Result<(), StoreError> {
        if !self.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _one = self.healing.lock().unwrap_or_else(|p| p.into_inner());
        if !self.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let live = {
            let mut st = self.state();
            let mut handles = self.sled.write().unwrap_or_else(|p| p.into_inner());
            // Closes the files, so that sled's lock on them is let go.
            drop(handles.take());
            let (journal, replay) = journal::Journal::open(&journal::journal_path(&self.dir))?;
            let opened = match try_open(&self.dir, &self.cfg).checked(&self.dir, "reopen")? {
                Ok(opened) => opened,
                Err(why) => {
                    let moved = durable::quarantine(&self.dir)?;
                    tracing::error!(path = %self.dir.display(), moved_to = %moved.display(), reason = %why, "event store does not reopen: quarantined, starting a fresh one");
                    try_open(&self.dir, &self.cfg)
                        .checked(&self.dir, "open a fresh database")?
                        .map_err(|why| StoreError::Io {
                            path: self.dir.clone(),
                            op: "open a fresh database after quarantine",
                            source: std::io::Error::other(why),
                        })?
                }
            };
            let OpenedDb {
                db,
                tree,
                next,
                recount,
            } = *opened;
            if let Some(batch) = recount.repair {
                tracing::warn!(path = %self.dir.display(), "outbox accounting repaired after reopening");
                tree.apply_batch(batch)
                    .map_err(db_err("repair outbox index"))?;
                db.flush().map_err(db_err("flush"))?;
            }
            st.ids.next = st.ids.next.max(next).max(replay.max_id.saturating_add(1));
            st.stats = recount.stats;
            st.drops = recount.drops;
            st.journal = journal;
            st.disk = disk::DiskMemo::default();
            *handles = Some(Sled { db, tree });
            self.failed.store(false, Ordering::SeqCst);
            replay.live
        };
        let restored = self.restore_from_journal(&live)?;
        tracing::warn!(
            path = %self.dir.display(),
            restored = restored.len(),
            "database reopened after a failed write"
        );
        Ok(())
    }

    /// Total size of the database files, bytes.
    pub fn bytes_on_disk(&self) -> Result<u64, StoreError> {
        durable::dir_size(&self.dir)
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod disk_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
mod tests;
