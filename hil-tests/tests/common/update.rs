//! What the update tests share: the committed model, the demo scene, the
//! clock, self-test vectors made by `fieldnode update selftests`, signing
//! keys and the committed model as a signed bundle.

use ed25519_dalek::SigningKey;
use models::bundle::keys::generate;
use models::bundle::{Bundle, Kind, ModelTarget, Role, Root, SelfTest, Target};

/// The committed model's manifest.
pub const MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/fusion/fusion.int4.manifest.toml"
);
/// The committed 4-bit model.
pub const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/fusion/fusion.int4.onnx"
);
/// The bundled demo scene.
pub const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scenes/demo");

/// The committed model's version (its manifest's `version`).
pub fn base_version() -> u64 {
    std::fs::read_to_string(MANIFEST)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("version = ")?.trim().parse().ok())
        .unwrap()
}

/// The version an update of the committed model carries.
pub fn next_version() -> u64 {
    base_version() + 1
}

/// Seconds since the epoch.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `count` self-test vectors of the committed model.
pub fn self_tests(count: usize) -> Vec<models::bundle::SelfTest> {
    let out = std::process::Command::new(super::NODE)
        .args(["update", "selftests", "--manifest", MANIFEST, "--count"])
        .arg(count.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|t| models::bundle::SelfTest {
            inputs: serde_json::from_value(t["inputs"].clone()).unwrap(),
            expected_class: t["expected_class"].as_u64().unwrap() as u8,
            probabilities: serde_json::from_value(t["probabilities"].clone()).unwrap(),
            tolerance: t["tolerance"].as_f64().unwrap() as f32,
        })
        .collect()
}

/// The test signing key number `n` (deterministic).
pub fn key(n: u8) -> SigningKey {
    generate([n; 32])
}

/// The committed model as a bundle of `version`, signed by `signers`.
pub fn model_bundle(version: u64, tests: Vec<SelfTest>, signers: &[u8]) -> Vec<u8> {
    let (meta, payload) = model_parts(version, tests);
    signed(meta, payload, signers).to_bytes().unwrap()
}

/// The metadata and payload of the committed model as a bundle of
/// `version` (valid for a day, made a minute ago), before signing: a test
/// changes what it needs, then signs with [`signed`].
pub fn model_parts(version: u64, tests: Vec<SelfTest>) -> (models::bundle::Metadata, Vec<u8>) {
    let text = std::fs::read_to_string(MANIFEST).unwrap();
    let text = text
        .lines()
        .map(|l| {
            if l.starts_with("version = ") {
                format!("version = {version}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let payload = std::fs::read(MODEL).unwrap();
    let meta = models::bundle::Metadata {
        kind: Kind::Model,
        name: "fusion".into(),
        version,
        created_s: now_s() - 60,
        expires_s: now_s() + 86_400,
        target: Target {
            min_firmware: [0, 0, 0],
            model: Some(ModelTarget {
                family: "fusion".into(),
                features: "fieldnode-features-2".into(),
                classes: vec![
                    "wildlife".into(),
                    "machinery_anomaly".into(),
                    "human_activity".into(),
                    "background".into(),
                ],
            }),
        },
        payload_len: 0,
        payload_sha256: [0; 32],
        quantization: "int4".into(),
        latency_p99_us: 100,
        self_tests: tests,
        manifest: Some(text),
    };
    (meta, payload)
}

/// A bundle of `meta` over `payload` (its length and hash filled in),
/// signed by the test keys `signers`.
pub fn signed(meta: models::bundle::Metadata, payload: Vec<u8>, signers: &[u8]) -> Bundle {
    let mut b = Bundle::new(meta, payload);
    for &k in signers {
        b.sign(&key(k));
    }
    b
}

/// Writes the tests' trust root to `path`: root keys 1 and 2, bundle keys
/// 10 and 11, two of each needed, valid for a day.
pub fn write_root(path: &std::path::Path) {
    std::fs::write(path, root_file(1, &[1, 2], &[10, 11], &[1, 2])).unwrap();
}

/// A root file of `version` naming the test keys `root_keys` and
/// `bundle_keys` (two of each needed), valid for a day, signed by the test
/// keys `signers`.
pub fn root_file(version: u64, root_keys: &[u8], bundle_keys: &[u8], signers: &[u8]) -> Vec<u8> {
    let role = |keys: &[u8], threshold| Role {
        keys: keys
            .iter()
            .map(|&n| key(n).verifying_key().to_bytes())
            .collect(),
        threshold,
    };
    let root = Root {
        version,
        expires_s: now_s() + 86_400,
        root: role(root_keys, 2),
        bundles: role(bundle_keys, 2),
    };
    let keys: Vec<SigningKey> = signers.iter().map(|&n| key(n)).collect();
    root.sign(&keys.iter().collect::<Vec<_>>()).unwrap()
}

/// One replay of the demo scene: what was stored, the summary, the log.
pub struct DemoRun {
    /// The `stored` lines (one per event made durable).
    pub events: Vec<serde_json::Value>,
    /// The run summary.
    pub summary: serde_json::Value,
    /// Standard error (the log, at `info`).
    pub stderr: String,
}

/// Replays the demo scene at full speed into `data` with `config`, to its
/// end; fails the test if the node fails or prints no summary.
pub fn run_demo(data: &std::path::Path, config: &std::path::Path) -> DemoRun {
    let out = super::node_run(
        std::path::Path::new(DEMO),
        data,
        &["--speed", "max", "--config"],
    )
    .arg(config)
    .env("RUST_LOG", "info")
    .output()
    .expect("fieldnode runs");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "the node failed:\n{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let events = lines
        .iter()
        .filter_map(|v| v.get("stored").cloned())
        .collect();
    let summary = lines
        .iter()
        .find_map(|v| v.get("summary").cloned())
        .unwrap_or_else(|| panic!("no summary:\n{stderr}"));
    DemoRun {
        events,
        summary,
        stderr,
    }
}
