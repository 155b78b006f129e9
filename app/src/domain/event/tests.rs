//! Tests of `event.rs`: the upload event and its parser.

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
