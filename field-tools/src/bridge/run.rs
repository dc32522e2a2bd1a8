//! `field-tools bridge` as a whole: load the nodes file and the key, parse
//! the broker URL, start the publisher, bind the listener and serve until
//! shutdown. Every start-up mistake is a [`RunError`] naming what is wrong.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use uplink::mqtt::TlsFiles;

use super::auth::{KeyError, Verifier};
use super::nodes::{Nodes, NodesError};
use super::publisher::{Publisher, PublisherOptions, StartError};
use super::server::{BridgeOptions, serve};

/// How callbacks are authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    /// RS256 with the RSA public key in this PEM file (what RockBLOCK sends).
    Rs256PublicKey(PathBuf),
    /// HS256 with a shared secret (a relay of your own).
    Hs256Secret(String),
}

/// Everything `field-tools bridge` is given.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Address to listen on for callbacks.
    pub listen: SocketAddr,
    /// `mqtts://host[:port]` (mutual TLS) or `mqtt://host[:port]`.
    pub broker: String,
    /// TLS files; required for `mqtts://`, refused for `mqtt://`.
    pub tls: Option<TlsFiles>,
    /// The nodes file.
    pub nodes: PathBuf,
    /// First topic level.
    pub prefix: String,
    /// How callbacks are authenticated.
    pub auth: Auth,
    /// MQTT client id.
    pub client_id: String,
    /// How long a callback waits for its PUBACKs.
    pub publish_timeout: Duration,
}

/// Why the bridge could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The broker URL is not `mqtts://host[:port]` or `mqtt://host[:port]`.
    #[error("broker URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// TLS files missing for `mqtts://` or given for `mqtt://`.
    #[error("{0}")]
    TlsFiles(&'static str),
    /// The prefix cannot be a topic level.
    #[error("prefix {0:?} is empty or contains '/', '+', '#' or NUL")]
    Prefix(String),
    /// The nodes file.
    #[error(transparent)]
    Nodes(#[from] NodesError),
    /// The key or secret.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The TLS files could not be loaded.
    #[error(transparent)]
    Publisher(#[from] StartError),
    /// The arguments are incomplete.
    #[error("{0}")]
    Args(&'static str),
    /// The async runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Listening or serving failed.
    #[error("HTTP on {addr}: {error}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// Splits `mqtts://host[:port]` / `mqtt://host[:port]` into (tls, host, port).
pub fn parse_broker_url(url: &str) -> Result<(bool, String, u16), RunError> {
    let bad = |reason| RunError::Url {
        url: url.to_string(),
        reason,
    };
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad("scheme must be mqtts:// or mqtt://"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            let port: u16 = p.parse().map_err(|_| bad("port is not a number"))?;
            (h, port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') || port == 0 {
        return Err(bad("no host, or a path, or port 0"));
    }
    Ok((tls, host.to_string(), port))
}

/// Starts the bridge and serves until `shutdown` completes.
pub async fn run(
    cfg: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let (tls, host, port) = parse_broker_url(&cfg.broker)?;
    match (tls, &cfg.tls) {
        (true, None) => return Err(RunError::TlsFiles("mqtts:// needs --ca, --cert and --key")),
        (false, Some(_)) => {
            return Err(RunError::TlsFiles(
                "--ca/--cert/--key given for a plain mqtt:// broker; use mqtts://",
            ));
        }
        _ => {}
    }
    if cfg.prefix.is_empty() || cfg.prefix.contains(['/', '+', '#', '\0']) {
        return Err(RunError::Prefix(cfg.prefix));
    }
    let nodes = Nodes::load(&cfg.nodes)?;
    let verifier = match &cfg.auth {
        Auth::Rs256PublicKey(path) => Verifier::rs256_file(path)?,
        Auth::Hs256Secret(secret) => Verifier::hs256(secret.as_bytes())?,
    };
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|error| RunError::Http {
            addr: cfg.listen,
            error,
        })?;
    let publisher = Publisher::start(&PublisherOptions {
        host,
        port,
        tls: cfg.tls.clone(),
        client_id: cfg.client_id.clone(),
        max_in_flight: 64,
        reconnect_min_ms: 500,
        reconnect_max_ms: 60_000,
    })?;
    tracing::info!(
        listen = %cfg.listen,
        broker = %cfg.broker,
        modems = nodes.len(),
        algorithm = ?verifier.algorithm(),
        "ground bridge listening"
    );
    let opts = BridgeOptions {
        nodes,
        verifier,
        prefix: cfg.prefix,
        publish_timeout: cfg.publish_timeout,
        recent: 4096,
    };
    serve(listener, opts, publisher, shutdown)
        .await
        .map_err(|error| RunError::Http {
            addr: cfg.listen,
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        let ok = |u: &str| parse_broker_url(u).expect(u);
        assert_eq!(
            ok("mqtts://127.0.0.1:8884"),
            (true, "127.0.0.1".into(), 8884)
        );
        assert_eq!(
            ok("mqtts://broker.example"),
            (true, "broker.example".into(), 8883)
        );
        assert_eq!(ok("mqtt://localhost/"), (false, "localhost".into(), 1883));
        for bad in [
            "http://x",
            "mqtts://",
            "mqtts://h:port",
            "mqtts://h:0",
            "mqtts://h/p",
        ] {
            assert!(parse_broker_url(bad).is_err(), "{bad}");
        }
    }
}
