//! The systemd units in `deploy/systemd/` as systemd itself reads them:
//! `systemd-analyze verify` on each, with `ExecStart` pointed at the
//! programs this package builds, must report nothing, and `systemd-analyze
//! security --offline=true` must rate each "OK" (exposure at most 2.5).
//! Skipped, with a note, where `systemd-analyze` is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn units() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd")
}

fn analyze(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("systemd-analyze").args(args).output() {
        Ok(o) => Some(o),
        Err(e) => {
            eprintln!("systemd-analyze not available ({e}): units not checked");
            None
        }
    }
}

/// The unit `name` with its program replaced by `program`, in `dir`.
fn with_program(dir: &Path, name: &str, installed: &str, program: &str) -> PathBuf {
    let text = std::fs::read_to_string(units().join(name)).expect("unit readable");
    assert!(text.contains(installed), "{name} does not run {installed}");
    let path = dir.join(name);
    std::fs::write(&path, text.replace(installed, program)).expect("unit written");
    path
}

fn check(name: &str, installed: &str, program: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = with_program(dir.path(), name, installed, program);
    let unit = unit.to_str().expect("utf-8 path");
    let Some(out) = analyze(&["verify", unit]) else {
        return;
    };
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Lines about other units on this machine are not ours.
    let ours: Vec<&str> = said.lines().filter(|l| l.contains(name)).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "verify {name}:\n{said}"
    );
    let Some(out) = analyze(&["security", "--offline=true", unit]) else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let level = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for").nth(1))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level for {name}:\n{text}"));
    assert!(level <= 2.5, "{name}: exposure {level}\n{text}");
}

#[test]
fn the_node_unit_verifies_and_rates_ok() {
    check("fieldnode.service", "/usr/bin/fieldnode", common::NODE);
}

#[test]
fn the_bridge_unit_verifies_and_rates_ok() {
    check(
        "field-tools-bridge.service",
        "/usr/bin/field-tools",
        env!("CARGO_BIN_EXE_hil-field-tools"),
    );
}
