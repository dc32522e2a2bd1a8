//! The MQTT link (`uplink::mqtt`) against a real mosquitto with mutual TLS
//! and an ACL (`hil_tests::mosquitto`); `mosquitto_sub` / `mosquitto_pub`
//! are the independent other end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hil_tests::mosquitto::{Broker, BrokerOptions, ClientFiles, OPERATOR, RESEARCHER, Subscriber};
use messages::{EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;
use uplink::mqtt::{Kind, LinkError, LinkEvent, MqttConfig, MqttLink, OutgoingMessage, TlsFiles};

const WAIT: Duration = Duration::from_secs(15);

fn broker() -> Broker {
    match Broker::start(BrokerOptions::default()) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

fn files(broker: &Broker, cn: &str) -> ClientFiles {
    broker.client_files(cn).expect("client certificate")
}

fn config(broker: &Broker, node_id: &str, f: &ClientFiles) -> MqttConfig {
    MqttConfig {
        host: "127.0.0.1".into(),
        port: broker.port(),
        node_id: node_id.into(),
        tls: Some(TlsFiles {
            ca: f.ca.clone(),
            cert: f.cert.clone(),
            key: f.key.clone(),
        }),
        reconnect_min_ms: 100,
        reconnect_max_ms: 500,
        connect_timeout_s: 5,
        max_in_flight: 16,
        ..MqttConfig::default()
    }
}

fn event(node: &str, id: u64) -> EventRecord {
    EventRecord {
        id,
        node_id: node.into(),
        start_ms: 1_780_000_000_000 + id as i64 * 1000,
        duration_ms: 1500,
        class: EventClass::Wildlife,
        confidence: Permille(800),
        scores: ModalityScores {
            audio: Some(Permille(900)),
            camera: None,
            climate: None,
        },
        features: KeyFeatures::default(),
        model: ModelVersion::TRIGGERS_ONLY,
        time: Default::default(),
        mono: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn next(events: &mut UnboundedReceiver<LinkEvent>) -> LinkEvent {
    match timeout(WAIT, events.recv()).await {
        Ok(Some(e)) => e,
        Ok(None) => panic!("link event stream ended"),
        Err(_) => panic!("no link event within {WAIT:?}"),
    }
}

async fn wait_up(events: &mut UnboundedReceiver<LinkEvent>) {
    match next(events).await {
        LinkEvent::Up => {}
        LinkEvent::ConnectFailed { reason, .. } => panic!("connect failed: {reason}"),
        other => panic!("unexpected before Up: {other:?}"),
    }
}

/// What the node does with its outbox: send what is pending while the link
/// is up, forget what is delivered, re-send what is reported not delivered
/// after the next `Up`. Counts what happened.
#[derive(Default)]
struct Outbox {
    pending: BTreeMap<u64, Vec<u8>>,
    to_send: BTreeSet<u64>,
    up: bool,
    delivered: BTreeSet<u64>,
    delivered_twice: u64,
    not_delivered: u64,
    downs: u64,
}

impl Outbox {
    fn add(&mut self, node: &str, ids: std::ops::Range<u64>) {
        for id in ids {
            self.pending
                .insert(id, messages::encode_event(&event(node, id)));
            self.to_send.insert(id);
        }
    }

    fn on(&mut self, e: LinkEvent) {
        match e {
            LinkEvent::Up => self.up = true,
            LinkEvent::Down { .. } => {
                self.up = false;
                self.downs += 1;
            }
            LinkEvent::ConnectFailed { .. } => self.up = false,
            LinkEvent::Delivered { id } => {
                if self.pending.remove(&id).is_none() || !self.delivered.insert(id) {
                    self.delivered_twice += 1;
                }
            }
            LinkEvent::NotDelivered { ids } => {
                self.not_delivered += ids.len() as u64;
                for id in ids {
                    if self.pending.contains_key(&id) {
                        self.to_send.insert(id);
                    }
                }
            }
            LinkEvent::Downlink { .. } => {}
        }
    }

    /// Drives the link until everything is delivered or `stop` says so.
    async fn drive(
        &mut self,
        link: &MqttLink,
        events: &mut UnboundedReceiver<LinkEvent>,
        mut stop: impl FnMut(&Outbox) -> bool,
    ) {
        while !self.pending.is_empty() && !stop(self) {
            while let Ok(e) = events.try_recv() {
                self.on(e);
            }
            if self.pending.is_empty() || stop(self) {
                break;
            }
            if self.up
                && let Some(id) = self.to_send.pop_first()
            {
                let msg = OutgoingMessage {
                    id,
                    kind: Kind::Event,
                    payload: self.pending[&id].clone(),
                };
                link.send(msg).await.expect("link running");
                continue;
            }
            let e = match timeout(WAIT, events.recv()).await {
                Ok(Some(e)) => e,
                other => panic!(
                    "link stalled ({other:?}): pending {} to_send {} delivered {} not_delivered {} up {}",
                    self.pending.len(),
                    self.to_send.len(),
                    self.delivered.len(),
                    self.not_delivered,
                    self.up
                ),
            };
            self.on(e);
        }
    }
}

fn ids_received(sub: &Subscriber, topic: &str) -> (usize, BTreeSet<u64>) {
    let msgs: Vec<_> = sub
        .messages()
        .into_iter()
        .filter(|m| m.topic == topic)
        .collect();
    let ids = msgs
        .iter()
        .map(|m| {
            messages::decode_event(&m.payload)
                .expect("an event record")
                .id
        })
        .collect();
    (msgs.len(), ids)
}

#[test]
fn every_message_is_delivered_and_received_exactly_once_after_dedup() {
    let broker = broker();
    let sub = Subscriber::start(&broker, &files(&broker, RESEARCHER), "field/#", None)
        .expect("subscriber");
    let node = files(&broker, "node-1");
    let cfg = config(&broker, "node-1", &node);
    const N: u64 = 300;
    let rt = runtime();
    let outbox = rt.block_on(async {
        let (link, mut events) = MqttLink::start(&cfg).expect("start");
        wait_up(&mut events).await;
        let mut outbox = Outbox {
            up: true,
            ..Outbox::default()
        };
        outbox.add("node-1", 1..N + 1);
        outbox.drive(&link, &mut events, |_| false).await;
        link.shutdown().await.expect("shutdown");
        while let Some(e) = events.recv().await {
            outbox.on(e);
        }
        outbox
    });
    assert_eq!(outbox.delivered.len() as u64, N, "every message Delivered");
    assert_eq!(outbox.delivered_twice, 0);
    let want: BTreeSet<u64> = (1..N + 1).collect();
    sub.wait_until(WAIT, |m| {
        m.iter()
            .filter(|m| m.topic == "field/node-1/events")
            .count() as u64
            >= N
    });
    let (count, ids) = ids_received(&sub, "field/node-1/events");
    assert_eq!(ids, want, "researcher received every id");
    assert!(count as u64 >= N);
    // The retained state went online, then offline on the clean shutdown.
    let states: Vec<Vec<u8>> = sub
        .wait_until(WAIT, |m| {
            m.iter()
                .any(|m| m.topic == "field/node-1/state" && m.payload == b"offline")
        })
        .into_iter()
        .filter(|m| m.topic == "field/node-1/state")
        .map(|m| m.payload)
        .collect();
    assert_eq!(states, vec![b"online".to_vec(), b"offline".to_vec()]);
}

#[test]
fn a_client_certificate_from_an_untrusted_ca_is_refused() {
    let broker = broker();
    let rogue = broker.untrusted_client_files("node-1").expect("rogue cert");
    let cfg = config(&broker, "node-1", &rogue);
    let rt = runtime();
    let reason = rt.block_on(async {
        let (link, mut events) = MqttLink::start(&cfg).expect("start");
        let e = next(&mut events).await;
        link.shutdown().await.expect("shutdown");
        e
    });
    match reason {
        LinkEvent::ConnectFailed { reason, .. } => {
            eprintln!("refused with: {reason}");
            assert!(
                matches!(reason, LinkError::Tls(_) | LinkError::Network(_)),
                "{reason:?}"
            );
        }
        other => panic!("an untrusted certificate got {other:?}\n{}", broker.log()),
    }
    let log = broker.log();
    assert!(!log.contains("as node-1"), "the broker let it in:\n{log}");
}

#[test]
fn a_broker_certificate_from_another_ca_is_refused_by_the_node() {
    let broker = broker();
    let node = files(&broker, "node-1");
    let other = Broker::start(BrokerOptions::default()).expect("second broker");
    // Trust the other broker's CA only.
    let mut cfg = config(&broker, "node-1", &node);
    if let Some(tls) = cfg.tls.as_mut() {
        tls.ca = other.ca_file();
    }
    let rt = runtime();
    let e = rt.block_on(async {
        let (link, mut events) = MqttLink::start(&cfg).expect("start");
        let e = next(&mut events).await;
        link.shutdown().await.expect("shutdown");
        e
    });
    match e {
        LinkEvent::ConnectFailed {
            reason: LinkError::Tls(why),
            ..
        } => assert!(why.contains("certificate"), "{why}"),
        other => panic!("expected a TLS failure, got {other:?}"),
    }
}

/// Mosquitto with an ACL drops a publish the client may not make, and under
/// MQTT 3.1.1 still answers it with a PUBACK: the link reports it Delivered
/// (it cannot know better), and nobody ever receives it.
#[test]
fn the_acl_silently_drops_publishing_under_another_nodes_id() {
    let broker = broker();
    let sub = Subscriber::start(&broker, &files(&broker, RESEARCHER), "field/#", None)
        .expect("subscriber");
    let node1 = files(&broker, "node-1");
    let rt = runtime();
    let (impostor, honest) = rt.block_on(async {
        // node-1's certificate, configured as node-2.
        let mut impostor = Outbox::default();
        let (link, mut events) =
            MqttLink::start(&config(&broker, "node-2", &node1)).expect("start");
        wait_up(&mut events).await;
        impostor.up = true;
        impostor.add("node-2", 1..4);
        impostor.drive(&link, &mut events, |_| false).await;
        link.shutdown().await.expect("shutdown");
        // Then node-1 as itself: once its message arrives, the broker has
        // handled everything published before it.
        let mut honest = Outbox::default();
        let (link, mut events) =
            MqttLink::start(&config(&broker, "node-1", &node1)).expect("start");
        wait_up(&mut events).await;
        honest.up = true;
        honest.add("node-1", 10..11);
        honest.drive(&link, &mut events, |_| false).await;
        link.shutdown().await.expect("shutdown");
        (impostor, honest)
    });
    assert_eq!(
        impostor.delivered.len(),
        3,
        "PUBACKs arrive for dropped publishes"
    );
    assert_eq!(honest.delivered.len(), 1);
    let got = sub.wait_until(WAIT, |m| m.iter().any(|m| m.topic == "field/node-1/events"));
    assert!(got.iter().any(|m| m.topic == "field/node-1/events"));
    let leaked: Vec<_> = got
        .iter()
        .filter(|m| m.topic.starts_with("field/node-2/"))
        .collect();
    assert!(leaked.is_empty(), "the ACL let through {leaked:?}");
}

#[test]
fn a_broker_restart_loses_nothing() {
    let mut broker = broker();
    let sub = Subscriber::start(
        &broker,
        &files(&broker, RESEARCHER),
        "field/#",
        Some("researcher-restart"),
    )
    .expect("subscriber");
    let node = files(&broker, "node-1");
    let cfg = config(&broker, "node-1", &node);
    let rt = runtime();
    let outbox = rt.block_on(async {
        let (link, mut events) = MqttLink::start(&cfg).expect("start");
        wait_up(&mut events).await;
        let mut outbox = Outbox {
            up: true,
            ..Outbox::default()
        };
        outbox.add("node-1", 1..101);
        outbox
            .drive(&link, &mut events, |o| o.delivered.len() >= 30)
            .await;
        broker.stop();
        while outbox.up {
            let e = next(&mut events).await;
            outbox.on(e);
        }
        // Sent while the broker is down: reported not delivered at once.
        outbox.add("node-1", 101..121);
        for id in 101..121 {
            let payload = outbox.pending[&id].clone();
            link.send(OutgoingMessage {
                id,
                kind: Kind::Event,
                payload,
            })
            .await
            .expect("send");
        }
        let down: BTreeSet<u64> = (101..121).collect();
        while !down.iter().all(|id| outbox.to_send.contains(id)) {
            let e = next(&mut events).await;
            outbox.on(e);
        }
        assert!(outbox.delivered.iter().all(|id| *id <= 100));
        broker.start_again().expect("restart");
        outbox.drive(&link, &mut events, |_| false).await;
        link.shutdown().await.expect("shutdown");
        outbox
    });
    assert_eq!(outbox.delivered.len(), 120);
    assert!(outbox.downs >= 1);
    assert!(outbox.not_delivered >= 20);
    let want: BTreeSet<u64> = (1..121).collect();
    sub.wait_until(Duration::from_secs(20), |_| {
        ids_received(&sub, "field/node-1/events").1 == want
    });
    let (mut count, mut ids) = ids_received(&sub, "field/node-1/events");
    if ids != want {
        // mosquitto_sub does not always reconnect after the broker restarts
        // (a race with the listener coming up). A researcher's client then
        // reconnects with the same client id: its persistent session holds
        // what was published meanwhile.
        drop(sub);
        let again = Subscriber::start(
            &broker,
            &files(&broker, RESEARCHER),
            "field/#",
            Some("researcher-restart"),
        )
        .expect("subscriber again");
        again.wait_until(Duration::from_secs(20), |_| {
            let got = ids_received(&again, "field/node-1/events").1;
            ids.union(&got).count() == want.len()
        });
        let (c, more) = ids_received(&again, "field/node-1/events");
        count += c;
        ids.extend(more);
    }
    assert_eq!(
        ids,
        want,
        "after de-dup ({count} received)\n{}",
        broker.log()
    );
}

#[test]
fn a_command_reaches_the_node() {
    let broker = broker();
    let operator = files(&broker, OPERATOR);
    let node = files(&broker, "node-1");
    let cfg = config(&broker, "node-1", &node);
    let rt = runtime();
    let got = rt.block_on(async {
        let (link, mut events) = MqttLink::start(&cfg).expect("start");
        wait_up(&mut events).await;
        // The subscription follows Up; publish until it is in place.
        let deadline = tokio::time::Instant::now() + WAIT;
        let got = loop {
            let (status, err) = hil_tests::mosquitto::publish(
                &broker,
                &operator,
                "field/node-1/cmd",
                b"status-now",
                false,
            )
            .expect("mosquitto_pub");
            assert!(status.success(), "{err}");
            if let Ok(Some(e)) = timeout(Duration::from_millis(500), events.recv()).await {
                break e;
            }
            assert!(tokio::time::Instant::now() < deadline, "no downlink");
        };
        link.shutdown().await.expect("shutdown");
        got
    });
    assert_eq!(
        got,
        LinkEvent::Downlink {
            topic: "field/node-1/cmd".into(),
            payload: b"status-now".to_vec()
        }
    );
}

#[test]
fn a_killed_connection_leaves_offline_retained_by_the_last_will() {
    let broker = broker();
    let researcher = files(&broker, RESEARCHER);
    let node = files(&broker, "node-1");
    let cfg = config(&broker, "node-1", &node);
    let node_rt = runtime();
    let (link, mut events) = node_rt.block_on(async {
        let (link, mut events) = MqttLink::start(&cfg).expect("start");
        wait_up(&mut events).await;
        (link, events)
    });
    let online = Subscriber::start(&broker, &researcher, "field/node-1/state", None)
        .expect("subscriber")
        .wait_until(WAIT, |m| !m.is_empty());
    assert_eq!(
        online.first().map(|m| m.payload.as_slice()),
        Some(&b"online"[..])
    );
    // The node's process dies: its runtime and socket go without DISCONNECT.
    drop(node_rt);
    drop(link);
    events.close();
    let sub =
        Subscriber::start(&broker, &researcher, "field/node-1/state", None).expect("subscriber");
    let state = sub.wait_until(WAIT, |m| m.iter().any(|m| m.payload == b"offline"));
    let last = state.last().expect("a retained state");
    assert_eq!(last.payload, b"offline", "{state:?}\n{}", broker.log());
}
