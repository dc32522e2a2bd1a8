//! Signed updates from the operator's side: making keys, writing and
//! checking trust roots, packing, signing, verifying and inspecting bundles.
//! The cryptography and the trust decision are `models::bundle`'s; this
//! module reads and writes the files around them and reports in words.
//!
//! - [`keys_cmd`]: `keys generate`;
//! - [`root_cmd`]: `root init`, `root inspect`, `root verify` (rotation);
//! - [`bundle_cmd`]: `bundle pack`, `bundle sign`, `bundle verify`,
//!   `bundle inspect`;
//! - [`patch_toml`]: the settings patch in the node's configuration units.
//!
//! Errors carry the exit code the command ends with ([`UpdateError::exit_code`]):
//! 1 when something was refused or failed verification, 2 for a usage or
//! I/O problem. Files that must never be replaced (keys, roots) are created
//! without overwriting; every file is written whole to a temporary file
//! beside its destination, synced, then renamed.

pub mod bundle_cmd;
pub mod keys_cmd;
pub mod patch_toml;
pub mod publish;
pub mod root_cmd;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ed25519_dalek::{SigningKey, VerifyingKey};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Largest bundle file read, bytes (what `bundle verify` gives the verifier
/// as its cap).
pub const BUNDLE_CAP: u64 = 64 << 20;

/// Largest key or root file read, bytes.
const SMALL_FILE_CAP: u64 = 1 << 20;

/// Why an update command failed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Bad arguments or unusable input (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Refused or failed verification (exit 1). `code` is a short stable
    /// name (for a bundle, the verifier's [`models::bundle::Refusal::code`]).
    #[error("refused ({code}): {message}")]
    Refused {
        /// Short reason code.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl UpdateError {
    /// The process exit code: 1 refused, 2 usage or I/O.
    pub fn exit_code(&self) -> u8 {
        match self {
            UpdateError::Refused { .. } => 1,
            UpdateError::Io { .. } | UpdateError::Usage(_) => 2,
        }
    }

    /// Short reason code: the refusal's, or `io` / `usage`.
    pub fn code(&self) -> &'static str {
        match self {
            UpdateError::Refused { code, .. } => code,
            UpdateError::Io { .. } => "io",
            UpdateError::Usage(_) => "usage",
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> UpdateError {
        UpdateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What every command's report offers besides its own fields.
pub trait Outcome: serde::Serialize + fmt::Display {
    /// Things the operator should know that did not stop the command.
    fn warnings(&self) -> &[String] {
        &[]
    }
}

/// An expiry: an RFC 3339 time, a date (`YYYY-MM-DD`, midnight UTC) or a
/// number of days from now (negative: in the past).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expires {
    /// Unix seconds.
    At(u64),
    /// Days from now.
    InDays(i64),
}

impl FromStr for Expires {
    type Err = String;

    fn from_str(s: &str) -> Result<Expires, String> {
        let s = s.trim();
        if let Ok(days) = s.parse::<i64>() {
            return Ok(Expires::InDays(days));
        }
        let bad = || {
            format!(
                "expected an RFC 3339 time (2026-06-01T00:00:00Z), a date (2026-06-01) or a number of days, found `{s}`"
            )
        };
        let t = match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) => t,
            Err(_) => {
                let date =
                    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
                        .map_err(|_| bad())?;
                date.midnight().assume_utc()
            }
        };
        u64::try_from(t.unix_timestamp())
            .map(Expires::At)
            .map_err(|_| format!("`{s}` is before 1970"))
    }
}

impl Expires {
    /// Unix seconds, `now_s` being now.
    pub fn resolve(self, now_s: u64) -> Result<u64, UpdateError> {
        match self {
            Expires::At(s) => Ok(s),
            Expires::InDays(days) => days
                .checked_mul(86_400)
                .and_then(|d| i64::try_from(now_s).ok()?.checked_add(d))
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| {
                    UpdateError::Usage(format!("--expires {days} days is out of range"))
                }),
        }
    }
}

/// Parses `MAJOR.MINOR.PATCH`.
pub fn parse_firmware(s: &str) -> Result<[u16; 3], String> {
    let mut out = [0u16; 3];
    let mut parts = s.trim().split('.');
    for o in &mut out {
        *o = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("expected a version MAJOR.MINOR.PATCH, found `{s}`"))?;
    }
    if parts.next().is_some() {
        return Err(format!("expected a version MAJOR.MINOR.PATCH, found `{s}`"));
    }
    Ok(out)
}

/// `MAJOR.MINOR.PATCH`.
pub fn firmware_str(v: [u16; 3]) -> String {
    format!("{}.{}.{}", v[0], v[1], v[2])
}

/// Now, unix seconds, from the system clock.
pub fn now_s() -> Result<u64, UpdateError> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| UpdateError::Usage("the system clock is before 1970".into()))
}

/// Unix seconds as RFC 3339 (UTC), or `unix N` when out of range.
pub fn rfc3339(s: u64) -> String {
    i64::try_from(s)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("unix {s}"))
}

/// Reads at most `cap` bytes of `path`; a longer file is a usage error.
pub(crate) fn read_file(path: &Path, cap: u64) -> Result<Vec<u8>, UpdateError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| UpdateError::io(path, e))?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| UpdateError::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(UpdateError::Usage(format!(
            "{}: longer than the {cap} bytes accepted",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Reads a small text file (key, TOML, JSON).
pub(crate) fn read_text(path: &Path) -> Result<String, UpdateError> {
    let bytes = read_file(path, SMALL_FILE_CAP)?;
    String::from_utf8(bytes)
        .map_err(|_| UpdateError::Usage(format!("{}: not UTF-8 text", path.display())))
}

/// Reads a secret key file.
pub fn load_secret(path: &Path) -> Result<SigningKey, UpdateError> {
    models::bundle::keys::secret_from_text(&read_text(path)?)
        .map_err(|e| UpdateError::Usage(format!("{}: {e}", path.display())))
}

/// Reads a public key file.
pub fn load_public(path: &Path) -> Result<VerifyingKey, UpdateError> {
    models::bundle::keys::public_from_text(&read_text(path)?)
        .map_err(|e| UpdateError::Usage(format!("{}: {e}", path.display())))
}

/// The hex id of a public key.
pub fn key_id_hex(key: &VerifyingKey) -> String {
    models::bundle::keys::key_id_hex(&models::bundle::keys::key_id(key))
}

/// Writes `bytes` to `path` through a synced temporary file beside it and a
/// rename. With `overwrite` false an existing `path` is left alone and the
/// write fails. A replaced file keeps its permissions; a new one is 0644
/// less the umask on unix (roots and bundles are not secret).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), UpdateError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let existing = std::fs::metadata(path).ok().map(|m| m.permissions());
    let mut builder = tempfile::Builder::new();
    builder.prefix(".field-tools-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| UpdateError::io(dir, e))?;
    if let Some(p) = existing {
        tmp.as_file()
            .set_permissions(p)
            .map_err(|e| UpdateError::io(tmp.path(), e))?;
    }
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| UpdateError::io(tmp.path(), e))?;
    let persisted = if overwrite {
        tmp.persist(path)
    } else {
        tmp.persist_noclobber(path)
    };
    persisted.map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            UpdateError::Usage(format!(
                "{}: already exists; refusing to overwrite it",
                path.display()
            ))
        } else {
            UpdateError::io(path, e.error)
        }
    })?;
    sync_dir(dir);
    Ok(())
}

/// Syncs a directory so that a rename in it is durable (best effort: not
/// every platform can open a directory).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_forms() {
        assert_eq!("30".parse::<Expires>(), Ok(Expires::InDays(30)));
        assert_eq!("-2".parse::<Expires>(), Ok(Expires::InDays(-2)));
        assert_eq!(
            "2026-01-01T00:00:00Z".parse::<Expires>(),
            Ok(Expires::At(1_767_225_600))
        );
        assert_eq!(
            "2026-01-01".parse::<Expires>(),
            Ok(Expires::At(1_767_225_600))
        );
        assert!("soon".parse::<Expires>().is_err());
        assert!("1969-12-31".parse::<Expires>().is_err());
        assert_eq!(Expires::InDays(2).resolve(1000).unwrap(), 1000 + 2 * 86_400);
        assert!(Expires::InDays(-1).resolve(1000).is_err());
        assert!(Expires::InDays(i64::MAX).resolve(1000).is_err());
    }

    #[test]
    fn firmware_versions() {
        assert_eq!(parse_firmware("0.1.0"), Ok([0, 1, 0]));
        assert_eq!(parse_firmware("10.20.30"), Ok([10, 20, 30]));
        for bad in ["0.1", "0.1.0.0", "a.b.c", "", "0.1.70000"] {
            assert!(parse_firmware(bad).is_err(), "{bad}");
        }
        assert_eq!(firmware_str([1, 2, 3]), "1.2.3");
    }

    #[test]
    fn times_print_as_rfc3339() {
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), format!("unix {}", u64::MAX));
    }

    #[test]
    fn atomic_write_can_refuse_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write_atomic(&p, b"one", false).unwrap();
        assert!(matches!(
            write_atomic(&p, b"two", false),
            Err(UpdateError::Usage(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        write_atomic(&p, b"three", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640, "a replaced file keeps its mode");
        }
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
