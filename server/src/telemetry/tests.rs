//! Tests of `telemetry.rs`: the process's own metrics and their text rendering.

use super::*;

/// The value of the sample named exactly `series` (name and labels as written).
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in\n{page}"))
        .parse()
        .unwrap()
}

#[test]
fn histograms_are_cumulative_and_count_every_observation() {
    let telemetry = Telemetry::default();
    for seconds in [0.001, 0.02, 0.02, 0.3, 30.0] {
        telemetry.record_request("/api/v1/rollouts/{id}", "GET", 200, seconds);
    }
    let page = telemetry.render(&Gauges::default(), 0);
    let bucket =
        |le: &str| sample(&page, &format!("rampart_http_request_duration_seconds_bucket{{route=\"/api/v1/rollouts/{{id}}\",le=\"{le}\"}}"));
    assert_eq!(bucket("0.005"), 1.0);
    assert_eq!(bucket("0.025"), 3.0);
    assert_eq!(bucket("0.5"), 4.0);
    assert_eq!(bucket("10"), 4.0, "30 s is above every finite bound");
    assert_eq!(bucket("+Inf"), 5.0);
    assert_eq!(sample(&page, "rampart_http_request_duration_seconds_count{route=\"/api/v1/rollouts/{id}\"}"), 5.0);
    assert!((sample(&page, "rampart_http_request_duration_seconds_sum{route=\"/api/v1/rollouts/{id}\"}") - 30.341).abs() < 1e-9);
    assert_eq!(sample(&page, "rampart_http_requests_total{route=\"/api/v1/rollouts/{id}\",method=\"GET\",status=\"200\"}"), 5.0);
}

#[test]
fn retention_runs_count_what_they_removed_and_when_they_last_succeeded() {
    let telemetry = Telemetry::default();
    telemetry.record_retention(Some(2), Some([3, 4, 5]), Some(6));
    telemetry.record_retention(None, Some([1, 0, 0]), Some(1));
    let page = telemetry.render(&Gauges::default(), 0);
    assert_eq!(sample(&page, "rampart_retention_runs_total{outcome=\"ok\"}"), 1.0);
    assert_eq!(sample(&page, "rampart_retention_runs_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(sample(&page, "rampart_retention_removed_total{kind=\"event_partitions\"}"), 2.0);
    assert_eq!(sample(&page, "rampart_retention_removed_total{kind=\"sessions\"}"), 4.0);
    assert_eq!(sample(&page, "rampart_retention_removed_total{kind=\"device_cookies\"}"), 5.0);
    assert_eq!(sample(&page, "rampart_retention_removed_total{kind=\"webhook_deliveries\"}"), 7.0);
    assert!(sample(&page, "rampart_retention_last_success_timestamp_seconds") > 1.7e9);
}

#[test]
fn invented_methods_count_as_one_series() {
    let telemetry = Telemetry::default();
    for i in 0..100 {
        telemetry.record_request("(static)", &format!("FOO{i}"), 405, 0.001);
    }
    let page = telemetry.render(&Gauges::default(), 0);
    assert_eq!(sample(&page, "rampart_http_requests_total{route=\"(static)\",method=\"other\",status=\"405\"}"), 100.0);
    assert_eq!(page.lines().filter(|l| l.starts_with("rampart_http_requests_total{")).count(), 1);
}

#[test]
fn the_tick_age_counts_judged_and_skipped_ticks_but_not_failed_ones() {
    let telemetry = Telemetry::default();
    assert_eq!(sample(&telemetry.render(&Gauges::default(), 5_000), "rampart_guard_last_tick_age_seconds"), -1.0);
    telemetry.record_tick(TickOutcome::Judged, 10_000, 0.01, 1, 2);
    telemetry.record_tick(TickOutcome::Skipped, 12_000, 0.0, 0, 0);
    telemetry.record_tick(TickOutcome::Failed, 14_000, 0.0, 0, 0);
    let page = telemetry.render(&Gauges::default(), 15_500);
    assert_eq!(sample(&page, "rampart_guard_last_tick_age_seconds"), 3.5);
    assert_eq!(sample(&page, "rampart_guard_ticks_total{outcome=\"judged\"}"), 1.0);
    assert_eq!(sample(&page, "rampart_guard_ticks_total{outcome=\"skipped\"}"), 1.0);
    assert_eq!(sample(&page, "rampart_guard_ticks_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(sample(&page, "rampart_guard_rollbacks_total"), 1.0);
    assert_eq!(sample(&page, "rampart_guard_alerts_total"), 2.0);
    assert_eq!(sample(&page, "rampart_guard_tick_duration_seconds_count"), 1.0);
}

#[test]
fn every_sample_follows_its_type_line_and_label_values_are_escaped() {
    let telemetry = Telemetry::default();
    telemetry.record_ingest(10, 2, 1);
    let gauges = Gauges {
        rollouts: vec![RolloutGauge {
            id: 7,
            flag: "a\"b\\c".into(),
            status: "active".into(),
            stage: 2,
            percentage: 10.0,
            open_alerts: 1,
            figures: Some(StageFigures {
                source: "prometheus",
                source_ok: true,
                arms: vec![("treatment", 1_000, 3), ("control", 9_000, 20)],
                gates: vec![GateFigure {
                    criterion: "success_rate".into(),
                    verdict: "pass",
                    observed: Some(99.7),
                    interval: Some((99.5, 99.9)),
                    threshold: 99.0,
                }],
            }),
        }],
        ..Gauges::default()
    };
    let page = telemetry.render(&gauges, 0);
    assert_eq!(sample(&page, "rampart_ingest_events_total{outcome=\"accepted\"}"), 10.0);
    let of = |rest: &str| format!("{{rollout=\"7\",flag=\"a\\\"b\\\\c\",{rest}}}");
    assert_eq!(sample(&page, &format!("rampart_rollout_uploads{}", of("arm=\"control\""))), 9_000.0);
    assert_eq!(sample(&page, &format!("rampart_rollout_failures{}", of("arm=\"treatment\""))), 3.0);
    assert_eq!(sample(&page, &format!("rampart_rollout_source_ok{}", of("source=\"prometheus\""))), 1.0);
    let verdict =
        |v: &str| sample(&page, &format!("rampart_rollout_gate_verdict{}", of(&format!("criterion=\"success_rate\",verdict=\"{v}\""))));
    assert_eq!((verdict("pass"), verdict("fail"), verdict("inconclusive")), (1.0, 0.0, 0.0));
    assert_eq!(sample(&page, &format!("rampart_rollout_gate_interval{}", of("criterion=\"success_rate\",bound=\"low\""))), 99.5);
    assert_eq!(sample(&page, &format!("rampart_rollout_gate_threshold{}", of("criterion=\"success_rate\""))), 99.0);
    assert_eq!(sample(&page, "rampart_rollout_stage{rollout=\"7\",flag=\"a\\\"b\\\\c\",status=\"active\"}"), 2.0);
    let mut typed = std::collections::HashSet::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            assert!(typed.insert(rest.split(' ').next().unwrap().to_string()), "a metric typed twice: {line}");
        } else if !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).filter(|f| typed.contains(*f));
            assert!(typed.contains(name) || family.is_some(), "a sample before its TYPE line: {line}");
        }
    }
}

/// Every metric the Grafana dashboard in `docs/grafana/` queries is one this page serves.
#[test]
fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    let dashboard: serde_json::Value = serde_json::from_str(include_str!("../../../docs/grafana/rampart.json")).unwrap();
    let gauges = Gauges {
        rollouts: vec![RolloutGauge {
            id: 1,
            flag: "f".into(),
            status: "running".into(),
            stage: 0,
            percentage: 1.0,
            open_alerts: 0,
            figures: None,
        }],
        ..Gauges::default()
    };
    let telemetry = Telemetry::default();
    telemetry.record_request("/x", "GET", 200, 0.1);
    let page = telemetry.render(&gauges, 0);
    let families: std::collections::HashSet<&str> = page.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("rampart_")) {
                let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| word.strip_suffix(s)).unwrap_or(word);
                assert!(families.contains(family), "panel {} queries {word}, which /metrics does not serve", panel["title"]);
                queried += 1;
            }
        }
    }
    assert!(queried >= 12, "{queried}");
}
