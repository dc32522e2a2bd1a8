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

fn deploy(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The `KEY=value` settings of a unit's `[Service]` section, in order.
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// One udev rule line as `(key, operator, value)` triples; panics on a
/// line that is not a list of `KEY op "value"` separated by commas.
fn udev_rule(line: &str) -> Vec<(String, String, String)> {
    let mut rest = line.trim();
    let mut out = Vec::new();
    while !rest.is_empty() {
        let op_at = rest
            .find(['=', '!', '+', ':'])
            .unwrap_or_else(|| panic!("no operator in {rest:?}"));
        let key = rest[..op_at].trim().to_string();
        let after = &rest[op_at..];
        let op = ["==", "!=", "+=", ":=", "="]
            .into_iter()
            .find(|o| after.starts_with(o))
            .unwrap_or_else(|| panic!("bad operator in {after:?}"));
        let after = &after[op.len()..];
        assert!(after.starts_with('"'), "unquoted value in {line:?}");
        let end = after[1..]
            .find('"')
            .unwrap_or_else(|| panic!("unterminated value in {line:?}"));
        out.push((key, op.to_string(), after[1..=end].to_string()));
        rest = after[end + 2..].trim_start().trim_start_matches(',').trim();
    }
    out
}

#[test]
fn the_node_unit_and_udev_rule_open_the_wake_alarm_and_the_gpio_registers() {
    let unit = deploy("systemd/fieldnode.service");
    let s = service_settings(&unit);
    let has = |k: &str, v: &str| s.iter().any(|(a, b)| a == k && b == v);
    // /sys stays read-only but for the one file deep sleep writes.
    assert!(has("ProtectKernelTunables", "yes"));
    assert!(
        has("ReadWritePaths", "-/sys/class/rtc/rtc0/wakealarm"),
        "{s:?}"
    );
    assert!(
        !s.iter()
            .any(|(k, v)| k == "ReadWritePaths" && v.split_whitespace().any(|p| p == "/sys")),
        "all of /sys made writable"
    );
    // rppal maps the GPIO registers through /dev/gpiomem0 on a Pi 5.
    assert!(has("DevicePolicy", "closed"));
    assert!(has("DeviceAllow", "/dev/gpiomem0 rw"), "{s:?}");
    assert!(has("DeviceAllow", "/dev/gpiomem rw"), "{s:?}");
    // Still no capability.
    assert!(has("CapabilityBoundingSet", ""));

    let rules = deploy("udev/60-fieldnode.rules");
    let rules: Vec<Vec<(String, String, String)>> = rules
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(udev_rule)
        .collect();
    let find = |key: &str, op: &str, value: &str| {
        rules
            .iter()
            .find(|r| r.iter().any(|(k, o, v)| k == key && o == op && v == value))
            .unwrap_or_else(|| panic!("no rule with {key}{op}\"{value}\""))
    };
    let gpiomem = find("KERNEL", "==", "gpiomem*");
    assert!(gpiomem.contains(&("GROUP".into(), "=".into(), "gpio".into())));
    assert!(gpiomem.contains(&("MODE".into(), "=".into(), "0660".into())));
    let rtc = find("SUBSYSTEM", "==", "rtc");
    assert!(rtc.contains(&("KERNEL".into(), "==".into(), "rtc0".into())));
    // postinst's `udevadm trigger` sends "change": the rule must apply to it.
    assert!(rtc.contains(&("ACTION".into(), "!=".into(), "remove".into())));
    let runs: Vec<&str> = rtc
        .iter()
        .filter(|(k, o, _)| k == "RUN" && o == "+=")
        .map(|(_, _, v)| v.as_str())
        .collect();
    assert_eq!(
        runs,
        [
            "/bin/chgrp fieldnode /sys%p/wakealarm",
            "/bin/chmod 0664 /sys%p/wakealarm"
        ]
    );
    // udev runs programs by absolute path, without a shell.
    for r in &runs {
        let program = r.split_whitespace().next().unwrap_or_default();
        assert!(Path::new(program).is_file(), "{program} missing");
    }
    // The user is in the gpio group; the package installs the rule.
    let sysusers = deploy("systemd/fieldnode.sysusers");
    assert!(sysusers.lines().any(|l| l.trim() == "m fieldnode gpio"));
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/Cargo.toml"))
            .expect("node/Cargo.toml");
    assert!(
        manifest.contains(
            r#"["../deploy/udev/60-fieldnode.rules", "usr/lib/udev/rules.d/60-fieldnode.rules", "644"]"#
        ),
        "the package does not install the udev rule"
    );
    let postinst = deploy("debian/postinst");
    assert!(postinst.contains("--subsystem-match=rtc"), "{postinst}");
    assert!(
        postinst.contains("--sysname-match='gpiomem*'"),
        "{postinst}"
    );
}
