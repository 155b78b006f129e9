//! Checked value types for the quantities a plan and a rollout have rules about.
//!
//! Each type can only hold a valid value, so code that receives one never re-checks it.
//! Deserialising goes through the same constructors, so a plan file with a bad value fails
//! at parse time with the offending line.

use serde::{Deserialize, Serialize};
use std::fmt;

/// 12,345: a count with thousands separators.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A share of traffic that gets the flag, in whole percent (0–100).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct Percentage(u8);

impl Percentage {
    pub const ZERO: Percentage = Percentage(0);
    pub const FULL: Percentage = Percentage(100);

    pub fn new(value: i64) -> Result<Self, String> {
        u8::try_from(value)
            .ok()
            .filter(|v| *v <= 100)
            .map(Percentage)
            .ok_or_else(|| format!("{value} is not a percentage of traffic (0 to 100)"))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for Percentage {
    type Error = String;
    fn try_from(value: i64) -> Result<Self, String> {
        Percentage::new(value)
    }
}

impl From<Percentage> for u8 {
    fn from(p: Percentage) -> u8 {
        p.0
    }
}

impl fmt::Display for Percentage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// A rate threshold in percent of operations (0–100, fractions allowed: 99.5).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Threshold(f64);

impl Threshold {
    pub fn new(value: f64) -> Result<Self, String> {
        if value.is_finite() && (0.0..=100.0).contains(&value) {
            Ok(Threshold(value))
        } else {
            Err(format!("{value} is not a rate in percent (0 to 100)"))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Threshold {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, String> {
        Threshold::new(value)
    }
}

impl From<Threshold> for f64 {
    fn from(t: Threshold) -> f64 {
        t.0
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// A limit relative to the baseline, in percent of it (110 means "at most 10% above").
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct PctOfBaseline(f64);

impl PctOfBaseline {
    pub fn new(value: f64) -> Result<Self, String> {
        if value.is_finite() && value > 0.0 && value <= 1000.0 {
            Ok(PctOfBaseline(value))
        } else {
            Err(format!("{value} is not a percentage of the baseline (above 0, at most 1000)"))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for PctOfBaseline {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, String> {
        PctOfBaseline::new(value)
    }
}

impl From<PctOfBaseline> for f64 {
    fn from(t: PctOfBaseline) -> f64 {
        t.0
    }
}

impl fmt::Display for PctOfBaseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}% of baseline", self.0)
    }
}

/// A length of time in whole seconds, written in plans as `90s`, `30m`, `48h`, `7d`, `1w` or
/// combinations such as `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Span(i64);

impl Span {
    pub const ZERO: Span = Span(0);

    pub const fn from_secs(secs: i64) -> Self {
        Span(if secs < 0 { 0 } else { secs })
    }

    pub fn secs(self) -> i64 {
        self.0
    }

    pub fn millis(self) -> i64 {
        self.0.saturating_mul(1000)
    }

    /// Parses `48h`, `7d`, `1h30m`; a bare number is rejected so that units are never guessed.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a duration is empty (write e.g. `48h`, `30m`, `7d`)".into());
        }
        let mut total: i64 = 0;
        let mut digits = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                'w' => 604_800,
                _ => {
                    return Err(format!("`{text}` is not a duration: unknown unit `{c}` (use s, m, h, d or w)"));
                }
            };
            let n: i64 = digits.parse().map_err(|_| format!("`{text}` is not a duration: a number must come before `{c}`"))?;
            digits.clear();
            total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(|| format!("`{text}` is too long a duration"))?;
        }
        if !digits.is_empty() {
            return Err(format!("`{text}` is not a duration: `{digits}` has no unit (e.g. `{digits}h`)"));
        }
        Ok(Span(total))
    }
}

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(value: String) -> Result<Self, String> {
        Span::parse(&value)
    }
}

impl From<Span> for String {
    fn from(s: Span) -> String {
        s.to_string()
    }
}

impl fmt::Display for Span {
    /// The compact form plans use, largest units first: `1w`, `2d12h`, `45m`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

/// A point in time, milliseconds since the Unix epoch (UTC). The domain never reads the clock:
/// callers pass `now` in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_add(span.millis()))
    }

    /// Whole seconds from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Span {
        Span::from_secs((self.0 - earlier.0) / 1000)
    }
}

/// The position of a stage in its plan, counting from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StageIndex(pub u32);

impl StageIndex {
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for StageIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stage {}", self.0)
    }
}

/// A rollout's optimistic-concurrency version: every accepted transition increments it, and a
/// command names the version it acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Version(pub u64);

impl Version {
    pub fn next(self) -> Version {
        Version(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Day `days` since 1970-01-01 as `2026-11-23`.
pub fn civil_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(4_812), "4,812");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(2_345_678), "2,345,678");
    }

    #[test]
    fn percentage_accepts_0_to_100_only() {
        for (input, ok) in [(-1, false), (0, true), (1, true), (100, true), (101, false), (300, false)] {
            assert_eq!(Percentage::new(input).is_ok(), ok, "{input}");
        }
    }

    #[test]
    fn thresholds_reject_out_of_range_and_nan() {
        assert!(Threshold::new(99.5).is_ok());
        assert!(Threshold::new(100.1).is_err());
        assert!(Threshold::new(f64::NAN).is_err());
        assert!(PctOfBaseline::new(0.0).is_err());
        assert!(PctOfBaseline::new(110.0).is_ok());
    }

    #[test]
    fn spans_parse_the_units_plans_use() {
        let check = |text: &str, secs: i64| assert_eq!(Span::parse(text), Ok(Span(secs)), "{text}");
        check("90s", 90);
        check("30m", 1_800);
        check("24h", 86_400);
        check("48h", 172_800);
        check("7d", 604_800);
        check("1w", 604_800);
        check("1h30m", 5_400);
    }

    #[test]
    fn spans_reject_what_they_cannot_read() {
        for bad in ["", "48", "h", "3x", "1h30"] {
            let err = Span::parse(bad).unwrap_err();
            assert!(err.contains("duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn spans_print_back_in_their_compact_form() {
        for text in ["0s", "1m30s", "30m", "1h30m", "2d", "1w", "1w1d1h1m1s"] {
            assert_eq!(Span::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Span::parse("48h").unwrap().to_string(), "2d");
    }
}
