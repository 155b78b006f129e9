//! Tests of `metrics.rs`: reading batches (JSON arrays as NDJSON lines would read).

use super::ingest::readings;
use super::*;
use proptest::strategy::Strategy as _;

const GOOD: &str = r#"{"timestamp":1762336800000,"event_id":"e-1","variant":"async","outcome":"success","latency_ms":812.5,"memory_mb":38.2,"provider":"kimi","file_type":"csv","size_bytes":1}"#;

#[test]
fn a_json_array_reads_element_by_element_as_the_same_lines_would() {
    let bad = GOOD.replace(r#""outcome":"success""#, r#""outcome":"ok""#);
    let lines = [GOOD.to_string(), bad.clone(), GOOD.replace("e-1", "e-3")];
    let array = format!("[{}]", lines.join(",\n  "));
    let from_array = read_json_array(&array).unwrap();
    let from_lines: Vec<Reading> = readings((1..).zip(lines.iter().map(String::as_str))).collect();
    assert_eq!(from_array, from_lines);
    assert_eq!(from_array[1].0, 2, "an element is reported as its position, from 1");
    assert_eq!(from_array[1].1.as_ref().unwrap_err().field, "outcome");
    // Not an array of events: said so, nothing read.
    assert!(read_json_array("[1, 2").is_err());
    assert!(read_json_array(&format!("{array} trailing")).is_err());
    assert!(read_json_array(r#"{"not": "an array"}"#).is_err());
    assert_eq!(read_json_array("[]").unwrap(), vec![]);
    // A non-object element is one bad line, not a broken batch.
    let mixed = read_json_array(&format!("[{GOOD}, 7]")).unwrap();
    assert!(mixed[0].1.is_ok() && mixed[1].1.is_err());
}

// Fuzzing (issue 19): the JSON-array form of ingest, outside input read by its own code.
proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any text: an error or readings, never a panic.
    #[test]
    fn any_text_is_read_or_refused_without_a_panic(text in "\\PC{0,300}") {
        let _ = read_json_array(&text);
        let _ = readings([(1, text.as_str())].into_iter()).count();
    }

    /// Arrays of events with fields changed to other JSON values: the array form reads
    /// each element exactly as the same text sent as an NDJSON line.
    #[test]
    fn an_array_reads_as_its_elements_would_as_lines(
        changes in proptest::collection::vec(
            proptest::collection::vec((0usize..9, proptest::prop_oneof![
                proptest::prelude::Just(serde_json::Value::Null),
                proptest::prelude::any::<i64>().prop_map(serde_json::Value::from),
                proptest::prelude::any::<f64>().prop_map(serde_json::Value::from),
                "\\PC{0,40}".prop_map(serde_json::Value::from),
            ]), 0..3),
            0..6,
        )
    ) {
        let base: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        let keys: Vec<String> = base.as_object().unwrap().keys().cloned().collect();
        let lines: Vec<String> = changes
            .iter()
            .map(|edits| {
                let mut event = base.clone();
                for (field, value) in edits {
                    event[&keys[field % keys.len()]] = value.clone();
                }
                event.to_string()
            })
            .collect();
        let from_array = read_json_array(&format!("[{}]", lines.join(","))).unwrap();
        let from_lines: Vec<Reading> = readings((1..).zip(lines.iter().map(String::as_str))).collect();
        proptest::prop_assert_eq!(from_array, from_lines);
    }
}
