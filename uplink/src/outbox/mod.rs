//! Outbox policy: which priority an item gets ([`PriorityRules`]), how long
//! it may wait ([`TtlConfig`]) and how much may be kept ([`BudgetConfig`]).
//! Configuration only; [`crate::EventStore`] enforces it. In the node's
//! configuration this is the `[outbox]` table. See `docs/outbox.md`.

use messages::{EventClass, EventRecord, Message, Priority, StatusCause};
use serde::{Deserialize, Serialize};

/// The `[outbox]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct OutboxConfig {
    /// `[outbox.priority]`
    pub priority: PriorityRules,
    /// `[outbox.ttl]`
    pub ttl: TtlConfig,
    /// `[outbox.budget]`
    pub budget: BudgetConfig,
}

impl OutboxConfig {
    /// Range checks, as `(key path relative to this table, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = self.priority.validate();
        errs.extend(self.budget.validate());
        errs
    }
}

/// A confidence threshold that sets the priority of the events that reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Events with at least this confidence (0..=1) get `priority`.
    pub min_confidence: f32,
    /// The priority they get.
    #[serde(with = "priority_name")]
    pub priority: Priority,
}

/// The priority of one event class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClassPriority {
    /// The priority of the class's events that reach no threshold.
    #[serde(with = "priority_name")]
    pub priority: Priority,
    /// Raise (or lower) the priority by confidence: the threshold with the
    /// greatest `min_confidence` that the event reaches applies.
    pub thresholds: Vec<Threshold>,
}

impl Default for ClassPriority {
    fn default() -> Self {
        ClassPriority::fixed(Priority::Normal)
    }
}

impl ClassPriority {
    /// One priority whatever the confidence.
    pub fn fixed(priority: Priority) -> Self {
        ClassPriority {
            priority,
            thresholds: Vec::new(),
        }
    }

    /// The priority for an event of this class with `confidence` (0..=1).
    pub fn for_confidence(&self, confidence: f32) -> Priority {
        self.thresholds
            .iter()
            .filter(|t| confidence >= t.min_confidence)
            .max_by(|a, b| a.min_confidence.total_cmp(&b.min_confidence))
            .map_or(self.priority, |t| t.priority)
    }
}

/// `[outbox.priority]`: the priority of each item, decided once when it is
/// stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriorityRules {
    /// Status reports.
    #[serde(with = "priority_name")]
    pub status: Priority,
    /// `[outbox.priority.unknown]`
    pub unknown: ClassPriority,
    /// `[outbox.priority.wildlife]`
    pub wildlife: ClassPriority,
    /// `[outbox.priority.machinery_anomaly]`
    pub machinery_anomaly: ClassPriority,
    /// `[outbox.priority.human_activity]`
    pub human_activity: ClassPriority,
    /// `[outbox.priority.background]`
    pub background: ClassPriority,
}

impl Default for PriorityRules {
    fn default() -> Self {
        let raised = |base, at: f32, to| ClassPriority {
            priority: base,
            thresholds: vec![Threshold {
                min_confidence: at,
                priority: to,
            }],
        };
        PriorityRules {
            status: Priority::Normal,
            unknown: ClassPriority::fixed(Priority::Low),
            wildlife: raised(Priority::Normal, 0.8, Priority::High),
            machinery_anomaly: raised(Priority::High, 0.9, Priority::Urgent),
            human_activity: raised(Priority::Normal, 0.8, Priority::High),
            background: ClassPriority::fixed(Priority::Low),
        }
    }
}

impl PriorityRules {
    /// The rule of one class.
    pub fn class(&self, class: EventClass) -> &ClassPriority {
        match class {
            EventClass::Unknown => &self.unknown,
            EventClass::Wildlife => &self.wildlife,
            EventClass::MachineryAnomaly => &self.machinery_anomaly,
            EventClass::HumanActivity => &self.human_activity,
            EventClass::Background => &self.background,
        }
    }

    /// The priority of an event.
    pub fn for_event(&self, e: &EventRecord) -> Priority {
        self.class(e.class).for_confidence(e.confidence.fraction())
    }

    /// The priority of any outbox item. A status record made on an update
    /// result (installed, on trial, rolled back, refused, first deferred)
    /// goes at priority high at least, so it is worth a satellite credit.
    pub fn for_message(&self, m: &Message) -> Priority {
        match m {
            Message::Event(e) => self.for_event(e),
            Message::Status(s) if s.cause == StatusCause::UpdateResult => {
                self.status.max(Priority::High)
            }
            Message::Status(_) => self.status,
        }
    }

    /// Range checks, as `(key path relative to [outbox], problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        for class in EventClass::ALL {
            for (i, t) in self.class(class).thresholds.iter().enumerate() {
                if !(0.0..=1.0).contains(&t.min_confidence) {
                    errs.push((
                        format!("priority.{}.thresholds[{i}].min_confidence", class.as_str()),
                        "must be between 0 and 1".into(),
                    ));
                }
            }
        }
        errs
    }
}

/// `[outbox.ttl]`: how long an item may wait for delivery, days, per
/// priority; `0` = never expires. Age is measured from the record's own time
/// (an event's `start_ms`, a status report's `time_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TtlConfig {
    /// Low priority.
    pub low_days: u32,
    /// Normal priority.
    pub normal_days: u32,
    /// High priority.
    pub high_days: u32,
    /// Urgent priority.
    pub urgent_days: u32,
}

impl Default for TtlConfig {
    fn default() -> Self {
        TtlConfig {
            low_days: 7,
            normal_days: 30,
            high_days: 90,
            urgent_days: 0,
        }
    }
}

impl TtlConfig {
    /// The time to live of a priority, ms; `None` = never expires.
    pub fn ttl_ms(&self, p: Priority) -> Option<i64> {
        let days = match p {
            Priority::Low => self.low_days,
            Priority::Normal => self.normal_days,
            Priority::High => self.high_days,
            Priority::Urgent => self.urgent_days,
        };
        (days > 0).then(|| i64::from(days) * 86_400_000)
    }
}

/// `[outbox.budget]`: how much the outbox keeps. Both limits are enforced
/// exactly, on the store's own accounting (see `docs/outbox.md`): an append
/// that would exceed either first evicts items, lowest priority and oldest
/// first, counting the new items among the candidates. Below
/// `min_free_bytes` free on the store's filesystem, an append also evicts,
/// in the same order, so that the outbox does not grow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BudgetConfig {
    /// Most items kept (events and status reports).
    pub max_items: u64,
    /// Most bytes of encoded records kept (keys and sled's own overhead not
    /// included: sled's files are several times this, see `docs/outbox.md`).
    pub max_record_bytes: u64,
    /// Bytes to keep free on the store's filesystem (`statvfs`, what a
    /// non-root writer may use); `0` disables the reserve.
    pub min_free_bytes: u64,
}

/// The default disk reserve: 64 MiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;
/// The smallest reserve accepted when not 0: 1 MiB.
pub const MIN_FREE_BYTES_LOW: u64 = 1024 * 1024;
/// The largest reserve accepted: 1 TiB.
pub const MIN_FREE_BYTES_HIGH: u64 = 1 << 40;

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            max_items: 100_000,
            max_record_bytes: 8 * 1024 * 1024,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

impl BudgetConfig {
    /// Range checks, as `(key path relative to [outbox], problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if !(16..=10_000_000).contains(&self.max_items) {
            errs.push((
                "budget.max_items".into(),
                "must be between 16 and 10000000".into(),
            ));
        }
        if !(4096..=(1 << 34)).contains(&self.max_record_bytes) {
            errs.push((
                "budget.max_record_bytes".into(),
                "must be between 4096 and 17179869184".into(),
            ));
        }
        if self.min_free_bytes != 0
            && !(MIN_FREE_BYTES_LOW..=MIN_FREE_BYTES_HIGH).contains(&self.min_free_bytes)
        {
            errs.push((
                "budget.min_free_bytes".into(),
                "must be 0 (off) or between 1048576 and 1099511627776".into(),
            ));
        }
        errs
    }
}

/// Serialises a [`Priority`] as its stable lower-case name.
pub mod priority_name {
    use messages::Priority;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes the name.
    pub fn serialize<S: Serializer>(p: &Priority, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.as_str())
    }

    /// Reads a name: `low`, `normal`, `high` or `urgent`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Priority, D::Error> {
        let name = String::deserialize(d)?;
        Priority::parse(&name).ok_or_else(|| {
            D::Error::custom(format!(
                "unknown priority {name:?} (expected low, normal, high or urgent)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_raise_and_the_highest_reached_applies() {
        let r = PriorityRules::default();
        assert_eq!(r.wildlife.for_confidence(0.79), Priority::Normal);
        assert_eq!(r.wildlife.for_confidence(0.8), Priority::High);
        let c = ClassPriority {
            priority: Priority::Low,
            thresholds: vec![
                Threshold {
                    min_confidence: 0.9,
                    priority: Priority::Urgent,
                },
                Threshold {
                    min_confidence: 0.5,
                    priority: Priority::Normal,
                },
            ],
        };
        assert_eq!(c.for_confidence(0.4), Priority::Low);
        assert_eq!(c.for_confidence(0.6), Priority::Normal);
        assert_eq!(c.for_confidence(0.95), Priority::Urgent);
    }

    #[test]
    fn toml_uses_lower_case_names_and_reports_bad_ones() {
        let cfg: OutboxConfig = toml::from_str(
            r#"
            [priority]
            status = "high"
            [priority.background]
            priority = "low"
            thresholds = [{ min_confidence = 0.5, priority = "normal" }]
            [ttl]
            low_days = 1
            [budget]
            max_items = 500
            "#,
        )
        .unwrap();
        assert_eq!(cfg.priority.status, Priority::High);
        assert_eq!(
            cfg.priority.background.for_confidence(0.6),
            Priority::Normal
        );
        assert_eq!(cfg.priority.wildlife, PriorityRules::default().wildlife);
        assert_eq!(cfg.ttl.ttl_ms(Priority::Low), Some(86_400_000));
        assert_eq!(cfg.ttl.ttl_ms(Priority::Urgent), None);
        assert_eq!(cfg.budget.max_items, 500);
        let bad = toml::from_str::<OutboxConfig>("[priority]\nstatus = \"loud\"").unwrap_err();
        assert!(
            bad.to_string().contains("unknown priority \"loud\""),
            "{bad}"
        );
    }

    #[test]
    fn validation_names_keys() {
        let mut cfg = OutboxConfig::default();
        assert!(cfg.validate().is_empty());
        cfg.priority.wildlife.thresholds[0].min_confidence = 1.5;
        cfg.budget.max_items = 0;
        cfg.budget.min_free_bytes = 4096;
        let keys: Vec<_> = cfg.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "priority.wildlife.thresholds[0].min_confidence",
                "budget.max_items",
                "budget.min_free_bytes"
            ]
        );
    }

    #[test]
    fn the_disk_reserve_defaults_to_64_mib_and_0_turns_it_off() {
        assert_eq!(BudgetConfig::default().min_free_bytes, 64 << 20);
        let cfg: OutboxConfig = toml::from_str("[budget]\nmin_free_bytes = 0").unwrap();
        assert_eq!(cfg.budget.min_free_bytes, 0);
        assert!(cfg.validate().is_empty());
        for (v, ok) in [
            (MIN_FREE_BYTES_LOW - 1, false),
            (MIN_FREE_BYTES_LOW, true),
            (MIN_FREE_BYTES_HIGH, true),
            (MIN_FREE_BYTES_HIGH + 1, false),
        ] {
            let mut c = OutboxConfig::default();
            c.budget.min_free_bytes = v;
            assert_eq!(c.validate().is_empty(), ok, "{v}");
        }
    }
}
