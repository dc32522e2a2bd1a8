//! Framing: how one message becomes bytes on a serial line or a socket, and
//! how a stream of bytes, with whatever noise it picked up, becomes messages
//! again.
//!
//! ```text
//! wire:    COBS( payload ++ crc ) 0x00
//! payload: postcard(message)          at most MAX_FRAME_LEN - 4 bytes
//! crc:     CRC-32 (IEEE) of payload, 4 bytes little-endian
//! ```
//!
//! COBS removes every 0x00 from the frame, so 0x00 only ever means "end of
//! frame": a receiver that starts listening mid-frame, or that received
//! garbage, loses at most the frame in progress and is in step again at the
//! next 0x00. Consecutive 0x00 bytes (empty frames) are ignored, so a sender
//! may write a 0x00 at any time to end whatever partial frame the receiver
//! holds.
//!
//! [`FrameDecoder`] holds at most [`MAX_FRAME_LEN`] decoded bytes whatever it
//! is fed; it never panics.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest decoded frame (postcard payload plus its 4-byte CRC), bytes.
///
/// 16 KiB: at 115200 baud (8N1, 11.5 kB/s) the largest frame takes 1.4 s on
/// the wire, and the largest frames are rare (a whole configuration file:
/// the example configuration, every key with its comment, is 6 KB; bundle
/// chunks are [`BUNDLE_CHUNK_LEN`], stream batches aim at
/// [`STREAM_BATCH_LEN`]), so a lost frame costs a retry of at most that. A
/// receiver buffers at most this much per connection.
pub const MAX_FRAME_LEN: usize = 16 * 1024;

/// Bytes of CRC at the end of every decoded frame.
pub const CRC_LEN: usize = 4;

/// The largest postcard payload of one frame, bytes.
pub const MAX_PAYLOAD_LEN: usize = MAX_FRAME_LEN - CRC_LEN;

/// The largest frame on the wire: the decoded frame after COBS (one byte
/// more per 254) and the 0x00 delimiter.
pub const MAX_WIRE_FRAME_LEN: usize = cobs::max_encoding_length(MAX_FRAME_LEN) + 1;

/// The largest `data` of one bundle chunk, bytes. 2 KiB is 0.18 s at
/// 115200 baud: a cut cable or a corrupted chunk costs little, and the
/// committed model's 294 KB bundle takes 144 round trips.
pub const BUNDLE_CHUNK_LEN: usize = 2048;

/// The payload size a node aims at for one batch of a stream (events, log
/// lines): small enough that a `Credit` or `Cancel` from the client waits at
/// most about 0.2 s behind a batch at 115200 baud.
pub const STREAM_BATCH_LEN: usize = 2048;

/// What can go wrong between a message and the wire, either way.
///
/// Decoding errors concern one frame: the decoder has already dropped that
/// frame and carries on with the next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// [`encode_frame`]: the message does not fit one frame.
    #[error("message of {len} bytes (with its CRC) is over the frame limit of {max} bytes")]
    TooLarge {
        /// Decoded frame length the message would need.
        len: usize,
        /// [`MAX_FRAME_LEN`].
        max: usize,
    },
    /// [`encode_frame`]: serde refused the value (a type postcard cannot
    /// encode). Never happens for the types of this module.
    #[error("message could not be encoded: {0}")]
    Encode(String),
    /// The bytes between two delimiters are not valid COBS (a frame cut
    /// short, or garbage).
    #[error("invalid COBS in a frame of {wire_len} bytes (cut short, or garbage)")]
    Cobs {
        /// Wire bytes of the dropped frame, delimiter excluded.
        wire_len: usize,
    },
    /// The frame decoded to fewer bytes than its CRC.
    #[error("frame of {len} bytes is too short to hold its CRC")]
    Short {
        /// Decoded length.
        len: usize,
    },
    /// The CRC does not match the payload: the frame was damaged on the way.
    #[error("CRC mismatch: frame says {expected:#010x}, payload gives {actual:#010x}")]
    Crc {
        /// CRC carried by the frame.
        expected: u32,
        /// CRC of the payload as received.
        actual: u32,
    },
    /// A frame grew past [`MAX_FRAME_LEN`]; its bytes were discarded up to
    /// the next delimiter.
    #[error(
        "oversize frame: {discarded} bytes discarded up to the delimiter (limit {max} decoded)"
    )]
    Oversize {
        /// Wire bytes discarded, delimiter excluded.
        discarded: usize,
        /// [`MAX_FRAME_LEN`].
        max: usize,
    },
    /// The frame was intact (its CRC matched) but its payload is not a
    /// message of the expected type: a message from a newer peer (a request
    /// this build does not know), or a peer's bug.
    #[error("undecodable message{}: {reason}", id.map(|i| format!(" (id {i})")).unwrap_or_default())]
    Decode {
        /// The payload's leading varint, when it reads as a `u32`: in both
        /// envelopes that is the request id, so the receiver can still
        /// answer (with [`super::ErrorCode::UnknownRequest`]).
        id: Option<u32>,
        /// What postcard said.
        reason: String,
    },
}

/// Encodes one message as a frame ready to write: COBS of the postcard
/// payload and its CRC-32, then the 0x00 delimiter. Refuses a message whose
/// decoded frame would exceed [`MAX_FRAME_LEN`].
pub fn encode_frame<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, LinkError> {
    let mut frame = postcard::to_allocvec(message).map_err(|e| LinkError::Encode(e.to_string()))?;
    let len = frame.len() + CRC_LEN;
    if len > MAX_FRAME_LEN {
        return Err(LinkError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    let crc = crc32fast::hash(&frame);
    frame.extend_from_slice(&crc.to_le_bytes());
    let mut wire = vec![0u8; cobs::max_encoding_length(frame.len()) + 1];
    let n = cobs::try_encode(&frame, &mut wire)
        .map_err(|_| LinkError::Encode("COBS output buffer too small".into()))?;
    wire.truncate(n);
    wire.push(0);
    Ok(wire)
}

/// The decoded frame length (postcard payload plus CRC) a message needs;
/// compare with [`MAX_FRAME_LEN`] or [`STREAM_BATCH_LEN`] when filling a
/// batch.
pub fn frame_len<T: Serialize + ?Sized>(message: &T) -> Result<usize, LinkError> {
    postcard::to_allocvec(message)
        .map(|v| v.len() + CRC_LEN)
        .map_err(|e| LinkError::Encode(e.to_string()))
}

/// What a [`FrameDecoder`] has seen since it was made. Counters never reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Frames decoded into messages.
    pub frames: u64,
    /// [`LinkError::Cobs`] frames.
    pub cobs_errors: u64,
    /// [`LinkError::Short`] frames.
    pub short_frames: u64,
    /// [`LinkError::Crc`] frames.
    pub crc_errors: u64,
    /// [`LinkError::Oversize`] frames.
    pub oversize_frames: u64,
    /// [`LinkError::Decode`] frames.
    pub decode_errors: u64,
    /// Wire bytes of every frame that did not become a message, plus
    /// partial frames dropped by [`FrameDecoder::reset`].
    pub discarded_bytes: u64,
}

/// An incremental frame decoder: feed it bytes as they arrive, in pieces of
/// any size, and it returns each frame completed by them, decoded as a `T`
/// or as the typed reason it was dropped.
///
/// It holds at most [`MAX_FRAME_LEN`] decoded bytes: a frame that grows past
/// that is discarded up to the next 0x00 and reported once as
/// [`LinkError::Oversize`]. It never panics, whatever the input.
#[derive(Debug)]
pub struct FrameDecoder<T> {
    cobs: cobs::DecoderState,
    /// Decoded bytes of the frame in progress (never more than MAX_FRAME_LEN).
    buf: Vec<u8>,
    /// Wire bytes of the frame in progress, delimiter excluded.
    wire_len: usize,
    /// The frame in progress is too long: wait for its delimiter.
    discarding: bool,
    stats: FrameStats,
    _message: PhantomData<fn() -> T>,
}

/// A message a [`FrameDecoder`] decodes: its postcard layout, and what it
/// makes of a payload laid out by a peer of an older minor version when a
/// field this build appends is missing there.
pub trait LinkMessage: DeserializeOwned {
    /// A payload this build's layout could not read, decoded the way an
    /// older minor version laid it out; `None` when it is not such a
    /// payload either. (Bytes a newer peer appends need nothing: they are
    /// left unread.)
    fn decode_older(_payload: &[u8]) -> Option<Self> {
        None
    }
}

impl<T: LinkMessage> Default for FrameDecoder<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: LinkMessage> FrameDecoder<T> {
    /// An empty decoder, waiting for the start of a frame.
    pub fn new() -> Self {
        FrameDecoder {
            cobs: cobs::DecoderState::Idle,
            buf: Vec::new(),
            wire_len: 0,
            discarding: false,
            stats: FrameStats::default(),
            _message: PhantomData,
        }
    }

    /// Feeds bytes as read from the transport; returns what the frames they
    /// complete decode to, in order (often nothing, when no 0x00 was among
    /// them). A partial frame is kept for the next call.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<T, LinkError>> {
        let mut out = Vec::new();
        for &byte in bytes {
            if let Some(result) = self.push(byte) {
                out.push(result);
            }
        }
        out
    }

    /// Drops the partial frame, if any (its bytes count as discarded). Call
    /// it when the transport was reopened, or when a partial frame has seen
    /// no byte for the inter-byte timeout (`docs/field-link.md`).
    pub fn reset(&mut self) {
        self.stats.discarded_bytes += self.wire_len as u64;
        self.clear();
    }

    /// Wire bytes of the partial frame held (0 between frames).
    pub fn pending_wire_len(&self) -> usize {
        self.wire_len
    }

    /// Decoded bytes held for the partial frame; never above [`MAX_FRAME_LEN`].
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Counters of frames decoded and dropped, by reason.
    pub fn stats(&self) -> FrameStats {
        self.stats
    }

    fn clear(&mut self) {
        self.cobs = cobs::DecoderState::Idle;
        self.buf.clear();
        self.wire_len = 0;
        self.discarding = false;
    }

    /// Drops the frame in progress and reports why.
    fn drop_frame(&mut self, error: LinkError) -> Option<Result<T, LinkError>> {
        let stats = &mut self.stats;
        match &error {
            LinkError::Cobs { .. } => stats.cobs_errors += 1,
            LinkError::Short { .. } => stats.short_frames += 1,
            LinkError::Crc { .. } => stats.crc_errors += 1,
            LinkError::Oversize { .. } => stats.oversize_frames += 1,
            LinkError::Decode { .. } => stats.decode_errors += 1,
            LinkError::TooLarge { .. } | LinkError::Encode(_) => {}
        }
        stats.discarded_bytes += self.wire_len as u64;
        self.clear();
        Some(Err(error))
    }

    fn push(&mut self, byte: u8) -> Option<Result<T, LinkError>> {
        if self.discarding {
            if byte == 0 {
                return self.drop_frame(LinkError::Oversize {
                    discarded: self.wire_len,
                    max: MAX_FRAME_LEN,
                });
            }
            self.wire_len = self.wire_len.saturating_add(1);
            return None;
        }
        if byte != 0 {
            self.wire_len += 1;
        }
        match self.cobs.feed(byte) {
            Ok(cobs::DecodeResult::NoData) => None,
            Ok(cobs::DecodeResult::DataContinue(b)) => {
                if self.buf.len() < MAX_FRAME_LEN {
                    self.buf.push(b);
                } else {
                    self.discarding = true;
                    self.buf.clear();
                }
                None
            }
            Ok(cobs::DecodeResult::DataComplete) => {
                let result = self.finish();
                match result {
                    Ok(message) => {
                        self.stats.frames += 1;
                        self.clear();
                        Some(Ok(message))
                    }
                    Err(e) => self.drop_frame(e),
                }
            }
            Err(_) => self.drop_frame(LinkError::Cobs {
                wire_len: self.wire_len,
            }),
        }
    }

    /// Checks the CRC of the complete frame in `buf` and decodes its payload.
    fn finish(&self) -> Result<T, LinkError> {
        let Some((payload, crc)) = self.buf.split_last_chunk::<CRC_LEN>() else {
            return Err(LinkError::Short {
                len: self.buf.len(),
            });
        };
        let expected = u32::from_le_bytes(*crc);
        let actual = crc32fast::hash(payload);
        if expected != actual {
            return Err(LinkError::Crc { expected, actual });
        }
        let decode_error = |reason: String| LinkError::Decode {
            id: postcard::take_from_bytes::<u32>(payload)
                .ok()
                .map(|(id, _)| id),
            reason,
        };
        // Bytes after a complete message are fields a newer minor version
        // appended (the CRC has vouched for them): this build reads what it
        // knows.
        // A payload shorter than this build's layout may be an older
        // peer's (a status record without the fields appended since).
        match postcard::take_from_bytes::<T>(payload) {
            Ok((message, _appended)) => Ok(message),
            Err(e) => T::decode_older(payload).ok_or_else(|| decode_error(e.to_string())),
        }
    }
}
