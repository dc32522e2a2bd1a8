//! The node as a systemd service (`deploy/systemd/fieldnode.service`,
//! `docs/deploy.md`): readiness, status and stopping notifications, and a
//! watchdog that pings only while the node makes progress.
//!
//! Everything here is a no-op unless the service manager passed
//! `NOTIFY_SOCKET` (the `sd-notify` crate speaks the datagram protocol of
//! `sd_notify(3)` and reads `WATCHDOG_USEC` / `WATCHDOG_PID` as
//! `sd_watchdog_enabled(3)` documents).
//!
//! The hooks sit on the shutdown signal (`crate::shutdown`), which a run
//! creates once its store is open and which every task holds:
//! - [`Service::run_started`]: the run made its shutdown channel, so the
//!   store is open. `STATUS=`; the watchdog thread starts if
//!   `WATCHDOG_USEC` asks for one, with a probe into the run's runtime.
//! - [`Service::task_running`]: a task waits on the shutdown signal for the
//!   first time, so the sensors are open and the tasks run. `READY=1`,
//!   `STATUS=`.
//! - [`Service::stopping`]: shutdown was triggered. `STOPPING=1`,
//!   `STATUS=`; the watchdog stops pinging.
//!
//! The watchdog (`WATCHDOG=1`) runs on its own thread, on real time (a
//! replay at `--speed max` runs the node on tokio's paused clock). Every
//! half of `WATCHDOG_USEC` it decides with [`verdict`] whether the node made
//! progress since the last ping, then spawns a probe task into the node's
//! runtime for the next decision. It pings only if
//! - the event loop answered: a probe ran on the node's runtime since the
//!   last ping (a runtime whose worker threads are all stuck never runs it);
//! - no store write has been in flight since the last ping without
//!   returning: the store writer brackets each write with
//!   [`Service::store_write_started`] and [`Service::store_write_finished`]
//!   (durable or failed: a store that fails is slow to recover, not stuck,
//!   and a restart would lose the events it keeps in memory). A writer
//!   that reports nothing counts as idle.
//!
//! A withheld ping is logged once per stall; systemd restarts the node
//! when `WatchdogSec=` passes without one.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sd_notify::NotifyState;

/// What the watchdog sees of the node at one moment: counters that only
/// grow, and the state of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// `READY=1` was sent.
    pub ready: bool,
    /// Shutdown was triggered (`STOPPING=1` sent).
    pub stopping: bool,
    /// Probes the node's runtime has run.
    pub loop_answers: u64,
    /// Store writes started.
    pub store_started: u64,
    /// Store writes that returned (durable or failed).
    pub store_finished: u64,
}

/// The watchdog's decision for one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send `WATCHDOG=1`.
    Ping,
    /// Send nothing: the node has not started, or is stopping (systemd does
    /// not watch then).
    Idle,
    /// Send nothing: the node made no progress since the last ping.
    Stalled(&'static str),
}

/// Whether the node made progress between the last ping (`last`) and `now`.
/// Pure: the watchdog thread feeds it counters, the tests feed it cases.
pub fn verdict(last: &Sample, now: &Sample) -> Verdict {
    if !now.ready || now.stopping {
        return Verdict::Idle;
    }
    if now.loop_answers <= last.loop_answers {
        return Verdict::Stalled("the event loop did not run its probe");
    }
    // The same write was in flight at the last ping and still is.
    let stuck = now.store_started > now.store_finished
        && now.store_started == last.store_started
        && last.store_started > last.store_finished;
    if stuck {
        return Verdict::Stalled("a store write has not returned since the last ping");
    }
    Verdict::Ping
}

/// Where notifications go.
pub trait Notify: Send + Sync {
    /// Sends one notification (one datagram, `KEY=VALUE` lines).
    fn send(&self, state: &[NotifyState<'_>]) -> io::Result<()>;
}

/// The service manager's socket, as `NOTIFY_SOCKET` names it.
#[derive(Debug, Default)]
pub struct SdNotify;

impl Notify for SdNotify {
    fn send(&self, state: &[NotifyState<'_>]) -> io::Result<()> {
        sd_notify::notify(state)
    }
}

/// The node's service state: what was sent, the progress counters, and
/// the runtime the watchdog probes.
pub struct Service {
    sink: Option<Box<dyn Notify>>,
    watchdog: Option<Duration>,
    ready: AtomicBool,
    stopping: AtomicBool,
    watchdog_started: AtomicBool,
    loop_answers: Arc<AtomicU64>,
    store_started: AtomicU64,
    store_finished: AtomicU64,
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    /// Held while sending a ping or `STOPPING=1`: no ping follows it.
    order: Mutex<()>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("active", &self.sink.is_some())
            .field("watchdog", &self.watchdog)
            .field("sample", &self.sample())
            .finish()
    }
}

static SERVICE: OnceLock<Arc<Service>> = OnceLock::new();

/// The process's service state, read from the environment on first use:
/// active when `NOTIFY_SOCKET` is set, with a watchdog when `WATCHDOG_USEC`
/// is set (and `WATCHDOG_PID`, if set, is this process).
pub fn global() -> &'static Arc<Service> {
    SERVICE.get_or_init(|| {
        let active = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let sink: Option<Box<dyn Notify>> = active.then(|| Box::new(SdNotify) as Box<dyn Notify>);
        let watchdog = if active {
            sd_notify::watchdog_enabled()
        } else {
            None
        };
        Arc::new(Service::new(sink, watchdog))
    })
}

impl Service {
    /// A service sending to `sink` (none: every call is a no-op), with a
    /// watchdog of `watchdog` (`WATCHDOG_USEC`).
    pub fn new(sink: Option<Box<dyn Notify>>, watchdog: Option<Duration>) -> Self {
        Service {
            sink,
            watchdog: watchdog.filter(|d| !d.is_zero()),
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            watchdog_started: AtomicBool::new(false),
            loop_answers: Arc::new(AtomicU64::new(0)),
            store_started: AtomicU64::new(0),
            store_finished: AtomicU64::new(0),
            runtime: Mutex::new(None),
            order: Mutex::new(()),
        }
    }

    /// True when a service manager listens.
    pub fn is_active(&self) -> bool {
        self.sink.is_some()
    }

    /// The watchdog timeout the service manager asked for.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    fn send(&self, state: &[NotifyState<'_>]) {
        if let Some(sink) = &self.sink
            && let Err(e) = sink.send(state)
        {
            tracing::warn!(error = %e, "cannot notify the service manager");
        }
    }

    /// The run's store is open and its tasks are being started. Called from
    /// inside the run's runtime (its handle is what the watchdog probes).
    pub fn run_started(self: &Arc<Self>) {
        if !self.is_active() {
            return;
        }
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            *self.runtime.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        }
        self.send(&[NotifyState::Status("store open; starting the tasks")]);
        if let Some(timeout) = self.watchdog
            && !self.watchdog_started.swap(true, Ordering::SeqCst)
        {
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("watchdog".into())
                .spawn(move || me.watchdog_loop(timeout / 2));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start the watchdog thread; systemd will restart the node");
            }
        }
    }

    /// A task of the run is running: the node is up (`READY=1`, once).
    pub fn task_running(&self) {
        if !self.is_active() || self.ready.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(
            watchdog_ms = self.watchdog.map(|d| d.as_millis() as u64),
            "ready: notifying the service manager"
        );
        self.send(&[
            NotifyState::Ready,
            NotifyState::Status("running: sensing, detecting, storing"),
        ]);
    }

    /// Shutdown was triggered (`STOPPING=1`, once); the watchdog stops.
    pub fn stopping(&self) {
        if !self.is_active() {
            return;
        }
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        self.send(&[
            NotifyState::Stopping,
            NotifyState::Status("stopping: storing pending events"),
        ]);
    }

    /// The store writer starts a write (a batch to make durable).
    pub fn store_write_started(&self) {
        self.store_started.fetch_add(1, Ordering::SeqCst);
    }

    /// The store writer's write returned, durable or failed.
    pub fn store_write_finished(&self) {
        self.store_finished.fetch_add(1, Ordering::SeqCst);
    }

    /// The counters now.
    pub fn sample(&self) -> Sample {
        Sample {
            ready: self.ready.load(Ordering::SeqCst),
            stopping: self.stopping.load(Ordering::SeqCst),
            loop_answers: self.loop_answers.load(Ordering::SeqCst),
            store_finished: self.store_finished.load(Ordering::SeqCst),
            store_started: self.store_started.load(Ordering::SeqCst),
        }
    }

    /// Spawns a probe into the run's runtime: it counts one answer when the
    /// runtime gets to run it.
    fn probe(&self) {
        let handle = self
            .runtime
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(h) = handle {
            let answers = self.loop_answers.clone();
            // A runtime that has shut down drops the task: no answer.
            drop(h.spawn(async move {
                answers.fetch_add(1, Ordering::SeqCst);
            }));
        }
    }

    /// One tick: decides against the sample of the last ping, pings or
    /// logs a stall (once per stall), and probes for the next tick.
    /// Returns the new sample of the last ping and whether it is stalled.
    fn tick(&self, last: Sample, stalled: bool) -> (Sample, bool) {
        let now = self.sample();
        let out = match verdict(&last, &now) {
            Verdict::Ping => {
                if stalled {
                    tracing::info!("watchdog: the node makes progress again");
                }
                let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
                if !self.stopping.load(Ordering::SeqCst) {
                    self.send(&[NotifyState::Watchdog]);
                }
                (now, false)
            }
            Verdict::Idle => (last, stalled),
            Verdict::Stalled(why) => {
                if !stalled {
                    tracing::warn!(
                        reason = why,
                        "watchdog: no progress, withholding the ping (systemd restarts the node if this lasts)"
                    );
                }
                (last, true)
            }
        };
        self.probe();
        out
    }

    fn watchdog_loop(&self, every: Duration) {
        let every = every.max(Duration::from_millis(10));
        let (mut last, mut stalled) = (Sample::default(), false);
        self.probe();
        loop {
            std::thread::sleep(every);
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            (last, stalled) = self.tick(last, stalled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(loop_answers: u64, store_started: u64, store_finished: u64) -> Sample {
        Sample {
            ready: true,
            stopping: false,
            loop_answers,
            store_started,
            store_finished,
        }
    }

    #[test]
    fn pings_when_the_loop_answers_and_the_store_is_idle() {
        assert_eq!(verdict(&running(1, 0, 0), &running(2, 0, 0)), Verdict::Ping);
        assert_eq!(verdict(&running(1, 3, 3), &running(2, 3, 3)), Verdict::Ping);
    }

    #[test]
    fn pings_when_the_store_write_in_flight_started_after_the_last_ping() {
        assert_eq!(verdict(&running(1, 3, 3), &running(2, 4, 3)), Verdict::Ping);
        // A write returned and the next one is under way.
        assert_eq!(verdict(&running(1, 4, 3), &running(2, 5, 4)), Verdict::Ping);
    }

    #[test]
    fn withholds_when_the_loop_did_not_answer() {
        assert!(matches!(
            verdict(&running(2, 4, 4), &running(2, 9, 9)),
            Verdict::Stalled(_)
        ));
    }

    #[test]
    fn withholds_when_the_same_store_write_is_still_in_flight() {
        assert!(matches!(
            verdict(&running(1, 4, 3), &running(2, 4, 3)),
            Verdict::Stalled(_)
        ));
    }

    #[test]
    fn idle_before_ready_and_once_stopping() {
        let last = Sample::default();
        let mut now = running(5, 5, 5);
        now.ready = false;
        assert_eq!(verdict(&last, &now), Verdict::Idle);
        now.ready = true;
        now.stopping = true;
        assert_eq!(verdict(&last, &now), Verdict::Idle);
    }

    /// Records what would be sent.
    #[derive(Default, Clone)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Notify for Recorder {
        fn send(&self, state: &[NotifyState<'_>]) -> io::Result<()> {
            let mut v = self.0.lock().unwrap();
            v.extend(state.iter().map(|s| s.to_string()));
            Ok(())
        }
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_nothing_starts() {
        let s = Arc::new(Service::new(None, Some(Duration::from_secs(2))));
        s.run_started();
        s.task_running();
        s.stopping();
        assert!(!s.watchdog_started.load(Ordering::SeqCst));
        assert_eq!(s.sample(), Sample::default());
    }

    #[test]
    fn ready_and_stopping_are_sent_once_with_status_lines() {
        let rec = Recorder::default();
        let s = Arc::new(Service::new(Some(Box::new(rec.clone())), None));
        s.run_started();
        s.task_running();
        s.task_running();
        s.stopping();
        s.stopping();
        let sent = rec.0.lock().unwrap().clone();
        assert_eq!(
            sent,
            [
                "STATUS=store open; starting the tasks",
                "READY=1",
                "STATUS=running: sensing, detecting, storing",
                "STOPPING=1",
                "STATUS=stopping: storing pending events",
            ]
        );
    }

    /// Waits until the runtime ran a probe after `n` answers.
    async fn answered(s: &Service, n: u64) {
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while s.sample().loop_answers <= n {
            assert!(std::time::Instant::now() < until, "probe never ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_watchdog_pings_only_after_the_runtime_ran_its_probe() {
        let rec = Recorder::default();
        let s = Arc::new(Service::new(Some(Box::new(rec.clone())), None));
        *s.runtime.lock().unwrap() = Some(tokio::runtime::Handle::current());
        s.task_running();
        let pings = || {
            rec.0
                .lock()
                .unwrap()
                .iter()
                .filter(|l| *l == "WATCHDOG=1")
                .count()
        };
        // No probe answered yet: stalled, no ping; the tick sends a probe.
        let (last, stalled) = s.tick(Sample::default(), false);
        assert!(stalled);
        assert_eq!(pings(), 0);
        // The runtime runs the probe; the next tick pings.
        answered(&s, 0).await;
        let (last, stalled) = s.tick(last, stalled);
        assert!(!stalled);
        assert_eq!(pings(), 1);
        // A store write starts: the next ping still goes out (it started
        // after the last ping), the one after does not while it hangs.
        s.store_write_started();
        answered(&s, last.loop_answers).await;
        let (last, stalled) = s.tick(last, stalled);
        assert!(!stalled);
        assert_eq!(pings(), 2);
        answered(&s, last.loop_answers).await;
        let (last, stalled) = s.tick(last, stalled);
        assert!(stalled);
        assert_eq!(pings(), 2);
        // It returns (durable or failed): pings again.
        s.store_write_finished();
        let (_, stalled) = s.tick(last, stalled);
        assert!(!stalled);
        assert_eq!(pings(), 3);
    }
}
