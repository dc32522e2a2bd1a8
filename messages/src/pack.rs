//! Satellite packing: several outbox records (events and status reports) in
//! one Iridium SBD mobile-originated message of at most 340 bytes, so that a
//! day of events costs as few 50-byte credits as possible.
//!
//! The format is lossless (every field of every record comes back exactly)
//! and documented byte by byte in `docs/wire-format.md` ("SBD packing"):
//!
//! ```text
//! header:  [PACK_VERSION] [first id: varint u64] [first time: zigzag varint i64, ms]
//! records: [head: varint] [id delta] [time delta] [body]   (deltas absent on the first record)
//! ```
//!
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

use crate::{
    DiskReport, DropCounters, EventClass, EventRecord, KeyFeatures, Message, ModalityScores,
    ModelVersion, Permille, PowerModeCode, SensorHealth, StatusCause, StatusRecord, TimeQuality,
    TimeSource, UpdateStatus,
};

/// The first byte of a packed message: SBD packing, version 1. Chosen apart
/// from the single-record kind bytes (1 = event, 2 = status) so that a
/// receiver can tell a packed message from a lone record.
pub const PACK_VERSION: u8 = 0x50;

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
const STATUS_CLOCK_PART: u64 = 8;
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
    /// The first byte is not [`PACK_VERSION`].
    #[error(
        "not a packed message of a known version (first byte {found:#04x}, expected {PACK_VERSION:#04x})"
    )]
    UnsupportedVersion {
        /// The first byte found.
        found: u8,
    },
    /// A header without records.
    #[error("packed message holds no record")]
    NoRecords,
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
    if !s.clock.is_empty() {
        head |= STATUS_CLOCK_PART;
    }
    head
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
        if !s.clock.is_empty() {
            put(out, &s.clock);
        }
    }
}

/// Packs as many of `records` as fit in `max_len` bytes, in the order given,
/// stopping at the first that does not fit (so the message carries a prefix
/// of the input and `ids_included` says which). The result never exceeds
/// `max_len`. No records gives an empty [`Packed`].
///
/// Errors: the first record does not fit alone ([`PackError::RecordTooLarge`]:
/// it would never go out, so the caller must know), or a record of another
/// node than the first among those that would be included.
pub fn pack(records: &[Message], max_len: usize) -> Result<Packed, PackError> {
    let Some(first) = records.first() else {
        return Ok(Packed::default());
    };
    let mut bytes = vec![PACK_VERSION];
    put(&mut bytes, &first.id());
    put(&mut bytes, &record_time(first));
    let mut ids_included = Vec::new();
    let mut prev: Option<(u64, i64)> = None;
    let mut quality = TimeQuality::default();
    let mut scratch = Vec::with_capacity(64);
    for m in records {
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

/// Unpacks a message written by [`pack`], giving every record `node_id`
/// (the ground side knows the node from the modem's IMEI). Garbage, a prefix
/// or a flipped bit gives an error or a valid decode, never a panic.
pub fn unpack(bytes: &[u8], node_id: &str) -> Result<Vec<Message>, UnpackError> {
    let (&version, _) = bytes.split_first().ok_or(UnpackError::Empty)?;
    if version != PACK_VERSION {
        return Err(UnpackError::UnsupportedVersion { found: version });
    }
    let mut r = Reader {
        all: bytes,
        rest: &bytes[1..],
    };
    let mut id: u64 = r.take("first id")?;
    let mut time: i64 = r.take("first time")?;
    let mut quality = TimeQuality::default();
    let mut out = Vec::new();
    while !r.rest.is_empty() {
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
                if head & !(STATUS_UPDATE_PART | STATUS_DISK_PART | STATUS_CLOCK_PART)
                    != KIND_STATUS
                {
                    return Err(UnpackError::Invalid {
                        field: "record head",
                        offset: head_at,
                        detail: format!("status head {head} has reserved bits set"),
                    });
                }
                let with_update = head & STATUS_UPDATE_PART != 0;
                let with_disk = head & STATUS_DISK_PART != 0;
                let with_clock = head & STATUS_CLOCK_PART != 0;
                Message::Status(read_status(
                    &mut r,
                    id,
                    time,
                    node_id,
                    with_update,
                    with_disk,
                    with_clock,
                )?)
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
    })
}

fn read_status(
    r: &mut Reader<'_>,
    id: u64,
    time_ms: i64,
    node_id: &str,
    with_update: bool,
    with_disk: bool,
    with_clock: bool,
) -> Result<StatusRecord, UnpackError> {
    let b: StatusBody = r.take("status body")?;
    let (cause, update): (StatusCause, UpdateStatus) = if with_update {
        r.take("status update part")?
    } else {
        Default::default()
    };
    let disk: DiskReport = if with_disk {
        r.take("status disk part")?
    } else {
        DiskReport::default()
    };
    let clock: crate::ClockStatus = if with_clock {
        r.take("status clock part")?
    } else {
        crate::ClockStatus::default()
    };
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
        clock,
    })
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
            clock: Default::default(),
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
            // Every prefix is an error or a prefix of the records.
            for cut in 0..packed.bytes.len() {
                if let Ok(v) = unpack(&packed.bytes[..cut], NODE) {
                    assert_eq!(v, back[..v.len()].to_vec(), "prefix of {cut} bytes");
                }
            }
            // Bit flips and random damage never panic.
            for _ in 0..8 {
                let mut b = packed.bytes.clone();
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << rng.below(8);
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

    #[test]
    fn fuzz_garbage_never_panics() {
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        for _ in 0..iterations(300) * 20 {
            let len = rng.below(350) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if let Some(first) = b.first_mut() {
                *first = PACK_VERSION;
            }
            if let Ok(v) = unpack(&b, NODE) {
                assert!(!v.is_empty());
            }
        }
    }

    #[test]
    fn errors_are_typed() {
        assert_eq!(unpack(&[], NODE), Err(UnpackError::Empty));
        assert_eq!(
            unpack(&[1, 2], NODE),
            Err(UnpackError::UnsupportedVersion { found: 1 })
        );
        assert_eq!(
            unpack(&[PACK_VERSION, 5, 0], NODE),
            Err(UnpackError::NoRecords)
        );
        assert!(matches!(
            unpack(&[PACK_VERSION, 5], NODE),
            Err(UnpackError::Truncated { .. })
        ));
        // Event head with class index 7: unknown class.
        let head = 7u64 << CLASS_SHIFT;
        let mut b = vec![PACK_VERSION, 5, 0];
        put(&mut b, &head);
        assert!(matches!(
            unpack(&b, NODE),
            Err(UnpackError::Invalid {
                field: "event class",
                ..
            })
        ));
        // Status head with reserved bits (bit 1 is the update part's, bit 2
        // the disk part's, bit 3 the clock part's).
        assert!(matches!(
            unpack(&[PACK_VERSION, 5, 0, 17], NODE),
            Err(UnpackError::Invalid { .. })
        ));
        assert_eq!(pack(&[], SBD_MO_MAX), Ok(Packed::default()));
    }

    #[test]
    fn a_status_on_an_update_result_packs_with_its_update_part_and_old_heads_still_unpack() {
        use crate::update_status::{NAME_MAX, REASON_MAX};
        let mut rng = Rng(11);
        let mut s = status(&mut rng, 40, 1_780_000_000_000);
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
        let head_of = |p: &Packed| {
            let mut r = Reader {
                all: &p.bytes,
                rest: &p.bytes[1..],
            };
            let _: u64 = r.take("id").unwrap();
            let _: i64 = r.take("time").unwrap();
            r.take::<u64>("head").unwrap()
        };
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

    #[test]
    fn credits() {
        assert_eq!(credits_for(0), 0);
        assert_eq!(credits_for(1), 1);
        assert_eq!(credits_for(50), 1);
        assert_eq!(credits_for(51), 2);
        assert_eq!(credits_for(340), 7);
    }
}
