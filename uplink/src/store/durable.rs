//! fsync helpers: what makes sled's writes survive a power cut, and moving a
//! corrupt database aside.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::StoreError;

fn io<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// fsyncs a directory (its entries: creations, renames, removals).
pub fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir, "fsync directory"))
}

/// Creates `dir` and any missing parents so that they survive a power cut:
/// after each directory is made, the directory that holds its entry is
/// fsynced. `create_dir_all` alone leaves a new directory entry in the page
/// cache, and a cut can take the whole tree (events included) with it.
pub fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(p) = cur.filter(|p| !p.as_os_str().is_empty()) {
        if p.is_dir() {
            break;
        }
        missing.push(p);
        cur = p.parent();
    }
    for p in missing.into_iter().rev() {
        match std::fs::create_dir(p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => {}
            Err(e) => return Err(e),
        }
        let parent = p
            .parent()
            .filter(|q| !q.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// fsyncs every file under `dir`, every subdirectory, and `dir` itself.
/// Files that vanish meanwhile (sled removes old snapshots) are skipped.
pub fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    let entries = std::fs::read_dir(dir).map_err(io(dir, "list"))?;
    for entry in entries {
        let entry = entry.map_err(io(dir, "list"))?;
        let path = entry.path();
        let kind = match entry.file_type() {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&path, "stat")(e)),
        };
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            match File::open(&path).and_then(|f| f.sync_all()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path, "fsync file")(e)),
            }
        }
    }
    sync_dir(dir)
}

/// Replaces `path` with `bytes` so that after a power cut it holds either
/// the old or the new content, never a mix and never nothing: write a
/// temporary file beside it, fsync it, rename it over `path`, fsync the
/// directory.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = File::create(&tmp)
        .map_err(io(&tmp, "create temporary file"))
        .and_then(|mut f| {
            f.write_all(bytes)
                .map_err(io(&tmp, "write temporary file"))?;
            f.sync_all().map_err(io(&tmp, "fsync temporary file"))
        })
        .and_then(|()| std::fs::rename(&tmp, path).map_err(io(path, "rename into place")));
    if let Err(e) = written {
        // A full disk must not also keep a half-written copy: give it back.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sync_dir(parent)
}

/// Total size of the files under `dir`.
pub fn dir_size(dir: &Path) -> Result<u64, StoreError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(io(dir, "list"))? {
        let entry = entry.map_err(io(dir, "list"))?;
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&entry.path(), "stat")(e)),
        };
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// Moves `dir` to a new `<dir>.corrupt-<unix seconds>[-n]` and returns it.
pub fn quarantine(dir: &Path) -> Result<PathBuf, StoreError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into());
    let parent = dir.parent().unwrap_or(Path::new("."));
    let mut target = parent.join(format!("{name}.corrupt-{secs}"));
    let mut n = 1;
    while target.exists() {
        target = parent.join(format!("{name}.corrupt-{secs}-{n}"));
        n += 1;
    }
    std::fs::rename(dir, &target).map_err(io(dir, "move aside"))?;
    sync_dir(parent)?;
    Ok(target)
}
