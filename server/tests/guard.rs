//! The guard loop against the real server and Postgres, driven by the simulator's model:
//! an error spike is rolled back by itself within seconds; a sustained latency drift raises a
//! review that blocks Advance until an approver acknowledges it; the timers survive a restart.

mod support;

use app::domain::event::Variant;
use app::domain::units::Timestamp;
use serde_json::{Value, json};
use server::simulate::{Model, Regression};
use sqlx::PgPool;
use std::time::{Duration, Instant};
use support::{TestApp, rampart};

async fn upload(app: &TestApp, model: &mut Model, control: usize, treatment: usize, regressions: &[Regression]) -> Value {
    app.simulate(model, control, treatment, regressions).await
}

/// Goes to `stage`, then lets a minute pass so that new uploads belong to that stage.
async fn go_to_stage(app: &TestApp, stage: u64) {
    app.go_to_stage(stage).await;
    app.advance_clock_minutes(1);
}

#[sqlx::test(migrations = "../migrations")]
async fn an_error_spike_at_10_percent_is_rolled_back_within_seconds(pool: PgPool) {
    // The guard's own timer is 5 minutes here: only the ingest's wake-up can act within 5 s.
    let (plan, _plan_file) = support::plan_with_slow_guard();
    let app = TestApp::spawn_with(pool.clone(), |config| {
        config.plan = Some(plan.clone());
        config.webhook_allow = server::egress::Egress::parse("127.0.0.0/8").unwrap();
    })
    .await;
    let mut model = Model::new(11, 1);
    go_to_stage(&app, 2).await;
    upload(&app, &mut model, 900, 100, &[]).await;
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty(), "a healthy window is left alone");
    assert_eq!(app.get_json("/api/v1/flags/async_upload").await["percentage"], 10);

    // The spike: the ingest wakes the guard loop; nothing here calls tick().
    let started = Instant::now();
    let report = upload(&app, &mut model, 900, 100, &[Regression::ErrorRate(40.0)]).await;
    assert_eq!(report["accepted"], 1_000);
    loop {
        let config = app.get_json("/api/v1/flags/async_upload").await;
        if config["enabled"] == false {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still serving {config} after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    eprintln!("breach to flag served off: {took:?}");

    let room = app.room().await;
    assert_eq!((room["state"]["stage"].as_u64(), room["state"]["status"].as_str()), (Some(0), Some("rolled_back")));
    let entry = &room["audit"][0];
    assert_eq!((entry["actor"].as_str(), entry["action"].as_str()), (Some("rampart guard"), Some("auto_roll_back")));
    assert!(entry["summary"].as_str().unwrap().starts_with("Rolled back automatically from stage 2"), "{entry}");
    assert!(entry["reason"].as_str().unwrap().contains("error rate"), "{entry}");
    let evidence: Value =
        sqlx::query_scalar("SELECT evidence FROM audit_log WHERE action = 'auto_roll_back'").fetch_one(&pool).await.unwrap();
    let breach =
        evidence["breaches"].as_array().unwrap().iter().find(|b| b["rule"] == "error_rate_above").expect("the error-rate rule fired");
    assert!(breach["sample"].as_u64().unwrap() >= 200 && breach["threshold"] == 5.0, "{evidence}");

    let receipt = &breach["receipt"];
    assert_eq!(
        (receipt["method"].as_str(), receipt["rule_version"].as_u64()),
        (Some("sequence"), Some(u64::from(app::domain::receipt::RULE_VERSION))),
        "{breach}"
    );
    assert!(receipt["statistic"].as_f64().unwrap() >= receipt["boundary"].as_f64().unwrap(), "{receipt}");

    // Acting twice on the same breach is impossible: the next tick finds the flag off.
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty());
    let rollbacks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auto_roll_back'").fetch_one(&pool).await.unwrap();
    assert_eq!(rollbacks, 1);

    // `rampart backtest` replays the stored evidence: the current rules roll back in stage 2.
    let (ok, stdout) = rampart(&pool, &["backtest", "1"]);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("stage 2 “10% rollout”") && stdout.contains("200 treatment uploads"), "{stdout}");
    assert!(stdout.contains("would roll back (success_rate_below)") && stdout.contains("would roll back (error_rate_above)"), "{stdout}");
    // With rollback lines at 50%, the same evidence (a quarter of it failing) rolls nothing back.
    let dir = std::env::temp_dir().join(format!("rampart-backtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let loose = dir.join("loose.toml");
    let plan = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../plans/async-upload.toml")).unwrap();
    let plan = plan
        .replacen("success_rate_below = 95.0", "success_rate_below = 50.0", 1)
        .replacen("error_rate_above = 5.0", "error_rate_above = 50.0", 1)
        .replacen("success_band = [95.0, 97.0]", "success_band = [50.0, 97.0]", 1);
    std::fs::write(&loose, plan).unwrap();
    let (ok, stdout) = rampart(&pool, &["backtest", "1", "--plan", loose.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("stage 2 “10% rollout”") && !stdout.contains("would roll back"), "{stdout}");

    // `rampart explain` recomputes the decision from the stored rollups and finds the receipt.
    let entry: i64 = sqlx::query_scalar("SELECT id FROM audit_log WHERE action = 'auto_roll_back'").fetch_one(&pool).await.unwrap();
    let (ok, stdout) = explain(&pool, entry);
    assert!(ok, "{stdout}");
    assert!(stdout.contains("error_rate_above") && stdout.contains("success_rate_below"), "{stdout}");
    assert_eq!(stdout.matches("the same decision from the stored data").count(), 2, "{stdout}");
    // Stored data that no longer supports the decision (here: its errors edited away) make it
    // say so and fail. (Once the background fold has folded
    // every pending delta, nothing else writes the rollups: the edit cannot be overwritten.)
    let started = Instant::now();
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_rollup_deltas").fetch_one(&pool).await.unwrap() > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "the fold never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Late uploads of the judged minute (here: ten more successes) leave the decision standing.
    sqlx::query("UPDATE event_rollups_by_arm SET success = success + 10 WHERE variant = 'treatment' AND stage = 2")
        .execute(&pool)
        .await
        .unwrap();
    let (ok, stdout) = explain(&pool, entry);
    assert!(
        ok && stdout.matches("the same decision; the judged minutes have gained 10 uploads since it was made").count() == 2,
        "{stdout}"
    );
    let edited =
        sqlx::query("UPDATE event_rollups_by_arm SET success = success + error, error = 0 WHERE variant = 'treatment' AND stage = 2")
            .execute(&pool)
            .await
            .unwrap();
    assert_eq!(edited.rows_affected(), 1);
    let (ok, stdout) = explain(&pool, entry);
    assert!(!ok && stdout.contains("DIFFERENT from the stored receipt"), "{stdout}");
    // Only automatic rollbacks carry receipts.
    let other: i64 = sqlx::query_scalar("SELECT min(id) FROM audit_log").fetch_one(&pool).await.unwrap();
    let (ok, _) = explain(&pool, other);
    assert!(!ok);
}

/// Runs `rampart explain 1 ENTRY` against the test's database.
fn explain(pool: &PgPool, entry: i64) -> (bool, String) {
    rampart(pool, &["explain", "1", &entry.to_string()])
}

/// Advances over a failing sample-ratio row with `reason`; `rampart explain` then shows the row
/// as stored (`stored`: its counts) and recomputes the same decision. Returns what it printed.
async fn advance_and_explain_sample_ratio(app: &TestApp, reason: &str, stored: &str) -> String {
    let (status, body) = app.advance(Some(reason)).await;
    assert_eq!(status, 200, "{body}");
    let entry: i64 = sqlx::query_scalar("SELECT id FROM audit_log WHERE action = 'advance' ORDER BY id DESC LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (ok, stdout) = explain(&app.pool, entry);
    assert!(ok, "{stdout}");
    let row = stdout.split("\nSample ratio: fail\n").nth(1).unwrap_or_else(|| panic!("no failing sample-ratio row: {stdout}"));
    assert!(row.starts_with(&format!("  stored:     sequential sample-ratio test: {stored}")), "{stdout}");
    assert!(row.lines().take(4).any(|l| l == "  the same decision from the stored data"), "{stdout}");
    stdout
}

/// A wake-up that finds another process mid-tick (holding the guard's lock) used to be dropped:
/// the breach then waited for the next timer tick. It is retried once the lock is free.
#[sqlx::test(migrations = "../migrations")]
async fn a_wake_up_while_another_process_ticks_is_not_lost(pool: PgPool) {
    let (plan, _plan_file) = support::plan_with_slow_guard();
    let app = TestApp::spawn_with(pool.clone(), |config| config.plan = Some(plan.clone())).await;
    let mut model = Model::new(15, 1);
    go_to_stage(&app, 2).await;
    upload(&app, &mut model, 900, 100, &[]).await;
    // Another process is ticking: it holds the guard's lock for a second.
    let mut other = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(7002, 0)").execute(&mut *other).await.unwrap();
    let started = Instant::now();
    upload(&app, &mut model, 900, 100, &[Regression::ErrorRate(40.0)]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.get_json("/api/v1/flags/async_upload").await["enabled"], true, "nothing can act while the lock is held");
    other.rollback().await.unwrap();
    while app.get_json("/api/v1/flags/async_upload").await["enabled"] == true {
        assert!(started.elapsed() < Duration::from_secs(5), "the wake-up was lost: still on after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_sustained_latency_drift_blocks_advance_until_acknowledged(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.control_is_sampled().await;
    let mut model = Model::new(12, 1);
    // Baseline from flag-off traffic.
    upload(&app, &mut model, 400, 0, &[]).await;
    let now = app.now().millis();
    let (status, body) = app.post("/api/v1/rollouts/1/baseline", json!({ "from": now - 600_000, "to": now })).await;
    assert_eq!(status, 200, "{body}");
    go_to_stage(&app, 1).await;

    // Treatment five times slower than the baseline: about a fifth of its uploads are slower than
    // 120% of the baseline p95 (the limit allows 5%), but no auto-rollback rule.
    upload(&app, &mut model, 0, 300, &[Regression::Latency(5.0)]).await;
    app.guard.tick_now(app.now()).await.unwrap();
    let timers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM guard_conditions WHERE condition = 'latency_high'").fetch_one(&pool).await.unwrap();
    assert_eq!(timers, 1, "the drift starts a timer");
    assert_eq!(app.room().await["alerts"], json!([]), "not yet sustained");

    // 31 minutes later, on a restarted server (the timer lives in Postgres).
    let restarted = TestApp::spawn(pool.clone()).await;
    restarted.advance_clock_minutes(32);
    upload(&restarted, &mut model, 0, 300, &[Regression::Latency(5.0)]).await;
    let actions = restarted.guard.tick_now(restarted.now()).await.unwrap();
    let room = restarted.room().await;
    assert_eq!(room["served"]["percentage"], 1, "a review does not roll back: {actions:?}");
    let alert = &room["alerts"][0];
    assert!(alert["message"].as_str().unwrap().contains("p95 latency"), "{room}");
    let alert_id = alert["id"].as_i64().unwrap();

    let (status, body) = restarted.advance(Some("looks fine to me")).await;
    assert_eq!(status, 422, "an open alert cannot be overridden: {body}");
    assert!(body["blockers"].as_array().unwrap().iter().any(|b| b["kind"] == "alert_open"), "{body}");

    let path = format!("/api/v1/rollouts/1/alerts/{alert_id}/acknowledge");
    let (status, body) = restarted.post(&path, json!({ "note": " " })).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("note")));
    let (status, _) = restarted.post(&path, json!({ "note": "Provider GLM degraded; async path itself healthy" })).await;
    assert_eq!(status, 200);
    // The drift goes on, but the acknowledgement covers it: the next ticks raise nothing new.
    restarted.advance_clock_minutes(1);
    restarted.guard.tick_now(restarted.now()).await.unwrap();
    assert_eq!(restarted.room().await["alerts"].as_array().unwrap().iter().filter(|a| a["acknowledged_at"].is_null()).count(), 0);
    let (status, body) = restarted.advance(Some("latency explained by provider incident")).await;
    assert_eq!(status, 200, "{body}");
    let audit: Vec<String> =
        restarted.room().await["audit"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    assert!(audit.starts_with(&["approve", "advance", "acknowledge", "alert"].map(String::from)), "{audit:?}");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_split_far_from_the_flags_percentage_raises_an_alert_and_blocks_advance(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let mut model = Model::new(14, 1);
    go_to_stage(&app, 2).await;
    let sample_ratio = |room: &Value| room["gates"].as_array().unwrap().iter().find(|g| g["criterion"] == "sample_ratio").cloned();
    // Just after the advance from 5% to 10%, clients still caching the flag send at the old
    // split: the stage's first five minutes are left out, so that lag is no mismatch.
    upload(&app, &mut model, 1_900, 100, &[]).await;
    app.advance_clock_minutes(1);
    upload(&app, &mut model, 1_900, 100, &[]).await;
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty());
    let row = sample_ratio(&app.room().await).unwrap();
    assert_eq!((row["verdict"].as_str(), row["sample"].as_u64()), (Some("pass"), Some(0)), "{row}");
    app.advance_clock_minutes(5);
    // 10% served, 10% of the uploads treated: nothing to see.
    upload(&app, &mut model, 1_800, 200, &[]).await;
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty());
    let row = sample_ratio(&app.room().await).expect("a sample-ratio row at a 10% stage");
    assert_eq!(
        (row["verdict"].as_str(), row["threshold"].as_f64(), row["sample"].as_u64()),
        (Some("pass"), Some(10.0), Some(2_000)),
        "{row}"
    );

    // Then the control arm's uploads stop arriving (a collector dropped them): 20% treated. The
    // row fails at once; the alert waits ten minutes (arms' batches can arrive out of step).
    upload(&app, &mut model, 0, 500, &[]).await;
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty());
    assert_eq!(sample_ratio(&app.room().await).unwrap()["verdict"], "fail");
    app.advance_clock_minutes(9);
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty(), "not yet ten minutes");
    app.advance_clock_minutes(1);
    let actions = app.guard.tick_now(app.now()).await.unwrap();
    assert_eq!(actions, [server::guard::Action::Alerted { rollout_id: 1, rule: "sample_ratio_mismatch".into() }]);
    let room = app.room().await;
    let row = sample_ratio(&room).unwrap();
    assert_eq!(row["verdict"], "fail", "{row}");
    let alert = &room["alerts"][0];
    let message = alert["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "sample ratio mismatch for 10m: 700 treatment and 1,800 control uploads (counted from 5m after the stage began): 28.0% treatment where the flag serves 10% (p "
        ),
        "{message}"
    );
    let (status, body) = app.advance(Some("ship it")).await;
    assert_eq!(status, 422, "an open alert is not overridden: {body}");
    let kinds: Vec<&str> = body["blockers"].as_array().unwrap().iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"alert_open") && kinds.contains(&"gate_not_passed"), "{body}");

    // Acknowledged, it stays so while the mismatch lasts.
    let path = format!("/api/v1/rollouts/1/alerts/{}/acknowledge", alert["id"]);
    assert_eq!(app.post(&path, json!({ "note": "collector restarted; control uploads of 09:00–09:20 lost" })).await.0, 200);
    app.advance_clock_hours(3);
    upload(&app, &mut model, 0, 100, &[]).await;
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty(), "no second alert in the same stage");

    // Advanced over the failing row with a reason, the command's entry keeps the row with its
    // receipt (the counts, the planned share, the log Bayes factor), and `rampart explain`
    // recomputes it from the stored rollups; so too a criterion relative to control (set here
    // in the stored plan), whose receipt holds both arms' counts.
    sqlx::query("UPDATE plans SET definition = jsonb_set(definition, '{stages,2,criteria,failures_vs_control_max}', '0.2')")
        .execute(&pool)
        .await
        .unwrap();
    let stdout = advance_and_explain_sample_ratio(
        &app,
        "control uploads lost in the collector (INC-42); assignment verified by hand",
        "800 treatment of 2600 uploads against a planned 10.00%",
    )
    .await;
    let row = stdout.split("\nFailures vs control: ").nth(1).expect("the relative row");
    assert!(row.lines().nth(1).unwrap().starts_with("  stored:     confidence sequence of treatment − control: "), "{stdout}");
    assert!(row.lines().take(4).any(|l| l == "  the same decision from the stored data"), "{stdout}");
}

/// Uploads of `units` (by name), `each` from each, served by `variant`, at the server's time.
fn uploads_of(app: &TestApp, model: &mut Model, units: &[String], each: usize, variant: Variant) -> String {
    let now = app.now().millis();
    let mut lines = String::new();
    for (u, unit) in units.iter().enumerate() {
        for i in 0..each {
            let mut event = model.event(Timestamp(now - 1_000 - (u * each + i) as i64 % 50_000), variant, &[]);
            event["unit"] = json!(unit);
            lines.push_str(&format!("{event}\n"));
        }
    }
    lines
}

/// When the uploads name their unit, the sample-ratio check counts units, which is what the
/// flag splits: one busy treatment unit's thousands of uploads are no mismatch. The count is
/// kept live with each batch, agrees with the raw events, and `rampart explain` recomputes it.
#[sqlx::test(migrations = "../migrations")]
async fn the_sample_ratio_counts_distinct_units_where_uploads_name_them(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let mut model = Model::new(16, 1);
    go_to_stage(&app, 2).await;
    app.advance_clock_minutes(5);
    let sample_ratio = |room: &Value| room["gates"].as_array().unwrap().iter().find(|g| g["criterion"] == "sample_ratio").cloned().unwrap();
    let names = |prefix: &str, n: usize| (0..n).map(|i| format!("{prefix}-{i}")).collect::<Vec<_>>();
    let (treated, untreated) = (names("t", 100), names("c", 900));
    // 10% served: 100 treatment and 900 control units, each sending one upload; then one
    // treatment unit sends 2,000 more, in two batches, and every control unit a second.
    let mut lines = uploads_of(&app, &mut model, &treated, 1, Variant::Treatment);
    lines += &uploads_of(&app, &mut model, &untreated, 1, Variant::Control);
    assert_eq!(app.post_events(&lines).await["accepted"], 1_000);
    app.advance_clock_minutes(1);
    for _ in 0..2 {
        assert_eq!(app.post_events(&uploads_of(&app, &mut model, &treated[..1], 1_000, Variant::Treatment)).await["accepted"], 1_000);
    }
    assert_eq!(app.post_events(&uploads_of(&app, &mut model, &untreated, 1, Variant::Control)).await["accepted"], 900);
    let row = sample_ratio(&app.room().await);
    assert_eq!(
        (row["verdict"].as_str(), row["sample"].as_u64(), row["observed"].as_f64()),
        (Some("pass"), Some(1_000), Some(10.0)),
        "{row}"
    );
    let explanation = row["explanation"].as_str().unwrap();
    assert!(explanation.starts_with("100 treatment and 900 control units (of 2,100 and 1,800 uploads)"), "{explanation}");
    assert_eq!(row["receipt"]["method"], "unit_ratio", "{row}");
    // Counted on uploads, the same stage would be a glaring mismatch (54% treated).
    let uploads = app::domain::gates::SampleRatio::check(2_100, 1_800, 10.0).unwrap();
    assert!(uploads.mismatch(), "{uploads:?}");
    // The guard sees the units too: ten minutes on, no mismatch alert.
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty());
    app.advance_clock_minutes(11);
    assert!(app.guard.tick_now(app.now()).await.unwrap().is_empty());

    // The live count equals the raw events' distinct units, for each arm.
    let store = server::store::Store::new(pool.clone());
    let from = Timestamp(row["receipt"]["from"].as_i64().unwrap());
    let live = store.units_seen(1, 2, from).await.unwrap();
    assert_eq!(live, (100, 900));
    assert_eq!(store.units_between(1, 2, from, app.now()).await.unwrap(), live);

    // Control units that stop arriving are found, however many uploads each sends: 100 new
    // treatment units (200 in all against 900) is 18% treated where 10% is served.
    let lines = uploads_of(&app, &mut model, &names("t2", 100), 1, Variant::Treatment);
    assert_eq!(app.post_events(&lines).await["accepted"], 100);
    let row = sample_ratio(&app.room().await);
    assert_eq!((row["verdict"].as_str(), row["sample"].as_u64()), (Some("fail"), Some(1_100)), "{row}");

    // Advanced over it with a reason, `rampart explain` recomputes the units from the raw events.
    advance_and_explain_sample_ratio(
        &app,
        "treatment units double-counted by a retrying client (INC-7)",
        "200 treatment of 1100 distinct units against a planned 10.00%",
    )
    .await;
}

#[sqlx::test(migrations = "../migrations")]
async fn gates_go_from_inconclusive_to_pass_as_healthy_uploads_arrive(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    let mut model = Model::new(13, 1);
    upload(&app, &mut model, 300, 0, &[]).await;
    let now = app.now().millis();
    app.post("/api/v1/rollouts/1/baseline", json!({ "from": now - 600_000, "to": now })).await;
    go_to_stage(&app, 1).await;
    let verdict = |room: &Value, criterion: &str| {
        room["gates"].as_array().unwrap().iter().find(|g| g["criterion"] == criterion).unwrap()["verdict"].as_str().unwrap().to_string()
    };
    upload(&app, &mut model, 0, 40, &[]).await;
    let room = app.room().await;
    assert_eq!(verdict(&room, "min_events"), "inconclusive");
    assert_eq!(verdict(&room, "success_rate"), "inconclusive");
    assert!(room["blockers"].as_array().unwrap().iter().any(|b| b["kind"] == "gate_not_passed"));
    // The evidence still needed, in uploads and in time at this stage's pace so far.
    let success = room["gates"].as_array().unwrap().iter().find(|g| g["criterion"] == "success_rate").unwrap();
    let explanation = success["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("more uploads at the observed rate, ≈ ") && explanation.contains("at the last hour's pace"),
        "{explanation}"
    );
    assert!(success["more_uploads"].as_u64().unwrap() > 1_000, "{success}");

    // 2,000 clean uploads: enough for the stage minimum, latency and memory (the success rate at
    // the simulated 0.2% needs about 5,000 to be proven above 99.5%).
    for _ in 0..4 {
        upload(&app, &mut model, 0, 500, &[]).await;
    }
    let room = app.room().await;
    assert_eq!(verdict(&room, "min_events"), "pass");
    assert_eq!(verdict(&room, "latency_p95"), "pass", "{}", room["gates"]);
    assert_eq!(verdict(&room, "memory"), "pass", "{}", room["gates"]);
    // The rates are not proven yet at 2,000: inconclusive, never a pass on luck.
    assert_eq!(verdict(&room, "success_rate"), "inconclusive", "{}", room["gates"]);
    assert_eq!(verdict(&room, "error_rate"), "inconclusive", "{}", room["gates"]);
    // 8,000 more clean uploads: both rates proven inside their limits, and each gate's figures
    // are those of the stage's uploads.
    for _ in 0..16 {
        upload(&app, &mut model, 0, 500, &[]).await;
    }
    let room = app.room().await;
    assert_eq!(verdict(&room, "success_rate"), "pass", "{}", room["gates"]);
    assert_eq!(verdict(&room, "error_rate"), "pass", "{}", room["gates"]);
    let success = room["gates"].as_array().unwrap().iter().find(|g| g["criterion"] == "success_rate").unwrap();
    let receipt = &success["receipt"];
    assert_eq!(receipt["events"], 10_040, "{success}");
    let failures = receipt["bad"].as_f64().unwrap();
    assert!((success["observed"].as_f64().unwrap() - (100.0 - failures * 100.0 / 10_040.0)).abs() < 1e-9, "{success}");
    assert!(success["interval"][0].as_f64().unwrap() > 99.5, "the whole interval clears 99.5%: {success}");
}
