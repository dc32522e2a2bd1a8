//! Authentication of a callback: the `JWT` form field must carry a valid
//! signature (RS256 with RockBLOCK's public key, or HS256 with a shared
//! secret for a relay of our own) and its claims must repeat the form's
//! `imei`, `momsn` and `data` (and `transmit_time` when the token has it),
//! so that a signed token cannot be replayed with another payload.

use std::collections::HashMap;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::callback::Callback;

/// How callbacks are authenticated.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
    algorithm: Algorithm,
}

/// Why the verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The PEM file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The file holds no RSA public key.
    #[error("{path}: not an RSA public key in PEM: {reason}")]
    NotRsa {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The shared secret is too short to be one.
    #[error("shared secret shorter than 16 bytes")]
    ShortSecret,
    /// The JWT library refused the secret.
    #[error("shared secret: {0}")]
    Secret(String),
}

/// Why a callback is not authentic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `JWT` field.
    #[error("no JWT")]
    Missing,
    /// The token does not verify (signature, algorithm, format).
    #[error("JWT rejected: {0}")]
    Invalid(String),
    /// The token verifies but a claim differs from the form field.
    #[error("JWT claim {claim} does not match the form")]
    Mismatch {
        /// The claim.
        claim: &'static str,
    },
    /// The token verifies but lacks a claim that must be there.
    #[error("JWT has no {claim} claim")]
    MissingClaim {
        /// The claim.
        claim: &'static str,
    },
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut v = Validation::new(algorithm);
    // RockBLOCK's token has `iss` and `iat` only; a replay with other
    // contents is caught by the claim comparison, a replay of the same
    // message is a duplicate delivery, which is harmless.
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    v
}

impl Verifier {
    /// RS256 with an RSA public key (PEM, `PUBLIC KEY` or `RSA PUBLIC KEY`).
    pub fn rs256_pem(pem: &[u8], path: &str) -> Result<Verifier, KeyError> {
        let key = DecodingKey::from_rsa_pem(pem).map_err(|e| KeyError::NotRsa {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Verifier {
            key,
            validation: validation(Algorithm::RS256),
            algorithm: Algorithm::RS256,
        })
    }

    /// RS256 with the public key in `path`.
    pub fn rs256_file(path: &Path) -> Result<Verifier, KeyError> {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|error| KeyError::Read {
            path: shown.clone(),
            error,
        })?;
        Verifier::rs256_pem(&pem, &shown)
    }

    /// HS256 with a shared secret (at least 16 bytes).
    pub fn hs256(secret: &[u8]) -> Result<Verifier, KeyError> {
        if secret.len() < 16 {
            return Err(KeyError::ShortSecret);
        }
        let key = DecodingKey::from_secret(secret).map_err(|e| KeyError::Secret(e.to_string()))?;
        Ok(Verifier {
            key,
            validation: validation(Algorithm::HS256),
            algorithm: Algorithm::HS256,
        })
    }

    /// The algorithm tokens must be signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks the callback's token and that its claims match the form.
    pub fn verify(&self, cb: &Callback) -> Result<(), AuthError> {
        let token = cb.jwt.as_deref().ok_or(AuthError::Missing)?;
        let data = jsonwebtoken::decode::<HashMap<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let claims = data.claims;
        let text = |claim: &'static str| -> Result<Option<String>, AuthError> {
            match claims.get(claim) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.trim().to_string())),
                Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(AuthError::Mismatch { claim }),
            }
        };
        let required = |claim: &'static str| -> Result<String, AuthError> {
            text(claim)?.ok_or(AuthError::MissingClaim { claim })
        };
        if required("imei")? != cb.imei {
            return Err(AuthError::Mismatch { claim: "imei" });
        }
        if required("momsn")?.parse::<u32>().ok() != Some(cb.momsn) {
            return Err(AuthError::Mismatch { claim: "momsn" });
        }
        // Hex case is not meaningful; the bytes are.
        if hex::decode(required("data")?).ok().as_deref() != Some(cb.data.as_slice()) {
            return Err(AuthError::Mismatch { claim: "data" });
        }
        if let Some(t) = text("transmit_time")?
            && t != cb.transmit_time.trim()
        {
            return Err(AuthError::Mismatch {
                claim: "transmit_time",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &[u8] = b"a shared secret of some length";

    fn callback(jwt: Option<String>) -> Callback {
        Callback {
            imei: "300234010753370".into(),
            momsn: 12,
            transmit_time: "25-06-01 12:00:00".into(),
            transmit_ms: 0,
            iridium_latitude: 0.0,
            iridium_longitude: 0.0,
            iridium_cep: 3.0,
            data_hex: "0102ff".into(),
            data: vec![1, 2, 0xff],
            jwt,
        }
    }

    fn token(claims: serde_json::Value, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret).expect("secret key"),
        )
        .expect("encodes")
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "Rock 7", "iat": 1_700_000_000u64, "imei": "300234010753370",
            "momsn": "12", "transmit_time": "25-06-01 12:00:00", "data": "0102FF",
        })
    }

    #[test]
    fn matching_claims_verify() {
        let v = Verifier::hs256(SECRET).expect("secret");
        assert_eq!(v.verify(&callback(Some(token(claims(), SECRET)))), Ok(()));
    }

    #[test]
    fn wrong_key_missing_token_and_mismatches_are_rejected() {
        let v = Verifier::hs256(SECRET).expect("secret");
        assert_eq!(v.verify(&callback(None)), Err(AuthError::Missing));
        let forged = token(claims(), b"another secret, same length!!!");
        assert!(matches!(
            v.verify(&callback(Some(forged))),
            Err(AuthError::Invalid(_))
        ));
        assert!(matches!(
            v.verify(&callback(Some("not.a.jwt".into()))),
            Err(AuthError::Invalid(_))
        ));
        for (claim, value) in [
            ("imei", serde_json::json!("300234010753371")),
            ("momsn", serde_json::json!("13")),
            ("data", serde_json::json!("0102fe")),
            ("transmit_time", serde_json::json!("25-06-01 12:00:01")),
        ] {
            let mut c = claims();
            c[claim] = value;
            assert_eq!(
                v.verify(&callback(Some(token(c, SECRET)))),
                Err(AuthError::Mismatch { claim }),
            );
        }
        let mut c = claims();
        c.as_object_mut().expect("object").remove("data");
        assert_eq!(
            v.verify(&callback(Some(token(c, SECRET)))),
            Err(AuthError::MissingClaim { claim: "data" })
        );
    }

    #[test]
    fn unusable_keys_are_refused() {
        let pem = b"-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n";
        assert!(Verifier::rs256_pem(pem, "test").is_err());
        assert!(matches!(
            Verifier::hs256(b"short"),
            Err(KeyError::ShortSecret)
        ));
    }
}
