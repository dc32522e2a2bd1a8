//! The status record: the node's periodic health report. It travels in the
//! same outbox as events, with an id from the same sequence, so a receiver
//! drops duplicates the same way for both.

use serde::{Deserialize, Serialize};

use crate::ModelVersion;

pub use crate::update_status::{
    BundleKindCode, ShortText, StatusCause, UpdateOutcome, UpdateResult, UpdateStatus,
};

/// How urgently an outbox item should leave the node. The discriminants are
/// part of the wire format: never reorder, only append.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Kept for the record; sent when a cheap link is up.
    Low,
    /// The default for classified events.
    Normal,
    /// Worth a satellite credit.
    High,
    /// Sent first, and the only priority that goes out when the satellite
    /// budget is spent.
    Urgent,
}

impl Priority {
    /// All priorities, lowest first (wire order).
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    /// The stable name used in configuration and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// Parses a stable name.
    pub fn parse(name: &str) -> Option<Priority> {
        Priority::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Index into per-priority arrays (0 = low).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The power mode the node's policy is in. Wire order is fixed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PowerModeCode {
    /// Everything allowed.
    #[default]
    Normal,
    /// Costly steps rationed.
    Saving,
    /// Only the always-on triggers run.
    Survival,
}

/// State of one sensor. Wire order is fixed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SensorState {
    /// Delivering data.
    #[default]
    Ok,
    /// Present but not delivering usable data; being retried.
    Degraded,
    /// Not configured, not found, or given up on.
    Absent,
}

/// Sensor health, one entry per sensor.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SensorHealth {
    /// Microphone.
    pub microphone: SensorState,
    /// Camera.
    pub camera: SensorState,
    /// Climate sensor.
    pub climate: SensorState,
    /// Inference backend (the fusion model): ok = loaded or ready to load,
    /// degraded = failed, falling back to the triggers, absent = not configured.
    pub model: SensorState,
}

/// Events that left the outbox without delivery, by reason, since the store
/// was created. Never reset: a receiver computes differences.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DropCounters {
    /// Evicted because the disk budget was full (lowest priority, oldest first).
    pub evicted_budget: u32,
    /// Expired: older than their priority's time to live.
    pub expired_ttl: u32,
    /// Records found undecodable in the store (quarantined or skipped).
    pub corrupt: u32,
}

/// One status report.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StatusRecord {
    /// From the same sequence as event ids: unique per node.
    pub id: u64,
    /// The node's configured identifier.
    pub node_id: String,
    /// When the report was made, ms since the Unix epoch, UTC.
    pub time_ms: i64,
    /// Seconds since the node started.
    pub uptime_s: u32,
    /// Battery state of charge, permille.
    pub battery_permille: u16,
    /// Battery voltage, mV.
    pub battery_mv: u16,
    /// Power mode.
    pub power_mode: PowerModeCode,
    /// Air temperature from the climate sensor, 0.01 °C.
    pub air_temp_c100: Option<i16>,
    /// CPU/board temperature, 0.01 °C.
    pub board_temp_c100: Option<i16>,
    /// Sensor health.
    pub sensors: SensorHealth,
    /// Outbox depth per priority (index = [`Priority::index`]).
    pub queue: [u32; 4],
    /// What left the outbox without delivery.
    pub drops: DropCounters,
    /// Fusion model version in use (0 = triggers only).
    pub model: ModelVersion,
    /// Last confirmed delivery on any link, ms since the Unix epoch.
    pub last_contact_ms: Option<i64>,
    /// Why this record was made (status record v2; periodic in a v1 record).
    #[serde(default)]
    pub cause: StatusCause,
    /// Signed updates: what is installed and the last result (status record
    /// v2; empty in a v1 record).
    #[serde(default)]
    pub update: UpdateStatus,
    /// The store's disk: free space, where it stands against its reserve,
    /// evictions for lack of disk (status record v3; unknown in a v1 or v2
    /// record).
    #[serde(default)]
    pub disk: DiskReport,
    /// The node's clock: the quality of the time it stamps with, and the
    /// steps of the system clock it saw (status record v4; unknown before),
    /// the board's RTC (status record v5; unknown before) and the last
    /// deep sleep (status record v6; none before).
    #[serde(default)]
    pub clock: ClockStatus,
    /// The detector's health counters since the node started (status
    /// record v7). None = not reported: a record from before v7, and JSON
    /// without it; a node of v7 or later always reports them, zero
    /// included.
    #[serde(default)]
    pub detection: Option<DetectionHealth>,
    /// The events the node found and did not store, by reason, since it
    /// started (status record v8). None = not reported: a record from
    /// before v8, and JSON without it; a node of v8 or later always
    /// reports them, zero included.
    #[serde(default)]
    pub not_stored: Option<NotStored>,
}

/// The detector's health in a status record (status record v7): counts
/// since the node started (the `fieldnode run` process: they start again
/// from 0 at every start, the wake from a deep sleep included; `uptime_s`
/// says how long they cover). Each saturates at [`u32::MAX`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DetectionHealth {
    /// Events the detector cut at their maximum length (`[detector.merge]
    /// max_event_ms`) since the node started. A symptom: something kept a
    /// trigger on (a sound that never stops, or a noise floor that never
    /// learned it).
    pub events_cut_at_max: u32,
    /// Events joined into the event before them since the node started:
    /// events of one class within `[fusion] join_gap_ms` of each other,
    /// stored as one (a bout).
    pub events_joined: u32,
}

impl DetectionHealth {
    /// From the node's 64-bit counters, each saturating at [`u32::MAX`].
    pub fn saturating(events_cut_at_max: u64, events_joined: u64) -> DetectionHealth {
        DetectionHealth {
            events_cut_at_max: u32::try_from(events_cut_at_max).unwrap_or(u32::MAX),
            events_joined: u32::try_from(events_joined).unwrap_or(u32::MAX),
        }
    }

    /// True when both counts are 0.
    pub fn is_zero(&self) -> bool {
        *self == DetectionHealth::default()
    }
}

/// The events the node found and chose not to store, by reason, in a
/// status record (status record v8): counts since the node started (as
/// [`DetectionHealth`]'s). Each saturates at [`u32::MAX`]. None of them
/// is an error; together they say how much of what the triggers found
/// never reached the outbox, and why.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NotStored {
    /// Events of a class the configuration excludes (`[fusion] exclude`).
    pub excluded: u32,
    /// Events the triggers' rules call background (wind, rain, a hum) that
    /// no model classified: none loaded, or the power policy denied the
    /// burst (`[detector.merge] report_background` stores them).
    pub background_dropped: u32,
    /// Events the rules call background whose model verdict was unsure
    /// (`unknown`) and joined no surer event of their bout (`[fusion]
    /// store_uncertain_background` stores them).
    pub uncertain_background: u32,
    /// Heat rises with nothing heard or seen that came after the camera's
    /// view brightened: the sun on the enclosure (`[detector.climate]
    /// sun_brightening`).
    pub sun_heat_rises: u32,
}

impl NotStored {
    /// From the node's 64-bit counters, each saturating at [`u32::MAX`]:
    /// `[excluded, background_dropped, uncertain_background, sun_heat_rises]`.
    pub fn saturating(counts: [u64; 4]) -> NotStored {
        let [
            excluded,
            background_dropped,
            uncertain_background,
            sun_heat_rises,
        ] = counts.map(|c| u32::try_from(c).unwrap_or(u32::MAX));
        NotStored {
            excluded,
            background_dropped,
            uncertain_background,
            sun_heat_rises,
        }
    }

    /// True when every count is 0.
    pub fn is_zero(&self) -> bool {
        *self == NotStored::default()
    }
}

/// The node's clock in a status record.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ClockStatus {
    /// The quality of the time the node stamps with now (`unknown` in a
    /// record from before status record v4).
    pub quality: crate::TimeQuality,
    /// Steps of the system clock (over 2 s against the monotonic clock)
    /// seen since the node started.
    pub steps: u32,
    /// The largest of them, ms (negative went backwards).
    pub largest_step_ms: i64,
    /// The board's real-time clock and its backup cell (status record v5;
    /// unknown in an older record, and in JSON without it).
    #[serde(default)]
    pub rtc: RtcStatus,
    /// The node's last deep sleep: why, how long, how it woke (status
    /// record v6; none when the node has not slept since its data directory
    /// was made, in an older record, and in JSON without it).
    #[serde(default)]
    pub sleep: Option<LastSleep>,
}

/// Why the node halted to sleep. The discriminants are part of the wire
/// format: never reorder, only append.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SleepReasonCode {
    /// Battery below its sleep threshold and below the critical one, and
    /// no sun.
    LowBattery,
    /// Battery below its sleep threshold but above the critical one, and
    /// no sun: the node sleeps to keep its charge for the hours without
    /// sun.
    EnergySaving,
}

impl SleepReasonCode {
    /// The stable name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SleepReasonCode::LowBattery => "low_battery",
            SleepReasonCode::EnergySaving => "energy_saving",
        }
    }
}

/// How the node started after its last sleep. The discriminants are part
/// of the wire format: never reorder, only append.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WakeCause {
    /// The RTC's wake alarm, at the planned time.
    Rtc,
    /// Before the planned time, with the configured wake line active.
    WakeLine,
    /// Before the planned time without the wake line: power restored, the
    /// power button, a person.
    Cold,
}

impl WakeCause {
    /// The stable name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            WakeCause::Rtc => "rtc",
            WakeCause::WakeLine => "wake_line",
            WakeCause::Cold => "cold",
        }
    }
}

/// The node's last deep sleep in a status record (status record v6).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastSleep {
    /// Why it slept.
    pub reason: SleepReasonCode,
    /// From the halt to the next start, whole seconds of the node's clock
    /// ([`u32::MAX`] for more; 0 if the clock went back).
    pub slept_s: u32,
    /// How long the sleep was planned to last, whole seconds.
    pub planned_s: u32,
    /// How the node started again.
    pub wake: WakeCause,
}

impl ClockStatus {
    /// True for the unknown clock of a record from before status record v4
    /// (the RTC unknown too).
    pub fn is_empty(&self) -> bool {
        *self == ClockStatus::default()
    }
}

/// Whether the node found an RTC. The discriminants are part of the wire
/// format: never reorder, only append.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum RtcState {
    /// Not reported: a record from before status record v5, or a node
    /// whose clock does not read an RTC (a replay).
    #[default]
    Unknown,
    /// The node looked and found no RTC.
    None,
    /// The node found an RTC; its time and cell are given where they read.
    Found,
}

/// The board's RTC in a status record (status record v5).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RtcStatus {
    /// Whether there is an RTC.
    pub state: RtcState,
    /// The RTC's time minus the node's (the time it stamps with, read
    /// together with the RTC's, about `time_ms`), whole seconds: the RTC
    /// counts whole seconds, so both are truncated to the second first.
    /// None = no RTC, or its time did not read (an RTC that lost its time
    /// refuses the read).
    pub offset_s: Option<i64>,
    /// The RTC's backup cell, mV (65535 for more); none = no RTC, or the
    /// driver does not report it.
    pub cell_mv: Option<u16>,
}

impl RtcStatus {
    /// No RTC found.
    pub const NONE: RtcStatus = RtcStatus {
        state: RtcState::None,
        offset_s: None,
        cell_mv: None,
    };

    /// True when not reported (what a record before v5 decodes to).
    pub fn is_unknown(&self) -> bool {
        *self == RtcStatus::default()
    }
}

/// The clock part as status record v4 carried it: without
/// [`ClockStatus::rtc`]. The SBD packing's clock part is this too.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct ClockStatusV4 {
    pub quality: crate::TimeQuality,
    pub steps: u32,
    pub largest_step_ms: i64,
}

impl ClockStatusV4 {
    /// The clock part of a later record: this one with `rtc` and `sleep`.
    pub fn with_rtc(self, rtc: RtcStatus, sleep: Option<LastSleep>) -> ClockStatus {
        ClockStatus {
            quality: self.quality,
            steps: self.steps,
            largest_step_ms: self.largest_step_ms,
            rtc,
            sleep,
        }
    }
}

/// The status record as version 7 of its envelope carried it (kind/version
/// byte 10): without [`StatusRecord::not_stored`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusRecordV7 {
    pub id: u64,
    pub node_id: String,
    pub time_ms: i64,
    pub uptime_s: u32,
    pub battery_permille: u16,
    pub battery_mv: u16,
    pub power_mode: PowerModeCode,
    pub air_temp_c100: Option<i16>,
    pub board_temp_c100: Option<i16>,
    pub sensors: SensorHealth,
    pub queue: [u32; 4],
    pub drops: DropCounters,
    pub model: ModelVersion,
    pub last_contact_ms: Option<i64>,
    pub cause: StatusCause,
    pub update: UpdateStatus,
    pub disk: DiskReport,
    pub clock: ClockStatus,
    pub detection: Option<DetectionHealth>,
}

impl From<StatusRecordV7> for StatusRecord {
    fn from(v: StatusRecordV7) -> StatusRecord {
        StatusRecord {
            id: v.id,
            node_id: v.node_id,
            time_ms: v.time_ms,
            uptime_s: v.uptime_s,
            battery_permille: v.battery_permille,
            battery_mv: v.battery_mv,
            power_mode: v.power_mode,
            air_temp_c100: v.air_temp_c100,
            board_temp_c100: v.board_temp_c100,
            sensors: v.sensors,
            queue: v.queue,
            drops: v.drops,
            model: v.model,
            last_contact_ms: v.last_contact_ms,
            cause: v.cause,
            update: v.update,
            disk: v.disk,
            clock: v.clock,
            detection: v.detection,
            not_stored: None,
        }
    }
}

/// A status record as a v7 node laid it out: without the events not
/// stored (for tests of the older layouts).
#[cfg(test)]
impl From<&StatusRecord> for StatusRecordV7 {
    fn from(s: &StatusRecord) -> StatusRecordV7 {
        StatusRecordV7 {
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
            clock: s.clock,
            detection: s.detection,
        }
    }
}

/// The status record as version 6 of its envelope carried it (kind/version
/// byte 8): without [`StatusRecord::detection`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusRecordV6 {
    pub id: u64,
    pub node_id: String,
    pub time_ms: i64,
    pub uptime_s: u32,
    pub battery_permille: u16,
    pub battery_mv: u16,
    pub power_mode: PowerModeCode,
    pub air_temp_c100: Option<i16>,
    pub board_temp_c100: Option<i16>,
    pub sensors: SensorHealth,
    pub queue: [u32; 4],
    pub drops: DropCounters,
    pub model: ModelVersion,
    pub last_contact_ms: Option<i64>,
    pub cause: StatusCause,
    pub update: UpdateStatus,
    pub disk: DiskReport,
    pub clock: ClockStatus,
}

impl From<StatusRecordV6> for StatusRecord {
    fn from(v: StatusRecordV6) -> StatusRecord {
        StatusRecord {
            id: v.id,
            node_id: v.node_id,
            time_ms: v.time_ms,
            uptime_s: v.uptime_s,
            battery_permille: v.battery_permille,
            battery_mv: v.battery_mv,
            power_mode: v.power_mode,
            air_temp_c100: v.air_temp_c100,
            board_temp_c100: v.board_temp_c100,
            sensors: v.sensors,
            queue: v.queue,
            drops: v.drops,
            model: v.model,
            last_contact_ms: v.last_contact_ms,
            cause: v.cause,
            update: v.update,
            disk: v.disk,
            clock: v.clock,
            detection: None,
            not_stored: None,
        }
    }
}

/// A status record as a v6 node laid it out: without the detector's
/// counts (for tests of the older layouts).
#[cfg(test)]
impl From<&StatusRecord> for StatusRecordV6 {
    fn from(s: &StatusRecord) -> StatusRecordV6 {
        StatusRecordV6 {
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
            clock: s.clock,
        }
    }
}

/// The clock part as status record v5 carried it: without
/// [`ClockStatus::sleep`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct ClockStatusV5 {
    pub quality: crate::TimeQuality,
    pub steps: u32,
    pub largest_step_ms: i64,
    pub rtc: RtcStatus,
}

impl From<ClockStatusV5> for ClockStatus {
    fn from(c: ClockStatusV5) -> ClockStatus {
        ClockStatus {
            quality: c.quality,
            steps: c.steps,
            largest_step_ms: c.largest_step_ms,
            rtc: c.rtc,
            sleep: None,
        }
    }
}

/// The status record as version 5 of its envelope carried it (kind/version
/// byte 7): its clock part without [`ClockStatus::sleep`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusRecordV5 {
    pub id: u64,
    pub node_id: String,
    pub time_ms: i64,
    pub uptime_s: u32,
    pub battery_permille: u16,
    pub battery_mv: u16,
    pub power_mode: PowerModeCode,
    pub air_temp_c100: Option<i16>,
    pub board_temp_c100: Option<i16>,
    pub sensors: SensorHealth,
    pub queue: [u32; 4],
    pub drops: DropCounters,
    pub model: ModelVersion,
    pub last_contact_ms: Option<i64>,
    pub cause: StatusCause,
    pub update: UpdateStatus,
    pub disk: DiskReport,
    pub clock: ClockStatusV5,
}

impl From<StatusRecordV5> for StatusRecord {
    fn from(v: StatusRecordV5) -> StatusRecord {
        StatusRecord {
            id: v.id,
            node_id: v.node_id,
            time_ms: v.time_ms,
            uptime_s: v.uptime_s,
            battery_permille: v.battery_permille,
            battery_mv: v.battery_mv,
            power_mode: v.power_mode,
            air_temp_c100: v.air_temp_c100,
            board_temp_c100: v.board_temp_c100,
            sensors: v.sensors,
            queue: v.queue,
            drops: v.drops,
            model: v.model,
            last_contact_ms: v.last_contact_ms,
            cause: v.cause,
            update: v.update,
            disk: v.disk,
            clock: v.clock.into(),
            detection: None,
            not_stored: None,
        }
    }
}

impl From<&ClockStatus> for ClockStatusV4 {
    fn from(c: &ClockStatus) -> ClockStatusV4 {
        ClockStatusV4 {
            quality: c.quality,
            steps: c.steps,
            largest_step_ms: c.largest_step_ms,
        }
    }
}

/// The status record as version 4 of its envelope carried it (kind/version
/// byte 6): its clock part without [`ClockStatus::rtc`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusRecordV4 {
    pub id: u64,
    pub node_id: String,
    pub time_ms: i64,
    pub uptime_s: u32,
    pub battery_permille: u16,
    pub battery_mv: u16,
    pub power_mode: PowerModeCode,
    pub air_temp_c100: Option<i16>,
    pub board_temp_c100: Option<i16>,
    pub sensors: SensorHealth,
    pub queue: [u32; 4],
    pub drops: DropCounters,
    pub model: ModelVersion,
    pub last_contact_ms: Option<i64>,
    pub cause: StatusCause,
    pub update: UpdateStatus,
    pub disk: DiskReport,
    pub clock: ClockStatusV4,
}

impl From<StatusRecordV4> for StatusRecord {
    fn from(v: StatusRecordV4) -> StatusRecord {
        StatusRecord {
            id: v.id,
            node_id: v.node_id,
            time_ms: v.time_ms,
            uptime_s: v.uptime_s,
            battery_permille: v.battery_permille,
            battery_mv: v.battery_mv,
            power_mode: v.power_mode,
            air_temp_c100: v.air_temp_c100,
            board_temp_c100: v.board_temp_c100,
            sensors: v.sensors,
            queue: v.queue,
            drops: v.drops,
            model: v.model,
            last_contact_ms: v.last_contact_ms,
            cause: v.cause,
            update: v.update,
            disk: v.disk,
            clock: v.clock.with_rtc(RtcStatus::default(), None),
            detection: None,
            not_stored: None,
        }
    }
}

/// The status record as version 3 of its envelope carried it (kind/version
/// byte 4): without [`StatusRecord::clock`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusRecordV3 {
    pub id: u64,
    pub node_id: String,
    pub time_ms: i64,
    pub uptime_s: u32,
    pub battery_permille: u16,
    pub battery_mv: u16,
    pub power_mode: PowerModeCode,
    pub air_temp_c100: Option<i16>,
    pub board_temp_c100: Option<i16>,
    pub sensors: SensorHealth,
    pub queue: [u32; 4],
    pub drops: DropCounters,
    pub model: ModelVersion,
    pub last_contact_ms: Option<i64>,
    pub cause: StatusCause,
    pub update: UpdateStatus,
    pub disk: DiskReport,
}

impl From<StatusRecordV3> for StatusRecord {
    fn from(v: StatusRecordV3) -> StatusRecord {
        StatusRecord {
            id: v.id,
            node_id: v.node_id,
            time_ms: v.time_ms,
            uptime_s: v.uptime_s,
            battery_permille: v.battery_permille,
            battery_mv: v.battery_mv,
            power_mode: v.power_mode,
            air_temp_c100: v.air_temp_c100,
            board_temp_c100: v.board_temp_c100,
            sensors: v.sensors,
            queue: v.queue,
            drops: v.drops,
            model: v.model,
            last_contact_ms: v.last_contact_ms,
            cause: v.cause,
            update: v.update,
            disk: v.disk,
            clock: ClockStatus::default(),
            detection: None,
            not_stored: None,
        }
    }
}

/// Where the store stands against its disk reserve (`[outbox.budget]
/// min_free_bytes`). On the wire it is one raw byte, the store's stable
/// code (`uplink::store::DiskState::code`): 0 ok, 1 evicting, 2 full, and
/// 255 unknown; a code this build does not know decodes as
/// [`DiskStateCode::Unknown`]. In JSON it is its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DiskStateCode {
    /// At least the reserve is free (or the reserve is off, or the free
    /// space cannot be measured): the outbox grows.
    Ok,
    /// Below the reserve: every append first evicts items ranked below the
    /// new ones, so the outbox does not grow.
    Evicting,
    /// The last append could not store everything for lack of disk.
    Full,
    /// Not reported (a v1 or v2 record), or a code this build does not know.
    #[default]
    Unknown,
}

impl DiskStateCode {
    /// Every state, in code order.
    pub const ALL: [DiskStateCode; 4] = [
        DiskStateCode::Ok,
        DiskStateCode::Evicting,
        DiskStateCode::Full,
        DiskStateCode::Unknown,
    ];

    /// The wire code: 0 ok, 1 evicting, 2 full, 255 unknown.
    pub fn code(self) -> u8 {
        match self {
            DiskStateCode::Ok => 0,
            DiskStateCode::Evicting => 1,
            DiskStateCode::Full => 2,
            DiskStateCode::Unknown => 255,
        }
    }

    /// From a wire code; a code this build does not know is unknown.
    pub fn from_code(code: u8) -> DiskStateCode {
        match code {
            0 => DiskStateCode::Ok,
            1 => DiskStateCode::Evicting,
            2 => DiskStateCode::Full,
            _ => DiskStateCode::Unknown,
        }
    }

    /// The stable name: `ok`, `evicting`, `full`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskStateCode::Ok => "ok",
            DiskStateCode::Evicting => "evicting",
            DiskStateCode::Full => "full",
            DiskStateCode::Unknown => "unknown",
        }
    }

    /// From the stable name; any other name is unknown.
    pub fn parse(name: &str) -> DiskStateCode {
        DiskStateCode::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .unwrap_or(DiskStateCode::Unknown)
    }
}

impl std::fmt::Display for DiskStateCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for DiskStateCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(self.as_str())
        } else {
            s.serialize_u8(self.code())
        }
    }
}

impl<'de> Deserialize<'de> for DiskStateCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let name = String::deserialize(d)?;
            Ok(DiskStateCode::parse(&name))
        } else {
            u8::deserialize(d).map(DiskStateCode::from_code)
        }
    }
}

/// One mebibyte, the unit of [`DiskReport::free_mib`].
pub const MIB: u64 = 1 << 20;

/// The store's disk, as the status record (v3) carries it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DiskReport {
    /// Free space on the store's filesystem when the record was made, MiB
    /// (rounded down, [`u32::MAX`] for more); `None` = unknown (not
    /// measurable, or a v1 or v2 record).
    pub free_mib: Option<u32>,
    /// Where the store stands against its reserve.
    pub state: DiskStateCode,
    /// Items evicted or not kept for the disk reserve or a full disk since
    /// the store was created (all priorities, [`u32::MAX`] for more); they
    /// are counted in [`DropCounters::evicted_budget`] too. Never reset.
    pub evicted: u32,
}

impl DiskReport {
    /// Free bytes as whole MiB, saturating at [`u32::MAX`].
    pub fn mib(free_bytes: u64) -> u32 {
        u32::try_from(free_bytes / MIB).unwrap_or(u32::MAX)
    }

    /// True when nothing is known (what a v1 or v2 record decodes to).
    pub fn is_empty(&self) -> bool {
        *self == DiskReport::default()
    }
}

/// The status record as version 1 of its envelope carried it (kind/version
/// byte 2): without [`StatusRecord::cause`] and [`StatusRecord::update`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusRecordV1 {
    pub id: u64,
    pub node_id: String,
    pub time_ms: i64,
    pub uptime_s: u32,
    pub battery_permille: u16,
    pub battery_mv: u16,
    pub power_mode: PowerModeCode,
    pub air_temp_c100: Option<i16>,
    pub board_temp_c100: Option<i16>,
    pub sensors: SensorHealth,
    pub queue: [u32; 4],
    pub drops: DropCounters,
    pub model: ModelVersion,
    pub last_contact_ms: Option<i64>,
}

/// The status record as version 2 of its envelope carried it (kind/version
/// byte 3): without [`StatusRecord::disk`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatusRecordV2 {
    pub id: u64,
    pub node_id: String,
    pub time_ms: i64,
    pub uptime_s: u32,
    pub battery_permille: u16,
    pub battery_mv: u16,
    pub power_mode: PowerModeCode,
    pub air_temp_c100: Option<i16>,
    pub board_temp_c100: Option<i16>,
    pub sensors: SensorHealth,
    pub queue: [u32; 4],
    pub drops: DropCounters,
    pub model: ModelVersion,
    pub last_contact_ms: Option<i64>,
    pub cause: StatusCause,
    pub update: UpdateStatus,
}

impl From<StatusRecordV2> for StatusRecord {
    fn from(v: StatusRecordV2) -> StatusRecord {
        StatusRecord {
            id: v.id,
            node_id: v.node_id,
            time_ms: v.time_ms,
            uptime_s: v.uptime_s,
            battery_permille: v.battery_permille,
            battery_mv: v.battery_mv,
            power_mode: v.power_mode,
            air_temp_c100: v.air_temp_c100,
            board_temp_c100: v.board_temp_c100,
            sensors: v.sensors,
            queue: v.queue,
            drops: v.drops,
            model: v.model,
            last_contact_ms: v.last_contact_ms,
            cause: v.cause,
            update: v.update,
            disk: DiskReport::default(),
            clock: ClockStatus::default(),
            detection: None,
            not_stored: None,
        }
    }
}

impl From<StatusRecordV1> for StatusRecordV2 {
    fn from(v: StatusRecordV1) -> StatusRecordV2 {
        StatusRecordV2 {
            id: v.id,
            node_id: v.node_id,
            time_ms: v.time_ms,
            uptime_s: v.uptime_s,
            battery_permille: v.battery_permille,
            battery_mv: v.battery_mv,
            power_mode: v.power_mode,
            air_temp_c100: v.air_temp_c100,
            board_temp_c100: v.board_temp_c100,
            sensors: v.sensors,
            queue: v.queue,
            drops: v.drops,
            model: v.model,
            last_contact_ms: v.last_contact_ms,
            cause: StatusCause::Periodic,
            update: UpdateStatus::default(),
        }
    }
}

impl From<StatusRecordV1> for StatusRecord {
    fn from(v: StatusRecordV1) -> StatusRecord {
        StatusRecordV2::from(v).into()
    }
}
