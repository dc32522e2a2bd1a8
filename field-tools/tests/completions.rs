//! `field-tools completions SHELL`: a completion script for each shell,
//! naming the commands (the link's too); an unknown shell is refused.

use std::process::Command;

const FIELD_TOOLS: &str = env!("CARGO_BIN_EXE_field-tools");

#[test]
fn every_shell_gets_a_script_that_knows_the_commands() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef field-tools"),
        ("fish", "complete -c field-tools"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let o = Command::new(FIELD_TOOLS)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(o.status.success(), "{shell}: {o:?}");
        let script = String::from_utf8(o.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        for word in ["link", "ports", "reboot", "port"] {
            assert!(script.contains(word), "{shell}: no `{word}`");
        }
    }
    let o = Command::new(FIELD_TOOLS)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
