//! Signed updates on the real node (`fieldnode run` replaying the demo
//! scene): a model bundle is deferred at low charge and installed when the
//! charge allows, then used for the next bursts; a model that fails its
//! self-test is rolled back; bundles refused at `fieldnode update apply`
//! never reach the drop folder, and the node reports their refusal;
//! a settings bundle is installed and applies at once (and at every start);
//! every result is a status record at priority high in the outbox, and
//! `field-tools bundle publish` follows a bundle over MQTT to its result.

mod common;

use common::update::{
    DEMO, base_version, key, model_bundle, next_version, now_s, self_tests, write_root,
};

use std::path::{Path, PathBuf};
use std::process::Command;

use models::bundle::{Bundle, Metadata, SettingsPatch};

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        write_root(&dir.path().join("root.fnr"));
        Node { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn config(&self, soc: f64) -> PathBuf {
        self.config_with(soc, "")
    }

    fn config_with(&self, soc: f64, extra: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join(format!("node-{soc}-{}.toml", extra.len()));
        std::fs::write(
            &path,
            format!(
                r#"
[update]
root = "{}"
scan_interval_ms = 200
trial_bursts = 1

[power.simulation]
initial_soc = {soc}
{extra}
"#,
                self.dir.path().join("root.fnr").display()
            ),
        )
        .unwrap();
        path
    }

    /// Replays the demo scene at full speed; returns (stored events, summary).
    fn run(&self, soc: f64) -> (Vec<serde_json::Value>, serde_json::Value, String) {
        let r = common::update::run_demo(&self.data(), &self.config(soc));
        (r.events, r.summary, r.stderr)
    }

    fn update(&self, args: &[&str]) -> std::process::Output {
        Command::new(common::NODE)
            .arg("update")
            .args(args)
            .arg("--config")
            .arg(self.config(0.9))
            .arg("--data-dir")
            .arg(self.data())
            .output()
            .unwrap()
    }

    fn status(&self) -> serde_json::Value {
        let out = self.update(&["status", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The status records made on update results that wait in the node's
    /// outbox (the node is not running), oldest first, with their priority.
    fn update_records(&self) -> Vec<(messages::StatusRecord, messages::Priority)> {
        let (store, _) =
            uplink::EventStore::open(&self.data().join("store"), &Default::default()).unwrap();
        let mut v: Vec<_> = store
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
            .collect();
        v.sort_by_key(|(s, _)| s.id);
        v
    }

    /// The results of [`Node::update_records`], as `(result, version)`.
    fn update_results(&self) -> Vec<(messages::UpdateOutcome, u64)> {
        self.update_records()
            .into_iter()
            .map(|(s, p)| {
                assert_eq!(p, messages::Priority::High, "{s:?}");
                let last = s.update.last.expect("a result");
                (last.result, last.version)
            })
            .collect()
    }

    fn apply(&self, bundle: &[u8], name: &str) -> std::process::Output {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bundle).unwrap();
        self.update(&["apply", path.to_str().unwrap()])
    }
}

/// A node started by [`Node::start_on_broker`].
struct MqttNode {
    child: std::process::Child,
    /// Its stderr.
    log: PathBuf,
    /// Its JSON lines.
    out: PathBuf,
}

impl Node {
    /// Starts the node on the demo scene at twice real time (long enough
    /// for a transfer), forwarding to `broker` as `node-u` with `extra`
    /// configuration, and waits until its MQTT link is up.
    fn start_on_broker(
        &self,
        broker: &hil_tests::mosquitto::Broker,
        soc: f64,
        extra: &str,
    ) -> MqttNode {
        let mqtt = format!(
            "{extra}\n[node]\nid = \"node-u\"\n[uplink]\nenabled = true\nround_interval_ms = 200\n{}",
            broker.node_uplink_toml("node-u").unwrap()
        );
        let log = self.dir.path().join("node.log");
        let out = self.dir.path().join("node.jsonl");
        let mut child = Command::new(common::NODE)
            .args(["run", "--output", "jsonl", "--speed", "2", "--scene", DEMO])
            .arg("--data-dir")
            .arg(self.data())
            .arg("--config")
            .arg(self.config_with(soc, &mqtt))
            .env("RUST_LOG", "info")
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("mqtt link up")
        {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the node never connected:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        MqttNode { child, log, out }
    }
}

/// The operator's side, as `field-tools bundle publish` runs it.
fn publish_options(
    broker: &hil_tests::mosquitto::Broker,
    op: &hil_tests::mosquitto::ClientFiles,
    chunk: usize,
) -> field_tools::update::publish::PublishOptions {
    field_tools::update::publish::PublishOptions {
        broker: broker.url(),
        tls: Some(uplink::mqtt::TlsFiles {
            ca: op.ca.clone(),
            cert: op.cert.clone(),
            key: op.key.clone(),
        }),
        prefix: "field".into(),
        node: "node-u".into(),
        client_id: "operator-publish".into(),
        chunk,
        step_timeout: std::time::Duration::from_secs(5),
        overall_timeout: std::time::Duration::from_secs(90),
        result_timeout: std::time::Duration::from_secs(30),
    }
}

fn versions(events: &[serde_json::Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["model_version"].as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn a_model_update_waits_for_power_then_runs_and_a_bad_one_rolls_back() {
    let node = Node::new();
    let tests = self_tests(6);
    assert_eq!(tests.len(), 6);

    // Refused bundles never reach the drop folder.
    let out = node.apply(
        &model_bundle(next_version(), tests.clone(), &[10, 66]),
        "forged.fnb",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signatures"),
        "{out:?}"
    );
    assert!(node.status()["pending"].as_array().unwrap().is_empty());

    // A good bundle is queued.
    let out = node.apply(
        &model_bundle(next_version(), tests.clone(), &[10, 11]),
        "v3.fnb",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(node.status()["pending"].as_array().unwrap().len(), 1);

    // Saver mode (30 %): deferred, kept, the committed model runs.
    let (events, summary, stderr) = node.run(0.3);
    assert!(
        summary["updates_deferred"].as_u64().unwrap() >= 1,
        "{summary}\n{stderr}"
    );
    assert_eq!(summary["updates_installed"], 0, "{summary}");
    assert!(!events.is_empty());
    assert!(
        versions(&events).iter().all(|&v| v == base_version()),
        "{:?}",
        versions(&events)
    );
    let s = node.status();
    assert_eq!(s["pending"].as_array().unwrap().len(), 1, "{s}");
    assert!(s["state"]["active"].is_null(), "{s}");
    // The refusal at `update apply` is reported by the node's first look,
    // then the deferral once, each at priority high.
    use messages::UpdateOutcome as U;
    assert_eq!(
        node.update_results(),
        [(U::Refused, next_version()), (U::Deferred, next_version())]
    );
    let (forged, _) = node.update_records().remove(0);
    let reason = forged.update.last.clone().unwrap().reason;
    assert!(reason.as_str().starts_with("signatures"), "{forged:?}");

    // Charge recovered: self-tested, on trial, committed, used.
    let (events, summary, stderr) = node.run(0.9);
    assert_eq!(summary["updates_installed"], 1, "{summary}\n{stderr}");
    assert_eq!(summary["update_last"]["result"], "installed", "{summary}");
    assert!(
        versions(&events).contains(&next_version()),
        "{:?}\n{stderr}",
        versions(&events)
    );
    let s = node.status();
    assert_eq!(s["state"]["active"]["version"], next_version(), "{s}");
    assert!(s["pending"].as_array().unwrap().is_empty(), "{s}");
    assert_eq!(s["installed"][0][2], next_version(), "{s}");
    assert_eq!(
        node.update_results(),
        [
            (U::Refused, next_version()),
            (U::Deferred, next_version()),
            (U::OnTrial, next_version()),
            (U::Installed, next_version())
        ]
    );
    let (installed, _) = node.update_records().pop().unwrap();
    assert_eq!(installed.update.model_active, next_version());
    assert_eq!(installed.update.model_staged, None);

    // At the next start the committed model is the one loaded.
    let (events, _, stderr) = node.run(0.9);
    assert!(stderr.contains("installed by an update"), "{stderr}");
    assert!(
        versions(&events).iter().all(|&v| v == next_version()),
        "{:?}",
        versions(&events)
    );

    // Rollback of an older version, at the door.
    let out = node.apply(
        &model_bundle(base_version(), tests.clone(), &[10, 11]),
        "old.fnb",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rollback"),
        "{out:?}"
    );

    // A model whose answers differ from its vectors: rolled back, v3 stays.
    let mut wrong = tests.clone();
    for t in &mut wrong {
        t.probabilities.reverse();
        t.expected_class = 3 - t.expected_class.min(3);
    }
    let out = node.apply(
        &model_bundle(next_version() + 1, wrong, &[10, 11]),
        "v4.fnb",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (events, summary, stderr) = node.run(0.9);
    // The older bundle refused at `update apply`, then the rollback.
    assert_eq!(summary["updates_refused"], 2, "{summary}\n{stderr}");
    assert_eq!(
        summary["updates_refused_by"],
        serde_json::json!({"refused.rollback": 1, "rolled_back.self_test": 1}),
        "{summary}"
    );
    assert_eq!(summary["update_last"]["result"], "rolled_back", "{summary}");
    let results = node.update_results();
    assert_eq!(
        results[results.len() - 2..],
        [
            (U::Refused, base_version()),
            (U::RolledBack, next_version() + 1)
        ]
    );
    assert!(
        summary["update_last"]["reason"]
            .as_str()
            .unwrap()
            .contains("self_test"),
        "{summary}"
    );
    let (rolled, _) = node.update_records().pop().unwrap();
    let last = rolled.update.last.clone().unwrap();
    assert_eq!(
        (last.result, last.version),
        (U::RolledBack, next_version() + 1)
    );
    assert!(last.reason.as_str().starts_with("self_test"), "{last:?}");
    assert_eq!(rolled.update.model_active, next_version(), "{rolled:?}");
    assert!(
        versions(&events).iter().all(|&v| v == next_version()),
        "{:?}",
        versions(&events)
    );
    let s = node.status();
    assert_eq!(s["state"]["active"]["version"], next_version(), "{s}");
    assert_eq!(s["installed"][0][2], next_version(), "{s}");
}

fn strict_settings() -> Vec<u8> {
    let patch = SettingsPatch {
        thresholds: vec![
            (messages::EventClass::Wildlife, 990),
            (messages::EventClass::MachineryAnomaly, 990),
            (messages::EventClass::HumanActivity, 990),
        ],
        ..SettingsPatch::default()
    };
    let meta = Metadata::settings("settings", 1, now_s() - 60, now_s() + 86_400, [0, 0, 0]);
    let mut b = Bundle::new(meta, patch.to_bytes());
    b.sign(&key(10));
    b.sign(&key(11));
    b.to_bytes().unwrap()
}

#[test]
fn a_settings_bundle_sent_by_satellite_changes_a_threshold() {
    use hil_tests::sbd_emu::SbdEmulator;
    let emu = SbdEmulator::start().expect("modem emulator on a pty");
    emu.set_signal(4);
    let bytes = strict_settings();
    assert!(bytes.len() <= 270, "{}", bytes.len());
    emu.queue_mt(&bytes);
    let node = Node::new();
    let sbd = format!(
        r#"
[uplink]
enabled = true
round_interval_ms = 200
drain_timeout_ms = 20000
[uplink.scheduler]
sbd_min_priority = "low"
sbd_min_signal_bars = 1
sbd_min_interval_ms = 0
sbd_fill_bytes = 100
sbd_urgent_max_wait_ms = 0
sbd_max_wait_ms = 0
[uplink.sbd]
port = "{}"
command_timeout_ms = 800
session_timeout_ms = 1500
backoff_min_ms = 1000
backoff_max_ms = 1000
credits_per_day = 1000
credits_per_month = 10000
"#,
        emu.path().display()
    );
    let (_, before, _) = node.run(0.9);
    // The run with the modem: the MT message arrives in a session and is
    // queued for the update task.
    let out = common::node_run(
        Path::new(DEMO),
        &node.data(),
        &["--speed", "max", "--config"],
    )
    .arg(node.config_with(0.9, &sbd))
    .env("RUST_LOG", "info")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("settings bundle received by satellite"),
        "{stderr}"
    );
    // Installed by the next run at the latest, applied from the start after.
    let _ = node.run(0.9);
    assert_eq!(node.status()["state"]["settings_version"], 1, "{stderr}");
    let (_, after, stderr) = node.run(0.9);
    assert!(
        stderr.contains("settings from a signed update applied"),
        "{stderr}"
    );
    assert!(
        after["events_uncertain"].as_u64().unwrap() > before["events_uncertain"].as_u64().unwrap(),
        "before {before}\nafter {after}"
    );
    // The install's status record (priority high) goes by satellite: a run
    // with the modem drains the outbox, and the packed messages carry it
    // whole, update part included.
    let out = common::node_run(
        Path::new(DEMO),
        &node.data(),
        &["--speed", "max", "--config"],
    )
    .arg(node.config_with(0.9, &sbd))
    .env("RUST_LOG", "info")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    let delivered = emu.delivered();
    assert!(delivered.iter().all(|m| m.len() <= 340));
    let installed = delivered
        .iter()
        .filter_map(|m| messages::unpack(m, "node").ok())
        .flatten()
        .find_map(|m| match m {
            messages::Message::Status(s) if s.cause == messages::StatusCause::UpdateResult => {
                Some(s)
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no update result by satellite\n{stderr}"));
    assert_eq!(installed.update.settings, 1, "{installed:?}");
    let last = installed.update.last.clone().unwrap();
    assert_eq!(last.kind, messages::BundleKindCode::Settings);
    assert_eq!(last.result, messages::UpdateOutcome::Installed);
}

#[test]
fn a_settings_bundle_changes_a_threshold_at_once_and_at_every_start() {
    let node = Node::new();
    // Every model verdict below 0.99 becomes unknown.
    let bytes = strict_settings();
    assert!(bytes.len() <= 270, "{}", bytes.len());
    let (_, before, _) = node.run(0.9);
    let out = node.apply(&bytes, "settings.fnb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The run that installs it (its look before the sensors start) applies
    // it at once: the running detector has the new thresholds.
    let (_, summary, stderr) = node.run(0.9);
    assert_eq!(summary["updates_installed"], 1, "{summary}\n{stderr}");
    assert!(
        stderr.contains("class thresholds and exclusions from installed settings in force"),
        "{stderr}"
    );
    assert!(
        summary["events_uncertain"].as_u64().unwrap()
            > before["events_uncertain"].as_u64().unwrap(),
        "before {before}\nafter {summary}"
    );
    assert_eq!(node.status()["state"]["settings_version"], 1);
    let recs = node.update_records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (rec, priority) = &recs[0];
    assert_eq!(*priority, messages::Priority::High);
    assert_eq!(rec.update.settings, 1);
    let last = rec.update.last.clone().unwrap();
    assert_eq!(last.result, messages::UpdateOutcome::Installed);
    assert_eq!(last.kind, messages::BundleKindCode::Settings);
    let (_, after, stderr) = node.run(0.9);
    assert!(
        stderr.contains("settings from a signed update applied"),
        "{stderr}"
    );
    assert!(
        after["events_uncertain"].as_u64().unwrap() > before["events_uncertain"].as_u64().unwrap(),
        "before {before}\nafter {after}"
    );
}

#[test]
fn a_kill_at_any_moment_of_an_install_leaves_a_verified_model() {
    use rand::{Rng, SeedableRng};
    let node = Node::new();
    let tests = self_tests(6);
    let out = node.apply(&model_bundle(next_version(), tests, &[10, 11]), "v3.fnb");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common::env_u64("HIL_SEED", 7));
    let rounds = common::env_u64("HIL_UPDATE_KILLS", 6);
    for round in 0..rounds {
        let mut child = common::node_run(
            Path::new(DEMO),
            &node.data(),
            &["--speed", "max", "--config"],
        )
        .arg(node.config(0.9))
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(rng.random_range(5..250)));
        let _ = child.kill();
        let _ = child.wait();
        // Whatever the moment: the state names a verified model or none.
        // Reading it changes nothing.
        let state_file = node.data().join("update/state.toml");
        let before = std::fs::read(&state_file).ok();
        let s = node.status();
        assert_eq!(std::fs::read(&state_file).ok(), before, "round {round}");
        let at = if !s["state"]["trial"].is_null() {
            "on trial"
        } else if !s["state"]["active"].is_null() {
            "committed"
        } else {
            "not yet installed"
        };
        eprintln!("round {round}: killed with the model {at}");
        assert!(
            s["state"]["trial"].is_null() || s["state"]["trial"]["version"] == next_version(),
            "round {round}: {s}"
        );
        if !s["state"]["active"].is_null() {
            assert_eq!(
                s["state"]["active"]["version"],
                next_version(),
                "round {round}: {s}"
            );
        }
        // And the node starts on it and finishes what was cut.
        let (events, _, stderr) = node.run(0.9);
        assert!(
            versions(&events)
                .iter()
                .all(|&v| v == base_version() || v == next_version()),
            "round {round}: {:?}\n{stderr}",
            versions(&events)
        );
        let s = node.status();
        assert_eq!(
            s["state"]["active"]["version"],
            next_version(),
            "round {round}: {s}\n{stderr}"
        );
        assert!(s["state"]["trial"].is_null(), "round {round}: {s}");
        assert!(
            s["pending"].as_array().unwrap().is_empty(),
            "round {round}: {s}"
        );
        // Back to the start for the next round.
        std::fs::remove_dir_all(node.data().join("update")).unwrap();
        let out = node.apply(
            &model_bundle(next_version(), self_tests(6), &[10, 11]),
            "v3.fnb",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_model_bundle_published_over_mqtt_waits_for_charge_then_is_installed() {
    use field_tools::update::publish::Ended;
    use hil_tests::mosquitto::{Broker, BrokerOptions, OPERATOR, RESEARCHER, Subscriber};
    let broker = Broker::start(BrokerOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let op = broker.client_files(OPERATOR).unwrap();
    // The operator's view of the node's status records.
    let researcher = broker.client_files(RESEARCHER).unwrap();
    let statuses = Subscriber::start(&broker, &researcher, "field/node-u/status", None)
        .unwrap_or_else(|e| panic!("{e}"));
    let node = Node::new();
    // The battery is a fuel gauge in a fake sysfs tree: 30 % now, charged
    // by the test once the deferral is seen.
    let sys = node.dir.path().join("sys-root");
    let bat = sys.join("sys/class/power_supply/BAT0");
    std::fs::create_dir_all(&bat).unwrap();
    for (f, v) in [
        ("type", "Battery"),
        ("present", "1"),
        ("status", "Discharging"),
        ("voltage_now", "3700000"),
        ("current_now", "800000"),
        ("capacity", "30"),
    ] {
        std::fs::write(bat.join(f), format!("{v}\n")).unwrap();
    }
    let power = format!(
        r#"
[power]
source = "sysfs"
interval_ms = 200
# The charge recovers within the minute the run lasts: no minimum dwell.
[power.policy]
min_dwell_ms = 0
[power.sysfs]
root = "{sys}"
battery = "BAT0"
current_positive = "discharging"
"#,
        sys = sys.display(),
    );
    let bundle_path = node.dir.path().join("v3.fnb");
    std::fs::write(
        &bundle_path,
        model_bundle(next_version(), self_tests(6), &[10, 11]),
    )
    .unwrap();
    let MqttNode {
        mut child,
        log,
        out,
    } = node.start_on_broker(&broker, 0.3, &power);
    // The operator's side, as `field-tools bundle publish` runs it.
    let opts = publish_options(&broker, &op, 16384);
    let bytes = std::fs::read(&bundle_path).unwrap();
    let mut reports = Vec::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A forged bundle is refused at its announce: nothing of it is sent.
    let forged = model_bundle(next_version(), Vec::new(), &[10, 66]);
    let mut forged_reports = Vec::new();
    let refused = rt.block_on(field_tools::update::publish::publish(&opts, &forged, |p| {
        forged_reports.push(p.clone())
    }));
    let err = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("signatures"), "{err}\n{forged_reports:?}");
    assert!(
        forged_reports.iter().all(|p| p.received == 0),
        "{forged_reports:?}"
    );
    assert!(
        !node.data().join("incoming/partial").exists()
            || std::fs::read_dir(node.data().join("incoming/partial"))
                .unwrap()
                .next()
                .is_none()
    );
    let t0 = std::time::Instant::now();
    let mut to_queued = None;
    let published = rt.block_on(field_tools::update::publish::publish(&opts, &bytes, |p| {
        if p.state == "queued" {
            to_queued = Some((reports.len() + 1, t0.elapsed()));
        }
        reports.push(p.clone())
    }));
    if let Some((n, t)) = to_queued {
        eprintln!(
            "published {} bytes in {n} reports, {:.0} ms to queued; the result after {:.0} ms",
            bytes.len(),
            t.as_secs_f64() * 1e3,
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
    // At 30 % the node defers the bundle at its next look, and the status
    // record of that result reaches the broker (bounded wait).
    let result_record = |want: messages::UpdateOutcome| {
        statuses.messages().into_iter().find_map(|m| {
            match field_tools::pull::decode_payload(&m.topic, &m.payload) {
                Ok(field_tools::pull::Record::Status(s))
                    if s.cause == messages::StatusCause::UpdateResult
                        && s.update.last.as_ref().map(|l| l.result) == Some(want) =>
                {
                    Some(s)
                }
                _ => None,
            }
        })
    };
    let deferred_record = || result_record(messages::UpdateOutcome::Deferred);
    if published.is_ok() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while deferred_record().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    // Deferred (checked below). Now the charge recovers, in the same run:
    // the bundle is installed and the next bursts run on it.
    std::fs::write(bat.join("capacity"), "90\n").unwrap();
    let on_new_model = || {
        versions(
            &std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v.get("stored").cloned())
                .collect::<Vec<_>>(),
        )
        .contains(&next_version())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !on_new_model()
        && std::time::Instant::now() < deadline
        && child.try_wait().unwrap().is_none()
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = common::wait_or_fail(&mut child, std::time::Duration::from_secs(30), &log);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let (end, last) =
        published.unwrap_or_else(|e| panic!("publish failed: {e}\n{reports:?}\nnode:\n{text}"));
    assert!(status.success(), "{text}");
    // The tool followed the bundle past `queued` to the install's result.
    assert_eq!(end, Ended::Deferred, "{reports:?}");
    assert_eq!(end.exit_code(), 3);
    assert_eq!(last.state, "deferred");
    assert!(!last.reason.is_empty(), "{last:?}");
    assert_eq!(
        (last.kind.as_str(), last.version),
        ("model", next_version())
    );
    let states: Vec<&str> = reports.iter().map(|p| p.state.as_str()).collect();
    assert_eq!(
        states[states.len() - 2..],
        ["queued", "deferred"],
        "{states:?}"
    );
    // The deferral's status record went out over MQTT at once, decoded as
    // the operator's tools decode it.
    let record = deferred_record().unwrap_or_else(|| panic!("no update status record:\n{text}"));
    let result = record.update.last.clone().expect("the result");
    assert_eq!(result.result, messages::UpdateOutcome::Deferred);
    assert_eq!(result.version, next_version());
    assert_eq!(record.update.model_active, 0);
    // So did the refusal of the forged bundle at its announce.
    let refused = result_record(messages::UpdateOutcome::Refused)
        .unwrap_or_else(|| panic!("no status record of the refusal:\n{text}"));
    let result = refused.update.last.clone().expect("the result");
    assert!(
        result.reason.as_str().starts_with("signatures"),
        "{result:?}"
    );
    // Progress came in steps, each further than the one before.
    assert!(reports.len() >= 3, "{reports:?}");
    assert!(
        reports.windows(2).all(|w| w[0].received <= w[1].received),
        "{reports:?}"
    );
    drop(statuses);
    // It waited, deferred, then charge recovered in the same run: installed
    // and used for the bursts that followed.
    assert!(text.contains("update deferred"), "{text}");
    let s = node.status();
    assert_eq!(
        s["state"]["active"]["version"],
        next_version(),
        "{s}\n{text}"
    );
    assert!(
        on_new_model(),
        "no event classified by the new model:\n{text}"
    );
}

#[test]
fn a_model_transfer_cut_by_a_broker_restart_resumes_where_it_stopped() {
    use field_tools::update::publish::Ended;
    use hil_tests::mosquitto::{Broker, BrokerOptions, OPERATOR};
    let mut broker = Broker::start(BrokerOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let op = broker.client_files(OPERATOR).unwrap();
    let node = Node::new();
    let MqttNode { mut child, log, .. } = node.start_on_broker(&broker, 0.9, "");
    // Small chunks, so the transfer is still running when the link drops.
    let opts = publish_options(&broker, &op, 2048);
    let bytes = model_bundle(next_version(), self_tests(6), &[10, 11]);
    // The broker stops (both sides lose their connection) once half the
    // payload is on the node, and comes back 2 s later on the same port.
    let (cut_tx, cut_rx) = std::sync::mpsc::channel::<()>();
    let outage = std::thread::spawn(move || {
        if cut_rx.recv().is_ok() {
            broker.stop();
            std::thread::sleep(std::time::Duration::from_secs(2));
            broker.start_again().unwrap_or_else(|e| panic!("{e}"));
        }
        broker
    });
    let mut reports = Vec::new();
    let mut cut_at: Option<(usize, u64)> = None;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let published = rt.block_on(field_tools::update::publish::publish(&opts, &bytes, |p| {
        reports.push(p.clone());
        if cut_at.is_none() && p.state == "receiving" && p.received * 2 >= p.total {
            cut_at = Some((reports.len(), p.received));
            let _ = cut_tx.send(());
        }
    }));
    drop(cut_tx);
    let broker = outage.join().unwrap();
    // The install is reported to the tool; wait for the node's own state.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while node.status()["state"]["active"]["version"] != next_version()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = common::wait_or_fail(&mut child, std::time::Duration::from_secs(30), &log);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let (end, _) = published.unwrap_or_else(|e| {
        panic!(
            "publish failed: {e}\n{reports:?}\nnode:\n{text}\nbroker:\n{}",
            broker.log()
        )
    });
    assert!(status.success(), "{text}");
    assert!(matches!(end, Ended::Installed | Ended::Pending), "{end:?}");
    let (n, at_cut) = cut_at.unwrap_or_else(|| panic!("never cut: {reports:?}"));
    // Both sides reconnected...
    assert!(text.matches("mqtt link up").count() >= 2, "{text}");
    // ...and the transfer went on from the node's copy, not from zero:
    // after the outage, no report is below what the node held at the cut.
    let after = &reports[n..];
    assert!(!after.is_empty(), "{reports:?}");
    assert!(
        after.iter().all(|p| p.received >= at_cut),
        "restarted instead of resuming (cut at {at_cut}): {after:?}"
    );
    assert!(
        reports.windows(2).all(|w| w[0].received <= w[1].received),
        "{reports:?}"
    );
    assert!(text.contains("update transfer resumed"), "{text}");
    // The bundle put together across the outage verified and installed.
    let s = node.status();
    assert_eq!(
        s["state"]["active"]["version"],
        next_version(),
        "{s}\n{text}"
    );
}
