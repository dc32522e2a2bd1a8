//! Certificates made by `field-tools pki` work with the real broker and the
//! real clients: mosquitto serves the PKI's broker certificate and reads the
//! node's CN as its user name (the ACL), a node publishes with its
//! certificate (mosquitto_pub, OpenSSL) and `field-tools pull` (rustls)
//! receives it with the researcher's. A node's certificate cannot publish
//! as another node.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hil_tests::mosquitto::{Broker, BrokerOptions, ClientFiles, RESEARCHER, publish};
use messages::{EventJson, EventRecord, Permille};
use uplink::mqtt::TlsFiles;

fn pki(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hil-field-tools"))
        .arg("pki")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run field-tools pki")
}

fn ok(out: std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn files(dir: &Path, role: &str, name: &str) -> ClientFiles {
    ClientFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(role).join(format!("{name}.pem")),
        key: dir.join(role).join(format!("{name}.key")),
    }
}

fn event(node: &str, id: u64) -> EventRecord {
    EventRecord {
        duration_ms: 900,
        confidence: Permille(910),
        ..common::event(node, id)
    }
}

fn pull_once(broker: &Broker, researcher: &ClientFiles, out: &Path) {
    let tls = TlsFiles {
        ca: researcher.ca.clone(),
        cert: researcher.cert.clone(),
        key: researcher.key.clone(),
    };
    common::pull::pull_jsonl(&broker.url(), tls, "pki-pull", out, Duration::from_secs(1));
}

#[test]
fn a_pki_made_by_field_tools_carries_a_nodes_events_to_a_researcher() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir: PathBuf = tmp.path().join("pki");
    ok(pki(&dir, &["init", "--name", "Test site CA"]));
    ok(pki(
        &dir,
        &["issue-broker", "localhost", "--alt", "127.0.0.1"],
    ));
    let node_out = ok(pki(&dir, &["issue-node", "node-1"]));
    assert!(node_out.contains("[uplink.mqtt.tls]"), "{node_out}");
    ok(pki(&dir, &["issue-node", "node-2"]));
    ok(pki(&dir, &["issue-researcher", RESEARCHER]));
    // Issuing the same name again is refused (exit 1) and changes nothing.
    let again = pki(&dir, &["issue-node", "node-1"]);
    assert_eq!(again.status.code(), Some(1));

    let broker = Broker::start(BrokerOptions {
        pki: Some(dir.clone()),
        ..BrokerOptions::default()
    })
    .expect("mosquitto with the PKI's broker certificate");
    let researcher = files(&dir, "researchers", RESEARCHER);
    let out = tmp.path().join("pulled.jsonl");
    pull_once(&broker, &researcher, &out);

    let node1 = files(&dir, "nodes", "node-1");
    let node2 = files(&dir, "nodes", "node-2");
    let (st, err) = publish(
        &broker,
        &node1,
        "field/node-1/events",
        &messages::encode_event(&event("node-1", 7)),
        false,
    )
    .expect("mosquitto_pub");
    assert!(st.success(), "{err}");
    // node-2's certificate writing into node-1's subtree: the ACL (by CN) drops it.
    let (st, err) = publish(
        &broker,
        &node2,
        "field/node-1/events",
        &messages::encode_event(&event("node-1", 8)),
        false,
    )
    .expect("mosquitto_pub");
    assert!(st.success(), "{err}");

    pull_once(&broker, &researcher, &out);
    let got: Vec<(String, u64)> = std::fs::read_to_string(&out)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str::<EventJson>(l).expect("an event line"))
        .map(|e| (e.node_id, e.id))
        .collect();
    assert_eq!(got, vec![("node-1".to_string(), 7)], "{}", broker.log());
}
