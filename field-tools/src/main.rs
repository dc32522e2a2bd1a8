//! `field-tools`: reading and judging a node's events; keys, trust roots and
//! signed bundles for updates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use field_tools::update::{self, Expires, Outcome, UpdateError};
use field_tools::{bridge, events, pull, score};

#[derive(Parser)]
#[command(
    name = "field-tools",
    version,
    about = "Field tools for sensing nodes: read stored events, score them, sign updates"
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
    Pull(pull::cli::PullArgs),
    /// The ground bridge: receive RockBLOCK callbacks, publish their records to the broker.
    Bridge(bridge::cli::BridgeArgs),
    /// Talk to a running node over its Unix socket or a serial port (the field link).
    Link(field_tools::link::LinkArgs),
    /// The deployment's certificates: a CA, then node, researcher, operator and broker certificates (X.509 v3).
    Pki(field_tools::pki::PkiArgs),
    /// Print the shell completion script for bash, zsh, fish or powershell
    /// (e.g. `field-tools completions bash > ~/.local/share/bash-completion/completions/field-tools`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Update(UpdateCommand),
}

/// Signed updates. Exit codes: 0 ok, 1 refused or failed verification,
/// 2 usage or I/O error.
#[derive(Subcommand)]
enum UpdateCommand {
    /// Ed25519 keys that sign roots and bundles.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Trust roots: which keys sign bundles and new roots (exit 1: refused, 2: usage/I/O).
    Root {
        #[command(subcommand)]
        command: RootCommand,
    },
    /// Signed model and settings bundles (exit 1: refused, 2: usage/I/O).
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a key pair from the OS's randomness: PREFIX.secret (mode 0600) and PREFIX.public.
    ///
    /// Neither file is ever overwritten. Prints the key id (the first 8 bytes
    /// of the SHA-256 of the public key, in hex), which names the key in
    /// signatures and roots.
    Generate {
        /// File name prefix: writes PREFIX.secret and PREFIX.public.
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum RootCommand {
    /// Write a trust root signed by --sign keys; refuses (exit 1, nothing written) a root a node would not parse.
    ///
    /// The root lists the root keys (sign new roots; keep them offline) and
    /// the bundle keys (sign bundles), each with a threshold. The result must
    /// be signed by at least --root-threshold of its own root keys, or
    /// nothing is written. An existing --out file is never replaced.
    ///
    /// Rotation: write the next version (--version N+1) with the new key
    /// lists and pass to --sign a threshold of the CURRENT root's keys and a
    /// threshold of the NEW root's keys; then check it with
    /// `field-tools root verify --trusted CURRENT NEW`.
    Init(RootInitArgs),
    /// Show a root: version, expiry, roles (key ids, thresholds), signatures' key ids.
    Inspect {
        /// The root file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check that NEW may replace the trusted root, as a node does (exit 1 with the reason if not).
    ///
    /// NEW must be version trusted+1, signed by a threshold of its own root
    /// keys and by a threshold of the trusted root's root keys.
    Verify {
        /// The root the nodes trust now.
        #[arg(long, value_name = "ROOT")]
        trusted: PathBuf,
        /// The new root.
        new: PathBuf,
    },
}

#[derive(clap::Args)]
struct RootInitArgs {
    /// Public key files of the root role (PREFIX.public).
    #[arg(long = "root-key", value_name = "PUB", required = true, num_args = 1..)]
    root_keys: Vec<PathBuf>,
    /// Signatures by distinct root keys needed (for this root and the next rotation).
    #[arg(long)]
    root_threshold: u8,
    /// Public key files of the bundle role.
    #[arg(long = "bundle-key", value_name = "PUB", required = true, num_args = 1..)]
    bundle_keys: Vec<PathBuf>,
    /// Signatures by distinct bundle keys a bundle needs.
    #[arg(long)]
    bundle_threshold: u8,
    /// Root version: 1 for the first root, the trusted version + 1 for a rotation.
    #[arg(long, default_value_t = 1)]
    version: u64,
    /// Expiry: RFC 3339 time, date (YYYY-MM-DD, UTC) or days from now.
    #[arg(long, value_name = "DATE_OR_DAYS", allow_hyphen_values = true)]
    expires: Expires,
    /// Secret key files that sign the root (for a rotation: old and new root keys).
    #[arg(long, value_name = "SECRET", required = true, num_args = 1..)]
    sign: Vec<PathBuf>,
    /// Where to write the root (never overwritten).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum BundleKind {
    Model,
    Settings,
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Pack an unsigned bundle: a model (ONNX beside its manifest) or a settings patch.
    ///
    /// Model: the payload is the file the manifest names, checked against
    /// the manifest's sha256 and size first (exit 1 if it differs).
    /// Settings: PATCH.toml holds optional keys in the node's configuration
    /// units (thresholds = { wildlife = 0.6 }, exclude = ["background"],
    /// camera_interval_ms, camera_interval_saver_ms, climate_interval_ms,
    /// climate_interval_critical_ms, saver_below_soc, critical_below_soc,
    /// burst_min_soc, uplink_min_soc, update_min_soc); unknown keys are an
    /// error. An existing --out file is replaced.
    Pack(PackArgs),
    /// Add a signature with a bundle key, in place (refuses a file that does not parse).
    Sign {
        /// Secret key file.
        #[arg(long, value_name = "SECRET")]
        key: PathBuf,
        /// The bundle file.
        file: PathBuf,
    },
    /// Run the trust decision on a bundle against a root (exit 1 with the refusal's code).
    ///
    /// Runs models::bundle::verify_bundle with a fresh trust state built from
    /// --root (and --installed), the system clock as the time floor and a
    /// 64 MiB cap. It checks: size, format, root expiry, signature threshold,
    /// expiry, version above --installed, target (--firmware; for a model the
    /// family, features and classes of --manifest, or of the bundle itself
    /// when no --manifest is given, which the output says), payload length
    /// and SHA-256. A node also holds a persisted time floor and its build
    /// time, so it can refuse as expired what passes here.
    Verify {
        /// The root the node trusts.
        #[arg(long, value_name = "ROOT_FILE")]
        root: PathBuf,
        /// The bundle file.
        file: PathBuf,
        /// Version installed on the node for this bundle's kind and name (default: none).
        #[arg(long, value_name = "N")]
        installed: Option<u64>,
        /// The node's firmware version (default: this build's workspace version).
        #[arg(long, value_parser = update::parse_firmware, default_value = env!("CARGO_PKG_VERSION"))]
        firmware: [u16; 3],
        /// The node's model manifest: the model target it runs.
        #[arg(long, value_name = "NODE_MANIFEST")]
        manifest: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a bundle: metadata, payload hash, signatures' key ids, size; settings: the patch.
    Inspect {
        /// The bundle file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a bundle to one node over the broker and follow it to the
    /// install's result. Exit 0 installed, 1 refused, rolled back or the
    /// transfer timed out, 2 usage or I/O, 3 deferred (the node keeps it and
    /// installs it when its power allows), 4 queued or on trial with no
    /// final result within --result-timeout-s. A cut transfer resumes where
    /// the node's copy ends.
    Publish(PublishArgs),
}

#[derive(clap::Args)]
struct PublishArgs {
    /// The bundle file.
    file: PathBuf,
    /// The broker and this operator's TLS files.
    #[command(flatten)]
    conn: field_tools::broker_args::BrokerArgs,
    /// The node's id.
    #[arg(long)]
    node: String,
    /// First topic level.
    #[arg(long, default_value = "field")]
    prefix: String,
    /// Client id.
    #[arg(long, default_value = "field-tools-publish")]
    client_id: String,
    /// Chunk size, bytes (at most 32768).
    #[arg(long, default_value_t = 8192)]
    chunk: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Once the node has the bundle, wait this many seconds for the
    /// install's result (0: end when the node has it queued).
    #[arg(long, default_value_t = 300)]
    result_timeout_s: u64,
}

#[derive(clap::Args)]
struct PackArgs {
    /// What the bundle carries.
    #[arg(long, value_enum)]
    kind: BundleKind,
    /// Model: its manifest (the ONNX file is read beside it).
    #[arg(long, value_name = "MANIFEST.toml")]
    manifest: Option<PathBuf>,
    /// Settings: the patch.
    #[arg(long, value_name = "PATCH.toml")]
    patch: Option<PathBuf>,
    /// Settings: the channel name (default `settings`). Model: must be the manifest's name.
    #[arg(long)]
    name: Option<String>,
    /// Bundle version; a node takes only a version above the one it installed.
    #[arg(long)]
    version: u64,
    /// Expiry: RFC 3339 time, date (YYYY-MM-DD, UTC) or days from now.
    #[arg(long, value_name = "DATE_OR_DAYS", allow_hyphen_values = true)]
    expires: Expires,
    /// Lowest firmware version that may take it.
    #[arg(long, value_parser = update::parse_firmware, default_value = "0.1.0")]
    min_firmware: [u16; 3],
    /// Model: self-test vectors, JSON list of {inputs, expected_class, probabilities, tolerance}.
    #[arg(long, value_name = "FILE.json")]
    self_tests: Option<PathBuf>,
    /// Where to write the unsigned bundle.
    #[arg(long)]
    out: PathBuf,
}

/// Prints a report (text or JSON, warnings on stderr) or an error; returns
/// the exit code.
fn finish<T: Outcome>(result: Result<T, UpdateError>, json: bool) -> ExitCode {
    match result {
        Ok(report) => {
            for w in report.warnings() {
                eprintln!("field-tools: warning: {w}");
            }
            if json {
                match serde_json::to_value(&report) {
                    Ok(mut v) => {
                        if let Some(o) = v.as_object_mut() {
                            o.insert("ok".into(), true.into());
                        }
                        println!("{v}");
                    }
                    Err(e) => {
                        eprintln!("field-tools: cannot write JSON: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                println!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("field-tools: {e}");
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "ok": false,
                        "code": e.code(),
                        "error": e.to_string(),
                        "exit": e.exit_code(),
                    })
                );
            }
            ExitCode::from(e.exit_code())
        }
    }
}

fn run_update(command: UpdateCommand) -> ExitCode {
    use update::{bundle_cmd, keys_cmd, root_cmd};
    match command {
        UpdateCommand::Keys {
            command: KeysCommand::Generate { out },
        } => finish(keys_cmd::generate(&out), false),
        UpdateCommand::Root { command } => match command {
            RootCommand::Init(a) => finish(
                root_cmd::init(&root_cmd::InitArgs {
                    root_keys: a.root_keys,
                    root_threshold: a.root_threshold,
                    bundle_keys: a.bundle_keys,
                    bundle_threshold: a.bundle_threshold,
                    version: a.version,
                    expires: a.expires,
                    sign: a.sign,
                    out: a.out,
                }),
                false,
            ),
            RootCommand::Inspect { file, json } => finish(root_cmd::inspect(&file), json),
            RootCommand::Verify { trusted, new } => finish(root_cmd::verify(&trusted, &new), false),
        },
        UpdateCommand::Bundle { command } => match command {
            BundleCommand::Pack(a) => finish(
                bundle_cmd::pack(&bundle_cmd::PackArgs {
                    kind: match a.kind {
                        BundleKind::Model => models::bundle::Kind::Model,
                        BundleKind::Settings => models::bundle::Kind::Settings,
                    },
                    manifest: a.manifest,
                    patch: a.patch,
                    name: a.name,
                    version: a.version,
                    expires: a.expires,
                    min_firmware: a.min_firmware,
                    self_tests: a.self_tests,
                    out: a.out,
                }),
                false,
            ),
            BundleCommand::Sign { key, file } => finish(bundle_cmd::sign(&key, &file), false),
            BundleCommand::Verify {
                root,
                file,
                installed,
                firmware,
                manifest,
                json,
            } => finish(
                bundle_cmd::verify(&bundle_cmd::VerifyArgs {
                    root,
                    file,
                    installed,
                    firmware,
                    manifest,
                }),
                json,
            ),
            BundleCommand::Inspect { file, json } => finish(bundle_cmd::inspect(&file), json),
            BundleCommand::Publish(a) => run_publish(a),
        },
    }
}

fn run_publish(a: PublishArgs) -> ExitCode {
    let tls = match a.conn.tls() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("field-tools: {e}");
            return ExitCode::from(2);
        }
    };
    let bytes = match std::fs::read(&a.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("field-tools: {}: {e}", a.file.display());
            return ExitCode::from(2);
        }
    };
    let opts = field_tools::update::publish::PublishOptions {
        broker: a.conn.broker,
        tls,
        prefix: a.prefix,
        node: a.node,
        client_id: a.client_id,
        chunk: a.chunk,
        step_timeout: std::time::Duration::from_secs(5),
        overall_timeout: std::time::Duration::from_secs(a.timeout_s),
        result_timeout: std::time::Duration::from_secs(a.result_timeout_s),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("field-tools: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    // On a terminal the transfer is a progress bar; in a log or a pipe,
    // one line per report from the node.
    let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
        let bar = indicatif::ProgressBar::new(bytes.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let result = rt.block_on(field_tools::update::publish::publish(&opts, &bytes, |p| {
        if let Some(bar) = &bar {
            if p.total > 0 {
                bar.set_length(p.total);
            }
            bar.set_position(p.received);
            bar.set_message(p.state.clone());
            if !matches!(p.state.as_str(), "receiving" | "queued") {
                bar.println(format!("{} {}: {}", p.transfer, p.state, p.reason));
            }
            return;
        }
        let pct = if p.total == 0 {
            100.0
        } else {
            p.received as f64 * 100.0 / p.total as f64
        };
        match p.state.as_str() {
            "receiving" | "queued" => eprintln!(
                "{} {:>10} / {} bytes ({pct:5.1} %) {}",
                p.transfer, p.received, p.total, p.state
            ),
            _ => eprintln!("{} {}: {}", p.transfer, p.state, p.reason),
        }
    }));
    if let Some(bar) = bar {
        bar.finish();
    }
    use field_tools::update::publish::Ended;
    match result {
        Ok((end, p)) => {
            let what = match end {
                Ended::Installed => format!("installed ({})", p.reason),
                Ended::Deferred => format!(
                    "deferred: {}; the node keeps it and installs it when its power allows",
                    p.reason
                ),
                Ended::Pending => format!(
                    "{} on the node, no result yet; `fieldnode update status` on the node, or its status records, tell the result",
                    p.state
                ),
            };
            println!(
                "{}: transfer {}: {} {} version {}: {what}",
                a.file.display(),
                p.transfer,
                p.kind,
                p.name,
                p.version
            );
            ExitCode::from(end.exit_code())
        }
        Err(e) => {
            eprintln!("field-tools: {}: {e}", a.file.display());
            ExitCode::from(e.exit_code())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
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

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Update(command) => return Ok(run_update(command)),
        Command::Link(args) => return Ok(field_tools::link::run(args)),
        Command::Pki(args) => return Ok(field_tools::pki::run(args)),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "field-tools",
                &mut std::io::stdout(),
            );
        }
        Command::Pull(args) => {
            let summary = pull::cli::run(args)?;
            eprintln!("{}", pull::cli::summary_line(&summary));
        }
        Command::Bridge(args) => bridge::cli::run(args)?,
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
    Ok(ExitCode::SUCCESS)
}
