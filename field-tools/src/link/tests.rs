//! The client against a small scripted node on a Unix socket: version
//! refusal, silence, and an events stream cut mid-way and resumed.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messages::link::{
    self, ErrorCode, ErrorReply, EventBatch, FrameDecoder, HelloReply, Request, RequestEnvelope,
    Response, ResponseEnvelope, StreamEnd,
};
use messages::{EventClass, EventRecord, ModelVersion, Permille};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::*;

fn event(id: u64) -> EventRecord {
    EventRecord {
        id,
        node_id: "n1".into(),
        start_ms: 1_000 * id as i64,
        duration_ms: 100,
        class: EventClass::Wildlife,
        confidence: Permille(700),
        scores: Default::default(),
        features: Default::default(),
        model: ModelVersion(0),
        time: Default::default(),
        mono: None,
    }
}

fn hello_reply(version: u16) -> Response {
    Response::Hello(HelloReply {
        protocol_version: version,
        node_id: "n1".into(),
        firmware_version: "0.0.0".into(),
        session_nonce: [7; link::NONCE_LEN],
        auth_required_for_reads: false,
        idle_timeout_ms: 300_000,
    })
}

async fn send(s: &mut UnixStream, id: u32, body: Response) -> std::io::Result<()> {
    s.write_all(&link::encode_frame(&ResponseEnvelope { id, body }).unwrap())
        .await
}

/// What the scripted node saw: the `after_id` of each Events request.
type Seen = Arc<Mutex<Vec<Option<u64>>>>;

/// A node holding events 1..=`total` with ids 3 and 8 left out (gone),
/// that cuts the first connection after `cut_after` events sent.
async fn scripted_node(listener: UnixListener, total: u64, cut_after: usize, seen: Seen) {
    let ids: Vec<u64> = (1..=total).filter(|i| *i != 3 && *i != 8).collect();
    let mut connection = 0;
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        connection += 1;
        let mut dec = FrameDecoder::<RequestEnvelope>::new();
        let mut buf = [0u8; 4096];
        let mut sent_here = 0usize;
        'conn: loop {
            let n = match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for r in dec.feed(&buf[..n]).into_iter().flatten() {
                match r.body {
                    Request::Hello(_) => {
                        let _ = send(&mut s, r.id, hello_reply(link::PROTOCOL_VERSION)).await;
                    }
                    Request::Events(e) => {
                        seen.lock().unwrap().push(e.after_id);
                        let rest: Vec<u64> = ids
                            .iter()
                            .copied()
                            .filter(|i| e.after_id.is_none_or(|a| *i > a))
                            .collect();
                        let chunks: Vec<&[u64]> = rest.chunks(2).collect();
                        for (k, chunk) in chunks.iter().enumerate() {
                            if connection == 1 && sent_here >= cut_after {
                                // A cut mid-stream: the connection drops.
                                break 'conn;
                            }
                            sent_here += chunk.len();
                            let next = chunks.get(k + 1).map(|c| c[0]);
                            let batch = EventBatch {
                                events: chunk.iter().map(|i| event(*i)).collect(),
                                // The highest id looked at: up to the next
                                // event held (past the gone ids).
                                resume_after_id: Some(next.map_or(total, |n| n - 1)),
                                end: next.is_none().then_some(StreamEnd::Complete),
                            };
                            let _ = send(&mut s, r.id, Response::EventBatch(batch)).await;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn socket(dir: &Path) -> (UnixListener, Target) {
    let path = dir.join("node.sock");
    (UnixListener::bind(&path).unwrap(), Target::Socket(path))
}

#[tokio::test]
async fn a_cut_stream_resumes_from_the_cursor_without_duplicates_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, target) = socket(dir.path());
    let seen: Seen = Default::default();
    tokio::spawn(scripted_node(listener, 20, 6, seen.clone()));
    let mut got = Vec::new();
    let mut reconnects = 0;
    let out = stream_events(
        &target,
        None,
        EventsQuery {
            follow: true,
            ..Default::default()
        },
        Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(20),
        },
        |e| {
            got.push(e.id);
            Ok(())
        },
        |_, _| reconnects += 1,
    )
    .await
    .unwrap();
    let want: Vec<u64> = (1..=20).filter(|i| *i != 3 && *i != 8).collect();
    assert_eq!(got, want);
    assert_eq!(out.connections, 2);
    assert_eq!(reconnects, 1);
    assert_eq!(out.end, Some(StreamEnd::Complete));
    // The second request resumed from the last cursor received: one past
    // the sixth event (id 7), never from an id already printed.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, [None, Some(8)]);
}

#[tokio::test]
async fn without_follow_a_cut_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, target) = socket(dir.path());
    tokio::spawn(scripted_node(listener, 20, 4, Default::default()));
    let mut got = 0;
    let e = stream_events(
        &target,
        None,
        EventsQuery::default(),
        Backoff::default(),
        |_| {
            got += 1;
            Ok(())
        },
        |_, _| panic!("no reconnect without --follow"),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, LinkError::Lost(_)), "{e}");
    assert_eq!(got, 4);
}

#[tokio::test]
async fn another_major_version_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, target) = socket(dir.path());
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut dec = FrameDecoder::<RequestEnvelope>::new();
        let mut buf = [0u8; 1024];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            for r in dec.feed(&buf[..n]).into_iter().flatten() {
                let body = Response::Error(ErrorReply {
                    code: ErrorCode::BadVersion,
                    message: "this node speaks field-link 2.0, the client 1.0".into(),
                });
                send(&mut s, r.id, body).await.unwrap();
            }
        }
    });
    let e = connect(&target).await.err().unwrap();
    assert!(matches!(e, LinkError::Version(_)), "{e}");
    assert!(e.to_string().contains("2.0"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_silent_node_gets_three_hellos_then_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, target) = socket(dir.path());
    let hellos = Arc::new(Mutex::new(0));
    let count = hellos.clone();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut dec = FrameDecoder::<RequestEnvelope>::new();
        let mut buf = [0u8; 1024];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                return;
            }
            *count.lock().unwrap() += dec.feed(&buf[..n]).into_iter().flatten().count();
        }
    });
    let e = connect(&target).await.err().unwrap();
    assert!(matches!(e, LinkError::NoAnswer { .. }), "{e}");
    assert_eq!(*hellos.lock().unwrap(), 3);
}

/// A node trusting `trusted` that serves authentication and `TimeSet`
/// (one connection after another; what it received goes to `seen`).
async fn authenticating_node(
    listener: UnixListener,
    trusted: [u8; 32],
    seen: Arc<Mutex<Vec<Request>>>,
) {
    let nonce = [7; link::NONCE_LEN];
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut dec = FrameDecoder::<RequestEnvelope>::new();
        let mut buf = [0u8; 4096];
        let mut challenge = None;
        let mut authenticated = false;
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            for r in dec.feed(&buf[..n]).into_iter().flatten() {
                seen.lock().unwrap().push(r.body.clone());
                let refuse = |code, message: &str| {
                    Response::Error(ErrorReply {
                        code,
                        message: message.into(),
                    })
                };
                let body = match r.body {
                    Request::Hello(_) => hello_reply(link::PROTOCOL_VERSION),
                    Request::Ping => Response::Pong,
                    Request::AuthChallenge => {
                        challenge = Some([9; link::NONCE_LEN]);
                        Response::AuthChallenge {
                            challenge: [9; link::NONCE_LEN],
                        }
                    }
                    Request::AuthProve(p) => {
                        let signed = challenge
                            .take()
                            .map(|c| link::auth_signed_bytes(&nonce, &c, &p.public_key, "n1"));
                        let ok = p.public_key == trusted
                            && signed.is_some_and(|b| {
                                ed25519_dalek::VerifyingKey::from_bytes(&p.public_key)
                                    .unwrap()
                                    .verify_strict(
                                        &b,
                                        &ed25519_dalek::Signature::from_bytes(&p.signature.0),
                                    )
                                    .is_ok()
                            });
                        authenticated |= ok;
                        if ok {
                            Response::Authenticated
                        } else {
                            refuse(
                                ErrorCode::BadSignature,
                                "the key is not one this node trusts",
                            )
                        }
                    }
                    Request::TimeSet { unix_ms, .. } if authenticated => Response::TimeSet {
                        step_ms: unix_ms - 1_000,
                    },
                    _ => refuse(ErrorCode::Unauthenticated, "`time_set` changes the node"),
                };
                let _ = send(&mut s, r.id, body).await;
            }
        }
    }
}

#[tokio::test]
async fn a_technician_key_authenticates_before_a_control_request() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, target) = socket(dir.path());
    let good = models::bundle::keys::generate([1; 32]);
    let other = models::bundle::keys::generate([2; 32]);
    let seen: Arc<Mutex<Vec<Request>>> = Default::default();
    tokio::spawn(authenticating_node(
        listener,
        good.verifying_key().to_bytes(),
        seen.clone(),
    ));
    let time_set = Request::TimeSet {
        unix_ms: 5_000,
        uncertainty_ms: 10,
    };

    // Without a key: the refusal says what to do.
    let mut c = connect(&target).await.unwrap();
    let e = c.request(time_set.clone()).await.unwrap_err();
    let e = explain_unauthenticated(e, false);
    assert!(matches!(e, LinkError::NeedsKey { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("this command needs --key with a technician key the node trusts"),
        "{e}"
    );
    assert_eq!(e.exit_code(), 1);
    drop(c);

    // The trusted key: authenticated, then the request is served.
    let mut c = connect_as(&target, Some(&good)).await.unwrap();
    assert_eq!(
        c.request(time_set.clone()).await.unwrap(),
        Response::TimeSet { step_ms: 4_000 }
    );
    drop(c);

    // Another key: refused before the command is sent.
    let before = seen.lock().unwrap().len();
    let e = connect_as(&target, Some(&other)).await.err().unwrap();
    assert!(matches!(e, LinkError::AuthRefused { .. }), "{e}");
    assert!(e.to_string().contains("not one this node trusts"), "{e}");
    assert_eq!(e.exit_code(), 1);
    let sent: Vec<&'static str> = seen.lock().unwrap()[before..]
        .iter()
        .map(|r| r.name())
        .collect();
    assert_eq!(sent, ["hello", "auth_challenge", "auth_prove"]);
}

/// A node that answers a LogsTail with 200 lines, waits for the credit the
/// client must grant, then sends one more line with 5 missed and ends.
async fn logs_node(listener: UnixListener, credits: Arc<Mutex<Vec<(u32, u32)>>>) {
    let Ok((mut s, _)) = listener.accept().await else {
        return;
    };
    let mut dec = FrameDecoder::<RequestEnvelope>::new();
    let mut buf = [0u8; 4096];
    let line = |i: usize| link::LogLine {
        time_ms: 1_700_000_000_000,
        level: link::LogLevel::Warn,
        target: "node::test".into(),
        message: format!("line {i}"),
    };
    let mut stream = 0;
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for r in dec.feed(&buf[..n]).into_iter().flatten() {
            match r.body {
                Request::Hello(_) => {
                    let _ = send(&mut s, r.id, hello_reply(link::PROTOCOL_VERSION)).await;
                }
                Request::LogsTail(t) => {
                    assert_eq!((t.lines, t.level), (300, link::LogLevel::Warn));
                    stream = r.id;
                    for k in 0..4 {
                        let batch = link::LogBatch {
                            lines: (k * 50..(k + 1) * 50).map(line).collect(),
                            missed: 0,
                            end: None,
                        };
                        let _ = send(&mut s, r.id, Response::LogBatch(batch)).await;
                    }
                }
                Request::Credit { stream: id, items } => {
                    credits.lock().unwrap().push((id, items));
                    let batch = link::LogBatch {
                        lines: vec![line(200)],
                        missed: 5,
                        end: Some(StreamEnd::Complete),
                    };
                    let _ = send(&mut s, stream, Response::LogBatch(batch)).await;
                }
                _ => {}
            }
        }
    }
}

#[tokio::test]
async fn logs_grant_credit_as_they_go_and_report_missed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, target) = socket(dir.path());
    let credits = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(logs_node(listener, credits.clone()));
    let mut client = connect(&target).await.unwrap();
    let mut printed = Vec::new();
    let mut missed = Vec::new();
    let query = logs::LogsQuery {
        lines: 300,
        follow: false,
        level: link::LogLevel::Warn,
    };
    let out = logs::stream_logs(
        &mut client,
        query,
        |l| {
            print::log_line(&mut printed, l, true)?;
            Ok(())
        },
        |n| missed.push(n),
    )
    .await
    .unwrap();
    assert_eq!((out.lines, out.missed), (201, 5));
    assert_eq!(out.end, Some(StreamEnd::Complete));
    assert_eq!(missed, [5]);
    // One grant, for the stream, when half the credit was used.
    let credits = credits.lock().unwrap().clone();
    assert_eq!(credits.len(), 1);
    assert_eq!(credits[0].1, logs::CREDIT);
    let text = String::from_utf8(printed).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["level"], "warn");
    assert_eq!(first["message"], "line 0");
    assert_eq!(first["time"], "2023-11-14T22:13:20Z");
}
