//! From a callback's payload bytes to the MQTT messages the node itself
//! would have published: an SBD packing (`messages::pack`, first byte
//! [`messages::pack::PACK_VERSION`], or [`messages::pack::PACK_VERSION_1`]
//! from a node built before the packing carried a record count and a
//! checksum) is unpacked under the node id of the modem; a lone record
//! (any kind byte `messages::decode_message` reads: event records v1 to
//! v3, status records v1 to v7) is decoded and must name that same node. Each
//! record becomes its binary envelope (`encode_event` / `encode_status`) on
//! `<prefix>/<node_id>/events` or `/status`, as `uplink::mqtt` sends it.

use messages::{DecodeError, Message, UnpackError};
use uplink::mqtt::Topics;

use super::publisher::Publish;

/// Why a payload yields no records.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    /// A packed message that does not unpack.
    #[error("packed message: {0}")]
    Unpack(#[from] UnpackError),
    /// A lone record that does not decode.
    #[error("record: {0}")]
    Decode(#[from] DecodeError),
    /// A lone record that names another node than the modem's.
    #[error("record names node {found:?}, the modem belongs to {expected:?}")]
    WrongNode {
        /// The modem's node.
        expected: String,
        /// The record's node.
        found: String,
    },
}

/// The records in `data`, sent by the modem of `node_id`.
pub fn decode(data: &[u8], node_id: &str) -> Result<Vec<Message>, RecordsError> {
    match data.first() {
        Some(&b) if messages::pack::is_packed(b) => Ok(messages::unpack(data, node_id)?),
        None => Ok(messages::unpack(data, node_id)?),
        Some(_) => {
            let message = messages::decode_message(data)?;
            if message.node_id() != node_id {
                return Err(RecordsError::WrongNode {
                    expected: node_id.to_string(),
                    found: message.node_id().to_string(),
                });
            }
            Ok(vec![message])
        }
    }
}

/// The MQTT message of each record, in order.
pub fn to_publishes(records: &[Message], prefix: &str, node_id: &str) -> Vec<Publish> {
    let topics = Topics::new(prefix, node_id);
    records
        .iter()
        .map(|m| match m {
            Message::Event(e) => Publish {
                topic: topics.events.clone(),
                payload: messages::encode_event(e),
            },
            Message::Status(s) => Publish {
                topic: topics.status.clone(),
                payload: messages::encode_status(s),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::{EventClass, EventRecord, ModelVersion, Permille};

    fn event(id: u64, node: &str) -> EventRecord {
        EventRecord {
            id,
            node_id: node.into(),
            start_ms: 1_780_000_000_000 + id as i64 * 1000,
            duration_ms: 1500,
            class: EventClass::Wildlife,
            confidence: Permille(800),
            scores: Default::default(),
            features: Default::default(),
            model: ModelVersion::default(),
            time: Default::default(),
            mono: None,
        }
    }

    #[test]
    fn a_packing_unpacks_under_the_modems_node() {
        let records: Vec<Message> = (1..=3).map(|i| Message::Event(event(i, "n7"))).collect();
        let packed = messages::pack(&records, 340).expect("packs");
        let back = decode(&packed.bytes, "n7").expect("decodes");
        assert_eq!(back, records);
        let out = to_publishes(&back, "field", "n7");
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|p| p.topic == "field/n7/events"));
        assert_eq!(
            messages::decode_message(&out[1].payload).expect("envelope"),
            records[1]
        );
    }

    #[test]
    fn a_lone_record_must_name_the_modems_node() {
        let lone = messages::encode_event(&event(5, "n7"));
        assert_eq!(
            decode(&lone, "n7").expect("decodes"),
            vec![Message::Event(event(5, "n7"))]
        );
        assert!(matches!(
            decode(&lone, "n8"),
            Err(RecordsError::WrongNode { .. })
        ));
    }

    #[test]
    fn an_update_result_by_satellite_reaches_the_status_topic_whole() {
        let status = messages::StatusRecord {
            id: 6,
            node_id: "n7".into(),
            time_ms: 1_780_000_000_000,
            uptime_s: 10,
            battery_permille: 900,
            battery_mv: 0,
            power_mode: messages::PowerModeCode::Normal,
            air_temp_c100: None,
            board_temp_c100: None,
            sensors: Default::default(),
            queue: [0, 0, 1, 0],
            drops: Default::default(),
            model: ModelVersion(4),
            last_contact_ms: None,
            cause: messages::StatusCause::UpdateResult,
            update: messages::UpdateStatus {
                model_active: 4,
                model_staged: None,
                settings: 0,
                last: Some(messages::UpdateResult {
                    kind: messages::BundleKindCode::Model,
                    name: messages::ShortText::new("fusion"),
                    version: 5,
                    result: messages::UpdateOutcome::RolledBack,
                    reason: messages::ShortText::new("self_test: vector 2 differs"),
                }),
            },
            disk: messages::DiskReport {
                free_mib: Some(3_100),
                state: messages::DiskStateCode::Ok,
                evicted: 0,
            },
            clock: Default::default(),
            detection: Some(messages::DetectionHealth {
                events_cut_at_max: 4,
                events_joined: 130,
            }),
            not_stored: Some(messages::NotStored {
                excluded: 1,
                background_dropped: 0,
                uncertain_background: 22,
                sun_heat_rises: 0,
            }),
        };
        let records = vec![
            Message::Event(event(5, "n7")),
            Message::Status(status.clone()),
        ];
        let packed = messages::pack(&records, 340).expect("packs");
        let back = decode(&packed.bytes, "n7").expect("decodes");
        assert_eq!(back, records);
        let out = to_publishes(&back, "field", "n7");
        assert_eq!(out[1].topic, "field/n7/status");
        assert_eq!(
            crate::pull::decode_payload(&out[1].topic, &out[1].payload).expect("pull reads it"),
            crate::pull::Record::Status(status)
        );
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        let records: Vec<Message> = (1..=3).map(|i| Message::Event(event(i, "n7"))).collect();
        let packed = messages::pack(&records, 340).expect("packs").bytes;
        // The packing carries its record count and a checksum: every cut,
        // on a record boundary too, is refused.
        for cut in 1..packed.len() {
            assert!(
                matches!(decode(&packed[..cut], "n7"), Err(RecordsError::Unpack(_))),
                "cut at {cut} decoded"
            );
        }
        let mut flipped = packed.clone();
        flipped[7] ^= 0x10;
        assert!(matches!(
            decode(&flipped, "n7"),
            Err(RecordsError::Unpack(UnpackError::Checksum { .. }))
        ));
        assert!(decode(&[], "n7").is_err());
        assert!(decode(&[0xee, 1, 2], "n7").is_err());
    }

    #[test]
    fn a_packing_of_the_first_version_is_still_accepted() {
        // What a node built before the record count and the checksum sends:
        // the same records behind a one-byte header.
        let records: Vec<Message> = (1..=3).map(|i| Message::Event(event(i, "n7"))).collect();
        let v2 = messages::pack(&records, 340).expect("packs").bytes;
        let mut v1 = vec![messages::pack::PACK_VERSION_1];
        v1.extend_from_slice(&v2[4..]);
        assert_eq!(decode(&v1, "n7").expect("decodes"), records);
        // It cannot tell a cut on a record boundary: that is a shorter
        // packing, never a wrong record.
        for cut in 1..v1.len() {
            if let Ok(back) = decode(&v1[..cut], "n7") {
                assert_eq!(back, records[..back.len()], "cut at {cut}");
            }
        }
    }
}
