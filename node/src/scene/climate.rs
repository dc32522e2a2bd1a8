//! `climate.csv`: `t_s,temperature_c,humidity_pct,pressure_hpa`, one row per
//! reading, `t_s` never decreasing, values within the BME280's physical ranges.

use std::path::Path;

use super::{Location, SceneError};

/// One row of `climate.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClimateRow {
    /// Seconds from the scene start.
    pub t_s: f64,
    /// °C.
    pub temperature_c: f32,
    /// %RH.
    pub humidity_pct: f32,
    /// hPa.
    pub pressure_hpa: f32,
}

const HEADER: [&str; 4] = ["t_s", "temperature_c", "humidity_pct", "pressure_hpa"];
/// The BME280's operating ranges.
const RANGES: [(f64, f64); 3] = [(-40.0, 85.0), (0.0, 100.0), (300.0, 1100.0)];

/// Reads and validates the whole file (climate files are small: a day at one
/// reading every 10 s is under 300 KB).
pub fn read_climate_csv(path: &Path) -> Result<Vec<ClimateRow>, SceneError> {
    let file = std::fs::File::open(path).map_err(|e| SceneError::io(path, e))?;
    parse_climate_csv(path, file)
}

/// Parses climate CSV from any reader (`path` is used in errors).
pub fn parse_climate_csv(
    path: &Path,
    input: impl std::io::Read,
) -> Result<Vec<ClimateRow>, SceneError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let header_err = |found: String| {
        SceneError::malformed(
            path,
            Location::Line {
                line: 1,
                column: None,
            },
            format!(
                "expected the header `{}`, found `{found}`",
                HEADER.join(",")
            ),
        )
    };
    let headers = rdr
        .headers()
        .map_err(|e| header_err(e.to_string()))?
        .clone();
    if headers.iter().map(str::trim).ne(HEADER) {
        return Err(header_err(headers.iter().collect::<Vec<_>>().join(",")));
    }
    let mut rows = Vec::new();
    let mut last_t = f64::NEG_INFINITY;
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            SceneError::malformed(
                path,
                Location::Line { line, column: None },
                format!("expected 4 comma-separated fields: {e}"),
            )
        })?;
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let mut vals = [0f64; 4];
        for (i, name) in HEADER.iter().enumerate() {
            let field = rec.get(i).unwrap_or("").trim();
            let v: f64 = field
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .ok_or_else(|| {
                    SceneError::malformed(
                        path,
                        Location::Line {
                            line,
                            column: Some((*name).to_string()),
                        },
                        format!("expected a number, found `{field}`"),
                    )
                })?;
            vals[i] = v;
        }
        if vals[0] < 0.0 || vals[0] < last_t {
            return Err(SceneError::malformed(
                path,
                Location::Line {
                    line,
                    column: Some("t_s".into()),
                },
                format!(
                    "expected a time of 0 s or more, not before the previous row ({last_t} s), found {}",
                    vals[0]
                ),
            ));
        }
        last_t = vals[0];
        for (i, (lo, hi)) in RANGES.iter().enumerate() {
            let v = vals[i + 1];
            if !(*lo..=*hi).contains(&v) {
                return Err(SceneError::malformed(
                    path,
                    Location::Line {
                        line,
                        column: Some(HEADER[i + 1].to_string()),
                    },
                    format!(
                        "expected a value between {lo} and {hi} (the sensor's range), found {v}"
                    ),
                ));
            }
        }
        rows.push(ClimateRow {
            t_s: vals[0],
            temperature_c: vals[1] as f32,
            humidity_pct: vals[2] as f32,
            pressure_hpa: vals[3] as f32,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<ClimateRow>, String> {
        parse_climate_csv(Path::new("climate.csv"), s.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_rows() {
        let rows = parse("t_s,temperature_c,humidity_pct,pressure_hpa\n0,14.2,81,1012.4\n10.5,14.3,80.5,1012.3\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].t_s, 10.5);
        assert_eq!(rows[1].humidity_pct, 80.5);
    }

    #[test]
    fn malformed_files_name_line_and_column() {
        let e = parse("time,temp\n").unwrap_err();
        assert!(
            e.contains("climate.csv: line 1") && e.contains("expected the header"),
            "{e}"
        );
        let e =
            parse("t_s,temperature_c,humidity_pct,pressure_hpa\n0,14,80,1000\n1,warm,80,1000\n")
                .unwrap_err();
        assert!(
            e.contains("line 3, column `temperature_c`") && e.contains("`warm`"),
            "{e}"
        );
        let e = parse("t_s,temperature_c,humidity_pct,pressure_hpa\n0,14,80,1000\n1,14,80\n")
            .unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        let e = parse("t_s,temperature_c,humidity_pct,pressure_hpa\n5,14,80,1000\n1,14,80,1000\n")
            .unwrap_err();
        assert!(e.contains("line 3, column `t_s`"), "{e}");
        let e = parse("t_s,temperature_c,humidity_pct,pressure_hpa\n0,14,140,1000\n").unwrap_err();
        assert!(
            e.contains("humidity_pct") && e.contains("between 0 and 100"),
            "{e}"
        );
        let e = parse("t_s,temperature_c,humidity_pct,pressure_hpa\n0,NaN,40,1000\n").unwrap_err();
        assert!(e.contains("expected a number"), "{e}");
    }

    #[test]
    fn a_truncated_last_line_is_an_error() {
        let e = parse("t_s,temperature_c,humidity_pct,pressure_hpa\n0,14,80,1000\n10,14.1,8")
            .unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }
}
