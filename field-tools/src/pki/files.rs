//! Writing PKI files: never replacing one, keys readable by their owner only.

use std::path::Path;

use super::PkiError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a PEM file as text.
pub fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(io(path))
}

/// Creates `path` if it is missing, with mode 0700 on unix (keys live in it).
pub fn create_private_dir(path: &Path) -> Result<(), PkiError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(io(path))
}

/// Creates `path` (never replacing a file), writes and syncs it; `secret`
/// files get mode 0600 on unix.
pub fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), PkiError> {
    crate::newfile::create_new(path, bytes, secret).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::Exists(path.to_path_buf())
        } else {
            io(path)(e)
        }
    })
}
