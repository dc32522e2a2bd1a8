//! One field-link session over any byte stream (`AsyncRead + AsyncWrite`):
//! an accepted Unix socket connection or an opened serial port.
//!
//! Authentication (`docs/field-link.md`, "Authentication"): the Hello
//! draws the session nonce; `AuthChallenge` draws a challenge, the only
//! one outstanding; `AuthProve` takes it (whatever the outcome: a proof is
//! checked once) and verifies, with `verify_strict`, the signature over
//! `auth_signed_bytes(nonce, challenge, key, node id)` by a key of
//! `[fieldlink] technician_keys`. A refusal is `bad_signature`, logged and
//! counted (per session, in the end-of-session line, and for the link).
//! Requests that need authentication are answered `unauthenticated` until
//! then.
//!
//! The session is one task: it reads bytes, decodes frames, answers each
//! request before it handles the next, and sends the batches of its (at
//! most one) open events stream as credit allows. Store reads run on
//! blocking threads with a timeout; a write that the client does not take
//! within [`Limits::write_timeout`] ends the session, so a slow or vanished
//! client only ever holds up its own session.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use messages::link::{
    self, Access, AuthProve, ErrorCode, EventBatch, EventsRequest, FrameDecoder, FrameStats,
    HelloReply, LinkError, PROTOCOL_VERSION, Request, RequestEnvelope, Response, ResponseEnvelope,
    StreamEnd,
};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use super::events::{Filter, read_batch};
use super::logs::LogStream;
use super::push::{self, SessionPush};
use super::replies::{NodeView, error};

/// The session's timers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The session ends after this long without a frame from the client.
    pub idle_timeout: Duration,
    /// A partial frame with no new byte for this long is dropped.
    pub inter_byte: Duration,
    /// A frame not taken by the client within this long ends the session.
    pub write_timeout: Duration,
    /// How often a follow stream that sent everything looks for new events.
    pub follow_poll: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Duration::from_millis(link::SESSION_IDLE_TIMEOUT_MS.into()),
            inter_byte: Duration::from_millis(link::INTER_BYTE_TIMEOUT_MS.into()),
            write_timeout: Duration::from_secs(30),
            follow_poll: Duration::from_millis(500),
        }
    }
}

/// How long the node works on a request before it answers `internal`: a
/// little under the client's own timeout for it, so the answer arrives.
fn work_timeout(req: &Request) -> Duration {
    let ms = req.reply_timeout_ms().unwrap_or(link::REPLY_TIMEOUT_MS);
    Duration::from_millis(u64::from(ms) * 4 / 5)
}

/// Completes when `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    /// The client closed the connection.
    #[error("the client closed the connection")]
    Closed,
    /// No frame from the client for the idle timeout.
    #[error("no frame from the client for {0:?}")]
    Idle(Duration),
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopped,
    /// The client did not take a frame within the write timeout.
    #[error("the client did not read a reply within {0:?}")]
    WriteTimeout(Duration),
    /// Reading or writing the transport failed.
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
}

/// What a session did, logged when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Requests handled (decoded frames).
    pub requests: u64,
    /// Error replies sent.
    pub errors: u64,
    /// Events sent on streams.
    pub events_sent: u64,
    /// Log lines sent on streams.
    pub log_lines_sent: u64,
    /// Authentication attempts refused (`AuthProve` answered
    /// `bad_signature`).
    pub auth_refusals: u64,
    /// The session ended authenticated.
    pub authenticated: bool,
    /// The frame decoder's counters (garbage, damaged and unknown frames).
    pub frames: FrameStats,
}

/// An open events stream.
struct Stream {
    id: u32,
    req: EventsRequest,
    credit: u32,
    sent: u64,
    cursor: Option<u64>,
    /// When to read the next batch (while it has credit).
    next: Instant,
}

struct Session<W> {
    out: W,
    view: Arc<NodeView>,
    limits: Limits,
    /// A Hello was accepted on this connection.
    open: bool,
    /// Names the transport in the log.
    peer: String,
    /// This session's nonce (from its Hello).
    nonce: [u8; link::NONCE_LEN],
    /// The challenge outstanding, valid for one `AuthProve`.
    challenge: Option<[u8; link::NONCE_LEN]>,
    /// The key that authenticated this session.
    authenticated: Option<[u8; 32]>,
    stream: Option<Stream>,
    /// The open log stream (one per session besides the events stream).
    logs: Option<LogStream>,
    /// The bundle this session pushes.
    push: SessionPush,
    stats: SessionStats,
}

/// Why an `AuthProve` was refused (logged as `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthRefusal {
    /// No `AuthChallenge` outstanding (none asked, or already used).
    NoChallenge,
    /// The key is not in `[fieldlink] technician_keys`.
    UntrustedKey,
    /// The signature does not verify (another session's or challenge's
    /// proof, a damaged or forged one).
    BadSignature,
}

impl AuthRefusal {
    fn code(self) -> &'static str {
        match self {
            AuthRefusal::NoChallenge => "no_challenge",
            AuthRefusal::UntrustedKey => "untrusted_key",
            AuthRefusal::BadSignature => "bad_signature",
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves one session on `io` until the client leaves, the idle timeout,
/// or `stop` turns true; then returns why, with what it did. `peer` names
/// the transport in the log.
pub async fn serve<S: AsyncRead + AsyncWrite>(
    io: S,
    view: Arc<NodeView>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    peer: &str,
) -> (SessionEnd, SessionStats) {
    let (mut input, out) = tokio::io::split(io);
    let serial = view.shared.sessions.fetch_add(1, Ordering::Relaxed);
    let mut s = Session {
        out,
        view,
        limits,
        open: false,
        peer: peer.to_string(),
        nonce: [0; link::NONCE_LEN],
        challenge: None,
        authenticated: None,
        stream: None,
        logs: None,
        push: SessionPush::new(serial),
        stats: SessionStats::default(),
    };
    let mut decoder = FrameDecoder::<RequestEnvelope>::new();
    let end = s.run(&mut input, &mut decoder, &mut stop).await;
    s.push.release(&s.view);
    s.stats.frames = decoder.stats();
    s.stats.authenticated = s.authenticated.is_some();
    let f = s.stats.frames;
    tracing::info!(
        peer,
        reason = %end,
        requests = s.stats.requests,
        error_replies = s.stats.errors,
        events_sent = s.stats.events_sent,
        log_lines_sent = s.stats.log_lines_sent,
        authenticated = s.stats.authenticated,
        auth_refusals = s.stats.auth_refusals,
        link_auth_refusals = s.view.shared.auth_refusals.load(Ordering::Relaxed),
        bad_frames = f.cobs_errors + f.short_frames + f.crc_errors + f.oversize_frames + f.decode_errors,
        crc_errors = f.crc_errors,
        cobs_errors = f.cobs_errors,
        undecodable = f.decode_errors,
        discarded_bytes = f.discarded_bytes,
        "field link session ended"
    );
    (end, s.stats)
}

impl<W: AsyncWrite + Unpin> Session<W> {
    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        input: &mut R,
        decoder: &mut FrameDecoder<RequestEnvelope>,
        stop: &mut watch::Receiver<bool>,
    ) -> SessionEnd {
        // Ends whatever partial frame the client holds.
        if let Err(e) = self.write(&[0]).await {
            return e;
        }
        let mut buf = vec![0u8; 4096];
        let mut last_frame = Instant::now();
        let mut last_byte = Instant::now();
        loop {
            let events_at = self
                .stream
                .as_ref()
                .filter(|s| s.credit > 0)
                .map(|s| s.next);
            let logs_at = self.logs.as_ref().filter(|s| s.credit > 0).map(|s| s.next);
            let batch_at = match (events_at, logs_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let end = tokio::select! {
                biased;
                _ = stopped(stop) => Some(SessionEnd::Stopped),
                r = input.read(&mut buf) => match r {
                    Ok(0) => Some(SessionEnd::Closed),
                    Ok(n) => {
                        last_byte = Instant::now();
                        let mut end = None;
                        for frame in decoder.feed(&buf[..n]) {
                            let r = match frame {
                                Ok(request) => {
                                    last_frame = Instant::now();
                                    self.handle(request).await
                                }
                                Err(e) => self.bad_frame(e).await,
                            };
                            if let Err(e) = r {
                                end = Some(e);
                                break;
                            }
                        }
                        end
                    }
                    Err(e) => Some(SessionEnd::Io(e)),
                },
                _ = sleep_until(last_byte + self.limits.inter_byte), if decoder.pending_wire_len() > 0 => {
                    tracing::debug!(bytes = decoder.pending_wire_len(), "field link: partial frame dropped after the inter-byte timeout");
                    decoder.reset();
                    None
                }
                _ = sleep_until(last_frame + self.limits.idle_timeout) => Some(SessionEnd::Idle(self.limits.idle_timeout)),
                _ = sleep_until(batch_at.unwrap_or_else(Instant::now)), if batch_at.is_some() => {
                    let now = Instant::now();
                    let mut r = Ok(());
                    if events_at.is_some_and(|t| t <= now) {
                        r = self.pump().await;
                    }
                    if r.is_ok() && logs_at.is_some_and(|t| t <= now) {
                        r = self.pump_logs().await;
                    }
                    r.err()
                }
            };
            if let Some(end) = end {
                if !matches!(end, SessionEnd::Io(_) | SessionEnd::WriteTimeout(_)) {
                    // Best effort, briefly (the node may be stopping): the
                    // stream's last batch says it ended.
                    let _ = timeout(Duration::from_millis(500), async {
                        self.end_stream(StreamEnd::Cancelled).await?;
                        self.end_logs(StreamEnd::Cancelled).await
                    })
                    .await;
                }
                return end;
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionEnd> {
        let t = self.limits.write_timeout;
        match timeout(t, async {
            self.out.write_all(bytes).await?;
            self.out.flush().await
        })
        .await
        {
            Ok(r) => r.map_err(SessionEnd::Io),
            Err(_) => Err(SessionEnd::WriteTimeout(t)),
        }
    }

    async fn send(&mut self, id: u32, body: Response) -> Result<(), SessionEnd> {
        if matches!(body, Response::Error(_)) {
            self.stats.errors += 1;
        }
        let frame = match link::encode_frame(&ResponseEnvelope { id, body }) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(id, error = %e, "field link: reply does not fit a frame");
                self.stats.errors += 1;
                link::encode_frame(&ResponseEnvelope {
                    id,
                    body: error(
                        ErrorCode::Internal,
                        format!("the reply does not fit a frame: {e}"),
                    ),
                })
                .unwrap_or_default()
            }
        };
        self.write(&frame).await
    }

    async fn bad_frame(&mut self, e: LinkError) -> Result<(), SessionEnd> {
        tracing::debug!(error = %e, "field link: frame dropped");
        match e {
            // Intact, but not a request this node knows: answer its id.
            LinkError::Decode { id: Some(id), .. } => {
                self.send(
                    id,
                    error(
                        ErrorCode::UnknownRequest,
                        format!(
                            "the request did not decode: unknown to this node (field-link {}) or malformed",
                            link::version_string(PROTOCOL_VERSION)
                        ),
                    ),
                )
                .await
            }
            // Damaged or garbage: counted; the client's timeout finds it.
            _ => Ok(()),
        }
    }

    async fn handle(&mut self, env: RequestEnvelope) -> Result<(), SessionEnd> {
        let RequestEnvelope { id, body } = env;
        self.stats.requests += 1;
        tracing::debug!(id, request = body.name(), "field link request");
        match body {
            Request::Hello(hello) => {
                // A new Hello ends the session: streams end, a new nonce.
                self.end_stream(StreamEnd::Cancelled).await?;
                self.end_logs(StreamEnd::Cancelled).await?;
                if !link::is_compatible(hello.protocol_version) {
                    self.open = false;
                    self.challenge = None;
                    self.authenticated = None;
                    tracing::warn!(client = %hello.client, client_version = %link::version_string(hello.protocol_version), "field link: Hello of another protocol version refused");
                    let message = format!(
                        "this node speaks field-link {}, the client {}: use a field-tools of major version {}",
                        link::version_string(PROTOCOL_VERSION),
                        link::version_string(hello.protocol_version),
                        link::protocol_major(PROTOCOL_VERSION)
                    );
                    return self.send(id, error(ErrorCode::BadVersion, message)).await;
                }
                self.open = true;
                let mut session_nonce = [0u8; link::NONCE_LEN];
                rand::rng().fill_bytes(&mut session_nonce);
                self.nonce = session_nonce;
                self.challenge = None;
                self.authenticated = None;
                let view = self.view.clone();
                self.push.release(&view);
                tracing::info!(client = %hello.client, client_version = %link::version_string(hello.protocol_version), "field link session opened");
                let reply = HelloReply {
                    protocol_version: PROTOCOL_VERSION,
                    node_id: self.view.status.node_id.clone(),
                    firmware_version: env!("CARGO_PKG_VERSION").into(),
                    session_nonce,
                    auth_required_for_reads: self.view.reads_need_auth,
                    idle_timeout_ms: u32::try_from(self.limits.idle_timeout.as_millis())
                        .unwrap_or(u32::MAX),
                };
                self.send(id, Response::Hello(reply)).await
            }
            Request::Credit { .. } if !self.open => Ok(()),
            _ if !self.open => {
                self.send(
                    id,
                    error(ErrorCode::Unauthenticated, "no session: send Hello first"),
                )
                .await
            }
            Request::Ping => self.send(id, Response::Pong).await,
            Request::AuthChallenge => {
                let mut challenge = [0u8; link::NONCE_LEN];
                rand::rng().fill_bytes(&mut challenge);
                self.challenge = Some(challenge);
                self.send(id, Response::AuthChallenge { challenge }).await
            }
            Request::AuthProve(proof) => {
                let reply = match self.check_proof(&proof) {
                    Ok(()) => {
                        self.authenticated = Some(proof.public_key);
                        tracing::info!(peer = %self.peer, key = %hex(&proof.public_key), "field link: session authenticated");
                        Response::Authenticated
                    }
                    Err(why) => {
                        self.stats.auth_refusals += 1;
                        let link_total = self
                            .view
                            .shared
                            .auth_refusals
                            .fetch_add(1, Ordering::Relaxed)
                            + 1;
                        tracing::warn!(
                            peer = %self.peer,
                            key = %hex(&proof.public_key),
                            reason = why.code(),
                            session_refusals = self.stats.auth_refusals,
                            link_refusals = link_total,
                            "field link: authentication refused"
                        );
                        let message = match why {
                            AuthRefusal::NoChallenge => "no challenge outstanding in this session: send AuthChallenge first (a challenge is valid for one AuthProve)".to_string(),
                            AuthRefusal::UntrustedKey if self.view.trusted_keys.is_empty() => "this node trusts no technician key ([fieldlink] technician_keys is empty)".to_string(),
                            AuthRefusal::UntrustedKey => format!("the key {} is not one this node trusts ([fieldlink] technician_keys)", hex(&proof.public_key)),
                            AuthRefusal::BadSignature => "the signature does not verify for this session's nonce and challenge".to_string(),
                        };
                        error(ErrorCode::BadSignature, message)
                    }
                };
                self.send(id, reply).await
            }
            Request::Credit { stream, items } => {
                if let Some(s) = self.stream.as_mut().filter(|s| s.id == stream) {
                    s.credit = s.credit.saturating_add(items);
                    s.next = s.next.min(Instant::now());
                }
                if let Some(s) = self.logs.as_mut().filter(|s| s.id == stream) {
                    s.credit = s.credit.saturating_add(items);
                    s.next = s.next.min(Instant::now());
                }
                Ok(())
            }
            Request::Cancel { stream } => {
                if self.stream.as_ref().is_some_and(|s| s.id == stream) {
                    self.end_stream(StreamEnd::Cancelled).await?;
                }
                if self.logs.as_ref().is_some_and(|s| s.id == stream) {
                    self.end_logs(StreamEnd::Cancelled).await?;
                }
                self.send(id, Response::Done).await
            }
            Request::Events(req) => {
                if let Some(r) = self.refuse_read(&Request::Events(req.clone())) {
                    return self.send(id, r).await;
                }
                if self.stream.is_some() {
                    return self
                        .send(
                            id,
                            error(
                                ErrorCode::Busy,
                                "an events stream is already open in this session: cancel it first",
                            ),
                        )
                        .await;
                }
                if self.logs.as_ref().is_some_and(|s| s.id == id) {
                    let message = "this request id is already used by the open log stream";
                    return self
                        .send(id, error(ErrorCode::InvalidArgument, message))
                        .await;
                }
                tracing::info!(id, after_id = ?req.after_id, since_ms = ?req.since_ms, limit = ?req.limit, follow = req.follow, "field link: events stream opened");
                self.stream = Some(Stream {
                    id,
                    cursor: req.after_id,
                    credit: req.credit,
                    sent: 0,
                    req,
                    next: Instant::now(),
                });
                // A stream with no credit and nothing to wait for.
                if self.stream.as_ref().is_some_and(|s| s.req.limit == Some(0)) {
                    self.end_stream(StreamEnd::LimitReached).await?;
                }
                Ok(())
            }
            Request::Reboot => {
                if let Some(r) = self.refuse_read(&Request::Reboot) {
                    return self.send(id, r).await;
                }
                let after_ms = super::reboot::REBOOT_DELAY_MS;
                // The reply first: the node stops only once it is sent.
                self.send(id, Response::Rebooting { after_ms }).await?;
                tracing::warn!(
                    peer = %self.peer,
                    key = %self.authenticated.map(|k| hex(&k)).unwrap_or_default(),
                    after_ms,
                    exit_code = super::reboot::REBOOT_EXIT_CODE,
                    "field link: reboot asked by the technician; the node stops cleanly and exits to be restarted"
                );
                self.view
                    .reboot
                    .request_after(Duration::from_millis(after_ms.into()));
                Ok(())
            }
            Request::LogsTail(req) => {
                if let Some(r) = self.refuse_read(&Request::LogsTail(req.clone())) {
                    return self.send(id, r).await;
                }
                if self.logs.is_some() || self.stream.as_ref().is_some_and(|s| s.id == id) {
                    let message = if self.logs.is_some() {
                        "a log stream is already open in this session: cancel it first"
                    } else {
                        "this request id is already used by the open events stream"
                    };
                    let code = if self.logs.is_some() {
                        ErrorCode::Busy
                    } else {
                        ErrorCode::InvalidArgument
                    };
                    return self.send(id, error(code, message)).await;
                }
                tracing::info!(
                    id,
                    lines = req.lines,
                    follow = req.follow,
                    level = req.level.name(),
                    "field link: log stream opened"
                );
                self.logs = Some(LogStream::open(id, &req, &self.view.logs));
                Ok(())
            }
            Request::BundlePush(step) => {
                if let Some(r) = self.refuse_read(&Request::BundlePush(step.clone())) {
                    return self.send(id, r).await;
                }
                let view = self.view.clone();
                let reply = push::step(&view, &mut self.push, step).await;
                self.send(id, reply).await
            }
            other => {
                let reply = match self.refuse_read(&other) {
                    Some(r) => r,
                    None => match timeout(work_timeout(&other), self.view.answer(&other)).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::warn!(
                                id,
                                request = other.name(),
                                "field link: request timed out on the node"
                            );
                            error(
                                ErrorCode::Internal,
                                format!("`{}` timed out on the node", other.name()),
                            )
                        }
                    },
                };
                self.send(id, reply).await
            }
        }
    }

    /// Checks an `AuthProve` against the outstanding challenge, which it
    /// uses up whatever the outcome.
    fn check_proof(&mut self, proof: &AuthProve) -> Result<(), AuthRefusal> {
        let challenge = self.challenge.take().ok_or(AuthRefusal::NoChallenge)?;
        if !self.view.trusted_keys.contains(&proof.public_key) {
            return Err(AuthRefusal::UntrustedKey);
        }
        let signed = link::auth_signed_bytes(
            &self.nonce,
            &challenge,
            &proof.public_key,
            &self.view.status.node_id,
        );
        // Keys were validated with the configuration; a weak or invalid
        // point cannot be trusted anyway.
        let key = ed25519_dalek::VerifyingKey::from_bytes(&proof.public_key)
            .map_err(|_| AuthRefusal::UntrustedKey)?;
        let signature = ed25519_dalek::Signature::from_bytes(&proof.signature.0);
        key.verify_strict(&signed, &signature)
            .map_err(|_| AuthRefusal::BadSignature)
    }

    /// The error reply for a request this session does not act on, if any.
    fn refuse_read(&self, req: &Request) -> Option<Response> {
        if self.authenticated.is_none() && req.needs_auth(self.view.reads_need_auth) {
            let message = if req.access() == Access::Control {
                format!(
                    "`{}` changes the node: it needs an authenticated session (AuthChallenge, then AuthProve with a technician key the node trusts)",
                    req.name()
                )
            } else {
                "this node requires an authenticated session for reads ([fieldlink] reads_need_auth): authenticate first (AuthChallenge, AuthProve)".to_string()
            };
            return Some(error(ErrorCode::Unauthenticated, message));
        }
        None
    }

    /// Sends the stream's last batch (no events) and closes it.
    async fn end_stream(&mut self, end: StreamEnd) -> Result<(), SessionEnd> {
        let Some(s) = self.stream.take() else {
            return Ok(());
        };
        tracing::info!(id = s.id, sent = s.sent, end = ?end, "field link: events stream ended");
        let batch = EventBatch {
            events: Vec::new(),
            resume_after_id: s.cursor,
            end: Some(end),
        };
        self.send(s.id, Response::EventBatch(batch)).await
    }

    /// Sends the log stream's last batch and closes it.
    async fn end_logs(&mut self, end: StreamEnd) -> Result<(), SessionEnd> {
        let Some(mut s) = self.logs.take() else {
            return Ok(());
        };
        tracing::info!(id = s.id, sent = s.sent, end = ?end, "field link: log stream ended");
        let batch = s.end_batch(end);
        self.send(s.id, Response::LogBatch(batch)).await
    }

    /// Sends the log stream's next batch, if it has one.
    async fn pump_logs(&mut self) -> Result<(), SessionEnd> {
        let poll = self.limits.follow_poll;
        let ring = self.view.logs.clone();
        let Some(s) = self.logs.as_mut() else {
            return Ok(());
        };
        let Some(batch) = s.poll(&ring, poll) else {
            return Ok(());
        };
        let id = s.id;
        self.stats.log_lines_sent += batch.lines.len() as u64;
        if batch.end.is_some() {
            tracing::info!(id, sent = s.sent, end = ?batch.end, "field link: log stream ended");
            self.logs = None;
        }
        self.send(id, Response::LogBatch(batch)).await
    }

    /// Reads and sends the open stream's next batch.
    async fn pump(&mut self) -> Result<(), SessionEnd> {
        let Some(s) = self.stream.as_ref() else {
            return Ok(());
        };
        let left = s
            .req
            .limit
            .map_or(u64::MAX, |l| u64::from(l).saturating_sub(s.sent));
        let max_items = usize::try_from(left.min(u64::from(s.credit))).unwrap_or(usize::MAX);
        let filter = Filter::new(s.req.since_ms, max_items);
        let (id, after) = (s.id, s.cursor);
        let store = self.view.status.store.clone();
        let read = timeout(
            Duration::from_millis(u64::from(link::REPLY_TIMEOUT_MS) * 4 / 5),
            tokio::task::spawn_blocking(move || read_batch(&store, after, filter)),
        )
        .await;
        let batch = match read {
            Ok(Ok(Ok(b))) => b,
            failed => {
                let why = match failed {
                    Ok(Ok(Err(e))) => e.to_string(),
                    Ok(Err(e)) => e.to_string(),
                    _ => "the store did not answer in time".into(),
                };
                tracing::error!(id, error = %why, "field link: events stream failed");
                self.stream = None;
                return self
                    .send(
                        id,
                        error(ErrorCode::Internal, format!("reading the store: {why}")),
                    )
                    .await;
            }
        };
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        let n = batch.events.len() as u64;
        s.cursor = batch.resume.max(s.cursor);
        s.credit = s
            .credit
            .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
        s.sent += n;
        let end = if s.req.limit.is_some_and(|l| s.sent >= u64::from(l)) {
            Some(StreamEnd::LimitReached)
        } else if batch.caught_up && !s.req.follow {
            Some(StreamEnd::Complete)
        } else {
            None
        };
        s.next = if batch.caught_up {
            Instant::now() + self.limits.follow_poll
        } else {
            Instant::now()
        };
        let resume_after_id = s.cursor;
        if end.is_some() {
            tracing::info!(id, sent = s.sent, end = ?end, "field link: events stream ended");
            self.stream = None;
        }
        if n > 0 || end.is_some() {
            self.stats.events_sent += n;
            let reply = Response::EventBatch(EventBatch {
                events: batch.events,
                resume_after_id,
                end,
            });
            self.send(id, reply).await?;
        }
        Ok(())
    }
}
