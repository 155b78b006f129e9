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
mod tests {
    use super::*;

    const GOOD: &str = r#"{"timestamp":"2025-11-05T10:00:00.250Z","event_id":"e-1","variant":"async","outcome":"success",
        "latency_ms":812.5,"memory_mb":38.2,"provider":"Kimi","file_type":"csv","size_bytes":10485760,"trace":"ignored"}"#;

    #[test]
    fn a_good_line_is_read_with_aliases_and_defaults() {
        let e = parse_line(GOOD).unwrap();
        assert_eq!(e.at, Timestamp(1_762_336_800_250));
        assert_eq!((e.variant, e.outcome), (Variant::Treatment, Outcome::Success));
        assert_eq!((e.provider.as_str(), e.file_type.as_str(), e.size_bytes), ("kimi", "csv", 10_485_760));
        assert_eq!((e.error_kind, e.critical, e.flag, e.unit), (None, false, None, None));
        // The unit, trimmed, on either path (the typed one and the JSON tree's).
        let with_unit = GOOD.replacen(r#""event_id":"e-1","#, r#""event_id":"e-1","unit":" user-42 ","#, 1);
        assert_eq!(parse_line(&with_unit).unwrap().unit.as_deref(), Some("user-42"));
        let value: Value = serde_json::from_str(&with_unit).unwrap();
        assert_eq!(parse_value(&value).unwrap().unit.as_deref(), Some("user-42"));
        let blank = GOOD.replacen(r#""event_id":"e-1","#, r#""event_id":"e-1","unit":"  ","#, 1);
        assert_eq!(parse_line(&blank).unwrap().unit, None);
    }

    #[test]
    fn timestamps_accept_offsets_and_epoch_millis() {
        assert_eq!(parse_rfc3339("2025-11-05T11:00:00+01:00"), Some(Timestamp(1_762_336_800_000)));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(Timestamp(0)));
        assert_eq!(parse_rfc3339("2025-11-05T10:00:00.1Z"), Some(Timestamp(1_762_336_800_100)));
        for bad in ["2025-11-05", "2025-13-05T10:00:00Z", "2025-11-05T10:00:00", "yesterday"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let e = parse_line(&GOOD.replace(r#""2025-11-05T10:00:00.250Z""#, "1762336800250")).unwrap();
        assert_eq!(e.at, Timestamp(1_762_336_800_250));
    }

    #[test]
    fn each_problem_names_its_field() {
        let check = |from: &str, to: &str, field: &str| {
            let line = GOOD.replacen(from, to, 1);
            assert_ne!(line, GOOD, "fixture `{from}`");
            let err = parse_line(&line).unwrap_err();
            assert_eq!(err.field, field, "{line}: {err}");
        };
        check(r#""latency_ms":812.5"#, r#""latency_ms":"fast""#, "latency_ms");
        check(r#""latency_ms":812.5"#, r#""latency_ms":-1"#, "latency_ms");
        // Numbers past what any upload reports (a figure of 1e308 would make a stage's mean
        // infinite): refused at one past the largest, taken at the largest.
        check(r#""latency_ms":812.5"#, r#""latency_ms":86400000.5"#, "latency_ms");
        check(r#""memory_mb":38.2"#, r#""memory_mb":1e308"#, "memory_mb");
        check(r#""size_bytes":10485760"#, r#""size_bytes":1125899906842625"#, "size_bytes");
        let largest = GOOD
            .replacen(r#""latency_ms":812.5"#, r#""latency_ms":86400000"#, 1)
            .replacen(r#""memory_mb":38.2"#, r#""memory_mb":1048576"#, 1)
            .replacen(r#""size_bytes":10485760"#, r#""size_bytes":1125899906842624"#, 1);
        let e = parse_line(&largest).unwrap();
        assert_eq!((e.latency_ms, e.memory_mb, e.size_bytes), (MAX_LATENCY_MS, MAX_MEMORY_MB, MAX_SIZE_BYTES));
        check(r#""variant":"async""#, r#""variant":"beta""#, "variant");
        check(r#""event_id":"e-1","#, r#""event_id":"e-1","unit":7,"#, "unit");
        check(r#""event_id":"e-1","#, &format!(r#""event_id":"e-1","unit":"{}","#, "u".repeat(MAX_EVENT_ID + 1)), "unit");
        check(r#""outcome":"success""#, r#""outcome":"ok""#, "outcome");
        check(r#""size_bytes":10485760"#, r#""size_bytes":1.5"#, "size_bytes");
        check(r#""event_id":"e-1","#, "", "event_id");
        check(r#""timestamp":"2025-11-05T10:00:00.250Z""#, r#""timestamp":"soon""#, "timestamp");
        check(r#""provider":"Kimi""#, r#""provider":7"#, "provider");
        check(r#""file_type":"csv","#, r#""critical":"yes","file_type":"csv","#, "critical");
        assert_eq!(parse_line("{not json").unwrap_err().field, "line");
        assert_eq!(parse_line("[1]").unwrap_err().field, "line");
    }

    /// Security review, issue 19 (2): an incompressible `provider` of 7.75 kB was accepted and
    /// its rollup key broke the fold for every rollout. Every text field is bounded, and the
    /// error names the field, whichever way the line is read.
    #[test]
    fn every_text_field_is_bounded() {
        let long = |n: usize| "x".repeat(n);
        let cases = [
            (r#""provider":"Kimi""#, "provider", MAX_LABEL),
            (r#""file_type":"csv""#, "file_type", MAX_LABEL),
            (r#""event_id":"e-1""#, "event_id", MAX_EVENT_ID),
        ];
        for (from, field, max) in cases {
            let at_limit = GOOD.replacen(from, &format!(r#""{field}":"{}""#, long(max)), 1);
            assert!(parse_line(&at_limit).is_ok(), "{field} of {max} characters is allowed");
            let over = GOOD.replacen(from, &format!(r#""{field}":"{}""#, long(max + 1)), 1);
            let err = parse_line(&over).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.message.contains(&format!("longer than {max} characters")), "{err}");
            // The same through the JSON tree (a repeated key sends the line that way).
            let value: Value = serde_json::from_str(&over).unwrap();
            assert_eq!(parse_value(&value).unwrap_err().field, field);
        }
        for (field, max) in [("error_kind", MAX_LABEL), ("flag", MAX_LABEL)] {
            let over = GOOD.replacen(r#""size_bytes""#, &format!(r#""{field}":"{}","size_bytes""#, long(max + 1)), 1);
            assert_eq!(parse_line(&over).unwrap_err().field, field);
        }
        // Characters, not bytes: 64 three-byte characters are fine.
        let wide = GOOD.replacen(r#""provider":"Kimi""#, &format!(r#""provider":"{}""#, "語".repeat(MAX_LABEL)), 1);
        assert!(parse_line(&wide).is_ok());
    }

    #[test]
    fn the_usual_line_is_read_without_a_json_tree_and_borrows_its_text() {
        let fields: Fields = serde_json::from_str(GOOD).expect("read directly");
        assert!(matches!(fields.event_id, Cow::Borrowed("e-1")));
        assert_eq!(fields.check().unwrap(), parse_value(&serde_json::from_str(GOOD).unwrap()).unwrap());
    }

    /// What each known field may be set to in a generated line: usual values, odd ones and wrong
    /// types (raw JSON; `None` leaves the field out).
    const VALUES: [(&str, &[&str]); 13] = [
        ("event_id", &[r#""e-1""#, r#"" e\u002d2 ""#, r#""  ""#, "7", "null"]),
        ("timestamp", &["1762336800250", "0", "-5", "1.5", "18446744073709551615", r#""2025-11-05T10:00:00Z""#, r#""soon""#, "true"]),
        ("flag", &[r#""upload-async""#, r#"" ""#, "null", "3"]),
        ("unit", &[r#""user-42""#, r#"" ""#, "null", "42"]),
        ("variant", &[r#""async""#, r#""Control""#, r#""treatment ""#, r#""beta""#, "[]"]),
        ("outcome", &[r#""success""#, r#""timeout""#, r#""ok""#, "{}"]),
        ("latency_ms", &["812.5", "0", "-1", "1e3", r#""fast""#]),
        ("memory_mb", &["38", "-0.5", "null"]),
        ("provider", &[r#""Kimi""#, r#""""#, "false"]),
        ("file_type", &[r#""CSV""#, r#""pdf""#, "1"]),
        ("size_bytes", &["10485760", "0", "1.5", "-1", r#""big""#]),
        ("error_kind", &[r#""quota""#, r#"" ""#, "null", "2"]),
        ("critical", &["true", "false", "null", r#""yes""#]),
    ];

    proptest::proptest! {
        /// Reading a line directly and through the JSON tree agree on every line: the same
        /// event, or the same first error.
        #[test]
        fn both_ways_of_reading_a_line_agree(
            changes in proptest::collection::vec((0usize..VALUES.len(), 0usize..9), 0..3),
            repeated in proptest::option::of(0usize..VALUES.len()),
            extra in proptest::bool::ANY,
        ) {
            // A usual line (every field's first value) with up to two fields changed: set to
            // another value or left out.
            let mut picks = [0usize; VALUES.len()];
            for (field, pick) in changes {
                picks[field] = pick % (VALUES[field].1.len() + 1);
            }
            let mut parts: Vec<String> = Vec::new();
            for ((field, values), pick) in VALUES.iter().zip(picks) {
                if let Some(value) = values.get(pick) {
                    parts.push(format!(r#""{field}":{value}"#));
                }
            }
            if let Some(i) = repeated {
                let (field, values) = VALUES[i];
                parts.push(format!(r#""{field}":{}"#, values[0]));
            }
            if extra {
                parts.push(r#""trace":{"id":[1,2]}"#.to_string());
            }
            let line = format!("{{{}}}", parts.join(","));
            let through_tree = serde_json::from_str::<Value>(&line).map_err(|e| bad("line", format!("not JSON: {e}"))).and_then(|v| parse_value(&v));
            proptest::prop_assert_eq!(parse_line(&line), through_tree, "{}", line);
        }
    }

    /// Characters a mutation inserts: JSON's own, controls, and multi-byte ones (a slice at a
    /// byte offset inside one of those panics).
    const ALPHABET: &[char] =
        &['"', '{', '}', '[', ']', ',', ':', '\\', '0', '9', '-', '+', '.', 'e', 'Z', 'T', ' ', '\n', '\u{0}', 'é', '€', '𝄞', 'x'];

    /// `base` with up to four edits at `edits`' positions: a character replaced, inserted, or the
    /// rest cut.
    fn mutate(base: &str, edits: &[(usize, usize, u8)]) -> String {
        let mut chars: Vec<char> = base.chars().collect();
        for &(at, pick, kind) in edits {
            let at = at % (chars.len() + 1);
            let c = ALPHABET[pick % ALPHABET.len()];
            match kind % 3 {
                0 if at < chars.len() => chars[at] = c,
                1 => chars.insert(at, c),
                _ => chars.truncate(at),
            }
        }
        chars.into_iter().collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Fuzzing the line reader (security review 19, "tools that find the next ones"): any
        /// mutation of a good line, and any text at all, is an event or an error naming a field
        /// of the schema (or the line) — never a panic.
        #[test]
        fn no_line_makes_the_reader_panic(
            edits in proptest::collection::vec((0usize..400, 0usize..64, 0u8..3), 0..5),
            noise in "\\PC{0,80}",
        ) {
            let known = ["line", "timestamp", "event_id", "flag", "variant", "outcome", "latency_ms", "memory_mb",
                         "provider", "file_type", "size_bytes", "error_kind", "critical"];
            for line in [mutate(GOOD, &edits), noise.clone(), format!("{{\"timestamp\":\"{noise}\"}}")] {
                if let Err(e) = parse_line(&line) {
                    proptest::prop_assert!(known.contains(&e.field.as_str()), "{} for {}", e.field, line);
                    proptest::prop_assert!(!e.message.is_empty());
                }
            }
        }

        /// The RFC 3339 reader on mutated times: a time or nothing, never a panic.
        #[test]
        fn no_time_text_makes_the_time_reader_panic(
            edits in proptest::collection::vec((0usize..32, 0usize..64, 0u8..3), 0..4),
            shaped in "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,4})?([Zz]|[+-][0-9:é€]{2,5}|.{0,4})",
        ) {
            let _ = parse_rfc3339(&mutate("2025-11-05T10:00:00.250+01:00", &edits));
            let _ = parse_rfc3339(&shaped);
        }
    }

    #[test]
    fn a_multi_byte_character_in_an_offset_is_no_time() {
        // Found by `no_time_text_makes_the_time_reader_panic` (a slice of the offset at a byte
        // index inside `é` panicked: through the API, one such line made its whole batch a 500).
        assert_eq!(parse_rfc3339("2025-11-05T10:00:00+1é:0"), None);
    }
}
