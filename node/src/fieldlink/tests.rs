//! Session tests over `tokio::io::duplex`: the real session code against a
//! client speaking the protocol with `messages::link`.

use std::sync::Arc;
use std::time::Duration;

use messages::link::{
    self, ConfigOutcome, ErrorCode, EventsRequest, FrameDecoder, Hello, Request, RequestEnvelope,
    Response, ResponseEnvelope, StreamEnd,
};
use messages::{EventClass, EventRecord, ModelVersion, Permille};
use power::{PolicyConfig, PowerPolicy, PowerReading};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use uplink::EventStore;

use super::session::{Limits, SessionEnd, SessionStats, serve};
use super::*;
use crate::clock::SystemClock;
use crate::sensors::health::HealthBoard;
use crate::uplink::SharedState;

/// A generous bound so a broken session fails the test instead of hanging
/// it (not a timing assertion).
pub(super) const WAIT: Duration = Duration::from_secs(20);

pub(super) struct Node {
    _dir: tempfile::TempDir,
    pub(super) view: Arc<NodeView>,
    pub(super) store: Arc<EventStore>,
    /// What the detect and power tasks would receive.
    pub(super) live: watch::Receiver<crate::update::live::Settings>,
}

pub(super) fn node(reads_need_auth: bool, events: usize) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) =
        EventStore::open(&dir.path().join("store"), &uplink::StoreConfig::default()).unwrap();
    let store = Arc::new(store);
    let mut policy = PowerPolicy::new(PolicyConfig::default());
    let status = policy.update(PowerReading {
        t_ms: 0,
        soc: 0.5,
        solar_w: 0.0,
        load_w: 3.0,
        battery_mv: None,
    });
    let (_tx, power) = watch::channel(status);
    let source = StatusSource {
        node_id: "n1".into(),
        board: HealthBoard::default(),
        power,
        store: store.clone(),
        shared: Arc::new(SharedState::default()),
        started_ms: 0,
        thermal_zone: dir.path().join("no-thermal-zone"),
        counters: Arc::new(crate::tasks::Counters::default()),
        clock: None,
    };
    let config_file = dir.path().join("fieldnode.toml");
    std::fs::write(&config_file, "[node]\nid = \"n1\"\n").unwrap();
    let (live, live_rx) = crate::update::live::channel();
    let live = Some(live);
    let view = Arc::new(NodeView {
        status: source,
        time: NodeTime::current(Arc::new(SystemClock)),
        time_source: "system",
        config: Arc::new(crate::update::live::ConfigInForce::new(
            Config::from_file(&config_file).unwrap(),
            Some("[node]\nid = \"n1\"\n".into()),
            live,
            None,
        )),
        config_file: Some(config_file),
        reads_need_auth,
        trusted_keys: Vec::new(),
        data_dir: dir.path().join("data"),
        shared: Default::default(),
        logs: crate::logring::LogRing::new(64, 1 << 20),
        reboot: Default::default(),
        updates: None,
    });
    let n = Node {
        _dir: dir,
        view,
        store,
        live: live_rx,
    };
    add_events(&n.store, events, 0);
    n
}

pub(super) fn add_events(store: &EventStore, n: usize, first_start_ms: i64) {
    for i in 0..n {
        store
            .append(|id| EventRecord {
                id,
                node_id: "n1".into(),
                start_ms: first_start_ms + 1_000 * i as i64,
                duration_ms: 500,
                class: EventClass::Wildlife,
                confidence: Permille(800),
                scores: Default::default(),
                features: Default::default(),
                model: ModelVersion(0),
                time: Default::default(),
                mono: None,
            })
            .unwrap();
    }
}

pub(super) struct Client {
    io: DuplexStream,
    decoder: FrameDecoder<ResponseEnvelope>,
    pending: std::collections::VecDeque<ResponseEnvelope>,
    next_id: u32,
    task: tokio::task::JoinHandle<(SessionEnd, SessionStats)>,
    stop: watch::Sender<bool>,
}

impl Client {
    pub(super) fn start(view: Arc<NodeView>, limits: Limits) -> Client {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move { serve(theirs, view, limits, stop_rx, "test").await });
        Client {
            io: ours,
            decoder: FrameDecoder::new(),
            pending: Default::default(),
            next_id: 1,
            task,
            stop,
        }
    }

    pub(super) async fn send(&mut self, body: Request) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let frame = link::encode_frame(&RequestEnvelope { id, body }).unwrap();
        self.io.write_all(&frame).await.unwrap();
        id
    }

    /// Writes bytes as they are (a frame with a chosen id, garbage).
    pub(super) async fn write_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    pub(super) async fn recv(&mut self) -> ResponseEnvelope {
        loop {
            if let Some(r) = self.pending.pop_front() {
                return r;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.io.read(&mut buf))
                .await
                .expect("the node answered")
                .unwrap();
            assert!(n > 0, "the node closed the session");
            for f in self.decoder.feed(&buf[..n]) {
                self.pending
                    .push_back(f.expect("a valid frame from the node"));
            }
        }
    }

    pub(super) async fn ask(&mut self, body: Request) -> Response {
        let id = self.send(body).await;
        let r = self.recv().await;
        assert_eq!(r.id, id);
        r.body
    }

    pub(super) async fn hello(&mut self) -> [u8; link::NONCE_LEN] {
        match self.ask(hello(link::PROTOCOL_VERSION)).await {
            Response::Hello(h) => {
                assert_eq!(h.node_id, "n1");
                assert_eq!(h.protocol_version, link::PROTOCOL_VERSION);
                h.session_nonce
            }
            other => panic!("{other:?}"),
        }
    }

    async fn challenge(&mut self) -> [u8; link::NONCE_LEN] {
        match self.ask(Request::AuthChallenge).await {
            Response::AuthChallenge { challenge } => challenge,
            other => panic!("{other:?}"),
        }
    }

    /// Stops the session and returns what it counted.
    pub(super) async fn finish(self) -> SessionStats {
        self.stop.send_replace(true);
        let (_, stats) = tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
        stats
    }

    /// Reads an events stream to its end: (ids, last resume cursor, end).
    async fn drain(&mut self, id: u32) -> (Vec<u64>, Option<u64>, StreamEnd) {
        let mut ids = Vec::new();
        loop {
            let r = self.recv().await;
            assert_eq!(r.id, id);
            assert!(link::frame_len(&r).unwrap() <= link::STREAM_BATCH_LEN);
            match r.body {
                Response::EventBatch(b) => {
                    ids.extend(b.events.iter().map(|e| e.id));
                    if let Some(end) = b.end {
                        return (ids, b.resume_after_id, end);
                    }
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

fn hello(version: u16) -> Request {
    Request::Hello(Hello {
        protocol_version: version,
        client: "test".into(),
    })
}

pub(super) fn code(r: &Response) -> ErrorCode {
    match r {
        Response::Error(e) => e.code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

fn events(after_id: Option<u64>, limit: Option<u32>, follow: bool, credit: u32) -> Request {
    Request::Events(EventsRequest {
        after_id,
        since_ms: None,
        limit,
        follow,
        credit,
    })
}

fn all_ids(store: &EventStore) -> Vec<u64> {
    store.iter_from(0).map(|e| e.unwrap().id).collect()
}

#[tokio::test]
async fn requests_before_hello_are_refused_then_served() {
    let n = node(false, 3);
    let mut c = Client::start(n.view.clone(), Limits::default());
    assert_eq!(
        code(&c.ask(Request::Status).await),
        ErrorCode::Unauthenticated
    );
    c.hello().await;
    assert_eq!(c.ask(Request::Ping).await, Response::Pong);
    match c.ask(Request::Status).await {
        Response::Status(s) => {
            assert_eq!(s.node_id, "n1");
            assert_eq!(s.id, 0);
            assert_eq!(s.queue.iter().sum::<u32>(), 3);
        }
        other => panic!("{other:?}"),
    }
    match c.ask(Request::TimeGet).await {
        Response::Time(t) => {
            assert!(t.unix_ms > 1_700_000_000_000);
            assert_eq!(t.source, "system");
            assert_eq!(t.uncertainty_ms, None);
        }
        other => panic!("{other:?}"),
    }
    match c.ask(Request::ConfigShow).await {
        Response::Config(t) => {
            assert_eq!(t.toml, "[node]\nid = \"n1\"\n");
            assert!(!t.pending_restart);
        }
        other => panic!("{other:?}"),
    }
    match c.ask(Request::OutboxStats).await {
        Response::OutboxStats(o) => {
            assert_eq!(o.queue.iter().sum::<u32>(), 3);
            assert_eq!(o.oldest_ms, Some(0));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn config_validate_reports_problems_and_changes() {
    let n = node(false, 0);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    let bad = Request::ConfigValidate {
        toml: "[node]\nid = \"n1\"\ncolour = \"red\"\n[power]\ninterval_ms = 1\n".into(),
    };
    match c.ask(bad).await {
        Response::ConfigChecked(ConfigOutcome::Invalid { problems }) => {
            let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
            assert_eq!(keys, ["node.colour", "power.interval_ms"]);
            assert_eq!(problems[0].problem, "unknown key");
        }
        other => panic!("{other:?}"),
    }
    let good = Request::ConfigValidate {
        toml: "[node]\nid = \"n2\"\n".into(),
    };
    match c.ask(good).await {
        Response::ConfigChecked(ConfigOutcome::Valid { changed, applies }) => {
            assert_eq!(changed, ["node.id"]);
            assert_eq!(applies, link::ApplyWhen::NextStart);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn another_major_version_is_refused_and_naming_both() {
    let n = node(false, 0);
    let mut c = Client::start(n.view.clone(), Limits::default());
    match c.ask(hello(0x0203)).await {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::BadVersion);
            assert!(
                e.message.contains(&messages::link::version_string(
                    messages::link::PROTOCOL_VERSION
                )) && e.message.contains("2.3"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    // No session was opened.
    assert_eq!(
        code(&c.ask(Request::Ping).await),
        ErrorCode::Unauthenticated
    );
    // A newer minor version of the same major is fine.
    match c.ask(hello(0x0107)).await {
        Response::Hello(_) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn reads_can_require_authentication() {
    let n = node(true, 1);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    assert_eq!(c.ask(Request::Ping).await, Response::Pong);
    assert_eq!(
        code(&c.ask(Request::Status).await),
        ErrorCode::Unauthenticated
    );
    let id = c.send(events(None, None, false, 10)).await;
    let r = c.recv().await;
    assert_eq!((r.id, code(&r.body)), (id, ErrorCode::Unauthenticated));
}

#[tokio::test]
async fn garbage_and_unknown_frames_are_counted_and_the_next_request_answered() {
    let n = node(false, 0);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    // Line noise ended by a delimiter, a damaged frame, an oversize one.
    c.io.write_all(&[0x13, 0x37, 0xff, 0x00, 0x42, 0x00])
        .await
        .unwrap();
    let mut damaged = link::encode_frame(&RequestEnvelope {
        id: 90,
        body: Request::Ping,
    })
    .unwrap();
    damaged[2] ^= 0x55;
    c.io.write_all(&damaged).await.unwrap();
    let mut huge = vec![0x01u8; link::MAX_WIRE_FRAME_LEN + 10];
    huge.push(0);
    c.io.write_all(&huge).await.unwrap();
    // An intact frame with a request this node does not know: id 77,
    // variant 200.
    let payload = [77u8, 200, 1];
    let mut framed = payload.to_vec();
    framed.extend_from_slice(&crc32(&payload).to_le_bytes());
    let mut wire = vec![0u8; framed.len() + 4];
    let len = cobs_encode(&framed, &mut wire);
    wire.truncate(len);
    wire.push(0);
    c.io.write_all(&wire).await.unwrap();
    let r = c.recv().await;
    assert_eq!((r.id, code(&r.body)), (77, ErrorCode::UnknownRequest));
    // The session is still in step.
    assert_eq!(c.ask(Request::Ping).await, Response::Pong);
    c.stop.send_replace(true);
    let (end, stats) = tokio::time::timeout(WAIT, c.task).await.unwrap().unwrap();
    assert!(matches!(end, SessionEnd::Stopped), "{end:?}");
    assert_eq!(stats.frames.decode_errors, 1);
    assert_eq!(stats.frames.oversize_frames, 1);
    assert!(stats.frames.crc_errors + stats.frames.cobs_errors + stats.frames.short_frames >= 3);
}

/// CRC-32 (IEEE), bit by bit: the test's own, independent of the crate's.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// COBS for a frame under 254 bytes with no zero byte... or with some.
fn cobs_encode(src: &[u8], dst: &mut [u8]) -> usize {
    let mut code_at = 0;
    let mut out = 1;
    let mut code = 1u8;
    for &b in src {
        if b == 0 {
            dst[code_at] = code;
            code_at = out;
            out += 1;
            code = 1;
        } else {
            dst[out] = b;
            out += 1;
            code += 1;
        }
    }
    dst[code_at] = code;
    out
}

#[tokio::test]
async fn events_flow_by_credit_in_order_without_duplicates() {
    let n = node(false, 150);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    let id = c.send(events(None, None, false, 10)).await;
    let mut got = Vec::new();
    while got.len() < 10 {
        let r = c.recv().await;
        assert_eq!(r.id, id);
        match r.body {
            Response::EventBatch(b) => {
                assert!(b.end.is_none());
                got.extend(b.events.iter().map(|e| e.id));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got.len(), 10, "credit exceeded");
    // Out of credit: the next frame is the Pong, not a batch.
    assert_eq!(c.ask(Request::Ping).await, Response::Pong);
    c.send(Request::Credit {
        stream: id,
        items: 1_000,
    })
    .await;
    let (rest, resume, end) = c.drain(id).await;
    got.extend(rest);
    assert_eq!(end, StreamEnd::Complete);
    assert_eq!(got, all_ids(&n.store));
    assert_eq!(resume, Some(n.store.next_id() - 1));
}

#[tokio::test]
async fn a_stream_cut_short_resumes_from_its_cursor() {
    let n = node(false, 120);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    let id = c.send(events(None, Some(45), false, 1_000)).await;
    let (first, resume, end) = c.drain(id).await;
    assert_eq!(end, StreamEnd::LimitReached);
    assert_eq!(first.len(), 45);
    // A new connection (the first was cut) continues from the cursor.
    drop(c);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    let id = c.send(events(resume, None, false, 1_000)).await;
    let (second, _, end) = c.drain(id).await;
    assert_eq!(end, StreamEnd::Complete);
    let mut all = first;
    all.extend(second);
    assert_eq!(all, all_ids(&n.store));
}

#[tokio::test]
async fn follow_sends_new_events_until_cancelled() {
    let n = node(false, 5);
    let mut c = Client::start(n.view.clone(), Limits::default());
    c.hello().await;
    let id = c.send(events(None, None, true, 1_000)).await;
    let mut got = Vec::new();
    while got.len() < 5 {
        match c.recv().await.body {
            Response::EventBatch(b) => got.extend(b.events.iter().map(|e| e.id)),
            other => panic!("{other:?}"),
        }
    }
    add_events(&n.store, 3, 100_000);
    while got.len() < 8 {
        match c.recv().await.body {
            Response::EventBatch(b) => {
                assert!(b.end.is_none());
                got.extend(b.events.iter().map(|e| e.id));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, all_ids(&n.store));
    let cancel = c.send(Request::Cancel { stream: id }).await;
    let last = c.recv().await;
    match last.body {
        Response::EventBatch(b) => {
            assert_eq!(last.id, id);
            assert!(b.events.is_empty());
            assert_eq!(b.end, Some(StreamEnd::Cancelled));
        }
        other => panic!("{other:?}"),
    }
    let done = c.recv().await;
    assert_eq!((done.id, done.body), (cancel, Response::Done));
    // A second stream may open now; a third while it runs is refused.
    let s2 = c.send(events(None, None, true, 1_000)).await;
    let _ = c.recv().await;
    let s3 = c.send(events(None, None, false, 1_000)).await;
    let r = c.recv().await;
    assert_eq!((r.id, code(&r.body)), (s3, ErrorCode::Busy));
    assert_ne!(s2, s3);
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_reaches_the_idle_timeout() {
    let n = node(false, 0);
    let limits = Limits {
        idle_timeout: Duration::from_secs(300),
        ..Limits::default()
    };
    let mut c = Client::start(n.view.clone(), limits);
    c.hello().await;
    // Half a frame, then silence.
    c.io.write_all(&[0x05, 0x01]).await.unwrap();
    let (end, stats) = c.task.await.unwrap();
    assert!(matches!(end, SessionEnd::Idle(_)), "{end:?}");
    assert_eq!(stats.frames.discarded_bytes, 2);
}

// ---- authentication and the control requests ----

fn technician(seed: u8) -> ed25519_dalek::SigningKey {
    models::bundle::keys::generate([seed; 32])
}

/// The proof `key` gives for `nonce` and `challenge` to the node `n1`.
fn prove(
    key: &ed25519_dalek::SigningKey,
    nonce: &[u8; link::NONCE_LEN],
    challenge: &[u8; link::NONCE_LEN],
) -> Request {
    use ed25519_dalek::Signer;
    let public_key = key.verifying_key().to_bytes();
    let bytes = link::auth_signed_bytes(nonce, challenge, &public_key, "n1");
    Request::AuthProve(link::AuthProve {
        public_key,
        signature: link::Signature(key.sign(&bytes).to_bytes()),
    })
}

/// A node that trusts the technician key of seed 1.
pub(super) fn trusting(n: &Node) -> Arc<NodeView> {
    Arc::new(NodeView {
        trusted_keys: vec![technician(1).verifying_key().to_bytes()],
        ..(*n.view).clone()
    })
}

fn time_set(unix_ms: i64) -> Request {
    Request::TimeSet {
        unix_ms,
        uncertainty_ms: 40,
    }
}

fn message(r: &Response) -> String {
    match r {
        Response::Error(e) => e.message.clone(),
        other => panic!("expected an error reply, got {other:?}"),
    }
}

#[tokio::test]
async fn a_trusted_key_authenticates_the_session_and_control_requests_need_it() {
    let n = node(false, 0);
    let mut c = Client::start(trusting(&n), Limits::default());
    let nonce = c.hello().await;
    for req in [
        time_set(1_800_000_000_000),
        Request::ConfigSet {
            toml: "[node]\nid = \"n2\"\n".into(),
        },
    ] {
        let r = c.ask(req).await;
        assert_eq!(code(&r), ErrorCode::Unauthenticated);
        assert!(message(&r).contains("authenticated session"), "{r:?}");
    }
    let challenge = c.challenge().await;
    assert_eq!(
        c.ask(prove(&technician(1), &nonce, &challenge)).await,
        Response::Authenticated
    );
    assert!(matches!(
        c.ask(time_set(1_800_000_000_000)).await,
        Response::TimeSet { .. }
    ));
    let stats = c.finish().await;
    assert!(stats.authenticated);
    assert_eq!(stats.auth_refusals, 0);
}

#[tokio::test]
async fn an_untrusted_key_is_refused_and_counted() {
    let n = node(false, 0);
    let view = trusting(&n);
    let mut c = Client::start(view.clone(), Limits::default());
    let nonce = c.hello().await;
    let challenge = c.challenge().await;
    // A valid proof, by a key the node does not trust.
    let r = c.ask(prove(&technician(2), &nonce, &challenge)).await;
    assert_eq!(code(&r), ErrorCode::BadSignature);
    assert!(message(&r).contains("not one this node trusts"), "{r:?}");
    assert_eq!(
        code(&c.ask(time_set(1_800_000_000_000)).await),
        ErrorCode::Unauthenticated
    );
    // A trusted key with a signature by another key.
    let challenge = c.challenge().await;
    let Request::AuthProve(mut forged) = prove(&technician(2), &nonce, &challenge) else {
        unreachable!()
    };
    forged.public_key = technician(1).verifying_key().to_bytes();
    let r = c.ask(Request::AuthProve(forged)).await;
    assert_eq!(code(&r), ErrorCode::BadSignature);
    let stats = c.finish().await;
    assert_eq!(stats.auth_refusals, 2);
    assert!(!stats.authenticated);
    assert_eq!(
        view.shared
            .auth_refusals
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[tokio::test]
async fn a_proof_is_good_once_in_its_session() {
    let n = node(false, 0);
    let mut c = Client::start(trusting(&n), Limits::default());
    let nonce = c.hello().await;
    let challenge = c.challenge().await;
    let proof = prove(&technician(1), &nonce, &challenge);
    assert_eq!(c.ask(proof.clone()).await, Response::Authenticated);
    // The same proof again: its challenge is used up.
    let r = c.ask(proof.clone()).await;
    assert_eq!(code(&r), ErrorCode::BadSignature);
    assert!(message(&r).contains("no challenge outstanding"), "{r:?}");
    // Against a new challenge it does not verify.
    c.challenge().await;
    assert_eq!(code(&c.ask(proof.clone()).await), ErrorCode::BadSignature);
    // A new Hello drops the authentication; the old proof is worthless.
    c.hello().await;
    c.challenge().await;
    assert_eq!(code(&c.ask(proof).await), ErrorCode::BadSignature);
    assert_eq!(
        code(&c.ask(time_set(1_800_000_000_000)).await),
        ErrorCode::Unauthenticated
    );
    assert_eq!(c.finish().await.auth_refusals, 3);
}

#[tokio::test]
async fn a_proof_made_for_another_sessions_nonce_is_refused() {
    let n = node(false, 0);
    let view = trusting(&n);
    let mut a = Client::start(view.clone(), Limits::default());
    let mut b = Client::start(view, Limits::default());
    let nonce_a = a.hello().await;
    b.hello().await;
    // B's challenge, signed with A's nonce (a relayed or recorded session).
    let challenge_b = b.challenge().await;
    let r = b.ask(prove(&technician(1), &nonce_a, &challenge_b)).await;
    assert_eq!(code(&r), ErrorCode::BadSignature);
    assert!(message(&r).contains("does not verify"), "{r:?}");
    // A proof A really made does not open B either.
    let challenge_a = a.challenge().await;
    let proof_a = prove(&technician(1), &nonce_a, &challenge_a);
    b.challenge().await;
    assert_eq!(code(&b.ask(proof_a.clone()).await), ErrorCode::BadSignature);
    assert_eq!(
        code(&b.ask(time_set(1_800_000_000_000)).await),
        ErrorCode::Unauthenticated
    );
    assert_eq!(a.ask(proof_a).await, Response::Authenticated);
    assert_eq!(b.finish().await.auth_refusals, 2);
    assert_eq!(a.finish().await.auth_refusals, 0);
}

#[tokio::test]
async fn reads_need_auth_is_served_after_authentication() {
    let n = node(true, 2);
    let mut c = Client::start(trusting(&n), Limits::default());
    let nonce = c.hello().await;
    assert_eq!(
        code(&c.ask(Request::Status).await),
        ErrorCode::Unauthenticated
    );
    let challenge = c.challenge().await;
    assert_eq!(
        c.ask(prove(&technician(1), &nonce, &challenge)).await,
        Response::Authenticated
    );
    assert!(matches!(c.ask(Request::Status).await, Response::Status(_)));
}

pub(super) async fn authenticated(view: Arc<NodeView>) -> Client {
    let mut c = Client::start(view, Limits::default());
    let nonce = c.hello().await;
    let challenge = c.challenge().await;
    assert_eq!(
        c.ask(prove(&technician(1), &nonce, &challenge)).await,
        Response::Authenticated
    );
    c
}

#[tokio::test]
async fn time_set_records_a_durable_reference_that_time_get_reports() {
    let n = node(false, 0);
    let view = trusting(&n);
    let mut c = authenticated(view.clone()).await;
    match c.ask(Request::TimeGet).await {
        Response::Time(t) => assert_eq!((t.source.as_str(), t.uncertainty_ms), ("system", None)),
        other => panic!("{other:?}"),
    }
    // Out of range: refused, nothing stored.
    assert_eq!(code(&c.ask(time_set(12)).await), ErrorCode::InvalidArgument);
    let file = super::timeref::path(&view.data_dir);
    assert!(!file.exists());

    // A technician an hour ahead of the node's clock.
    let before = view.time.now_ms();
    let tech = before + 3_600_000;
    let step = match c.ask(time_set(tech)).await {
        Response::TimeSet { step_ms } => step_ms,
        other => panic!("{other:?}"),
    };
    let after = view.time.now_ms();
    assert!(
        (tech - after..=tech - before).contains(&step),
        "step {step} for {tech} between {before} and {after}"
    );
    // Stored durably, with the clocks at receipt.
    let stored = super::timeref::TimeReference::load(&file).unwrap().unwrap();
    assert_eq!((stored.unix_ms, stored.uncertainty_ms), (tech, 40));
    assert!((before..=after).contains(&stored.node_ms_at_receipt));
    // TimeGet reports it, carried forward, its uncertainty at least as given.
    match c.ask(Request::TimeGet).await {
        Response::Time(t) => {
            assert_eq!(t.source, "technician");
            assert!(t.uncertainty_ms.unwrap() >= 40);
            assert!(t.unix_ms >= tech);
        }
        other => panic!("{other:?}"),
    }
    // The node's clock itself did not move.
    assert!(view.time.now_ms() < tech - 3_000_000);
    // A link started again (a restart) finds it.
    let again = Arc::new(NodeView {
        shared: Arc::new(LinkShared::load(&view.data_dir)),
        ..(*view).clone()
    });
    let mut c = Client::start(again, Limits::default());
    c.hello().await;
    match c.ask(Request::TimeGet).await {
        Response::Time(t) => assert_eq!(t.source, "technician"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn config_set_replaces_the_file_atomically_and_keeps_the_previous() {
    let n = node(false, 0);
    let view = trusting(&n);
    let file = view.config_file.clone().unwrap();
    let prev = super::replies::prev_path(&file);
    let old = std::fs::read_to_string(&file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = authenticated(view.clone()).await;

    // Invalid: the problems, nothing written.
    let r = c
        .ask(Request::ConfigSet {
            toml: "[node]\nid = \"n1\"\ncolour = \"red\"\n".into(),
        })
        .await;
    match r {
        Response::ConfigSet(ConfigOutcome::Invalid { problems }) => {
            assert_eq!(problems[0].key, "node.colour")
        }
        other => panic!("{other:?}"),
    }
    let r = c
        .ask(Request::ConfigSet {
            toml: "[node\n".into(),
        })
        .await;
    assert!(
        matches!(r, Response::ConfigSet(ConfigOutcome::Invalid { .. })),
        "{r:?}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), old);
    assert!(!prev.exists());

    // Valid: replaced, the previous kept, no temporary file left.
    let new = "[node]\nid = \"n2\"\n";
    match c.ask(Request::ConfigSet { toml: new.into() }).await {
        Response::ConfigSet(ConfigOutcome::Valid { changed, applies }) => {
            assert!(changed.contains(&"node.id".to_string()), "{changed:?}");
            assert_eq!(applies, link::ApplyWhen::NextStart);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), new);
    assert_eq!(std::fs::read_to_string(&prev).unwrap(), old);
    for f in [&file, &prev] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} keeps the file's permissions", f.display());
    }
    let names: Vec<String> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    // ConfigShow shows it, waiting for the next start.
    match c.ask(Request::ConfigShow).await {
        Response::Config(t) => {
            assert_eq!(t.toml, new);
            assert!(t.pending_restart);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn config_set_applies_class_thresholds_and_power_policy_live() {
    let mut n = node(false, 0);
    let view = trusting(&n);
    let file = view.config_file.clone().unwrap();
    let mut c = authenticated(view.clone()).await;
    // Only live keys: applied at once, and the file replaced.
    let live = "[node]\nid = \"n1\"\n[fusion.thresholds]\nwildlife = 0.8\n[power.policy]\ncamera_interval_ms = 9000\n";
    match c.ask(Request::ConfigSet { toml: live.into() }).await {
        Response::ConfigSet(ConfigOutcome::Valid { changed, applies }) => {
            // The table replaces the default one: the classes it leaves
            // out lose their threshold, a live change too.
            assert_eq!(
                changed,
                [
                    "fusion.thresholds.human_activity",
                    "fusion.thresholds.machinery_anomaly",
                    "fusion.thresholds.wildlife",
                    "power.policy.camera_interval_ms"
                ]
            );
            assert_eq!(applies, link::ApplyWhen::Live);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), live);
    assert!(n.live.has_changed().unwrap());
    let s = n.live.borrow_and_update().clone().unwrap();
    assert_eq!(s.fusion.thresholds.get("wildlife"), Some(&0.8));
    assert_eq!(s.policy.camera_interval_ms, 9000);
    // In force: nothing waits for a restart, and the same text changes
    // nothing more.
    match c.ask(Request::ConfigShow).await {
        Response::Config(t) => assert!(!t.pending_restart),
        other => panic!("{other:?}"),
    }
    match c.ask(Request::ConfigValidate { toml: live.into() }).await {
        Response::ConfigChecked(ConfigOutcome::Valid { changed, applies }) => {
            assert!(changed.is_empty(), "{changed:?}");
            assert_eq!(applies, link::ApplyWhen::Live);
        }
        other => panic!("{other:?}"),
    }
    // A live key with one that is not: all of it from the next start, and
    // nothing applied now.
    let mixed =
        "[node]\nid = \"n1\"\n[fusion.thresholds]\nwildlife = 0.6\n[power]\ninterval_ms = 20000\n";
    match c.ask(Request::ConfigSet { toml: mixed.into() }).await {
        Response::ConfigSet(ConfigOutcome::Valid { changed, applies }) => {
            assert!(
                changed.contains(&"power.interval_ms".to_string()),
                "{changed:?}"
            );
            assert_eq!(applies, link::ApplyWhen::NextStart);
        }
        other => panic!("{other:?}"),
    }
    assert!(!n.live.has_changed().unwrap());
    match c.ask(Request::ConfigShow).await {
        Response::Config(t) => assert!(t.pending_restart),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn config_set_without_a_config_file_is_refused() {
    let n = node(false, 0);
    let view = Arc::new(NodeView {
        config_file: None,
        ..(*trusting(&n)).clone()
    });
    let mut c = authenticated(view).await;
    let r = c
        .ask(Request::ConfigSet {
            toml: "[node]\nid = \"n2\"\n".into(),
        })
        .await;
    assert_eq!(code(&r), ErrorCode::InvalidArgument);
    assert!(
        message(&r).contains("without a configuration file"),
        "{r:?}"
    );
}
