//! Floods of bad input from outside keep the log bounded:
//! - the ground bridge (`field-tools bridge`, the real command) under 2,000
//!   rejected callbacks of three kinds;
//! - the node under 2,000 bad downlink commands on its MQTT command topic.
//!
//! Each kind of warning writes at most the flood limit's lines; the rest is
//! counted in summary lines (`logflood`), so every rejected request is
//! still accounted for, and nothing is published or obeyed.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hil_tests::mosquitto::{
    Broker, BrokerOptions, OPERATOR, RESEARCHER, Subscriber, free_port, publish_lines,
};

const FLOOD: usize = 2000;
const WAIT: Duration = Duration::from_secs(60);
const SUMMARY: &str = "repeated log lines not written";

/// Lines written per kind in one window (the default flood limit).
fn allowance() -> usize {
    logflood::FloodLimit::default().lines as usize
}

/// Log lines that are `what` itself (not a summary quoting it).
fn written(log: &str, what: &str) -> usize {
    log.lines()
        .filter(|l| l.contains(what) && !l.contains(SUMMARY))
        .count()
}

/// Lines the summaries say were not written, for the kind whose first lost
/// line quotes `what`.
fn lost(log: &str, what: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains(SUMMARY) && l.contains(what))
        .filter_map(|l| {
            let rest = &l[l.find("lost=")? + "lost=".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn stop(child: &mut Child, log: &Path) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    let st = common::wait_or_fail(child, WAIT, log);
    assert!(
        st.success(),
        "exited with {st}\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// One HTTP/1.1 request; the status code.
fn request(addr: SocketAddr, head: &str, body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect to the bridge");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read response");
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[test]
fn the_bridge_under_a_flood_of_bad_callbacks_writes_a_bounded_log() {
    let broker = Broker::start(BrokerOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let files = broker.client_files("ground-bridge").expect("certificate");
    let tmp = tempfile::tempdir().expect("tempdir");
    let nodes = tmp.path().join("nodes.toml");
    std::fs::write(&nodes, "[nodes]\n\"300234010000001\" = \"n1\"\n").expect("nodes");
    let log = tmp.path().join("bridge.log");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port().expect("port"))
        .parse()
        .expect("addr");
    let mut bridge = Command::new(env!("CARGO_BIN_EXE_hil-field-tools"))
        .arg("bridge")
        .args(["--listen", &addr.to_string()])
        .args(["--broker", &format!("mqtts://127.0.0.1:{}", broker.port())])
        .arg("--ca")
        .arg(&files.ca)
        .arg("--cert")
        .arg(&files.cert)
        .arg("--key")
        .arg(&files.key)
        .arg("--nodes")
        .arg(&nodes)
        .args(["--shared-secret", "not the relay's secret"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start the bridge");
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the bridge never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let researcher = Subscriber::start(
        &broker,
        &broker.client_files(RESEARCHER).expect("certificate"),
        "field/#",
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let form = "Content-Type: application/x-www-form-urlencoded";
    let good_fields = "imei=300234010000001&serial=1&momsn=7\
        &transmit_time=26-05-29+12%3A30%3A00&iridium_latitude=52.3867\
        &iridium_longitude=0.2938&iridium_cep=8&data=00";
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..FLOOD {
        let code = match n % 3 {
            0 => request(
                addr,
                "POST /rockblock HTTP/1.1\r\nContent-Type: text/plain",
                &format!("flood {n}"),
            ),
            1 => request(
                addr,
                &format!("POST /rockblock HTTP/1.1\r\n{form}"),
                &format!("momsn={n}&%%%"),
            ),
            _ => request(
                addr,
                &format!("POST /rockblock HTTP/1.1\r\n{form}"),
                &format!("{good_fields}&JWT=forged.{n}.token"),
            ),
        };
        *codes.entry(code).or_default() += 1;
    }
    stop(&mut bridge, &log);
    let text = std::fs::read_to_string(&log).expect("log");
    let published = researcher.wait_until(Duration::from_millis(500), |m| !m.is_empty());

    // Every request was refused, as a client error.
    assert!(
        codes.keys().all(|c| (400..500).contains(c)),
        "codes: {codes:?}"
    );
    assert_eq!(codes.values().sum::<usize>(), FLOOD);
    assert!(published.is_empty(), "published: {published:?}");
    // Each kind wrote at most its allowance (two windows if the flood
    // straddles one), and its summaries count the rest.
    let of_kind = |k: usize| (0..FLOOD).filter(|n| n % 3 == k).count();
    for (what, n) in [
        ("callback rejected: not form-encoded", of_kind(0)),
        ("callback rejected: bad form", of_kind(1)),
        ("callback rejected: not authenticated", of_kind(2)),
    ] {
        let w = written(&text, what);
        assert!(w >= 1 && w <= 2 * allowance(), "{what}: {w} lines\n{text}");
        assert_eq!(w as u64 + lost(&text, what), n as u64, "{what}\n{text}");
    }
    // Bounded: a few kilobytes, where one line per request would be ~300 KB.
    eprintln!(
        "bridge log: {} bytes for {FLOOD} rejected callbacks",
        text.len()
    );
    assert!(
        text.len() < 32 * 1024,
        "{} bytes of log\n{text}",
        text.len()
    );
}

#[test]
fn the_node_under_a_flood_of_bad_commands_writes_a_bounded_log() {
    let broker = Broker::start(BrokerOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let scene = tmp.path().join("scene");
    common::scenegen(
        &scene,
        &[
            "--preset",
            "background",
            "--seed",
            "31",
            "--duration",
            "300",
        ],
    );
    let mqtt = broker.node_uplink_toml("node-f").expect("certificate");
    let config = tmp.path().join("fieldnode.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"node-f\"\n[uplink]\nenabled = true\nround_interval_ms = 200\n\
             allowed_commands = [\"send_status\"]\n{mqtt}"
        ),
    )
    .expect("config");
    let sub = Subscriber::start(
        &broker,
        &broker.client_files(RESEARCHER).expect("certificate"),
        "field/node-f/+",
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let data = tmp.path().join("data");
    let log = tmp.path().join("node.log");
    let mut child = common::node_run(&scene, &data, &["--speed", "1"])
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("start the node");
    let online = sub.wait_until(WAIT, |m| {
        m.iter()
            .any(|r| r.topic.ends_with("/state") && r.payload == b"online")
    });
    assert!(
        online.iter().any(|r| r.topic.ends_with("/state")),
        "the node never came online\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // Garbage and commands not allowed, then one allowed command: the
    // broker keeps their order, so its status record means every bad one
    // was handled.
    let mut lines: Vec<Vec<u8>> = (0..FLOOD)
        .map(|n| match n % 2 {
            0 => format!("garbage {n} {{").into_bytes(),
            _ => br#"{"cmd":"flush_outbox"}"#.to_vec(),
        })
        .collect();
    lines.push(br#"{"cmd":"send_status"}"#.to_vec());
    let operator = broker.client_files(OPERATOR).expect("certificate");
    let (st, err) = publish_lines(&broker, &operator, "field/node-f/cmd", &lines)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(st.success(), "mosquitto_pub: {err}");
    let msgs = sub.wait_until(WAIT, |m| m.iter().any(|r| r.topic.ends_with("/status")));
    assert!(
        msgs.iter().any(|r| r.topic.ends_with("/status")),
        "no status record after the flood\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    stop(&mut child, &log);
    let text = std::fs::read_to_string(&log).expect("log");

    for (what, n) in [
        ("downlink command rejected: does not parse", FLOOD / 2),
        (
            "downlink command rejected: not in [uplink] allowed_commands",
            FLOOD / 2,
        ),
    ] {
        let w = written(&text, what);
        assert!(w >= 1 && w <= 2 * allowance(), "{what}: {w} lines\n{text}");
        assert_eq!(w as u64 + lost(&text, what), n as u64, "{what}\n{text}");
    }
    eprintln!(
        "node log: {} bytes for {FLOOD} rejected commands",
        text.len()
    );
    assert!(
        text.len() < 32 * 1024,
        "{} bytes of log\n{text}",
        text.len()
    );
}
