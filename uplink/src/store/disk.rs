//! Free space on the store's filesystem: where it is read from
//! ([`FreeSpace`]: `statvfs(3)` on the node, [`FakeFreeSpace`] in tests),
//! and what the store reports about it ([`DiskStatus`]).
//!
//! The store reads the free space once per append when
//! `[outbox.budget] min_free_bytes` is set (not 0). Below it, an append
//! evicts before it grows the outbox; see `docs/outbox.md`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Where the store reads the free space of its filesystem.
pub trait FreeSpace: Send + Sync + std::fmt::Debug {
    /// Bytes available to unprivileged writers on the filesystem that holds
    /// `path`; `Ok(None)` when the filesystem reports no size at all (some
    /// FUSE and pseudo filesystems report zero blocks): no limit can be
    /// measured there.
    fn free_bytes(&self, path: &Path) -> std::io::Result<Option<u64>>;
}

/// `statvfs(3)`: available blocks (`f_bavail`, what a non-root writer may
/// use) times the fragment size (`f_frsize`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Statvfs;

impl FreeSpace for Statvfs {
    fn free_bytes(&self, path: &Path) -> std::io::Result<Option<u64>> {
        let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
        if s.blocks() == 0 {
            return Ok(None);
        }
        #[allow(clippy::useless_conversion)] // the field widths differ between targets
        let (avail, frsize) = (
            u64::from(s.blocks_available()),
            u64::from(s.fragment_size()),
        );
        Ok(Some(avail.saturating_mul(frsize)))
    }
}

/// A free-space source for tests: reports what the test sets, shared
/// between clones, so a test can fill and empty a simulated disk step by
/// step, or make the reading fail.
#[derive(Debug, Clone, Default)]
pub struct FakeFreeSpace {
    free: Arc<AtomicU64>,
    unknown: Arc<AtomicBool>,
    fail: Arc<AtomicBool>,
}

impl FakeFreeSpace {
    /// A disk with `free` bytes free.
    pub fn new(free: u64) -> Self {
        let f = FakeFreeSpace::default();
        f.set(free);
        f
    }

    /// Sets the free bytes.
    pub fn set(&self, free: u64) {
        self.free.store(free, Ordering::SeqCst);
    }

    /// Uses `bytes` (the free space shrinks, not below zero).
    pub fn take(&self, bytes: u64) {
        let _ = self
            .free
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                Some(f.saturating_sub(bytes))
            });
    }

    /// Frees `bytes`.
    pub fn give(&self, bytes: u64) {
        let _ = self
            .free
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                Some(f.saturating_add(bytes))
            });
    }

    /// The free bytes it reports.
    pub fn get(&self) -> u64 {
        self.free.load(Ordering::SeqCst)
    }

    /// Reports a filesystem without a size (`Ok(None)`) while `unknown`.
    pub fn set_unknown(&self, unknown: bool) {
        self.unknown.store(unknown, Ordering::SeqCst);
    }

    /// Makes every reading fail while `fail` is true.
    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }
}

impl FreeSpace for FakeFreeSpace {
    fn free_bytes(&self, _path: &Path) -> std::io::Result<Option<u64>> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("fake free-space reading failed"));
        }
        if self.unknown.load(Ordering::SeqCst) {
            return Ok(None);
        }
        Ok(Some(self.get()))
    }
}

/// Where the store stands against its disk reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskState {
    /// At least `min_free_bytes` free (or the reserve is disabled, or the
    /// free space cannot be measured): appends grow the outbox.
    Ok,
    /// Less than `min_free_bytes` free: every append first evicts items
    /// ranked below the new ones, so the outbox does not grow.
    Evicting,
    /// The last append could not store everything for lack of disk: a new
    /// item was refused (it ranked below every stored item while under the
    /// reserve) or the filesystem reported no space left (ENOSPC) after the
    /// retries. Cleared by the next append that stores all it was given.
    Full,
}

impl DiskState {
    /// Stable lower-case name: `ok`, `evicting`, `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskState::Ok => "ok",
            DiskState::Evicting => "evicting",
            DiskState::Full => "full",
        }
    }

    /// Stable numeric code for compact records: 0 ok, 1 evicting, 2 full.
    pub fn code(self) -> u8 {
        match self {
            DiskState::Ok => 0,
            DiskState::Evicting => 1,
            DiskState::Full => 2,
        }
    }
}

impl std::fmt::Display for DiskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`crate::EventStore::disk_status`] reports, for the node's status
/// record and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskStatus {
    /// Free bytes on the store's filesystem, read now; `None` when they
    /// cannot be read (the reading failed, or the filesystem reports no
    /// size).
    pub free_bytes: Option<u64>,
    /// The configured reserve (`[outbox.budget] min_free_bytes`; 0 = off).
    pub min_free_bytes: u64,
    /// Where the store stands.
    pub state: DiskState,
    /// Items evicted or not kept for the disk reserve or a full disk, since
    /// the store was created (all priorities; per priority in
    /// [`crate::store::DropStats::evicted_disk`]).
    pub evicted_disk: u64,
}

/// What the store remembers between appends about its disk.
#[derive(Debug, Default)]
pub(super) struct DiskMemo {
    /// The last append could not store everything for lack of disk.
    pub full: bool,
    /// The last append ran under the reserve (for logging transitions).
    pub pressure: bool,
    /// The last reading failed (for logging transitions).
    pub reading_failed: bool,
}

/// True for "no space left on device" (ENOSPC) and "disk quota exceeded".
pub fn is_storage_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error() == Some(28)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statvfs_reads_a_real_filesystem() {
        let t = tempfile::tempdir().unwrap();
        let free = Statvfs.free_bytes(t.path()).unwrap();
        // The build disk has a size; its free space is whatever it is.
        assert!(free.is_some());
        assert!(Statvfs.free_bytes(&t.path().join("missing")).is_err());
    }

    #[test]
    fn the_fake_fills_empties_fails_and_is_shared_by_clones() {
        let f = FakeFreeSpace::new(100);
        let g = f.clone();
        g.take(30);
        assert_eq!(f.free_bytes(Path::new("/")).unwrap(), Some(70));
        f.take(1000);
        assert_eq!(g.get(), 0);
        f.give(5);
        assert_eq!(g.get(), 5);
        g.set_unknown(true);
        assert_eq!(f.free_bytes(Path::new("/")).unwrap(), None);
        g.set_failing(true);
        assert!(f.free_bytes(Path::new("/")).is_err());
    }

    #[test]
    fn enospc_and_quota_are_storage_full() {
        assert!(is_storage_full(&std::io::Error::from_raw_os_error(28)));
        assert!(is_storage_full(&std::io::Error::from(
            std::io::ErrorKind::StorageFull
        )));
        assert!(!is_storage_full(&std::io::Error::from_raw_os_error(5)));
    }
}
