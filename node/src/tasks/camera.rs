//! The camera task: captures frames at the cadence the power policy allows,
//! and marks the camera unavailable while the policy has it off or the
//! device is out (a transient error: the driver retries at the next frame).
//! A device that blocks is called on tokio's blocking pool.
//!
//! On demand (the policy's [`PowerStatus::camera_hold_ms`], saver mode by
//! default) the camera is off unless a request ([`CameraDemand`]: audio
//! activity, the wake line) came within the hold time; it is switched on at
//! the first request and off at the first frame time after the hold. While
//! the camera is off, by the policy or on demand, the device is closed
//! ([`Camera::standby`]), its load switch (`[power.loads.camera]`, when
//! there is one) is off, and the detector sees the camera as unavailable
//! (a missing modality, not a frozen image). Switched on again, the load is
//! given its settle time before the first capture.

use std::sync::Arc;

use fusion::Modality;
use power::{Load, PowerStatus, Step, SwitchedLoads};
use tokio::sync::{mpsc, watch};

use super::demand::CameraDemand;
use super::{Counters, SensorMsg};
use crate::clock::Clock;
use crate::sensors::Camera;
use crate::shutdown::Shutdown;

/// Where the camera task stops on its own.
#[derive(Debug, Clone, Copy)]
pub struct CameraPlan {
    /// Time of the first capture. Captures happen at scheduled times, not at
    /// whatever time the task wakes up, so replays are exact at any speed.
    pub first_ms: i64,
    /// Stop at this time (the end of a replayed scene), if any.
    pub until_ms: Option<i64>,
    /// How often to look at the policy again while the camera is off, ms.
    pub recheck_ms: u64,
}

/// Captures one frame, on the blocking pool if the device blocks.
pub(crate) async fn capture<C: Camera>(
    camera: &Arc<std::sync::Mutex<C>>,
    t_ms: i64,
) -> Result<Option<fusion::GrayFrame>, crate::sensors::SensorError> {
    let lock = move |c: &std::sync::Mutex<C>| -> Result<Option<fusion::GrayFrame>, crate::sensors::SensorError> {
        let mut g = c.lock().unwrap_or_else(|p| p.into_inner());
        g.capture(t_ms)
    };
    let blocking = camera.lock().unwrap_or_else(|p| p.into_inner()).blocking();
    if !blocking {
        return lock(camera);
    }
    let c = camera.clone();
    match tokio::task::spawn_blocking(move || lock(&c)).await {
        Ok(r) => r,
        Err(e) => Err(crate::sensors::SensorError::Unavailable {
            sensor: "camera",
            reason: format!("capture did not complete: {e}"),
        }),
    }
}

/// What the camera task drives besides the device.
#[derive(Clone, Default)]
pub struct CameraPower {
    /// Requests it answers when the camera is on demand.
    pub demand: Arc<CameraDemand>,
    /// The loads, when `[power.loads]` has any: the camera's line (if
    /// configured) is switched with the camera.
    pub loads: Option<SwitchedLoads>,
}

impl CameraPower {
    fn switched(&self) -> Option<&SwitchedLoads> {
        self.loads.as_ref().filter(|l| l.has(Load::Camera))
    }
}

/// Closes the device before its power goes, on the blocking pool if it
/// blocks.
async fn standby<C: Camera>(camera: &Arc<std::sync::Mutex<C>>) {
    let blocking = camera.lock().unwrap_or_else(|p| p.into_inner()).blocking();
    let c = camera.clone();
    let close = move || c.lock().unwrap_or_else(|p| p.into_inner()).standby();
    if blocking {
        let _ = tokio::task::spawn_blocking(close).await;
    } else {
        close();
    }
}

/// What the policy and the requests ask of the camera at one time.
enum Want {
    /// Frames at this interval, ms; `demand`: on demand.
    On { interval: u64, demand: bool },
    /// Off by the policy, and why.
    Off(String),
    /// On demand and not asked for.
    Idle,
}

fn wanted(status: &PowerStatus, demand: &CameraDemand, now: i64) -> Want {
    match (status.decide(Step::CameraFrame), status.camera_interval_ms) {
        (power::Decision::Allow, Some(interval)) => match status.camera_hold_ms {
            None => Want::On {
                interval,
                demand: false,
            },
            Some(hold_ms) => match demand.last_ms() {
                Some(t) if now < t.saturating_add(hold_ms as i64) => Want::On {
                    interval,
                    demand: true,
                },
                _ => Want::Idle,
            },
        },
        (power::Decision::Deny(why), _) => Want::Off(why),
        (power::Decision::Allow, None) => Want::Off("no camera cadence".into()),
    }
}

/// Runs until the camera ends, fails for good, the plan's end, or shutdown.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    camera: impl Camera,
    tx: mpsc::Sender<SensorMsg>,
    clock: Arc<dyn Clock>,
    power: watch::Receiver<PowerStatus>,
    counters: Arc<Counters>,
    plan: CameraPlan,
    switching: CameraPower,
    mut shutdown: Shutdown,
) {
    let camera = Arc::new(std::sync::Mutex::new(camera));
    let mut on = true;
    let mut device_ok = true;
    // Whether the frames say the exposure they were taken with (logged
    // when it changes: the sun test needs it with auto-exposure).
    let mut exposure_reported: Option<bool> = None;
    let mut now = plan.first_ms;
    clock.sleep_until(now).await;
    loop {
        if plan.until_ms.is_some_and(|end| now >= end) {
            let _ = tx.send(SensorMsg::Closed(Modality::Camera)).await;
            return;
        }
        let status = power.borrow().clone();
        let want = wanted(&status, &switching.demand, now);
        let next = match &want {
            Want::On { interval, demand } => {
                let interval = *interval;
                if !on {
                    on = true;
                    if *demand {
                        Counters::add(&counters.camera_demand_wakes, 1);
                    }
                    if let Some(loads) = switching.switched() {
                        // Failures are logged and counted by the loads; the
                        // capture then tells whether the camera is there.
                        tokio::select! {
                            _ = shutdown.wait() => return,
                            _ = loads.power_on(Load::Camera) => {}
                        }
                        now = now.max(clock.now_ms());
                    }
                    tracing::info!(
                        sensor = "camera",
                        mode = status.mode.as_str(),
                        interval_ms = interval,
                        on_demand = *demand,
                        "camera back on"
                    );
                    if device_ok
                        && tx
                            .send(SensorMsg::Available(Modality::Camera, true))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                // A capture stuck in the driver must not hold up shutdown.
                let captured = tokio::select! {
                    _ = shutdown.wait() => return,
                    r = capture(&camera, now) => r,
                };
                match captured {
                    Ok(Some(frame)) => {
                        Counters::add(&counters.camera_frames, 1);
                        let reported = frame.exposure.is_some();
                        if exposure_reported.replace(reported) != Some(reported) {
                            if reported {
                                tracing::info!(
                                    sensor = "camera",
                                    "frames carry the camera's exposure"
                                );
                            } else {
                                tracing::info!(
                                    sensor = "camera",
                                    "frames carry no exposure: the sun test sees only their brightness"
                                );
                            }
                        }
                        if !device_ok {
                            device_ok = true;
                            if tx
                                .send(SensorMsg::Available(Modality::Camera, true))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        if tx.send(SensorMsg::Frame(frame)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.is_transient() => {
                        Counters::add(&counters.sensor_errors, 1);
                        if device_ok {
                            device_ok = false;
                            tracing::warn!(sensor = "camera", error = %e, "camera out; detecting without it until it is back");
                            if tx
                                .send(SensorMsg::Available(Modality::Camera, false))
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                    Ok(None) => {
                        tracing::info!(sensor = "camera", "stream ended");
                        let _ = tx.send(SensorMsg::Closed(Modality::Camera)).await;
                        return;
                    }
                    Err(e) => {
                        Counters::add(&counters.sensor_errors, 1);
                        tracing::error!(sensor = "camera", error = %e, "camera failed; detection goes on without it");
                        let _ = tx.send(SensorMsg::Closed(Modality::Camera)).await;
                        return;
                    }
                }
                now + interval as i64
            }
            Want::Off(_) | Want::Idle => {
                Counters::add(&counters.camera_skipped, 1);
                if on {
                    on = false;
                    // Unavailable from now on whatever the device does; the
                    // device's state is known again at the next capture.
                    device_ok = true;
                    match &want {
                        Want::Off(reason) => {
                            tracing::warn!(step = Step::CameraFrame.as_str(), reason = %reason, "skipping camera frames")
                        }
                        _ => tracing::info!(
                            sensor = "camera",
                            mode = status.mode.as_str(),
                            hold_ms = status.camera_hold_ms.unwrap_or(0),
                            "camera off until audio or the wake line asks for it"
                        ),
                    }
                    standby(&camera).await;
                    if let Some(loads) = switching.switched() {
                        let _ = loads.power_off(Load::Camera);
                    }
                    if tx
                        .send(SensorMsg::Available(Modality::Camera, false))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                now + plan.recheck_ms as i64
            }
        };
        let idle = matches!(want, Want::Idle);
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = clock.sleep_until(next) => now = next,
            _ = switching.demand.requested(), if idle => now = now.max(clock.now_ms()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use fusion::GrayFrame;
    use power::loads::{FakeInput, FakeSwitch, LoadLine, Pull};
    use power::{LoadsConfig, PolicyConfig, PowerPolicy, PowerReading};

    use super::*;
    use crate::clock::ReplayClock;
    use crate::sensors::SensorError;
    use crate::sensors::health::HealthBoard;
    use crate::tasks::demand::DemandSource;

    /// A camera that hands out a frame for each capture and notes, on the
    /// node's clock, when it was put in standby.
    struct FakeCamera {
        clock: Arc<dyn Clock>,
        standbys: Arc<Mutex<Vec<i64>>>,
    }

    impl Camera for FakeCamera {
        fn capture(&mut self, t_ms: i64) -> Result<Option<GrayFrame>, SensorError> {
            Ok(Some(GrayFrame {
                t_ms,
                width: 4,
                height: 4,
                luma: vec![100; 16],
                exposure: None,
            }))
        }

        fn standby(&mut self) {
            self.standbys.lock().unwrap().push(self.clock.now_ms());
        }
    }

    fn status(soc: f64) -> PowerStatus {
        PowerPolicy::new(PolicyConfig::default()).update(PowerReading {
            t_ms: 0,
            soc,
            solar_w: 0.0,
            load_w: 3.0,
            battery_mv: None,
        })
    }

    struct Rig {
        clock: Arc<dyn Clock>,
        fake: FakeSwitch,
        loads: SwitchedLoads,
        demand: Arc<CameraDemand>,
        counters: Arc<Counters>,
        standbys: Arc<Mutex<Vec<i64>>>,
    }

    /// The camera behind a load switch with a 1.5 s settle time, switched
    /// on for the run at 0 as the node does before opening devices.
    fn rig() -> Rig {
        let fake = FakeSwitch::new();
        let cfg = LoadsConfig {
            camera: Some(LoadLine {
                pin: 27,
                active_low: false,
                settle_ms: 1_500,
                draw_mw: 1_000.0,
            }),
            ..LoadsConfig::default()
        };
        let loads = SwitchedLoads::new(Box::new(fake.clone()), &cfg);
        assert!(loads.switch_on(Load::Camera).is_ok());
        Rig {
            clock: Arc::new(ReplayClock::new(0, 1.0)),
            fake,
            loads,
            demand: Arc::new(CameraDemand::default()),
            counters: Arc::new(Counters::default()),
            standbys: Arc::default(),
        }
    }

    /// Runs the camera task to `until_ms` with `status` published; what it
    /// sent, as (clock time, message).
    async fn run_camera(r: &Rig, status: PowerStatus, until_ms: i64) -> Vec<(i64, String)> {
        let (_ptx, prx) = watch::channel(status);
        let (tx, mut rx) = mpsc::channel(16);
        let (_trigger, shutdown) = crate::shutdown::channel();
        let camera = FakeCamera {
            clock: r.clock.clone(),
            standbys: r.standbys.clone(),
        };
        let task = tokio::spawn(run(
            camera,
            tx,
            r.clock.clone(),
            prx,
            r.counters.clone(),
            CameraPlan {
                first_ms: 0,
                until_ms: Some(until_ms),
                recheck_ms: 5_000,
            },
            CameraPower {
                demand: r.demand.clone(),
                loads: Some(r.loads.clone()),
            },
            shutdown,
        ));
        let mut out = Vec::new();
        while let Some(m) = rx.recv().await {
            let what = match m {
                SensorMsg::Frame(f) => format!("frame {}", f.t_ms),
                SensorMsg::Available(m, a) => format!("{} {a}", m.as_str()),
                SensorMsg::Closed(m) => format!("closed {}", m.as_str()),
                other => format!("{other:?}"),
            };
            out.push((r.clock.now_ms(), what));
        }
        task.await.unwrap();
        out
    }

    fn switchings(r: &Rig) -> Vec<(u64, bool)> {
        let t0 = r.fake.log()[0].at;
        r.fake
            .log_of(Load::Camera)
            .iter()
            .map(|s| ((s.at - t0).as_millis() as u64, s.on))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn in_saver_mode_the_camera_is_off_until_audio_asks_then_on_for_the_hold_after_its_settle_time()
     {
        let r = rig();
        let (clock, demand, counters) = (r.clock.clone(), r.demand.clone(), r.counters.clone());
        let asker = tokio::spawn(async move {
            clock.sleep_until(10_000).await;
            demand.request(DemandSource::Audio, 10_000, &counters);
        });
        let msgs = run_camera(&r, status(0.3), 60_000).await;
        asker.await.unwrap();
        // Off at the start (device closed first), on at the request, the
        // first frame after the 1.5 s settle time, off at the first frame
        // time after the 30 s hold.
        assert_eq!(
            switchings(&r),
            [(0, true), (0, false), (10_000, true), (41_500, false)]
        );
        assert_eq!(*r.standbys.lock().unwrap(), [0, 41_500]);
        let frames: Vec<i64> = msgs
            .iter()
            .filter_map(|(_, m)| m.strip_prefix("frame ")?.parse().ok())
            .collect();
        assert_eq!(
            frames,
            (0..15).map(|k| 11_500 + k * 2_000).collect::<Vec<_>>()
        );
        let avail: Vec<_> = msgs
            .iter()
            .filter(|(_, m)| !m.starts_with("frame "))
            .cloned()
            .collect();
        assert_eq!(
            avail,
            [
                (0, "camera false".to_string()),
                (11_500, "camera true".to_string()),
                (41_500, "camera false".to_string()),
                (61_500, "closed camera".to_string()),
            ]
        );
        assert_eq!(Counters::get(&r.counters.camera_demand_wakes), 1);
        assert_eq!(Counters::get(&r.counters.camera_frames), 15);
        let c = &r.loads.report().loads["camera"];
        assert_eq!((c.wakes, c.on_ms), (2, 31_500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pir_on_the_wake_line_turns_the_camera_on() {
        let r = rig();
        let pir = FakeInput::new();
        let (trigger, shutdown) = crate::shutdown::channel();
        let line = tokio::spawn(crate::tasks::wake_line::run(
            Box::new(pir.clone()),
            power::loads::InputLineConfig {
                pin: 22,
                active_low: false,
                pull: Pull::Down,
                poll_ms: 50,
                debounce_ms: 100,
            },
            r.demand.clone(),
            r.clock.clone(),
            r.counters.clone(),
            HealthBoard::default().sensor("wake_line"),
            shutdown,
        ));
        let clock = r.clock.clone();
        let walker = tokio::spawn(async move {
            clock.sleep_until(20_000).await;
            pir.set(true);
            clock.sleep_until(23_000).await;
            pir.set(false);
        });
        let msgs = run_camera(&r, status(0.3), 40_000).await;
        walker.await.unwrap();
        trigger.trigger();
        line.await.unwrap();
        // Asserted at 20 s, debounced by 20.1 s: on then, frames from
        // 21.6 s, still on at the end of the run.
        assert_eq!(switchings(&r), [(0, true), (0, false), (20_100, true)]);
        assert_eq!(
            msgs.iter().find(|(_, m)| m.starts_with("frame ")),
            Some(&(21_600, "frame 21600".to_string()))
        );
        assert_eq!(Counters::get(&r.counters.wake_line_triggers), 1);
        assert_eq!(Counters::get(&r.counters.camera_requests_wake_line), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn in_normal_mode_the_camera_runs_at_its_cadence_whatever_the_requests() {
        let r = rig();
        r.demand.request(DemandSource::Audio, 0, &r.counters);
        let msgs = run_camera(&r, status(0.9), 10_000).await;
        let frames = msgs.iter().filter(|(_, m)| m.starts_with("frame ")).count();
        assert_eq!(frames, 20);
        assert!(msgs.iter().all(|(_, m)| m != "camera false"), "{msgs:?}");
        assert_eq!(switchings(&r), [(0, true)]);
        assert!(r.standbys.lock().unwrap().is_empty());
        assert_eq!(Counters::get(&r.counters.camera_demand_wakes), 0);
    }
}
