//! Numbers and times formatted for people. Pure functions, so the server render and the
//! hydrated page print the same text.

use crate::domain::units::{Span, Timestamp};

/// `2026-11-22 14:03 UTC`.
pub fn utc_minute(t: Timestamp) -> String {
    let (y, m, d, secs) = utc_parts(t);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

/// (year, month, day, seconds into the day) of a moment, in UTC.
fn utc_parts(t: Timestamp) -> (i64, u32, u32, i64) {
    let secs = t.millis().div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    (y, m, d, secs.rem_euclid(86_400))
}

/// `14:03`: the time of day in UTC, for a chart's time axis.
pub fn utc_clock(t: Timestamp) -> String {
    let (.., secs) = utc_parts(t);
    format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60)
}

/// `22 Nov`: the day in UTC, for a chart's time axis.
pub fn utc_day(t: Timestamp) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (_, m, d, _) = utc_parts(t);
    format!("{d} {}", MONTHS[m as usize - 1])
}

/// `2026-11-22T14:03:00Z`, for `<time datetime>`.
pub fn iso(t: Timestamp) -> String {
    let (y, m, d, secs) = utc_parts(t);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// A duration the way a person says it, two largest units: `2 d 4 h`, `3 h 10 m`, `45 s`.
pub fn duration(span: Span) -> String {
    let s = span.secs();
    let parts = [(s / 86_400, "d"), (s % 86_400 / 3600, "h"), (s % 3600 / 60, "m"), (s % 60, "s")];
    let shown: Vec<String> =
        parts.iter().skip_while(|(n, _)| *n == 0).take(2).filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n} {unit}")).collect();
    if shown.is_empty() { "0 s".to_string() } else { shown.join(" ") }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_minutes_match_known_dates() {
        assert_eq!(utc_minute(Timestamp(0)), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(Timestamp(1_761_696_000_000)), "2025-10-29 00:00 UTC");
        assert_eq!(utc_minute(Timestamp(951_782_400_000 + 3_723_000)), "2000-02-29 01:02 UTC");
        assert_eq!(utc_clock(Timestamp(951_782_400_000 + 3_723_000)), "01:02");
        assert_eq!(utc_day(Timestamp(951_782_400_000 + 3_723_000)), "29 Feb");
        assert_eq!(utc_day(Timestamp(1_761_696_000_000 - 1)), "28 Oct");
    }

    #[test]
    fn durations_show_the_two_largest_units() {
        let check = |secs: i64, text: &str| assert_eq!(duration(Span::from_secs(secs)), text, "{secs}");
        check(0, "0 s");
        check(45, "45 s");
        check(3 * 3600 + 600, "3 h 10 m");
        check(2 * 86_400 + 4 * 3600 + 59, "2 d 4 h");
        check(86_400 + 30, "1 d");
        check(7 * 86_400, "7 d");
    }
}

/// The text with its first letter in upper case: "advance to 10%" → "Advance to 10%".
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod count_tests {
    #[test]
    fn capitalized_raises_the_first_letter_only() {
        assert_eq!(super::capitalized("advance to 10% rollout"), "Advance to 10% rollout");
        assert_eq!(super::capitalized(""), "");
    }
}
