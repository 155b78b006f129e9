//! The metrics event: one JSON object per upload operation (schema version 1), and the rules
//! for reading one. Every problem names the field, so a rejected line can be fixed.
//!
//! Unknown fields are ignored (producers may add context for their own use); a known field with
//! the wrong type or an impossible value rejects the line.

use super::units::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Which code path served the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The flag was off for the unit: the old (sync) path.
    Control,
    /// The flag was on: the new (async) path.
    Treatment,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Control => "control",
            Variant::Treatment => "treatment",
        }
    }

    /// Accepts `control`/`treatment` and the seeds' `sync`/`async`.
    pub fn parse(text: &str) -> Option<Variant> {
        match text {
            "control" | "sync" => Some(Variant::Control),
            "treatment" | "async" => Some(Variant::Treatment),
            _ => None,
        }
    }
}

/// How the operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Error,
    Timeout,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        match text {
            "success" => Some(Outcome::Success),
            "error" => Some(Outcome::Error),
            "timeout" => Some(Outcome::Timeout),
            _ => None,
        }
    }
}

/// One upload operation, as reported by the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadEvent {
    pub event_id: String,
    pub at: Timestamp,
    /// The flag the event belongs to; optional while one rollout is active.
    pub flag: Option<String>,
    /// The unit (user, account, request) the flag was evaluated for, when the service says:
    /// the sample-ratio check then counts distinct units per arm, which is what the flag
    /// splits, rather than uploads, of which a busy unit sends many.
    pub unit: Option<String>,
    pub variant: Variant,
    pub outcome: Outcome,
    pub latency_ms: f64,
    pub memory_mb: f64,
    pub provider: String,
    pub file_type: String,
    pub size_bytes: u64,
    pub error_kind: Option<String>,
    pub critical: bool,
}

/// What is wrong with an event, by field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.to_string(), message: message.into() }
}

/// The longest event id (and unit), in characters.
pub const MAX_EVENT_ID: usize = 200;
/// The longest label (`provider`, `file_type`, `error_kind`, `flag`), in characters: labels are
/// rollup keys, and a key must fit a B-tree index entry with room to spare.
pub const MAX_LABEL: usize = 64;
/// The largest latency an upload may report: a day. Beyond it a figure is a unit mistake or
/// garbage, and one 1e308 would outweigh every other upload of the stage.
pub const MAX_LATENCY_MS: f64 = 86_400_000.0;
/// The largest memory figure: 1 TiB in MB.
pub const MAX_MEMORY_MB: f64 = 1_048_576.0;
/// The largest file: 1 PiB (sizes stay exact as f64 and as Postgres's BIGINT).
pub const MAX_SIZE_BYTES: u64 = 1 << 50;

/// Reads one line of JSONL.
pub fn parse_line(line: &str) -> Result<UploadEvent, FieldError> {
    // The usual line, every known field of its usual JSON type, is read straight into `Fields`.
    // Anything else (a missing field, a wrong type, a repeated key, not JSON) goes through the
    // JSON tree, which names the first field that is wrong. Both end in `Fields::check`.
    if line.trim_start().starts_with('{')
        && let Ok(fields) = serde_json::from_str::<Fields>(line)
    {
        return fields.check();
    }
    let value: Value = serde_json::from_str(line).map_err(|e| bad("line", format!("not JSON: {e}")))?;
    parse_value(&value)
}

/// Reads one event object.
pub fn parse_value(value: &Value) -> Result<UploadEvent, FieldError> {
    let object = value.as_object().ok_or_else(|| bad("line", "an event must be a JSON object"))?;
    Fields::of(object)?.check()
}

/// An event's known fields, each of the right JSON type, before their values are checked.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Time<'a>,
    #[serde(borrow, default)]
    flag: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    unit: Option<Cow<'a, str>>,
    #[serde(borrow)]
    variant: Cow<'a, str>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    latency_ms: f64,
    memory_mb: f64,
    #[serde(borrow)]
    provider: Cow<'a, str>,
    #[serde(borrow)]
    file_type: Cow<'a, str>,
    size_bytes: u64,
    #[serde(borrow, default)]
    error_kind: Option<Cow<'a, str>>,
    #[serde(default)]
    critical: Option<bool>,
}

/// `timestamp`: epoch milliseconds or text (RFC 3339, checked later).
enum Time<'a> {
    Millis(i64),
    Text(Cow<'a, str>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Time<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Time<'a>, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Time<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("epoch milliseconds or RFC 3339 text")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Time<'a>, E> {
                Ok(Time::Millis(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Time<'a>, E> {
                i64::try_from(v).map(Time::Millis).map_err(|_| E::custom("out of range"))
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Time<'a>, E> {
                Ok(Time::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Time<'a>, E> {
                Ok(Time::Text(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_any(Visit(std::marker::PhantomData))
    }
}

impl<'a> Fields<'a> {
    /// The fields of a JSON object, or the first one missing or of the wrong type.
    fn of(object: &'a Map<String, Value>) -> Result<Fields<'a>, FieldError> {
        Ok(Fields {
            event_id: required_text(object, "event_id")?,
            timestamp: match object.get("timestamp") {
                Some(Value::Number(n)) => {
                    Time::Millis(n.as_i64().ok_or_else(|| bad("timestamp", format!("{n} is not milliseconds since 1970")))?)
                }
                Some(Value::String(s)) => Time::Text(Cow::Borrowed(s)),
                Some(other) => return Err(bad("timestamp", format!("expected RFC 3339 text or epoch milliseconds, got {other}"))),
                None => return Err(bad("timestamp", "is required")),
            },
            flag: optional_text(object, "flag")?,
            unit: optional_text(object, "unit")?,
            variant: required_text(object, "variant")?,
            outcome: required_text(object, "outcome")?,
            latency_ms: number(object, "latency_ms")?,
            memory_mb: number(object, "memory_mb")?,
            provider: required_text(object, "provider")?,
            file_type: required_text(object, "file_type")?,
            size_bytes: match object.get("size_bytes") {
                Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad("size_bytes", format!("{n} is not a whole number of bytes")))?,
                Some(other) => return Err(bad("size_bytes", format!("expected a whole number, got {other}"))),
                None => return Err(bad("size_bytes", "is required")),
            },
            error_kind: optional_text(object, "error_kind")?,
            critical: match object.get("critical") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(other) => return Err(bad("critical", format!("expected true or false, got {other}"))),
            },
        })
    }

    /// The event, or the first field whose value is impossible.
    fn check(self) -> Result<UploadEvent, FieldError> {
        let event_id = bounded("event_id", non_empty("event_id", &self.event_id)?, MAX_EVENT_ID)?;
        let at = match self.timestamp {
            Time::Millis(ms) if ms > 0 => Timestamp(ms),
            Time::Millis(ms) => return Err(bad("timestamp", format!("{ms} is not milliseconds since 1970"))),
            Time::Text(s) => {
                parse_rfc3339(&s).ok_or_else(|| bad("timestamp", format!("`{s}` is not an RFC 3339 time such as 2025-11-05T10:00:00Z")))?
            }
        };
        let variant = non_empty("variant", &self.variant)?;
        let variant =
            Variant::parse(variant).ok_or_else(|| bad("variant", format!("`{variant}` is not control, treatment, sync or async")))?;
        let outcome = non_empty("outcome", &self.outcome)?;
        let outcome = Outcome::parse(outcome).ok_or_else(|| bad("outcome", format!("`{outcome}` is not success, error or timeout")))?;
        Ok(UploadEvent {
            event_id: event_id.to_string(),
            at,
            flag: optional_label("flag", self.flag)?,
            unit: match self.unit.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(unit) => Some(bounded("unit", unit, MAX_EVENT_ID)?.to_string()),
            },
            variant,
            outcome,
            latency_ms: at_most("latency_ms", non_negative("latency_ms", self.latency_ms)?, MAX_LATENCY_MS)?,
            memory_mb: at_most("memory_mb", non_negative("memory_mb", self.memory_mb)?, MAX_MEMORY_MB)?,
            provider: bounded("provider", non_empty("provider", &self.provider)?, MAX_LABEL)?.to_lowercase(),
            file_type: bounded("file_type", non_empty("file_type", &self.file_type)?, MAX_LABEL)?.to_lowercase(),
            size_bytes: if self.size_bytes <= MAX_SIZE_BYTES {
                self.size_bytes
            } else {
                return Err(bad("size_bytes", format!("{} is more than a file can be (at most {MAX_SIZE_BYTES})", self.size_bytes)));
            },
            error_kind: optional_label("error_kind", self.error_kind)?,
            critical: self.critical.unwrap_or(false),
        })
    }
}

fn required_text<'a>(object: &'a Map<String, Value>, field: &str) -> Result<Cow<'a, str>, FieldError> {
    match object.get(field) {
        Some(Value::String(s)) => Ok(Cow::Borrowed(s)),
        Some(other) => Err(bad(field, format!("expected text, got {other}"))),
        None => Err(bad(field, "is required")),
    }
}

fn optional_text<'a>(object: &'a Map<String, Value>, field: &str) -> Result<Option<Cow<'a, str>>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Cow::Borrowed(s))),
        Some(other) => Err(bad(field, format!("expected text, got {other}"))),
    }
}

fn number(object: &Map<String, Value>, field: &str) -> Result<f64, FieldError> {
    match object.get(field) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| bad(field, format!("{n} is not a number"))),
        Some(other) => Err(bad(field, format!("expected a number, got {other}"))),
        None => Err(bad(field, "is required")),
    }
}

/// Text without its surrounding blanks, which must leave something.
fn non_empty<'s>(field: &str, text: &'s str) -> Result<&'s str, FieldError> {
    match text.trim() {
        "" => Err(bad(field, "must not be empty")),
        trimmed => Ok(trimmed),
    }
}

/// Text of at most `max` characters.
fn bounded<'s>(field: &str, text: &'s str, max: usize) -> Result<&'s str, FieldError> {
    // Counting stops one past the limit: a long value costs no more than a short one.
    if text.chars().nth(max).is_some() { Err(bad(field, format!("is longer than {max} characters"))) } else { Ok(text) }
}

/// An optional label without its surrounding blanks (blank is absent), at most [`MAX_LABEL`]
/// characters.
fn optional_label(field: &str, text: Option<Cow<'_, str>>) -> Result<Option<String>, FieldError> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => Ok(Some(bounded(field, t, MAX_LABEL)?.to_string())),
    }
}

fn at_most(field: &str, v: f64, max: f64) -> Result<f64, FieldError> {
    if v <= max { Ok(v) } else { Err(bad(field, format!("{v} is more than any upload reports (at most {max})"))) }
}

fn non_negative(field: &str, v: f64) -> Result<f64, FieldError> {
    if v >= 0.0 && v.is_finite() { Ok(v) } else { Err(bad(field, format!("{v} is negative"))) }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        text.get(range).filter(|s| s.bytes().all(|c| c.is_ascii_digit())).and_then(|s| s.parse().ok())
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let first3: String = fraction[..digits].chars().chain("000".chars()).take(3).collect();
        millis = first3.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        // ASCII only: a byte index inside a multi-byte character would panic.
        _ if rest.len() == 6 && rest.is_ascii() && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            sign * (h * 60 + m)
        }
        _ => return None,
    };
    let days = days_from_civil(year, month as u32, day as u32);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(Timestamp(secs * 1000 + millis))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
