//! `bundle pack`, `bundle sign`, `bundle verify`, `bundle inspect`.
//!
//! A bundle is packed unsigned, then each holder of a bundle key adds a
//! signature with `bundle sign` (in place: the file is rewritten whole and
//! renamed over the old one). `bundle verify` makes the node's decision
//! ([`verify_bundle`]) against a root file, so an operator sees the refusal
//! a node would give before sending anything.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use models::bundle::envelope::{MAX_BODY, MAX_SIGNATURES};
use models::bundle::keys::{key_id, key_id_hex as id_hex};
use models::bundle::settings::SBD_MT_MAX;
use models::bundle::{
    Bundle, Expect, Kind, Metadata, ModelTarget, Refusal, SelfTest, SettingsPatch, SignedRoot,
    Target, TrustState, check_payload, verify_bundle,
};
use models::{Manifest, VerifyError};
use serde::{Deserialize, Serialize};

use super::patch_toml::PatchToml;
use super::{
    BUNDLE_CAP, Expires, Outcome, UpdateError, firmware_str, load_secret, now_s, read_file,
    read_text, rfc3339, write_atomic,
};

/// Bytes one signature adds to a bundle.
const SIG_BYTES: usize = 72;

fn usage(msg: impl Into<String>) -> UpdateError {
    UpdateError::Usage(msg.into())
}

fn from_refusal(r: &Refusal) -> UpdateError {
    let mut message = r.to_string();
    match r {
        Refusal::Expired { expires_s, floor_s } => message.push_str(&format!(
            " (expired {}, now {})",
            rfc3339(*expires_s),
            rfc3339(*floor_s)
        )),
        Refusal::RootExpired {
            expires_s, floor_s, ..
        } => message.push_str(&format!(
            " (root expired {}, now {})",
            rfc3339(*expires_s),
            rfc3339(*floor_s)
        )),
        _ => {}
    }
    UpdateError::Refused {
        code: r.code(),
        message,
    }
}

fn malformed(file: &Path, e: impl fmt::Display) -> UpdateError {
    UpdateError::Refused {
        code: "malformed",
        message: format!("{}: {e}", file.display()),
    }
}

/// A model's target, as the node checks it, from a manifest.
pub fn target_from_manifest(m: &Manifest, path: &Path) -> Result<ModelTarget, UpdateError> {
    let features = m.features.clone().ok_or_else(|| {
        usage(format!(
            "{}: the manifest has no `features` (the feature layout a node checks a model against)",
            path.display()
        ))
    })?;
    Ok(ModelTarget {
        family: m.name.clone(),
        features,
        classes: m.classes.clone(),
    })
}

fn read_manifest(path: &Path) -> Result<(Manifest, String), UpdateError> {
    let text = read_text(path)?;
    let m = Manifest::from_toml(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    Ok((m, text))
}

/// A self-test vector as written in the `--self-tests` JSON file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelfTestJson {
    inputs: Vec<Vec<f32>>,
    expected_class: u8,
    probabilities: Vec<f32>,
    tolerance: f32,
}

/// Reads the self-tests and checks them against the manifest's inputs and
/// classes.
fn load_self_tests(path: &Path, m: &Manifest) -> Result<Vec<SelfTest>, UpdateError> {
    let text = read_text(path)?;
    let list: Vec<SelfTestJson> =
        serde_json::from_str(&text).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let mut out = Vec::with_capacity(list.len());
    for (i, t) in list.into_iter().enumerate() {
        let bad = |what: String| usage(format!("{}: self-test {i}: {what}", path.display()));
        if t.inputs.len() != m.inputs.len() {
            return Err(bad(format!(
                "{} input rows, the manifest has {} inputs",
                t.inputs.len(),
                m.inputs.len()
            )));
        }
        for (row, spec) in t.inputs.iter().zip(&m.inputs) {
            // A flattened row of one batch item: [-1, a, b] takes a × b values.
            let (first, rest) = spec.shape.split_first().unwrap_or((&-1, &[]));
            if *first == -1 && !rest.is_empty() && rest.iter().all(|d| *d > 0) {
                let width: i64 = rest.iter().product();
                if row.len() as i64 != width {
                    return Err(bad(format!(
                        "input `{}` has {} values, its shape {:?} takes {width}",
                        spec.name,
                        row.len(),
                        spec.shape
                    )));
                }
            }
        }
        if t.probabilities.len() != m.classes.len() {
            return Err(bad(format!(
                "{} probabilities for {} classes",
                t.probabilities.len(),
                m.classes.len()
            )));
        }
        if usize::from(t.expected_class) >= m.classes.len() {
            return Err(bad(format!(
                "expected_class {} but there are {} classes",
                t.expected_class,
                m.classes.len()
            )));
        }
        let all_finite = t
            .inputs
            .iter()
            .flatten()
            .chain(&t.probabilities)
            .all(|x| x.is_finite());
        if !all_finite || !t.tolerance.is_finite() || t.tolerance < 0.0 {
            return Err(bad(
                "values must be finite and the tolerance at least 0".into()
            ));
        }
        out.push(SelfTest {
            inputs: t.inputs,
            expected_class: t.expected_class,
            probabilities: t.probabilities,
            tolerance: t.tolerance,
        });
    }
    Ok(out)
}

/// `bundle pack`'s inputs.
#[derive(Debug, Clone)]
pub struct PackArgs {
    /// Model or settings.
    pub kind: Kind,
    /// The model's manifest (model).
    pub manifest: Option<PathBuf>,
    /// The settings patch TOML (settings).
    pub patch: Option<PathBuf>,
    /// The name (settings: the channel, default `settings`; model: must be
    /// the manifest's name if given).
    pub name: Option<String>,
    /// Bundle version (above the installed one).
    pub version: u64,
    /// Expiry.
    pub expires: Expires,
    /// Lowest firmware that may take it.
    pub min_firmware: [u16; 3],
    /// Self-test vectors, JSON (model).
    pub self_tests: Option<PathBuf>,
    /// Where to write the unsigned bundle (replaced if it exists).
    pub out: PathBuf,
}

/// Packs an unsigned bundle.
pub fn pack(a: &PackArgs) -> Result<BundleReport, UpdateError> {
    if a.version == 0 {
        return Err(usage(
            "--version must be at least 1 (a node takes only versions above the installed one, 0 when none)",
        ));
    }
    let now = now_s()?;
    let expires_s = a.expires.resolve(now)?;
    let mut warnings = Vec::new();
    let (meta, payload) = match a.kind {
        Kind::Model => pack_model(a, now, expires_s, &mut warnings)?,
        Kind::Settings => pack_settings(a, now, expires_s, &mut warnings)?,
    };
    let bundle = Bundle::new(meta, payload);
    if bundle.meta_bytes.len() > MAX_BODY {
        return Err(usage(format!(
            "the metadata is {} bytes, more than the {MAX_BODY} a bundle may carry (fewer self-tests, or a shorter manifest)",
            bundle.meta_bytes.len()
        )));
    }
    let bytes = bundle
        .to_bytes()
        .map_err(|e| usage(format!("the bundle cannot be written: {e}")))?;
    if bytes.len() as u64 > BUNDLE_CAP {
        return Err(usage(format!(
            "the bundle would be {} bytes; nodes take at most {BUNDLE_CAP}",
            bytes.len()
        )));
    }
    match Bundle::parse(&bytes) {
        Ok(back) if back == bundle => {}
        _ => {
            return Err(usage(
                "the packed bundle does not parse back; nothing written",
            ));
        }
    }
    if expires_s < now {
        warnings.push(format!(
            "--expires {} is in the past: every node will refuse this bundle as expired",
            rfc3339(expires_s)
        ));
    }
    write_atomic(&a.out, &bytes, true)?;
    let mut report = BundleReport::new(&a.out, &bundle, bytes.len(), now);
    if let Some(s) = &report.settings
        && s.bytes_with_two_signatures > SBD_MT_MAX
    {
        warnings.push(format!(
            "with two signatures it is {} bytes: it does not fit one Iridium MT message ({SBD_MT_MAX} bytes)",
            s.bytes_with_two_signatures
        ));
    }
    report.warnings.extend(warnings);
    Ok(report)
}

fn pack_model(
    a: &PackArgs,
    now: u64,
    expires_s: u64,
    warnings: &mut Vec<String>,
) -> Result<(Metadata, Vec<u8>), UpdateError> {
    if a.patch.is_some() {
        return Err(usage("--patch is for --kind settings"));
    }
    let path = a
        .manifest
        .as_deref()
        .ok_or_else(|| usage("--kind model needs --manifest MANIFEST.toml"))?;
    let (m, text) = read_manifest(path)?;
    let target = target_from_manifest(&m, path)?;
    if let Some(name) = &a.name
        && *name != m.name
    {
        return Err(usage(format!(
            "--name {name:?}: a model bundle is named after its family, {:?} (the manifest's name)",
            m.name
        )));
    }
    let model_path = m.verify_model(path).map_err(|e| match e {
        VerifyError::Io { path, source } => UpdateError::Io { path, source },
        other => UpdateError::Refused {
            code: "manifest_mismatch",
            message: other.to_string(),
        },
    })?;
    let payload = read_file(&model_path, m.size_bytes)?;
    let self_tests = match &a.self_tests {
        Some(p) => load_self_tests(p, &m)?,
        None => Vec::new(),
    };
    let latency_p99_us = match &m.latency {
        Some(l) if l.batch1_p99_ms.is_finite() && l.batch1_p99_ms >= 0.0 => {
            (l.batch1_p99_ms * 1000.0).round().min(f64::from(u32::MAX)) as u32
        }
        _ => {
            warnings.push("the manifest has no usable [latency]; latency_p99_us is 0".into());
            0
        }
    };
    let meta = Metadata {
        kind: Kind::Model,
        name: m.name.clone(),
        version: a.version,
        created_s: now,
        expires_s,
        target: Target {
            min_firmware: a.min_firmware,
            model: Some(target),
        },
        payload_len: 0,
        payload_sha256: [0; 32],
        quantization: m.quantization.clone(),
        latency_p99_us,
        self_tests,
        manifest: Some(text),
    }
    .describe(&payload);
    // The bytes packed are the bytes checked (the file may have changed
    // since verify_model read it).
    if meta.payload_len != m.size_bytes || hex::encode(meta.payload_sha256) != m.sha256 {
        return Err(UpdateError::Refused {
            code: "manifest_mismatch",
            message: format!(
                "{} changed while it was read; nothing written",
                model_path.display()
            ),
        });
    }
    Ok((meta, payload))
}

fn pack_settings(
    a: &PackArgs,
    now: u64,
    expires_s: u64,
    warnings: &mut Vec<String>,
) -> Result<(Metadata, Vec<u8>), UpdateError> {
    if a.manifest.is_some() || a.self_tests.is_some() {
        return Err(usage("--manifest and --self-tests are for --kind model"));
    }
    let path = a
        .patch
        .as_deref()
        .ok_or_else(|| usage("--kind settings needs --patch PATCH.toml"))?;
    let name = a.name.clone().unwrap_or_else(|| "settings".into());
    if name.is_empty() {
        return Err(usage("--name must not be empty"));
    }
    let t = PatchToml::from_toml(&read_text(path)?)
        .map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let (patch, notes) = t
        .to_patch()
        .map_err(|e| usage(format!("{}: {e}", path.display())))?;
    warnings.extend(notes);
    if t.is_empty() {
        warnings.push("the patch is empty: it changes nothing".into());
    }
    let payload = patch.to_bytes();
    SettingsPatch::from_bytes(&payload).map_err(|e| usage(format!("{}: {e}", path.display())))?;
    let meta = Metadata::settings(&name, a.version, now, expires_s, a.min_firmware);
    Ok((meta, payload))
}

/// A bundle's target as shown.
#[derive(Debug, Serialize)]
pub struct TargetReport {
    /// Lowest firmware, `MAJOR.MINOR.PATCH`.
    pub min_firmware: String,
    /// For a model.
    pub model: Option<ModelTarget>,
}

/// What a settings bundle carries.
#[derive(Debug, Serialize)]
pub struct SettingsReport {
    /// The decoded patch in configuration units, if it decodes and passes
    /// its checks.
    pub patch: Option<PatchToml>,
    /// Why it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_error: Option<String>,
    /// Whether the bundle as it is fits one Iridium MT message.
    pub fits_one_mt_message: bool,
    /// The MT message's limit, bytes.
    pub sbd_mt_max: usize,
    /// The bundle's size with exactly two signatures, bytes.
    pub bytes_with_two_signatures: usize,
}

/// A bundle as shown by `bundle inspect` and written by `bundle pack`.
#[derive(Debug, Serialize)]
pub struct BundleReport {
    /// The file.
    pub file: PathBuf,
    /// `model` or `settings`.
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// Creation, unix s.
    pub created_s: u64,
    /// Creation, RFC 3339.
    pub created: String,
    /// Expiry, unix s.
    pub expires_s: u64,
    /// Expiry, RFC 3339.
    pub expires: String,
    /// Whether it has expired by the system clock.
    pub expired: bool,
    /// Which nodes it is for.
    pub target: TargetReport,
    /// Payload length in the metadata, bytes.
    pub payload_len: u64,
    /// Payload SHA-256 in the metadata, hex.
    pub payload_sha256: String,
    /// Whether the payload in the file has that length and hash.
    pub payload_matches: bool,
    /// Quantization (models).
    pub quantization: String,
    /// Latency of a batch-1 burst, 99th percentile, µs (models).
    pub latency_p99_us: u32,
    /// Number of self-test vectors.
    pub self_tests: usize,
    /// Whether the model's manifest is included.
    pub manifest: bool,
    /// Key ids of the signatures, in file order (not checked: see `bundle verify`).
    pub signatures: Vec<String>,
    /// File size, bytes.
    pub bytes: usize,
    /// Settings bundles: the patch and its size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsReport>,
    /// Things to know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl BundleReport {
    fn new(file: &Path, b: &Bundle, bytes: usize, now: u64) -> BundleReport {
        let m = &b.meta;
        let settings = (m.kind == Kind::Settings).then(|| {
            let (patch, patch_error) = match SettingsPatch::from_bytes(&b.payload) {
                Ok(p) => (Some(PatchToml::from_patch(&p)), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let unsigned = bytes.saturating_sub(SIG_BYTES * b.sigs.len());
            SettingsReport {
                patch,
                patch_error,
                fits_one_mt_message: bytes <= SBD_MT_MAX,
                sbd_mt_max: SBD_MT_MAX,
                bytes_with_two_signatures: unsigned + 2 * SIG_BYTES,
            }
        });
        BundleReport {
            file: file.to_path_buf(),
            kind: m.kind.as_str(),
            name: m.name.clone(),
            version: m.version,
            created_s: m.created_s,
            created: rfc3339(m.created_s),
            expires_s: m.expires_s,
            expires: rfc3339(m.expires_s),
            expired: m.expires_s < now,
            target: TargetReport {
                min_firmware: firmware_str(m.target.min_firmware),
                model: m.target.model.clone(),
            },
            payload_len: m.payload_len,
            payload_sha256: hex::encode(m.payload_sha256),
            payload_matches: check_payload(m, &b.payload).is_ok(),
            quantization: m.quantization.clone(),
            latency_p99_us: m.latency_p99_us,
            self_tests: m.self_tests.len(),
            manifest: m.manifest.is_some(),
            signatures: b.sigs.iter().map(|s| id_hex(&s.key)).collect(),
            bytes,
            settings,
            warnings: Vec::new(),
        }
    }
}

fn write_target(f: &mut fmt::Formatter<'_>, t: &TargetReport) -> fmt::Result {
    write!(f, "target: firmware {} or later", t.min_firmware)?;
    if let Some(m) = &t.model {
        write!(
            f,
            "; model family {}, features {}, classes {}",
            m.family,
            m.features,
            m.classes.join(", ")
        )?;
    }
    writeln!(f)
}

impl fmt::Display for BundleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} bundle {:?} version {}",
            self.kind, self.name, self.version
        )?;
        writeln!(
            f,
            "created {}, expires {}{}",
            self.created,
            self.expires,
            if self.expired { " (EXPIRED)" } else { "" }
        )?;
        write_target(f, &self.target)?;
        writeln!(
            f,
            "payload: {} bytes, sha256 {} ({})",
            self.payload_len,
            self.payload_sha256,
            if self.payload_matches {
                "the file's payload matches"
            } else {
                "the file's payload does NOT match"
            }
        )?;
        if self.kind == Kind::Model.as_str() {
            writeln!(f, "quantization: {}", self.quantization)?;
            writeln!(f, "latency p99 (batch 1): {} µs", self.latency_p99_us)?;
            writeln!(
                f,
                "self-tests: {}; manifest {}",
                self.self_tests,
                if self.manifest {
                    "included"
                } else {
                    "not included"
                }
            )?;
        }
        writeln!(
            f,
            "signatures ({}): {}",
            self.signatures.len(),
            if self.signatures.is_empty() {
                "none".to_string()
            } else {
                self.signatures.join(", ")
            }
        )?;
        write!(f, "size: {} bytes", self.bytes)?;
        if let Some(s) = &self.settings {
            writeln!(f)?;
            match (&s.patch, &s.patch_error) {
                (Some(p), _) => {
                    writeln!(f, "settings patch:")?;
                    let text = toml::to_string(p).unwrap_or_default();
                    for line in text.lines().filter(|l| !l.is_empty()) {
                        writeln!(f, "  {line}")?;
                    }
                }
                (None, e) => writeln!(
                    f,
                    "settings patch: does not decode: {}",
                    e.as_deref().unwrap_or("?")
                )?,
            }
            write!(
                f,
                "one Iridium MT message ({} bytes): {} as it is; {} bytes with two signatures",
                s.sbd_mt_max,
                if s.fits_one_mt_message {
                    "fits"
                } else {
                    "does NOT fit"
                },
                s.bytes_with_two_signatures
            )?;
        }
        Ok(())
    }
}

impl Outcome for BundleReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Shows a bundle (no trust decision); refused if it does not parse.
pub fn inspect(file: &Path) -> Result<BundleReport, UpdateError> {
    let bytes = read_file(file, BUNDLE_CAP)?;
    let b = Bundle::parse(&bytes).map_err(|e| malformed(file, e))?;
    Ok(BundleReport::new(file, &b, bytes.len(), now_s()?))
}

/// What `bundle sign` did.
#[derive(Debug, Serialize)]
pub struct SignReport {
    /// The bundle file.
    pub file: PathBuf,
    /// The key that signed.
    pub key_id: String,
    /// Whether it replaced an earlier signature by the same key.
    pub replaced: bool,
    /// All signatures now on the bundle.
    pub signatures: Vec<String>,
    /// Things to know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl fmt::Display for SignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}signed {} with key {}",
            if self.replaced { "re-" } else { "" },
            self.file.display(),
            self.key_id
        )?;
        write!(
            f,
            "signatures ({}): {}",
            self.signatures.len(),
            self.signatures.join(", ")
        )
    }
}

impl Outcome for SignReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Adds `key`'s signature to the bundle `file`, in place. Refuses a file
/// that does not parse or whose payload does not match its metadata.
pub fn sign(key: &Path, file: &Path) -> Result<SignReport, UpdateError> {
    let secret = load_secret(key)?;
    let bytes = read_file(file, BUNDLE_CAP)?;
    let mut b = Bundle::parse(&bytes).map_err(|e| malformed(file, e))?;
    check_payload(&b.meta, &b.payload).map_err(|r| UpdateError::Refused {
        code: r.code(),
        message: format!("{}: {r}; not signed", file.display()),
    })?;
    let id = key_id(&secret.verifying_key());
    let replaced = b.sigs.iter().any(|s| s.key == id);
    if !replaced && b.sigs.len() >= MAX_SIGNATURES {
        return Err(usage(format!(
            "{}: already {} signatures, the most a bundle may carry",
            file.display(),
            b.sigs.len()
        )));
    }
    b.sign(&secret);
    let out = b
        .to_bytes()
        .map_err(|e| usage(format!("{}: {e}; file unchanged", file.display())))?;
    if Bundle::parse(&out).as_ref() != Ok(&b) {
        return Err(usage(
            "the signed bundle does not parse back; file unchanged",
        ));
    }
    write_atomic(file, &out, true)?;
    let mut warnings = Vec::new();
    if b.meta.expires_s < now_s()? {
        warnings.push(format!(
            "the bundle expired at {}: nodes will refuse it",
            rfc3339(b.meta.expires_s)
        ));
    }
    Ok(SignReport {
        file: file.to_path_buf(),
        key_id: id_hex(&id),
        replaced,
        signatures: b.sigs.iter().map(|s| id_hex(&s.key)).collect(),
        warnings,
    })
}

/// `bundle verify`'s inputs.
#[derive(Debug, Clone)]
pub struct VerifyArgs {
    /// The root the node trusts.
    pub root: PathBuf,
    /// The bundle.
    pub file: PathBuf,
    /// The version installed for the bundle's kind and name.
    pub installed: Option<u64>,
    /// The node's firmware.
    pub firmware: [u16; 3],
    /// The node's model manifest (what the node runs).
    pub manifest: Option<PathBuf>,
}

/// An accepted bundle.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    /// Always true (a refusal is an error).
    pub accepted: bool,
    /// The bundle file.
    pub file: PathBuf,
    /// `model` or `settings`.
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// Version.
    pub version: u64,
    /// Payload length, bytes.
    pub payload_len: u64,
    /// Payload SHA-256, hex.
    pub payload_sha256: String,
    /// Key ids of the signatures on the file.
    pub signatures: Vec<String>,
    /// The root's bundle threshold.
    pub threshold: u8,
    /// The root's version.
    pub root_version: u64,
    /// The firmware checked against.
    pub firmware: String,
    /// The installed version checked against.
    pub installed: u64,
    /// The time floor (system clock), unix s.
    pub time_floor_s: u64,
    /// The time floor, RFC 3339.
    pub time_floor: String,
    /// Where the expected model target came from: `manifest`, `bundle`
    /// (the bundle's own: not checked against a node) or `none` (settings).
    pub model_target_from: &'static str,
    /// The expected model target, when one applies.
    pub model_target: Option<ModelTarget>,
    /// Settings bundles: the decoded patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings_patch: Option<PatchToml>,
    /// Things to know.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "accepted: {} bundle {:?} version {}",
            self.kind, self.name, self.version
        )?;
        writeln!(
            f,
            "payload: {} bytes, sha256 {}",
            self.payload_len, self.payload_sha256
        )?;
        writeln!(
            f,
            "signatures on the file ({}): {}; root version {} needs {} by its bundle keys",
            self.signatures.len(),
            self.signatures.join(", "),
            self.root_version,
            self.threshold
        )?;
        write!(
            f,
            "checked against: firmware {}, installed version {}, time {}",
            self.firmware, self.installed, self.time_floor
        )?;
        match (self.model_target_from, &self.model_target) {
            ("manifest", Some(t)) => write!(
                f,
                "\nmodel target: from the node manifest (family {}, features {})",
                t.family, t.features
            )?,
            ("bundle", _) => write!(
                f,
                "\nmodel target: the bundle's own (no --manifest given: family, features and classes were NOT checked against a node)"
            )?,
            _ => {}
        }
        if let Some(p) = &self.settings_patch {
            write!(f, "\nsettings patch:")?;
            for line in toml::to_string(p)
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.is_empty())
            {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

impl Outcome for VerifyReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Makes the node's decision on a bundle file: [`verify_bundle`] with a
/// trust state built from `root` (and `installed`), the system clock as the
/// time floor and a cap of [`BUNDLE_CAP`].
pub fn verify(a: &VerifyArgs) -> Result<VerifyReport, UpdateError> {
    let root_bytes = read_file(&a.root, 1 << 20)?;
    let root = SignedRoot::parse(&root_bytes).map_err(|e| {
        usage(format!(
            "--root {}: not a usable root: {e}",
            a.root.display()
        ))
    })?;
    let mut state = TrustState::new(root);
    let file = std::fs::File::open(&a.file).map_err(|e| UpdateError::io(&a.file, e))?;
    let mut bytes = Vec::new();
    file.take(BUNDLE_CAP + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| UpdateError::io(&a.file, e))?;
    if bytes.len() as u64 > BUNDLE_CAP {
        return Err(from_refusal(&Refusal::TooLarge { limit: BUNDLE_CAP }));
    }
    let header = Bundle::parse_header(&bytes).ok().map(|(b, _)| b.meta);
    let mut warnings = Vec::new();
    if let (Some(n), Some(m)) = (a.installed, &header) {
        state.installed.push((m.kind, m.name.clone(), n));
    }
    let (model_target_from, model) = match (&header, &a.manifest) {
        (Some(m), Some(path)) if m.kind == Kind::Model => {
            let (manifest, _) = read_manifest(path)?;
            ("manifest", Some(target_from_manifest(&manifest, path)?))
        }
        (Some(m), None) if m.kind == Kind::Model => ("bundle", m.target.model.clone()),
        (Some(_), Some(_)) => {
            warnings.push("--manifest is ignored for a settings bundle".into());
            ("none", None)
        }
        // Not a bundle: verify_bundle says why.
        _ => ("none", None),
    };
    let expect = Expect {
        firmware: a.firmware,
        model: model.clone().unwrap_or(ModelTarget {
            family: String::new(),
            features: String::new(),
            classes: Vec::new(),
        }),
    };
    let now = now_s()?;
    let floor = state.time_floor(now, 0);
    let b = verify_bundle(&state, &bytes[..], &expect, floor, BUNDLE_CAP)
        .map_err(|r| from_refusal(&r))?;
    let settings_patch = match b.meta.kind {
        Kind::Model => None,
        Kind::Settings => Some(
            SettingsPatch::from_bytes(&b.payload)
                .map(|p| PatchToml::from_patch(&p))
                .map_err(|e| UpdateError::Refused {
                    code: "settings_patch",
                    message: e.to_string(),
                })?,
        ),
    };
    Ok(VerifyReport {
        accepted: true,
        file: a.file.clone(),
        kind: b.meta.kind.as_str(),
        name: b.meta.name.clone(),
        version: b.meta.version,
        payload_len: b.meta.payload_len,
        payload_sha256: hex::encode(b.meta.payload_sha256),
        signatures: b.sigs.iter().map(|s| id_hex(&s.key)).collect(),
        threshold: state.root.root.bundles.threshold,
        root_version: state.root.root.version,
        firmware: firmware_str(a.firmware),
        installed: state.installed(b.meta.kind, &b.meta.name),
        time_floor_s: floor,
        time_floor: rfc3339(floor),
        model_target_from,
        model_target: model,
        settings_patch,
        warnings,
    })
}
