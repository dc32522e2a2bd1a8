//! The persisted trust state: read at start, made from the provisioned root
//! the first time, replaced atomically after every change.

use std::path::{Path, PathBuf};

use models::bundle::{Kind, SignedRoot, TrustState};

/// Why the trust state is not available.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// No `[update] root` and no state yet.
    #[error("no trust root: set [update] root to the provisioned root file")]
    NoRoot,
    /// A file cannot be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The provisioned root is not valid.
    #[error("{}: {source}", path.display())]
    Root {
        /// The file.
        path: PathBuf,
        /// Why.
        source: models::bundle::RootError,
    },
    /// The persisted state is damaged: updates stop until it is replaced.
    #[error("{}: {source}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        source: models::bundle::verify::StateError,
    },
    /// The state cannot be encoded to be saved; the file is left as it was.
    #[error("{}: cannot be saved: {source}", path.display())]
    Save {
        /// The file.
        path: PathBuf,
        /// Why.
        source: models::bundle::verify::StateError,
    },
    /// The durable write failed.
    #[error(transparent)]
    Store(#[from] uplink::StoreError),
}

/// Reads the trust state at `path`, or makes it from the provisioned root.
/// A provisioned root newer than the persisted one (a technician installed
/// a rotated root) is taken if it rotates from it; one that does not
/// rotate from it, or does not verify at all (tampered), is logged and the
/// trusted root stays. Only with `persist` is anything written.
pub fn load(
    path: &Path,
    provisioned: Option<&Path>,
    persist: bool,
) -> Result<TrustState, TrustError> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| TrustError::Io { path: p, source }
    };
    let state = match std::fs::read(path) {
        Ok(bytes) => Some(
            TrustState::from_bytes(&bytes).map_err(|source| TrustError::State {
                path: path.to_path_buf(),
                source,
            })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(path)(e)),
    };
    let root = match provisioned {
        Some(p) => {
            let parsed = std::fs::read(p).map_err(io(p)).and_then(|bytes| {
                SignedRoot::parse(&bytes).map_err(|source| TrustError::Root {
                    path: p.to_path_buf(),
                    source,
                })
            });
            match (parsed, &state) {
                (Ok(r), _) => Some(r),
                // A trusted root exists: a provisioned file that cannot be
                // read or does not verify (tampered, damaged) replaces
                // nothing, and the trusted root stays in force.
                (Err(e), Some(s)) => {
                    tracing::warn!(error = %e, trusted_version = s.root.root.version, "the provisioned root is not valid; keeping the trusted root");
                    None
                }
                (Err(e), None) => return Err(e),
            }
        }
        None => None,
    };
    match (state, root) {
        (Some(mut s), Some(r)) if r.root.version > s.root.root.version => {
            match s.rotate_root(r) {
                Ok(()) => {
                    tracing::info!(
                        version = s.root.root.version,
                        "trust root rotated from the provisioned file"
                    );
                    save(path, &s)?;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the provisioned root does not rotate from the trusted one; keeping the trusted root");
                }
            }
            Ok(s)
        }
        (Some(s), _) => Ok(s),
        (None, Some(r)) => {
            let s = TrustState::new(r);
            if persist {
                save(path, &s)?;
            }
            Ok(s)
        }
        (None, None) => Err(TrustError::NoRoot),
    }
}

/// Raises the installed versions of `state` to at least those of
/// `installed` (what the install state says is installed), so that the
/// rollback floor survives a lost or older `trust.bin`. Returns the
/// entries raised, as (kind, name, version in the trust state before, now).
pub fn raise_floor(
    state: &mut TrustState,
    installed: &[(Kind, String, u64)],
) -> Vec<(Kind, String, u64, u64)> {
    let mut raised = Vec::new();
    for (kind, name, version) in installed {
        let before = state.installed(*kind, name);
        if *version <= before {
            continue;
        }
        match state
            .installed
            .iter_mut()
            .find(|(k, n, _)| k == kind && n == name)
        {
            Some(entry) => entry.2 = *version,
            None => state.installed.push((*kind, name.clone(), *version)),
        }
        raised.push((*kind, name.clone(), before, *version));
    }
    raised
}

/// Replaces the state atomically.
pub fn save(path: &Path, state: &TrustState) -> Result<(), TrustError> {
    if let Some(dir) = path.parent() {
        uplink::store::durable::create_dir_durably(dir).map_err(|source| TrustError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let bytes = state.to_bytes().map_err(|source| TrustError::Save {
        path: path.to_path_buf(),
        source,
    })?;
    uplink::store::durable::replace_atomically(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::bundle::keys::generate;
    use models::bundle::{Role, Root};

    fn root_file(version: u64, bundle_keys: &[u8], signers: &[u8]) -> Vec<u8> {
        let role = |keys: &[u8]| Role {
            keys: keys
                .iter()
                .map(|&n| generate([n; 32]).verifying_key().to_bytes())
                .collect(),
            threshold: 2,
        };
        let root = Root {
            version,
            expires_s: u64::MAX,
            root: role(&[1, 2]),
            bundles: role(bundle_keys),
        };
        let keys: Vec<_> = signers.iter().map(|&n| generate([n; 32])).collect();
        root.sign(&keys.iter().collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_tampered_provisioned_root_leaves_the_trusted_one_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let trust = dir.path().join("trust.bin");
        let provisioned = dir.path().join("root.fnr");
        std::fs::write(&provisioned, root_file(1, &[10, 11], &[1, 2])).unwrap();
        let mut first = load(&trust, Some(&provisioned), true).unwrap();
        first.installed.push((Kind::Model, "fusion".into(), 6));
        save(&trust, &first).unwrap();
        // A correctly rotated version 2, then one byte of it changed.
        let mut tampered = root_file(2, &[10, 12], &[1, 2]);
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        std::fs::write(&provisioned, &tampered).unwrap();
        let s = load(&trust, Some(&provisioned), true).unwrap();
        assert_eq!(s, first);
        // Without a trusted state there is nothing to fall back on.
        std::fs::remove_file(&trust).unwrap();
        assert!(matches!(
            load(&trust, Some(&provisioned), true),
            Err(TrustError::Root { .. })
        ));
    }
}
