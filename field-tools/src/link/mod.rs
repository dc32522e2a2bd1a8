//! `field-tools link`: talks to a running node over the field link
//! (`docs/field-link.md`), on its Unix socket or a serial port.
//!
//! - [`transport`]: opening the socket or the port, with errors that say
//!   what to check;
//! - [`client`]: the session (Hello with retries, requests with the
//!   protocol's timeouts);
//! - [`events`]: the events stream with credit, resumed after a cut;
//! - [`logs`]: the log stream with credit;
//! - [`ports`]: listing serial ports, `--port auto`;
//! - [`push`]: pushing a signed bundle, resumed from what the node holds;
//! - [`print`]: text and JSON output.
//!
//! Commands: `hello`, `status`, `events`, `logs`, `time`, `config show`,
//! `config validate FILE`, `outbox`, `uplink status`: the reads; with
//! `--key` (a technician key the node trusts: the session is authenticated
//! before the command), `time set`, `config set FILE`, `probe`, `uplink
//! flush`, `push FILE` and `reboot`; and `ports`, which lists this computer's serial
//! ports without talking to a node.

pub mod client;
pub mod events;
pub mod logs;
pub mod ports;
pub mod print;
pub mod push;
mod stream;
pub mod transport;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use messages::link::{ConfigOutcome, ErrorCode, LogLevel, Request, Response};

pub use client::{Client, LinkError, connect, connect_as};
pub use events::{Backoff, EventsOutcome, EventsQuery, stream_events};
pub use transport::Target;

/// `field-tools link ...`
#[derive(Args, Debug)]
pub struct LinkArgs {
    /// The node's Unix socket (`[fieldlink] socket`).
    #[arg(long, conflicts_with = "port")]
    pub socket: Option<PathBuf>,
    /// A serial port wired to the node (e.g. /dev/ttyUSB0), or `auto`: the
    /// only USB serial device (`field-tools link ports` lists them).
    #[arg(long)]
    pub port: Option<PathBuf>,
    /// The port's speed (the node's `[fieldlink] baud`).
    #[arg(long, default_value_t = 115_200, requires = "port")]
    pub baud: u32,
    /// Print JSON instead of text (events are always JSON lines).
    #[arg(long)]
    pub json: bool,
    /// The technician's secret key file (as `field-tools keys generate`
    /// writes it): the session is authenticated with it before the
    /// command. Needed for the control requests (`time set`, `config set`,
    /// `probe`, `uplink flush`, `push`, `reboot`), and for reads on a node
    /// with `reads_need_auth`.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: LinkCommand,
}

/// The link's commands.
#[derive(Subcommand, Debug)]
pub enum LinkCommand {
    /// Open a session and print who answers (node id, firmware, protocol).
    Hello,
    /// The node's health report, made now.
    Status,
    /// The events the node holds, as JSON lines (as `field-tools events`).
    Events {
        /// Only events starting at or after this time (RFC 3339 or ms since the epoch).
        #[arg(long, value_parser = crate::events::parse_since)]
        since: Option<i64>,
        /// Only events with an id above this (resume from a previous run).
        #[arg(long)]
        after_id: Option<u64>,
        /// At most this many events.
        #[arg(long)]
        limit: Option<u32>,
        /// Keep going: print new events as they are stored; reconnect after
        /// a cut and resume after the last event printed.
        #[arg(long)]
        follow: bool,
    },
    /// The node's clock and where its time comes from; `time set` gives
    /// the node this computer's time as its time reference.
    Time {
        /// `set`: give the node a time reference (needs --key).
        #[command(subcommand)]
        command: Option<TimeCommand>,
    },
    /// The node's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The outbox: items waiting per priority, bytes, drops, deliveries.
    Outbox,
    /// The node's recent log lines (it keeps the last 1,024 at most).
    Logs {
        /// How many of the most recent lines.
        #[arg(long, default_value_t = 50)]
        lines: u32,
        /// Keep printing new lines as the node logs them (until interrupted).
        #[arg(long)]
        follow: bool,
        /// The most verbose level printed: error, warn, info, debug, trace.
        #[arg(long, default_value = "trace", value_parser = parse_level)]
        level: LogLevel,
    },
    /// The sensors' self-test as the running node sees it (health, last
    /// climate reading, power). Needs --key.
    Probe,
    /// The uplink: its links' state, or a send window now.
    #[command(subcommand)]
    Uplink(UplinkCommand),
    /// Restart the node: it stops cleanly (everything detected is stored)
    /// and its service manager starts it again. Needs --key.
    Reboot,
    /// Send a signed model or settings bundle (made with `field-tools
    /// bundle`); the node verifies and installs it as any update, and the
    /// result is printed. A push cut short goes on from what the node holds
    /// when run again. Exit 0 installed or on trial, 1 refused or rolled
    /// back, 3 deferred by the node's power policy, 4 queued without a
    /// result yet. Needs --key.
    Push {
        /// The bundle file (`.fnb`).
        file: PathBuf,
        /// Install now even if the power policy would defer it; the node
        /// takes this only when it sees an external supply (a charger on
        /// its charge input).
        #[arg(long)]
        force_power: bool,
    },
    /// List this computer's serial ports, with the USB vendor and product
    /// of USB ones (no node needed).
    Ports,
}

/// `field-tools link uplink ...`
#[derive(Subcommand, Debug)]
pub enum UplinkCommand {
    /// Each link's state, last delivery and last error.
    Status,
    /// Ask the running uplink to try a send window now; prints what it did.
    /// Needs --key.
    Flush,
}

fn parse_level(s: &str) -> Result<LogLevel, String> {
    LogLevel::from_name(s)
        .ok_or_else(|| format!("`{s}` is not a level: error, warn, info, debug or trace"))
}

/// `field-tools link time ...`
#[derive(Subcommand, Debug)]
pub enum TimeCommand {
    /// Give the node a time reference: this computer's time (`--now`, the
    /// default) or `--unix-ms`. The node records it (it does not set its
    /// clock) and answers how far its clock is from it.
    Set {
        /// This computer's clock, when the request is sent (the default).
        #[arg(long, conflicts_with = "unix_ms")]
        now: bool,
        /// This time instead, ms since the Unix epoch (UTC).
        #[arg(long, value_name = "MS")]
        unix_ms: Option<i64>,
        /// How far the time given may be from the truth, ms (half the
        /// round trip to the node is added).
        #[arg(long, value_name = "MS", default_value_t = DEFAULT_UNCERTAINTY_MS)]
        uncertainty_ms: u32,
    },
}

/// `time set`'s own uncertainty when none is given: a laptop clock kept by
/// NTP is well within it.
pub const DEFAULT_UNCERTAINTY_MS: u32 = 1_000;

/// `field-tools link config ...`
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the node's configuration file.
    Show,
    /// Check a configuration file against the node (exit 1 if invalid).
    Validate {
        /// The TOML file.
        file: PathBuf,
    },
    /// Replace the node's configuration file with FILE when the node finds
    /// it valid (the previous one is kept as `<file>.prev`; class thresholds,
    /// exclusions and power policy apply at once, anything else from the
    /// node's next start). Exit 1 if invalid. Needs --key.
    Set {
        /// The TOML file.
        file: PathBuf,
    },
}

impl LinkArgs {
    /// Where the node is (`--port auto` looks for the only USB serial
    /// device).
    pub fn target(&self) -> Result<Target, LinkError> {
        match (&self.socket, &self.port) {
            (Some(s), _) => Ok(Target::Socket(s.clone())),
            (None, Some(p)) if p.as_os_str() == "auto" => {
                let found = ports::choose_usb(&ports::list()?)?;
                eprintln!("field-tools link: --port auto: {}", found.display());
                Ok(Target::Port(found, self.baud))
            }
            (None, Some(p)) => Ok(Target::Port(p.clone(), self.baud)),
            (None, None) => Err(LinkError::NoTarget),
        }
    }
}

/// Runs a link command. Exit codes: 0 done, 1 the node refused (or the
/// configuration is invalid), 2 the node could not be reached or the
/// connection failed; `push` also 3 (deferred) and 4 (queued without a
/// result yet).
pub fn run(args: LinkArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("field-tools: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run_async(&args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("field-tools link: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Reads a text file given on the command line (exit 2 when it cannot be
/// read).
fn read_arg_file(file: &std::path::Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(file).map_err(|e| {
        eprintln!("field-tools link: cannot read {}: {e}", file.display());
        ExitCode::from(2)
    })
}

/// A refusal for want of authentication, said as what to do about it.
fn explain_unauthenticated(e: LinkError, have_key: bool) -> LinkError {
    match e {
        LinkError::Refused { request, reply }
            if reply.code == ErrorCode::Unauthenticated && !have_key =>
        {
            LinkError::NeedsKey {
                request,
                message: reply.message,
            }
        }
        other => other,
    }
}

async fn run_async(args: &LinkArgs) -> Result<ExitCode, LinkError> {
    let key = match &args.key {
        Some(path) => {
            Some(crate::update::load_secret(path).map_err(|e| LinkError::Key(e.to_string()))?)
        }
        None => None,
    };
    run_command(args, key.as_ref())
        .await
        .map_err(|e| explain_unauthenticated(e, key.is_some()))
}

async fn run_command(
    args: &LinkArgs,
    key: Option<&ed25519_dalek::SigningKey>,
) -> Result<ExitCode, LinkError> {
    let json = args.json;
    if let LinkCommand::Ports = args.command {
        print::ports(&ports::list()?, json);
        return Ok(ExitCode::SUCCESS);
    }
    let target = args.target()?;
    if let LinkCommand::Events {
        since,
        after_id,
        limit,
        follow,
    } = args.command
    {
        let query = EventsQuery {
            after_id,
            since_ms: since,
            limit,
            follow,
        };
        let mut stdout = std::io::stdout().lock();
        let out = stream_events(
            &target,
            key,
            query,
            Backoff::default(),
            |e| print::event_line(&mut stdout, e),
            |e, wait| {
                eprintln!(
                    "field-tools link: {e}; reconnecting in {:.1} s",
                    wait.as_secs_f64()
                )
            },
        )
        .await?;
        eprintln!(
            "field-tools link: {} event(s); resume with --after-id {}",
            out.events,
            out.resume_after_id
                .map_or_else(|| "(none)".to_string(), |i| i.to_string())
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let LinkCommand::Push { file, force_power } = &args.command {
        return push_command(&target, key, file, *force_power, json).await;
    }
    let mut client = connect_as(&target, key).await?;
    match &args.command {
        LinkCommand::Hello => print::hello(&client.hello, json),
        LinkCommand::Status => match client.request(Request::Status).await? {
            Response::Status(s) => print::status(&s, json),
            other => return Err(unexpected("status", &other)),
        },
        LinkCommand::Time { command: None } => match client.request(Request::TimeGet).await? {
            Response::Time(t) => print::time(&t, json),
            other => return Err(unexpected("time_get", &other)),
        },
        LinkCommand::Time {
            command:
                Some(TimeCommand::Set {
                    now: _,
                    unix_ms,
                    uncertainty_ms,
                }),
        } => {
            // Half the round trip, measured just before, is added to the
            // uncertainty: the request takes about that long to arrive.
            let sent = std::time::Instant::now();
            match client.request(Request::Ping).await? {
                Response::Pong => {}
                other => return Err(unexpected("ping", &other)),
            }
            let half_rtt_ms =
                u32::try_from(sent.elapsed().as_millis().div_ceil(2)).unwrap_or(u32::MAX);
            let uncertainty_ms = uncertainty_ms.saturating_add(half_rtt_ms);
            let unix_ms = unix_ms.unwrap_or_else(print::local_ms);
            match client
                .request(Request::TimeSet {
                    unix_ms,
                    uncertainty_ms,
                })
                .await?
            {
                Response::TimeSet { step_ms } => {
                    print::time_set(unix_ms, uncertainty_ms, step_ms, json)
                }
                other => return Err(unexpected("time_set", &other)),
            }
        }
        LinkCommand::Outbox => match client.request(Request::OutboxStats).await? {
            Response::OutboxStats(o) => print::outbox(&o, json),
            other => return Err(unexpected("outbox_stats", &other)),
        },
        LinkCommand::Config(ConfigCommand::Show) => {
            match client.request(Request::ConfigShow).await? {
                Response::Config(c) => print::config(&c, json),
                other => return Err(unexpected("config_show", &other)),
            }
        }
        LinkCommand::Config(ConfigCommand::Set { file }) => {
            let toml = match read_arg_file(file) {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            match client.request(Request::ConfigSet { toml }).await? {
                Response::ConfigSet(outcome) => {
                    print::config_set(&outcome, json);
                    if matches!(outcome, ConfigOutcome::Invalid { .. }) {
                        return Ok(ExitCode::from(1));
                    }
                }
                other => return Err(unexpected("config_set", &other)),
            }
        }
        LinkCommand::Config(ConfigCommand::Validate { file }) => {
            let toml = match read_arg_file(file) {
                Ok(t) => t,
                Err(code) => return Ok(code),
            };
            match client.request(Request::ConfigValidate { toml }).await? {
                Response::ConfigChecked(outcome) => {
                    print::config_outcome(&outcome, json);
                    if matches!(outcome, ConfigOutcome::Invalid { .. }) {
                        return Ok(ExitCode::from(1));
                    }
                }
                other => return Err(unexpected("config_validate", &other)),
            }
        }
        LinkCommand::Logs {
            lines,
            follow,
            level,
        } => {
            let query = logs::LogsQuery {
                lines: *lines,
                follow: *follow,
                level: *level,
            };
            let mut stdout = std::io::stdout().lock();
            let out = logs::stream_logs(
                &mut client,
                query,
                |l| print::log_line(&mut stdout, l, json),
                |missed| {
                    eprintln!(
                        "field-tools link: the node dropped {missed} line(s) before it could send them"
                    )
                },
            )
            .await?;
            eprintln!("field-tools link: {} line(s)", out.lines);
        }
        LinkCommand::Probe => match client.request(Request::Probe).await? {
            Response::Probe(p) => print::probe(&p, json),
            other => return Err(unexpected("probe", &other)),
        },
        LinkCommand::Uplink(UplinkCommand::Status) => {
            match client.request(Request::UplinkStatus).await? {
                Response::UplinkStatus(u) => print::uplink_status(&u, json),
                other => return Err(unexpected("uplink_status", &other)),
            }
        }
        LinkCommand::Uplink(UplinkCommand::Flush) => {
            match client.request(Request::UplinkFlush).await? {
                Response::UplinkFlush { queued, round } => {
                    print::uplink_flush(queued, round.as_ref(), json)
                }
                other => return Err(unexpected("uplink_flush", &other)),
            }
        }
        LinkCommand::Reboot => match client.request(Request::Reboot).await? {
            Response::Rebooting { after_ms } => print::rebooting(after_ms, json),
            other => return Err(unexpected("reboot", &other)),
        },
        LinkCommand::Events { .. } | LinkCommand::Ports | LinkCommand::Push { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `link push FILE`: the exit code follows the node's outcome.
async fn push_command(
    target: &Target,
    key: Option<&ed25519_dalek::SigningKey>,
    path: &std::path::Path,
    force_power: bool,
    json: bool,
) -> Result<ExitCode, LinkError> {
    use std::io::IsTerminal;
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("field-tools link: cannot read {}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    let file = match push::PushFile::parse(bytes) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("field-tools link: {}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    let line = std::cell::RefCell::new(push::ProgressLine::new(std::io::stderr().is_terminal()));
    let pushed = push::push_bundle(
        target,
        key,
        &file,
        force_power,
        Backoff::default(),
        |held, total| line.borrow_mut().update(held, total),
        |e, wait| {
            line.borrow_mut().break_line();
            eprintln!(
                "field-tools link: {e}; reconnecting in {:.1} s (the push goes on from what the node holds)",
                wait.as_secs_f64()
            );
        },
    )
    .await;
    line.borrow_mut().break_line();
    let pushed = pushed?;
    print::pushed(&file, &pushed, json);
    Ok(ExitCode::from(pushed.exit_code()))
}

fn unexpected(request: &'static str, reply: &Response) -> LinkError {
    LinkError::Unexpected {
        request,
        reply: reply.name(),
    }
}

#[cfg(test)]
mod push_tests;
#[cfg(test)]
mod tests;
