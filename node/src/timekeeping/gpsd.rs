//! GNSS time through gpsd.
//!
//! A GNSS receiver on the Pi's UART or USB is read by `gpsd`, which serves
//! its fixes as JSON lines on TCP (port 2947). The node connects, asks for
//! the JSON watch stream, and offers the time of a fix (a `TPV` report with
//! `mode` 2 or 3) to the clock as a [`ReferenceSource::Gnss`] reference, at
//! most once per `offer_every_s`. The clock decides whether to take it
//! ([`crate::timekeeping::GuardedClock::offer`]): never when it is earlier
//! than the time floor (a receiver that lost its almanac, or a GPS week
//! rollover, reports years in the past).
//!
//! A report's time is the fix's; it reaches the node through the serial
//! line and gpsd, late by up to about a second, so the reference carries
//! [`LATENCY_MS`] plus gpsd's own time error estimate (`ept`) as its
//! uncertainty. The link to gpsd is retried with a growing pause; lines are
//! bounded in length, so a misbehaving server cannot make the node hold
//! unbounded memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::guarded::ReferenceSource;
use crate::clock::Clock;
use crate::shutdown::Shutdown;

/// Added to gpsd's time error estimate: how late a report reaches the node.
pub const LATENCY_MS: u32 = 1000;
/// A line longer than this ends the connection (gpsd's longest reports,
/// `SKY` with many satellites, stay under a few KiB).
pub const MAX_LINE: usize = 64 * 1024;
/// Asks gpsd for its reports as JSON.
const WATCH: &[u8] = b"?WATCH={\"enable\":true,\"json\":true};\n";
/// Pause before the first reconnect; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(5);
const MAX_PAUSE: Duration = Duration::from_secs(300);
/// A connection attempt gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `[time]` keys for gpsd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpsdConfig {
    /// gpsd's address, `host:port`; empty: no GNSS time.
    pub address: String,
    /// A fix's time is offered to the clock at most this often, seconds.
    pub offer_every_s: u64,
}

impl Default for GpsdConfig {
    fn default() -> Self {
        GpsdConfig {
            address: String::new(),
            offer_every_s: 600,
        }
    }
}

impl GpsdConfig {
    /// Range checks, as `(key, message)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut e = Vec::new();
        if !self.address.is_empty() {
            let port = self.address.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
            if !matches!(port, Some(Ok(p)) if p > 0) {
                e.push((
                    "address".into(),
                    "must be host:port, e.g. \"127.0.0.1:2947\" (gpsd's default port)".into(),
                ));
            }
        }
        if !(10..=86_400).contains(&self.offer_every_s) {
            e.push((
                "offer_every_s".into(),
                "must be between 10 s and one day".into(),
            ));
        }
        e
    }
}

/// The time of one GNSS fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GnssFix {
    /// The fix's time, ms since the Unix epoch.
    pub unix_ms: i64,
    /// How far it may be off when it reaches the node, ms.
    pub uncertainty_ms: u32,
    /// 2: a 2D fix, 3: a 3D fix.
    pub mode: u8,
}

/// A line gpsd sent that is not a report the node can read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GpsdLineError {
    /// Not a JSON object.
    #[error("not a gpsd JSON report: {0}")]
    Json(String),
    /// A `TPV` report with a fix whose `time` is not RFC 3339.
    #[error("TPV time {0:?} is not an RFC 3339 time")]
    Time(String),
}

#[derive(Deserialize)]
struct Report {
    class: String,
    #[serde(default)]
    mode: Option<u8>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    ept: Option<f64>,
}

/// Reads one line of gpsd's JSON stream: a fix's time, `None` for other
/// reports and for a `TPV` without a fix or without a time.
pub fn parse_line(line: &str) -> Result<Option<GnssFix>, GpsdLineError> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let report: Report =
        serde_json::from_str(line).map_err(|e| GpsdLineError::Json(e.to_string()))?;
    if report.class != "TPV" {
        return Ok(None);
    }
    let (Some(mode @ 2..=3), Some(time)) = (report.mode, report.time) else {
        return Ok(None);
    };
    let unix_ms = crate::scene::meta::parse_rfc3339_ms(&time).ok_or(GpsdLineError::Time(time))?;
    // ept is gpsd's estimate of the time error, seconds (95 %).
    let ept_ms = report
        .ept
        .filter(|e| e.is_finite() && *e >= 0.0)
        .map_or(0, |e| {
            (e * 1000.0).ceil().min(f64::from(u32::MAX / 2)) as u32
        });
    Ok(Some(GnssFix {
        unix_ms,
        uncertainty_ms: LATENCY_MS.saturating_add(ept_ms),
        mode,
    }))
}

/// What the gpsd link did, for the run summary.
#[derive(Debug, Default)]
pub struct GnssStats {
    connects: AtomicU64,
    connect_failures: AtomicU64,
    fixes: AtomicU64,
    offers: AtomicU64,
    bad_lines: AtomicU64,
    last_mode: AtomicU64,
}

/// A snapshot of [`GnssStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GnssReport {
    /// Connections made to gpsd.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Reports with a fix and a time.
    pub fixes: u64,
    /// Fix times offered to the clock.
    pub offers: u64,
    /// Lines that were not readable reports (or too long).
    pub bad_lines: u64,
    /// The last fix's mode (2 or 3), 0 before any.
    pub last_mode: u8,
}

impl GnssStats {
    /// The counts so far.
    pub fn report(&self) -> GnssReport {
        GnssReport {
            connects: self.connects.load(Ordering::Relaxed),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            fixes: self.fixes.load(Ordering::Relaxed),
            offers: self.offers.load(Ordering::Relaxed),
            bad_lines: self.bad_lines.load(Ordering::Relaxed),
            last_mode: u8::try_from(self.last_mode.load(Ordering::Relaxed)).unwrap_or(0),
        }
    }
}

/// Why a connection to gpsd ended.
#[derive(Debug, thiserror::Error)]
enum LinkEnd {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("gpsd closed the connection")]
    Closed,
    #[error("a line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// Reads gpsd at `cfg.address` and offers fix times to `clock` until
/// `shutdown`. Returns at once when no address is configured.
pub async fn run(
    cfg: GpsdConfig,
    clock: Arc<dyn Clock>,
    stats: Arc<GnssStats>,
    mut shutdown: Shutdown,
) {
    if cfg.address.is_empty() {
        return;
    }
    let every_ms = i64::try_from(cfg.offer_every_s.saturating_mul(1000)).unwrap_or(i64::MAX);
    // Monotonic time of the last offer, shared across reconnects.
    let origin = tokio::time::Instant::now();
    let mut last_offer: Option<Duration> = None;
    let mut pause = FIRST_PAUSE;
    loop {
        let session = serve(
            &cfg.address,
            every_ms,
            clock.as_ref(),
            &stats,
            origin,
            &mut last_offer,
        );
        let end = tokio::select! {
            end = session => end,
            _ = shutdown.wait() => return,
        };
        let had_fix = stats.fixes.load(Ordering::Relaxed) > 0;
        match &end {
            LinkEnd::Connect(_) => {
                stats.connect_failures.fetch_add(1, Ordering::Relaxed);
            }
            _ => pause = FIRST_PAUSE,
        }
        tracing::warn!(
            target: "clock",
            address = %cfg.address,
            error = %end,
            retry_s = pause.as_secs(),
            had_fix,
            "gpsd link down"
        );
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.wait() => return,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One connection: reads reports until it ends.
async fn serve(
    address: &str,
    every_ms: i64,
    clock: &dyn Clock,
    stats: &GnssStats,
    origin: tokio::time::Instant,
    last_offer: &mut Option<Duration>,
) -> LinkEnd {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return LinkEnd::Connect(e.to_string()),
        Err(_) => return LinkEnd::Connect("timed out".into()),
    };
    stats.connects.fetch_add(1, Ordering::Relaxed);
    tracing::info!(target: "clock", address, "gpsd connected");
    let (read, mut write) = stream.into_split();
    if let Err(e) = write.write_all(WATCH).await {
        return LinkEnd::Io(e);
    }
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX);
        let n = match (&mut reader).take(limit).read_until(b'\n', &mut line).await {
            Ok(n) => n,
            Err(e) => return LinkEnd::Io(e),
        };
        if n == 0 {
            return LinkEnd::Closed;
        }
        if line.last() != Some(&b'\n') && line.len() >= MAX_LINE {
            stats.bad_lines.fetch_add(1, Ordering::Relaxed);
            return LinkEnd::LineTooLong;
        }
        let fix = match parse_line(&String::from_utf8_lossy(&line)) {
            Ok(Some(fix)) => fix,
            Ok(None) => continue,
            Err(e) => {
                stats.bad_lines.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "clock", error = %e, "gpsd line not understood");
                continue;
            }
        };
        stats.fixes.fetch_add(1, Ordering::Relaxed);
        stats
            .last_mode
            .store(u64::from(fix.mode), Ordering::Relaxed);
        let now = origin.elapsed();
        let due = last_offer.is_none_or(|t| {
            i64::try_from(now.saturating_sub(t).as_millis()).unwrap_or(i64::MAX) >= every_ms
        });
        if due {
            *last_offer = Some(now);
            stats.offers.fetch_add(1, Ordering::Relaxed);
            clock.offer_reference(ReferenceSource::Gnss, fix.unix_ms, fix.uncertainty_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tpv_with_a_fix_gives_its_time_and_uncertainty() {
        let line = r#"{"class":"TPV","device":"/dev/ttyAMA0","mode":3,"time":"2026-12-04T02:03:04.000Z","ept":0.005,"lat":48.1173}"#;
        let fix = parse_line(line).unwrap().unwrap();
        assert_eq!(
            fix.unix_ms,
            crate::scene::meta::parse_rfc3339_ms("2026-12-04T02:03:04Z").unwrap()
        );
        assert_eq!(fix.uncertainty_ms, LATENCY_MS + 5);
        assert_eq!(fix.mode, 3);
        let no_ept = r#"{"class":"TPV","mode":2,"time":"2026-12-04T02:03:04.500Z"}"#;
        assert_eq!(
            parse_line(no_ept).unwrap().unwrap().uncertainty_ms,
            LATENCY_MS
        );
    }

    #[test]
    fn reports_without_a_fix_or_a_time_and_other_classes_give_nothing() {
        for line in [
            r#"{"class":"TPV","mode":1,"time":"2026-12-04T02:03:04.000Z"}"#,
            r#"{"class":"TPV","mode":0}"#,
            r#"{"class":"TPV","mode":3}"#,
            r#"{"class":"VERSION","release":"3.22","proto_major":3,"proto_minor":14}"#,
            r#"{"class":"SKY","satellites":[]}"#,
            "",
            "\r\n",
        ] {
            assert_eq!(parse_line(line).unwrap(), None, "{line}");
        }
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        assert!(matches!(
            parse_line("{\"class\":"),
            Err(GpsdLineError::Json(_))
        ));
        assert!(matches!(
            parse_line("$GPRMC,1,2,3*00"),
            Err(GpsdLineError::Json(_))
        ));
        assert!(matches!(
            parse_line(r#"{"class":"TPV","mode":3,"time":"yesterday"}"#),
            Err(GpsdLineError::Time(_))
        ));
        // A hostile ept cannot overflow the uncertainty.
        let huge = r#"{"class":"TPV","mode":3,"time":"2026-12-04T02:03:04Z","ept":1e300}"#;
        assert!(parse_line(huge).unwrap().unwrap().uncertainty_ms >= LATENCY_MS);
        let negative = r#"{"class":"TPV","mode":3,"time":"2026-12-04T02:03:04Z","ept":-4}"#;
        assert_eq!(
            parse_line(negative).unwrap().unwrap().uncertainty_ms,
            LATENCY_MS
        );
    }
}
