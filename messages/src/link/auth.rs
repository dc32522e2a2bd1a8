//! What a technician signs to open an authenticated session, byte for byte.
//!
//! The node and the CLI both build the signed bytes with
//! [`auth_signed_bytes`]; this crate carries keys and signatures as plain
//! byte arrays and never verifies anything (the node does, with Ed25519
//! `verify_strict`; the CLI signs).
//!
//! ```text
//! "fieldlink-auth-v1" 0x00        domain separation (18 bytes)
//! session nonce                   32 bytes, from HelloReply
//! challenge                       32 bytes, from the AuthChallenge reply
//! public key                      32 bytes, the key that signs (as in AuthProve)
//! node id length                  u16 little-endian
//! node id                         UTF-8, as in HelloReply
//! ```

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The domain-separation prefix of the signed bytes (followed by one 0x00),
/// so that a field-link proof can never be taken for a bundle signature or
/// anything else the same key signs.
pub const AUTH_DOMAIN: &[u8] = b"fieldlink-auth-v1";

/// Length of the session nonce and of an authentication challenge.
pub const NONCE_LEN: usize = 32;

/// An Ed25519 public key, as its 32 bytes.
pub type PublicKey = [u8; 32];

/// An Ed25519 signature, as its 64 bytes. Encoded as 64 bytes with no
/// length prefix, like the fixed arrays of the other fields.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(64)?;
        for b in &self.0 {
            tuple.serialize_element(b)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SignatureVisitor;
        impl<'de> Visitor<'de> for SignatureVisitor {
            type Value = Signature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut bytes = [0u8; 64];
                for (i, slot) in bytes.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(bytes))
            }
        }
        deserializer.deserialize_tuple(64, SignatureVisitor)
    }
}

/// The exact bytes a technician signs with the key `public_key` to prove
/// itself to the node `node_id` in the session that `session_nonce` names,
/// answering `challenge` (layout in the module documentation).
///
/// A node id longer than 65,535 bytes is cut there (node ids are short;
/// the cut keeps the function total).
pub fn auth_signed_bytes(
    session_nonce: &[u8; NONCE_LEN],
    challenge: &[u8; NONCE_LEN],
    public_key: &PublicKey,
    node_id: &str,
) -> Vec<u8> {
    let id = node_id.as_bytes();
    let id = &id[..id.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(AUTH_DOMAIN.len() + 1 + 3 * 32 + 2 + id.len());
    out.extend_from_slice(AUTH_DOMAIN);
    out.push(0);
    out.extend_from_slice(session_nonce);
    out.extend_from_slice(challenge);
    out.extend_from_slice(public_key);
    // Cannot fail: the length was capped at u16::MAX above.
    let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(id);
    out
}
