//! Session tests of `BundlePush` (helpers in `tests`): authentication, the
//! size cap, resume after a cut, chunks at the wrong offset, the checks at
//! `Commit`, `force_power`, one pushing session at a time, and the
//! hand-over to the update task through the drop folder.

use std::sync::Arc;

use messages::link::{
    BUNDLE_CHUNK_LEN, BundleKind, BundleOutcome, BundlePush, ErrorCode, Request, Response,
};
use models::bundle::{Bundle, Metadata};
use power::{PolicyConfig, PowerPolicy, PowerReading};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::NodeView;
use super::push_store;
use super::session::Limits;
use super::tests::{Client, WAIT, authenticated, code, node, trusting};
use crate::update::Outcome;
use crate::update::handoff::Handoff;

/// An unsigned settings bundle of about `payload` bytes (the session only
/// reads its header; the update task verifies signatures).
fn bundle(payload: usize) -> Vec<u8> {
    let meta = Metadata::settings("settings", 7, 1, 2, [0, 0, 0]);
    let bytes: Vec<u8> = (0..payload).map(|i| (i * 13) as u8).collect();
    Bundle::new(meta, bytes).to_bytes().unwrap()
}

fn sha(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

fn begin(kind: BundleKind, file: &[u8]) -> Request {
    Request::BundlePush(BundlePush::Begin {
        kind,
        total_len: file.len() as u64,
        sha256: sha(file),
    })
}

fn chunk(offset: u64, data: &[u8]) -> Request {
    Request::BundlePush(BundlePush::Chunk {
        offset,
        data: data.to_vec(),
    })
}

fn commit(force_power: bool) -> Request {
    Request::BundlePush(BundlePush::Commit { force_power })
}

fn offset(r: &Response) -> u64 {
    match r {
        Response::BundleOffset { offset } => *offset,
        other => panic!("expected an offset, got {other:?}"),
    }
}

fn committed(r: Response) -> BundleOutcome {
    match r {
        Response::BundleCommitted(o) => o,
        other => panic!("expected a commit outcome, got {other:?}"),
    }
}

/// Sends `file[from..]` in chunks of the largest size; the last offset.
async fn send_rest(c: &mut Client, file: &[u8], from: u64) -> u64 {
    let mut at = from;
    while at < file.len() as u64 {
        let end = (at as usize + BUNDLE_CHUNK_LEN).min(file.len());
        at = offset(&c.ask(chunk(at, &file[at as usize..end])).await);
    }
    at
}

fn part_files(view: &NodeView) -> Vec<std::path::PathBuf> {
    let dir = push_store::dir(&view.data_dir);
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// A view whose update task is played by the test: it answers every
/// bundle handed over with `result`, after checking the file is in the
/// drop folder.
fn with_updates(view: &NodeView, result: &'static str) -> (Arc<NodeView>, Arc<Handoff>) {
    let handoff = Arc::new(Handoff::default());
    let task = handoff.clone();
    let incoming = view.data_dir.join("incoming");
    tokio::spawn(async move {
        loop {
            task.woken().await;
            for path in crate::update::task::pending(&incoming) {
                if let Some(req) = task.take(&path) {
                    let _ = req.reply.send(Outcome {
                        t_ms: 0,
                        kind: "settings".into(),
                        name: "settings".into(),
                        version: 7,
                        result: result.into(),
                        reason: format!("{} by the test task", path.display()),
                    });
                }
            }
        }
    });
    let v = Arc::new(NodeView {
        updates: Some(handoff.clone()),
        ..view.clone()
    });
    (v, handoff)
}

#[tokio::test]
async fn every_step_needs_an_authenticated_session() {
    let n = node(false, 0);
    let file = bundle(100);
    let mut c = Client::start(trusting(&n), Limits::default());
    c.hello().await;
    for req in [
        begin(BundleKind::Settings, &file),
        chunk(0, &file),
        commit(false),
    ] {
        let r = c.ask(req).await;
        assert_eq!(code(&r), ErrorCode::Unauthenticated, "{r:?}");
    }
    assert!(part_files(&n.view).is_empty());
}

#[tokio::test]
async fn a_cut_push_resumes_where_the_node_holds_it_and_reaches_the_update_task() {
    let n = node(false, 0);
    let file = bundle(5 * BUNDLE_CHUNK_LEN);
    let (view, _) = with_updates(&trusting(&n), "installed");
    let mut c = authenticated(view.clone()).await;
    assert_eq!(offset(&c.ask(begin(BundleKind::Settings, &file)).await), 0);
    let first = &file[..BUNDLE_CHUNK_LEN];
    assert_eq!(
        offset(&c.ask(chunk(0, first)).await),
        BUNDLE_CHUNK_LEN as u64
    );
    // The cable is pulled.
    c.finish().await;

    let mut c = authenticated(view.clone()).await;
    let held = offset(&c.ask(begin(BundleKind::Settings, &file)).await);
    assert_eq!(held, BUNDLE_CHUNK_LEN as u64, "resumed, not from 0");
    // A chunk repeated from before the cut, or from too far: nothing is
    // written; the reply says where to go on.
    assert_eq!(offset(&c.ask(chunk(0, first)).await), held);
    let far = 3 * BUNDLE_CHUNK_LEN;
    assert_eq!(
        offset(&c.ask(chunk(far as u64, &file[far..far + 10])).await),
        held
    );
    let parts = part_files(&view);
    assert_eq!(parts.len(), 1);
    assert_eq!(std::fs::read(&parts[0]).unwrap(), first);

    assert_eq!(send_rest(&mut c, &file, held).await, file.len() as u64);
    match committed(c.ask(commit(false)).await) {
        BundleOutcome::Installed { reason } => {
            assert!(reason.contains("-link.fnb"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // The bundle is in the drop folder, whole; nothing partial is left.
    let queued = crate::update::task::pending(&view.data_dir.join("incoming"));
    assert_eq!(queued.len(), 1);
    assert_eq!(std::fs::read(&queued[0]).unwrap(), file);
    assert!(part_files(&view).is_empty());
}

#[tokio::test]
async fn sizes_over_the_cap_and_chunks_out_of_bounds_are_refused() {
    let n = node(false, 0);
    let cap = n.view.config.config().update.max_bundle_bytes;
    let mut c = authenticated(trusting(&n)).await;
    let too_big = Request::BundlePush(BundlePush::Begin {
        kind: BundleKind::Model,
        total_len: cap + 1,
        sha256: [7; 32],
    });
    let r = c.ask(too_big).await;
    assert_eq!(code(&r), ErrorCode::InvalidArgument);
    assert!(part_files(&n.view).is_empty(), "nothing received");
    // No bundle begun: chunks and commits are refused.
    assert_eq!(
        code(&c.ask(chunk(0, b"x")).await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        code(&c.ask(commit(false)).await),
        ErrorCode::InvalidArgument
    );

    let file = bundle(100);
    assert_eq!(offset(&c.ask(begin(BundleKind::Settings, &file)).await), 0);
    let over = vec![0u8; BUNDLE_CHUNK_LEN + 1];
    assert_eq!(
        code(&c.ask(chunk(0, &over)).await),
        ErrorCode::InvalidArgument
    );
    let mut past = file.clone();
    past.push(0);
    assert_eq!(
        code(&c.ask(chunk(0, &past)).await),
        ErrorCode::InvalidArgument
    );
    assert_eq!(std::fs::read(&part_files(&n.view)[0]).unwrap(), b"");
}

#[tokio::test]
async fn commit_checks_length_hash_and_kind() {
    let n = node(false, 0);
    let (view, _) = with_updates(&trusting(&n), "installed");
    let mut c = authenticated(view.clone()).await;
    let file = bundle(3000);

    // Incomplete: refused, kept; the rest completes it.
    assert_eq!(offset(&c.ask(begin(BundleKind::Settings, &file)).await), 0);
    c.ask(chunk(0, &file[..1000])).await;
    match committed(c.ask(commit(false)).await) {
        BundleOutcome::Refused { code, .. } => assert_eq!(code, "incomplete"),
        other => panic!("{other:?}"),
    }
    assert_eq!(send_rest(&mut c, &file, 1000).await, file.len() as u64);

    // Pushed as a model: refused, discarded.
    let mut other = bundle(3000);
    let last = other.len() - 1;
    other[last] ^= 1;
    assert_eq!(offset(&c.ask(begin(BundleKind::Model, &other)).await), 0);
    assert_eq!(
        part_files(&view).len(),
        1,
        "the other partial bundle is discarded"
    );
    send_rest(&mut c, &other, 0).await;
    match committed(c.ask(commit(false)).await) {
        BundleOutcome::Refused { code, reason } => {
            assert_eq!(code, "wrong_kind");
            assert!(reason.contains("settings"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(part_files(&view).is_empty());

    // Bytes that do not hash to the declared SHA-256: refused, discarded.
    let declared = Request::BundlePush(BundlePush::Begin {
        kind: BundleKind::Settings,
        total_len: file.len() as u64,
        sha256: sha(b"another bundle"),
    });
    assert_eq!(offset(&c.ask(declared).await), 0);
    send_rest(&mut c, &file, 0).await;
    match committed(c.ask(commit(false)).await) {
        BundleOutcome::Refused { code, .. } => assert_eq!(code, "sha256_mismatch"),
        other => panic!("{other:?}"),
    }
    assert!(part_files(&view).is_empty());
    assert!(crate::update::task::pending(&view.data_dir.join("incoming")).is_empty());
}

#[tokio::test]
async fn force_power_needs_an_external_supply() {
    let n = node(false, 0);
    let (view, handoff) = with_updates(&trusting(&n), "installed");
    let file = bundle(500);
    let mut c = authenticated(view.clone()).await;
    c.ask(begin(BundleKind::Settings, &file)).await;
    send_rest(&mut c, &file, 0).await;
    // The test node's reading: no charge input, a 3 W load.
    let r = c.ask(commit(true)).await;
    assert_eq!(code(&r), ErrorCode::InvalidArgument);
    match &r {
        Response::Error(e) => assert!(e.message.contains("no external supply"), "{}", e.message),
        other => panic!("{other:?}"),
    }
    assert_eq!(part_files(&view).len(), 1, "the bundle is kept");
    c.finish().await;

    // On a charger: taken, and the update task is told to force it.
    let reading = PowerReading {
        t_ms: 0,
        soc: 0.2,
        solar_w: 25.0,
        load_w: 3.0,
        battery_mv: None,
    };
    let (_tx, power) = watch::channel(PowerPolicy::new(PolicyConfig::default()).update(reading));
    let mut status = view.status.clone();
    status.power = power;
    // The test's own task does not take requests here: it is replaced by
    // a look at what the link registered.
    let quiet = Arc::new(Handoff::default());
    let charged = Arc::new(NodeView {
        status,
        updates: Some(quiet.clone()),
        ..(*view).clone()
    });
    drop(handoff);
    let mut c = authenticated(charged.clone()).await;
    assert_eq!(
        offset(&c.ask(begin(BundleKind::Settings, &file)).await),
        file.len() as u64
    );
    let asked = tokio::spawn(async move {
        quiet.woken().await;
        let path = crate::update::task::pending(&charged.data_dir.join("incoming"))
            .pop()
            .unwrap();
        let req = quiet.take(&path).unwrap();
        let force = req.force_power;
        let _ = req.reply.send(Outcome {
            t_ms: 0,
            kind: "settings".into(),
            name: "settings".into(),
            version: 7,
            result: "deferred".into(),
            reason: "enclosure at 80.0 °C, outside -20..70 °C".into(),
        });
        force
    });
    match committed(c.ask(commit(true)).await) {
        BundleOutcome::Deferred { reason } => assert!(reason.contains("enclosure"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(tokio::time::timeout(WAIT, asked).await.unwrap().unwrap());
}

#[tokio::test]
async fn one_session_pushes_at_a_time() {
    let n = node(false, 0);
    let view = trusting(&n);
    let file = bundle(100);
    let mut a = authenticated(view.clone()).await;
    let mut b = authenticated(view.clone()).await;
    assert_eq!(offset(&a.ask(begin(BundleKind::Settings, &file)).await), 0);
    assert_eq!(
        code(&b.ask(begin(BundleKind::Settings, &file)).await),
        ErrorCode::Busy
    );
    a.finish().await;
    assert_eq!(offset(&b.ask(begin(BundleKind::Settings, &file)).await), 0);
    // Without an update task (no trust root) a whole bundle is refused.
    send_rest(&mut b, &file, 0).await;
    match committed(b.ask(commit(false)).await) {
        BundleOutcome::Refused { code, .. } => assert_eq!(code, "updates_off"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn results_map_to_outcomes_with_their_codes() {
    let o = |result: &str, reason: &str| Outcome {
        t_ms: 0,
        kind: "model".into(),
        name: "fusion".into(),
        version: 5,
        result: result.into(),
        reason: reason.into(),
    };
    use super::push::outcome_of;
    assert_eq!(
        outcome_of(&o("refused", "signatures: 1 valid of 2")),
        BundleOutcome::Refused {
            code: "signatures".into(),
            reason: "signatures: 1 valid of 2".into()
        }
    );
    assert_eq!(
        outcome_of(&o("rolled_back", "self_test: vector 2")),
        BundleOutcome::RolledBack {
            code: "self_test".into(),
            reason: "self_test: vector 2".into()
        }
    );
    assert!(matches!(
        outcome_of(&o("refused", "Not a code: x")),
        BundleOutcome::Refused { code, .. } if code == "refused"
    ));
    assert!(matches!(
        outcome_of(&o("on_trial", "ok")),
        BundleOutcome::OnTrial { .. }
    ));
    assert!(matches!(
        outcome_of(&o("deferred", "saver")),
        BundleOutcome::Deferred { .. }
    ));
}
