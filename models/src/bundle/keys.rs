//! Ed25519 keys: their short ids and their text form on disk.
//!
//! A key file is one line, `fieldnode-ed25519-secret <64 hex>` or
//! `fieldnode-ed25519-public <64 hex>`, so that a secret key is never
//! mistaken for a public one.

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// The first 8 bytes of the SHA-256 of a public key: how a signature names
/// its key.
pub type KeyId = [u8; 8];

const SECRET_TAG: &str = "fieldnode-ed25519-secret";
const PUBLIC_TAG: &str = "fieldnode-ed25519-public";

/// Why a key file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not `<tag> <64 hex digits>`.
    #[error("not a fieldnode {want} key (expected `{tag} <64 hex digits>`)")]
    Format {
        /// `secret` or `public`.
        want: &'static str,
        /// The expected first word.
        tag: &'static str,
    },
    /// The bytes are not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    InvalidPublic,
}

/// The id of `key`.
pub fn key_id(key: &VerifyingKey) -> KeyId {
    let d = Sha256::digest(key.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// `key`'s id as hex.
pub fn key_id_hex(id: &KeyId) -> String {
    hex(id)
}

/// A new signing key from 32 bytes of the operating system's randomness.
pub fn generate(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_bytes(&seed)
}

/// Signs `domain || body`.
pub(crate) fn sign_domain(key: &SigningKey, domain: &[u8], body: &[u8]) -> [u8; 64] {
    let mut msg = Vec::with_capacity(domain.len() + body.len());
    msg.extend_from_slice(domain);
    msg.extend_from_slice(body);
    key.sign(&msg).to_bytes()
}

/// Whether `sig` is `key`'s signature over `domain || body` (strict: no
/// malleable signatures, no weak keys).
pub(crate) fn verify_domain(
    key: &VerifyingKey,
    domain: &[u8],
    body: &[u8],
    sig: &[u8; 64],
) -> bool {
    let mut msg = Vec::with_capacity(domain.len() + body.len());
    msg.extend_from_slice(domain);
    msg.extend_from_slice(body);
    key.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// The text form of a secret key.
pub fn secret_to_text(key: &SigningKey) -> String {
    format!("{SECRET_TAG} {}\n", hex(&key.to_bytes()))
}

/// The text form of a public key.
pub fn public_to_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG} {}\n", hex(key.as_bytes()))
}

/// Reads a secret key's text form.
pub fn secret_from_text(text: &str) -> Result<SigningKey, KeyError> {
    let bytes = parse(text, SECRET_TAG).ok_or(KeyError::Format {
        want: "secret",
        tag: SECRET_TAG,
    })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Reads a public key's text form.
pub fn public_from_text(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = parse(text, PUBLIC_TAG).ok_or(KeyError::Format {
        want: "public",
        tag: PUBLIC_TAG,
    })?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublic)
}

fn parse(text: &str, tag: &str) -> Option<[u8; 32]> {
    let mut words = text.split_whitespace();
    if words.next()? != tag {
        return None;
    }
    let h = words.next()?;
    if words.next().is_some() || h.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(h.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_are_not_interchangeable() {
        let k = generate([7; 32]);
        let s = secret_to_text(&k);
        let p = public_to_text(&k.verifying_key());
        assert_eq!(secret_from_text(&s).unwrap().to_bytes(), k.to_bytes());
        assert_eq!(public_from_text(&p).unwrap(), k.verifying_key());
        assert!(secret_from_text(&p).is_err());
        assert!(public_from_text(&s).is_err());
        assert!(public_from_text("fieldnode-ed25519-public 00").is_err());
        assert!(public_from_text(&format!("{p} extra")).is_err());
    }

    #[test]
    fn a_signature_binds_domain_body_and_key() {
        let k = generate([1; 32]);
        let other = generate([2; 32]);
        let sig = sign_domain(&k, b"a", b"body");
        assert!(verify_domain(&k.verifying_key(), b"a", b"body", &sig));
        assert!(!verify_domain(&k.verifying_key(), b"b", b"body", &sig));
        assert!(!verify_domain(&k.verifying_key(), b"a", b"bodz", &sig));
        assert!(!verify_domain(&other.verifying_key(), b"a", b"body", &sig));
    }
}
