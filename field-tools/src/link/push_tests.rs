//! `link push` against a small scripted node on a Unix socket: the push
//! starts from what the node holds, goes on after a cut connection from
//! the node's offset (never from 0), and the exit code follows the node's
//! outcome; a 1.1 node is told apart before anything is sent.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use messages::link::{
    self, BUNDLE_CHUNK_LEN, BundleOutcome, BundlePush, FrameDecoder, HelloReply, Request,
    RequestEnvelope, Response, ResponseEnvelope,
};
use models::bundle::{Bundle, Metadata};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use super::client::LinkError;
use super::events::Backoff;
use super::push::{PushFile, push_bundle};
use super::transport::Target;

fn bundle_file(payload: usize) -> PushFile {
    let meta = Metadata::settings("settings", 3, 1, 2, [0, 0, 0]);
    let bytes: Vec<u8> = (0..payload).map(|i| (i * 31) as u8).collect();
    PushFile::parse(Bundle::new(meta, bytes).to_bytes().unwrap()).unwrap()
}

async fn send(s: &mut UnixStream, id: u32, body: Response) {
    let _ = s
        .write_all(&link::encode_frame(&ResponseEnvelope { id, body }).unwrap())
        .await;
}

/// What the scripted node saw.
#[derive(Default)]
struct Seen {
    /// The offset of every chunk received, and its length.
    chunks: Vec<(u64, usize)>,
    /// The bytes it holds.
    held: Vec<u8>,
    /// The bundle whole at Commit.
    committed: Option<Vec<u8>>,
}

/// A node of protocol `version` that holds `pre` (the start of a bundle
/// from an earlier push), cuts the first connection after `cut_after`
/// chunks, and answers Commit with `outcome`.
async fn scripted_node(
    listener: UnixListener,
    version: u16,
    cut_after: usize,
    outcome: BundleOutcome,
    seen: Arc<Mutex<Seen>>,
) {
    let mut connection = 0;
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        connection += 1;
        let mut dec = FrameDecoder::<RequestEnvelope>::new();
        let mut buf = [0u8; 8192];
        let mut chunks_here = 0;
        'conn: loop {
            let n = match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for r in dec.feed(&buf[..n]).into_iter().flatten() {
                let reply = match r.body {
                    Request::Hello(_) => Response::Hello(HelloReply {
                        protocol_version: version,
                        node_id: "n1".into(),
                        firmware_version: "0.0.0".into(),
                        session_nonce: [7; link::NONCE_LEN],
                        auth_required_for_reads: false,
                        idle_timeout_ms: 300_000,
                    }),
                    Request::BundlePush(BundlePush::Begin { .. }) => Response::BundleOffset {
                        offset: seen.lock().unwrap().held.len() as u64,
                    },
                    Request::BundlePush(BundlePush::Chunk { offset, data }) => {
                        if connection == 1 && chunks_here == cut_after {
                            // The cable is pulled: this chunk never arrives.
                            break 'conn;
                        }
                        chunks_here += 1;
                        let mut seen = seen.lock().unwrap();
                        seen.chunks.push((offset, data.len()));
                        if offset == seen.held.len() as u64 {
                            seen.held.extend_from_slice(&data);
                        }
                        Response::BundleOffset {
                            offset: seen.held.len() as u64,
                        }
                    }
                    Request::BundlePush(BundlePush::Commit { .. }) => {
                        let mut seen = seen.lock().unwrap();
                        seen.committed = Some(seen.held.clone());
                        Response::BundleCommitted(outcome.clone())
                    }
                    _ => continue,
                };
                send(&mut s, r.id, reply).await;
            }
        }
    }
}

fn socket(dir: &Path) -> (UnixListener, Target) {
    let path = dir.join("node.sock");
    (UnixListener::bind(&path).unwrap(), Target::Socket(path))
}

fn quick() -> Backoff {
    Backoff {
        min: Duration::from_millis(10),
        max: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn a_push_goes_on_from_the_nodes_offset_after_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, target) = socket(dir.path());
    let file = bundle_file(6 * BUNDLE_CHUNK_LEN);
    let pre = 1000;
    let seen = Arc::new(Mutex::new(Seen {
        held: file.bytes[..pre].to_vec(),
        ..Seen::default()
    }));
    let deferred = BundleOutcome::Deferred {
        reason: "power mode saver".into(),
    };
    tokio::spawn(scripted_node(
        listener,
        link::PROTOCOL_VERSION,
        2,
        deferred.clone(),
        seen.clone(),
    ));
    let mut retries = 0;
    let mut last = (0, 0);
    let pushed = push_bundle(
        &target,
        None,
        &file,
        false,
        quick(),
        |held, total| last = (held, total),
        |_, _| retries += 1,
    )
    .await
    .unwrap();
    assert_eq!(pushed.outcome, deferred);
    assert_eq!(pushed.exit_code(), 3);
    assert_eq!(pushed.resumed_from, pre as u64);
    assert_eq!(pushed.connections, 2);
    assert_eq!(retries, 1);
    assert_eq!(last, (file.bytes.len() as u64, file.bytes.len() as u64));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.committed.as_deref(), Some(&file.bytes[..]));
    // Every chunk at the offset the node held, none from 0, none too large;
    // each byte sent once.
    assert!(
        seen.chunks
            .iter()
            .all(|&(o, n)| o >= pre as u64 && n <= BUNDLE_CHUNK_LEN),
        "{:?}",
        seen.chunks
    );
    let sent: usize = seen.chunks.iter().map(|c| c.1).sum();
    assert_eq!(sent, file.bytes.len() - pre);
    assert_eq!(pushed.sent, sent as u64);
}

#[tokio::test]
async fn outcomes_give_the_exit_codes_of_bundle_publish() {
    for (outcome, code) in [
        (
            BundleOutcome::Installed {
                reason: "ok".into(),
            },
            0,
        ),
        (
            BundleOutcome::OnTrial {
                reason: "ok".into(),
            },
            0,
        ),
        (
            BundleOutcome::Refused {
                code: "rollback".into(),
                reason: "old".into(),
            },
            1,
        ),
        (
            BundleOutcome::RolledBack {
                code: "self_test".into(),
                reason: "x".into(),
            },
            1,
        ),
        (
            BundleOutcome::Queued {
                install: link::InstallWhen::Now,
            },
            4,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (listener, target) = socket(dir.path());
        let seen = Arc::new(Mutex::new(Seen::default()));
        tokio::spawn(scripted_node(
            listener,
            link::PROTOCOL_VERSION,
            usize::MAX,
            outcome.clone(),
            seen,
        ));
        let file = bundle_file(100);
        let pushed = push_bundle(&target, None, &file, true, quick(), |_, _| {}, |_, _| {})
            .await
            .unwrap();
        assert_eq!(pushed.resumed_from, 0);
        assert_eq!(pushed.exit_code(), code, "{outcome:?}");
    }
}

#[tokio::test]
async fn a_node_without_push_is_told_apart_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, target) = socket(dir.path());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let any = BundleOutcome::Installed {
        reason: "ok".into(),
    };
    tokio::spawn(scripted_node(
        listener,
        0x0101,
        usize::MAX,
        any,
        seen.clone(),
    ));
    let file = bundle_file(100);
    let e = push_bundle(&target, None, &file, false, quick(), |_, _| {}, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&e, LinkError::Version(m) if m.contains("1.1")),
        "{e}"
    );
    assert!(seen.lock().unwrap().chunks.is_empty());
}

#[test]
fn a_file_that_is_not_a_bundle_is_refused_before_connecting() {
    assert!(PushFile::parse(b"not a bundle".to_vec()).is_err());
}
