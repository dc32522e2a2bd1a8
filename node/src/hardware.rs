//! Opens the sensors of a run: a scene's files as simulated hardware, or the
//! devices named in the configuration. A sensor that is disabled, missing
//! from the scene, or cannot be opened is absent (its health says why) and
//! the node runs with the others.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::node::NodeError;
use crate::scene::Scene;
use crate::sensors::alsa_mic::AlsaMicrophone;
use crate::sensors::any::{AnyCamera, AnyClimate, AnyMicrophone};
use crate::sensors::bme280::Bme280Climate;
use crate::sensors::health::HealthBoard;
use crate::sensors::pipe_camera::PipeCamera;
use crate::sensors::replay::{Passes, ReplayCamera, ReplayClimate, ReplayMicrophone};
use crate::sensors::v4l_camera::{CameraSource, V4lCamera, list_devices_in};

/// The sensors of a run; `None` = absent.
pub struct Sensors {
    /// The microphone.
    pub microphone: Option<AnyMicrophone>,
    /// The camera.
    pub camera: Option<AnyCamera>,
    /// The climate sensor.
    pub climate: Option<AnyClimate>,
}

/// A scene's files as sensors. A malformed file is an error (the scene is
/// broken); a missing one is an absent sensor.
pub fn open_scene(
    cfg: &Config,
    scene: &Scene,
    clock: Arc<dyn Clock>,
    board: &HealthBoard,
) -> Result<Sensors, NodeError> {
    let start_ms = scene.meta.start_ms;
    // Each pass of a looped replay starts where the previous one ended.
    let passes = Passes {
        count: cfg.scene.loops.max(1),
        period_ms: scene.duration_ms.max(1),
    };
    let why = |enabled: bool| {
        if enabled {
            "not in the scene"
        } else {
            "disabled in the configuration"
        }
    };
    let microphone = match (&scene.audio, cfg.audio.enabled) {
        (Some(p), true) => Some(AnyMicrophone::Replay(Box::new(
            ReplayMicrophone::open(
                p,
                cfg.audio.sample_rate_hz,
                cfg.audio.chunk_ms,
                start_ms,
                clock.clone(),
            )?
            .looping(passes),
        ))),
        _ => {
            board.sensor("audio").set_absent(why(cfg.audio.enabled));
            None
        }
    };
    let camera = match (&scene.camera, cfg.camera.enabled) {
        (Some(p), true) => Some(AnyCamera::Replay(Box::new(
            ReplayCamera::open(
                p,
                start_ms,
                cfg.camera.analysis_width,
                cfg.camera.analysis_height,
            )?
            .looping(passes),
        ))),
        _ => {
            board.sensor("camera").set_absent(why(cfg.camera.enabled));
            None
        }
    };
    let climate = match (&scene.climate, cfg.climate.enabled) {
        (Some(p), true) => Some(AnyClimate::Replay(
            ReplayClimate::open(p, start_ms)?.looping(passes),
        )),
        _ => {
            board.sensor("climate").set_absent(why(cfg.climate.enabled));
            None
        }
    };
    // Replayed sensors that are present are healthy for the whole run.
    for (present, name) in [
        (microphone.is_some(), "audio"),
        (camera.is_some(), "camera"),
        (climate.is_some(), "climate"),
    ] {
        if present {
            board.sensor(name).set_ok();
        }
    }
    Ok(Sensors {
        microphone,
        camera,
        climate,
    })
}

/// The configured devices. Each one that cannot be opened is absent, with
/// the reason in its health and the log.
pub fn open_devices(cfg: &Config, clock: Arc<dyn Clock>, board: &HealthBoard) -> Sensors {
    let microphone = if cfg.audio.enabled {
        let health = board.sensor("audio");
        match AlsaMicrophone::open(
            cfg.audio.device.clone(),
            cfg.audio.sample_rate_hz,
            cfg.audio.chunk_ms,
            clock.clone(),
            health.clone(),
        ) {
            Ok(m) => Some(AnyMicrophone::Alsa(Box::new(m))),
            Err(e) => {
                health.set_absent(e.to_string());
                None
            }
        }
    } else {
        board
            .sensor("audio")
            .set_absent("disabled in the configuration");
        None
    };
    let camera = open_camera(cfg, board);
    let climate = open_climate(cfg, board);
    Sensors {
        microphone,
        camera,
        climate,
    }
}

/// The INA226 battery (and solar) monitors of `[power.monitor]`. A monitor
/// that cannot be opened is kept as its error: the supply reports it
/// absent and carries on (`power::monitor`).
pub fn open_power_monitors(cfg: &power::MonitoredConfig) -> power::MonitoredSupply {
    let open = |m: &power::MonitorConfig| -> Result<Box<dyn power::Monitor>, power::MonitorError> {
        let bus = linux_embedded_hal::I2cdev::new(&cfg.i2c_bus).map_err(|e| {
            tracing::warn!(bus = %cfg.i2c_bus, error = %e, "cannot open the power monitors' I2C bus");
            power::MonitorError::Bus(embedded_hal::i2c::ErrorKind::Other)
        })?;
        let monitor = power::Ina226Monitor::open(bus, m.clone()).inspect_err(|e| {
            tracing::warn!(address = m.address, error = %e, "power monitor not found");
        })?;
        Ok(Box::new(monitor))
    };
    let battery = open(&cfg.battery);
    let solar = cfg.solar.as_ref().map(open);
    power::MonitoredSupply::new(battery, solar, cfg.gauge.clone(), cfg.assumed_soc)
}

/// The battery and board health of `[power.sysfs]`. A battery that is not
/// there yet is logged and reported absent by the supply, which looks for
/// it again at every reading (`power::sysfs`).
pub fn open_sysfs_supply(cfg: &power::SysfsConfig) -> power::SysfsSupply {
    let supply = power::SysfsSupply::new(cfg.clone());
    match supply.battery_dir() {
        Ok(dir) => tracing::info!(
            battery = %dir.display(),
            current_positive = ?cfg.current_positive,
            "power readings from sysfs"
        ),
        Err(e) => tracing::warn!(error = %e, "no battery in sysfs; assuming the configured charge"),
    }
    supply
}

/// The switched loads of `[power.loads]`, or `None` when none is
/// configured: on the GPIO (`hardware`), else simulated by the fake switch
/// (a scene replay). GPIO that cannot be opened is logged; the loads are
/// then kept with a switch that fails every switching, so each attempt is
/// counted and reported.
pub fn open_loads(cfg: &power::LoadsConfig, hardware: bool) -> Option<power::SwitchedLoads> {
    use power::loads::{FakeSwitch, GpioSwitch, LoadSwitch, UnavailableSwitch};
    if cfg.is_empty() {
        return None;
    }
    let switch: Box<dyn LoadSwitch> = if hardware {
        match GpioSwitch::open(cfg) {
            Ok(s) => Box::new(s),
            Err(e) => {
                tracing::error!(kind = e.kind(), error = %e, "cannot open the load switches' GPIO; the loads stay as their pull resistors hold them");
                Box::new(UnavailableSwitch(e))
            }
        }
    } else {
        tracing::info!(
            loads = cfg.lines().count(),
            "switched loads simulated (scene replay)"
        );
        Box::new(FakeSwitch::new())
    };
    Some(power::SwitchedLoads::new(switch, cfg))
}

/// The BME280 on `climate.i2c_bus` at `climate.address`.
fn open_climate(cfg: &Config, board: &HealthBoard) -> Option<AnyClimate> {
    let health = board.sensor("climate");
    if !cfg.climate.enabled {
        health.set_absent("disabled in the configuration");
        return None;
    }
    let bus = match linux_embedded_hal::I2cdev::new(&cfg.climate.i2c_bus) {
        Ok(b) => b,
        Err(e) => {
            health.set_absent(format!(
                "cannot open {}: {e}",
                cfg.climate.i2c_bus.display()
            ));
            return None;
        }
    };
    match Bme280Climate::open(
        bus,
        cfg.climate.address,
        cfg.climate.bme280.clone(),
        linux_embedded_hal::Delay,
        health.clone(),
    ) {
        Ok(s) => Some(AnyClimate::Bme280(Box::new(s))),
        Err(e) => {
            health.set_absent(e.to_string());
            None
        }
    }
}

/// The camera of `[camera.device]`: a V4L2 device or a command's pipe.
fn open_camera(cfg: &Config, board: &HealthBoard) -> Option<AnyCamera> {
    let health = board.sensor("camera");
    if !cfg.camera.enabled {
        health.set_absent("disabled in the configuration");
        return None;
    }
    let (w, h) = (cfg.camera.analysis_width, cfg.camera.analysis_height);
    let opened = match cfg.camera.device.source {
        CameraSource::V4l => V4lCamera::open(&cfg.camera.device, w, h, health.clone())
            .map(|c| AnyCamera::V4l(Box::new(c))),
        CameraSource::Pipe => PipeCamera::open(&cfg.camera.device, w, h, health.clone())
            .map(|c| AnyCamera::Pipe(Box::new(c))),
    };
    match opened {
        Ok(c) => Some(c),
        Err(e) => {
            health.set_absent(e.to_string());
            None
        }
    }
}

/// Every V4L2 device under `dev`, and one frame from each capture device,
/// for `fieldnode probe`.
pub fn probe_video(cfg: &Config, dev: &std::path::Path) -> Vec<crate::probe::VideoDevice> {
    list_devices_in(dev)
        .into_iter()
        .map(|info| {
            let mut out = crate::probe::VideoDevice {
                path: info.path.clone(),
                description: info.summary(),
                frame: None,
                error: None,
            };
            if !info.capture || info.error.is_some() {
                return out;
            }
            let mut settings = cfg.camera.device.clone();
            settings.device = info.path.clone();
            let health = crate::sensors::health::HealthHandle::detached("camera");
            let (w, h) = (cfg.camera.analysis_width, cfg.camera.analysis_height);
            match V4lCamera::open(&settings, w, h, health) {
                Ok(mut cam) => match crate::sensors::Camera::capture(&mut cam, 0) {
                    Ok(Some(f)) => {
                        let mean = f.luma.iter().map(|&v| u64::from(v)).sum::<u64>()
                            / f.luma.len().max(1) as u64;
                        let fmt = cam
                            .format()
                            .map(|(p, fw, fh)| format!("{} {fw}x{fh}", p.name()))
                            .unwrap_or_default();
                        let exposure = f.exposure.map_or_else(
                            || "no exposure reported".to_string(),
                            |e| format!("exposure {e}"),
                        );
                        out.frame = Some(format!(
                            "frame {fmt} -> {}x{}, mean brightness {mean}/255, {exposure}",
                            f.width, f.height
                        ));
                    }
                    Ok(None) => out.error = Some("no frame".into()),
                    Err(e) => out.error = Some(e.to_string()),
                },
                Err(e) => out.error = Some(e.to_string()),
            }
            out
        })
        .collect()
}

/// The wake line of `[power.sleep]`, read once at start: the GPIO input on
/// hardware, an inactive simulated line in a replay; `None` when none is
/// configured or the GPIO cannot be opened (logged).
pub fn read_wake_line(cfg: &power::SleepConfig, hardware: bool) -> Option<bool> {
    use power::loads::InputLine as _;
    let line = cfg.wake_line.as_ref()?;
    let read = if hardware {
        power::loads::GpioInput::open(line).and_then(|mut l| l.is_active())
    } else {
        power::loads::FakeInput::new().is_active()
    };
    match read {
        Ok(active) => Some(active),
        Err(e) => {
            tracing::warn!(target: "sleep", pin = line.pin, error = %e, "wake line unreadable; a wake before the planned time counts as a cold boot");
            None
        }
    }
}

/// The wake line of `[power.sleep]`, to read while the node runs (a PIR
/// asks for the camera through it): the GPIO input on hardware; `None`
/// without a line, in a scene replay (which has no such input), or when
/// the GPIO cannot be opened (then `wake_line` is absent on the health
/// board, with the reason).
pub fn open_wake_line(
    cfg: &power::SleepConfig,
    hardware: bool,
    board: &HealthBoard,
) -> Option<(
    Box<dyn power::loads::InputLine>,
    power::loads::InputLineConfig,
)> {
    let line = cfg.wake_line.as_ref()?;
    if !hardware {
        return None;
    }
    match power::loads::GpioInput::open(line) {
        Ok(input) => {
            tracing::info!(
                pin = line.pin,
                poll_ms = line.poll_ms,
                debounce_ms = line.debounce_ms,
                "wake line read while the node runs"
            );
            Some((Box::new(input), line.clone()))
        }
        Err(e) => {
            board
                .sensor("wake_line")
                .set_absent(format!("cannot open GPIO {}: {e}", line.pin));
            None
        }
    }
}
