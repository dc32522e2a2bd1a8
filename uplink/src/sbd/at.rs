//! The AT command layer: send a command, read lines until a final result
//! code, every exchange under a timeout; binary transfers with the 2-byte
//! big-endian sum checksum of the SBD commands. Knows nothing about what the
//! commands mean (that is [`super::modem`]).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Why an AT exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum AtError {
    /// Reading or writing the serial port failed.
    #[error("serial I/O during {command}: {source}")]
    Io {
        /// The command being run.
        command: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The serial port was closed by the other end.
    #[error("serial port closed during {command}")]
    Closed {
        /// The command being run.
        command: String,
    },
    /// No final result code within the timeout.
    #[error("no answer to {command} within {timeout:?}")]
    Timeout {
        /// The command being run.
        command: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The modem answered `ERROR`.
    #[error("modem answered ERROR to {command}")]
    Error {
        /// The command.
        command: String,
    },
    /// The modem answered something this layer cannot use.
    #[error("unexpected answer to {command}: {line:?}")]
    Unexpected {
        /// The command.
        command: String,
        /// The line, cut to 80 characters.
        line: String,
    },
    /// A binary transfer from the modem had a wrong checksum.
    #[error("checksum mismatch in {command}: computed {computed:#06x}, received {received:#06x}")]
    Checksum {
        /// The command.
        command: String,
        /// Checksum of the bytes received.
        computed: u16,
        /// Checksum the modem sent.
        received: u16,
    },
}

impl AtError {
    /// True for a timeout: the modem may have stopped answering.
    pub fn is_timeout(&self) -> bool {
        matches!(self, AtError::Timeout { .. })
    }
}

/// The SBD checksum: the low 16 bits of the sum of all bytes.
pub fn checksum(bytes: &[u8]) -> u16 {
    bytes
        .iter()
        .fold(0u16, |acc, &b| acc.wrapping_add(u16::from(b)))
}

fn cut(line: &str) -> String {
    line.chars().take(80).collect()
}

/// The most bytes kept while waiting for a line end; a modem that sends an
/// endless line without CR/LF is not a modem.
const MAX_LINE: usize = 1024;

/// An AT command channel over any byte stream (a serial port, a pty, a test
/// pipe).
pub struct AtPort<S> {
    io: S,
    buf: Vec<u8>,
    /// True when the modem echoes commands (`ATE1`, its power-up default).
    echo: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AtPort<S> {
    /// Wraps a stream. Assumes echo is on (the modem's power-up default) until
    /// [`AtPort::set_echo`] says otherwise.
    pub fn new(io: S) -> Self {
        AtPort {
            io,
            buf: Vec::with_capacity(512),
            echo: true,
        }
    }

    /// Records whether the modem echoes commands (after `ATE0`/`ATE1`).
    pub fn set_echo(&mut self, echo: bool) {
        self.echo = echo;
    }

    /// Drops whatever the modem sent that nobody asked for (late answers to a
    /// timed-out command, unsolicited lines) so it cannot be taken for the
    /// answer to the next command.
    pub async fn discard_pending(&mut self) {
        self.buf.clear();
        let mut scratch = [0u8; 256];
        loop {
            match tokio::time::timeout(Duration::ZERO, self.io.read(&mut scratch)).await {
                Ok(Ok(n)) if n > 0 => continue,
                _ => break,
            }
        }
    }

    async fn fill(
        &mut self,
        command: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), AtError> {
        let mut scratch = [0u8; 256];
        match tokio::time::timeout_at(deadline, self.io.read(&mut scratch)).await {
            Err(_) => Err(AtError::Timeout {
                command: command.to_owned(),
                timeout,
            }),
            Ok(Err(source)) => Err(AtError::Io {
                command: command.to_owned(),
                source,
            }),
            Ok(Ok(0)) => Err(AtError::Closed {
                command: command.to_owned(),
            }),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&scratch[..n]);
                Ok(())
            }
        }
    }

    /// Reads the next non-empty line (CR and/or LF terminated).
    async fn read_line(
        &mut self,
        command: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<String, AtError> {
        loop {
            // Skip line ends left before the line.
            let start = self.buf.iter().position(|&b| b != b'\r' && b != b'\n');
            match start {
                None => self.buf.clear(),
                Some(s) => {
                    self.buf.drain(..s);
                    if let Some(end) = self.buf.iter().position(|&b| b == b'\r' || b == b'\n') {
                        let line: Vec<u8> = self.buf.drain(..end).collect();
                        return Ok(String::from_utf8_lossy(&line).trim().to_owned());
                    }
                    if self.buf.len() > MAX_LINE {
                        let line = String::from_utf8_lossy(&self.buf).into_owned();
                        self.buf.clear();
                        return Err(AtError::Unexpected {
                            command: command.to_owned(),
                            line: cut(&line),
                        });
                    }
                }
            }
            self.fill(command, deadline, timeout).await?;
        }
    }

    async fn read_exact(
        &mut self,
        n: usize,
        command: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Vec<u8>, AtError> {
        while self.buf.len() < n {
            self.fill(command, deadline, timeout).await?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn write(&mut self, bytes: &[u8], command: &str) -> Result<(), AtError> {
        let io = |source| AtError::Io {
            command: command.to_owned(),
            source,
        };
        self.io.write_all(bytes).await.map_err(io)?;
        self.io.flush().await.map_err(io)
    }

    /// Sends `command` (without `AT`'s line end) and skips its echo.
    async fn send(
        &mut self,
        command: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(), AtError> {
        self.discard_pending().await;
        self.write(format!("{command}\r").as_bytes(), command)
            .await?;
        if self.echo {
            // The echo is the command itself; tolerate a modem that already
            // turned echo off (then the first line is an answer: keep it).
            let line = self.read_line(command, deadline, timeout).await?;
            if !line.eq_ignore_ascii_case(command) {
                let mut back = line.into_bytes();
                back.extend_from_slice(b"\r\n");
                back.extend_from_slice(&self.buf);
                self.buf = back;
            }
        }
        Ok(())
    }

    /// Reads lines until `OK` (returns the lines before it) or `ERROR`.
    async fn until_final(
        &mut self,
        command: &str,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Vec<String>, AtError> {
        let mut lines = Vec::new();
        loop {
            let line = self.read_line(command, deadline, timeout).await?;
            match line.as_str() {
                "OK" => return Ok(lines),
                "ERROR" => {
                    return Err(AtError::Error {
                        command: command.to_owned(),
                    });
                }
                // Ring alerts are unsolicited; the session reports MT anyway.
                "SBDRING" => continue,
                _ => lines.push(line),
            }
        }
    }

    /// Runs a command and returns the information lines before its `OK`.
    pub async fn command(
        &mut self,
        command: &str,
        timeout: Duration,
    ) -> Result<Vec<String>, AtError> {
        let deadline = Instant::now() + timeout;
        self.send(command, deadline, timeout).await?;
        self.until_final(command, deadline, timeout).await
    }

    /// `AT+SBDWB=<len>`: waits for `READY`, sends the payload and its
    /// checksum, and returns the modem's status digit (0 = written, 1 =
    /// timeout, 2 = bad checksum, 3 = bad size) after the final `OK`.
    pub async fn write_binary(&mut self, payload: &[u8], timeout: Duration) -> Result<u8, AtError> {
        let command = format!("AT+SBDWB={}", payload.len());
        let deadline = Instant::now() + timeout;
        self.send(&command, deadline, timeout).await?;
        let first = self.read_line(&command, deadline, timeout).await?;
        let status_line = if first == "READY" {
            let mut frame = Vec::with_capacity(payload.len() + 2);
            frame.extend_from_slice(payload);
            frame.extend_from_slice(&checksum(payload).to_be_bytes());
            self.write(&frame, &command).await?;
            self.read_line(&command, deadline, timeout).await?
        } else if first == "ERROR" {
            return Err(AtError::Error { command });
        } else {
            // A size the modem refuses is answered at once, without READY.
            first
        };
        let status = match status_line.as_str() {
            "0" => 0,
            "1" => 1,
            "2" => 2,
            "3" => 3,
            other => {
                return Err(AtError::Unexpected {
                    command,
                    line: cut(other),
                });
            }
        };
        self.until_final(&command, deadline, timeout).await?;
        Ok(status)
    }

    /// `AT+SBDRB`: reads the MT buffer (2-byte length, payload, 2-byte
    /// checksum, then `OK`) and verifies the checksum.
    pub async fn read_binary(&mut self, timeout: Duration) -> Result<Vec<u8>, AtError> {
        let command = "AT+SBDRB";
        let deadline = Instant::now() + timeout;
        self.send(command, deadline, timeout).await?;
        // An MT message is at most 270 bytes, so the length's first byte is
        // 0 or 1 and never a line end: skip line ends before it.
        loop {
            let head = self.read_exact(1, command, deadline, timeout).await?;
            if head[0] != b'\r' && head[0] != b'\n' {
                self.buf.insert(0, head[0]);
                break;
            }
        }
        let len_bytes = self.read_exact(2, command, deadline, timeout).await?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        if len > messages::command::SBD_MT_MAX {
            self.discard_pending().await;
            return Err(AtError::Unexpected {
                command: command.to_owned(),
                line: format!("MT length {len} exceeds {}", messages::command::SBD_MT_MAX),
            });
        }
        let body = self.read_exact(len + 2, command, deadline, timeout).await?;
        let (payload, sum) = body.split_at(len);
        let received = u16::from_be_bytes([sum[0], sum[1]]);
        let computed = checksum(payload);
        self.until_final(command, deadline, timeout).await?;
        if computed != received {
            return Err(AtError::Checksum {
                command: command.to_owned(),
                computed,
                received,
            });
        }
        Ok(payload.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    const T: Duration = Duration::from_secs(2);

    /// Reads one command line from the modem side.
    async fn expect_line(modem: &mut DuplexStream, want: &str) {
        let mut got = Vec::new();
        let mut b = [0u8; 1];
        while modem.read_exact(&mut b).await.is_ok() && b[0] != b'\r' {
            got.push(b[0]);
        }
        assert_eq!(String::from_utf8_lossy(&got), want);
    }

    #[tokio::test]
    async fn echo_info_lines_and_final_codes() {
        let (host, mut modem) = duplex(1024);
        let mut at = AtPort::new(host);
        let serve = async {
            expect_line(&mut modem, "AT+CSQ").await;
            modem
                .write_all(b"AT+CSQ\r\r\n+CSQ:3\r\n\r\nOK\r\n")
                .await
                .unwrap();
            expect_line(&mut modem, "AT+BAD").await;
            modem.write_all(b"AT+BAD\r\r\nERROR\r\n").await.unwrap();
        };
        let run = async {
            let lines = at.command("AT+CSQ", T).await.unwrap();
            let bad = at.command("AT+BAD", T).await;
            (lines, bad)
        };
        let ((lines, bad), ()) = tokio::join!(run, serve);
        assert_eq!(lines, vec!["+CSQ:3".to_string()]);
        assert!(matches!(bad, Err(AtError::Error { .. })));
    }

    #[tokio::test]
    async fn silence_garbage_and_hangup_are_typed_errors() {
        let (host, mut modem) = duplex(4096);
        let mut at = AtPort::new(host);
        at.set_echo(false);
        // No answer at all.
        let r = at.command("AT", Duration::from_millis(50)).await;
        assert!(matches!(r, Err(ref e) if e.is_timeout()), "{r:?}");
        // An endless line without CR/LF.
        let serve = async {
            // The timed-out command's line, then this one's.
            expect_line(&mut modem, "AT").await;
            expect_line(&mut modem, "AT").await;
            modem.write_all(&[b'x'; 2000]).await.unwrap();
        };
        let (r, ()) = tokio::join!(at.command("AT", T), serve);
        assert!(matches!(r, Err(AtError::Unexpected { .. })), "{r:?}");
        let (host2, modem2) = duplex(64);
        drop(modem2);
        let mut at2 = AtPort::new(host2);
        assert!(matches!(
            at2.command("AT", T).await,
            Err(AtError::Io { .. } | AtError::Closed { .. })
        ));
    }

    #[tokio::test]
    async fn sbdrb_checks_length_and_checksum() {
        let (host, mut modem) = duplex(4096);
        let mut at = AtPort::new(host);
        at.set_echo(false);
        let payload = [0x43u8, 1];
        let good = {
            let mut v = vec![0, 2];
            v.extend_from_slice(&payload);
            v.extend_from_slice(&checksum(&payload).to_be_bytes());
            v.extend_from_slice(b"\r\nOK\r\n");
            v
        };
        let mut bad = good.clone();
        bad[5] ^= 1;
        let too_long = [0x01u8, 0x20, 0, 0];
        let serve = async {
            for reply in [&good[..], &bad[..], &too_long[..]] {
                expect_line(&mut modem, "AT+SBDRB").await;
                modem.write_all(reply).await.unwrap();
            }
        };
        let run = async {
            let a = at.read_binary(T).await;
            let b = at.read_binary(T).await;
            let c = at.read_binary(T).await;
            (a, b, c)
        };
        let ((a, b, c), ()) = tokio::join!(run, serve);
        assert_eq!(a.unwrap(), payload.to_vec());
        assert!(matches!(b, Err(AtError::Checksum { .. })), "{b:?}");
        assert!(matches!(c, Err(AtError::Unexpected { .. })), "{c:?}");
    }

    #[test]
    fn checksum_is_the_low_16_bits_of_the_sum() {
        assert_eq!(checksum(&[]), 0);
        assert_eq!(checksum(&[1, 2, 3]), 6);
        assert_eq!(checksum(&[0xFF; 300]), (300 * 255 % 65536) as u16);
    }
}
