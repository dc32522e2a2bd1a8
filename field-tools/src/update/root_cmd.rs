//! `root init`, `root inspect`, `root verify`: writing a trust root, showing
//! one, and checking that a new root may replace the trusted one.
//!
//! A rotation is a `root init` of the next version signed by a threshold of
//! the current root's keys and a threshold of the new root's own keys (pass
//! both sets to `--sign`); `root verify --trusted CURRENT NEW` is the node's
//! check ([`SignedRoot::rotate_from`]).

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use models::bundle::envelope;
use models::bundle::keys::{key_id, key_id_hex as id_hex};
use models::bundle::root::ROOT_MAGIC;
use models::bundle::{Role, Root, RootError, SignedRoot};
use serde::Serialize;

use super::{
    Expires, Outcome, UpdateError, key_id_hex, load_public, load_secret, now_s, read_file, rfc3339,
    write_atomic,
};

/// Largest root file read, bytes.
const ROOT_CAP: u64 = 1 << 20;

/// The short code of a root refusal.
pub fn root_code(e: &RootError) -> &'static str {
    match e {
        RootError::Envelope(_) | RootError::Body(_) | RootError::Trailing(_) => "malformed",
        RootError::Encode(_) => "encode",
        RootError::Role { .. } => "role",
        RootError::Threshold { .. } => "signatures",
        RootError::Version { .. } => "version",
    }
}

fn refused(e: RootError) -> UpdateError {
    UpdateError::Refused {
        code: root_code(&e),
        message: e.to_string(),
    }
}

/// A role as shown.
#[derive(Debug, Serialize)]
pub struct RoleReport {
    /// Signatures needed.
    pub threshold: u8,
    /// Key ids, hex.
    pub keys: Vec<String>,
}

/// One signature on a root file.
#[derive(Debug, Serialize)]
pub struct SigReport {
    /// The signing key's id, hex.
    pub key_id: String,
    /// `root`, `bundles`, `root+bundles` (roles of this root naming the
    /// key) or `other` (e.g. the previous root's key in a rotation).
    pub role: &'static str,
}

/// A root as shown by `root inspect` and written by `root init`.
#[derive(Debug, Serialize)]
pub struct RootReport {
    /// The file.
    pub file: PathBuf,
    /// Root version.
    pub version: u64,
    /// Expiry, unix s.
    pub expires_s: u64,
    /// Expiry, RFC 3339.
    pub expires: String,
    /// Whether it has expired by the system clock.
    pub expired: bool,
    /// Keys that sign roots.
    pub root: RoleReport,
    /// Keys that sign bundles.
    pub bundles: RoleReport,
    /// Signatures in the file, in file order (not checked one by one; the
    /// file parses, so a threshold of its root keys signed it).
    pub signatures: Vec<SigReport>,
    /// File size, bytes.
    pub bytes: usize,
    /// Things to know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

fn role_ids(role: &Role) -> Vec<String> {
    role.keys
        .iter()
        .filter_map(|k| VerifyingKey::from_bytes(k).ok())
        .map(|k| key_id_hex(&k))
        .collect()
}

impl RootReport {
    fn new(file: &Path, signed: &SignedRoot, now: u64) -> RootReport {
        let root = &signed.root;
        let root_ids = role_ids(&root.root);
        let bundle_ids = role_ids(&root.bundles);
        // The file parsed, so its envelope decodes.
        let sigs = envelope::decode(&signed.bytes, ROOT_MAGIC, "root file")
            .map(|e| e.sigs)
            .unwrap_or_default();
        let signatures = sigs
            .iter()
            .map(|s| {
                let key_id = id_hex(&s.key);
                let role = match (root_ids.contains(&key_id), bundle_ids.contains(&key_id)) {
                    (true, true) => "root+bundles",
                    (true, false) => "root",
                    (false, true) => "bundles",
                    (false, false) => "other",
                };
                SigReport { key_id, role }
            })
            .collect();
        let mut warnings = Vec::new();
        let expired = root.expires_s < now;
        if expired {
            warnings.push(format!(
                "this root expired at {}: a node trusting it takes no bundle",
                rfc3339(root.expires_s)
            ));
        }
        for k in &root_ids {
            if bundle_ids.contains(k) {
                warnings.push(format!(
                    "key {k} is both a root key and a bundle key: root keys should stay offline"
                ));
            }
        }
        RootReport {
            file: file.to_path_buf(),
            version: root.version,
            expires_s: root.expires_s,
            expires: rfc3339(root.expires_s),
            expired,
            root: RoleReport {
                threshold: root.root.threshold,
                keys: root_ids,
            },
            bundles: RoleReport {
                threshold: root.bundles.threshold,
                keys: bundle_ids,
            },
            signatures,
            bytes: signed.bytes.len(),
            warnings,
        }
    }
}

impl fmt::Display for RootReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "root version {}, expires {}{}",
            self.version,
            self.expires,
            if self.expired { " (EXPIRED)" } else { "" }
        )?;
        for (name, r) in [("root keys", &self.root), ("bundle keys", &self.bundles)] {
            writeln!(
                f,
                "{name}: threshold {} of {}: {}",
                r.threshold,
                r.keys.len(),
                r.keys.join(", ")
            )?;
        }
        let sigs: Vec<String> = self
            .signatures
            .iter()
            .map(|s| format!("{} ({})", s.key_id, s.role))
            .collect();
        writeln!(f, "signatures ({}): {}", sigs.len(), sigs.join(", "))?;
        write!(f, "file: {} ({} bytes)", self.file.display(), self.bytes)
    }
}

impl Outcome for RootReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// `root init`'s inputs.
#[derive(Debug, Clone)]
pub struct InitArgs {
    /// Public key files of the root role.
    pub root_keys: Vec<PathBuf>,
    /// Root threshold.
    pub root_threshold: u8,
    /// Public key files of the bundle role.
    pub bundle_keys: Vec<PathBuf>,
    /// Bundle threshold.
    pub bundle_threshold: u8,
    /// Root version.
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// Secret key files that sign it.
    pub sign: Vec<PathBuf>,
    /// Where to write it (never overwritten).
    pub out: PathBuf,
}

fn role(paths: &[PathBuf], threshold: u8) -> Result<Role, UpdateError> {
    let keys = paths
        .iter()
        .map(|p| load_public(p).map(|k| k.to_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Role { keys, threshold })
}

/// Builds, signs, checks and writes a root. Nothing is written unless the
/// result parses as a root signed by a threshold of its own root keys.
pub fn init(args: &InitArgs) -> Result<RootReport, UpdateError> {
    let now = now_s()?;
    let root = Root {
        version: args.version,
        expires_s: args.expires.resolve(now)?,
        root: role(&args.root_keys, args.root_threshold)?,
        bundles: role(&args.bundle_keys, args.bundle_threshold)?,
    };
    let secrets: Vec<SigningKey> = args
        .sign
        .iter()
        .map(|p| load_secret(p))
        .collect::<Result<_, _>>()?;
    let refs: Vec<&SigningKey> = secrets.iter().collect();
    let bytes = root.sign(&refs).map_err(|e| UpdateError::Refused {
        code: root_code(&e),
        message: format!("{e}; nothing written"),
    })?;
    let signed = SignedRoot::parse(&bytes).map_err(|e| UpdateError::Refused {
        code: root_code(&e),
        message: format!("{e}; nothing written"),
    })?;
    write_atomic(&args.out, &bytes, false)?;
    let mut report = RootReport::new(&args.out, &signed, now);
    let root_ids: Vec<_> = signed.root.root.keys.clone();
    for k in &secrets {
        let public = k.verifying_key();
        if !root_ids.contains(&public.to_bytes()) {
            report.warnings.push(format!(
                "signed by {}, not a root key of this root: it counts only when a node rotates from a root that lists it",
                id_hex(&key_id(&public))
            ));
        }
    }
    if signed.root.version > 1 {
        report.warnings.push(format!(
            "version {} replaces version {} on nodes only if a threshold of that root's keys signed it too: check with `field-tools root verify --trusted PREVIOUS {}`",
            signed.root.version,
            signed.root.version - 1,
            args.out.display()
        ));
    }
    Ok(report)
}

fn read_root(path: &Path) -> Result<Result<SignedRoot, RootError>, UpdateError> {
    let bytes = read_file(path, ROOT_CAP)?;
    Ok(SignedRoot::parse(&bytes))
}

/// Reads and shows a root; refused if it does not parse or is not signed
/// by a threshold of its own root keys.
pub fn inspect(path: &Path) -> Result<RootReport, UpdateError> {
    let signed = read_root(path)?.map_err(refused)?;
    Ok(RootReport::new(path, &signed, now_s()?))
}

/// What `root verify` found.
#[derive(Debug, Serialize)]
pub struct RotationReport {
    /// The trusted root's version.
    pub trusted_version: u64,
    /// The new root.
    pub new: RootReport,
}

impl fmt::Display for RotationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "accepted: root version {} may replace the trusted version {} (a threshold of both the trusted and the new root keys signed it)",
            self.new.version, self.trusted_version
        )?;
        write!(f, "{}", self.new)
    }
}

impl Outcome for RotationReport {
    fn warnings(&self) -> &[String] {
        &self.new.warnings
    }
}

/// Checks that `new` may replace `trusted`, as a node would.
pub fn verify(trusted: &Path, new: &Path) -> Result<RotationReport, UpdateError> {
    let current = read_root(trusted)?.map_err(|e| {
        UpdateError::Usage(format!(
            "--trusted {}: not a usable root: {e}",
            trusted.display()
        ))
    })?;
    let next = read_root(new)?.map_err(refused)?;
    next.rotate_from(&current.root).map_err(refused)?;
    Ok(RotationReport {
        trusted_version: current.root.version,
        new: RootReport::new(new, &next, now_s()?),
    })
}
