//! `scene.toml`: the scene's start time and where it came from.

use std::path::Path;

use serde::Deserialize;

use super::{Location, SceneError};

/// Parsed `scene.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneMeta {
    /// Start of the scene, milliseconds since the Unix epoch (UTC).
    pub start_ms: i64,
    /// Optional name.
    pub name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // description and generator are read for validation only
struct Raw {
    start: String,
    name: Option<String>,
    description: Option<String>,
    generator: Option<Generator>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Generator {
    preset: String,
    seed: u64,
    version: Option<u32>,
}

impl SceneMeta {
    /// Reads and checks `scene.toml`.
    pub fn read(path: &Path) -> Result<SceneMeta, SceneError> {
        let text = std::fs::read_to_string(path).map_err(|e| SceneError::io(path, e))?;
        Self::parse(path, &text)
    }

    /// Parses the text of `scene.toml` (`path` is used in errors).
    pub fn parse(path: &Path, text: &str) -> Result<SceneMeta, SceneError> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let at = match e.span() {
                Some(span) => Location::Line {
                    line: text[..span.start.min(text.len())].matches('\n').count() as u64 + 1,
                    column: None,
                },
                None => Location::File,
            };
            SceneError::malformed(path, at, e.message().to_string())
        })?;
        let start_ms = parse_rfc3339_ms(&raw.start).ok_or_else(|| {
            SceneError::malformed(
                path,
                Location::File,
                format!(
                    "`start` = {:?} is not an RFC 3339 time such as 2026-06-01T05:30:00Z",
                    raw.start
                ),
            )
        })?;
        Ok(SceneMeta {
            start_ms,
            name: raw.name,
        })
    }
}

/// Parses an RFC 3339 time into milliseconds since the Unix epoch.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let fmt = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(&fmt).unwrap_or_else(|_| format!("{ms}ms"))
        }
        Err(_) => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_start_with_any_offset() {
        let p = Path::new("scene.toml");
        let m = SceneMeta::parse(p, "start = \"2026-06-01T07:30:00+02:00\"\nname = \"x\"").unwrap();
        assert_eq!(
            m.start_ms,
            parse_rfc3339_ms("2026-06-01T05:30:00Z").unwrap()
        );
        assert_eq!(format_rfc3339_ms(m.start_ms), "2026-06-01T05:30:00.000Z");
    }

    #[test]
    fn errors_name_the_problem() {
        let p = Path::new("scene.toml");
        let e = SceneMeta::parse(p, "name = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("scene.toml") && e.contains("start"), "{e}");
        let e = SceneMeta::parse(p, "start = \"yesterday\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("RFC 3339"), "{e}");
        let e = SceneMeta::parse(p, "start = \"2026-06-01T05:30:00Z\"\n\nstrat = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("strat"), "{e}");
    }
}
