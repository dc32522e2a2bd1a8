//! The versioned binary envelope of the outbox records: one byte that names
//! the record kind and its version, then the record encoded with postcard
//! (varint integers, length-prefixed strings, one tag byte per `Option`).
//! See `docs/wire-format.md`.

use crate::event::{EventRecordV1, EventRecordV2};
use crate::status::{
    StatusRecordV1, StatusRecordV2, StatusRecordV3, StatusRecordV4, StatusRecordV5, StatusRecordV6,
    StatusRecordV7,
};
use crate::{EventRecord, StatusRecord};

/// The first byte of an event record of version 1 (without
/// [`EventRecord::time`]); still decoded, into an [`EventRecord`] whose
/// time quality is unknown.
pub const EVENT_RECORD_V1: u8 = 1;
/// The first byte of an event record of version 2 (with
/// [`EventRecord::time`], without [`EventRecord::mono`]); still decoded,
/// into an [`EventRecord`] without a monotonic reference.
pub const EVENT_RECORD_V2: u8 = 5;
/// The first byte written by [`encode_event`]: an event record, version 3
/// (with [`EventRecord::mono`] at its end).
pub const EVENT_RECORD_VERSION: u8 = 9;
/// The first byte of a status record of version 1 (without the update
/// fields); still decoded, into a [`StatusRecord`] with those fields empty.
pub const STATUS_RECORD_V1: u8 = 2;
/// The first byte of a status record of version 2 (with
/// [`StatusRecord::cause`] and [`StatusRecord::update`], without
/// [`StatusRecord::disk`]); still decoded, into a [`StatusRecord`] whose
/// disk part is unknown.
pub const STATUS_RECORD_V2: u8 = 3;
/// The first byte of a status record of version 3 (with
/// [`StatusRecord::disk`], without [`StatusRecord::clock`]); still decoded,
/// into a [`StatusRecord`] whose clock part is unknown.
pub const STATUS_RECORD_V3: u8 = 4;
/// The first byte of a status record of version 4 (with
/// [`StatusRecord::clock`], without its RTC, [`crate::ClockStatus::rtc`]);
/// still decoded, into a [`StatusRecord`] whose RTC is unknown.
pub const STATUS_RECORD_V4: u8 = 6;
/// The first byte of a status record of version 5 (with the RTC,
/// [`crate::ClockStatus::rtc`], without the last sleep,
/// [`crate::ClockStatus::sleep`]); still decoded, into a [`StatusRecord`]
/// without a last sleep.
pub const STATUS_RECORD_V5: u8 = 7;
/// The first byte of a status record of version 6 (with the last sleep,
/// [`crate::ClockStatus::sleep`], without the detector's health,
/// [`StatusRecord::detection`]); still decoded, into a [`StatusRecord`]
/// whose detection part is not reported (none).
pub const STATUS_RECORD_V6: u8 = 8;
/// The first byte of a status record of version 7 (with the detector's
/// health, [`StatusRecord::detection`], without the events not stored,
/// [`StatusRecord::not_stored`]); still decoded, into a [`StatusRecord`]
/// whose events not stored are not reported (none).
pub const STATUS_RECORD_V7: u8 = 10;
/// The first byte written by [`encode_status`]: a status record, version 8
/// (with the events not stored, [`StatusRecord::not_stored`], at its end).
pub const STATUS_RECORD_VERSION: u8 = 11;

/// Any record of the outbox, as decoded by [`decode_message`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A detected event.
    Event(EventRecord),
    /// A status report.
    Status(StatusRecord),
}

impl Message {
    /// The record's id (events and status reports share one sequence).
    pub fn id(&self) -> u64 {
        match self {
            Message::Event(e) => e.id,
            Message::Status(s) => s.id,
        }
    }

    /// The node that made the record.
    pub fn node_id(&self) -> &str {
        match self {
            Message::Event(e) => &e.node_id,
            Message::Status(s) => &s.node_id,
        }
    }

    /// Encodes the record with its envelope.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Event(e) => encode_event(e),
            Message::Status(s) => encode_status(s),
        }
    }
}

/// Why bytes could not be decoded into an [`EventRecord`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty event record")]
    Empty,
    /// A version byte this build does not understand.
    #[error(
        "unsupported record kind/version byte {found} (this build reads {EVENT_RECORD_V1} = event v1, {EVENT_RECORD_V2} = event v2, {EVENT_RECORD_VERSION} = event v3, {STATUS_RECORD_V1} = status v1, {STATUS_RECORD_V2} = status v2, {STATUS_RECORD_V3} = status v3, {STATUS_RECORD_V4} = status v4, {STATUS_RECORD_V5} = status v5, {STATUS_RECORD_V6} = status v6, {STATUS_RECORD_V7} = status v7, {STATUS_RECORD_VERSION} = status v8)"
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

fn encode_with<T: serde::Serialize>(first: u8, record: &T) -> Vec<u8> {
    // Serialising a plain struct into a growable Vec cannot fail.
    match postcard::to_extend(record, vec![first]) {
        Ok(v) => v,
        Err(_) => unreachable!("postcard serialisation into a Vec is infallible"),
    }
}

fn decode_body<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    let (record, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Trailing(rest.len()));
    }
    Ok(record)
}

/// Encodes an event as `[EVENT_RECORD_VERSION][postcard body]`.
pub fn encode_event(record: &EventRecord) -> Vec<u8> {
    encode_with(EVENT_RECORD_VERSION, record)
}

/// Encodes a status report as `[STATUS_RECORD_VERSION][postcard body]`.
pub fn encode_status(record: &StatusRecord) -> Vec<u8> {
    encode_with(STATUS_RECORD_VERSION, record)
}

/// Decodes bytes written by [`encode_event`] (and nothing else).
pub fn decode_event(bytes: &[u8]) -> Result<EventRecord, DecodeError> {
    match decode_message(bytes)? {
        Message::Event(e) => Ok(e),
        Message::Status(_) => Err(DecodeError::UnsupportedVersion {
            found: STATUS_RECORD_VERSION,
        }),
    }
}

/// Decodes bytes written by [`encode_event`] or [`encode_status`].
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let (&first, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    match first {
        EVENT_RECORD_V1 => {
            decode_body::<EventRecordV1>(body).map(|v1| Message::Event(EventRecord::from(v1)))
        }
        EVENT_RECORD_V2 => {
            decode_body::<EventRecordV2>(body).map(|v2| Message::Event(EventRecord::from(v2)))
        }
        EVENT_RECORD_VERSION => decode_body(body).map(Message::Event),
        STATUS_RECORD_V1 => {
            decode_body::<StatusRecordV1>(body).map(|v1| Message::Status(StatusRecord::from(v1)))
        }
        STATUS_RECORD_V2 => {
            decode_body::<StatusRecordV2>(body).map(|v2| Message::Status(StatusRecord::from(v2)))
        }
        STATUS_RECORD_V3 => {
            decode_body::<StatusRecordV3>(body).map(|v3| Message::Status(StatusRecord::from(v3)))
        }
        STATUS_RECORD_V4 => {
            decode_body::<StatusRecordV4>(body).map(|v4| Message::Status(StatusRecord::from(v4)))
        }
        STATUS_RECORD_V5 => {
            decode_body::<StatusRecordV5>(body).map(|v5| Message::Status(StatusRecord::from(v5)))
        }
        STATUS_RECORD_V6 => {
            decode_body::<StatusRecordV6>(body).map(|v6| Message::Status(StatusRecord::from(v6)))
        }
        STATUS_RECORD_V7 => {
            decode_body::<StatusRecordV7>(body).map(|v7| Message::Status(StatusRecord::from(v7)))
        }
        STATUS_RECORD_VERSION => decode_body(body).map(Message::Status),
        found => Err(DecodeError::UnsupportedVersion { found }),
    }
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
            time: crate::TimeQuality {
                source: crate::TimeSource::Iridium,
                uncertainty_ms: Some(1_400),
                restamped: true,
            },
            mono: None,
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
        assert!(bytes.len() <= 52, "encoded size {} bytes", bytes.len());
    }

    #[test]
    fn an_event_record_of_version_1_still_decodes_with_an_unknown_time_quality() {
        let r = sample();
        let v1 = crate::event::EventRecordV1 {
            id: r.id,
            node_id: r.node_id.clone(),
            start_ms: r.start_ms,
            duration_ms: r.duration_ms,
            class: r.class,
            confidence: r.confidence,
            scores: r.scores,
            features: r.features,
            model: r.model,
        };
        let bytes = encode_with(EVENT_RECORD_V1, &v1);
        let back = decode_event(&bytes).unwrap();
        assert_eq!(back.time, crate::TimeQuality::default());
        assert_eq!(
            back,
            EventRecord {
                time: Default::default(),
                ..r.clone()
            }
        );
        // The current version only adds fields at the end, and the version
        // byte says so.
        let now = encode_event(&r);
        assert_eq!(now[0], EVENT_RECORD_VERSION);
        assert_eq!(&now[1..bytes.len()], &bytes[1..]);
    }

    #[test]
    fn an_event_record_of_version_2_still_decodes_without_a_monotonic_reference() {
        let r = EventRecord {
            mono: Some(crate::MonoRef {
                boot: 0x9f3c_2a11_0b7e_44d2,
                offset_ms: 4_000_123,
            }),
            ..sample()
        };
        let v2 = crate::event::EventRecordV2 {
            id: r.id,
            node_id: r.node_id.clone(),
            start_ms: r.start_ms,
            duration_ms: r.duration_ms,
            class: r.class,
            confidence: r.confidence,
            scores: r.scores,
            features: r.features,
            model: r.model,
            time: r.time,
        };
        let old = encode_with(EVENT_RECORD_V2, &v2);
        assert_eq!(
            decode_event(&old).unwrap(),
            EventRecord {
                mono: None,
                ..r.clone()
            }
        );
        // Version 3 carries the reference (and round-trips it); without one
        // it costs a single byte more than version 2.
        let now = encode_event(&r);
        assert_eq!(now[0], EVENT_RECORD_VERSION);
        assert_eq!(decode_event(&now).unwrap(), r);
        let without = encode_event(&sample());
        assert_eq!(without.len(), old.len() + 1);
        assert_eq!(&without[1..old.len()], &old[1..]);
    }

    #[test]
    fn rejects_bad_input_without_panicking() {
        let bytes = encode_event(&sample());
        assert_eq!(decode_event(&[]), Err(DecodeError::Empty));
        assert_eq!(
            decode_event(&[12, 1, 2]),
            Err(DecodeError::UnsupportedVersion { found: 12 })
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

    fn status() -> StatusRecord {
        use crate::{DropCounters, PowerModeCode, SensorHealth, SensorState};
        StatusRecord {
            id: 1235,
            node_id: "node-07".into(),
            time_ms: 1_780_000_100_000,
            uptime_s: 86_400,
            battery_permille: 734,
            battery_mv: 12_650,
            power_mode: PowerModeCode::Saving,
            air_temp_c100: Some(-250),
            board_temp_c100: Some(4_100),
            sensors: SensorHealth {
                microphone: SensorState::Ok,
                camera: SensorState::Degraded,
                climate: SensorState::Absent,
                model: SensorState::Ok,
            },
            queue: [3, 120, 4, 0],
            drops: DropCounters {
                evicted_budget: 17,
                expired_ttl: 2,
                corrupt: 0,
            },
            model: ModelVersion(3),
            last_contact_ms: Some(1_780_000_000_000),
            cause: crate::StatusCause::Periodic,
            update: crate::UpdateStatus::default(),
            disk: crate::DiskReport {
                free_mib: Some(11_234),
                state: crate::DiskStateCode::Ok,
                evicted: 0,
            },
            clock: Default::default(),
            detection: Some(DETECTED),
            not_stored: Some(NOT_STORED),
        }
    }

    /// The events not stored of [`status`]: 12 uncertain background
    /// events, 3 heat rises put down to the sun (one byte each: `01 00 00
    /// 0c 03` with the option tag).
    const NOT_STORED: crate::NotStored = crate::NotStored {
        excluded: 0,
        background_dropped: 0,
        uncertain_background: 12,
        sun_heat_rises: 3,
    };

    /// `s` as a v7 node encoded it: without the events not stored (the v8
    /// body is the v7 body with them appended). Tests of the older parts
    /// read this encoding, whose end is the detector's counts.
    fn v7(s: &StatusRecord) -> Vec<u8> {
        encode_with(STATUS_RECORD_V7, &StatusRecordV7::from(s))
    }

    /// The detector's counts of [`status`]: 2 events cut at their maximum
    /// length, 37 joined (one byte each: `01 02 25` with the option tag).
    const DETECTED: crate::DetectionHealth = crate::DetectionHealth {
        events_cut_at_max: 2,
        events_joined: 37,
    };

    /// A v3 status record as a v2 node wrote it: everything but the disk part.
    fn as_v2(s: &StatusRecord) -> StatusRecordV2 {
        StatusRecordV2 {
            id: s.id,
            node_id: s.node_id.clone(),
            time_ms: s.time_ms,
            uptime_s: s.uptime_s,
            battery_permille: s.battery_permille,
            battery_mv: s.battery_mv,
            power_mode: s.power_mode,
            air_temp_c100: s.air_temp_c100,
            board_temp_c100: s.board_temp_c100,
            sensors: s.sensors,
            queue: s.queue,
            drops: s.drops,
            model: s.model,
            last_contact_ms: s.last_contact_ms,
            cause: s.cause,
            update: s.update.clone(),
        }
    }

    /// A status record made on an update result, every field present and
    /// every text at its cap.
    fn status_on_update() -> StatusRecord {
        use crate::update_status::{NAME_MAX, REASON_MAX};
        use crate::{BundleKindCode, ShortText, UpdateOutcome, UpdateResult, UpdateStatus};
        StatusRecord {
            cause: crate::StatusCause::UpdateResult,
            update: UpdateStatus {
                model_active: 1_780_000_000,
                model_staged: Some(1_780_000_500),
                settings: 1_780_000_100,
                last: Some(UpdateResult {
                    kind: BundleKindCode::Model,
                    name: ShortText::new(&"n".repeat(NAME_MAX)),
                    version: 1_780_000_500,
                    result: UpdateOutcome::RolledBack,
                    reason: ShortText::new(&"self_test: ".repeat(REASON_MAX)),
                }),
            },
            disk: crate::DiskReport {
                free_mib: Some(u32::MAX),
                state: crate::DiskStateCode::Full,
                evicted: u32::MAX,
            },
            ..status()
        }
    }

    #[test]
    fn a_status_record_on_an_update_result_is_compact() {
        let typical = StatusRecord {
            cause: crate::StatusCause::UpdateResult,
            update: crate::UpdateStatus {
                model_active: 3,
                model_staged: None,
                settings: 1,
                last: Some(crate::UpdateResult {
                    kind: crate::BundleKindCode::Model,
                    name: crate::ShortText::new("fusion"),
                    version: 3,
                    result: crate::UpdateOutcome::Refused,
                    reason: crate::ShortText::new("rollback: version 3 is not above 3"),
                }),
            },
            ..status()
        };
        let periodic = encode_status(&status()).len();
        let typical = encode_status(&typical).len();
        let full = encode_status(&status_on_update()).len();
        let periodic_v2 = encode_with(STATUS_RECORD_V2, &as_v2(&status())).len();
        eprintln!(
            "status record v8: periodic without updates {periodic} bytes (as v2: {periodic_v2}), on a typical update result {typical} bytes, every field present with texts at their caps and the disk part at its largest {full} bytes"
        );
        // Alone in an SBD packing (no node id, the head says a disk part
        // follows), with and without its disk part.
        let packed = |s: StatusRecord| {
            crate::pack(&[Message::Status(s)], crate::pack::SBD_MO_MAX)
                .map(|p| p.bytes.len())
                .unwrap_or(usize::MAX)
        };
        let periodic_packed = packed(status());
        let without_disk = packed(StatusRecord {
            disk: crate::DiskReport::default(),
            ..status()
        });
        eprintln!(
            "periodic status record packed alone: {periodic_packed} bytes (without its disk part: {without_disk})"
        );
        assert!(periodic_packed <= without_disk + 6, "{periodic_packed}");
        assert!(periodic <= 82, "{periodic}");
        // On hardware: a synchronised clock and an RTC with its cell; as v4
        // (without the RTC) and v8 (with it, no sleep: one byte more, the
        // detector's counts: three bytes more, and the events not stored:
        // five more). The sleep's part is measured in
        // `status_v6_carries_the_last_sleep`, the detector's in
        // `status_v7_carries_the_detectors_counts`, the events not stored in
        // `status_v8_carries_the_events_not_stored`.
        let hardware = status_with_rtc(HEALTHY_RTC);
        let hardware_v4 = encode_with(STATUS_RECORD_V4, &as_v4(&hardware)).len();
        let hardware_v5 = encode_status(&hardware).len();
        let no_rtc = encode_status(&status_with_rtc(crate::RtcStatus::NONE)).len();
        eprintln!(
            "periodic status record on hardware (synchronised clock): v4 {hardware_v4} bytes, v8 with an RTC and its cell {hardware_v5} bytes, without an RTC {no_rtc} bytes"
        );
        assert_eq!(hardware_v5, hardware_v4 + 15);
        assert_eq!(no_rtc, hardware_v4 + 12);
        assert!(hardware_v5 <= 85, "{hardware_v5}");
        // Packed alone: the RTC part costs the same, and the record stays
        // within two credits.
        let hardware_packed = [
            crate::RtcStatus::default(),
            crate::RtcStatus::NONE,
            HEALTHY_RTC,
        ]
        .map(|rtc| packed(status_with_rtc(rtc)));
        eprintln!(
            "periodic status record on hardware packed alone: {} bytes without the RTC part (v4), {} with an RTC and its cell, {} without an RTC",
            hardware_packed[0], hardware_packed[2], hardware_packed[1]
        );
        assert_eq!(hardware_packed[2], hardware_packed[0] + 6);
        assert!(hardware_packed[2] <= 100, "{}", hardware_packed[2]);
        assert!(typical <= 126, "{typical}");
        // Far below one 340-byte satellite message.
        assert!(full <= 200, "{full}");
    }

    #[test]
    fn status_v5_round_trips_and_v2_still_decodes_with_an_unknown_disk() {
        let s = status_on_update();
        let bytes = encode_status(&s);
        assert_eq!(bytes[0], STATUS_RECORD_VERSION);
        assert_eq!(bytes[0], 11);
        assert_eq!(decode_message(&bytes), Ok(Message::Status(s.clone())));
        for cut in 1..bytes.len() {
            assert!(decode_message(&bytes[..cut]).is_err(), "prefix of {cut}");
        }
        let bytes = v7(&s);
        // In a v7 body the detector's counts are last (some, 2, 37); before them the
        // clock part, its RTC and its last sleep at its end; unknown, they
        // are nine zero bytes (source, no uncertainty, not re-stamped, no
        // step, largest step 0; RTC state unknown, no offset, no cell; no
        // sleep).
        let plain = status();
        let b = v7(&plain);
        assert_eq!(
            &b[b.len() - 12..],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 37][..]
        );
        let b = &b[..b.len() - 12];
        // Before it, the disk part's three fields: free MiB (Some, varint),
        // the state's code byte, the eviction count (varint).
        assert_eq!(&b[b.len() - 5..], &[1, 0xe2, 0x57, 0, 0][..]);
        // Unknown free space, unknown state.
        let unknown = StatusRecord {
            disk: crate::DiskReport::default(),
            ..plain.clone()
        };
        let b = v7(&unknown);
        assert_eq!(
            &b[b.len() - 15..],
            &[0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 37][..]
        );
        assert_eq!(
            decode_message(&b),
            Ok(Message::Status(StatusRecord {
                not_stored: None,
                ..unknown
            }))
        );
        // A state code this build does not know reads as unknown.
        let mut b = v7(&plain);
        let at = b.len() - 14;
        b[at] = 7;
        match decode_message(&b) {
            Ok(Message::Status(r)) => {
                assert_eq!(r.disk.state, crate::DiskStateCode::Unknown);
                assert_eq!(r.disk.free_mib, Some(11_234));
            }
            other => panic!("{other:?}"),
        }
        // A record written by a node with the version 2 envelope.
        let old = encode_with(STATUS_RECORD_V2, &as_v2(&s));
        assert_eq!(old[0], 3);
        assert_eq!(
            decode_message(&old),
            Ok(Message::Status(StatusRecord {
                disk: crate::DiskReport::default(),
                detection: None,
                not_stored: None,
                ..s.clone()
            }))
        );
        // A record written by a node with the version 3 envelope: the clock
        // part unknown, the detector's counts not reported.
        let v3 = &bytes[..bytes.len() - 12];
        let mut v3 = v3.to_vec();
        v3[0] = STATUS_RECORD_V3;
        assert_eq!(
            decode_message(&v3),
            Ok(Message::Status(StatusRecord {
                detection: None,
                not_stored: None,
                ..s.clone()
            }))
        );
        // The v2 body is a prefix of the v5 body: read as v5 it is cut short,
        // and a v5 body read as v2 has bytes left over.
        let mut as_v3 = old.clone();
        as_v3[0] = STATUS_RECORD_VERSION;
        assert!(decode_message(&as_v3).is_err());
        let mut as_old = bytes.clone();
        as_old[0] = STATUS_RECORD_V2;
        assert!(matches!(
            decode_message(&as_old),
            Err(DecodeError::Trailing(_))
        ));
    }

    /// A status record as a v4 node wrote it: its clock part without the RTC.
    fn as_v4(s: &StatusRecord) -> StatusRecordV4 {
        StatusRecordV4 {
            id: s.id,
            node_id: s.node_id.clone(),
            time_ms: s.time_ms,
            uptime_s: s.uptime_s,
            battery_permille: s.battery_permille,
            battery_mv: s.battery_mv,
            power_mode: s.power_mode,
            air_temp_c100: s.air_temp_c100,
            board_temp_c100: s.board_temp_c100,
            sensors: s.sensors,
            queue: s.queue,
            drops: s.drops,
            model: s.model,
            last_contact_ms: s.last_contact_ms,
            cause: s.cause,
            update: s.update.clone(),
            disk: s.disk,
            clock: (&s.clock).into(),
        }
    }

    /// A periodic record of a node on hardware: a synchronised clock, and
    /// an RTC a second behind with a charged cell.
    fn status_with_rtc(rtc: crate::RtcStatus) -> StatusRecord {
        StatusRecord {
            clock: crate::ClockStatus {
                quality: crate::TimeQuality {
                    source: crate::TimeSource::Synced,
                    uncertainty_ms: Some(20),
                    restamped: false,
                },
                steps: 0,
                largest_step_ms: 0,
                rtc,
                sleep: None,
            },
            ..status()
        }
    }

    const HEALTHY_RTC: crate::RtcStatus = crate::RtcStatus {
        state: crate::RtcState::Found,
        offset_s: Some(-1),
        cell_mv: Some(3_012),
    };

    #[test]
    fn status_v5_carries_the_rtc_and_round_trips() {
        let cases = [
            HEALTHY_RTC,
            crate::RtcStatus::NONE,
            // An RTC that lost its time (the read refused), cell flat.
            crate::RtcStatus {
                state: crate::RtcState::Found,
                offset_s: None,
                cell_mv: Some(1_180),
            },
            // An RTC at 1970 against a node in 2026, no cell voltage.
            crate::RtcStatus {
                state: crate::RtcState::Found,
                offset_s: Some(-1_780_000_100),
                cell_mv: None,
            },
            crate::RtcStatus {
                state: crate::RtcState::Found,
                offset_s: Some(i64::MIN),
                cell_mv: Some(u16::MAX),
            },
            crate::RtcStatus::default(),
        ];
        for rtc in cases {
            let s = status_with_rtc(rtc);
            let bytes = encode_status(&s);
            assert_eq!(bytes[0], STATUS_RECORD_VERSION);
            assert_eq!(decode_message(&bytes), Ok(Message::Status(s.clone())));
            for cut in 1..bytes.len() {
                assert!(decode_message(&bytes[..cut]).is_err(), "prefix of {cut}");
            }
            // The v4 body is the v5 body without the RTC at its end.
            let v4 = encode_with(STATUS_RECORD_V4, &as_v4(&s));
            assert_eq!(&bytes[1..v4.len()], &v4[1..]);
        }
        // The RTC's bytes: state (2 found), some offset (zigzag -1 = 1),
        // some cell (3012 mV, a two-byte varint).
        // (then no sleep, one zero byte, and the detector's counts).
        let b = v7(&status_with_rtc(HEALTHY_RTC));
        assert_eq!(
            &b[b.len() - 10..],
            &[2, 1, 1, 1, 0xc4, 0x17, 0, 1, 2, 37][..]
        );
        let b = v7(&status_with_rtc(crate::RtcStatus::NONE));
        assert_eq!(&b[b.len() - 7..], &[1, 0, 0, 0, 1, 2, 37][..]);
        // A state this build does not know is refused, not guessed.
        let mut b = v7(&status_with_rtc(crate::RtcStatus::NONE));
        let at = b.len() - 7;
        b[at] = 3;
        assert!(matches!(decode_message(&b), Err(DecodeError::Malformed(_))));
    }

    const SLEPT: crate::LastSleep = crate::LastSleep {
        reason: crate::SleepReasonCode::LowBattery,
        slept_s: 21_602,
        planned_s: 21_600,
        wake: crate::WakeCause::Rtc,
    };

    #[test]
    fn status_v6_carries_the_last_sleep_and_v5_still_decodes_without_it() {
        let mut s = status_with_rtc(HEALTHY_RTC);
        s.clock.sleep = Some(SLEPT);
        let bytes = encode_status(&s);
        assert_eq!(bytes[0], 11);
        assert_eq!(decode_message(&bytes), Ok(Message::Status(s.clone())));
        for cut in 1..bytes.len() {
            assert!(decode_message(&bytes[..cut]).is_err(), "prefix of {cut}");
        }
        let without = encode_status(&status_with_rtc(HEALTHY_RTC)).len();
        assert_eq!(bytes.len(), without + 8);
        let bytes = v7(&s);
        // In a v7 body: some, reason 0, 21602 s and 21600 s as varints, wake 0 (rtc);
        // then the detector's three bytes.
        assert_eq!(
            &bytes[bytes.len() - 12..],
            &[1, 0, 0xe2, 0xa8, 0x01, 0xe0, 0xa8, 0x01, 0, 1, 2, 37][..]
        );
        eprintln!(
            "status record v8 on hardware: {without} bytes without a sleep, {} with one",
            without + 8
        );
        // A v5 record (kind byte 7): the v7 body without the sleep's byte
        // and the detector's three.
        let mut v5 = v7(&status_with_rtc(HEALTHY_RTC));
        v5.truncate(v5.len() - 4);
        v5[0] = STATUS_RECORD_V5;
        assert_eq!(
            decode_message(&v5),
            Ok(Message::Status(StatusRecord {
                detection: None,
                not_stored: None,
                ..status_with_rtc(HEALTHY_RTC)
            }))
        );
        // A wake cause this build does not know is refused.
        let mut b = bytes.clone();
        let wake = b.len() - 4;
        b[wake] = 3;
        assert!(matches!(decode_message(&b), Err(DecodeError::Malformed(_))));
        // JSON names it; JSON without it reads as no sleep.
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(
            j["clock"]["sleep"],
            serde_json::json!({"reason": "low_battery", "slept_s": 21602, "planned_s": 21600, "wake": "rtc"})
        );
        let mut j = j;
        j["clock"].as_object_mut().unwrap().remove("sleep");
        let back: StatusRecord = serde_json::from_value(j).unwrap();
        assert_eq!(back.clock.sleep, None);
        // An energy-saving sleep is reason 1, and named in JSON.
        s.clock.sleep = Some(crate::LastSleep {
            reason: crate::SleepReasonCode::EnergySaving,
            ..SLEPT
        });
        assert_eq!(
            decode_message(&encode_status(&s)),
            Ok(Message::Status(s.clone()))
        );
        let bytes = v7(&s);
        assert_eq!(bytes[bytes.len() - 11], 1);
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["clock"]["sleep"]["reason"], "energy_saving");
        // A reason this build does not know is refused.
        let mut b = bytes.clone();
        let at = b.len() - 11;
        b[at] = 2;
        assert!(matches!(decode_message(&b), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn status_v7_carries_the_detectors_counts_and_v6_still_decodes_without_them() {
        let s = StatusRecord {
            not_stored: None,
            ..status_with_rtc(HEALTHY_RTC)
        };
        let bytes = v7(&s);
        assert_eq!(bytes[0], STATUS_RECORD_V7);
        assert_eq!(bytes[0], 10);
        assert_eq!(decode_message(&bytes), Ok(Message::Status(s.clone())));
        for cut in 1..bytes.len() {
            assert!(decode_message(&bytes[..cut]).is_err(), "prefix of {cut}");
        }
        // The part is last: some, then the two counts as varints (2 cut at
        // their maximum length, 37 joined).
        assert_eq!(&bytes[bytes.len() - 3..], &[1, 2, 37][..]);
        // What it costs against the same record as v6.
        let v6 = encode_with(STATUS_RECORD_V6, &StatusRecordV6::from(&s));
        let with = |d: Option<crate::DetectionHealth>| {
            let r = StatusRecord {
                detection: d,
                ..s.clone()
            };
            let b = v7(&r);
            assert_eq!(decode_message(&b), Ok(Message::Status(r)));
            b.len() - v6.len()
        };
        let count = |cut, joined| {
            Some(crate::DetectionHealth {
                events_cut_at_max: cut,
                events_joined: joined,
            })
        };
        let none = with(None);
        let zero = with(Some(crate::DetectionHealth::default()));
        let small = with(Some(DETECTED));
        let season = with(count(300, 20_000));
        let largest = with(count(u32::MAX, u32::MAX));
        eprintln!(
            "status record v7: the detector's part adds {none} byte not reported, {zero} with both counts 0, {small} with counts under 128, {season} with 300 cut and 20,000 joined, {largest} at their largest (v6 on hardware: {} bytes)",
            v6.len()
        );
        assert_eq!([none, zero, small, season, largest], [1, 3, 3, 6, 11]);
        // Bytes a v6 node wrote (encoded by the build before status record
        // v7): the same record without the part, kind byte 8. It decodes
        // with the counts not reported; its body is the v7 body without the
        // part.
        let hex = "08d309076e6f64652d3037c0bab084ce6780a305de05ea620101f3030188400001020003780400110200030180a0a484ce67000000000001e257000002011400000002010101c41700";
        let old: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(old, v6);
        assert_eq!(old[0], STATUS_RECORD_V6);
        assert_eq!(&bytes[1..old.len()], &old[1..]);
        assert_eq!(
            decode_message(&old),
            Ok(Message::Status(StatusRecord {
                detection: None,
                ..s.clone()
            }))
        );
        // A v7 body read as v6 has the part left over; a v6 body read as
        // v7 is cut short.
        let mut as_v6 = bytes.clone();
        as_v6[0] = STATUS_RECORD_V6;
        assert_eq!(decode_message(&as_v6), Err(DecodeError::Trailing(3)));
        let mut as_v7 = old.clone();
        as_v7[0] = STATUS_RECORD_V7;
        assert!(decode_message(&as_v7).is_err());
        // A build that does not know kind byte 12 names the ones it reads.
        let e = DecodeError::UnsupportedVersion { found: 12 }.to_string();
        assert!(
            e.contains("8 = status v6, 10 = status v7, 11 = status v8"),
            "{e}"
        );
        // JSON names the counts; JSON without them reads as not reported.
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(
            j["detection"],
            serde_json::json!({"events_cut_at_max": 2, "events_joined": 37})
        );
        let mut j = j;
        j.as_object_mut().unwrap().remove("detection");
        let back: StatusRecord = serde_json::from_value(j).unwrap();
        assert_eq!(back.detection, None);
        let none = serde_json::to_value(StatusRecord {
            detection: None,
            ..s.clone()
        })
        .unwrap();
        assert!(none["detection"].is_null());
        // The node's 64-bit counters saturate.
        assert_eq!(
            crate::DetectionHealth::saturating(u64::MAX, 37),
            crate::DetectionHealth {
                events_cut_at_max: u32::MAX,
                events_joined: 37,
            }
        );
        assert!(crate::DetectionHealth::saturating(0, 0).is_zero());
        assert!(!crate::DetectionHealth::saturating(0, 1).is_zero());
    }

    #[test]
    fn status_v8_carries_the_events_not_stored_and_v7_still_decodes_without_them() {
        let s = status_with_rtc(HEALTHY_RTC);
        let bytes = encode_status(&s);
        assert_eq!(bytes[0], STATUS_RECORD_VERSION);
        assert_eq!(bytes[0], 11);
        assert_eq!(decode_message(&bytes), Ok(Message::Status(s.clone())));
        for cut in 1..bytes.len() {
            assert!(decode_message(&bytes[..cut]).is_err(), "prefix of {cut}");
        }
        // The part is last: some, then the four counts as varints (none
        // excluded, none dropped as background without a model, 12
        // uncertain background events, 3 heat rises put down to the sun),
        // after the detector's three bytes.
        assert_eq!(&bytes[bytes.len() - 8..], &[1, 2, 37, 1, 0, 0, 12, 3][..]);
        // What it costs against the same record as v7.
        let old = v7(&s);
        let with = |n: Option<crate::NotStored>| {
            let r = StatusRecord {
                not_stored: n,
                ..s.clone()
            };
            let b = encode_status(&r);
            assert_eq!(decode_message(&b), Ok(Message::Status(r)));
            b.len() - old.len()
        };
        let none = with(None);
        let zero = with(Some(crate::NotStored::default()));
        let small = with(Some(NOT_STORED));
        let season = with(Some(crate::NotStored::saturating([0, 40, 3_000, 150])));
        let largest = with(Some(crate::NotStored::saturating([u64::MAX; 4])));
        eprintln!(
            "status record v8: the events not stored add {none} byte not reported, {zero} with every count 0, {small} with counts under 128, {season} with 40 background dropped, 3,000 uncertain and 150 sun rises, {largest} at their largest (v7 on hardware: {} bytes)",
            old.len()
        );
        assert_eq!([none, zero, small, season, largest], [1, 5, 5, 7, 21]);
        // A v7 record decodes with the part not reported; its body is the
        // v8 body without the part.
        assert_eq!(old[0], STATUS_RECORD_V7);
        assert_eq!(&bytes[1..old.len()], &old[1..]);
        assert_eq!(
            decode_message(&old),
            Ok(Message::Status(StatusRecord {
                not_stored: None,
                ..s.clone()
            }))
        );
        // A v8 body read as v7 has the part left over; a v7 body read as
        // v8 is cut short.
        let mut as_v7 = bytes.clone();
        as_v7[0] = STATUS_RECORD_V7;
        assert_eq!(decode_message(&as_v7), Err(DecodeError::Trailing(5)));
        let mut as_v8 = old.clone();
        as_v8[0] = STATUS_RECORD_VERSION;
        assert!(decode_message(&as_v8).is_err());
        // JSON names the counts; JSON without them reads as not reported.
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(
            j["not_stored"],
            serde_json::json!({"excluded": 0, "background_dropped": 0, "uncertain_background": 12, "sun_heat_rises": 3})
        );
        let mut j = j;
        j.as_object_mut().unwrap().remove("not_stored");
        let back: StatusRecord = serde_json::from_value(j).unwrap();
        assert_eq!(back.not_stored, None);
        // The node's 64-bit counters saturate.
        assert_eq!(
            crate::NotStored::saturating([u64::MAX, 1, 2, 3]),
            crate::NotStored {
                excluded: u32::MAX,
                background_dropped: 1,
                uncertain_background: 2,
                sun_heat_rises: 3,
            }
        );
        assert!(crate::NotStored::saturating([0; 4]).is_zero());
        assert!(!crate::NotStored::saturating([0, 0, 0, 1]).is_zero());
    }

    #[test]
    fn status_v4_still_decodes_with_an_unknown_rtc() {
        let s = status_with_rtc(HEALTHY_RTC);
        let v4 = encode_with(STATUS_RECORD_V4, &as_v4(&s));
        assert_eq!(v4[0], 6);
        let back = match decode_message(&v4) {
            Ok(Message::Status(r)) => r,
            other => panic!("{other:?}"),
        };
        assert!(back.clock.rtc.is_unknown());
        assert_eq!(back.clock.rtc.state, crate::RtcState::Unknown);
        assert_eq!(
            back,
            StatusRecord {
                clock: crate::ClockStatus {
                    rtc: crate::RtcStatus::default(),
                    ..s.clock
                },
                detection: None,
                not_stored: None,
                ..s.clone()
            }
        );
        // Bytes a v4 node wrote (encoded by the build before status record
        // v5): the periodic record above, its clock synchronised within 20 ms.
        let hex = "06d309076e6f64652d3037c0bab084ce6780a305de05ea620101f3030188400001020003780400110200030180a0a484ce67000000000001e2570000020114000000";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(bytes, v4);
        assert_eq!(decode_message(&bytes), Ok(Message::Status(back)));
        // A v5 body read as v4 has bytes left over; a v4 body read as v5 is
        // cut short.
        let mut as_v4 = v7(&s);
        as_v4[0] = STATUS_RECORD_V4;
        assert_eq!(decode_message(&as_v4), Err(DecodeError::Trailing(10)));
        let mut as_v5 = v4.clone();
        as_v5[0] = STATUS_RECORD_VERSION;
        assert!(decode_message(&as_v5).is_err());
    }

    #[test]
    fn the_json_of_a_status_record_names_its_rtc() {
        let j = serde_json::to_value(status_with_rtc(HEALTHY_RTC)).unwrap();
        assert_eq!(
            j["clock"]["rtc"],
            serde_json::json!({"state": "found", "offset_s": -1, "cell_mv": 3012})
        );
        let none = serde_json::to_value(status_with_rtc(crate::RtcStatus::NONE)).unwrap();
        assert_eq!(
            none["clock"]["rtc"],
            serde_json::json!({"state": "none", "offset_s": null, "cell_mv": null})
        );
        let back: StatusRecord = serde_json::from_value(j.clone()).unwrap();
        assert_eq!(back, status_with_rtc(HEALTHY_RTC));
        // JSON from before status record v5 (a clock without `rtc`) reads
        // with the RTC unknown.
        let mut old = j;
        old["clock"].as_object_mut().unwrap().remove("rtc");
        let back: StatusRecord = serde_json::from_value(old).unwrap();
        assert!(back.clock.rtc.is_unknown());
        assert_eq!(back.clock.quality.source, crate::TimeSource::Synced);
    }

    #[test]
    fn disk_state_codes_and_names_round_trip() {
        for s in crate::DiskStateCode::ALL {
            assert_eq!(crate::DiskStateCode::from_code(s.code()), s);
            assert_eq!(crate::DiskStateCode::parse(s.as_str()), s);
        }
        assert_eq!(
            crate::DiskStateCode::from_code(3),
            crate::DiskStateCode::Unknown
        );
        assert_eq!(
            crate::DiskStateCode::parse("melting"),
            crate::DiskStateCode::Unknown
        );
        assert_eq!(crate::DiskReport::mib(0), 0);
        assert_eq!(crate::DiskReport::mib((1 << 20) - 1), 0);
        assert_eq!(crate::DiskReport::mib(3 << 20), 3);
        assert_eq!(crate::DiskReport::mib(u64::MAX), u32::MAX);
    }

    #[test]
    fn status_v1_still_decodes_with_empty_update_fields_and_an_unknown_disk() {
        let s = status_on_update();
        // A record written by a node with the version 1 envelope.
        let v1 = StatusRecordV1 {
            id: s.id,
            node_id: s.node_id.clone(),
            time_ms: s.time_ms,
            uptime_s: s.uptime_s,
            battery_permille: s.battery_permille,
            battery_mv: s.battery_mv,
            power_mode: s.power_mode,
            air_temp_c100: s.air_temp_c100,
            board_temp_c100: s.board_temp_c100,
            sensors: s.sensors,
            queue: s.queue,
            drops: s.drops,
            model: s.model,
            last_contact_ms: s.last_contact_ms,
        };
        let old = encode_with(STATUS_RECORD_V1, &v1);
        assert_eq!(
            decode_message(&old),
            Ok(Message::Status(StatusRecord {
                cause: crate::StatusCause::Periodic,
                update: crate::UpdateStatus::default(),
                disk: crate::DiskReport::default(),
                detection: None,
                not_stored: None,
                ..s.clone()
            }))
        );
        // The v1 body is a prefix of the v2 body: read as v2 it is cut short,
        // and a v2 body read as v1 has bytes left over.
        let mut v1_as_v2 = old.clone();
        v1_as_v2[0] = STATUS_RECORD_V2;
        assert!(decode_message(&v1_as_v2).is_err());
        let mut as_v1 = encode_with(STATUS_RECORD_V2, &as_v2(&s));
        as_v1[0] = STATUS_RECORD_V1;
        assert!(matches!(
            decode_message(&as_v1),
            Err(DecodeError::Trailing(_))
        ));
    }

    #[test]
    fn a_reason_over_its_cap_does_not_decode() {
        let mut s = status_on_update();
        if let Some(last) = s.update.last.as_mut() {
            last.reason = crate::ShortText::new("x");
        }
        s.disk = crate::DiskReport::default();
        let mut bytes = v7(&s);
        // The reason is the last field before the (unknown) disk and clock
        // parts and the detector's counts: length 1, "x", then none, 255,
        // 0, then nine zeros, then 1, 2, 37.
        let at = bytes.len() - 17;
        assert_eq!(
            &bytes[at..],
            &[1, b'x', 0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 37]
        );
        bytes.truncate(at);
        bytes.push(65);
        bytes.extend(std::iter::repeat_n(b'x', 65));
        bytes.extend([0, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 37]);
        assert!(matches!(
            decode_message(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn the_json_of_a_status_record_without_update_fields_still_reads() {
        let s = status();
        let mut v = serde_json::to_value(&s).unwrap();
        let obj = v.as_object_mut().unwrap();
        obj.remove("cause");
        obj.remove("update");
        obj.remove("disk");
        let back: StatusRecord = serde_json::from_value(v).unwrap();
        assert_eq!(
            back,
            StatusRecord {
                disk: crate::DiskReport::default(),
                ..s.clone()
            }
        );
        let j = serde_json::to_value(status_on_update()).unwrap();
        assert_eq!(j["cause"], "update_result");
        assert_eq!(j["update"]["last"]["result"], "rolled_back");
        assert_eq!(j["update"]["last"]["kind"], "model");
    }

    #[test]
    fn the_json_of_a_status_record_shows_its_disk_part_by_name() {
        let j = serde_json::to_value(status()).unwrap();
        assert_eq!(
            j["disk"],
            serde_json::json!({"free_mib": 11_234, "state": "ok", "evicted": 0})
        );
        let full = serde_json::to_value(status_on_update()).unwrap();
        assert_eq!(full["disk"]["state"], "full");
        assert_eq!(full["disk"]["free_mib"], u32::MAX);
        let unknown = StatusRecord {
            disk: crate::DiskReport::default(),
            ..status()
        };
        let j = serde_json::to_value(&unknown).unwrap();
        assert!(j["disk"]["free_mib"].is_null());
        assert_eq!(j["disk"]["state"], "unknown");
        // JSON round-trips, and a state name this build does not know reads
        // as unknown.
        let back: StatusRecord = serde_json::from_value(j.clone()).unwrap();
        assert_eq!(back, unknown);
        let mut j = serde_json::to_value(status()).unwrap();
        j["disk"]["state"] = "melting".into();
        let back: StatusRecord = serde_json::from_value(j).unwrap();
        assert_eq!(back.disk.state, crate::DiskStateCode::Unknown);
        assert_eq!(back.disk.free_mib, Some(11_234));
    }

    #[test]
    fn status_round_trips_and_is_told_apart_from_events() {
        let s = status();
        let bytes = encode_status(&s);
        eprintln!("encoded status record: {} bytes", bytes.len());
        assert!(bytes.len() <= 78, "status record is {} bytes", bytes.len());
        assert_eq!(decode_message(&bytes), Ok(Message::Status(s.clone())));
        assert!(decode_event(&bytes).is_err());
        let e = sample();
        assert_eq!(
            decode_message(&encode_event(&e)),
            Ok(Message::Event(e.clone()))
        );
        assert_eq!(Message::Status(s).id(), 1235);
        assert_eq!(Message::Event(e).id(), 1234);
        for cut in 1..bytes.len() {
            assert!(decode_message(&bytes[..cut]).is_err());
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
