//! The trust root: which keys may rotate the root itself and which may sign
//! bundles, each with its threshold; a version and an expiry. It is a signed
//! envelope (magic `FNR1`), signed by a threshold of its own root keys.
//!
//! A new root replaces the current one only if its version is exactly one
//! more, it is signed by a threshold of the current root keys, and by a
//! threshold of its own (as TUF's root rotation). A node that missed several
//! rotations takes them one after the other.

use std::collections::BTreeSet;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::envelope::{self, EnvelopeError, Sig};
use super::keys::{KeyId, key_id, sign_domain, verify_domain};

/// Magic bytes of a root file.
pub const ROOT_MAGIC: &[u8; 4] = b"FNR1";
const ROOT_DOMAIN: &[u8] = b"fieldnode/root/v1\0";

/// A set of keys and how many of them must sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Ed25519 public keys.
    pub keys: Vec<[u8; 32]>,
    /// Signatures by distinct keys of this role that are needed.
    pub threshold: u8,
}

/// The content of a root file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// Monotonic; each rotation adds exactly one.
    pub version: u64,
    /// Unix seconds after which the root no longer vouches for anything.
    pub expires_s: u64,
    /// Keys that sign new roots (kept offline).
    pub root: Role,
    /// Keys that sign bundles (the operator's signing keys).
    pub bundles: Role,
}

/// Why a root file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RootError {
    /// The envelope does not parse.
    #[error("root file: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The body does not decode, or is not in canonical form.
    #[error("root file: the signed body does not decode ({0})")]
    Body(String),
    /// The root could not be encoded (signing side).
    #[error("root: the body cannot be encoded ({0})")]
    Encode(String),
    /// Bytes after the envelope.
    #[error("root file: {0} bytes after the signatures")]
    Trailing(usize),
    /// A role that can never be satisfied, or is empty.
    #[error("root file: the {role} role is invalid: {problem}")]
    Role {
        /// `root` or `bundles`.
        role: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// Fewer valid signatures by distinct keys than the threshold.
    #[error("root file: {found} valid signature(s) by the {by} keys, {needed} needed")]
    Threshold {
        /// Whose keys: `current root` or `new root`.
        by: &'static str,
        /// Valid distinct signatures.
        found: usize,
        /// The threshold.
        needed: usize,
    },
    /// Not the next version.
    #[error("root version {found} does not follow the trusted version {current} (expected {})", current + 1)]
    Version {
        /// The trusted root's version.
        current: u64,
        /// The new root's.
        found: u64,
    },
}

/// A root with the exact bytes it was read from (to persist as received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRoot {
    /// Its content.
    pub root: Root,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    sigs: Vec<Sig>,
    body: Vec<u8>,
}

impl Role {
    fn check(&self, role: &'static str) -> Result<(), RootError> {
        let bad = |problem: String| Err(RootError::Role { role, problem });
        if self.threshold == 0 {
            return bad("the threshold is 0".into());
        }
        let distinct: BTreeSet<_> = self.keys.iter().collect();
        if distinct.len() != self.keys.len() {
            return bad("a key is listed twice".into());
        }
        if usize::from(self.threshold) > self.keys.len() {
            return bad(format!(
                "threshold {} with {} key(s)",
                self.threshold,
                self.keys.len()
            ));
        }
        for k in &self.keys {
            if VerifyingKey::from_bytes(k).is_err() {
                return bad("a key is not a valid Ed25519 public key".into());
            }
        }
        Ok(())
    }

    /// Distinct keys of this role with a valid signature over
    /// `domain || body`. A signature by a key outside the role, a second
    /// signature by the same key, or a bad signature counts for nothing.
    pub fn valid_signers(&self, domain: &[u8], body: &[u8], sigs: &[Sig]) -> usize {
        let mut signed: BTreeSet<KeyId> = BTreeSet::new();
        for s in sigs {
            if signed.contains(&s.key) {
                continue;
            }
            let Some(key) = self
                .keys
                .iter()
                .filter_map(|k| VerifyingKey::from_bytes(k).ok())
                .find(|k| key_id(k) == s.key)
            else {
                continue;
            };
            if verify_domain(&key, domain, body, &s.sig) {
                signed.insert(s.key);
            }
        }
        signed.len()
    }

    /// Whether a threshold of this role signed.
    pub fn satisfied(
        &self,
        domain: &[u8],
        body: &[u8],
        sigs: &[Sig],
    ) -> Result<(), (usize, usize)> {
        let found = self.valid_signers(domain, body, sigs);
        let needed = usize::from(self.threshold);
        if found >= needed {
            Ok(())
        } else {
            Err((found, needed))
        }
    }
}

impl Root {
    /// Signs this root with `keys` (a threshold of its root keys, and for a
    /// rotation also a threshold of the previous root's keys): the root
    /// file's bytes, or why they cannot be written.
    pub fn sign(&self, keys: &[&SigningKey]) -> Result<Vec<u8>, RootError> {
        let body = postcard::to_allocvec(self).map_err(|e| RootError::Encode(e.to_string()))?;
        let sigs: Vec<Sig> = keys
            .iter()
            .map(|k| Sig {
                key: key_id(&k.verifying_key()),
                sig: sign_domain(k, ROOT_DOMAIN, &body),
            })
            .collect();
        let mut out = Vec::new();
        envelope::encode(&mut out, ROOT_MAGIC, &body, &sigs)?;
        Ok(out)
    }
}

impl SignedRoot {
    /// Parses a root file and checks that it is well formed and signed by a
    /// threshold of its own root keys. Whether it may replace the trusted
    /// root is [`SignedRoot::rotate_from`]'s question.
    pub fn parse(bytes: &[u8]) -> Result<SignedRoot, RootError> {
        let env = envelope::decode(bytes, ROOT_MAGIC, "root file")?;
        if env.len != bytes.len() {
            return Err(RootError::Trailing(bytes.len() - env.len));
        }
        let root: Root =
            postcard::from_bytes(&env.body).map_err(|e| RootError::Body(e.to_string()))?;
        if postcard::to_allocvec(&root).ok().as_deref() != Some(&env.body[..]) {
            return Err(RootError::Body("not in canonical form".into()));
        }
        root.root.check("root")?;
        root.bundles.check("bundles")?;
        root.root
            .satisfied(ROOT_DOMAIN, &env.body, &env.sigs)
            .map_err(|(found, needed)| RootError::Threshold {
                by: "new root",
                found,
                needed,
            })?;
        Ok(SignedRoot {
            root,
            bytes: bytes.to_vec(),
            sigs: env.sigs,
            body: env.body,
        })
    }

    /// Checks that this root may replace `current`: the next version, and
    /// signed by a threshold of `current`'s root keys as well.
    pub fn rotate_from(&self, current: &Root) -> Result<(), RootError> {
        if self.root.version != current.version.saturating_add(1) {
            return Err(RootError::Version {
                current: current.version,
                found: self.root.version,
            });
        }
        current
            .root
            .satisfied(ROOT_DOMAIN, &self.body, &self.sigs)
            .map_err(|(found, needed)| RootError::Threshold {
                by: "current root",
                found,
                needed,
            })
    }
}
