//! Wiring: builds the tasks for a scene replay, runs them until the scene
//! ends or shutdown, and reports what happened.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fusion::{Detector, Modality};
use power::{PowerPolicy, PowerSource, SimulatedSupply};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use uplink::EventStore;

use crate::clock::Clock;
use crate::config::{Config, PowerSourceKind};
use crate::scene::{Scene, SceneError};
use crate::sensors::health::{HealthBoard, SensorStatus};
use crate::shutdown;
use crate::tasks::store::OnStored;
use crate::tasks::{self, Counters, camera::CameraPlan, detect::DetectStage};

/// Why the node could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The scene is missing or malformed.
    #[error(transparent)]
    Scene(#[from] SceneError),
    /// The data directory cannot be created or used.
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The store cannot be opened.
    #[error("event store: {0}")]
    Store(#[from] uplink::StoreError),
    /// A file named in `[fusion]` cannot be used.
    #[error("[fusion] {what} {}: {source}", path.display())]
    Fusion {
        /// Which setting.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A task panicked (a bug).
    #[error("internal error: {0}")]
    Task(String),
}

/// What a run did, printed at the end.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Time covered (scene time for a replay), milliseconds.
    pub scene_ms: i64,
    /// Events made durable in this run, by class.
    pub stored_by_class: BTreeMap<String, u64>,
    /// Events made durable in this run.
    pub stored: u64,
    /// Events detected but not stored (store failing at shutdown).
    pub unstored: u64,
    /// Events in the store after the run.
    pub store_total: usize,
    /// Set when a corrupt store was moved aside at start.
    pub store_quarantined: Option<PathBuf>,
    /// Audio captured, seconds.
    pub audio_s: f64,
    /// Camera frames captured.
    pub camera_frames: u64,
    /// Camera frames skipped by the power policy.
    pub camera_skipped: u64,
    /// Duty-cycling while awake: the microphone's stops, the on-demand
    /// camera's requests and wakes, the wake line's rises.
    pub duty: crate::tasks::DutyReport,
    /// Climate readings taken.
    pub climate_readings: u64,
    /// Inference bursts run / skipped by the power policy.
    pub bursts: u64,
    /// Inference bursts skipped by the power policy.
    pub bursts_skipped: u64,
    /// Inference bursts that failed (events kept the triggers' class).
    pub bursts_failed: u64,
    /// Events not stored: class excluded (`[fusion] exclude`).
    pub events_excluded: u64,
    /// Events not stored: background by the triggers' rules, with no model
    /// verdict (`[detector.merge] report_background`).
    pub background_dropped: u64,
    /// Events the model classified below their class's threshold
    /// (`[fusion] thresholds`), or on the climate alone for what the
    /// triggers' rules call background: stored as `unknown`, unless joined
    /// to a surer event of their bout or counted in `uncertain_background`.
    pub events_uncertain: u64,
    /// Of those, events that the triggers' rules call background, not
    /// stored (`[fusion] store_uncertain_background`).
    pub uncertain_background: u64,
    /// Events cut at `[detector.merge] max_event_ms`: a sign that something
    /// kept the triggers on.
    pub events_cut_at_max: u64,
    /// Heat rises with nothing heard or seen that came after the camera's
    /// view brightened: the sun on the enclosure, not stored
    /// (`[detector.climate] sun_brightening`).
    pub sun_heat_rises: u64,
    /// Events joined to the previous event of their class, stored as one
    /// (`[fusion] join_gap_ms`).
    pub events_joined: u64,
    /// Sensor failures.
    pub sensor_errors: u64,
    /// Updates installed in this run (models after their trial, settings).
    pub updates_installed: u64,
    /// Updates refused or rolled back in this run.
    pub updates_refused: u64,
    /// The same, by result and reason code (`refused.signatures`,
    /// `rolled_back.self_test`, ...).
    pub updates_refused_by: std::collections::BTreeMap<String, u64>,
    /// Times an offer was deferred by the power policy or the temperature.
    pub updates_deferred: u64,
    /// The last update result on record.
    pub update_last: Option<crate::update::Outcome>,
    /// Power mode at the end.
    pub power_mode: String,
    /// Battery state of charge at the end, 0..1.
    pub battery_soc: f64,
    /// Sensors absent in this run.
    pub absent_sensors: Vec<String>,
    /// Each sensor's health at the end, errors by kind, outages.
    pub sensors: BTreeMap<String, SensorStatus>,
    /// Bytes this process caused to be written to storage (Linux
    /// `/proc/self/io` `write_bytes`), when the kernel reports it.
    pub io_write_bytes: Option<u64>,
    /// What the uplink did, when it ran (`[uplink] enabled`).
    pub uplink: Option<crate::uplink::UplinkOutcome>,
    /// The run stopped because a technician asked for a reboot over the
    /// field link (`fieldnode run` then exits with
    /// [`crate::fieldlink::REBOOT_EXIT_CODE`]).
    pub reboot_requested: bool,
    /// How far the clock could be trusted (hardware mode; a replayed scene
    /// runs on scene time).
    pub clock: Option<crate::timekeeping::ClockReport>,
    /// The gpsd link, when `[time.gpsd]` names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gnss: Option<crate::timekeeping::gpsd::GnssReport>,
    /// The switched loads, when `[power.loads]` configures any: per load,
    /// switch-ons (`wakes`), failures, time on and its energy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loads: Option<power::LoadsReport>,
    /// How this start began (an RTC wake, the wake line, a cold boot) and
    /// the last deep sleep.
    pub boot: crate::sleep::BootReport,
    /// Set when the run ended in a deep sleep the power policy called: the
    /// planned wake, and whether the board was halted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleep: Option<crate::sleep::SleepOutcome>,
}

/// `write_bytes` of `/proc/self/io`: bytes this process sent to the block layer.
fn io_write_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Creates the data directory (durably: its entry survives a power cut) and
/// opens the store in it.
pub fn open_store(
    data_dir: &Path,
    cfg: &Config,
) -> Result<(EventStore, uplink::OpenReport), NodeError> {
    uplink::store::durable::create_dir_durably(data_dir).map_err(|e| NodeError::DataDir {
        path: data_dir.to_path_buf(),
        source: e,
    })?;
    let (store, report) =
        EventStore::open_with(&data_dir.join("store"), &cfg.store, cfg.outbox.clone())?;
    if let Some(q) = &report.quarantined {
        tracing::error!(moved_to = %q.display(), reason = report.reason.as_deref().unwrap_or(""), restored_from_journal = report.restored.len(), "event store was corrupt: moved aside, starting a fresh one refilled from the journal");
    }
    tracing::info!(path = %data_dir.join("store").display(), events = report.stored, next_id = report.next_id, restored_from_journal = report.restored.len(), "event store open");
    Ok((store, report))
}

/// Where a run's sensor data comes from.
pub enum Source<'a> {
    /// A scene replayed as simulated hardware; the run ends with the scene.
    Scene(&'a Scene),
    /// The real devices; the run ends on `stop`.
    Hardware,
}

/// Replays `scene` through the whole pipeline into the store under
/// `cfg.node.data_dir`, until the scene ends (with `cfg.scene.exit_at_end`)
/// or `stop` completes. Every event reported to `on_stored` is durable.
pub async fn run_scene(
    cfg: &Config,
    scene: &Scene,
    clock: Arc<dyn Clock>,
    stop: impl Future<Output = ()> + Send,
    on_stored: OnStored,
) -> Result<RunSummary, NodeError> {
    run_node(cfg, Source::Scene(scene), clock, stop, on_stored).await
}

/// Runs the whole pipeline on `source` into the store under
/// `cfg.node.data_dir`, until a replayed scene ends (with
/// `cfg.scene.exit_at_end`) or `stop` completes. Every event reported to
/// `on_stored` is durable.
pub async fn run_node(
    cfg: &Config,
    source: Source<'_>,
    clock: Arc<dyn Clock>,
    stop: impl Future<Output = ()> + Send,
    on_stored: OnStored,
) -> Result<RunSummary, NodeError> {
    let (store, report) = open_store(&cfg.node.data_dir, cfg)?;
    let store = Arc::new(store);
    let judged_clock = clock.clone();
    // Signed updates: the installed settings patch applies over the
    // configuration, and an installed model replaces the configured one.
    let installer = crate::update::Installer::open(cfg, clock.now_ms());
    // The configuration file's, which the field link compares and changes.
    let file_cfg = cfg.clone();
    let patched;
    let cfg: &Config = match installer.settings_patch() {
        Some(patch) => {
            let mut c = cfg.clone();
            crate::update::install::apply_patch(&mut c, &patch);
            let errors = c.validate();
            if errors.0.is_empty() {
                tracing::info!(
                    version = installer.state().settings_version,
                    "settings from a signed update applied"
                );
                patched = c;
                &patched
            } else {
                tracing::error!(errors = %errors, "the installed settings do not fit this configuration; ignored");
                cfg
            }
        }
        None => cfg,
    };
    let (start_ms, end_ms) = match &source {
        Source::Scene(scene) => (
            scene.meta.start_ms,
            Some(scene.meta.start_ms + scene.duration_ms * i64::from(cfg.scene.loops.max(1))),
        ),
        Source::Hardware => (clock.now_ms(), None),
    };
    let counters = Arc::new(Counters::default());
    let (trigger, shutdown) = shutdown::channel();
    let board = HealthBoard::default();

    // Power: the first status is known before any sensor starts.
    let mut supply: Box<dyn PowerSource> = match cfg.power.source {
        PowerSourceKind::Simulated => Box::new(SimulatedSupply::new(cfg.power.simulation.clone())),
        PowerSourceKind::Monitor => {
            Box::new(crate::hardware::open_power_monitors(&cfg.power.monitor))
        }
        PowerSourceKind::Sysfs => Box::new(crate::hardware::open_sysfs_supply(&cfg.power.sysfs)),
    };
    let mut policy = PowerPolicy::new(cfg.power.policy.clone());
    // Deep sleep: how this start began, before the first reading.
    let hardware = matches!(source, Source::Hardware);
    let boot = crate::sleep::on_boot(
        &cfg.node.data_dir,
        &cfg.power.sysfs.root,
        clock.now_ms(),
        crate::hardware::read_wake_line(&cfg.power.sleep, hardware),
        cfg.power.sleep.wake_tolerance_s,
    );
    if boot.resumed {
        policy.resumed_from_sleep();
    }
    policy.set_listening(Some(cfg.power.sleep.listening()));
    // The energy ledger: this start's boot, and the sleep it ended.
    let energy = Arc::new(tasks::energy::EnergyBook::new(
        cfg.power.costs.clone(),
        !matches!(cfg.power.source, PowerSourceKind::Simulated),
    ));
    energy.record(&power::Actions {
        boots: 1,
        halted_s: match (boot.resumed, boot.last_sleep) {
            (true, Some(s)) => f64::from(s.slept_s),
            _ => 0.0,
        },
        ..power::Actions::default()
    });
    let sleep_request = Arc::new(crate::sleep::SleepRequest::default());
    let power_start_ms = clock.now_ms();
    let first = tasks::power::initial_status(supply.as_mut(), &mut policy, power_start_ms);
    tracing::info!(mode = first.mode.as_str(), soc = first.reading.soc, "power");
    let (power_tx, power_rx) = watch::channel(first);

    // Switched loads: the ones on for the whole run are powered (and
    // settled) before anything opens a device or the uplink starts.
    // A modem that carries MQTT is powered for upload windows only.
    let loads = crate::hardware::open_loads(&cfg.power.loads, matches!(source, Source::Hardware));
    let _loads_off = loads.clone().map(crate::loads::OffOnDrop);
    if let Some(l) = &loads {
        energy.count_loads(l);
    }
    let modem_windows = cfg.uplink.enabled && cfg.uplink.mqtt.is_some();
    if let Some(l) = &loads {
        crate::loads::power_up_always_on(l, modem_windows).await;
    }

    // Updates: one pass over the drop folder before the sensors start, so a
    // bundle that waited for a restart is handled before the first event.
    let (swap_tx, swap_rx) = mpsc::channel(1);
    let updates_on = installer.trust().is_ok();
    let installed_manifest = installer.active_manifest();
    let installer = Arc::new(std::sync::Mutex::new(installer));
    let mut updater = updates_on.then(|| {
        crate::update::task::Updater::new(
            installer.clone(),
            cfg.node.data_dir.join("incoming"),
            cfg.update.scan_interval_ms,
            power_rx.clone(),
            swap_tx,
            clock.clone(),
            counters.clone(),
        )
    });
    // The board's SoC temperature: under the fuel gauge's sysfs root when
    // the power readings come from sysfs (a test's fake tree), otherwise
    // the kernel's. It gates installs and goes into status records.
    let soc_thermal_zone = match cfg.power.source {
        PowerSourceKind::Sysfs => power::sysfs::soc_thermal_zone(&cfg.power.sysfs.root),
        _ => std::path::PathBuf::from(crate::uplink::status::BOARD_THERMAL_ZONE),
    };
    if let Some(u) = updater.as_mut() {
        u.set_soc_thermal_zone(soc_thermal_zone.clone());
    }
    // Uplink: status records and forwarding the outbox (its own thread).
    let shared = Arc::new(crate::uplink::SharedState::default());
    shared.set_last_sleep(boot.last_sleep);
    let status_source = crate::uplink::StatusSource {
        node_id: cfg.node.id.clone(),
        board: board.clone(),
        power: power_rx.clone(),
        store: store.clone(),
        shared: shared.clone(),
        started_ms: clock.now_ms(),
        thermal_zone: soc_thermal_zone,
        counters: counters.clone(),
        clock: Some(clock.clone()),
    };
    // Update results reach the operator as status records (and on the
    // MQTT `update/status` topic); every status record carries the
    // installed versions and the last result.
    shared
        .update
        .set_status(crate::update::report::update_status(
            installer.lock().unwrap_or_else(|e| e.into_inner()).state(),
        ));
    // Settings installed while the node runs apply to the detect and power
    // tasks at once.
    let (live_tx, live_rx) = crate::update::live::channel();
    // Bundles pushed over the field link reach the same update task.
    let handoff = updater
        .as_ref()
        .map(|_| Arc::new(crate::update::handoff::Handoff::default()));
    let first_trial = match updater.as_mut() {
        Some(u) => {
            if let Some(h) = &handoff {
                u.set_handoff(h.clone());
            }
            u.set_live_settings(live_tx.clone());
            let reporter = crate::update::report::Reporter::new(status_source.clone());
            u.set_reporter(reporter).await;
            u.pass().await
        }
        None => None,
    };
    let reboot = Arc::new(crate::fieldlink::RebootRequest::default());
    let config_text = cfg
        .fieldlink
        .config_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    let in_force = Arc::new(crate::update::live::ConfigInForce::new(
        file_cfg,
        config_text,
        Some(live_tx),
        Some(installer.clone()),
    ));
    let _metrics = crate::metrics::start_if_configured(
        &cfg.metrics,
        &status_source,
        crate::uplink::NodeTime::current(clock.clone()),
    )
    .await
    .map(crate::metrics::StopOnDrop);
    let _fieldlink = crate::fieldlink::FieldLink::start_if_configured(
        cfg,
        in_force,
        &status_source,
        clock.clone(),
        reboot.clone(),
        handoff,
    );
    // A start that ends a sleep reports it at once: the node may sleep
    // again before the next periodic status record.
    if boot.resumed && cfg.uplink.enabled {
        let source = status_source.clone();
        let now = clock.now_ms();
        match tokio::task::spawn_blocking(move || source.append(now)).await {
            Ok(Ok(r)) => {
                tracing::info!(target: "sleep", id = r.id, "status record with the sleep stored")
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot store the status record of the sleep")
            }
            Err(e) => tracing::error!(error = %e, "status record worker failed"),
        }
    }
    let uplink = if cfg.uplink.enabled {
        let mut ucfg = cfg.uplink.clone();
        ucfg.mqtt = cfg.uplink.mqtt_for(&cfg.node.id);
        match crate::uplink::UplinkHandle::start(crate::uplink::UplinkParts {
            cfg: ucfg,
            store: store.clone(),
            power: power_rx.clone(),
            status: status_source.clone(),
            time: crate::uplink::NodeTime::current(clock.clone()),
            incoming: cfg.node.data_dir.join("incoming"),
            update_cap: cfg.update.max_bundle_bytes,
            loads: loads.clone(),
            sys_root: cfg.power.sysfs.root.clone(),
        }) {
            Ok(u) => {
                shared.uplink.set_waker(u.waker());
                Some(u)
            }
            Err(e) => {
                tracing::error!(error = %e, "uplink not started: events are stored but not forwarded");
                None
            }
        }
    } else {
        None
    };
    let on_stored: OnStored = {
        let mut on_stored = on_stored;
        let wake = uplink.as_ref().map(|u| u.waker());
        let shared = shared.clone();
        let clock = clock.clone();
        Box::new(move |r| {
            shared.saw_model(r.model);
            clock.event_stored(r.start_ms);
            if let Some(w) = &wake {
                w.notify_one();
            }
            on_stored(r)
        })
    };

    let (sensor_tx, sensor_rx) = mpsc::channel(64);
    let (event_tx, event_rx) = mpsc::channel(64);
    let mut handles = Vec::new();
    let mut absent = Vec::new();

    let sensors = match &source {
        Source::Scene(scene) => crate::hardware::open_scene(cfg, scene, clock.clone(), &board)?,
        Source::Hardware => crate::hardware::open_devices(cfg, clock.clone(), &board),
    };
    let (audio, camera, climate) = (sensors.microphone, sensors.camera, sensors.climate);
    // Requests for the on-demand camera: audio activity (the detect task)
    // and the wake line.
    let camera_demand = Arc::new(tasks::demand::CameraDemand::default());
    if let Some((line, line_cfg)) =
        crate::hardware::open_wake_line(&cfg.power.sleep, hardware, &board)
    {
        handles.push(tokio::spawn(tasks::wake_line::run(
            line,
            line_cfg,
            camera_demand.clone(),
            clock.clone(),
            counters.clone(),
            board.sensor("wake_line"),
            shutdown.clone(),
        )));
    }
    match audio {
        Some(mic) => handles.push(tokio::spawn(tasks::microphone::run(
            mic,
            sensor_tx.clone(),
            clock.clone(),
            power_rx.clone(),
            counters.clone(),
            shutdown.clone(),
        ))),
        None => absent.push(Modality::Audio),
    }
    match camera {
        Some(cam) => {
            let plan = CameraPlan {
                first_ms: start_ms,
                until_ms: end_ms,
                recheck_ms: cfg.power.interval_ms,
            };
            handles.push(tokio::spawn(tasks::camera::run(
                cam,
                sensor_tx.clone(),
                clock.clone(),
                power_rx.clone(),
                counters.clone(),
                plan,
                tasks::camera::CameraPower {
                    demand: camera_demand.clone(),
                    loads: loads.clone(),
                },
                shutdown.clone(),
            )))
        }
        None => absent.push(Modality::Camera),
    }
    match climate {
        Some(c) => handles.push(tokio::spawn(tasks::climate::run(
            c,
            sensor_tx.clone(),
            clock.clone(),
            power_rx.clone(),
            counters.clone(),
            start_ms,
            end_ms,
            shutdown.clone(),
        ))),
        None => absent.push(Modality::Climate),
    }
    drop(sensor_tx);

    let (done_tx, done_rx) = watch::channel(false);
    handles.push(tokio::spawn(tasks::status::run(
        board.clone(),
        power_rx.clone(),
        clock.clone(),
        cfg.node.status_interval_ms,
        uplink
            .as_ref()
            .map(|_| (status_source.clone(), cfg.uplink.status_interval_ms)),
        Some(energy.clone()),
        counters.clone(),
        done_rx.clone(),
        shutdown.clone(),
    )));

    let detector = Detector::new(&cfg.detector, cfg.audio.sample_rate_hz);
    let model_health = board.sensor("model");
    let classifier =
        crate::model::open_classifier(cfg, &model_health, installed_manifest.as_deref());
    let stage = DetectStage::new(
        detector,
        classifier,
        power_rx.clone(),
        counters.clone(),
        &absent,
    )
    .with_health(model_health)
    .with_camera_demand(camera_demand.clone())
    .with_swaps(swap_rx)
    .with_live_settings(live_rx.clone())
    .with_accelerator_supply(
        loads
            .as_ref()
            .and_then(|l| crate::loads::AcceleratorSupply::new(l, cfg.fusion.idle_release_ms)),
    )
    .with_fusion_config(&cfg.fusion)
    .map_err(|source| NodeError::Fusion {
        what: "dump_features",
        path: cfg.fusion.dump_features.clone().unwrap_or_default(),
        source,
    })?;
    let mut detect = tokio::spawn(tasks::detect::run(stage, sensor_rx, event_tx));
    if let Some(u) = updater {
        handles.push(tokio::spawn(u.run(first_trial, shutdown.clone())));
    }
    // GNSS time: fix times offered to the clock, which judges them.
    let gnss = (!cfg.time.gpsd.address.is_empty()).then(|| {
        let stats = Arc::new(crate::timekeeping::gpsd::GnssStats::default());
        handles.push(tokio::spawn(crate::timekeeping::gpsd::run(
            cfg.time.gpsd.clone(),
            clock.clone(),
            stats.clone(),
            shutdown.clone(),
        )));
        stats
    });
    let store_task = tokio::spawn(tasks::store::run(
        store.clone(),
        cfg.node.id.clone(),
        clock.clone(),
        event_rx,
        on_stored,
        shutdown.clone(),
    ));
    let power_task = tokio::spawn(tasks::power::run(
        supply,
        policy,
        power_tx,
        clock.clone(),
        counters.clone(),
        power_start_ms,
        cfg.power.interval_ms,
        done_rx,
        Some(live_rx),
        Some(tasks::power::SleepPlanning {
            request: sleep_request.clone(),
            cfg: cfg.power.sleep.clone(),
            sys_root: cfg.power.sysfs.root.clone(),
            hardware,
        }),
        Some(energy.clone()),
        shutdown.clone(),
    ));

    // A reboot asked over the field link stops the node as a signal does.
    // So does a deep sleep the power policy calls.
    let stop = {
        let reboot = reboot.clone();
        let sleep_request = sleep_request.clone();
        async move {
            tokio::select! {
                () = stop => {}
                () = reboot.wait() => {}
                () = sleep_request.wait() => {}
            }
        }
    };
    tokio::pin!(stop);
    let mut drain_uplink = false;
    let detect_result = tokio::select! {
        _ = &mut stop => {
            tracing::info!("shutdown requested; finishing pending work");
            trigger.trigger();
            (&mut detect).await
        }
        r = &mut detect => {
            let _ = done_tx.send(true);
            tracing::info!(covered_ms = clock.now_ms() - start_ms, "every sensor ended");
            if !cfg.scene.exit_at_end {
                tracing::info!("waiting for SIGINT or SIGTERM (use --exit-at-end to stop at the end of the scene)");
                stop.await;
            } else {
                drain_uplink = true;
            }
            trigger.trigger();
            r
        }
    };
    detect_result.map_err(|e| NodeError::Task(e.to_string()))?;
    for h in handles {
        h.await.map_err(|e| NodeError::Task(e.to_string()))?;
    }
    let outcome = store_task
        .await
        .map_err(|e| NodeError::Task(e.to_string()))?;
    let _ = done_tx.send(true);
    power_task
        .await
        .map_err(|e| NodeError::Task(e.to_string()))?;
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.flush_durable())
        .await
        .map_err(|e| NodeError::Task(e.to_string()))??;
    // The uplink stops last: everything detected is stored by now.
    let uplink = match uplink {
        Some(u) if drain_uplink => Some(u.drain_and_stop().await),
        Some(u) => Some(u.stop().await),
        None => None,
    };

    // Every load off, in the reverse of the power-up order, now that the
    // uplink (which may need the modem) has stopped.
    let loads = loads.map(|l| {
        l.power_off_all();
        let report = l.report();
        for (name, s) in &report.loads {
            tracing::info!(
                load = %name,
                wakes = s.wakes,
                failures = s.failures,
                on_s = s.on_ms as f64 / 1000.0,
                energy_j = s.energy_j,
                "switched load"
            );
        }
        report
    });

    // Deep sleep: everything is stored and flushed, the uplink stopped and
    // the loads off; set the RTC alarm, write the sleep record, halt.
    let sleep = match sleep_request.planned() {
        Some(plan) => {
            let mut halt: Box<dyn crate::sleep::halt::Halt> = if hardware {
                Box::new(crate::sleep::halt::LogindHalt::default())
            } else {
                Box::new(crate::sleep::halt::FakeHalt::default())
            };
            let data_dir = cfg.node.data_dir.clone();
            let root = cfg.power.sysfs.root.clone();
            if !hardware && root == Path::new("/") {
                // A replay never sets the host's own RTC alarm.
                let why = "a replay sets the wake alarm only under a fake sysfs tree ([power.sysfs] root)";
                tracing::error!(target: "sleep", reason = why, "not halting");
                Some(crate::sleep::SleepOutcome::not_halted(
                    &plan,
                    halt.name(),
                    Some(why.to_string()),
                ))
            } else {
                Some(
                    tokio::task::spawn_blocking(move || {
                        crate::sleep::enter(&plan, &data_dir, &root, halt.as_mut())
                    })
                    .await
                    .map_err(|e| NodeError::Task(e.to_string()))?,
                )
            }
        }
        None => None,
    };

    let mut stored_by_class = BTreeMap::new();
    for r in store.iter_from(report.next_id).flatten() {
        *stored_by_class
            .entry(r.class.as_str().to_string())
            .or_insert(0) += 1;
    }
    let status = power_rx.borrow().clone();
    let clock_report = judged_clock.report();
    Ok(RunSummary {
        scene_ms: (clock.now_ms().min(end_ms.unwrap_or(i64::MAX)) - start_ms).max(0),
        stored_by_class,
        stored: outcome.stored,
        unstored: outcome.unstored,
        store_total: store.len(),
        store_quarantined: report.quarantined.clone(),
        audio_s: Counters::get(&counters.audio_ms) as f64 / 1000.0,
        camera_frames: Counters::get(&counters.camera_frames),
        camera_skipped: Counters::get(&counters.camera_skipped),
        duty: counters.duty(),
        climate_readings: Counters::get(&counters.climate_readings),
        bursts: Counters::get(&counters.bursts),
        bursts_skipped: Counters::get(&counters.bursts_skipped),
        bursts_failed: Counters::get(&counters.bursts_failed),
        events_excluded: Counters::get(&counters.events_excluded),
        background_dropped: Counters::get(&counters.background_dropped),
        events_uncertain: Counters::get(&counters.events_uncertain),
        uncertain_background: Counters::get(&counters.uncertain_background),
        events_cut_at_max: Counters::get(&counters.events_cut_at_max),
        sun_heat_rises: Counters::get(&counters.sun_heat_rises),
        events_joined: Counters::get(&counters.events_joined),
        sensor_errors: Counters::get(&counters.sensor_errors),
        updates_installed: Counters::get(&counters.updates_installed),
        updates_refused: Counters::get(&counters.updates_refused),
        updates_refused_by: counters.refusals_by_reason(),
        updates_deferred: Counters::get(&counters.updates_deferred),
        update_last: installer.lock().ok().and_then(|i| i.state().last.clone()),
        power_mode: status.mode.as_str().to_string(),
        battery_soc: status.reading.soc,
        absent_sensors: absent.iter().map(|m| m.as_str().to_string()).collect(),
        sensors: board.snapshot(),
        io_write_bytes: io_write_bytes(),
        uplink,
        reboot_requested: reboot.is_requested(),
        clock: clock_report,
        gnss: gnss.map(|g| g.report()),
        loads,
        boot,
        sleep,
    })
}
