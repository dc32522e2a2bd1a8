//! The field link: the protocol a technician's `field-tools link` speaks with
//! a running node over a serial cable (Pi UART, USB gadget serial, a
//! USB-serial adapter) or a Unix socket. Specified in `docs/field-link.md`.
//!
//! This module owns the protocol layer only, and no transport: it turns
//! messages into bytes and bytes back into messages, and defines every
//! message. The node and the CLI read and write the bytes themselves (tokio,
//! a serial port) and keep the session state (nonce, authentication,
//! streams, the partial bundle).
//!
//! - [`frame`]: `COBS(postcard(message) ++ CRC-32 LE) 0x00`; [`encode_frame`]
//!   and the incremental [`FrameDecoder`], with the size limits;
//! - [`proto`]: the envelopes ([`RequestEnvelope`], [`ResponseEnvelope`]),
//!   every [`Request`] and [`Response`], [`ErrorCode`];
//! - [`auth`]: the bytes a technician signs ([`auth_signed_bytes`]); keys and
//!   signatures are plain byte arrays here.
//!
//! A client encodes [`RequestEnvelope`]s with [`encode_frame`] and decodes
//! what it reads with a `FrameDecoder<ResponseEnvelope>`; the node the other
//! way round.

pub mod auth;
pub mod frame;
mod older;
pub mod proto;

pub use auth::{AUTH_DOMAIN, NONCE_LEN, PublicKey, Signature, auth_signed_bytes};
pub use frame::{
    BUNDLE_CHUNK_LEN, CRC_LEN, FrameDecoder, FrameStats, LinkError, LinkMessage, MAX_FRAME_LEN,
    MAX_PAYLOAD_LEN, MAX_WIRE_FRAME_LEN, STREAM_BATCH_LEN, encode_frame, frame_len,
};
pub use proto::{
    Access, ApplyWhen, AuthProve, BundleKind, BundleOutcome, BundlePush, ConfigOutcome,
    ConfigProblem, ConfigText, ErrorCode, ErrorReply, EventBatch, EventsRequest, Hello, HelloReply,
    InstallWhen, LinkState, LogBatch, LogLevel, LogLine, LogsTailRequest, OutboxStatsReply,
    ProbeDevice, ProbeReply, Request, RequestEnvelope, Response, ResponseEnvelope, StreamEnd,
    TimeReply, UplinkInfo, UplinkRound, UplinkStatusReply,
};

/// The protocol version this build speaks: major in the high byte, minor in
/// the low byte (1.3). Peers of the same major version understand each
/// other (a newer minor only appends requests, replies and fields at the
/// end of a message, and an older node answers an appended request with
/// [`ErrorCode::UnknownRequest`]); a different major version is refused at
/// the Hello with [`ErrorCode::BadVersion`].
pub const PROTOCOL_VERSION: u16 = 0x0103;

/// The major version of a protocol version (its high byte).
pub const fn protocol_major(version: u16) -> u8 {
    version.to_be_bytes()[0]
}

/// The minor version of a protocol version (its low byte).
pub const fn protocol_minor(version: u16) -> u8 {
    version.to_be_bytes()[1]
}

/// True when a peer speaking `version` can talk with this build (same major
/// version).
pub const fn is_compatible(version: u16) -> bool {
    protocol_major(version) == protocol_major(PROTOCOL_VERSION)
}

/// `major.minor`, for messages.
pub fn version_string(version: u16) -> String {
    format!("{}.{}", protocol_major(version), protocol_minor(version))
}

/// Recommended: how long a client waits for the reply to a Hello, ms. It
/// resends the Hello (with a new id) twice before giving up: the first may
/// have been lost to a partial frame left in the node's decoder.
pub const HELLO_TIMEOUT_MS: u32 = 2_000;

/// Recommended: how long a client waits for the reply to an ordinary
/// request, or for the next batch of a stream that has credit and still
/// has stored items to send, ms.
pub const REPLY_TIMEOUT_MS: u32 = 5_000;

/// Recommended: how long a client waits for a slow reply (configuration
/// check and set, probe, bundle commit), ms.
pub const SLOW_REPLY_TIMEOUT_MS: u32 = 60_000;

/// Recommended: a receiver drops a partial frame when no byte arrived for
/// this long, ms ([`FrameDecoder::reset`]). A sender never pauses inside a
/// frame.
pub const INTER_BYTE_TIMEOUT_MS: u32 = 1_000;

/// Recommended: the node ends a session after this long without a frame
/// from the client, ms (it says so in [`HelloReply::idle_timeout_ms`]).
pub const SESSION_IDLE_TIMEOUT_MS: u32 = 300_000;

/// Recommended: a client with nothing else to send (waiting on a follow
/// stream) sends [`Request::Ping`] this often, ms.
pub const KEEPALIVE_INTERVAL_MS: u32 = 60_000;
