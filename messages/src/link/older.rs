//! Replies laid out by nodes of an older minor version.
//!
//! A status reply carries the node's [`StatusRecord`] by position, and the
//! record's newer fields are appended at its end, which is also the end of
//! the frame. A node with an older firmware therefore sends a shorter
//! payload than this build's layout reads, and `field-tools` would refuse
//! it. [`ResponseEnvelope`]'s [`LinkMessage::decode_older`] reads such a
//! payload with the layouts the status record had before (newest first):
//! fields that did not exist then are unknown, as when the record comes
//! over the uplink.

use serde::de::DeserializeOwned;

use super::frame::LinkMessage;
use super::proto::{RequestEnvelope, Response, ResponseEnvelope};
use crate::StatusRecord;
use crate::status::{
    StatusRecordV1, StatusRecordV2, StatusRecordV3, StatusRecordV4, StatusRecordV5, StatusRecordV6,
    StatusRecordV7,
};

/// The position of [`Response::Status`] among the responses (postcard
/// writes it as a varint before the variant's fields).
const STATUS_VARIANT: u32 = 5;

impl LinkMessage for RequestEnvelope {}

impl LinkMessage for ResponseEnvelope {
    fn decode_older(payload: &[u8]) -> Option<Self> {
        let (id, rest) = postcard::take_from_bytes::<u32>(payload).ok()?;
        let (variant, rest) = postcard::take_from_bytes::<u32>(rest).ok()?;
        if variant != STATUS_VARIANT {
            return None;
        }
        let record = exactly::<StatusRecordV7>(rest)
            .or_else(|| exactly::<StatusRecordV6>(rest))
            .or_else(|| exactly::<StatusRecordV5>(rest))
            .or_else(|| exactly::<StatusRecordV4>(rest))
            .or_else(|| exactly::<StatusRecordV3>(rest))
            .or_else(|| exactly::<StatusRecordV2>(rest))
            .or_else(|| exactly::<StatusRecordV1>(rest))?;
        Some(ResponseEnvelope {
            id,
            body: Response::Status(Box::new(record)),
        })
    }
}

/// `bytes` read as one older layout that uses every byte: each layout is
/// its predecessor with fields appended, so a newer layout runs out of
/// bytes on an older record and an older one leaves some unread.
fn exactly<V: DeserializeOwned + Into<StatusRecord>>(bytes: &[u8]) -> Option<StatusRecord> {
    match postcard::take_from_bytes::<V>(bytes) {
        Ok((v, [])) => Some(v.into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{FrameDecoder, LinkError, encode_frame};
    use crate::{
        DetectionHealth, ModelVersion, NotStored, PowerModeCode, SensorHealth, SensorState,
    };
    use serde::Serialize;

    fn record() -> StatusRecord {
        StatusRecord {
            id: 0,
            node_id: "old-node".into(),
            time_ms: 1_780_000_000_000,
            uptime_s: 3_600,
            battery_permille: 812,
            battery_mv: 12_610,
            power_mode: PowerModeCode::Normal,
            air_temp_c100: Some(1_234),
            board_temp_c100: Some(4_100),
            sensors: SensorHealth {
                microphone: SensorState::Ok,
                camera: SensorState::Absent,
                climate: SensorState::Degraded,
                model: SensorState::Ok,
            },
            queue: [1, 2, 3, 4],
            drops: Default::default(),
            model: ModelVersion(14),
            last_contact_ms: Some(1_779_999_000_000),
            cause: Default::default(),
            update: Default::default(),
            disk: Default::default(),
            clock: Default::default(),
            detection: Some(DetectionHealth {
                events_cut_at_max: 2,
                events_joined: 40,
            }),
            not_stored: Some(NotStored {
                excluded: 0,
                background_dropped: 1,
                uncertain_background: 9,
                sun_heat_rises: 2,
            }),
        }
    }

    /// A status reply framed as a node with the layout `V` sends it.
    fn framed<V: Serialize>(id: u32, record: &V) -> Vec<u8> {
        encode_frame(&(id, STATUS_VARIANT, record)).unwrap()
    }

    fn decode(wire: &[u8]) -> Vec<Result<ResponseEnvelope, LinkError>> {
        FrameDecoder::<ResponseEnvelope>::new().feed(wire)
    }

    #[test]
    fn the_status_variant_is_where_this_build_writes_it() {
        let current = ResponseEnvelope {
            id: 7,
            body: Response::Status(Box::new(record())),
        };
        assert_eq!(
            encode_frame(&current).unwrap(),
            framed(7, &record()),
            "Response::Status moved: update STATUS_VARIANT"
        );
    }

    #[test]
    fn a_status_reply_of_an_older_node_decodes_with_what_it_carried() {
        let full = record();
        let v7 = StatusRecord {
            not_stored: None,
            ..full.clone()
        };
        let v6 = StatusRecord {
            detection: None,
            ..v7.clone()
        };
        for (wire, expected) in [
            (framed(9, &StatusRecordV7::from(&full)), v7),
            (framed(9, &StatusRecordV6::from(&full)), v6),
        ] {
            let got = decode(&wire);
            let [Ok(reply)] = got.as_slice() else {
                panic!("{got:?}")
            };
            assert_eq!(reply.id, 9);
            let Response::Status(s) = &reply.body else {
                panic!("{reply:?}")
            };
            assert_eq!(**s, expected);
        }
    }

    #[test]
    fn an_older_layout_is_read_only_when_it_uses_every_byte() {
        let mut payload =
            postcard::to_allocvec(&(3u32, STATUS_VARIANT, StatusRecordV6::from(&record())))
                .unwrap();
        assert!(ResponseEnvelope::decode_older(&payload).is_some());
        // One stray byte after a v6 record is no layout's record.
        payload.push(7);
        assert!(ResponseEnvelope::decode_older(&payload).is_none());
    }

    #[test]
    fn other_replies_and_damaged_status_replies_stay_decode_errors() {
        let pong_with_junk = encode_frame(&(4u32, 4u32, 0xffu8)).unwrap();
        assert!(
            decode(&pong_with_junk)[0].is_ok(),
            "appended bytes are read past"
        );
        let short_status = encode_frame(&(4u32, STATUS_VARIANT, 1u8)).unwrap();
        assert!(
            matches!(
                decode(&short_status)[0],
                Err(LinkError::Decode { id: Some(4), .. })
            ),
            "{:?}",
            decode(&short_status)
        );
        let unknown_variant = encode_frame(&(4u32, 200u32)).unwrap();
        assert!(matches!(
            decode(&unknown_variant)[0],
            Err(LinkError::Decode { .. })
        ));
    }
}
