//! The satellite credit budget: credits per UTC day and per UTC month from
//! the configuration, spent credits persisted in a small file replaced
//! atomically (write temporary, fsync, rename, fsync directory) so that a
//! restart does not reset the spend. When a period's budget is spent only
//! [`Priority::Urgent`] may go.
//!
//! Billing (RockBLOCK): one credit per started 50 bytes of an MO or MT
//! message; a session that only checks the mailbox costs one credit.

use std::path::{Path, PathBuf};

use messages::Priority;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;
use crate::store::durable::replace_atomically;

pub use messages::pack::credits_for;

/// Credits billed for a session that sends no MO message (a mailbox check).
pub const MAILBOX_CHECK_CREDITS: u32 = 1;

/// Credits billed for a session: the MO message (or a mailbox check when
/// there is none) plus the MT message received.
pub fn session_credits(mo_len: usize, mt_len: usize) -> u32 {
    let mo = if mo_len == 0 {
        MAILBOX_CHECK_CREDITS
    } else {
        credits_for(mo_len)
    };
    mo.saturating_add(credits_for(mt_len))
}

/// Budget limits from the configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetLimits {
    /// Credits per UTC day for non-urgent traffic.
    pub per_day: u32,
    /// Credits per UTC month for non-urgent traffic.
    pub per_month: u32,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        BudgetLimits {
            per_day: 20,
            per_month: 500,
        }
    }
}

/// Why the budget file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// Reading the file failed (other than not existing).
    #[error("cannot read credit budget file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Writing it failed; the spend is kept in memory.
    #[error("cannot persist credit budget: {0}")]
    Write(#[from] StoreError),
    /// Encoding it failed; the spend is kept in memory and the file keeps
    /// the previous spend.
    #[error("cannot encode credit budget: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What the file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Spent {
    /// UTC day (days since the Unix epoch) `day_spent` belongs to.
    day: i64,
    day_spent: u32,
    /// UTC month (`year * 12 + month - 1`) `month_spent` belongs to.
    month: i64,
    month_spent: u32,
}

fn day_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(86_400_000)
}

fn month_of(now_ms: i64) -> i64 {
    let secs = now_ms.div_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => i64::from(t.year()) * 12 + i64::from(u8::from(t.month())) - 1,
        // Outside the calendar the time crate handles: count 30-day months.
        Err(_) => day_of(now_ms).div_euclid(30),
    }
}

/// Credits spent per day and month, persisted.
#[derive(Debug)]
pub struct CreditBudget {
    path: PathBuf,
    limits: BudgetLimits,
    spent: Spent,
}

impl CreditBudget {
    /// Opens the budget file at `path` (a missing file is a fresh budget). A
    /// file that does not parse is logged and treated as this day's and this
    /// month's budget fully spent: money is not spent twice because a file
    /// was damaged.
    pub fn open(
        path: &Path,
        limits: BudgetLimits,
        now_ms: i64,
    ) -> Result<CreditBudget, BudgetError> {
        let fresh = Spent {
            day: day_of(now_ms),
            day_spent: 0,
            month: month_of(now_ms),
            month_spent: 0,
        };
        let spent = match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Spent>(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "credit budget file is damaged; treating today's and this month's budget as spent");
                    Spent {
                        day_spent: limits.per_day,
                        month_spent: limits.per_month,
                        ..fresh
                    }
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh,
            Err(source) => {
                return Err(BudgetError::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(CreditBudget {
            path: path.to_path_buf(),
            limits,
            spent,
        })
    }

    /// The spend as it counts at `now_ms`: a later day or month starts at
    /// zero; a clock that went backwards keeps the latest period.
    fn current(&self, now_ms: i64) -> Spent {
        let mut s = self.spent;
        let (day, month) = (day_of(now_ms), month_of(now_ms));
        if day > s.day {
            s.day = day;
            s.day_spent = 0;
        }
        if month > s.month {
            s.month = month;
            s.month_spent = 0;
        }
        s
    }

    /// Credits spent (today, this month) at `now_ms`.
    pub fn spent(&self, now_ms: i64) -> (u32, u32) {
        let s = self.current(now_ms);
        (s.day_spent, s.month_spent)
    }

    /// True when a message of `priority` costing `credits` may go now:
    /// always for [`Priority::Urgent`], otherwise only within both limits.
    pub fn allows(&self, priority: Priority, credits: u32, now_ms: i64) -> bool {
        if priority == Priority::Urgent {
            return true;
        }
        let s = self.current(now_ms);
        s.day_spent.saturating_add(credits) <= self.limits.per_day
            && s.month_spent.saturating_add(credits) <= self.limits.per_month
    }

    /// Records `credits` spent at `now_ms` and persists the spend. On a write
    /// error the spend still counts in memory.
    pub fn spend(&mut self, credits: u32, now_ms: i64) -> Result<(), BudgetError> {
        let mut s = self.current(now_ms);
        s.day_spent = s.day_spent.saturating_add(credits);
        s.month_spent = s.month_spent.saturating_add(credits);
        self.spent = s;
        let bytes = serde_json::to_vec(&s)?;
        replace_atomically(&self.path, &bytes)?;
        Ok(())
    }

    /// The limits in force.
    pub fn limits(&self) -> BudgetLimits {
        self.limits
    }
}
