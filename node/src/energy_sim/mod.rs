//! `fieldnode simulate-energy`: the endurance simulation
//! ([`power::endurance`]) with the node's configuration (`[power.policy]`,
//! `[power.sleep]` with its listening windows, `[power.costs]`,
//! `[power] interval_ms`), a battery, a panel, a weather series and an
//! event rate; it prints the mode timeline, the brownouts, the events per
//! mode and the energy per consumer, and writes SVG plots ([`plot`]).

pub mod plot;

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use power::endurance::{Entry, Outcome, Setup, State, Weather, simulate};

use crate::config::Config;
use crate::scene::meta::format_rfc3339_ms;

/// The command's options.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Days to simulate.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// `clear`, `cloudy`, `no-sun`, or a weather file (one cloud share a
    /// day, docs/energy.md).
    #[arg(long, default_value = "clear")]
    pub weather: String,
    /// Configuration file whose `[power]` tables are simulated (the
    /// defaults without one).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Usable battery capacity, Wh.
    #[arg(long, default_value_t = 100.0)]
    pub battery_wh: f64,
    /// State of charge at the start, 0..1.
    #[arg(long, default_value_t = 1.0)]
    pub initial_soc: f64,
    /// Panel rating, W.
    #[arg(long, default_value_t = 20.0)]
    pub panel_w: f64,
    /// Share of the rating delivered into the battery at a clear noon.
    #[arg(long, default_value_t = 0.6)]
    pub panel_derate: f64,
    /// Events per hour (Poisson).
    #[arg(long, default_value_t = 2.0)]
    pub events_per_h: f64,
    /// Seed of the event times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Listening windows instead of the configured ones, local solar
    /// hours: `5-6,18.5-19.5`; `none` for no window.
    #[arg(long)]
    pub windows: Option<String>,
    /// Directory for the SVG plots (none written without it).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Parses `5-6,18.5-19.5` (or `none`).
fn parse_windows(text: &str) -> Result<Vec<power::ListeningWindow>> {
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|w| {
            let (a, b) = w
                .split_once('-')
                .with_context(|| format!("window {w:?} is not START-END"))?;
            let h = |s: &str| {
                s.trim()
                    .parse::<f64>()
                    .with_context(|| format!("window {w:?}: {s:?} is not an hour"))
            };
            Ok(power::ListeningWindow {
                start_h: h(a)?,
                end_h: h(b)?,
            })
        })
        .collect()
}

/// The simulation's setup from the options.
pub fn setup(args: &SimArgs) -> Result<Setup> {
    let cfg = match &args.config {
        Some(p) => Config::from_file(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        None => Config::default(),
    };
    let weather = Weather::load(&args.weather)?;
    let mut s = Setup::new(weather);
    s.days = args.days;
    s.battery_wh = args.battery_wh;
    s.initial_soc = args.initial_soc;
    s.panel_w = args.panel_w;
    s.panel_derate = args.panel_derate;
    s.events_per_h = args.events_per_h;
    s.seed = args.seed;
    s.interval_ms = cfg.power.interval_ms;
    s.policy = cfg.power.policy.clone();
    s.sleep = cfg.power.sleep.clone();
    s.costs = cfg.power.costs.clone();
    if let Some(w) = &args.windows {
        s.sleep.listening = parse_windows(w)?;
    }
    let problems = s.validate();
    if !problems.is_empty() {
        let text: Vec<String> = problems.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        bail!("invalid simulation: {}", text.join("; "));
    }
    Ok(s)
}

fn hours(ms: i64) -> f64 {
    ms as f64 / 3_600_000.0
}

/// The printed report.
pub fn report(s: &Setup, o: &Outcome) -> String {
    let mut r = String::new();
    let mean_cloud = (0..s.days as usize)
        .map(|d| s.weather.cloud(d))
        .sum::<f64>()
        / f64::from(s.days.max(1));
    let _ = writeln!(
        r,
        "simulate-energy: {} days, weather {} (mean cloud {mean_cloud:.2}), battery {} Wh from {:.0} %, \
         panel {} W (derate {}), {} events/h, seed {}, windows {:.1} h/day",
        s.days,
        s.weather.name,
        s.battery_wh,
        s.initial_soc * 100.0,
        s.panel_w,
        s.panel_derate,
        s.events_per_h,
        s.seed,
        o.window_h_per_day
    );
    let _ = writeln!(r, "\ntimeline:");
    for e in &o.timeline {
        let at = format_rfc3339_ms(e.t_ms());
        let line = match e {
            Entry::Mode { from, to, soc, .. } => format!(
                "mode {} -> {} at {:.0} %",
                from.as_str(),
                to.as_str(),
                soc * 100.0
            ),
            Entry::Sleep {
                reason,
                bound,
                planned_s,
                soc,
                ..
            } => format!(
                "sleep {} for {:.1} h (wake: {}) at {:.0} %",
                reason.as_str(),
                *planned_s as f64 / 3600.0,
                bound.as_str(),
                soc * 100.0
            ),
            Entry::Wake { soc, .. } => format!("wake at {:.0} %", soc * 100.0),
            Entry::Brownout { .. } => "BROWNOUT: battery empty".to_string(),
            Entry::Restart { .. } => "restart after brownout".to_string(),
        };
        let _ = writeln!(r, "  {at}  {line}");
    }
    let sleeps = o
        .timeline
        .iter()
        .filter(|e| matches!(e, Entry::Sleep { .. }))
        .count();
    let _ = writeln!(r, "\nbrownouts: {}", o.brownouts);
    let _ = writeln!(r, "sleeps: {sleeps}");
    let min_soc = o.days.iter().map(|d| d.min_soc).fold(1.0, f64::min);
    let _ = writeln!(r, "lowest charge: {:.1} %", min_soc * 100.0);
    let _ = writeln!(
        r,
        "days from the start with >= {:.1} h of listening windows and the daily report: {} of {}",
        o.window_h_per_day,
        o.days_meeting(o.window_h_per_day, s.sleep.report_utc_h.is_some()),
        s.days
    );
    let _ = writeln!(
        r,
        "\nday  awake_h  listening_h  report  solar_wh  used_wh  min_soc"
    );
    for (i, d) in o.days.iter().enumerate() {
        let _ = writeln!(
            r,
            "{:>3}  {:>7.1}  {:>11.2}  {:>6}  {:>8.1}  {:>7.1}  {:>6.0}%{}",
            i + 1,
            d.awake_h,
            d.listening_h,
            if d.report_sent { "sent" } else { "-" },
            d.solar_wh,
            d.used_wh,
            d.min_soc * 100.0,
            if d.brownout { "  brownout" } else { "" }
        );
    }
    let _ = writeln!(
        r,
        "\nevents per mode (captured: awake and listening; classified: a burst allowed too):"
    );
    let _ = writeln!(
        r,
        "mode       happened  captured  classified  captured_share"
    );
    for st in State::ALL {
        let t = o.events.get(&st).copied().unwrap_or_default();
        let share = if t.happened > 0 {
            format!("{:.0} %", t.captured as f64 * 100.0 / t.happened as f64)
        } else {
            "-".to_string()
        };
        let _ = writeln!(
            r,
            "{:<9}  {:>8}  {:>8}  {:>10}  {:>14}",
            st.as_str(),
            t.happened,
            t.captured,
            t.classified,
            share
        );
    }
    let t = o.total();
    let _ = writeln!(
        r,
        "{:<9}  {:>8}  {:>8}  {:>10}  {:>12.0} %",
        "all",
        t.happened,
        t.captured,
        t.classified,
        if t.happened > 0 {
            t.captured as f64 * 100.0 / t.happened as f64
        } else {
            0.0
        }
    );
    let total = o.ledger.total_j();
    let _ = writeln!(r, "\nenergy per consumer:");
    for (c, j) in o.ledger.per_consumer() {
        let _ = writeln!(
            r,
            "  {:<12} {:>8.1} Wh  {:>5.1} %",
            c.as_str(),
            j / 3600.0,
            if total > 0.0 { j * 100.0 / total } else { 0.0 }
        );
    }
    let _ = writeln!(r, "  {:<12} {:>8.1} Wh", "total", total / 3600.0);
    let asleep_h: f64 = o
        .timeline
        .windows(2)
        .filter_map(|w| match (&w[0], &w[1]) {
            (Entry::Sleep { t_ms, .. }, next) => Some(hours(next.t_ms() - t_ms)),
            _ => None,
        })
        .sum();
    let _ = writeln!(r, "hours asleep: {asleep_h:.1}");
    r
}

/// Runs the command: prints the report and writes the plots.
pub fn run(args: &SimArgs) -> Result<()> {
    let s = setup(args)?;
    let o = simulate(&s);
    print!("{}", report(&s, &o));
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for p in plot::write_all(dir, &s, &o)? {
            println!("plot: {}", p.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(weather: &str) -> SimArgs {
        SimArgs {
            days: 3,
            weather: weather.to_string(),
            config: None,
            battery_wh: 100.0,
            initial_soc: 1.0,
            panel_w: 20.0,
            panel_derate: 0.6,
            events_per_h: 2.0,
            seed: 1,
            windows: None,
            out: None,
        }
    }

    #[test]
    fn windows_parse_and_bad_ones_are_refused() {
        let w = parse_windows("5-6, 18.5-19.5").unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!((w[1].start_h, w[1].end_h), (18.5, 19.5));
        assert!(parse_windows("none").unwrap().is_empty());
        assert!(parse_windows("5").is_err());
        assert!(parse_windows("5-x").is_err());
        let mut a = args("no-sun");
        a.windows = Some("5-7,6-8".into());
        let e = setup(&a).unwrap_err().to_string();
        assert!(e.contains("listening[1]"), "{e}");
    }

    #[test]
    fn the_report_names_brownouts_events_and_consumers() {
        let mut a = args("no-sun");
        a.battery_wh = 10.0;
        let s = setup(&a).unwrap();
        let o = simulate(&s);
        let text = report(&s, &o);
        assert!(text.contains("BROWNOUT"), "{text}");
        assert!(text.contains("brownouts: 1"), "{text}");
        assert!(text.contains("asleep"));
        assert!(text.contains("idle"));
        assert!(text.contains("sleep low_battery"));
        let bad = setup(&SimArgs {
            weather: "/nonexistent".into(),
            ..args("x")
        });
        assert!(bad.is_err());
    }

    #[test]
    fn plots_are_written_as_svg() {
        let dir = tempfile::tempdir().unwrap();
        let s = setup(&args("cloudy")).unwrap();
        let o = simulate(&s);
        let files = plot::write_all(dir.path(), &s, &o).unwrap();
        assert_eq!(files.len(), 2);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(text.starts_with("<svg"), "{}", f.display());
            assert!(text.contains("<polyline") || text.contains("<rect"));
        }
    }
}
