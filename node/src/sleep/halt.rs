//! The edge that powers the board off: [`Halt`], with [`LogindHalt`] on a
//! node and [`FakeHalt`] in a replay and the tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Why the board could not be halted.
#[derive(Debug, thiserror::Error)]
pub enum HaltError {
    /// The halt command could not be started.
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The halt command refused (no polkit rule, logind not running).
    #[error("{command} failed ({status}): {stderr}")]
    Refused {
        /// The command.
        command: String,
        /// Its exit status.
        status: String,
        /// What it wrote on standard error.
        stderr: String,
    },
}

/// Powers the board off. After a successful call the node does nothing
/// more: on a node the service manager stops it and the board halts; a
/// fake ends the run as a power cut would.
pub trait Halt: Send {
    /// A short name for logs and the run summary (`logind`, `simulated`).
    fn name(&self) -> &'static str;

    /// Asks for the power-off.
    fn halt(&mut self) -> Result<(), HaltError>;
}

/// Asks logind to power off (`systemctl poweroff`, which an unprivileged
/// user's systemctl sends to logind's `PowerOff`): the polkit rule
/// `deploy/systemd/50-fieldnode.rules` lets the `fieldnode` user do it,
/// and logind stops every service and unmounts before the board halts. On
/// a Pi 5 with `POWER_OFF_ON_HALT=1` the PMIC then cuts everything but the
/// RTC, whose wake alarm starts the board again.
#[derive(Debug, Clone)]
pub struct LogindHalt {
    /// The program to run (`systemctl`).
    pub program: String,
}

impl Default for LogindHalt {
    fn default() -> Self {
        LogindHalt {
            program: "systemctl".to_string(),
        }
    }
}

impl Halt for LogindHalt {
    fn name(&self) -> &'static str {
        "logind"
    }

    fn halt(&mut self) -> Result<(), HaltError> {
        let command = format!("{} poweroff", self.program);
        let out = std::process::Command::new(&self.program)
            .arg("poweroff")
            .output()
            .map_err(|source| HaltError::Spawn {
                command: command.clone(),
                source,
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(HaltError::Refused {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

/// A halt that only counts its calls (clones share the count): the
/// simulated hardware's, and the tests'.
#[derive(Debug, Clone, Default)]
pub struct FakeHalt {
    calls: Arc<AtomicU32>,
}

impl FakeHalt {
    /// How many times the board was halted.
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Halt for FakeHalt {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn halt(&mut self) -> Result<(), HaltError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_counts_and_clones_share_the_count() {
        let h = FakeHalt::default();
        let mut boxed: Box<dyn Halt> = Box::new(h.clone());
        assert_eq!(h.calls(), 0);
        boxed.halt().unwrap();
        assert_eq!(h.calls(), 1);
        assert_eq!(boxed.name(), "simulated");
    }

    #[test]
    fn a_refused_or_missing_command_is_an_error() {
        let mut h = LogindHalt {
            program: "false".into(),
        };
        assert!(matches!(h.halt(), Err(HaltError::Refused { .. })));
        let mut h = LogindHalt {
            program: "/nonexistent/systemctl".into(),
        };
        assert!(matches!(h.halt(), Err(HaltError::Spawn { .. })));
    }
}
