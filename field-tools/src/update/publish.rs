//! `field-tools bundle publish`: sends a bundle to one node over the broker
//! (`<prefix>/<node>/update`) and follows its progress on
//! `<prefix>/<node>/update/status`.
//!
//! It announces the bundle (`0x01` and its header), then sends the payload
//! in chunks (`0x02`, the transfer id, the offset, the bytes), one at a
//! time: each chunk goes from the offset the node last reported, so a
//! transfer cut by a lost connection, or by the node restarting, resumes
//! where the node's copy ends. With no answer for `step_timeout`, it
//! announces again (the node answers with what it has). Once the node
//! reports the bundle `queued` (complete and handed to its update task) it
//! waits, without sending, for the update task's result on the same topic:
//! `on_trial` (a model runs its trial bursts; it waits on), then
//! `installed`, `deferred` (kept by the node until power allows),
//! `rolled_back` or `refused`. It ends at a final result, at a refusal of
//! the transfer, when `result_timeout` passes after `queued` without a
//! final result, or after `overall_timeout`.

use std::time::{Duration, Instant};

use models::bundle::Bundle;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::UpdateError;

/// Largest chunk, bytes (the node's MQTT packet limit is 64 KiB).
pub const CHUNK_MAX: usize = 32 * 1024;

/// Where and how to publish.
pub struct PublishOptions {
    /// `mqtts://host:port` or `mqtt://host:port`.
    pub broker: String,
    /// The operator's TLS files.
    pub tls: Option<uplink::mqtt::TlsFiles>,
    /// First topic level.
    pub prefix: String,
    /// The node.
    pub node: String,
    /// Client id.
    pub client_id: String,
    /// Chunk size, bytes.
    pub chunk: usize,
    /// Announce again after this long without an answer.
    pub step_timeout: Duration,
    /// Give up after this long.
    pub overall_timeout: Duration,
    /// After `queued`, wait this long for the install's final result (zero:
    /// end at `queued`).
    pub result_timeout: Duration,
}

/// How a publish ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Installed (a settings patch in force, a model committed after its
    /// trial).
    Installed,
    /// Valid, but the node keeps it until its power allows the install.
    Deferred,
    /// Queued (or on trial) on the node; no final result within the wait.
    Pending,
}

impl Ended {
    /// From a report's state: `None` while the result is still to come.
    pub fn of(state: &str) -> Option<Ended> {
        match state {
            "installed" => Some(Ended::Installed),
            "deferred" => Some(Ended::Deferred),
            _ => None,
        }
    }

    /// The process exit code: 0 installed, 3 deferred, 4 no final result
    /// yet (refusals and failures are 1, usage and I/O 2).
    pub fn exit_code(self) -> u8 {
        match self {
            Ended::Installed => 0,
            Ended::Deferred => 3,
            Ended::Pending => 4,
        }
    }
}

/// A progress report of the node (its `update/status` JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Transfer id, hex.
    pub transfer: String,
    /// `model` or `settings` (empty when the node could not read it).
    #[serde(default)]
    pub kind: String,
    /// The bundle's name.
    #[serde(default)]
    pub name: String,
    /// The bundle's version.
    #[serde(default)]
    pub version: u64,
    /// Payload bytes the node has.
    pub received: u64,
    /// Payload length.
    pub total: u64,
    /// The transfer: `receiving`, `queued` or `refused`; then the install's
    /// result: `on_trial`, `installed`, `deferred`, `rolled_back` or
    /// `refused`.
    pub state: String,
    /// Why, when refused.
    #[serde(default)]
    pub reason: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn failed(code: &'static str, message: impl Into<String>) -> UpdateError {
    UpdateError::Refused {
        code,
        message: message.into(),
    }
}

/// Publishes `bytes` (a whole bundle file); `on_progress` sees every report
/// of this transfer. Returns how it ended and the last report; a refusal
/// (of the transfer or of the install) and a rollback are errors.
pub async fn publish(
    opts: &PublishOptions,
    bytes: &[u8],
    mut on_progress: impl FnMut(&Progress),
) -> Result<(Ended, Progress), UpdateError> {
    let bundle = Bundle::parse(bytes).map_err(|e| failed("malformed", e.to_string()))?;
    let header = bundle
        .header_bytes()
        .map_err(|e| failed("malformed", e.to_string()))?;
    if !bytes.starts_with(&header) {
        return Err(failed(
            "malformed",
            "the bundle's header is not in canonical form",
        ));
    }
    let payload = &bytes[header.len()..];
    let id: [u8; 8] = Sha256::digest(&header)[..8]
        .try_into()
        .map_err(|_| UpdateError::Usage("hash length".into()))?;
    let transfer = hex(&id);
    if opts.node.is_empty() || opts.node.contains(['/', '+', '#']) {
        return Err(UpdateError::Usage(format!(
            "not a node id: {:?}",
            opts.node
        )));
    }
    if !(1..=CHUNK_MAX).contains(&opts.chunk) {
        return Err(UpdateError::Usage(format!(
            "--chunk must be 1..{CHUNK_MAX} bytes"
        )));
    }
    let (tls, host, port) =
        crate::pull::parse_url(&opts.broker).map_err(|e| UpdateError::Usage(e.to_string()))?;
    let mut mqtt = MqttOptions::new(opts.client_id.clone(), host, port);
    mqtt.set_clean_session(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(64 * 1024, 64 * 1024);
    if tls {
        let files = opts
            .tls
            .as_ref()
            .ok_or_else(|| UpdateError::Usage("mqtts:// needs --ca, --cert and --key".into()))?;
        let config = uplink::mqtt::tls::client_config(files)
            .map_err(|e| UpdateError::Usage(e.to_string()))?;
        mqtt.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    }
    let topic = format!("{}/{}/update", opts.prefix, opts.node);
    let status_topic = format!("{topic}/status");
    let mut announce = vec![1u8];
    announce.extend_from_slice(&header);
    let (client, mut eventloop) = AsyncClient::new(mqtt, 16);
    let started = Instant::now();
    let mut last_answer = Instant::now();
    let mut ready = false;
    // Set once the node has the whole bundle: from then on nothing is sent.
    let mut queued: Option<(Instant, Progress)> = None;
    loop {
        if let Some((at, last)) = &queued
            && at.elapsed() >= opts.result_timeout
        {
            return Ok((Ended::Pending, last.clone()));
        }
        if started.elapsed() > opts.overall_timeout {
            return Err(failed(
                "timeout",
                format!("no end of the transfer after {:?}", opts.overall_timeout),
            ));
        }
        let polled = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
        let event = match polled {
            Err(_) => None,
            Ok(Ok(e)) => Some(e),
            Ok(Err(e)) => {
                // rumqttc reconnects at the next poll; resume from there.
                eprintln!("field-tools bundle publish: connection: {e}; retrying");
                ready = false;
                tokio::time::sleep(Duration::from_millis(500)).await;
                None
            }
        };
        match event {
            Some(Event::Incoming(Packet::ConnAck(_))) => {
                client
                    .try_subscribe(status_topic.clone(), QoS::AtLeastOnce)
                    .map_err(|e| failed("broker", e.to_string()))?;
            }
            Some(Event::Incoming(Packet::SubAck(s))) => {
                if s.return_codes
                    .contains(&rumqttc::SubscribeReasonCode::Failure)
                {
                    return Err(failed(
                        "broker",
                        format!("subscription to {status_topic} refused (ACL?)"),
                    ));
                }
                ready = true;
                if queued.is_none() {
                    client
                        .try_publish(topic.clone(), QoS::AtLeastOnce, false, announce.clone())
                        .map_err(|e| failed("broker", e.to_string()))?;
                }
                last_answer = Instant::now();
            }
            Some(Event::Incoming(Packet::Publish(p))) if p.topic == status_topic => {
                let Ok(progress) = serde_json::from_slice::<Progress>(&p.payload) else {
                    continue;
                };
                // Reports of other transfers are not ours; a refusal of a
                // message the node could not even read has no transfer id
                // (only while the transfer runs: later, it is another
                // bundle's).
                let ours = progress.transfer == transfer
                    || (queued.is_none()
                        && progress.transfer.is_empty()
                        && progress.state == "refused");
                if !ours {
                    continue;
                }
                last_answer = Instant::now();
                on_progress(&progress);
                if let Some(end) = Ended::of(&progress.state) {
                    return Ok((end, progress));
                }
                match progress.state.as_str() {
                    "queued" if opts.result_timeout.is_zero() => {
                        return Ok((Ended::Pending, progress));
                    }
                    "queued" | "on_trial" => {
                        let at = queued.as_ref().map_or_else(Instant::now, |(at, _)| *at);
                        queued = Some((at, progress));
                        continue;
                    }
                    "refused" => {
                        return Err(failed("refused_by_node", progress.reason.clone()));
                    }
                    "rolled_back" => {
                        return Err(failed("rolled_back", progress.reason.clone()));
                    }
                    _ => {}
                }
                if queued.is_some() {
                    continue;
                }
                let from = progress.received.min(payload.len() as u64) as usize;
                if from < payload.len() {
                    let end = (from + opts.chunk).min(payload.len());
                    let mut msg = Vec::with_capacity(17 + end - from);
                    msg.push(2u8);
                    msg.extend_from_slice(&id);
                    msg.extend_from_slice(&(from as u64).to_le_bytes());
                    msg.extend_from_slice(&payload[from..end]);
                    client
                        .try_publish(topic.clone(), QoS::AtLeastOnce, false, msg)
                        .map_err(|e| failed("broker", e.to_string()))?;
                }
            }
            _ => {}
        }
        if ready && queued.is_none() && last_answer.elapsed() > opts.step_timeout {
            // Nothing heard: the node may be offline or restarting. Ask
            // again; it answers with what it has.
            client
                .try_publish(topic.clone(), QoS::AtLeastOnce, false, announce.clone())
                .map_err(|e| failed("broker", e.to_string()))?;
            last_answer = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_results_end_the_follow_with_their_exit_codes() {
        assert_eq!(Ended::of("installed"), Some(Ended::Installed));
        assert_eq!(Ended::of("deferred"), Some(Ended::Deferred));
        for going_on in ["receiving", "queued", "on_trial", "refused", "rolled_back"] {
            assert_eq!(Ended::of(going_on), None, "{going_on}");
        }
        assert_eq!(Ended::Installed.exit_code(), 0);
        assert_eq!(Ended::Deferred.exit_code(), 3);
        assert_eq!(Ended::Pending.exit_code(), 4);
    }

    #[test]
    fn a_result_report_reads_and_an_older_progress_report_too() {
        let p: Progress = serde_json::from_str(
            r#"{"transfer":"00aa","kind":"model","name":"fusion","version":4,"received":9,"total":9,"state":"on_trial","reason":"self-test passed"}"#,
        )
        .expect("a result");
        assert_eq!(
            (p.kind.as_str(), p.version, p.state.as_str()),
            ("model", 4, "on_trial")
        );
        let old: Progress = serde_json::from_str(
            r#"{"transfer":"00aa","received":0,"total":9,"state":"receiving"}"#,
        )
        .expect("a progress report");
        assert_eq!(old.version, 0);
    }
}
