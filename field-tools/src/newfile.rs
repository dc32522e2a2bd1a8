//! Writing files that hold keys and certificates: never replacing one,
//! synced before the command reports success, secrets readable by their
//! owner only.

use std::io::Write;
use std::path::Path;

/// Creates `path` (an error of kind `AlreadyExists` if it exists), writes
/// `bytes` and syncs; `secret` files get mode 0600 on unix, others 0644.
pub fn create_new(path: &Path, bytes: &[u8], secret: bool) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = opts.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
