use super::*;

fn shipped_weather() -> Weather {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/energy/weather-30d.txt"
    );
    match Weather::load(path) {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    }
}

fn preset(name: &str) -> Weather {
    Weather::preset(name).unwrap_or_else(|| panic!("no preset {name}"))
}

#[test]
fn thirty_days_of_the_shipped_weather_give_no_brownout() {
    let w = shipped_weather();
    assert_eq!(w.cloud.len(), 30);
    assert!(
        w.cloud
            .windows(7)
            .any(|week| week.iter().all(|&c| c >= 0.8)),
        "the series has a week of heavy cloud"
    );
    let o = simulate(&Setup::new(w));
    assert_eq!(o.brownouts, 0, "{:?}", o.timeline);
    assert_eq!(o.days_meeting(2.0, true), 30);
    // The heavy week made the node sleep and slept it through.
    assert!(o.timeline.iter().any(|e| matches!(e, Entry::Sleep { .. })));
}

#[test]
fn a_week_without_sun_keeps_the_windows_and_the_daily_report() {
    let o = simulate(&Setup::new(preset("no-sun")));
    let days = o.days_meeting(2.0, true);
    assert!(days >= 7, "only {days} days: {:#?}", o.days);
    // The windows are what the node spends its charge on: every sleep
    // before day 7 ends at a window, the report, recovery or the cap, and
    // no sleep starts inside a window.
    let listening = Setup::new(preset("no-sun")).sleep.listening();
    let mut window_wakes = 0;
    for e in &o.timeline {
        if let Entry::Sleep {
            t_ms, bound, soc, ..
        } = e
        {
            if *soc >= listening.survival_below_soc {
                assert!(
                    listening.window_at(*t_ms).is_none(),
                    "slept in a window at {t_ms}"
                );
            }
            if *bound == WakeBound::Listening {
                window_wakes += 1;
            }
        }
    }
    assert!(window_wakes >= 14, "{window_wakes} wakes for windows");
    // Asleep most of the time: events missed while asleep are counted.
    let asleep = o.events[&State::Asleep];
    assert!(asleep.happened > 0 && asleep.captured == 0);
}

#[test]
fn too_small_a_battery_fails_the_week_without_sun() {
    let mut s = Setup::new(preset("no-sun"));
    s.battery_wh = 50.0;
    let o = simulate(&s);
    assert!(o.days_meeting(2.0, true) < 7);
    // Left to run, it browns out and stays off without sun.
    assert!(o.brownouts >= 1);
    assert!(o.days.iter().any(|d| d.brownout));
    assert!(
        o.timeline
            .iter()
            .any(|e| matches!(e, Entry::Brownout { .. }))
    );
}

#[test]
fn a_brownout_restarts_when_the_sun_recharges_the_battery() {
    let mut s = Setup::new(shipped_weather());
    s.battery_wh = 8.0;
    s.policy.sleep_below_soc = None;
    let o = simulate(&s);
    assert!(o.brownouts >= 1);
    assert!(
        o.timeline
            .iter()
            .any(|e| matches!(e, Entry::Restart { .. }))
    );
    assert!(o.events[&State::Off].happened > 0);
}

#[test]
fn events_are_tallied_per_state_and_replay_by_seed() {
    let s = Setup::new(shipped_weather());
    let a = simulate(&s);
    let b = simulate(&s);
    assert_eq!(a.events, b.events);
    let t = a.total();
    // About 2 an hour for 30 days.
    assert!((1200..1700).contains(&t.happened), "{t:?}");
    assert!(t.captured <= t.happened && t.classified <= t.captured);
    let awake: u64 = [State::Normal, State::Saver, State::Critical]
        .iter()
        .map(|s| a.events[s].captured)
        .sum();
    assert_eq!(awake, t.captured);
    let mut other = s.clone();
    other.seed = 2;
    assert_ne!(simulate(&other).events, a.events);
}

#[test]
fn the_ledger_and_the_days_agree() {
    let o = simulate(&Setup::new(preset("cloudy")));
    let per_day: f64 = o.days.iter().map(|d| d.used_wh).sum();
    assert!((per_day - o.ledger.total_j() / 3600.0).abs() < 1e-6);
    let idle = o.ledger.joules(crate::Consumer::Idle);
    let awake_h: f64 = o.days.iter().map(|d| d.awake_h).sum();
    assert!((idle / 3600.0 - awake_h * 3.0).abs() < 1e-6);
    assert!(o.ledger.actions().boots >= 1);
    assert!(o.ledger.joules(crate::Consumer::Halted) > 0.0);
}

#[test]
fn clear_skies_keep_the_node_awake_all_day() {
    let o = simulate(&Setup::new(preset("clear")));
    assert_eq!(o.brownouts, 0);
    // Awake while the panel covers the draw (about 07:00 to 19:00 on a
    // 12 W clear-sky peak) and in both windows.
    for d in &o.days {
        assert!(d.awake_h >= 12.0, "{d:?}");
        assert!((d.listening_h - 2.0).abs() < 1e-6, "{d:?}");
    }
}

#[test]
fn bad_setups_are_named() {
    let mut s = Setup::new(preset("clear"));
    s.days = 0;
    s.battery_wh = -1.0;
    s.sunset_h = 3.0;
    let keys: Vec<_> = s.validate().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["days", "battery_wh", "sunset_h"]);
}
