//! When the accelerator is awake: woken by a burst, kept while bursts keep
//! coming, released after `idle_release_ms` without one.
//!
//! Time is passed in (`now`), so the node drives release from its own clock
//! and tests step it by hand. The durations in [`Counters`] are measured
//! with the real clock: they are what waking and running cost.
//!
//! A backend that fails in a way that retrying cannot fix (no library, a
//! model that does not load or does not match its specification) makes the
//! runner [`Status::Unavailable`]: later bursts fail at once with
//! [`InferError::Unavailable`] and the node classifies with its triggers
//! alone, until [`BurstRunner::retry`] (for example after a model update).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::accelerator::Accelerator;
use super::error::InferError;
use super::tensor::NamedTensors;

/// Lifecycle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// Release the accelerator after this long without a burst, milliseconds.
    pub idle_release_ms: u64,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            idle_release_ms: 30_000,
        }
    }
}

/// Whether the accelerator can classify now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Awake: a burst runs without waking first.
    Loaded,
    /// Asleep: the next burst wakes it.
    Released,
    /// It cannot run; the reason. The node uses its triggers alone.
    Unavailable(String),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Loaded => f.write_str("loaded"),
            Status::Released => f.write_str("released"),
            Status::Unavailable(reason) => write!(f, "unavailable ({reason})"),
        }
    }
}

/// What the runner has done since it was made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Successful wakes.
    pub wakes: u64,
    /// Wakes that failed.
    pub failed_wakes: u64,
    /// Releases (idle or forced).
    pub releases: u64,
    /// Batches run successfully.
    pub runs: u64,
    /// Batch rows classified successfully.
    pub rows: u64,
    /// Batches that failed (bad input or runtime failure).
    pub failed_runs: u64,
    /// Time spent waking (session creation), successful wakes only.
    pub wake_time: Duration,
    /// The last successful wake's duration.
    pub last_wake: Duration,
    /// Time spent in successful runs.
    pub run_time: Duration,
}

/// Runs bursts on an [`Accelerator`], waking and releasing it; see the module
/// documentation.
pub struct BurstRunner<A> {
    accelerator: Option<A>,
    idle_release: Duration,
    last_use: Option<Instant>,
    unavailable: Option<String>,
    counters: Counters,
}

impl<A: Accelerator> BurstRunner<A> {
    /// A runner over `accelerator`, asleep.
    pub fn new(accelerator: A, config: LifecycleConfig) -> BurstRunner<A> {
        BurstRunner {
            accelerator: Some(accelerator),
            idle_release: Duration::from_millis(config.idle_release_ms),
            last_use: None,
            unavailable: None,
            counters: Counters::default(),
        }
    }

    /// A runner whose backend could not be made (`error` says why); it stays
    /// [`Status::Unavailable`].
    pub fn without_backend(error: &InferError, config: LifecycleConfig) -> BurstRunner<A> {
        tracing::warn!(kind = error.kind(), error = %error, "inference unavailable, triggers only");
        BurstRunner {
            accelerator: None,
            idle_release: Duration::from_millis(config.idle_release_ms),
            last_use: None,
            unavailable: Some(error.to_string()),
            counters: Counters::default(),
        }
    }

    /// A runner from the result of making the backend.
    pub fn from_result(made: Result<A, InferError>, config: LifecycleConfig) -> BurstRunner<A> {
        match made {
            Ok(a) => BurstRunner::new(a, config),
            Err(e) => BurstRunner::without_backend(&e, config),
        }
    }

    /// Classifies one batch, waking the accelerator first if it sleeps.
    pub fn run_burst(
        &mut self,
        inputs: &NamedTensors,
        now: Instant,
    ) -> Result<NamedTensors, InferError> {
        if let Some(reason) = &self.unavailable {
            return Err(InferError::Unavailable(reason.clone()));
        }
        let Some(acc) = self.accelerator.as_mut() else {
            return Err(InferError::Unavailable("no backend".into()));
        };
        if !acc.is_awake() {
            let started = Instant::now();
            if let Err(e) = acc.wake() {
                self.counters.failed_wakes += 1;
                tracing::warn!(backend = acc.name(), kind = e.kind(), error = %e, "accelerator wake failed");
                if e.is_permanent() {
                    self.unavailable = Some(e.to_string());
                }
                return Err(e);
            }
            let took = started.elapsed();
            self.counters.wakes += 1;
            self.counters.wake_time += took;
            self.counters.last_wake = took;
            tracing::debug!(
                backend = acc.name(),
                wake_ms = took.as_secs_f64() * 1e3,
                "accelerator awake"
            );
        }
        self.last_use = Some(now);
        let started = Instant::now();
        match acc.run(inputs) {
            Ok(out) => {
                self.counters.run_time += started.elapsed();
                self.counters.runs += 1;
                self.counters.rows += inputs.rows().unwrap_or(0) as u64;
                Ok(out)
            }
            Err(e) => {
                self.counters.failed_runs += 1;
                if !matches!(e, InferError::BadInput(_)) {
                    // The session may be in a bad state: start afresh next burst.
                    tracing::warn!(backend = acc.name(), kind = e.kind(), error = %e, "inference run failed, releasing");
                    acc.release();
                    self.counters.releases += 1;
                }
                Err(e)
            }
        }
    }

    /// Releases the accelerator if it has been idle for `idle_release_ms`
    /// at `now`. Returns whether it released. Call it from the node's timer
    /// (see [`release_due`](Self::release_due)).
    pub fn tick(&mut self, now: Instant) -> bool {
        match self.release_due() {
            Some(due) if now >= due => {
                self.release_now();
                true
            }
            _ => false,
        }
    }

    /// When the awake accelerator becomes due for release; `None` when asleep.
    pub fn release_due(&self) -> Option<Instant> {
        let acc = self.accelerator.as_ref()?;
        if !acc.is_awake() {
            return None;
        }
        self.last_use.map(|t| t + self.idle_release)
    }

    /// Releases the accelerator now (for example before the node sleeps).
    pub fn release_now(&mut self) {
        if let Some(acc) = self.accelerator.as_mut()
            && acc.is_awake()
        {
            acc.release();
            self.counters.releases += 1;
            tracing::debug!(backend = acc.name(), "accelerator released");
        }
    }

    /// Clears an earlier permanent failure so the next burst tries to wake
    /// again (after the model or the configuration changed). A runner made
    /// without a backend stays unavailable.
    pub fn retry(&mut self) {
        if self.accelerator.is_some() {
            self.unavailable = None;
        }
    }

    /// Loaded, released or unavailable (with the reason).
    pub fn status(&self) -> Status {
        match (&self.unavailable, &self.accelerator) {
            (Some(reason), _) => Status::Unavailable(reason.clone()),
            (None, None) => Status::Unavailable("no backend".into()),
            (None, Some(acc)) if acc.is_awake() => Status::Loaded,
            (None, Some(_)) => Status::Released,
        }
    }

    /// What the runner has done so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The backend, if there is one.
    pub fn accelerator(&self) -> Option<&A> {
        self.accelerator.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::TensorF32;

    /// A test double that doubles its input `x` into output `y`, and fails
    /// when told to.
    #[derive(Default)]
    struct Doubler {
        awake: bool,
        wake_error: Option<fn() -> InferError>,
        run_error: Option<fn() -> InferError>,
        wakes: u32,
    }

    impl Accelerator for Doubler {
        fn name(&self) -> &'static str {
            "doubler"
        }
        fn wake(&mut self) -> Result<(), InferError> {
            if let Some(make) = self.wake_error {
                return Err(make());
            }
            self.wakes += 1;
            self.awake = true;
            Ok(())
        }
        fn is_awake(&self) -> bool {
            self.awake
        }
        fn run(&mut self, inputs: &NamedTensors) -> Result<NamedTensors, InferError> {
            if !self.awake {
                return Err(InferError::NotAwake);
            }
            if let Some(make) = self.run_error {
                return Err(make());
            }
            let x = inputs
                .get("x")
                .ok_or_else(|| InferError::BadInput("x".into()))?;
            let y = x.data().iter().map(|v| v * 2.0).collect();
            Ok(NamedTensors::new().with("y", TensorF32::new(x.shape().to_vec(), y)?))
        }
        fn release(&mut self) {
            self.awake = false;
        }
    }

    fn batch(rows: usize) -> NamedTensors {
        NamedTensors::new().with(
            "x",
            TensorF32::matrix(rows, 1, (0..rows).map(|i| i as f32).collect()).unwrap(),
        )
    }

    const IDLE: LifecycleConfig = LifecycleConfig {
        idle_release_ms: 1000,
    };

    #[test]
    fn wakes_on_demand_stays_awake_while_busy_and_releases_when_idle() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut r = BurstRunner::new(Doubler::default(), IDLE);
        assert_eq!(r.status(), Status::Released);
        assert_eq!(r.release_due(), None);

        let out = r.run_burst(&batch(3), ms(0)).unwrap();
        assert_eq!(out.get("y").unwrap().data(), &[0.0, 2.0, 4.0]);
        assert_eq!(r.status(), Status::Loaded);
        // Bursts 600 ms apart keep it awake past the first deadline.
        assert!(!r.tick(ms(600)));
        r.run_burst(&batch(1), ms(600)).unwrap();
        assert!(!r.tick(ms(1200)));
        assert_eq!(r.release_due(), Some(ms(1600)));
        assert!(r.tick(ms(1600)));
        assert_eq!(r.status(), Status::Released);
        assert!(!r.tick(ms(5000)));

        // The next burst wakes it again.
        r.run_burst(&batch(2), ms(6000)).unwrap();
        let c = r.counters();
        assert_eq!(
            (c.wakes, c.runs, c.rows, c.releases, c.failed_runs),
            (2, 3, 6, 1, 0)
        );
        assert_eq!(r.accelerator().unwrap().wakes, 2);
    }

    #[test]
    fn a_permanent_wake_failure_makes_it_unavailable_until_retry() {
        let mut r = BurstRunner::new(
            Doubler {
                wake_error: Some(|| InferError::ModelMismatch {
                    path: "m.onnx".into(),
                    problems: vec!["input `x` is not in the model".into()],
                }),
                ..Doubler::default()
            },
            IDLE,
        );
        let now = Instant::now();
        assert!(matches!(
            r.run_burst(&batch(1), now),
            Err(InferError::ModelMismatch { .. })
        ));
        match r.status() {
            Status::Unavailable(reason) => assert!(reason.contains("input `x`"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r.run_burst(&batch(1), now),
            Err(InferError::Unavailable(_))
        ));
        assert_eq!(r.counters().failed_wakes, 1);
        r.retry();
        assert_eq!(r.status(), Status::Released);
    }

    #[test]
    fn a_runtime_failure_releases_but_bad_input_does_not() {
        let mut r = BurstRunner::new(Doubler::default(), IDLE);
        let now = Instant::now();
        r.run_burst(&batch(1), now).unwrap();
        let wrong = NamedTensors::new().with("z", TensorF32::matrix(1, 1, vec![1.0]).unwrap());
        assert!(matches!(
            r.run_burst(&wrong, now),
            Err(InferError::BadInput(_))
        ));
        assert_eq!(r.status(), Status::Loaded);

        r.accelerator.as_mut().unwrap().run_error = Some(|| InferError::Run("boom".into()));
        assert!(matches!(
            r.run_burst(&batch(1), now),
            Err(InferError::Run(_))
        ));
        assert_eq!(r.status(), Status::Released);
        assert_eq!(r.counters().failed_runs, 2);
    }

    #[test]
    fn a_runner_without_backend_says_why() {
        let err = InferError::NoLibraryLocation;
        let mut r: BurstRunner<Doubler> = BurstRunner::from_result(Err(err), IDLE);
        match r.status() {
            Status::Unavailable(reason) => assert!(reason.contains("ORT_DYLIB_PATH"), "{reason}"),
            other => panic!("{other:?}"),
        }
        r.retry();
        assert!(matches!(r.status(), Status::Unavailable(_)));
        assert!(matches!(
            r.run_burst(&batch(1), Instant::now()),
            Err(InferError::Unavailable(_))
        ));
    }
}
