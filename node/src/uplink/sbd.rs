//! The satellite side of the uplink: a task that owns the Iridium SBD link
//! (serial port, modem, credit budget). It opens and initialises the modem
//! (again every `reopen_interval_ms` while that fails or after the modem
//! stopped answering), answers signal queries and sends one packed message
//! at a time. Results go back over a channel, so a send that takes minutes
//! never stalls the uplink loop (and its MQTT link).

use std::path::PathBuf;
use std::time::Duration;

use messages::Priority;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uplink::sbd::{
    CreditBudget, ReportOnly, SbdError, SbdLink, SendReport, SerialStream, SystemClock, WallClock,
    open_serial,
};
use uplink::scheduler::CreditsLeft;

use super::config::SbdConfig;

/// What the uplink loop asks of the modem.
#[derive(Debug)]
pub(super) enum SbdRequest {
    /// Report the signal strength (`AT+CSQ`).
    Signal,
    /// Send one packed message carrying the outbox items `ids`.
    Send {
        message: Vec<u8>,
        ids: Vec<u64>,
        priority: Priority,
    },
}

/// What the modem task reports.
#[derive(Debug)]
pub(super) enum SbdReport {
    /// The modem cannot be used now (open, init or a query failed).
    Unavailable { error: String },
    /// Signal bars, and the credits left (today, this month).
    Signal { bars: u8, credits: (u32, u32) },
    /// Iridium network time (`AT-MSSTM`), read right after a signal check,
    /// and when it was read.
    NetworkTime { unix_ms: i64, read_at: Instant },
    /// A send finished (or could not be carried out).
    Sent {
        ids: Vec<u64>,
        result: Result<SendReport, String>,
        credits: (u32, u32),
    },
}

type Link = SbdLink<SerialStream, ReportOnly, SystemClock>;

/// Starts the modem task. Requests queue one deep: the loop sends at most
/// one request at a time.
pub(super) fn spawn(
    cfg: SbdConfig,
    budget_path: PathBuf,
) -> (
    mpsc::Sender<SbdRequest>,
    mpsc::UnboundedReceiver<SbdReport>,
    JoinHandle<()>,
) {
    let (req_tx, req_rx) = mpsc::channel(1);
    let (rep_tx, rep_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(worker(cfg, budget_path, req_rx, rep_tx));
    (req_tx, rep_rx, task)
}

async fn open(cfg: &SbdConfig, budget_path: &std::path::Path) -> Result<Link, String> {
    let io = open_serial(&cfg.port, cfg.baud).map_err(|e| e.to_string())?;
    let budget = CreditBudget::open(budget_path, cfg.limits(), SystemClock.now_ms())
        .map_err(|e| e.to_string())?;
    let mut link = SbdLink::new(io, ReportOnly, SystemClock, budget, cfg.link());
    link.init().await.map_err(|e| e.to_string())?;
    Ok(link)
}

fn credits(link: &Link) -> (u32, u32) {
    link.budget().credits_left(SystemClock.now_ms())
}

async fn worker(
    cfg: SbdConfig,
    budget_path: PathBuf,
    mut requests: mpsc::Receiver<SbdRequest>,
    reports: mpsc::UnboundedSender<SbdReport>,
) {
    let reopen = Duration::from_millis(cfg.reopen_interval_ms);
    let mut link: Option<Link> = None;
    let mut next_open = Instant::now();
    loop {
        if link.is_none() && Instant::now() >= next_open {
            match open(&cfg, &budget_path).await {
                Ok(l) => {
                    tracing::info!(port = %cfg.port.display(), "satellite modem ready");
                    link = Some(l);
                }
                Err(error) => {
                    tracing::warn!(port = %cfg.port.display(), error = %error, retry_ms = cfg.reopen_interval_ms, "satellite modem unavailable");
                    next_open = Instant::now() + reopen;
                    if reports.send(SbdReport::Unavailable { error }).is_err() {
                        return;
                    }
                }
            }
        }
        let request = if link.is_some() {
            requests.recv().await
        } else {
            tokio::select! {
                r = requests.recv() => r,
                () = tokio::time::sleep_until(next_open) => continue,
            }
        };
        let Some(request) = request else { return };
        let report = match (link.as_mut(), request) {
            (None, SbdRequest::Signal) => SbdReport::Unavailable {
                error: "modem not open".into(),
            },
            (None, SbdRequest::Send { ids, .. }) => SbdReport::Sent {
                ids,
                result: Err("modem not open".into()),
                credits: (0, 0),
            },
            (Some(l), SbdRequest::Signal) => match l.modem().signal().await {
                Ok(bars) => {
                    // Network time costs no credit: read it with every
                    // signal check, for the node's clock.
                    match l.modem().network_time().await {
                        Ok(Some(unix_ms)) => {
                            let time = SbdReport::NetworkTime {
                                unix_ms,
                                read_at: Instant::now(),
                            };
                            if reports.send(time).is_err() {
                                return;
                            }
                        }
                        Ok(None) => tracing::debug!("no Iridium network time (no service)"),
                        Err(e) => tracing::debug!(error = %e, "Iridium network time unreadable"),
                    }
                    SbdReport::Signal {
                        bars,
                        credits: credits(l),
                    }
                }
                Err(e) => {
                    link = None;
                    next_open = Instant::now() + reopen;
                    SbdReport::Unavailable {
                        error: e.to_string(),
                    }
                }
            },
            (
                Some(l),
                SbdRequest::Send {
                    message,
                    ids,
                    priority,
                },
            ) => {
                let result = l.send(&message, ids.clone(), priority).await;
                let left = credits(l);
                if let Err(SbdError::Unresponsive { .. }) = &result {
                    link = None;
                    next_open = Instant::now() + reopen;
                }
                SbdReport::Sent {
                    ids,
                    result: result.map_err(|e| e.to_string()),
                    credits: left,
                }
            }
        };
        if reports.send(report).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_modem_is_reported_unavailable_and_sends_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SbdConfig {
            port: dir.path().join("no-such-tty"),
            reopen_interval_ms: 3_600_000,
            ..SbdConfig::default()
        };
        let (requests, mut reports, task) = spawn(cfg, dir.path().join("sbd-budget"));
        assert!(matches!(
            reports.recv().await,
            Some(SbdReport::Unavailable { .. })
        ));
        requests.send(SbdRequest::Signal).await.unwrap();
        assert!(matches!(
            reports.recv().await,
            Some(SbdReport::Unavailable { .. })
        ));
        requests
            .send(SbdRequest::Send {
                message: vec![1, 2, 3],
                ids: vec![7, 9],
                priority: Priority::Urgent,
            })
            .await
            .unwrap();
        match reports.recv().await {
            Some(SbdReport::Sent { ids, result, .. }) => {
                assert_eq!(ids, [7, 9]);
                assert!(result.is_err());
            }
            other => panic!("expected a failed send, got {other:?}"),
        }
        assert!(!dir.path().join("sbd-budget").exists());
        drop(requests);
        task.await.unwrap();
    }
}
