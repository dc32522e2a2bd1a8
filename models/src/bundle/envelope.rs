//! The signed envelope shared by roots and bundles:
//!
//! ```text
//! magic (4) | body length (u16 LE) | body | n (u8) | n × (key id (8) | signature (64))
//! ```
//!
//! The body is the postcard encoding of the signed metadata. Signatures are
//! over a domain tag followed by the body's bytes exactly as received; the
//! body must also be the canonical encoding of what it decodes to, so no
//! two byte strings carry the same signed content.

use super::keys::KeyId;

/// Longest body accepted, bytes (a root or a bundle's metadata).
pub const MAX_BODY: usize = 16 * 1024;
/// Most signatures accepted on one envelope.
pub const MAX_SIGNATURES: usize = 16;
/// The longest envelope [`decode`] accepts: magic, body length, body,
/// signature count and signatures.
pub const MAX_LEN: usize = 4 + 2 + MAX_BODY + 1 + MAX_SIGNATURES * (8 + 64);

/// One signature: the key's id and the 64 signature bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sig {
    /// The signing key's id.
    pub key: KeyId,
    /// The Ed25519 signature.
    pub sig: [u8; 64],
}

/// A parsed envelope; `len` is how many bytes it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The signed body.
    pub body: Vec<u8>,
    /// Its signatures, in file order.
    pub sigs: Vec<Sig>,
    /// Bytes taken by the envelope.
    pub len: usize,
}

/// Why an envelope does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Wrong magic: not this kind of file.
    #[error("not a {0} (wrong magic bytes)")]
    Magic(&'static str),
    /// Cut short.
    #[error("truncated: {0}")]
    Truncated(&'static str),
    /// Body or signature count over its cap.
    #[error("{what} is {found}, more than the {max} accepted")]
    TooLarge {
        /// What.
        what: &'static str,
        /// Found.
        found: usize,
        /// The cap.
        max: usize,
    },
}

/// Appends an envelope. A body or a signature count over what [`decode`]
/// accepts is refused (nothing is appended): no file is written that no
/// node would read.
pub fn encode(
    out: &mut Vec<u8>,
    magic: &[u8; 4],
    body: &[u8],
    sigs: &[Sig],
) -> Result<(), EnvelopeError> {
    if body.len() > MAX_BODY {
        return Err(EnvelopeError::TooLarge {
            what: "the signed body",
            found: body.len(),
            max: MAX_BODY,
        });
    }
    if sigs.len() > MAX_SIGNATURES {
        return Err(EnvelopeError::TooLarge {
            what: "the signature count",
            found: sigs.len(),
            max: MAX_SIGNATURES,
        });
    }
    // Both fit: MAX_BODY < 2^16 and MAX_SIGNATURES < 2^8.
    let body_len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let count = u8::try_from(sigs.len()).unwrap_or(u8::MAX);
    out.extend_from_slice(magic);
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(body);
    out.push(count);
    for s in sigs {
        out.extend_from_slice(&s.key);
        out.extend_from_slice(&s.sig);
    }
    Ok(())
}

/// Parses the envelope at the start of `bytes`.
pub fn decode(
    bytes: &[u8],
    magic: &[u8; 4],
    what: &'static str,
) -> Result<Envelope, EnvelopeError> {
    if bytes.len() < 4 {
        return Err(EnvelopeError::Truncated("magic"));
    }
    if &bytes[..4] != magic {
        return Err(EnvelopeError::Magic(what));
    }
    let len_bytes = bytes
        .get(4..6)
        .ok_or(EnvelopeError::Truncated("body length"))?;
    let body_len = usize::from(u16::from_le_bytes([len_bytes[0], len_bytes[1]]));
    if body_len > MAX_BODY {
        return Err(EnvelopeError::TooLarge {
            what: "the signed body",
            found: body_len,
            max: MAX_BODY,
        });
    }
    let body = bytes
        .get(6..6 + body_len)
        .ok_or(EnvelopeError::Truncated("body"))?
        .to_vec();
    let mut at = 6 + body_len;
    let n = usize::from(
        *bytes
            .get(at)
            .ok_or(EnvelopeError::Truncated("signature count"))?,
    );
    at += 1;
    if n > MAX_SIGNATURES {
        return Err(EnvelopeError::TooLarge {
            what: "the signature count",
            found: n,
            max: MAX_SIGNATURES,
        });
    }
    let mut sigs = Vec::with_capacity(n);
    for _ in 0..n {
        let raw = bytes
            .get(at..at + 72)
            .ok_or(EnvelopeError::Truncated("signature"))?;
        let mut key = [0u8; 8];
        key.copy_from_slice(&raw[..8]);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(&raw[8..]);
        sigs.push(Sig { key, sig });
        at += 72;
    }
    Ok(Envelope {
        body,
        sigs,
        len: at,
    })
}

/// Bytes an envelope takes before its signatures and after the body.
pub fn overhead(n_sigs: usize) -> usize {
    4 + 2 + 1 + 72 * n_sigs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_cut_is_an_error() {
        let sigs = vec![
            Sig {
                key: [1; 8],
                sig: [2; 64],
            },
            Sig {
                key: [3; 8],
                sig: [4; 64],
            },
        ];
        let mut v = Vec::new();
        encode(&mut v, b"TEST", b"hello", &sigs).unwrap();
        v.extend_from_slice(b"payload");
        let e = decode(&v, b"TEST", "test").unwrap();
        assert_eq!(e.body, b"hello");
        assert_eq!(e.sigs, sigs);
        assert_eq!(&v[e.len..], b"payload");
        assert_eq!(e.len, 5 + overhead(2));
        for cut in 0..e.len {
            assert!(decode(&v[..cut], b"TEST", "test").is_err(), "cut at {cut}");
        }
        assert_eq!(
            decode(&v, b"ROOT", "root"),
            Err(EnvelopeError::Magic("root"))
        );
    }

    #[test]
    fn what_decode_would_refuse_is_not_encoded() {
        let sig = Sig {
            key: [1; 8],
            sig: [2; 64],
        };
        let mut v = Vec::new();
        // The largest accepted body and signature count round-trip.
        let body = vec![7u8; MAX_BODY];
        encode(&mut v, b"TEST", &body, &vec![sig.clone(); MAX_SIGNATURES]).unwrap();
        let e = decode(&v, b"TEST", "test").unwrap();
        assert_eq!(
            (e.body.len(), e.sigs.len(), e.len),
            (MAX_BODY, MAX_SIGNATURES, v.len())
        );
        // One more of either is refused and nothing is written. (A body
        // of 65 536 bytes used to wrap its u16 length to 0.)
        for (body, n) in [
            (MAX_BODY + 1, 1),
            (65_536, 1),
            (10, MAX_SIGNATURES + 1),
            (10, 256),
        ] {
            let mut v = b"keep".to_vec();
            let r = encode(&mut v, b"TEST", &vec![0u8; body], &vec![sig.clone(); n]);
            assert!(
                matches!(r, Err(EnvelopeError::TooLarge { .. })),
                "{body} bytes, {n} signatures: {r:?}"
            );
            assert_eq!(v, b"keep");
        }
    }
}
