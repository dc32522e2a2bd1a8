//! The trust decision: whether this node takes a bundle, and the state that
//! decision depends on ([`TrustState`]: the trusted root, the installed
//! versions and the time floor).
//!
//! A bundle is taken only if, in this order:
//! 1. it is not longer than the cap (checked before reading further);
//! 2. it parses, and its metadata is canonical;
//! 3. the trusted root has not expired, and a threshold of the root's
//!    bundle keys signed the metadata (distinct keys; others count for
//!    nothing);
//! 4. the metadata has not expired against the time floor;
//! 5. its version is above the installed one for its kind and name;
//! 6. it targets this node (firmware, model family, features, classes);
//! 7. the payload has the signed length and SHA-256.
//!
//! The state changes only through [`TrustState::record`], after a bundle is
//! installed, and [`TrustState::rotate_root`]: a refused bundle never moves a
//! version or the time floor, so a bundle with a forged huge version cannot
//! lock out the real ones.

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::meta::{BUNDLE_DOMAIN, Bundle, Kind, Metadata, ModelTarget};
use super::root::{RootError, SignedRoot};

/// What this node is: the firmware version and, for models, what the node
/// computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// This firmware's version.
    pub firmware: [u16; 3],
    /// The model family, feature layout and classes this node runs.
    pub model: ModelTarget,
}

/// Why a bundle was refused. [`Refusal::code`] is the short name reported in
/// the status record and counted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// More bytes than the cap (endless data).
    #[error("larger than the {limit}-byte limit")]
    TooLarge {
        /// The cap, bytes.
        limit: u64,
    },
    /// Not a bundle.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The trusted root has expired: nothing is taken until a new root comes.
    #[error(
        "the trusted root (version {version}) expired at {expires_s}, before the time floor {floor_s}"
    )]
    RootExpired {
        /// Root version.
        version: u64,
        /// Its expiry, unix s.
        expires_s: u64,
        /// The time floor, unix s.
        floor_s: u64,
    },
    /// Not enough valid signatures by distinct trusted bundle keys.
    #[error("{found} valid signature(s) by trusted keys, {needed} needed")]
    Signatures {
        /// Valid, distinct, trusted.
        found: usize,
        /// The threshold.
        needed: usize,
    },
    /// The metadata expired (a frozen or replayed offer).
    #[error("expired at {expires_s}, before the time floor {floor_s}")]
    Expired {
        /// Its expiry, unix s.
        expires_s: u64,
        /// The time floor, unix s.
        floor_s: u64,
    },
    /// Not newer than what is installed.
    #[error("version {offered} is not above the installed version {installed}")]
    Rollback {
        /// Installed.
        installed: u64,
        /// Offered.
        offered: u64,
    },
    /// Not for this node.
    #[error("wrong target: {0}")]
    WrongTarget(String),
    /// The payload is not the one the metadata was signed for.
    #[error("payload {what} does not match the signed metadata")]
    Payload {
        /// `length` or `sha256`.
        what: &'static str,
    },
}

impl Refusal {
    /// Short reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::TooLarge { .. } => "too_large",
            Refusal::Malformed(_) => "malformed",
            Refusal::RootExpired { .. } => "root_expired",
            Refusal::Signatures { .. } => "signatures",
            Refusal::Expired { .. } => "expired",
            Refusal::Rollback { .. } => "rollback",
            Refusal::WrongTarget(_) => "wrong_target",
            Refusal::Payload { .. } => "payload_mismatch",
        }
    }
}

/// Why the trust state cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not a trust state.
    #[error("trust state does not decode ({0})")]
    Decode(String),
    /// Its root does not parse.
    #[error("trust state: {0}")]
    Root(#[from] RootError),
    /// The state cannot be encoded (nothing is written).
    #[error("trust state cannot be encoded ({0})")]
    Encode(String),
}

/// What the node's trust decisions depend on; persisted atomically after
/// every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustState {
    /// The trusted root.
    pub root: SignedRoot,
    /// Installed version per (kind, name).
    pub installed: Vec<(Kind, String, u64)>,
    /// The latest metadata creation time verified so far, unix s.
    pub verified_time_s: u64,
}

#[derive(Serialize, Deserialize)]
struct StateWire {
    root: Vec<u8>,
    installed: Vec<(Kind, String, u64)>,
    verified_time_s: u64,
}

const STATE_MAGIC: &[u8; 4] = b"FNT1";

impl TrustState {
    /// A fresh state trusting `root` (provisioned with the node).
    pub fn new(root: SignedRoot) -> TrustState {
        TrustState {
            root,
            installed: Vec::new(),
            verified_time_s: 0,
        }
    }

    /// The bytes to persist.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        let wire = StateWire {
            root: self.root.bytes.clone(),
            installed: self.installed.clone(),
            verified_time_s: self.verified_time_s,
        };
        let body = postcard::to_allocvec(&wire).map_err(|e| StateError::Encode(e.to_string()))?;
        let mut out = STATE_MAGIC.to_vec();
        out.extend(body);
        Ok(out)
    }

    /// Reads persisted bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<TrustState, StateError> {
        let body = bytes
            .strip_prefix(STATE_MAGIC)
            .ok_or_else(|| StateError::Decode("wrong magic bytes".into()))?;
        let wire: StateWire =
            postcard::from_bytes(body).map_err(|e| StateError::Decode(e.to_string()))?;
        Ok(TrustState {
            root: SignedRoot::parse(&wire.root)?,
            installed: wire.installed,
            verified_time_s: wire.verified_time_s,
        })
    }

    /// Installed version of (kind, name); 0 if none.
    pub fn installed(&self, kind: Kind, name: &str) -> u64 {
        self.installed
            .iter()
            .find(|(k, n, _)| *k == kind && n == name)
            .map_or(0, |(_, _, v)| *v)
    }

    /// The time floor: the latest of the clock, the last verified metadata
    /// time and the build time, unix s.
    pub fn time_floor(&self, clock_s: u64, build_s: u64) -> u64 {
        clock_s.max(self.verified_time_s).max(build_s)
    }

    /// Checks a bundle's metadata (steps 3 to 6; a payload sent in chunks
    /// is checked with [`check_payload`] once it is whole).
    pub fn check_metadata(
        &self,
        bundle: &Bundle,
        expect: &Expect,
        floor_s: u64,
        cap: u64,
    ) -> Result<(), Refusal> {
        let root = &self.root.root;
        if root.expires_s < floor_s {
            return Err(Refusal::RootExpired {
                version: root.version,
                expires_s: root.expires_s,
                floor_s,
            });
        }
        root.bundles
            .satisfied(BUNDLE_DOMAIN, &bundle.meta_bytes, &bundle.sigs)
            .map_err(|(found, needed)| Refusal::Signatures { found, needed })?;
        let m = &bundle.meta;
        if m.expires_s < floor_s {
            return Err(Refusal::Expired {
                expires_s: m.expires_s,
                floor_s,
            });
        }
        let installed = self.installed(m.kind, &m.name);
        if m.version <= installed {
            return Err(Refusal::Rollback {
                installed,
                offered: m.version,
            });
        }
        if m.payload_len > cap {
            return Err(Refusal::TooLarge { limit: cap });
        }
        check_target(m, expect)
    }

    /// Records an installed bundle: its version and its creation time (the
    /// time floor never goes back).
    pub fn record(&mut self, meta: &Metadata) {
        match self
            .installed
            .iter_mut()
            .find(|(k, n, _)| *k == meta.kind && *n == meta.name)
        {
            Some(entry) => entry.2 = entry.2.max(meta.version),
            None => self
                .installed
                .push((meta.kind, meta.name.clone(), meta.version)),
        }
        self.verified_time_s = self.verified_time_s.max(meta.created_s);
    }

    /// Replaces the trusted root by `new` if it may (see
    /// [`SignedRoot::rotate_from`]).
    pub fn rotate_root(&mut self, new: SignedRoot) -> Result<(), RootError> {
        new.rotate_from(&self.root.root)?;
        self.root = new;
        Ok(())
    }
}

fn check_target(m: &Metadata, expect: &Expect) -> Result<(), Refusal> {
    if m.target.min_firmware > expect.firmware {
        let [a, b, c] = m.target.min_firmware;
        let [x, y, z] = expect.firmware;
        return Err(Refusal::WrongTarget(format!(
            "needs firmware {a}.{b}.{c}, this is {x}.{y}.{z}"
        )));
    }
    match (m.kind, &m.target.model) {
        (Kind::Settings, None) => Ok(()),
        (Kind::Settings, Some(_)) => Err(Refusal::WrongTarget(
            "a settings bundle names a model target".into(),
        )),
        (Kind::Model, None) => Err(Refusal::WrongTarget(
            "a model bundle without a model target".into(),
        )),
        (Kind::Model, Some(t)) => {
            if t.family != expect.model.family {
                return Err(Refusal::WrongTarget(format!(
                    "model family {:?}, this node runs {:?}",
                    t.family, expect.model.family
                )));
            }
            if m.name != t.family {
                return Err(Refusal::WrongTarget(format!(
                    "named {:?} but targets family {:?}",
                    m.name, t.family
                )));
            }
            if t.features != expect.model.features {
                return Err(Refusal::WrongTarget(format!(
                    "feature layout {:?}, this node computes {:?}",
                    t.features, expect.model.features
                )));
            }
            if t.classes != expect.model.classes {
                return Err(Refusal::WrongTarget(format!(
                    "classes {:?}, this node reports {:?}",
                    t.classes, expect.model.classes
                )));
            }
            Ok(())
        }
    }
}

/// Checks a whole payload against the signed length and SHA-256.
pub fn check_payload(meta: &Metadata, payload: &[u8]) -> Result<(), Refusal> {
    if payload.len() as u64 != meta.payload_len {
        return Err(Refusal::Payload { what: "length" });
    }
    let digest: [u8; 32] = Sha256::digest(payload).into();
    if digest != meta.payload_sha256 {
        return Err(Refusal::Payload { what: "sha256" });
    }
    Ok(())
}

/// Reads at most `cap` bytes; more is [`Refusal::TooLarge`] (never reads
/// past `cap` + 1).
pub fn read_capped(reader: impl Read, cap: u64) -> Result<Vec<u8>, Refusal> {
    let mut buf = Vec::new();
    reader
        .take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| Refusal::Malformed(format!("cannot read: {e}")))?;
    if buf.len() as u64 > cap {
        return Err(Refusal::TooLarge { limit: cap });
    }
    Ok(buf)
}

/// The whole decision for a bundle file: steps 1 to 7. Returns the parsed
/// bundle; the caller installs it, then calls [`TrustState::record`].
pub fn verify_bundle(
    state: &TrustState,
    reader: impl Read,
    expect: &Expect,
    floor_s: u64,
    cap: u64,
) -> Result<Bundle, Refusal> {
    let bytes = read_capped(reader, cap)?;
    let bundle = Bundle::parse(&bytes).map_err(|e| Refusal::Malformed(e.to_string()))?;
    state.check_metadata(&bundle, expect, floor_s, cap)?;
    check_payload(&bundle.meta, &bundle.payload)?;
    Ok(bundle)
}
