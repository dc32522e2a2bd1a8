//! Power cuts during an install: the node takes a queued model bundle while
//! running on the power-loss filesystem (`hil_tests::powerfs`), and the power
//! is cut at the Nth sync call or at a random moment. After every cut, what
//! the next start finds must be whole: the install state and the trust
//! state read (old or new, never a mix), a committed slot's model matches
//! its manifest, and the next start runs. A last run without cuts must end
//! with the model committed and nothing waiting.
//!
//! `HIL_UPDATE_CUTS` (default 8); `HIL_SEED` (default 1).
//!
//! The sweep cuts at every sync call of an install in turn: each run starts
//! from the same data (an empty store and the bundle queued), counts the
//! syncs of an uncut run first, then cuts at sync 1, 2, ... up to that
//! count (the four cut modes in turn), checks the disk and resumes.
//! `HIL_UPDATE_SWEEP_MAX` caps the number of cut points (default 200).

mod common;

use common::update::{DEMO, MANIFEST, MODEL, base_version, next_version, now_s, self_tests};

use std::sync::atomic::Ordering;
use std::time::Duration;

use hil_tests::powerfs::Mounted;
use models::bundle::keys::generate;
use models::bundle::{Bundle, Kind, Metadata, ModelTarget, Role, Root, Target};

fn bundle(self_tests: Vec<models::bundle::SelfTest>) -> Vec<u8> {
    let text = std::fs::read_to_string(MANIFEST).unwrap().replace(
        &format!("version = {}\n", base_version()),
        &format!("version = {}\n", next_version()),
    );
    let meta = Metadata {
        kind: Kind::Model,
        name: "fusion".into(),
        version: next_version(),
        created_s: now_s() - 60,
        expires_s: now_s() + 86_400,
        target: Target {
            min_firmware: [0, 0, 0],
            model: Some(ModelTarget {
                family: "fusion".into(),
                features: "fieldnode-features-2".into(),
                classes: [
                    "wildlife",
                    "machinery_anomaly",
                    "human_activity",
                    "background",
                ]
                .map(String::from)
                .to_vec(),
            }),
        },
        payload_len: 0,
        payload_sha256: [0; 32],
        quantization: "int4".into(),
        latency_p99_us: 100,
        self_tests,
        manifest: Some(text),
    };
    let mut b = Bundle::new(meta, std::fs::read(MODEL).unwrap());
    b.sign(&generate([10; 32]));
    b.sign(&generate([11; 32]));
    b.to_bytes().unwrap()
}

/// What a start would find under `data`: checks and returns the committed
/// version (0 = none).
fn check_disk(data: &std::path::Path, what: &str) -> u64 {
    let dir = data.join("update");
    if let Ok(bytes) = std::fs::read(dir.join("trust.bin")) {
        models::bundle::TrustState::from_bytes(&bytes)
            .unwrap_or_else(|e| panic!("{what}: trust.bin does not read: {e}"));
    }
    let Ok(text) = std::fs::read_to_string(dir.join("state.toml")) else {
        return 0;
    };
    let state: toml::Table = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("{what}: state.toml does not read: {e}\n{text}"));
    let Some(active) = state.get("active").and_then(|a| a.as_table()) else {
        return 0;
    };
    let slot = active["slot"].as_str().unwrap();
    let manifest = dir.join("slots").join(slot).join("manifest.toml");
    let m = models::Manifest::from_toml(&std::fs::read_to_string(&manifest).unwrap())
        .unwrap_or_else(|e| panic!("{what}: committed manifest: {e}"));
    m.verify_model(&manifest)
        .unwrap_or_else(|e| panic!("{what}: the committed model does not match: {e}"));
    active["version"].as_integer().unwrap() as u64
}

/// A trust root, a node configuration and the bundle, under `t`.
fn setup(t: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let root = Root {
        version: 1,
        expires_s: now_s() + 86_400,
        root: Role {
            keys: vec![generate([1; 32]).verifying_key().to_bytes()],
            threshold: 1,
        },
        bundles: Role {
            keys: [10u8, 11]
                .map(|n| generate([n; 32]).verifying_key().to_bytes())
                .to_vec(),
            threshold: 2,
        },
    };
    std::fs::write(
        t.join("root.fnr"),
        root.sign(&[&generate([1; 32])]).unwrap(),
    )
    .unwrap();
    let config = t.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[update]\nroot = \"{}\"\nscan_interval_ms = 200\ntrial_bursts = 1\n",
            t.join("root.fnr").display()
        ),
    )
    .unwrap();
    (config, bundle(self_tests(4)))
}

/// `bytes` queued in the drop folder under `data`.
fn queue(data: &std::path::Path, bytes: &[u8]) {
    std::fs::create_dir_all(data.join("incoming")).unwrap();
    std::fs::write(
        data.join("incoming")
            .join(format!("model-fusion-{}.fnb", next_version())),
        bytes,
    )
    .unwrap();
}

/// One run of the node on the power-loss filesystem over `backing`, cut at
/// sync `at_sync` (0: not at a sync) or after `cut_after`; returns the
/// number of sync calls it made.
#[allow(clippy::too_many_arguments)]
fn cut_run(
    t: &std::path::Path,
    config: &std::path::Path,
    mode: hil_tests::powerfs::CutMode,
    seed: u64,
    at_sync: u64,
    cut_after: Option<Duration>,
    what: &str,
) -> u64 {
    let (backing, trash, mnt) = (t.join("disk"), t.join("trash"), t.join("mnt"));
    let m = Mounted::mount(&backing, &trash, &mnt, mode, seed).unwrap();
    m.control.cut_at_sync.store(at_sync, Ordering::SeqCst);
    let control = m.control.clone();
    let log = t.join("node.log");
    let (child, reader) = common::spawn_collecting(
        std::path::Path::new(DEMO),
        &mnt.join("data"),
        &log,
        &[std::ffi::OsStr::new("--config"), config.as_os_str()],
    );
    let _ = common::run_until_cut(
        m,
        child,
        reader,
        cut_after,
        Duration::from_secs(30),
        &log,
        what,
    );
    control.syncs.load(Ordering::SeqCst)
}

#[test]
fn a_cut_at_every_sync_of_an_install_leaves_a_whole_state() {
    use hil_tests::powerfs::CutMode;
    if !common::fuse_available() {
        return;
    }
    let max = common::env_u64("HIL_UPDATE_SWEEP_MAX", 200);
    let t = tempfile::tempdir().unwrap();
    let (config, bytes) = setup(t.path());
    let (backing, trash, mnt) = (
        t.path().join("disk"),
        t.path().join("trash"),
        t.path().join("mnt"),
    );
    let fresh = || {
        for d in [&backing, &trash, &mnt] {
            let _ = std::fs::remove_dir_all(d);
            std::fs::create_dir_all(d).unwrap();
        }
        queue(&backing.join("data"), &bytes);
    };
    fresh();
    let total = cut_run(t.path(), &config, CutMode::DropAll, 1, 0, None, "uncut");
    assert_eq!(
        check_disk(&backing.join("data"), "uncut run"),
        next_version(),
        "the uncut run did not install"
    );
    let points = total.min(max);
    let mut seen = [0u64; 2];
    for at in 1..=points {
        fresh();
        let mode = match at % 4 {
            0 => CutMode::DropAll,
            1 => CutMode::Prefix(at as usize % 7),
            2 => CutMode::TornHalf(at as usize % 5),
            _ => CutMode::Garbage4k(at as usize % 3),
        };
        let what = format!("cut at sync {at} of {total} ({mode})");
        cut_run(t.path(), &config, mode, at, at, None, &what);
        let version = check_disk(&backing.join("data"), &what);
        seen[usize::from(version == next_version())] += 1;
        // The next start resumes and finishes the install.
        let out = common::node_run(
            std::path::Path::new(DEMO),
            &backing.join("data"),
            &["--speed", "max"],
        )
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{what}: the next start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            check_disk(&backing.join("data"), &format!("{what}, then a start")),
            next_version(),
            "{what}: the start after the cut did not finish the install"
        );
    }
    eprintln!(
        "{points} cut points of {total} syncs: {} left no committed model, {} a committed one",
        seen[0], seen[1]
    );
}

#[test]
fn power_cuts_during_an_install_leave_a_whole_state() {
    if !common::fuse_available() {
        return;
    }
    let cuts = common::env_u64("HIL_UPDATE_CUTS", 8);
    let seed = common::env_u64("HIL_SEED", 1);
    let t = tempfile::tempdir().unwrap();
    let (config, bytes) = setup(t.path());
    let (backing, trash, mnt) = (
        t.path().join("disk"),
        t.path().join("trash"),
        t.path().join("mnt"),
    );
    for d in [&backing, &trash, &mnt] {
        std::fs::create_dir_all(d).unwrap();
    }
    queue(&backing.join("data"), &bytes);
    let mut rng = common::Rng::new(seed);
    let mut seen = [0u64; 2];
    for cut in 0..cuts {
        let mode = common::cut_mode(&mut rng);
        let at_sync = if cut % 2 == 0 { 1 + rng.below(40) } else { 0 };
        let cut_after = Duration::from_millis(rng.below(400));
        cut_run(
            t.path(),
            &config,
            mode,
            seed + cut,
            at_sync,
            (at_sync == 0).then_some(cut_after),
            &format!("cut {cut}"),
        );
        let what = format!("cut {cut} ({mode})");
        let version = check_disk(&backing.join("data"), &what);
        seen[usize::from(version == next_version())] += 1;
        // Start over with the bundle queued again once it was committed.
        if version == next_version() {
            std::fs::remove_dir_all(backing.join("data").join("update")).unwrap();
            queue(&backing.join("data"), &bytes);
        }
    }
    eprintln!(
        "{cuts} cuts: {} left no committed model, {} a committed one",
        seen[0], seen[1]
    );
    // The last start, without cuts, finishes the install.
    let out = common::node_run(
        std::path::Path::new(DEMO),
        &backing.join("data"),
        &["--speed", "max"],
    )
    .arg("--config")
    .arg(&config)
    .env("RUST_LOG", "info")
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let listing: Vec<_> = std::fs::read_dir(backing.join("data").join("incoming"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert_eq!(
        check_disk(&backing.join("data"), "final run"),
        next_version(),
        "{stderr}\nincoming: {listing:?}\nstate: {}",
        std::fs::read_to_string(backing.join("data/update/state.toml")).unwrap_or_default()
    );
}
