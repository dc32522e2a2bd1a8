//! `fieldnode run` under a service manager (`deploy/systemd/fieldnode.service`,
//! `Type=notify`, `WatchdogSec=`): the test plays systemd's part with a Unix
//! datagram socket named by `NOTIFY_SOCKET` and a small `WATCHDOG_USEC`, and
//! checks that the node says `READY=1` once it runs, pings `WATCHDOG=1`
//! while it runs, says `STOPPING=1` on SIGTERM and exits with success.

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

/// How long anything may take before the test gives up rather than hang.
/// Not a measure: the node normally takes a fraction of it.
const DEADLINE: Duration = Duration::from_secs(180);

/// Every line of every datagram the node sent, in order.
struct Notifications {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Notifications {
    fn listen(socket: UnixDatagram) -> Notifications {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                for line in String::from_utf8_lossy(&buf[..n]).lines() {
                    if tx.send(line.to_string()).is_err() {
                        return;
                    }
                }
            }
        });
        Notifications {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits until `count` lines equal to `line` were seen in all; panics
    /// with what was seen and the node's log past [`DEADLINE`] or if the
    /// node exits first.
    fn wait_for(&mut self, line: &str, count: usize, child: &mut Child, log: &std::path::Path) {
        let until = Instant::now() + DEADLINE;
        while self.seen.iter().filter(|l| *l == line).count() < count {
            let fail = |why: String, seen: &[String]| -> ! {
                panic!(
                    "{why} waiting for {count} x {line:?}; seen: {seen:?}\nlog:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                )
            };
            if let Some(status) = child.try_wait().unwrap() {
                self.seen.extend(self.rx.try_iter());
                if self.seen.iter().filter(|l| *l == line).count() >= count {
                    return;
                }
                fail(format!("fieldnode exited ({status})"), &self.seen);
            }
            if Instant::now() >= until {
                let _ = child.kill();
                let _ = child.wait();
                fail("deadline passed".into(), &self.seen);
            }
            if let Ok(l) = self.rx.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(l);
            }
        }
    }
}

#[test]
fn ready_watchdog_and_stopping_reach_the_service_manager() {
    let t = tempfile::tempdir().unwrap();
    let scene = t.path().join("s");
    common::scenegen(&scene, &["--preset", "demo", "--seed", "7"]);
    let data = t.path().join("d");
    let log = t.path().join("stderr.log");
    let sock_path = t.path().join("notify.sock");
    let socket = UnixDatagram::bind(&sock_path).unwrap();
    let mut notes = Notifications::listen(socket);

    // Real time, no --exit-at-end: the node runs until the signal.
    let mut child = std::process::Command::new(common::NODE)
        .args(["run", "--output", "jsonl", "--speed", "4", "--scene"])
        .arg(&scene)
        .arg("--data-dir")
        .arg(&data)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "2000000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();

    notes.wait_for("READY=1", 1, &mut child, &log);
    // A ping every second (half of WATCHDOG_USEC) while the node runs.
    notes.wait_for("WATCHDOG=1", 3, &mut child, &log);
    assert!(
        child.try_wait().unwrap().is_none(),
        "fieldnode exited before SIGTERM"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    notes.wait_for("STOPPING=1", 1, &mut child, &log);
    let status = common::wait_or_fail(&mut child, DEADLINE, &log);
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "exit {status:?}:\n{err}");
    notes.seen.extend(notes.rx.try_iter());
    let seen = &notes.seen;
    eprintln!("notifications: {seen:?}");

    // The order systemd relies on: status while starting, READY=1, pings
    // only after it, STOPPING=1 once, and no ping after STOPPING=1.
    let pos = |line: &str| seen.iter().position(|l| l == line).unwrap();
    let ready = pos("READY=1");
    let stopping = pos("STOPPING=1");
    assert!(
        seen[..ready].iter().any(|l| l.starts_with("STATUS=")),
        "{seen:?}"
    );
    assert!(seen[..ready].iter().all(|l| l != "WATCHDOG=1"), "{seen:?}");
    assert!(ready < stopping, "{seen:?}");
    assert!(
        seen[stopping..].iter().all(|l| l != "WATCHDOG=1"),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|l| *l == "READY=1").count(),
        1,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|l| *l == "STOPPING=1").count(),
        1,
        "{seen:?}"
    );
    assert!(
        seen.iter().all(|l| l.contains('=')),
        "not KEY=VALUE: {seen:?}"
    );
    assert!(err.contains("shutdown requested"), "{err}");
}
