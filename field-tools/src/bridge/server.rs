//! The HTTP side: axum routes `POST /rockblock` (also `POST /`) for the
//! RockBLOCK callback and `GET /health` for monitoring. A callback goes
//! parse → authenticate → modem lookup → recent-duplicate check → decode →
//! publish, and is answered 200 only after the broker acknowledged every
//! record; every refusal is logged with its reason and counted.
//!
//! | outcome | status | RockBLOCK |
//! |---|---|---|
//! | published (or a recent duplicate, or an empty message) | 200 | done |
//! | not form-encoded | 415 | |
//! | form fields missing or malformed, payload undecodable | 400 | |
//! | JWT missing, invalid or not matching the form | 401 | |
//! | unknown IMEI, or a lone record naming another node | 403 | |
//! | broker down, connection lost, PUBACKs late | 503 | retries later |

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};

use super::auth::Verifier;
use super::callback::Callback;
use super::nodes::Nodes;
use super::publisher::{PublishError, Publisher};
use super::recent::Recent;
use super::records::{self, RecordsError};

/// Largest request body taken (a callback is about 2 KB).
pub const MAX_BODY: usize = 64 * 1024;

/// What the HTTP side needs besides the publisher.
pub struct BridgeOptions {
    /// IMEI → node id.
    pub nodes: Nodes,
    /// How callbacks are authenticated.
    pub verifier: Verifier,
    /// First topic level.
    pub prefix: String,
    /// How long a callback waits for its PUBACKs before answering 503.
    pub publish_timeout: Duration,
    /// Deliveries remembered to skip RockBLOCK's retries of published ones.
    pub recent: usize,
}

/// Callbacks counted by outcome (`GET /health` reports them).
#[derive(Debug, Default)]
pub struct Counters {
    /// Published: every record acknowledged.
    pub published: AtomicU64,
    /// Records published.
    pub records: AtomicU64,
    /// Recent duplicates answered 200 without publishing.
    pub duplicates: AtomicU64,
    /// Not form-encoded or malformed fields (415, 400).
    pub bad_request: AtomicU64,
    /// Authentication failed (401).
    pub unauthenticated: AtomicU64,
    /// Unknown IMEI or wrong node (403).
    pub forbidden: AtomicU64,
    /// Payload undecodable (400).
    pub undecodable: AtomicU64,
    /// Broker unavailable or too slow (503).
    pub unavailable: AtomicU64,
}

struct App {
    opts: BridgeOptions,
    publisher: Publisher,
    recent: Mutex<Recent>,
    counters: Counters,
}

type Reply = (StatusCode, String);

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Serves callbacks on `listener` until `shutdown` completes, then stops the publisher.
pub async fn serve(
    listener: tokio::net::TcpListener,
    opts: BridgeOptions,
    publisher: Publisher,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let recent = Mutex::new(Recent::new(opts.recent));
    let app = Arc::new(App {
        opts,
        publisher,
        recent,
        counters: Counters::default(),
    });
    let router = Router::new()
        .route("/", post(callback))
        .route("/rockblock", post(callback))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app.clone());
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    // Every request task has ended with the server; the router held the rest.
    match Arc::try_unwrap(app) {
        Ok(app) => app.publisher.shutdown().await,
        Err(_) => tracing::warn!("bridge state still shared at shutdown; publisher dropped"),
    }
    result
}

async fn health(State(app): State<Arc<App>>) -> Reply {
    let c = &app.counters;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let up = app.publisher.is_connected();
    let body = serde_json::json!({
        "broker": if up { "up" } else { "down" },
        "published": n(&c.published),
        "records": n(&c.records),
        "duplicates": n(&c.duplicates),
        "bad_request": n(&c.bad_request),
        "unauthenticated": n(&c.unauthenticated),
        "forbidden": n(&c.forbidden),
        "undecodable": n(&c.undecodable),
        "unavailable": n(&c.unavailable),
    });
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body.to_string())
}

async fn callback(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Reply {
    let c = &app.counters;
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        let form = ct
            .to_str()
            .is_ok_and(|v| v.trim().starts_with("application/x-www-form-urlencoded"));
        if !form {
            count(&c.bad_request);
            tracing::warn!(content_type = ?ct, "callback rejected: not form-encoded");
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected application/x-www-form-urlencoded\n".into(),
            );
        }
    }
    let cb = match Callback::parse(&body) {
        Ok(cb) => cb,
        Err(e) => {
            count(&c.bad_request);
            tracing::warn!(error = %e, "callback rejected: bad form");
            return (StatusCode::BAD_REQUEST, format!("{e}\n"));
        }
    };
    let imei = cb.imei.as_str();
    let momsn = cb.momsn;
    if let Err(e) = app.opts.verifier.verify(&cb) {
        count(&c.unauthenticated);
        tracing::warn!(imei, momsn, error = %e, "callback rejected: not authenticated");
        return (StatusCode::UNAUTHORIZED, format!("{e}\n"));
    }
    let Some(node) = app.opts.nodes.node_of(imei) else {
        count(&c.forbidden);
        tracing::warn!(imei, momsn, "callback rejected: unknown IMEI");
        return (StatusCode::FORBIDDEN, "unknown IMEI\n".into());
    };
    let key = (cb.imei.clone(), momsn, cb.data.clone());
    if app.recent.lock().is_ok_and(|r| r.contains(&key)) {
        count(&c.duplicates);
        tracing::info!(imei, momsn, node, "callback already published; not again");
        return (StatusCode::OK, "duplicate\n".into());
    }
    if cb.data.is_empty() {
        tracing::info!(
            imei,
            momsn,
            node,
            "callback with an empty message; nothing to publish"
        );
        return (StatusCode::OK, "empty\n".into());
    }
    let records = match records::decode(&cb.data, node) {
        Ok(r) => r,
        Err(e @ RecordsError::WrongNode { .. }) => {
            count(&c.forbidden);
            tracing::warn!(imei, momsn, node, error = %e, "callback rejected: wrong node");
            return (StatusCode::FORBIDDEN, format!("{e}\n"));
        }
        Err(e) => {
            count(&c.undecodable);
            tracing::warn!(imei, momsn, node, bytes = cb.data.len(), error = %e, "callback rejected: undecodable");
            return (StatusCode::BAD_REQUEST, format!("{e}\n"));
        }
    };
    let publishes = records::to_publishes(&records, &app.opts.prefix, node);
    let n = publishes.len();
    let outcome =
        tokio::time::timeout(app.opts.publish_timeout, app.publisher.publish(publishes)).await;
    match outcome {
        Ok(Ok(())) => {
            if let Ok(mut r) = app.recent.lock() {
                r.insert(key);
            }
            count(&c.published);
            c.records.fetch_add(n as u64, Ordering::Relaxed);
            tracing::info!(imei, momsn, node, records = n, "callback published");
            (StatusCode::OK, format!("published {n}\n"))
        }
        Ok(Err(e)) => unavailable(c, imei, momsn, node, &e),
        Err(_) => unavailable(
            c,
            imei,
            momsn,
            node,
            &PublishError::Lost("PUBACKs late".into()),
        ),
    }
}

fn unavailable(c: &Counters, imei: &str, momsn: u32, node: &str, e: &PublishError) -> Reply {
    count(&c.unavailable);
    tracing::warn!(imei, momsn, node, error = %e, "callback not published; RockBLOCK will retry");
    (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"))
}
