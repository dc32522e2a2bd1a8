//! Opening the byte stream to a node: its Unix socket, or a serial port,
//! with errors that say what to do.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

/// Where the node is.
#[derive(Debug, Clone)]
pub enum Target {
    /// The node's `[fieldlink] socket`.
    Socket(PathBuf),
    /// A serial device wired to the node, at this speed.
    Port(PathBuf, u32),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Socket(p) => write!(f, "socket {}", p.display()),
            Target::Port(p, baud) => write!(f, "port {} at {baud} baud", p.display()),
        }
    }
}

/// A byte stream to the node.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Why the node could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No such socket or device.
    #[error("no such {what}: {} ({hint})", path.display())]
    Missing {
        /// `port` or `socket`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What to check.
        hint: &'static str,
    },
    /// The user may not open it.
    #[error("permission denied on {}: {hint}", path.display())]
    Permission {
        /// The path.
        path: PathBuf,
        /// Which group to join, or whom to run as.
        hint: String,
    },
    /// A socket file without a node behind it.
    #[error("nothing listens on {}: the node is not running (a stale socket file)", path.display())]
    Refused {
        /// The path.
        path: PathBuf,
    },
    /// Anything else.
    #[error("cannot open {target}: {source}")]
    Other {
        /// What was opened.
        target: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The name of group `gid` from `/etc/group`, or the number.
fn group_name(gid: u32) -> String {
    std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut f = line.split(':');
                let name = f.next()?;
                let _password = f.next()?;
                (f.next()?.parse::<u32>().ok()? == gid).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| gid.to_string())
}

fn permission(path: &Path, device: bool) -> OpenError {
    let group = std::fs::metadata(path).map(|m| group_name(m.gid())).ok();
    let hint = match (group, device) {
        (Some(g), true) => format!(
            "the device belongs to group `{g}`: add yourself to it (sudo usermod -aG {g} $USER) and log in again"
        ),
        (Some(g), false) => format!(
            "the socket belongs to group `{g}`: run as the node's user or a member of `{g}`"
        ),
        (None, _) => "run as the node's user or a member of its group".into(),
    };
    OpenError::Permission {
        path: path.to_path_buf(),
        hint,
    }
}

/// Opens the target. Needs a tokio runtime.
pub async fn open(target: &Target) -> Result<Box<dyn Io>, OpenError> {
    match target {
        Target::Socket(path) => match tokio::net::UnixStream::connect(path).await {
            Ok(s) => Ok(Box::new(s)),
            Err(e) => Err(match e.kind() {
                std::io::ErrorKind::NotFound => OpenError::Missing {
                    what: "socket",
                    path: path.clone(),
                    hint: "is the node running with `[fieldlink] socket` set to this path?",
                },
                std::io::ErrorKind::PermissionDenied => permission(path, false),
                std::io::ErrorKind::ConnectionRefused => OpenError::Refused { path: path.clone() },
                _ => OpenError::Other {
                    target: target.to_string(),
                    source: e,
                },
            }),
        },
        Target::Port(path, baud) => {
            // Checked with plain file calls first: their errors are the
            // ones to explain (the serial crate folds them into strings).
            if let Err(e) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
            {
                return Err(match e.kind() {
                    std::io::ErrorKind::NotFound => OpenError::Missing {
                        what: "port",
                        path: path.clone(),
                        hint: "is the cable or USB-serial adapter plugged in? `ls /dev/tty*` lists the ports",
                    },
                    std::io::ErrorKind::PermissionDenied => permission(path, true),
                    _ => OpenError::Other {
                        target: target.to_string(),
                        source: e,
                    },
                });
            }
            uplink::sbd::open_serial(path, *baud)
                .map(|p| Box::new(p) as Box<dyn Io>)
                .map_err(|e| OpenError::Other {
                    target: target.to_string(),
                    source: std::io::Error::other(e.to_string()),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_port_and_socket_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(&Target::Port(dir.path().join("ttyNONE"), 115_200))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("no such port"), "{e}");
        let e = open(&Target::Socket(dir.path().join("none.sock")))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().starts_with("no such socket"), "{e}");
    }

    #[tokio::test]
    async fn a_stale_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let e = open(&Target::Socket(path)).await.err().unwrap();
        assert!(matches!(e, OpenError::Refused { .. }), "{e}");
    }

    #[test]
    fn group_zero_is_root() {
        assert_eq!(group_name(0), "root");
    }
}
