//! `keys generate`: a new Ed25519 key pair from the operating system's
//! randomness, as `PREFIX.secret` (mode 0600 on unix) and `PREFIX.public`.
//! Neither file is ever overwritten.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use models::bundle::keys::{generate as key_from_seed, public_to_text, secret_to_text};
use rand::TryRngCore;
use serde::Serialize;

use super::{Outcome, UpdateError, key_id_hex};

/// What `keys generate` wrote.
#[derive(Debug, Serialize)]
pub struct Generated {
    /// The key's id (hex), as signatures name it.
    pub key_id: String,
    /// The secret key file.
    pub secret: PathBuf,
    /// The public key file.
    pub public: PathBuf,
}

impl fmt::Display for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key id {}", self.key_id)?;
        writeln!(
            f,
            "secret key: {} (keep it offline; anyone holding it can sign)",
            self.secret.display()
        )?;
        write!(f, "public key: {}", self.public.display())
    }
}

impl Outcome for Generated {}

/// `PREFIX` + `suffix` (`.secret`, `.public`), keeping any dots in PREFIX.
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Generates a key pair with a seed from the operating system.
pub fn generate(prefix: &Path) -> Result<Generated, UpdateError> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut seed).map_err(|e| {
        UpdateError::Usage(format!(
            "the operating system's random number generator failed: {e}"
        ))
    })?;
    let out = generate_from_seed(prefix, seed);
    seed.fill(0);
    out
}

/// Writes the key pair of `seed` (tests give a fixed seed).
pub fn generate_from_seed(prefix: &Path, seed: [u8; 32]) -> Result<Generated, UpdateError> {
    if prefix.as_os_str().is_empty() {
        return Err(UpdateError::Usage("--out needs a file name prefix".into()));
    }
    let secret_path = with_suffix(prefix, ".secret");
    let public_path = with_suffix(prefix, ".public");
    // Checked before anything is written, so a refusal leaves no half pair.
    for p in [&secret_path, &public_path] {
        if p.symlink_metadata().is_ok() {
            return Err(UpdateError::Usage(format!(
                "{}: already exists; refusing to overwrite a key",
                p.display()
            )));
        }
    }
    let key = key_from_seed(seed);
    let public = key.verifying_key();
    write_new(&secret_path, secret_to_text(&key).as_bytes(), true)?;
    if let Err(e) = write_new(&public_path, public_to_text(&public).as_bytes(), false) {
        // Do not leave a secret without its public half.
        let _ = std::fs::remove_file(&secret_path);
        return Err(e);
    }
    if let Some(dir) = secret_path.parent() {
        super::sync_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        });
    }
    Ok(Generated {
        key_id: key_id_hex(&public),
        secret: secret_path,
        public: public_path,
    })
}

/// Creates `path` (never replacing a file), writes and syncs it; `secret`
/// files are readable by their owner only.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), UpdateError> {
    crate::newfile::create_new(path, bytes, secret).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            UpdateError::Usage(format!(
                "{}: already exists; refusing to overwrite a key",
                path.display()
            ))
        } else {
            UpdateError::io(path, e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_pair_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("ops.a");
        let g = generate_from_seed(&prefix, [9; 32]).unwrap();
        assert_eq!(g.secret, dir.path().join("ops.a.secret"));
        let secret = crate::update::load_secret(&g.secret).unwrap();
        let public = crate::update::load_public(&g.public).unwrap();
        assert_eq!(secret.verifying_key(), public);
        assert_eq!(g.key_id, key_id_hex(&public));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&g.secret).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let before = std::fs::read(&g.secret).unwrap();
        assert!(matches!(
            generate_from_seed(&prefix, [10; 32]),
            Err(UpdateError::Usage(_))
        ));
        assert_eq!(std::fs::read(&g.secret).unwrap(), before);
        // A lone public file also stops it, and no secret is written.
        let other = dir.path().join("b");
        std::fs::write(dir.path().join("b.public"), "x").unwrap();
        assert!(generate_from_seed(&other, [11; 32]).is_err());
        assert!(!dir.path().join("b.secret").exists());
    }
}
