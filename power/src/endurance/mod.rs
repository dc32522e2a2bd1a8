//! The endurance simulation: the real [`PowerPolicy`], [`plan_wake`] and
//! listening windows stepped on a simulated clock against a battery, a
//! solar panel under a daily weather series ([`weather`]) and events
//! arriving at a Poisson rate, with every costed action counted in an
//! [`EnergyLedger`].
//!
//! Rules:
//! - awake, the node reads its supply every `interval_ms` (the power task's
//!   interval) and the policy rules on that reading, exactly as in the
//!   node: the step before a reading spends what the previous status
//!   allowed (audio all the time or its duty cycle's share, camera frames
//!   at the status's cadence or, on demand, for the hold after each
//!   captured event, climate readings at the status's cadence, a burst per
//!   event when bursts are allowed, a satellite session for a pending daily
//!   report when uplink is allowed);
//! - a sleep call with a wake from [`plan_wake`] halts the node until that
//!   wake; asleep, time advances in steps of `sample_ms` at the halted draw,
//!   and each wake costs a boot and starts a new policy that knows it
//!   resumed from a sleep (as the node's start does);
//! - the battery reaching empty is a brownout: the node is off (no draw)
//!   until the panel has charged it back to `restart_soc`, then cold-boots;
//! - an event is captured when the node is awake and its microphone
//!   listening (always, or inside the duty cycle's listening part), and
//!   classified when the policy also allows a burst.

pub mod weather;

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::ledger::{Actions, EnergyCosts, EnergyLedger};
use crate::{
    PolicyConfig, PowerMode, PowerPolicy, PowerReading, PowerStatus, SimulatedSupply,
    SimulationConfig, SleepConfig, SleepReason, Step, WakeBound, plan_wake,
};

pub use weather::{Weather, WeatherError};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// 2026-06-01T00:00:00Z, the default start.
pub const DEFAULT_START_MS: i64 = 1_780_272_000_000;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Length, days.
    pub days: u32,
    /// Start, ms since the Unix epoch.
    pub start_ms: i64,
    /// Usable battery capacity, Wh.
    pub battery_wh: f64,
    /// State of charge at the start.
    pub initial_soc: f64,
    /// After a brownout, the charge at which the node starts again.
    pub restart_soc: f64,
    /// Panel rating, W.
    pub panel_w: f64,
    /// Share of the rating the panel delivers into the battery at solar
    /// noon under a clear sky (angle, temperature, dust, charge
    /// controller and battery charge losses).
    pub panel_derate: f64,
    /// Sunrise and sunset, local solar time, hours.
    pub sunrise_h: f64,
    /// See `sunrise_h`.
    pub sunset_h: f64,
    /// Daily cloud shares.
    pub weather: Weather,
    /// Events per hour (Poisson).
    pub events_per_h: f64,
    /// Seed of the event times.
    pub seed: u64,
    /// The power task's reading interval, ms.
    pub interval_ms: u64,
    /// Step while asleep or off, and the spacing of the plotted samples, ms.
    pub sample_ms: u64,
    /// `[power.policy]`.
    pub policy: PolicyConfig,
    /// `[power.sleep]`.
    pub sleep: SleepConfig,
    /// `[power.costs]`.
    pub costs: EnergyCosts,
}

impl Setup {
    /// The defaults (100 Wh, a 20 W panel, summer days from 06:00 to
    /// 20:00) under `weather`.
    pub fn new(weather: Weather) -> Self {
        Setup {
            days: 30,
            start_ms: DEFAULT_START_MS,
            battery_wh: 100.0,
            initial_soc: 1.0,
            restart_soc: 0.05,
            panel_w: 20.0,
            panel_derate: 0.6,
            sunrise_h: 6.0,
            sunset_h: 20.0,
            weather,
            events_per_h: 2.0,
            seed: 1,
            interval_ms: 10_000,
            sample_ms: 600_000,
            policy: PolicyConfig::default(),
            sleep: SleepConfig::default(),
            costs: EnergyCosts::default(),
        }
    }

    /// Range checks, as `(option, problem)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        let mut check = |ok: bool, k: &str, m: &str| {
            if !ok {
                e.push((k.to_string(), m.to_string()));
            }
        };
        check((1..=3650).contains(&self.days), "days", "must be 1 to 3650");
        check(
            self.battery_wh.is_finite() && self.battery_wh > 0.0,
            "battery_wh",
            "must be a positive number of Wh",
        );
        check(
            (0.0..=1.0).contains(&self.initial_soc),
            "initial_soc",
            "must be between 0 and 1",
        );
        check(
            (0.0..=1.0).contains(&self.restart_soc) && self.restart_soc > 0.0,
            "restart_soc",
            "must be above 0 and at most 1",
        );
        check(
            self.panel_w.is_finite() && self.panel_w >= 0.0,
            "panel_w",
            "must be zero or more W",
        );
        check(
            (0.0..=1.0).contains(&self.panel_derate),
            "panel_derate",
            "must be between 0 and 1",
        );
        check(
            self.events_per_h.is_finite() && (0.0..=3600.0).contains(&self.events_per_h),
            "events_per_h",
            "must be between 0 and 3600",
        );
        check(
            (100..=3_600_000).contains(&self.interval_ms),
            "interval_ms",
            "must be between 100 ms and one hour",
        );
        check(
            (1_000..=3_600_000).contains(&self.sample_ms),
            "sample_ms",
            "must be between 1 s and one hour",
        );
        let solar = self.solar_config(0.0);
        e.extend(
            solar
                .validate()
                .into_iter()
                .filter(|(k, _)| k == "sunrise_h" || k == "sunset_h"),
        );
        e.extend(self.policy.validate());
        e.extend(self.sleep.validate());
        e.extend(self.costs.validate());
        e
    }

    fn solar_config(&self, cloud: f64) -> SimulationConfig {
        SimulationConfig {
            solar_peak_w: self.panel_w * self.panel_derate,
            sunrise_h: self.sunrise_h,
            sunset_h: self.sunset_h,
            utc_offset_h: self.sleep.utc_offset_h,
            cloud_cover: cloud,
            ..SimulationConfig::default()
        }
    }
}

/// What the node was doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Awake in normal mode.
    Normal,
    /// Awake in saver mode.
    Saver,
    /// Awake in critical mode.
    Critical,
    /// Halted until the RTC wakes it.
    Asleep,
    /// Browned out: the battery empty.
    Off,
}

impl State {
    /// Every state, in report order.
    pub const ALL: [State; 5] = [
        State::Normal,
        State::Saver,
        State::Critical,
        State::Asleep,
        State::Off,
    ];

    fn awake(mode: PowerMode) -> State {
        match mode {
            PowerMode::Normal => State::Normal,
            PowerMode::Saver => State::Saver,
            PowerMode::Critical => State::Critical,
        }
    }

    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Normal => "normal",
            State::Saver => "saver",
            State::Critical => "critical",
            State::Asleep => "asleep",
            State::Off => "off",
        }
    }
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// The policy changed mode.
    Mode {
        /// When.
        t_ms: i64,
        /// From.
        from: PowerMode,
        /// To.
        to: PowerMode,
        /// The charge.
        soc: f64,
    },
    /// The node halted for a sleep.
    Sleep {
        /// When.
        t_ms: i64,
        /// Why.
        reason: SleepReason,
        /// What set the wake.
        bound: WakeBound,
        /// Planned length, s.
        planned_s: i64,
        /// The charge.
        soc: f64,
    },
    /// The RTC woke the node.
    Wake {
        /// When.
        t_ms: i64,
        /// The charge.
        soc: f64,
    },
    /// The battery reached empty.
    Brownout {
        /// When.
        t_ms: i64,
    },
    /// Charged back to `restart_soc` after a brownout: a cold boot.
    Restart {
        /// When.
        t_ms: i64,
    },
}

impl Entry {
    /// When.
    pub fn t_ms(&self) -> i64 {
        match self {
            Entry::Mode { t_ms, .. }
            | Entry::Sleep { t_ms, .. }
            | Entry::Wake { t_ms, .. }
            | Entry::Brownout { t_ms }
            | Entry::Restart { t_ms } => *t_ms,
        }
    }
}

/// A point of the plotted series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// When.
    pub t_ms: i64,
    /// State of charge.
    pub soc: f64,
    /// Charge input from the panel, W.
    pub solar_w: f64,
    /// What the node was doing.
    pub state: State,
}

/// One day's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Day {
    /// Hours awake inside listening windows.
    pub listening_h: f64,
    /// Hours awake.
    pub awake_h: f64,
    /// Whether a satellite session carried the daily status report.
    pub report_sent: bool,
    /// Energy from the panel, Wh.
    pub solar_wh: f64,
    /// Energy spent, Wh (the ledger's).
    pub used_wh: f64,
    /// Whether the battery reached empty that day.
    pub brownout: bool,
    /// Lowest charge of the day.
    pub min_soc: f64,
}

/// Events in one state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Events that happened.
    pub happened: u64,
    /// Captured (the node awake, listening).
    pub captured: u64,
    /// Also classified by an inference burst.
    pub classified: u64,
}

/// What the simulation found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Mode changes, sleeps, wakes, brownouts and restarts, in time order.
    pub timeline: Vec<Entry>,
    /// Every `sample_ms`.
    pub samples: Vec<Sample>,
    /// Per day.
    pub days: Vec<Day>,
    /// Events per state.
    pub events: BTreeMap<State, Tally>,
    /// Energy per consumer.
    pub ledger: EnergyLedger,
    /// Times the battery reached empty.
    pub brownouts: u32,
    /// Listening window hours a day, as configured.
    pub window_h_per_day: f64,
}

impl Outcome {
    /// Whole days from the start before the first day that fails: a
    /// brownout, under `min_listening_h` awake in listening windows, or
    /// (with `need_report`) no satellite status report.
    pub fn days_meeting(&self, min_listening_h: f64, need_report: bool) -> usize {
        self.days
            .iter()
            .take_while(|d| {
                !d.brownout
                    && d.listening_h + 1e-9 >= min_listening_h
                    && (!need_report || d.report_sent)
            })
            .count()
    }

    /// Events over all states.
    pub fn total(&self) -> Tally {
        self.events.values().fold(Tally::default(), |a, t| Tally {
            happened: a.happened + t.happened,
            captured: a.captured + t.captured,
            classified: a.classified + t.classified,
        })
    }
}

enum Node {
    Awake {
        policy: Box<PowerPolicy>,
        status: Box<PowerStatus>,
    },
    Asleep {
        wake_ms: i64,
    },
    Off,
}

struct Sim<'a> {
    s: &'a Setup,
    t: i64,
    end: i64,
    soc: f64,
    capacity_j: f64,
    ledger: EnergyLedger,
    out_timeline: Vec<Entry>,
    samples: Vec<Sample>,
    next_sample: i64,
    days: Vec<Day>,
    events: Vec<i64>,
    next_event: usize,
    tally: BTreeMap<State, Tally>,
    brownouts: u32,
    next_report: Option<i64>,
    report_pending: bool,
    last_burst: Option<i64>,
    frames_due: f64,
    climate_due: f64,
    camera_on_until: i64,
}

impl Sim<'_> {
    fn solar_w(&self, t_ms: i64) -> f64 {
        let day = usize::try_from((t_ms - self.s.start_ms).div_euclid(DAY_MS)).unwrap_or(0);
        SimulatedSupply::new(self.s.solar_config(self.s.weather.cloud(day))).solar_w(t_ms)
    }

    fn day(&mut self, t_ms: i64) -> &mut Day {
        let i = usize::try_from((t_ms - self.s.start_ms).div_euclid(DAY_MS)).unwrap_or(0);
        let last = self.days.len().saturating_sub(1);
        &mut self.days[i.min(last)]
    }

    /// Events in `[from, to)`, tallied in `state`; returns their times.
    fn take_events(&mut self, from: i64, to: i64, state: State) -> Vec<i64> {
        let mut got = Vec::new();
        while let Some(&e) = self.events.get(self.next_event) {
            if e >= to {
                break;
            }
            self.next_event += 1;
            if e >= from {
                self.tally.entry(state).or_default().happened += 1;
                got.push(e);
            }
        }
        got
    }

    /// Spends `actions` and charges from the panel over `[t, t + dt)`;
    /// moves the clock. Returns true on a brownout.
    fn spend(&mut self, dt_ms: i64, actions: &Actions) -> bool {
        let mid = self.t + dt_ms / 2;
        let solar_w = self.solar_w(mid);
        let dt_s = dt_ms as f64 / 1000.0;
        let used_j = self.ledger.record(actions);
        let day = self.day(self.t);
        day.solar_wh += solar_w * dt_s / 3600.0;
        day.used_wh += used_j / 3600.0;
        self.soc = (self.soc + (solar_w * dt_s - used_j) / self.capacity_j).min(1.0);
        self.t += dt_ms;
        let soc = self.soc.max(0.0);
        let d = self.day(self.t - 1);
        d.min_soc = d.min_soc.min(soc);
        if self.soc <= 0.0 {
            self.soc = 0.0;
            return true;
        }
        false
    }

    fn sample(&mut self, state: State) {
        while self.t >= self.next_sample && self.next_sample < self.end {
            self.samples.push(Sample {
                t_ms: self.next_sample,
                soc: self.soc,
                solar_w: self.solar_w(self.next_sample),
                state,
            });
            self.next_sample += i64::try_from(self.s.sample_ms).unwrap_or(600_000);
        }
    }

    fn due_reports(&mut self) {
        while let Some(r) = self.next_report {
            if r > self.t {
                break;
            }
            self.report_pending = true;
            self.next_report = Some(r + DAY_MS);
        }
    }

    fn reading(&self, solar_w: f64, load_w: f64) -> PowerReading {
        PowerReading {
            t_ms: self.t,
            soc: self.soc,
            solar_w,
            load_w,
            battery_mv: None,
        }
    }

    /// A boot at the current time: its cost, and the policy's first
    /// reading (as the node's start).
    fn boot(&mut self, resumed: bool) -> Node {
        let boot = Actions {
            boots: 1,
            ..Actions::default()
        };
        let j = self.ledger.record(&boot);
        self.soc = (self.soc - j / self.capacity_j).max(0.0);
        let t = self.t;
        self.day(t).used_wh += j / 3600.0;
        let mut policy = PowerPolicy::new(self.s.policy.clone());
        policy.set_listening(Some(self.s.sleep.listening()));
        if resumed {
            policy.resumed_from_sleep();
        }
        let solar_w = self.solar_w(self.t);
        let status = policy.update(self.reading(solar_w, self.s.costs.awake_idle_w));
        Node::Awake {
            policy: Box::new(policy),
            status: Box::new(status),
        }
    }

    fn awake_step(&mut self, policy: &mut PowerPolicy, status: &mut PowerStatus) -> Option<Node> {
        let dt = i64::try_from(self.s.interval_ms)
            .unwrap_or(10_000)
            .min(self.end - self.t)
            .max(1);
        let dt_s = dt as f64 / 1000.0;
        let state = State::awake(status.mode);
        // Audio: all the time, or the duty cycle's share.
        let audio_s = match status.audio_duty {
            Some(d) => dt_s * d.listen_ms as f64 / d.cycle_ms.max(1) as f64,
            None => dt_s,
        };
        let mut a = Actions {
            awake_s: dt_s,
            audio_s,
            ..Actions::default()
        };
        self.climate_due += dt as f64 / status.climate_interval_ms.max(1) as f64;
        a.climate_readings = self.climate_due.floor() as u64;
        self.climate_due -= a.climate_readings as f64;
        let bursts = status.decide(Step::InferenceBurst).allowed();
        let mut captured = Vec::new();
        for e in self.take_events(self.t, self.t + dt, state) {
            // Under a duty cycle, an event while the microphone is
            // stopped is missed.
            if status.audio_duty.is_some_and(|d| !d.listening_at(e)) {
                continue;
            }
            captured.push(e);
            let tally = self.tally.entry(state).or_default();
            tally.captured += 1;
            if bursts {
                tally.classified += 1;
                a.bursts += 1;
                // The idle release powers the accelerator down a minute
                // after its last burst.
                if self.last_burst.is_none_or(|b| e - b > 60_000) {
                    a.accelerator_wakes += 1;
                }
                self.last_burst = Some(e);
            }
        }
        // The camera: at its cadence, or on demand for `hold` after each
        // captured event (audio activity asks for it).
        if let Some(every) = status.camera_interval_ms {
            let on_ms = match status.camera_hold_ms {
                None => dt,
                Some(hold) => {
                    let hold = i64::try_from(hold).unwrap_or(i64::MAX / 2);
                    let end = self.t + dt;
                    // On from the previous requests, then from each new one.
                    let mut on = self.camera_on_until.min(end).saturating_sub(self.t).max(0);
                    let mut covered = self.camera_on_until.max(self.t);
                    for &e in &captured {
                        let from = e.max(covered);
                        let to = e.saturating_add(hold).min(end);
                        on += (to - from).max(0);
                        covered = covered.max(e.saturating_add(hold));
                    }
                    self.camera_on_until = covered;
                    on
                }
            };
            self.frames_due += on_ms as f64 / every.max(1) as f64;
            a.camera_frames = self.frames_due.floor() as u64;
            self.frames_due -= a.camera_frames as f64;
        }
        self.due_reports();
        if self.report_pending && status.decide(Step::Uplink).allowed() {
            a.satellite_sessions = 1;
            self.report_pending = false;
            let t = self.t;
            self.day(t).report_sent = true;
        }
        let listening = self.s.sleep.listening();
        let in_window = listening.window_at(self.t + dt / 2).is_some();
        {
            let t = self.t;
            let d = self.day(t);
            d.awake_h += dt_s / 3600.0;
            if in_window {
                d.listening_h += dt_s / 3600.0;
            }
        }
        let load_w = a.total_j(&self.s.costs) / dt_s;
        if self.spend(dt, &a) {
            return Some(self.brownout());
        }
        let before = status.mode;
        let solar_w = self.solar_w(self.t - dt / 2);
        *status = policy.update(self.reading(solar_w, load_w));
        if status.mode != before {
            self.out_timeline.push(Entry::Mode {
                t_ms: self.t,
                from: before,
                to: status.mode,
                soc: self.soc,
            });
        }
        let call = status.sleep?;
        let wake = plan_wake(&self.s.sleep, self.t)?;
        self.out_timeline.push(Entry::Sleep {
            t_ms: self.t,
            reason: call.reason,
            bound: wake.bound,
            planned_s: (wake.wake_ms - self.t) / 1000,
            soc: self.soc,
        });
        Some(Node::Asleep {
            wake_ms: wake.wake_ms,
        })
    }

    fn brownout(&mut self) -> Node {
        self.brownouts += 1;
        let t = self.t;
        self.day(t).brownout = true;
        self.out_timeline.push(Entry::Brownout { t_ms: t });
        Node::Off
    }

    /// Asleep or off: one coarse step. Returns the next state.
    fn idle_step(&mut self, until: Option<i64>, state: State) -> Option<Node> {
        let step = i64::try_from(self.s.sample_ms).unwrap_or(600_000);
        let to = until.unwrap_or(i64::MAX).min(self.t + step).min(self.end);
        let dt = (to - self.t).max(1);
        self.take_events(self.t, self.t + dt, state);
        self.due_reports();
        let a = Actions {
            halted_s: if state == State::Asleep {
                dt as f64 / 1000.0
            } else {
                0.0
            },
            ..Actions::default()
        };
        if self.spend(dt, &a) && state == State::Asleep {
            return Some(self.brownout());
        }
        match (state, until) {
            (State::Asleep, Some(w)) if self.t >= w => {
                self.out_timeline.push(Entry::Wake {
                    t_ms: self.t,
                    soc: self.soc,
                });
                Some(self.boot(true))
            }
            (State::Off, _) if self.soc >= self.s.restart_soc => {
                self.out_timeline.push(Entry::Restart { t_ms: self.t });
                Some(self.boot(false))
            }
            _ => None,
        }
    }
}

/// Poisson event times in `[start, end)`.
fn event_times(rate_per_h: f64, seed: u64, start: i64, end: i64) -> Vec<i64> {
    let mut out = Vec::new();
    if rate_per_h <= 0.0 {
        return out;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mean_ms = HOUR_MS as f64 / rate_per_h;
    let mut t = start as f64;
    loop {
        let u: f64 = rng.random();
        t += -(1.0 - u).ln() * mean_ms;
        if t >= end as f64 {
            return out;
        }
        out.push(t as i64);
    }
}

/// Runs the simulation (see the module's rules). The setup is assumed
/// valid ([`Setup::validate`]).
pub fn simulate(s: &Setup) -> Outcome {
    let end = s.start_ms + i64::from(s.days) * DAY_MS;
    let mut sim = Sim {
        s,
        t: s.start_ms,
        end,
        soc: s.initial_soc.clamp(0.0, 1.0),
        capacity_j: s.battery_wh * 3600.0,
        ledger: EnergyLedger::new(s.costs.clone()),
        out_timeline: Vec::new(),
        samples: Vec::new(),
        next_sample: s.start_ms,
        days: vec![
            Day {
                min_soc: 1.0,
                ..Day::default()
            };
            s.days as usize
        ],
        events: event_times(s.events_per_h, s.seed, s.start_ms, end),
        next_event: 0,
        tally: State::ALL
            .iter()
            .map(|&st| (st, Tally::default()))
            .collect(),
        brownouts: 0,
        next_report: s.sleep.report_utc_h.map(|h| {
            let first = s.start_ms.div_euclid(DAY_MS) * DAY_MS + (h * HOUR_MS as f64) as i64;
            if first < s.start_ms {
                first + DAY_MS
            } else {
                first
            }
        }),
        report_pending: false,
        last_burst: None,
        frames_due: 0.0,
        climate_due: 0.0,
        camera_on_until: i64::MIN,
    };
    let mut node = sim.boot(false);
    while sim.t < end {
        let (next, state) = match &mut node {
            Node::Awake { policy, status } => {
                let st = State::awake(status.mode);
                (sim.awake_step(policy, status), st)
            }
            Node::Asleep { wake_ms } => {
                let w = *wake_ms;
                (sim.idle_step(Some(w), State::Asleep), State::Asleep)
            }
            Node::Off => (sim.idle_step(None, State::Off), State::Off),
        };
        sim.sample(state);
        if let Some(n) = next {
            node = n;
        }
    }
    Outcome {
        timeline: sim.out_timeline,
        samples: sim.samples,
        days: sim.days,
        events: sim.tally,
        ledger: sim.ledger,
        brownouts: sim.brownouts,
        window_h_per_day: s.sleep.listening().hours_per_day(),
    }
}

#[cfg(test)]
mod tests;
