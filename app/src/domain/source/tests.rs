//! Tests of `source.rs`: the metric source (Prometheus).

use super::tally::{Steps, increases};
use super::*;
use crate::domain::stats::StageRows;
use crate::domain::units::Timestamp;

fn source() -> PrometheusSource {
    toml::from_str(
        r#"
            prometheus = "http://127.0.0.1:9090"
            uploads = 'uploads_total{job="upload"}'
            latency = 'upload_seconds{job="upload"}'
            critical = 'critical_total'
            "#,
    )
    .unwrap()
}

fn at(secs: i64) -> Timestamp {
    Timestamp(secs * 1000)
}

#[test]
fn a_typical_section_builds_a_query_per_arm_and_figure() {
    let s = source();
    assert!(s.problems().is_empty(), "{:?}", s.problems());
    let texts: Vec<_> = s.queries().iter().map(|q| q.text(Span::from_secs(600))).collect();
    assert_eq!(
        texts,
        [
            r#"uploads_total{job="upload",arm="treatment"}[600s]"#,
            r#"critical_total{arm="treatment"}[600s]"#,
            r#"upload_seconds_bucket{job="upload",arm="treatment"}[600s]"#,
            r#"upload_seconds_sum{job="upload",arm="treatment"}[600s]"#,
            r#"uploads_total{job="upload",arm="control"}[600s]"#,
            r#"critical_total{arm="control"}[600s]"#,
            r#"upload_seconds_bucket{job="upload",arm="control"}[600s]"#,
            r#"upload_seconds_sum{job="upload",arm="control"}[600s]"#,
        ]
    );
    // A histogram named by its `_bucket` series reads the same.
    let mut named = s.clone();
    named.latency = Some(r#"upload_seconds_bucket{job="upload"}"#.into());
    assert_eq!(named.queries(), s.queries());
}

#[test]
fn selectors_are_read_as_prometheus_reads_them_and_refused_with_the_place_at_fault() {
    let s = Selector::parse(r#" up { job = "a\"b", env!~'dev|test' , } "#).unwrap();
    assert_eq!(s.name.as_deref(), Some("up"));
    assert_eq!(s.matchers.len(), 2);
    assert_eq!((s.matchers[0].value.as_str(), s.matchers[1].op.as_str()), ("a\"b", "!~"));
    // What it prints reads back the same.
    assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
    for (bad, says) in [
        ("rate(x[5m])", "expected `{`"),
        ("x{job=\"a\"}[5m]", "nothing may follow"),
        ("x{job=a}", "expected a quoted value"),
        ("x{job==\"a\"}", "expected a quoted value"),
        ("x{job=\"a}", "not closed"),
        ("x{9job=\"a\"}", "expected a label name"),
        ("9x", "a metric name starts"),
        ("{job=~\".*\"}", "without a name"),
        ("", "needs a metric name"),
    ] {
        let message = Selector::parse(bad).unwrap_err();
        assert!(message.contains(says), "{bad}: {message}");
    }
    assert!(Selector::parse("x{job=a}").unwrap_err().contains("character 7"));
}

#[test]
fn the_section_names_each_field_at_fault() {
    let mut s = source();
    s.prometheus = "prometheus:9090".into();
    s.uploads = r#"uploads_total{arm="treatment"}"#.into();
    s.latency = Some("{job=\"x\"}".into());
    s.bearer_token_env = Some("DATABASE_URL".into());
    s.basic_auth_user = Some("me".into());
    let fields: Vec<_> = s.problems().into_iter().map(|(f, _)| f).collect();
    assert_eq!(fields, ["prometheus", "uploads", "latency", "bearer_token_env", "basic_auth_user", "bearer_token_env"]);
    // Credentials only over https, never in the URL, from variables meant for them.
    let mut s = source();
    s.bearer_token_env = Some("RAMPART_PROMETHEUS_TOKEN".into());
    assert_eq!(s.problems(), [("prometheus".to_string(), "credentials are sent only over https://".to_string())]);
    s.prometheus = "https://prometheus.internal:9090".into();
    assert!(s.problems().is_empty(), "{:?}", s.problems());
    s.prometheus = "https://me:secret@prometheus.internal".into();
    assert!(s.problems()[0].1.contains("must not carry a user or password"));
}

#[test]
fn increases_count_each_step_once_and_a_restart_from_zero() {
    // Scraped every 15 s; the counter restarts (drops to 2) between 60 s and 75 s.
    let samples: Vec<_> = [(0, 10.0), (15, 12.0), (30, 15.0), (45, 15.0), (60, 20.0), (75, 2.0), (90, 6.0), (130, 9.0)]
        .into_iter()
        .map(|(t, v)| (at(t), v))
        .collect();
    let Steps { steps, resets, gap } = increases(&samples, at(0), at(130), Span::from_secs(60));
    // An independent count: the sum of the positive steps, plus the value after the drop.
    let total: f64 = steps.iter().map(|s| s.1).sum();
    assert_eq!(total, (20.0 - 10.0) + 2.0 + (9.0 - 2.0));
    assert_eq!((resets, gap), (1, None));
    // Each step sits in the minute of its later sample.
    let first_minute: f64 = steps.iter().filter(|s| s.0 == at(0)).map(|s| s.1).sum();
    assert_eq!(first_minute, 5.0);
    // A span that starts at 60 s counts only the steps that end after it.
    let later = increases(&samples, at(60), at(130), Span::from_secs(60)).steps;
    assert_eq!(later.iter().map(|s| s.1).sum::<f64>(), 2.0 + 4.0 + 3.0);
    // Samples 40 s apart are a gap when at most 30 s are allowed.
    let gap = increases(&samples, at(0), at(130), Span::from_secs(30)).gap;
    assert_eq!(gap, Some((at(90), at(130))));
}

fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> Series {
    Series {
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        samples: points.iter().map(|(t, v)| (at(*t), *v)).collect(),
    }
}

#[test]
fn the_rows_hold_each_arms_outcomes_and_latency_from_buckets() {
    let s = source();
    let queries = s.queries();
    let find = |arm, reads| queries.iter().find(|q| q.arm == arm && q.reads == reads).unwrap().clone();
    let answers = vec![
        (
            find(Arm::Treatment, Reads::Uploads),
            vec![
                series(&[("outcome", "success")], &[(0, 0.0), (30, 90.0), (90, 190.0)]),
                series(&[("outcome", "error")], &[(0, 0.0), (30, 4.0), (90, 10.0)]),
                series(&[("outcome", "timeout")], &[(0, 0.0), (30, 1.0), (90, 1.0)]),
            ],
        ),
        (find(Arm::Treatment, Reads::Critical), vec![series(&[], &[(0, 0.0), (90, 1.0)])]),
        (
            find(Arm::Treatment, Reads::LatencyBuckets),
            vec![
                series(&[("le", "0.1")], &[(0, 0.0), (70, 100.0), (90, 150.0)]),
                series(&[("le", "0.5")], &[(0, 0.0), (70, 140.0), (90, 195.0)]),
                series(&[("le", "+Inf")], &[(0, 0.0), (70, 145.0), (90, 201.0)]),
            ],
        ),
        (find(Arm::Treatment, Reads::LatencySum), vec![series(&[], &[(0, 0.0), (70, 20.0), (90, 30.0)])]),
        (find(Arm::Control, Reads::Uploads), vec![series(&[("outcome", "success")], &[(0, 0.0), (90, 500.0)])]),
        (find(Arm::Control, Reads::Critical), vec![series(&[], &[(0, 0.0), (90, 0.0)])]),
    ];
    // The control arm's latency is not asked for here: as for an arm without traffic.
    let e = evidence(&s, &answers, at(0), at(90), at(95), [true, false]);
    assert_eq!(e.problem, None);
    let t = e.rows.treatment();
    assert_eq!((t.success, t.error, t.timeout, t.critical), (190, 10, 1, 1));
    assert_eq!(e.rows.control().success, 500);
    // 150 at or under 100 ms, 45 in (100, 500] spread evenly, 6 above 500 at 500: the p95
    // (rank 191) is 41/45 of the way through the second bucket, as histogram_quantile says.
    assert_eq!(t.latency.count(), 201);
    let p95 = t.latency.quantile(0.95).unwrap();
    assert!((p95 - (100.0 + 400.0 * 41.0 / 45.0)).abs() < 10.0, "{p95}");
    assert!(t.latency.quantile(0.5).unwrap() <= 101.0);
    assert_eq!(t.latency.count_above(520.0).1, 0);
    // The mean from the histogram's own sum (30 s in all), not from the buckets.
    assert_eq!(t.latency_sum_ms, 30_000.0);
    assert_eq!(e.pulled[0].increase, 201.0);
    assert_eq!(e.pulled[0].series, 3);
}

#[test]
fn a_tally_grown_pull_by_pull_comes_to_what_one_pull_of_the_whole_span_does() {
    let mut s = source();
    s.matrix_labels = Some(MatrixLabels::default());
    let queries = s.queries();
    let find = |arm, reads| queries.iter().find(|q| q.arm == arm && q.reads == reads).unwrap().clone();
    // Three series over 10 minutes, scraped every 15 s: successes that restart at 4 min,
    // errors, and latency buckets.
    let at_15s = |f: &dyn Fn(i64) -> f64| (0..=40).map(|i| (i * 15, f(i * 15))).collect::<Vec<_>>();
    let success = at_15s(&|t| if t < 240 { t as f64 * 2.0 } else { (t - 240) as f64 });
    let errors = at_15s(&|t| (t / 30) as f64);
    let fast = at_15s(&|t| t as f64 * 0.8);
    let all = at_15s(&|t| t as f64);
    let answers_until = |until: i64| {
        let cut = |points: &[(i64, f64)]| points.iter().copied().filter(|(t, _)| *t <= until).collect::<Vec<_>>();
        vec![
            (
                find(Arm::Treatment, Reads::Uploads),
                vec![series(&[("outcome", "success")], &cut(&success)), series(&[("outcome", "error")], &cut(&errors))],
            ),
            (
                find(Arm::Treatment, Reads::LatencyBuckets),
                vec![series(&[("le", "0.1")], &cut(&fast)), series(&[("le", "+Inf")], &cut(&all))],
            ),
        ]
    };
    let whole = evidence(&s, &answers_until(600), at(0), at(600), at(600), [true, false]);
    // Grown in pulls at 100, 250 and 600 s, each answer holding everything so far (as an
    // overlap would: what was counted is skipped).
    let mut tally = Tally::new(&s, at(0), [true, false]);
    for until in [100, 250, 600] {
        tally.add(&s, &answers_until(until), at(until));
    }
    let grown = tally.evidence(&s, at(600), at(600));
    // The same minutes, counts and sums; a bucket's count split across two pulls is spread
    // in two parts, so the sketch's bins may differ by a value each (never its count).
    let minute = |rows: &StageRows| {
        rows.treatment
            .iter()
            .map(|(m, x)| (*m, x.success, x.error, x.timeout, x.critical, x.latency_sum_ms as i64, x.latency.count()))
            .collect::<Vec<_>>()
    };
    assert_eq!(minute(&grown.rows), minute(&whole.rows));
    let p95 = |rows: &StageRows| rows.treatment().latency.quantile(0.95).unwrap();
    assert!((p95(&grown.rows) - p95(&whole.rows)).abs() <= p95(&whole.rows) * 0.03);
    assert_eq!(grown.problem, whole.problem);
    let receipts = |e: &Evidence| e.pulled.iter().map(|p| (p.series, p.increase, p.resets)).collect::<Vec<_>>();
    assert_eq!(receipts(&grown), receipts(&whole));
    // 450 up to the last scrape before the restart (at 225 s), then 360 after it.
    assert_eq!(whole.rows.treatment().success, 450 + 360);
    // So do the matrix cells (here one, the series naming none).
    let cells = |e: &Evidence| e.cells.iter().map(|c| (c.arms[0].success, c.arms[0].error, c.arms[0].latency.count())).collect::<Vec<_>>();
    assert_eq!(cells(&grown), cells(&whole));
    assert_eq!(cells(&whole), [(810, whole.rows.treatment().error, whole.rows.treatment().latency.count())]);
    // A query that was not answered in a pull is read again from where it was.
    let mut tally = Tally::new(&s, at(0), [true, false]);
    tally.add(&s, &answers_until(100)[..1], at(100));
    let starts = tally.reads_from(&s);
    assert_eq!(starts[0], at(100 - 300), "the uploads query: max_gap before where it was answered");
    assert_eq!(starts[2], Timestamp(-s.lookback().millis()), "the latency query: from the span's lookback");
}

#[test]
fn a_gap_left_by_samples_written_late_is_read_again_and_only_a_real_one_stays() {
    let s = source();
    let uploads = s.queries().into_iter().find(|q| q.arm == Arm::Treatment && q.reads == Reads::Uploads).unwrap();
    // One success a second, scraped every 15 s; `written` is how far Prometheus has the
    // samples at the time of a pull, and `lost` a stretch it never gets.
    let answer = |start: Timestamp, to: i64, written: i64, lost: Option<(i64, i64)>| {
        let points: Vec<(i64, f64)> = (0..=to / 15)
            .map(|i| i * 15)
            .filter(|t| at(*t) > start && *t <= to.min(written))
            .filter(|t| lost.is_none_or(|(a, b)| *t <= a || *t >= b))
            .map(|t| (t, t as f64))
            .collect();
        vec![(uploads.clone(), vec![series(&[("outcome", "success")], &points)])]
    };
    for lost in [None, Some((300, 705))] {
        let whole = evidence(&s, &answer(at(-1), 1600, 1600, lost), at(0), at(1600), at(1600), [true, false]);
        let mut tally = Tally::new(&s, at(0), [true, false]);
        // Pulls at 1000, 1500 and 1600 s, Prometheus holding samples up to 300 s at the first
        // (the rest written late) and all of them after: the second pull reads from 700 s
        // (max_gap before the first), after the series' last sample (300 s).
        for (to, written) in [(1000, 300), (1500, 1500), (1600, 1600)] {
            let start = tally.reads_from(&s)[0];
            tally.add(&s, &answer(start, to, written, lost), at(to));
            if to == 1500 {
                let problem = tally.evidence(&s, at(to), at(to)).problem;
                assert!(
                    matches!(problem, Some(Problem::Gap { from, to, .. }) if (from, to) == (at(300), at(705))),
                    "a gap the pull did not read the start of is provisional: {problem:?}"
                );
                assert_eq!(tally.reads_from(&s)[0], at(300), "the next pull reads again from the series' last sample");
            }
        }
        let grown = tally.evidence(&s, at(1600), at(1600));
        assert_eq!(grown.rows, whole.rows, "lost: {lost:?}");
        assert_eq!(grown.problem, whole.problem, "lost: {lost:?}");
        match lost {
            None => {
                assert_eq!(grown.problem, None, "the late samples filled the gap");
                assert_eq!(grown.rows.treatment().success, 1590, "up to the last scrape, at 1590 s");
            }
            Some(_) => assert!(
                matches!(grown.problem, Some(Problem::Gap { from, to, .. }) if (from, to) == (at(300), at(705))),
                "a gap still there when read whole is real: {:?}",
                grown.problem
            ),
        }
    }
}

#[test]
fn an_unknown_outcome_and_a_histogram_that_missed_uploads_are_problems() {
    let s = source();
    let queries = s.queries();
    let find = |reads| queries.iter().find(|q| q.arm == Arm::Treatment && q.reads == reads).unwrap().clone();
    let uploads = |outcome: &str| (find(Reads::Uploads), vec![series(&[("outcome", outcome)], &[(0, 0.0), (60, 100.0)])]);
    let problem = |answers: &[(Query, Vec<Series>)]| evidence(&s, answers, at(0), at(60), at(60), [true, false]).problem;
    let Some(Problem::UnknownOutcome { value, .. }) = problem(&[uploads("failed")]) else { panic!("an unknown outcome passed") };
    assert_eq!(value, "failed");
    assert_eq!(problem(&[uploads("success")]), None);
    // The latency histogram saw 60 of the 100 uploads (timeouts not observed, say).
    let latency = (find(Reads::LatencyBuckets), vec![series(&[("le", "+Inf")], &[(0, 0.0), (60, 60.0)])]);
    let Some(Problem::Mismatch { observed, uploads: n, .. }) = problem(&[uploads("success"), latency]) else { panic!("a mismatch passed") };
    assert_eq!((observed, n), (60, 100));
    let latency = (find(Reads::LatencyBuckets), vec![series(&[("le", "+Inf")], &[(0, 0.0), (60, 99.0)])]);
    assert_eq!(problem(&[uploads("success"), latency]), None, "a count within 1% (or 2) is the same uploads");
}

#[test]
fn what_the_source_cannot_vouch_for_is_a_problem_with_its_query() {
    let s = source();
    let uploads = s.queries().into_iter().find(|q| q.reads == Reads::Uploads).unwrap();
    let ok = |points: &[(i64, f64)]| vec![series(&[("outcome", "success")], points)];
    let problem = |answer: Vec<Series>, now: i64| evidence(&s, &[(uploads.clone(), answer)], at(0), at(now), at(now), [true, true]).problem;
    assert!(matches!(problem(vec![], 600), Some(Problem::NoSeries { .. })));
    // An arm the stage serves no traffic may have no series, or stale ones.
    let quiet = |answer: Vec<Series>| evidence(&s, &[(uploads.clone(), answer)], at(0), at(600), at(600), [false, true]).problem;
    assert_eq!(quiet(vec![]), None);
    assert_eq!(quiet(ok(&[(0, 1.0), (60, 2.0)])), None);
    assert!(matches!(problem(ok(&[(0, 1.0), (60, 2.0)]), 600), Some(Problem::Stale { .. })));
    assert!(matches!(problem(ok(&[(0, 1.0), (60, 2.0), (500, 3.0)]), 520), Some(Problem::Gap { .. })));
    assert_eq!(problem(ok(&[(0, 1.0), (60, 2.0), (120, 3.0)]), 150), None);
    let text = problem(vec![], 600).unwrap().to_string();
    assert!(text.contains(r#"uploads_total{job="upload",arm="treatment"}["#), "{text}");
}

#[test]
fn with_matrix_labels_each_cell_holds_its_own_uploads_latency_and_sums() {
    let mut s = source();
    s.matrix_labels = Some(MatrixLabels::default());
    assert!(s.problems().is_empty(), "{:?}", s.problems());
    let queries = s.queries();
    let find = |arm, reads| queries.iter().find(|q| q.arm == arm && q.reads == reads).unwrap().clone();
    let csv = [("file_type", "csv"), ("size_mb", "10"), ("provider", "kimi")];
    let pdf = [("file_type", "pdf"), ("size_mb", "100MB"), ("provider", "glm")];
    let with =
        |cell: &[(&'static str, &'static str)], more: (&'static str, &'static str)| cell.iter().copied().chain([more]).collect::<Vec<_>>();
    let answers = vec![
        (
            find(Arm::Treatment, Reads::Uploads),
            vec![
                series(&with(&csv, ("outcome", "success")), &[(0, 0.0), (30, 50.0), (90, 90.0)]),
                series(&with(&csv, ("outcome", "error")), &[(0, 0.0), (90, 10.0)]),
                // A restart in the pdf cell: 20, then 5 from zero.
                series(&with(&pdf, ("outcome", "success")), &[(0, 0.0), (30, 20.0), (60, 5.0)]),
                // A series without the cell labels counts in an unnamed cell.
                series(&[("outcome", "timeout")], &[(0, 0.0), (60, 3.0)]),
            ],
        ),
        (
            find(Arm::Treatment, Reads::LatencyBuckets),
            vec![
                series(&with(&csv, ("le", "0.1")), &[(0, 0.0), (90, 100.0)]),
                series(&with(&csv, ("le", "+Inf")), &[(0, 0.0), (90, 100.0)]),
                series(&with(&pdf, ("le", "0.1")), &[(0, 0.0), (60, 0.0)]),
                series(&with(&pdf, ("le", "+Inf")), &[(0, 0.0), (30, 20.0), (60, 5.0)]),
                series(&[("le", "+Inf")], &[(0, 0.0), (60, 3.0)]),
            ],
        ),
        (
            find(Arm::Treatment, Reads::LatencySum),
            vec![series(&csv, &[(0, 0.0), (90, 4.0)]), series(&pdf, &[(0, 0.0), (30, 10.0), (60, 2.5)])],
        ),
        (find(Arm::Control, Reads::Uploads), vec![series(&with(&csv, ("outcome", "success")), &[(0, 0.0), (90, 40.0)])]),
        // Critical errors of a cell without uploads: no cell of its own.
        (find(Arm::Treatment, Reads::Critical), vec![series(&[("file_type", "zip")], &[(0, 0.0), (90, 2.0)])]),
    ];
    let e = evidence(&s, &answers, at(0), at(90), at(95), [true, false]);
    assert_eq!(e.problem, None);
    let cell = |file_type: &str| e.cells.iter().find(|c| c.file_type == file_type).unwrap();
    assert_eq!(e.cells.iter().map(|c| c.file_type.as_str()).collect::<Vec<_>>(), ["", "csv", "pdf"]);
    assert_eq!(e.rows.treatment().critical, 2);
    // An independent count, cell by cell, from the samples above.
    let (c, p, unnamed) = (cell("csv"), cell("pdf"), cell(""));
    assert_eq!((c.arms[0].success, c.arms[0].error, c.arms[1].success), (90, 10, 40));
    assert_eq!((p.arms[0].success, p.arms[0].error), (25, 0));
    assert_eq!((unnamed.arms[0].timeout, unnamed.size.as_str(), unnamed.provider.as_str()), (3, "", ""));
    // The cells add up to the arm's rows.
    let sum = |arm: usize| e.cells.iter().map(|c| c.arms[arm].count()).sum::<u64>();
    assert_eq!((sum(0), sum(1)), (e.rows.treatment().count(), e.rows.control().count()));
    // Each cell's latency from its own buckets: the csv cell's all at or under 100 ms, the pdf
    // cell's all above (read at the top finite bound); the sums from each cell's `_sum`.
    assert_eq!(c.arms[0].latency.count(), 100);
    assert!(c.arms[0].latency.quantile(0.95).unwrap() <= 101.0);
    assert_eq!(p.arms[0].latency.count(), 25);
    assert!(p.arms[0].latency.quantile(0.5).unwrap() >= 99.0);
    assert_eq!((c.arms[0].latency_sum_ms, p.arms[0].latency_sum_ms), (4_000.0, 12_500.0));
    // The size label as the plan's size class.
    let sizes = [1, 10, 50, 100];
    assert_eq!((c.size_class_mb(&sizes), p.size_class_mb(&sizes)), (Some(10), Some(100)));
    let sized = |size: &str| PulledCell { size: size.into(), ..PulledCell::default() }.size_class_mb(&sizes);
    assert_eq!((sized("7"), sized("0.5"), sized("60 mb"), sized("500")), (Some(10), Some(1), Some(100), Some(100)));
    assert_eq!((sized(""), sized("large"), sized("-1")), (None, None, None));
    // Without matrix_labels, no cells are kept.
    assert!(evidence(&source(), &answers, at(0), at(90), at(95), [true, false]).cells.is_empty());
}

#[test]
fn matrix_labels_must_be_label_names_of_their_own() {
    let mut s = source();
    s.matrix_labels = Some(MatrixLabels { file_type: "arm".into(), size_mb: "9size".into(), provider: "arm".into() });
    let fields: Vec<_> = s.problems().into_iter().map(|(f, m)| format!("{f}: {m}")).collect();
    assert_eq!(
        fields,
        [
            "matrix_labels.file_type: `arm` already names another of the section's labels",
            "matrix_labels.size_mb: `9size` is not a Prometheus label name",
            "matrix_labels.provider: `arm` already names another of the section's labels",
        ]
    );
    // `matrix_labels = {}` reads the default names.
    let read: PrometheusSource =
        toml::from_str("prometheus = \"http://p:9090\"\nuploads = 'u'\nmatrix_labels = { provider = \"llm\" }\n").unwrap();
    let labels = read.matrix_labels.unwrap();
    assert_eq!((labels.file_type.as_str(), labels.size_mb.as_str(), labels.provider.as_str()), ("file_type", "size_mb", "llm"));
}
