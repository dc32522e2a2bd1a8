//! The status record (`messages::StatusRecord`): what the node reports about
//! itself through the outbox. [`StatusSource`] gathers it from the power
//! status, the health board, the store's queue, drop counters and disk
//! ([`EventStore::disk_status`]), the model version of the latest stored
//! event, the last confirmed delivery, the node's clock with the
//! board's RTC ([`crate::timekeeping::ClockReport`]), and the detector's
//! health counters (the tasks' [`crate::tasks::Counters`], which the run
//! summary reads too).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use messages::{
    DetectionHealth, DiskReport, DiskStateCode, ModelVersion, NotStored, PowerModeCode, RtcState,
    RtcStatus, SensorHealth, SensorState, StatusCause, StatusRecord,
};
use power::{PowerMode, PowerStatus};
use tokio::sync::watch;
use uplink::{EventStore, StoreError};

use crate::sensors::health::{Health, HealthBoard};
use crate::timekeeping::rtc::RtcProbe;

/// Where a Linux board reports its CPU temperature, millidegrees Celsius.
pub const BOARD_THERMAL_ZONE: &str = "/sys/class/thermal/thermal_zone0/temp";

/// What the running node shares with the status record: updated by the
/// store (model version of the latest event) and the uplink (last contact).
#[derive(Debug)]
pub struct SharedState {
    /// Signed updates: what is installed, the last result, and results
    /// waiting for the `update/status` topic.
    pub update: crate::update::report::UpdateShared,
    model: AtomicU32,
    /// ms since the epoch; `i64::MIN` = never.
    last_contact_ms: AtomicI64,
    /// The running uplink's links, counters and rounds (for the field link).
    pub uplink: super::live::UplinkLive,
    /// The node's last deep sleep, as found at start.
    last_sleep: std::sync::Mutex<Option<messages::LastSleep>>,
}

impl Default for SharedState {
    fn default() -> Self {
        SharedState {
            update: Default::default(),
            model: AtomicU32::new(0),
            last_contact_ms: AtomicI64::new(i64::MIN),
            uplink: Default::default(),
            last_sleep: std::sync::Mutex::new(None),
        }
    }
}

impl SharedState {
    /// Sets the last deep sleep that status records report.
    pub fn set_last_sleep(&self, sleep: Option<messages::LastSleep>) {
        *self.last_sleep.lock().unwrap_or_else(|e| e.into_inner()) = sleep;
    }

    /// The last deep sleep, if the node has slept.
    pub fn last_sleep(&self) -> Option<messages::LastSleep> {
        *self.last_sleep.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the model version of an event just stored.
    pub fn saw_model(&self, v: ModelVersion) {
        self.model.store(v.0, Ordering::Relaxed);
    }

    /// Records a confirmed delivery at `t_ms` (never goes back).
    pub fn delivered_at(&self, t_ms: i64) {
        self.last_contact_ms.fetch_max(t_ms, Ordering::Relaxed);
    }

    /// The last confirmed delivery, if any.
    pub fn last_contact_ms(&self) -> Option<i64> {
        Some(self.last_contact_ms.load(Ordering::Relaxed)).filter(|t| *t != i64::MIN)
    }

    /// The model version of the latest stored event (0 = triggers only).
    pub fn model(&self) -> ModelVersion {
        ModelVersion(self.model.load(Ordering::Relaxed))
    }
}

/// Builds and stores status records.
#[derive(Clone)]
pub struct StatusSource {
    /// The node's id.
    pub node_id: String,
    /// Sensor health.
    pub board: HealthBoard,
    /// The power task's status.
    pub power: watch::Receiver<PowerStatus>,
    /// The outbox.
    pub store: Arc<EventStore>,
    /// Shared with the store wiring and the uplink.
    pub shared: Arc<SharedState>,
    /// When the node started, ms (node clock).
    pub started_ms: i64,
    /// The board temperature file (millidegrees); unreadable = unknown.
    pub thermal_zone: PathBuf,
    /// The tasks' counters (the last air temperature, the detector's
    /// events cut at their maximum length and events joined): the run's
    /// own, shared with the detect task.
    pub counters: Arc<crate::tasks::Counters>,
    /// The node's clock, for the clock part (none: unknown).
    pub clock: Option<Arc<dyn crate::clock::Clock>>,
}

fn state(h: Option<&Health>) -> SensorState {
    match h {
        Some(Health::Ok) => SensorState::Ok,
        Some(Health::Degraded { .. }) => SensorState::Degraded,
        Some(Health::Absent { .. }) | None => SensorState::Absent,
    }
}

/// The store's disk as the status record carries it: free space in whole
/// MiB (unknown when it cannot be read), the state's stable code, and the
/// evictions for disk.
pub fn disk_report(d: &uplink::store::DiskStatus) -> DiskReport {
    DiskReport {
        free_mib: d.free_bytes.map(DiskReport::mib),
        state: DiskStateCode::from_code(d.state.code()),
        evicted: u32::try_from(d.evicted_disk).unwrap_or(u32::MAX),
    }
}

fn c100(celsius: f64) -> Option<i16> {
    let v = (celsius * 100.0).round();
    (v.is_finite() && v >= f64::from(i16::MIN) && v <= f64::from(i16::MAX)).then_some(v as i16)
}

/// Reads a sysfs thermal zone (millidegrees Celsius) as 0.01 °C.
pub fn read_thermal_zone(path: &std::path::Path) -> Option<i16> {
    let text = std::fs::read_to_string(path).ok()?;
    let milli: i64 = text.trim().parse().ok()?;
    c100(milli as f64 / 1000.0)
}

/// The RTC part of a status record: `probe` (none = no RTC) against the
/// node's time `now_ms`. The RTC counts whole seconds, so both times are
/// truncated to the second before the difference.
pub fn rtc_status(probe: Option<RtcProbe>, now_ms: i64) -> RtcStatus {
    let Some(p) = probe else {
        return RtcStatus::NONE;
    };
    RtcStatus {
        state: RtcState::Found,
        offset_s: p
            .unix_ms
            .map(|t| t.div_euclid(1000).saturating_sub(now_ms.div_euclid(1000))),
        cell_mv: p.cell_mv.map(|mv| u16::try_from(mv).unwrap_or(u16::MAX)),
    }
}

impl StatusSource {
    /// The clock part: the quality of the time stamped now, the steps, and
    /// the RTC (unknown for a clock that does not judge itself, a replay's).
    fn clock_status(&self, now_ms: i64) -> messages::ClockStatus {
        let sleep = self.shared.last_sleep();
        let Some(clock) = &self.clock else {
            return messages::ClockStatus {
                sleep,
                ..Default::default()
            };
        };
        let report = clock.report();
        // The node's time as the RTC was read (with the report), rather
        // than `now_ms`: the store may have taken a while since.
        let rtc = report.as_ref().map_or(RtcStatus::default(), |r| {
            rtc_status(r.rtc_probe, clock.now_ms())
        });
        messages::ClockStatus {
            quality: clock.stamp(now_ms).1,
            steps: report
                .as_ref()
                .map_or(0, |r| u32::try_from(r.steps).unwrap_or(u32::MAX)),
            largest_step_ms: report.as_ref().map_or(0, |r| r.largest_step_ms),
            rtc,
            sleep,
        }
    }

    /// The last air temperature read, if the climate sensor has read any.
    fn air_temp_c100(&self) -> Option<i16> {
        use std::sync::atomic::Ordering;
        if self.counters.climate_readings.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let t = self.counters.air_temp_c100.load(Ordering::Relaxed);
        Some(t.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16)
    }

    /// The detector's health since the node started, from the counters the
    /// detect task keeps (and the run summary reads).
    fn detection(&self) -> DetectionHealth {
        use crate::tasks::Counters;
        DetectionHealth::saturating(
            Counters::get(&self.counters.events_cut_at_max),
            Counters::get(&self.counters.events_joined),
        )
    }

    /// The events found and not stored since the node started, by reason,
    /// from the same counters.
    fn not_stored(&self) -> NotStored {
        use crate::tasks::Counters;
        let c = &self.counters;
        NotStored::saturating([
            Counters::get(&c.events_excluded),
            Counters::get(&c.background_dropped),
            Counters::get(&c.uncertain_background),
            Counters::get(&c.sun_heat_rises),
        ])
    }

    /// The status at `now_ms`, with id `id`. Reads the store's counters:
    /// never call it while the store builds a record (its lock is held).
    pub fn build(&self, id: u64, now_ms: i64) -> StatusRecord {
        self.build_for(id, now_ms, StatusCause::Periodic)
    }

    /// [`StatusSource::build`], made for `cause`.
    pub fn build_for(&self, id: u64, now_ms: i64, cause: StatusCause) -> StatusRecord {
        let p = self.power.borrow().clone();
        let sensors = self.board.snapshot();
        let get = |name: &str| state(sensors.get(name).map(|s| &s.health));
        StatusRecord {
            id,
            node_id: self.node_id.clone(),
            time_ms: now_ms,
            uptime_s: u32::try_from((now_ms - self.started_ms).max(0) / 1000).unwrap_or(u32::MAX),
            battery_permille: (p.reading.soc.clamp(0.0, 1.0) * 1000.0).round() as u16,
            // 0 = not measured (a source without a voltage reading).
            battery_mv: p
                .reading
                .battery_mv
                .map_or(0, |mv| u16::try_from(mv).unwrap_or(u16::MAX)),
            power_mode: match p.mode {
                PowerMode::Normal => PowerModeCode::Normal,
                PowerMode::Saver => PowerModeCode::Saving,
                PowerMode::Critical => PowerModeCode::Survival,
            },
            // The last BME280 reading, from the shared counters.
            air_temp_c100: self.air_temp_c100(),
            board_temp_c100: read_thermal_zone(&self.thermal_zone),
            sensors: SensorHealth {
                microphone: get("audio"),
                camera: get("camera"),
                climate: get("climate"),
                model: get("model"),
            },
            queue: self.store.queue_depth(),
            drops: self.store.drop_counters(),
            model: self.shared.model(),
            last_contact_ms: self.shared.last_contact_ms(),
            cause,
            update: self.shared.update.status(),
            disk: disk_report(&self.store.disk_status()),
            clock: self.clock_status(now_ms),
            detection: Some(self.detection()),
            not_stored: Some(self.not_stored()),
        }
    }

    /// Removes expired items (so the drop counters are current), then
    /// stores a status record made at `now_ms`, durably. Blocking: call it
    /// on a blocking thread.
    pub fn append(&self, now_ms: i64) -> Result<StatusRecord, StoreError> {
        self.append_for(now_ms, StatusCause::Periodic)
    }

    /// [`StatusSource::append`], made for `cause` (a status record made on
    /// an update result is stored at priority high at least).
    pub fn append_for(&self, now_ms: i64, cause: StatusCause) -> Result<StatusRecord, StoreError> {
        self.store.expire(now_ms)?;
        // Built before the append: the store holds its lock while it asks
        // for the record, so the queue and counters are read first.
        let record = self.build_for(0, now_ms, cause);
        self.store
            .append_status(move |id| StatusRecord { id, ..record })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use power::{PolicyConfig, PowerPolicy, PowerReading};

    fn source(dir: &std::path::Path) -> StatusSource {
        let (store, _) =
            EventStore::open(&dir.join("store"), &uplink::StoreConfig::default()).unwrap();
        source_with(dir, store)
    }

    fn source_with(dir: &std::path::Path, store: EventStore) -> StatusSource {
        let mut policy = PowerPolicy::new(PolicyConfig::default());
        let status = policy.update(PowerReading {
            t_ms: 0,
            soc: 0.734,
            solar_w: 0.0,
            load_w: 3.0,
            battery_mv: Some(13_012),
        });
        let (_tx, rx) = watch::channel(status);
        let board = HealthBoard::default();
        board.sensor("audio").set_ok();
        board.sensor("camera").set_degraded("no frames");
        StatusSource {
            node_id: "n1".into(),
            board,
            power: rx,
            store: Arc::new(store),
            shared: Arc::new(SharedState::default()),
            started_ms: 1_000_000,
            thermal_zone: dir.join("temp"),
            counters: Arc::new(crate::tasks::Counters::default()),
            clock: None,
        }
    }

    #[test]
    fn a_status_record_reports_the_last_sleep() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path());
        assert_eq!(s.build(0, 2_000_000).clock.sleep, None);
        let slept = messages::LastSleep {
            reason: messages::SleepReasonCode::LowBattery,
            slept_s: 21_605,
            planned_s: 21_600,
            wake: messages::WakeCause::Rtc,
        };
        s.shared.set_last_sleep(Some(slept));
        let r = s.append(2_000_000).unwrap();
        assert_eq!(r.clock.sleep, Some(slept));
        let p = s.store.pending(messages::Priority::Low, 10).unwrap();
        match messages::decode_message(&p.items[0].bytes).unwrap() {
            messages::Message::Status(stored) => assert_eq!(stored.clock.sleep, Some(slept)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_status_record_carries_the_detectors_counters_once_they_moved() {
        use crate::tasks::Counters;
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path());
        // Reported from the start, zero included.
        assert_eq!(
            s.build(0, 1_001_000).detection,
            Some(DetectionHealth::default())
        );
        // The detect task moves the run's counters (`Counters::set`, as it
        // does after each burst and each pass of the bout joiner).
        Counters::set(&s.counters.events_cut_at_max, 3);
        Counters::set(&s.counters.events_joined, 41);
        let expected = DetectionHealth {
            events_cut_at_max: 3,
            events_joined: 41,
        };
        let r = s.append(1_002_000).unwrap();
        assert_eq!(r.detection, Some(expected));
        // What was stored carries them too.
        let p = s.store.pending(messages::Priority::Low, 10).unwrap();
        match messages::decode_message(&p.items[0].bytes).unwrap() {
            messages::Message::Status(stored) => assert_eq!(stored.detection, Some(expected)),
            other => panic!("{other:?}"),
        }
        // They only grow while the node runs; beyond u32 they saturate.
        Counters::add(&s.counters.events_joined, u64::from(u32::MAX));
        assert_eq!(
            s.build(0, 1_003_000).detection,
            Some(DetectionHealth {
                events_cut_at_max: 3,
                events_joined: u32::MAX,
            })
        );
    }

    #[test]
    fn a_status_record_carries_the_events_not_stored_by_reason() {
        use crate::tasks::Counters;
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path());
        // Reported from the start, zero included.
        assert_eq!(s.build(0, 1_001_000).not_stored, Some(NotStored::default()));
        // Each counter of the detect task lands in its own field.
        Counters::add(&s.counters.events_excluded, 1);
        Counters::add(&s.counters.background_dropped, 2);
        Counters::add(&s.counters.uncertain_background, 17);
        Counters::add(&s.counters.sun_heat_rises, 4);
        let expected = NotStored {
            excluded: 1,
            background_dropped: 2,
            uncertain_background: 17,
            sun_heat_rises: 4,
        };
        let r = s.append(1_002_000).unwrap();
        assert_eq!(r.not_stored, Some(expected));
        let p = s.store.pending(messages::Priority::Low, 10).unwrap();
        match messages::decode_message(&p.items[0].bytes).unwrap() {
            messages::Message::Status(stored) => assert_eq!(stored.not_stored, Some(expected)),
            other => panic!("{other:?}"),
        }
        // Beyond u32 they saturate.
        Counters::add(&s.counters.uncertain_background, u64::from(u32::MAX));
        assert_eq!(
            s.build(0, 1_003_000)
                .not_stored
                .map(|n| n.uncertain_background),
            Some(u32::MAX)
        );
    }

    #[test]
    fn a_status_record_carries_the_clock_that_stamps_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = source(dir.path());
        assert!(s.build(0, 1_000_000).clock.is_empty(), "no clock: unknown");
        s.clock = Some(Arc::new(crate::clock::ReplayClock::new(1_000_000, 1.0)));
        let c = s.build(0, 1_000_000).clock;
        assert_eq!(c.quality.source, messages::TimeSource::Scene);
        assert_eq!((c.steps, c.largest_step_ms), (0, 0));
    }

    /// A system clock stopped at `wall_ms` and synchronised, and the RTC
    /// of a sysfs tree under `sys`.
    struct FakeSys {
        wall_ms: i64,
        rtc: crate::timekeeping::rtc::Rtc,
    }

    impl crate::timekeeping::TimeSources for FakeSys {
        fn wall_ms(&self) -> i64 {
            self.wall_ms
        }
        fn mono_ms(&self) -> i64 {
            0
        }
        fn kernel(&self) -> Option<crate::timekeeping::kernel::KernelSync> {
            Some(crate::timekeeping::kernel::KernelSync {
                synced: true,
                max_error_ms: Some(20),
            })
        }
        fn rtc(&self) -> Option<crate::timekeeping::rtc::RtcReading> {
            self.rtc.read()
        }
        fn rtc_probe(&self) -> Option<RtcProbe> {
            self.rtc.probe()
        }
    }

    /// A sysfs tree with an RTC reading `since_epoch` and, where given, its
    /// cell at `battery_uv`.
    fn rtc_tree(sys: &std::path::Path, since_epoch: &str, battery_uv: Option<&str>) {
        let dir = sys.join("class/rtc/rtc0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("since_epoch"), since_epoch).unwrap();
        match battery_uv {
            Some(uv) => std::fs::write(dir.join("battery_voltage"), uv).unwrap(),
            None => {
                let _ = std::fs::remove_file(dir.join("battery_voltage"));
            }
        }
    }

    #[test]
    fn a_status_record_carries_the_rtcs_offset_and_cell() {
        use crate::timekeeping::rtc::{LOW_CELL_MV, Rtc};
        use crate::timekeeping::{GuardedClock, TimeFloor};
        // The node's clock at 1_800_000_000.700 s, synchronised.
        const NOW: i64 = 1_800_000_000_700;
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let clock = |sys: &std::path::Path| -> Arc<dyn crate::clock::Clock> {
            Arc::new(GuardedClock::new(
                FakeSys {
                    wall_ms: NOW,
                    rtc: Rtc::new(sys),
                },
                TimeFloor::in_memory(dir.path(), NOW - 86_400_000),
            ))
        };
        let mut s = source(dir.path());
        s.clock = Some(clock(&sys));
        // No RTC under the sysfs root: none, nothing else.
        let r = s.build(0, NOW);
        assert_eq!(r.clock.rtc, RtcStatus::NONE);
        assert_eq!(r.clock.quality.source, messages::TimeSource::Synced);
        // An RTC 2 s ahead (whole seconds against the node's 700 ms into
        // its second), its cell charged.
        rtc_tree(&sys, "1800000002\n", Some("3012000\n"));
        let r = s.append(NOW).unwrap();
        assert_eq!(
            r.clock.rtc,
            RtcStatus {
                state: RtcState::Found,
                offset_s: Some(2),
                cell_mv: Some(3_012),
            }
        );
        // What was stored (status record v8) carries it too.
        let p = s.store.pending(messages::Priority::Low, 10).unwrap();
        assert_eq!(p.items[0].bytes[0], messages::codec::STATUS_RECORD_VERSION);
        assert_eq!(p.items[0].bytes[0], 11);
        match messages::decode_message(&p.items[0].bytes).unwrap() {
            messages::Message::Status(stored) => assert_eq!(stored.clock.rtc, r.clock.rtc),
            other => panic!("{other:?}"),
        }
        // An RTC at 1970 (it lost its time and restarted), its cell low.
        rtc_tree(&sys, "86\n", Some("2104000\n"));
        let rtc = s.build(0, NOW).clock.rtc;
        assert_eq!(rtc.state, RtcState::Found);
        assert_eq!(rtc.offset_s, Some(86 - 1_800_000_000));
        assert_eq!(rtc.cell_mv, Some(2_104));
        assert!(rtc.cell_mv.is_some_and(|mv| u32::from(mv) < LOW_CELL_MV));
        // An RTC whose time does not read: found, no offset, the cell still
        // reported; a driver without a cell voltage: none.
        rtc_tree(&sys, "", Some("1180000\n"));
        let rtc = s.build(0, NOW).clock.rtc;
        assert_eq!(
            (rtc.state, rtc.offset_s, rtc.cell_mv),
            (RtcState::Found, None, Some(1_180))
        );
        rtc_tree(&sys, "1799999999\n", None);
        let rtc = s.build(0, NOW).clock.rtc;
        assert_eq!(
            (rtc.state, rtc.offset_s, rtc.cell_mv),
            (RtcState::Found, Some(-1), None)
        );
        // A clock that does not read an RTC (a replay's): unknown.
        s.clock = Some(Arc::new(crate::clock::ReplayClock::new(NOW, 1.0)));
        assert!(s.build(0, NOW).clock.rtc.is_unknown());
    }

    #[test]
    fn the_rtc_part_truncates_to_whole_seconds_and_caps_the_cell() {
        let p = |unix_ms, cell_mv| Some(RtcProbe { unix_ms, cell_mv });
        assert_eq!(rtc_status(None, 5_000), RtcStatus::NONE);
        // The RTC reads whole seconds: 10 s against 10.999 s is no offset.
        assert_eq!(rtc_status(p(Some(10_000), None), 10_999).offset_s, Some(0));
        assert_eq!(rtc_status(p(Some(10_000), None), 11_000).offset_s, Some(-1));
        // Before the epoch the seconds floor too.
        assert_eq!(rtc_status(p(Some(0), None), -1).offset_s, Some(1));
        assert_eq!(
            rtc_status(p(Some(i64::MAX), None), i64::MIN).offset_s,
            Some(i64::MAX / 1000 - i64::MIN.div_euclid(1000))
        );
        assert_eq!(
            rtc_status(p(Some(i64::MIN), None), i64::MAX).offset_s,
            Some(i64::MIN.div_euclid(1000) - i64::MAX / 1000)
        );
        assert_eq!(rtc_status(p(None, Some(70_000)), 0).cell_mv, Some(u16::MAX));
    }

    #[test]
    fn a_status_record_reports_what_the_node_knows() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path());
        std::fs::write(dir.path().join("temp"), "48312\n").unwrap();
        s.shared.saw_model(ModelVersion(3));
        assert_eq!(s.build(0, 1_000_000).air_temp_c100, None, "no reading yet");
        s.counters
            .air_temp_c100
            .store(-1_250, std::sync::atomic::Ordering::Relaxed);
        s.counters
            .climate_readings
            .store(1, std::sync::atomic::Ordering::Relaxed);
        let r = s.append(1_061_000).unwrap();
        assert_eq!(r.air_temp_c100, Some(-1_250));
        assert_eq!(r.uptime_s, 61);
        assert_eq!(r.battery_permille, 734);
        assert_eq!(r.battery_mv, 13_012);
        assert_eq!(r.board_temp_c100, Some(4831));
        assert_eq!(r.sensors.microphone, SensorState::Ok);
        assert_eq!(r.sensors.camera, SensorState::Degraded);
        assert_eq!(r.sensors.climate, SensorState::Absent);
        assert_eq!(r.model, ModelVersion(3));
        assert_eq!(r.last_contact_ms, None);
        // It is in the outbox now, at the status priority.
        let p = s.store.pending(messages::Priority::Low, 10).unwrap();
        assert_eq!(p.items.len(), 1);
        assert_eq!(p.items[0].id, r.id);
        // The next one counts the first in the queue.
        s.shared.delivered_at(1_050_000);
        let r2 = s.append(1_062_000).unwrap();
        assert_eq!(r2.queue.iter().sum::<u32>(), 1);
        assert_eq!(r2.last_contact_ms, Some(1_050_000));
    }

    #[test]
    fn a_status_record_carries_the_update_state_and_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path());
        let periodic = s.append(1_001_000).unwrap();
        assert_eq!(periodic.cause, StatusCause::Periodic);
        assert!(periodic.update.is_empty());
        s.shared.update.set_status(messages::UpdateStatus {
            model_active: 4,
            model_staged: None,
            settings: 2,
            last: None,
        });
        let r = s.append_for(1_002_000, StatusCause::UpdateResult).unwrap();
        assert_eq!(r.cause, StatusCause::UpdateResult);
        assert_eq!((r.update.model_active, r.update.settings), (4, 2));
        let p = s.store.pending(messages::Priority::Low, 10).unwrap();
        assert_eq!(p.items[0].id, r.id);
        assert_eq!(p.items[0].priority, messages::Priority::High);
        assert_eq!(p.items[1].priority, messages::Priority::Normal);
    }

    #[test]
    fn a_status_record_carries_the_stores_free_space_and_disk_state() {
        use uplink::outbox::{BudgetConfig, OutboxConfig};
        use uplink::store::FakeFreeSpace;
        const MIB: u64 = 1 << 20;
        let dir = tempfile::tempdir().unwrap();
        let disk = FakeFreeSpace::new(900 * MIB + 123);
        let outbox = OutboxConfig {
            budget: BudgetConfig {
                min_free_bytes: 64 * MIB,
                ..BudgetConfig::default()
            },
            ..OutboxConfig::default()
        };
        let (store, _) = EventStore::open_with_free_space(
            &dir.path().join("store"),
            &uplink::StoreConfig::default(),
            outbox,
            Arc::new(disk.clone()),
        )
        .unwrap();
        let s = source_with(dir.path(), store);
        let r = s.append(1_001_000).unwrap();
        assert_eq!(
            r.disk,
            DiskReport {
                free_mib: Some(900),
                state: DiskStateCode::Ok,
                evicted: 0,
            }
        );
        // What was stored carries it too.
        let p = s.store.pending(messages::Priority::Low, 10).unwrap();
        match messages::decode_message(&p.items[0].bytes).unwrap() {
            messages::Message::Status(stored) => assert_eq!(stored.disk, r.disk),
            other => panic!("{other:?}"),
        }
        // Below the reserve the store evicts: the record says so.
        disk.set(10 * MIB);
        let r = s.build(0, 1_002_000);
        assert_eq!(r.disk.free_mib, Some(10));
        assert_eq!(r.disk.state, DiskStateCode::Evicting);
        // A filesystem that reports no size: free space unknown, state ok.
        disk.set_unknown(true);
        let r = s.build(0, 1_003_000);
        assert_eq!(r.disk.free_mib, None);
        assert_eq!(r.disk.state, DiskStateCode::Ok);
    }

    #[test]
    fn the_disk_report_saturates_and_keeps_the_stores_codes() {
        use uplink::store::{DiskState, DiskStatus};
        let d = |free_bytes, state, evicted_disk| {
            disk_report(&DiskStatus {
                free_bytes,
                min_free_bytes: 0,
                state,
                evicted_disk,
            })
        };
        assert_eq!(
            d(Some(u64::MAX), DiskState::Full, u64::MAX),
            DiskReport {
                free_mib: Some(u32::MAX),
                state: DiskStateCode::Full,
                evicted: u32::MAX,
            }
        );
        assert_eq!(
            d(Some((1 << 20) - 1), DiskState::Evicting, 4),
            DiskReport {
                free_mib: Some(0),
                state: DiskStateCode::Evicting,
                evicted: 4,
            }
        );
        for s in [DiskState::Ok, DiskState::Evicting, DiskState::Full] {
            assert_eq!(DiskStateCode::from_code(s.code()).as_str(), s.as_str());
        }
    }

    #[test]
    fn unreadable_or_garbage_thermal_files_are_unknown() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_thermal_zone(&dir.path().join("missing")), None);
        std::fs::write(dir.path().join("t"), "hot").unwrap();
        assert_eq!(read_thermal_zone(&dir.path().join("t")), None);
        std::fs::write(dir.path().join("t"), "99999999999").unwrap();
        assert_eq!(read_thermal_zone(&dir.path().join("t")), None);
    }
}
