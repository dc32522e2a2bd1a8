//! A lost line's text for its summary: the message, then its fields, cut
//! to a bounded length (a flood's lines may be long and come from outside).

use std::fmt::{self, Write as _};

use tracing::Event;
use tracing::field::{Field, Visit};

/// Longest example kept, in characters.
pub const MAX_CHARS: usize = 160;

/// `message key=value key=value`, at most [`MAX_CHARS`] characters.
pub fn line(event: &Event<'_>) -> String {
    let mut v = Describe::default();
    event.record(&mut v);
    let mut out = v.message;
    if !v.fields.is_empty() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&v.fields);
    }
    cut(out)
}

fn cut(s: String) -> String {
    match s.char_indices().nth(MAX_CHARS) {
        Some((at, _)) => {
            let mut short = s[..at].to_string();
            short.push('…');
            short
        }
        None => s,
    }
}

/// Each part keeps at most this many bytes before it is cut.
const MAX_PART_BYTES: usize = MAX_CHARS * 4;

#[derive(Default)]
struct Describe {
    message: String,
    fields: String,
}

/// Appends to a string up to [`MAX_PART_BYTES`], then refuses the rest.
struct Bounded<'a>(&'a mut String);

impl fmt::Write for Bounded<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.0.len() + c.len_utf8() > MAX_PART_BYTES {
                // Stops the formatting of a long value early.
                return Err(fmt::Error);
            }
            self.0.push(c);
        }
        Ok(())
    }
}

impl Visit for Describe {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(Bounded(&mut self.message), "{value:?}");
        } else {
            let mut out = Bounded(&mut self.fields);
            if !out.0.is_empty() {
                let _ = out.write_str(" ");
            }
            let _ = write!(out, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = Bounded(&mut self.message).write_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}
