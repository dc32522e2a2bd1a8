//! The update task with real bundles (settings: no model runtime needed):
//! what reaches the operator (status records in the outbox, results for
//! `update/status`) and what applies at once.

use std::sync::{Arc, Mutex};

use messages::{Message, Priority, StatusCause, UpdateOutcome};
use models::bundle::keys::generate;
use models::bundle::{Bundle, Metadata, Role, Root, SettingsPatch};
use power::{PolicyConfig, PowerPolicy, PowerReading, PowerStatus};
use tokio::sync::{mpsc, watch};
use uplink::EventStore;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::sensors::health::HealthBoard;
use crate::update::install::Installer;
use crate::update::report::Reporter;
use crate::update::task::Updater;
use crate::uplink::{SharedState, StatusSource};

fn now_s() -> u64 {
    SystemClock.now_ms() as u64 / 1000
}

fn power(soc: f64) -> PowerStatus {
    PowerPolicy::new(PolicyConfig::default()).update(PowerReading {
        t_ms: 0,
        soc,
        solar_w: 0.0,
        load_w: 3.0,
        battery_mv: None,
    })
}

fn settings(version: u64, signers: &[u8]) -> Vec<u8> {
    let patch = SettingsPatch {
        thresholds: vec![(messages::EventClass::Wildlife, 990)],
        camera_interval_ms: Some(7_000),
        ..SettingsPatch::default()
    };
    let meta = Metadata::settings("settings", version, now_s() - 60, now_s() + 3600, [0, 0, 0]);
    let mut b = Bundle::new(meta, patch.to_bytes());
    for &k in signers {
        b.sign(&generate([k; 32]));
    }
    b.to_bytes().unwrap()
}

struct Rig {
    _dir: tempfile::TempDir,
    incoming: std::path::PathBuf,
    store: Arc<EventStore>,
    shared: Arc<SharedState>,
    power: watch::Sender<PowerStatus>,
    updater: Updater,
    live: watch::Receiver<crate::update::live::Settings>,
    status: StatusSource,
    cfg: Config,
}

async fn rig(soc: f64) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let role = |keys: &[u8]| Role {
        keys: keys
            .iter()
            .map(|&n| generate([n; 32]).verifying_key().to_bytes())
            .collect(),
        threshold: 2,
    };
    let root = Root {
        version: 1,
        expires_s: now_s() + 86_400,
        root: role(&[1, 2]),
        bundles: role(&[10, 11]),
    };
    let root_path = dir.path().join("root.fnr");
    std::fs::write(
        &root_path,
        root.sign(&[&generate([1; 32]), &generate([2; 32])])
            .unwrap(),
    )
    .unwrap();
    let mut cfg = Config::default();
    cfg.node.data_dir = dir.path().join("data");
    cfg.update.root = Some(root_path);
    std::fs::create_dir_all(&cfg.node.data_dir).unwrap();
    let (store, _) =
        EventStore::open(&dir.path().join("store"), &uplink::StoreConfig::default()).unwrap();
    let store = Arc::new(store);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let installer = Arc::new(Mutex::new(Installer::open(&cfg, clock.now_ms())));
    let cfg_kept = cfg.clone();
    let (power_tx, power_rx) = watch::channel(power(soc));
    let (swap_tx, _swap_rx) = mpsc::channel(1);
    let counters = Arc::new(crate::tasks::Counters::default());
    let shared = Arc::new(SharedState::default());
    let status = StatusSource {
        node_id: "n1".into(),
        board: HealthBoard::default(),
        power: power_rx.clone(),
        store: store.clone(),
        shared: shared.clone(),
        started_ms: clock.now_ms(),
        thermal_zone: dir.path().join("no-thermal-zone"),
        counters: counters.clone(),
        clock: None,
    };
    let incoming = cfg.node.data_dir.join("incoming");
    std::fs::create_dir_all(&incoming).unwrap();
    let mut updater = Updater::new(
        installer,
        incoming.clone(),
        1000,
        power_rx,
        swap_tx,
        clock,
        counters,
    );
    updater.set_soc_thermal_zone(dir.path().join("soc-temp"));
    let (live_tx, live) = crate::update::live::channel();
    updater.set_live_settings(live_tx);
    updater.set_reporter(Reporter::new(status.clone())).await;
    Rig {
        _dir: dir,
        incoming,
        store,
        shared,
        power: power_tx,
        updater,
        live,
        status,
        cfg: cfg_kept,
    }
}

impl Rig {
    /// The status records in the outbox with their priority, oldest first.
    fn records(&self) -> Vec<(messages::StatusRecord, Priority)> {
        let mut v: Vec<_> = self
            .store
            .pending(Priority::Low, 100)
            .unwrap()
            .items
            .into_iter()
            .filter_map(|i| match i.message {
                Message::Status(s) => Some((s, i.priority)),
                Message::Event(_) => None,
            })
            .collect();
        v.sort_by_key(|(s, _)| s.id);
        v
    }

    fn states(&self) -> Vec<String> {
        self.shared
            .update
            .take_results()
            .into_iter()
            .map(|p| p.state)
            .collect()
    }
}

#[tokio::test]
async fn a_deferral_is_reported_once_per_kind_of_reason_then_the_install_at_priority_high() {
    let mut r = rig(0.3).await;
    std::fs::write(r.incoming.join("s1.fnb"), settings(1, &[10, 11])).unwrap();
    assert!(r.updater.pass().await.is_none());
    // The charge moves but the reason stays of the same kind: no new report.
    r.power.send_replace(power(0.28));
    assert!(r.updater.pass().await.is_none());
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (s, p) = &recs[0];
    assert_eq!(*p, Priority::High);
    assert_eq!(s.cause, StatusCause::UpdateResult);
    let last = s.update.last.clone().unwrap();
    assert_eq!(last.result, UpdateOutcome::Deferred);
    assert_eq!((last.name.as_str(), last.version), ("settings", 1));
    assert_eq!(s.update.settings, 0);
    assert_eq!(r.states(), ["deferred"]);
    assert!(r.live.borrow().is_none());
    // Charge recovered: installed, reported, and applied at once.
    r.power.send_replace(power(0.9));
    assert!(r.updater.pass().await.is_none());
    let recs = r.records();
    assert_eq!(recs.len(), 2, "{recs:?}");
    let (s, p) = &recs[1];
    assert_eq!(*p, Priority::High);
    assert_eq!(s.update.settings, 1);
    assert_eq!(
        s.update.last.as_ref().map(|l| l.result),
        Some(UpdateOutcome::Installed)
    );
    let results = r.shared.update.take_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].state, "installed");
    assert_eq!(results[0].transfer.len(), 16, "{:?}", results[0]);
    let live = r.live.borrow().clone().expect("settings sent to the tasks");
    assert_eq!(live.version, 1);
    assert_eq!(live.fusion.thresholds.get("wildlife"), Some(&0.99));
    assert_eq!(live.policy.camera_interval_ms, 7_000);
    // Later status records carry what is installed.
    assert_eq!(r.shared.update.status().settings, 1);
}

#[tokio::test]
async fn a_hot_soc_defers_the_install_until_it_cools() {
    let mut r = rig(0.9).await;
    let zone = r
        .incoming
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("soc-temp");
    std::fs::write(&zone, "81250\n").unwrap();
    std::fs::write(r.incoming.join("s1.fnb"), settings(1, &[10, 11])).unwrap();
    assert!(r.updater.pass().await.is_none());
    let results = r.shared.update.take_results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].state, "deferred");
    assert_eq!(results[0].reason, "SoC at 81.2 °C, above 75 °C");
    assert!(r.live.borrow().is_none());
    // Cooled down: installed at the next look.
    std::fs::write(&zone, "62000\n").unwrap();
    assert!(r.updater.pass().await.is_none());
    let results = r.shared.update.take_results();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].state, "installed", "{results:?}");
}

#[tokio::test]
async fn a_refusal_is_reported_at_priority_high_with_its_reason() {
    let mut r = rig(0.9).await;
    // Signed by one trusted key and one unknown: below the threshold.
    std::fs::write(r.incoming.join("forged.fnb"), settings(2, &[10, 66])).unwrap();
    assert!(r.updater.pass().await.is_none());
    assert!(!r.incoming.join("forged.fnb").exists());
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (s, p) = &recs[0];
    assert_eq!(*p, Priority::High);
    let last = s.update.last.clone().unwrap();
    assert_eq!(last.result, UpdateOutcome::Refused);
    assert!(last.reason.as_str().starts_with("signatures"), "{last:?}");
    // The metadata read, so the result names the bundle.
    assert_eq!((last.name.as_str(), last.version), ("settings", 2));
    let results = r.shared.update.take_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].state, "refused");
    assert!(results[0].reason.starts_with("signatures"));
    assert!(r.live.borrow().is_none());
}

#[tokio::test]
async fn the_technicians_time_reference_raises_the_time_floor() {
    let mut r = rig(0.9).await;
    // The node's clock is behind: by the technician's time (set over the
    // field link) the bundle expired an hour ago.
    let data_dir = r.incoming.parent().unwrap().to_path_buf();
    let later_ms = (now_s() as i64 + 2 * 3600) * 1000;
    let reference = crate::fieldlink::timeref::TimeReference::received(
        later_ms,
        1000,
        SystemClock.now_ms(),
        &crate::fieldlink::timeref::Now::read(),
    );
    reference
        .store(&crate::fieldlink::timeref::path(&data_dir))
        .unwrap();
    std::fs::write(r.incoming.join("stale.fnb"), settings(2, &[10, 11])).unwrap();
    assert!(r.updater.pass().await.is_none());
    let recs = r.records();
    let last = recs[0].0.update.last.clone().unwrap();
    assert_eq!(last.result, UpdateOutcome::Refused);
    assert!(last.reason.as_str().starts_with("expired"), "{last:?}");
    assert!(r.live.borrow().is_none());
}

#[tokio::test]
async fn a_bundle_refused_at_its_mqtt_announce_is_reported_at_priority_high() {
    let r = rig(0.9).await;
    let p = crate::update::receive::Progress {
        transfer: "0011223344556677".into(),
        kind: "model".into(),
        name: "fusion".into(),
        version: 9,
        received: 0,
        total: 100_000,
        state: "refused".into(),
        reason: "signatures: 1 valid signature, 2 required".into(),
    };
    Reporter::new(r.status.clone())
        .report_transfer_refused(&p, 1_000)
        .await;
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (s, prio) = &recs[0];
    assert_eq!(*prio, Priority::High);
    let last = s.update.last.clone().unwrap();
    assert_eq!(last.result, UpdateOutcome::Refused);
    assert_eq!((last.name.as_str(), last.version), ("fusion", 9));
    // The refusal was the answer on update/status already.
    assert!(r.shared.update.take_results().is_empty());
    assert_eq!(
        crate::tasks::Counters::get(&r.status.counters.updates_refused),
        1
    );
}

/// A status at `soc` on a charger: the charge input above the load.
fn charging(soc: f64) -> PowerStatus {
    PowerPolicy::new(PolicyConfig::default()).update(PowerReading {
        t_ms: 0,
        soc,
        solar_w: 25.0,
        load_w: 3.0,
        battery_mv: None,
    })
}

#[tokio::test]
async fn a_handed_over_bundle_gets_its_result_and_force_power_needs_a_supply() {
    use crate::update::handoff::Handoff;
    let mut r = rig(0.3).await;
    let handoff = Arc::new(Handoff::default());
    r.updater.set_handoff(handoff.clone());

    // Low charge, no supply: forced or not, the power policy defers it,
    // and the link hears why.
    let path = r.incoming.join("settings-settings-1-link.fnb");
    std::fs::write(&path, settings(1, &[10, 11])).unwrap();
    let result = handoff.register(path.clone(), true);
    assert!(r.updater.pass().await.is_none());
    let o = result.await.unwrap();
    assert_eq!(o.result, "deferred", "{o:?}");
    assert!(path.exists(), "a deferred bundle stays");

    // The same charge on a charger: not forced, still deferred.
    r.power.send_replace(charging(0.3));
    let result = handoff.register(path.clone(), false);
    assert!(r.updater.pass().await.is_none());
    assert_eq!(result.await.unwrap().result, "deferred");

    // Forced on a charger: installed despite the charge.
    let result = handoff.register(path.clone(), true);
    assert!(r.updater.pass().await.is_none());
    let o = result.await.unwrap();
    assert_eq!(o.result, "installed", "{o:?}");
    assert!(!path.exists());
    assert_eq!(r.live.borrow().as_ref().map(|l| l.version), Some(1));
    // Reported to the operator as any install.
    assert!(r.states().contains(&"installed".to_string()));
}

#[tokio::test]
async fn a_refusal_by_update_apply_becomes_the_last_result_and_is_reported() {
    let mut r = rig(0.9).await;
    let file = r.incoming.parent().unwrap().join("forged.fnb");
    std::fs::write(&file, settings(2, &[10, 66])).unwrap();
    let now = SystemClock.now_ms();
    let refused = crate::update::commands::apply(&r.cfg, &file, now).unwrap();
    let reason = refused.expect_err("refused");
    assert!(reason.starts_with("signatures"), "{reason}");
    assert!(crate::update::task::pending(&r.incoming).is_empty());
    // `fieldnode update status` shows it at once.
    let st = crate::update::commands::status(&r.cfg, now);
    let last = st.state.last.clone().expect("the refusal");
    assert_eq!(
        (last.result.as_str(), last.name.as_str(), last.version),
        ("refused", "settings", 2)
    );
    assert_eq!(last.reason, reason);
    // The node's next pass records it in its install state and reports it.
    assert!(r.updater.pass().await.is_none());
    let state =
        crate::update::InstallState::load(&r.cfg.node.data_dir.join("update").join("state.toml"))
            .unwrap();
    assert_eq!(
        state.last.as_ref().map(|l| l.reason.as_str()),
        Some(reason.as_str())
    );
    let recs = r.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    let (s, p) = &recs[0];
    assert_eq!(*p, Priority::High);
    assert_eq!(s.cause, StatusCause::UpdateResult);
    let last = s.update.last.clone().unwrap();
    assert_eq!(last.result, UpdateOutcome::Refused);
    assert!(last.reason.as_str().starts_with("signatures"), "{last:?}");
    assert_eq!((last.name.as_str(), last.version), ("settings", 2));
    // Later status records carry it too, and it is reported once.
    assert_eq!(
        r.shared.update.status().last.map(|l| l.result),
        Some(UpdateOutcome::Refused)
    );
    assert_eq!(r.states(), ["refused"]);
    assert!(r.updater.pass().await.is_none());
    assert_eq!(r.records().len(), 1);
    assert_eq!(
        crate::tasks::Counters::get(&r.status.counters.updates_refused),
        1
    );
}
