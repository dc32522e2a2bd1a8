//! `field-tools pull`: its arguments and the run (shared by `field-tools`
//! and the system tests' build of it).

use std::path::PathBuf;

use super::{PullError, PullFormat, PullOptions, PullSummary, Sink};

/// Output format of `pull`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormatArg {
    /// One JSON object per line.
    Jsonl,
    /// Events as CSV.
    Csv,
}

/// `field-tools pull`.
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// The broker and this researcher's TLS files.
    #[command(flatten)]
    pub conn: crate::broker_args::BrokerArgs,
    /// A node id, or `all`.
    #[arg(long, default_value = "all")]
    pub node: String,
    /// First topic level.
    #[arg(long, default_value = "field")]
    pub prefix: String,
    /// Only records at or after this time (RFC 3339 or ms since the epoch).
    #[arg(long, value_parser = crate::events::parse_since)]
    pub since: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Jsonl)]
    pub format: FormatArg,
    /// Client id of the persistent session; use the same one on every run.
    #[arg(long, default_value = "field-tools-pull")]
    pub client_id: String,
    /// Append to this file (its records seed the de-duplication) instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Exit after this many seconds without a message.
    #[arg(long)]
    pub idle_exit: Option<u64>,
}

/// Why `pull` stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PullRunError {
    /// Some but not all of the TLS files.
    #[error(transparent)]
    PartialTls(#[from] crate::broker_args::PartialTls),
    /// The async runtime did not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    /// `--out` could not be opened.
    #[error("opening {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The pull itself.
    #[error(transparent)]
    Pull(#[from] PullError),
}

/// Runs `pull` until it is idle for `--idle-exit` (or forever); returns
/// what it wrote.
pub fn run(a: PullArgs) -> Result<PullSummary, PullRunError> {
    let tls = a.conn.tls()?;
    let format = match a.format {
        FormatArg::Jsonl => PullFormat::Jsonl,
        FormatArg::Csv => PullFormat::Csv,
    };
    let opts = PullOptions {
        broker: a.conn.broker,
        tls,
        prefix: a.prefix,
        node: a.node,
        since_ms: a.since,
        format,
        client_id: a.client_id,
        idle_exit: a.idle_exit.map(std::time::Duration::from_secs),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PullRunError::Runtime)?;
    let summary = match &a.out {
        Some(path) => {
            let (seen, header) = super::read_seen(path, format)?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| PullRunError::Open {
                    path: path.clone(),
                    source,
                })?;
            let mut sink = Sink::new(file, format, opts.since_ms, seen, header);
            rt.block_on(super::pull(&opts, &mut sink))?;
            sink.summary
        }
        None => {
            let stdout = std::io::stdout().lock();
            let mut sink = Sink::new(stdout, format, opts.since_ms, Default::default(), false);
            rt.block_on(super::pull(&opts, &mut sink))?;
            sink.summary
        }
    };
    Ok(summary)
}

/// The line `pull` prints on standard error when it ends.
pub fn summary_line(s: &PullSummary) -> String {
    format!(
        "field-tools pull: {} written, {} duplicates dropped, {} before --since, {} undecodable, {} status reports not written (csv)",
        s.written, s.duplicates, s.too_old, s.bad, s.status_skipped
    )
}
