//! The Iridium 9603 SBD modem (RockBLOCK) over an [`AtPort`]: initialisation,
//! signal quality, network time, the MO write, `AT+SBDIX` sessions with every
//! status classified, MT reads and buffer clearing.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::at::{AtError, AtPort};

/// The Iridium system time epoch now in force ("era 2"): 2014-05-11
/// 14:23:55 UTC, in ms since the Unix epoch. `AT-MSSTM` counts 90 ms frames
/// from it (vendor AT command reference; the previous epoch, 2007-03-08
/// 03:50:21, was replaced in 2015).
pub const IRIDIUM_EPOCH_UNIX_MS: i64 = 1_399_818_235_000;
/// One Iridium frame, the unit of `AT-MSSTM`.
pub const IRIDIUM_TICK_MS: i64 = 90;

/// Why a modem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModemError {
    /// The AT exchange failed (timeout, I/O, ERROR, garbage, checksum).
    #[error(transparent)]
    At(#[from] AtError),
    /// `AT+SBDWB` answered a status other than 0.
    #[error("MO write refused with status {status} ({})", write_status_text(*status))]
    Write {
        /// 1 = timeout, 2 = bad checksum, 3 = bad size.
        status: u8,
    },
    /// A response line did not parse.
    #[error("cannot parse {what} from {line:?}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The line.
        line: String,
    },
    /// `AT+SBDD` did not clear the buffer.
    #[error("modem could not clear its buffer")]
    Clear,
    /// An MO payload outside 1..=340 bytes.
    #[error("MO payload of {len} bytes (allowed 1..=340)")]
    PayloadSize {
        /// Its length.
        len: usize,
    },
}

impl ModemError {
    /// True when the modem did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ModemError::At(e) if e.is_timeout())
    }
}

fn write_status_text(status: u8) -> &'static str {
    match status {
        1 => "timeout waiting for the payload",
        2 => "checksum mismatch",
        3 => "wrong size",
        _ => "unknown",
    }
}

/// What an MO status from `AT+SBDIX` means for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoClass {
    /// 0..=4: the gateway has the message.
    Success,
    /// 12, 14, 16: retrying will not help (message too large for the gateway,
    /// locked modem, or the ISU is not provisioned/blocked).
    Permanent,
    /// Everything else (10, 11, 13, 15, 17, 18, 19, 32..=38, 64, 65, and
    /// codes not listed): try again later.
    RetryLater,
}

/// Classifies an MO status code.
pub fn classify_mo(status: u8) -> MoClass {
    match status {
        0..=4 => MoClass::Success,
        12 | 14 | 16 => MoClass::Permanent,
        _ => MoClass::RetryLater,
    }
}

/// What a permanent MO failure ([`MoClass::Permanent`]) is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalCause {
    /// 12 (too many segments), 14 (invalid segment size): the gateway
    /// refuses this message, by its size; a smaller one may go.
    Message,
    /// 16: the modem is locked and may make no SBD call at all
    /// (`AT+CULK`); any message would be refused, so its records are not
    /// to blame.
    ModemLocked,
}

/// Why the gateway refused a message for good, for a status that
/// [`classify_mo`] calls [`MoClass::Permanent`]; `None` for any other.
pub fn refusal_cause(status: u8) -> Option<RefusalCause> {
    match status {
        12 | 14 => Some(RefusalCause::Message),
        16 => Some(RefusalCause::ModemLocked),
        _ => None,
    }
}

/// Every field of a `+SBDIX:` response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionResult {
    /// MO status (see [`classify_mo`]).
    pub mo_status: u8,
    /// MO message sequence number (assigned on success).
    pub momsn: u32,
    /// 0 = no MT message, 1 = an MT message was received, 2 = error checking the mailbox.
    pub mt_status: u8,
    /// MT message sequence number.
    pub mtmsn: u32,
    /// Length of the MT message received.
    pub mt_length: u16,
    /// MT messages still waiting at the gateway.
    pub mt_queued: u16,
}

impl SessionResult {
    /// The class of the MO status.
    pub fn mo_class(&self) -> MoClass {
        classify_mo(self.mo_status)
    }

    /// True when an MT message is waiting in the modem's MT buffer.
    pub fn has_mt(&self) -> bool {
        self.mt_status == 1
    }
}

/// Parses `+SBDIX: <MO status>, <MOMSN>, <MT status>, <MTMSN>, <MT length>, <MT queued>`.
pub fn parse_sbdix(line: &str) -> Result<SessionResult, ModemError> {
    let err = || ModemError::Parse {
        what: "+SBDIX",
        line: line.chars().take(80).collect(),
    };
    let rest = line.strip_prefix("+SBDIX:").ok_or_else(err)?;
    let fields: Vec<&str> = rest.split(',').map(str::trim).collect();
    let [mo, momsn, mt, mtmsn, mtlen, queued] = fields.as_slice() else {
        return Err(err());
    };
    Ok(SessionResult {
        mo_status: mo.parse().map_err(|_| err())?,
        momsn: momsn.parse().map_err(|_| err())?,
        mt_status: mt.parse().map_err(|_| err())?,
        mtmsn: mtmsn.parse().map_err(|_| err())?,
        mt_length: mtlen.parse().map_err(|_| err())?,
        mt_queued: queued.parse().map_err(|_| err())?,
    })
}

/// Parses `+CSQ:<0..5>` (signal bars).
pub fn parse_csq(line: &str) -> Result<u8, ModemError> {
    line.strip_prefix("+CSQ:")
        .and_then(|v| v.trim().parse::<u8>().ok())
        .filter(|&v| v <= 5)
        .ok_or_else(|| ModemError::Parse {
            what: "+CSQ",
            line: line.chars().take(80).collect(),
        })
}

/// Parses `-MSSTM: <hex ticks>` into ms since the Unix epoch, or `None` for
/// `-MSSTM: no network service`.
pub fn parse_msstm(line: &str) -> Result<Option<i64>, ModemError> {
    let err = || ModemError::Parse {
        what: "-MSSTM",
        line: line.chars().take(80).collect(),
    };
    let value = line.strip_prefix("-MSSTM:").ok_or_else(err)?.trim();
    if value.eq_ignore_ascii_case("no network service") {
        return Ok(None);
    }
    let ticks = u32::from_str_radix(value, 16).map_err(|_| err())?;
    Ok(Some(
        IRIDIUM_EPOCH_UNIX_MS + i64::from(ticks) * IRIDIUM_TICK_MS,
    ))
}

/// Timeouts of the modem's commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModemTimeouts {
    /// Ordinary commands (`AT`, `AT+CSQ`, `AT+SBDWB`, ...).
    pub command: Duration,
    /// `AT+SBDIX` (a satellite session takes tens of seconds).
    pub session: Duration,
}

impl Default for ModemTimeouts {
    fn default() -> Self {
        ModemTimeouts {
            command: Duration::from_secs(5),
            session: Duration::from_secs(90),
        }
    }
}

/// An SBD modem on a byte stream.
pub struct SbdModem<S> {
    at: AtPort<S>,
    timeouts: ModemTimeouts,
    ring_alerts: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> SbdModem<S> {
    /// Wraps a stream; call [`SbdModem::init`] before anything else.
    pub fn new(io: S, timeouts: ModemTimeouts, ring_alerts: bool) -> Self {
        SbdModem {
            at: AtPort::new(io),
            timeouts,
            ring_alerts,
        }
    }

    fn single<'a>(
        lines: &'a [String],
        prefix: &str,
        what: &'static str,
    ) -> Result<&'a str, ModemError> {
        lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .map(String::as_str)
            .ok_or_else(|| ModemError::Parse {
                what,
                line: lines.join(" | ").chars().take(80).collect(),
            })
    }

    /// `AT`, `ATE0` (echo off), `AT&K0` (no flow control: RockBLOCK wires
    /// only TX/RX), `AT+SBDMTA=0|1` (ring alerts), `AT+SBDD0` (empty MO buffer).
    pub async fn init(&mut self) -> Result<(), ModemError> {
        let t = self.timeouts.command;
        self.at.set_echo(true);
        self.at.command("AT", t).await?;
        self.at.command("ATE0", t).await?;
        self.at.set_echo(false);
        self.at.command("AT&K0", t).await?;
        let mta = if self.ring_alerts {
            "AT+SBDMTA=1"
        } else {
            "AT+SBDMTA=0"
        };
        self.at.command(mta, t).await?;
        self.clear_mo().await
    }

    /// Signal quality, 0..=5 bars (`AT+CSQ`, which takes a few seconds on a
    /// real modem).
    pub async fn signal(&mut self) -> Result<u8, ModemError> {
        let lines = self.at.command("AT+CSQ", self.timeouts.command).await?;
        parse_csq(Self::single(&lines, "+CSQ:", "+CSQ")?)
    }

    /// Iridium network time, ms since the Unix epoch, or `None` when the modem
    /// has no network service yet.
    pub async fn network_time(&mut self) -> Result<Option<i64>, ModemError> {
        let lines = self.at.command("AT-MSSTM", self.timeouts.command).await?;
        parse_msstm(Self::single(&lines, "-MSSTM:", "-MSSTM")?)
    }

    /// Writes the MO buffer (`AT+SBDWB`). The modem keeps one message.
    pub async fn write_mo(&mut self, payload: &[u8]) -> Result<(), ModemError> {
        if payload.is_empty() || payload.len() > messages::pack::SBD_MO_MAX {
            return Err(ModemError::PayloadSize { len: payload.len() });
        }
        match self.at.write_binary(payload, self.timeouts.command).await? {
            0 => Ok(()),
            status => Err(ModemError::Write { status }),
        }
    }

    /// One satellite session (`AT+SBDIX`): sends the MO buffer (if any) and
    /// receives one MT message (if waiting).
    pub async fn session(&mut self) -> Result<SessionResult, ModemError> {
        let lines = self.at.command("AT+SBDIX", self.timeouts.session).await?;
        parse_sbdix(Self::single(&lines, "+SBDIX:", "+SBDIX")?)
    }

    /// Reads the MT buffer (`AT+SBDRB`), checksum verified.
    pub async fn read_mt(&mut self) -> Result<Vec<u8>, ModemError> {
        Ok(self.at.read_binary(self.timeouts.command).await?)
    }

    /// Clears the MO buffer (`AT+SBDD0`).
    pub async fn clear_mo(&mut self) -> Result<(), ModemError> {
        let lines = self.at.command("AT+SBDD0", self.timeouts.command).await?;
        match lines
            .iter()
            .map(String::as_str)
            .find(|l| *l == "0" || *l == "1")
        {
            Some("0") => Ok(()),
            Some(_) => Err(ModemError::Clear),
            None => Err(ModemError::Parse {
                what: "+SBDD0 status",
                line: lines.join(" | ").chars().take(80).collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbdix_every_field() {
        let r = parse_sbdix("+SBDIX: 32, 17, 1, 5, 12, 3").unwrap();
        assert_eq!(
            r,
            SessionResult {
                mo_status: 32,
                momsn: 17,
                mt_status: 1,
                mtmsn: 5,
                mt_length: 12,
                mt_queued: 3
            }
        );
        assert_eq!(r.mo_class(), MoClass::RetryLater);
        assert!(r.has_mt());
        assert!(parse_sbdix("+SBDIX: 0, 1, 0, 0, 0").is_err());
        assert!(parse_sbdix("+SBDIX: 0, x, 0, 0, 0, 0").is_err());
        assert!(parse_sbdix("+SBDIX: 300, 1, 0, 0, 0, 0").is_err());
        assert!(parse_sbdix("+CSQ:5").is_err());
    }

    #[test]
    fn mo_status_classes() {
        for s in 0..=4 {
            assert_eq!(classify_mo(s), MoClass::Success);
        }
        for s in [12, 14, 16] {
            assert_eq!(classify_mo(s), MoClass::Permanent);
        }
        for s in [
            10, 11, 13, 15, 17, 18, 19, 32, 33, 34, 35, 36, 37, 38, 64, 65,
        ] {
            assert_eq!(classify_mo(s), MoClass::RetryLater, "{s}");
        }
        // Every permanent status has a cause, and only those.
        for s in 0..=u8::MAX {
            assert_eq!(
                refusal_cause(s).is_some(),
                classify_mo(s) == MoClass::Permanent,
                "{s}"
            );
        }
        assert_eq!(refusal_cause(12), Some(RefusalCause::Message));
        assert_eq!(refusal_cause(14), Some(RefusalCause::Message));
        assert_eq!(refusal_cause(16), Some(RefusalCause::ModemLocked));
    }

    #[test]
    fn csq_and_msstm() {
        assert_eq!(parse_csq("+CSQ:4").unwrap(), 4);
        assert_eq!(parse_csq("+CSQ: 0").unwrap(), 0);
        assert!(parse_csq("+CSQ:6").is_err());
        assert!(parse_csq("+CSQ:").is_err());
        assert_eq!(parse_msstm("-MSSTM: no network service").unwrap(), None);
        // Zero ticks is the epoch itself; 0x10 ticks are 1.44 s later.
        assert_eq!(
            parse_msstm("-MSSTM: 0").unwrap(),
            Some(IRIDIUM_EPOCH_UNIX_MS)
        );
        assert_eq!(
            parse_msstm("-MSSTM: 10").unwrap(),
            Some(IRIDIUM_EPOCH_UNIX_MS + 1_440)
        );
        // The value in the vendor's conversion example (d1c6dd38 ticks):
        // 3,519,470,904 x 90 ms after 2014-05-11 14:23:55 is 2024-05-24 17:10:16.36 UTC.
        let t = parse_msstm("-MSSTM: d1c6dd38").unwrap().unwrap();
        assert_eq!(t, 1_399_818_235_000 + 3_519_470_904 * 90);
        assert!(parse_msstm("-MSSTM: zz").is_err());
        assert!(parse_msstm("-MSSTM: 1ffffffff").is_err());
    }
}
