//! The event journal: `<store dir>.journal`, a checksummed append-only log
//! beside the sled database and the source of truth when sled loses or
//! damages what it had made durable.
//!
//! Why: under the power-cut sweep, a 4 KiB block of garbage under sled's next
//! write (what an SD card's torn page program does) can hit bytes sled had
//! already made durable in the same block. sled 0.34 then refuses to open
//! ("Read corrupted data"), or opens without the last event. The journal
//! makes every acknowledged item recoverable anyway.
//!
//! Format: every append is one write starting at a 4 KiB boundary and padded
//! with zeros to the next one, so a torn or garbage write can only damage the
//! append in progress, never an earlier (acknowledged) one. An append holds
//! entries `"FNJ1"`, kind (1 byte), body length (u32 LE), CRC-32 of kind and
//! body (u32 LE), body. Kinds: 1 = put (id u64 LE, priority index u8, the
//! encoded record), 2 = gone (ids u64 LE: delivered, evicted or expired).
//! Reading stops an append at its first bad entry and resumes at the next
//! boundary. The file is rewritten (temporary, fsync, rename, fsync of the
//! directory) with only the live items when it grows past
//! [`Journal::needs_compaction`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use messages::Priority;

use super::StoreError;

const MAGIC: &[u8; 4] = b"FNJ1";
const HEADER: usize = 4 + 1 + 4 + 4;
const BLOCK: u64 = 4096;
const KIND_PUT: u8 = 1;
const KIND_GONE: u8 = 2;
/// The journal is compacted when larger than this and than 4 times its live
/// content.
const COMPACT_MIN_BYTES: u64 = 1 << 20;

/// One change to the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// An item stored with its id, priority and encoded record.
    Put {
        /// Its id.
        id: u64,
        /// Its priority.
        priority: Priority,
        /// The encoded record.
        bytes: Vec<u8>,
    },
    /// Items that left the outbox.
    Gone(Vec<u64>),
}

/// What a journal holds: the live items and what was skipped.
#[derive(Debug, Default)]
pub struct Replay {
    /// Live items by id: priority and encoded record.
    pub live: BTreeMap<u64, (Priority, Vec<u8>)>,
    /// The highest id ever put.
    pub max_id: u64,
    /// 4 KiB blocks with a damaged entry (an append cut by a power loss).
    pub damaged_blocks: u64,
}

/// The open journal.
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    live_bytes: u64,
    /// A failed append may have left bytes past `len` that could not be cut
    /// off yet: cut them before the next append.
    torn_tail: bool,
    /// Appends still to fail with ENOSPC after writing half their bytes
    /// (fault injection for tests).
    fail_next: u32,
}

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// `<dir>.journal`, beside the database so that a quarantine keeps it.
pub fn journal_path(dir: &Path) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(".journal");
    dir.with_file_name(name)
}

fn encode_entry(out: &mut Vec<u8>, e: &Entry) {
    let mut body = Vec::new();
    let kind = match e {
        Entry::Put {
            id,
            priority,
            bytes,
        } => {
            body.extend_from_slice(&id.to_le_bytes());
            body.push(priority.index() as u8);
            body.extend_from_slice(bytes);
            KIND_PUT
        }
        Entry::Gone(ids) => {
            for id in ids {
                body.extend_from_slice(&id.to_le_bytes());
            }
            KIND_GONE
        }
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(&body);
    out.extend_from_slice(MAGIC);
    out.push(kind);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&body);
}

/// Entries and padding for one append, a whole number of blocks long.
fn encode_append(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        encode_entry(&mut out, e);
    }
    let padded = (out.len() as u64).div_ceil(BLOCK) * BLOCK;
    out.resize(padded as usize, 0);
    out
}

/// Decodes the entry at the start of `buf`: the entry and its length, or
/// `None` when there is none (padding) or it is damaged.
fn decode_entry(buf: &[u8]) -> Option<(Entry, usize)> {
    if buf.get(..4)? != MAGIC {
        return None;
    }
    let kind = *buf.get(4)?;
    let len = u32::from_le_bytes(buf.get(5..9)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(buf.get(9..13)?.try_into().ok()?);
    let body = buf.get(HEADER..HEADER.checked_add(len)?)?;
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(body);
    if h.finalize() != crc {
        return None;
    }
    let entry = match kind {
        KIND_PUT => {
            let id = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
            let priority = *Priority::ALL.get(usize::from(*body.get(8)?))?;
            Entry::Put {
                id,
                priority,
                bytes: body.get(9..)?.to_vec(),
            }
        }
        KIND_GONE => {
            if !len.is_multiple_of(8) {
                return None;
            }
            Entry::Gone(
                body.chunks_exact(8)
                    .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
                    .collect(),
            )
        }
        _ => return None,
    };
    Some((entry, HEADER + len))
}

/// Replays a journal's bytes.
pub fn replay(buf: &[u8]) -> Replay {
    let mut r = Replay::default();
    let mut block_start = 0usize;
    while block_start < buf.len() {
        let mut pos = block_start;
        let mut damaged = false;
        while pos < buf.len() {
            match decode_entry(&buf[pos..]) {
                Some((entry, n)) => {
                    match entry {
                        Entry::Put {
                            id,
                            priority,
                            bytes,
                        } => {
                            r.max_id = r.max_id.max(id);
                            r.live.insert(id, (priority, bytes));
                        }
                        Entry::Gone(ids) => {
                            for id in ids {
                                r.live.remove(&id);
                            }
                        }
                    }
                    pos += n;
                }
                None => {
                    // Padding (zeros) ends an append; anything else is damage.
                    damaged = buf[pos..].first().is_some_and(|&b| b != 0);
                    break;
                }
            }
        }
        r.damaged_blocks += u64::from(damaged);
        // The next append starts at the next block boundary after this one.
        let end = pos.max(block_start + 1) as u64;
        block_start = (end.div_ceil(BLOCK) * BLOCK) as usize;
    }
    r
}

impl Journal {
    /// Opens (or creates) the journal at `path` and replays it.
    pub fn open(path: &Path) -> Result<(Journal, Replay), StoreError> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io(path, "open journal"))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(io(path, "read journal"))?;
        let r = replay(&buf);
        if !existed {
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            super::durable::sync_dir(parent)?;
        }
        let mut len = buf.len() as u64;
        if !len.is_multiple_of(BLOCK) {
            // A cut append left a partial block: pad it, so the next append
            // starts on a boundary again.
            let pad = vec![0u8; (len.div_ceil(BLOCK) * BLOCK - len) as usize];
            file.write_all(&pad).map_err(io(path, "pad journal"))?;
            file.sync_data().map_err(io(path, "fsync journal"))?;
            len += pad.len() as u64;
        }
        let live_bytes = r.live.values().map(|(_, b)| b.len() as u64 + 32).sum();
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                len,
                live_bytes,
                torn_tail: false,
                fail_next: 0,
            },
            r,
        ))
    }

    /// Appends `entries` durably (one write, then fsync). When the write or
    /// the fsync fails (a full disk), the file is cut back to its last whole
    /// append, so the next append starts on a block boundary again and
    /// nothing of the failed one is replayed.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.torn_tail {
            self.file
                .set_len(self.len)
                .map_err(io(&self.path, "cut a failed append off the journal"))?;
            self.torn_tail = false;
        }
        let bytes = encode_append(entries);
        let written = if self.fail_next > 0 {
            self.fail_next -= 1;
            self.file
                .write_all(&bytes[..bytes.len() / 2])
                .and_then(|()| Err(std::io::Error::from_raw_os_error(28)))
        } else {
            self.file
                .write_all(&bytes)
                .and_then(|()| self.file.sync_data())
        };
        if let Err(e) = written {
            // Cut off whatever part of the append reached the file; if even
            // that fails, the next append tries again first.
            self.torn_tail = self.file.set_len(self.len).is_err();
            tracing::warn!(path = %self.path.display(), error = %e, tail_cut = !self.torn_tail, "journal append failed");
            return Err(io(&self.path, "append to journal")(e));
        }
        self.len += bytes.len() as u64;
        for e in entries {
            match e {
                Entry::Put { bytes, .. } => self.live_bytes += bytes.len() as u64 + 32,
                Entry::Gone(ids) => {
                    self.live_bytes = self.live_bytes.saturating_sub(ids.len() as u64 * 64)
                }
            }
        }
        Ok(())
    }

    /// Whether the file is large enough, against its live content, to be
    /// rewritten.
    pub fn needs_compaction(&self) -> bool {
        self.len > COMPACT_MIN_BYTES && self.len > 4 * self.live_bytes.max(BLOCK)
    }

    /// Whether a rewrite would give back at least one block: what is worth
    /// trying when the disk is full.
    pub fn would_shrink(&self) -> bool {
        self.len > (self.live_bytes.div_ceil(BLOCK) + 1) * BLOCK
    }

    /// What a rewrite would hold, bytes (an estimate: 32 bytes of framing per
    /// item).
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Whether a rewrite would give back at least `bytes` and the file is
    /// more than `factor` times its live content.
    pub fn would_shrink_by(&self, bytes: u64, factor: u64) -> bool {
        self.len > factor.saturating_mul(self.live_bytes.max(BLOCK))
            && self.len.saturating_sub(self.live_bytes) >= bytes
    }

    /// Makes the next `n` appends fail with ENOSPC after writing half their
    /// bytes (fault injection for tests).
    #[doc(hidden)]
    pub fn fail_next_appends(&mut self, n: u32) {
        self.fail_next = n;
    }

    /// Replaces the journal with one holding only `live` (write temporary,
    /// fsync, rename, fsync directory): after a cut it is the old or the new
    /// file, both of which hold every live item.
    pub fn compact(
        &mut self,
        live: impl IntoIterator<Item = (u64, Priority, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let entries: Vec<Entry> = live
            .into_iter()
            .map(|(id, priority, bytes)| Entry::Put {
                id,
                priority,
                bytes,
            })
            .collect();
        let live_bytes = entries
            .iter()
            .map(|e| match e {
                Entry::Put { bytes, .. } => bytes.len() as u64 + 32,
                Entry::Gone(_) => 0,
            })
            .sum();
        let bytes = encode_append(&entries);
        super::durable::replace_atomically(&self.path, &bytes)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path, "reopen journal"))?;
        self.len = bytes.len() as u64;
        self.live_bytes = live_bytes;
        self.torn_tail = false;
        tracing::info!(path = %self.path.display(), items = entries.len(), bytes = self.len, "journal compacted");
        Ok(())
    }

    /// The file's length, bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the file holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(id: u64) -> Entry {
        Entry::Put {
            id,
            priority: Priority::Normal,
            bytes: vec![id as u8; 40],
        }
    }

    #[test]
    fn appends_are_block_aligned_and_replay() {
        let mut buf = encode_append(&[put(1), put(2)]);
        assert_eq!(buf.len() as u64, BLOCK);
        buf.extend(encode_append(&[Entry::Gone(vec![1]), put(3)]));
        let r = replay(&buf);
        assert_eq!(r.live.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!((r.max_id, r.damaged_blocks), (3, 0));
    }

    #[test]
    fn a_garbage_or_torn_last_append_loses_only_itself() {
        let good = [encode_append(&[put(1)]), encode_append(&[put(2)])].concat();
        // Garbage over the whole block of the last append.
        let mut garbage = good.clone();
        garbage.extend(vec![0xA5; BLOCK as usize]);
        let r = replay(&garbage);
        assert_eq!(r.live.len(), 2);
        assert_eq!(r.damaged_blocks, 1);
        // Half an append (the file also ends mid-block).
        let mut torn = good.clone();
        let last = encode_append(&[put(3), put(4)]);
        torn.extend(&last[..30]);
        assert_eq!(replay(&torn).live.len(), 2);
        // A flipped bit in a body fails its checksum.
        let mut flipped = good;
        flipped[HEADER + 3] ^= 1;
        let r = replay(&flipped);
        assert_eq!(r.live.keys().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn open_pads_a_partial_block_and_compaction_keeps_the_live_items() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.journal");
        let mut bytes = encode_append(&[put(1), put(2)]);
        bytes.extend(&encode_append(&[put(3)])[..20]);
        std::fs::write(&path, &bytes).unwrap();
        let (mut j, r) = Journal::open(&path).unwrap();
        assert_eq!(r.live.len(), 2);
        assert!(j.len().is_multiple_of(BLOCK));
        j.append(&[put(4), Entry::Gone(vec![1])]).unwrap();
        j.compact([(2, Priority::High, vec![7; 10])]).unwrap();
        j.append(&[put(5)]).unwrap();
        drop(j);
        let (_, r) = Journal::open(&path).unwrap();
        assert_eq!(r.live.keys().copied().collect::<Vec<_>>(), vec![2, 5]);
        assert_eq!(r.live[&2], (Priority::High, vec![7; 10]));
    }

    #[test]
    fn a_failed_append_is_cut_off_and_the_next_one_replays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.journal");
        let (mut j, _) = Journal::open(&path).unwrap();
        j.append(&[put(1)]).unwrap();
        j.fail_next_appends(1);
        let e = j.append(&[put(2), put(3)]).unwrap_err();
        assert!(e.is_storage_full(), "{e}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), BLOCK);
        j.append(&[put(4)]).unwrap();
        drop(j);
        let (_, r) = Journal::open(&path).unwrap();
        assert_eq!(r.live.keys().copied().collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(r.damaged_blocks, 0);
    }
}
