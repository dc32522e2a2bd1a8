//! A signed model bundle pushed over the field link, end to end: the real
//! `fieldnode` (as `hil-fieldnode`) replaying the demo scene with
//! `[fieldlink]` and a trust root, and the real `field-tools link push`
//! (as `hil-field-tools`) on its Unix socket:
//!
//! - without a key the push is refused;
//! - a tampered bundle (one payload byte changed after signing) is sent
//!   whole and refused by the node's update task (`payload_mismatch`);
//! - a push cut after five chunks (the connection dropped) leaves the
//!   partial bundle on the node, and `link push` goes on from there, not
//!   from 0; the model passes its self-test, goes on trial, and the
//!   events stored after carry its version; the node's status names it
//!   as the committed model.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::explain;
use common::update::{DEMO, key, model_bundle, next_version, self_tests, write_root};
use ed25519_dalek::SigningKey;
use messages::link::{BUNDLE_CHUNK_LEN, BundleKind, BundlePush, Request, Response};
use sha2::{Digest, Sha256};

/// `field-tools` (built in this package as `hil-field-tools`).
const FIELD_TOOLS: &str = env!("CARGO_BIN_EXE_hil-field-tools");

/// Bounds for waiting on the node; reaching one fails the test with the
/// node's log (not a timing assertion: generous on purpose).
const NODE_LIMIT: Duration = Duration::from_secs(180);

/// The running node: its stored events as JSON, its log.
struct Node {
    child: Child,
    log: PathBuf,
    stored: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Node {
    /// Replays the demo scene at twice its pace (its events come at 6, 19,
    /// 33 and 52 s of each pass; the configuration loops it three times),
    /// and keeps serving the link after it.
    fn start(config: &Path, data: &Path, log: PathBuf) -> Node {
        let mut child = Command::new(common::NODE)
            .args(["run", "--speed", "2", "--output", "jsonl", "--scene", DEMO])
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let stored = Arc::new(Mutex::new(Vec::new()));
        let sink = stored.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(e) = v.get("stored")
                {
                    sink.lock().unwrap().push(e.clone());
                }
            }
        });
        Node { child, log, stored }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `done` holds, failing with the node's log at the limit.
    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Node) -> bool) {
        let start = Instant::now();
        while !done(self) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "fieldnode exited ({status}) waiting for {what}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                start.elapsed() < NODE_LIMIT,
                "no {what}; the node's log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn model_versions(&self) -> Vec<u64> {
        self.stored
            .lock()
            .unwrap()
            .iter()
            .map(|e| e["model_version"].as_u64().unwrap_or(0))
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn link(args: &[&str]) -> Output {
    Command::new(FIELD_TOOLS)
        .arg("link")
        .args(args)
        .output()
        .unwrap()
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", explain(o)))
}

/// Begins the push of `file` and sends its first `chunks` chunks, then
/// drops the connection (a cable pulled mid-transfer).
fn push_part(socket: &Path, technician: &SigningKey, file: &[u8], chunks: usize) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target = field_tools::link::Target::Socket(socket.to_path_buf());
        let mut c = field_tools::link::connect_as(&target, Some(technician))
            .await
            .unwrap();
        let begin = BundlePush::Begin {
            kind: BundleKind::Model,
            total_len: file.len() as u64,
            sha256: Sha256::digest(file).into(),
        };
        let mut offset = match c.request(Request::BundlePush(begin)).await.unwrap() {
            Response::BundleOffset { offset } => offset,
            other => panic!("{other:?}"),
        };
        assert_eq!(offset, 0);
        for _ in 0..chunks {
            let start = offset as usize;
            let data = file[start..start + BUNDLE_CHUNK_LEN].to_vec();
            let step = BundlePush::Chunk { offset, data };
            offset = match c.request(Request::BundlePush(step)).await.unwrap() {
                Response::BundleOffset { offset } => offset,
                other => panic!("{other:?}"),
            };
        }
        offset
    })
}

#[test]
fn a_model_pushed_over_the_link_is_installed_after_a_cut_and_a_tampered_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_root(&dir.join("root.fnr"));
    let technician = key(40);
    let key_file = dir.join("technician.key");
    std::fs::write(&key_file, models::bundle::keys::secret_to_text(&technician)).unwrap();
    let socket = dir.join("link.sock");
    let config = dir.join("fieldnode.toml");
    // The drop folder is looked at once a minute: the push's result comes
    // from the link waking the update task.
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"node-p\"\n\n[fieldlink]\nsocket = \"{}\"\ntechnician_keys = [\"{}\"]\n\n[update]\nroot = \"{}\"\nscan_interval_ms = 60000\ntrial_bursts = 1\n\n[power.simulation]\ninitial_soc = 0.9\n\n[scene]\nloops = 3\n",
            socket.display(),
            hex::encode(technician.verifying_key().as_bytes()),
            dir.join("root.fnr").display()
        ),
    )
    .unwrap();
    let good = model_bundle(next_version(), self_tests(6), &[10, 11]);
    let good_file = dir.join("fusion-next.fnb");
    std::fs::write(&good_file, &good).unwrap();
    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x40;
    let tampered_file = dir.join("fusion-tampered.fnb");
    std::fs::write(&tampered_file, &tampered).unwrap();

    let data = dir.join("data");
    let mut node = Node::start(&config, &data, dir.join("node.log"));
    node.wait_for("field link listening", |n| {
        n.log_text()
            .contains("field link listening on a Unix socket")
    });
    let sock = socket.to_str().unwrap();
    let keyed = [
        "--socket",
        sock,
        "--key",
        key_file.to_str().unwrap(),
        "--json",
    ];

    // Without a key: refused, saying what to do.
    let o = link(&["--socket", sock, "push", good_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", explain(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs --key"),
        "{}",
        explain(&o)
    );

    // Tampered after signing: sent whole, refused by the update task.
    let mut args = keyed.to_vec();
    args.extend(["push", tampered_file.to_str().unwrap()]);
    let o = link(&args);
    assert_eq!(o.status.code(), Some(1), "{}", explain(&o));
    let v = json_of(&o);
    assert_eq!(v["result"], "refused", "{v}");
    assert_eq!(v["code"], "payload_mismatch", "{v}");
    assert_eq!(v["sent"], tampered.len(), "{v}");

    // Cut after five chunks: the node keeps them.
    let held = push_part(&socket, &technician, &good, 5);
    assert_eq!(held, 5 * BUNDLE_CHUNK_LEN as u64);
    let sha: [u8; 32] = Sha256::digest(&good).into();
    let part = data
        .join("fieldlink")
        .join("push")
        .join(format!("{}.part", hex::encode(sha)));
    assert_eq!(std::fs::read(&part).unwrap(), good[..held as usize]);

    // The push goes on from there.
    let mut args = keyed.to_vec();
    args.extend(["push", good_file.to_str().unwrap()]);
    let o = link(&args);
    assert_eq!(o.status.code(), Some(0), "{}", explain(&o));
    let v = json_of(&o);
    assert_eq!(v["resumed_from"], held, "{v}");
    assert_eq!(v["sent"], good.len() as u64 - held, "{v}");
    assert_eq!(v["version"], next_version(), "{v}");
    assert!(
        matches!(v["result"].as_str(), Some("on_trial" | "installed")),
        "{v}"
    );
    assert!(
        !part.exists(),
        "the partial bundle moved to the drop folder"
    );

    // Its trial runs on the scene's next event; then it is committed.
    node.wait_for("an event stored by the pushed model", |n| {
        n.model_versions().contains(&next_version())
    });
    node.wait_for("the pushed model committed", |_| {
        let o = link(&["--socket", sock, "--json", "status"]);
        o.status.success() && json_of(&o)["update"]["model_active"] == next_version()
    });
    let log = node.log_text();
    assert!(
        log.contains("pushed bundle queued for the update task"),
        "{log}"
    );
}
