//! What an operator's tools see of a running server, over a real socket and Postgres:
//! `/readyz` and its checks, and `/metrics` in the Prometheus text format, counting what the
//! process actually did (requests by route, ingested events, guard ticks) and reading the
//! rollouts' state, behind the same access rules as the API.

mod support;

use serde_json::{Value, json};
use sqlx::PgPool;
use support::{START, TestApp};

use support::metric as sample;

#[sqlx::test(migrations = "../migrations")]
async fn readyz_reports_each_check_and_fails_when_the_database_is_gone(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let response = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["ready"], true, "{body}");
    let names: Vec<&str> = body["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["database", "migrations", "guard"]);
    let migrations = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(body["checks"][1]["detail"], format!("{migrations} applied, all current"), "{body}");

    // A migration this binary expects is missing (as when it starts against an older schema).
    sqlx::query("UPDATE _sqlx_migrations SET success = false WHERE version = (SELECT max(version) FROM _sqlx_migrations)")
        .execute(&pool)
        .await
        .unwrap();
    let response = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["ready"].as_bool(), body["checks"][1]["ok"].as_bool()), (Some(false), Some(false)), "{body}");
    assert!(body["checks"][1]["detail"].as_str().unwrap().starts_with("not applied: "), "{body}");

    pool.close().await;
    let response = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["checks"][0]["ok"], false, "{body}");
    assert!(body["checks"][0]["detail"].as_str().unwrap().starts_with("unreachable"), "{body}");
}

#[sqlx::test(migrations = "../migrations")]
async fn metrics_count_what_the_process_did_and_need_a_viewer(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let anonymous = reqwest::get(app.url("/metrics")).await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let lines: Vec<String> = (0..5)
        .map(|i| event(&format!("op-{i}"), START - 60_000, if i % 2 == 0 { "sync" } else { "async" }))
        .chain(["not json".to_string()])
        .collect();
    let response = app.client.post(app.url("/api/v1/events")).body(lines.join("\n")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(app.guard.tick_now(app.now()).await.is_ok());

    let viewer = app.person("vera", "viewer").await;
    let response = viewer.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let page = response.text().await.unwrap();
    let value = |series: &str| sample(&page, series).unwrap_or_else(|| panic!("no {series} in\n{page}"));
    assert_eq!(value(r#"rampart_ingest_events_total{outcome="accepted"}"#), 5.0);
    assert_eq!(value(r#"rampart_ingest_events_total{outcome="rejected"}"#), 1.0);
    assert_eq!(value("rampart_ingest_batches_total"), 1.0);
    assert_eq!(value(r#"rampart_http_requests_total{route="/api/v1/events",method="POST",status="200"}"#), 1.0);
    assert_eq!(value(r#"rampart_http_requests_total{route="/metrics",method="GET",status="401"}"#), 1.0);
    assert_eq!(value(r#"rampart_http_request_duration_seconds_count{route="/api/v1/events"}"#), 1.0);
    assert!(value(r#"rampart_guard_ticks_total{outcome="judged"}"#) >= 1.0, "the tick above, at least");
    let age = value("rampart_guard_last_tick_age_seconds");
    assert!((0.0..5.0).contains(&age), "{age}");
    // The rollout the default plan created, at its first stage, and the outbox, empty.
    assert_eq!(value(r#"rampart_rollout_stage{rollout="1",flag="async_upload",status="draft"}"#), 0.0);
    assert_eq!(value(r#"rampart_rollout_open_alerts{rollout="1",flag="async_upload"}"#), 0.0);
    assert_eq!(value("rampart_webhook_outbox_pending"), 0.0);
    assert!(value("rampart_db_pool_max_connections") >= 1.0);
    // The hourly retention job ran once at start, in full.
    let mut retention = 0.0;
    for _ in 0..50 {
        let page = viewer.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        retention = sample(&page, r#"rampart_retention_runs_total{outcome="ok"}"#).unwrap();
        if retention >= 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(retention, 1.0);
}

/// The dashboard's and the SDKs' event streams are counted while open.
#[sqlx::test(migrations = "../migrations")]
async fn metrics_count_open_event_streams(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let stream = app.client.get(app.url("/api/v1/flags/events")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let page = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert_eq!(sample(&page, r#"rampart_stream_clients{kind="flags"}"#), Some(1.0), "{page}");
    drop(stream);
}

/// `RAMPART_LOG_FORMAT=json`: a real `rampart serve` writes one JSON object per line, with its
/// level, target and message, and one with a span names the span.
#[sqlx::test(migrations = "../migrations")]
async fn json_logs_are_one_object_per_line(pool: PgPool) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("DATABASE_URL", support::database_url(&pool))
        .env("RAMPART_LOG_FORMAT", "json")
        .env("RAMPART_ADMIN_PASSWORD", "a long enough password")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        for line in stdout.lines() {
            let line = line.unwrap();
            let done = line.contains("serving on");
            seen.push(line);
            if done || seen.len() > 50 {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(lines.last().is_some_and(|l| l.contains("serving on")), "{lines:#?}");
    for line in &lines {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(entry["level"].is_string() && entry["target"].is_string() && entry["fields"]["message"].is_string(), "{line}");
    }
}

/// One successful upload event at `at` (ms), `id` unique, in the arm `variant` names.
fn event(id: &str, at: i64, variant: &str) -> String {
    json!({ "timestamp": at, "event_id": id, "variant": variant, "outcome": "success", "latency_ms": 100.0,
            "memory_mb": 40.0, "provider": "kimi", "file_type": "csv", "size_bytes": 1000 })
    .to_string()
}

/// One event line for the fault tests, `id` unique.
fn line(id: &str) -> String {
    event(id, START - 60_000, "sync")
}

/// A Postgres cluster of the test's own (faults must not touch the shared server), stopped and
/// removed when dropped, also when the test fails.
struct Cluster {
    pg: server::embedded_pg::EmbeddedPostgres,
    dir: std::path::PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg.crash();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private cluster, migrated, and a pool on it as `rampart serve` makes it.
async fn private_cluster(name: &str) -> (Cluster, PgPool) {
    let dir = std::env::temp_dir().join(format!("rampart-fault-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let pg = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || server::embedded_pg::EmbeddedPostgres::start(&dir)).await.unwrap().expect("a private cluster")
    };
    let cluster = Cluster { pg, dir };
    let pool = server::db::serving_pool_options().connect(&cluster.pg.url("postgres")).await.unwrap();
    server::db::MIGRATOR.run(&pool).await.unwrap();
    (cluster, pool)
}

/// Fault suite: Postgres crashes (`pg_ctl stop -m immediate`) in the middle of a stream of
/// ingest batches and comes back. Every batch acknowledged (200) before, during or after is
/// stored; while it is down ingest answers 503 with `Retry-After` within the pool's acquire
/// timeout (never a hang, never a bare 500) and `/readyz` says the database is unreachable;
/// once it is back the same server ingests and its guard loop judges again, by itself.
#[tokio::test]
async fn a_postgres_crash_loses_no_acknowledged_event_and_the_server_recovers_by_itself() {
    use std::time::{Duration, Instant};
    let (cluster, pool) = private_cluster("crash").await;
    let app = TestApp::spawn(pool.clone()).await;

    // A client sending batch after batch, as a service would, recording what was acknowledged.
    let sender = {
        let (client, url) = (app.client.clone(), app.url("/api/v1/events"));
        tokio::spawn(async move {
            let (mut acknowledged, mut unavailable, mut slowest) = (Vec::new(), 0, Duration::ZERO);
            for batch in 0..400 {
                let ids: Vec<String> = (0..20).map(|i| format!("crash-{batch}-{i}")).collect();
                let body = ids.iter().map(|id| line(id)).collect::<Vec<_>>().join("\n");
                let started = Instant::now();
                let response = client.post(&url).body(body).send().await.unwrap();
                slowest = slowest.max(started.elapsed());
                match response.status().as_u16() {
                    200 => acknowledged.extend(ids),
                    503 => {
                        assert_eq!(response.headers()["retry-after"], "5");
                        let body: Value = response.json().await.unwrap();
                        assert_eq!(body["error"], "unavailable", "{body}");
                        unavailable += 1;
                    }
                    status => panic!("batch {batch}: {status} {}", response.text().await.unwrap()),
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
                if unavailable > 0 && acknowledged.len() >= 2_000 {
                    break;
                }
            }
            (acknowledged, unavailable, slowest)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.pg.crash().expect("pg_ctl stop -m immediate");
        cluster
    })
    .await
    .unwrap();
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.pg.resume().expect("the cluster starts again");
        cluster
    })
    .await
    .unwrap();

    let (acknowledged, unavailable, slowest) = sender.await.unwrap();
    eprintln!("{} events acknowledged, {unavailable} batches answered 503, slowest answer {slowest:?}", acknowledged.len());
    assert!(unavailable >= 1, "the crash was seen");
    assert!(slowest < Duration::from_secs(7), "a request while down waited {slowest:?}: the pool gives up after 5 s");
    let stored: Vec<String> = sqlx::query_scalar("SELECT event_id FROM events").fetch_all(&pool).await.unwrap();
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let lost: Vec<&String> = acknowledged.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged events lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(5)]);
    assert!(acknowledged.len() >= 2_000, "ingest resumed after the restart: {} acknowledged", acknowledged.len());
    app.guard.tick_now(app.now()).await.expect("the guard judges again");
    let ready = reqwest::get(app.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    pool.close().await;
    drop(cluster);
}

/// Fault suite: the database turns read-only (a failover left Rampart on a standby, or an
/// operator set `default_transaction_read_only`). Writes answer 503 `unavailable` with
/// `Retry-After`, reads go on, nothing half-written is left, and writes work again once the
/// database does.
#[tokio::test]
async fn a_read_only_database_refuses_writes_as_unavailable_and_recovers() {
    let (cluster, pool) = private_cluster("read-only").await;
    let app = TestApp::spawn(pool.clone()).await;
    let ingest = |ids: &[&str]| {
        let body = ids.iter().map(|id| line(id)).collect::<Vec<_>>().join("\n");
        app.client.post(app.url("/api/v1/events")).body(body).send()
    };
    assert_eq!(ingest(&["ro-1"]).await.unwrap().status(), 200);

    let set_read_only = |on: bool| {
        let pool = pool.clone();
        async move {
            let value = if on { "on" } else { "off" };
            sqlx::query(sqlx::AssertSqlSafe(format!("ALTER SYSTEM SET default_transaction_read_only = {value}")))
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("SELECT pg_reload_conf()").execute(&pool).await.unwrap();
            // Every session reads the reloaded file at its next command.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    };
    set_read_only(true).await;
    let response = ingest(&["ro-2", "ro-3"]).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "unavailable", "{body}");
    let (status, body) = app.command(json!({ "command": "start" })).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("unavailable")), "{body}");
    // Reading goes on.
    assert_eq!(app.room().await["state"]["status"], "draft");

    set_read_only(false).await;
    assert_eq!(ingest(&["ro-2", "ro-3"]).await.unwrap().status(), 200);
    let (status, body) = app.command(json!({ "command": "start" })).await;
    assert_eq!(status, 200, "{body}");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    assert_eq!(stored, 3, "each event once");

    pool.close().await;
    drop(cluster);
}

/// Every event stored, in the rollups (folded or pending) exactly as in the raw table: what a
/// half-applied batch would break.
async fn rollups_match_events(pool: &PgPool) -> (i64, i64) {
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(pool).await.unwrap();
    let rolled: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(success + error + timeout), 0)::bigint FROM
           (SELECT success, error, timeout FROM event_rollups UNION ALL SELECT success, error, timeout FROM event_rollup_deltas) r",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    (events, rolled)
}

/// Fault suite: `rampart serve` killed with SIGKILL in the middle of a stream of ingest batches.
/// Every acknowledged event is stored, each batch is all or nothing (the rollups agree with
/// the raw events), and a restarted server carries on; resending what was not acknowledged
/// stores nothing twice.
#[sqlx::test(migrations = "../migrations")]
async fn a_server_killed_mid_ingest_loses_no_acknowledged_event(pool: PgPool) {
    use std::time::Duration;
    use support::process::Replica;
    let dir = std::env::temp_dir().join(format!("rampart-fault-kill-{}-{}", std::process::id(), support::process::now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = support::database_url(&pool);
    let mut server = Replica::start(&url, &dir.join("first.log")).await;
    let client = support::client_with(&[(
        "authorization",
        &format!("Bearer {}", support::all_scopes_token(&pool, "kill", app::domain::units::Timestamp(support::process::now_ms())).await),
    )]);
    let batch = |n: usize| -> (Vec<String>, String) {
        let ids: Vec<String> = (0..50).map(|i| format!("kill-{n}-{i}")).collect();
        let now = support::process::now_ms();
        let body = ids.iter().map(|id| event(id, now - 1_000, "sync")).collect::<Vec<_>>().join("\n");
        (ids, body)
    };
    let sender = {
        let (client, url) = (client.clone(), format!("{}/api/v1/events", server.base));
        tokio::spawn(async move {
            let (mut acknowledged, mut unanswered) = (Vec::new(), Vec::new());
            for n in 0.. {
                let (ids, body) = batch(n);
                match client.post(&url).body(body).send().await {
                    Ok(response) if response.status() == 200 => acknowledged.extend(ids),
                    Ok(response) => panic!("batch {n}: {}", response.status()),
                    Err(_) => {
                        unanswered.push(n);
                        break;
                    }
                }
            }
            (acknowledged, unanswered)
        })
    };
    // Meanwhile, transitions: start, then pause and resume in turn, each at the version it read.
    let commander = {
        let (client, base) = (client.clone(), server.base.clone());
        tokio::spawn(async move {
            for n in 0.. {
                let Ok(response) = client.get(format!("{base}/api/v1/rollouts/1")).send().await else { return n };
                let Ok(room) = response.json::<Value>().await else { return n };
                let command: Value = match room["state"]["status"].as_str() {
                    Some("draft") => json!({ "command": "start" }),
                    Some("running") => json!({ "command": "pause", "reason": format!("turn {n}") }),
                    _ => json!({ "command": "resume" }),
                };
                let mut body = command;
                body["version"] = room["state"]["version"].clone();
                if client.post(format!("{base}/api/v1/rollouts/1/commands")).json(&body).send().await.is_err() {
                    return n;
                }
            }
            unreachable!()
        })
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.kill();
    let transitions = commander.await.unwrap();
    assert!(transitions >= 5, "commands were under way: {transitions}");
    // No half-applied transition: the state's version is the last audit entry's, and its status
    // the one that entry's command leads to.
    let (version, status): (i64, String) =
        sqlx::query_as("SELECT version, status FROM rollouts WHERE id = 1").fetch_one(&pool).await.unwrap();
    let (last_version, last_action): (i64, String) =
        sqlx::query_as("SELECT version, action FROM audit_log WHERE rollout_id = 1 AND version IS NOT NULL ORDER BY id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(version, last_version);
    let expected = match last_action.as_str() {
        "pause" => "paused",
        "start" | "resume" => "running",
        other => panic!("unexpected last action {other}"),
    };
    assert_eq!(status, expected, "after {last_action}");
    let (acknowledged, unanswered) = sender.await.unwrap();
    assert!(acknowledged.len() >= 500, "the stream was under way: {}", acknowledged.len());
    let stored: std::collections::HashSet<String> =
        sqlx::query_scalar::<_, String>("SELECT event_id FROM events").fetch_all(&pool).await.unwrap().into_iter().collect();
    assert!(acknowledged.iter().all(|id| stored.contains(id)), "an acknowledged event was lost");
    let (events, rolled) = rollups_match_events(&pool).await;
    assert_eq!(events, rolled, "the rollups hold exactly the stored events");
    assert_eq!(events as usize % 50, 0, "batches are all or nothing: {events}");

    // Restarted, it serves again; the batch that got no answer, sent again, is stored once.
    let server = Replica::start(&url, &dir.join("second.log")).await;
    let (ids, body) = batch(unanswered[0]);
    let response = client.post(format!("{}/api/v1/events", server.base)).body(body).send().await.unwrap();
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["accepted"].as_u64().unwrap() + report["duplicates"].as_u64().unwrap(), ids.len() as u64, "{report}");
    let (events, rolled) = rollups_match_events(&pool).await;
    assert_eq!((events as usize, rolled as usize), (stored.len() + report["accepted"].as_u64().unwrap() as usize, events as usize));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fault suite: `rampart import` killed with SIGKILL part-way through a file. Run again, it
/// stores the rest and counts what the first run stored as already imported: every line once,
/// and the rollups agree.
#[sqlx::test(migrations = "../migrations")]
async fn an_import_killed_part_way_resumes_without_duplicates(pool: PgPool) {
    use std::io::Write as _;
    use std::time::{Duration, Instant};
    let path = std::env::temp_dir().join(format!("rampart-fault-import-{}-{}.jsonl", std::process::id(), support::process::now_ms()));
    let lines = 200_000;
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let now = support::process::now_ms();
        for i in 0..lines {
            let line = event(&format!("imp-{i}"), now - 3_600_000 + i * 10, if i % 2 == 0 { "sync" } else { "async" });
            writeln!(file, "{line}").unwrap();
        }
    }
    // The plan's rollout, as a first start makes it: imported events go to it.
    let (plan, source) = server::startup::load_plan(None).unwrap();
    server::startup::ensure_rollout(&server::store::Store::new(pool.clone()), &plan, &source).await.unwrap();
    let url = support::database_url(&pool);
    let mut import = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("import")
        .arg(&path)
        .env("DATABASE_URL", &url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
        if stored > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the import stored nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    import.kill().unwrap();
    import.wait().unwrap();
    let (before, rolled) = rollups_match_events(&pool).await;
    assert_eq!(before, rolled, "the rollups hold exactly the stored events");
    assert!(before < lines, "killed part-way: {before} of {lines} stored");

    let (ok, output) = support::rampart(&pool, &["import", path.to_str().unwrap()]);
    assert!(ok, "{output}");
    assert!(output.contains(&format!("{} new events stored, {before} already imported, 0 rejected", lines - before)), "{output}");
    let (events, rolled) = rollups_match_events(&pool).await;
    assert_eq!((events, rolled), (lines, lines));
    let _ = std::fs::remove_file(&path);
}

/// docs/operations.md's backup and restore, run: `pg_dump -Fc` of a database holding a rollout
/// part-way (stage, checklist ticks, events and their rollups, audit), restored with
/// `pg_restore` into a fresh, empty database, and served by a new server: the control room and
/// the metrics read exactly the same.
#[sqlx::test(migrations = "../migrations")]
async fn a_backup_restored_into_a_fresh_database_reads_the_same(pool: PgPool) {
    let bin = server::embedded_pg::find_bin_dir().expect("PostgreSQL's programs (pg_dump, pg_restore)");
    let app = TestApp::spawn(pool.clone()).await;
    app.go_to_stage(1).await;
    let mut model = server::simulate::Model::new(3, 7);
    app.simulate(&mut model, 300, 30, &[]).await;
    let room = app.room().await;
    let item = room["checklist"][0]["id"].as_i64().unwrap();
    let (status, body) = app.post(&format!("/api/v1/rollouts/1/checklist/{item}"), json!({ "checked": true })).await;
    assert_eq!(status, 200, "{body}");
    // Folded first: reads add pending deltas in whatever order they come, which moves a float
    // sum in its last digit; folded rows read the same wherever they are restored.
    server::store::Store::new(pool.clone()).fold_rollups().await.unwrap();
    let metrics_path = format!("/api/v1/rollouts/1/metrics?from={}&to={}", app.now().millis() - 3_600_000, app.now().millis() + 60_000);
    let (before, metrics_before) = (app.room().await, app.get_json(&metrics_path).await);

    let url = support::database_url(&pool);
    let dump = std::env::temp_dir().join(format!("rampart-backup-{}-{}.dump", std::process::id(), support::process::now_ms()));
    let restored_name = format!("rampart_restored_{}", std::process::id());
    let restored_url = format!("{}/{restored_name}", &url[..url.rfind('/').unwrap()]);
    let admin_url = format!("{}/postgres", &url[..url.rfind('/').unwrap()]);
    let (bin2, dump2, restored2, admin2, url2) = (bin.clone(), dump.clone(), restored_name.clone(), admin_url.clone(), url.clone());
    tokio::task::spawn_blocking(move || {
        let run = |program: &str, args: &[&str]| {
            let out = std::process::Command::new(bin2.join(program)).args(args).output().unwrap();
            assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run("pg_dump", &["-Fc", "-d", &url2, "-f", dump2.to_str().unwrap()]);
        run(
            "psql",
            &[
                "-d",
                &admin2,
                "-c",
                &format!("DROP DATABASE IF EXISTS {restored2} WITH (FORCE)"),
                "-c",
                &format!("CREATE DATABASE {restored2}"),
            ],
        );
        run(
            "pg_restore",
            &[
                "--no-owner",
                "--exit-on-error",
                "-d",
                &format!("{}/{restored2}", &url2[..url2.rfind('/').unwrap()]),
                dump2.to_str().unwrap(),
            ],
        );
    })
    .await
    .unwrap();

    let restored = server::db::pool_options().connect(&restored_url).await.unwrap();
    let again = TestApp::spawn(restored.clone()).await;
    let (mut after, metrics_after) = (again.room().await, again.get_json(&metrics_path).await);
    after["now"] = before["now"].clone();
    assert_eq!(after, before, "the control room reads the same");
    assert_eq!(metrics_after, metrics_before, "the metrics read the same");
    restored.close().await;
    let _ = std::fs::remove_file(&dump);
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {restored_name} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
}

/// Graceful shutdown: SIGTERM to a `rampart serve` with event streams open (a control room and
/// an SDK). The streams end with a reconnect hint (`retry: 1000`, so clients move to another
/// replica or the restarted one within a second) and the process exits at once, cleanly. Before,
/// it waited on the open streams for ever.
#[sqlx::test(migrations = "../migrations")]
async fn sigterm_ends_event_streams_with_a_reconnect_hint_and_exits(pool: PgPool) {
    use std::time::{Duration, Instant};
    use support::process::Replica;
    let dir = std::env::temp_dir().join(format!("rampart-sigterm-{}-{}", std::process::id(), support::process::now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Replica::start(&support::database_url(&pool), &dir.join("serve.log")).await;
    let secret = support::all_scopes_token(&pool, "streams", app::domain::units::Timestamp(support::process::now_ms())).await;
    let client = support::client_with(&[("authorization", &format!("Bearer {secret}"))]);
    let mut live = client.get(format!("{}/api/v1/rollouts/1/live", server.base)).send().await.unwrap();
    let mut flags = client.get(format!("{}/api/v1/flags/events", server.base)).send().await.unwrap();
    assert_eq!((live.status().as_u16(), flags.status().as_u16()), (200, 200));
    let hello = String::from_utf8_lossy(&live.chunk().await.unwrap().unwrap()).into_owned();
    assert!(hello.contains("event: hello"), "{hello}");

    let stopped = Instant::now();
    server.terminate();
    for (name, stream) in [("live", &mut live), ("flags", &mut flags)] {
        let rest = tokio::time::timeout(Duration::from_secs(8), async {
            let mut text = String::new();
            while let Ok(Some(chunk)) = stream.chunk().await {
                text.push_str(&String::from_utf8_lossy(&chunk));
            }
            text
        })
        .await
        .unwrap_or_else(|_| panic!("the {name} stream was not ended"));
        assert!(rest.contains("retry: 1000") && rest.contains(": server stopping; reconnect"), "{name}: {rest:?}");
    }
    let status = server.exited_within(Duration::from_secs(8)).await.expect("rampart exits on SIGTERM");
    assert!(status.success(), "{status}");
    assert!(stopped.elapsed() < Duration::from_secs(5), "it took {:?}", stopped.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The hourly retention forgets what is past it and keeps what is not: raw event days before
/// the cutoff (and the units last seen before it), finished webhook deliveries before it — and
/// never a delivery still due, however old, nor anything after the cutoff.
#[sqlx::test(migrations = "../migrations")]
async fn retention_forgets_what_is_past_it_and_never_an_undelivered_webhook(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let store = server::store::Store::new(pool.clone());
    let day = 86_400_000;
    // Two days ago and now, each with a named unit.
    let line = |id: &str, at: i64| {
        json!({ "timestamp": at, "event_id": id, "variant": "sync", "outcome": "success", "latency_ms": 5.0, "memory_mb": 1.0,
                "provider": "kimi", "file_type": "csv", "size_bytes": 1, "unit": id })
        .to_string()
    };
    let report = app.post_events(&[line("old", START - 2 * day), line("new", START - 1_000)].join("\n")).await;
    assert_eq!(report["accepted"], 2, "{report}");
    // stage_units keys units by stage: the rollout is a draft, so both are stage 0's.
    let units = || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM stage_units").fetch_one(&pool).await.unwrap() };
    assert_eq!(units().await, 2);

    let admin = app.sign_in("admin", support::ADMIN_PASSWORD).await;
    let (status, hook) = app.post_as(&admin, "/api/v1/webhooks", json!({ "url": "http://127.0.0.1:9/" })).await;
    assert_eq!(status, 201, "{hook}");
    let hook = hook["item"]["id"].as_i64().unwrap();
    // Delivered long ago, given up on long ago, still due though made long ago, delivered lately.
    let old = START - 100 * day;
    for (delivered, failed, due) in [(Some(old), None, None), (None, Some(old), None), (None, None, Some(START)), (Some(START), None, None)]
    {
        let at = |ms: Option<i64>| ms.map(|ms| chrono::DateTime::from_timestamp_millis(ms).unwrap());
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, event, payload, created_at, delivered_at, failed_at, next_attempt_at)
             VALUES ($1, 'alert', '{}', $2, $3, $4, $5)",
        )
        .bind(hook)
        .bind(at(Some(old)).unwrap())
        .bind(at(delivered))
        .bind(at(failed))
        .bind(at(due))
        .execute(&pool)
        .await
        .unwrap();
    }

    let cutoff = app::domain::units::Timestamp(START - day);
    assert_eq!(store.prune_events(cutoff).await.unwrap(), 1, "the partition of two days ago");
    assert_eq!(store.prune_deliveries(cutoff).await.unwrap(), 2);
    let kept: Vec<(bool, bool)> =
        sqlx::query_as("SELECT delivered_at IS NOT NULL, next_attempt_at IS NOT NULL FROM webhook_deliveries ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(kept, [(false, true), (true, false)], "the delivery still due, and the one delivered lately");
    assert_eq!(sqlx::query_scalar::<_, String>("SELECT event_id FROM events").fetch_all(&pool).await.unwrap(), ["new"]);
    assert_eq!(units().await, 1, "the unit last seen two days ago is forgotten");
    // Nothing more to forget on a second run.
    assert_eq!((store.prune_events(cutoff).await.unwrap(), store.prune_deliveries(cutoff).await.unwrap()), (0, 0));
}

/// A tmpfs of `megabytes` mounted at `dir` (this machine's tests run as root, as CI does);
/// unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, megabytes: u32) -> SmallDisk {
        let _ = std::process::Command::new("umount").arg(dir).status();
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=0777"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a {megabytes} MB tmpfs at {} (the fault suite runs as root)", dir.display());
        SmallDisk(dir.to_path_buf())
    }

    /// Fills what space is left with a ballast file.
    fn fill(&self) {
        use std::io::Write;
        let mut ballast = std::fs::File::create(self.0.join("ballast")).unwrap();
        let block = vec![0u8; 1 << 20];
        while ballast.write_all(&block).is_ok() {}
        // The last partial megabyte too.
        while ballast.write_all(&block[..4096]).is_ok() {}
        let _ = ballast.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("ballast")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fault suite: the database's disk fills up under ingest. Batches then answer 503 saying the
/// database is out of space (never a bare 500, never a hang), nothing of a refused batch is
/// stored, everything acknowledged before is, reads go on, and once space returns the same
/// server stores the same batches again, by itself, each event once.
#[tokio::test]
async fn a_full_disk_refuses_batches_clearly_and_recovers_when_space_returns() {
    let dir = std::env::temp_dir().join(format!("rampart-fault-disk-{}", std::process::id()));
    let disk = SmallDisk::mount(&dir, 160);
    let pg = {
        let dir = dir.join("pg");
        tokio::task::spawn_blocking(move || server::embedded_pg::EmbeddedPostgres::start(&dir)).await.unwrap().expect("a private cluster")
    };
    let pool = server::db::serving_pool_options().connect(&pg.url("postgres")).await.unwrap();
    server::db::MIGRATOR.run(&pool).await.unwrap();
    let app = TestApp::spawn(pool.clone()).await;
    let batch = |n: usize| (0..200).map(|i| line(&format!("disk-{n}-{i}"))).collect::<Vec<_>>().join("\n");
    let send = |n: usize| {
        let (client, url) = (app.client.clone(), app.url("/api/v1/events"));
        async move { client.post(&url).body(batch(n)).send().await.unwrap() }
    };
    for n in 0..5 {
        assert_eq!(send(n).await.status(), 200);
    }

    disk.fill();
    let mut refused = Vec::new();
    for n in 5..40 {
        let response = send(n).await;
        match response.status().as_u16() {
            200 => continue,
            503 => {
                assert_eq!(response.headers()["retry-after"], "30");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "unavailable", "{body}");
                assert!(body["message"].as_str().unwrap().contains("out of disk space"), "{body}");
                refused.push(n);
                if refused.len() == 3 {
                    break;
                }
            }
            status => panic!("batch {n} on a full disk: {status} {}", response.text().await.unwrap()),
        }
    }
    assert_eq!(refused.len(), 3, "the full disk was seen");
    eprintln!("disk full: batches {refused:?} refused (those before them went in)");
    // Reads go on: the control room answers.
    assert_eq!(app.client.get(app.url("/api/v1/rollouts/1")).send().await.unwrap().status(), 200);

    disk.free();
    for n in &refused {
        let response = send(*n).await;
        assert_eq!(response.status(), 200, "batch {n} once space returned: {}", response.text().await.unwrap());
    }
    // Every batch acknowledged is stored whole, each event once, and the rollups agree.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&pool).await.unwrap();
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM events").fetch_one(&pool).await.unwrap();
    let acknowledged_batches = 5 + (5..=*refused.last().unwrap()).count();
    assert_eq!((stored, distinct), (acknowledged_batches as i64 * 200, acknowledged_batches as i64 * 200));
    let (events, rolled) = rollups_match_events(&pool).await;
    assert_eq!(events, rolled, "the rollups hold exactly the stored events");
    app.guard.tick_now(app.now()).await.expect("the guard judges again");
    drop(app);
    pool.close().await;
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
    drop(disk);
}
