//! Output of the link commands: short text for a technician, or JSON.

use std::io::Write;

use messages::link::{
    ConfigOutcome, ConfigText, HelloReply, LinkState, LogLine, OutboxStatsReply, ProbeReply,
    TimeReply, UplinkRound, UplinkStatusReply,
};
use messages::{EventJson, EventRecord, StatusRecord};
use serde_json::json;

fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// One event as a JSON line (the form `field-tools events` prints).
pub fn event_line(out: &mut impl Write, e: &EventRecord) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &EventJson::from(e))?;
    writeln!(out)?;
    out.flush()
}

/// `link hello`.
pub fn hello(h: &HelloReply, json: bool) {
    if json {
        print_json(&json!({
            "node_id": h.node_id,
            "firmware_version": h.firmware_version,
            "protocol_version": messages::link::version_string(h.protocol_version),
            "auth_required_for_reads": h.auth_required_for_reads,
            "idle_timeout_ms": h.idle_timeout_ms,
        }));
    } else {
        println!("node:      {}", h.node_id);
        println!("firmware:  {}", h.firmware_version);
        println!(
            "protocol:  field-link {}",
            messages::link::version_string(h.protocol_version)
        );
        println!(
            "reads:     {}",
            if h.auth_required_for_reads {
                "need an authenticated session"
            } else {
                "open"
            }
        );
        println!("idle timeout: {} s", h.idle_timeout_ms / 1000);
    }
}

/// `link status`.
pub fn status(s: &StatusRecord, json: bool) {
    if json {
        print_json(&serde_json::to_value(s).unwrap_or_default());
        return;
    }
    let c = |v: Option<i16>| {
        v.map_or("unknown".into(), |t| {
            format!("{:.2} °C", f64::from(t) / 100.0)
        })
    };
    println!("node:      {} at {}", s.node_id, rfc3339(s.time_ms));
    println!("uptime:    {} s", s.uptime_s);
    println!(
        "battery:   {:.1} %{}, power mode {:?}",
        f64::from(s.battery_permille) / 10.0,
        if s.battery_mv > 0 {
            format!(" ({} mV)", s.battery_mv)
        } else {
            String::new()
        },
        s.power_mode
    );
    println!("air:       {}", c(s.air_temp_c100));
    println!("board:     {}", c(s.board_temp_c100));
    println!(
        "sensors:   microphone {:?}, camera {:?}, climate {:?}, model {:?}",
        s.sensors.microphone, s.sensors.camera, s.sensors.climate, s.sensors.model
    );
    println!(
        "outbox:    {} waiting (low {}, normal {}, high {}, urgent {})",
        s.queue.iter().sum::<u32>(),
        s.queue[0],
        s.queue[1],
        s.queue[2],
        s.queue[3]
    );
    println!(
        "drops:     {} evicted, {} expired, {} corrupt",
        s.drops.evicted_budget, s.drops.expired_ttl, s.drops.corrupt
    );
    println!("disk:      {}", disk_line(&s.disk));
    println!("model:     {}", s.model.0);
    println!(
        "last contact: {}",
        s.last_contact_ms.map_or("never".into(), rfc3339)
    );
    let [clock, rtc, sleep] = clock_lines(&s.clock);
    println!("clock:     {clock}");
    println!("rtc:       {rtc}");
    println!("sleep:     {sleep}");
    println!("detector:  {}", detection_line(s.detection.as_ref()));
    println!("not kept:  {}", not_stored_line(s.not_stored.as_ref()));
}

/// The events found and not stored, by reason, in one line: `events not
/// stored: 12 unsure background, 3 heat rises put down to the sun (since
/// the node started)`; reasons with a count of 0 are left out.
pub fn not_stored_line(n: Option<&messages::NotStored>) -> String {
    let Some(n) = n else {
        return "not reported (a node before status record v8)".into();
    };
    let parts: Vec<String> = [
        (n.excluded, "of an excluded class"),
        (n.background_dropped, "background without a model verdict"),
        (n.uncertain_background, "unsure background"),
        (n.sun_heat_rises, "heat rises put down to the sun"),
    ]
    .into_iter()
    .filter(|(c, _)| *c > 0)
    .map(|(c, what)| format!("{c} {what}"))
    .collect();
    if parts.is_empty() {
        "every event found was stored (since the node started)".into()
    } else {
        format!(
            "events not stored: {} (since the node started)",
            parts.join(", ")
        )
    }
}

/// The detector's health counters in one line: `events: 2 cut at the
/// maximum length, 37 joined into bouts (since the node started)`.
pub fn detection_line(d: Option<&messages::DetectionHealth>) -> String {
    d.map_or("not reported (a node before status record v7)".into(), |d| {
        format!(
            "events: {} cut at the maximum length, {} joined into bouts (since the node started)",
            d.events_cut_at_max, d.events_joined
        )
    })
}

/// The clock part of a status record in three lines: the time the node
/// stamps with and the steps of its system clock, the board's RTC, the
/// last deep sleep.
pub fn clock_lines(c: &messages::ClockStatus) -> [String; 3] {
    let clock = if c.is_empty() {
        "not reported".to_string()
    } else {
        let q = &c.quality;
        let within = q
            .uncertainty_ms
            .map_or(", uncertainty unknown".into(), |u| {
                format!(" within {u} ms")
            });
        let steps = match c.steps {
            0 => "no step of the system clock".to_string(),
            n => format!(
                "{n} step{} of the system clock (largest {:+} ms)",
                if n == 1 { "" } else { "s" },
                c.largest_step_ms
            ),
        };
        format!("time from {}{within}; {steps}", q.source.as_str())
    };
    let r = &c.rtc;
    let rtc = match r.state {
        messages::RtcState::Unknown => "not reported".to_string(),
        messages::RtcState::None => "none found".to_string(),
        messages::RtcState::Found => {
            let offset = r.offset_s.map_or(
                "its time does not read (lost with its backup cell?)".into(),
                |o| format!("{o:+} s against the node's clock"),
            );
            let cell = r.cell_mv.map_or("backup cell not reported".into(), |mv| {
                format!("backup cell {mv} mV")
            });
            format!("found, {offset}, {cell}")
        }
    };
    let sleep = c
        .sleep
        .map_or("none since the data directory was made".into(), |z| {
            format!(
                "{}: {} s of {} s planned, woke by {}",
                z.reason.as_str(),
                z.slept_s,
                z.planned_s,
                z.wake.as_str()
            )
        });
    [clock, rtc, sleep]
}

/// The store's disk in one line: `512 MiB free, ok, 0 evicted for disk`.
pub fn disk_line(d: &messages::DiskReport) -> String {
    let free = d
        .free_mib
        .map_or("free space unknown".into(), |m| format!("{m} MiB free"));
    format!("{free}, {}, {} evicted for disk", d.state, d.evicted)
}

/// This computer's clock, ms since the epoch.
pub fn local_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

/// `link time set`.
pub fn time_set(unix_ms: i64, uncertainty_ms: u32, step_ms: i64, json: bool) {
    if json {
        print_json(&json!({
            "unix_ms": unix_ms,
            "uncertainty_ms": uncertainty_ms,
            "step_ms": step_ms,
        }));
    } else {
        println!(
            "time reference recorded: {} ± {uncertainty_ms} ms",
            rfc3339(unix_ms)
        );
        println!("given minus the node's clock: {step_ms} ms (the node's clock is not changed)");
    }
}

/// `link config set`.
pub fn config_set(o: &ConfigOutcome, json: bool) {
    match o {
        ConfigOutcome::Valid { changed, applies } if !json => {
            println!(
                "configuration file replaced on the node (the previous one kept as <file>.prev)"
            );
            if changed.is_empty() {
                println!("no key differs from the node's running configuration");
            } else {
                println!(
                    "{} key(s) differ from the running configuration; they apply {}:",
                    changed.len(),
                    match applies {
                        messages::link::ApplyWhen::Live => "now",
                        messages::link::ApplyWhen::NextStart => "from the node's next start",
                    }
                );
                for k in changed {
                    println!("  {k}");
                }
            }
        }
        ConfigOutcome::Invalid { .. } if !json => {
            config_outcome(o, json);
            println!("nothing was written");
        }
        _ => config_outcome(o, json),
    }
}

/// `link time`.
pub fn time(t: &TimeReply, json: bool) {
    let local_ms = i128::from(local_ms());
    let offset_ms = i128::from(t.unix_ms) - local_ms;
    if json {
        print_json(&json!({
            "unix_ms": t.unix_ms,
            "uncertainty_ms": t.uncertainty_ms,
            "source": t.source,
            "node_minus_local_ms": offset_ms as i64,
        }));
    } else {
        println!("node time: {} (source {})", rfc3339(t.unix_ms), t.source);
        println!(
            "uncertainty: {}",
            t.uncertainty_ms.map_or(
                "unknown (never set from a trusted source)".into(),
                |u| format!("{u} ms")
            )
        );
        println!("node minus this computer: {offset_ms} ms");
    }
}

/// `link outbox`.
pub fn outbox(o: &OutboxStatsReply, json: bool) {
    if json {
        print_json(&serde_json::to_value(o).unwrap_or_default());
        return;
    }
    println!(
        "waiting:   {} (low {}, normal {}, high {}, urgent {})",
        o.queue.iter().sum::<u32>(),
        o.queue[0],
        o.queue[1],
        o.queue[2],
        o.queue[3]
    );
    println!("bytes:     {} of {}", o.bytes, o.budget_bytes);
    println!("oldest:    {}", o.oldest_ms.map_or("-".into(), rfc3339));
    println!(
        "drops:     {} evicted, {} expired, {} corrupt",
        o.drops.evicted_budget, o.drops.expired_ttl, o.drops.corrupt
    );
    println!("delivered since start: {}", o.delivered_since_start);
}

/// `link config show`.
pub fn config(c: &ConfigText, json: bool) {
    if json {
        print_json(&json!({ "toml": c.toml, "pending_restart": c.pending_restart }));
    } else {
        print!("{}", c.toml);
        if !c.toml.ends_with('\n') {
            println!();
        }
        if c.pending_restart {
            eprintln!(
                "field-tools link: the file differs from the configuration in force; it applies from the next start"
            );
        }
    }
}

/// `link config validate`.
pub fn config_outcome(o: &ConfigOutcome, json: bool) {
    match o {
        ConfigOutcome::Invalid { problems } => {
            if json {
                print_json(&json!({
                    "valid": false,
                    "problems": problems.iter().map(|p| json!({"key": p.key, "problem": p.problem})).collect::<Vec<_>>(),
                }));
            } else {
                println!("invalid: {} problem(s)", problems.len());
                for p in problems {
                    if p.key.is_empty() {
                        println!("  {}", p.problem);
                    } else {
                        println!("  {}: {}", p.key, p.problem);
                    }
                }
            }
        }
        ConfigOutcome::Valid { changed, applies } => {
            if json {
                print_json(&json!({
                    "valid": true,
                    "changed": changed,
                    "applies": format!("{applies:?}"),
                }));
            } else if changed.is_empty() {
                println!("valid: no change from the node's configuration");
            } else {
                println!(
                    "valid: {} key(s) differ from the node's configuration ({applies:?}):",
                    changed.len()
                );
                for k in changed {
                    println!("  {k}");
                }
            }
        }
    }
}

/// One log line of `link logs`: text (`time LEVEL target: message`) or a
/// JSON object.
pub fn log_line(out: &mut impl Write, l: &LogLine, json: bool) -> std::io::Result<()> {
    if json {
        let v = json!({
            "time": rfc3339(l.time_ms),
            "time_ms": l.time_ms,
            "level": l.level.name(),
            "target": l.target,
            "message": l.message,
        });
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "{} {:>5} {}: {}",
            rfc3339(l.time_ms),
            l.level.name().to_uppercase(),
            l.target,
            l.message
        )?;
    }
    out.flush()
}

/// `link probe`.
pub fn probe(p: &ProbeReply, json: bool) {
    if json {
        print_json(&json!({
            "devices": p.devices.iter().map(|d| json!({
                "role": d.role,
                "device": d.device,
                "state": format!("{:?}", d.state).to_lowercase(),
                "detail": d.detail,
            })).collect::<Vec<_>>(),
        }));
        return;
    }
    for d in &p.devices {
        println!(
            "{:<10} {:<9} {}",
            d.role,
            format!("{:?}", d.state).to_lowercase(),
            d.device
        );
        if !d.detail.is_empty() {
            println!("           {}", d.detail);
        }
    }
}

fn link_state(s: LinkState) -> &'static str {
    match s {
        LinkState::Disabled => "disabled",
        LinkState::Up => "up",
        LinkState::Down => "down",
        LinkState::Held => "held",
    }
}

/// `link uplink status`.
pub fn uplink_status(u: &UplinkStatusReply, json: bool) {
    if json {
        print_json(&json!({
            "links": u.links.iter().map(|l| json!({
                "link": l.link,
                "state": link_state(l.state),
                "last_success_ms": l.last_success_ms,
                "last_success": l.last_success_ms.map(rfc3339),
                "last_error": l.last_error,
            })).collect::<Vec<_>>(),
            "sbd_credits_left": u.sbd_credits_left,
        }));
        return;
    }
    for l in &u.links {
        println!(
            "{:<5} {:<9} last delivery {}",
            l.link,
            link_state(l.state),
            l.last_success_ms.map_or("-".into(), rfc3339)
        );
        if let Some(e) = &l.last_error {
            println!("      last error: {e}");
        }
    }
    if let Some(c) = u.sbd_credits_left {
        println!("satellite credits left: {c}");
    }
}

/// `link uplink flush`.
pub fn uplink_flush(queued: u32, round: Option<&UplinkRound>, json: bool) {
    if json {
        print_json(&json!({
            "queued": queued,
            "round": round.map(|r| json!({"action": r.action, "items": r.items, "detail": r.detail})),
        }));
        return;
    }
    println!("outbox: {queued} item(s) waiting when the flush started");
    match round {
        Some(r) if r.action == "mqtt" || r.action == "sbd" => {
            println!("the uplink sent {} item(s) by {}", r.items, r.action)
        }
        Some(r) if r.action == "held" => println!("the uplink is held: {}", r.detail),
        Some(r) => println!("the uplink sent nothing: {}", r.detail),
        None => println!("the uplink did not run a round in time; it will at its next one"),
    }
}

/// `link reboot`.
pub fn rebooting(after_ms: u32, json: bool) {
    if json {
        print_json(&json!({ "rebooting": true, "after_ms": after_ms }));
    } else {
        println!(
            "the node stops in {after_ms} ms (everything detected is stored) and is restarted by its service manager"
        );
    }
}

/// `link push`: the node's outcome, and how the bytes travelled.
pub fn pushed(file: &super::push::PushFile, p: &super::push::Pushed, json: bool) {
    use messages::link::BundleOutcome;
    let (result, code, reason) = match &p.outcome {
        BundleOutcome::Installed { reason } => ("installed", "", reason.as_str()),
        BundleOutcome::OnTrial { reason } => ("on_trial", "", reason.as_str()),
        BundleOutcome::Deferred { reason } => ("deferred", "", reason.as_str()),
        BundleOutcome::Refused { code, reason } => ("refused", code.as_str(), reason.as_str()),
        BundleOutcome::RolledBack { code, reason } => {
            ("rolled_back", code.as_str(), reason.as_str())
        }
        BundleOutcome::Queued { .. } => (
            "queued",
            "",
            "the node's update task had not decided within its wait; the result is reported as any update result (status, logs)",
        ),
    };
    let kind = match file.kind {
        messages::link::BundleKind::Model => "model",
        messages::link::BundleKind::Settings => "settings",
    };
    if json {
        print_json(&json!({
            "kind": kind,
            "name": file.name,
            "version": file.version,
            "bytes": file.bytes.len(),
            "resumed_from": p.resumed_from,
            "sent": p.sent,
            "connections": p.connections,
            "result": result,
            "code": code,
            "reason": reason,
        }));
        return;
    }
    if p.resumed_from > 0 {
        println!(
            "resumed at byte {} of {} (the node held them)",
            p.resumed_from,
            file.bytes.len()
        );
    }
    let code = if code.is_empty() {
        String::new()
    } else {
        format!(" ({code})")
    };
    println!(
        "{kind} {} version {}: {result}{code}: {reason}",
        file.name, file.version
    );
}

/// `link ports`.
pub fn ports(ports: &[super::ports::PortInfo], json: bool) {
    if json {
        print_json(&serde_json::to_value(ports).unwrap_or_default());
        return;
    }
    if ports.is_empty() {
        println!("no serial ports found");
        return;
    }
    for p in ports {
        let mut line = format!("{:<16} {:<9}", p.path, p.kind);
        if let Some(id) = p.usb_id() {
            line.push_str(&format!(" {id}"));
        }
        for s in [&p.manufacturer, &p.product].into_iter().flatten() {
            line.push_str(&format!(" {s}"));
        }
        if let Some(sn) = &p.serial_number {
            line.push_str(&format!(" (serial {sn})"));
        }
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_lines_name_source_steps_rtc_and_sleep() {
        assert_eq!(
            clock_lines(&messages::ClockStatus::default()),
            [
                "not reported",
                "not reported",
                "none since the data directory was made"
            ]
        );
        let mut c = messages::ClockStatus {
            quality: messages::TimeQuality {
                source: messages::TimeSource::Gnss,
                uncertainty_ms: Some(50),
                restamped: false,
            },
            steps: 2,
            largest_step_ms: -3_600_000,
            rtc: messages::RtcStatus {
                state: messages::RtcState::Found,
                offset_s: Some(-2),
                cell_mv: Some(3012),
            },
            sleep: Some(messages::LastSleep {
                reason: messages::SleepReasonCode::LowBattery,
                slept_s: 5347,
                planned_s: 5340,
                wake: messages::WakeCause::Rtc,
            }),
        };
        assert_eq!(
            clock_lines(&c),
            [
                "time from gnss within 50 ms; 2 steps of the system clock (largest -3600000 ms)",
                "found, -2 s against the node's clock, backup cell 3012 mV",
                "low_battery: 5347 s of 5340 s planned, woke by rtc",
            ]
        );
        c.steps = 0;
        c.quality.uncertainty_ms = None;
        c.rtc = messages::RtcStatus {
            state: messages::RtcState::Found,
            offset_s: None,
            cell_mv: None,
        };
        let [clock, rtc, _] = clock_lines(&c);
        assert_eq!(
            clock,
            "time from gnss, uncertainty unknown; no step of the system clock"
        );
        assert_eq!(
            rtc,
            "found, its time does not read (lost with its backup cell?), backup cell not reported"
        );
        c.rtc = messages::RtcStatus::NONE;
        assert_eq!(clock_lines(&c)[1], "none found");
    }

    #[test]
    fn the_not_stored_line_names_the_reasons_that_count() {
        let mut n = messages::NotStored {
            excluded: 0,
            background_dropped: 0,
            uncertain_background: 12,
            sun_heat_rises: 3,
        };
        assert_eq!(
            not_stored_line(Some(&n)),
            "events not stored: 12 unsure background, 3 heat rises put down to the sun (since the node started)"
        );
        n.excluded = 1;
        n.background_dropped = 4;
        assert_eq!(
            not_stored_line(Some(&n)),
            "events not stored: 1 of an excluded class, 4 background without a model verdict, 12 unsure background, 3 heat rises put down to the sun (since the node started)"
        );
        assert_eq!(
            not_stored_line(Some(&messages::NotStored::default())),
            "every event found was stored (since the node started)"
        );
        assert_eq!(
            not_stored_line(None),
            "not reported (a node before status record v8)"
        );
    }

    #[test]
    fn the_detection_line_names_both_counts_or_says_they_are_not_reported() {
        let d = messages::DetectionHealth {
            events_cut_at_max: 2,
            events_joined: 37,
        };
        assert_eq!(
            detection_line(Some(&d)),
            "events: 2 cut at the maximum length, 37 joined into bouts (since the node started)"
        );
        assert_eq!(
            detection_line(Some(&messages::DetectionHealth::default())),
            "events: 0 cut at the maximum length, 0 joined into bouts (since the node started)"
        );
        assert_eq!(
            detection_line(None),
            "not reported (a node before status record v7)"
        );
    }

    #[test]
    fn the_disk_line_names_free_space_state_and_evictions() {
        let d = messages::DiskReport {
            free_mib: Some(512),
            state: messages::DiskStateCode::Evicting,
            evicted: 3,
        };
        assert_eq!(disk_line(&d), "512 MiB free, evicting, 3 evicted for disk");
        assert_eq!(
            disk_line(&messages::DiskReport::default()),
            "free space unknown, unknown, 0 evicted for disk"
        );
    }
}
