//! From a callback's payload bytes to the MQTT messages the node itself
//! would have published: an SBD packing (`messages::pack`, first byte
//! [`PACK_VERSION`]) is unpacked under the node id of the modem; a lone
//! record (kind byte 1, or 2 to 4 for the status record's versions) is
//! decoded and must name that same node. Each
//! record becomes its binary envelope (`encode_event` / `encode_status`) on
//! `<prefix>/<node_id>/events` or `/status`, as `uplink::mqtt` sends it.

use messages::pack::PACK_VERSION;
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
        Some(&PACK_VERSION) | None => Ok(messages::unpack(data, node_id)?),
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
        // The packing has no record count: a cut on a record boundary is a
        // valid shorter packing. A cut never yields a wrong record.
        let mut errors = 0;
        for cut in 1..packed.len() {
            match decode(&packed[..cut], "n7") {
                Ok(back) => assert_eq!(back, records[..back.len()], "cut at {cut}"),
                Err(_) => errors += 1,
            }
        }
        assert!(
            errors >= packed.len() - 3,
            "{errors} of {} cuts refused",
            packed.len() - 1
        );
        assert!(decode(&[], "n7").is_err());
        assert!(decode(&[0xee, 1, 2], "n7").is_err());
    }
}
