//! SVG plots of a simulation, with `plotters`' SVG backend only (the text
//! is SVG text, drawn by the viewer's fonts): `timeline.svg` (state of
//! charge, panel input and the node's state over time) and `energy.svg`
//! (energy per consumer).

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use power::Consumer;
use power::endurance::{Outcome, Setup, State};

const DAY_MS: f64 = 86_400_000.0;

fn level(s: State) -> f64 {
    match s {
        State::Normal => 4.0,
        State::Saver => 3.0,
        State::Critical => 2.0,
        State::Asleep => 1.0,
        State::Off => 0.0,
    }
}

fn level_name(v: f64) -> String {
    match v.round() as i64 {
        4 => "normal",
        3 => "saver",
        2 => "critical",
        1 => "asleep",
        0 => "off",
        _ => "",
    }
    .to_string()
}

fn err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e}")
}

/// Writes both plots into `dir`; returns their paths.
pub fn write_all(dir: &Path, s: &Setup, o: &Outcome) -> Result<Vec<PathBuf>> {
    let t = dir.join("timeline.svg");
    timeline(&t, s, o)?;
    let e = dir.join("energy.svg");
    energy(&e, o)?;
    Ok(vec![t, e])
}

/// State of charge, panel input and the node's state, by day.
pub fn timeline(path: &Path, s: &Setup, o: &Outcome) -> Result<()> {
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((3, 1));
    let days = f64::from(s.days);
    let x = |t_ms: i64| (t_ms - s.start_ms) as f64 / DAY_MS;
    // At most about 1500 points a curve: the file stays small.
    let every = o.samples.len().div_ceil(1500).max(1);
    let thin: Vec<_> = o.samples.iter().step_by(every).collect();
    let title = format!(
        "{} days, weather {}, {} Wh, {} W panel",
        s.days, s.weather.name, s.battery_wh, s.panel_w
    );

    let mut soc = ChartBuilder::on(&panels[0])
        .caption(format!("State of charge (%): {title}"), ("sans-serif", 15))
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..days, 0f64..100f64)
        .map_err(err)?;
    soc.configure_mesh()
        .light_line_style(TRANSPARENT)
        .light_line_style(TRANSPARENT)
        .x_desc("day")
        .disable_x_mesh()
        .draw()
        .map_err(err)?;
    soc.draw_series(LineSeries::new(
        thin.iter().map(|p| (x(p.t_ms), p.soc * 100.0)),
        &BLUE,
    ))
    .map_err(err)?;

    let peak = o
        .samples
        .iter()
        .map(|p| p.solar_w)
        .fold(1.0, f64::max)
        .ceil();
    let mut solar = ChartBuilder::on(&panels[1])
        .caption("Charge from the panel (W)", ("sans-serif", 15))
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..days, 0f64..peak)
        .map_err(err)?;
    solar
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("day")
        .disable_x_mesh()
        .draw()
        .map_err(err)?;
    solar
        .draw_series(AreaSeries::new(
            thin.iter().map(|p| (x(p.t_ms), p.solar_w)),
            0.0,
            RGBColor(240, 170, 0).mix(0.6),
        ))
        .map_err(err)?;

    let mut state = ChartBuilder::on(&panels[2])
        .caption("Node state", ("sans-serif", 15))
        .margin(6)
        .x_label_area_size(22)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..days, -0.2f64..4.2f64)
        .map_err(err)?;
    state
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("day")
        .y_labels(5)
        .y_label_formatter(&|v| level_name(*v))
        .disable_x_mesh()
        .draw()
        .map_err(err)?;
    // A step line, with a point only where the state changes.
    let mut steps = Vec::new();
    let mut last: Option<State> = None;
    for p in &o.samples {
        if last != Some(p.state) {
            if let Some(l) = last {
                steps.push((x(p.t_ms), level(l)));
            }
            steps.push((x(p.t_ms), level(p.state)));
            last = Some(p.state);
        }
    }
    if let (Some(l), Some(p)) = (last, o.samples.last()) {
        steps.push((x(p.t_ms), level(l)));
    }
    state
        .draw_series(LineSeries::new(steps, &RGBColor(120, 40, 160)))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Energy per consumer, Wh.
pub fn energy(path: &Path, o: &Outcome) -> Result<()> {
    let rows: Vec<(Consumer, f64)> = o
        .ledger
        .per_consumer()
        .into_iter()
        .map(|(c, j)| (c, j / 3600.0))
        .collect();
    let max = rows.iter().map(|r| r.1).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (960, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let names: Vec<&str> = rows.iter().map(|(c, _)| c.as_str()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Energy per consumer (Wh), total {:.0} Wh",
                o.ledger.total_j() / 3600.0
            ),
            ("sans-serif", 15),
        )
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(56)
        .build_cartesian_2d((0..rows.len()).into_segmented(), 0f64..max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .disable_x_mesh()
        .x_labels(rows.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                names.get(*i).copied().unwrap_or("").to_string()
            }
            SegmentValue::Last => String::new(),
        })
        .draw()
        .map_err(err)?;
    // One bar per consumer, in a fixed order (the file is reproducible).
    let style = RGBColor(40, 110, 180).filled();
    chart
        .draw_series(rows.iter().enumerate().map(|(i, (_, wh))| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *wh),
                ],
                style,
            );
            bar.set_margin(0, 0, 10, 10);
            bar
        }))
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
