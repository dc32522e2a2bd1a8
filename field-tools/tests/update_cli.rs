//! The signed-update commands through the program itself, in a temporary
//! directory: keys, a root (root keys A, B, threshold 2; bundle keys C, D,
//! threshold 2), a model bundle packed from the committed fusion model and
//! a settings bundle. Each refusal is checked by its exit code (1 refused,
//! 2 usage or I/O) and its reason code, next to a case that is accepted, so
//! that a verifier that accepted or refused everything would fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_field-tools");

fn manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/fusion/fusion.int4.manifest.toml")
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run field-tools")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command expected to succeed; returns its stdout.
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert_eq!(
        code(&out),
        0,
        "{args:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs a `--json` command; returns the exit code and the JSON object.
fn json(dir: &Path, args: &[&str]) -> (i32, Value) {
    let out = run(dir, args);
    let v: Value = serde_json::from_str(stdout(&out).trim())
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", stdout(&out)));
    (code(&out), v)
}

/// `bundle verify --json`: the exit code and the reason code (`ok` when
/// accepted).
fn verify(dir: &Path, root: &str, file: &str, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["bundle", "verify", "--root", root, file, "--json"];
    args.extend_from_slice(extra);
    let (c, v) = json(dir, &args);
    let reason = if v["ok"] == true {
        assert_eq!(v["accepted"], true);
        "ok".to_string()
    } else {
        v["code"].as_str().expect("code").to_string()
    };
    (c, reason)
}

/// Generates a key; returns its id.
fn keygen(dir: &Path, name: &str) -> String {
    let out = ok(dir, &["keys", "generate", "--out", name]);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("key id "))
        .expect("key id line")
        .trim()
        .to_string();
    assert_eq!(id.len(), 16, "{out}");
    id
}

struct Setup {
    dir: tempfile::TempDir,
    /// Key ids of a, b, c, d.
    ids: [String; 4],
}

impl Setup {
    /// Keys a, b (root), c, d (bundles) and `root.bin` (version 1).
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ids = ["a", "b", "c", "d"].map(|k| keygen(dir.path(), k));
        ok(
            dir.path(),
            &[
                "root",
                "init",
                "--root-key",
                "a.public",
                "b.public",
                "--root-threshold",
                "2",
                "--bundle-key",
                "c.public",
                "d.public",
                "--bundle-threshold",
                "2",
                "--expires",
                "365",
                "--sign",
                "a.secret",
                "b.secret",
                "--out",
                "root.bin",
            ],
        );
        Setup { dir, ids }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Packs the committed int4 model as version 3.
    fn pack_model(&self, out: &str, expires: &str, extra: &[&str]) {
        let m = manifest();
        let mut args = vec![
            "bundle",
            "pack",
            "--kind",
            "model",
            "--manifest",
            m.to_str().unwrap(),
            "--version",
            "3",
            "--expires",
            expires,
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        ok(self.path(), &args);
    }

    fn sign(&self, key: &str, file: &str) {
        ok(self.path(), &["bundle", "sign", "--key", key, file]);
    }
}

#[test]
fn keys_generate_writes_a_pair_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let id = keygen(dir.path(), "ops");
    let secret = std::fs::read_to_string(dir.path().join("ops.secret")).unwrap();
    let public = std::fs::read_to_string(dir.path().join("ops.public")).unwrap();
    assert!(secret.starts_with("fieldnode-ed25519-secret "), "{secret}");
    assert!(public.starts_with("fieldnode-ed25519-public "), "{public}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ops.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Two keys are never the same (the seed comes from the OS).
    assert_ne!(keygen(dir.path(), "other"), id);

    let again = run(dir.path(), &["keys", "generate", "--out", "ops"]);
    assert_eq!(code(&again), 2, "{}", stderr(&again));
    assert!(stderr(&again).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ops.secret")).unwrap(),
        secret
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ops.public")).unwrap(),
        public
    );
}

#[test]
fn root_init_with_too_few_signatures_refuses_and_writes_nothing() {
    let s = Setup::new();
    let init = |sign: &[&str], out: &str| {
        let mut args = vec![
            "root",
            "init",
            "--root-key",
            "a.public",
            "b.public",
            "--root-threshold",
            "2",
            "--bundle-key",
            "c.public",
            "d.public",
            "--bundle-threshold",
            "2",
            "--expires",
            "30",
            "--out",
            out,
            "--sign",
        ];
        args.extend_from_slice(sign);
        run(s.path(), &args)
    };
    // One root key of two; then two signatures by bundle keys, which count
    // for nothing on a root.
    for (sign, file) in [
        (&["a.secret"][..], "one.bin"),
        (&["c.secret", "d.secret"][..], "bundle-keys.bin"),
    ] {
        let out = init(sign, file);
        assert_eq!(code(&out), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("(signatures)"), "{}", stderr(&out));
        assert!(!s.path().join(file).exists(), "{file} was written");
    }
    // The same with both root keys is written, and never over a root.
    let out = init(&["a.secret", "b.secret"], "two.bin");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(s.path().join("two.bin").exists());
    let before = std::fs::read(s.path().join("root.bin")).unwrap();
    let out = init(&["a.secret", "b.secret"], "root.bin");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert_eq!(std::fs::read(s.path().join("root.bin")).unwrap(), before);
}

#[test]
fn root_inspect_shows_roles_and_signatures() {
    let s = Setup::new();
    let (c, v) = json(s.path(), &["root", "inspect", "root.bin", "--json"]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["version"], 1);
    assert_eq!(v["root"]["threshold"], 2);
    assert_eq!(v["root"]["keys"], serde_json::json!([s.ids[0], s.ids[1]]));
    assert_eq!(
        v["bundles"]["keys"],
        serde_json::json!([s.ids[2], s.ids[3]])
    );
    assert_eq!(v["signatures"][0]["key_id"], s.ids[0]);
    assert_eq!(v["signatures"][1]["role"], "root");
    assert_eq!(v["expired"], false);
    // A bundle is not a root.
    s.pack_model("m.fnb", "30", &[]);
    let (c, v) = json(s.path(), &["root", "inspect", "m.fnb", "--json"]);
    assert_eq!((c, v["code"].as_str()), (1, Some("malformed")), "{v}");
}

#[test]
fn a_model_bundle_needs_a_threshold_of_bundle_keys() {
    let s = Setup::new();
    s.pack_model("m.fnb", "30", &[]);
    assert_eq!(
        verify(s.path(), "root.bin", "m.fnb", &[]),
        (1, "signatures".into())
    );
    s.sign("c.secret", "m.fnb");
    assert_eq!(
        verify(s.path(), "root.bin", "m.fnb", &[]),
        (1, "signatures".into())
    );
    // C twice is still one signature.
    s.sign("c.secret", "m.fnb");
    assert_eq!(
        verify(s.path(), "root.bin", "m.fnb", &[]),
        (1, "signatures".into())
    );
    // A root key is not a bundle key.
    s.sign("a.secret", "m.fnb");
    assert_eq!(
        verify(s.path(), "root.bin", "m.fnb", &[]),
        (1, "signatures".into())
    );
    s.sign("d.secret", "m.fnb");
    assert_eq!(verify(s.path(), "root.bin", "m.fnb", &[]), (0, "ok".into()));

    // Without --manifest the output says whose target was checked.
    let text = ok(
        s.path(),
        &["bundle", "verify", "--root", "root.bin", "m.fnb"],
    );
    assert!(text.contains("the bundle's own"), "{text}");
    let m = manifest();
    let (c, v) = json(
        s.path(),
        &[
            "bundle",
            "verify",
            "--root",
            "root.bin",
            "m.fnb",
            "--json",
            "--manifest",
            m.to_str().unwrap(),
        ],
    );
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["model_target_from"], "manifest");
    assert_eq!(v["model_target"]["features"], "fieldnode-features-2");
}

#[test]
fn a_node_that_runs_other_classes_or_older_firmware_refuses_the_model() {
    let s = Setup::new();
    s.pack_model("m.fnb", "30", &["--min-firmware", "0.2.0"]);
    s.sign("c.secret", "m.fnb");
    s.sign("d.secret", "m.fnb");
    assert_eq!(
        verify(s.path(), "root.bin", "m.fnb", &["--firmware", "0.1.9"]),
        (1, "wrong_target".into())
    );
    assert_eq!(
        verify(s.path(), "root.bin", "m.fnb", &["--firmware", "0.2.0"]),
        (0, "ok".into())
    );
    // The node's manifest lists the classes in another order.
    let text = std::fs::read_to_string(manifest()).unwrap();
    let node = text.replace(
        r#"classes = ["wildlife", "machinery_anomaly", "human_activity", "background"]"#,
        r#"classes = ["background", "wildlife", "machinery_anomaly", "human_activity"]"#,
    );
    assert_ne!(node, text);
    std::fs::write(s.path().join("node.toml"), node).unwrap();
    assert_eq!(
        verify(
            s.path(),
            "root.bin",
            "m.fnb",
            &["--firmware", "0.2.0", "--manifest", "node.toml"]
        ),
        (1, "wrong_target".into())
    );
}

#[test]
fn a_tampered_payload_is_refused() {
    let s = Setup::new();
    s.pack_model("m.fnb", "30", &[]);
    s.sign("c.secret", "m.fnb");
    s.sign("d.secret", "m.fnb");
    assert_eq!(verify(s.path(), "root.bin", "m.fnb", &[]), (0, "ok".into()));
    let path = s.path().join("m.fnb");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1000] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        verify(s.path(), "root.bin", "m.fnb", &[]),
        (1, "payload_mismatch".into())
    );
    // Nobody signs it either.
    let out = run(s.path(), &["bundle", "sign", "--key", "c.secret", "m.fnb"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    // And something that is not a bundle at all.
    let out = run(
        s.path(),
        &["bundle", "sign", "--key", "c.secret", "root.bin"],
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("(malformed)"), "{}", stderr(&out));
}

#[test]
fn the_installed_version_is_a_rollback() {
    let s = Setup::new();
    s.pack_model("m.fnb", "30", &[]);
    s.sign("c.secret", "m.fnb");
    s.sign("d.secret", "m.fnb");
    assert_eq!(
        verify(s.path(), "root.bin", "m.fnb", &["--installed", "2"]),
        (0, "ok".into())
    );
    for installed in ["3", "4"] {
        assert_eq!(
            verify(s.path(), "root.bin", "m.fnb", &["--installed", installed]),
            (1, "rollback".into())
        );
    }
}

#[test]
fn an_expired_bundle_is_refused() {
    let s = Setup::new();
    for (file, expires) in [
        ("past.fnb", "2020-01-01T00:00:00Z"),
        ("yesterday.fnb", "-1"),
    ] {
        s.pack_model(file, expires, &[]);
        s.sign("c.secret", file);
        s.sign("d.secret", file);
        assert_eq!(
            verify(s.path(), "root.bin", file, &[]),
            (1, "expired".into()),
            "{file}"
        );
    }
    // The same bundle a day from now is taken.
    s.pack_model("fresh.fnb", "1", &[]);
    s.sign("c.secret", "fresh.fnb");
    s.sign("d.secret", "fresh.fnb");
    assert_eq!(
        verify(s.path(), "root.bin", "fresh.fnb", &[]),
        (0, "ok".into())
    );
}

#[test]
fn inspect_json_shows_the_fields() {
    let s = Setup::new();
    let one = serde_json::json!([{
        "inputs": [vec![0.0; 110], vec![0.5; 47], vec![0.25; 8], [1.0, 1.0, 0.0]],
        "expected_class": 0,
        "probabilities": [0.9, 0.05, 0.03, 0.02],
        "tolerance": 0.05,
    }]);
    std::fs::write(s.path().join("tests.json"), one.to_string()).unwrap();
    s.pack_model(
        "m.fnb",
        "2030-01-01T00:00:00Z",
        &["--self-tests", "tests.json"],
    );
    s.sign("c.secret", "m.fnb");
    s.sign("d.secret", "m.fnb");
    let (c, v) = json(s.path(), &["bundle", "inspect", "m.fnb", "--json"]);
    assert_eq!(c, 0, "{v}");
    let manifest = std::fs::read_to_string(manifest()).unwrap();
    let sha = manifest
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = "))
        .unwrap()
        .trim_matches('"');
    assert_eq!(v["kind"], "model");
    assert_eq!(v["name"], "fusion");
    assert_eq!(v["version"], 3);
    assert_eq!(v["expires"], "2030-01-01T00:00:00Z");
    assert!(v["created"].as_str().unwrap().ends_with('Z'), "{v}");
    assert_eq!(v["target"]["min_firmware"], "0.1.0");
    assert_eq!(v["target"]["model"]["family"], "fusion");
    assert_eq!(v["target"]["model"]["features"], "fieldnode-features-2");
    assert_eq!(v["target"]["model"]["classes"][3], "background");
    let size: u64 = manifest
        .lines()
        .find_map(|l| l.strip_prefix("size_bytes = "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(v["payload_len"], size);
    assert_eq!(v["payload_sha256"], sha);
    assert_eq!(v["payload_matches"], true);
    assert!(
        v["quantization"]
            .as_str()
            .unwrap()
            .starts_with("MatMulNBits, 4 bits")
    );
    // The manifest's measured batch1_p99_ms, in µs.
    let p99_ms: f64 = manifest
        .lines()
        .find_map(|l| l.strip_prefix("batch1_p99_ms = ")?.trim().parse().ok())
        .unwrap();
    assert_eq!(v["latency_p99_us"], (p99_ms * 1000.0).round() as u64);
    assert_eq!(v["self_tests"], 1);
    assert_eq!(v["manifest"], true);
    assert_eq!(v["signatures"], serde_json::json!([s.ids[2], s.ids[3]]));
    let size = std::fs::metadata(s.path().join("m.fnb")).unwrap().len();
    assert_eq!(v["bytes"], size);
    assert!(v.get("settings").is_none());

    // A self-test that does not fit the manifest is a usage error.
    let bad = serde_json::json!([{
        "inputs": [vec![0.0; 109], vec![0.5; 47], vec![0.25; 8], [1.0, 1.0, 0.0]],
        "expected_class": 0, "probabilities": [0.9, 0.05, 0.03, 0.02], "tolerance": 0.05,
    }]);
    std::fs::write(s.path().join("bad.json"), bad.to_string()).unwrap();
    let m = crate::manifest();
    let out = run(
        s.path(),
        &[
            "bundle",
            "pack",
            "--kind",
            "model",
            "--manifest",
            m.to_str().unwrap(),
            "--version",
            "4",
            "--expires",
            "30",
            "--self-tests",
            "bad.json",
            "--out",
            "bad.fnb",
        ],
    );
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`audio` has 109 values"),
        "{}",
        stderr(&out)
    );
    assert!(!s.path().join("bad.fnb").exists());
}

#[test]
fn a_model_that_differs_from_its_manifest_is_not_packed() {
    let s = Setup::new();
    let src = manifest();
    let dir = src.parent().unwrap();
    std::fs::copy(&src, s.path().join("fusion.int4.manifest.toml")).unwrap();
    let mut onnx = std::fs::read(dir.join("fusion.int4.onnx")).unwrap();
    let args = [
        "bundle",
        "pack",
        "--kind",
        "model",
        "--manifest",
        "fusion.int4.manifest.toml",
        "--version",
        "3",
        "--expires",
        "30",
        "--out",
        "m.fnb",
    ];
    std::fs::write(s.path().join("fusion.int4.onnx"), &onnx).unwrap();
    ok(s.path(), &args);
    std::fs::remove_file(s.path().join("m.fnb")).unwrap();
    onnx[500] ^= 0x80;
    std::fs::write(s.path().join("fusion.int4.onnx"), &onnx).unwrap();
    let out = run(s.path(), &args);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(manifest_mismatch)"),
        "{}",
        stderr(&out)
    );
    assert!(!s.path().join("m.fnb").exists());
}

const PATCH: &str = r#"
thresholds = { wildlife = 0.6, machinery_anomaly = 0.7, human_activity = 0.55 }
exclude = ["background"]
camera_interval_ms = 1000
camera_interval_saver_ms = 4000
climate_interval_ms = 20000
climate_interval_critical_ms = 120000
saver_below_soc = 0.45
critical_below_soc = 0.2
burst_min_soc = 0.25
uplink_min_soc = 0.35
update_min_soc = 0.5
"#;

#[test]
fn a_settings_bundle_with_two_signatures_fits_one_mt_message() {
    let s = Setup::new();
    std::fs::write(s.path().join("patch.toml"), PATCH).unwrap();
    ok(
        s.path(),
        &[
            "bundle",
            "pack",
            "--kind",
            "settings",
            "--patch",
            "patch.toml",
            "--name",
            "settings",
            "--version",
            "7",
            "--expires",
            "30",
            "--out",
            "s.fnb",
        ],
    );
    assert_eq!(
        verify(s.path(), "root.bin", "s.fnb", &[]),
        (1, "signatures".into())
    );
    s.sign("c.secret", "s.fnb");
    s.sign("d.secret", "s.fnb");
    let size = std::fs::metadata(s.path().join("s.fnb")).unwrap().len();
    assert!(size <= 270, "{size} bytes");

    let (c, v) = json(s.path(), &["bundle", "inspect", "s.fnb", "--json"]);
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["kind"], "settings");
    assert_eq!(v["name"], "settings");
    assert_eq!(v["bytes"], size);
    assert_eq!(v["target"]["model"], Value::Null);
    assert_eq!(v["settings"]["fits_one_mt_message"], true);
    assert_eq!(v["settings"]["sbd_mt_max"], 270);
    assert_eq!(v["settings"]["bytes_with_two_signatures"], size);
    let patch = &v["settings"]["patch"];
    assert_eq!(patch["thresholds"]["wildlife"], 0.6);
    assert_eq!(patch["exclude"], serde_json::json!(["background"]));
    assert_eq!(patch["climate_interval_critical_ms"], 120_000);
    assert_eq!(patch["update_min_soc"], 0.5);

    let (c, v) = json(
        s.path(),
        &["bundle", "verify", "--root", "root.bin", "s.fnb", "--json"],
    );
    assert_eq!(c, 0, "{v}");
    assert_eq!(v["settings_patch"]["thresholds"]["human_activity"], 0.55);
    assert_eq!(v["model_target_from"], "none");
    assert_eq!(
        verify(s.path(), "root.bin", "s.fnb", &["--installed", "7"]),
        (1, "rollback".into())
    );
}

#[test]
fn a_bad_settings_patch_is_a_usage_error() {
    let s = Setup::new();
    for (i, (text, want)) in [
        ("camera_interval = 5", "unknown field"),
        ("thresholds = { wolf = 0.5 }", "unknown class `wolf`"),
        ("burst_min_soc = 1.5", "not a fraction"),
        ("camera_interval_ms = 10", "between 50 ms and 1 h"),
    ]
    .into_iter()
    .enumerate()
    {
        let patch = format!("p{i}.toml");
        std::fs::write(s.path().join(&patch), text).unwrap();
        let out = run(
            s.path(),
            &[
                "bundle",
                "pack",
                "--kind",
                "settings",
                "--patch",
                &patch,
                "--version",
                "1",
                "--expires",
                "30",
                "--out",
                "s.fnb",
            ],
        );
        assert_eq!(code(&out), 2, "{text}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{text}: {}", stderr(&out));
        assert!(!s.path().join("s.fnb").exists());
    }
}

#[test]
fn root_rotation_needs_the_current_root_keys() {
    let s = Setup::new();
    keygen(s.path(), "e");
    keygen(s.path(), "f");
    let next = |sign: &[&str], version: &str, out: &str| {
        let mut args = vec![
            "root",
            "init",
            "--version",
            version,
            "--root-key",
            "e.public",
            "f.public",
            "--root-threshold",
            "2",
            "--bundle-key",
            "c.public",
            "d.public",
            "--bundle-threshold",
            "2",
            "--expires",
            "730",
            "--out",
            out,
            "--sign",
        ];
        args.extend_from_slice(sign);
        ok(s.path(), &args);
    };
    let rotate = |new: &str| run(s.path(), &["root", "verify", "--trusted", "root.bin", new]);

    next(
        &["a.secret", "b.secret", "e.secret", "f.secret"],
        "2",
        "v2.bin",
    );
    let out = rotate("v2.bin");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("accepted"), "{}", stdout(&out));

    // Well formed on its own, but the current root keys did not sign it.
    next(&["e.secret", "f.secret"], "2", "new-only.bin");
    let out = rotate("new-only.bin");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("current root keys"),
        "{}",
        stderr(&out)
    );

    // One current root key is below the threshold.
    next(&["a.secret", "e.secret", "f.secret"], "2", "one-old.bin");
    assert_eq!(code(&rotate("one-old.bin")), 1);

    // Skipping a version.
    next(
        &["a.secret", "b.secret", "e.secret", "f.secret"],
        "3",
        "v3.bin",
    );
    let out = rotate("v3.bin");
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("(version)"), "{}", stderr(&out));

    // From v2, whose root keys are e and f (they signed v3), v3 is next.
    let out = run(
        s.path(),
        &["root", "verify", "--trusted", "v2.bin", "v3.bin"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
