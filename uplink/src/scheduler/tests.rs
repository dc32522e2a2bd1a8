//! One test per scheduler rule.

use messages::{
    EventClass, EventRecord, KeyFeatures, ModalityScores, ModelVersion, Permille, unpack,
};

use super::*;

const NOW: i64 = 1_780_000_000_000;
const ALLOW: power::Decision = power::Decision::Allow;

struct Credits(u32, u32);

impl CreditsLeft for Credits {
    fn credits_left(&self, _now_ms: i64) -> (u32, u32) {
        (self.0, self.1)
    }
}

const PLENTY: Credits = Credits(100, 1000);

fn item(id: u64, priority: Priority, age_ms: i64) -> PendingItem {
    item_of("n1", id, priority, age_ms)
}

fn item_of(node: &str, id: u64, priority: Priority, age_ms: i64) -> PendingItem {
    let e = EventRecord {
        id,
        node_id: node.into(),
        start_ms: NOW - age_ms,
        duration_ms: 2000,
        class: EventClass::Wildlife,
        confidence: Permille(850),
        scores: ModalityScores {
            audio: Some(Permille(900)),
            camera: Some(Permille(700)),
            climate: None,
        },
        features: KeyFeatures {
            audio_peak_hz: Some(3100),
            ..KeyFeatures::default()
        },
        model: ModelVersion::TRIGGERS_ONLY,
        time: Default::default(),
        mono: None,
    };
    let message = Message::Event(e);
    PendingItem {
        id,
        priority,
        time_ms: NOW - age_ms,
        bytes: message.encode(),
        message,
    }
}

fn round<'a>(items: &'a [PendingItem], mqtt_up: bool, credits: &'a Credits) -> Round<'a> {
    Round {
        now_ms: NOW,
        mqtt_up,
        sbd: SbdState::Ready { signal_bars: 4 },
        power: &ALLOW,
        credits,
        items,
        sbd_refusals: &NoRefusals,
    }
}

fn wait_reason(d: &Decision) -> &WaitReason {
    match &d.action {
        Action::Wait { reason } => reason,
        other => panic!("expected a wait, got {other:?}"),
    }
}

fn sbd(d: &Decision) -> (&[u64], &[u8], u32, SbdTrigger) {
    match &d.action {
        Action::SendSbd {
            ids,
            message,
            credits,
            trigger,
        } => (ids, message, *credits, *trigger),
        other => panic!("expected a satellite session, got {other:?}"),
    }
}

fn sched() -> Scheduler {
    Scheduler::new(SchedulerConfig::default())
}

#[test]
fn nothing_pending_waits_even_when_power_is_short() {
    let deny = power::Decision::Deny("battery 10%".into());
    let r = Round {
        power: &deny,
        ..round(&[], true, &PLENTY)
    };
    assert_eq!(
        wait_reason(&sched().decide(&r)),
        &WaitReason::NothingPending
    );
}

#[test]
fn a_power_denial_skips_with_the_policy_reason_on_any_link() {
    let items = [item(1, Priority::Urgent, 600_000)];
    let deny = power::Decision::Deny("battery 25% is below the uplink minimum of 30%".into());
    for mqtt_up in [true, false] {
        let r = Round {
            power: &deny,
            ..round(&items, mqtt_up, &PLENTY)
        };
        match sched().decide(&r).action {
            Action::Skip { reason } => assert!(reason.contains("25%"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn mqtt_up_sends_everything_in_order_up_to_the_batch() {
    let items: Vec<_> = (1..=5)
        .map(|id| item(id, Priority::ALL[(id % 4) as usize], 0))
        .collect();
    let s = Scheduler::new(SchedulerConfig {
        mqtt_batch: 3,
        ..SchedulerConfig::default()
    });
    assert_eq!(
        s.decide(&round(&items, true, &Credits(0, 0))).action,
        Action::SendMqtt { ids: vec![1, 2, 3] }
    );
}

#[test]
fn mqtt_down_leaves_items_below_the_satellite_priority_waiting() {
    let items = [
        item(1, Priority::Normal, 10 * 86_400_000),
        item(2, Priority::Low, 0),
        item(3, Priority::Normal, 0),
    ];
    let d = sched().decide(&round(&items, false, &PLENTY));
    assert_eq!(
        wait_reason(&d),
        &WaitReason::MqttDown {
            waiting: [1, 2, 0, 0]
        }
    );
    assert!(wait_reason(&d).to_string().contains("normal 2"));
}

#[test]
fn no_modem_or_weak_signal_waits() {
    let items = [item(1, Priority::Urgent, 600_000)];
    let r = Round {
        sbd: SbdState::Unavailable,
        ..round(&items, false, &PLENTY)
    };
    assert_eq!(
        wait_reason(&sched().decide(&r)),
        &WaitReason::SbdUnavailable
    );
    let r = Round {
        sbd: SbdState::Ready { signal_bars: 1 },
        ..round(&items, false, &PLENTY)
    };
    assert_eq!(
        wait_reason(&sched().decide(&r)),
        &WaitReason::WeakSignal { bars: 1, min: 2 }
    );
}

#[test]
fn sessions_keep_the_minimum_interval() {
    let items = [item(1, Priority::Urgent, 600_000)];
    let mut s = sched();
    s.sbd_session_started(NOW - 100_000);
    assert_eq!(
        wait_reason(&s.decide(&round(&items, false, &PLENTY))),
        &WaitReason::SbdInterval {
            remaining_ms: 200_000
        }
    );
    s.sbd_session_started(NOW - 300_000);
    sbd(&s.decide(&round(&items, false, &PLENTY)));
}

#[test]
fn a_fresh_urgent_item_waits_for_company_until_its_longest_wait() {
    let fresh = [item(1, Priority::Urgent, 10_000)];
    match wait_reason(&sched().decide(&round(&fresh, false, &PLENTY))) {
        WaitReason::Filling {
            due_in_ms, bytes, ..
        } => {
            assert_eq!(*due_in_ms, 50_000);
            assert!(*bytes > 0 && *bytes < 100, "{bytes}");
        }
        other => panic!("{other:?}"),
    }
    let due = [
        item(1, Priority::Urgent, 60_000),
        item(2, Priority::High, 10),
    ];
    let d = sched().decide(&round(&due, false, &PLENTY));
    let (ids, message, credits, trigger) = sbd(&d);
    assert_eq!(ids, [1, 2]);
    assert_eq!(
        trigger,
        SbdTrigger::MaxWait {
            id: 1,
            waited_ms: 60_000
        }
    );
    assert_eq!(credits, credits_for(message.len()));
    let back = unpack(message, "n1").unwrap();
    assert_eq!(back, [due[0].message.clone(), due[1].message.clone()]);
}

#[test]
fn high_items_go_when_the_message_is_full_and_never_exceed_it() {
    let items: Vec<_> = (1..=40).map(|id| item(id, Priority::High, 1000)).collect();
    let d = sched().decide(&round(&items, false, &PLENTY));
    let (ids, message, credits, trigger) = sbd(&d);
    assert_eq!(trigger, SbdTrigger::Full);
    assert!(message.len() <= 340, "{}", message.len());
    assert!(ids.len() < 40 && ids.len() > 3, "{}", ids.len());
    let want: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, want);
    assert_eq!(credits, credits_for(message.len()));
    // A few fresh high items are not worth a session yet.
    let few = &items[..3];
    assert_eq!(
        wait_reason(&sched().decide(&round(few, false, &PLENTY))).code(),
        "filling"
    );
    // After the longest wait they go.
    let old: Vec<_> = (1..=3)
        .map(|id| item(id, Priority::High, 3_600_000))
        .collect();
    assert_eq!(
        sbd(&sched().decide(&round(&old, false, &PLENTY))).0,
        [1, 2, 3]
    );
}

#[test]
fn a_spent_budget_stops_all_but_urgent_items() {
    let high: Vec<_> = (1..=40)
        .map(|id| item(id, Priority::High, 7_200_000))
        .collect();
    assert_eq!(
        wait_reason(&sched().decide(&round(&high, false, &Credits(0, 37)))),
        &WaitReason::BudgetSpent {
            today: 0,
            month: 37
        }
    );
    // An urgent item still goes; high ones ride along only in the room
    // the urgent part pays for anyway.
    let mut mixed = vec![item(100, Priority::Urgent, 120_000)];
    mixed.extend(high.iter().cloned());
    let urgent_alone = pack(&[mixed[0].message.clone()], 340).unwrap();
    let d = sched().decide(&round(&mixed, false, &Credits(0, 0)));
    let (ids, message, credits, _) = sbd(&d);
    assert_eq!(ids[0], 100);
    assert_eq!(credits, credits_for(urgent_alone.bytes.len()));
    assert!(message.len() <= 50 * credits as usize);
}

#[test]
fn a_small_budget_caps_the_message() {
    let high: Vec<_> = (1..=40)
        .map(|id| item(id, Priority::High, 7_200_000))
        .collect();
    let d = sched().decide(&round(&high, false, &Credits(2, 100)));
    let (ids, message, credits, trigger) = sbd(&d);
    assert!(message.len() <= 100, "{}", message.len());
    assert_eq!(credits, 2);
    assert_eq!(trigger, SbdTrigger::Full);
    assert!(ids.len() >= 2);
}

#[test]
fn items_that_cannot_be_packed_are_reported_and_the_rest_go() {
    let items = [
        item(1, Priority::Urgent, 120_000),
        item_of("other-node", 2, Priority::Urgent, 120_000),
        item(3, Priority::High, 0),
    ];
    let d = sched().decide(&round(&items, false, &PLENTY));
    assert_eq!(sbd(&d).0, [1, 3]);
    match d.unpackable.as_slice() {
        [PackError::MixedNodes { id: 2, .. }] => {}
        other => panic!("{other:?}"),
    }
}

/// Refusal counts by id, with a quarantine limit.
struct Refused(Vec<(u64, u32)>, u32);

impl SbdRefusals for Refused {
    fn refusals(&self, id: u64) -> u32 {
        self.0.iter().find(|(i, _)| *i == id).map_or(0, |(_, n)| *n)
    }
    fn is_quarantined(&self, id: u64) -> bool {
        self.refusals(id) >= self.1
    }
}

#[test]
fn a_refused_item_goes_alone_at_once_and_never_with_others() {
    let items: Vec<_> = (1..=40).map(|id| item(id, Priority::High, 1000)).collect();
    // Item 1 was in a refused message: first in sending order, it goes
    // alone, without waiting to fill a message.
    let refused = Refused(vec![(1, 1), (3, 2)], 3);
    let r = Round {
        sbd_refusals: &refused,
        ..round(&items, false, &PLENTY)
    };
    let d = sched().decide(&r);
    let (ids, message, credits, trigger) = sbd(&d);
    assert_eq!(ids, [1]);
    assert_eq!(trigger, SbdTrigger::Refused { id: 1, refusals: 1 });
    assert_eq!(credits, credits_for(message.len()));
    assert_eq!(unpack(message, "n1").unwrap(), [items[0].message.clone()]);
    // Not first: the others are packed without it (item 3 is left out too).
    let rest = &items[1..];
    let r = Round {
        sbd_refusals: &refused,
        ..round(rest, false, &PLENTY)
    };
    let d = sched().decide(&r);
    let (ids, _, _, trigger) = sbd(&d);
    assert_eq!(trigger, SbdTrigger::Full);
    assert_eq!(ids[0], 2);
    assert!(!ids.contains(&3) && ids.contains(&4), "{ids:?}");
    // Its turn: alone again. A spent budget holds it like any other.
    let r = Round {
        sbd_refusals: &refused,
        ..round(&items[2..], false, &PLENTY)
    };
    assert_eq!(sbd(&sched().decide(&r)).0, [3]);
    let r = Round {
        sbd_refusals: &refused,
        ..round(&items[2..], false, &Credits(0, 0))
    };
    assert_eq!(
        wait_reason(&sched().decide(&r)),
        &WaitReason::BudgetSpent { today: 0, month: 0 }
    );
    // Urgent: alone, whatever the budget.
    let urgent = [item(7, Priority::Urgent, 0), item(8, Priority::Urgent, 0)];
    let refused_urgent = Refused(vec![(7, 1)], 3);
    let r = Round {
        sbd_refusals: &refused_urgent,
        ..round(&urgent, false, &Credits(0, 0))
    };
    assert_eq!(sbd(&sched().decide(&r)).0, [7]);
}

#[test]
fn quarantined_items_wait_for_mqtt_and_still_go_by_mqtt() {
    let items = [
        item(1, Priority::Urgent, 600_000),
        item(2, Priority::High, 7_200_000),
    ];
    let refused = Refused(vec![(1, 3), (2, 1)], 3);
    // By satellite: item 1 never again; item 2 goes, alone.
    let r = Round {
        sbd_refusals: &refused,
        ..round(&items, false, &PLENTY)
    };
    let d = sched().decide(&r);
    let (ids, _, _, trigger) = sbd(&d);
    assert_eq!(ids, [2]);
    assert_eq!(trigger, SbdTrigger::Refused { id: 2, refusals: 1 });
    // Nothing but quarantined items: they wait for MQTT.
    let r = Round {
        sbd_refusals: &refused,
        ..round(&items[..1], false, &PLENTY)
    };
    assert_eq!(
        wait_reason(&sched().decide(&r)),
        &WaitReason::MqttDown {
            waiting: [0, 0, 0, 1]
        }
    );
    // MQTT takes them all, in order.
    let r = Round {
        sbd_refusals: &refused,
        ..round(&items, true, &PLENTY)
    };
    assert_eq!(
        sched().decide(&r).action,
        Action::SendMqtt { ids: vec![1, 2] }
    );
}

#[test]
fn config_defaults_validate_and_read_from_toml() {
    assert!(SchedulerConfig::default().validate().is_empty());
    let c: SchedulerConfig =
        toml::from_str("sbd_min_priority = \"urgent\"\nsbd_fill_bytes = 400").unwrap();
    assert_eq!(c.sbd_min_priority, Priority::Urgent);
    let keys: Vec<_> = c.validate().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["sbd_fill_bytes"]);
}

#[test]
fn the_credit_budget_file_reports_what_is_left() {
    let t = tempfile::tempdir().unwrap();
    let limits = crate::sbd::BudgetLimits {
        per_day: 10,
        per_month: 30,
    };
    let mut b =
        crate::sbd::CreditBudget::open(&t.path().join("credits.json"), limits, NOW).unwrap();
    assert_eq!(b.credits_left(NOW), (10, 30));
    b.spend(4, NOW).unwrap();
    assert_eq!(b.credits_left(NOW), (6, 26));
    // A new day: the daily part is back, the month's is not.
    assert_eq!(b.credits_left(NOW + 86_400_000), (10, 26));
}
