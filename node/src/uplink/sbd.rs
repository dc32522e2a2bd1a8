//! The satellite side of the uplink: a task that owns the Iridium SBD link
//! (serial port, modem, credit budget). It answers signal queries and sends
//! one packed message at a time. Results go back over a channel, so a send
//! that takes minutes never stalls the uplink loop (and its MQTT link).
//!
//! - **Always powered** (no `[power.loads.satellite]`): the task opens and
//!   initialises the modem at start, again every `reopen_interval_ms`
//!   while that fails or after the modem stopped answering, and keeps the
//!   port open.
//! - **Switched** ([`SatellitePower`]): the modem is off until a request
//!   comes. The request switches it on, waits its settle time, opens and
//!   initialises it, and is carried out; the modem then stays on for
//!   `power_hold_ms` for the next request (a signal check is followed by a
//!   send a round later) and is switched off, its port closed, when none
//!   comes. A modem that does not answer is power-cycled through the same
//!   load. Each such power window is logged with its time on, its energy
//!   at the load's draw, and the requests and sessions it served.

use std::path::PathBuf;
use std::time::Duration;

use messages::Priority;
use power::{Load, SwitchedLoads};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uplink::sbd::{
    CreditBudget, ModemPower, PowerError, SbdError, SbdLink, SendReport, SerialStream, SystemClock,
    WallClock, open_serial,
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

/// The satellite modem's power: `[power.loads.satellite]` when it is
/// switched, else none (the modem is always on).
#[derive(Clone)]
pub(super) struct SatellitePower {
    loads: SwitchedLoads,
    hold: Duration,
}

impl SatellitePower {
    /// The satellite load of `loads`, kept on `hold_ms` after each
    /// request; `None` when `loads` has no satellite line.
    pub(super) fn new(loads: &SwitchedLoads, hold_ms: u64) -> Option<SatellitePower> {
        loads.has(Load::Satellite).then(|| SatellitePower {
            loads: loads.clone(),
            hold: Duration::from_millis(hold_ms),
        })
    }
}

/// How the link power-cycles a modem that stopped answering: through its
/// load when it is switched, else not at all (logged and refused).
struct Cycler(Option<SwitchedLoads>);

impl ModemPower for Cycler {
    fn power_cycle(&mut self) -> Result<(), PowerError> {
        let Some(loads) = &self.0 else {
            tracing::warn!(
                "satellite modem needs a power cycle but this node has no power switch for it"
            );
            return Err(PowerError::Unsupported);
        };
        loads
            .power_off(Load::Satellite)
            .and_then(|()| loads.switch_on(Load::Satellite).map(|_| ()))
            .map_err(|e| PowerError::Failed(e.to_string()))
    }
}

type Link = SbdLink<SerialStream, Cycler, SystemClock>;

/// Starts the modem task. Requests queue one deep: the loop sends at most
/// one request at a time.
pub(super) fn spawn(
    cfg: SbdConfig,
    budget_path: PathBuf,
    power: Option<SatellitePower>,
) -> (
    mpsc::Sender<SbdRequest>,
    mpsc::UnboundedReceiver<SbdReport>,
    JoinHandle<()>,
) {
    let (req_tx, req_rx) = mpsc::channel(1);
    let (rep_tx, rep_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(worker(cfg, budget_path, power, req_rx, rep_tx));
    (req_tx, rep_rx, task)
}

async fn open(
    cfg: &SbdConfig,
    budget_path: &std::path::Path,
    power: Option<&SatellitePower>,
) -> Result<Link, String> {
    let io = open_serial(&cfg.port, cfg.baud).map_err(|e| e.to_string())?;
    let budget = CreditBudget::open(budget_path, cfg.limits(), SystemClock.now_ms())
        .map_err(|e| e.to_string())?;
    let cycler = Cycler(power.map(|p| p.loads.clone()));
    let mut link = SbdLink::new(io, cycler, SystemClock, budget, cfg.link());
    link.init().await.map_err(|e| e.to_string())?;
    Ok(link)
}

/// One power window of a switched modem: from switch-on to switch-off.
struct PowerWindow {
    since: Instant,
    requests: u32,
    sessions: u32,
}

/// Switches a switched modem on and opens it for a request. An error is
/// what the request reports; the modem is then off again.
async fn power_up(
    cfg: &SbdConfig,
    budget_path: &std::path::Path,
    power: &SatellitePower,
    window: &mut Option<PowerWindow>,
) -> Result<Link, String> {
    if window.is_none() {
        *window = Some(PowerWindow {
            since: Instant::now(),
            requests: 0,
            sessions: 0,
        });
    }
    let opened = match power.loads.power_on(Load::Satellite).await {
        Ok(()) => open(cfg, budget_path, Some(power)).await,
        Err(e) => Err(format!("cannot switch the satellite modem on: {e}")),
    };
    if let Err(error) = &opened {
        tracing::warn!(port = %cfg.port.display(), error = %error, "satellite modem unavailable");
        power_down(power, window, "unavailable");
    }
    opened
}

/// Switches a switched modem off (its port already closed) and logs the
/// window it ends.
fn power_down(power: &SatellitePower, window: &mut Option<PowerWindow>, why: &'static str) {
    let _ = power.loads.power_off(Load::Satellite);
    if let Some(w) = window.take() {
        let on = w.since.elapsed();
        let draw_mw = power
            .loads
            .report()
            .loads
            .get(Load::Satellite.as_str())
            .map_or(0.0, |s| s.draw_mw);
        tracing::info!(
            why,
            on_ms = u64::try_from(on.as_millis()).unwrap_or(u64::MAX),
            energy_j = power::loads::bank::energy_j(draw_mw, on),
            requests = w.requests,
            sessions = w.sessions,
            "satellite modem off"
        );
    }
}

fn credits(link: &Link) -> (u32, u32) {
    link.budget().credits_left(SystemClock.now_ms())
}

async fn worker(
    cfg: SbdConfig,
    budget_path: PathBuf,
    power: Option<SatellitePower>,
    mut requests: mpsc::Receiver<SbdRequest>,
    reports: mpsc::UnboundedSender<SbdReport>,
) {
    let reopen = Duration::from_millis(cfg.reopen_interval_ms);
    let mut link: Option<Link> = None;
    let mut next_open = Instant::now();
    let mut window: Option<PowerWindow> = None;
    loop {
        if power.is_none() && link.is_none() && Instant::now() >= next_open {
            match open(&cfg, &budget_path, None).await {
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
        let request = match (&power, link.is_some()) {
            // Switched and on: wait for the next request at most the hold.
            (Some(p), true) => tokio::select! {
                r = requests.recv() => r,
                () = tokio::time::sleep(p.hold) => {
                    link = None;
                    power_down(p, &mut window, "idle");
                    continue;
                }
            },
            (Some(_), false) | (None, true) => requests.recv().await,
            (None, false) => tokio::select! {
                r = requests.recv() => r,
                () = tokio::time::sleep_until(next_open) => continue,
            },
        };
        let Some(request) = request else { break };
        let mut opened_now: Option<String> = None;
        if let (Some(p), None) = (&power, &link) {
            match power_up(&cfg, &budget_path, p, &mut window).await {
                Ok(l) => {
                    tracing::info!(port = %cfg.port.display(), "satellite modem on and ready");
                    link = Some(l);
                }
                Err(e) => opened_now = Some(e),
            }
        }
        if let Some(w) = window.as_mut() {
            w.requests += 1;
        }
        let report = match (link.as_mut(), request) {
            (None, SbdRequest::Signal) => SbdReport::Unavailable {
                error: opened_now.unwrap_or_else(|| "modem not open".into()),
            },
            (None, SbdRequest::Send { ids, .. }) => SbdReport::Sent {
                ids,
                result: Err(opened_now.unwrap_or_else(|| "modem not open".into())),
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
                                break;
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
                    if let Some(p) = &power {
                        power_down(p, &mut window, "not answering");
                    }
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
                if let (Some(w), Ok(r)) = (window.as_mut(), &result) {
                    w.sessions += r.sessions;
                }
                if let Err(SbdError::Unresponsive { .. }) = &result {
                    link = None;
                    next_open = Instant::now() + reopen;
                    if let Some(p) = &power {
                        power_down(p, &mut window, "not answering");
                    }
                }
                SbdReport::Sent {
                    ids,
                    result: result.map_err(|e| e.to_string()),
                    credits: left,
                }
            }
        };
        if reports.send(report).is_err() {
            break;
        }
    }
    // The uplink stopped: a switched modem goes off with its port closed.
    drop(link);
    if let Some(p) = &power {
        power_down(p, &mut window, "stopped");
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
        let (requests, mut reports, task) = spawn(cfg, dir.path().join("sbd-budget"), None);
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

    fn satellite_loads() -> (power::loads::FakeSwitch, SwitchedLoads) {
        let fake = power::loads::FakeSwitch::new();
        let cfg = power::LoadsConfig {
            satellite: Some(power::loads::LoadLine {
                pin: 23,
                active_low: false,
                settle_ms: 500,
                draw_mw: 700.0,
            }),
            ..power::LoadsConfig::default()
        };
        let loads = SwitchedLoads::new(Box::new(fake.clone()), &cfg);
        (fake, loads)
    }

    #[tokio::test(start_paused = true)]
    async fn a_switched_modem_is_off_until_asked_and_off_again_when_it_cannot_open() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SbdConfig {
            port: dir.path().join("no-such-tty"),
            ..SbdConfig::default()
        };
        let (fake, loads) = satellite_loads();
        let power = SatellitePower::new(&loads, 1_000);
        assert!(power.is_some());
        let (requests, mut reports, task) = spawn(cfg, dir.path().join("sbd-budget"), power);
        // Not opened at start, not switched on.
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(reports.try_recv().is_err());
        assert!(fake.log_of(Load::Satellite).is_empty());
        // A request switches it on, waits the settle time, fails to open
        // it, and switches it off.
        let asked = Instant::now();
        requests.send(SbdRequest::Signal).await.unwrap();
        match reports.recv().await {
            Some(SbdReport::Unavailable { error }) => {
                assert!(error.contains("no-such-tty"), "{error}")
            }
            other => panic!("expected the modem unavailable, got {other:?}"),
        }
        assert!(asked.elapsed() >= Duration::from_millis(500));
        let log = fake.log_of(Load::Satellite);
        assert_eq!(log.iter().map(|s| s.on).collect::<Vec<_>>(), [true, false]);
        assert!(!loads.is_on(Load::Satellite));
        drop(requests);
        task.await.unwrap();
        assert_eq!(fake.log_of(Load::Satellite).len(), 2);
    }

    #[test]
    fn a_power_cycle_goes_through_the_satellite_load_or_is_refused_without_one() {
        let (fake, loads) = satellite_loads();
        loads.switch_on(Load::Satellite).unwrap();
        let mut switched = Cycler(Some(loads.clone()));
        switched.power_cycle().unwrap();
        let log = fake.log_of(Load::Satellite);
        assert_eq!(
            log.iter().map(|s| s.on).collect::<Vec<_>>(),
            [true, false, true]
        );
        assert!(loads.is_on(Load::Satellite));
        assert!(matches!(
            Cycler(None).power_cycle(),
            Err(PowerError::Unsupported)
        ));
    }
}
