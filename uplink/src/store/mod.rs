//! The durable event store (sled 0.34), the node's outbox.
//!
//! Invariants:
//! 1. **Durable before acknowledged.** [`EventStore::append`] returns only
//!    after the record is in sled, sled has flushed, and every file of the
//!    database directory and the directory itself were `fsync`ed. sled's own
//!    flush uses `sync_file_range`, which does not reach a device's write
//!    cache; an SD card has one.
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
//!    iteration yields an error naming its id and goes on.
//!
//! Layout in sled: one tree, `outbox`; keys `e` + id (8 bytes big-endian) for
//! records (so they sort by id), and `m:next_id` for the next id.

pub mod durable;
mod ids;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use messages::{DecodeError, EventRecord, decode_event, encode_event};
use serde::{Deserialize, Serialize};

pub use ids::ID_BLOCK;

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
            cache_capacity_bytes: 8 * 1024 * 1024,
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
    /// A stored record does not decode.
    #[error("stored event {id} does not decode: {source}")]
    Decode {
        /// Its id.
        id: u64,
        /// Why.
        source: DecodeError,
    },
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
    /// Events in the store.
    pub stored: u64,
}

/// The durable event store.
pub struct EventStore {
    dir: PathBuf,
    /// Held for the store's lifetime: one opener at a time, even within a process.
    _lock: std::fs::File,
    db: sled::Db,
    tree: sled::Tree,
    ids: Mutex<ids::Ids>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("dir", &self.dir)
            .finish()
    }
}

const NEXT_ID_KEY: &[u8] = b"m:next_id";
const EVENT_PREFIX: u8 = b'e';

fn event_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = EVENT_PREFIX;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn key_id(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    (key.len() == 9 && key[0] == EVENT_PREFIX).then(|| u64::from_be_bytes(bytes))
}

fn u64_value(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

enum Opened {
    Ok(sled::Db, sled::Tree, u64, u64),
    Locked,
    /// The environment, not the data, is at fault (permissions, a full or
    /// read-only disk): never a reason to move the database aside.
    Environment(std::io::Error),
    Corrupt(String),
}

type OpenedDb = (sled::Db, sled::Tree, u64, u64);

impl Opened {
    /// Errors that are not about the data become `StoreError`s; corruption
    /// stays a reason to quarantine.
    fn checked(self, dir: &Path, op: &'static str) -> Result<Result<OpenedDb, String>, StoreError> {
        match self {
            Opened::Ok(db, tree, next, count) => Ok(Ok((db, tree, next, count))),
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

fn try_open(dir: &Path, cfg: &StoreConfig) -> Opened {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(cfg.cache_capacity_bytes)
        // Few, small writes: keep the files compact rather than fast.
        .mode(sled::Mode::LowSpace)
        // We flush (and fsync) when we acknowledge; no background flusher.
        .flush_every_ms(None);
    let opened = catch_unwind(AssertUnwindSafe(
        || -> Result<(sled::Db, sled::Tree, u64, u64), sled::Error> {
            let db = config.open()?;
            let tree = db.open_tree("outbox")?;
            // Sanity: read the next id and walk every key once.
            let mut next = match tree.get(NEXT_ID_KEY)? {
                Some(v) => {
                    u64_value(&v).ok_or_else(|| sled::Error::Corruption { at: None, bt: () })?
                }
                None => 1,
            };
            let mut count = 0;
            for kv in tree.scan_prefix([EVENT_PREFIX]) {
                let (k, _) = kv?;
                if let Some(id) = key_id(&k) {
                    next = next.max(id + 1);
                    count += 1;
                }
            }
            Ok((db, tree, next, count))
        },
    ));
    match opened {
        Ok(Ok((db, tree, next, count))) => Opened::Ok(db, tree, next, count),
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
    match file.try_lock() {
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
    /// Opens (or creates) the store in `dir`; quarantines a corrupt one.
    pub fn open(dir: &Path, cfg: &StoreConfig) -> Result<(EventStore, OpenReport), StoreError> {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let fresh = !dir.exists();
        std::fs::create_dir_all(parent).map_err(|e| StoreError::Io {
            path: parent.to_path_buf(),
            op: "create",
            source: e,
        })?;
        let lock = lock_store(dir)?;
        let id_file = ids::sidecar_path(dir);
        let reserved = ids::read_reserved(&id_file)?;
        let (mut quarantined, mut reason) = (None, None);
        let (db, tree, sled_next, count) = match try_open(dir, cfg).checked(dir, "open")? {
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
        let next = sled_next.max(reserved).max(1);
        let store = EventStore {
            dir: dir.to_path_buf(),
            _lock: lock,
            db,
            tree,
            ids: Mutex::new(ids::Ids {
                next,
                reserved,
                file: id_file,
            }),
        };
        let report = OpenReport {
            quarantined,
            reason,
            next_id: next,
            stored: count,
        };
        Ok((store, report))
    }

    /// Stores one record built with the next id, durably.
    pub fn append(
        &self,
        build: impl FnOnce(u64) -> EventRecord,
    ) -> Result<EventRecord, StoreError> {
        let mut build = Some(build);
        let mut v = self.append_batch(1, |id| match build.take() {
            Some(b) => b(id),
            None => unreachable!("append_batch(1) builds exactly one record"),
        })?;
        Ok(v.remove(0))
    }

    /// Stores `n` records built with consecutive new ids, with one durability
    /// barrier for all (group commit). Nothing is acknowledged unless all are.
    pub fn append_batch(
        &self,
        n: usize,
        mut build: impl FnMut(u64) -> EventRecord,
    ) -> Result<Vec<EventRecord>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let first = ids.next;
        let end = first + n as u64;
        ids.reserve_through(end)?;
        let mut batch = sled::Batch::default();
        let mut records = Vec::with_capacity(n);
        for id in first..end {
            let mut r = build(id);
            r.id = id;
            batch.insert(&event_key(id)[..], encode_event(&r));
            records.push(r);
        }
        batch.insert(NEXT_ID_KEY, &end.to_be_bytes()[..]);
        self.tree
            .apply_batch(batch)
            .map_err(db_err("write events"))?;
        // From here the ids are used whether or not the barrier succeeds.
        ids.next = end;
        drop(ids);
        self.flush_durable()?;
        Ok(records)
    }

    /// The record with this id, if stored.
    pub fn get(&self, id: u64) -> Result<Option<EventRecord>, StoreError> {
        match self.tree.get(event_key(id)).map_err(db_err("read event"))? {
            Some(v) => decode_event(&v)
                .map(Some)
                .map_err(|source| StoreError::Decode { id, source }),
            None => Ok(None),
        }
    }

    /// Records from `id` on, in id order. A record that fails to decode
    /// yields an error naming its id, and iteration goes on.
    pub fn iter_from(&self, id: u64) -> impl Iterator<Item = Result<EventRecord, StoreError>> + '_ {
        let end = [EVENT_PREFIX + 1];
        self.tree
            .range(event_key(id).to_vec()..end.to_vec())
            .map(|kv| {
                let (k, v) = kv.map_err(db_err("scan events"))?;
                let id = key_id(&k).unwrap_or(0);
                decode_event(&v).map_err(|source| StoreError::Decode { id, source })
            })
    }

    /// Removes delivered records, durably. Their ids are never reused.
    pub fn remove_delivered(&self, ids: &[u64]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(&event_key(*id)[..]);
        }
        self.tree
            .apply_batch(batch)
            .map_err(db_err("remove events"))?;
        self.flush_durable()
    }

    /// Number of stored records.
    pub fn len(&self) -> usize {
        self.tree.scan_prefix([EVENT_PREFIX]).count()
    }

    /// True when no record is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The id the next record will get.
    pub fn next_id(&self) -> u64 {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).next
    }

    /// sled flush, then fsync of every database file and the directory.
    pub fn flush_durable(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(db_err("flush"))?;
        durable::sync_tree(&self.dir)
    }

    /// Total size of the database files, bytes.
    pub fn bytes_on_disk(&self) -> Result<u64, StoreError> {
        durable::dir_size(&self.dir)
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Inserts raw bytes as the record `id`, bypassing encoding: for tests of
    /// how the store copes with bad records on disk.
    #[doc(hidden)]
    pub fn insert_raw_for_test(&self, id: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.tree
            .insert(event_key(id), bytes)
            .map_err(db_err("write raw"))?;
        self.flush_durable()
    }
}

#[cfg(test)]
mod tests;
