//! The id reservation sidecar: `<store dir>.ids`, beside the database so that
//! it survives a quarantine. It holds one number, the first id *not* yet
//! reserved, as ASCII with a trailing newline. It is only ever replaced with
//! write-to-temporary, fsync, rename, fsync of the directory, so after a
//! power cut it is either the old or the new number, never a mix.

use std::path::{Path, PathBuf};

use super::StoreError;

/// Ids reserved at a time.
pub const ID_BLOCK: u64 = 256;

pub(super) struct Ids {
    /// The next id to hand out.
    pub next: u64,
    /// Every id below this is reserved (may have been handed out).
    pub reserved: u64,
    pub file: PathBuf,
}

pub(super) fn sidecar_path(dir: &Path) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "store".into());
    name.push(".ids");
    dir.with_file_name(name)
}

/// Reads the reservation; 0 when there is none yet.
pub(super) fn read_reserved(path: &Path) -> Result<u64, StoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| StoreError::Io {
            path: path.to_path_buf(),
            op: "read id reservation",
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("expected a number, found {:?}", text.trim()),
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(StoreError::Io {
            path: path.to_path_buf(),
            op: "read id reservation",
            source: e,
        }),
    }
}

fn write_reserved(path: &Path, value: u64) -> Result<(), StoreError> {
    super::durable::replace_atomically(path, format!("{value}\n").as_bytes())
}

impl Ids {
    /// Makes sure every id below `end` is durably reserved.
    pub fn reserve_through(&mut self, end: u64) -> Result<(), StoreError> {
        if end <= self.reserved {
            return Ok(());
        }
        let new = end + ID_BLOCK;
        write_reserved(&self.file, new)?;
        self.reserved = new;
        Ok(())
    }
}
