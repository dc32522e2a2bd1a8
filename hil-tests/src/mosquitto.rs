//! A real Mosquitto broker for tests: started from the Debian `mosquitto`
//! binary on a free loopback port with mutual TLS (`require_certificate`,
//! `use_identity_as_username`), an ACL and persistence in a temporary
//! directory. The certificates are generated at start with `rcgen`: a CA,
//! the broker's certificate (SAN 127.0.0.1 and localhost), client
//! certificates whose common name is the MQTT user name, and on request a
//! client certificate from a second CA the broker does not trust.
//!
//! ACL (`<prefix>` is [`BrokerOptions::prefix`]):
//! - a node (any identity) may write `<prefix>/<its cn>/#` and read
//!   `<prefix>/<its cn>/cmd`;
//! - [`RESEARCHER`] may read everything;
//! - [`OPERATOR`] may write `<prefix>/+/cmd`.
//!
//! [`Broker::stop`] / [`Broker::start_again`] restart it on the same port
//! (persistence keeps sessions and queued messages across a clean stop);
//! [`Broker::log`] returns its log for failure messages.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The identity that may read every topic.
pub const RESEARCHER: &str = "researcher";
/// The identity that may send commands to any node.
pub const OPERATOR: &str = "operator";

/// Why the broker harness failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// `mosquitto` is not installed.
    #[error("mosquitto not found ({0}); run scripts/setup (Debian package mosquitto)")]
    NotInstalled(String),
    /// A file could not be written.
    #[error("writing {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Certs(#[from] rcgen::Error),
    /// The broker exited or never opened its port.
    #[error("mosquitto did not start: {why}\n--- mosquitto log ---\n{log}")]
    NotStarted {
        /// Why.
        why: String,
        /// Its log.
        log: String,
    },
}

/// How to start the broker.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    /// First topic level the ACL is written for.
    pub prefix: String,
    /// `max_queued_messages` per persistent client.
    pub max_queued_messages: u32,
    /// A `field-tools pki` directory whose CA and `brokers/localhost`
    /// certificate the broker uses instead of the harness's own (then
    /// [`Broker::client_files`] certificates are not trusted: use the PKI's).
    pub pki: Option<PathBuf>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            prefix: "field".into(),
            max_queued_messages: 100_000,
            pki: None,
        }
    }
}

/// The PEM files of one client identity.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    /// The CA to trust for the broker.
    pub ca: PathBuf,
    /// The client's certificate.
    pub cert: PathBuf,
    /// The client's key.
    pub key: PathBuf,
}

/// A running (or stopped) mosquitto with its files.
pub struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    ca: Issuer<'static, KeyPair>,
}

fn write(path: &Path, contents: &[u8]) -> Result<(), HarnessError> {
    let io = |source| HarnessError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.write_all(contents).map_err(io)
}

fn ca_params(name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

/// A free port on 127.0.0.1 (the listener is closed again at once).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Broker {
    /// Generates the certificates, writes the configuration and ACL and
    /// starts mosquitto; returns once it accepts connections.
    pub fn start(opts: BrokerOptions) -> Result<Broker, HarnessError> {
        match Command::new("mosquitto").arg("-h").output() {
            Ok(_) => {}
            Err(e) => return Err(HarnessError::NotInstalled(e.to_string())),
        }
        let dir = tempfile::tempdir().map_err(|source| HarnessError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let p = dir.path();

        let ca_key = KeyPair::generate()?;
        let ca_params = ca_params("field test CA")?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        write(&p.join("ca.pem"), ca_cert.pem().as_bytes())?;
        let ca = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let mut sp =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        sp.distinguished_name.push(DnType::CommonName, "localhost");
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = sp.signed_by(&server_key, &ca)?;
        write(&p.join("server.pem"), server.pem().as_bytes())?;
        write(&p.join("server.key"), server_key.serialize_pem().as_bytes())?;

        if let Some(pki) = &opts.pki {
            for (from, to) in [
                (pki.join("ca.pem"), "ca.pem"),
                (pki.join("brokers/localhost.pem"), "server.pem"),
                (pki.join("brokers/localhost.key"), "server.key"),
            ] {
                let bytes = std::fs::read(&from).map_err(|source| HarnessError::Io {
                    path: from.clone(),
                    source,
                })?;
                std::fs::remove_file(p.join(to)).map_err(|source| HarnessError::Io {
                    path: p.join(to),
                    source,
                })?;
                write(&p.join(to), &bytes)?;
            }
        }

        let prefix = &opts.prefix;
        let acl = format!(
            "# nodes: their own subtree, their own commands\n\
             pattern write {prefix}/%u/#\n\
             pattern read {prefix}/%u/cmd\n\
             pattern read {prefix}/%u/update\n\
             \n\
             user {RESEARCHER}\n\
             topic read #\n\
             \n\
             user {OPERATOR}\n\
             topic write {prefix}/+/cmd\n\
             topic write {prefix}/+/update\n\
             topic read {prefix}/+/update/status\n"
        );
        write(&p.join("acl"), acl.as_bytes())?;
        std::fs::create_dir_all(p.join("data")).map_err(|source| HarnessError::Io {
            path: p.join("data"),
            source,
        })?;

        let port = free_port().map_err(|source| HarnessError::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })?;
        // As root, mosquitto drops privileges to the `mosquitto` user unless told otherwise.
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_root = unsafe { libc::geteuid() } == 0;
        let conf = format!(
            "{user}per_listener_settings false\n\
             allow_anonymous false\n\
             persistence true\n\
             persistence_location {data}/\n\
             autosave_interval 1\n\
             max_queued_messages {maxq}\n\
             log_dest file {log}\n\
             log_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_type subscribe\n\
             connection_messages true\n\
             log_timestamp_format %H:%M:%S\n\
             acl_file {acl}\n\
             listener {port} 127.0.0.1\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             require_certificate true\n\
             use_identity_as_username true\n",
            user = if as_root { "user root\n" } else { "" },
            data = p.join("data").display(),
            maxq = opts.max_queued_messages,
            log = p.join("mosquitto.log").display(),
            acl = p.join("acl").display(),
            ca = p.join("ca.pem").display(),
            cert = p.join("server.pem").display(),
            key = p.join("server.key").display(),
        );
        write(&p.join("mosquitto.conf"), conf.as_bytes())?;

        let mut broker = Broker {
            dir,
            port,
            child: None,
            ca,
        };
        broker.start_again()?;
        Ok(broker)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtts://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("mqtts://127.0.0.1:{}", self.port)
    }

    /// The broker's working directory (certificates, config, ACL, log, data).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate clients must trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Writes a certificate and key for `cn` signed by the broker's CA.
    pub fn client_files(&self, cn: &str) -> Result<ClientFiles, HarnessError> {
        self.issue(cn, &self.ca, cn)
    }

    /// The node's `[uplink.mqtt]` and `[uplink.mqtt.tls]` tables for this
    /// broker, with a certificate issued for `node_id` (fast reconnects, as
    /// tests want them).
    pub fn node_uplink_toml(&self, node_id: &str) -> Result<String, HarnessError> {
        let f = self.client_files(node_id)?;
        Ok(format!(
            "[uplink.mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nconnect_timeout_s = 5\n\
             reconnect_min_ms = 100\nreconnect_max_ms = 500\n\
             [uplink.mqtt.tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n",
            port = self.port,
            ca = f.ca.display(),
            cert = f.cert.display(),
            key = f.key.display(),
        ))
    }

    /// Writes a certificate and key for `cn` signed by a CA the broker does not trust.
    pub fn untrusted_client_files(&self, cn: &str) -> Result<ClientFiles, HarnessError> {
        let key = KeyPair::generate()?;
        let rogue = Issuer::new(ca_params("rogue CA")?, key);
        self.issue(cn, &rogue, &format!("untrusted-{cn}"))
    }

    fn issue(
        &self,
        cn: &str,
        issuer: &Issuer<'_, KeyPair>,
        file: &str,
    ) -> Result<ClientFiles, HarnessError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, issuer)?;
        let files = ClientFiles {
            ca: self.ca_file(),
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
        };
        write(&files.cert, cert.pem().as_bytes())?;
        write(&files.key, key.serialize_pem().as_bytes())?;
        Ok(files)
    }

    /// Whether the broker process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Starts mosquitto (again) with the same configuration and port; returns
    /// once it accepts TCP connections (10 s at most).
    pub fn start_again(&mut self) -> Result<(), HarnessError> {
        if self.is_running() {
            return Ok(());
        }
        let conf = self.dir.path().join("mosquitto.conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HarnessError::NotInstalled(e.to_string()))?;
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if !self.is_running() {
                return Err(HarnessError::NotStarted {
                    why: "mosquitto exited".into(),
                    log: self.log(),
                });
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(HarnessError::NotStarted {
                    why: format!("port {} not open after 10 s", self.port),
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker cleanly (SIGTERM: it saves its persistence database)
    /// and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: signalling our own child, which has not been reaped yet.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the broker (SIGSTOP): its connections stay open but nothing
    /// is read or acknowledged until [`Broker::resume`].
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a paused broker run again (SIGCONT).
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&mut self, sig: i32) {
        if let Some(pid) = self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok()) {
            // SAFETY: signalling our own child, which has not been reaped yet.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Kills the broker (SIGKILL: nothing since the last autosave is kept).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log"))
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

/// `mosquitto_sub` as an independent subscriber: QoS 1, every message
/// collected as `(topic, payload)`.
pub struct Subscriber {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A message seen by a [`Subscriber`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Its topic.
    pub topic: String,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Whether the broker sent it as a retained message.
    pub retained: bool,
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn client_args(broker: &Broker, files: &ClientFiles) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        broker.port.to_string().into(),
        "--cafile".into(),
    ];
    args.push(files.ca.clone().into());
    args.push("--cert".into());
    args.push(files.cert.clone().into());
    args.push("--key".into());
    args.push(files.key.clone().into());
    args
}

impl Subscriber {
    /// Subscribes to `topic` with `files`' identity; with `session`, a
    /// persistent session under that client id. Returns once the broker
    /// acknowledged the subscription (10 s at most).
    pub fn start(
        broker: &Broker,
        files: &ClientFiles,
        topic: &str,
        session: Option<&str>,
    ) -> Result<Subscriber, HarnessError> {
        // mosquitto_sub block-buffers a pipe; stdbuf (coreutils) makes it line-buffered.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub"])
            .args(client_args(broker, files))
            .args(["-t", topic, "-q", "1", "-d", "-F", "MSG %t %r %x"]);
        if let Some(id) = session {
            cmd.args(["-c", "-i", id]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HarnessError::NotInstalled(format!("mosquitto_sub: {e}")))?;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let lines = lines.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    match lines.lock() {
                        Ok(mut l) => l.push(line),
                        Err(_) => break,
                    }
                }
            });
        }
        let sub = Subscriber { child, lines };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sub.raw().iter().any(|l| l.contains("SUBACK")) {
            if Instant::now() > deadline {
                return Err(HarnessError::NotStarted {
                    why: format!("mosquitto_sub got no SUBACK for {topic}: {:?}", sub.raw()),
                    log: broker.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sub)
    }

    /// Every line `mosquitto_sub -d` printed so far.
    pub fn raw(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.raw()
            .iter()
            .filter_map(|l| {
                let mut parts = l.strip_prefix("MSG ")?.split(' ');
                let topic = parts.next()?.to_string();
                let retained = parts.next()? == "1";
                let payload = from_hex(parts.next().unwrap_or(""))?;
                Some(Received {
                    topic,
                    payload,
                    retained,
                })
            })
            .collect()
    }

    /// Waits until `done(messages)` holds; returns the messages either way.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let m = self.messages();
            if done(&m) || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes one message at QoS 1 with `mosquitto_pub`; returns its exit
/// status and standard error.
pub fn publish(
    broker: &Broker,
    files: &ClientFiles,
    topic: &str,
    payload: &[u8],
    retain: bool,
) -> Result<(std::process::ExitStatus, String), HarnessError> {
    let path = broker.dir().join(format!("pub-{}.bin", std::process::id()));
    write(&path, payload)?;
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(client_args(broker, files))
        .args(["-t", topic, "-q", "1", "-f"])
        .arg(&path);
    if retain {
        cmd.arg("-r");
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError::NotInstalled(format!("mosquitto_pub: {e}")))?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Publishes each of `lines` as one QoS 1 message on `topic`, in order,
/// through one `mosquitto_pub -l` (a line must hold no newline).
pub fn publish_lines(
    broker: &Broker,
    files: &ClientFiles,
    topic: &str,
    lines: &[Vec<u8>],
) -> Result<(std::process::ExitStatus, String), HarnessError> {
    use std::io::Write as _;
    let mut child = Command::new("mosquitto_pub")
        .args(client_args(broker, files))
        .args(["-t", topic, "-q", "1", "-l"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError::NotInstalled(format!("mosquitto_pub: {e}")))?;
    let io = |source| HarnessError::Io {
        path: PathBuf::from("mosquitto_pub stdin"),
        source,
    };
    if let Some(mut stdin) = child.stdin.take() {
        for line in lines {
            stdin.write_all(line).map_err(io)?;
            stdin.write_all(b"\n").map_err(io)?;
        }
    }
    let out = child.wait_with_output().map_err(io)?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
