//! The broker configuration we ship (`deploy/mosquitto/`), run by the real
//! mosquitto with certificates from `field-tools pki`: only its file paths
//! and port are rewritten for the test. A researcher who is away while a
//! node publishes 5,000 records, across a broker restart, receives every
//! one (mosquitto's default queue of 1,000 would drop most), and a node
//! cannot publish as another node.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hil_tests::mosquitto::free_port;
use messages::{EventClass, EventJson, EventRecord, ModelVersion, Permille};
use uplink::mqtt::TlsFiles;

const BACKLOG: u64 = 5_000;

fn pki(dir: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_hil-field-tools"))
        .arg("pki")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("run field-tools pki");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The shipped configuration with its paths and port moved into `dir`.
fn config(dir: &Path, pki: &Path, port: u16) -> PathBuf {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/mosquitto");
    let conf = std::fs::read_to_string(deploy.join("fieldnodes.conf")).expect("shipped conf");
    let etc = dir.join("etc");
    std::fs::create_dir_all(&etc).expect("mkdir");
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    for (from, to) in [
        (pki.join("ca.pem"), "ca.pem"),
        (pki.join("brokers/localhost.pem"), "broker.pem"),
        (pki.join("brokers/localhost.key"), "broker.key"),
        (deploy.join("acl"), "acl"),
    ] {
        std::fs::copy(&from, etc.join(to)).expect("copy");
    }
    assert!(
        conf.contains("\nlistener 8883\n"),
        "the shipped listener moved"
    );
    let mut conf = conf
        .replace("/etc/mosquitto/fieldnodes/", &format!("{}/", etc.display()))
        .replace(
            "/var/lib/mosquitto/",
            &format!("{}/", dir.join("data").display()),
        )
        .replace(
            "\nlistener 8883\n",
            &format!("\nlistener {port} 127.0.0.1\n"),
        );
    conf.push_str(&format!(
        "log_dest file {}\nconnection_messages true\n",
        dir.join("mosquitto.log").display()
    ));
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // As root, mosquitto would switch to the `mosquitto` user.
        conf.insert_str(0, "user root\n");
    }
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, conf).expect("write conf");
    path
}

struct Mosquitto(Child);

impl Mosquitto {
    fn start(conf: &Path, port: u16) -> Mosquitto {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mosquitto (Debian package mosquitto)");
        let mut m = Mosquitto(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(st)) = m.0.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = m.0.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("mosquitto refused the shipped configuration ({st}): {err}");
            }
            assert!(Instant::now() < deadline, "mosquitto did not open its port");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    /// SIGTERM: mosquitto saves its persistence database and exits.
    fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: signalling our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tls(pki: &Path, role: &str, name: &str) -> TlsFiles {
    TlsFiles {
        ca: pki.join("ca.pem"),
        cert: pki.join(role).join(format!("{name}.pem")),
        key: pki.join(role).join(format!("{name}.key")),
    }
}

fn pull_once(port: u16, researcher: &TlsFiles, out: &Path) {
    let url = format!("mqtts://localhost:{port}");
    common::pull::pull_jsonl(
        &url,
        researcher.clone(),
        "deploy-pull",
        out,
        Duration::from_secs(2),
    );
}

/// Publishes one JSON event per line at QoS 1 (`mosquitto_pub -l`).
fn publish_lines(port: u16, files: &TlsFiles, topic: &str, node: &str, ids: std::ops::Range<u64>) {
    let mut child = Command::new("mosquitto_pub")
        .args([
            "-h",
            "localhost",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-l",
            "-t",
            topic,
        ])
        .arg("--cafile")
        .arg(&files.ca)
        .arg("--cert")
        .arg(&files.cert)
        .arg("--key")
        .arg(&files.key)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (Debian package mosquitto-clients)");
    {
        let mut stdin = child.stdin.take().expect("stdin");
        for id in ids {
            let e = EventRecord {
                id,
                node_id: node.into(),
                start_ms: 1_780_000_000_000 + id as i64 * 1000,
                duration_ms: 1200,
                class: EventClass::MachineryAnomaly,
                confidence: Permille(870),
                scores: Default::default(),
                features: Default::default(),
                model: ModelVersion::TRIGGERS_ONLY,
                time: Default::default(),
                mono: None,
            };
            let line = serde_json::to_string(&EventJson::from(&e)).expect("json");
            writeln!(stdin, "{line}").expect("write to mosquitto_pub");
        }
    }
    let out = child.wait_with_output().expect("mosquitto_pub");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_shipped_broker_keeps_a_researchers_backlog_across_a_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pki_dir = tmp.path().join("pki");
    pki(&pki_dir, &["init"]);
    pki(
        &pki_dir,
        &["issue-broker", "localhost", "--alt", "127.0.0.1"],
    );
    pki(&pki_dir, &["issue-node", "node-1"]);
    pki(&pki_dir, &["issue-researcher", "researcher"]);
    let port = free_port().expect("port");
    let conf = config(tmp.path(), &pki_dir, port);
    let researcher = tls(&pki_dir, "researchers", "researcher");
    let node = tls(&pki_dir, "nodes", "node-1");
    let out = tmp.path().join("pulled.jsonl");

    let broker = Mosquitto::start(&conf, port);
    // The researcher's session exists; then the researcher goes away.
    pull_once(port, &researcher, &out);
    publish_lines(port, &node, "field/node-1/events", "node-1", 0..BACKLOG);
    // node-1 writing as node-2: the ACL drops it.
    publish_lines(port, &node, "field/node-2/events", "node-2", 0..10);
    broker.stop();
    let broker = Mosquitto::start(&conf, port);
    pull_once(port, &researcher, &out);
    drop(broker);

    let got: Vec<(String, u64)> = std::fs::read_to_string(&out)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str::<EventJson>(l).expect("an event line"))
        .map(|e| (e.node_id, e.id))
        .collect();
    let log = std::fs::read_to_string(tmp.path().join("mosquitto.log")).unwrap_or_default();
    assert_eq!(
        got.len() as u64,
        BACKLOG,
        "{}",
        &log[log.len().saturating_sub(2000)..]
    );
    assert!(got.iter().all(|(n, _)| n == "node-1"));
    let ids: std::collections::BTreeSet<u64> = got.iter().map(|(_, i)| *i).collect();
    assert_eq!(ids.len() as u64, BACKLOG);
}
