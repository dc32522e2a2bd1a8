//! The event record: what the node knows about one detected event.
//!
//! Values are stored in fixed-point integers with documented scales, because
//! the record travels over a 340-byte satellite message and postcard encodes
//! small integers in one or two bytes. [`crate::EventJson`] converts them back
//! to physical units.

use serde::{Deserialize, Serialize};

/// A fraction in thousandths, 0..=1000. Used for scores and confidences.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Permille(pub u16);

impl Permille {
    /// Converts a fraction (clamped to 0..=1; NaN becomes 0) to permille.
    pub fn from_fraction(x: f32) -> Self {
        if x.is_nan() {
            return Permille(0);
        }
        Permille((x.clamp(0.0, 1.0) * 1000.0).round() as u16)
    }

    /// The fraction, 0.0..=1.0.
    pub fn fraction(self) -> f32 {
        f32::from(self.0.min(1000)) / 1000.0
    }
}

/// The class of an event. The discriminants are part of the wire format:
/// never reorder, only append.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventClass {
    /// The triggers fired but could not tell what happened.
    Unknown,
    /// Animal calls and/or an animal crossing the camera's view.
    Wildlife,
    /// A running machine whose sound or temperature changed.
    MachineryAnomaly,
    /// Speech-like sound and/or large motion.
    HumanActivity,
    /// Weather and light: wind, rain, changing light.
    Background,
}

impl EventClass {
    /// All classes, in wire order.
    pub const ALL: [EventClass; 5] = [
        EventClass::Unknown,
        EventClass::Wildlife,
        EventClass::MachineryAnomaly,
        EventClass::HumanActivity,
        EventClass::Background,
    ];

    /// The stable name used in JSON, CSV, configuration and `labels.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::Unknown => "unknown",
            EventClass::Wildlife => "wildlife",
            EventClass::MachineryAnomaly => "machinery_anomaly",
            EventClass::HumanActivity => "human_activity",
            EventClass::Background => "background",
        }
    }

    /// Parses a stable name (see [`EventClass::as_str`]).
    pub fn parse(name: &str) -> Option<EventClass> {
        EventClass::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for EventClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How strongly each modality supported the event. With the trigger-only
/// detector (model version 0) these are the triggers' scores; with the fusion
/// model, each present modality's share of the evidence the model would lose
/// without it (the shares of the present modalities add up to 1000, or are
/// all 0). `None` means the modality was absent or degraded during the event,
/// which is different from a present modality that saw nothing
/// (`Some(Permille(0))`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ModalityScores {
    /// Audio trigger score.
    pub audio: Option<Permille>,
    /// Camera motion score.
    pub camera: Option<Permille>,
    /// Climate rate-of-change score.
    pub climate: Option<Permille>,
}

/// A few features that let a researcher judge an event without the raw data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct KeyFeatures {
    /// Peak audio level above the adaptive noise floor, in 0.1 dB.
    pub audio_snr_db10: Option<i16>,
    /// Dominant audio frequency during the event, in Hz.
    pub audio_peak_hz: Option<u16>,
    /// Largest share of the frame in motion, in permille.
    pub motion_area: Option<Permille>,
    /// Centroid of the motion, horizontal then vertical, 0 (left/top) ..= 255 (right/bottom).
    pub motion_centroid: Option<(u8, u8)>,
    /// Temperature change across the event, in 0.01 °C.
    pub temp_delta_c100: Option<i16>,
    /// Mean temperature during the event, in 0.01 °C.
    pub temp_c100: Option<i16>,
}

/// Which detector produced the class: `0` is the trigger-only detector,
/// any other value is the version of the fusion model in the model manifest.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ModelVersion(pub u32);

impl ModelVersion {
    /// The trigger-only detector.
    pub const TRIGGERS_ONLY: ModelVersion = ModelVersion(0);
}

/// Where an event's time came from. The discriminants are part of the wire
/// format: never reorder, only append.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TimeSource {
    /// Not recorded (a record of event version 1, made before the node
    /// judged its clock).
    #[default]
    Unknown,
    /// A replayed scene's own time.
    Scene,
    /// The system clock, synchronised by NTP.
    Synced,
    /// The system clock, not synchronised, but not earlier than the build
    /// time or the last stored event (set by the RTC at boot, or by hand).
    Plausible,
    /// The technician's time over the field link, carried on the monotonic
    /// clock.
    FieldLink,
    /// Iridium network time, carried on the monotonic clock.
    Iridium,
    /// A GNSS receiver's time, carried on the monotonic clock.
    Gnss,
    /// The system clock was earlier than the build time or the last stored
    /// event: the time counts on from the last trusted one on the monotonic
    /// clock, and may be off by the whole time the node was off.
    Untrusted,
}

impl TimeSource {
    /// All sources, in wire order.
    pub const ALL: [TimeSource; 8] = [
        TimeSource::Unknown,
        TimeSource::Scene,
        TimeSource::Synced,
        TimeSource::Plausible,
        TimeSource::FieldLink,
        TimeSource::Iridium,
        TimeSource::Gnss,
        TimeSource::Untrusted,
    ];

    /// The stable name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::Unknown => "unknown",
            TimeSource::Scene => "scene",
            TimeSource::Synced => "synced",
            TimeSource::Plausible => "plausible",
            TimeSource::FieldLink => "field_link",
            TimeSource::Iridium => "iridium",
            TimeSource::Gnss => "gnss",
            TimeSource::Untrusted => "untrusted",
        }
    }

    /// Parses a stable name (see [`TimeSource::as_str`]).
    pub fn parse(name: &str) -> Option<TimeSource> {
        TimeSource::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// How far an event's time can be trusted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TimeQuality {
    /// Where the time came from (after a re-stamp: the source that
    /// corrected it).
    pub source: TimeSource,
    /// How far off the time may be, ms, where known.
    pub uncertainty_ms: Option<u32>,
    /// The event was stamped while the time was untrusted and corrected
    /// once trusted time arrived (by the same run of the node).
    pub restamped: bool,
}

/// Where an event sits on the monotonic clock of the boot that stored it:
/// kept with events stamped while the time was untrusted, so that their
/// time can be worked out again from any trusted time seen during the same
/// boot (by the node, or on the ground from a status record).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonoRef {
    /// The first 64 bits of the kernel's boot id
    /// (`/proc/sys/kernel/random/boot_id`), different for every boot.
    pub boot: u64,
    /// The event's start on the boot's monotonic clock (`CLOCK_BOOTTIME`:
    /// time since the boot, suspend included), ms.
    pub offset_ms: u64,
}

impl MonoRef {
    /// The boot id as 16 hexadecimal digits (as it starts in `boot_id`,
    /// without the dash).
    pub fn boot_hex(&self) -> String {
        format!("{:016x}", self.boot)
    }

    /// Parses the kernel's boot id text (a UUID): its first 64 bits.
    pub fn parse_boot_id(text: &str) -> Option<u64> {
        let hex: String = text.trim().chars().filter(|c| *c != '-').take(16).collect();
        if hex.len() != 16 {
            return None;
        }
        u64::from_str_radix(&hex, 16).ok()
    }
}

/// One detected event, as stored in the node's outbox and sent over the links.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// Monotonic per node; never reused, even after a store is quarantined.
    pub id: u64,
    /// The node's configured identifier.
    pub node_id: String,
    /// Start of the event, milliseconds since the Unix epoch, UTC
    /// (scene time when replaying a scene).
    pub start_ms: i64,
    /// Length of the event in milliseconds.
    pub duration_ms: u32,
    /// What the detector thinks happened.
    pub class: EventClass,
    /// Confidence in `class`.
    pub confidence: Permille,
    /// Per-modality support.
    pub scores: ModalityScores,
    /// Key features.
    pub features: KeyFeatures,
    /// The detector that produced the class.
    pub model: ModelVersion,
    /// How far `start_ms` can be trusted.
    pub time: TimeQuality,
    /// The start on the monotonic clock of the boot that stored it, for an
    /// event stamped while the time was untrusted (wire version 3; none
    /// otherwise and in older records).
    pub mono: Option<MonoRef>,
}

/// An event record of wire version 2 (without [`EventRecord::mono`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct EventRecordV2 {
    pub id: u64,
    pub node_id: String,
    pub start_ms: i64,
    pub duration_ms: u32,
    pub class: EventClass,
    pub confidence: Permille,
    pub scores: ModalityScores,
    pub features: KeyFeatures,
    pub model: ModelVersion,
    pub time: TimeQuality,
}

impl From<EventRecordV2> for EventRecord {
    fn from(v: EventRecordV2) -> Self {
        EventRecord {
            id: v.id,
            node_id: v.node_id,
            start_ms: v.start_ms,
            duration_ms: v.duration_ms,
            class: v.class,
            confidence: v.confidence,
            scores: v.scores,
            features: v.features,
            model: v.model,
            time: v.time,
            mono: None,
        }
    }
}

/// An event record of wire version 1 (without [`EventRecord::time`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct EventRecordV1 {
    pub id: u64,
    pub node_id: String,
    pub start_ms: i64,
    pub duration_ms: u32,
    pub class: EventClass,
    pub confidence: Permille,
    pub scores: ModalityScores,
    pub features: KeyFeatures,
    pub model: ModelVersion,
}

impl From<EventRecordV1> for EventRecord {
    fn from(v: EventRecordV1) -> Self {
        EventRecord {
            id: v.id,
            node_id: v.node_id,
            start_ms: v.start_ms,
            duration_ms: v.duration_ms,
            class: v.class,
            confidence: v.confidence,
            scores: v.scores,
            features: v.features,
            model: v.model,
            time: TimeQuality::default(),
            mono: None,
        }
    }
}

impl EventRecord {
    /// End of the event, milliseconds since the Unix epoch, UTC.
    pub fn end_ms(&self) -> i64 {
        self.start_ms.saturating_add(i64::from(self.duration_ms))
    }
}
