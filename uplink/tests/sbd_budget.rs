//! The satellite credit budget: limits per day and month, only urgent
//! traffic once spent, the spend persisted across restarts.

use messages::Priority;
use uplink::sbd::{BudgetLimits, CreditBudget, credits_for, session_credits};

const DAY: i64 = 86_400_000;
/// 2026-05-31 12:00:00 UTC.
const MAY_31: i64 = 1_780_228_800_000;

fn limits() -> BudgetLimits {
    BudgetLimits {
        per_day: 10,
        per_month: 25,
    }
}

#[test]
fn credits_follow_the_50_byte_rule() {
    assert_eq!(credits_for(1), 1);
    assert_eq!(credits_for(50), 1);
    assert_eq!(credits_for(51), 2);
    assert_eq!(credits_for(340), 7);
    assert_eq!(session_credits(0, 0), 1, "a mailbox check is billed");
    assert_eq!(session_credits(120, 0), 3);
    assert_eq!(session_credits(120, 2), 4, "an MT message is billed too");
}

#[test]
fn a_spent_day_lets_only_urgent_through_and_a_new_day_resets() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = CreditBudget::open(&dir.path().join("c.json"), limits(), MAY_31).unwrap();
    assert!(b.allows(Priority::Low, 10, MAY_31));
    assert!(!b.allows(Priority::Low, 11, MAY_31));
    b.spend(9, MAY_31).unwrap();
    assert!(b.allows(Priority::Normal, 1, MAY_31));
    assert!(!b.allows(Priority::High, 2, MAY_31));
    assert!(b.allows(Priority::Urgent, 7, MAY_31));
    b.spend(7, MAY_31).unwrap(); // urgent overspend still counts
    assert_eq!(b.spent(MAY_31), (16, 16));
    // Next day (June 1st): the day resets, and so does the month.
    assert_eq!(b.spent(MAY_31 + DAY), (0, 0));
    assert!(b.allows(Priority::Normal, 10, MAY_31 + DAY));
}

#[test]
fn the_month_limit_holds_across_days() {
    let dir = tempfile::tempdir().unwrap();
    let start = MAY_31 - 20 * DAY; // May 11th
    let mut b = CreditBudget::open(&dir.path().join("c.json"), limits(), start).unwrap();
    b.spend(10, start).unwrap();
    b.spend(10, start + DAY).unwrap();
    assert_eq!(b.spent(start + 2 * DAY), (0, 20));
    assert!(b.allows(Priority::Normal, 5, start + 2 * DAY));
    assert!(
        !b.allows(Priority::Normal, 6, start + 2 * DAY),
        "month limit"
    );
    assert!(b.allows(Priority::Urgent, 6, start + 2 * DAY));
}

#[test]
fn the_spend_survives_a_restart_and_a_clock_going_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    let mut b = CreditBudget::open(&path, limits(), MAY_31).unwrap();
    b.spend(8, MAY_31).unwrap();
    drop(b);
    let b = CreditBudget::open(&path, limits(), MAY_31).unwrap();
    assert_eq!(b.spent(MAY_31), (8, 8));
    assert!(!b.allows(Priority::Normal, 3, MAY_31));
    // A clock that jumped back a day does not reset the spend.
    assert_eq!(b.spent(MAY_31 - DAY), (8, 8));
    assert!(
        !dir.path().join("c.json.tmp").exists(),
        "no temporary file left"
    );
}

#[test]
fn a_damaged_file_counts_as_spent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, b"{\"day\": garbage").unwrap();
    let b = CreditBudget::open(&path, limits(), MAY_31).unwrap();
    assert!(!b.allows(Priority::High, 1, MAY_31));
    assert!(b.allows(Priority::Urgent, 1, MAY_31));
}

#[test]
fn an_unreadable_budget_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("c.json");
    std::fs::create_dir(&path).unwrap();
    assert!(CreditBudget::open(&path, limits(), MAY_31).is_err());
}
