//! `field-tools`: reading and judging a node's events.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use field_tools::{bridge, events, pull, score};

#[derive(Parser)]
#[command(
    name = "field-tools",
    version,
    about = "Field tools for sensing nodes: read stored events, score them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum EventFormat {
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Print the events stored in a node's data directory (never modifies it).
    Events {
        /// The node's data directory (holding `store/`).
        #[arg(long)]
        data_dir: PathBuf,
        /// Only events starting at or after this time (RFC 3339 or ms since the epoch).
        #[arg(long, value_parser = events::parse_since)]
        since: Option<i64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = EventFormat::Jsonl)]
        format: EventFormat,
    },
    /// Score stored events against a scene's labels: precision, recall, F1 per class.
    Score {
        /// The node's data directory.
        #[arg(long)]
        data_dir: PathBuf,
        /// The scene directory (its labels.csv and scene.toml are used).
        #[arg(long)]
        scene: Option<PathBuf>,
        /// labels.csv, when not the scene's.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Scene start (RFC 3339), when not read from the scene.
        #[arg(long, value_parser = events::parse_since)]
        scene_start: Option<i64>,
        /// Matching tolerance, ms.
        #[arg(long, default_value_t = 1000)]
        tolerance_ms: i64,
        /// Report format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Subscribe to nodes' events and status reports on an MQTT broker (persistent session).
    Pull(PullArgs),
    /// The ground bridge: receive RockBLOCK callbacks, publish their records to the broker.
    Bridge(BridgeArgs),
}

#[derive(clap::Args)]
struct BridgeArgs {
    /// Address to listen on for RockBLOCK's HTTP POST (e.g. 0.0.0.0:8080).
    #[arg(long)]
    listen: std::net::SocketAddr,
    /// mqtts://host[:port] (mutual TLS) or mqtt://host[:port] (plain TCP).
    #[arg(long)]
    broker: String,
    /// CA certificate of the broker (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The bridge's certificate (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// The bridge's private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// TOML file mapping modem IMEIs to node ids (`[nodes]` table).
    #[arg(long)]
    nodes: PathBuf,
    /// First topic level.
    #[arg(long, default_value = "field")]
    prefix: String,
    /// RockBLOCK's RSA public key (PEM): callbacks must carry an RS256 JWT it verifies.
    #[arg(
        long,
        conflicts_with = "shared_secret",
        required_unless_present = "shared_secret"
    )]
    jwt_public_key: Option<PathBuf>,
    /// Shared secret for HS256 JWTs (a relay of your own), instead of --jwt-public-key.
    #[arg(long, env = "BRIDGE_SHARED_SECRET", hide_env_values = true)]
    shared_secret: Option<String>,
    /// MQTT client id.
    #[arg(long, default_value = "field-bridge")]
    client_id: String,
    /// Seconds a callback waits for the broker's acknowledgements before answering 503.
    #[arg(long, default_value_t = 20)]
    publish_timeout: u64,
}

fn run_bridge(a: BridgeArgs) -> Result<()> {
    let tls = match (a.ca, a.cert, a.key) {
        (Some(ca), Some(cert), Some(key)) => Some(uplink::mqtt::TlsFiles { ca, cert, key }),
        (None, None, None) => None,
        _ => anyhow::bail!("give all of --ca, --cert and --key, or none"),
    };
    let auth = match (a.jwt_public_key, a.shared_secret) {
        (Some(path), _) => bridge::Auth::Rs256PublicKey(path),
        (None, Some(secret)) => bridge::Auth::Hs256Secret(secret),
        (None, None) => anyhow::bail!("give --jwt-public-key PEM or --shared-secret S"),
    };
    let cfg = bridge::RunConfig {
        listen: a.listen,
        broker: a.broker,
        tls,
        nodes: a.nodes,
        prefix: a.prefix,
        auth,
        client_id: a.client_id,
        publish_timeout: std::time::Duration::from_secs(a.publish_timeout.max(1)),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let shutdown = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot wait for ctrl-c; stopping");
        }
    };
    rt.block_on(bridge::run(cfg, shutdown))?;
    Ok(())
}

#[derive(clap::Args)]
struct PullArgs {
    /// mqtts://host[:port] (mutual TLS) or mqtt://host[:port] (plain TCP).
    #[arg(long)]
    broker: String,
    /// CA certificate of the broker (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Your certificate (PEM).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Your private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// A node id, or `all`.
    #[arg(long, default_value = "all")]
    node: String,
    /// First topic level.
    #[arg(long, default_value = "field")]
    prefix: String,
    /// Only records at or after this time (RFC 3339 or ms since the epoch).
    #[arg(long, value_parser = events::parse_since)]
    since: Option<i64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = EventFormat::Jsonl)]
    format: EventFormat,
    /// Client id of the persistent session; use the same one on every run.
    #[arg(long, default_value = "field-tools-pull")]
    client_id: String,
    /// Append to this file (its records seed the de-duplication) instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Exit after this many seconds without a message.
    #[arg(long)]
    idle_exit: Option<u64>,
}

fn run_pull(a: PullArgs) -> Result<()> {
    let tls = match (a.ca, a.cert, a.key) {
        (Some(ca), Some(cert), Some(key)) => Some(uplink::mqtt::TlsFiles { ca, cert, key }),
        (None, None, None) => None,
        _ => anyhow::bail!("give all of --ca, --cert and --key, or none"),
    };
    let format = match a.format {
        EventFormat::Jsonl => pull::PullFormat::Jsonl,
        EventFormat::Csv => pull::PullFormat::Csv,
    };
    let opts = pull::PullOptions {
        broker: a.broker,
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
        .context("starting the async runtime")?;
    let summary = match &a.out {
        Some(path) => {
            let (seen, header) = pull::read_seen(path, format)?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            let mut sink = pull::Sink::new(file, format, opts.since_ms, seen, header);
            rt.block_on(pull::pull(&opts, &mut sink))?;
            sink.summary
        }
        None => {
            let stdout = std::io::stdout().lock();
            let mut sink =
                pull::Sink::new(stdout, format, opts.since_ms, Default::default(), false);
            rt.block_on(pull::pull(&opts, &mut sink))?;
            sink.summary
        }
    };
    eprintln!(
        "field-tools pull: {} written, {} duplicates dropped, {} before --since, {} undecodable, {} status reports not written (csv)",
        summary.written, summary.duplicates, summary.too_old, summary.bad, summary.status_skipped
    );
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("field-tools: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn scene_start(scene: &std::path::Path) -> Result<i64> {
    let path = scene.join("scene.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{} is not TOML", path.display()))?;
    let start = table
        .get("start")
        .and_then(|v| v.as_str())
        .with_context(|| format!("{}: no `start` string", path.display()))?;
    events::parse_since(start).map_err(|e| anyhow::anyhow!("{}: start: {e}", path.display()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Pull(args) => run_pull(args)?,
        Command::Bridge(args) => run_bridge(args)?,
        Command::Events {
            data_dir,
            since,
            format,
        } => {
            let read = events::read_events(&data_dir, since)?;
            for bad in &read.bad {
                eprintln!("field-tools: skipped: {bad}");
            }
            let stdout = std::io::stdout().lock();
            match format {
                EventFormat::Jsonl => events::write_jsonl(&read.events, stdout)?,
                EventFormat::Csv => events::write_csv(&read.events, stdout)?,
            }
        }
        Command::Score {
            data_dir,
            scene,
            labels,
            scene_start: start,
            tolerance_ms,
            format,
        } => {
            let labels_path = labels
                .or_else(|| scene.as_ref().map(|s| s.join("labels.csv")))
                .context("give --scene DIR or --labels FILE")?;
            let start = match (start, &scene) {
                (Some(s), _) => s,
                (None, Some(dir)) => scene_start(dir)?,
                (None, None) => anyhow::bail!("give --scene DIR or --scene-start TIME"),
            };
            let labels = score::read_labels(&labels_path)?;
            let read = events::read_events(&data_dir, None)?;
            for bad in &read.bad {
                eprintln!("field-tools: skipped: {bad}");
            }
            let end = labels
                .iter()
                .map(|l| l.end_ms)
                .chain(read.events.iter().map(|e| e.end_ms() - start))
                .max()
                .unwrap_or(0);
            let report = score::score(&read.events, &labels, start, end.max(1), tolerance_ms);
            match format {
                ReportFormat::Text => println!("{report}"),
                ReportFormat::Json => println!("{}", serde_json::to_string(&report)?),
            }
        }
    }
    Ok(())
}
