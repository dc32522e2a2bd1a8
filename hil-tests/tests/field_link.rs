//! The field link end to end: the real `fieldnode` (as `hil-fieldnode`) on
//! a generated scene with `[fieldlink]`, and the real `field-tools link`
//! code (as `hil-field-tools`) against it.
//!
//! - over the node's Unix socket: `hello`, `status`, `time`, `config
//!   show` and `config validate` refusing a bad key while the scene runs;
//!   `events` (only stored events, in order), and after the run, on the
//!   node started again without sensors (so nothing new is stored, and no
//!   wait on the store is needed), exactly the events `field-tools events
//!   --data-dir` reads, also in two halves by `--limit` and `--after-id`;
//! - `events --follow` while the node stops and starts again: every event
//!   printed once, none missing;
//! - the first errors (no such port, no answer, no such socket);
//! - over a serial line (two pseudo-terminal pairs and a relay between
//!   them, so the test can inject line noise): garbage before a request,
//!   and between sessions, and the requests (`hello`, `status`, `logs`,
//!   `uplink status`, `outbox`) are still answered; the node counts the
//!   bad frames;
//! - `logs`, `probe`, `uplink status`, `uplink flush`, `outbox` and
//!   `reboot` over the socket on a node whose uplink runs, the control
//!   commands refused without a key; the node exits with 75 after
//!   `reboot`, its store intact;
//! - `uplink status` and `uplink flush` following a live MQTT link to a
//!   real broker, and the broker stopped;
//! - `ports` and `--port auto`.

mod common;

use common::explain;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

/// `field-tools link` (built in this package as `hil-field-tools`).
const FIELD_TOOLS: &str = env!("CARGO_BIN_EXE_hil-field-tools");

/// Bounds for waiting on the node; a test that reaches one fails with the
/// node's log (not a timing assertion: generous on purpose).
const NODE_LIMIT: Duration = Duration::from_secs(120);

fn link(target: &[&str], args: &[&str]) -> Output {
    Command::new(FIELD_TOOLS)
        .arg("link")
        .args(target)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The ids of `field-tools link events` (JSON lines).
fn link_event_ids(target: &[&str]) -> Vec<u64> {
    let o = link(target, &["events"]);
    assert!(o.status.success(), "link events: {}", explain(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line per event");
            v["id"].as_u64().expect("an id")
        })
        .collect()
}

struct Node {
    child: Child,
    log: PathBuf,
    stored: Arc<Mutex<Vec<u64>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Starts the node on `scene` at `--speed max`, without
    /// `--exit-at-end`: it keeps serving the link after the scene.
    fn start(scene: &Path, data: &Path, config: &Path, log: PathBuf) -> Node {
        let mut child = Command::new(common::NODE)
            .args(["run", "--speed", "max", "--output", "jsonl", "--scene"])
            .arg(scene)
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
        let ids = stored.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(id) = v.pointer("/stored/id").and_then(|i| i.as_u64())
                {
                    ids.lock().unwrap().push(id);
                }
            }
        });
        Node {
            child,
            log,
            stored,
            reader: Some(reader),
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle`.
    fn wait_log(&mut self, needle: &str) {
        let start = Instant::now();
        while !self.log_text().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("fieldnode exited ({status}):\n{}", self.log_text());
            }
            assert!(
                start.elapsed() < NODE_LIMIT,
                "no `{needle}` in the node's log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stored(&self) -> Vec<u64> {
        self.stored.lock().unwrap().clone()
    }

    /// SIGINT, then waits for a clean exit.
    fn stop(mut self) -> String {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let status = common::wait_or_fail(&mut self.child, NODE_LIMIT, &self.log);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        let log = self.log_text();
        assert!(status.success(), "fieldnode failed: {status}\n{log}");
        log
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn scene(dir: &Path) -> PathBuf {
    let scene = dir.join("scene");
    common::scenegen(
        &scene,
        &["--preset", "mixed", "--seed", "5", "--duration", "300"],
    );
    scene
}

/// The config of a node that serves the link on `socket` and, with
/// `quiet`, has no sensor (it stores nothing new).
fn link_config(path: &Path, id: &str, socket: &Path, quiet: bool) -> String {
    let sensors = if quiet {
        "[audio]\nenabled = false\n[camera]\nenabled = false\n[climate]\nenabled = false\n"
    } else {
        ""
    };
    let text = format!(
        "[node]\nid = \"{id}\"\n{sensors}\n[fieldlink]\nsocket = \"{}\"\n",
        socket.display()
    );
    std::fs::write(path, &text).unwrap();
    text
}

fn ids_of(o: &Output) -> Vec<u64> {
    stdout(o)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

fn queued(v: &serde_json::Value) -> u64 {
    v["queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q.as_u64().unwrap())
        .sum()
}

#[test]
fn field_tools_link_reads_a_running_node_over_its_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let scene = scene(tmp.path());
    let socket = tmp.path().join("link.sock");
    let config = tmp.path().join("fieldnode.toml");
    let config_text = link_config(&config, "node-l", &socket, false);
    let data = tmp.path().join("data");
    let mut node = Node::start(&scene, &data, &config, tmp.path().join("node.log"));
    node.wait_log("field link listening on a Unix socket");
    let target = ["--socket", socket.to_str().unwrap()];

    // While the scene is replayed.
    let o = link(&target, &["hello"]);
    assert!(o.status.success(), "hello: {}", explain(&o));
    assert!(stdout(&o).contains("node-l"), "{}", explain(&o));
    let version = format!(
        "field-link {}",
        messages::link::version_string(messages::link::PROTOCOL_VERSION)
    );
    assert!(stdout(&o).contains(&version), "{}", explain(&o));

    let o = link(&target, &["--json", "status"]);
    assert!(o.status.success(), "status: {}", explain(&o));
    let status: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(status["node_id"], "node-l");
    // As text, with the clock part: a replay's time comes from its scene,
    // and it reads no RTC.
    let o = link(&target, &["status"]);
    assert!(o.status.success(), "status: {}", explain(&o));
    let text = stdout(&o);
    assert!(
        text.contains("clock:     time from scene"),
        "{}",
        explain(&o)
    );
    assert!(text.contains("rtc:       not reported"), "{}", explain(&o));
    assert!(text.contains("sleep:     none"), "{}", explain(&o));

    let o = link(&target, &["time"]);
    assert!(o.status.success(), "time: {}", explain(&o));
    assert!(stdout(&o).contains("source scene"), "{}", explain(&o));

    let o = link(&target, &["config", "show"]);
    assert!(o.status.success(), "config show: {}", explain(&o));
    assert_eq!(stdout(&o), config_text);

    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[node]\nid = \"node-l\"\ncolour = \"red\"\n").unwrap();
    let o = link(&target, &["config", "validate", bad.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a bad key is refused: {}",
        explain(&o)
    );
    assert!(
        stdout(&o).contains("node.colour: unknown key"),
        "{}",
        explain(&o)
    );
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, "[node]\nid = \"node-m\"\n").unwrap();
    let o = link(
        &target,
        &["--json", "config", "validate", good.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", explain(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["valid"], true);
    assert!(
        v["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "node.id"),
        "{v}"
    );

    // After the scene (the node keeps serving): what the link sends is
    // stored, in id order.
    node.wait_log("every sensor ended");
    let during = link_event_ids(&target);
    assert!(!during.is_empty(), "no event while the scene ran");
    assert!(
        during.windows(2).all(|w| w[0] < w[1]),
        "ids in order, no duplicate"
    );
    node.stop();
    assert!(!socket.exists(), "the socket file is removed at the end");

    // What `field-tools events --data-dir` shows after the run.
    let on_disk: Vec<u64> = field_tools::events::read_events(&data, None)
        .unwrap()
        .events
        .iter()
        .map(|e| e.id)
        .collect();
    assert!(on_disk.len() >= 3, "scene gave too few events: {on_disk:?}");
    assert!(
        during.iter().all(|id| on_disk.contains(id)),
        "{during:?} vs {on_disk:?}"
    );

    // The node again on the same data directory, without sensors (nothing
    // new is stored): the link shows exactly what the run stored.
    link_config(&config, "node-l", &socket, true);
    let mut node = Node::start(&scene, &data, &config, tmp.path().join("node2.log"));
    node.wait_log("field link listening on a Unix socket");
    let events = link_event_ids(&target);
    assert_eq!(events, on_disk);
    assert!(node.stored().is_empty(), "the quiet run stored events");

    // Limit and resume: two halves give the whole.
    let half = (events.len() / 2).to_string();
    let o = link(&target, &["events", "--limit", &half]);
    assert!(o.status.success(), "{}", explain(&o));
    let mut both = ids_of(&o);
    let last = both.last().unwrap().to_string();
    let o = link(&target, &["events", "--after-id", &last]);
    assert!(o.status.success(), "{}", explain(&o));
    both.extend(ids_of(&o));
    assert_eq!(both, events);

    let o = link(&target, &["--json", "status"]);
    assert!(o.status.success(), "status: {}", explain(&o));
    let status: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(queued(&status), events.len() as u64, "{status}");

    // Outbox stats are served while the uplink is off.
    let o = link(&target, &["--json", "outbox"]);
    assert!(o.status.success(), "outbox: {}", explain(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(queued(&v), events.len() as u64, "{v}");
    node.stop();
}

/// The log without its colour escapes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A raw pseudo-terminal pair: (master, slave, slave path).
fn raw_pty() -> (File, OwnedFd, PathBuf) {
    let pty = openpty(None, None).unwrap();
    let mut t = tcgetattr(pty.slave.as_fd()).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t).unwrap();
    let path = nix::unistd::ttyname(pty.slave.as_fd()).unwrap();
    (File::from(pty.master), pty.slave, path)
}

/// Copies bytes from one master to the other for the rest of the test;
/// `noise` is written to `to` before each chunk while it holds something.
fn relay(mut from: File, mut to: File, noise: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match from.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    let garbage = std::mem::take(&mut *noise.lock().unwrap());
                    if to.write_all(&garbage).is_err() || to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO while no one has the slave open: wait for an open.
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
}

#[test]
fn a_serial_link_answers_through_line_noise() {
    let tmp = tempfile::tempdir().unwrap();
    let scene = scene(tmp.path());
    // The node's line and the technician's, joined by a relay that can
    // inject noise on the way to the node.
    let (node_master, _node_slave, node_tty) = raw_pty();
    let (cli_master, _cli_slave, cli_tty) = raw_pty();
    let noise = Arc::new(Mutex::new(Vec::new()));
    relay(
        cli_master.try_clone().unwrap(),
        node_master.try_clone().unwrap(),
        noise.clone(),
    );
    relay(node_master, cli_master, Arc::new(Mutex::new(Vec::new())));

    let config = tmp.path().join("fieldnode.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"node-p\"\n\n[fieldlink]\nserial = \"{}\"\nbaud = 115200\n",
            node_tty.display()
        ),
    )
    .unwrap();
    let mut node = Node::start(
        &scene,
        &tmp.path().join("data"),
        &config,
        tmp.path().join("node.log"),
    );
    node.wait_log("field link listening on a serial device");
    let target = ["--port", cli_tty.to_str().unwrap(), "--baud", "115200"];

    // Line noise (a damaged frame ended by a delimiter, then bytes with no
    // delimiter) reaches the node just before the client's first bytes.
    *noise.lock().unwrap() = vec![0x55, 0xaa, 0x13, 0x00, 0x37, 0x42, 0xfe];
    let o = link(&target, &["hello"]);
    assert!(o.status.success(), "hello through noise: {}", explain(&o));
    assert!(stdout(&o).contains("node-p"), "{}", explain(&o));

    // Noise again, in the middle of the session's life: a second client
    // on the same line is answered too.
    *noise.lock().unwrap() = (0..200u16).map(|i| (i * 37 % 251) as u8 + 1).collect();
    let o = link(&target, &["--json", "status"]);
    assert!(o.status.success(), "status through noise: {}", explain(&o));
    let status: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(status["node_id"], "node-p");

    // The log stream and the uplink's state over the same line, with noise
    // before the request.
    *noise.lock().unwrap() = vec![0x00, 0x99, 0x98, 0x00];
    let lines = log_lines(&link(&target, &["--json", "logs", "--lines", "5"]));
    assert_eq!(lines.len(), 5);
    let o = link(&target, &["--json", "uplink", "status"]);
    assert!(o.status.success(), "uplink status: {}", explain(&o));
    assert_eq!(json_of(&o)["links"][0]["state"], "disabled");
    let o = link(&target, &["--json", "outbox"]);
    assert!(o.status.success(), "outbox: {}", explain(&o));

    // The node takes SIGINT as a clean stop once its pipeline runs.
    node.wait_log("every sensor ended");
    let log = node.stop();
    // The node counted what it dropped.
    let log = strip_ansi(&log);
    let line = log
        .lines()
        .find(|l| {
            l.contains("field link session ended") && l.contains(&*node_tty.to_string_lossy())
        })
        .unwrap_or_else(|| panic!("no session end logged:\n{log}"));
    let bad: u64 = line
        .split_whitespace()
        .find_map(|f| f.strip_prefix("bad_frames="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no bad_frames in {line}"));
    assert!(bad >= 2, "{line}");
}

/// `field-tools link events --follow` running while the node stops and
/// starts again on the same data directory: it reconnects, resumes from
/// its cursor, and has printed every stored event exactly once.
#[test]
fn follow_resumes_across_a_node_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let scene = scene(tmp.path());
    let socket = tmp.path().join("link.sock");
    let config = tmp.path().join("fieldnode.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"node-f\"\n\n[fieldlink]\nsocket = \"{}\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let mut node = Node::start(&scene, &data, &config, tmp.path().join("node1.log"));
    node.wait_log("field link listening on a Unix socket");

    let mut client = Command::new(FIELD_TOOLS)
        .args([
            "link",
            "--socket",
            socket.to_str().unwrap(),
            "events",
            "--follow",
        ])
        .stdout(Stdio::piped())
        .stderr(File::create(tmp.path().join("client.log")).unwrap())
        .spawn()
        .unwrap();
    let printed = Arc::new(Mutex::new(Vec::<u64>::new()));
    let lines = printed.clone();
    let out = client.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            lines.lock().unwrap().push(v["id"].as_u64().unwrap());
        }
    });
    let client_log = || std::fs::read_to_string(tmp.path().join("client.log")).unwrap_or_default();
    // Waits until the client printed as many events as the node(s) stored.
    let wait_printed = |want: usize, node: &Node| {
        let start = Instant::now();
        while printed.lock().unwrap().len() < want {
            assert!(
                start.elapsed() < NODE_LIMIT,
                "the client printed {} of {want} events\nclient:\n{}\nnode:\n{}",
                printed.lock().unwrap().len(),
                client_log(),
                node.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let read_disk = || -> Vec<u64> {
        field_tools::events::read_events(&data, None)
            .unwrap()
            .events
            .iter()
            .map(|e| e.id)
            .collect()
    };
    // Cut 1: the node stops once it streamed something.
    node.wait_log("every sensor ended");
    wait_printed(1, &node);
    node.stop();
    let first_run = read_disk().len();

    // The same scene again: its events are stored again, with new ids.
    // Cut 2: the node stops once the client has one of them.
    let mut node = Node::start(&scene, &data, &config, tmp.path().join("node2.log"));
    node.wait_log("every sensor ended");
    wait_printed(first_run + 1, &node);
    node.stop();
    let on_disk = read_disk();
    assert!(on_disk.len() > first_run, "the second run stored nothing");

    // A third start without sensors stores nothing new: the client gets
    // whatever the cuts left, and the store is the whole truth.
    let quiet = tmp.path().join("quiet.toml");
    std::fs::write(
        &quiet,
        format!(
            "[node]\nid = \"node-f\"\n[audio]\nenabled = false\n[camera]\nenabled = false\n[climate]\nenabled = false\n\n[fieldlink]\nsocket = \"{}\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let mut node = Node::start(&scene, &data, &quiet, tmp.path().join("node3.log"));
    node.wait_log("every sensor ended");
    wait_printed(on_disk.len(), &node);
    node.stop();
    assert_eq!(read_disk(), on_disk, "the quiet run stored something");
    let _ = client.kill();
    let _ = client.wait();
    reader.join().unwrap();

    let printed = printed.lock().unwrap().clone();
    assert_eq!(printed, on_disk, "client:\n{}", client_log());
    assert!(
        client_log().contains("reconnecting"),
        "the client did not reconnect:\n{}",
        client_log()
    );
}

/// The errors a technician meets first say what to check.
#[test]
fn link_errors_say_what_to_check() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("ttyUSB9");
    let o = link(&["--port", missing.to_str().unwrap()], &["hello"]);
    assert_eq!(o.status.code(), Some(2), "{}", explain(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no such port"), "{err}");

    // A line with nothing answering on it (a wrong baud rate looks the
    // same): three Hellos, then the hint.
    let (_master, _slave, tty) = raw_pty();
    let o = link(&["--port", tty.to_str().unwrap()], &["status"]);
    assert_eq!(o.status.code(), Some(2), "{}", explain(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no answer from the node")
            && err.contains("baud rate")
            && err.contains("cable"),
        "{err}"
    );

    let o = link(
        &["--socket", tmp.path().join("none.sock").to_str().unwrap()],
        &["hello"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", explain(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no such socket"), "{err}");
}

/// A technician key file as `field-tools keys generate` writes it, and the
/// public key as hex (for `[fieldlink] technician_keys`).
fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn technician_key(dir: &Path, name: &str, seed: u8) -> (PathBuf, String) {
    let key = models::bundle::keys::generate([seed; 32]);
    let path = dir.join(name);
    std::fs::write(&path, models::bundle::keys::secret_to_text(&key)).unwrap();
    (path, hex::encode(key.verifying_key().as_bytes()))
}

/// The control commands with the real node and CLI: `time set` and
/// `config set` refused without a key and with a key the node does not
/// trust (nothing changed), served with a trusted key: the time reference
/// stored and reported, the configuration file replaced and the previous
/// one kept. Refusals are counted in the node's session lines.
#[test]
fn control_commands_need_a_trusted_technician_key() {
    let tmp = tempfile::tempdir().unwrap();
    let scene = scene(tmp.path());
    let socket = tmp.path().join("link.sock");
    let config = tmp.path().join("fieldnode.toml");
    let prev = tmp.path().join("fieldnode.toml.prev");
    let (good, good_public) = technician_key(tmp.path(), "good.key", 1);
    let (other, _) = technician_key(tmp.path(), "other.key", 2);
    let old = format!(
        "[node]\nid = \"node-k\"\n[audio]\nenabled = false\n[camera]\nenabled = false\n[climate]\nenabled = false\n\n[fieldlink]\nsocket = \"{}\"\ntechnician_keys = [\"{good_public}\"]\n",
        socket.display()
    );
    std::fs::write(&config, &old).unwrap();
    let new = format!("{old}\n[power]\ninterval_ms = 20000\n");
    let new_file = tmp.path().join("new.toml");
    std::fs::write(&new_file, &new).unwrap();
    let new_arg = new_file.to_str().unwrap();
    let data = tmp.path().join("data");
    let time_file = data.join("fieldlink").join("time.toml");
    let mut node = Node::start(&scene, &data, &config, tmp.path().join("node.log"));
    node.wait_log("field link listening on a Unix socket");
    let target = ["--socket", socket.to_str().unwrap()];
    let with_key = |key: &Path| {
        vec![
            "--socket".to_string(),
            socket.to_str().unwrap().to_string(),
            "--key".to_string(),
            key.to_str().unwrap().to_string(),
        ]
    };

    // No key: refused, saying what to do; nothing changed.
    for args in [vec!["time", "set", "--now"], vec!["config", "set", new_arg]] {
        let o = link(&target, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", explain(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("this command needs --key with a technician key the node trusts"),
            "{err}"
        );
    }
    // A key the node does not trust: refused at authentication.
    let untrusted = with_key(&other);
    for args in [
        vec!["time", "set", "--unix-ms", "1900000000000"],
        vec!["config", "set", new_arg],
    ] {
        let o = link(&as_strs(&untrusted), &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", explain(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("refused the technician key") && err.contains("not one this node trusts"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read_to_string(&config).unwrap(), old);
    assert!(!prev.exists());
    assert!(!time_file.exists());
    let o = link(&target, &["--json", "time"]);
    assert!(o.status.success(), "{}", explain(&o));
    let t: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(t["source"], "scene", "{t}");

    // The trusted key: served.
    let trusted = with_key(&good);
    let o = link(
        &as_strs(&trusted),
        &[
            "--json",
            "time",
            "set",
            "--unix-ms",
            "1900000000000",
            "--uncertainty-ms",
            "300",
        ],
    );
    assert!(o.status.success(), "time set: {}", explain(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["unix_ms"], 1_900_000_000_000_i64, "{v}");
    assert!(v["step_ms"].is_i64(), "{v}");
    assert!(v["uncertainty_ms"].as_u64().unwrap() >= 300, "{v}");
    let stored = std::fs::read_to_string(&time_file).expect("the time reference is stored");
    assert!(stored.contains("unix_ms = 1900000000000"), "{stored}");
    let o = link(&target, &["--json", "time"]);
    assert!(o.status.success(), "{}", explain(&o));
    let t: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(t["source"], "technician", "{t}");
    assert!(t["unix_ms"].as_i64().unwrap() >= 1_900_000_000_000, "{t}");
    assert!(t["uncertainty_ms"].as_u64().unwrap() >= 300, "{t}");

    // An invalid file: the problems, nothing written.
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[node]\nid = \"node-k\"\ncolour = \"red\"\n").unwrap();
    let o = link(
        &as_strs(&trusted),
        &["config", "set", bad.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", explain(&o));
    assert!(
        stdout(&o).contains("node.colour: unknown key"),
        "{}",
        explain(&o)
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), old);
    assert!(!prev.exists());

    let o = link(&as_strs(&trusted), &["--json", "config", "set", new_arg]);
    assert!(o.status.success(), "config set: {}", explain(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert!(
        v["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "power.interval_ms"),
        "{v}"
    );
    assert_eq!(std::fs::read_to_string(&config).unwrap(), new);
    assert_eq!(std::fs::read_to_string(&prev).unwrap(), old);
    let o = link(&target, &["config", "show"]);
    assert!(o.status.success(), "{}", explain(&o));
    assert_eq!(stdout(&o), new);

    let log = strip_ansi(&node.stop());
    assert_eq!(
        log.matches("field link: authentication refused").count(),
        2,
        "{log}"
    );
    assert!(log.contains("auth_refusals=1"), "{log}");
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("not one JSON value ({e}): {}", explain(o)))
}

/// The JSON lines of `link logs --json`.
fn log_lines(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "link logs: {}", explain(o));
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per log line"))
        .collect()
}

/// `logs`, `probe`, `uplink status`, `uplink flush`, `outbox` and `reboot`
/// with the real node (its uplink running, on a satellite modem that is
/// not there) and the real CLI: the reads open, the control commands
/// refused without a key and served with a trusted one; `reboot` answers,
/// then the node stops cleanly and exits with 75, everything it stored
/// still in the store when it starts again.
#[test]
fn logs_probe_uplink_and_reboot_with_the_real_node() {
    let tmp = tempfile::tempdir().unwrap();
    let scene = scene(tmp.path());
    let socket = tmp.path().join("link.sock");
    let config = tmp.path().join("fieldnode.toml");
    let (good, good_public) = technician_key(tmp.path(), "good.key", 1);
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"node-c\"\n\n[fieldlink]\nsocket = \"{}\"\ntechnician_keys = [\"{good_public}\"]\n\n[uplink]\nenabled = true\n\n[uplink.sbd]\nport = \"{}\"\n",
            socket.display(),
            tmp.path().join("no-modem").display()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let mut node = Node::start(&scene, &data, &config, tmp.path().join("node.log"));
    node.wait_log("field link listening on a Unix socket");
    node.wait_log("uplink started");
    let target = ["--socket", socket.to_str().unwrap()];
    let keyed = [
        "--socket",
        socket.to_str().unwrap(),
        "--key",
        good.to_str().unwrap(),
    ];

    // Logs: the node's own lines, newest last, filtered by level.
    let lines = log_lines(&link(&target, &["--json", "logs", "--lines", "500"]));
    assert!(!lines.is_empty());
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .contains("field link listening")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l["target"].is_string() && l["time_ms"].is_i64())
    );
    let two = log_lines(&link(&target, &["--json", "logs", "--lines", "2"]));
    assert_eq!(two.len(), 2);
    let warnings = log_lines(&link(
        &target,
        &["--json", "logs", "--lines", "1000", "--level", "warn"],
    ));
    assert!(
        warnings
            .iter()
            .all(|l| l["level"] == "warn" || l["level"] == "error"),
        "{warnings:?}"
    );
    let o = link(&target, &["logs", "--level", "loud"]);
    assert_eq!(o.status.code(), Some(2), "{}", explain(&o));
    // Text form: one line each, with the level.
    let o = link(&target, &["logs", "--lines", "3"]);
    assert!(o.status.success(), "{}", explain(&o));
    assert_eq!(stdout(&o).lines().count(), 3, "{}", explain(&o));

    // Follow: a line the node logs later (another session opening)
    // arrives on the open stream.
    let opened = |node: &Node| node.log_text().matches("log stream opened").count();
    let streams_before = opened(&node);
    let mut follow = Command::new(FIELD_TOOLS)
        .args(["link", "--socket", socket.to_str().unwrap()])
        .args(["--json", "logs", "--lines", "0", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + NODE_LIMIT;
    while opened(&node) == streams_before {
        assert!(Instant::now() < deadline, "{}", node.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = link(&target, &["hello"]);
    assert!(o.status.success(), "{}", explain(&o));
    let deadline = Instant::now() + NODE_LIMIT;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the followed log shows the new session");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        if v["message"]
            .as_str()
            .is_some_and(|m| m.contains("field link session opened"))
        {
            break;
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();

    // The uplink's state, read while it runs.
    let o = link(&target, &["--json", "uplink", "status"]);
    assert!(o.status.success(), "{}", explain(&o));
    let u = json_of(&o);
    assert_eq!(u["links"][0]["link"], "mqtt");
    assert_eq!(u["links"][0]["state"], "disabled", "{u}");
    assert_eq!(u["links"][1]["link"], "sbd");
    assert_ne!(u["links"][1]["state"], "disabled", "{u}");
    let o = link(&target, &["--json", "outbox"]);
    assert!(o.status.success(), "{}", explain(&o));
    assert_eq!(json_of(&o)["delivered_since_start"], 0);

    // Control commands: refused without a key, nothing done.
    for args in [vec!["probe"], vec!["uplink", "flush"], vec!["reboot"]] {
        let o = link(&target, &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", explain(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("needs --key"),
            "{args:?}: {}",
            explain(&o)
        );
    }
    assert!(node.child.try_wait().unwrap().is_none(), "the node runs on");

    // Probe: the running sensors, from the scene, no device opened.
    let o = link(&keyed, &["--json", "probe"]);
    assert!(o.status.success(), "probe: {}", explain(&o));
    let p = json_of(&o);
    let roles: Vec<&str> = p["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["microphone", "camera", "climate", "power"], "{p}");
    assert!(
        p["devices"][0]["device"]
            .as_str()
            .unwrap()
            .starts_with("scene "),
        "{p}"
    );
    let o = link(&keyed, &["probe"]);
    assert!(o.status.success(), "probe: {}", explain(&o));
    assert!(stdout(&o).contains("climate"), "{}", explain(&o));

    // Flush: the uplink runs a round now and says what it decided.
    let o = link(&keyed, &["--json", "uplink", "flush"]);
    assert!(o.status.success(), "flush: {}", explain(&o));
    let f = json_of(&o);
    assert!(f["queued"].is_u64(), "{f}");
    assert!(f["round"]["action"].is_string(), "{f}");

    // Reboot: answered, then the node stops cleanly with 75.
    let before = node.stored();
    let o = link(&keyed, &["--json", "reboot"]);
    assert!(o.status.success(), "reboot: {}", explain(&o));
    let r = json_of(&o);
    assert_eq!(r["rebooting"], true, "{r}");
    assert_eq!(r["after_ms"], 250, "{r}");
    let status = common::wait_or_fail(&mut node.child, NODE_LIMIT, &node.log);
    if let Some(reader) = node.reader.take() {
        reader.join().unwrap();
    }
    let log = strip_ansi(&node.log_text());
    assert_eq!(status.code(), Some(75), "{log}");
    assert!(log.contains("reboot asked by the technician"), "{log}");
    let stored = node.stored();
    assert!(stored.len() >= before.len());
    drop(node);

    // Started again (quiet: nothing new), it holds every event it stored.
    let quiet = tmp.path().join("quiet.toml");
    link_config(&quiet, "node-c", &socket, true);
    let mut again = Node::start(&scene, &data, &quiet, tmp.path().join("again.log"));
    again.wait_log("field link listening on a Unix socket");
    let held = link_event_ids(&target);
    for id in &stored {
        assert!(
            held.contains(id),
            "event {id} stored before the reboot is gone"
        );
    }
    again.stop();
}

/// `link ports` lists this computer's serial ports (often none here);
/// `--port auto` picks the only USB one or says why it cannot; a command
/// without `--socket` or `--port` says what to give.
#[test]
fn ports_are_listed_and_auto_explains_itself() {
    let o = link(&[], &["--json", "ports"]);
    assert!(o.status.success(), "{}", explain(&o));
    let ports = json_of(&o);
    let usb = ports
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter(|p| p["kind"] == "usb")
        .count();
    let o = link(&["--port", "auto"], &["hello"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    match usb {
        0 => {
            assert_eq!(o.status.code(), Some(2), "{}", explain(&o));
            assert!(err.contains("no USB serial device found"), "{err}");
        }
        1 => assert!(err.contains("--port auto: /dev/"), "{err}"),
        n => assert!(
            err.contains(&format!("{n} USB serial devices found")),
            "{err}"
        ),
    }
    let o = link(&[], &["status"]);
    assert_eq!(o.status.code(), Some(2), "{}", explain(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--socket PATH, or --port DEV"),
        "{}",
        explain(&o)
    );
}

/// Polls `field-tools link --json ARGS` until `done` holds for its output
/// (bounded by `NODE_LIMIT`; the node's log is shown when it is reached).
fn poll_json(
    node: &Node,
    target: &[&str],
    args: &[&str],
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + NODE_LIMIT;
    loop {
        let o = link(target, args);
        assert!(o.status.success(), "{args:?}: {}", explain(&o));
        let v = json_of(&o);
        if done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{args:?} never reached the state wanted: {v}\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The uplink's live state over the link with a real broker: MQTT up,
/// deliveries counted and dated, a flush answered with the round it
/// started; the broker stopped: MQTT down with the connection's error.
#[test]
fn uplink_status_follows_a_live_mqtt_link() {
    use hil_tests::mosquitto::{Broker, BrokerOptions};
    let tmp = tempfile::tempdir().unwrap();
    let scene = scene(tmp.path());
    let mut broker = Broker::start(BrokerOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let files = broker.client_files("node-u").expect("client certificate");
    let socket = tmp.path().join("link.sock");
    let (good, good_public) = technician_key(tmp.path(), "good.key", 1);
    let config = tmp.path().join("fieldnode.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"node-u\"\n\n[fieldlink]\nsocket = \"{}\"\ntechnician_keys = [\"{good_public}\"]\n\n[uplink]\nenabled = true\n\n[uplink.mqtt]\nhost = \"127.0.0.1\"\nport = {}\nconnect_timeout_s = 5\nreconnect_min_ms = 100\nreconnect_max_ms = 500\n[uplink.mqtt.tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
            socket.display(),
            broker.port(),
            files.ca.display(),
            files.cert.display(),
            files.key.display(),
        ),
    )
    .unwrap();
    let node = Node::start(
        &scene,
        &tmp.path().join("data"),
        &config,
        tmp.path().join("node.log"),
    );
    let target = ["--socket", socket.to_str().unwrap()];
    let keyed = [
        "--socket",
        socket.to_str().unwrap(),
        "--key",
        good.to_str().unwrap(),
    ];
    let deadline = Instant::now() + NODE_LIMIT;
    while !socket.exists() {
        assert!(Instant::now() < deadline, "{}", node.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }

    let up = poll_json(&node, &target, &["--json", "uplink", "status"], |v| {
        v["links"][0]["state"] == "up" && v["links"][0]["last_success_ms"].is_i64()
    });
    assert_eq!(up["links"][1]["state"], "disabled", "{up}");
    assert!(up["links"][0]["last_error"].is_null(), "{up}");
    poll_json(&node, &target, &["--json", "outbox"], |v| {
        v["delivered_since_start"].as_u64().is_some_and(|n| n > 0)
    });
    let o = link(&keyed, &["--json", "uplink", "flush"]);
    assert!(o.status.success(), "flush: {}", explain(&o));
    let f = json_of(&o);
    let action = f["round"]["action"].as_str().unwrap_or_default();
    assert!(["mqtt", "wait"].contains(&action), "{f}");

    broker.stop();
    let down = poll_json(&node, &target, &["--json", "uplink", "status"], |v| {
        v["links"][0]["state"] == "down"
    });
    assert!(down["links"][0]["last_error"].is_string(), "{down}");
    node.stop();
}
