//! `Probe` on a running node: the sensors' self-test as the running node
//! sees it, without touching a device. Opening the microphone, the camera
//! or the I2C bus again (as `fieldnode probe` does on a stopped node)
//! would compete with the running sensor tasks for them, so the reply is
//! built from what those tasks report: each sensor's health (state,
//! reason, errors by kind, outages), what it captured in this run, the
//! last climate reading, and the power supply's last reading.

use std::sync::atomic::Ordering;

use messages::SensorState;
use messages::link::{ProbeDevice, ProbeReply};

use super::replies::NodeView;
use crate::config::SensorSource;
use crate::sensors::health::{Health, SensorStatus};

fn state(h: Option<&SensorStatus>) -> SensorState {
    match h.map(|s| &s.health) {
        Some(Health::Ok) => SensorState::Ok,
        Some(Health::Degraded { .. }) => SensorState::Degraded,
        Some(Health::Absent { .. }) | None => SensorState::Absent,
    }
}

/// The health part of a detail: the reason, errors by kind, outages.
fn health_detail(h: Option<&SensorStatus>) -> Vec<String> {
    let Some(s) = h else {
        return vec!["not started in this run".into()];
    };
    let mut parts = Vec::new();
    match &s.health {
        Health::Ok => {}
        Health::Degraded { reason } | Health::Absent { reason } => parts.push(reason.clone()),
    }
    if !s.errors.is_empty() {
        let errors: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        parts.push(format!("errors: {}", errors.join(", ")));
    }
    if s.outages > 0 {
        parts.push(format!("outages {}", s.outages));
    }
    parts
}

/// The probe reply of the running node.
pub fn probe(view: &NodeView) -> ProbeReply {
    let cfg = view.config.config();
    let cfg = &*cfg;
    let sensors = view.status.board.snapshot();
    let counters = &view.status.counters;
    let scene = cfg.node.sensors == SensorSource::Scene;
    let device = |hardware: String| {
        if scene {
            format!("scene {}", cfg.scene.dir.display())
        } else {
            hardware
        }
    };
    let entry = |role: &str, name: &str, device: String, mut extra: Vec<String>| {
        let h = sensors.get(name);
        let mut parts = health_detail(h);
        parts.append(&mut extra);
        ProbeDevice {
            role: role.into(),
            device,
            state: state(h),
            detail: parts.join("; "),
        }
    };
    let audio_s = counters.audio_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    let frames = counters.camera_frames.load(Ordering::Relaxed);
    let readings = counters.climate_readings.load(Ordering::Relaxed);
    let climate_reading = if readings == 0 {
        "no reading yet".to_string()
    } else {
        let c100 = counters.air_temp_c100.load(Ordering::Relaxed);
        format!(
            "last reading {:.2} °C air ({readings} readings in this run)",
            c100 as f64 / 100.0
        )
    };
    let p = view.status.power.borrow().clone();
    let mut power = format!(
        "battery {:.1} %, mode {}",
        p.reading.soc * 100.0,
        p.mode.as_str()
    );
    if let Some(mv) = p.reading.battery_mv {
        power.push_str(&format!(", {mv} mV"));
    }
    ProbeReply {
        devices: vec![
            entry(
                "microphone",
                "audio",
                device(format!("ALSA {}", cfg.audio.device.name)),
                vec![format!("{audio_s:.1} s of audio captured in this run")],
            ),
            entry(
                "camera",
                "camera",
                device(cfg.camera.device.device.display().to_string()),
                vec![format!("{frames} frames captured in this run")],
            ),
            entry(
                "climate",
                "climate",
                device(format!(
                    "{} 0x{:02x}",
                    cfg.climate.i2c_bus.display(),
                    cfg.climate.address
                )),
                vec![climate_reading],
            ),
            ProbeDevice {
                role: "power".into(),
                device: power_device(cfg),
                state: SensorState::Ok,
                detail: power,
            },
        ],
    }
}

/// What the power readings come from, as `[power] source` says.
fn power_device(cfg: &crate::config::Config) -> String {
    use crate::config::PowerSourceKind;
    match cfg.power.source {
        PowerSourceKind::Simulated => "simulated supply".into(),
        PowerSourceKind::Monitor => {
            let m = &cfg.power.monitor;
            let mut d = format!(
                "INA226 on {} 0x{:02x} (battery)",
                m.i2c_bus, m.battery.address
            );
            if let Some(solar) = &m.solar {
                d.push_str(&format!(", 0x{:02x} (solar)", solar.address));
            }
            d
        }
        PowerSourceKind::Sysfs => format!(
            "power_supply under {}",
            cfg.power
                .sysfs
                .root
                .join("sys/class/power_supply")
                .display()
        ),
    }
}

#[cfg(test)]
mod power_tests {
    use super::power_device;
    use crate::config::{Config, PowerSourceKind};

    #[test]
    fn the_power_line_names_the_configured_source() {
        let mut cfg = Config::default();
        assert_eq!(power_device(&cfg), "simulated supply");
        cfg.power.source = PowerSourceKind::Monitor;
        assert_eq!(
            power_device(&cfg),
            format!(
                "INA226 on {} 0x{:02x} (battery)",
                cfg.power.monitor.i2c_bus, cfg.power.monitor.battery.address
            )
        );
        cfg.power.source = PowerSourceKind::Sysfs;
        cfg.power.sysfs.root = "/tmp/fake".into();
        assert_eq!(
            power_device(&cfg),
            "power_supply under /tmp/fake/sys/class/power_supply"
        );
    }
}
