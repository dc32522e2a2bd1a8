//! `field-tools pull`: the researcher's subscriber. It connects with a
//! persistent session (clean_session = false, a fixed client id) so that the
//! broker queues what nodes publish while it is away, subscribes at QoS 1 to
//! `<prefix>/<node>/events` and `/status`, decodes each payload
//! ([`decode_payload`]), drops duplicates by (node, id), writes JSON lines or
//! CSV, and acknowledges each message only after it is written and flushed
//! (manual acks): a crash between receipt and output makes the broker send
//! it again, never lose it.

pub mod cli;

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::time::Duration;

use messages::{EventJson, Message, StatusRecord};
use rumqttc::{
    AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport,
};
use uplink::mqtt::TlsFiles;
use uplink::mqtt::backoff::Backoff;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullFormat {
    /// One JSON object per line: events as [`EventJson`], status reports as
    /// the status record with `"record": "status"`.
    Jsonl,
    /// Events as CSV (the columns of `field-tools events`); status reports are counted, not written.
    Csv,
}

/// What to pull and how.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// `mqtts://host:port` (TLS, default port 8883) or `mqtt://host:port` (plain TCP, 1883).
    pub broker: String,
    /// Mutual TLS files; required for `mqtts://`.
    pub tls: Option<TlsFiles>,
    /// First topic level.
    pub prefix: String,
    /// A node id, or `all`.
    pub node: String,
    /// Only records at or after this time (event start, status time), ms since the epoch.
    pub since_ms: Option<i64>,
    /// Output format.
    pub format: PullFormat,
    /// The persistent session's client id: keep it the same between runs.
    pub client_id: String,
    /// Exit after this long without a message (None: run until interrupted).
    pub idle_exit: Option<Duration>,
}

/// Why pulling failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The `--broker` URL is not `mqtt[s]://host[:port]`.
    #[error("broker URL {0:?}: expected mqtts://host[:port] or mqtt://host[:port]")]
    BadUrl(String),
    /// `mqtts://` without TLS files.
    #[error("mqtts:// needs --ca, --cert and --key")]
    NoTls,
    /// `--node` is not a single topic level.
    #[error("--node {0:?} must not contain '/', '+' or '#'")]
    BadNode(String),
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] uplink::mqtt::TlsError),
    /// The first connection failed.
    #[error("connecting to {broker}: {reason}")]
    Connect {
        /// The broker.
        broker: String,
        /// Why.
        reason: String,
    },
    /// The broker refused the subscription (ACL).
    #[error("the broker refused the subscription to {0}")]
    Subscribe(String),
    /// Reading `--out` or writing the output failed.
    #[error("output: {0}")]
    Output(String),
}

/// A payload that is not a record this build understands.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PayloadError {
    /// Not `<prefix>/<node>/events` or `/status`.
    #[error("unexpected topic {0}")]
    Topic(String),
    /// The binary record did not decode.
    #[error("binary record: {0}")]
    Binary(#[from] messages::DecodeError),
    /// The JSON record did not parse.
    #[error("JSON record: {0}")]
    Json(String),
    /// The record names another node than its topic (whose node the broker authenticated).
    #[error("record of node {record} on the topic of node {topic}")]
    NodeMismatch {
        /// In the record.
        record: String,
        /// In the topic.
        topic: String,
    },
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// An event, in its JSON view.
    Event(EventJson),
    /// A status report.
    Status(StatusRecord),
}

impl Record {
    /// The node and id that identify it (the de-duplication key).
    pub fn key(&self) -> (&str, u64) {
        match self {
            Record::Event(e) => (&e.node_id, e.id),
            Record::Status(s) => (&s.node_id, s.id),
        }
    }

    /// Event start or status time, ms since the epoch.
    pub fn time_ms(&self) -> i64 {
        match self {
            Record::Event(e) => e.start_ms,
            Record::Status(s) => s.time_ms,
        }
    }
}

/// Decodes one message. The single place that knows payload formats:
/// `<prefix>/<node>/events|status` with the binary record
/// (`messages::decode_message`, first byte = kind/version) or JSON (first
/// byte `{`: [`EventJson`] on `events`, the status record on `status`).
/// Extend here for new record kinds (e.g. SBD packets relayed by the ground bridge).
pub fn decode_payload(topic: &str, bytes: &[u8]) -> Result<Record, PayloadError> {
    let mut levels = topic.rsplit('/');
    let (leaf, node) = match (levels.next(), levels.next(), levels.next()) {
        (Some(leaf), Some(node), Some(_prefix)) => (leaf, node),
        _ => return Err(PayloadError::Topic(topic.to_string())),
    };
    let json = |e: serde_json::Error| PayloadError::Json(e.to_string());
    let record = match (leaf, bytes.first()) {
        ("events", Some(b'{')) => Record::Event(serde_json::from_slice(bytes).map_err(json)?),
        ("status", Some(b'{')) => Record::Status(serde_json::from_slice(bytes).map_err(json)?),
        ("events" | "status", _) => match messages::decode_message(bytes)? {
            Message::Event(e) => Record::Event(EventJson::from(&e)),
            Message::Status(s) => Record::Status(s),
        },
        _ => return Err(PayloadError::Topic(topic.to_string())),
    };
    let (record_node, _) = record.key();
    if record_node != node {
        return Err(PayloadError::NodeMismatch {
            record: record_node.to_string(),
            topic: node.to_string(),
        });
    }
    Ok(record)
}

/// What a pull did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullSummary {
    /// Records written.
    pub written: u64,
    /// Duplicates dropped (already seen, in this run or in `--out`).
    pub duplicates: u64,
    /// Records before `--since`.
    pub too_old: u64,
    /// Status reports not written (CSV).
    pub status_skipped: u64,
    /// Payloads that did not decode.
    pub bad: u64,
}

pub(crate) fn parse_url(url: &str) -> Result<(bool, String, u16), PullError> {
    let bad = || PullError::BadUrl(url.to_string());
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    Ok((tls, host.to_string(), port))
}

const CSV_COLUMNS: &[&str] = &crate::events::CSV_COLUMNS;

/// The output: de-duplication and formatting.
pub struct Sink<W: Write> {
    out: W,
    format: PullFormat,
    since_ms: Option<i64>,
    seen: HashSet<(String, u64)>,
    header_written: bool,
    /// Counts so far.
    pub summary: PullSummary,
}

impl<W: Write> Sink<W> {
    /// A sink writing to `out`. `seen` pre-loads de-duplication keys (from an
    /// earlier output); `header_written` says a CSV header is already there.
    pub fn new(
        out: W,
        format: PullFormat,
        since_ms: Option<i64>,
        seen: HashSet<(String, u64)>,
        header_written: bool,
    ) -> Self {
        Sink {
            out,
            format,
            since_ms,
            seen,
            header_written,
            summary: PullSummary::default(),
        }
    }

    /// Decodes, filters, de-duplicates and writes one message; flushed on return.
    pub fn accept(&mut self, topic: &str, payload: &[u8]) -> Result<(), PullError> {
        let record = match decode_payload(topic, payload) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("field-tools pull: skipped a message on {topic}: {e}");
                self.summary.bad += 1;
                return Ok(());
            }
        };
        if self.since_ms.is_some_and(|since| record.time_ms() < since) {
            self.summary.too_old += 1;
            return Ok(());
        }
        let (node, id) = record.key();
        if !self.seen.insert((node.to_string(), id)) {
            self.summary.duplicates += 1;
            return Ok(());
        }
        let o = |e: std::io::Error| PullError::Output(e.to_string());
        let j = |e: serde_json::Error| PullError::Output(e.to_string());
        match (self.format, &record) {
            (PullFormat::Jsonl, Record::Event(e)) => {
                serde_json::to_writer(&mut self.out, e).map_err(j)?;
                writeln!(self.out).map_err(o)?;
            }
            (PullFormat::Jsonl, Record::Status(s)) => {
                let mut v = serde_json::to_value(s).map_err(j)?;
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("record".into(), "status".into());
                }
                serde_json::to_writer(&mut self.out, &v).map_err(j)?;
                writeln!(self.out).map_err(o)?;
            }
            (PullFormat::Csv, Record::Event(e)) => {
                let mut w = csv::Writer::from_writer(&mut self.out);
                let c = |e: csv::Error| PullError::Output(e.to_string());
                if !self.header_written {
                    w.write_record(CSV_COLUMNS).map_err(c)?;
                    self.header_written = true;
                }
                let row = crate::events::csv_row(e).map_err(j)?;
                w.write_record(&row).map_err(c)?;
                w.flush().map_err(o)?;
            }
            (PullFormat::Csv, Record::Status(_)) => {
                self.summary.status_skipped += 1;
                return Ok(());
            }
        }
        self.out.flush().map_err(o)?;
        self.summary.written += 1;
        Ok(())
    }
}

/// Reads the (node, id) keys of an earlier output file, and whether it has a CSV header.
pub fn read_seen(
    path: &std::path::Path,
    format: PullFormat,
) -> Result<(HashSet<(String, u64)>, bool), PullError> {
    let mut seen = HashSet::new();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((seen, false)),
        Err(e) => return Err(PullError::Output(format!("{}: {e}", path.display()))),
    };
    let err = |e: String| PullError::Output(format!("{}: {e}", path.display()));
    match format {
        PullFormat::Jsonl => {
            for line in std::io::BufReader::new(file).lines() {
                let line = line.map_err(|e| err(e.to_string()))?;
                if line.trim().is_empty() {
                    continue;
                }
                let v: serde_json::Value =
                    serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
                if let (Some(node), Some(id)) = (v["node_id"].as_str(), v["id"].as_u64()) {
                    seen.insert((node.to_string(), id));
                }
            }
            Ok((seen, false))
        }
        PullFormat::Csv => {
            let mut r = csv::Reader::from_reader(file);
            let headers = r.headers().map_err(|e| err(e.to_string()))?.clone();
            let col = |name: &str| headers.iter().position(|h| h == name);
            let (Some(ic), Some(nc)) = (col("id"), col("node_id")) else {
                return Ok((seen, !headers.is_empty()));
            };
            for row in r.records() {
                let row = row.map_err(|e| err(e.to_string()))?;
                if let (Some(node), Some(Ok(id))) =
                    (row.get(nc), row.get(ic).map(|s| s.parse::<u64>()))
                {
                    seen.insert((node.to_string(), id));
                }
            }
            Ok((seen, true))
        }
    }
}

/// Connects, subscribes and writes records into `sink` until `idle_exit`
/// passes without a message (or forever). The first connection must
/// succeed; later drops are retried with backoff.
pub async fn pull<W: Write>(opts: &PullOptions, sink: &mut Sink<W>) -> Result<(), PullError> {
    let (tls, host, port) = parse_url(&opts.broker)?;
    let node = if opts.node == "all" {
        "+"
    } else {
        opts.node.as_str()
    };
    if opts.node != "all" && (opts.node.is_empty() || opts.node.contains(['/', '+', '#'])) {
        return Err(PullError::BadNode(opts.node.clone()));
    }
    let mut mqtt = MqttOptions::new(opts.client_id.clone(), host, port);
    mqtt.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30));
    if tls {
        let files = opts.tls.as_ref().ok_or(PullError::NoTls)?;
        let config = uplink::mqtt::tls::client_config(files)?;
        mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    let topics = [
        format!("{}/{node}/events", opts.prefix),
        format!("{}/{node}/status", opts.prefix),
    ];
    let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
    let mut backoff = Backoff::new(500, 30_000);
    let mut ever_connected = false;
    let mut subscribed = false;
    let mut unacked: std::collections::VecDeque<rumqttc::Publish> = Default::default();
    loop {
        while let Some(p) = unacked.front() {
            if client.try_ack(p).is_err() {
                break;
            }
            unacked.pop_front();
        }
        let polled = match (opts.idle_exit, subscribed) {
            (Some(idle), true) => match tokio::time::timeout(idle, eventloop.poll()).await {
                Ok(p) => p,
                Err(_) => break,
            },
            _ => eventloop.poll().await,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                ever_connected = true;
                backoff.reset();
                if !ack.session_present {
                    // A new session: (re)subscribe. With a kept session the
                    // broker still has the subscriptions and queued messages.
                    for t in &topics {
                        if let Err(e) = client.try_subscribe(t.clone(), QoS::AtLeastOnce) {
                            return Err(PullError::Connect {
                                broker: opts.broker.clone(),
                                reason: e.to_string(),
                            });
                        }
                    }
                } else {
                    subscribed = true;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                if s.return_codes
                    .contains(&rumqttc::SubscribeReasonCode::Failure)
                {
                    return Err(PullError::Subscribe(topics.join(", ")));
                }
                subscribed = true;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                sink.accept(&p.topic, &p.payload)?;
                // Acknowledge only what is written (or deliberately dropped).
                // A backlog arrives faster than the event loop takes requests:
                // an ack that does not fit waits for the next turn, in order.
                unacked.push_back(p);
            }
            Ok(_) => {}
            Err(e) if !ever_connected => {
                return Err(PullError::Connect {
                    broker: opts.broker.clone(),
                    reason: describe(&e),
                });
            }
            Err(e) => {
                // The broker sends unacknowledged messages again after a
                // reconnect; acks of the old connection's packet ids are void.
                unacked.clear();
                let delay = backoff.next_delay(&mut rand::rng());
                eprintln!(
                    "field-tools pull: connection lost ({}); retrying in {} ms",
                    describe(&e),
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
    // Leave cleanly; the session (subscriptions, queue) stays on the broker.
    if client.try_disconnect().is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
    Ok(())
}

fn describe(e: &ConnectionError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use messages::{EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille};

    fn rec(node: &str, id: u64) -> EventRecord {
        EventRecord {
            id,
            node_id: node.into(),
            start_ms: 1_000 * id as i64,
            duration_ms: 500,
            class: EventClass::Wildlife,
            confidence: Permille(700),
            scores: ModalityScores::default(),
            features: KeyFeatures::default(),
            model: ModelVersion::TRIGGERS_ONLY,
            time: Default::default(),
            mono: None,
        }
    }

    #[test]
    fn binary_and_json_payloads_decode_to_the_same_event() {
        let r = rec("n1", 7);
        let bin = decode_payload("field/n1/events", &messages::encode_event(&r)).expect("bin");
        let json = serde_json::to_vec(&EventJson::from(&r)).expect("json");
        let js = decode_payload("field/n1/events", &json).expect("json");
        assert_eq!(bin, js);
        assert_eq!(bin.key(), ("n1", 7));
    }

    #[test]
    fn bad_payloads_and_topics_are_typed_errors() {
        assert!(matches!(
            decode_payload("field/n1/events", &[9, 1, 2]),
            Err(PayloadError::Binary(_))
        ));
        assert!(matches!(
            decode_payload("field/n1/events", b"{nope"),
            Err(PayloadError::Json(_))
        ));
        assert!(matches!(
            decode_payload("field/n1/cmd", &[1]),
            Err(PayloadError::Topic(_))
        ));
        assert!(matches!(
            decode_payload("events", &[1]),
            Err(PayloadError::Topic(_))
        ));
        assert!(matches!(
            decode_payload("field/n2/events", &messages::encode_event(&rec("n1", 1))),
            Err(PayloadError::NodeMismatch { .. })
        ));
    }

    #[test]
    fn the_sink_drops_duplicates_and_old_records() {
        let mut out = Vec::new();
        let mut sink = Sink::new(
            &mut out,
            PullFormat::Jsonl,
            Some(2_000),
            HashSet::new(),
            false,
        );
        for id in [1, 2, 3, 2, 3, 4] {
            sink.accept("field/n1/events", &messages::encode_event(&rec("n1", id)))
                .expect("accept");
        }
        sink.accept("field/n1/events", b"garbage")
            .expect("bad is skipped");
        let s = sink.summary.clone();
        assert_eq!((s.written, s.duplicates, s.too_old, s.bad), (3, 2, 1, 1));
        let text = String::from_utf8(out).expect("utf8");
        let ids: Vec<u64> = text
            .lines()
            .map(|l| serde_json::from_str::<EventJson>(l).expect("json line").id)
            .collect();
        assert_eq!(ids, vec![2, 3, 4]);
    }

    #[test]
    fn csv_output_has_one_header_and_seeds_dedup_when_appending() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("out.csv");
        for ids in [[1u64, 2], [2, 3]] {
            let (seen, header) = read_seen(&path, PullFormat::Csv).expect("read");
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .expect("open");
            let mut sink = Sink::new(f, PullFormat::Csv, None, seen, header);
            for id in ids {
                sink.accept("field/n1/events", &messages::encode_event(&rec("n1", id)))
                    .expect("accept");
            }
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("id,"), "{text}");
    }

    fn status(node: &str, id: u64) -> StatusRecord {
        StatusRecord {
            id,
            node_id: node.into(),
            time_ms: 5_000,
            uptime_s: 60,
            battery_permille: 300,
            battery_mv: 0,
            power_mode: messages::PowerModeCode::Saving,
            air_temp_c100: None,
            board_temp_c100: None,
            sensors: Default::default(),
            queue: [0; 4],
            drops: Default::default(),
            model: ModelVersion::TRIGGERS_ONLY,
            last_contact_ms: None,
            cause: messages::StatusCause::Periodic,
            update: Default::default(),
            disk: Default::default(),
            clock: Default::default(),
            detection: Some(messages::DetectionHealth {
                events_cut_at_max: 0,
                events_joined: 5,
            }),
            not_stored: Some(messages::NotStored {
                excluded: 0,
                background_dropped: 2,
                uncertain_background: 14,
                sun_heat_rises: 1,
            }),
        }
    }

    #[test]
    fn status_records_with_an_update_result_are_written_whole_and_v1_and_v2_ones_still_read() {
        let periodic = status("n1", 8);
        let bytes = messages::encode_status(&periodic);
        assert_eq!(bytes[0], 11, "status record v8");
        assert_eq!(
            decode_payload("field/n1/status", &bytes).expect("v8"),
            Record::Status(periodic.clone())
        );
        // Without the events not stored (some, 0 excluded, 2 background
        // without a model, 14 unsure background, 1 sun rise): status v7,
        // read with them not reported.
        assert_eq!(&bytes[bytes.len() - 5..], &[1, 0, 2, 14, 1]);
        let mut v7 = bytes[..bytes.len() - 5].to_vec();
        v7[0] = 10;
        let periodic = StatusRecord {
            not_stored: None,
            ..periodic
        };
        assert_eq!(
            decode_payload("field/n1/status", &v7).expect("v7"),
            Record::Status(periodic.clone())
        );
        // Without the detector's counts (some, 0 cut, 5 joined): status v6,
        // read with the counts not reported.
        assert_eq!(&v7[v7.len() - 3..], &[1, 0, 5]);
        let mut v6 = v7[..v7.len() - 3].to_vec();
        v6[0] = 8;
        let periodic = StatusRecord {
            detection: None,
            ..periodic
        };
        assert_eq!(
            decode_payload("field/n1/status", &v6).expect("v6"),
            Record::Status(periodic.clone())
        );
        // Without the last sleep (none: one zero byte): status v5.
        assert_eq!(v6[v6.len() - 1], 0);
        let mut v5 = v6[..v6.len() - 1].to_vec();
        v5[0] = 7;
        assert_eq!(
            decode_payload("field/n1/status", &v5).expect("v5"),
            Record::Status(periodic.clone())
        );
        // Without the (unknown) RTC (three zero bytes): status v4.
        assert_eq!(&v5[v5.len() - 3..], &[0; 3]);
        let mut v4 = v5[..v5.len() - 3].to_vec();
        v4[0] = 6;
        assert_eq!(
            decode_payload("field/n1/status", &v4).expect("v4"),
            Record::Status(periodic.clone())
        );
        // Without the (unknown) clock part (five zero bytes): status v3.
        assert_eq!(&v4[v4.len() - 5..], &[0; 5]);
        let mut v3 = v4[..v4.len() - 5].to_vec();
        v3[0] = 4;
        assert!(decode_payload("field/n1/status", &v3).is_ok(), "v3");
        let bytes = v3;
        // The same record as a node with the version 2 envelope sent it: kind
        // byte 3, without the (unknown) disk part (3 bytes: none, 255, 0).
        assert_eq!(&bytes[bytes.len() - 3..], &[0, 255, 0]);
        let mut v2 = bytes[..bytes.len() - 3].to_vec();
        v2[0] = 3;
        assert_eq!(
            decode_payload("field/n1/status", &v2).expect("v2"),
            Record::Status(periodic.clone())
        );
        // And with the version 1 envelope: kind byte 2, without the cause
        // and the (empty) update part either (5 bytes more).
        let mut v1 = v2[..v2.len() - 5].to_vec();
        v1[0] = 2;
        assert_eq!(
            decode_payload("field/n1/status", &v1).expect("v1"),
            Record::Status(periodic.clone())
        );
        let mut on_update = status("n1", 9);
        on_update.cause = messages::StatusCause::UpdateResult;
        on_update.update = messages::UpdateStatus {
            model_active: 0,
            model_staged: None,
            settings: 0,
            last: Some(messages::UpdateResult {
                kind: messages::BundleKindCode::Model,
                name: messages::ShortText::new("fusion"),
                version: 4,
                result: messages::UpdateOutcome::Deferred,
                reason: messages::ShortText::new("install deferred in saver mode (battery 30%)"),
            }),
        };
        on_update.disk = messages::DiskReport {
            free_mib: Some(61),
            state: messages::DiskStateCode::Evicting,
            evicted: 12,
        };
        on_update.clock.rtc = messages::RtcStatus {
            state: messages::RtcState::Found,
            offset_s: Some(-3),
            cell_mv: Some(2_104),
        };
        on_update.clock.sleep = Some(messages::LastSleep {
            reason: messages::SleepReasonCode::LowBattery,
            slept_s: 5_347,
            planned_s: 5_340,
            wake: messages::WakeCause::Rtc,
        });
        on_update.detection = Some(messages::DetectionHealth {
            events_cut_at_max: 3,
            events_joined: 140,
        });
        on_update.not_stored = Some(messages::NotStored {
            excluded: 0,
            background_dropped: 0,
            uncertain_background: 260,
            sun_heat_rises: 9,
        });
        let mut out = Vec::new();
        let mut sink = Sink::new(&mut out, PullFormat::Jsonl, None, HashSet::new(), false);
        sink.accept("field/n1/status", &messages::encode_status(&on_update))
            .expect("accept");
        sink.accept("field/n1/status", &v1).expect("accept");
        let mut v6_line = v6.clone();
        v6_line[1] = 10; // another id: id 8 is a one-byte varint
        sink.accept("field/n1/status", &v6_line).expect("accept");
        assert_eq!(sink.summary.written, 3);
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines[0]["record"], "status");
        assert_eq!(lines[0]["cause"], "update_result");
        assert_eq!(lines[0]["update"]["last"]["result"], "deferred");
        assert_eq!(lines[0]["update"]["last"]["version"], 4);
        assert_eq!(lines[0]["disk"]["free_mib"], 61);
        assert_eq!(lines[0]["disk"]["state"], "evicting");
        assert_eq!(lines[0]["disk"]["evicted"], 12);
        assert_eq!(
            lines[0]["clock"]["rtc"],
            serde_json::json!({"state": "found", "offset_s": -3, "cell_mv": 2104})
        );
        assert_eq!(
            lines[0]["clock"]["sleep"],
            serde_json::json!({"reason": "low_battery", "slept_s": 5347, "planned_s": 5340, "wake": "rtc"})
        );
        assert_eq!(
            lines[0]["detection"],
            serde_json::json!({"events_cut_at_max": 3, "events_joined": 140})
        );
        assert_eq!(
            lines[0]["not_stored"],
            serde_json::json!({"excluded": 0, "background_dropped": 0, "uncertain_background": 260, "sun_heat_rises": 9})
        );
        // A v6 record and a v1 record: the counts not reported (null).
        assert!(lines[1]["detection"].is_null(), "{}", lines[1]);
        assert!(lines[2]["detection"].is_null(), "{}", lines[2]);
        assert!(lines[1]["not_stored"].is_null(), "{}", lines[1]);
        assert!(lines[2]["not_stored"].is_null(), "{}", lines[2]);
        assert_eq!(lines[2]["id"], 10);
        assert_eq!(lines[1]["clock"]["rtc"]["state"], "unknown");
        assert!(lines[1]["clock"]["sleep"].is_null());
        assert_eq!(lines[1]["cause"], "periodic");
        assert!(lines[1]["update"]["last"].is_null());
        assert!(lines[1]["disk"]["free_mib"].is_null());
        assert_eq!(lines[1]["disk"]["state"], "unknown");
        // The JSON line reads back as the record.
        let back: StatusRecord =
            serde_json::from_str(text.lines().next().expect("line")).expect("a status record");
        assert_eq!(back, on_update);
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtts://127.0.0.1:8884").expect("ok"),
            (true, "127.0.0.1".into(), 8884)
        );
        assert_eq!(
            parse_url("mqtt://broker").expect("ok"),
            (false, "broker".into(), 1883)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("mqtts://:1").is_err());
        assert!(parse_url("mqtts://h:notaport").is_err());
    }
}
