//! One streamed request (events, logs) from the client's side: its replies
//! picked out by id, keep-alive pings while a follow stream is quiet, a
//! refusal as an error, and credit granted again when half is spent.

use std::time::Duration;

use messages::link::{self, Request, Response};
use tokio::time::Instant;

use super::client::{Client, LinkError};

/// An open stream.
pub struct Stream {
    id: u32,
    follow: bool,
    request: &'static str,
    window: u32,
    credit: u32,
    ping: Option<(u32, Instant)>,
}

impl Stream {
    /// Sends `body` (which grants `window` items of credit) and returns the
    /// stream; `request` names it in errors.
    pub async fn open(
        client: &mut Client,
        body: Request,
        follow: bool,
        window: u32,
        request: &'static str,
    ) -> Result<Stream, LinkError> {
        let id = client.send(body).await?;
        Ok(Stream {
            id,
            follow,
            request,
            window,
            credit: window,
            ping: None,
        })
    }

    /// The next reply to this stream. A follow stream pings the node when
    /// it has been quiet for the keep-alive interval and fails only when a
    /// ping goes unanswered; a refusal is [`LinkError::Refused`].
    pub async fn next(&mut self, client: &mut Client) -> Result<Response, LinkError> {
        let reply_timeout = Duration::from_millis(link::REPLY_TIMEOUT_MS.into());
        let keepalive = Duration::from_millis(link::KEEPALIVE_INTERVAL_MS.into());
        loop {
            let deadline = match (self.follow, self.ping) {
                (false, _) => Instant::now() + reply_timeout,
                (true, Some((_, sent))) => sent + reply_timeout,
                (true, None) => Instant::now() + keepalive,
            };
            let Some(r) = client.next(deadline).await? else {
                if self.follow && self.ping.is_none() {
                    self.ping = Some((client.send(Request::Ping).await?, Instant::now()));
                    continue;
                }
                return Err(LinkError::Timeout {
                    request: if self.ping.is_some() {
                        "ping"
                    } else {
                        self.request
                    },
                    timeout_ms: link::REPLY_TIMEOUT_MS,
                });
            };
            if self.ping.is_some_and(|(p, _)| p == r.id) {
                self.ping = None;
                continue;
            }
            if r.id != self.id {
                continue;
            }
            return match r.body {
                Response::Error(reply) => Err(LinkError::Refused {
                    request: self.request,
                    reply,
                }),
                body => Ok(body),
            };
        }
    }

    /// Counts `items` received and grants the window again once half of it
    /// is spent.
    pub async fn consumed(&mut self, client: &mut Client, items: usize) -> Result<(), LinkError> {
        self.credit = self
            .credit
            .saturating_sub(u32::try_from(items).unwrap_or(u32::MAX));
        if self.credit < self.window / 2 {
            client
                .send(Request::Credit {
                    stream: self.id,
                    items: self.window,
                })
                .await?;
            self.credit += self.window;
        }
        Ok(())
    }

    /// The error for a reply this stream does not expect.
    pub fn unexpected(&self, reply: &Response) -> LinkError {
        LinkError::Unexpected {
            request: self.request,
            reply: reply.name(),
        }
    }
}
