//! The link scheduler's decision logic: given the links, the power policy's
//! answer for an uplink session, the satellite credits left and the items
//! waiting in the outbox, what to do this round. Pure (no I/O, no clock):
//! the caller gathers the inputs, acts on the [`Decision`], logs its reason
//! and calls [`Scheduler::sbd_session_started`] when it opens a session.
//! Rules, in order (see `docs/outbox.md`):
//!
//! 1. nothing waiting: wait;
//! 2. the power policy denies [`power::Step::Uplink`]: skip, with its reason;
//! 3. MQTT up: send the first `mqtt_batch` items by MQTT, in sending order;
//! 4. MQTT down: items below `sbd_min_priority` wait for MQTT; the others go
//!    by satellite when the modem is ready, the signal strong enough and the
//!    last session at least `sbd_min_interval_ms` ago, and when the packed
//!    message is full or its oldest item waited its priority's longest wait;
//!    non-urgent items only within the credits left, urgent ones always;
//! 5. an item whose satellite message the gateway refused for good
//!    ([`SbdRefusals`]) goes again alone, at once, when its turn comes, and
//!    never again with others; a quarantined one no longer goes by
//!    satellite (it waits for MQTT).

#[cfg(test)]
mod tests;

use messages::pack::{SBD_MO_MAX, credits_for, pack};
use messages::{Message, PackError, Priority};
use serde::{Deserialize, Serialize};

use crate::outbox::priority_name;
use crate::store::PendingItem;

/// `[uplink.scheduler]`: the scheduler's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// Most items handed to MQTT per round.
    pub mqtt_batch: usize,
    /// Lowest priority that may go by satellite.
    #[serde(with = "priority_name")]
    pub sbd_min_priority: Priority,
    /// Fewest signal bars (0..=5, `AT+CSQ`) to open a satellite session.
    pub sbd_min_signal_bars: u8,
    /// Least time between the starts of two satellite sessions, ms.
    pub sbd_min_interval_ms: u64,
    /// After the modem reported itself locked (MO status 16, `AT+CULK`),
    /// no signal check and no session for this long, ms: the lock stays
    /// until someone unlocks the modem, and every try costs the modem's
    /// power for nothing.
    pub sbd_locked_retry_ms: u64,
    /// Largest packed message, bytes (Iridium's MO limit is 340).
    pub sbd_max_bytes: usize,
    /// A packed message this long counts as full and goes at once, bytes.
    pub sbd_fill_bytes: usize,
    /// An urgent item waits at most this long for a fuller message, ms.
    pub sbd_urgent_max_wait_ms: u64,
    /// Any other item waits at most this long for a fuller message, ms.
    pub sbd_max_wait_ms: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            mqtt_batch: 512,
            sbd_min_priority: Priority::High,
            sbd_min_signal_bars: 2,
            sbd_min_interval_ms: 300_000,
            sbd_locked_retry_ms: 3_600_000,
            sbd_max_bytes: SBD_MO_MAX,
            sbd_fill_bytes: 300,
            sbd_urgent_max_wait_ms: 60_000,
            sbd_max_wait_ms: 3_600_000,
        }
    }
}

impl SchedulerConfig {
    /// Range checks, as `(key path relative to this table, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        let mut bad = |k: &str, why: &str| errs.push((k.to_string(), why.to_string()));
        if !(1..=10_000).contains(&self.mqtt_batch) {
            bad("mqtt_batch", "must be between 1 and 10000");
        }
        if self.sbd_min_signal_bars > 5 {
            bad("sbd_min_signal_bars", "must be between 0 and 5");
        }
        if !(16..=SBD_MO_MAX).contains(&self.sbd_max_bytes) {
            bad("sbd_max_bytes", "must be between 16 and 340");
        }
        if self.sbd_fill_bytes == 0 || self.sbd_fill_bytes > self.sbd_max_bytes {
            bad("sbd_fill_bytes", "must be between 1 and sbd_max_bytes");
        }
        if self.sbd_urgent_max_wait_ms > self.sbd_max_wait_ms {
            bad(
                "sbd_urgent_max_wait_ms",
                "must not be above sbd_max_wait_ms",
            );
        }
        errs
    }
}

/// Satellite credits left in the current periods.
pub trait CreditsLeft {
    /// Credits left (today, this month) at `now_ms` for non-urgent traffic.
    fn credits_left(&self, now_ms: i64) -> (u32, u32);
}

impl CreditsLeft for crate::sbd::CreditBudget {
    fn credits_left(&self, now_ms: i64) -> (u32, u32) {
        let (day, month) = self.spent(now_ms);
        let l = self.limits();
        (
            l.per_day.saturating_sub(day),
            l.per_month.saturating_sub(month),
        )
    }
}

/// Items whose satellite messages the gateway refused for good (MO status
/// 12 or 14), as the satellite link keeps them
/// ([`crate::sbd::Quarantine`]).
pub trait SbdRefusals {
    /// Messages carrying `id` that were refused for good.
    fn refusals(&self, id: u64) -> u32;
    /// `id` no longer goes by satellite (it waits for MQTT).
    fn is_quarantined(&self, id: u64) -> bool;
}

/// Nothing refused (no satellite link, or a test).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRefusals;

impl SbdRefusals for NoRefusals {
    fn refusals(&self, _id: u64) -> u32 {
        0
    }
    fn is_quarantined(&self, _id: u64) -> bool {
        false
    }
}

impl SbdRefusals for crate::sbd::Quarantine {
    fn refusals(&self, id: u64) -> u32 {
        crate::sbd::Quarantine::refusals(self, id)
    }
    fn is_quarantined(&self, id: u64) -> bool {
        crate::sbd::Quarantine::is_quarantined(self, id)
    }
}

/// The satellite modem, as the SBD link last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbdState {
    /// No modem configured, or it stopped answering.
    Unavailable,
    /// Answering, with this many signal bars (0..=5).
    Ready {
        /// `AT+CSQ`.
        signal_bars: u8,
    },
}

/// Everything one round is decided on.
pub struct Round<'a> {
    /// Now, ms since the epoch (the clock the records' times come from).
    pub now_ms: i64,
    /// The MQTT session is connected.
    pub mqtt_up: bool,
    /// The satellite modem.
    pub sbd: SbdState,
    /// The power policy's answer for [`power::Step::Uplink`].
    pub power: &'a power::Decision,
    /// Satellite credits left.
    pub credits: &'a dyn CreditsLeft,
    /// Items to consider, in sending order ([`crate::EventStore::pending`]),
    /// without those already handed to a link and not yet confirmed.
    pub items: &'a [PendingItem],
    /// Items the satellite gateway refused for good, and those quarantined.
    pub sbd_refusals: &'a dyn SbdRefusals,
}

/// What to do this round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Publish these items by MQTT, in this order.
    SendMqtt {
        /// Outbox ids.
        ids: Vec<u64>,
    },
    /// Open a satellite session with this packed message.
    SendSbd {
        /// Outbox ids it carries, in packing order.
        ids: Vec<u64>,
        /// The packed MO message (`messages::pack`).
        message: Vec<u8>,
        /// Credits it costs.
        credits: u32,
        /// Why now.
        trigger: SbdTrigger,
    },
    /// Nothing to send now.
    Wait {
        /// Why.
        reason: WaitReason,
    },
    /// Something is waiting but the power policy forbids a session.
    Skip {
        /// The policy's reason.
        reason: String,
    },
}

/// Why a satellite session goes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SbdTrigger {
    /// The message is full (no room for the next item, or `sbd_fill_bytes`).
    Full,
    /// Its oldest item has waited its priority's longest wait.
    MaxWait {
        /// That item.
        id: u64,
        /// How long it waited, ms.
        waited_ms: i64,
    },
    /// A message carrying this item was refused for good: it goes again
    /// alone, without waiting for others.
    Refused {
        /// The item, the message's only one.
        id: u64,
        /// Messages carrying it refused so far.
        refusals: u32,
    },
}

/// Why nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitReason {
    /// The outbox holds nothing to send.
    NothingPending,
    /// MQTT is down and nothing waiting may go by satellite.
    MqttDown {
        /// Items waiting per priority (index = [`Priority::index`]).
        waiting: [u32; 4],
    },
    /// MQTT is down and the modem is unavailable.
    SbdUnavailable,
    /// Too few signal bars.
    WeakSignal {
        /// Bars now.
        bars: u8,
        /// Bars needed.
        min: u8,
    },
    /// The last satellite session was too recent.
    SbdInterval {
        /// Time until the next session may start, ms.
        remaining_ms: i64,
    },
    /// No credits left for non-urgent traffic and nothing urgent waits.
    BudgetSpent {
        /// Credits left today.
        today: u32,
        /// Credits left this month.
        month: u32,
    },
    /// Waiting for more items to fill the message.
    Filling {
        /// Packed bytes so far.
        bytes: usize,
        /// Bytes at which it goes.
        fill_bytes: usize,
        /// Time until its oldest item reaches its longest wait, ms.
        due_in_ms: i64,
    },
    /// No waiting item could be packed.
    Unpackable,
}

impl WaitReason {
    /// A stable short name, for structured logs.
    pub fn code(&self) -> &'static str {
        match self {
            WaitReason::NothingPending => "nothing_pending",
            WaitReason::MqttDown { .. } => "mqtt_down",
            WaitReason::SbdUnavailable => "sbd_unavailable",
            WaitReason::WeakSignal { .. } => "weak_signal",
            WaitReason::SbdInterval { .. } => "sbd_interval",
            WaitReason::BudgetSpent { .. } => "budget_spent",
            WaitReason::Filling { .. } => "filling",
            WaitReason::Unpackable => "unpackable",
        }
    }
}

impl std::fmt::Display for WaitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitReason::NothingPending => write!(f, "nothing to send"),
            WaitReason::MqttDown { waiting } => write!(
                f,
                "MQTT down; waiting for it: low {}, normal {}, high {}, urgent {}",
                waiting[0], waiting[1], waiting[2], waiting[3]
            ),
            WaitReason::SbdUnavailable => {
                write!(f, "MQTT down and the satellite modem unavailable")
            }
            WaitReason::WeakSignal { bars, min } => {
                write!(f, "satellite signal {bars} bars, {min} needed")
            }
            WaitReason::SbdInterval { remaining_ms } => {
                write!(f, "next satellite session allowed in {remaining_ms} ms")
            }
            WaitReason::BudgetSpent { today, month } => write!(
                f,
                "satellite budget spent ({today} credits left today, {month} this month); only urgent items go"
            ),
            WaitReason::Filling {
                bytes,
                fill_bytes,
                due_in_ms,
            } => write!(
                f,
                "satellite message {bytes}/{fill_bytes} bytes; goes when full or in {due_in_ms} ms"
            ),
            WaitReason::Unpackable => write!(f, "no waiting item can be packed"),
        }
    }
}

/// The decision of one round.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Items left out of the satellite message because they cannot be
    /// packed (they stay in the outbox for MQTT); the caller logs them.
    pub unpackable: Vec<PackError>,
}

impl Decision {
    fn of(action: Action) -> Decision {
        Decision {
            action,
            unpackable: Vec::new(),
        }
    }
}

/// Items waiting per priority.
pub fn waiting_per_priority(items: &[PendingItem]) -> [u32; 4] {
    let mut n = [0u32; 4];
    for i in items {
        n[i.priority.index()] = n[i.priority.index()].saturating_add(1);
    }
    n
}

/// The scheduler: its settings and when the last satellite session began.
#[derive(Debug, Clone)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    last_sbd_session_ms: Option<i64>,
}

impl Scheduler {
    /// A scheduler that has not opened a satellite session yet.
    pub fn new(cfg: SchedulerConfig) -> Self {
        Scheduler {
            cfg,
            last_sbd_session_ms: None,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// Records that a satellite session began at `now_ms` (successful or not).
    pub fn sbd_session_started(&mut self, now_ms: i64) {
        self.last_sbd_session_ms = Some(now_ms);
    }

    /// Decides one round.
    pub fn decide(&self, r: &Round<'_>) -> Decision {
        if r.items.is_empty() {
            return Decision::of(Action::Wait {
                reason: WaitReason::NothingPending,
            });
        }
        if let power::Decision::Deny(why) = r.power {
            return Decision::of(Action::Skip {
                reason: why.clone(),
            });
        }
        if r.mqtt_up {
            let ids = r.items.iter().take(self.cfg.mqtt_batch).map(|i| i.id);
            return Decision::of(Action::SendMqtt { ids: ids.collect() });
        }
        self.decide_sbd(r)
    }

    fn decide_sbd(&self, r: &Round<'_>) -> Decision {
        let c = &self.cfg;
        let eligible: Vec<&PendingItem> = r
            .items
            .iter()
            .filter(|i| i.priority >= c.sbd_min_priority && !r.sbd_refusals.is_quarantined(i.id))
            .collect();
        let wait = |reason| Decision::of(Action::Wait { reason });
        if eligible.is_empty() {
            return wait(WaitReason::MqttDown {
                waiting: waiting_per_priority(r.items),
            });
        }
        let bars = match r.sbd {
            SbdState::Unavailable => return wait(WaitReason::SbdUnavailable),
            SbdState::Ready { signal_bars } => signal_bars,
        };
        if bars < c.sbd_min_signal_bars {
            return wait(WaitReason::WeakSignal {
                bars,
                min: c.sbd_min_signal_bars,
            });
        }
        if let Some(last) = self.last_sbd_session_ms {
            let next =
                last.saturating_add(i64::try_from(c.sbd_min_interval_ms).unwrap_or(i64::MAX));
            if r.now_ms < next {
                return wait(WaitReason::SbdInterval {
                    remaining_ms: next - r.now_ms,
                });
            }
        }

        let (today, month) = r.credits.credits_left(r.now_ms);
        let budget_bytes = (today.min(month) as usize)
            .saturating_mul(50)
            .min(c.sbd_max_bytes);
        let mut unpackable = Vec::new();
        let hard = c.sbd_max_bytes;
        // A refused item goes alone when its turn comes (first in sending
        // order), and never rides with others.
        let refusals = |i: &PendingItem| r.sbd_refusals.refusals(i.id);
        if let Some(&first) = eligible.first().filter(|i| refusals(i) > 0) {
            let cap = if first.priority == Priority::Urgent {
                hard
            } else {
                budget_bytes
            };
            if let Some(p) = pack_skipping(&[first], cap, hard, &mut unpackable) {
                return Decision {
                    action: Action::SendSbd {
                        credits: credits_for(p.message.len()),
                        ids: p.ids,
                        message: p.message,
                        trigger: SbdTrigger::Refused {
                            id: first.id,
                            refusals: refusals(first),
                        },
                    },
                    unpackable,
                };
            }
            if unpackable.is_empty() {
                return Decision::of(Action::Wait {
                    reason: WaitReason::BudgetSpent { today, month },
                });
            }
        }
        let (urgent, others): (Vec<&PendingItem>, Vec<&PendingItem>) = eligible
            .into_iter()
            .filter(|i| refusals(i) == 0)
            .partition(|i| i.priority == Priority::Urgent);
        let u = if urgent.is_empty() {
            None
        } else {
            pack_skipping(&urgent, hard, hard, &mut unpackable)
        };
        let packed = match u {
            // Urgent items ignore the budget; others ride along in the room
            // the urgent part already pays for, plus the credits left.
            Some(u) if u.left_out == 0 && !others.is_empty() => {
                let paid = (credits_for(u.message.len()) as usize).saturating_mul(50);
                let cap = paid
                    .max(u.message.len().saturating_add(budget_bytes))
                    .min(hard);
                let all: Vec<&PendingItem> = u.items.iter().chain(&others).copied().collect();
                pack_skipping(&all, cap, hard, &mut unpackable)
                    .filter(|p| p.ids.len() >= u.ids.len())
                    .or(Some(u))
            }
            Some(u) => Some(u),
            None if budget_bytes > 0 => pack_skipping(&others, budget_bytes, hard, &mut unpackable),
            None => None,
        };
        let Some(p) = packed else {
            return Decision {
                action: Action::Wait {
                    reason: if unpackable.is_empty() {
                        WaitReason::BudgetSpent { today, month }
                    } else {
                        WaitReason::Unpackable
                    },
                },
                unpackable,
            };
        };

        // Batching: go when full, or when an item waited long enough.
        let trigger = if p.left_out > 0 || p.message.len() >= c.sbd_fill_bytes {
            Some(SbdTrigger::Full)
        } else {
            p.items
                .iter()
                .map(|i| {
                    (
                        i.id,
                        r.now_ms.saturating_sub(i.time_ms),
                        self.max_wait_ms(i.priority),
                    )
                })
                .filter(|&(_, waited, max)| waited >= max)
                .max_by_key(|&(_, waited, _)| waited)
                .map(|(id, waited_ms, _)| SbdTrigger::MaxWait { id, waited_ms })
        };
        let action = match trigger {
            Some(trigger) => Action::SendSbd {
                credits: credits_for(p.message.len()),
                ids: p.ids,
                message: p.message,
                trigger,
            },
            None => Action::Wait {
                reason: WaitReason::Filling {
                    bytes: p.message.len(),
                    fill_bytes: c.sbd_fill_bytes,
                    due_in_ms: self.due_in_ms(r.now_ms, &p.items),
                },
            },
        };
        Decision { action, unpackable }
    }

    /// Time until the first of `items` reaches its longest wait, ms.
    fn due_in_ms(&self, now_ms: i64, items: &[&PendingItem]) -> i64 {
        items
            .iter()
            .map(|i| {
                self.max_wait_ms(i.priority)
                    .saturating_sub(now_ms.saturating_sub(i.time_ms))
            })
            .min()
            .unwrap_or(0)
    }

    /// The longest an item of priority `p` waits for a fuller message, ms.
    fn max_wait_ms(&self, p: Priority) -> i64 {
        let ms = if p == Priority::Urgent {
            self.cfg.sbd_urgent_max_wait_ms
        } else {
            self.cfg.sbd_max_wait_ms
        };
        i64::try_from(ms).unwrap_or(i64::MAX)
    }
}

struct PackedItems<'a> {
    ids: Vec<u64>,
    message: Vec<u8>,
    items: Vec<&'a PendingItem>,
    /// Candidates that did not fit.
    left_out: usize,
}

/// Packs a prefix of `items` into at most `max_len` bytes, leaving out (and
/// reporting) items that cannot be packed at all: from another node, or too
/// large alone for `hard_max`. `None` when nothing fits.
fn pack_skipping<'a>(
    items: &[&'a PendingItem],
    max_len: usize,
    hard_max: usize,
    unpackable: &mut Vec<PackError>,
) -> Option<PackedItems<'a>> {
    let mut items: Vec<&PendingItem> = items.to_vec();
    loop {
        if items.is_empty() {
            return None;
        }
        let messages: Vec<Message> = items.iter().map(|i| i.message.clone()).collect();
        match pack(&messages, max_len) {
            Ok(p) if p.is_empty() => return None,
            Ok(p) => {
                let n = p.ids_included.len();
                return Some(PackedItems {
                    left_out: items.len() - n,
                    items: items[..n].to_vec(),
                    ids: p.ids_included,
                    message: p.bytes,
                });
            }
            Err(e) => {
                let bad = match &e {
                    PackError::RecordTooLarge { id, .. } | PackError::MixedNodes { id, .. } => *id,
                };
                // A budget cap below one record is not the record's fault.
                let its_fault = match &e {
                    PackError::RecordTooLarge { needed, .. } => *needed > hard_max,
                    PackError::MixedNodes { .. } => true,
                };
                if !its_fault {
                    return None;
                }
                unpackable.push(e);
                items.retain(|i| i.id != bad);
            }
        }
    }
}
