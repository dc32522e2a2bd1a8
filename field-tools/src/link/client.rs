//! The client's side of a session: frames out, frames in, the Hello with
//! its retries, and one request at a time with the protocol's timeouts.

use std::collections::VecDeque;
use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use messages::link::{
    self, AuthProve, ErrorCode, ErrorReply, FrameDecoder, Hello, HelloReply, PROTOCOL_VERSION,
    Request, RequestEnvelope, Response, ResponseEnvelope,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use super::transport::{Io, OpenError, Target, open};

/// Why a link command failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The node could not be reached.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// No Hello reply after the retries.
    #[error("no answer from the node on {target} within {waited_s} s: {hint}")]
    NoAnswer {
        /// Where.
        target: String,
        /// How long, seconds.
        waited_s: u64,
        /// What to check.
        hint: &'static str,
    },
    /// The node speaks another major protocol version.
    #[error("the node speaks another protocol version: {0}")]
    Version(String),
    /// No reply to a request in time.
    #[error("no reply to `{request}` within {timeout_ms} ms")]
    Timeout {
        /// The request.
        request: &'static str,
        /// Its timeout.
        timeout_ms: u32,
    },
    /// The connection ended or failed.
    #[error("the connection to the node was lost: {0}")]
    Lost(String),
    /// The node answered with an error.
    #[error("the node refused `{request}`: {} ({})", reply.message, reply.code)]
    Refused {
        /// The request.
        request: &'static str,
        /// Its error reply.
        reply: ErrorReply,
    },
    /// A reply of the wrong kind (a bug on one side).
    #[error("unexpected reply to `{request}`: {reply}")]
    Unexpected {
        /// The request.
        request: &'static str,
        /// The reply's name.
        reply: &'static str,
    },
    /// The node needs an authenticated session for this request and no
    /// key was given.
    #[error(
        "`{request}`: this command needs --key with a technician key the node trusts ({message})"
    )]
    NeedsKey {
        /// The request.
        request: &'static str,
        /// The node's message.
        message: String,
    },
    /// The node refused the technician key's proof.
    #[error("the node refused the technician key {key}: {message}")]
    AuthRefused {
        /// The public key, hex.
        key: String,
        /// The node's message (an untrusted key, a bad signature).
        message: String,
    },
    /// The technician key file cannot be used.
    #[error("--key: {0}")]
    Key(String),
    /// Neither `--socket` nor `--port` was given.
    #[error("say where the node is: --socket PATH, or --port DEV (or --port auto)")]
    NoTarget,
    /// `--port auto` found no single USB serial device, or the ports
    /// cannot be listed.
    #[error(transparent)]
    Ports(#[from] super::ports::PortsError),
    /// A pushed bundle was sent whole but the reply to its `Commit` was
    /// lost: the node may have taken it.
    #[error(
        "{0}; the bundle was sent whole, but the node's answer did not arrive: `field-tools link logs` tells whether it queued the bundle"
    )]
    CommitUnanswered(String),
    /// A message that cannot be sent (too large).
    #[error("cannot send `{request}`: {reason}")]
    Encode {
        /// The request.
        request: &'static str,
        /// Why.
        reason: String,
    },
}

impl LinkError {
    /// The exit code: 1 when the node answered with a refusal, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LinkError::Refused { .. }
            | LinkError::NeedsKey { .. }
            | LinkError::AuthRefused { .. } => 1,
            _ => 2,
        }
    }

    /// True when the connection itself failed (worth reconnecting).
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            LinkError::Lost(_)
                | LinkError::Timeout { .. }
                | LinkError::NoAnswer { .. }
                | LinkError::Open(_)
        )
    }
}

/// An open session with a node.
pub struct Client {
    io: Box<dyn Io>,
    decoder: FrameDecoder<ResponseEnvelope>,
    pending: VecDeque<ResponseEnvelope>,
    next_id: u32,
    /// The node's Hello reply.
    pub hello: HelloReply,
}

fn hello_body() -> Request {
    Request::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        client: format!(
            "field-tools {} ({})",
            env!("CARGO_PKG_VERSION"),
            std::env::var("USER").unwrap_or_else(|_| "unknown user".into())
        ),
    })
}

/// Connects, opens a session and, with a technician key, authenticates it.
pub async fn connect_as(target: &Target, key: Option<&SigningKey>) -> Result<Client, LinkError> {
    let mut c = connect(target).await?;
    if let Some(key) = key {
        c.authenticate(key).await?;
    }
    Ok(c)
}

/// Connects and opens a session (Hello, sent three times at most).
pub async fn connect(target: &Target) -> Result<Client, LinkError> {
    let io = open(target).await?;
    let mut c = Client {
        io,
        decoder: FrameDecoder::new(),
        pending: VecDeque::new(),
        next_id: 1,
        hello: HelloReply {
            protocol_version: 0,
            node_id: String::new(),
            firmware_version: String::new(),
            session_nonce: [0; link::NONCE_LEN],
            auth_required_for_reads: false,
            idle_timeout_ms: 0,
        },
    };
    // Ends whatever partial frame the node holds.
    c.write(&[0]).await?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(c.send(hello_body()).await?);
        let deadline = Instant::now() + Duration::from_millis(link::HELLO_TIMEOUT_MS.into());
        loop {
            match c.next(deadline).await? {
                None => break,
                // A reply to any of our Hellos (an earlier one may answer late).
                Some(r) if ids.contains(&r.id) => match r.body {
                    Response::Hello(h) => {
                        if !link::is_compatible(h.protocol_version) {
                            return Err(LinkError::Version(format!(
                                "the node speaks field-link {}, this field-tools {}: use a field-tools of the node's major version",
                                link::version_string(h.protocol_version),
                                link::version_string(PROTOCOL_VERSION)
                            )));
                        }
                        c.hello = h;
                        return Ok(c);
                    }
                    Response::Error(e) if e.code == ErrorCode::BadVersion => {
                        return Err(LinkError::Version(e.message));
                    }
                    Response::Error(e) => {
                        return Err(LinkError::Refused {
                            request: "hello",
                            reply: e,
                        });
                    }
                    other => {
                        return Err(LinkError::Unexpected {
                            request: "hello",
                            reply: other.name(),
                        });
                    }
                },
                Some(_) => {}
            }
        }
    }
    Err(LinkError::NoAnswer {
        target: target.to_string(),
        waited_s: 3 * u64::from(link::HELLO_TIMEOUT_MS) / 1000,
        hint: match target {
            Target::Port(..) => {
                "check the baud rate (--baud and the node's [fieldlink] baud) and the cable (TX to RX, RX to TX, ground)"
            }
            Target::Socket(_) => "the node accepted the connection but does not answer",
        },
    })
}

impl Client {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let t = Duration::from_millis(link::REPLY_TIMEOUT_MS.into());
        match tokio::time::timeout(t, async {
            self.io.write_all(bytes).await?;
            self.io.flush().await
        })
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(LinkError::Lost(e.to_string())),
            Err(_) => Err(LinkError::Lost(
                "the node does not take what is sent".into(),
            )),
        }
    }

    /// Sends a request with a new id; returns the id.
    pub async fn send(&mut self, body: Request) -> Result<u32, LinkError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let request = body.name();
        let frame =
            link::encode_frame(&RequestEnvelope { id, body }).map_err(|e| LinkError::Encode {
                request,
                reason: e.to_string(),
            })?;
        self.write(&frame).await?;
        Ok(id)
    }

    /// The next response, or `None` at the deadline. Frames that do not
    /// decode are dropped (the request's timeout finds a lost reply).
    pub async fn next(&mut self, deadline: Instant) -> Result<Option<ResponseEnvelope>, LinkError> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Ok(Some(r));
            }
            let n = match timeout_at(deadline, self.io.read(&mut buf)).await {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => return Err(LinkError::Lost("the node closed the connection".into())),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(LinkError::Lost(e.to_string())),
            };
            self.pending
                .extend(self.decoder.feed(&buf[..n]).into_iter().flatten());
        }
    }

    /// Authenticates the session with the technician's key: asks for a
    /// challenge and proves it holds `key` (`docs/field-link.md`,
    /// "Authentication"). A refusal is [`LinkError::AuthRefused`].
    pub async fn authenticate(&mut self, key: &SigningKey) -> Result<(), LinkError> {
        let challenge = match self.request(Request::AuthChallenge).await? {
            Response::AuthChallenge { challenge } => challenge,
            other => {
                return Err(LinkError::Unexpected {
                    request: "auth_challenge",
                    reply: other.name(),
                });
            }
        };
        let public_key = key.verifying_key().to_bytes();
        let signed = link::auth_signed_bytes(
            &self.hello.session_nonce,
            &challenge,
            &public_key,
            &self.hello.node_id,
        );
        let proof = AuthProve {
            public_key,
            signature: link::Signature(key.sign(&signed).to_bytes()),
        };
        match self.request(Request::AuthProve(proof)).await {
            Ok(Response::Authenticated) => Ok(()),
            Ok(other) => Err(LinkError::Unexpected {
                request: "auth_prove",
                reply: other.name(),
            }),
            Err(LinkError::Refused { reply, .. }) => Err(LinkError::AuthRefused {
                key: public_key.iter().map(|b| format!("{b:02x}")).collect(),
                message: format!("{} ({})", reply.message, reply.code),
            }),
            Err(e) => Err(e),
        }
    }

    /// Sends a request and waits for its reply (replies to other ids are
    /// dropped); an error reply is [`LinkError::Refused`].
    pub async fn request(&mut self, body: Request) -> Result<Response, LinkError> {
        let request = body.name();
        let timeout_ms = body.reply_timeout_ms().unwrap_or(link::REPLY_TIMEOUT_MS);
        let id = self.send(body).await?;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms.into());
        loop {
            match self.next(deadline).await? {
                None => {
                    return Err(LinkError::Timeout {
                        request,
                        timeout_ms,
                    });
                }
                Some(r) if r.id == id => {
                    return match r.body {
                        Response::Error(reply) => Err(LinkError::Refused { request, reply }),
                        other => Ok(other),
                    };
                }
                Some(_) => {}
            }
        }
    }
}
