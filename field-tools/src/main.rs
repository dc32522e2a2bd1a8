//! `field-tools`: reading and judging a node's events.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use field_tools::{events, score};

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
