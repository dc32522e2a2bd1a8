//! The transports: a Unix socket (one session per accepted connection, a
//! few at a time) and a serial device (one session at a time, reopened
//! after an error).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::{Semaphore, watch};

use super::replies::NodeView;
use super::session::{Limits, SessionEnd, serve, stopped};

/// Sessions served at once on the socket; more connections are closed.
pub const MAX_SOCKET_SESSIONS: usize = 4;

/// How long the serial loop waits before opening its device again.
const SERIAL_REOPEN: Duration = Duration::from_secs(5);

/// Why a transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The socket path is taken by something that is not a socket.
    #[error("{}: exists and is not a socket; not replaced", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// Binding the socket failed.
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Mode of the socket file: the node's user and its group may connect
/// (connecting needs write permission), others not, whatever the umask.
pub const SOCKET_MODE: u32 = 0o660;

/// Binds the socket, replacing a stale socket file left by an earlier run,
/// and gives it [`SOCKET_MODE`] (the service's `UMask=0027` would leave the
/// group without the write permission that connecting needs).
pub fn bind(path: &Path) -> Result<UnixListener, ListenError> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ListenError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|source| ListenError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(
        |source| ListenError::Bind {
            path: path.to_path_buf(),
            source,
        },
    )?;
    Ok(listener)
}

/// Accepts connections until `stop`, each served as its own task. Removes
/// the socket file when it stops.
pub async fn serve_socket(
    listener: UnixListener,
    path: PathBuf,
    view: Arc<NodeView>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_SOCKET_SESSIONS));
    let mut n = 0u64;
    tracing::info!(socket = %path.display(), "field link listening on a Unix socket");
    loop {
        let conn = tokio::select! {
            _ = stopped(&mut stop) => break,
            c = listener.accept() => c,
        };
        let stream = match conn {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "field link: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                limit = MAX_SOCKET_SESSIONS,
                "field link: too many sessions; connection closed"
            );
            continue;
        };
        n += 1;
        let (view, stop) = (view.clone(), stop.clone());
        tokio::spawn(async move {
            let peer = format!("socket#{n}");
            let _ = serve(stream, view, limits, stop, &peer).await;
            drop(permit);
        });
    }
    let _ = std::fs::remove_file(&path);
}

/// Serves the serial device until `stop`: one session after another on
/// the open port; reopened after an error or when it cannot be opened.
pub async fn serve_serial(
    path: PathBuf,
    baud: u32,
    view: Arc<NodeView>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let peer = path.display().to_string();
    'open: loop {
        if *stop.borrow() {
            return;
        }
        let port = match uplink::sbd::open_serial(&path, baud) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(device = %peer, error = %e, retry_s = SERIAL_REOPEN.as_secs(), "field link: cannot open the serial device");
                tokio::select! {
                    _ = stopped(&mut stop) => return,
                    _ = tokio::time::sleep(SERIAL_REOPEN) => continue 'open,
                }
            }
        };
        tracing::info!(device = %peer, baud, "field link listening on a serial device");
        // Sessions share the open port: reborrowed for each one.
        let mut port = port;
        loop {
            let (end, _) = serve(&mut port, view.clone(), limits, stop.clone(), &peer).await;
            match end {
                SessionEnd::Stopped => return,
                // A serial line has no end of stream; a read of 0 bytes or
                // an I/O error means the device went away (USB unplugged).
                SessionEnd::Closed | SessionEnd::Io(_) | SessionEnd::WriteTimeout(_) => {
                    tokio::select! {
                        _ = stopped(&mut stop) => return,
                        _ = tokio::time::sleep(SERIAL_REOPEN) => continue 'open,
                    }
                }
                SessionEnd::Idle(_) => continue,
            }
        }
    }
}

#[cfg(test)]
mod mode_tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[tokio::test]
    async fn the_socket_lets_the_group_connect() {
        // Whatever the umask (the service's 0027, a shell's 0022), the
        // socket ends up read-write for the user and the group only.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link.sock");
        let _listener = super::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, super::SOCKET_MODE);
    }
}
