//! The bundle being pushed over the field link, on disk: one partial file,
//! `<data_dir>/fieldlink/push/<sha256 hex>.part`, keyed by the SHA-256 the
//! technician declared at `Begin`, synced after every chunk. A cut cable,
//! a new session or a restart of the node resumes where the file ends.
//!
//! Every function here does blocking file I/O: the session calls them on a
//! blocking thread.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use messages::link::{BUNDLE_CHUNK_LEN, BundleKind};
use models::bundle::{Bundle, Kind};
use sha2::{Digest, Sha256};

/// `<data_dir>/fieldlink/push`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("fieldlink").join("push")
}

/// The bundle a session is pushing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// What the technician says it is.
    pub kind: BundleKind,
    /// The bundle file's length.
    pub total_len: u64,
    /// The bundle file's SHA-256.
    pub sha256: [u8; 32],
    /// Bytes held durably: the next chunk's offset.
    pub offset: u64,
}

/// Why a step was not taken (answered with an error reply).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    /// `Begin` with a length over the node's cap (or of 0 bytes).
    #[error(
        "a bundle of {len} bytes is not taken: this node takes bundles of 1 to {cap} bytes ([update] max_bundle_bytes)"
    )]
    Size {
        /// The declared length.
        len: u64,
        /// The node's cap.
        cap: u64,
    },
    /// A chunk over [`BUNDLE_CHUNK_LEN`].
    #[error("a chunk of {0} bytes is over the {BUNDLE_CHUNK_LEN}-byte limit")]
    ChunkTooLarge(usize),
    /// A chunk that runs past the declared length.
    #[error("a chunk ending at {end} runs past the bundle's {total} bytes")]
    PastEnd {
        /// Where the chunk ends.
        end: u64,
        /// The declared length.
        total: u64,
    },
    /// The disk failed.
    #[error("storing the bundle: {0}")]
    Io(String),
}

fn io(what: &str, path: &Path, e: std::io::Error) -> PushError {
    PushError::Io(format!("{what} {}: {e}", path.display()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The partial file of the bundle with this SHA-256.
pub fn part_path(dir: &Path, sha256: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.part", hex(sha256)))
}

/// `Begin`: checks the size against `cap` before anything is received,
/// discards any other partial bundle, and answers how much of this one is
/// held (0 for a new one).
pub fn begin(
    dir: &Path,
    cap: u64,
    kind: BundleKind,
    total_len: u64,
    sha256: [u8; 32],
) -> Result<Active, PushError> {
    if total_len == 0 || total_len > cap {
        return Err(PushError::Size {
            len: total_len,
            cap,
        });
    }
    uplink::store::durable::create_dir_durably(dir).map_err(|e| io("create", dir, e))?;
    let path = part_path(dir, &sha256);
    let entries = std::fs::read_dir(dir).map_err(|e| io("list", dir, e))?;
    for other in entries.flatten().map(|e| e.path()) {
        if other != path {
            std::fs::remove_file(&other).map_err(|e| io("remove", &other, e))?;
            tracing::info!(path = %other.display(), "field link: another partial bundle discarded");
        }
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| io("open", &path, e))?;
    let mut held = f.metadata().map_err(|e| io("stat", &path, e))?.len();
    if held > total_len {
        // Longer than the bundle with this hash can be: not this bundle.
        f.set_len(0).map_err(|e| io("truncate", &path, e))?;
        held = 0;
    }
    f.sync_all().map_err(|e| io("fsync", &path, e))?;
    uplink::store::durable::sync_dir(dir).map_err(|e| PushError::Io(e.to_string()))?;
    Ok(Active {
        kind,
        total_len,
        sha256,
        offset: held,
    })
}

/// `Chunk`: writes `data` when `offset` is the offset held (and syncs it),
/// otherwise writes nothing; answers the offset held after.
pub fn chunk(dir: &Path, active: &mut Active, offset: u64, data: &[u8]) -> Result<u64, PushError> {
    if data.len() > BUNDLE_CHUNK_LEN {
        return Err(PushError::ChunkTooLarge(data.len()));
    }
    if offset != active.offset {
        return Ok(active.offset);
    }
    let end = offset + data.len() as u64;
    if end > active.total_len {
        return Err(PushError::PastEnd {
            end,
            total: active.total_len,
        });
    }
    let path = part_path(dir, &active.sha256);
    let mut f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| io("open", &path, e))?;
    // Whatever a failed write left past the offset held goes first.
    f.set_len(offset).map_err(|e| io("truncate", &path, e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| io("seek", &path, e))?;
    f.write_all(data).map_err(|e| io("write", &path, e))?;
    f.sync_data().map_err(|e| io("fsync", &path, e))?;
    active.offset = end;
    Ok(end)
}

/// A refusal at `Commit`, before the bundle reaches the update task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `incomplete`, `sha256_mismatch`, `malformed` or `wrong_kind`.
    pub code: &'static str,
    /// For the technician.
    pub reason: String,
    /// The partial file is kept (more bytes may come).
    pub kept: bool,
}

/// A whole bundle, checked against what `Begin` declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whole {
    /// The partial file, now whole.
    pub path: PathBuf,
    /// `model` or `settings`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: u64,
}

impl Whole {
    /// Its file name in the drop folder (the drop folder is taken in name
    /// order).
    pub fn incoming_name(&self) -> String {
        format!(
            "{}-{}-{:020}-link.fnb",
            self.kind,
            self.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            self.version
        )
    }
}

/// `Commit`: checks the length and SHA-256 declared at `Begin`, and that
/// the file is a bundle of the declared kind. A refused bundle is removed,
/// except an incomplete one.
pub fn finish(dir: &Path, active: &Active) -> Result<Whole, Refused> {
    let path = part_path(dir, &active.sha256);
    let refuse = |code: &'static str, reason: String| {
        let _ = std::fs::remove_file(&path);
        Refused {
            code,
            reason,
            kept: false,
        }
    };
    let (len, sha) = match hash(&path) {
        Ok(v) => v,
        Err(e) => {
            return Err(refuse(
                "incomplete",
                format!("the bundle cannot be read: {e}"),
            ));
        }
    };
    if len < active.total_len {
        return Err(Refused {
            code: "incomplete",
            reason: format!(
                "{len} of {} bytes received: send the rest (Begin tells where to go on)",
                active.total_len
            ),
            kept: true,
        });
    }
    if len != active.total_len || sha != active.sha256 {
        return Err(refuse(
            "sha256_mismatch",
            format!(
                "the {len} bytes received do not have the SHA-256 declared at Begin ({}); they are discarded: push the bundle again",
                hex(&active.sha256)
            ),
        ));
    }
    let mut head = Vec::new();
    let header = File::open(&path)
        .and_then(|f| {
            f.take(crate::update::report::HEADER_MAX)
                .read_to_end(&mut head)
        })
        .map_err(|e| e.to_string())
        .and_then(|_| Bundle::parse_header(&head).map_err(|e| e.to_string()));
    let bundle = match header {
        Ok((b, _)) => b,
        Err(e) => return Err(refuse("malformed", format!("not a signed bundle: {e}"))),
    };
    let declared = match active.kind {
        BundleKind::Model => Kind::Model,
        BundleKind::Settings => Kind::Settings,
    };
    if bundle.meta.kind != declared {
        return Err(refuse(
            "wrong_kind",
            format!(
                "pushed as a {} bundle, but it is a {} bundle",
                declared.as_str(),
                bundle.meta.kind.as_str()
            ),
        ));
    }
    Ok(Whole {
        path,
        kind: bundle.meta.kind.as_str(),
        name: bundle.meta.name.clone(),
        version: bundle.meta.version,
    })
}

/// The length and SHA-256 of a file, read in pieces.
fn hash(path: &Path) -> std::io::Result<(u64, [u8; 32])> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, h.finalize().into()))
}

/// Moves a whole bundle into the drop folder `incoming` as `name`,
/// atomically (a rename on the same file system), and syncs both
/// directories.
pub fn hand_over(whole: &Whole, incoming: &Path, name: &str) -> Result<PathBuf, PushError> {
    uplink::store::durable::create_dir_durably(incoming).map_err(|e| io("create", incoming, e))?;
    let dest = incoming.join(name);
    std::fs::rename(&whole.path, &dest).map_err(|e| io("move into", incoming, e))?;
    uplink::store::durable::sync_dir(incoming).map_err(|e| PushError::Io(e.to_string()))?;
    if let Some(from) = whole.path.parent() {
        uplink::store::durable::sync_dir(from).map_err(|e| PushError::Io(e.to_string()))?;
    }
    Ok(dest)
}
