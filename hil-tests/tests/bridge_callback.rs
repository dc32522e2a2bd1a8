//! The ground bridge (`field_tools::bridge`) in-process on a free loopback
//! port, publishing over mutual TLS to a real mosquitto
//! (`hil_tests::mosquitto`); `mosquitto_sub` as the researcher is the
//! independent other end. Callbacks are signed RS256 with an RSA key pair
//! made at test time, as RockBLOCK signs them.
//!
//! Absence is checked without sleeping: after the callbacks that must not
//! publish, a valid "sentinel" callback is sent; the bridge publishes in
//! order on one connection, so once the sentinel's records arrived anything
//! published before them would have too.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use field_tools::bridge::{self, BridgeOptions, Nodes, Publisher, PublisherOptions, Verifier};
use hil_tests::mosquitto::{Broker, BrokerOptions, RESEARCHER, Received, Subscriber};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use messages::{
    DropCounters, EventClass, EventRecord, KeyFeatures, Message, ModalityScores, ModelVersion,
    Permille, PowerModeCode, SensorHealth, StatusRecord,
};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use uplink::mqtt::TlsFiles;

const WAIT: Duration = Duration::from_secs(15);
const IMEI_1: &str = "300234010753370";
const IMEI_2: &str = "300234010753371";
const IMEI_UNKNOWN: &str = "300234010759999";
/// The bridge's certificate common name (its MQTT user name).
const BRIDGE: &str = "ground-bridge";

/// An RSA key pair in PEM: (private PKCS#8, public SPKI).
fn rsa_pair() -> (String, String) {
    use rsa::Generate;
    let private = rsa::PrivateKey::generate();
    let private_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .expect("private PEM")
        .to_string();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("public PEM");
    (private_pem, public_pem)
}

fn event(node: &str, id: u64) -> EventRecord {
    EventRecord {
        id,
        node_id: node.into(),
        start_ms: 1_780_000_000_000 + id as i64 * 7_000,
        duration_ms: 1_500 + id as u32,
        class: if id.is_multiple_of(2) {
            EventClass::Wildlife
        } else {
            EventClass::MachineryAnomaly
        },
        confidence: Permille(700 + id as u16),
        scores: ModalityScores {
            audio: Some(Permille(900)),
            camera: None,
            climate: Some(Permille(120)),
        },
        features: KeyFeatures::default(),
        model: ModelVersion::TRIGGERS_ONLY,
        time: Default::default(),
        mono: None,
    }
}

fn status(node: &str, id: u64) -> StatusRecord {
    StatusRecord {
        id,
        node_id: node.into(),
        time_ms: 1_780_000_100_000,
        uptime_s: 86_400,
        battery_permille: 640,
        battery_mv: 12_450,
        power_mode: PowerModeCode::Normal,
        air_temp_c100: Some(1_850),
        board_temp_c100: Some(4_200),
        sensors: SensorHealth::default(),
        queue: [0, 3, 0, 0],
        drops: DropCounters::default(),
        model: ModelVersion(0),
        last_contact_ms: None,
        cause: Default::default(),
        update: Default::default(),
        disk: Default::default(),
        clock: Default::default(),
        detection: Some(messages::DetectionHealth {
            events_cut_at_max: 1,
            events_joined: 9,
        }),
        not_stored: Some(messages::NotStored {
            excluded: 0,
            background_dropped: 0,
            uncertain_background: 7,
            sun_heat_rises: 1,
        }),
    }
}

/// What RockBLOCK would POST for `data` from `imei`, signed with `key`.
struct Form {
    imei: String,
    momsn: u32,
    data_hex: String,
}

impl Form {
    fn new(imei: &str, momsn: u32, data: &[u8]) -> Form {
        Form {
            imei: imei.into(),
            momsn,
            data_hex: hex::encode(data),
        }
    }

    fn claims(&self) -> serde_json::Value {
        // RockBLOCK's claims are strings, with `iss` and `iat`.
        serde_json::json!({
            "iss": "Rock 7", "iat": 1_780_000_200u64, "imei": self.imei,
            "momsn": self.momsn.to_string(), "transmit_time": "26-05-29 12:30:00",
            "iridium_latitude": "52.3867", "iridium_longitude": "0.2938", "iridium_cep": "8",
            "data": self.data_hex,
        })
    }

    fn body(&self, jwt: Option<&str>) -> String {
        let mut body = format!(
            "imei={}&serial=12345&momsn={}&transmit_time=26-05-29+12%3A30%3A00\
             &iridium_latitude=52.3867&iridium_longitude=0.2938&iridium_cep=8&data={}",
            self.imei, self.momsn, self.data_hex
        );
        if let Some(jwt) = jwt {
            body.push_str("&JWT=");
            body.push_str(jwt);
        }
        body
    }
}

fn sign_rs256(claims: &serde_json::Value, private_pem: &str) -> String {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("RSA key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).expect("signs")
}

/// POSTs `body` and returns the status code and the response body.
fn post(addr: SocketAddr, path: &str, content_type: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the bridge");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read response");
    let code = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn get(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

/// A broker whose ACL also lets the bridge write every node's events and status.
fn broker() -> Broker {
    let mut broker = Broker::start(BrokerOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let acl = broker.dir().join("acl");
    let mut text = std::fs::read_to_string(&acl).expect("acl");
    text.push_str(&format!(
        "\nuser {BRIDGE}\ntopic write field/+/events\ntopic write field/+/status\n"
    ));
    std::fs::write(&acl, text).expect("acl");
    broker.stop();
    broker.start_again().unwrap_or_else(|e| panic!("{e}"));
    broker
}

struct Running {
    addr: SocketAddr,
    rt: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Starts the bridge for IMEI_1 → n1, IMEI_2 → n2, verifying RS256 with `public_pem`.
    fn start(broker: &Broker, public_pem: &str) -> Running {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = broker.client_files(BRIDGE).expect("bridge certificate");
        let nodes = Nodes::parse(
            &format!("[nodes]\n\"{IMEI_1}\" = \"n1\"\n\"{IMEI_2}\" = \"n2\"\n"),
            "nodes.toml",
        )
        .expect("nodes");
        let verifier = Verifier::rs256_pem(public_pem.as_bytes(), "test key").expect("key");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (addr, server) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let publisher = Publisher::start(&PublisherOptions {
                host: "127.0.0.1".into(),
                port: broker.port(),
                tls: Some(TlsFiles {
                    ca: files.ca.clone(),
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                }),
                client_id: BRIDGE.into(),
                max_in_flight: 8,
                reconnect_min_ms: 100,
                reconnect_max_ms: 500,
            })
            .expect("publisher");
            let opts = BridgeOptions {
                nodes,
                verifier,
                prefix: "field".into(),
                publish_timeout: Duration::from_secs(10),
                recent: 64,
            };
            let server = tokio::spawn(bridge::serve(listener, opts, publisher, async {
                let _ = stopped.await;
            }));
            (addr, server)
        });
        let running = Running {
            addr,
            rt,
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        };
        running.wait_health(200);
        running
    }

    fn wait_health(&self, want: u16) {
        let deadline = Instant::now() + WAIT;
        while get(self.addr, "/health") != Some(want) {
            assert!(Instant::now() < deadline, "bridge /health never {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = self.rt.block_on(server);
        }
    }
}

fn decode_all(received: &[Received]) -> Vec<(String, Message)> {
    received
        .iter()
        .map(|r| {
            let m = messages::decode_message(&r.payload)
                .unwrap_or_else(|e| panic!("{}: undecodable payload: {e}", r.topic));
            (r.topic.clone(), m)
        })
        .collect()
}

#[test]
fn valid_callbacks_publish_every_record_under_the_modems_node() {
    let broker = broker();
    let researcher = broker.client_files(RESEARCHER).expect("researcher");
    let sub = Subscriber::start(&broker, &researcher, "field/#", None).expect("subscribe");
    let (private_pem, public_pem) = rsa_pair();
    let bridge = Running::start(&broker, &public_pem);

    // Node 1: six events and a status report in one packed SBD message.
    let mut n1: Vec<Message> = (101..=106)
        .map(|i| Message::Event(event("n1", i)))
        .collect();
    n1.push(Message::Status(status("n1", 107)));
    let packed = messages::pack(&n1, messages::pack::SBD_MO_MAX).expect("packs");
    assert_eq!(packed.ids_included.len(), n1.len());
    let form = Form::new(IMEI_1, 41, &packed.bytes);
    let jwt = sign_rs256(&form.claims(), &private_pem);
    let (code, text) = post(
        bridge.addr,
        "/rockblock",
        "application/x-www-form-urlencoded",
        &form.body(Some(&jwt)),
    );
    assert_eq!(code, 200, "{text}");
    assert_eq!(text.trim(), "published 7");
    // The 200 came after every PUBACK: the researcher sees all seven.
    let got = sub.wait_until(WAIT, |m| m.len() >= 7);
    let got = decode_all(&got);
    assert_eq!(got.len(), 7, "{got:?}\n{}", broker.log());
    for ((topic, message), original) in got.iter().zip(&n1) {
        assert_eq!(message, original);
        let leaf = match original {
            Message::Event(_) => "events",
            Message::Status(_) => "status",
        };
        assert_eq!(topic, &format!("field/n1/{leaf}"));
    }

    // RockBLOCK retries the same delivery: answered 200, not published again.
    let (code, text) = post(
        bridge.addr,
        "/",
        "application/x-www-form-urlencoded",
        &form.body(Some(&jwt)),
    );
    assert_eq!((code, text.trim()), (200, "duplicate"));

    // Node 2, from the other modem, through `POST /` (the sentinel for the
    // retry above); a node built before the packing's version 2 (no record
    // count, no checksum): the same records behind a one-byte header.
    let n2: Vec<Message> = (1..=3).map(|i| Message::Event(event("n2", i))).collect();
    let packed = messages::pack(&n2, messages::pack::SBD_MO_MAX).expect("packs");
    let mut v1 = vec![messages::pack::PACK_VERSION_1];
    v1.extend_from_slice(&packed.bytes[4..]);
    let form = Form::new(IMEI_2, 7, &v1);
    let jwt = sign_rs256(&form.claims(), &private_pem);
    let (code, text) = post(
        bridge.addr,
        "/",
        "application/x-www-form-urlencoded",
        &form.body(Some(&jwt)),
    );
    assert_eq!(code, 200, "{text}");
    let got = decode_all(&sub.wait_until(WAIT, |m| m.len() >= 10));
    assert_eq!(got.len(), 10, "the retry was published again: {got:?}");
    for ((topic, message), original) in got[7..].iter().zip(&n2) {
        assert_eq!(topic, "field/n2/events");
        assert_eq!(message, original);
    }
}

#[test]
fn unauthenticated_undecodable_and_unknown_callbacks_publish_nothing() {
    let broker = broker();
    let researcher = broker.client_files(RESEARCHER).expect("researcher");
    let sub = Subscriber::start(&broker, &researcher, "field/#", None).expect("subscribe");
    let (private_pem, public_pem) = rsa_pair();
    let (other_private, _) = rsa_pair();
    let bridge = Running::start(&broker, &public_pem);
    let form_type = "application/x-www-form-urlencoded";

    let records: Vec<Message> = (1..=4).map(|i| Message::Event(event("n1", i))).collect();
    let packed = messages::pack(&records, 340).expect("packs").bytes;
    let form = Form::new(IMEI_1, 100, &packed);
    let good_jwt = sign_rs256(&form.claims(), &private_pem);

    let mut cases: Vec<(&str, u16, String, &str)> = Vec::new();
    // Authentication.
    cases.push(("no JWT", 401, form.body(None), form_type));
    let forged = sign_rs256(&form.claims(), &other_private);
    cases.push((
        "signed by another key",
        401,
        form.body(Some(&forged)),
        form_type,
    ));
    let mut tampered = good_jwt.clone();
    tampered.pop();
    tampered.push(if good_jwt.ends_with('A') { 'B' } else { 'A' });
    cases.push((
        "signature altered",
        401,
        form.body(Some(&tampered)),
        form_type,
    ));
    // HMAC keyed with the public key's text: the algorithm-confusion attack.
    let confused = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &form.claims(),
        &EncodingKey::from_secret(public_pem.as_bytes()).expect("secret"),
    )
    .expect("signs");
    cases.push((
        "HS256 with the public key",
        401,
        form.body(Some(&confused)),
        form_type,
    ));
    // A genuine token for other data: the form's payload was swapped.
    let other = Form::new(IMEI_1, 100, &packed[..packed.len() - 1]);
    let swapped = sign_rs256(&other.claims(), &private_pem);
    cases.push((
        "claims for other data",
        401,
        form.body(Some(&swapped)),
        form_type,
    ));
    let mut wrong_momsn = form.claims();
    wrong_momsn["momsn"] = serde_json::json!("101");
    let wrong_momsn = sign_rs256(&wrong_momsn, &private_pem);
    cases.push((
        "claims for another momsn",
        401,
        form.body(Some(&wrong_momsn)),
        form_type,
    ));
    // Decoding (authentic, but the payload is not ours).
    let bad_hex = Form {
        data_hex: "50zz".into(),
        ..Form::new(IMEI_1, 101, &[])
    };
    let jwt = sign_rs256(&bad_hex.claims(), &private_pem);
    cases.push(("malformed hex", 400, bad_hex.body(Some(&jwt)), form_type));
    let odd_hex = Form {
        data_hex: format!("{}0", hex::encode(&packed)),
        ..Form::new(IMEI_1, 102, &[])
    };
    let jwt = sign_rs256(&odd_hex.claims(), &private_pem);
    cases.push(("odd-length hex", 400, odd_hex.body(Some(&jwt)), form_type));
    // A cut on a record boundary: the first three of the four records, as
    // a shorter message would carry them; the record count tells.
    let cut = messages::pack(&records[..3], 340)
        .expect("packs")
        .bytes
        .len();
    let truncated = Form::new(IMEI_1, 103, &packed[..cut]);
    let jwt = sign_rs256(&truncated.claims(), &private_pem);
    cases.push((
        "packing cut on a record boundary",
        400,
        truncated.body(Some(&jwt)),
        form_type,
    ));
    // One byte damaged: the checksum tells.
    let mut damaged = packed.clone();
    damaged[cut - 2] ^= 0x04;
    let damaged = Form::new(IMEI_1, 106, &damaged);
    let jwt = sign_rs256(&damaged.claims(), &private_pem);
    cases.push(("damaged packing", 400, damaged.body(Some(&jwt)), form_type));
    let garbage = Form::new(IMEI_1, 104, &[0x77, 1, 2, 3, 4]);
    let jwt = sign_rs256(&garbage.claims(), &private_pem);
    cases.push((
        "unknown kind byte",
        400,
        garbage.body(Some(&jwt)),
        form_type,
    ));
    // A lone record naming another node than the modem's.
    let lone = Form::new(IMEI_1, 105, &messages::encode_event(&event("n2", 9)));
    let jwt = sign_rs256(&lone.claims(), &private_pem);
    cases.push((
        "lone record of another node",
        403,
        lone.body(Some(&jwt)),
        form_type,
    ));
    // Unknown modem, correctly signed.
    let unknown = Form::new(IMEI_UNKNOWN, 1, &packed);
    let jwt = sign_rs256(&unknown.claims(), &private_pem);
    cases.push(("unknown IMEI", 403, unknown.body(Some(&jwt)), form_type));
    // Not a form at all.
    cases.push((
        "JSON body",
        415,
        "{\"imei\":\"1\"}".into(),
        "application/json",
    ));
    cases.push((
        "form without data",
        400,
        form.body(Some(&good_jwt)).replace("&data=", "&dat="),
        form_type,
    ));

    for (name, want, body, content_type) in &cases {
        let (code, text) = post(bridge.addr, "/rockblock", content_type, body);
        assert_eq!(code, *want, "{name}: {text}");
    }

    // Sentinel: the genuine callback is published, and nothing before it was.
    let (code, text) = post(
        bridge.addr,
        "/rockblock",
        form_type,
        &form.body(Some(&good_jwt)),
    );
    assert_eq!(code, 200, "{text}");
    let got = decode_all(&sub.wait_until(WAIT, |m| m.len() >= 4));
    assert_eq!(
        got.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
        records,
        "only the sentinel's records may arrive"
    );
}

#[test]
fn a_callback_is_refused_while_the_broker_is_down_and_accepted_once_it_is_back() {
    let mut broker = broker();
    let researcher = broker.client_files(RESEARCHER).expect("researcher");
    let (private_pem, public_pem) = rsa_pair();
    let bridge = Running::start(&broker, &public_pem);
    let records: Vec<Message> = (50..=52).map(|i| Message::Event(event("n2", i))).collect();
    let packed = messages::pack(&records, 340).expect("packs").bytes;
    let form = Form::new(IMEI_2, 9, &packed);
    let body = form.body(Some(&sign_rs256(&form.claims(), &private_pem)));
    let form_type = "application/x-www-form-urlencoded";

    broker.stop();
    bridge.wait_health(503);
    let (code, text) = post(bridge.addr, "/rockblock", form_type, &body);
    assert_eq!(code, 503, "answered {code} with the broker down: {text}");

    broker.start_again().unwrap_or_else(|e| panic!("{e}"));
    bridge.wait_health(200);
    let sub = Subscriber::start(&broker, &researcher, "field/#", None).expect("subscribe");
    // RockBLOCK's retry: not a "recent duplicate", since it was never published.
    let (code, text) = post(bridge.addr, "/rockblock", form_type, &body);
    assert_eq!(code, 200, "{text}");
    let got = decode_all(&sub.wait_until(WAIT, |m| m.len() >= 3));
    assert_eq!(
        got.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(),
        records
    );
}
