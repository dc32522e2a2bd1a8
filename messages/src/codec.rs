//! The versioned binary envelope of an [`EventRecord`]: one version byte,
//! then the record encoded with postcard (varint integers, length-prefixed
//! strings, one tag byte per `Option`). See `docs/wire-format.md`.

use crate::EventRecord;

/// The version byte written by [`encode_event`].
pub const EVENT_RECORD_VERSION: u8 = 1;

/// Why bytes could not be decoded into an [`EventRecord`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty event record")]
    Empty,
    /// A version byte this build does not understand.
    #[error(
        "unsupported event record version {found} (this build reads version {EVENT_RECORD_VERSION})"
    )]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// The body did not decode.
    #[error("malformed event record body: {0}")]
    Malformed(String),
    /// The body decoded but bytes were left over.
    #[error("event record has {0} trailing bytes")]
    Trailing(usize),
}

/// Encodes a record as `[EVENT_RECORD_VERSION][postcard body]`.
pub fn encode_event(record: &EventRecord) -> Vec<u8> {
    let out = vec![EVENT_RECORD_VERSION];
    // Serialising a plain struct into a growable Vec cannot fail.
    match postcard::to_extend(record, out) {
        Ok(v) => v,
        Err(_) => unreachable!("postcard serialisation into a Vec is infallible"),
    }
}

/// Decodes bytes written by [`encode_event`].
pub fn decode_event(bytes: &[u8]) -> Result<EventRecord, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != EVENT_RECORD_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    let (record, rest) = postcard::take_from_bytes::<EventRecord>(body)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventClass, KeyFeatures, ModalityScores, ModelVersion, Permille};

    fn sample() -> EventRecord {
        EventRecord {
            id: 1234,
            node_id: "node-07".into(),
            start_ms: 1_780_000_000_000,
            duration_ms: 4_250,
            class: EventClass::Wildlife,
            confidence: Permille(870),
            scores: ModalityScores {
                audio: Some(Permille(910)),
                camera: Some(Permille(640)),
                climate: None,
            },
            features: KeyFeatures {
                audio_snr_db10: Some(183),
                audio_peak_hz: Some(3150),
                motion_area: Some(Permille(42)),
                motion_centroid: Some((200, 120)),
                temp_delta_c100: Some(-3),
                temp_c100: Some(1850),
            },
            model: ModelVersion::TRIGGERS_ONLY,
        }
    }

    #[test]
    fn round_trips() {
        let r = sample();
        let bytes = encode_event(&r);
        assert_eq!(decode_event(&bytes), Ok(r));
    }

    #[test]
    fn a_full_record_is_compact() {
        // Several records must fit one 340-byte satellite message.
        let bytes = encode_event(&sample());
        eprintln!(
            "encoded size of a full record (7-character node id): {} bytes",
            bytes.len()
        );
        assert!(bytes.len() <= 48, "encoded size {} bytes", bytes.len());
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        let bytes = encode_event(&sample());
        assert_eq!(decode_event(&[]), Err(DecodeError::Empty));
        assert_eq!(
            decode_event(&[9, 1, 2]),
            Err(DecodeError::UnsupportedVersion { found: 9 })
        );
        for cut in 1..bytes.len() {
            assert!(
                decode_event(&bytes[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode_event(&long), Err(DecodeError::Trailing(1)));
        // Arbitrary garbage never panics.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let mut junk = vec![EVENT_RECORD_VERSION];
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                junk.push(x as u8);
            }
            let _ = decode_event(&junk);
        }
    }

    #[test]
    fn class_names_round_trip() {
        for c in EventClass::ALL {
            assert_eq!(EventClass::parse(c.as_str()), Some(c));
        }
        assert_eq!(EventClass::parse("dragon"), None);
    }
}
