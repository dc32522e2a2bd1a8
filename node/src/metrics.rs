//! An optional Prometheus endpoint for sites with a local network
//! (`[metrics] listen`, off by default): `GET /metrics` answers the figures
//! of a status record built at the time of the scrape, in the Prometheus
//! text format (`prometheus-client`). Nothing is counted for it: it reads
//! what the status record reads, so a scrape costs one record's build and
//! never touches the store's files.

use std::net::SocketAddr;

use messages::{PowerModeCode, Priority, SensorState, StatusRecord};
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::uplink::{NodeTime, StatusSource};

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsConfig {
    /// Address to serve `/metrics` on, e.g. `"127.0.0.1:9464"` or
    /// `"0.0.0.0:9464"` on a trusted local network. Unset: no endpoint.
    pub listen: Option<SocketAddr>,
}

type Labels = Vec<(String, String)>;

fn gauge(reg: &mut Registry, name: &str, help: &str, v: i64) {
    let g: Gauge = Gauge::default();
    g.set(v);
    reg.register(name, help, g);
}

fn family(reg: &mut Registry, name: &str, help: &str, rows: &[(Labels, i64)]) {
    let f = Family::<Labels, Gauge>::default();
    for (labels, v) in rows {
        f.get_or_create(labels).set(*v);
    }
    reg.register(name, help, f);
}

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

fn sensor_value(s: SensorState) -> i64 {
    match s {
        SensorState::Ok => 2,
        SensorState::Degraded => 1,
        SensorState::Absent => 0,
    }
}

/// The record's figures in the Prometheus text format. Every metric is
/// prefixed `fieldnode_` and carries the node id as a label where a
/// scrape of several nodes would need it (the `node` label on
/// `fieldnode_info`; Prometheus adds the target's own labels).
pub fn render(r: &StatusRecord) -> String {
    let mut reg = Registry::with_prefix("fieldnode");
    family(
        &mut reg,
        "info",
        "The node's id and the model version in use (value 1)",
        &[(
            vec![
                ("node".into(), r.node_id.clone()),
                ("model_version".into(), r.model.0.to_string()),
            ],
            1,
        )],
    );
    gauge(
        &mut reg,
        "uptime_seconds",
        "Seconds since the node started",
        i64::from(r.uptime_s),
    );
    gauge(
        &mut reg,
        "battery_permille",
        "Battery state of charge, permille",
        i64::from(r.battery_permille),
    );
    gauge(
        &mut reg,
        "battery_millivolts",
        "Battery voltage, mV (0 when not measured)",
        i64::from(r.battery_mv),
    );
    let mode = |m: PowerModeCode| i64::from(r.power_mode == m);
    family(
        &mut reg,
        "power_mode",
        "The power mode (1 for the current one)",
        &[
            (label("mode", "normal"), mode(PowerModeCode::Normal)),
            (label("mode", "saving"), mode(PowerModeCode::Saving)),
            (label("mode", "survival"), mode(PowerModeCode::Survival)),
        ],
    );
    let mut temps = Vec::new();
    if let Some(t) = r.air_temp_c100 {
        temps.push((label("sensor", "air"), i64::from(t)));
    }
    if let Some(t) = r.board_temp_c100 {
        temps.push((label("sensor", "board"), i64::from(t)));
    }
    family(
        &mut reg,
        "temperature_centidegrees",
        "Temperature, 0.01 degC (absent when unknown)",
        &temps,
    );
    let s = &r.sensors;
    family(
        &mut reg,
        "sensor_state",
        "Sensor health: 2 ok, 1 degraded, 0 absent",
        &[
            (label("sensor", "microphone"), sensor_value(s.microphone)),
            (label("sensor", "camera"), sensor_value(s.camera)),
            (label("sensor", "climate"), sensor_value(s.climate)),
            (label("sensor", "model"), sensor_value(s.model)),
        ],
    );
    let queue: Vec<(Labels, i64)> = Priority::ALL
        .iter()
        .map(|p| (label("priority", p.as_str()), i64::from(r.queue[p.index()])))
        .collect();
    family(
        &mut reg,
        "outbox_items",
        "Items waiting in the outbox, per priority",
        &queue,
    );
    family(
        &mut reg,
        "outbox_dropped",
        "Items that left the outbox without delivery since it was made, per reason",
        &[
            (
                label("reason", "evicted"),
                i64::from(r.drops.evicted_budget),
            ),
            (label("reason", "expired"), i64::from(r.drops.expired_ttl)),
            (label("reason", "corrupt"), i64::from(r.drops.corrupt)),
        ],
    );
    // The detector's health (status record v7): counts since the node
    // started, so they fall back to 0 at a restart. A record that does not
    // report them (none) leaves both series out.
    if let Some(d) = &r.detection {
        gauge(
            &mut reg,
            "events_cut_at_max",
            "Events the detector cut at their maximum length ([detector.merge] max_event_ms) since the node started: something kept a trigger on",
            i64::from(d.events_cut_at_max),
        );
        gauge(
            &mut reg,
            "events_joined",
            "Events joined into the event before them (same class within [fusion] join_gap_ms, stored as one bout) since the node started",
            i64::from(d.events_joined),
        );
    }
    // The events found and not stored (status record v8), by reason: counts
    // since the node started. A record that does not report them leaves
    // the series out.
    if let Some(n) = &r.not_stored {
        family(
            &mut reg,
            "events_not_stored",
            "Events the node found and did not store since it started, per reason: excluded class, background without a model verdict, unsure background, heat rise put down to the sun",
            &[
                (label("reason", "excluded"), i64::from(n.excluded)),
                (
                    label("reason", "background_dropped"),
                    i64::from(n.background_dropped),
                ),
                (
                    label("reason", "uncertain_background"),
                    i64::from(n.uncertain_background),
                ),
                (
                    label("reason", "sun_heat_rise"),
                    i64::from(n.sun_heat_rises),
                ),
            ],
        );
    }
    if let Some(t) = r.last_contact_ms {
        gauge(
            &mut reg,
            "last_contact_timestamp_seconds",
            "Last confirmed delivery on any link, Unix seconds",
            t / 1000,
        );
    }
    family(
        &mut reg,
        "installed_version",
        "Installed versions of signed updates (0 = none)",
        &[
            (
                label("kind", "model"),
                i64::try_from(r.update.model_active).unwrap_or(i64::MAX),
            ),
            (
                label("kind", "settings"),
                i64::try_from(r.update.settings).unwrap_or(i64::MAX),
            ),
        ],
    );
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &reg);
    out
}

/// Serves `/metrics` on `listener` until the returned task is dropped or
/// aborted. Each scrape builds a status record (on a blocking thread: it
/// reads the store's counters).
pub fn serve(
    listener: tokio::net::TcpListener,
    status: StatusSource,
    time: NodeTime,
) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (status, time) = (status.clone(), time.clone());
            async move {
                let body =
                    tokio::task::spawn_blocking(move || render(&status.build(0, time.now_ms())))
                        .await;
                match body {
                    Ok(text) => (
                        axum::http::StatusCode::OK,
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    ),
                    Err(e) => (
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        [(axum::http::header::CONTENT_TYPE, "text/plain")],
                        format!("status record failed: {e}\n"),
                    ),
                }
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    })
}

/// Binds `[metrics] listen` and serves it, when set. A bind that fails is
/// logged and the node runs on without the endpoint.
pub async fn start_if_configured(
    cfg: &MetricsConfig,
    status: &StatusSource,
    time: NodeTime,
) -> Option<tokio::task::JoinHandle<()>> {
    let addr = cfg.listen?;
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => {
            tracing::info!(listen = %addr, "metrics endpoint serving /metrics");
            Some(serve(l, status.clone(), time))
        }
        Err(e) => {
            tracing::error!(listen = %addr, error = %e, "metrics endpoint not started");
            None
        }
    }
}

/// Stops the endpoint when dropped (the node's run ends).
pub struct StopOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
