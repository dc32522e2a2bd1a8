//! The messages of the field link: the two envelopes, every request and
//! every reply.
//!
//! Wire rules (see `docs/field-link.md`):
//! - enum variants and struct fields are encoded by position (postcard), so
//!   within a major protocol version they are only ever appended, never
//!   reordered or removed;
//! - frozen across major versions, so that any two builds can tell each
//!   other they do not match: the envelope layout (`id: u32` first),
//!   [`Request::Hello`] as variant 0 with [`Hello`]'s two fields, and
//!   [`Response::Error`] as variant 0 with [`ErrorReply`]'s two fields;
//! - error codes travel as a `u16`, so a code this build does not know
//!   still decodes (as [`ErrorCode::Other`]).

use serde::{Deserialize, Serialize};

use super::auth::{NONCE_LEN, PublicKey, Signature};
use super::{HELLO_TIMEOUT_MS, REPLY_TIMEOUT_MS, SLOW_REPLY_TIMEOUT_MS};
use crate::{DropCounters, EventRecord, SensorState, StatusRecord};

/// A request from the client (`field-tools link`) to the node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RequestEnvelope {
    /// Chosen by the client, echoed by every response to this request. A
    /// client uses a new id for every request of a session.
    pub id: u32,
    /// The request.
    pub body: Request,
}

/// A response from the node: a reply to the request `id`, or one message
/// of the stream that request opened.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ResponseEnvelope {
    /// The id of the request answered.
    pub id: u32,
    /// The reply.
    pub body: Response,
}

/// Who may send a request (see [`Request::access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Always allowed in a session: handshake, authentication, flow control.
    Open,
    /// Reads: allowed without authentication unless the node requires it
    /// ([`HelloReply::auth_required_for_reads`]).
    Read,
    /// Changes the node or spends its resources: always needs an
    /// authenticated session.
    Control,
}

/// Every request. Variant order is the wire format: only append.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Opens a session (frozen: variant 0, two fields). Reply:
    /// [`Response::Hello`], or [`ErrorCode::BadVersion`].
    Hello(Hello),
    /// Asks for a fresh authentication challenge. Reply:
    /// [`Response::AuthChallenge`].
    AuthChallenge,
    /// Proves the technician holds a key the node trusts. Reply:
    /// [`Response::Authenticated`], or [`ErrorCode::BadSignature`].
    AuthProve(AuthProve),
    /// Keeps the session alive. Reply: [`Response::Pong`].
    Ping,
    /// The node's health now. Reply: [`Response::Status`].
    Status,
    /// Stored events, as a stream. Replies: [`Response::EventBatch`], one or
    /// more, the last with `end` set (or an error reply, which also ends it).
    Events(EventsRequest),
    /// The node's log, as a stream. Replies: [`Response::LogBatch`], one or
    /// more, the last with `end` set.
    LogsTail(LogsTailRequest),
    /// Grants a stream more items. Never answered; a grant for a stream that
    /// is not open (it may just have ended) is ignored.
    Credit {
        /// The id of the request that opened the stream.
        stream: u32,
        /// Items added to the stream's credit.
        items: u32,
    },
    /// Ends a stream early. Reply: [`Response::Done`], after the stream's
    /// last batch (with `end` = [`StreamEnd::Cancelled`]) when it was open.
    Cancel {
        /// The id of the request that opened the stream.
        stream: u32,
    },
    /// The node's configuration file. Reply: [`Response::Config`].
    ConfigShow,
    /// Checks a configuration without applying it. Reply:
    /// [`Response::ConfigChecked`].
    ConfigValidate {
        /// A whole configuration file, TOML.
        toml: String,
    },
    /// Replaces the configuration file when the text is valid. Reply:
    /// [`Response::ConfigSet`].
    ConfigSet {
        /// A whole configuration file, TOML.
        toml: String,
    },
    /// The node's clock. Reply: [`Response::Time`].
    TimeGet,
    /// Sets the node's clock. Reply: [`Response::TimeSet`].
    TimeSet {
        /// The time to set, ms since the Unix epoch, UTC.
        unix_ms: i64,
        /// How far from the truth `unix_ms` may be, ms (the client's own
        /// uncertainty plus half the request's round trip).
        uncertainty_ms: u32,
    },
    /// Lists and samples the hardware found. Reply: [`Response::Probe`].
    Probe,
    /// Sends the whole outbox now, on whatever link the scheduler allows.
    /// Reply: [`Response::UplinkFlush`].
    UplinkFlush,
    /// State of the uplinks. Reply: [`Response::UplinkStatus`].
    UplinkStatus,
    /// The outbox's depth and counters. Reply: [`Response::OutboxStats`].
    OutboxStats,
    /// One step of pushing a signed bundle. Replies:
    /// [`Response::BundleOffset`] to `Begin` and `Chunk`,
    /// [`Response::BundleCommitted`] to `Commit`.
    BundlePush(BundlePush),
    /// Restarts the node. Reply: [`Response::Rebooting`], then the node
    /// stops (cleanly: everything detected is stored) and starts again.
    Reboot,
}

impl Request {
    /// Who may send this request.
    pub fn access(&self) -> Access {
        match self {
            Request::Hello(_)
            | Request::AuthChallenge
            | Request::AuthProve(_)
            | Request::Ping
            | Request::Credit { .. }
            | Request::Cancel { .. } => Access::Open,
            Request::Status
            | Request::Events(_)
            | Request::LogsTail(_)
            | Request::ConfigShow
            | Request::ConfigValidate { .. }
            | Request::TimeGet
            | Request::UplinkStatus
            | Request::OutboxStats => Access::Read,
            Request::ConfigSet { .. }
            | Request::TimeSet { .. }
            | Request::Probe
            | Request::UplinkFlush
            | Request::BundlePush(_)
            | Request::Reboot => Access::Control,
        }
    }

    /// True when the session must be authenticated for the node to act on
    /// this request; `reads_need_auth` is the node's setting
    /// ([`HelloReply::auth_required_for_reads`]).
    pub fn needs_auth(&self, reads_need_auth: bool) -> bool {
        match self.access() {
            Access::Open => false,
            Access::Read => reads_need_auth,
            Access::Control => true,
        }
    }

    /// How long a client should wait for the (first) reply before it treats
    /// the request as lost, ms. `None` for [`Request::Credit`], which is
    /// never answered.
    pub fn reply_timeout_ms(&self) -> Option<u32> {
        match self {
            Request::Credit { .. } => None,
            Request::Hello(_) => Some(HELLO_TIMEOUT_MS),
            Request::ConfigSet { .. }
            | Request::ConfigValidate { .. }
            | Request::Probe
            | Request::BundlePush(BundlePush::Commit { .. }) => Some(SLOW_REPLY_TIMEOUT_MS),
            _ => Some(REPLY_TIMEOUT_MS),
        }
    }

    /// A stable name for logs and error messages (`snake_case`).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Hello(_) => "hello",
            Request::AuthChallenge => "auth_challenge",
            Request::AuthProve(_) => "auth_prove",
            Request::Ping => "ping",
            Request::Status => "status",
            Request::Events(_) => "events",
            Request::LogsTail(_) => "logs_tail",
            Request::Credit { .. } => "credit",
            Request::Cancel { .. } => "cancel",
            Request::ConfigShow => "config_show",
            Request::ConfigValidate { .. } => "config_validate",
            Request::ConfigSet { .. } => "config_set",
            Request::TimeGet => "time_get",
            Request::TimeSet { .. } => "time_set",
            Request::Probe => "probe",
            Request::UplinkFlush => "uplink_flush",
            Request::UplinkStatus => "uplink_status",
            Request::OutboxStats => "outbox_stats",
            Request::BundlePush(BundlePush::Begin { .. }) => "bundle_begin",
            Request::BundlePush(BundlePush::Chunk { .. }) => "bundle_chunk",
            Request::BundlePush(BundlePush::Commit { .. }) => "bundle_commit",
            Request::Reboot => "reboot",
        }
    }
}

/// Every response. Variant order is the wire format: only append.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// The request failed (frozen: variant 0, two fields).
    Error(ErrorReply),
    /// Reply to [`Request::Hello`]: a new session is open.
    Hello(HelloReply),
    /// Reply to [`Request::AuthChallenge`].
    AuthChallenge {
        /// 32 random bytes, valid for one [`Request::AuthProve`] in this
        /// session.
        challenge: [u8; NONCE_LEN],
    },
    /// Reply to [`Request::AuthProve`]: the session is authenticated until
    /// it ends.
    Authenticated,
    /// Reply to [`Request::Ping`].
    Pong,
    /// Reply to [`Request::Status`]: a health report made for this request,
    /// in the form of the periodic one. It is not stored; its `id` is 0.
    /// Boxed: it is by far the largest reply in memory (on the wire a box
    /// is its content).
    Status(Box<StatusRecord>),
    /// One batch of a [`Request::Events`] stream.
    EventBatch(EventBatch),
    /// One batch of a [`Request::LogsTail`] stream.
    LogBatch(LogBatch),
    /// Reply to [`Request::Cancel`].
    Done,
    /// Reply to [`Request::ConfigShow`].
    Config(ConfigText),
    /// Reply to [`Request::ConfigValidate`]: what [`Request::ConfigSet`]
    /// would do with the same text.
    ConfigChecked(ConfigOutcome),
    /// Reply to [`Request::ConfigSet`]: `Valid` means the file was replaced
    /// (durably) and is applied as it says.
    ConfigSet(ConfigOutcome),
    /// Reply to [`Request::TimeGet`].
    Time(TimeReply),
    /// Reply to [`Request::TimeSet`]: the clock was set.
    TimeSet {
        /// New time minus the node's time before, ms.
        step_ms: i64,
    },
    /// Reply to [`Request::Probe`].
    Probe(ProbeReply),
    /// Reply to [`Request::UplinkFlush`]: the flush was started.
    UplinkFlush {
        /// Items in the outbox when the flush started.
        queued: u32,
        /// What the uplink's round started by the flush decided; `None`
        /// when no round ran within the node's wait for it.
        round: Option<UplinkRound>,
    },
    /// Reply to [`Request::UplinkStatus`].
    UplinkStatus(UplinkStatusReply),
    /// Reply to [`Request::OutboxStats`].
    OutboxStats(OutboxStatsReply),
    /// Reply to `Begin` and `Chunk` of [`Request::BundlePush`]: how many
    /// bytes of the bundle the node holds (durably); the next chunk starts
    /// there.
    BundleOffset {
        /// Bytes held, from the start of the bundle.
        offset: u64,
    },
    /// Reply to `Commit` of [`Request::BundlePush`].
    BundleCommitted(BundleOutcome),
    /// Reply to [`Request::Reboot`]: the node restarts in `after_ms`.
    Rebooting {
        /// Delay before the node starts stopping, ms.
        after_ms: u32,
    },
}

impl Response {
    /// A stable name for logs and error messages (`snake_case`).
    pub fn name(&self) -> &'static str {
        match self {
            Response::Error(_) => "error",
            Response::Hello(_) => "hello",
            Response::AuthChallenge { .. } => "auth_challenge",
            Response::Authenticated => "authenticated",
            Response::Pong => "pong",
            Response::Status(_) => "status",
            Response::EventBatch(_) => "event_batch",
            Response::LogBatch(_) => "log_batch",
            Response::Done => "done",
            Response::Config(_) => "config",
            Response::ConfigChecked(_) => "config_checked",
            Response::ConfigSet(_) => "config_set",
            Response::Time(_) => "time",
            Response::TimeSet { .. } => "time_set",
            Response::Probe(_) => "probe",
            Response::UplinkFlush { .. } => "uplink_flush",
            Response::UplinkStatus(_) => "uplink_status",
            Response::OutboxStats(_) => "outbox_stats",
            Response::BundleOffset { .. } => "bundle_offset",
            Response::BundleCommitted(_) => "bundle_committed",
            Response::Rebooting { .. } => "rebooting",
        }
    }
}

/// [`Request::Hello`] (frozen across major versions: these two fields, in
/// this order).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    /// The client's [`super::PROTOCOL_VERSION`].
    pub protocol_version: u16,
    /// Who is calling, for the node's log: program, version, and whatever
    /// helps (e.g. `field-tools 0.1.0 (alice@laptop)`).
    pub client: String,
}

/// [`Response::Hello`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HelloReply {
    /// The node's [`super::PROTOCOL_VERSION`].
    pub protocol_version: u16,
    /// The node's configured id (part of what an authentication signs).
    pub node_id: String,
    /// The firmware's version, e.g. `0.1.0`.
    pub firmware_version: String,
    /// 32 random bytes, new for every session (every Hello).
    pub session_nonce: [u8; NONCE_LEN],
    /// Whether reads ([`Access::Read`]) need an authenticated session.
    /// Control requests always do.
    pub auth_required_for_reads: bool,
    /// The node ends the session after this long without a frame from the
    /// client, ms.
    pub idle_timeout_ms: u32,
}

/// [`Request::AuthProve`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AuthProve {
    /// The technician's Ed25519 public key; the node must trust it.
    pub public_key: PublicKey,
    /// Signature by that key over [`super::auth_signed_bytes`] of this
    /// session's nonce, the challenge last issued in it, this key and the
    /// node's id.
    pub signature: Signature,
}

/// [`Request::Events`]: stored events in id order, with credit-based flow
/// control and a resume cursor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventsRequest {
    /// Only events with an id above this (the resume cursor: the last
    /// batch's [`EventBatch::resume_after_id`]); `None` = from the oldest
    /// event the node holds.
    pub after_id: Option<u64>,
    /// Only events that started at or after this time, ms since the Unix
    /// epoch.
    pub since_ms: Option<i64>,
    /// At most this many events in all; `None` = no limit.
    pub limit: Option<u32>,
    /// After the stored events, keep the stream open and send events as
    /// they are stored.
    pub follow: bool,
    /// Events the node may send before it needs a [`Request::Credit`].
    pub credit: u32,
}

/// Why a stream ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// Everything asked for was sent (a stream without `follow`).
    Complete,
    /// The request's `limit` was reached.
    LimitReached,
    /// The client sent [`Request::Cancel`], or the session ended.
    Cancelled,
}

/// One message of an events stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EventBatch {
    /// Events in id order, each above every id sent before on this stream.
    pub events: Vec<EventRecord>,
    /// The highest id the node has looked at for this stream (events
    /// skipped by `since_ms`, status reports and ids left by delivered
    /// records included); `None` while it has looked at nothing. Sending
    /// the same request again with `after_id` set to this continues the
    /// stream with no duplicate and no gap.
    pub resume_after_id: Option<u64>,
    /// Set on the stream's last batch.
    pub end: Option<StreamEnd>,
}

/// [`Request::LogsTail`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LogsTailRequest {
    /// How many of the most recent lines to send first.
    pub lines: u32,
    /// Then keep the stream open and send lines as they are logged.
    pub follow: bool,
    /// Lines the node may send before it needs a [`Request::Credit`].
    pub credit: u32,
    /// The most verbose level sent: [`LogLevel::Warn`] sends errors and
    /// warnings. Lines below it are skipped (they count neither against
    /// `lines` nor as missed).
    pub level: LogLevel,
}

/// Severity of a log line.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is wrong but handled.
    Warn,
    /// Normal operation.
    Info,
    /// Detail.
    Debug,
    /// More detail.
    Trace,
}

impl LogLevel {
    /// Every level, least verbose first.
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Error,
        LogLevel::Warn,
        LogLevel::Info,
        LogLevel::Debug,
        LogLevel::Trace,
    ];

    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }

    /// The level named `name` (as [`LogLevel::name`] writes it, any case).
    pub fn from_name(name: &str) -> Option<LogLevel> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }
}

/// One line of the node's log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// When it was logged, ms since the Unix epoch.
    pub time_ms: i64,
    /// Severity.
    pub level: LogLevel,
    /// The component that logged it (a module path).
    pub target: String,
    /// The message with its fields, as the node's text log shows them.
    pub message: String,
}

/// One message of a log stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LogBatch {
    /// Lines, oldest first.
    pub lines: Vec<LogLine>,
    /// Lines the node dropped since the previous batch because its log
    /// buffer overflowed while the stream had no credit.
    pub missed: u32,
    /// Set on the stream's last batch.
    pub end: Option<StreamEnd>,
}

/// [`Response::Config`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ConfigText {
    /// The configuration file, as stored.
    pub toml: String,
    /// True when the file was changed after the node started and some of
    /// the change waits for the next start.
    pub pending_restart: bool,
}

/// One problem in a configuration text.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key's dotted path, e.g. `power.interval_ms` (empty for a TOML
    /// syntax error).
    pub key: String,
    /// What is wrong, as `fieldnode check-config` says it.
    pub problem: String,
}

/// When a configuration change takes effect.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyWhen {
    /// At once, in the running node (every changed key can change live).
    Live,
    /// From the node's next start (at least one changed key cannot change
    /// live; nothing is applied before).
    NextStart,
}

/// The verdict on a configuration text.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ConfigOutcome {
    /// The text has problems; nothing was changed.
    Invalid {
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
    /// The text is valid.
    Valid {
        /// Dotted paths of the keys whose value differs from the current
        /// configuration.
        changed: Vec<String>,
        /// When the change takes (or would take) effect.
        applies: ApplyWhen,
    },
}

/// [`Response::Time`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct TimeReply {
    /// The node's clock, ms since the Unix epoch, UTC.
    pub unix_ms: i64,
    /// How far from the truth it may be, ms; `None` when the node has never
    /// had its time from a trusted source (it runs on its build time or an
    /// unsynchronised RTC).
    pub uncertainty_ms: Option<u32>,
    /// Where the time last came from, e.g. `ntp`, `link`, `rtc`, `build`.
    pub source: String,
}

/// [`Response::Probe`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProbeReply {
    /// One entry per device found or expected.
    pub devices: Vec<ProbeDevice>,
}

/// One device in a probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ProbeDevice {
    /// Which sensor it serves: `microphone`, `camera`, `climate`, `power`.
    pub role: String,
    /// The device as the system names it (ALSA card, `/dev/video0`, I2C bus
    /// and address).
    pub device: String,
    /// Its state.
    pub state: SensorState,
    /// What the sample showed, or why it failed.
    pub detail: String,
}

/// State of one uplink.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Not configured.
    Disabled,
    /// Connected or able to send.
    Up,
    /// Failing; retried with backoff.
    Down,
    /// Held back by the power policy or a budget (satellite credits).
    Held,
}

/// One uplink in [`UplinkStatusReply`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UplinkInfo {
    /// `mqtt` or `sbd`.
    pub link: String,
    /// Its state.
    pub state: LinkState,
    /// Last confirmed delivery on it, ms since the Unix epoch.
    pub last_success_ms: Option<i64>,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
}

/// [`Response::UplinkStatus`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UplinkStatusReply {
    /// Every uplink the node knows.
    pub links: Vec<UplinkInfo>,
    /// Satellite credits left in the current budget period, when the
    /// satellite link is configured.
    pub sbd_credits_left: Option<u32>,
}

/// What one round of the uplink's scheduler decided
/// ([`Response::UplinkFlush`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UplinkRound {
    /// `mqtt` or `sbd` (items handed to that link), `wait` (nothing sent:
    /// no link up, nothing pending, a satellite batching rule) or `held`
    /// (the power policy denied the uplink).
    pub action: String,
    /// Items handed to the link.
    pub items: u32,
    /// Why it waited or was held, for the technician; empty when it sent.
    pub detail: String,
}

/// [`Response::OutboxStats`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct OutboxStatsReply {
    /// Items waiting, per priority (index = [`crate::Priority::index`]).
    pub queue: [u32; 4],
    /// Bytes the outbox uses on disk.
    pub bytes: u64,
    /// The disk budget, bytes.
    pub budget_bytes: u64,
    /// The oldest item's time, ms since the Unix epoch.
    pub oldest_ms: Option<i64>,
    /// What left the outbox without delivery.
    pub drops: DropCounters,
    /// Items delivered since the node started.
    pub delivered_since_start: u64,
}

/// The kind of a signed bundle (`docs/updates.md`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BundleKind {
    /// A fusion model.
    Model,
    /// A settings patch.
    Settings,
}

/// The steps of [`Request::BundlePush`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum BundlePush {
    /// Starts, or resumes, the transfer of one bundle file. The node answers
    /// how many bytes of that bundle (same SHA-256) it holds already: 0 for
    /// a new one. A Begin for a different bundle discards the partial one.
    Begin {
        /// What the bundle says it is.
        kind: BundleKind,
        /// Length of the bundle file, bytes.
        total_len: u64,
        /// SHA-256 of the whole bundle file.
        sha256: [u8; 32],
    },
    /// Bytes of the bundle at `offset`. The node writes them only when
    /// `offset` is the offset it holds; otherwise it writes nothing and
    /// answers its offset, so a repeated or misplaced chunk is harmless.
    Chunk {
        /// Where `data` starts in the bundle file.
        offset: u64,
        /// At most [`super::BUNDLE_CHUNK_LEN`] bytes.
        data: Vec<u8>,
    },
    /// The whole bundle was sent: the node checks its length and SHA-256,
    /// verifies it as any bundle (`docs/updates.md`) and queues it for
    /// installation.
    Commit {
        /// Install now even if the power policy would defer it.
        force_power: bool,
    },
}

/// When a queued bundle will be installed ([`BundleOutcome::Queued`]).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallWhen {
    /// As soon as the node's update task takes it (a 1.2 node sends
    /// `Queued` only with this: the task had not decided within the node's
    /// wait, e.g. while a model runs its trial).
    Now,
    /// When the power policy allows it (not sent by a 1.2 node: it answers
    /// [`BundleOutcome::Deferred`] with the reason).
    Deferred,
    /// From the node's next start (not sent by a 1.2 node: settings apply
    /// at once).
    NextStart,
}

/// [`Response::BundleCommitted`]: what the node's update task did with the
/// bundle. Variant order is the wire format: only append.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum BundleOutcome {
    /// Handed to the update task, which had not decided within the node's
    /// wait; its result is reported as any update result (status record,
    /// log).
    Queued {
        /// When it will be installed.
        install: InstallWhen,
    },
    /// Refused; the bundle is discarded.
    Refused {
        /// The refusal code of `docs/updates.md` (`signatures`, `rollback`,
        /// `payload_mismatch`, ...), or the push's own: `incomplete` (bytes
        /// missing; the partial bundle is kept), `sha256_mismatch`,
        /// `wrong_kind`, `updates_off`.
        code: String,
        /// A sentence for the technician.
        reason: String,
    },
    /// Installed: a settings patch in force (1.2).
    Installed {
        /// What was applied.
        reason: String,
    },
    /// A model that passed its self-test and now runs its trial bursts; it
    /// is committed after them, or rolled back (1.2).
    OnTrial {
        /// The self-test's figures and the trial's length.
        reason: String,
    },
    /// Valid, but not installed now: the power policy or the enclosure
    /// temperature says not now. The node keeps the bundle and installs it
    /// when they allow (1.2).
    Deferred {
        /// Why (the power mode, the charge, the temperature).
        reason: String,
    },
    /// Staged but failed its checks (self-test, latency, load); the
    /// committed model stays (1.2).
    RolledBack {
        /// The code of `docs/updates.md` (`self_test`, `latency`,
        /// `model_invalid`).
        code: String,
        /// A sentence for the technician.
        reason: String,
    },
}

/// [`Response::Error`] (frozen across major versions: these two fields, in
/// this order).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ErrorReply {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A sentence for the technician.
    pub message: String,
}

/// Why a request failed. Travels as a `u16` (the numbers below); codes are
/// only ever added.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(from = "u16", into = "u16")]
pub enum ErrorCode {
    /// 1: the request did not decode: unknown to this node (a newer client)
    /// or malformed.
    UnknownRequest,
    /// 2: the Hello's major protocol version differs from the node's.
    BadVersion,
    /// 3: no session yet (send Hello), or the request needs an
    /// authenticated session.
    Unauthenticated,
    /// 4: the proof did not verify: unknown key, bad or replayed signature,
    /// or no challenge outstanding.
    BadSignature,
    /// 5: the node cannot take this now (another transfer, too many
    /// streams, shutting down); retry later.
    Busy,
    /// 6: a field is out of range or does not fit the node's state.
    InvalidArgument,
    /// 7: the node failed (storage, hardware); its log says more.
    Internal,
    /// A code this build does not know (from a newer peer).
    Other(u16),
}

impl From<u16> for ErrorCode {
    fn from(code: u16) -> Self {
        match code {
            1 => ErrorCode::UnknownRequest,
            2 => ErrorCode::BadVersion,
            3 => ErrorCode::Unauthenticated,
            4 => ErrorCode::BadSignature,
            5 => ErrorCode::Busy,
            6 => ErrorCode::InvalidArgument,
            7 => ErrorCode::Internal,
            other => ErrorCode::Other(other),
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        match code {
            ErrorCode::UnknownRequest => 1,
            ErrorCode::BadVersion => 2,
            ErrorCode::Unauthenticated => 3,
            ErrorCode::BadSignature => 4,
            ErrorCode::Busy => 5,
            ErrorCode::InvalidArgument => 6,
            ErrorCode::Internal => 7,
            ErrorCode::Other(other) => other,
        }
    }
}

impl ErrorCode {
    /// A stable name (`snake_case`) for logs and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::UnknownRequest => "unknown_request",
            ErrorCode::BadVersion => "bad_version",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::Busy => "busy",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::Internal => "internal",
            ErrorCode::Other(_) => "other",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorCode::Other(code) => write!(f, "error code {code}"),
            known => f.write_str(known.name()),
        }
    }
}
