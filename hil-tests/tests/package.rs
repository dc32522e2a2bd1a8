//! The Debian package for a Raspberry Pi 5, checked under emulation: builds
//! the arm64 package (cross-compiled) and runs `scripts/package-check
//! arm64` (its binaries under qemu-user, the demo scene with the 4-bit
//! model on ONNX Runtime for aarch64, compared with this machine's run).
//! Long (a cross build of the node, about 6 minutes on 2 cores) and it
//! installs Debian packages on its first run, so it is ignored by default:
//!
//! ```sh
//! cargo test -p hil-tests --test package -- --ignored
//! ```
//!
//! The amd64 check installs and purges the package on the machine:
//! `scripts/package amd64 && sudo scripts/package-check amd64`, by hand.

use std::path::Path;
use std::process::Command;

fn script(name: &str, arg: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(root.join("scripts").join(name))
        .arg(arg)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("scripts/{name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/{name} {arg} failed\n{stdout}\n{stderr}"
    );
    if name == "package-check" {
        assert!(stdout.contains("package-check: arm64 passed"), "{stdout}");
        assert!(stdout.contains("the same"), "{stdout}");
    }
}

#[test]
#[ignore = "long: cross-compiles the node for arm64; run with --ignored"]
fn the_arm64_package_runs_the_demo_scene_under_emulation_like_x86_64() {
    script("package", "arm64");
    script("package-check", "arm64");
}
