//! [`SbdLink`]: sends one packed MO message through the modem and says what
//! happened to it. Write the MO buffer, run sessions with exponential backoff
//! until success, a permanent failure or the give-up time; read MT messages
//! the sessions bring; power-cycle a modem that stops answering, and report
//! it when that does not help. Nothing is deleted here: the caller removes
//! records from its outbox only on [`MoOutcome::Delivered`].

use std::time::Duration;

use messages::Priority;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::budget::{BudgetError, CreditBudget, credits_for, session_credits};
use super::modem::{MoClass, ModemError, ModemTimeouts, SbdModem, SessionResult};
use super::power::ModemPower;

/// How the link retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SbdLinkConfig {
    /// Command and session timeouts.
    pub timeouts: ModemTimeouts,
    /// Wait after the first failed session; doubled after each, up to `backoff_max`.
    pub backoff_min: Duration,
    /// Longest wait between sessions.
    pub backoff_max: Duration,
    /// Stop retrying a message after this long (then [`MoOutcome::RetryLater`]).
    pub give_up_after: Duration,
    /// Consecutive command timeouts after which the modem is power-cycled.
    pub timeouts_before_power_cycle: u32,
    /// Power cycles per send before the modem is reported unresponsive.
    pub max_power_cycles: u32,
    /// Wait after a power cycle before talking to the modem.
    pub boot_delay: Duration,
    /// Ask the modem for ring alerts (`AT+SBDMTA=1`).
    pub ring_alerts: bool,
    /// How many times a bad MT checksum is re-read before giving up on it.
    pub mt_read_attempts: u32,
}

impl Default for SbdLinkConfig {
    fn default() -> Self {
        SbdLinkConfig {
            timeouts: ModemTimeouts::default(),
            backoff_min: Duration::from_secs(20),
            backoff_max: Duration::from_secs(120),
            give_up_after: Duration::from_secs(300),
            timeouts_before_power_cycle: 3,
            max_power_cycles: 1,
            boot_delay: Duration::from_secs(2),
            ring_alerts: false,
            mt_read_attempts: 3,
        }
    }
}

/// What happened to an MO message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoOutcome {
    /// The gateway has it: the caller may delete `ids` from its outbox.
    Delivered {
        /// The modem's MO sequence number.
        momsn: u32,
        /// Ids of the records the message carried.
        ids: Vec<u64>,
    },
    /// Not sent, try again later (no signal, gateway busy, gave up for now).
    RetryLater {
        /// The last MO status, if a session ran.
        status: Option<u8>,
    },
    /// The gateway refused it for good (12, 14, 16); sending it again will
    /// not help. Nothing was deleted.
    Failed {
        /// The MO status.
        status: u8,
    },
    /// The credit budget does not allow this priority now; nothing was sent.
    BudgetSpent,
}

/// An MT message a session brought, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MtMessage {
    /// The payload (checksum verified).
    Received {
        /// MT sequence number.
        mtmsn: u32,
        /// The bytes.
        payload: Vec<u8>,
    },
    /// Received by the modem but not readable over the serial line.
    Unreadable {
        /// MT sequence number.
        mtmsn: u32,
        /// The last error.
        error: String,
    },
}

/// What one [`SbdLink::send`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendReport {
    /// What happened to the MO message.
    pub outcome: MoOutcome,
    /// MT messages received during the sessions.
    pub mt: Vec<MtMessage>,
    /// MT messages still waiting at the gateway after the last session.
    pub mt_queued: u16,
    /// Sessions run.
    pub sessions: u32,
    /// Power cycles done.
    pub power_cycles: u32,
    /// Credits billed (recorded in the budget).
    pub credits: u32,
}

/// Why a send could not be carried out at all.
#[derive(Debug, thiserror::Error)]
pub enum SbdError {
    /// The modem does not answer, even after power cycles (or it cannot be
    /// power-cycled).
    #[error("modem does not answer after {power_cycles} power cycle(s): {last}")]
    Unresponsive {
        /// Power cycles tried.
        power_cycles: u32,
        /// The last error.
        last: ModemError,
    },
    /// The payload cannot be an MO message (empty or over 340 bytes).
    #[error("MO payload of {len} bytes (allowed 1..=340)")]
    PayloadSize {
        /// Its length.
        len: usize,
    },
    /// The modem refused the MO write repeatedly.
    #[error("modem refused the MO message: {0}")]
    Write(ModemError),
    /// The budget file could not be written (the spend counts in memory).
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

/// The clock the budget is kept in (ms since the Unix epoch).
pub trait WallClock: Send {
    /// Now, ms since the Unix epoch, UTC.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// The Iridium SBD link: one modem, its power switch, the credit budget.
pub struct SbdLink<S, P, C = SystemClock> {
    modem: SbdModem<S>,
    power: P,
    clock: C,
    budget: CreditBudget,
    cfg: SbdLinkConfig,
    consecutive_timeouts: u32,
    initialised: bool,
}

/// A step that failed in a way the send loop handles.
enum Step {
    /// The modem did not answer: count it, maybe power-cycle.
    Timeout(ModemError),
    /// Anything else.
    Other(ModemError),
}

impl From<ModemError> for Step {
    fn from(e: ModemError) -> Self {
        if e.is_timeout() {
            Step::Timeout(e)
        } else {
            Step::Other(e)
        }
    }
}

impl<S, P, C> SbdLink<S, P, C>
where
    S: AsyncRead + AsyncWrite + Unpin,
    P: ModemPower,
    C: WallClock,
{
    /// A link over `io` (the modem's serial port).
    pub fn new(io: S, power: P, clock: C, budget: CreditBudget, cfg: SbdLinkConfig) -> Self {
        SbdLink {
            modem: SbdModem::new(io, cfg.timeouts, cfg.ring_alerts),
            power,
            clock,
            budget,
            cfg,
            consecutive_timeouts: 0,
            initialised: false,
        }
    }

    /// The modem, for signal and time queries.
    pub fn modem(&mut self) -> &mut SbdModem<S> {
        &mut self.modem
    }

    /// The credit budget.
    pub fn budget(&self) -> &CreditBudget {
        &self.budget
    }

    /// Whether a message of `len` bytes and `priority` fits the budget now.
    pub fn allows(&self, priority: Priority, len: usize) -> bool {
        self.budget
            .allows(priority, credits_for(len), self.clock.now_ms())
    }

    /// Initialises the modem (also done by the first send).
    pub async fn init(&mut self) -> Result<(), ModemError> {
        self.modem.init().await?;
        self.initialised = true;
        Ok(())
    }

    /// Counts a timeout; after `timeouts_before_power_cycle` of them in a row,
    /// power-cycles the modem (or fails when that is not possible or already
    /// done `max_power_cycles` times in this send).
    async fn on_timeout(&mut self, e: ModemError, report: &mut SendReport) -> Result<(), SbdError> {
        self.consecutive_timeouts += 1;
        tracing::warn!(consecutive = self.consecutive_timeouts, error = %e, "modem timeout");
        self.initialised = false;
        if self.consecutive_timeouts < self.cfg.timeouts_before_power_cycle {
            return Ok(());
        }
        if report.power_cycles >= self.cfg.max_power_cycles {
            tracing::error!(power_cycles = report.power_cycles, error = %e, "modem does not answer");
            return Err(SbdError::Unresponsive {
                power_cycles: report.power_cycles,
                last: e,
            });
        }
        tracing::warn!(
            timeouts = self.consecutive_timeouts,
            "power-cycling the modem"
        );
        if let Err(pe) = self.power.power_cycle() {
            tracing::error!(error = %pe, "modem power cycle impossible");
            return Err(SbdError::Unresponsive {
                power_cycles: report.power_cycles,
                last: e,
            });
        }
        report.power_cycles += 1;
        self.consecutive_timeouts = 0;
        tokio::time::sleep(self.cfg.boot_delay).await;
        Ok(())
    }

    /// Initialises the modem if needed and writes the MO buffer. A refused
    /// write (bad checksum on the line, timeout) is retried a few times.
    async fn prepare(&mut self, payload: &[u8]) -> Result<(), Step> {
        if !self.initialised {
            self.modem.init().await?;
            self.initialised = true;
        }
        let mut last = None;
        for _ in 0..3 {
            match self.modem.write_mo(payload).await {
                Ok(()) => return Ok(()),
                Err(ModemError::Write { status }) if status != 3 => {
                    tracing::warn!(status, "MO write refused, writing again");
                    last = Some(ModemError::Write { status });
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Step::Other(last.unwrap_or(ModemError::Clear)))
    }

    /// Reads the MT message a session announced, re-reading on a bad checksum.
    async fn read_mt(
        &mut self,
        session: &SessionResult,
        report: &mut SendReport,
    ) -> Result<(), Step> {
        let mut last = String::new();
        for attempt in 1..=self.cfg.mt_read_attempts.max(1) {
            match self.modem.read_mt().await {
                Ok(payload) => {
                    tracing::info!(
                        mtmsn = session.mtmsn,
                        len = payload.len(),
                        "MT message received"
                    );
                    report.mt.push(MtMessage::Received {
                        mtmsn: session.mtmsn,
                        payload,
                    });
                    return Ok(());
                }
                Err(e) if e.is_timeout() => return Err(Step::Timeout(e)),
                Err(e) => {
                    tracing::warn!(attempt, mtmsn = session.mtmsn, error = %e, "MT read failed");
                    last = e.to_string();
                }
            }
        }
        report.mt.push(MtMessage::Unreadable {
            mtmsn: session.mtmsn,
            error: last,
        });
        Ok(())
    }

    /// Sends one MO message (a packed message carrying the records `ids`) and
    /// reports what happened. Returns `BudgetSpent` without touching the
    /// modem when the budget does not allow `priority`. Never deletes
    /// anything: the caller acts on [`MoOutcome::Delivered`] only.
    pub async fn send(
        &mut self,
        payload: &[u8],
        ids: Vec<u64>,
        priority: Priority,
    ) -> Result<SendReport, SbdError> {
        let mut report = SendReport {
            outcome: MoOutcome::RetryLater { status: None },
            mt: Vec::new(),
            mt_queued: 0,
            sessions: 0,
            power_cycles: 0,
            credits: 0,
        };
        if payload.is_empty() || payload.len() > messages::pack::SBD_MO_MAX {
            return Err(SbdError::PayloadSize { len: payload.len() });
        }
        if !self.allows(priority, payload.len()) {
            tracing::info!(%priority, len = payload.len(), "credit budget spent; message held");
            report.outcome = MoOutcome::BudgetSpent;
            return Ok(report);
        }
        let started = Instant::now();
        let mut backoff = self.cfg.backoff_min;
        let mut written = false;
        let mut last_status = None;
        let mut write_failures = 0;
        loop {
            let step: Result<SessionResult, Step> = async {
                if !written {
                    self.prepare(payload).await?;
                    written = true;
                }
                report.sessions += 1;
                Ok(self.modem.session().await?)
            }
            .await;
            match step {
                Ok(session) => {
                    self.consecutive_timeouts = 0;
                    last_status = Some(session.mo_status);
                    report.mt_queued = session.mt_queued;
                    let mut mt_len = 0;
                    if session.has_mt() {
                        mt_len = usize::from(session.mt_length);
                        if let Err(Step::Timeout(e)) = self.read_mt(&session, &mut report).await {
                            report.mt.push(MtMessage::Unreadable {
                                mtmsn: session.mtmsn,
                                error: e.to_string(),
                            });
                        }
                    }
                    tracing::info!(
                        mo_status = session.mo_status,
                        momsn = session.momsn,
                        mt_status = session.mt_status,
                        mt_queued = session.mt_queued,
                        "SBD session"
                    );
                    match session.mo_class() {
                        MoClass::Success => {
                            let credits = session_credits(payload.len(), mt_len);
                            report.credits += credits;
                            report.outcome = MoOutcome::Delivered {
                                momsn: session.momsn,
                                ids,
                            };
                            if let Err(e) = self.modem.clear_mo().await {
                                // Delivered all the same; the next write replaces the buffer.
                                tracing::warn!(error = %e, "could not clear the MO buffer after delivery");
                            }
                            self.budget.spend(credits, self.clock.now_ms())?;
                            return Ok(report);
                        }
                        MoClass::Permanent => {
                            let credits = if mt_len > 0 { credits_for(mt_len) } else { 0 };
                            report.credits += credits;
                            tracing::error!(
                                status = session.mo_status,
                                "gateway refused the MO message for good"
                            );
                            if let Err(e) = self.modem.clear_mo().await {
                                tracing::warn!(error = %e, "could not clear the MO buffer");
                            }
                            report.outcome = MoOutcome::Failed {
                                status: session.mo_status,
                            };
                            if credits > 0 {
                                self.budget.spend(credits, self.clock.now_ms())?;
                            }
                            return Ok(report);
                        }
                        MoClass::RetryLater => {
                            if mt_len > 0 {
                                let credits = credits_for(mt_len);
                                report.credits += credits;
                                self.budget.spend(credits, self.clock.now_ms())?;
                            }
                        }
                    }
                }
                Err(Step::Timeout(e)) => {
                    let cycles_before = report.power_cycles;
                    self.on_timeout(e, &mut report).await?;
                    if report.power_cycles > cycles_before {
                        // The MO buffer is empty after power-up: write again.
                        written = false;
                        continue;
                    }
                }
                Err(Step::Other(e)) => {
                    tracing::warn!(error = %e, "modem step failed");
                    if matches!(e, ModemError::Write { .. }) || !written {
                        write_failures += 1;
                        if write_failures >= 3 {
                            return Err(SbdError::Write(e));
                        }
                        self.initialised = false;
                    }
                }
            }
            if started.elapsed() + backoff > self.cfg.give_up_after {
                tracing::warn!(status = ?last_status, sessions = report.sessions, "giving up on this MO message for now");
                report.outcome = MoOutcome::RetryLater {
                    status: last_status,
                };
                return Ok(report);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.cfg.backoff_max);
        }
    }
}
