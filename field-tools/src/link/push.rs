//! `field-tools link push FILE`: sends a signed bundle to the node in
//! chunks (`docs/field-link.md`, "Pushing a bundle"). `Begin` tells how
//! much of it the node already holds, so a push cut by a pulled cable, a
//! lost reply or a killed process goes on from there when run again; within
//! one run, a lost connection is opened again (with a backoff) a few times
//! before the push gives up.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use messages::link::{
    BUNDLE_CHUNK_LEN, BundleKind, BundleOutcome, BundlePush, Request, Response, protocol_minor,
    version_string,
};
use sha2::{Digest, Sha256};

use super::client::{Client, LinkError, connect_as};
use super::events::Backoff;
use super::transport::Target;

/// The first protocol minor version (of major 1) whose nodes serve pushes.
pub const PUSH_MINOR: u8 = 2;

/// Chunk replies in a row that may leave the node's offset where it was
/// (a chunk repeated after a lost reply) before the push gives up.
const MAX_STUCK: u32 = 3;

/// Connections a push makes at most in one run.
pub const MAX_CONNECTIONS: u32 = 5;

/// What the node is sent.
#[derive(Debug, Clone)]
pub struct PushFile {
    /// The whole bundle file.
    pub bytes: Vec<u8>,
    /// What its header says it is.
    pub kind: BundleKind,
    /// Its name and version, for the output.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// SHA-256 of the file.
    pub sha256: [u8; 32],
}

impl PushFile {
    /// Reads a bundle's header (the node checks everything else).
    pub fn parse(bytes: Vec<u8>) -> Result<PushFile, String> {
        let (b, _) = models::bundle::Bundle::parse_header(&bytes)
            .map_err(|e| format!("not a signed bundle: {e}"))?;
        let kind = match b.meta.kind {
            models::bundle::Kind::Model => BundleKind::Model,
            models::bundle::Kind::Settings => BundleKind::Settings,
        };
        Ok(PushFile {
            sha256: Sha256::digest(&bytes).into(),
            kind,
            name: b.meta.name.clone(),
            version: b.meta.version,
            bytes,
        })
    }

    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The node's answer to `Commit`.
    pub outcome: BundleOutcome,
    /// What the node held at the first `Begin` (more than 0: resumed).
    pub resumed_from: u64,
    /// Bytes sent in chunks by this run.
    pub sent: u64,
    /// Connections made.
    pub connections: u32,
}

impl Pushed {
    /// The exit code, as `field-tools bundle publish`'s: 0 installed or on
    /// trial, 1 refused or rolled back, 3 deferred, 4 queued without a
    /// result yet.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            BundleOutcome::Installed { .. } | BundleOutcome::OnTrial { .. } => 0,
            BundleOutcome::Refused { .. } | BundleOutcome::RolledBack { .. } => 1,
            BundleOutcome::Deferred { .. } => 3,
            BundleOutcome::Queued { .. } => 4,
        }
    }
}

/// Sends the chunks from the node's offset to the end, adding the bytes
/// the node wrote to `sent`.
async fn send_from(
    c: &mut Client,
    file: &PushFile,
    mut offset: u64,
    sent: &mut u64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<(), LinkError> {
    // Replies in a row that did not move the node's offset forward.
    let mut stuck = 0;
    while offset < file.len() {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(BUNDLE_CHUNK_LEN).min(file.bytes.len());
        let Some(data) = file.bytes.get(start..end) else {
            return Err(LinkError::Unexpected {
                request: "bundle_chunk",
                reply: "an offset past the bundle",
            });
        };
        let step = BundlePush::Chunk {
            offset,
            data: data.to_vec(),
        };
        offset = match c.request(Request::BundlePush(step)).await? {
            Response::BundleOffset { offset: held } => {
                if held == offset + data.len() as u64 {
                    *sent += data.len() as u64;
                }
                stuck = if held > offset { 0 } else { stuck + 1 };
                if stuck > MAX_STUCK {
                    return Err(LinkError::Unexpected {
                        request: "bundle_chunk",
                        reply: "an offset that does not move forward",
                    });
                }
                held
            }
            other => return Err(unexpected("bundle_chunk", &other)),
        };
        progress(offset, file.len());
    }
    Ok(())
}

fn unexpected(request: &'static str, reply: &Response) -> LinkError {
    LinkError::Unexpected {
        request,
        reply: reply.name(),
    }
}

/// One connection's push: Begin, the chunks, Commit.
async fn attempt(
    target: &Target,
    key: Option<&SigningKey>,
    file: &PushFile,
    force_power: bool,
    resumed_from: &mut Option<u64>,
    sent: &mut u64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<BundleOutcome, LinkError> {
    let mut c = connect_as(target, key).await?;
    if protocol_minor(c.hello.protocol_version) < PUSH_MINOR {
        return Err(LinkError::Version(format!(
            "the node speaks field-link {}, which has no bundle push (1.{PUSH_MINOR} has): update its firmware, or deliver the bundle by its drop folder or MQTT",
            version_string(c.hello.protocol_version)
        )));
    }
    let begin = BundlePush::Begin {
        kind: file.kind,
        total_len: file.len(),
        sha256: file.sha256,
    };
    let held = match c.request(Request::BundlePush(begin)).await? {
        Response::BundleOffset { offset } => offset,
        other => return Err(unexpected("bundle_begin", &other)),
    };
    resumed_from.get_or_insert(held);
    progress(held, file.len());
    send_from(&mut c, file, held, sent, progress).await?;
    match c
        .request(Request::BundlePush(BundlePush::Commit { force_power }))
        .await
    {
        Ok(Response::BundleCommitted(o)) => Ok(o),
        Ok(other) => Err(unexpected("bundle_commit", &other)),
        // The node may have taken the bundle: pushing it again is not the
        // answer.
        Err(e) if e.is_connection() => Err(LinkError::CommitUnanswered(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Pushes `file`, going on from what the node holds, and commits it.
/// `progress(held, total)` follows every reply; `on_retry` hears of every
/// lost connection before the next attempt.
pub async fn push_bundle(
    target: &Target,
    key: Option<&SigningKey>,
    file: &PushFile,
    force_power: bool,
    backoff: Backoff,
    mut progress: impl FnMut(u64, u64),
    mut on_retry: impl FnMut(&LinkError, Duration),
) -> Result<Pushed, LinkError> {
    let mut resumed_from = None;
    let mut sent = 0;
    let mut wait = backoff.min;
    for connections in 1..=MAX_CONNECTIONS {
        match attempt(
            target,
            key,
            file,
            force_power,
            &mut resumed_from,
            &mut sent,
            &mut progress,
        )
        .await
        {
            Ok(outcome) => {
                return Ok(Pushed {
                    outcome,
                    resumed_from: resumed_from.unwrap_or(0),
                    sent,
                    connections,
                });
            }
            Err(e) if e.is_connection() && connections < MAX_CONNECTIONS => {
                on_retry(&e, wait);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(backoff.max);
            }
            Err(e) => return Err(e),
        }
    }
    Err(LinkError::Lost(format!(
        "gave up after {MAX_CONNECTIONS} connections; run the push again: it goes on from what the node holds"
    )))
}

/// A progress line on stderr, drawn over itself (only when stderr is a
/// terminal).
pub struct ProgressLine {
    on: bool,
    last_percent: Option<u64>,
}

impl ProgressLine {
    /// Draws only when `on`.
    pub fn new(on: bool) -> ProgressLine {
        ProgressLine {
            on,
            last_percent: None,
        }
    }

    /// The node holds `held` of `total` bytes.
    pub fn update(&mut self, held: u64, total: u64) {
        if !self.on || total == 0 {
            return;
        }
        let percent = (held.saturating_mul(100) / total).min(100);
        if self.last_percent == Some(percent) {
            return;
        }
        self.last_percent = Some(percent);
        let width = 30;
        let filled = usize::try_from(percent * width / 100).unwrap_or(0);
        eprint!(
            "\r[{}{}] {percent:>3}% {held}/{total} bytes",
            "#".repeat(filled),
            "-".repeat(usize::try_from(width).unwrap_or(0).saturating_sub(filled))
        );
        if held >= total {
            eprintln!();
        }
    }

    /// Ends the line (before another message); the next update draws a
    /// new one.
    pub fn break_line(&mut self) {
        if self.on && self.last_percent.is_some_and(|p| p < 100) {
            eprintln!();
        }
        self.last_percent = None;
    }
}
