//! `field-tools bridge`: its arguments, its logging (with the flood limit
//! on repeated warnings) and its run until a stop signal.

use std::path::PathBuf;

use super::RunError;

#[derive(clap::Args)]
pub struct BridgeArgs {
    /// Address to listen on for RockBLOCK's HTTP POST (e.g. 0.0.0.0:8080).
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    /// The broker and the bridge's TLS files (CN `field-bridge`).
    #[command(flatten)]
    pub conn: crate::broker_args::BrokerArgs,
    /// TOML file mapping modem IMEIs to node ids (`[nodes]` table).
    #[arg(long)]
    pub nodes: PathBuf,
    /// First topic level.
    #[arg(long, default_value = "field")]
    pub prefix: String,
    /// RockBLOCK's RSA public key (PEM): callbacks must carry an RS256 JWT it verifies.
    #[arg(
        long,
        conflicts_with = "shared_secret",
        required_unless_present = "shared_secret"
    )]
    pub jwt_public_key: Option<PathBuf>,
    /// Shared secret for HS256 JWTs (a relay of your own), instead of --jwt-public-key.
    #[arg(long, env = "BRIDGE_SHARED_SECRET", hide_env_values = true)]
    pub shared_secret: Option<String>,
    /// MQTT client id.
    #[arg(long, default_value = "field-bridge")]
    pub client_id: String,
    /// Seconds a callback waits for the broker's acknowledgements before answering 503.
    #[arg(long, default_value_t = 20)]
    pub publish_timeout: u64,
}

/// Runs the bridge until SIGINT or SIGTERM.
pub fn run(a: BridgeArgs) -> Result<(), RunError> {
    let tls = a
        .conn
        .tls()
        .map_err(|_| RunError::Args("give all of --ca, --cert and --key, or none"))?;
    let auth = match (a.jwt_public_key, a.shared_secret) {
        (Some(path), _) => super::Auth::Rs256PublicKey(path),
        (None, Some(secret)) => super::Auth::Hs256Secret(secret),
        (None, None) => {
            return Err(RunError::Args(
                "give --jwt-public-key PEM or --shared-secret S",
            ));
        }
    };
    let cfg = super::RunConfig {
        listen: a.listen,
        broker: a.conn.broker,
        tls,
        nodes: a.nodes,
        prefix: a.prefix,
        auth,
        client_id: a.client_id,
        publish_timeout: std::time::Duration::from_secs(a.publish_timeout.max(1)),
    };
    // A flood of bad callbacks writes a few lines and a periodic count, not
    // one warning per request.
    let flood = logflood::FloodGate::new(logflood::FloodLimit::default());
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with(flood.clone())
            .with(
                // Colour only on a terminal: journald gets plain text.
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
            .init();
    }
    if let Err(e) = flood.spawn_summaries(flood.limit().window) {
        tracing::warn!(error = %e, "cannot start the log summary thread; summaries are written at exit only");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let result = rt.block_on(super::run(cfg, stop_signal()));
    flood.emit_summaries();
    result
}

/// Completes on SIGINT or, on Unix, SIGTERM (a service manager's stop).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    r = tokio::signal::ctrl_c() => if let Err(e) = r {
                        tracing::error!(error = %e, "cannot wait for ctrl-c; stopping");
                    },
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot wait for SIGTERM; only ctrl-c stops the bridge")
            }
        }
    }
    if let Err(e) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %e, "cannot wait for ctrl-c; stopping");
    }
}
