//! A power-loss test filesystem (FUSE, through `fuser`).
//!
//! It passes every operation through to a backing folder, and keeps in a
//! journal ([`journal`]) what a real disk with a volatile write cache could
//! still lose:
//!
//! - data written to a file (writes, truncations) until that file is
//!   `fsync`ed or `fdatasync`ed;
//! - entries of a directory (creates, mkdirs, unlinks, rmdirs, renames into
//!   it) until that directory is `fsync`ed.
//!
//! A power cut ([`PowerFs::cut`]) takes back what is in the journal, newest
//! first, in one of the [`CutMode`]s, and from then on every operation fails
//! with EIO, as a dead disk would. What the filesystem guarantees is exactly
//! POSIX's minimum: what was fsynced stays, nothing else is promised.
//!
//! What it does not model: reordering of writes *within* what survives
//! (a prefix is kept in write order), metadata other than size (times,
//! permissions) which is always kept, `sync_file_range` (FUSE never sees it:
//! it is the case of a device cache that ignores it), and memory-mapped
//! writes (not used by the node).

pub mod journal;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, OpenFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyWrite, Request,
};
pub use journal::CutMode;
use journal::Op;

/// What the harness can see and do while the filesystem is mounted.
#[derive(Debug, Default)]
pub struct Control {
    /// fsync and fsyncdir calls so far.
    pub syncs: AtomicU64,
    /// Cut power at this sync call (1-based); 0 = never.
    pub cut_at_sync: AtomicU64,
    /// Set once power is cut.
    pub dead: AtomicBool,
}

struct Inner {
    trash: PathBuf,
    paths: HashMap<u64, PathBuf>,
    inos: HashMap<PathBuf, u64>,
    next_ino: u64,
    handles: HashMap<u64, (u64, File)>,
    next_fh: u64,
    journal: Vec<Op>,
    trash_n: u64,
    mode: CutMode,
    seed: u64,
}

/// The filesystem.
pub struct PowerFs {
    inner: Arc<Mutex<Inner>>,
    control: Arc<Control>,
}

/// Cuts the power of a mounted [`PowerFs`] from outside.
#[derive(Clone)]
pub struct Cutter {
    inner: Arc<Mutex<Inner>>,
    control: Arc<Control>,
}

impl Cutter {
    /// Cuts the power now (once; later calls do nothing).
    pub fn cut(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        PowerFs::cut_now(&mut g, &self.control);
    }
}

const TTL: Duration = Duration::ZERO;

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl PowerFs {
    /// A filesystem over `root`, keeping journal spill-over (unlinked files)
    /// in `trash` (outside `root`). `mode` and `seed` decide how a cut loses data.
    pub fn new(
        root: &Path,
        trash: &Path,
        mode: CutMode,
        seed: u64,
        control: Arc<Control>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(trash)?;
        let mut paths = HashMap::new();
        let mut inos = HashMap::new();
        paths.insert(1, root.to_path_buf());
        inos.insert(root.to_path_buf(), 1);
        let inner = Inner {
            trash: trash.to_path_buf(),
            paths,
            inos,
            next_ino: 2,
            handles: HashMap::new(),
            next_fh: 1,
            journal: Vec::new(),
            trash_n: 0,
            mode,
            seed,
        };
        Ok(PowerFs {
            inner: Arc::new(Mutex::new(inner)),
            control,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dead(&self) -> bool {
        self.control.dead.load(Ordering::SeqCst)
    }

    /// A handle to cut the power once the filesystem is mounted.
    pub fn cutter(&self) -> Cutter {
        Cutter {
            inner: self.inner.clone(),
            control: self.control.clone(),
        }
    }

    /// Cuts the power now: the journal is lost as the mode says.
    fn cut_now(inner: &mut Inner, control: &Control) {
        if control.dead.swap(true, Ordering::SeqCst) {
            return;
        }
        let n = inner.journal.len();
        let keep = match inner.mode {
            CutMode::DropAll => 0,
            CutMode::Prefix(k) | CutMode::TornHalf(k) | CutMode::Garbage4k(k) => k.min(n),
        };
        let lost: Vec<Op> = inner.journal.drain(keep..).collect();
        let paths = inner.paths.clone();
        // Renames taken back so far: (to, from), newest last.
        let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
        for op in lost.iter().rev() {
            let snap = moved.clone();
            let path_of = |ino: u64| resolve(&paths, &snap, ino);
            let mut newly = Vec::new();
            let _ = journal::undo(op, &path_of, &mut |to, from| {
                newly.push((to.to_path_buf(), from.to_path_buf()))
            });
            moved.extend(newly);
        }
        if let Some(first) = lost.first() {
            let path_of = |ino: u64| resolve(&paths, &moved, ino);
            let _ = journal::tear(first, inner.mode, inner.seed, &path_of);
        }
        inner.journal.clear();
        inner.handles.clear();
    }

    fn sync_point(&self, inner: &mut Inner) -> bool {
        let n = self.control.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        let at = self.control.cut_at_sync.load(Ordering::SeqCst);
        if at != 0 && n >= at {
            Self::cut_now(inner, &self.control);
            return false;
        }
        true
    }
}

/// `base` joined with `rest`; `base` itself when `rest` is empty
/// (`Path::join("")` would add a trailing slash, and a file's path with a
/// trailing slash fails with ENOTDIR).
fn under(base: &Path, rest: &Path) -> PathBuf {
    if rest.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rest)
    }
}

/// The path of `ino` after the renames in `moved` were taken back.
fn resolve(
    paths: &HashMap<u64, PathBuf>,
    moved: &[(PathBuf, PathBuf)],
    ino: u64,
) -> Option<PathBuf> {
    let mut p = paths.get(&ino)?.clone();
    for (to, from) in moved {
        if let Ok(rest) = p.strip_prefix(to) {
            p = under(from, rest);
        }
    }
    Some(p)
}

impl Inner {
    fn path(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        self.paths
            .get(&u64::from(ino))
            .cloned()
            .ok_or(Errno::ENOENT)
    }

    fn ino_for(&mut self, p: &Path) -> u64 {
        if let Some(i) = self.inos.get(p) {
            return *i;
        }
        let i = self.next_ino;
        self.next_ino += 1;
        self.paths.insert(i, p.to_path_buf());
        self.inos.insert(p.to_path_buf(), i);
        i
    }

    fn forget_path(&mut self, p: &Path) {
        if let Some(i) = self.inos.remove(p) {
            self.paths.remove(&i);
        }
    }

    fn attr(&mut self, p: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(p).map_err(|e| errno(&e))?;
        let ino = self.ino_for(p);
        let kind = if m.is_dir() {
            FileType::Directory
        } else {
            FileType::RegularFile
        };
        let t = |s: i64| UNIX_EPOCH + Duration::from_secs(s.max(0) as u64);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size: m.len(),
            blocks: m.blocks(),
            atime: t(m.atime()),
            mtime: t(m.mtime()),
            ctime: t(m.ctime()),
            crtime: t(m.ctime()),
            kind,
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: 0,
            flags: 0,
            blksize: 4096,
        })
    }

    fn stash(&mut self, p: &Path) -> std::io::Result<PathBuf> {
        self.trash_n += 1;
        let saved = self.trash.join(format!("t{}", self.trash_n));
        std::fs::rename(p, &saved)?;
        Ok(saved)
    }

    fn rename_paths(&mut self, from: &Path, to: &Path) {
        let moved: Vec<(u64, PathBuf)> = self
            .paths
            .iter()
            .filter_map(|(i, p)| p.strip_prefix(from).ok().map(|rest| (*i, under(to, rest))))
            .collect();
        for (i, np) in moved {
            if let Some(old) = self.paths.insert(i, np.clone()) {
                self.inos.remove(&old);
            }
            self.inos.insert(np, i);
        }
    }
}

macro_rules! alive {
    ($self:ident, $reply:ident) => {
        if $self.dead() {
            $reply.error(Errno::EIO);
            return;
        }
    };
}

macro_rules! tri {
    ($e:expr, $reply:ident) => {
        match $e {
            Ok(v) => v,
            Err(e) => {
                $reply.error(e);
                return;
            }
        }
    };
}

impl Filesystem for PowerFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        alive!(self, reply);
        let mut g = self.lock();
        let p = tri!(g.path(parent), reply).join(name);
        let a = tri!(g.attr(&p), reply);
        reply.entry(&TTL, &a, Generation(0));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        alive!(self, reply);
        let mut g = self.lock();
        let p = tri!(g.path(ino), reply);
        let a = tri!(g.attr(&p), reply);
        reply.attr(&TTL, &a);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        alive!(self, reply);
        let mut g = self.lock();
        let p = tri!(g.path(ino), reply);
        if let Some(m) = mode {
            use std::os::unix::fs::PermissionsExt;
            tri!(
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m & 0o7777))
                    .map_err(|e| errno(&e)),
                reply
            );
        }
        if let Some(len) = size {
            let f = tri!(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&p)
                    .map_err(|e| errno(&e)),
                reply
            );
            let old_len = tri!(f.metadata().map_err(|e| errno(&e)), reply).len();
            let mut old_tail = vec![0u8; old_len.saturating_sub(len) as usize];
            if !old_tail.is_empty() {
                tri!(
                    f.read_exact_at(&mut old_tail, len).map_err(|e| errno(&e)),
                    reply
                );
            }
            tri!(f.set_len(len).map_err(|e| errno(&e)), reply);
            g.journal.push(Op::Resize {
                ino: u64::from(ino),
                old_len,
                old_tail,
            });
        }
        let a = tri!(g.attr(&p), reply);
        reply.attr(&TTL, &a);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        alive!(self, reply);
        let mut g = self.lock();
        let dir = tri!(g.path(parent), reply);
        let p = dir.join(name);
        tri!(
            std::fs::DirBuilder::new()
                .mode(mode & 0o7777)
                .create(&p)
                .map_err(|e| errno(&e)),
            reply
        );
        g.journal.push(Op::Mkdir {
            parent: dir,
            path: p.clone(),
        });
        let a = tri!(g.attr(&p), reply);
        reply.entry(&TTL, &a, Generation(0));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        alive!(self, reply);
        let mut g = self.lock();
        let dir = tri!(g.path(parent), reply);
        let p = dir.join(name);
        let saved = tri!(g.stash(&p).map_err(|e| errno(&e)), reply);
        g.forget_path(&p);
        g.journal.push(Op::Unlink {
            parent: dir,
            path: p,
            saved,
        });
        reply.ok();
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        alive!(self, reply);
        let mut g = self.lock();
        let dir = tri!(g.path(parent), reply);
        let p = dir.join(name);
        tri!(std::fs::remove_dir(&p).map_err(|e| errno(&e)), reply);
        g.forget_path(&p);
        g.journal.push(Op::Rmdir {
            parent: dir,
            path: p,
        });
        reply.ok();
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        alive!(self, reply);
        let mut g = self.lock();
        let from = tri!(g.path(parent), reply).join(name);
        let to_dir = tri!(g.path(newparent), reply);
        let to = to_dir.join(newname);
        let replaced = if to.is_file() {
            Some(tri!(g.stash(&to).map_err(|e| errno(&e)), reply))
        } else {
            None
        };
        if replaced.is_some() {
            g.forget_path(&to);
        }
        tri!(std::fs::rename(&from, &to).map_err(|e| errno(&e)), reply);
        g.rename_paths(&from, &to);
        g.journal.push(Op::Rename {
            parent: to_dir,
            from,
            to,
            replaced,
        });
        reply.ok();
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        alive!(self, reply);
        let mut g = self.lock();
        let p = tri!(g.path(ino), reply);
        let f = tri!(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&p)
                .map_err(|e| errno(&e)),
            reply
        );
        if flags.0 & libc::O_TRUNC != 0 {
            let old_len = tri!(f.metadata().map_err(|e| errno(&e)), reply).len();
            let mut old_tail = vec![0u8; old_len as usize];
            tri!(
                f.read_exact_at(&mut old_tail, 0).map_err(|e| errno(&e)),
                reply
            );
            tri!(f.set_len(0).map_err(|e| errno(&e)), reply);
            g.journal.push(Op::Resize {
                ino: u64::from(ino),
                old_len,
                old_tail,
            });
        }
        let fh = g.next_fh;
        g.next_fh += 1;
        g.handles.insert(fh, (u64::from(ino), f));
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        alive!(self, reply);
        let mut g = self.lock();
        let dir = tri!(g.path(parent), reply);
        let p = dir.join(name);
        let existed = p.exists();
        let f = tri!(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(mode & 0o7777)
                .custom_flags(flags & libc::O_EXCL)
                .open(&p)
                .map_err(|e| errno(&e)),
            reply
        );
        if !existed {
            g.journal.push(Op::Create {
                parent: dir,
                path: p.clone(),
            });
        }
        let a = tri!(g.attr(&p), reply);
        let fh = g.next_fh;
        g.next_fh += 1;
        g.handles.insert(fh, (u64::from(a.ino), f));
        reply.created(&TTL, &a, Generation(0), FileHandle(fh), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        alive!(self, reply);
        let g = self.lock();
        let Some((_, f)) = g.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut buf = vec![0u8; size as usize];
        let mut n = 0;
        while n < buf.len() {
            match f.read_at(&mut buf[n..], offset + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return reply.error(errno(&e)),
            }
        }
        reply.data(&buf[..n]);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        alive!(self, reply);
        let mut g = self.lock();
        let Some((ino, f)) = g.handles.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let ino = *ino;
        let old_len = match f.metadata() {
            Ok(m) => m.len(),
            Err(e) => return reply.error(errno(&e)),
        };
        let have = old_len.saturating_sub(offset).min(data.len() as u64) as usize;
        let mut old = vec![0u8; have];
        if have > 0
            && let Err(e) = f.read_exact_at(&mut old, offset)
        {
            return reply.error(errno(&e));
        }
        if let Err(e) = f.write_all_at(data, offset) {
            return reply.error(errno(&e));
        }
        g.journal.push(Op::Write {
            ino,
            offset,
            old,
            old_len,
            new: data.to_vec(),
        });
        reply.written(data.len() as u32);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        alive!(self, reply);
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.lock().handles.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        alive!(self, reply);
        let mut g = self.lock();
        if !self.sync_point(&mut g) {
            return reply.error(Errno::EIO);
        }
        let ino = u64::from(ino);
        g.journal.retain(
            |op| !matches!(op, Op::Write { ino: i, .. } | Op::Resize { ino: i, .. } if *i == ino),
        );
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        alive!(self, reply);
        let mut g = self.lock();
        if !self.sync_point(&mut g) {
            return reply.error(Errno::EIO);
        }
        let dir = tri!(g.path(ino), reply);
        let mut durable_trash = Vec::new();
        g.journal.retain(|op| {
            let parent = match op {
                Op::Create { parent, .. } | Op::Mkdir { parent, .. } | Op::Rmdir { parent, .. } => {
                    parent
                }
                Op::Unlink { parent, saved, .. } => {
                    if *parent == dir {
                        durable_trash.push(saved.clone());
                    }
                    parent
                }
                Op::Rename {
                    parent, replaced, ..
                } => {
                    if *parent == dir {
                        durable_trash.extend(replaced.clone());
                    }
                    parent
                }
                _ => return true,
            };
            *parent != dir
        });
        for t in durable_trash {
            let _ = std::fs::remove_file(t);
        }
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        alive!(self, reply);
        let mut g = self.lock();
        let dir = tri!(g.path(ino), reply);
        let mut entries: Vec<(u64, FileType, std::ffi::OsString)> = vec![
            (u64::from(ino), FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        let rd = tri!(std::fs::read_dir(&dir).map_err(|e| errno(&e)), reply);
        for e in rd.flatten() {
            let p = e.path();
            let kind = if p.is_dir() {
                FileType::Directory
            } else {
                FileType::RegularFile
            };
            let i = g.ino_for(&p);
            entries.push((i, kind, e.file_name()));
        }
        for (k, (i, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(i), (k + 1) as u64, kind, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        alive!(self, reply);
        reply.ok();
    }
}

/// A mounted [`PowerFs`].
pub struct Mounted {
    session: Option<fuser::BackgroundSession>,
    /// Cuts its power.
    pub cutter: Cutter,
    /// Its counters and switches.
    pub control: Arc<Control>,
}

impl Mounted {
    /// Mounts a filesystem over `backing` at `mountpoint`.
    pub fn mount(
        backing: &Path,
        trash: &Path,
        mountpoint: &Path,
        mode: CutMode,
        seed: u64,
    ) -> std::io::Result<Mounted> {
        let control = Arc::new(Control::default());
        let fs = PowerFs::new(backing, trash, mode, seed, control.clone())?;
        let cutter = fs.cutter();
        let mut cfg = fuser::Config::default();
        cfg.mount_options = vec![
            fuser::MountOption::FSName("powerfs".into()),
            fuser::MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount(fs, mountpoint, &cfg)?;
        Ok(Mounted {
            session: Some(session),
            cutter,
            control,
        })
    }

    /// Unmounts (after a cut, or cleanly).
    pub fn unmount(mut self) -> std::io::Result<()> {
        match self.session.take().map(|s| s.umount_and_join()) {
            // The session's read loop learns of the unmount either as ENODEV
            // (fuser's clean end) or, where the kernel aborts the connection
            // on unmount, as ECONNABORTED: both mean the filesystem is gone.
            Some(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionAborted => Ok(()),
            Some(r) => r,
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
    }
}
