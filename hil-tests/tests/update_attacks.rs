//! Every attack of TUF's list, against the real node: `fieldnode run`
//! replaying the demo scene at full speed, with a committed model update
//! (the committed model as version [`next_version`]) already installed.
//! Each attack bundle is put in the drop folder (`<data_dir>/incoming/`),
//! where the running node's update task takes it, as a copied file or a
//! bundle received over MQTT, by satellite or over the field link would be.
//!
//! For each attack the node refuses the bundle with the reason's code
//! (`docs/updates.md`): the run's summary counts one refusal and names it,
//! `fieldnode update status` shows it as the last result in the install
//! state, the outbox holds a status record of the refusal at priority high,
//! the bundle is gone from the drop folder, and the model installed before
//! stays committed and classifies the run's events. A bundle refused by
//! `fieldnode update apply` reaches the same places.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::explain;
use common::update::{
    key, model_bundle, model_parts, next_version, now_s, root_file, self_tests, signed, write_root,
};
use models::bundle::SelfTest;

/// `[update] max_bundle_bytes` of the node under attack: about fourteen
/// times the committed model, and more than the float model (so a bundle
/// carrying the float model is refused for what it is, not for its size).
const CAP: u64 = 4 << 20;

/// The float model: a real model other than the committed one.
const FLOAT_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/fusion/fusion.float.onnx"
);

/// The committed model's self-test vectors (made once).
fn tests() -> Vec<SelfTest> {
    static TESTS: OnceLock<Vec<SelfTest>> = OnceLock::new();
    TESTS.get_or_init(|| self_tests(6)).clone()
}

/// What a run of the node gave.
use common::update::DemoRun as Run;

impl Run {
    fn versions(&self) -> Vec<u64> {
        self.events
            .iter()
            .map(|e| e["model_version"].as_u64().unwrap_or(0))
            .collect()
    }
}

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    /// A node trusting the tests' root, with the committed model installed
    /// by an update as [`next_version`] (applied, self-tested, on trial for
    /// one burst, committed).
    fn with_update_installed() -> Node {
        let dir = tempfile::tempdir().unwrap();
        write_root(&dir.path().join("root.fnr"));
        std::fs::write(
            dir.path().join("fieldnode.toml"),
            format!(
                r#"
[update]
root = "{}"
scan_interval_ms = 200
trial_bursts = 1
max_bundle_bytes = {CAP}

[power.simulation]
initial_soc = 0.9
"#,
                dir.path().join("root.fnr").display()
            ),
        )
        .unwrap();
        let node = Node { dir };
        let path = node.dir.path().join("installed.fnb");
        std::fs::write(&path, model_bundle(next_version(), tests(), &[10, 11])).unwrap();
        let out = node.update(&["apply", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", explain(&out));
        let run = node.run();
        assert_eq!(run.summary["updates_installed"], 1, "{}", run.stderr);
        let s = node.status();
        assert_eq!(s["state"]["active"]["version"], next_version(), "{s}");
        node
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("fieldnode.toml")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root.fnr")
    }

    /// Replays the demo scene at full speed to its end.
    fn run(&self) -> Run {
        common::update::run_demo(&self.data(), &self.config())
    }

    fn update(&self, args: &[&str]) -> Output {
        Command::new(common::NODE)
            .arg("update")
            .args(args)
            .arg("--config")
            .arg(self.config())
            .arg("--data-dir")
            .arg(self.data())
            .output()
            .unwrap()
    }

    /// `fieldnode update status --json`.
    fn status(&self) -> serde_json::Value {
        let out = self.update(&["status", "--json"]);
        assert!(out.status.success(), "{}", explain(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Puts `bytes` in the drop folder as `name`.
    fn drop_in(&self, name: &str, bytes: &[u8]) {
        let incoming = self.data().join("incoming");
        std::fs::create_dir_all(&incoming).unwrap();
        std::fs::write(incoming.join(name), bytes).unwrap();
    }

    /// The newest status record made on an update result in the node's
    /// outbox (the node is not running), with its priority.
    fn last_update_record(&self) -> Option<(messages::StatusRecord, messages::Priority)> {
        let (store, _) =
            uplink::EventStore::open(&self.data().join("store"), &Default::default()).unwrap();
        store
            .pending(messages::Priority::Low, 10_000)
            .unwrap()
            .items
            .into_iter()
            .filter_map(|i| match i.message {
                messages::Message::Status(s) if s.cause == messages::StatusCause::UpdateResult => {
                    Some((s, i.priority))
                }
                _ => None,
            })
            .max_by_key(|(s, _)| s.id)
    }
}

/// Puts `bundle` in the node's drop folder, runs the node, and checks that
/// the node refused it with `code`: in the run's summary, in the install
/// state (`fieldnode update status`) and in a status record in the outbox;
/// that the bundle is gone; and that the model installed before is still
/// the committed one and classified the run's events. Returns the run.
fn refused(node: &Node, attack: &str, bundle: &[u8], code: &str) -> Run {
    node.drop_in(&format!("{attack}.fnb"), bundle);
    let run = node.run();
    let ctx = format!("{attack}: {}\n{}", run.summary, run.stderr);
    assert_eq!(run.summary["updates_refused"], 1, "{ctx}");
    assert_eq!(
        run.summary["updates_refused_by"],
        serde_json::json!({ format!("refused.{code}"): 1 }),
        "{ctx}"
    );
    assert_eq!(run.summary["updates_installed"], 0, "{ctx}");
    assert_eq!(run.summary["update_last"]["result"], "refused", "{ctx}");
    let reason = run.summary["update_last"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.starts_with(code), "{attack}: {reason}\n{ctx}");
    assert!(run.stderr.contains("update not installed"), "{ctx}");

    // The install state says so, and the previous model stays committed.
    let s = node.status();
    let last = &s["state"]["last"];
    assert_eq!(last["result"], "refused", "{attack}: {s}");
    let reason = last["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with(code), "{attack}: {s}");
    assert_eq!(
        s["state"]["active"]["version"],
        next_version(),
        "{attack}: {s}"
    );
    assert!(s["state"]["trial"].is_null(), "{attack}: {s}");
    assert!(
        s["pending"].as_array().unwrap().is_empty(),
        "{attack}: the refused bundle stayed: {s}"
    );

    // The run's events came from the previous model.
    assert!(!run.events.is_empty(), "{ctx}");
    assert!(
        run.versions().iter().all(|&v| v == next_version()),
        "{attack}: {:?}",
        run.versions()
    );

    // The refusal waits in the outbox for the operator.
    let (record, priority) = node
        .last_update_record()
        .unwrap_or_else(|| panic!("{attack}: no update result in the outbox"));
    assert_eq!(priority, messages::Priority::High, "{attack}");
    let result = record.update.last.clone().expect("a result");
    assert_eq!(
        result.result,
        messages::UpdateOutcome::Refused,
        "{attack}: {record:?}"
    );
    assert!(
        result.reason.as_str().starts_with(code),
        "{attack}: {record:?}"
    );
    assert_eq!(record.update.model_active, next_version(), "{attack}");
    run
}

/// The committed model as the next bundle after the installed one, its
/// metadata changed by `edit`, signed by `signers`.
fn next_bundle(edit: impl FnOnce(&mut models::bundle::Metadata), signers: &[u8]) -> Vec<u8> {
    let (mut meta, payload) = model_parts(next_version() + 1, tests());
    edit(&mut meta);
    signed(meta, payload, signers).to_bytes().unwrap()
}

#[test]
fn endless_data_past_the_length_cap_is_refused() {
    let node = Node::with_update_installed();
    // A valid bundle that goes on and on: nothing past the cap is read.
    let mut endless = next_bundle(|_| {}, &[10, 11]);
    endless.extend(std::iter::repeat_n(0x5a, 2 * CAP as usize));
    refused(&node, "endless-data", &endless, "too_large");
}

#[test]
fn endless_data_announced_by_a_signed_length_over_the_cap_is_refused() {
    let node = Node::with_update_installed();
    // Metadata signed for a payload longer than the cap, sent with the
    // start of it: refused on the signed length.
    let (meta, _) = model_parts(next_version() + 1, tests());
    let long = signed(meta, vec![7; CAP as usize + 1], &[10, 11]);
    let mut file = long.header_bytes().unwrap();
    file.extend(&long.payload[..4096]);
    refused(&node, "signed-length", &file, "too_large");
}

#[test]
fn indefinite_freeze_expired_metadata_is_refused() {
    let node = Node::with_update_installed();
    let frozen = next_bundle(
        |m| {
            m.created_s = now_s() - 2 * 86_400;
            m.expires_s = now_s() - 86_400;
        },
        &[10, 11],
    );
    refused(&node, "frozen", &frozen, "expired");
}

#[test]
fn mix_and_match_metadata_with_another_payload_is_refused() {
    let node = Node::with_update_installed();
    // Valid signed metadata for the committed model, carrying another real
    // model (the float one) as its payload.
    let (meta, payload) = model_parts(next_version() + 1, tests());
    let b = signed(meta, payload, &[10, 11]);
    let mut mixed = b.header_bytes().unwrap();
    mixed.extend(std::fs::read(FLOAT_MODEL).unwrap());
    assert!(
        (mixed.len() as u64) < CAP,
        "the mixed bundle must pass the cap"
    );
    refused(&node, "mix-and-match", &mixed, "payload_mismatch");
}

#[test]
fn fast_forward_a_refused_huge_version_does_not_lock_out_the_next_one() {
    let node = Node::with_update_installed();
    // Signed metadata with a huge version, bound to another payload than
    // the one it comes with.
    let (meta, payload) = model_parts(1 << 40, tests());
    let b = signed(meta, payload, &[10, 11]);
    let mut forward = b.header_bytes().unwrap();
    forward.extend(std::fs::read(FLOAT_MODEL).unwrap());
    refused(&node, "fast-forward", &forward, "payload_mismatch");
    let s = node.status();
    assert_eq!(
        s["installed"],
        serde_json::json!([["model", "fusion", next_version()]]),
        "{s}"
    );
    // The real next version is still taken, and installed.
    node.drop_in("real-next.fnb", &next_bundle(|_| {}, &[10, 11]));
    let run = node.run();
    assert_eq!(
        run.summary["updates_installed"], 1,
        "{}\n{}",
        run.summary, run.stderr
    );
    let s = node.status();
    assert_eq!(s["state"]["active"]["version"], next_version() + 1, "{s}");
}

#[test]
fn wrong_target_other_model_family_is_refused() {
    let node = Node::with_update_installed();
    let other = next_bundle(
        |m| {
            if let Some(t) = m.target.model.as_mut() {
                t.family = "fusion-xl".into();
            }
        },
        &[10, 11],
    );
    let run = refused(&node, "other-family", &other, "wrong_target");
    assert!(
        run.summary["update_last"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("model family"),
        "{}",
        run.summary
    );
}

#[test]
fn wrong_target_other_feature_layout_is_refused() {
    let node = Node::with_update_installed();
    let other = next_bundle(
        |m| {
            if let Some(t) = m.target.model.as_mut() {
                t.features = "fieldnode-features-1".into();
            }
        },
        &[10, 11],
    );
    let run = refused(&node, "other-features", &other, "wrong_target");
    assert!(
        run.summary["update_last"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("feature layout"),
        "{}",
        run.summary
    );
}

#[test]
fn wrong_target_newer_minimum_firmware_is_refused() {
    let node = Node::with_update_installed();
    let newer = next_bundle(|m| m.target.min_firmware = [u16::MAX, 0, 0], &[10, 11]);
    let run = refused(&node, "newer-firmware", &newer, "wrong_target");
    assert!(
        run.summary["update_last"]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("needs firmware"),
        "{}",
        run.summary
    );
}

#[test]
fn key_compromise_one_bundle_key_of_two_is_refused() {
    let node = Node::with_update_installed();
    let one = next_bundle(|_| {}, &[10]);
    refused(&node, "one-key", &one, "signatures");
}

#[test]
fn key_compromise_a_bundle_key_and_a_root_key_is_refused() {
    let node = Node::with_update_installed();
    // Root key 1 signs roots, not bundles: its signature counts for nothing.
    let mixed = next_bundle(|_| {}, &[10, 1]);
    refused(&node, "bundle-and-root-key", &mixed, "signatures");
}

#[test]
fn tampered_root_signed_only_by_new_keys_is_not_trusted() {
    let node = Node::with_update_installed();
    // An attacker replaces the provisioned root with one of the next
    // version that names their keys, signed by them alone, and signs a
    // bundle with their bundle keys.
    std::fs::write(node.root(), root_file(2, &[70, 71], &[72, 73], &[70, 71])).unwrap();
    let theirs = next_bundle(|_| {}, &[72, 73]);
    let run = refused(&node, "root-by-new-keys", &theirs, "signatures");
    assert!(
        run.stderr
            .contains("the provisioned root does not rotate from the trusted one"),
        "{}",
        run.stderr
    );
    let s = node.status();
    assert_eq!(s["root_version"], 1, "{s}");
}

#[test]
fn tampered_root_changed_after_signing_is_not_trusted() {
    let node = Node::with_update_installed();
    // A correctly rotated root (version 2, signed by the current root
    // keys), whose bundle keys are then replaced by the attacker's.
    let mut root = root_file(2, &[1, 2], &[10, 11], &[1, 2]);
    for (ours, theirs) in [(10, 72), (11, 73)] {
        let ours = key(ours).verifying_key().to_bytes();
        let at = root
            .windows(32)
            .position(|w| w == ours)
            .expect("the bundle key is in the root");
        root[at..at + 32].copy_from_slice(&key(theirs).verifying_key().to_bytes());
    }
    std::fs::write(node.root(), root).unwrap();
    let theirs = next_bundle(|_| {}, &[72, 73]);
    let run = refused(&node, "root-altered", &theirs, "signatures");
    assert!(
        run.stderr
            .contains("the provisioned root is not valid; keeping the trusted root"),
        "{}",
        run.stderr
    );
    let s = node.status();
    assert_eq!(s["root_version"], 1, "{s}");
}

#[test]
fn a_refusal_by_update_apply_reaches_the_install_state_and_the_outbox() {
    let node = Node::with_update_installed();
    let path = node.dir.path().join("one-key.fnb");
    std::fs::write(&path, next_bundle(|_| {}, &[10])).unwrap();
    let out = node.update(&["apply", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", explain(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signatures"),
        "{}",
        explain(&out)
    );
    // `fieldnode update status` shows it before the node runs again.
    let s = node.status();
    assert_eq!(s["state"]["last"]["result"], "refused", "{s}");
    assert_eq!(s["state"]["last"]["version"], next_version() + 1, "{s}");
    assert!(s["pending"].as_array().unwrap().is_empty(), "{s}");
    // The node's next run records and reports it.
    let run = node.run();
    assert_eq!(run.summary["updates_refused"], 1, "{}", run.summary);
    let (record, priority) = node.last_update_record().expect("a result");
    assert_eq!(priority, messages::Priority::High);
    let last = record.update.last.clone().unwrap();
    assert_eq!(last.result, messages::UpdateOutcome::Refused, "{record:?}");
    assert_eq!(last.version, next_version() + 1, "{record:?}");
    assert!(last.reason.as_str().starts_with("signatures"), "{record:?}");
    assert_eq!(record.update.model_active, next_version());
    let state = std::fs::read_to_string(node.data().join("update").join("state.toml")).unwrap();
    assert!(state.contains("result = \"refused\""), "{state}");
}
