//! Satellite packing: several outbox records (events and status reports) in
//! one Iridium SBD mobile-originated message of at most 340 bytes, so that a
//! day of events costs as few 50-byte credits as possible.
//!
//! The format is lossless (every field of every record comes back exactly)
//! and documented byte by byte in `docs/wire-format.md` ("SBD packing"):
//!
//! ```text
//! header:  [PACK_VERSION] [record count: u8] [CRC-16: 2 bytes, big-endian]
//!          [first id: varint u64] [first time: zigzag varint i64, ms]
//! records: [head: varint] [id delta] [time delta] [body]   (deltas absent on the first record)
//! ```
//!
//! - the record count and the checksum (CRC-16/IBM-3740 of the whole
//!   message without its two checksum bytes) let [`unpack`] tell a message
//!   cut short, even on a record boundary ([`UnpackError::Cut`]), or
//!   damaged ([`UnpackError::Checksum`]) from a whole one; messages of the
//!   first version ([`PACK_VERSION_1`], without them) still unpack;
//! - ids and times are deltas from the previous record in the message
//!   (`id - (previous id + 1)` and `time - previous time`, both zigzag varints,
//!   so any order round-trips; consecutive ids cost one byte);
//! - the node id is not sent: the ground side knows the node from the modem's
//!   IMEI and passes it to [`unpack`];
//! - an event's nine optional fields are a presence bitmap in the head varint
//!   (one bit each, instead of postcard's one tag byte each), together with
//!   the record kind and the event class; a bit above the class says that
//!   the event's time quality follows its body (set only when it differs
//!   from the previous event's in the message, the first event's compared
//!   with the unknown one of an event record of version 1).
//!
//! Integers use postcard's encodings (LEB128 varints, zigzag for signed).

use serde::{Deserialize, Serialize};

use crate::status::ClockStatusV4;
use crate::{
    DetectionHealth, DiskReport, DropCounters, EventClass, EventRecord, KeyFeatures, LastSleep,
    Message, ModalityScores, ModelVersion, NotStored, Permille, PowerModeCode, RtcStatus,
    SensorHealth, StatusCause, StatusRecord, TimeQuality, TimeSource, UpdateStatus,
};

/// The first byte of a packed message as [`pack`] writes it: SBD packing,
/// version 2 (a record count and a checksum in the header). Chosen apart
/// from the single-record kind bytes (1 to 10) so that a receiver can tell a
/// packed message from a lone record.
pub const PACK_VERSION: u8 = 0x51;

/// The first byte of a packed message of version 1 (no record count, no
/// checksum), as nodes built before version 2 send it; [`unpack`] still
/// reads it.
pub const PACK_VERSION_1: u8 = 0x50;

/// True when `first_byte` starts a packed message that [`unpack`] reads
/// (either version), rather than a lone record.
pub fn is_packed(first_byte: u8) -> bool {
    matches!(first_byte, PACK_VERSION | PACK_VERSION_1)
}

/// Most records in one message: the count is one byte. A 340-byte message
/// holds at most about 60 (every record takes at least 5 bytes).
pub const MAX_RECORDS: usize = 255;

/// Header bytes of version 2 before the first id: version, count, checksum.
const HEADER_V2: usize = 4;

/// The largest Iridium SBD mobile-originated message, bytes.
pub const SBD_MO_MAX: usize = 340;

/// Record kinds in the low bit of the head varint.
const KIND_EVENT: u64 = 0;
const KIND_STATUS: u64 = 1;
/// In a status head: the status record's cause and update part follow its
/// body (set only when they are not the periodic, empty ones).
const STATUS_UPDATE_PART: u64 = 2;
/// In a status head: the status record's disk part follows (after the
/// update part when there is one; set only when the disk part is not the
/// unknown one of a record from before status record v3).
const STATUS_DISK_PART: u64 = 4;
/// In a status head: the clock part follows (after the disk part; set only
/// when it is not the unknown one of a record from before status record v4).
/// It is the clock part of status record v4, without the RTC.
const STATUS_CLOCK_PART: u64 = 8;
/// In a status head: the RTC part follows (after the clock part, when
/// there is one; set only when it is not the unknown one of a record from
/// before status record v5).
const STATUS_RTC_PART: u64 = 16;
/// In a status head: the last sleep follows (after the RTC part, when
/// there is one; set only when the record reports a sleep, status record
/// v6).
const STATUS_SLEEP_PART: u64 = 32;
/// In a status head: the record reports the detector's health (status
/// record v7); alone, both its counts are 0, and nothing follows for it.
/// Unset: not reported (a record from before v7).
const STATUS_DETECTION_PART: u64 = 64;
/// In a status head, with [`STATUS_DETECTION_PART`] only: the detector's
/// two counts follow (after the sleep part, when there is one), as two
/// varints; set only when one of them is not 0.
const STATUS_DETECTION_COUNTS: u64 = 128;
/// In a status head: the record reports the events not stored (status
/// record v8); alone, every count is 0, and nothing follows for it.
/// Unset: not reported (a record from before v8).
const STATUS_NOT_STORED_PART: u64 = 256;
/// In a status head, with [`STATUS_NOT_STORED_PART`] only: the four counts
/// of the events not stored follow (after the detector's counts, when they
/// are there), as four varints; set only when one of them is not 0.
const STATUS_NOT_STORED_COUNTS: u64 = 512;
/// Every part bit of a status head.
const STATUS_PARTS: u64 = STATUS_UPDATE_PART
    | STATUS_DISK_PART
    | STATUS_CLOCK_PART
    | STATUS_RTC_PART
    | STATUS_SLEEP_PART
    | STATUS_DETECTION_PART
    | STATUS_DETECTION_COUNTS
    | STATUS_NOT_STORED_PART
    | STATUS_NOT_STORED_COUNTS;
/// Number of optional event fields, each one presence bit.
const PRESENCE_BITS: u32 = 9;
/// The class starts above the kind bit and the presence bits.
const CLASS_SHIFT: u32 = 1 + PRESENCE_BITS;
/// In an event head: the time quality follows the body, because it is not
/// the previous event's in the message (above 7 bits of class).
const EVENT_TIME_PART: u64 = 1 << (CLASS_SHIFT + 7);
/// The time part's first varint: the source in the low 4 bits, then
/// `restamped`, then whether an uncertainty (varint, ms) follows.
const TIME_RESTAMPED: u64 = 1 << 4;
const TIME_UNCERTAINTY: u64 = 1 << 5;

/// A packed message and the ids of the records it carries, in order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Packed {
    /// The message bytes; empty when no record was given.
    pub bytes: Vec<u8>,
    /// Ids of the records included, in the order given (a prefix of the input).
    pub ids_included: Vec<u64>,
}

impl Packed {
    /// True when no record was packed.
    pub fn is_empty(&self) -> bool {
        self.ids_included.is_empty()
    }
}

/// Why records could not be packed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackError {
    /// The first record does not fit `max_len` even alone: it can never be sent
    /// packed with this limit.
    #[error("record {id} needs {needed} bytes packed alone, more than the limit of {max_len}")]
    RecordTooLarge {
        /// The record's id.
        id: u64,
        /// Bytes it needs alone, header included.
        needed: usize,
        /// The limit given.
        max_len: usize,
    },
    /// Records of different nodes cannot share a message (the node id is not sent).
    #[error("record {id} belongs to node {found:?}, not {expected:?} like the first record")]
    MixedNodes {
        /// The record's id.
        id: u64,
        /// Node id of the first record.
        expected: String,
        /// Node id of this record.
        found: String,
    },
}

/// Why bytes could not be unpacked. Every malformed input ends here; unpacking
/// never panics.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnpackError {
    /// No bytes.
    #[error("empty packed message")]
    Empty,
    /// The first byte is neither [`PACK_VERSION`] nor [`PACK_VERSION_1`].
    #[error(
        "not a packed message of a known version (first byte {found:#04x}, expected {PACK_VERSION:#04x} or {PACK_VERSION_1:#04x})"
    )]
    UnsupportedVersion {
        /// The first byte found.
        found: u8,
    },
    /// A header without records (or, in version 2, a record count of 0).
    #[error("packed message holds no record")]
    NoRecords,
    /// The message ends on a record boundary before the number of records
    /// its header announces: it was cut short (version 2).
    #[error("packed message cut short: it ends after {found} of its {expected} records")]
    Cut {
        /// Records the header announces.
        expected: u8,
        /// Whole records found before the end.
        found: usize,
    },
    /// The checksum in the header does not match the message: it was
    /// damaged (version 2).
    #[error(
        "packed message damaged: checksum {stored:#06x} in the header, {computed:#06x} computed"
    )]
    Checksum {
        /// The checksum the message carries.
        stored: u16,
        /// The checksum of the bytes received.
        computed: u16,
    },
    /// The bytes end inside a field.
    #[error("packed message truncated in {field} at byte {offset}")]
    Truncated {
        /// Which field was being read.
        field: &'static str,
        /// Offset of the field.
        offset: usize,
    },
    /// A field decoded to a value the format does not allow.
    #[error("invalid {field} at byte {offset}: {detail}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Offset of the field.
        offset: usize,
        /// What was wrong.
        detail: String,
    },
}

/// The status record without the fields the packing carries elsewhere
/// (id, node id, time). Encoded with postcard.
#[derive(Serialize, Deserialize)]
struct StatusBody {
    uptime_s: u32,
    battery_permille: u16,
    battery_mv: u16,
    power_mode: PowerModeCode,
    air_temp_c100: Option<i16>,
    board_temp_c100: Option<i16>,
    sensors: SensorHealth,
    queue: [u32; 4],
    drops: DropCounters,
    model: ModelVersion,
    last_contact_ms: Option<i64>,
}

/// True when a status record's cause or update part is not the periodic,
/// empty one (then the packing carries them).
fn has_update_part(s: &StatusRecord) -> bool {
    s.cause != StatusCause::Periodic || !s.update.is_empty()
}

/// A status record's head: the kind bit and the bits of the parts that
/// follow its body.
fn status_head(s: &StatusRecord) -> u64 {
    let mut head = KIND_STATUS;
    if has_update_part(s) {
        head |= STATUS_UPDATE_PART;
    }
    if !s.disk.is_empty() {
        head |= STATUS_DISK_PART;
    }
    if has_clock_part(s) {
        head |= STATUS_CLOCK_PART;
    }
    if !s.clock.rtc.is_unknown() {
        head |= STATUS_RTC_PART;
    }
    if s.clock.sleep.is_some() {
        head |= STATUS_SLEEP_PART;
    }
    if let Some(d) = &s.detection {
        head |= STATUS_DETECTION_PART;
        if !d.is_zero() {
            head |= STATUS_DETECTION_COUNTS;
        }
    }
    if let Some(n) = &s.not_stored {
        head |= STATUS_NOT_STORED_PART;
        if !n.is_zero() {
            head |= STATUS_NOT_STORED_COUNTS;
        }
    }
    head
}

/// True when a status record's clock part (without the RTC) is not the
/// unknown one.
fn has_clock_part(s: &StatusRecord) -> bool {
    ClockStatusV4::from(&s.clock) != ClockStatusV4::default()
}

fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serialising plain integers and structs into a growable Vec cannot fail.
    match postcard::to_extend(value, std::mem::take(out)) {
        Ok(v) => *out = v,
        Err(_) => unreachable!("postcard serialisation into a Vec is infallible"),
    }
}

/// The time a record is placed at: an event's start, a status report's time.
fn record_time(m: &Message) -> i64 {
    match m {
        Message::Event(e) => e.start_ms,
        Message::Status(s) => s.time_ms,
    }
}

fn event_presence(e: &EventRecord) -> u64 {
    let s = &e.scores;
    let f = &e.features;
    let bits = [
        s.audio.is_some(),
        s.camera.is_some(),
        s.climate.is_some(),
        f.audio_snr_db10.is_some(),
        f.audio_peak_hz.is_some(),
        f.motion_area.is_some(),
        f.motion_centroid.is_some(),
        f.temp_delta_c100.is_some(),
        f.temp_c100.is_some(),
    ];
    bits.iter()
        .enumerate()
        .fold(0, |acc, (i, &b)| acc | (u64::from(b) << i))
}

fn class_index(c: EventClass) -> u64 {
    EventClass::ALL.iter().position(|&x| x == c).unwrap_or(0) as u64
}

/// Appends one record (head, deltas unless `first`, body) to `out`;
/// `quality` is the time quality of the previous event in the message (the
/// unknown one before the first), and becomes this event's.
fn put_record(out: &mut Vec<u8>, m: &Message, prev: Option<(u64, i64)>, quality: &mut TimeQuality) {
    let new_time = match m {
        Message::Event(e) if e.time != *quality => Some(e.time),
        _ => None,
    };
    match m {
        Message::Event(e) => {
            let mut head =
                KIND_EVENT | (event_presence(e) << 1) | (class_index(e.class) << CLASS_SHIFT);
            if new_time.is_some() {
                head |= EVENT_TIME_PART;
            }
            put(out, &head);
        }
        Message::Status(s) => put(out, &status_head(s)),
    }
    if let Some((prev_id, prev_time)) = prev {
        put(out, &(m.id().wrapping_sub(prev_id.wrapping_add(1)) as i64));
        put(out, &record_time(m).wrapping_sub(prev_time));
    }
    match m {
        Message::Event(e) => {
            put(out, &e.duration_ms);
            put(out, &e.confidence.0);
            for v in [e.scores.audio, e.scores.camera, e.scores.climate]
                .into_iter()
                .flatten()
            {
                put(out, &v.0);
            }
            let f = &e.features;
            if let Some(v) = f.audio_snr_db10 {
                put(out, &v);
            }
            if let Some(v) = f.audio_peak_hz {
                put(out, &v);
            }
            if let Some(v) = f.motion_area {
                put(out, &v.0);
            }
            if let Some(v) = f.motion_centroid {
                put(out, &v);
            }
            if let Some(v) = f.temp_delta_c100 {
                put(out, &v);
            }
            if let Some(v) = f.temp_c100 {
                put(out, &v);
            }
            put(out, &e.model.0);
            if let Some(t) = new_time {
                *quality = t;
                let source = TimeSource::ALL
                    .iter()
                    .position(|&s| s == t.source)
                    .unwrap_or(0) as u64;
                let mut first = source;
                if t.restamped {
                    first |= TIME_RESTAMPED;
                }
                if t.uncertainty_ms.is_some() {
                    first |= TIME_UNCERTAINTY;
                }
                put(out, &first);
                if let Some(u) = t.uncertainty_ms {
                    put(out, &u);
                }
            }
        }
        Message::Status(s) => put(
            out,
            &StatusBody {
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
            },
        ),
    }
    if let Message::Status(s) = m {
        if has_update_part(s) {
            put(out, &(s.cause, &s.update));
        }
        if !s.disk.is_empty() {
            put(out, &s.disk);
        }
        if has_clock_part(s) {
            put(out, &ClockStatusV4::from(&s.clock));
        }
        if !s.clock.rtc.is_unknown() {
            put(out, &s.clock.rtc);
        }
        if let Some(sleep) = &s.clock.sleep {
            put(out, sleep);
        }
        if let Some(d) = s.detection.filter(|d| !d.is_zero()) {
            put(out, &d);
        }
        if let Some(n) = s.not_stored.filter(|n| !n.is_zero()) {
            put(out, &n);
        }
    }
}

/// CRC-16/IBM-3740 (also known as CRC-16/CCITT-FALSE: polynomial 0x1021,
/// initial value 0xFFFF, not reflected, no final xor; its check value, of
/// the ASCII bytes `123456789`, is 0x29B1) over `parts` in order.
pub fn crc16(parts: &[&[u8]]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The checksum of a version 2 message: every byte but the checksum's own.
fn message_crc(bytes: &[u8]) -> u16 {
    crc16(&[&bytes[..2], &bytes[HEADER_V2..]])
}

/// Packs as many of `records` as fit in `max_len` bytes (at most
/// [`MAX_RECORDS`]), in the order given, stopping at the first that does
/// not fit (so the message carries a prefix of the input and
/// `ids_included` says which). The result never exceeds `max_len`. No
/// records gives an empty [`Packed`]. The message is of version 2
/// ([`PACK_VERSION`]): its header carries the record count and the
/// checksum.
///
/// Errors: the first record does not fit alone ([`PackError::RecordTooLarge`]:
/// it would never go out, so the caller must know), or a record of another
/// node than the first among those that would be included.
pub fn pack(records: &[Message], max_len: usize) -> Result<Packed, PackError> {
    let Some(first) = records.first() else {
        return Ok(Packed::default());
    };
    // Count and checksum are filled in once the records are known.
    let mut bytes = vec![PACK_VERSION, 0, 0, 0];
    put(&mut bytes, &first.id());
    put(&mut bytes, &record_time(first));
    let mut ids_included = Vec::new();
    let mut prev: Option<(u64, i64)> = None;
    let mut quality = TimeQuality::default();
    let mut scratch = Vec::with_capacity(64);
    for m in records.iter().take(MAX_RECORDS) {
        scratch.clear();
        let mut next_quality = quality;
        put_record(&mut scratch, m, prev, &mut next_quality);
        if bytes.len() + scratch.len() > max_len {
            if ids_included.is_empty() {
                return Err(PackError::RecordTooLarge {
                    id: m.id(),
                    needed: bytes.len() + scratch.len(),
                    max_len,
                });
            }
            break;
        }
        if m.node_id() != first.node_id() {
            return Err(PackError::MixedNodes {
                id: m.id(),
                expected: first.node_id().to_owned(),
                found: m.node_id().to_owned(),
            });
        }
        bytes.extend_from_slice(&scratch);
        ids_included.push(m.id());
        prev = Some((m.id(), record_time(m)));
        quality = next_quality;
    }
    // At most MAX_RECORDS (255) records were taken.
    bytes[1] = u8::try_from(ids_included.len()).unwrap_or(u8::MAX);
    let crc = message_crc(&bytes);
    bytes[2..HEADER_V2].copy_from_slice(&crc.to_be_bytes());
    Ok(Packed {
        bytes,
        ids_included,
    })
}

/// A cursor over packed bytes that turns every failure into an [`UnpackError`].
struct Reader<'a> {
    all: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn offset(&self) -> usize {
        self.all.len() - self.rest.len()
    }

    fn take<T: Deserialize<'a>>(&mut self, field: &'static str) -> Result<T, UnpackError> {
        let offset = self.offset();
        match postcard::take_from_bytes::<T>(self.rest) {
            Ok((v, rest)) => {
                self.rest = rest;
                Ok(v)
            }
            Err(postcard::Error::DeserializeUnexpectedEnd) => {
                Err(UnpackError::Truncated { field, offset })
            }
            Err(e) => Err(UnpackError::Invalid {
                field,
                offset,
                detail: e.to_string(),
            }),
        }
    }

    fn opt<T: Deserialize<'a>>(
        &mut self,
        present: bool,
        field: &'static str,
    ) -> Result<Option<T>, UnpackError> {
        if present {
            self.take(field).map(Some)
        } else {
            Ok(None)
        }
    }

    fn permille(
        &mut self,
        present: bool,
        field: &'static str,
    ) -> Result<Option<Permille>, UnpackError> {
        Ok(self.opt::<u16>(present, field)?.map(Permille))
    }
}

/// Unpacks a message written by [`pack`] (version 2) or by a node of
/// version 1, giving every record `node_id` (the ground side knows the node
/// from the modem's IMEI). Never panics.
///
/// Version 2: a message cut short is an error, on a record boundary too
/// ([`UnpackError::Cut`], or [`UnpackError::Truncated`] inside a record),
/// and so is one whose checksum does not match ([`UnpackError::Checksum`]).
/// Version 1 carries neither: a message cut on a record boundary unpacks
/// to its first records, a damaged one to an error or to other records.
pub fn unpack(bytes: &[u8], node_id: &str) -> Result<Vec<Message>, UnpackError> {
    let (&version, _) = bytes.split_first().ok_or(UnpackError::Empty)?;
    match version {
        PACK_VERSION => unpack_v2(bytes, node_id),
        PACK_VERSION_1 => read_records(bytes, 1, usize::MAX, node_id),
        found => Err(UnpackError::UnsupportedVersion { found }),
    }
}

fn unpack_v2(bytes: &[u8], node_id: &str) -> Result<Vec<Message>, UnpackError> {
    let (Some(&count), Some(stored)) = (bytes.get(1), bytes.get(2..HEADER_V2)) else {
        let (field, offset) = if bytes.len() < 2 {
            ("record count", 1)
        } else {
            ("checksum", 2)
        };
        return Err(UnpackError::Truncated { field, offset });
    };
    let stored = u16::from_be_bytes([stored[0], stored[1]]);
    let computed = message_crc(bytes);
    let read = read_records(bytes, HEADER_V2, usize::from(count), node_id);
    if stored != computed {
        // Tell a message cut short (records end with the bytes, fewer than
        // announced, or the bytes end inside a field) from one damaged.
        return Err(match read {
            Ok(records) if records.len() < usize::from(count) => UnpackError::Cut {
                expected: count,
                found: records.len(),
            },
            Err(UnpackError::NoRecords) if count > 0 => UnpackError::Cut {
                expected: count,
                found: 0,
            },
            Err(e @ UnpackError::Truncated { .. }) => e,
            _ => UnpackError::Checksum { stored, computed },
        });
    }
    let records = read?;
    if count == 0 {
        return Err(UnpackError::NoRecords);
    }
    if records.len() < usize::from(count) {
        return Err(UnpackError::Cut {
            expected: count,
            found: records.len(),
        });
    }
    Ok(records)
}

/// Reads the first id and time at `start`, then at most `max_records`
/// records; bytes left after `max_records` are an error.
fn read_records(
    bytes: &[u8],
    start: usize,
    max_records: usize,
    node_id: &str,
) -> Result<Vec<Message>, UnpackError> {
    let mut r = Reader {
        all: bytes,
        rest: bytes.get(start..).unwrap_or_default(),
    };
    let mut id: u64 = r.take("first id")?;
    let mut time: i64 = r.take("first time")?;
    let mut quality = TimeQuality::default();
    let mut out = Vec::new();
    while !r.rest.is_empty() {
        if out.len() >= max_records {
            return Err(UnpackError::Invalid {
                field: "record count",
                offset: r.offset(),
                detail: format!(
                    "{} bytes after the {max_records} records announced",
                    r.rest.len()
                ),
            });
        }
        let head_at = r.offset();
        let head: u64 = r.take("record head")?;
        if !out.is_empty() {
            let id_delta: i64 = r.take("id delta")?;
            let time_delta: i64 = r.take("time delta")?;
            id = id.wrapping_add(1).wrapping_add(id_delta as u64);
            time = time.wrapping_add(time_delta);
        }
        let record = match head & 1 {
            KIND_EVENT => {
                let e = read_event(&mut r, head, head_at, id, time, node_id, quality)?;
                quality = e.time;
                Message::Event(e)
            }
            _ => {
                if head & !STATUS_PARTS != KIND_STATUS {
                    return Err(UnpackError::Invalid {
                        field: "record head",
                        offset: head_at,
                        detail: format!("status head {head} has reserved bits set"),
                    });
                }
                for (part, counts, what) in [
                    (STATUS_DETECTION_PART, STATUS_DETECTION_COUNTS, "detection"),
                    (
                        STATUS_NOT_STORED_PART,
                        STATUS_NOT_STORED_COUNTS,
                        "not-stored",
                    ),
                ] {
                    if head & (part | counts) == counts {
                        return Err(UnpackError::Invalid {
                            field: "record head",
                            offset: head_at,
                            detail: format!(
                                "status head {head} has {what} counts without the {what} part"
                            ),
                        });
                    }
                }
                Message::Status(read_status(&mut r, id, time, node_id, head)?)
            }
        };
        out.push(record);
    }
    if out.is_empty() {
        return Err(UnpackError::NoRecords);
    }
    Ok(out)
}

fn read_event(
    r: &mut Reader<'_>,
    head: u64,
    head_at: usize,
    id: u64,
    start_ms: i64,
    node_id: &str,
    previous: TimeQuality,
) -> Result<EventRecord, UnpackError> {
    let presence = (head >> 1) & ((1 << PRESENCE_BITS) - 1);
    let with_time = head & EVENT_TIME_PART != 0;
    let class_idx = (head & !EVENT_TIME_PART) >> CLASS_SHIFT;
    let class = usize::try_from(class_idx)
        .ok()
        .and_then(|i| EventClass::ALL.get(i).copied())
        .ok_or_else(|| UnpackError::Invalid {
            field: "event class",
            offset: head_at,
            detail: format!("unknown class index {class_idx}"),
        })?;
    let has = |bit: u32| presence & (1 << bit) != 0;
    let duration_ms = r.take("duration")?;
    let confidence = Permille(r.take("confidence")?);
    let scores = ModalityScores {
        audio: r.permille(has(0), "audio score")?,
        camera: r.permille(has(1), "camera score")?,
        climate: r.permille(has(2), "climate score")?,
    };
    let features = KeyFeatures {
        audio_snr_db10: r.opt(has(3), "audio snr")?,
        audio_peak_hz: r.opt(has(4), "audio peak")?,
        motion_area: r.permille(has(5), "motion area")?,
        motion_centroid: r.opt(has(6), "motion centroid")?,
        temp_delta_c100: r.opt(has(7), "temperature delta")?,
        temp_c100: r.opt(has(8), "temperature")?,
    };
    let model = ModelVersion(r.take("model")?);
    let time = if with_time {
        let at = r.offset();
        let first: u64 = r.take("time quality")?;
        let source = usize::try_from(first & 0xf)
            .ok()
            .and_then(|i| TimeSource::ALL.get(i).copied());
        let (Some(source), 0) = (source, first & !(0xf | TIME_RESTAMPED | TIME_UNCERTAINTY)) else {
            return Err(UnpackError::Invalid {
                field: "time quality",
                offset: at,
                detail: format!("unknown source or reserved bits in {first}"),
            });
        };
        let uncertainty_ms = if first & TIME_UNCERTAINTY != 0 {
            Some(r.take("time uncertainty")?)
        } else {
            None
        };
        let time = TimeQuality {
            source,
            uncertainty_ms,
            restamped: first & TIME_RESTAMPED != 0,
        };
        if time == previous {
            // Never written: the part is left out when it repeats.
            return Err(UnpackError::Invalid {
                field: "time quality",
                offset: at,
                detail: "the previous event's quality is never repeated".into(),
            });
        }
        time
    } else {
        previous
    };
    Ok(EventRecord {
        id,
        node_id: node_id.to_owned(),
        start_ms,
        duration_ms,
        class,
        confidence,
        scores,
        features,
        model,
        time,
        mono: None,
    })
}

fn read_status(
    r: &mut Reader<'_>,
    id: u64,
    time_ms: i64,
    node_id: &str,
    head: u64,
) -> Result<StatusRecord, UnpackError> {
    let b: StatusBody = r.take("status body")?;
    let (cause, update): (StatusCause, UpdateStatus) = if head & STATUS_UPDATE_PART != 0 {
        r.take("status update part")?
    } else {
        Default::default()
    };
    let disk: DiskReport = if head & STATUS_DISK_PART != 0 {
        r.take("status disk part")?
    } else {
        DiskReport::default()
    };
    let clock: ClockStatusV4 = if head & STATUS_CLOCK_PART != 0 {
        r.take("status clock part")?
    } else {
        ClockStatusV4::default()
    };
    let rtc: RtcStatus = if head & STATUS_RTC_PART != 0 {
        r.take("status rtc part")?
    } else {
        RtcStatus::default()
    };
    let sleep: Option<LastSleep> = if head & STATUS_SLEEP_PART != 0 {
        Some(r.take("status sleep part")?)
    } else {
        None
    };
    let detection: Option<DetectionHealth> = read_counts(
        r,
        head,
        (STATUS_DETECTION_PART, STATUS_DETECTION_COUNTS),
        "status detection part",
    )?;
    let not_stored: Option<NotStored> = read_counts(
        r,
        head,
        (STATUS_NOT_STORED_PART, STATUS_NOT_STORED_COUNTS),
        "status not-stored part",
    )?;
    Ok(StatusRecord {
        id,
        node_id: node_id.to_owned(),
        time_ms,
        uptime_s: b.uptime_s,
        battery_permille: b.battery_permille,
        battery_mv: b.battery_mv,
        power_mode: b.power_mode,
        air_temp_c100: b.air_temp_c100,
        board_temp_c100: b.board_temp_c100,
        sensors: b.sensors,
        queue: b.queue,
        drops: b.drops,
        model: b.model,
        last_contact_ms: b.last_contact_ms,
        cause,
        update,
        disk,
        clock: clock.with_rtc(rtc, sleep),
        detection,
        not_stored,
    })
}

/// A part of counts behind two status head bits: `part` alone, every count
/// 0 (nothing follows); with `counts`, the counts follow, and all of them
/// 0 there is an error (never written); neither, not reported.
fn read_counts<'a, T>(
    r: &mut Reader<'a>,
    head: u64,
    (part, counts): (u64, u64),
    field: &'static str,
) -> Result<Option<T>, UnpackError>
where
    T: Deserialize<'a> + Default + PartialEq,
{
    match (head & part != 0, head & counts != 0) {
        (false, _) => Ok(None),
        (true, false) => Ok(Some(T::default())),
        (true, true) => {
            let at = r.offset();
            let c: T = r.take(field)?;
            if c == T::default() {
                // Never written: counts of 0 go as the part's head bit alone.
                return Err(UnpackError::Invalid {
                    field,
                    offset: at,
                    detail: "counts that are all 0 are never written".into(),
                });
            }
            Ok(Some(c))
        }
    }
}

/// Iridium billing: one credit per started 50 bytes of a message.
pub fn credits_for(len: usize) -> u32 {
    u32::try_from(len.div_ceil(50)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SensorState, encode_event};

    /// A seeded xorshift generator: a failure replays from its seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
            if self.chance(70) { Some(f(self)) } else { None }
        }
    }

    const NODE: &str = "node-07";

    fn event(rng: &mut Rng, id: u64, start_ms: i64) -> EventRecord {
        EventRecord {
            id,
            node_id: NODE.into(),
            start_ms,
            duration_ms: if rng.chance(5) {
                rng.next() as u32
            } else {
                rng.below(30_000) as u32
            },
            class: EventClass::ALL[rng.below(5) as usize],
            confidence: Permille(rng.below(1001) as u16),
            scores: ModalityScores {
                audio: rng.opt(|r| Permille(r.below(1001) as u16)),
                camera: rng.opt(|r| Permille(r.below(1001) as u16)),
                climate: rng.opt(|r| Permille(r.next() as u16)),
            },
            features: KeyFeatures {
                audio_snr_db10: rng.opt(|r| r.next() as i16),
                audio_peak_hz: rng.opt(|r| r.below(8000) as u16),
                motion_area: rng.opt(|r| Permille(r.below(1001) as u16)),
                motion_centroid: rng.opt(|r| (r.next() as u8, r.next() as u8)),
                temp_delta_c100: rng.opt(|r| (r.below(400) as i16) - 200),
                temp_c100: rng.opt(|r| r.next() as i16),
            },
            model: ModelVersion(if rng.chance(80) { 0 } else { rng.next() as u32 }),
            time: if rng.chance(30) {
                crate::TimeQuality::default()
            } else {
                crate::TimeQuality {
                    source: TimeSource::ALL[1 + rng.below(7) as usize],
                    uncertainty_ms: rng.opt(|r| r.next() as u32),
                    restamped: rng.chance(20),
                }
            },
            mono: None,
        }
    }

    fn status(rng: &mut Rng, id: u64, time_ms: i64) -> StatusRecord {
        let state = |r: &mut Rng| {
            [SensorState::Ok, SensorState::Degraded, SensorState::Absent][r.below(3) as usize]
        };
        StatusRecord {
            id,
            node_id: NODE.into(),
            time_ms,
            uptime_s: rng.next() as u32,
            battery_permille: rng.below(1001) as u16,
            battery_mv: rng.next() as u16,
            power_mode: [
                PowerModeCode::Normal,
                PowerModeCode::Saving,
                PowerModeCode::Survival,
            ][rng.below(3) as usize],
            air_temp_c100: rng.opt(|r| r.next() as i16),
            board_temp_c100: rng.opt(|r| r.next() as i16),
            sensors: SensorHealth {
                microphone: state(rng),
                camera: state(rng),
                climate: state(rng),
                model: state(rng),
            },
            queue: [
                rng.next() as u32,
                rng.below(500) as u32,
                0,
                rng.below(3) as u32,
            ],
            drops: DropCounters {
                evicted_budget: rng.below(100) as u32,
                expired_ttl: rng.next() as u32,
                corrupt: 0,
            },
            model: ModelVersion(rng.below(4) as u32),
            last_contact_ms: rng.opt(|r| r.next() as i64),
            cause: [
                StatusCause::Periodic,
                StatusCause::Requested,
                StatusCause::UpdateResult,
            ][rng.below(3) as usize],
            update: if rng.chance(50) {
                UpdateStatus::default()
            } else {
                UpdateStatus {
                    model_active: rng.below(5),
                    model_staged: rng.opt(|r| r.next()),
                    settings: rng.below(3),
                    last: rng.opt(|r| crate::UpdateResult {
                        kind: crate::BundleKindCode::Model,
                        name: crate::ShortText::new("fusion"),
                        version: r.next(),
                        result: crate::UpdateOutcome::Refused,
                        reason: crate::ShortText::new(&"é".repeat(r.below(40) as usize)),
                    }),
                }
            },
            disk: if rng.chance(20) {
                DiskReport::default()
            } else {
                DiskReport {
                    free_mib: rng.opt(|r| {
                        if r.chance(10) {
                            r.next() as u32
                        } else {
                            r.below(60_000) as u32
                        }
                    }),
                    state: crate::DiskStateCode::ALL[rng.below(4) as usize],
                    evicted: if rng.chance(70) { 0 } else { rng.next() as u32 },
                }
            },
            clock: crate::ClockStatus {
                quality: if rng.chance(30) {
                    TimeQuality::default()
                } else {
                    TimeQuality {
                        source: TimeSource::ALL[rng.below(8) as usize],
                        uncertainty_ms: rng.opt(|r| r.next() as u32),
                        restamped: rng.chance(10),
                    }
                },
                steps: if rng.chance(70) { 0 } else { rng.next() as u32 },
                largest_step_ms: if rng.chance(70) { 0 } else { rng.next() as i64 },
                rtc: match rng.below(4) {
                    0 => RtcStatus::default(),
                    1 => RtcStatus::NONE,
                    _ => RtcStatus {
                        state: crate::RtcState::Found,
                        offset_s: rng.opt(|r| {
                            if r.chance(20) {
                                r.next() as i64
                            } else {
                                r.below(5) as i64 - 2
                            }
                        }),
                        cell_mv: rng.opt(|r| r.next() as u16),
                    },
                },
                sleep: rng.opt(|r| LastSleep {
                    reason: crate::SleepReasonCode::LowBattery,
                    slept_s: r.next() as u32,
                    planned_s: r.below(86_400) as u32,
                    wake: [
                        crate::WakeCause::Rtc,
                        crate::WakeCause::WakeLine,
                        crate::WakeCause::Cold,
                    ][r.below(3) as usize],
                }),
            },
            detection: match rng.below(4) {
                0 => None,
                1 => Some(DetectionHealth::default()),
                _ => Some(DetectionHealth {
                    events_cut_at_max: if rng.chance(20) {
                        rng.next() as u32
                    } else {
                        rng.below(3) as u32
                    },
                    events_joined: if rng.chance(20) {
                        rng.next() as u32
                    } else {
                        rng.below(400) as u32
                    },
                }),
            },
            not_stored: match rng.below(4) {
                0 => None,
                1 => Some(NotStored::default()),
                _ => Some(NotStored::saturating(std::array::from_fn(|_| {
                    if rng.chance(20) {
                        rng.next()
                    } else {
                        rng.below(50)
                    }
                }))),
            },
        }
    }

    /// A random outbox excerpt: mostly consecutive ids and times minutes
    /// apart, sometimes out of order, extreme or wrapping values.
    fn records(rng: &mut Rng) -> Vec<Message> {
        let n = rng.below(40) as usize + 1;
        let mut id = if rng.chance(10) {
            rng.next()
        } else {
            rng.below(1_000_000)
        };
        let mut t: i64 = if rng.chance(10) {
            rng.next() as i64
        } else {
            1_780_000_000_000 + rng.below(1 << 32) as i64
        };
        (0..n)
            .map(|_| {
                id = if rng.chance(85) {
                    id.wrapping_add(1)
                } else {
                    rng.next()
                };
                t = if rng.chance(90) {
                    t.wrapping_add(rng.below(3_600_000) as i64)
                } else {
                    rng.next() as i64
                };
                if rng.chance(10) {
                    Message::Status(status(rng, id, t))
                } else {
                    Message::Event(event(rng, id, t))
                }
            })
            .collect()
    }

    fn check_one(rng: &mut Rng) {
        let input = records(rng);
        let max_len = if rng.chance(50) {
            SBD_MO_MAX
        } else {
            40 + rng.below(400) as usize
        };
        // Pack everything in successive messages, as the link would.
        let mut rest = &input[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let packed = match pack(rest, max_len) {
                Ok(p) => p,
                Err(PackError::RecordTooLarge { needed, .. }) => {
                    assert!(needed > max_len);
                    return; // a record that can never fit with this limit is reported, not dropped
                }
                Err(e) => panic!("unexpected {e}"),
            };
            assert!(
                packed.bytes.len() <= max_len,
                "{} > {max_len}",
                packed.bytes.len()
            );
            assert!(!packed.is_empty());
            let want: Vec<u64> = rest[..packed.ids_included.len()]
                .iter()
                .map(Message::id)
                .collect();
            assert_eq!(packed.ids_included, want);
            let back = unpack(&packed.bytes, NODE).expect("own output unpacks");
            assert_eq!(back, rest[..back.len()].to_vec(), "round trip");
            assert_eq!(back.len(), packed.ids_included.len());
            assert_eq!(usize::from(packed.bytes[1]), back.len(), "record count");
            // Every prefix is an error; in version 1 (no count, no
            // checksum), an error or a prefix of the records.
            let v1 = to_v1(&packed.bytes);
            assert_eq!(
                unpack(&v1, NODE).as_ref(),
                Ok(&back),
                "version 1 round trip"
            );
            for cut in 0..packed.bytes.len() {
                assert!(
                    unpack(&packed.bytes[..cut], NODE).is_err(),
                    "prefix of {cut} bytes unpacked"
                );
            }
            for cut in 0..v1.len() {
                if let Ok(v) = unpack(&v1[..cut], NODE) {
                    assert_eq!(v, back[..v.len()].to_vec(), "v1 prefix of {cut} bytes");
                }
            }
            // A flipped bit after the version byte is always found; any
            // damage never panics.
            for _ in 0..8 {
                let mut b = packed.bytes.clone();
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << rng.below(8);
                let r = unpack(&b, NODE);
                assert!(i == 0 || r.is_err(), "bit flip at byte {i} unpacked");
                let mut b = v1.clone();
                let j = i.min(b.len() - 1);
                b[j] ^= 1 << rng.below(8);
                let _ = unpack(&b, NODE);
            }
            rest = &rest[packed.ids_included.len()..];
            out.extend(back);
        }
        assert_eq!(out, input, "everything delivered once, in order");
    }

    fn iterations(default: u64) -> u64 {
        // MESSAGES_FUZZ_ITERS=1000000 cargo test -p messages --release fuzz
        std::env::var("MESSAGES_FUZZ_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    #[test]
    fn fuzz_pack_round_trips_within_limit() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..iterations(300) {
            check_one(&mut rng);
        }
    }

    /// A version 2 message as a node of version 1 would have sent it: the
    /// records are encoded alike, only the header's count and checksum are
    /// new.
    fn to_v1(v2: &[u8]) -> Vec<u8> {
        assert_eq!(v2[0], PACK_VERSION);
        let mut v1 = vec![PACK_VERSION_1];
        v1.extend_from_slice(&v2[HEADER_V2..]);
        v1
    }

    #[test]
    fn fuzz_garbage_never_panics() {
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        for i in 0..iterations(300) * 20 {
            let len = rng.below(350) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if b.len() >= HEADER_V2 && i % 2 == 0 {
                // Version 2 with a matching checksum, so that the garbage
                // reaches the record reader.
                b[0] = PACK_VERSION;
                let crc = message_crc(&b);
                b[2..HEADER_V2].copy_from_slice(&crc.to_be_bytes());
            } else if let Some(first) = b.first_mut() {
                *first = PACK_VERSION_1;
            }
            if let Ok(v) = unpack(&b, NODE) {
                assert!(!v.is_empty());
            }
        }
    }

    #[test]
    fn the_checksum_is_crc16_ibm_3740() {
        // The catalogue's check value.
        assert_eq!(crc16(&[b"123456789"]), 0x29B1);
        assert_eq!(crc16(&[b"1234", b"", b"56789"]), 0x29B1);
        assert_eq!(crc16(&[]), 0xFFFF);
    }

    #[test]
    fn a_cut_on_every_record_boundary_is_detected() {
        let mut rng = Rng(99);
        let mut t = 1_780_000_000_000i64;
        let records: Vec<Message> = (500..512)
            .map(|id| {
                t += 60_000 + rng.below(600_000) as i64;
                if id % 5 == 4 {
                    Message::Status(status(&mut rng, id, t))
                } else {
                    Message::Event(event(&mut rng, id, t))
                }
            })
            .collect();
        let full = pack(&records, 4_000).unwrap();
        assert_eq!(full.ids_included.len(), records.len());
        let n = u8::try_from(records.len()).unwrap();
        // The message of the first k records is the full one's header and
        // first k records: a cut there ends on a record boundary.
        for k in 0..records.len() {
            let boundary = if k == 0 {
                let mut header = vec![0; HEADER_V2];
                put(&mut header, &records[0].id());
                put(&mut header, &record_time(&records[0]));
                header.len()
            } else {
                pack(&records[..k], 4_000).unwrap().bytes.len()
            };
            let cut = &full.bytes[..boundary];
            assert_eq!(
                unpack(cut, NODE),
                Err(UnpackError::Cut {
                    expected: n,
                    found: k
                }),
                "cut after {k} records ({boundary} bytes)"
            );
            // Version 1 could not tell: the same cut reads as a shorter
            // message (or, before the first record, as none).
            let v1 = to_v1(&full.bytes);
            let v1_cut = &v1[..boundary - (HEADER_V2 - 1)];
            match unpack(v1_cut, NODE) {
                Ok(v) => assert_eq!(v, records[..k].to_vec()),
                Err(e) => assert_eq!((k, e), (0, UnpackError::NoRecords)),
            }
        }
        // Every other cut is an error too, never records.
        for cut in 0..full.bytes.len() {
            assert!(unpack(&full.bytes[..cut], NODE).is_err(), "cut at {cut}");
        }
        assert_eq!(unpack(&full.bytes, NODE), Ok(records));
    }

    #[test]
    fn a_flipped_byte_or_bit_is_detected() {
        let records = golden_records();
        let packed = pack(&records, SBD_MO_MAX).unwrap().bytes;
        let mut checksum_errors = 0;
        for i in 1..packed.len() {
            for flip in (0..8).map(|b| 1u8 << b).chain([0xFF]) {
                let mut b = packed.clone();
                b[i] ^= flip;
                match unpack(&b, NODE) {
                    Ok(v) => panic!("byte {i} ^ {flip:#04x} unpacked to {v:?}"),
                    Err(UnpackError::Checksum { .. }) => checksum_errors += 1,
                    Err(_) => {}
                }
            }
        }
        // Most damage reads as damage (a flip in the count may read as a
        // cut, one that ends a varint early as a truncation).
        let flips = (packed.len() - 1) * 9;
        assert!(
            checksum_errors * 10 >= flips * 9,
            "{checksum_errors} of {flips}"
        );
        // The version byte is outside what a checksum can protect: another
        // version is refused, and 0x50 reads the rest as version 1 (an
        // error here).
        let mut b = packed.clone();
        b[0] = 0x52;
        assert_eq!(
            unpack(&b, NODE),
            Err(UnpackError::UnsupportedVersion { found: 0x52 })
        );
    }

    #[test]
    fn version_1_messages_from_older_nodes_still_unpack() {
        // Packed by the version 1 packer (before the record count and the
        // checksum) from `golden_records`.
        let v1 = "502980a0a484ce67f68d08c413e60684079003ee02ce18197850f41c0325e807f61d00b0cc0bf855800584079003ee02ce18197850f41c030f02d0860380a305ac06ea620101fc1b01e4410000000000020100000000030180e6ec80ce67010000000001e25700000501e8070001ef2e";
        let v1: Vec<u8> = (0..v1.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).unwrap())
            .collect();
        let records = golden_records();
        assert_eq!(unpack(&v1, NODE), Ok(records.clone()));
        // Version 2 is the same records behind a longer header.
        let v2 = pack(&records, SBD_MO_MAX).unwrap().bytes;
        assert_eq!(v2.len(), v1.len() + 3);
        assert_eq!(&v2[..2], &[PACK_VERSION, 3][..]);
        assert_eq!(to_v1(&v2), v1);
        assert_eq!(unpack(&v2, NODE), Ok(records));
        assert!(is_packed(v1[0]) && is_packed(v2[0]));
        assert!(!is_packed(
            crate::encode_event(&event(&mut Rng(1), 1, 0))[0]
        ));
    }

    #[test]
    fn a_message_holds_at_most_255_records() {
        let mut rng = Rng(5);
        let records: Vec<Message> = (0..300)
            .map(|id| Message::Event(event(&mut rng, id, 1_780_000_000_000 + id as i64)))
            .collect();
        let p = pack(&records, 100_000).unwrap();
        assert_eq!(p.ids_included.len(), MAX_RECORDS);
        assert_eq!(p.bytes[1], 255);
        assert_eq!(unpack(&p.bytes, NODE), Ok(records[..MAX_RECORDS].to_vec()));
    }

    /// A version 2 message of `count` records around `body` (first id,
    /// first time, records), with its checksum.
    fn v2(count: u8, body: &[u8]) -> Vec<u8> {
        let mut b = vec![PACK_VERSION, count, 0, 0];
        b.extend_from_slice(body);
        let crc = message_crc(&b);
        b[2..HEADER_V2].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(unpack(&[], NODE), Err(UnpackError::Empty));
        assert_eq!(
            unpack(&[1, 2], NODE),
            Err(UnpackError::UnsupportedVersion { found: 1 })
        );
        for v in [PACK_VERSION_1, PACK_VERSION] {
            let b = if v == PACK_VERSION {
                v2(0, &[5, 0])
            } else {
                vec![v, 5, 0]
            };
            assert_eq!(unpack(&b, NODE), Err(UnpackError::NoRecords), "{v:#x}");
            let b = if v == PACK_VERSION {
                v2(1, &[5])
            } else {
                vec![v, 5]
            };
            assert!(
                matches!(
                    unpack(&b, NODE),
                    Err(UnpackError::Truncated {
                        field: "first time",
                        ..
                    })
                ),
                "{v:#x}"
            );
            // Event head with class index 7: unknown class.
            let mut body = vec![5, 0];
            put(&mut body, &(7u64 << CLASS_SHIFT));
            let b = if v == PACK_VERSION {
                v2(1, &body)
            } else {
                [&[v][..], &body].concat()
            };
            assert!(
                matches!(
                    unpack(&b, NODE),
                    Err(UnpackError::Invalid {
                        field: "event class",
                        ..
                    })
                ),
                "{v:#x}"
            );
            // Status head with reserved bits (bit 1 is the update part's,
            // bit 2 the disk part's, bit 3 the clock part's, bit 4 the
            // RTC part's, bit 5 the sleep part's, bits 6 and 7 the
            // detector's, bits 8 and 9 the events not stored): bit 10 (the
            // varint 1025).
            let b = if v == PACK_VERSION {
                v2(1, &[5, 0, 0x81, 0x08])
            } else {
                vec![v, 5, 0, 0x81, 0x08]
            };
            assert!(
                matches!(unpack(&b, NODE), Err(UnpackError::Invalid { .. })),
                "{v:#x}"
            );
            // The detector's counts (bit 7) without its part (bit 6): the
            // varint 129; the counts of the events not stored (bit 9)
            // without their part (bit 8): the varint 513.
            for head in [[0x81, 0x01], [0x81, 0x04]] {
                let b = if v == PACK_VERSION {
                    v2(1, &[&[5, 0][..], &head].concat())
                } else {
                    [&[v, 5, 0][..], &head].concat()
                };
                assert!(
                    matches!(unpack(&b, NODE), Err(UnpackError::Invalid { .. })),
                    "{v:#x} {head:?}"
                );
            }
        }
        // Version 2: a header cut short, a count of none, records beyond
        // the count, fewer records than the count with a valid checksum.
        assert!(matches!(
            unpack(&[PACK_VERSION], NODE),
            Err(UnpackError::Truncated {
                field: "record count",
                offset: 1
            })
        ));
        assert!(matches!(
            unpack(&[PACK_VERSION, 1, 0], NODE),
            Err(UnpackError::Truncated {
                field: "checksum",
                offset: 2
            })
        ));
        let two = pack(
            &[
                Message::Event(event(&mut Rng(3), 1, 0)),
                Message::Event(event(&mut Rng(4), 2, 10)),
            ],
            SBD_MO_MAX,
        )
        .unwrap()
        .bytes;
        assert!(matches!(
            unpack(&v2(1, &two[HEADER_V2..]), NODE),
            Err(UnpackError::Invalid {
                field: "record count",
                ..
            })
        ));
        assert_eq!(
            unpack(&v2(3, &two[HEADER_V2..]), NODE),
            Err(UnpackError::Cut {
                expected: 3,
                found: 2
            })
        );
        assert!(matches!(
            unpack(&v2(0, &two[HEADER_V2..]), NODE),
            Err(UnpackError::Invalid {
                field: "record count",
                ..
            })
        ));
        assert_eq!(pack(&[], SBD_MO_MAX), Ok(Packed::default()));
    }

    #[test]
    fn a_status_on_an_update_result_packs_with_its_update_part_and_old_heads_still_unpack() {
        use crate::update_status::{NAME_MAX, REASON_MAX};
        let mut rng = Rng(11);
        let mut s = status(&mut rng, 40, 1_780_000_000_000);
        s.clock = Default::default();
        s.detection = None;
        s.not_stored = None;
        s.cause = StatusCause::UpdateResult;
        s.update = UpdateStatus {
            model_active: u64::MAX,
            model_staged: Some(u64::MAX),
            settings: u64::MAX,
            last: Some(crate::UpdateResult {
                kind: crate::BundleKindCode::Settings,
                name: crate::ShortText::new(&"s".repeat(NAME_MAX)),
                version: u64::MAX,
                result: crate::UpdateOutcome::Deferred,
                reason: crate::ShortText::new(&"r".repeat(REASON_MAX)),
            }),
        };
        s.disk = DiskReport {
            free_mib: Some(u32::MAX),
            state: crate::DiskStateCode::Full,
            evicted: u32::MAX,
        };
        let packed = pack(&[Message::Status(s.clone())], SBD_MO_MAX).unwrap();
        eprintln!(
            "a status record with every update field and the disk part at their largest packs into {} bytes",
            packed.bytes.len()
        );
        assert!(packed.bytes.len() <= 200, "{}", packed.bytes.len());
        assert_eq!(
            unpack(&packed.bytes, NODE),
            Ok(vec![Message::Status(s.clone())])
        );
        // With the detector's counts at their largest too: 11 bytes more.
        let counted = StatusRecord {
            detection: Some(DetectionHealth {
                events_cut_at_max: u32::MAX,
                events_joined: u32::MAX,
            }),
            ..s.clone()
        };
        let p = pack(&[Message::Status(counted.clone())], SBD_MO_MAX).unwrap();
        eprintln!(
            "with the detector's counts at their largest too: {} bytes",
            p.bytes.len()
        );
        assert_eq!(p.bytes.len(), packed.bytes.len() + 11);
        assert_eq!(
            unpack(&p.bytes, NODE),
            Ok(vec![Message::Status(counted.clone())])
        );
        // And the events not stored at their largest: 20 bytes more (four
        // five-byte varints; the head is two bytes already).
        let all = StatusRecord {
            not_stored: Some(NotStored::saturating([u64::MAX; 4])),
            ..counted.clone()
        };
        let q = pack(&[Message::Status(all.clone())], SBD_MO_MAX).unwrap();
        eprintln!(
            "with the events not stored at their largest too: {} bytes",
            q.bytes.len()
        );
        assert_eq!(q.bytes.len(), p.bytes.len() + 20);
        assert_eq!(unpack(&q.bytes, NODE), Ok(vec![Message::Status(all)]));
        assert_eq!(
            head_of(&packed),
            KIND_STATUS | STATUS_UPDATE_PART | STATUS_DISK_PART
        );
        // A periodic one without updates and without a disk part (what a
        // node before status record v3 made) is packed as before (head 1),
        // and with an update part alone as before too (head 3).
        let mut plain = s.clone();
        plain.cause = StatusCause::Periodic;
        plain.update = UpdateStatus::default();
        plain.disk = DiskReport::default();
        let p = pack(&[Message::Status(plain.clone())], SBD_MO_MAX).unwrap();
        assert_eq!(head_of(&p), KIND_STATUS);
        assert_eq!(
            unpack(&p.bytes, NODE),
            Ok(vec![Message::Status(plain.clone())])
        );
        let v2 = StatusRecord {
            disk: DiskReport::default(),
            ..s.clone()
        };
        let p = pack(&[Message::Status(v2.clone())], SBD_MO_MAX).unwrap();
        assert_eq!(head_of(&p), KIND_STATUS | STATUS_UPDATE_PART);
        assert_eq!(unpack(&p.bytes, NODE), Ok(vec![Message::Status(v2)]));
        // A periodic record of this version: head 5, the disk part right
        // after the body (free MiB, the state code, the eviction count).
        let periodic = StatusRecord {
            disk: DiskReport {
                free_mib: Some(1_000),
                state: crate::DiskStateCode::Evicting,
                evicted: 3,
            },
            ..plain
        };
        let p = pack(&[Message::Status(periodic.clone())], SBD_MO_MAX).unwrap();
        assert_eq!(head_of(&p), KIND_STATUS | STATUS_DISK_PART);
        assert_eq!(&p.bytes[p.bytes.len() - 5..], &[1, 0xe8, 0x07, 1, 3][..]);
        assert_eq!(unpack(&p.bytes, NODE), Ok(vec![Message::Status(periodic)]));
    }

    /// The head of the first record of a version 2 message.
    fn head_of(p: &Packed) -> u64 {
        let mut r = Reader {
            all: &p.bytes,
            rest: &p.bytes[HEADER_V2..],
        };
        let _: u64 = r.take("id").unwrap();
        let _: i64 = r.take("time").unwrap();
        r.take::<u64>("head").unwrap()
    }

    /// `s` packed alone, checked to unpack as itself.
    fn packed_alone(s: &StatusRecord) -> Packed {
        let p = pack(&[Message::Status(s.clone())], SBD_MO_MAX).unwrap();
        assert_eq!(unpack(&p.bytes, NODE), Ok(vec![Message::Status(s.clone())]));
        p
    }

    #[test]
    fn the_rtc_part_follows_the_clock_part_behind_its_own_head_bit() {
        // The golden status record, made periodically.
        let Some(Message::Status(mut s)) = golden_records().pop() else {
            panic!("the golden records end with a status record")
        };
        s.cause = StatusCause::Periodic;
        let synced = TimeQuality {
            source: TimeSource::Synced,
            uncertainty_ms: Some(20),
            restamped: false,
        };
        s.clock = crate::ClockStatus {
            quality: synced,
            steps: 0,
            largest_step_ms: 0,
            rtc: RtcStatus::default(),
            sleep: None,
        };
        // Before status record v5: clock part alone, as packed before.
        let before = pack(&[Message::Status(s.clone())], SBD_MO_MAX).unwrap();
        assert_eq!(
            head_of(&before),
            KIND_STATUS | STATUS_DISK_PART | STATUS_CLOCK_PART
        );
        assert_eq!(
            unpack(&before.bytes, NODE),
            Ok(vec![Message::Status(s.clone())])
        );
        // A healthy RTC, a second ahead, with its cell: state, some offset
        // (zigzag 1 = 2), some cell (3012 mV as a varint), after the clock
        // part.
        s.clock.rtc = RtcStatus {
            state: crate::RtcState::Found,
            offset_s: Some(1),
            cell_mv: Some(3_012),
        };
        let p = pack(&[Message::Status(s.clone())], SBD_MO_MAX).unwrap();
        assert_eq!(
            head_of(&p),
            KIND_STATUS | STATUS_DISK_PART | STATUS_CLOCK_PART | STATUS_RTC_PART
        );
        assert_eq!(&p.bytes[p.bytes.len() - 6..], &[2, 1, 2, 1, 0xc4, 0x17]);
        assert_eq!(p.bytes.len(), before.bytes.len() + 6);
        assert_eq!(unpack(&p.bytes, NODE), Ok(vec![Message::Status(s.clone())]));
        eprintln!(
            "a periodic status record with a synchronised clock packs alone into {} bytes, {} with a healthy RTC",
            before.bytes.len(),
            p.bytes.len()
        );
        assert!(credits_for(p.bytes.len()) <= 2, "{}", p.bytes.len());
        // No RTC, with the clock part unknown: the RTC part alone (head 21).
        s.clock = crate::ClockStatus {
            rtc: RtcStatus::NONE,
            ..Default::default()
        };
        let p = pack(&[Message::Status(s.clone())], SBD_MO_MAX).unwrap();
        assert_eq!(
            head_of(&p),
            KIND_STATUS | STATUS_DISK_PART | STATUS_RTC_PART
        );
        assert_eq!(&p.bytes[p.bytes.len() - 3..], &[1, 0, 0]);
        assert_eq!(unpack(&p.bytes, NODE), Ok(vec![Message::Status(s.clone())]));
        // A last sleep: its part after the RTC part, under head bit 5.
        let before = p.bytes.len();
        s.clock.sleep = Some(LastSleep {
            reason: crate::SleepReasonCode::LowBattery,
            slept_s: 21_602,
            planned_s: 21_600,
            wake: crate::WakeCause::Rtc,
        });
        let p = pack(&[Message::Status(s.clone())], SBD_MO_MAX).unwrap();
        assert_eq!(
            head_of(&p),
            KIND_STATUS | STATUS_DISK_PART | STATUS_RTC_PART | STATUS_SLEEP_PART
        );
        assert_eq!(
            &p.bytes[p.bytes.len() - 8..],
            &[0, 0xe2, 0xa8, 0x01, 0xe0, 0xa8, 0x01, 0]
        );
        assert_eq!(p.bytes.len(), before + 8);
        assert_eq!(unpack(&p.bytes, NODE), Ok(vec![Message::Status(s)]));
    }

    #[test]
    fn the_detection_part_costs_nothing_at_zero_and_a_few_bytes_otherwise() {
        // The golden status record: not reported (a record from before
        // status record v7), packed as before: neither bit, no byte.
        let Some(Message::Status(mut s)) = golden_records().pop() else {
            panic!("the golden records end with a status record")
        };
        let before = packed_alone(&s);
        let parts = KIND_STATUS | STATUS_UPDATE_PART | STATUS_DISK_PART | STATUS_CLOCK_PART;
        assert_eq!(head_of(&before), parts);
        // Both counts 0: head bit 6 alone, in the head's one byte.
        s.detection = Some(DetectionHealth::default());
        let zero = packed_alone(&s);
        assert_eq!(head_of(&zero), parts | STATUS_DETECTION_PART);
        assert!(head_of(&zero) < 128);
        assert_eq!(zero.bytes.len(), before.bytes.len());
        // Counts: head bits 6 and 7 (the head takes a second byte), then
        // the two counts as varints, last.
        let cost = |s: &mut StatusRecord, cut: u32, joined: u32| {
            s.detection = Some(DetectionHealth {
                events_cut_at_max: cut,
                events_joined: joined,
            });
            let p = packed_alone(s);
            assert_eq!(
                head_of(&p),
                parts | STATUS_DETECTION_PART | STATUS_DETECTION_COUNTS
            );
            p.bytes.len() - before.bytes.len()
        };
        let small = cost(&mut s, 2, 37);
        let p = packed_alone(&s);
        assert_eq!(&p.bytes[p.bytes.len() - 2..], &[2, 37]);
        let one = cost(&mut s, 1, 0);
        let season = cost(&mut s, 300, 20_000);
        let largest = cost(&mut s, u32::MAX, u32::MAX);
        eprintln!(
            "packed status record ({} bytes alone, not reported): the detector's part adds 0 bytes with both counts 0, {one} with 1 cut and 0 joined, {small} with 2 and 37, {season} with 300 and 20,000, {largest} at their largest",
            before.bytes.len()
        );
        assert_eq!([one, small, season, largest], [3, 3, 6, 11]);
        // Two counts of 0 after bit 7 are never written, and refused.
        s.detection = Some(DetectionHealth {
            events_cut_at_max: 0,
            events_joined: 1,
        });
        let p = packed_alone(&s);
        let mut records = p.bytes[HEADER_V2..].to_vec();
        let last = records.len() - 1;
        assert_eq!(records[last], 1);
        records[last] = 0;
        assert!(matches!(
            unpack(&v2(1, &records), NODE),
            Err(UnpackError::Invalid {
                field: "status detection part",
                ..
            })
        ));
        // Cut inside the counts: the message is cut short.
        let cut = v2(1, &p.bytes[HEADER_V2..p.bytes.len() - 1]);
        assert!(unpack(&cut, NODE).is_err());
    }

    #[test]
    fn the_not_stored_part_costs_nothing_at_zero_and_a_few_bytes_otherwise() {
        // The golden status record (not reported) with the detector's
        // counts of a v7 node.
        let Some(Message::Status(mut s)) = golden_records().pop() else {
            panic!("the golden records end with a status record")
        };
        s.detection = Some(DetectionHealth {
            events_cut_at_max: 2,
            events_joined: 37,
        });
        let before = packed_alone(&s);
        let parts = KIND_STATUS
            | STATUS_UPDATE_PART
            | STATUS_DISK_PART
            | STATUS_CLOCK_PART
            | STATUS_DETECTION_PART
            | STATUS_DETECTION_COUNTS;
        assert_eq!(head_of(&before), parts);
        // Every count 0: head bit 8 alone, in the head's two bytes.
        s.not_stored = Some(NotStored::default());
        let zero = packed_alone(&s);
        assert_eq!(head_of(&zero), parts | STATUS_NOT_STORED_PART);
        assert_eq!(zero.bytes.len(), before.bytes.len());
        // Counts: head bits 8 and 9, then the four counts as varints, last
        // (after the detector's).
        let cost = |s: &mut StatusRecord, counts: [u64; 4]| {
            s.not_stored = Some(NotStored::saturating(counts));
            let p = packed_alone(s);
            assert_eq!(
                head_of(&p),
                parts | STATUS_NOT_STORED_PART | STATUS_NOT_STORED_COUNTS
            );
            p.bytes.len() - before.bytes.len()
        };
        let small = cost(&mut s, [0, 0, 12, 3]);
        let p = packed_alone(&s);
        assert_eq!(&p.bytes[p.bytes.len() - 6..], &[2, 37, 0, 0, 12, 3]);
        let season = cost(&mut s, [0, 40, 3_000, 150]);
        let largest = cost(&mut s, [u64::MAX; 4]);
        eprintln!(
            "packed status record ({} bytes alone, the detector's counts 2 and 37): the events not stored add 0 bytes with every count 0, {small} with 12 uncertain and 3 sun rises, {season} with 40 background dropped, 3,000 uncertain and 150 sun rises, {largest} at their largest",
            before.bytes.len()
        );
        assert_eq!([small, season, largest], [4, 6, 20]);
        // Four counts of 0 after bit 9 are never written, and refused.
        s.not_stored = Some(NotStored::saturating([0, 0, 0, 1]));
        let p = packed_alone(&s);
        let mut records = p.bytes[HEADER_V2..].to_vec();
        let last = records.len() - 1;
        assert_eq!(records[last], 1);
        records[last] = 0;
        assert!(matches!(
            unpack(&v2(1, &records), NODE),
            Err(UnpackError::Invalid {
                field: "status not-stored part",
                ..
            })
        ));
        // Cut inside the counts: the message is cut short.
        let cut = v2(1, &p.bytes[HEADER_V2..p.bytes.len() - 1]);
        assert!(unpack(&cut, NODE).is_err());
    }

    #[test]
    fn a_record_too_large_alone_is_an_error_and_mixed_nodes_are_refused() {
        let mut rng = Rng(7);
        let e = event(&mut rng, 1, 0);
        let alone = pack(&[Message::Event(e.clone())], SBD_MO_MAX)
            .unwrap()
            .bytes
            .len();
        assert!(matches!(
            pack(&[Message::Event(e.clone())], alone - 1),
            Err(PackError::RecordTooLarge { id: 1, .. })
        ));
        let mut other = event(&mut rng, 2, 10);
        other.node_id = "node-08".into();
        assert!(matches!(
            pack(&[Message::Event(e), Message::Event(other)], SBD_MO_MAX),
            Err(PackError::MixedNodes { id: 2, .. })
        ));
    }

    /// Events shaped like the demo scene's: consecutive ids, a few minutes
    /// apart, audio and camera present, climate features present.
    #[test]
    fn typical_events_pack_to_about_half_their_size() {
        let mut rng = Rng(42);
        let mut t = 1_780_000_000_000i64;
        let events: Vec<Message> = (1000..1100)
            .map(|id| {
                t += 60_000 + rng.below(600_000) as i64;
                let mut e = event(&mut rng, id, t);
                e.scores.climate = None;
                e.model = ModelVersion(0);
                Message::Event(e)
            })
            .collect();
        let single: usize = events
            .iter()
            .map(|m| match m {
                Message::Event(e) => encode_event(e).len(),
                Message::Status(_) => 0,
            })
            .sum();
        let mut rest = &events[..];
        let (mut bytes, mut credits, mut messages) = (0, 0, 0);
        while !rest.is_empty() {
            let p = pack(rest, SBD_MO_MAX).unwrap();
            bytes += p.bytes.len();
            credits += credits_for(p.bytes.len());
            messages += 1;
            rest = &rest[p.ids_included.len()..];
        }
        let n = events.len() as f64;
        eprintln!(
            "100 events: single records {:.1} B/event; packed {:.1} B/event in {messages} messages, {:.2} credits/event (single: {:.2})",
            single as f64 / n,
            bytes as f64 / n,
            f64::from(credits) / n,
            events.len() as f64 / n * f64::from(credits_for(single / events.len())),
        );
        assert!(
            (bytes as f64) < single as f64 * 0.75,
            "packing saves at least a quarter"
        );
    }

    /// Two events and a status record with every part, as a node packs them.
    fn golden_records() -> Vec<Message> {
        let time = crate::TimeQuality {
            source: TimeSource::Iridium,
            uncertainty_ms: Some(1_000),
            restamped: false,
        };
        let e1 = EventRecord {
            id: 41,
            node_id: NODE.into(),
            start_ms: 1_780_000_000_000,
            duration_ms: 2_500,
            class: EventClass::Wildlife,
            confidence: Permille(870),
            scores: ModalityScores {
                audio: Some(Permille(900)),
                camera: Some(Permille(400)),
                climate: None,
            },
            features: KeyFeatures {
                audio_snr_db10: Some(183),
                audio_peak_hz: Some(3_150),
                motion_area: Some(Permille(25)),
                motion_centroid: Some((120, 80)),
                temp_delta_c100: None,
                temp_c100: Some(1_850),
            },
            model: ModelVersion(3),
            time,
            mono: None,
        };
        let e2 = EventRecord {
            id: 42,
            start_ms: 1_780_000_095_000,
            duration_ms: 11_000,
            class: EventClass::HumanActivity,
            confidence: Permille(640),
            ..e1.clone()
        };
        let s = StatusRecord {
            id: 44,
            node_id: NODE.into(),
            time_ms: 1_780_000_120_000,
            uptime_s: 86_400,
            battery_permille: 812,
            battery_mv: 12_650,
            power_mode: PowerModeCode::Saving,
            air_temp_c100: Some(1_790),
            board_temp_c100: Some(4_210),
            sensors: SensorHealth::default(),
            queue: [0, 2, 1, 0],
            drops: DropCounters::default(),
            model: ModelVersion(3),
            last_contact_ms: Some(1_779_996_400_000),
            cause: StatusCause::Requested,
            update: UpdateStatus::default(),
            disk: DiskReport {
                free_mib: Some(11_234),
                state: crate::DiskStateCode::Ok,
                evicted: 0,
            },
            clock: crate::ClockStatus {
                quality: time,
                steps: 1,
                largest_step_ms: -3_000,
                // Packed by nodes before status record v5: no RTC part.
                rtc: RtcStatus::default(),
                sleep: None,
            },
            // Packed by nodes before status record v7: no detector's part,
            // and before v8 no events not stored.
            detection: None,
            not_stored: None,
        };
        vec![Message::Event(e1), Message::Event(e2), Message::Status(s)]
    }

    #[test]
    fn credits() {
        assert_eq!(credits_for(0), 0);
        assert_eq!(credits_for(1), 1);
        assert_eq!(credits_for(50), 1);
        assert_eq!(credits_for(51), 2);
        assert_eq!(credits_for(340), 7);
    }
}
