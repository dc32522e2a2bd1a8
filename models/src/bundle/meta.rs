//! A bundle's signed metadata, and the bundle file itself:
//!
//! ```text
//! envelope (magic `FNB1`, metadata, signatures) | payload
//! ```
//!
//! For a model the payload is the ONNX file and the metadata carries its
//! manifest; for settings it is a [`SettingsPatch`](super::SettingsPatch).

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::envelope::{self, EnvelopeError, Sig};
use super::keys::{key_id, sign_domain};

/// Magic bytes of a bundle file.
pub const BUNDLE_MAGIC: &[u8; 4] = b"FNB1";
pub(crate) const BUNDLE_DOMAIN: &[u8] = b"fieldnode/bundle/v1\0";

/// What a bundle carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// A fusion model (ONNX) with its manifest.
    Model,
    /// A settings patch.
    Settings,
}

impl Kind {
    /// `model` or `settings`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Model => "model",
            Kind::Settings => "settings",
        }
    }
}

/// What a model must fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelTarget {
    /// Model family (the manifest's name), e.g. `fusion`.
    pub family: String,
    /// Feature layout the model reads, e.g. `fieldnode-features-2`.
    pub features: String,
    /// Output classes, in output order.
    pub classes: Vec<String>,
}

/// Which nodes a bundle is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Lowest firmware version (major, minor, patch) that may take it.
    pub min_firmware: [u16; 3],
    /// For a model: what it must fit.
    pub model: Option<ModelTarget>,
}

/// One self-test vector: inputs (one row per model input, in manifest
/// order), the expected class and probabilities, and the tolerance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfTest {
    /// One row per model input.
    pub inputs: Vec<Vec<f32>>,
    /// Index of the expected class.
    pub expected_class: u8,
    /// Expected output probabilities.
    pub probabilities: Vec<f32>,
    /// Largest accepted absolute difference per probability.
    pub tolerance: f32,
}

/// The signed metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Model or settings.
    pub kind: Kind,
    /// Name: the model family, or the settings channel.
    pub name: String,
    /// Monotonic per (kind, name); a node never takes a version at or below
    /// the one it installed.
    pub version: u64,
    /// Unix seconds when signed.
    pub created_s: u64,
    /// Unix seconds after which no node takes it.
    pub expires_s: u64,
    /// Which nodes it is for.
    pub target: Target,
    /// Payload length, bytes.
    pub payload_len: u64,
    /// SHA-256 of the payload.
    pub payload_sha256: [u8; 32],
    /// Quantization scheme (models).
    pub quantization: String,
    /// Expected latency of one burst of batch 1, 99th percentile, µs (models).
    pub latency_p99_us: u32,
    /// Self-test vectors (models).
    pub self_tests: Vec<SelfTest>,
    /// The model's manifest, TOML (models).
    pub manifest: Option<String>,
}

/// A bundle as parsed, before any trust decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Bundle {
    /// The metadata as decoded.
    pub meta: Metadata,
    /// The metadata's bytes exactly as signed.
    pub meta_bytes: Vec<u8>,
    /// Signatures.
    pub sigs: Vec<Sig>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Why a bundle does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    /// The envelope does not parse.
    #[error("bundle: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The metadata does not decode, or is not in canonical form.
    #[error("bundle: the metadata does not decode ({0})")]
    Metadata(String),
}

impl Metadata {
    /// The metadata of a settings bundle: no model target, no
    /// quantization, latency or self-tests (the payload's length and hash
    /// are filled in by [`Bundle::new`]).
    pub fn settings(
        name: &str,
        version: u64,
        created_s: u64,
        expires_s: u64,
        min_firmware: [u16; 3],
    ) -> Metadata {
        Metadata {
            kind: Kind::Settings,
            name: name.to_string(),
            version,
            created_s,
            expires_s,
            target: Target {
                min_firmware,
                model: None,
            },
            payload_len: 0,
            payload_sha256: [0; 32],
            quantization: String::new(),
            latency_p99_us: 0,
            self_tests: Vec::new(),
            manifest: None,
        }
    }

    /// Metadata for `payload` with the given fields; the length and hash are
    /// computed.
    pub fn describe(mut self, payload: &[u8]) -> Metadata {
        self.payload_len = payload.len() as u64;
        self.payload_sha256 = Sha256::digest(payload).into();
        self
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes canonical metadata bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metadata, BundleError> {
        let meta: Metadata =
            postcard::from_bytes(bytes).map_err(|e| BundleError::Metadata(e.to_string()))?;
        if meta.to_bytes() != bytes {
            return Err(BundleError::Metadata("not in canonical form".into()));
        }
        Ok(meta)
    }
}

impl Bundle {
    /// An unsigned bundle.
    pub fn new(meta: Metadata, payload: Vec<u8>) -> Bundle {
        let meta = meta.describe(&payload);
        Bundle {
            meta_bytes: meta.to_bytes(),
            meta,
            sigs: Vec::new(),
            payload,
        }
    }

    /// Adds `key`'s signature (replacing an earlier one by the same key).
    pub fn sign(&mut self, key: &SigningKey) {
        let id = key_id(&key.verifying_key());
        self.sigs.retain(|s| s.key != id);
        self.sigs.push(Sig {
            key: id,
            sig: sign_domain(key, BUNDLE_DOMAIN, &self.meta_bytes),
        });
    }

    /// The file's bytes; refused when the metadata or the signatures are
    /// over what a node accepts.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        let mut out = self.header_bytes()?;
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// The envelope alone (metadata and signatures), as announced before a
    /// payload sent in chunks.
    pub fn header_bytes(&self) -> Result<Vec<u8>, BundleError> {
        if self.meta_bytes.is_empty() {
            // Metadata always encodes to some bytes: none means encoding
            // failed, and a node would refuse the file.
            return Err(BundleError::Metadata("could not be encoded".into()));
        }
        let mut out =
            Vec::with_capacity(envelope::overhead(self.sigs.len()) + self.meta_bytes.len());
        envelope::encode(&mut out, BUNDLE_MAGIC, &self.meta_bytes, &self.sigs)?;
        Ok(out)
    }

    /// Parses a header (envelope) alone; returns the bundle with an empty
    /// payload and the header's length.
    pub fn parse_header(bytes: &[u8]) -> Result<(Bundle, usize), BundleError> {
        let env = envelope::decode(bytes, BUNDLE_MAGIC, "bundle")?;
        let meta = Metadata::from_bytes(&env.body)?;
        Ok((
            Bundle {
                meta,
                meta_bytes: env.body,
                sigs: env.sigs,
                payload: Vec::new(),
            },
            env.len,
        ))
    }

    /// Parses a whole bundle file (no trust decision: see
    /// [`super::verify`]).
    pub fn parse(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let (mut b, len) = Bundle::parse_header(bytes)?;
        b.payload = bytes[len..].to_vec();
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_that_did_not_encode_is_not_written() {
        let meta = Metadata::settings("s", 1, 0, 0, [0, 0, 0]);
        let mut b = Bundle::new(meta, vec![1, 2, 3]);
        let good = b.to_bytes().unwrap();
        assert_eq!(Bundle::parse(&good).unwrap().payload, [1, 2, 3]);
        // What `Bundle::new` holds when the metadata fails to encode.
        b.meta_bytes.clear();
        assert!(matches!(b.to_bytes(), Err(BundleError::Metadata(_))));
        assert!(matches!(b.header_bytes(), Err(BundleError::Metadata(_))));
    }
}
