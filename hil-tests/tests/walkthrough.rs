//! The walk-through of `docs/deploy.md` ("From a new CA to events on the
//! researcher's disk"), as `scripts/walkthrough` runs it on one machine: a
//! CA and certificates from `field-tools pki`, the shipped mosquitto
//! configuration, the node's configuration edited as the guide says, the
//! researcher's persistent session, and every stored event arriving in the
//! researcher's `field-tools pull` file.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_deploy_guide_takes_a_new_user_from_a_ca_to_events_pulled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(root.join("scripts").join("walkthrough"))
        .env("FIELDNODE", common::NODE)
        .env("FIELD_TOOLS", env!("CARGO_BIN_EXE_hil-field-tools"))
        .current_dir(&root)
        .output()
        .expect("scripts/walkthrough runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the researcher received all"),
        "{stdout}\n{stderr}"
    );
}
