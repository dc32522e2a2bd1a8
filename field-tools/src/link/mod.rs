//! `field-tools link`: talks to a running node over the field link
//! (`docs/field-link.md`), on its Unix socket or a serial port.
//!
//! - [`transport`]: opening the socket or the port, with errors that say
//!   what to check;
//! - [`client`]: the session (Hello with retries, requests with the
//!   protocol's timeouts);
//! - [`events`]: the events stream with credit, resumed after a cut;
//! - [`print`]: text and JSON output.
//!
//! Commands: `hello`, `status`, `events`, `time`, `config show`,
//! `config validate FILE`, `outbox`: the reads the node serves.

pub mod client;
pub mod events;
pub mod print;
pub mod transport;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use messages::link::{ConfigOutcome, Request, Response};

pub use client::{Client, LinkError, connect};
pub use events::{Backoff, EventsOutcome, EventsQuery, stream_events};
pub use transport::Target;

/// `field-tools link ...`
#[derive(Args, Debug)]
pub struct LinkArgs {
    /// The node's Unix socket (`[fieldlink] socket`).
    #[arg(long, conflicts_with = "port", required_unless_present = "port")]
    pub socket: Option<PathBuf>,
    /// A serial port wired to the node (e.g. /dev/ttyUSB0).
    #[arg(long)]
    pub port: Option<PathBuf>,
    /// The port's speed (the node's `[fieldlink] baud`).
    #[arg(long, default_value_t = 115_200, requires = "port")]
    pub baud: u32,
    /// Print JSON instead of text (events are always JSON lines).
    #[arg(long)]
    pub json: bool,
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
    /// The node's clock and where its time comes from.
    Time,
    /// The node's configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The outbox: items waiting per priority, bytes, drops.
    Outbox,
}

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
}

impl LinkArgs {
    /// Where the node is.
    pub fn target(&self) -> Target {
        match (&self.socket, &self.port) {
            (Some(s), _) => Target::Socket(s.clone()),
            (None, Some(p)) => Target::Port(p.clone(), self.baud),
            // clap requires one of them.
            (None, None) => Target::Socket(PathBuf::new()),
        }
    }
}

/// Runs a link command. Exit codes: 0 done, 1 the node refused (or the
/// configuration is invalid), 2 the node could not be reached or the
/// connection failed.
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

async fn run_async(args: &LinkArgs) -> Result<ExitCode, LinkError> {
    let target = args.target();
    let json = args.json;
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
    let mut client = connect(&target).await?;
    match &args.command {
        LinkCommand::Hello => print::hello(&client.hello, json),
        LinkCommand::Status => match client.request(Request::Status).await? {
            Response::Status(s) => print::status(&s, json),
            other => return Err(unexpected("status", &other)),
        },
        LinkCommand::Time => match client.request(Request::TimeGet).await? {
            Response::Time(t) => print::time(&t, json),
            other => return Err(unexpected("time_get", &other)),
        },
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
        LinkCommand::Config(ConfigCommand::Validate { file }) => {
            let toml = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("field-tools link: cannot read {}: {e}", file.display());
                    return Ok(ExitCode::from(2));
                }
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
        LinkCommand::Events { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn unexpected(request: &'static str, reply: &Response) -> LinkError {
    LinkError::Unexpected {
        request,
        reply: reply.name(),
    }
}

#[cfg(test)]
mod tests;
