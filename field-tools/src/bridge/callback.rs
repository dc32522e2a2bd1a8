//! The RockBLOCK web callback: the form fields of one mobile-originated
//! message (`application/x-www-form-urlencoded`), parsed and checked before
//! anything else looks at them. Fields RockBLOCK may add (`serial`,
//! `device_type`, ...) are ignored.

use serde::Deserialize;
use time::PrimitiveDateTime;
use time::macros::format_description;

/// One MO delivery as RockBLOCK POSTs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Callback {
    /// The modem's IMEI (15 digits).
    pub imei: String,
    /// The modem's MO message sequence number (0..=65535, wraps).
    pub momsn: u32,
    /// When the modem transmitted it, as sent (`YY-MM-DD HH:MM:SS`, UTC).
    pub transmit_time: String,
    /// [`Callback::transmit_time`] in ms since the Unix epoch.
    pub transmit_ms: i64,
    /// Iridium's rough position of the modem, degrees.
    pub iridium_latitude: f64,
    /// See [`Callback::iridium_latitude`].
    pub iridium_longitude: f64,
    /// Radius of that position's circular error probable, km.
    pub iridium_cep: f64,
    /// The message payload as sent (hex text).
    pub data_hex: String,
    /// The payload bytes.
    pub data: Vec<u8>,
    /// The signed token, when one was sent.
    pub jwt: Option<String>,
}

/// Why a request body is not a usable callback.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CallbackError {
    /// Not form-encoded, or a required field is missing.
    #[error("not a RockBLOCK callback form: {0}")]
    Form(String),
    /// A field is present but its value is not what RockBLOCK sends.
    #[error("field {field} = {value:?}: {reason}")]
    Field {
        /// The field name.
        field: &'static str,
        /// Its value (truncated to 80 characters).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[derive(Deserialize)]
struct RawForm {
    imei: String,
    momsn: String,
    transmit_time: String,
    iridium_latitude: String,
    iridium_longitude: String,
    iridium_cep: String,
    data: String,
    #[serde(rename = "JWT")]
    jwt: Option<String>,
}

fn bad(field: &'static str, value: &str, reason: &'static str) -> CallbackError {
    CallbackError::Field {
        field,
        value: value.chars().take(80).collect(),
        reason,
    }
}

/// Parses `YY-MM-DD HH:MM:SS` (UTC; years 2000..=2099) into ms since the epoch.
pub fn parse_transmit_time(text: &str) -> Option<i64> {
    // A two-digit year cannot be parsed on its own (no century): put it in.
    let full = format!("20{text}");
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let t = PrimitiveDateTime::parse(&full, format).ok()?;
    i64::try_from(t.assume_utc().unix_timestamp_nanos() / 1_000_000).ok()
}

fn number(
    field: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<f64>,
) -> Result<f64, CallbackError> {
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| bad(field, value, "not a number"))?;
    if !v.is_finite() || !range.contains(&v) {
        return Err(bad(field, value, "out of range"));
    }
    Ok(v)
}

impl Callback {
    /// Parses a form-encoded request body.
    pub fn parse(body: &[u8]) -> Result<Callback, CallbackError> {
        let raw: RawForm =
            serde_urlencoded::from_bytes(body).map_err(|e| CallbackError::Form(e.to_string()))?;
        if raw.imei.len() != 15 || !raw.imei.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("imei", &raw.imei, "not 15 digits"));
        }
        let momsn: u32 = raw
            .momsn
            .trim()
            .parse()
            .ok()
            .filter(|m| *m <= 65_535)
            .ok_or_else(|| bad("momsn", &raw.momsn, "not an integer in 0..=65535"))?;
        let transmit_ms = parse_transmit_time(raw.transmit_time.trim())
            .ok_or_else(|| bad("transmit_time", &raw.transmit_time, "not YY-MM-DD HH:MM:SS"))?;
        let iridium_latitude = number("iridium_latitude", &raw.iridium_latitude, -90.0..=90.0)?;
        let iridium_longitude =
            number("iridium_longitude", &raw.iridium_longitude, -180.0..=180.0)?;
        let iridium_cep = number("iridium_cep", &raw.iridium_cep, 0.0..=f64::MAX)?;
        let data = hex::decode(raw.data.trim()).map_err(|_| bad("data", &raw.data, "not hex"))?;
        Ok(Callback {
            imei: raw.imei,
            momsn,
            transmit_time: raw.transmit_time,
            transmit_ms,
            iridium_latitude,
            iridium_longitude,
            iridium_cep,
            data_hex: raw.data,
            data,
            jwt: raw.jwt.filter(|j| !j.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "imei=300234010753370&serial=12345&momsn=337&transmit_time=21-10-31+10%3A41%3A50\
        &iridium_latitude=52.3867&iridium_longitude=0.2938&iridium_cep=8&data=01ab&JWT=x.y.z";

    #[test]
    fn a_rockblock_form_parses() {
        let c = Callback::parse(GOOD.as_bytes()).expect("valid");
        assert_eq!(c.imei, "300234010753370");
        assert_eq!(c.momsn, 337);
        assert_eq!(c.transmit_time, "21-10-31 10:41:50");
        // 2021-10-31T10:41:50Z
        assert_eq!(c.transmit_ms, 1_635_676_910_000);
        assert_eq!(c.data, vec![0x01, 0xab]);
        assert_eq!(c.iridium_cep, 8.0);
        assert_eq!(c.jwt.as_deref(), Some("x.y.z"));
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            ("imei=300234010753370", "imei=3002340107", "imei"),
            ("momsn=337", "momsn=70000", "momsn"),
            ("momsn=337", "momsn=-1", "momsn"),
            (
                "transmit_time=21-10-31+10%3A41%3A50",
                "transmit_time=yesterday",
                "transmit_time",
            ),
            (
                "iridium_latitude=52.3867",
                "iridium_latitude=91",
                "iridium_latitude",
            ),
            (
                "iridium_longitude=0.2938",
                "iridium_longitude=NaN",
                "iridium_longitude",
            ),
            ("data=01ab", "data=01a", "data"),
            ("data=01ab", "data=zz", "data"),
        ];
        for (from, to, field) in cases {
            let body = GOOD.replace(from, to);
            match Callback::parse(body.as_bytes()) {
                Err(CallbackError::Field { field: f, .. }) => assert_eq!(f, field, "{to}"),
                other => panic!("{to}: {other:?}"),
            }
        }
    }

    #[test]
    fn missing_fields_and_garbage_are_form_errors() {
        let no_data = GOOD.replace("&data=01ab", "");
        assert!(matches!(
            Callback::parse(no_data.as_bytes()),
            Err(CallbackError::Form(_))
        ));
        assert!(matches!(
            Callback::parse(b"\xff\xfe{not a form"),
            Err(CallbackError::Form(_))
        ));
        let no_jwt = GOOD.replace("&JWT=x.y.z", "");
        assert_eq!(
            Callback::parse(no_jwt.as_bytes()).expect("parses").jwt,
            None
        );
    }
}
