//! The volatile layer: every change since the last fsync that would make it
//! durable, in the order it happened, with what is needed to take it back.
//!
//! Changes are applied to the backing folder at once (so reads see them, as
//! they would through a page cache), and a power cut takes back what was not
//! yet durable, newest first, keeping some prefix or tearing the first lost
//! write when the cut mode says so.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One change not yet durable.
#[derive(Debug, Clone)]
pub enum Op {
    /// Bytes written into file `ino` (its data).
    Write {
        ino: u64,
        offset: u64,
        old: Vec<u8>,
        old_len: u64,
        new: Vec<u8>,
    },
    /// File `ino` resized (its data).
    Resize {
        ino: u64,
        old_len: u64,
        old_tail: Vec<u8>,
    },
    /// A file created in `parent` (an entry of the directory).
    Create { parent: PathBuf, path: PathBuf },
    /// A directory created in `parent`.
    Mkdir { parent: PathBuf, path: PathBuf },
    /// A file removed from `parent`; its content waits in `saved`.
    Unlink {
        parent: PathBuf,
        path: PathBuf,
        saved: PathBuf,
    },
    /// A directory removed from `parent`.
    Rmdir { parent: PathBuf, path: PathBuf },
    /// `from` renamed to `to` (an entry of `to`'s directory); a file it
    /// replaced waits in `replaced`.
    Rename {
        parent: PathBuf,
        from: PathBuf,
        to: PathBuf,
        replaced: Option<PathBuf>,
    },
}

/// How the volatile layer is lost in a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Everything since the last sync is lost.
    DropAll,
    /// The first `n` changes in write order survive, the rest is lost.
    Prefix(usize),
    /// As `Prefix(n)`, and the next write is half applied.
    TornHalf(usize),
    /// As `Prefix(n)`, and the 4 KiB block under the next write is garbage.
    Garbage4k(usize),
}

impl std::fmt::Display for CutMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CutMode::DropAll => write!(f, "drop-all"),
            CutMode::Prefix(n) => write!(f, "prefix({n})"),
            CutMode::TornHalf(n) => write!(f, "torn-half({n})"),
            CutMode::Garbage4k(n) => write!(f, "garbage-4k({n})"),
        }
    }
}

fn rw(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Takes back one change. `path_of` maps an inode to its current path.
pub fn undo(
    op: &Op,
    path_of: &dyn Fn(u64) -> Option<PathBuf>,
    rename_back: &mut dyn FnMut(&Path, &Path),
) -> std::io::Result<()> {
    match op {
        Op::Write {
            ino,
            offset,
            old,
            old_len,
            ..
        } => {
            if let Some(p) = path_of(*ino).filter(|p| p.exists()) {
                let f = rw(&p)?;
                f.write_all_at(old, *offset)?;
                f.set_len(*old_len)?;
            }
        }
        Op::Resize {
            ino,
            old_len,
            old_tail,
        } => {
            if let Some(p) = path_of(*ino).filter(|p| p.exists()) {
                let f = rw(&p)?;
                let cur = f.metadata()?.len();
                f.set_len(*old_len)?;
                if !old_tail.is_empty() {
                    f.write_all_at(old_tail, cur.min(*old_len))?;
                }
            }
        }
        Op::Create { path, .. } => {
            let _ = std::fs::remove_file(path);
        }
        Op::Mkdir { path, .. } => {
            let _ = std::fs::remove_dir_all(path);
        }
        Op::Unlink { path, saved, .. } => std::fs::rename(saved, path)?,
        Op::Rmdir { path, .. } => std::fs::create_dir_all(path)?,
        Op::Rename {
            from, to, replaced, ..
        } => {
            std::fs::rename(to, from)?;
            rename_back(to, from);
            if let Some(r) = replaced {
                std::fs::rename(r, to)?;
            }
        }
    }
    Ok(())
}

/// Applies part of a lost write, as a torn write would leave it.
pub fn tear(
    op: &Op,
    mode: CutMode,
    seed: u64,
    path_of: &dyn Fn(u64) -> Option<PathBuf>,
) -> std::io::Result<()> {
    let Op::Write {
        ino, offset, new, ..
    } = op
    else {
        return Ok(());
    };
    let Some(p) = path_of(*ino).filter(|p| p.exists()) else {
        return Ok(());
    };
    let f = rw(&p)?;
    match mode {
        CutMode::TornHalf(_) => f.write_all_at(&new[..new.len() / 2], *offset),
        CutMode::Garbage4k(_) => {
            let block = offset / 4096 * 4096;
            let mut x = seed | 1;
            let junk: Vec<u8> = (0..4096)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            f.write_all_at(&junk, block)
        }
        _ => Ok(()),
    }
}
