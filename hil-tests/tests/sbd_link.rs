//! The Iridium SBD driver (`uplink::sbd`) against the modem emulator on a
//! pseudo-terminal: real serial semantics, scripted failures, no modem.

use std::path::Path;
use std::time::Duration;

use hil_tests::sbd_emu::{SbdEmulator, Silence};
use messages::command::{Command, parse_mt};
use messages::pack::{SBD_MO_MAX, pack, unpack};
use messages::{
    EventClass, EventRecord, KeyFeatures, Message, ModalityScores, ModelVersion, Permille, Priority,
};
use uplink::sbd::SerialStream;
use uplink::sbd::modem::{IRIDIUM_EPOCH_UNIX_MS, IRIDIUM_TICK_MS};
use uplink::sbd::{
    BudgetLimits, CreditBudget, MoOutcome, ModemPower, ModemTimeouts, MtMessage, PowerError,
    ReportOnly, SbdError, SbdLink, SbdLinkConfig, SbdModem, WallClock, open_serial,
};

const NODE: &str = "node-07";
const NOW_MS: i64 = 1_780_000_000_000;

struct FixedClock(i64);
impl WallClock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0
    }
}

fn cfg() -> SbdLinkConfig {
    SbdLinkConfig {
        timeouts: ModemTimeouts {
            command: Duration::from_millis(800),
            session: Duration::from_millis(1500),
        },
        backoff_min: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        give_up_after: Duration::from_secs(20),
        timeouts_before_power_cycle: 2,
        max_power_cycles: 1,
        boot_delay: Duration::from_millis(5),
        ring_alerts: false,
        mt_read_attempts: 3,
    }
}

fn event(id: u64) -> Message {
    Message::Event(EventRecord {
        id,
        node_id: NODE.into(),
        start_ms: NOW_MS + (id as i64) * 137_411,
        duration_ms: 2_000 + (id as u32 % 7) * 450,
        class: EventClass::ALL[(id % 5) as usize],
        confidence: Permille((600 + id * 7 % 400) as u16),
        scores: ModalityScores {
            audio: Some(Permille((id * 13 % 1000) as u16)),
            camera: if id.is_multiple_of(3) {
                None
            } else {
                Some(Permille(321))
            },
            climate: None,
        },
        features: KeyFeatures {
            audio_snr_db10: Some(150 + (id % 50) as i16),
            audio_peak_hz: Some(2_000 + (id % 40) as u16 * 25),
            motion_area: Some(Permille(42)),
            motion_centroid: Some((200, (id % 256) as u8)),
            temp_delta_c100: Some(-3),
            temp_c100: Some(1_850),
        },
        model: ModelVersion::TRIGGERS_ONLY,
        time: Default::default(),
        mono: None,
    })
}

fn budget(dir: &Path, limits: BudgetLimits) -> CreditBudget {
    CreditBudget::open(&dir.join("credits.json"), limits, NOW_MS).expect("budget opens")
}

fn roomy() -> BudgetLimits {
    BudgetLimits {
        per_day: 10_000,
        per_month: 100_000,
    }
}

/// A power switch that cycles the emulated modem.
fn switch(emu: &SbdEmulator) -> impl ModemPower + use<> {
    let s = emu.power_switch();
    move || -> Result<(), PowerError> {
        s.power_cycle();
        Ok(())
    }
}

fn port(emu: &SbdEmulator) -> SerialStream {
    open_serial(emu.path(), 19_200).expect("pty opens as a serial port")
}

fn link<P: ModemPower>(
    emu: &SbdEmulator,
    power: P,
    dir: &Path,
    limits: BudgetLimits,
) -> SbdLink<SerialStream, P, FixedClock> {
    SbdLink::new(
        port(emu),
        power,
        FixedClock(NOW_MS),
        budget(dir, limits),
        cfg(),
    )
}

#[tokio::test]
async fn init_signal_and_network_time() {
    let emu = SbdEmulator::start().unwrap();
    let mut modem = SbdModem::new(port(&emu), cfg().timeouts, false);
    modem.init().await.unwrap();
    let cmds = emu.commands();
    for c in ["AT", "ATE0", "AT&K0", "AT+SBDMTA=0", "AT+SBDD0"] {
        assert!(cmds.iter().any(|x| x == c), "{c} not sent: {cmds:?}");
    }
    emu.set_signal(2);
    assert_eq!(modem.signal().await.unwrap(), 2);
    emu.set_network_ticks(Some(0x1000));
    assert_eq!(
        modem.network_time().await.unwrap(),
        Some(IRIDIUM_EPOCH_UNIX_MS + 0x1000 * IRIDIUM_TICK_MS)
    );
    emu.set_network_ticks(None);
    assert_eq!(modem.network_time().await.unwrap(), None);
}

#[tokio::test]
async fn a_packed_message_is_delivered_with_its_ids() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut link = link(&emu, ReportOnly, dir.path(), roomy());
    let records: Vec<Message> = (100..120).map(event).collect();
    let packed = pack(&records, SBD_MO_MAX).unwrap();
    assert!(packed.bytes.len() <= SBD_MO_MAX);
    let report = link
        .send(&packed.bytes, packed.ids_included.clone(), Priority::Normal)
        .await
        .unwrap();
    assert_eq!(
        report.outcome,
        MoOutcome::Delivered {
            momsn: 1,
            ids: packed.ids_included.clone()
        }
    );
    assert_eq!(emu.delivered(), vec![packed.bytes.clone()]);
    let back = unpack(&emu.delivered()[0], NODE).unwrap();
    assert_eq!(back, records[..back.len()].to_vec());
    assert_eq!(emu.mo_buffer(), None, "MO buffer cleared after success");
    assert_eq!(report.credits, uplink::sbd::credits_for(packed.bytes.len()));
    assert_eq!(
        link.budget().spent(NOW_MS),
        (report.credits, report.credits)
    );
}

#[tokio::test]
async fn failing_sessions_32_35_18_then_success_deliver_once() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut link = link(&emu, ReportOnly, dir.path(), roomy());
    emu.script_sessions(&[32, 35, 18]);
    let payload = pack(&[event(1), event(2)], SBD_MO_MAX).unwrap();
    let report = link
        .send(
            &payload.bytes,
            payload.ids_included.clone(),
            Priority::Normal,
        )
        .await
        .unwrap();
    assert!(matches!(report.outcome, MoOutcome::Delivered { ref ids, .. } if *ids == vec![1, 2]));
    assert_eq!(report.sessions, 4);
    assert_eq!(emu.sessions(), 4);
    assert_eq!(emu.delivered(), vec![payload.bytes]);
}

/// The node's loop in miniature: an outbox (a Vec) drained through the link
/// while sessions fail; a record leaves the outbox only on Delivered.
#[tokio::test]
async fn an_outbox_drains_exactly_once_through_failures() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg();
    // Short give-up: some sends end RetryLater and are sent again later.
    c.give_up_after = Duration::from_millis(30);
    c.backoff_min = Duration::from_millis(10);
    let mut link = SbdLink::new(
        port(&emu),
        ReportOnly,
        FixedClock(NOW_MS),
        budget(dir.path(), roomy()),
        c,
    );
    let records: Vec<Message> = (1..=120).map(event).collect();
    let mut outbox = records.clone();
    emu.script_sessions(&[
        32, 35, 18, 0, 32, 32, 32, 32, 32, 32, 0, 18, 0, 35, 35, 35, 35, 35, 35, 35, 0,
    ]);
    let mut retry_later = 0;
    for _ in 0..100 {
        if outbox.is_empty() {
            break;
        }
        let packed = pack(&outbox, SBD_MO_MAX).unwrap();
        assert!(packed.bytes.len() <= SBD_MO_MAX);
        let report = link
            .send(&packed.bytes, packed.ids_included.clone(), Priority::Normal)
            .await
            .unwrap();
        match report.outcome {
            MoOutcome::Delivered { ids, .. } => outbox.retain(|m| !ids.contains(&m.id())),
            MoOutcome::RetryLater { status } => {
                assert!(status.is_some());
                retry_later += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(outbox.is_empty(), "{} records left", outbox.len());
    assert!(
        retry_later > 0,
        "the script should have made some sends give up"
    );
    let received: Vec<Message> = emu
        .delivered()
        .iter()
        .flat_map(|m| unpack(m, NODE).unwrap())
        .collect();
    assert_eq!(received, records, "every record exactly once, in order");
}

#[tokio::test]
async fn permanent_failure_is_reported_and_nothing_is_delivered() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut link = link(&emu, ReportOnly, dir.path(), roomy());
    emu.script_sessions(&[12]);
    let p = pack(&[event(5)], SBD_MO_MAX).unwrap();
    let report = link
        .send(&p.bytes, p.ids_included, Priority::High)
        .await
        .unwrap();
    assert_eq!(report.outcome, MoOutcome::Failed { status: 12 });
    assert_eq!(report.sessions, 1);
    assert!(emu.delivered().is_empty());
    assert_eq!(
        link.budget().spent(NOW_MS),
        (0, 0),
        "a refused message costs nothing"
    );
}

#[tokio::test]
async fn a_command_timeout_is_retried_without_power_cycle() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut link = link(&emu, ReportOnly, dir.path(), roomy());
    link.init().await.unwrap();
    // The next command (the MO write) goes unanswered once.
    emu.set_silence(Silence::ForCommands(1));
    let p = pack(&[event(9)], SBD_MO_MAX).unwrap();
    let report = link
        .send(&p.bytes, p.ids_included, Priority::Normal)
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, MoOutcome::Delivered { .. }),
        "{report:?}"
    );
    assert_eq!(report.power_cycles, 0);
    assert_eq!(emu.delivered(), vec![p.bytes]);
}

#[tokio::test]
async fn a_modem_that_stops_answering_is_power_cycled_and_recovers() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut link = link(&emu, switch(&emu), dir.path(), roomy());
    link.init().await.unwrap();
    emu.set_silence(Silence::UntilPowerCycle);
    let p = pack(&[event(1), event(2), event(3)], SBD_MO_MAX).unwrap();
    let report = link
        .send(&p.bytes, p.ids_included.clone(), Priority::Normal)
        .await
        .unwrap();
    assert!(
        matches!(report.outcome, MoOutcome::Delivered { ref ids, .. } if *ids == p.ids_included),
        "{report:?}"
    );
    assert_eq!(report.power_cycles, 1);
    assert_eq!(emu.power_cycles(), 1);
    assert_eq!(
        emu.delivered(),
        vec![p.bytes],
        "written again after the power cycle, delivered once"
    );
}

#[tokio::test]
async fn a_modem_that_never_answers_is_reported() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    emu.set_silence(Silence::UntilPowerCycle);
    // No power switch on this node.
    let mut link1 = link(&emu, ReportOnly, dir.path(), roomy());
    let p = pack(&[event(1)], SBD_MO_MAX).unwrap();
    match link1.send(&p.bytes, p.ids_included, Priority::Normal).await {
        Err(SbdError::Unresponsive {
            power_cycles: 0, ..
        }) => {}
        other => panic!("expected Unresponsive, got {other:?}"),
    }
    // A switch that does not help: one cycle, then reported.
    let emu2 = SbdEmulator::start().unwrap();
    emu2.set_silence(Silence::UntilPowerCycle);
    let useless = || -> Result<(), PowerError> { Ok(()) };
    let dir2 = tempfile::tempdir().unwrap();
    let mut link2 = link(&emu2, useless, dir2.path(), roomy());
    let p = pack(&[event(1)], SBD_MO_MAX).unwrap();
    match link2.send(&p.bytes, p.ids_included, Priority::Normal).await {
        Err(SbdError::Unresponsive {
            power_cycles: 1, ..
        }) => {}
        other => panic!("expected Unresponsive after one cycle, got {other:?}"),
    }
    assert!(emu2.delivered().is_empty());
}

#[tokio::test]
async fn an_mt_command_arrives_with_a_session_and_parses() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut link = link(&emu, ReportOnly, dir.path(), roomy());
    emu.queue_mt(&Command::FlushOutbox.encode_mt());
    emu.queue_mt(&Command::SendStatus.encode_mt());
    let p = pack(&[event(1)], SBD_MO_MAX).unwrap();
    let report = link
        .send(&p.bytes, p.ids_included, Priority::Normal)
        .await
        .unwrap();
    assert!(matches!(report.outcome, MoOutcome::Delivered { .. }));
    assert_eq!(report.mt_queued, 1, "one more waits at the gateway");
    let [MtMessage::Received { payload, .. }] = report.mt.as_slice() else {
        panic!("expected one MT message, got {:?}", report.mt);
    };
    assert_eq!(parse_mt(payload), Ok(Command::FlushOutbox));
    // MO (1 credit) + MT (1 credit).
    assert_eq!(report.credits, 2);
}

#[tokio::test]
async fn a_bad_mt_checksum_from_the_modem_is_reread_then_reported() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut link = link(&emu, ReportOnly, dir.path(), roomy());
    emu.queue_mt(&Command::SendStatus.encode_mt());
    emu.corrupt_mt_reads(1);
    let p = pack(&[event(1)], SBD_MO_MAX).unwrap();
    let report = link
        .send(&p.bytes, p.ids_included.clone(), Priority::Normal)
        .await
        .unwrap();
    assert!(
        matches!(report.mt.as_slice(), [MtMessage::Received { payload, .. }] if parse_mt(payload) == Ok(Command::SendStatus)),
        "{report:?}"
    );
    // Corrupt on every read: reported unreadable, the MO still delivered.
    emu.queue_mt(&Command::SendStatus.encode_mt());
    emu.corrupt_mt_reads(100);
    let report = link
        .send(&p.bytes, p.ids_included, Priority::Normal)
        .await
        .unwrap();
    assert!(matches!(report.outcome, MoOutcome::Delivered { .. }));
    assert!(
        matches!(report.mt.as_slice(), [MtMessage::Unreadable { error, .. }] if error.contains("checksum")),
        "{report:?}"
    );
}

#[tokio::test]
async fn a_spent_budget_lets_only_urgent_messages_go() {
    let emu = SbdEmulator::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let limits = BudgetLimits {
        per_day: 2,
        per_month: 100,
    };
    let mut link = link(&emu, ReportOnly, dir.path(), limits);
    let p = pack(&[event(1), event(2), event(3)], SBD_MO_MAX).unwrap();
    assert!(
        p.bytes.len() > 50 && p.bytes.len() <= 100,
        "two credits: {}",
        p.bytes.len()
    );
    let r = link
        .send(&p.bytes, p.ids_included.clone(), Priority::Normal)
        .await
        .unwrap();
    assert!(matches!(r.outcome, MoOutcome::Delivered { .. }));
    let sessions = emu.sessions();
    let r = link
        .send(&p.bytes, p.ids_included.clone(), Priority::High)
        .await
        .unwrap();
    assert_eq!(r.outcome, MoOutcome::BudgetSpent);
    assert_eq!(emu.sessions(), sessions, "the modem was not touched");
    let r = link
        .send(&p.bytes, p.ids_included.clone(), Priority::Urgent)
        .await
        .unwrap();
    assert!(matches!(r.outcome, MoOutcome::Delivered { .. }));
    assert_eq!(emu.delivered().len(), 2);
    // The spend survives a restart.
    drop(link);
    let reopened = budget(dir.path(), limits);
    assert_eq!(reopened.spent(NOW_MS), (4, 4));
    assert!(!reopened.allows(Priority::Normal, 1, NOW_MS));
    assert!(
        reopened.allows(Priority::Normal, 1, NOW_MS + 86_400_000),
        "a new day"
    );
}
