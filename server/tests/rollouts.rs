//! The rollout lifecycle through the real server and a real Postgres: seeding, checklists,
//! commands, refusals, concurrency and the audit trail.

mod support;

use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestApp, rampart};

#[sqlx::test(migrations = "../migrations")]
async fn a_new_installation_opens_on_the_seeds_rollout_at_stage_0(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let viewer = app.person("vera", "viewer").await;
    let html = viewer.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    for text in ["Async upload rollout", "Phase 1 deployed, flags off", "1% rollout", "100% rollout", "Not started"] {
        assert!(html.contains(text), "the first page lacks {text:?}");
    }
    let room = app.room().await;
    assert_eq!(room["state"]["stage"], 0);
    assert_eq!(room["state"]["status"], "draft");
    assert_eq!(room["served"], json!({ "enabled": false, "percentage": 0 }));
    let items = room["checklist"].as_array().unwrap();
    let stage0 = items.iter().filter(|i| i["stage"] == 0).count();
    assert_eq!(stage0, 78, "the seeds' \"Before week 1 starts\" and Week 1, days 1–4 checklists");

    // The stakeholder page is complete in the HTML itself (no JavaScript needed).
    let status = viewer.get(app.url("/status")).send().await.unwrap().text().await.unwrap();
    for text in ["Not started yet.", "Idle", "Next: ", "Start: Phase 1 deployed, flags off", "This page is read-only."] {
        assert!(status.contains(text), "the status page lacks {text:?}");
    }

    // A restart finds the rollout and does not create another.
    let _again = TestApp::spawn(pool.clone()).await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM rollouts").fetch_one(&pool).await.unwrap();
    assert_eq!(count, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_ticked_item_is_kept_with_who_and_when_and_audited(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let item = app.room().await["checklist"][3]["id"].as_i64().unwrap();
    let (status, body) = app.post(&format!("/api/v1/rollouts/1/checklist/{item}"), json!({ "checked": true })).await;
    assert_eq!(status, 200, "{body}");
    let room = app.room().await;
    let kept = room["checklist"].as_array().unwrap().iter().find(|i| i["id"] == item).unwrap().clone();
    assert_eq!(kept["checked_by"], support::TEST_ACTOR);
    assert_eq!(kept["checked_at"], support::START);
    assert!(room["audit"][0]["summary"].as_str().unwrap().starts_with("Ticked"));

    let (status, _) = app.post(&format!("/api/v1/rollouts/1/checklist/{item}"), json!({ "checked": false })).await;
    assert_eq!(status, 200);
    let room = app.room().await;
    let kept = room["checklist"].as_array().unwrap().iter().find(|i| i["id"] == item).unwrap().clone();
    assert_eq!(kept["checked_at"], serde_json::Value::Null);

    let (status, body) = app.post("/api/v1/rollouts/1/checklist/999999", json!({ "checked": true })).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

#[sqlx::test(migrations = "../migrations")]
async fn advancing_is_refused_with_its_blockers_until_overridden_with_a_reason(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    assert_eq!(app.command(json!({ "command": "start" })).await.0, 200);

    let (status, body) = app.command(json!({ "command": "advance" })).await;
    assert_eq!(status, 422, "{body}");
    let kinds: Vec<&str> = body["blockers"].as_array().unwrap().iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["soak_remaining", "checklist_incomplete", "baseline_missing", "test_suite_not_passed"]);
    assert!(body["message"].as_str().unwrap().contains("soak time remaining: 1d"), "{body}");

    let reason = "Soak covered by staging; approved in review";
    let (status, body) = app.command(json!({ "command": "advance", "override_reason": reason })).await;
    assert_eq!(status, 403, "overriding is a person's call, not a token's: {body}");
    let (status, body) = app.advance(Some(reason)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stage"], 1);

    // The served flag moved in the same transaction as the state.
    let (enabled, percentage): (bool, i16) =
        sqlx::query_as("SELECT flag_enabled, flag_percentage FROM rollouts WHERE id = 1").fetch_one(&pool).await.unwrap();
    assert_eq!((enabled, percentage), (true, 1));
    let history: Vec<(i32, Option<String>)> =
        sqlx::query_as("SELECT stage, exit FROM stage_history ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(history, vec![(0, Some("advanced".into())), (1, None)]);

    // Both the request and its approval keep the reason and what it pushed past.
    let room = app.room().await;
    let (approval, request) = (&room["audit"][0], &room["audit"][1]);
    assert_eq!((approval["action"].as_str(), approval["actor"].as_str()), (Some("approve"), Some("bea")));
    assert_eq!((request["action"].as_str(), request["actor"].as_str()), (Some("advance"), Some("ana")));
    for entry in [approval, request] {
        assert_eq!(entry["reason"], reason);
        assert!(entry["summary"].as_str().unwrap().contains("overriding: soak time remaining"), "{entry}");
    }
    let evidence: serde_json::Value =
        sqlx::query_scalar("SELECT evidence FROM audit_log WHERE action = 'approve'").fetch_one(&pool).await.unwrap();
    assert_eq!(evidence["overridden"].as_array().unwrap().len(), 4);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_stage_with_soak_elapsed_checklist_done_and_gates_passed_advances_without_override(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.control_is_sampled().await;
    // A baseline from flag-off traffic, then stage 1 with plenty of clean treatment uploads.
    let upload = async |variant: &str, count: usize, latency: f64, prefix: &str| {
        let now = app.now().millis();
        let lines: String = (0..count)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({ "timestamp": now - 1_000, "event_id": format!("{prefix}-{i}"), "variant": variant, "outcome": "success",
                            "latency_ms": latency, "memory_mb": 40.0, "provider": "kimi", "file_type": "csv", "size_bytes": 1_000 })
                )
            })
            .collect();
        let response = app.client.post(app.url("/api/v1/events")).body(lines).send().await.unwrap();
        assert_eq!(response.status(), 200);
    };
    upload("sync", 200, 300.0, "base").await;
    let (status, body) =
        app.post("/api/v1/rollouts/1/baseline", json!({ "from": app.now().millis() - 600_000, "to": app.now().millis() })).await;
    assert_eq!(status, 200, "{body}");
    app.go_to_stage(1).await;
    app.advance_clock_minutes(1);
    upload("async", 2_000, 200.0, "treated").await;
    let room = app.room().await;
    let stage1: Vec<i64> =
        room["checklist"].as_array().unwrap().iter().filter(|i| i["stage"] == 1).map(|i| i["id"].as_i64().unwrap()).collect();
    for id in &stage1 {
        app.post(&format!("/api/v1/rollouts/1/checklist/{id}"), json!({ "checked": true })).await;
    }
    app.advance_clock_hours(47);
    let (status, body) = app.command(json!({ "command": "advance" })).await;
    assert_eq!(status, 422);
    assert_eq!(body["blockers"], json!([{ "kind": "soak_remaining", "remaining": "59m" }]), "only the soak blocks: gates pass");

    // CI asks; the stage and its flag stay until a person approves.
    app.advance_clock_hours(1);
    let (status, body) = app.command(json!({ "command": "advance" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["stage"].as_u64(), body["status"].as_str()), (Some(1), Some("awaiting_approval")));
    assert_eq!(app.room().await["served"], json!({ "enabled": true, "percentage": 1 }));
    let (ana, _) = app.approvers().await;
    let (status, body) = app.command_as(&ana, json!({ "command": "approve" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["stage"].as_u64(), body["status"].as_str()), (Some(2), Some("running")));
    assert_eq!(app.room().await["served"], json!({ "enabled": true, "percentage": 10 }));
    // The audit trail keeps the gate evidence the approver approved on.
    let evidence: serde_json::Value =
        sqlx::query_scalar("SELECT evidence FROM audit_log WHERE action = 'approve' ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let verdicts: Vec<&str> = evidence["gates"].as_array().unwrap().iter().map(|g| g["verdict"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["pass"; 5], "{evidence}");
    // Each rate's verdict has its receipt, which `rampart explain` recomputes from the stored
    // rollups and the stored reference.
    let receipt = &evidence["gates"][0]["receipt"];
    assert_eq!(
        (receipt["method"].as_str(), receipt["events"].as_u64(), receipt["bad"].as_u64()),
        (Some("sequence"), Some(2_000), Some(0)),
        "{receipt}"
    );
    assert_eq!(evidence["reference"]["source"], "frozen baseline", "{evidence}");
    let entry: i64 = sqlx::query_scalar("SELECT id FROM audit_log WHERE action = 'approve' ORDER BY id DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (ok, stdout) = rampart(&app.pool, &["explain", "1", &entry.to_string()]);
    assert!(ok, "{stdout}");
    assert_eq!(stdout.matches("the same decision from the stored data").count(), 4, "success, errors, latency, memory: {stdout}");
    assert!(stdout.contains("Success rate: pass") && stdout.contains("p95 latency vs baseline: pass"), "{stdout}");
    assert!(
        stdout
            .contains("Memory vs baseline: pass\n  stored:     confidence sequence of the mean over the stage: 40.00 MB over 2000 uploads"),
        "{stdout}"
    );
    // Stored data that no longer supports a verdict (errors written into the judged minutes)
    // make it say so and fail. The fold must be done first, or it could overwrite the edit.
    let started = std::time::Instant::now();
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_rollup_deltas").fetch_one(&app.pool).await.unwrap() > 0 {
        assert!(started.elapsed().as_secs() < 10, "the fold never ran");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    sqlx::query("UPDATE event_rollups_by_arm SET success = success - 100, error = error + 100 WHERE variant = 'treatment' AND stage = 1")
        .execute(&app.pool)
        .await
        .unwrap();
    let (ok, stdout) = rampart(&app.pool, &["explain", "1", &entry.to_string()]);
    assert!(!ok && stdout.contains("recomputed verdict: fail") && stdout.contains("DIFFERENT from the stored receipt"), "{stdout}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_rollback_needs_a_reason_and_serves_the_flag_off(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.go_to_stage(2).await;

    let (status, body) = app.command(json!({ "command": "roll_back", "target": "off", "reason": " " })).await;
    assert_eq!(status, 422);
    assert!(body["message"].as_str().unwrap().contains("reason is required"), "{body}");

    let (status, body) = app.command(json!({ "command": "roll_back", "target": "off", "reason": "error spike" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["stage"].as_u64(), body["status"].as_str()), (Some(0), Some("rolled_back")));
    let room = app.room().await;
    assert_eq!(room["served"], json!({ "enabled": false, "percentage": 0 }));
    assert!(room["audit"][0]["summary"].as_str().unwrap().contains("Rolled back from stage 2"));
}

#[sqlx::test(migrations = "../migrations")]
async fn a_command_on_a_stale_version_is_a_conflict_naming_the_current_one(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let stale = app.version().await;
    app.command(json!({ "command": "start" })).await;
    let (status, body) = app.post("/api/v1/rollouts/1/commands", json!({ "version": stale, "command": "pause" })).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "conflict");
    assert_eq!(body["current_version"], stale + 1);
}

/// 100 approvals of one request at once, on a multi-threaded runtime with a pool of 40
/// connections: dozens of transactions really in flight together, and exactly one applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_approvals_of_one_request_apply_exactly_once() {
    let url = std::env::var("DATABASE_URL").expect("the tests run with DATABASE_URL");
    let pool = support::fresh_database_with(&url, "rampart_test_racing_approvals", 40).await;
    let app = TestApp::spawn(pool.clone()).await;
    app.command(json!({ "command": "start" })).await;
    let (ana, bea) = app.approvers().await;
    let (status, body) = app.command_as(&ana, json!({ "command": "advance", "override_reason": "race" })).await;
    assert_eq!(status, 200, "{body}");
    let version = app.version().await;
    let body = json!({ "version": version, "command": "approve" });
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let (client, url, body) = (bea.clone(), app.url("/api/v1/rollouts/1/commands"), body.clone());
            tokio::spawn(async move { client.post(url).json(&body).send().await.expect("POST").status().as_u16() })
        })
        .collect();
    // How many of the approvals' transactions Postgres sees at once, sampled while they run.
    let watcher = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut most = 0i64;
            for _ in 0..200 {
                let busy: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state <> 'idle' AND pid <> pg_backend_pid()",
                )
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
                most = most.max(busy);
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            most
        })
    };
    let mut statuses = Vec::new();
    for request in requests {
        statuses.push(request.await.expect("request task"));
    }
    let most_at_once = watcher.await.unwrap();
    eprintln!("approvals: at most {most_at_once} of the pool's connections busy at once");
    assert!(most_at_once >= 5, "too little contention to prove anything: {most_at_once} busy at once");
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 99, "{statuses:?}");
    assert_eq!(app.room().await["state"]["stage"], 1);
    let approvals: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'approve'").fetch_one(&pool).await.unwrap();
    assert_eq!(approvals, 1);
    let entered: i64 = sqlx::query_scalar("SELECT count(*) FROM stage_history WHERE stage = 1").fetch_one(&pool).await.unwrap();
    assert_eq!(entered, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_advance_waits_for_a_person_other_than_the_one_who_asked(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.command(json!({ "command": "start" })).await;
    let (ana, bea) = app.approvers().await;
    let (status, body) = app.command_as(&ana, json!({ "command": "advance", "override_reason": "soak waived for the test" })).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("awaiting_approval")), "{body}");
    let room = app.room().await;
    assert_eq!(room["state"]["request"]["by"], "ana");
    assert_eq!(room["served"], json!({ "enabled": false, "percentage": 0 }), "nothing moves before approval");

    // Not the asker (the default plan forbids self-approval), not a machine.
    let (status, body) = app.command_as(&ana, json!({ "command": "approve" })).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().unwrap().contains("needs somebody else"), "{body}");
    let (status, body) = app.command(json!({ "command": "approve" })).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["message"].as_str().unwrap().contains("approve"), "{body}");

    // Declining needs a reason and returns the rollout to where it was.
    let (status, _) = app.command_as(&bea, json!({ "command": "decline", "reason": "" })).await;
    assert_eq!(status, 422);
    let (status, body) = app.command_as(&bea, json!({ "command": "decline", "reason": "wait for the provider fix" })).await;
    assert_eq!((status, body["status"].as_str(), body["stage"].as_u64()), (200, Some("running"), Some(0)), "{body}");
    assert_eq!(app.room().await["audit"][0]["summary"], "Declined the request by ana");

    let (status, body) = app.advance(Some("second try")).await;
    assert_eq!((status, body["stage"].as_u64()), (200, Some(1)), "{body}");
    let summary = app.room().await["audit"][0]["summary"].as_str().unwrap().to_string();
    assert!(summary.starts_with("Approved the request by ana: advanced to stage 1"), "{summary}");
}

#[sqlx::test(migrations = "../migrations")]
async fn the_audit_trail_cannot_be_rewritten(pool: PgPool) {
    let _app = TestApp::spawn(pool.clone()).await;
    for statement in ["UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log", "TRUNCATE audit_log"] {
        let error = sqlx::query(statement).execute(&pool).await.expect_err(statement);
        assert!(error.to_string().contains("append-only"), "{statement}: {error}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_requests_get_json_errors_that_name_the_problem(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (status, body) = app.post("/api/v1/rollouts/1/commands", json!({ "command": "advance" })).await;
    assert_eq!(status, 422);
    assert_eq!(body["field"], "body");
    assert!(body["message"].as_str().unwrap().contains("version"), "{body}");

    let (status, body) = app.post("/api/v1/rollouts/1/commands", json!({ "version": 1, "command": "jump" })).await;
    assert_eq!(status, 422);
    assert!(body["message"].as_str().unwrap().contains("jump"), "{body}");

    let response = app.client.get(app.url("/api/v1/nothing-here")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap()["error"], "not_found");

    let (status, _) = app.post("/api/v1/rollouts/42/commands", json!({ "version": 1, "command": "start" })).await;
    assert_eq!(status, 404);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_retried_command_with_an_idempotency_key_acts_once(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.command(json!({ "command": "start" })).await;
    let version = app.version().await;
    let body = json!({ "version": version, "command": "pause", "reason": "provider incident" });
    let send = |key: &'static str, body: serde_json::Value| {
        app.client.post(app.url("/api/v1/rollouts/1/commands")).header("idempotency-key", key).json(&body).send()
    };
    let first = send("pause-7f3a", body.clone()).await.unwrap();
    assert_eq!(first.status(), 200);
    let first: serde_json::Value = first.json().await.unwrap();

    // The retry (a lost response, a double click) is answered from the record, not acted on again
    // — without the key it would be a 409 for the now-stale version.
    let retry = send("pause-7f3a", body.clone()).await.unwrap();
    assert_eq!(retry.status(), 200);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(retry.json::<serde_json::Value>().await.unwrap(), first);
    let pauses: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'pause'").fetch_one(&pool).await.unwrap();
    assert_eq!(pauses, 1);

    let reused = send("pause-7f3a", json!({ "version": version + 1, "command": "resume" })).await.unwrap();
    assert_eq!(reused.status(), 422);
    assert_eq!(reused.json::<serde_json::Value>().await.unwrap()["field"], "Idempotency-Key");

    // A refusal is remembered too: the same request gets the same answer.
    let stale = json!({ "version": 1, "command": "resume" });
    assert_eq!(send("stale-1", stale.clone()).await.unwrap().status(), 409);
    assert_eq!(send("stale-1", stale).await.unwrap().status(), 409);
}

/// Security review, issue 19 (4): keys were claimed before the permission check and shared by
/// everyone, so a viewer could burn an approver's key (the approver's request then got the
/// viewer's 403 replayed), and they never expired. A key is now the caller's own, claimed only
/// for a request the caller may make, and forgotten after 24 hours.
#[sqlx::test(migrations = "../migrations")]
async fn an_idempotency_key_is_the_callers_own_and_expires(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.command(json!({ "command": "start" })).await;
    let version = app.version().await;
    let body = json!({ "version": version, "command": "pause", "reason": "provider incident" });
    let send = |client: &reqwest::Client, key: &'static str| {
        client.post(app.url("/api/v1/rollouts/1/commands")).header("idempotency-key", key).json(&body).send()
    };
    let viewer = app.person("vera", "viewer").await;
    assert_eq!(send(&viewer, "pause-1").await.unwrap().status(), 403);
    let claimed: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys").fetch_one(&pool).await.unwrap();
    assert_eq!(claimed, 0, "a refused caller claims nothing");
    // The same key from someone allowed: acted on, not the viewer's refusal replayed.
    let first = send(&app.client, "pause-1").await.unwrap();
    assert_eq!((first.status(), first.headers().get("idempotent-replayed")), (reqwest::StatusCode::OK, None));
    // And another caller's identical key and body is not that caller's replay either.
    let operator = app.person("otto", "operator").await;
    let theirs = send(&operator, "pause-1").await.unwrap();
    assert_eq!((theirs.status(), theirs.headers().get("idempotent-replayed")), (reqwest::StatusCode::CONFLICT, None));

    // A day later the key is forgotten (and purged).
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'").execute(&pool).await.unwrap();
    let later = send(&app.client, "pause-1").await.unwrap();
    assert_eq!(later.status(), 409, "acted on again: the stale version is a conflict, not a replay");
    sqlx::query("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'").execute(&pool).await.unwrap();
    let purged = server::store::Store::new(pool.clone()).purge_expired(app.now()).await.unwrap();
    assert_eq!(purged.idempotency_keys, 2, "the admin's and the operator's");
    // Sessions are purged once past their end (here: a year on), and not before.
    assert_eq!(purged.sessions, 0);
    let year_on = app::domain::units::Timestamp(app.now().millis() + 365 * 86_400_000);
    let purged = server::store::Store::new(pool.clone()).purge_expired(year_on).await.unwrap();
    let signed_in = 3; // the admin (for adding people), the viewer and the operator
    assert!(purged.sessions >= signed_in, "{purged:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0);
}

/// Reads server-sent events until one named `kind` arrives (or 5 s pass).
async fn next_event(stream: &mut reqwest::Response, buffer: &mut String, kind: &str) {
    let wanted = format!("event: {kind}\n");
    loop {
        if let Some(at) = buffer.find(&wanted)
            && let Some(end) = buffer[at..].find("\n\n")
        {
            buffer.drain(..at + end + 2);
            return;
        }
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.chunk())
            .await
            .unwrap_or_else(|_| panic!("no `{kind}` event within 5 s; got {buffer:?}"))
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn open_dashboards_hear_of_every_change_on_any_replica(pool: PgPool) {
    let a = TestApp::spawn(pool.clone()).await;
    let b = TestApp::spawn(pool).await;
    let mut stream = b.client.get(b.url("/api/v1/rollouts/1/live")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let mut buffer = String::new();
    next_event(&mut stream, &mut buffer, "hello").await;
    assert!(buffer.is_empty() || !buffer.contains("changed"));

    // A checklist tick on the other replica…
    let (status, body) = a.post("/api/v1/rollouts/1/checklist/1", json!({ "checked": true })).await;
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    next_event(&mut stream, &mut buffer, "changed").await;
    // The browser test shows the page itself; this bound only catches a broken fan-out.
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());

    // …a command…
    assert_eq!(a.command(json!({ "command": "start" })).await.0, 200);
    next_event(&mut stream, &mut buffer, "changed").await;

    // …and new metrics all announce themselves.
    let event = json!({ "timestamp": support::START, "event_id": "live-1", "variant": "sync", "outcome": "success",
                        "latency_ms": 100.0, "memory_mb": 40.0, "provider": "kimi", "file_type": "csv", "size_bytes": 1000 });
    let response = a.client.post(a.url("/api/v1/events")).body(event.to_string()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    next_event(&mut stream, &mut buffer, "changed").await;
}

#[sqlx::test(migrations = "../migrations")]
async fn answers_are_compressed_for_clients_that_accept_it_but_event_streams_are_not(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let response = app.client.get(app.url("/api/v1/rollouts/1")).header("accept-encoding", "br, gzip").send().await.unwrap();
    assert_eq!(response.headers()["content-encoding"], "br");
    let response = app.client.get(app.url("/api/v1/rollouts/1/live")).header("accept-encoding", "br, gzip").send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().get("content-encoding").is_none(), "an event stream must flush each message");
}

/// The final stage's end-to-end matrix, computed from the events: every file type × size class
/// × provider of the plan needs its uploads before the stage can be left, and the control room
/// shows each cell.
#[sqlx::test(migrations = "../migrations")]
async fn the_final_stage_waits_for_every_cell_of_the_end_to_end_matrix(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.go_to_stage(4).await;
    app.advance_clock_minutes(1);
    let now = app.now().millis();
    let mut sequence = 0;
    let mut uploads = |file_type: &str, size_mb: u64, provider: &str, count: usize| {
        let mut lines = String::new();
        for _ in 0..count {
            sequence += 1;
            let event = json!({
                "timestamp": now - 1_000 - sequence, "event_id": format!("matrix-{sequence}"), "variant": "async",
                "outcome": "success", "latency_ms": 200.0, "memory_mb": 20.0, "provider": provider, "file_type": file_type,
                "size_bytes": size_mb * 1_048_576 - 1,
            });
            lines.push_str(&format!("{event}\n"));
        }
        lines
    };
    // 20 successful uploads (the plan's `min_per_cell`) in every cell but binary · 100 MB · glm.
    let mut lines = String::new();
    for file_type in ["text", "json", "csv", "markdown", "python", "binary"] {
        for size in [1, 10, 50, 100] {
            for provider in ["kimi", "glm"] {
                if (file_type, size, provider) != ("binary", 100, "glm") {
                    lines.push_str(&uploads(file_type, size, provider, 20));
                }
            }
        }
    }
    assert_eq!(app.post_events(&lines).await["accepted"], 47 * 20);
    let room = app.room().await;
    let matrix_gate =
        |room: &serde_json::Value| room["gates"].as_array().unwrap().iter().find(|g| g["criterion"] == "matrix").cloned().unwrap();
    let gate = matrix_gate(&room);
    assert_eq!(gate["verdict"], "inconclusive", "{gate}");
    assert_eq!(gate["explanation"], "47 of 48 cells pass; 1 short of 20 uploads: binary · 100 MB · glm (0 of 20)");
    let cells = room["matrix"]["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 48);
    let cell = |room: &serde_json::Value, file_type: &str, size: u64, provider: &str| {
        room["matrix"]["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["file_type"] == file_type && c["size_mb"] == size && c["provider"] == provider)
            .cloned()
            .unwrap()
    };
    let csv = cell(&room, "csv", 50, "kimi");
    assert_eq!((csv["uploads"].as_u64(), csv["failures"].as_u64(), csv["verdict"].as_str()), (Some(20), Some(0), Some("pass")), "{csv}");
    assert!((csv["p95_ms"].as_f64().unwrap() - 200.0).abs() <= 2.0, "{csv}");
    assert_eq!(cell(&room, "binary", 100, "glm")["uploads"], 0);
    let blocked =
        room["blockers"].as_array().unwrap().iter().any(|b| b["kind"] == "gate_not_passed" && b["criterion"] == "End-to-end matrix");
    assert!(blocked, "{}", room["blockers"]);

    // The last cell's uploads complete the matrix.
    assert_eq!(app.post_events(&uploads("binary", 100, "glm", 20)).await["accepted"], 20);
    let room = app.room().await;
    assert_eq!(matrix_gate(&room)["verdict"], "pass");
    assert_eq!(matrix_gate(&room)["explanation"], "48 of 48 cells pass");
    assert!(!room["blockers"].as_array().unwrap().iter().any(|b| b["criterion"] == "End-to-end matrix"), "{}", room["blockers"]);
}

/// The impact card's figures come from the stage's stored uploads: the treatment's memory per
/// upload is the stage's window's, and each expectation has its outcome.
#[sqlx::test(migrations = "../migrations")]
async fn the_impact_of_a_stage_is_measured_against_the_control_arm(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.go_to_stage(3).await;
    app.advance_clock_minutes(1);
    let mut model = server::simulate::Model::new(21, 3);
    app.simulate(&mut model, 2_000, 2_000, &[]).await;
    let room = app.room().await;
    let impact = &room["impact"];
    assert_eq!(impact["reference"], "control arm", "{impact}");
    assert_eq!(impact["treatment_uploads"], 2_000);
    let measures = impact["measures"].as_array().unwrap();
    let whats: Vec<&str> = measures.iter().map(|m| m["what"].as_str().unwrap()).collect();
    assert_eq!(whats, ["Memory per upload", "Latency p50", "Latency p95", "Timeout rate", "Throughput"]);
    // The figures are the stage's arms as the metrics window reads them.
    let now = app.now().millis();
    let window = app.get_json(&format!("/api/v1/rollouts/1/metrics?stage=3&from={}&to={}", now - 24 * 3_600_000, now + 60_000)).await;
    let memory = &measures[0];
    let close = |a: &serde_json::Value, b: &serde_json::Value| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-6;
    assert!(close(&memory["treatment"], &window["treatment"]["memory_mean_mb"]), "{memory} vs {}", window["treatment"]);
    assert!(close(&memory["reference"], &window["control"]["memory_mean_mb"]), "{memory} vs {}", window["control"]);
    // The simulated service streams instead of buffering: far less memory, proven.
    assert!(memory["reduction_pct"].as_f64().unwrap() > 80.0 && memory["outcome"] == "met", "{memory}");
    assert_eq!(measures[4]["outcome"], "not_measured");
    // The 50% stage does not require validation: no gate for it.
    assert!(!room["gates"].as_array().unwrap().iter().any(|g| g["criterion"] == "performance"));
}

/// The whole audit trail, a page at a time with filters, and as a CSV download whose cells no
/// spreadsheet runs as a formula.
#[sqlx::test(migrations = "../migrations")]
async fn the_audit_trail_pages_filters_and_exports(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.go_to_stage(2).await;
    let version = app.room().await["state"]["version"].as_u64().unwrap();
    let (status, body) =
        app.command(json!({ "version": version, "command": "pause", "reason": "=HYPERLINK(\"http://x\",\"click\")" })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        app.command(json!({ "version": version + 1, "command": "roll_back", "target": "previous", "reason": "-2+3\nsecond line" })).await;
    assert_eq!(status, 200, "{body}");
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE rollout_id = 1").fetch_one(&pool).await.unwrap();
    assert!(total >= 5, "{total}");

    // Pages of two, newest first, until `next_before` runs out: every entry once.
    let (mut seen, mut before) = (Vec::new(), None::<i64>);
    loop {
        let path = match before {
            Some(id) => format!("/api/v1/rollouts/1/audit?limit=2&before={id}"),
            None => "/api/v1/rollouts/1/audit?limit=2".to_string(),
        };
        let page = app.get_json(&path).await;
        let ids: Vec<i64> = page["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect();
        assert!(ids.len() <= 2 && ids.windows(2).all(|w| w[0] > w[1]), "{page}");
        seen.extend(ids);
        match page["next_before"].as_i64() {
            Some(id) => before = Some(id),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, total, "{seen:?}");
    seen.dedup();
    assert_eq!(seen.len() as i64, total);
    // A page that holds exactly the rest says so: no next page.
    let exact = app.get_json(&format!("/api/v1/rollouts/1/audit?limit={total}")).await;
    assert_eq!((exact["entries"].as_array().unwrap().len() as i64, exact["next_before"].is_null()), (total, true), "{exact}");

    // Filters: the pause, with the stage it was made in, its version and its evidence.
    let paused = app.get_json("/api/v1/rollouts/1/audit?action=pause").await;
    let entries = paused["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{paused}");
    assert_eq!((entries[0]["stage"].as_i64(), entries[0]["version"].as_u64()), (Some(2), Some(version + 1)), "{paused}");
    assert_eq!(entries[0]["evidence"]["to"]["status"], "paused");
    assert_eq!(app.get_json("/api/v1/rollouts/1/audit?stage=2&action=advance").await["entries"].as_array().unwrap().len(), 0);
    assert!(!app.get_json("/api/v1/rollouts/1/audit?stage=1").await["entries"].as_array().unwrap().is_empty());

    // CSV: a header, one line per entry; the typed formula neutralised and quoted.
    let response = app.client.get(app.url("/api/v1/rollouts/1/audit?format=csv&action=pause")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(response.headers()["content-disposition"].to_str().unwrap().contains("rollout-1-audit.csv"));
    let csv = response.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "id,at,actor,action,stage,version,summary,reason");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].ends_with(r#","'=HYPERLINK(""http://x"",""click"")""#), "{csv}");
    // The whole trail, without a limit: every entry; a reason with a line break stays one quoted
    // cell, its leading minus neutralised too.
    let whole = app.client.get(app.url("/api/v1/rollouts/1/audit?format=csv")).send().await.unwrap().text().await.unwrap();
    assert_eq!(whole.matches("\r\n").count() as i64, total + 1, "{whole}");
    assert!(whole.contains(",\"'-2+3\nsecond line\"\r\n"), "{whole}");

    // Mistakes name the parameter.
    for (query, field) in
        [("limit=0", "limit"), ("limit=5000", "limit"), ("format=xml", "format"), ("from=yesterday", "from"), ("stage=-1", "stage")]
    {
        let response = app.client.get(app.url(&format!("/api/v1/rollouts/1/audit?{query}"))).send().await.unwrap();
        assert_eq!(response.status(), 422, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    let missing = app.client.get(app.url("/api/v1/rollouts/99/audit")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

/// The status page keeps every incident, not the newest few: seven pauses, each listed.
#[sqlx::test(migrations = "../migrations")]
async fn the_status_page_lists_every_incident(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.go_to_stage(1).await;
    for i in 0..7 {
        let version = app.room().await["state"]["version"].as_u64().unwrap();
        let (status, body) = app.command(json!({ "version": version, "command": "pause", "reason": format!("incident {i}") })).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = app.command(json!({ "version": version + 1, "command": "resume" })).await;
        assert_eq!(status, 200, "{body}");
    }
    let viewer = app.person("vera", "viewer").await;
    let status = viewer.get(app.url("/status")).send().await.unwrap().text().await.unwrap();
    // The oldest ones too (the page used to keep the newest five).
    for i in 0..7 {
        assert!(status.contains(&format!("incident {i}")), "the status page lacks incident {i}");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn the_recurring_lists_come_each_day_to_tick_with_a_finding_and_never_block(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    // A draft has no routines yet; the guard loop makes them once the rollout runs.
    app.guard.tick_now(app.now()).await.unwrap();
    assert_eq!(app.room().await["routines"], json!([]));
    assert_eq!(app.command(json!({ "command": "start" })).await.0, 200);
    app.guard.tick_now(app.now()).await.unwrap();
    app.guard.tick_now(app.now()).await.unwrap();
    let room = app.room().await;
    let routines = room["routines"].as_array().unwrap().clone();
    let sections: std::collections::BTreeSet<&str> = routines.iter().map(|r| r["section"].as_str().unwrap()).collect();
    // The tests' clock starts on Sunday 2026-11-22: its week began on Monday the 16th.
    assert_eq!(
        sections.into_iter().collect::<Vec<_>>(),
        ["Each day · 2026-11-22", "Each evening · 2026-11-22", "Weekly monitoring · week of 2026-11-16"]
    );
    assert_eq!(routines.len(), 6 + 5 + 4, "each list once, however often the guard looked");
    assert!(room["checklist"].as_array().unwrap().iter().all(|i| i["period"].is_null()), "the stage's own list apart");

    // A tick with a finding and an owner, kept and audited.
    let first = &routines[0];
    let tick = json!({ "checked": true, "note": "two 502s from glm at 03:10, retried fine", "owner": "ana" });
    let (status, item) = app.post(&format!("/api/v1/rollouts/1/checklist/{}", first["id"]), tick).await;
    assert_eq!(status, 200, "{item}");
    assert_eq!(
        (item["note"].as_str(), item["owner"].as_str(), item["period"].as_str()),
        (Some("two 502s from glm at 03:10, retried fine"), Some("ana"), Some("2026-11-22"))
    );
    let (status, item) = app.post(&format!("/api/v1/rollouts/1/checklist/{}", first["id"]), json!({ "checked": true })).await;
    assert_eq!((status, item["note"].as_str()), (200, Some("two 502s from glm at 03:10, retried fine")), "a tick without a note keeps it");
    let audited: String =
        sqlx::query_scalar("SELECT summary FROM audit_log WHERE action = 'tick' ORDER BY id LIMIT 1").fetch_one(&pool).await.unwrap();
    assert!(audited.ends_with(": two 502s from glm at 03:10, retried fine"), "{audited}");
    let (status, body) =
        app.post(&format!("/api/v1/rollouts/1/checklist/{}", first["id"]), json!({ "checked": true, "note": "a\u{7}" })).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("note")));

    // Open routines never block: only the stage's own list does.
    let blockers = |room: &serde_json::Value| {
        room["blockers"].as_array().unwrap().iter().map(|b| b["kind"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert!(blockers(&app.room().await).contains(&"checklist_incomplete".to_string()));
    support::tick_stage(&app, 0).await;
    assert!(!blockers(&app.room().await).contains(&"checklist_incomplete".to_string()), "{:?}", blockers(&app.room().await));

    // The next day brings the daily lists again (and Monday a new week); yesterday's and last
    // week's items still open stay on show until ticked (a team west of UTC is still in its
    // evening), the one done does not.
    let shown = |room: &serde_json::Value| {
        let routines = room["routines"].as_array().unwrap().clone();
        let sections: std::collections::BTreeSet<String> = routines.iter().map(|r| r["section"].as_str().unwrap().to_string()).collect();
        (routines, sections.into_iter().collect::<Vec<_>>())
    };
    app.advance_clock_hours(24);
    app.guard.tick_now(app.now()).await.unwrap();
    let (routines, sections) = shown(&app.room().await);
    assert_eq!(
        sections,
        [
            "Each day · 2026-11-22",
            "Each day · 2026-11-23",
            "Each evening · 2026-11-22",
            "Each evening · 2026-11-23",
            "Weekly monitoring · week of 2026-11-16",
            "Weekly monitoring · week of 2026-11-23"
        ]
    );
    assert_eq!(routines.len(), 2 * (6 + 5 + 4) - 1, "all of today's, and yesterday's but the one ticked");
    assert!(routines.iter().all(|r| r["id"] != first["id"]));
    // A day on, the day before yesterday's open items are in the reports only.
    app.advance_clock_hours(24);
    app.guard.tick_now(app.now()).await.unwrap();
    let (_, sections) = shown(&app.room().await);
    assert_eq!(
        sections,
        [
            "Each day · 2026-11-23",
            "Each day · 2026-11-24",
            "Each evening · 2026-11-23",
            "Each evening · 2026-11-24",
            "Weekly monitoring · week of 2026-11-16",
            "Weekly monitoring · week of 2026-11-23"
        ]
    );
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM checklist_items WHERE period = '2026-11-22' AND checked_at IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(kept, 1);
}

/// A checklist item's finding and owner, written with the control room's plain form: kept with
/// the item (who ticked it and when stay as they were), on the audit trail, cleared by blanks;
/// refused for a viewer, and for a finding too long, by field.
#[sqlx::test(migrations = "../migrations")]
async fn a_finding_and_an_owner_are_written_from_the_page_without_touching_the_tick(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let item = app.room().await["checklist"][1]["id"].as_i64().unwrap();
    let (status, ticked) = app.post(&format!("/api/v1/rollouts/1/checklist/{item}"), json!({ "checked": true })).await;
    assert_eq!(status, 200, "{ticked}");
    let form = |client: &reqwest::Client, body: &str| {
        client
            .post(app.url(&format!("/rollouts/1/checklist/{item}/note")))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", app.base.clone())
            .body(body.to_string())
            .send()
    };
    let operator = app.person("olga", "operator").await;
    // The page of its own: the item, its tick, the form (a person's text escaped).
    let page = operator.get(app.url(&format!("/rollouts/1/checklist/{item}/note"))).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let page = page.text().await.unwrap();
    let text = ticked["text"].as_str().unwrap();
    assert!(page.contains(&format!("<strong>{text}</strong>")) && page.contains("Ticked by token:test-suite at "), "{page}");
    assert!(page.contains("<form method=\"post\"") && page.contains(&format!("href=\"/rollouts/1#item-{item}\"")), "{page}");
    let response = form(&operator, "note=Logs+clean+since+09%3A00&owner=+olga+").await.unwrap();
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(response.headers()["location"], format!("/rollouts/1#item-{item}").as_str());
    let room = app.room().await;
    let written = room["checklist"].as_array().unwrap().iter().find(|i| i["id"] == item).unwrap().clone();
    assert_eq!((written["note"].as_str(), written["owner"].as_str()), (Some("Logs clean since 09:00"), Some("olga")), "{written}");
    assert_eq!((&written["checked_by"], &written["checked_at"]), (&ticked["checked_by"], &ticked["checked_at"]), "the tick is as it was");
    assert_eq!(room["audit"][0]["action"], "note");
    assert!(room["audit"][0]["summary"].as_str().unwrap().ends_with(": Logs clean since 09:00 (owner olga)"), "{}", room["audit"][0]);

    // Blanks clear both.
    assert_eq!(form(&operator, "note=+&owner=").await.unwrap().status().as_u16(), 303);
    let cleared = app.room().await["checklist"].as_array().unwrap().iter().find(|i| i["id"] == item).unwrap().clone();
    assert_eq!((&cleared["note"], &cleared["owner"]), (&Value::Null, &Value::Null), "{cleared}");

    // Written text comes back escaped in the form.
    assert_eq!(form(&operator, "note=%3Cscript%3E%22x%22&owner=a%22b").await.unwrap().status().as_u16(), 303);
    let page = operator.get(app.url(&format!("/rollouts/1/checklist/{item}/note"))).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("&lt;script&gt;&quot;x&quot;</textarea>") && page.contains("value=\"a&quot;b\""), "{page}");
    assert!(!page.contains("<script>"), "{page}");

    let viewer = app.person("vic", "viewer").await;
    assert_eq!(form(&viewer, "note=x").await.unwrap().status().as_u16(), 403);
    let page = viewer.get(app.url(&format!("/rollouts/1/checklist/{item}/note"))).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 403);
    let response = form(&operator, &format!("note={}", "x".repeat(2_001))).await.unwrap();
    assert_eq!(response.status().as_u16(), 422);
    assert_eq!(response.json::<Value>().await.unwrap()["field"], "note");
    assert_eq!(form(&operator, "note=x").await.unwrap().status().as_u16(), 303);
    let missing = operator
        .post(app.url("/rollouts/1/checklist/999999/note"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", app.base.clone())
        .body("note=x")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

/// Without JavaScript a command is a plain form post to its server function, which sends the
/// browser back to the page; a refusal comes back with it and is shown where the form is (the
/// page is whole without the WASM), and a later visit of the page shows none.
#[sqlx::test(migrations = "../migrations")]
async fn a_command_sent_without_javascript_comes_back_to_the_page_with_its_refusal(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let (ana, _) = app.approvers().await;
    let page = app.url("/rollouts/1");
    let stale = app.version().await;
    // Someone else starts the rollout first; ana's page still offers Start at the old version.
    assert_eq!(app.command(json!({ "command": "start" })).await.0, 200);
    let response = ana
        .post(app.url("/api/run_command"))
        .header("accept", "text/html")
        .header("referer", &page)
        .form(&[("rollout_id", "1"), ("version", &stale.to_string()), ("action", "start")])
        .send()
        .await
        .unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    let back = response.headers()["location"].to_str().unwrap().to_string();
    assert!(back.starts_with(&page) && back.contains("__err="), "{back}");
    let html = ana.get(&back).send().await.unwrap().text().await.unwrap();
    let refusal = action_error(&html);
    assert!(!refusal.contains(" hidden"), "{refusal}");
    assert!(refusal.contains("Someone else acted first; the page now shows the current state."), "{refusal}");
    assert_eq!(app.room().await["state"]["status"], "running");

    // The page on its own shows no refusal.
    let html = ana.get(&page).send().await.unwrap().text().await.unwrap();
    assert!(action_error(&html).contains(" hidden"), "{}", action_error(&html));
}

/// The actions card's refusal slot as the page has it (`<p …data-testid="action-error"…>…</p>`).
fn action_error(html: &str) -> &str {
    let at = html.find(r#"data-testid="action-error""#).expect("the actions card's refusal slot");
    let start = html[..at].rfind("<p").unwrap();
    let end = at + html[at..].find("</p>").unwrap();
    &html[start..end]
}
