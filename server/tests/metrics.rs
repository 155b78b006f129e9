//! The metrics pipeline through the real server and Postgres: per-line errors, duplicates,
//! rollups that equal a recomputation from the raw events, percentiles, baselines, import.

mod support;

use app::domain::event::Variant;
use app::domain::sketch::RELATIVE_ACCURACY;
use app::domain::stats::Stats;
use app::domain::units::Timestamp;
use serde_json::{Value, json};
use server::store::{CellKey, NewEvent, RollupFilter, RollupKey, Store};
use sqlx::PgPool;
use std::collections::HashMap;
use support::{START, TestApp};

const DAY: i64 = 86_400_000;
/// The UTC midnight that starts the tests' day (ids are unique per rollout and UTC day).
const MIDNIGHT: i64 = START - START.rem_euclid(DAY);

/// A deterministic pseudo-random stream (64-bit LCG), so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.next() as usize % options.len()]
    }
}

fn event(id: &str, minutes_ago: i64, variant: &str, outcome: &str, latency: f64) -> Value {
    json!({ "timestamp": START - minutes_ago * 60_000, "event_id": id, "variant": variant, "outcome": outcome,
            "latency_ms": latency, "memory_mb": 40.0, "provider": "kimi", "file_type": "csv", "size_bytes": 2_000_000 })
}

/// The detailed rollup row a stored raw event belongs to, computed independently of the store.
fn rollup_key(e: &NewEvent, sizes: &[u32]) -> RollupKey {
    RollupKey {
        minute: Timestamp(e.event.at.millis().div_euclid(60_000) * 60_000),
        stage: e.stage,
        variant: e.event.variant,
        provider: e.event.provider.clone(),
        file_type: e.event.file_type.clone(),
        size_class_mb: app::domain::stats::size_class_mb(e.event.size_bytes, sizes) as i32,
    }
}

async fn post_ndjson(app: &TestApp, lines: &[String]) -> (u16, Value) {
    let response = app.client.post(app.url("/api/v1/events")).body(lines.join("\n")).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_lines_are_reported_by_number_and_field_while_good_ones_are_kept(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let lines = vec![
        event("a", 5, "sync", "success", 120.0).to_string(),
        event("b", 5, "async", "success", 80.0).to_string().replace("80.0", "\"fast\""),
        event("c", 4, "async", "error", 95.0).to_string(),
        "{\"timestamp\": oops".to_string(),
        String::new(),
        event("d", 3, "treatment", "timeout", 30_000.0).to_string(),
        event("e", 3, "beta", "success", 1.0).to_string(),
    ];
    let (status, report) = post_ndjson(&app, &lines).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!((report["accepted"].as_u64(), report["duplicates"].as_u64(), report["rejected"].as_u64()), (Some(3), Some(0), Some(3)));
    let errors: Vec<(u64, &str)> =
        report["errors"].as_array().unwrap().iter().map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap())).collect();
    assert_eq!(errors, vec![(2, "latency_ms"), (4, "line"), (7, "variant")]);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 3);

    // Nothing usable at all is a 422, with the same report.
    let (status, report) = post_ndjson(&app, &["not json".to_string()]).await;
    assert_eq!((status, report["rejected"].as_u64()), (422, Some(1)));

    // Events older than retention, or from the future, are refused by field.
    let (_, report) = post_ndjson(
        &app,
        &[event("old", 200 * 24 * 60, "sync", "success", 1.0).to_string(), event("future", -180, "sync", "success", 1.0).to_string()],
    )
    .await;
    let messages: Vec<&str> = report["errors"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert!(messages[0].contains("retention") && messages[1].contains("future"), "{report}");
}

/// Security review, issue 19 (2): a 7.75 kB `provider` of random text was accepted, and its
/// rollup key (past the B-tree's 2,704-byte limit) made every later fold fail, for every
/// rollout. Now the line is refused by field, its neighbours are kept, and folding goes on.
#[sqlx::test(migrations = "../migrations")]
async fn an_oversized_label_is_refused_by_field_and_folding_goes_on(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let mut random = Lcg(19);
    let noise: String = (0..7_750).map(|_| char::from(b'!' + (random.next() % 90) as u8)).collect();
    let mut poisoned = event("poison", 2, "async", "success", 80.0);
    poisoned["provider"] = json!(noise);
    let lines = vec![
        event("before", 2, "async", "success", 80.0).to_string(),
        poisoned.to_string(),
        event("after", 2, "sync", "success", 90.0).to_string(),
    ];
    let (status, report) = post_ndjson(&app, &lines).await;
    assert_eq!((status, report["accepted"].as_u64(), report["rejected"].as_u64()), (200, Some(2), Some(1)), "{report}");
    assert_eq!((report["errors"][0]["line"].as_u64(), report["errors"][0]["field"].as_str()), (Some(2), Some("provider")));
    assert!(report["errors"][0]["message"].as_str().unwrap().contains("longer than 64 characters"), "{report}");
    let store = Store::new(pool.clone());
    store.fold_rollups().await.expect("the fold goes on");
    assert_eq!(pending_deltas(&pool).await, 0);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 2);
}

/// Security review, issue 19 (7): `metrics?from=0` was accepted and loaded every rollup of the
/// rollout. A window is at most 31 days; beyond, a 4xx naming the field.
#[sqlx::test(migrations = "../migrations")]
async fn a_metrics_window_is_bounded(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let get = |query: String| {
        let url = app.url(&format!("/api/v1/rollouts/1/metrics?{query}"));
        let client = app.client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = get(format!("from=0&to={START}")).await;
    assert!((400..500).contains(&status) && body["field"] == "from", "{status} {body}");
    let (status, body) = get(format!("from={}&to={START}", START - 32 * DAY)).await;
    assert!((400..500).contains(&status) && body["field"] == "from", "{status} {body}");
    assert!(body["message"].as_str().unwrap().contains("31 days"), "{body}");
    let (status, body) = get(format!("from={}&to={START}", START - 31 * DAY)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["series"].as_array().unwrap().len() <= 240);
}

/// Security review, issue 19 (13): values at the limits of their types — a timestamp at the
/// end of time, a latency and a memory figure near f64's largest, a size of u64::MAX, a metrics
/// window at the end of i64 — are refused by field or stored and summed without overflow; no
/// answer is a 500 and no connection is dropped.
#[sqlx::test(migrations = "../migrations")]
async fn values_at_the_limits_of_their_types_never_break_ingest_or_reads(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.go_to_stage(1).await;
    let at = |ms: i64| {
        json!({ "timestamp": ms, "event_id": format!("t-{ms}"), "variant": "async", "outcome": "success",
                                "latency_ms": 10.0, "memory_mb": 40.0, "provider": "kimi", "file_type": "csv", "size_bytes": 1 })
    };
    let (status, body) = post_ndjson(&app, &[at(i64::MAX).to_string(), at(253_402_300_800_000).to_string()]).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!((body["accepted"].as_u64(), body["rejected"].as_u64()), (Some(0), Some(2)), "{body}");
    assert_eq!(body["errors"][0]["field"], "timestamp", "{body}");
    let huge = |id: &str| {
        json!({ "timestamp": START, "event_id": id, "variant": "async", "outcome": "success",
                                  "latency_ms": 1e308, "memory_mb": 1e308, "provider": "kimi", "file_type": "csv", "size_bytes": u64::MAX })
    };
    // 1e308 ms is no upload's latency, and one such figure would make the stage's mean memory
    // infinite for good: refused by field, with the largest value each field takes.
    let (status, body) = post_ndjson(&app, &[huge("h-1").to_string(), huge("h-2").to_string()]).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "latency_ms", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("at most 86400000"), "{body}");
    let mut largest = huge("h-3");
    largest["latency_ms"] = json!(86_400_000.0);
    largest["memory_mb"] = json!(1_048_576.0);
    largest["size_bytes"] = json!(1u64 << 50);
    let (status, body) = post_ndjson(&app, &[largest.to_string()]).await;
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)), "{body}");
    for path in ["/api/v1/rollouts/1".to_string(), format!("/api/v1/rollouts/1/metrics?from={}&to={}", START - DAY, START + 60_000)] {
        let response = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}: {}", response.text().await.unwrap());
    }
    let response =
        app.client.get(app.url(&format!("/api/v1/rollouts/1/metrics?from={}&to={}", i64::MAX - 1_000, i64::MAX))).send().await.unwrap();
    assert!(!response.status().is_server_error(), "{}", response.status());
    assert!(app.guard.tick_now(app.now()).await.is_ok());
}

/// Security review, issue 19 (2), the fold's half: a delta whose key cannot be stored (past the
/// B-tree's limit) made the fold fail on every pass, for every rollout, forever. The fold now
/// sets it aside in `event_rollup_quarantine` with the reason and folds everything else.
#[sqlx::test(migrations = "../migrations")]
async fn a_delta_the_fold_cannot_store_is_quarantined_and_the_rest_folded(pool: PgPool) {
    let store = Store::new(pool.clone());
    let mut random = Lcg(23);
    let noise: String = (0..7_750).map(|_| char::from(b'!' + (random.next() % 90) as u8)).collect();
    let event_of = |id: &str, provider: &str| {
        let mut event = app::domain::event::parse_value(&event(id, 1, "sync", "success", 100.0)).unwrap();
        event.provider = provider.to_string();
        NewEvent { event, stage: 0, size_class_mb: 10 }
    };
    // Past the parser's bound (it refuses such a line): as an older server, or a bug, would store it.
    store.ingest(1, vec![event_of("poison", &noise), event_of("fine", "kimi")]).await.unwrap();
    assert_eq!(pending_deltas(&pool).await, 2);
    assert_eq!(store.fold_rollups().await.expect("the fold goes on"), 2);
    assert_eq!(pending_deltas(&pool).await, 0);
    let (count, reason): (i64, String) =
        sqlx::query_as("SELECT count(*), min(reason) FROM event_rollup_quarantine").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 1);
    assert!(reason.contains("index row size"), "{reason}");
    let folded: Vec<String> = sqlx::query_scalar("SELECT provider FROM event_rollups").fetch_all(&pool).await.unwrap();
    assert_eq!(folded, vec!["kimi".to_string()]);
    let by_arm: i64 = sqlx::query_scalar("SELECT sum(success)::bigint FROM event_rollups_by_arm").fetch_one(&pool).await.unwrap();
    assert_eq!(by_arm, 1, "only the folded delta is in the stored arm totals");
    // The windows, gates and guard still count the quarantined upload: only its key was refused.
    let rows = server::metrics::Metrics::new(store.clone(), std::sync::Arc::new(|| Timestamp(START)), app::domain::units::Span::ZERO)
        .stage_minutes(1, 0, Timestamp(START - 60 * 60_000), Timestamp(START + 60_000))
        .await
        .unwrap();
    assert_eq!(rows.control().count(), 2, "both uploads are in the arm's window");
    // The next fold has nothing left to trip on.
    store.ingest(1, vec![event_of("later", "glm")]).await.unwrap();
    assert_eq!(store.fold_rollups().await.unwrap(), 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_replayed_event_is_never_counted_twice(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let batch: Vec<String> = (0..3).map(|i| event(&format!("r{i}"), 2, "sync", "success", 100.0).to_string()).collect();
    assert_eq!(post_ndjson(&app, &batch).await.1["accepted"], 3);
    let (_, again) = post_ndjson(&app, &batch).await;
    assert_eq!((again["accepted"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(3)));

    // A JSON array, gzip-compressed, mixing an old id, a new one and a repeat within the batch.
    let array = json!([
        event("r0", 2, "sync", "success", 100.0),
        event("r9", 2, "sync", "success", 100.0),
        event("r9", 2, "sync", "success", 100.0)
    ]);
    let gz = gzip(array.to_string().as_bytes());
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!((report["accepted"].as_u64(), report["duplicates"].as_u64()), (Some(1), Some(2)));
    // All new but for a repeat within the batch.
    let batch = [event("n0", 2, "sync", "success", 100.0).to_string(), event("n0", 2, "sync", "success", 100.0).to_string()];
    let (_, report) = post_ndjson(&app, &batch).await;
    assert_eq!((report["accepted"].as_u64(), report["duplicates"].as_u64()), (Some(1), Some(1)));

    let window = app.get_json(&format!("/api/v1/rollouts/1/metrics?from={}&to={}", START - 3_600_000, START)).await;
    assert_eq!(window["control"]["count"], 5, "rollups count each event once");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 5);
}

/// A batch goes to Postgres in pieces while it is still being parsed. A replayed event, or one
/// of another day, far past the first pieces fails that COPY: the whole batch then goes in row
/// by row, and nothing of it is lost or counted twice.
#[sqlx::test(migrations = "../migrations")]
async fn a_replay_or_another_day_far_into_a_batch_loses_none_of_it(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let first: Vec<String> = (0..300).map(|i| event(&format!("a{i}"), 30, "sync", "success", 100.0).to_string()).collect();
    assert_eq!(post_ndjson(&app, &first).await.1["accepted"], 300);

    // 600 new events, and three of the first batch again, well past its first 128 lines.
    let mut replaying: Vec<String> = (0..600).map(|i| event(&format!("b{i}"), 20, "async", "success", 80.0).to_string()).collect();
    for (at, replayed) in [(400, 7), (450, 150), (602, 299)] {
        replaying.insert(at, first[replayed].clone());
    }
    let (status, report) = post_ndjson(&app, &replaying).await;
    assert_eq!((status, report["accepted"].as_u64(), report["duplicates"].as_u64()), (200, Some(600), Some(3)), "{report}");

    // 400 events of today, then 200 of yesterday evening.
    let mut two_days: Vec<String> = (0..400).map(|i| event(&format!("c{i}"), 10, "sync", "error", 300.0).to_string()).collect();
    two_days.extend((0..200).map(|i| {
        let mut value = event(&format!("d{i}"), 0, "async", "timeout", 900.0);
        value["timestamp"] = json!(MIDNIGHT - 3_600_000 + i * 1_000);
        value.to_string()
    }));
    let (status, report) = post_ndjson(&app, &two_days).await;
    assert_eq!((status, report["accepted"].as_u64(), report["duplicates"].as_u64()), (200, Some(600), Some(0)), "{report}");

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 1_500);
    let stray: i64 = sqlx::query_scalar("SELECT count(*) FROM events_default").fetch_one(&pool).await.unwrap();
    assert_eq!(stray, 0, "every event in its day's partition");
    let (from, to) = (Timestamp(MIDNIGHT - DAY), Timestamp(START + 60_000));
    assert_rollups_recompute(&Store::new(pool), from, to).await;
}

/// With two rollouts live, each line names its flag; one batch may mix them (the rollout of the
/// first lines streams, the other follows in a transaction of its own), and a line naming none
/// is refused by number.
#[sqlx::test(migrations = "../migrations")]
async fn a_batch_for_two_rollouts_stores_each_event_in_its_own(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let store = Store::new(pool.clone());
    let (plan, source) = server::startup::load_plan(None).unwrap();
    let mut other = plan.clone();
    other.key = "image-resize".into();
    other.flag.key = "image_resize".into();
    let plan_id = store.save_plan(&other, &source).await.unwrap();
    let second = store.create_rollout(plan_id, &other, "test").await.unwrap();

    let lines: Vec<String> = (0..400)
        .map(|i| {
            let mut value = event(&format!("m{i}"), 5, "sync", "success", 100.0);
            match i % 4 {
                0 | 1 => value["flag"] = json!("async_upload"),
                2 => value["flag"] = json!("image_resize"),
                _ if i == 303 => {} // no flag, while two rollouts are live
                _ => value["flag"] = json!(if i < 200 { "image_resize" } else { "async_upload" }),
            }
            value.to_string()
        })
        .collect();
    let (status, report) = post_ndjson(&app, &lines).await;
    assert_eq!((status, report["accepted"].as_u64(), report["rejected"].as_u64()), (200, Some(399), Some(1)), "{report}");
    assert_eq!(report["errors"][0]["line"], 304, "{report}");
    assert_eq!(report["errors"][0]["field"], "flag", "{report}");

    let (from, to) = (Timestamp(START - 3_600_000), Timestamp(START + 60_000));
    let count = |rollout: i64| {
        let pool = pool.clone();
        async move {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM events WHERE rollout_id = $1").bind(rollout).fetch_one(&pool).await.unwrap();
            n
        }
    };
    // async_upload: i = 0, 1 (mod 4), and 3 (mod 4) from 200 on but for 303; image_resize: the rest.
    assert_eq!((count(1).await, count(second).await), (249, 150));
    for rollout in [1, second] {
        assert_rollout_recomputes(&store, rollout, from, to).await;
    }
}

/// Batches that open a new day race to create its partition; the unique index that finds
/// duplicates is created in the same transaction as the partition, so however the race goes
/// each event is stored once.
#[sqlx::test(migrations = "../migrations")]
async fn concurrent_batches_opening_a_new_day_store_each_event_once(pool: PgPool) {
    let store = Store::new(pool.clone());
    let day = MIDNIGHT + DAY;
    let batch: Vec<NewEvent> = (0..300)
        .map(|i| {
            let mut value = event(&format!("c{i}"), 0, "sync", "success", 100.0);
            value["timestamp"] = json!(day + i * 1_000);
            NewEvent { event: app::domain::event::parse_value(&value).unwrap(), stage: 0, size_class_mb: 10 }
        })
        .collect();
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let (store, batch) = (store.clone(), batch.clone());
            tokio::spawn(async move { store.ingest(1, batch).await.unwrap() })
        })
        .collect();
    let (mut accepted, mut duplicates) = (0, 0);
    for racer in racers {
        let counts = racer.await.unwrap();
        accepted += counts.accepted;
        duplicates += counts.duplicates;
    }
    assert_eq!((accepted, duplicates), (300, 900));
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 300);
    let stray: i64 = sqlx::query_scalar("SELECT count(*) FROM events_default").fetch_one(&pool).await.unwrap();
    assert_eq!(stray, 0, "every event in its day's partition, where duplicates are found");
    let (from, to) = (Timestamp(day), Timestamp(day + DAY));
    let counted: u64 = store.window_rows(1, from, to, &RollupFilter::default()).await.unwrap().iter().map(|(_, s)| s.count()).sum();
    assert_eq!(counted, 300, "rollups count each event once");
}

/// The detailed rollups of `[from, to)` equal a recomputation from the raw events stored there
/// (rollout 1's).
async fn assert_rollups_recompute(store: &Store, from: Timestamp, to: Timestamp) {
    assert_rollout_recomputes(store, 1, from, to).await;
}

/// The detailed rollups of rollout `rollout_id` over `[from, to)` equal a recomputation from
/// its raw events stored there.
async fn assert_rollout_recomputes(store: &Store, rollout_id: i64, from: Timestamp, to: Timestamp) {
    let sizes = [1, 10, 50, 100];
    let mut recomputed: HashMap<RollupKey, Stats> = HashMap::new();
    for e in &store.raw_events(rollout_id, from, to).await.unwrap() {
        recomputed.entry(rollup_key(e, &sizes)).or_default().add(&e.event);
    }
    let rollups: HashMap<RollupKey, Stats> =
        store.rollups(rollout_id, from, to, &RollupFilter::default()).await.unwrap().into_iter().collect();
    assert_eq!(rollups.len(), recomputed.len());
    for (key, stats) in &recomputed {
        if let Err(e) = same_stats(&rollups[key], stats) {
            panic!("{key:?}: {e}");
        }
    }
}

/// Concurrent batches write their raw rows side by side, and their rollups as deltas (batches of
/// 50) or straight into the rollup rows (batches of 100, about a key per event: sparse), while
/// two folds race to add the deltas to the rollup rows of the same minutes: every event is
/// counted once, whether its delta is still pending or folded.
#[sqlx::test(migrations = "../migrations")]
async fn concurrent_batches_and_folds_into_the_same_minutes_count_each_event_once(pool: PgPool) {
    let store = Store::new(pool.clone());
    let ingesting = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let folders: Vec<_> = (0..2)
        .map(|_| {
            let (store, ingesting) = (store.clone(), ingesting.clone());
            tokio::spawn(async move {
                let mut folded = 0;
                while ingesting.load(std::sync::atomic::Ordering::Relaxed) {
                    folded += store.fold_rollups().await.unwrap();
                    tokio::task::yield_now().await;
                }
                folded
            })
        })
        .collect();
    let mut rng = Lcg(0xc0c0);
    let racers: Vec<_> = (0..4)
        .map(|racer| {
            // Sparse racers spread their events over 30 minutes, the others over 3.
            let (minutes, chunk) = if racer % 2 == 0 { (30, 100) } else { (3, 50) };
            let batch: Vec<NewEvent> = (0..400)
                .map(|i| {
                    let mut value = event(
                        &format!("r{racer}-{i}"),
                        (rng.next() % minutes) as i64,
                        rng.pick(&["sync", "async"]),
                        rng.pick(&["success", "success", "error", "timeout"]),
                        1.0 + (rng.next() % 5_000) as f64 / 7.0,
                    );
                    value["provider"] = json!(rng.pick(&["kimi", "glm"]));
                    value["file_type"] = json!(rng.pick(&["text", "json", "csv"]));
                    let event = app::domain::event::parse_value(&value).unwrap();
                    let size_class_mb = app::domain::stats::size_class_mb(event.size_bytes, &[1, 10, 50, 100]) as i32;
                    NewEvent { event, stage: 0, size_class_mb }
                })
                .collect();
            let store = store.clone();
            tokio::spawn(async move {
                // Several batches each, so the racers interleave.
                for part in batch.chunks(chunk) {
                    store.ingest(1, part.to_vec()).await.unwrap();
                }
            })
        })
        .collect();
    for racer in racers {
        racer.await.unwrap();
    }
    ingesting.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut folded = 0;
    for folder in folders {
        folded += folder.await.unwrap();
    }
    assert!(folded > 0, "the folds ran while batches were stored");
    let (from, to) = (Timestamp(START - 40 * 60_000), Timestamp(START + 60_000));
    let counted =
        || async { store.window_rows(1, from, to, &RollupFilter::default()).await.unwrap().iter().map(|(_, s)| s.count()).sum::<u64>() };
    assert_eq!(counted().await, 1_600, "every event counted once in the by-arm rollups, some deltas pending");
    assert_rollups_recompute(&store, from, to).await;
    store.fold_rollups().await.unwrap();
    assert_eq!(pending_deltas(&pool).await, 0);
    assert_eq!(counted().await, 1_600, "every event counted once, all folded");
    assert_rollups_recompute(&store, from, to).await;
}

/// A batch writes its rollup additions as deltas, unless it is sparse (100 events or more, a
/// rollup key per two events or fewer: a backfill), which adds to the rollup rows at once.
#[sqlx::test(migrations = "../migrations")]
async fn batches_write_rollup_deltas_unless_sparse(pool: PgPool) {
    let store = Store::new(pool.clone());
    let batch = |prefix: &str, minutes: i64| -> Vec<NewEvent> {
        (0..100)
            .map(|i| {
                let value = event(&format!("{prefix}{i}"), i % minutes, "sync", "success", 100.0);
                NewEvent { event: app::domain::event::parse_value(&value).unwrap(), stage: 0, size_class_mb: 10 }
            })
            .collect()
    };
    let (from, to) = (Timestamp(START - 100 * 60_000), Timestamp(START + 60_000));
    store.ingest(1, batch("dense-", 5)).await.unwrap();
    assert_eq!(pending_deltas(&pool).await, 5, "one delta row per rollup key");
    store.ingest(1, batch("sparse-", 100)).await.unwrap();
    assert_eq!(pending_deltas(&pool).await, 5, "a sparse batch writes no deltas");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM event_rollups").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 100, "the sparse batch's rows, stored at once");
    assert_rollups_recompute(&store, from, to).await;
    assert_eq!(store.fold_rollups().await.unwrap(), 5);
    assert_eq!(pending_deltas(&pool).await, 0);
    assert_rollups_recompute(&store, from, to).await;
}

async fn pending_deltas(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM event_rollup_deltas").fetch_one(pool).await.unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    // A stored (uncompressed) deflate block inside a gzip member: valid gzip without a
    // compression library in the tests.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for (i, chunk) in bytes.chunks(65_535).enumerate() {
        let last = (i + 1) * 65_535 >= bytes.len();
        out.push(u8::from(last));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    let crc = bytes.iter().fold(!0u32, |mut crc, b| {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
        crc
    });
    out.extend_from_slice(&(!crc).to_le_bytes());
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out
}

#[sqlx::test(migrations = "../migrations")]
async fn rollups_equal_a_recomputation_from_the_raw_events(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let mut rng = Lcg(0x5eed);
    // Random batches whose ids overlap, so some lines are replays.
    for _ in 0..6 {
        let lines: Vec<String> = (0..250)
            .map(|_| {
                let id = format!("id-{}", rng.next() % 900);
                let mut e = event(
                    &id,
                    (rng.next() % 180) as i64,
                    rng.pick(&["sync", "async"]),
                    rng.pick(&["success", "success", "success", "error", "timeout"]),
                    1.0 + (rng.next() % 5_000) as f64 / 7.0,
                );
                e["provider"] = json!(rng.pick(&["kimi", "glm"]));
                e["file_type"] = json!(rng.pick(&["text", "json", "csv", "markdown", "python", "binary"]));
                e["size_bytes"] = json!(rng.next() % 120_000_000);
                e["memory_mb"] = json!((rng.next() % 900) as f64 / 3.0);
                e["critical"] = json!(rng.next().is_multiple_of(50));
                e.to_string()
            })
            .collect();
        let (status, report) = post_ndjson(&app, &lines).await;
        assert_eq!(status, 200, "{report}");
    }
    let store = Store::new(pool);
    let (from, to) = (Timestamp(START - 4 * 3_600_000), Timestamp(START + 60_000));
    let raw = store.raw_events(1, from, to).await.unwrap();
    assert!(raw.len() > 500, "only {} distinct events", raw.len());
    assert_rollups_recompute(&store, from, to).await;

    // The window's percentiles are within the sketch's 1% of the exact ones.
    let window = app.get_json(&format!("/api/v1/rollouts/1/metrics?from={}&to={}", from.millis(), to.millis())).await;
    for (arm, variant) in [("control", "control"), ("treatment", "treatment")] {
        let mut latencies: Vec<f64> = raw.iter().filter(|e| e.event.variant.as_str() == variant).map(|e| e.event.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        assert_eq!(window[arm]["count"].as_u64().unwrap() as usize, latencies.len());
        for (q, field) in [(0.5, "latency_p50_ms"), (0.95, "latency_p95_ms"), (0.99, "latency_p99_ms")] {
            let exact = latencies[(q * (latencies.len() - 1) as f64).floor() as usize];
            let got = window[arm][field].as_f64().unwrap();
            assert!((got - exact).abs() <= exact * RELATIVE_ACCURACY + 1e-9, "{arm} {field}: {got} vs exact {exact}");
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_captured_baseline_is_frozen_and_unblocks_stage_0(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let lines: Vec<String> = (0..40)
        .map(|i| event(&format!("b{i}"), 30 - i / 2, "sync", if i % 20 == 0 { "error" } else { "success" }, 100.0 + i as f64).to_string())
        .collect();
    assert_eq!(post_ndjson(&app, &lines).await.1["accepted"], 40);

    let (status, body) = app.post("/api/v1/rollouts/1/baseline", json!({ "from": START - 3_600_000, "to": START - 3_000_000 })).await;
    assert_eq!(status, 422, "an empty window cannot be a baseline: {body}");

    let (status, baseline) = app.post("/api/v1/rollouts/1/baseline", json!({ "from": "2026-11-22T11:00:00Z", "to": START })).await;
    assert_eq!(status, 200, "{baseline}");
    assert_eq!(baseline["summary"]["count"], 40);
    assert_eq!(baseline["summary"]["success_rate"], 95.0);

    // Later events do not move a frozen baseline.
    post_ndjson(&app, &[event("late", 1, "sync", "error", 9_000.0).to_string()]).await;
    assert_eq!(app.get_json("/api/v1/rollouts/1/baseline").await["summary"]["count"], 40);
    let window = app.get_json(&format!("/api/v1/rollouts/1/metrics?from={}&to={}", START - 3_600_000, START)).await;
    assert_eq!(window["baseline"]["summary"]["count"], 40, "every window shows the baseline");

    app.command(json!({ "command": "start" })).await;
    let kinds: Vec<String> =
        app.room().await["blockers"].as_array().unwrap().iter().map(|b| b["kind"].as_str().unwrap().to_string()).collect();
    assert!(!kinds.contains(&"baseline_missing".to_string()), "{kinds:?}");
    assert_eq!(app.room().await["audit"][1]["action"], "baseline");
}

/// Calls a server function as a browser's form does; returns the status and the JSON answer.
async fn server_fn(client: &reqwest::Client, app: &TestApp, path: &str, form: &str) -> (u16, Value) {
    let response =
        client.post(app.url(path)).header("content-type", "application/x-www-form-urlencoded").body(form.to_string()).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Posts the control room's baseline form as the browser does (same origin); returns the
/// status and where it sends the browser.
async fn baseline_form(client: &reqwest::Client, app: &TestApp, form: &str) -> (u16, String) {
    let response = client
        .post(app.url("/rollouts/1/baseline"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", app.base.clone())
        .body(form.to_string())
        .send()
        .await
        .unwrap();
    let location = response.headers().get("location").map_or(String::new(), |l| l.to_str().unwrap().to_string());
    (response.status().as_u16(), location)
}

/// An approver captures the baseline from the control room: first the numbers it would freeze
/// (the control uploads of the last whole hour: the minute under way is not over), then those
/// very numbers frozen — refused, and the window shown again, if uploads arrived in it since
/// they were shown. Captured again, the newer baseline is the one compared against.
#[sqlx::test(migrations = "../migrations")]
async fn an_approver_freezes_the_baseline_numbers_they_were_shown(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.advance_clock_minutes(30);
    let lines: Vec<String> = (0..40)
        .map(|i| event(&format!("b{i}"), 20 - i / 2, "sync", if i % 20 == 0 { "error" } else { "success" }, 100.0 + i as f64).to_string())
        .collect();
    assert_eq!(post_ndjson(&app, &lines).await.1["accepted"], 40);
    // One upload of the last two minutes (the clock stands at 12:30:00.000), whose batches may
    // still be arriving: not counted.
    let running = json!({ "timestamp": START + 29 * 60_000, "event_id": "now", "variant": "sync", "outcome": "success",
                          "latency_ms": 1.0, "memory_mb": 40.0, "provider": "kimi", "file_type": "csv", "size_bytes": 1 });
    assert_eq!(post_ndjson(&app, &[running.to_string()]).await.1["accepted"], 1);
    let look = |client: reqwest::Client, hours: &'static str| {
        let app = &app;
        async move { server_fn(&client, app, "/api/get_control_room", &format!("rollout_id=1&baseline_hours={hours}")).await }
    };

    // An operator may read the room but not capture: no numbers offered, the form refused.
    let operator = app.person("olga", "operator").await;
    let (status, room) = look(operator.clone(), "1").await;
    assert_eq!((status, &room["baseline_look"]), (200, &Value::Null), "{room}");
    assert_eq!(baseline_form(&operator, &app, "hours=1&to=0&count=1").await.0, 403);

    let approver = app.person("ana", "approver").await;
    let (status, room) = look(approver.clone(), "1").await;
    assert_eq!(status, 200, "{room}");
    let preview = &room["baseline_look"]["preview"];
    let (from, to) = (START + 28 * 60_000 - 3_600_000, START + 28 * 60_000);
    assert_eq!((preview["from"].as_i64(), preview["to"].as_i64()), (Some(from), Some(to)), "{preview}");
    assert_eq!((preview["control"]["count"].as_u64(), preview["control"]["success_rate"].as_f64()), (Some(40), Some(95.0)), "{preview}");
    assert_eq!(room["baseline"], Value::Null, "a look freezes nothing");
    let (_, bad) = look(approver.clone(), "400").await;
    assert_eq!(bad["baseline_look"]["refusal"], "hours: must be between 1 and 336 (two weeks)", "{bad}");

    // A late upload lands in the window before the approver freezes it: nothing frozen, and the
    // browser is sent back to the window's numbers as they are now, told why.
    assert_eq!(post_ndjson(&app, &[event("late", 5, "sync", "error", 9_000.0).to_string()]).await.1["accepted"], 1);
    let (status, location) = baseline_form(&approver, &app, &format!("hours=1&to={to}&count=40")).await;
    assert_eq!((status, location.as_str()), (303, "/rollouts/1?baseline_hours=1&baseline_moved=1#baseline"));
    assert_eq!(app.room().await["baseline"], Value::Null);
    // A window the page cannot have shown: ending in the future, or not on a minute.
    for bad in [format!("hours=1&to={}&count=41", to + 3_600_000), format!("hours=1&to={}&count=41", to + 1)] {
        assert_eq!(baseline_form(&approver, &app, &bad).await.0, 422, "{bad}");
    }
    // A form from another site is refused whoever sends it.
    let forged = approver
        .post(app.url("/rollouts/1/baseline"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .body(format!("hours=1&to={to}&count=41"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);

    // Shown again, frozen as shown; the control room says who froze it and from which window.
    let (_, room) = look(approver.clone(), "1").await;
    let preview = room["baseline_look"]["preview"].clone();
    assert_eq!(preview["control"]["count"], 41);
    let (status, location) = baseline_form(&approver, &app, &format!("hours=1&to={to}&count=41")).await;
    assert_eq!((status, location.as_str()), (303, "/rollouts/1#baseline"));
    let room = app.room().await;
    assert_eq!(room["baseline"], preview["control"]);
    assert_eq!(
        (room["baseline_window"]["captured_by"].as_str(), room["baseline_window"]["from"].as_i64(), room["baseline_window"]["to"].as_i64()),
        (Some("ana"), Some(from), Some(to)),
        "{}",
        room["baseline_window"]
    );

    // The REST API takes the same check (409, with the count now), and a second capture
    // replaces the first.
    let (status, body) = app.post("/api/v1/rollouts/1/baseline", json!({ "from": from, "to": to + 120_000, "expected_count": 41 })).await;
    assert_eq!((status, body["current_version"].as_u64()), (409, Some(42)), "the upload of the last two minutes makes 42: {body}");
    let (status, body) = app.post("/api/v1/rollouts/1/baseline", json!({ "from": from, "to": to + 120_000, "expected_count": 42 })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.room().await["baseline"]["count"], 42);
    assert_eq!(app.room().await["baseline_window"]["captured_by"], support::TEST_ACTOR);

    // The charts' "whole rollout" range: a draft's last day; once started, from its start.
    let now = START + 30 * 60_000;
    let (status, series) = server_fn(&approver, &app, "/api/get_chart_series", "rollout_id=1&hours=0").await;
    assert_eq!((status, series["from"].as_i64()), (200, Some(now - 24 * 3_600_000)), "{series}");
    app.command(json!({ "command": "start" })).await;
    app.advance_clock_hours(30);
    let approver = app.person("ana", "approver").await; // signed in again: a session lasts less than a day
    let (_, series) = server_fn(&approver, &app, "/api/get_chart_series", "rollout_id=1&hours=0").await;
    assert_eq!(series["from"].as_i64(), Some(now), "{series}");
    assert_eq!(series["marks"][0][1], "Stage 0: Phase 1 deployed, flags off", "{series}");
    let (_, day) = server_fn(&approver, &app, "/api/get_chart_series", "rollout_id=1&hours=24").await;
    assert_eq!(day["from"].as_i64(), Some(now + 6 * 3_600_000), "{day}");
}

/// `rampart import FILE` as a person runs it, against the test's database, on a file in a
/// folder of its own (removed when dropped).
struct Import {
    url: String,
    dir: std::path::PathBuf,
}

/// What an import printed, and how it exited.
struct Imported {
    stdout: String,
    stderr: String,
    status: std::process::ExitStatus,
}

impl Import {
    fn new(pool: &PgPool, name: &str) -> Import {
        let options = pool.connect_options();
        let (user, host, port) = (options.get_username(), options.get_host(), options.get_port());
        let url = format!("postgres://{user}@{host}:{port}/{}", options.get_database().unwrap());
        let dir = std::env::temp_dir().join(format!("rampart-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Import { url, dir }
    }

    /// Writes `content` to the file and imports it.
    fn run(&self, content: &[u8]) -> Imported {
        let file = self.dir.join("metrics.jsonl");
        std::fs::write(&file, content).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["import", file.to_str().unwrap()])
            .env("DATABASE_URL", &self.url)
            .output()
            .unwrap();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        Imported { stdout: text(&out.stdout), stderr: text(&out.stderr), status: out.status }
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn importing_a_file_twice_adds_nothing_the_second_time(pool: PgPool) {
    let _app = TestApp::spawn(pool.clone()).await;
    let import = Import::new(&pool, "import");
    let now = chrono::Utc::now().timestamp_millis();
    let mut content = Vec::new();
    for i in 0..7 {
        let mut e = event(&format!("f{i}"), 0, "async", "success", 50.0);
        e["timestamp"] = json!(now - 60_000);
        content.extend_from_slice(e.to_string().as_bytes());
        content.push(b'\n');
    }
    content.extend_from_slice(b"{\"event_id\": \"broken\"}\n");
    content.extend_from_slice(&[0xff, 0xfe, b'\n']);

    let first = import.run(&content);
    let (stdout, stderr) = (&first.stdout, &first.stderr);
    assert!(stdout.contains("9 lines, 7 new events stored, 0 already imported, 2 rejected"), "{stdout}");
    assert!(stderr.contains("line 8: timestamp: is required") && stderr.contains("line 9: line: is not UTF-8"), "{stderr}");
    assert_eq!(first.status.code(), Some(1), "rejected lines make the import fail (the good ones are stored): {stderr}");
    assert!(stderr.contains("2 line(s) rejected"), "{stderr}");
    let second = import.run(&content);
    assert!(second.stdout.contains("0 new events stored, 7 already imported"), "{}", second.stdout);
    // A clean file exits 0.
    let clean: Vec<u8> = content.split(|b| *b == b'\n').take(7).flat_map(|l| l.iter().copied().chain([b'\n'])).collect();
    let third = import.run(&clean);
    assert!(third.status.success(), "{}", third.stderr);
    assert!(third.stdout.contains("7 lines, 0 new events stored, 7 already imported, 0 rejected"), "{}", third.stdout);
}

/// A file of many batches, two of them stored at once: lines 5,001–5,300 (the second batch,
/// stored beside the first) repeat the first batch's ids, and bad lines sit in the first,
/// second (among the repeats) and fourth batches. Every good line is stored once, the bad ones
/// are reported by number in file order, and the rollups equal a recomputation from the raw
/// events, for the dense batches (lines 10,001–20,000, the last half hour: rollup deltas,
/// folded as the import goes) and the sparse ones (two days: added to the rollup rows at once)
/// alike.
#[sqlx::test(migrations = "../migrations")]
async fn an_import_of_many_batches_stored_two_at_a_time_keeps_every_line_once(pool: PgPool) {
    let _app = TestApp::spawn(pool.clone()).await;
    let import = Import::new(&pool, "import-many");
    let now = chrono::Utc::now().timestamp_millis();
    let mut random = Lcg(7);
    let (lines, bad, repeated) = (23_000usize, [4_999usize, 5_002, 17_777], 5_001..=5_300usize);
    let mut content = String::new();
    for line in 1..=lines {
        // The repeats name the first batch's ids (lines 1–300) with their times.
        let n = if repeated.contains(&line) { line - 5_000 } else { line };
        let minutes_ago = if (10_001..=20_000).contains(&n) { n as i64 % 30 } else { (n as i64 * 7_919) % (47 * 60) };
        let mut e = event(
            &format!("m{n}"),
            0,
            random.pick(&["sync", "async"]),
            random.pick(&["success", "success", "error", "timeout"]),
            20.0 + (random.next() % 900) as f64,
        );
        e["timestamp"] = json!(now - 60_000 - minutes_ago * 60_000 - (n as i64 % 60) * 1_000);
        e["provider"] = json!(random.pick(&["kimi", "glm"]));
        e["file_type"] = json!(random.pick(&["text", "json", "csv", "markdown", "python", "binary"]));
        if bad.contains(&line) {
            e["latency_ms"] = json!("fast");
        }
        content.push_str(&format!("{e}\n"));
    }

    let Imported { stdout, stderr, .. } = import.run(content.as_bytes());
    // Line 5,002 is a bad one among the repeats.
    let repeats = repeated.filter(|line| !bad.contains(line)).count();
    let stored = lines - bad.len() - repeats;
    assert!(
        stdout.contains(&format!("{lines} lines, {stored} new events stored, {repeats} already imported, 3 rejected")),
        "{stdout}\n{stderr}"
    );
    let reported: Vec<&str> = stderr.lines().filter(|l| l.starts_with("line ")).collect();
    let expected: Vec<String> = bad.iter().map(|line| format!("line {line}: latency_ms: expected a number, got \"fast\"")).collect();
    assert_eq!(reported, expected, "{stderr}");

    let store = Store::new(pool.clone());
    let (from, to) = (Timestamp(now - 49 * 3_600_000), Timestamp(now + 60_000));
    assert_eq!(store.raw_events(1, from, to).await.unwrap().len(), stored);
    assert_rollout_recomputes(&store, 1, from, to).await;
}

/// Rollups equal a recomputation from the raw events, whatever the batches: proptest draws
/// batches (ids that overlap within and across batches, any minute in the three hours around a
/// midnight, every arm, outcome, provider, file type and size), ingests them through the store,
/// and compares the rollup tables with the raw rows: the detailed and by-arm rows, and the
/// totals by cell of windows drawn at any minute (their whole hours read from the hourly rows).
/// The first batches may be stored as before migration 0022 (no hourly rows; the hourly rows
/// complete from the hour after their newest minute, as the migration sets it). An id is unique
/// within the UTC day of its event (the day's partition holds the index that finds it), so the
/// same id on both sides of midnight is two events. Each case starts from empty tables;
/// failures shrink.
#[test]
fn rollups_equal_a_recomputation_for_any_batches() {
    use proptest::prelude::*;
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask test`");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let pool = rt.block_on(support::fresh_database(&url, "rampart_test_rollup_property"));
    let store = Store::new(pool.clone());
    // Rollout 1, whose row says from when its hourly rows are complete.
    rt.block_on(async {
        sqlx::raw_sql(
            "INSERT INTO plans (key, name, source, definition) VALUES ('p', 'p', '', '{}');
             INSERT INTO rollouts (plan_id, flag_key, stage, status) VALUES (1, 'f', 0, 'running');",
        )
        .execute(&pool)
        .await
        .unwrap();
    });

    let event =
        (0u32..400, 0i64..180, any::<bool>(), 0usize..5, 1u32..50_000, 0usize..2, 0usize..6, 0u64..150_000_000, 0u32..2_000, 0u32..60)
            .prop_map(|(id, minute, treatment, outcome, latency, provider, file_type, size, memory, critical)| {
                let outcome = ["success", "success", "success", "error", "timeout"][outcome];
                let provider = ["kimi", "glm"][provider];
                let file_type = ["text", "json", "csv", "markdown", "python", "binary"][file_type];
                json!({
                    "timestamp": MIDNIGHT + 90 * 60_000 - minute * 60_000 - i64::from(id % 60) * 1_000, "event_id": format!("id-{id}"),
                    "variant": if treatment { "async" } else { "sync" }, "outcome": outcome, "latency_ms": f64::from(latency) / 10.0,
                    "memory_mb": f64::from(memory) / 4.0, "provider": provider,
                    "file_type": file_type, "size_bytes": size,
                    "critical": outcome == "error" && critical == 0,
                })
            });
    // Each batch with whether the deltas are folded after it.
    // Batches of 100 or more are mostly sparse (added to the rollups directly), smaller ones
    // write deltas.
    let batches = prop::collection::vec((prop::collection::vec(event, 1..160), any::<bool>()), 1..5);
    // How many of the first batches are stored as before migration 0022, and the windows whose
    // totals are compared (minutes from four hours before midnight: start, length).
    let before_hourly = 0usize..3;
    let windows = prop::collection::vec((0i64..480, 0i64..480), 3);
    let config = ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(batches in batches, before_hourly in before_hourly, windows in windows)| {
        rt.block_on(async {
            sqlx::query("TRUNCATE events, event_rollups, event_rollups_hourly, event_rollups_by_arm, event_rollup_deltas")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("UPDATE rollouts SET hourly_rollups_from = '-infinity'").execute(&pool).await.unwrap();
            let sizes = [1, 10, 50, 100];
            let mut distinct = std::collections::HashSet::new();
            for (i, (batch, fold)) in batches.iter().enumerate() {
                if i > 0 && i == before_hourly {
                    // What came before was stored by a release without hourly rows: every delta
                    // of it folded (as the last replica of that release stopped), no hourly row,
                    // and the hourly rows complete from the hour after its newest minute.
                    store.fold_rollups().await.unwrap();
                    sqlx::raw_sql(
                        "DELETE FROM event_rollups_hourly;
                         UPDATE rollouts SET hourly_rollups_from =
                             COALESCE(date_trunc('hour', (SELECT max(minute) FROM event_rollups)) + interval '1 hour', '-infinity');",
                    )
                    .execute(&pool)
                    .await
                    .unwrap();
                }
                let parsed: Vec<NewEvent> = batch
                    .iter()
                    .map(|v| {
                        let event = app::domain::event::parse_value(v).unwrap();
                        let size_class_mb = app::domain::stats::size_class_mb(event.size_bytes, &sizes) as i32;
                        NewEvent { event, stage: 0, size_class_mb }
                    })
                    .collect();
                let ingested = store.ingest(1, parsed).await.unwrap();
                let new: usize = batch
                    .iter()
                    .filter(|v| {
                        let day = v["timestamp"].as_i64().unwrap().div_euclid(DAY);
                        distinct.insert((v["event_id"].as_str().unwrap().to_string(), day))
                    })
                    .count();
                prop_assert_eq!(ingested.accepted as usize, new);
                if *fold {
                    store.fold_rollups().await.unwrap();
                }
            }
            let (from, to) = (Timestamp(MIDNIGHT - 4 * 3_600_000), Timestamp(MIDNIGHT + 4 * 3_600_000));
            let raw = store.raw_events(1, from, to).await.unwrap();
            prop_assert_eq!(raw.len(), distinct.len());
            let mut detailed: HashMap<RollupKey, Stats> = HashMap::new();
            let mut by_arm: HashMap<(i64, Variant), Stats> = HashMap::new();
            for e in &raw {
                let key = rollup_key(e, &sizes);
                by_arm.entry((key.minute.millis(), e.event.variant)).or_default().add(&e.event);
                detailed.entry(key).or_default().add(&e.event);
            }
            // As read with the last deltas pending, and again with all of them folded.
            for folded in [false, true] {
                if folded {
                    store.fold_rollups().await.unwrap();
                    prop_assert_eq!(pending_deltas(&pool).await, 0);
                }
                let stored: HashMap<RollupKey, Stats> =
                    store.rollups(1, from, to, &RollupFilter::default()).await.unwrap().into_iter().collect();
                prop_assert_eq!(stored.len(), detailed.len());
                for (key, stats) in &detailed {
                    same_stats(&stored[key], stats)?;
                }
                let stored_arms = store.window_rows(1, from, to, &RollupFilter::default()).await.unwrap();
                prop_assert_eq!(stored_arms.len(), by_arm.len());
                for (key, stats) in &stored_arms {
                    same_stats(stats, &by_arm[&(key.minute.millis(), key.variant)])?;
                }
                for &(start, length) in &windows {
                    let window_from = Timestamp(MIDNIGHT - 4 * 3_600_000 + start * 60_000);
                    let window_to = Timestamp(window_from.millis() + length * 60_000);
                    let mut expected: HashMap<CellKey, Stats> = HashMap::new();
                    for (key, stats) in detailed.iter().filter(|(k, _)| window_from <= k.minute && k.minute < window_to) {
                        let cell = CellKey {
                            stage: key.stage,
                            variant: key.variant,
                            provider: key.provider.clone(),
                            file_type: key.file_type.clone(),
                            size_class_mb: key.size_class_mb,
                        };
                        expected.entry(cell).or_default().merge(stats);
                    }
                    let totals = store.rollup_totals(1, window_from, window_to, &RollupFilter::default()).await.unwrap();
                    prop_assert_eq!(totals.len(), expected.len(), "cells of [{:?}, {:?})", window_from, window_to);
                    for (key, stats) in &totals {
                        same_stats(stats, &expected[key])?;
                    }
                }
            }
            Ok(())
        })?;
    });
    rt.block_on(pool.close());
}

/// A stored rollup row's stats equal a recomputation's (sums to within rounding).
fn same_stats(stored: &Stats, expected: &Stats) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert;
    proptest::prop_assert_eq!(
        (stored.success, stored.error, stored.timeout, stored.critical),
        (expected.success, expected.error, expected.timeout, expected.critical)
    );
    proptest::prop_assert_eq!(&stored.latency, &expected.latency);
    prop_assert!((stored.latency_sum_ms - expected.latency_sum_ms).abs() < 1e-6 * expected.latency_sum_ms.max(1.0));
    prop_assert!((stored.memory_sum_mb - expected.memory_sum_mb).abs() < 1e-6 * expected.memory_sum_mb.max(1.0));
    proptest::prop_assert_eq!(stored.memory_max_mb, expected.memory_max_mb);
    prop_assert!((stored.memory_sq_sum_mb2 - expected.memory_sq_sum_mb2).abs() < 1e-6 * expected.memory_sq_sum_mb2.max(1.0));
    Ok(())
}

/// The ingest writes with COPY, which stalls on Nagle's algorithm: every connection of a
/// Rampart pool finds its socket and turns it off (sqlx 0.9.0 leaves it on).
#[sqlx::test(migrations = "../migrations")]
async fn connections_find_their_socket_to_turn_nagle_off(pool: PgPool) {
    // The test's own pool is not Rampart's: its connection starts with Nagle on.
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(server::db::nodelay(&mut conn).await.unwrap(), Some(false), "sqlx leaves Nagle on");
    server::db::set_nodelay(&mut conn).await.unwrap();
    assert_eq!(server::db::nodelay(&mut conn).await.unwrap(), Some(true), "the socket found and Nagle turned off");
    // A pool made by Rampart turns it off on every connection it opens.
    let url = std::env::var("DATABASE_URL").unwrap();
    let database = pool.connect_options().get_database().unwrap().to_string();
    let ours =
        server::db::pool_options().max_connections(1).connect(&format!("{}/{database}", &url[..url.rfind('/').unwrap()])).await.unwrap();
    let mut conn = ours.acquire().await.unwrap();
    assert_eq!(server::db::nodelay(&mut conn).await.unwrap(), Some(true));
}
