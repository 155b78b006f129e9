//! The metrics event: one JSON object per upload operation (schema version 1), and the rules
//! for reading one. Every problem names the field, so a rejected line can be fixed.
//!
//! Unknown fields are ignored (producers may add context for their own use); a known field with
//! the wrong type or an impossible value rejects the line.

use super::units::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// Reads one line of JSONL.
pub fn parse_line(line: &str) -> Result<UploadEvent, FieldError> {
    let value: Value = serde_json::from_str(line).map_err(|e| bad("line", format!("not JSON: {e}")))?;
    parse_value(&value)
}

/// Reads one event object.
pub fn parse_value(value: &Value) -> Result<UploadEvent, FieldError> {
    let object = value.as_object().ok_or_else(|| bad("line", "an event must be a JSON object"))?;
    let event_id = required_text(object, "event_id")?;
    if event_id.len() > 200 {
        return Err(bad("event_id", "is longer than 200 characters"));
    }
    let at = timestamp(object)?;
    let variant = required_text(object, "variant")
        .and_then(|v| Variant::parse(&v).ok_or_else(|| bad("variant", format!("`{v}` is not control, treatment, sync or async"))))?;
    let outcome = required_text(object, "outcome")
        .and_then(|v| Outcome::parse(&v).ok_or_else(|| bad("outcome", format!("`{v}` is not success, error or timeout"))))?;
    Ok(UploadEvent {
        event_id,
        at,
        flag: optional_text(object, "flag")?,
        variant,
        outcome,
        latency_ms: non_negative(object, "latency_ms")?,
        memory_mb: non_negative(object, "memory_mb")?,
        provider: required_text(object, "provider")?.to_lowercase(),
        file_type: required_text(object, "file_type")?.to_lowercase(),
        size_bytes: match object.get("size_bytes") {
            Some(Value::Number(n)) => n.as_u64().ok_or_else(|| bad("size_bytes", format!("{n} is not a whole number of bytes")))?,
            Some(other) => return Err(bad("size_bytes", format!("expected a whole number, got {other}"))),
            None => return Err(bad("size_bytes", "is required")),
        },
        error_kind: optional_text(object, "error_kind")?,
        critical: match object.get("critical") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(bad("critical", format!("expected true or false, got {other}"))),
        },
    })
}

fn required_text(object: &Map<String, Value>, field: &str) -> Result<String, FieldError> {
    match object.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::String(_)) => Err(bad(field, "must not be empty")),
        Some(other) => Err(bad(field, format!("expected text, got {other}"))),
        None => Err(bad(field, "is required")),
    }
}

fn optional_text(object: &Map<String, Value>, field: &str) -> Result<Option<String>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(bad(field, format!("expected text, got {other}"))),
    }
}

fn non_negative(object: &Map<String, Value>, field: &str) -> Result<f64, FieldError> {
    match object.get(field) {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v >= 0.0 && v.is_finite() => Ok(v),
            _ => Err(bad(field, format!("{n} is negative"))),
        },
        Some(other) => Err(bad(field, format!("expected a number, got {other}"))),
        None => Err(bad(field, "is required")),
    }
}

/// `timestamp`: RFC 3339 text (`2025-11-05T10:00:00.123Z`, offsets allowed) or milliseconds
/// since the Unix epoch.
fn timestamp(object: &Map<String, Value>) -> Result<Timestamp, FieldError> {
    match object.get("timestamp") {
        Some(Value::Number(n)) => {
            n.as_i64().filter(|ms| *ms > 0).map(Timestamp).ok_or_else(|| bad("timestamp", format!("{n} is not milliseconds since 1970")))
        }
        Some(Value::String(s)) => {
            parse_rfc3339(s).ok_or_else(|| bad("timestamp", format!("`{s}` is not an RFC 3339 time such as 2025-11-05T10:00:00Z")))
        }
        Some(other) => Err(bad("timestamp", format!("expected RFC 3339 text or epoch milliseconds, got {other}"))),
        None => Err(bad("timestamp", "is required")),
    }
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
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
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
        assert_eq!((e.error_kind, e.critical, e.flag), (None, false, None));
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
        check(r#""variant":"async""#, r#""variant":"beta""#, "variant");
        check(r#""outcome":"success""#, r#""outcome":"ok""#, "outcome");
        check(r#""size_bytes":10485760"#, r#""size_bytes":1.5"#, "size_bytes");
        check(r#""event_id":"e-1","#, "", "event_id");
        check(r#""timestamp":"2025-11-05T10:00:00.250Z""#, r#""timestamp":"soon""#, "timestamp");
        check(r#""provider":"Kimi""#, r#""provider":7"#, "provider");
        check(r#""file_type":"csv","#, r#""critical":"yes","file_type":"csv","#, "critical");
        assert_eq!(parse_line("{not json").unwrap_err().field, "line");
        assert_eq!(parse_line("[1]").unwrap_err().field, "line");
    }
}
