//! Daily weather for the endurance simulation: for each day, the share of
//! the clear-sky panel output lost to cloud (0 clear, 1 no sun at all).
//!
//! File format (text): one number per line, 0 to 1, one line per day; `#`
//! starts a comment; blank lines are skipped. A simulation longer than the
//! file starts the file again.

use std::path::Path;

/// Why a weather series was refused.
#[derive(Debug, thiserror::Error)]
pub enum WeatherError {
    /// The file could not be read.
    #[error("cannot read the weather file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A line is not a share between 0 and 1.
    #[error("weather line {line}: {text:?} is not a cloud share between 0 and 1")]
    Bad {
        /// 1-based line number.
        line: usize,
        /// The line's text.
        text: String,
    },
    /// No day in the file.
    #[error("the weather series has no day")]
    Empty,
}

/// Per-day cloud shares.
#[derive(Clone, Debug, PartialEq)]
pub struct Weather {
    /// What it is, for reports (`clear`, the file name, ...).
    pub name: String,
    /// One share a day, 0..=1.
    pub cloud: Vec<f64>,
}

impl Weather {
    /// A named preset: `clear` (0.1 lost to haze), `cloudy` (0.7 every
    /// day) or `no-sun` (1.0: no charge at all).
    pub fn preset(name: &str) -> Option<Weather> {
        let c = match name {
            "clear" => 0.1,
            "cloudy" => 0.7,
            "no-sun" => 1.0,
            _ => return None,
        };
        Some(Weather {
            name: name.to_string(),
            cloud: vec![c],
        })
    }

    /// Parses the text format (see the module).
    pub fn parse(name: &str, text: &str) -> Result<Weather, WeatherError> {
        let mut cloud = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match line.parse::<f64>() {
                Ok(v) if (0.0..=1.0).contains(&v) => cloud.push(v),
                _ => {
                    return Err(WeatherError::Bad {
                        line: i + 1,
                        text: raw.to_string(),
                    });
                }
            }
        }
        if cloud.is_empty() {
            return Err(WeatherError::Empty);
        }
        Ok(Weather {
            name: name.to_string(),
            cloud,
        })
    }

    /// A preset by name, or else a file.
    pub fn load(spec: &str) -> Result<Weather, WeatherError> {
        if let Some(w) = Weather::preset(spec) {
            return Ok(w);
        }
        let text =
            std::fs::read_to_string(Path::new(spec)).map_err(|source| WeatherError::Read {
                path: spec.to_string(),
                source,
            })?;
        Weather::parse(spec, &text)
    }

    /// The cloud share of day `day` (0-based), the series repeated.
    pub fn cloud(&self, day: usize) -> f64 {
        match self.cloud.len() {
            0 => 1.0,
            n => self.cloud[day % n],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_has_comments_and_repeats() {
        let w = Weather::parse("t", "# header\n0.1\n\n0.9 # storm\n").unwrap();
        assert_eq!(w.cloud, [0.1, 0.9]);
        assert_eq!(w.cloud(2), 0.1);
        assert!(matches!(
            Weather::parse("t", "0.1\n1.5\n"),
            Err(WeatherError::Bad { line: 2, .. })
        ));
        assert!(matches!(
            Weather::parse("t", "# nothing\n"),
            Err(WeatherError::Empty)
        ));
    }

    #[test]
    fn presets_and_missing_files() {
        assert_eq!(Weather::load("no-sun").unwrap().cloud(5), 1.0);
        assert!(matches!(
            Weather::load("/nonexistent/weather.txt"),
            Err(WeatherError::Read { .. })
        ));
    }
}
