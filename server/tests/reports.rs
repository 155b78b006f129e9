//! Reports made from stored data: a whole simulated rollout — healthy traffic over each soak,
//! CI's test reports, checklists, a pause, approvals — and its final, stage and daily reports,
//! each figure checked against what the database holds.
//!
//! `RAMPART_WRITE_EXAMPLES=1 cargo test -p server --test reports` also writes the final report
//! to `docs/examples/` (the example the README links to).

mod support;

use app::domain::gates::Gate;
use app::domain::units::thousands;
use app::format::utc_minute;
use serde_json::{Value, json};
use server::simulate::Model;
use sqlx::PgPool;
use support::{ADMIN_PASSWORD, TestApp, clean_uploads, client_with, report_suites, soak_hours, tick_stage};

/// What ana said when she asked to leave stage 1 (its gates had passed: a reason, no override).
const STAGE_1_REASON: &str = "two clean days at 1%";

/// Treatment uploads per stage, sent in batches over its soak.
const TRAFFIC: [usize; 5] = [0, 14_000, 4_000, 4_000, 6_000];

/// Runs the default plan from its baseline to complete, as a team would: traffic spread over
/// each soak, the suites reported, the checklists ticked, a pause at stage 2, approvals by ana
/// and bea. Returns the lessons written into the final report.
async fn a_whole_rollout(app: &TestApp) -> &'static str {
    app.control_is_sampled().await;
    let mut model = Model::new(21, 1);
    app.baseline_and_start(&mut model).await;
    for stage in 0..5u64 {
        let soak = app.room().await["plan"]["stages"][stage as usize]["soak"].as_str().unwrap().to_string();
        let hours = soak_hours(&soak);
        if stage == 2 {
            app.advance_clock_minutes(30);
            let (status, body) =
                app.command(json!({ "command": "pause", "reason": "glm answers slowly in eu-west; waiting for its status page" })).await;
            assert_eq!(status, 200, "{body}");
            app.advance_clock_minutes(45);
            let (ana, _) = app.approvers().await;
            assert_eq!(app.command_as(&ana, json!({ "command": "resume" })).await.0, 200);
        }
        // A batch every 3 hours (every 6 in the week-long stage), its uploads spread over the
        // hours since the last, so that the charts show traffic as it comes.
        let batches = (hours / if hours > 72 { 6 } else { 3 }) as usize;
        let every = hours * 60 / batches as i64;
        for _batch in 0..batches {
            app.advance_clock_minutes(every);
            let report = spread(app, &mut model, 2_000 / batches, TRAFFIC[stage as usize] / batches, every - 1).await;
            assert_eq!(report["rejected"], 0, "{report}");
            do_the_daily_routine(app).await;
        }
        if stage == 4 {
            let report = app.post_events(&clean_uploads(app.now().millis(), 60_000)).await;
            assert_eq!(report["accepted"], 60_000, "{report}");
        }
        tick_stage(app, stage).await;
        report_suites(app, stage).await;
        app.advance_clock_minutes(10);
        app.ask_and_approve_saying(stage, (stage == 1).then_some(STAGE_1_REASON)).await;
    }
    let lessons = "Sending every upload's metrics from day one made each gate decidable on time.\nThe 1% stage needed 14,000 uploads: plan two days of it.";
    let body =
        json!({ "lessons": lessons, "recommendations": "Keep the matrix gate for the next provider.\nCapture the baseline a week ahead." });
    let (ana, _) = app.approvers().await;
    let response = ana.put(app.url("/api/v1/rollouts/1/report/notes")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    lessons
}

/// Sends `control` and `treatment` uploads from the model spread evenly over the `minutes`
/// before the server's now; returns the ingest report.
async fn spread(app: &TestApp, model: &mut Model, control: usize, treatment: usize, minutes: i64) -> Value {
    use app::domain::event::Variant;
    let (now, total) = (app.now().millis(), control + treatment);
    let gap = minutes * 60_000 / total.max(1) as i64;
    let lines: String = (0..total)
        .map(|i| {
            // Treatment uploads interleaved with control ones, as the flag's split sends them.
            let variant =
                if i * treatment / total.max(1) != (i + 1) * treatment / total.max(1) { Variant::Treatment } else { Variant::Control };
            format!("{}\n", model.event(app::domain::units::Timestamp(now - 1_000 - i as i64 * gap), variant, &[]))
        })
        .collect();
    app.post_events(&lines).await
}

/// The guard loop makes the day's routines; the team works through "Each day" (noting what it
/// found on the first Monday) and leaves the evening and weekly lists to the report.
async fn do_the_daily_routine(app: &TestApp) {
    app.guard.tick_now(app.now()).await.unwrap();
    let room = app.room().await;
    for item in room["routines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["section"].as_str().unwrap().starts_with("Each day") && i["checked_at"].is_null())
    {
        let note = (item["section"] == "Each day · 2026-11-23" && item["text"] == "Review overnight logs")
            .then_some("glm timeouts at 02:00–02:20 UTC in both arms: their maintenance window");
        let body = json!({ "checked": true, "note": note });
        let (status, body) = app.post(&format!("/api/v1/rollouts/1/checklist/{}", item["id"]), body).await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn text(client: &reqwest::Client, url: String) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The Markdown table row of `report` that begins with `first` cells.
fn row<'a>(report: &'a str, first: &str) -> Vec<&'a str> {
    report.lines().filter(|l| l.starts_with(&format!("| {first} |"))).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_complete_rollouts_final_report_shows_what_is_stored(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let lessons = a_whole_rollout(&app).await;
    let (ana, _) = app.approvers().await;
    let (status, md) = text(&ana, app.url("/status/1/report?format=md")).await;
    assert_eq!(status, 200, "{md}");
    assert!(md.starts_with("# Final report: "), "{}", &md[..200]);

    // The timeline: every stage's entry and exit as the stage history holds them.
    type Time = chrono::DateTime<chrono::Utc>;
    let history: Vec<(i32, Time, Option<Time>, Option<String>)> =
        sqlx::query_as("SELECT stage, entered_at, left_at, exit FROM stage_history ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(history.len(), 5);
    let plan = app.room().await["plan"].clone();
    for (stage, entered, left, exit) in &history {
        let name = plan["stages"][*stage as usize]["name"].as_str().unwrap();
        let lines = row(&md, &format!("{stage} {name}"));
        assert_eq!(lines.len(), 1, "stage {stage}: {lines:?}");
        let ms = |t: &Time| app::domain::units::Timestamp(t.timestamp_millis());
        assert!(lines[0].contains(&utc_minute(ms(entered))), "{}", lines[0]);
        assert!(lines[0].contains(&format!("{} ({})", utc_minute(ms(&left.unwrap())), exit.as_deref().unwrap())), "{}", lines[0]);
    }

    // Each advance: its approver, and its gates as the audit trail stored them — and the
    // stored success rate is the raw events' own, recounted here in SQL.
    let moves: Vec<(String, i64, Value)> = sqlx::query_as(
        "SELECT actor, (evidence->'from'->>'stage')::bigint, evidence->'gates' FROM audit_log
         WHERE action = 'approve' AND evidence->'to'->>'status' <> 'awaiting_approval' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(moves.len(), 5, "four advances and the completion");
    assert!(md.contains("5 stage changes forward, 0 rollbacks, 1 incident in all."), "{md}");
    for (actor, from, gates) in &moves {
        let section = md.split("\n### ").find(|s| s.contains(&format!("— stage {from} to "))).expect("a section per advance");
        assert!(section.contains(&format!("approved by {actor}")), "{section}");
        assert!(!section.contains("overridden"), "every gate had passed: {section}");
        if *from == 1 {
            assert!(section.contains(&format!("approved by {actor}; reason: “{STAGE_1_REASON}”.")), "{section}");
        }
        let gates: Vec<Gate> = serde_json::from_value(gates.clone()).unwrap();
        for gate in &gates {
            let label = gate.criterion.label();
            let line = section.lines().find(|l| l.starts_with(&format!("| {label} |"))).unwrap_or_else(|| panic!("{label} in {section}"));
            assert!(line.contains(&app::format::gate_point(gate)) && line.ends_with(&format!("| {} |", gate.verdict.label())), "{line}");
            if gate.criterion == app::domain::gates::Criterion::SuccessRate {
                let (successes, total): (i64, i64) = sqlx::query_as(
                    "SELECT count(*) FILTER (WHERE outcome = 'success'), count(*) FROM events WHERE stage = $1 AND variant = 'treatment'",
                )
                .bind(*from as i32)
                .fetch_one(&pool)
                .await
                .unwrap();
                assert_eq!(gate.sample, total as u64, "stage {from}");
                let rate = 100.0 * successes as f64 / total as f64;
                assert!((gate.observed.unwrap() - rate).abs() < 1e-9, "stage {from}: {:?} against {rate}", gate.observed);
                assert!(line.contains(&format!("{rate:.2}%")), "{line}");
            }
        }
    }

    // The baseline as frozen, against stage 4's treatment uploads counted in SQL.
    let baseline: Value = sqlx::query_scalar("SELECT summary FROM baselines ORDER BY id DESC LIMIT 1").fetch_one(&pool).await.unwrap();
    let (uploads, errors): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE outcome = 'error') FROM events WHERE stage = 4 AND variant = 'treatment'")
            .fetch_one(&pool)
            .await
            .unwrap();
    // Tests, checklists, the incident, the notes.
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM test_results").fetch_one(&pool).await.unwrap();
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM checklist_items WHERE period IS NULL").fetch_one(&pool).await.unwrap();
    let section = |title: &str| md.split("\n## ").find(|s| s.starts_with(title)).unwrap_or_else(|| panic!("{title}")).to_string();
    let compared = section("Baseline against the new path");
    assert_eq!(
        row(&compared, "Uploads"),
        [format!("| Uploads | {} | {} |", thousands(baseline["count"].as_u64().unwrap()), thousands(uploads as u64))]
    );
    let error_row = row(&compared, "Error rate");
    let expected =
        format!("| Error rate | {:.2}% | {:.2}% |", baseline["error_rate"].as_f64().unwrap(), 100.0 * errors as f64 / uploads as f64);
    assert_eq!(error_row, [expected]);

    assert_eq!(section("Test results").lines().filter(|l| l.starts_with("| 20")).count(), runs as usize);
    let checklist = section("Checklists");
    assert_eq!(checklist.lines().filter(|l| l.contains("| ✓ ")).count(), items as usize, "{checklist}");
    assert!(section("Incidents").contains("waiting for its status page"));
    // Each routine's day as the checklist holds it: done of all, and what was found.
    let days: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT section, count(*) FILTER (WHERE checked_at IS NOT NULL), count(*) FROM checklist_items
         WHERE period IS NOT NULL GROUP BY section",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(days.len() >= 2 * 15 + 3, "two daily lists for fifteen days and a weekly one for three weeks: {}", days.len());
    let routines = section("Routines");
    for (list, done, total) in &days {
        assert!(routines.contains(&format!("| {list} | {done} of {total} |")), "{list}: {routines}");
    }
    assert!(routines.contains("Review overnight logs: glm timeouts at 02:00–02:20 UTC in both arms"), "{routines}");
    assert!(md.contains(lessons.lines().next().unwrap()) && md.contains("Capture the baseline a week ahead."));
    assert!(section("Impact against the expected improvements").contains("| Memory per upload |"));
    assert!(section("End-to-end matrix").contains("cells pass"));

    // The page: a chart of each arm's failures and latency per stage with the flag on, and the
    // form for the notes for someone who may write them.
    let (status, html) = text(&ana, app.url("/status/1/report")).await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("<svg").count(), 8, "two charts for each of stages 1–4");
    assert!(html.contains("<form method=\"post\" action=\"/status/1/report/notes\">"));
    assert!(html.contains("@media print"));

    // A stage's report holds its own advance; the daily report the last day.
    let (status, stage1) = text(&ana, app.url("/status/1/report/stage/1?format=md")).await;
    assert_eq!(status, 200, "{stage1}");
    assert!(stage1.contains("— stage 1 to stage 2") && !stage1.contains("— stage 2 to stage 3"), "{stage1}");
    let (status, daily) = text(&ana, app.url("/status/1/report/daily?format=md")).await;
    assert_eq!(status, 200, "{daily}");
    assert!(daily.starts_with("# Daily report: ") && daily.contains("— stage 4 to completion"), "{daily}");

    // The stages compared: each arm of each stage as the raw events count it, beside the
    // baseline as frozen; and each stage's arms per provider.
    let (status, compared) = text(&ana, app.url("/status/1/report/compare?format=md")).await;
    assert_eq!(status, 200, "{compared}");
    assert!(compared.starts_with("# Stages compared: "), "{compared}");
    let baseline_row = compared.lines().find(|l| l.starts_with("| Baseline (frozen ")).expect("the baseline's row");
    assert!(baseline_row.contains(&format!(" | {} | ", thousands(baseline["count"].as_u64().unwrap()))), "{baseline_row}");
    for stage in 1..=4 {
        let name = plan["stages"][stage as usize]["name"].as_str().unwrap();
        for (arm, variant) in [("treatment", "treatment"), ("control", "control")] {
            let (uploads, errors): (i64, i64) =
                sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE outcome = 'error') FROM events WHERE stage = $1 AND variant = $2")
                    .bind(stage)
                    .bind(variant)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            let prefix = format!("| Stage {stage} “{name}”, ");
            let line = compared
                .lines()
                .find(|l| l.starts_with(&prefix) && l.contains(&format!(": {arm} |")) && !l.contains("provider"))
                .unwrap_or_else(|| panic!("stage {stage} {arm}: {compared}"));
            let cells: Vec<&str> = line.split(" | ").collect();
            assert_eq!(cells[1], thousands(uploads as u64), "{line}");
            let rate = if uploads == 0 { "—".to_string() } else { format!("{:.2}%", 100.0 * errors as f64 / uploads as f64) };
            assert_eq!(cells[3], rate, "{line}");
        }
        let by_provider: Vec<(String, i64)> =
            sqlx::query_as("SELECT provider, count(*) FROM events WHERE stage = $1 AND variant = 'treatment' GROUP BY provider")
                .bind(stage)
                .fetch_all(&pool)
                .await
                .unwrap();
        let section = compared.split("\n### ").find(|s| s.starts_with(&format!("Stage {stage} “{name}”"))).unwrap();
        for (provider, uploads) in by_provider {
            assert_eq!(
                row(section, &format!("provider {provider}: treatment"))[0].split(" | ").nth(1),
                Some(thousands(uploads as u64).as_str())
            );
        }
    }
    assert!(html.contains("href=\"/status/1/report/compare\""), "the reports link to the comparison");
    let (status, compare_html) = text(&ana, app.url("/status/1/report/compare")).await;
    assert!(status == 200 && compare_html.contains("<h2>By provider and file type</h2>"), "{compare_html}");

    // A share link's holder reads the same report with roles for names, and cannot write.
    let admin = app.sign_in("admin", ADMIN_PASSWORD).await;
    let (_, link) = app.post_as(&admin, "/api/v1/share-links", json!({ "rollout_id": 1, "label": "board" })).await;
    let holder = client_with(&[("cookie", &format!("rampart_share={}", link["secret"].as_str().unwrap())), ("origin", &app.base)]);
    let (status, shared) = text(&holder, app.url("/status/1/report")).await;
    assert_eq!(status, 200, "{shared}");
    assert!(!shared.contains("by ana") && !shared.contains("by bea") && shared.contains("approved by an approver"), "{shared}");
    assert!(!shared.contains("<form"), "a share link writes nothing");
    let response = holder.post(app.url("/status/1/report/notes")).form(&[("lessons", "x"), ("recommendations", "y")]).send().await.unwrap();
    assert_eq!(response.status(), 403);

    if std::env::var_os("RAMPART_WRITE_EXAMPLES").is_some() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(format!("{dir}/final-report.md"), &md).unwrap();
        std::fs::write(format!("{dir}/final-report.html"), &html).unwrap();
        std::fs::write(format!("{dir}/stages-compared.md"), &compared).unwrap();
    } else {
        // The committed example has every section today's report has.
        let example = include_str!("../../docs/examples/final-report.md");
        let headings = |text: &str| {
            text.lines().filter(|l| l.starts_with("## ")).map(|l| l.split(" (").next().unwrap().to_string()).collect::<Vec<_>>()
        };
        assert_eq!(headings(example), headings(&md), "docs/examples is stale: regenerate it (see this file's header)");
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn reports_refuse_what_they_cannot_show_and_name_the_field(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    for (path, field) in [
        ("/api/v1/rollouts/1/report?format=pdf", "format"),
        ("/api/v1/rollouts/1/report?kind=weekly", "kind"),
        ("/api/v1/rollouts/1/report?kind=stage", "stage"),
        ("/api/v1/rollouts/1/report?kind=stage&stage=9", "stage"),
        ("/api/v1/rollouts/1/report?kind=stage&stage=1", "stage"),
        ("/api/v1/rollouts/1/report?kind=final&stage=1", "stage"),
    ] {
        let (status, body) = text(&app.client, app.url(path)).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(body.contains(&format!("\"field\":\"{field}\"")), "{path}: {body}");
    }
    assert_eq!(text(&app.client, app.url("/api/v1/rollouts/99/report")).await.0, 404);
    // A draft's report so far says so, and its notes start empty.
    let (status, md) = text(&app.client, app.url("/api/v1/rollouts/1/report")).await;
    assert_eq!(status, 200, "{md}");
    assert!(md.starts_with("# Report so far: ") && md.contains("not reached"), "{md}");
    assert_eq!(app.get_json("/api/v1/rollouts/1/report/notes").await["written_by"], Value::Null);
    // Notes are checked before they are stored, and a viewer may not write them.
    let viewer = app.person("vic", "viewer").await;
    let body = json!({ "lessons": "ok", "recommendations": "ok" });
    assert_eq!(viewer.put(app.url("/api/v1/rollouts/1/report/notes")).json(&body).send().await.unwrap().status(), 403);
    let bad = json!({ "lessons": "a\u{7}bell", "recommendations": "" });
    let response = app.client.put(app.url("/api/v1/rollouts/1/report/notes")).json(&bad).send().await.unwrap();
    assert_eq!(response.status(), 422);
    assert!(response.text().await.unwrap().contains("\"field\":\"lessons\""));
    // People who are not signed in are sent to sign in first.
    let (status, _) =
        text(&reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(), app.url("/status/1/report")).await;
    assert_eq!(status, 303);
}

/// The unescaped pipes of a Markdown table row (its cell borders).
fn borders(line: &str) -> usize {
    let mut count = 0;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '|' if !escaped => count += 1,
            _ => escaped = false,
        }
        if c != '\\' {
            escaped = false;
        }
    }
    count
}

/// Review: the daily report listed only the routine items ticked in the last 24 hours, as a
/// count per list. It lists each of the day's routines item by item: done (by whom, when, what
/// was found) or still open.
#[sqlx::test(migrations = "../migrations")]
async fn the_daily_report_lists_the_days_routines_done_and_open(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.go_to_stage(0).await;
    app.guard.tick_now(app.now()).await.unwrap();
    let oscar = app.person("oscar", "operator").await;
    let routines = app.room().await["routines"].as_array().unwrap().clone();
    let daily: Vec<&Value> = routines.iter().filter(|i| i["section"].as_str().unwrap().starts_with("Each day")).collect();
    assert!(daily.len() >= 3 && routines.len() > daily.len(), "{routines:?}");
    app.advance_clock_minutes(20);
    let ticked_at = utc_minute(app.now());
    for (k, item) in daily.iter().take(2).enumerate() {
        let note = (k == 0).then_some("glm slow at 02:00 UTC");
        let response = oscar
            .post(app.url(&format!("/api/v1/rollouts/1/checklist/{}", item["id"])))
            .json(&json!({ "checked": true, "note": note }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    app.advance_clock_hours(2);

    let (status, md) = text(&app.client, app.url("/api/v1/rollouts/1/report?kind=daily")).await;
    assert_eq!(status, 200, "{md}");
    let section = md.split("\n## ").find(|s| s.starts_with("Routines")).unwrap_or_else(|| panic!("a Routines section: {md}"));
    let open = routines.len() - 2;
    assert!(section.contains(&format!("2 of {} items done, {open} open.", routines.len())), "{section}");
    for (k, item) in routines.iter().enumerate() {
        let (list, what) = (item["section"].as_str().unwrap(), item["text"].as_str().unwrap());
        let lines = row(section, list);
        let line = lines.iter().find(|l| l.starts_with(&format!("| {list} | {what} |"))).unwrap_or_else(|| panic!("{what}: {section}"));
        let done = daily.iter().take(2).position(|d| d["id"] == item["id"]);
        match done {
            Some(0) => assert!(line.ends_with(&format!("| ✓ {ticked_at} by oscar | glm slow at 02:00 UTC |")), "{line}"),
            Some(_) => assert!(line.ends_with(&format!("| ✓ {ticked_at} by oscar |  |")), "{line}"),
            None => assert!(line.ends_with("| open |  |"), "item {k}: {line}"),
        }
    }
    // Yesterday's routines are not today's: a day later the report lists the new day's.
    app.advance_clock_hours(24);
    app.guard.tick_now(app.now()).await.unwrap();
    let (_, md) = text(&app.client, app.url("/api/v1/rollouts/1/report?kind=daily")).await;
    let today = app::domain::routines::period(app::domain::routines::Every::Day, app.now());
    assert!(md.contains(&format!("| Each day · {today} |")), "{md}");
}

/// Review: reasons, notes, findings, names, lessons and test failures went into the Markdown as
/// written, so a `|` split a table cell, a leading `#` made a heading, `*…*` emphasis, `[…](…)`
/// a link and `<b>` a tag; the page turned a `*` in a reason into emphasis. Each shows as
/// written now, in both.
#[sqlx::test(migrations = "../migrations")]
async fn written_text_cannot_break_the_report(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    app.go_to_stage(0).await;
    let evil = "a | b # *not em* _x_ `tick` [link](https://evil.example) <b>bold</b> &amp;";
    let (status, body) = app.command(json!({ "command": "pause", "reason": evil })).await;
    assert_eq!(status, 200, "{body}");
    let item = app.room().await["checklist"][0]["id"].clone();
    let (status, body) = app
        .post(&format!("/api/v1/rollouts/1/checklist/{item}"), json!({ "checked": true, "note": format!("{evil}\n# heading\n- item") }))
        .await;
    assert_eq!(status, 200, "{body}");
    let junit = format!(
        r#"<testsuite name="Phase 1" tests="2" failures="1"><testcase classname="api|upload" name="sends *big* `files`"><failure message="{}">trace</failure></testcase><testcase name="ok"/></testsuite>"#,
        evil.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    );
    let response = app
        .client
        .post(app.url("/api/v1/rollouts/1/test-runs?suite=Phase%201"))
        .header("content-type", "application/xml")
        .body(junit)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let notes = json!({ "lessons": format!("# Not a heading\n{evil}\n\n1. not a list"), "recommendations": "| x | y |\n---" });
    assert_eq!(app.client.put(app.url("/api/v1/rollouts/1/report/notes")).json(&notes).send().await.unwrap().status(), 200);

    let (status, md) = text(&app.client, app.url("/api/v1/rollouts/1/report")).await;
    assert_eq!(status, 200, "{md}");
    // The document's structure is its own: one title, its own headings, every table row with
    // as many cells as its head, no tag, no link, no emphasis but its own.
    let headings: Vec<&str> = md.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(headings.iter().filter(|l| l.starts_with("# ")).count(), 1, "{headings:?}");
    assert!(headings.iter().all(|l| !l.contains("heading") && !l.contains("Not a")), "{headings:?}");
    assert!(md.lines().all(|l| !l.starts_with("- item") && !l.starts_with("1. not") && !l.starts_with("---")), "{md}");
    let mut columns = None;
    for line in md.lines() {
        if line.starts_with('|') {
            let cells = borders(line);
            if line.starts_with("|---") || columns.is_none() {
                columns = Some(cells);
            }
            assert_eq!(Some(cells), columns, "{line}");
        } else {
            columns = None;
        }
    }
    for markup in ["<b>", "[link](", "*not em*", "_x_", "`tick`", " &amp;"] {
        assert!(!md.contains(markup), "{markup} unescaped in {md}");
    }
    let shown = r"a \| b # \*not em\* \_x\_ \`tick\` \[link\](https://evil.example) \<b\>bold\</b\> \&amp;";
    let incidents = md.split("\n## ").find(|s| s.starts_with("Incidents")).unwrap();
    assert!(incidents.contains(shown), "the pause's reason in {incidents}");
    let checklist = md.split("\n## ").find(|s| s.starts_with("Checklists")).unwrap();
    assert!(checklist.contains(&format!("found: {shown} # heading - item |")), "{checklist}");
    let tests = md.split("\n## ").find(|s| s.starts_with("Test results")).unwrap();
    assert!(tests.contains(&format!(r"| api\|upload::sends \*big\* \`files\` | {shown} |")), "{tests}");
    let lessons = md.split("\n## ").find(|s| s.starts_with("Lessons learned")).unwrap();
    assert!(lessons.contains(&format!("\\# Not a heading\\\n{shown}\n\n1\\. not a list")), "{lessons}");

    // The page: the same texts escaped, and only its own emphasis.
    let (status, html) = text(&app.client, app.url("/api/v1/rollouts/1/report?format=html")).await;
    assert_eq!(status, 200);
    assert!(!html.contains("<b>") && !html.contains("<em>not em") && html.contains("&lt;b&gt;bold&lt;/b&gt;"), "{html}");
    assert!(html.contains("a | b # *not em* _x_ `tick` [link](https://evil.example) &lt;b&gt;bold&lt;/b&gt; &amp;amp;"), "{html}");
    for tag in ["strong", "em", "code", "td", "p"] {
        assert_eq!(html.matches(&format!("<{tag}>")).count(), html.matches(&format!("</{tag}>")).count(), "<{tag}> balanced");
    }
}

/// Sets the plan's approvals.
async fn approvals(app: &TestApp, required: u32, allow_self_approval: bool) {
    sqlx::query("UPDATE plans SET definition = jsonb_set(definition, '{approvals}', $1)")
        .bind(json!({ "required": required, "allow_self_approval": allow_self_approval }))
        .execute(&app.pool)
        .await
        .unwrap();
}

/// Review: a stage entered twice (rolled back, entered again) was reported from its first
/// entry, with both advances that left it. It is its latest stay: that stay's time, the
/// advance that left it with the gates as judged then, its own incidents.
#[sqlx::test(migrations = "../migrations")]
async fn a_stage_report_judges_the_stages_latest_stay(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.go_to_stage(0).await;
    app.advance_clock_hours(1);
    assert_eq!(app.advance(Some("first try")).await.0, 200);
    let first_entry = app.now();
    app.advance_clock_hours(2);
    assert_eq!(app.advance(Some("on to 10%")).await.0, 200);
    app.advance_clock_hours(1);
    let (ana, _) = app.approvers().await;
    let (status, body) = app.command_as(&ana, json!({ "command": "roll_back", "target": "previous", "reason": "errors at 10%" })).await;
    assert_eq!(status, 200, "{body}");
    let second_entry = app.now();
    app.advance_clock_hours(3);
    assert_eq!(app.advance(Some("second try")).await.0, 200);
    let left = app.now();
    app.advance_clock_hours(1);

    let (status, md) = text(&app.client, app.url("/status/1/report/stage/1?format=md")).await;
    assert_eq!(status, 200, "{md}");
    assert!(md.contains(&format!("Covers {} to {} (3 h", utc_minute(second_entry), utc_minute(left))), "{md}");
    let advances: Vec<&str> = md.split("\n### ").filter(|s| s.contains("— stage 1 to stage 2")).collect();
    assert_eq!(advances.len(), 1, "{md}");
    assert!(advances[0].starts_with(&utc_minute(left)) && advances[0].contains("“second try”"), "{}", advances[0]);
    assert!(!md.contains("on to 10%") && !md.contains("first try"), "the first stay's advance: {md}");
    // The stay began with the rollback into it: that is its incident; the timeline keeps both stays.
    assert!(md.contains("errors at 10%"), "{md}");
    let stays = row(&md, "1 1% rollout");
    assert_eq!(stays.len(), 2, "{md}");
    assert!(stays[0].contains(&utc_minute(first_entry)) && stays[0].contains("(advanced)"), "{}", stays[0]);
    assert!(stays[1].contains(&utc_minute(second_entry)), "{}", stays[1]);
    // The advance's gates are those stored at the advance that left the latest stay.
    let stored: Value = sqlx::query_scalar(
        "SELECT evidence->'gates' FROM audit_log WHERE (evidence->'from'->>'stage')::int = 1 AND (evidence->'to'->>'stage')::int = 2 ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let gates: Vec<Gate> = serde_json::from_value(stored).unwrap();
    for gate in &gates {
        let label = gate.criterion.label();
        assert!(
            advances[0]
                .lines()
                .any(|l| l.starts_with(&format!("| {label} |"))
                    && l.contains(&format!("| {} / ", app::domain::units::thousands(gate.sample)))),
            "{label}: {}",
            advances[0]
        );
    }
    // Stage 2, left by a rollback and in force again: its latest stay has no advance yet.
    let (status, md) = text(&app.client, app.url("/status/1/report/stage/2?format=md")).await;
    assert_eq!(status, 200, "{md}");
    assert!(!md.contains("— stage 2 to") && !md.contains("on to 10%"), "{md}");
    assert!(md.contains(&format!("Covers {} to {}", utc_minute(left), utc_minute(app.now()))), "{md}");
}

/// Review: the final report compared the highest stage reached, not the one in force after a
/// rollback, and with the baseline captured last, even for a stage left before it was. It
/// judges the stage in force last, and each stage against the baseline in force when it ended.
#[sqlx::test(migrations = "../migrations")]
async fn reports_judge_the_stage_in_force_against_the_baseline_of_its_time(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.control_is_sampled().await;
    let mut model = Model::new(5, 1);
    app.baseline_and_start(&mut model).await;
    app.go_to_stage(2).await;
    app.advance_clock_hours(1);
    assert_eq!(app.simulate(&mut model, 300, 300, &[]).await["rejected"], 0);
    app.advance_clock_hours(1);
    let (ana, _) = app.approvers().await;
    let (status, body) = app.command_as(&ana, json!({ "command": "roll_back", "target": "previous", "reason": "a look at 10%" })).await;
    assert_eq!((status, body["stage"].as_u64()), (200, Some(1)), "{body}");
    // Back at 1%: traffic, and a new baseline from today's 900 control uploads.
    app.advance_clock_hours(1);
    assert_eq!(app.simulate(&mut model, 900, 100, &[]).await["rejected"], 0);
    let now = app.now().millis();
    let (status, body) = app.post("/api/v1/rollouts/1/baseline", json!({ "from": now - 600_000, "to": now })).await;
    assert_eq!(status, 200, "{body}");
    let counts: Vec<i64> =
        sqlx::query_scalar("SELECT (summary->>'count')::bigint FROM baselines ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(counts, [600, 900]);
    app.advance_clock_hours(1);

    let compared = |md: &str| {
        let section = md.split("\n## ").find(|s| s.starts_with("Baseline against the new path")).unwrap_or_else(|| panic!("{md}"));
        let of = section.lines().find(|l| l.starts_with("The frozen baseline beside")).unwrap().to_string();
        (of, row(section, "Uploads").concat())
    };
    let (_, all) = text(&app.client, app.url("/status/1/report?format=md")).await;
    let (of, uploads) = compared(&all);
    assert!(of.ends_with("of stage 1 “1% rollout”."), "the stage in force, not the highest reached: {of}");
    assert!(uploads.starts_with(&format!("| Uploads | {} |", thousands(900))), "the baseline in force: {uploads}");
    let (_, stage2) = text(&app.client, app.url("/status/1/report/stage/2?format=md")).await;
    let (of, uploads) = compared(&stage2);
    assert!(of.ends_with("of stage 2 “10% rollout”."), "{of}");
    assert!(uploads.starts_with("| Uploads | 600 | 300 |"), "the baseline in force when stage 2 was left: {uploads}");

    // Rolled back off (the default plan's target): stage 0 serves no treatment, so the final
    // report still judges stage 1, the last stage that did.
    let (status, body) = app.command_as(&ana, json!({ "command": "roll_back", "target": "off", "reason": "enough" })).await;
    assert_eq!((status, body["stage"].as_u64()), (200, Some(0)), "{body}");
    app.advance_clock_hours(1);
    let (_, all) = text(&app.client, app.url("/status/1/report?format=md")).await;
    let (of, uploads) = compared(&all);
    assert!(of.ends_with("of stage 1 “1% rollout”."), "the last stage that served the treatment: {of}");
    assert!(uploads.starts_with(&format!("| Uploads | {} |", thousands(900))), "{uploads}");
}

/// Review: an advance whose asker approved it at once (the plan allows self-approval) is named
/// as approved by that person, in the stage's report and the final one.
#[sqlx::test(migrations = "../migrations")]
async fn a_self_approved_advance_names_who_approved_it(pool: PgPool) {
    let app = TestApp::spawn(pool).await;
    approvals(&app, 1, true).await;
    app.go_to_stage(0).await;
    app.advance_clock_hours(1);
    let (ana, bea) = app.approvers().await;
    let (status, body) = app.command_as(&ana, json!({ "command": "advance", "override_reason": "ana decides" })).await;
    assert_eq!((status, body["stage"].as_u64()), (200, Some(1)), "{body}");
    // Two approvals needed: the asker's own and bea's.
    approvals(&app, 2, true).await;
    app.advance_clock_hours(1);
    let (status, body) = app.command_as(&bea, json!({ "command": "advance", "override_reason": "bea asks" })).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("awaiting_approval")), "{body}");
    let (status, body) = app.command_as(&ana, json!({ "command": "approve" })).await;
    assert_eq!((status, body["stage"].as_u64()), (200, Some(2)), "{body}");

    let (_, stage0) = text(&app.client, app.url("/status/1/report/stage/0?format=md")).await;
    assert!(stage0.contains("Asked by ana; approved by ana; **overridden**: “ana decides”."), "{stage0}");
    let (_, stage1) = text(&app.client, app.url("/status/1/report/stage/1?format=md")).await;
    assert!(stage1.contains("Asked by bea; approved by bea, ana; **overridden**: “bea asks”."), "{stage1}");
    let (_, all) = text(&app.client, app.url("/status/1/report?format=md")).await;
    assert!(all.contains("approved by ana;") && all.contains("approved by bea, ana;"), "{all}");
}

/// Review: two people editing the notes lost one's save to the other's. Saves are versioned:
/// one made from an old version is refused with 409 and what is stored now.
#[sqlx::test(migrations = "../migrations")]
async fn report_notes_are_versioned_and_a_stale_save_is_refused(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    let url = app.url("/api/v1/rollouts/1/report/notes");
    let response = app.client.get(&url).send().await.unwrap();
    assert_eq!(response.headers()["etag"], "\"0\"");
    assert_eq!(response.json::<Value>().await.unwrap()["version"], 0);

    let put = |if_match: Option<&str>, body: Value| {
        let mut request = app.client.put(&url).json(&body);
        if let Some(tag) = if_match {
            request = request.header("if-match", tag);
        }
        async move {
            let response = request.send().await.unwrap();
            let (status, etag) = (response.status().as_u16(), response.headers().get("etag").map(|v| v.to_str().unwrap().to_string()));
            (status, etag, response.json::<Value>().await.unwrap())
        }
    };
    let (status, etag, body) = put(Some("\"0\""), json!({ "lessons": "ana's", "recommendations": "r1" })).await;
    assert_eq!((status, etag.as_deref(), &body["version"]), (200, Some("\"1\""), &json!(1)), "{body}");
    // Bea read version 0 too: her save is refused, and she gets ana's to merge.
    let (status, etag, body) = put(Some("\"0\""), json!({ "lessons": "bea's", "recommendations": "r2" })).await;
    assert_eq!((status, etag.as_deref()), (409, Some("\"1\"")), "{body}");
    assert_eq!((&body["error"], &body["current_version"], &body["notes"]["lessons"]), (&json!("conflict"), &json!(1), &json!("ana's")));
    assert_eq!(app.get_json("/api/v1/rollouts/1/report/notes").await["lessons"], "ana's");
    // The version in the body does the same.
    assert_eq!(put(None, json!({ "lessons": "bea's", "version": 0 })).await.0, 409);
    let (status, _, body) = put(None, json!({ "lessons": "both", "recommendations": "r1", "version": 1 })).await;
    assert_eq!((status, &body["version"]), (200, &json!(2)));
    // Without a version a save overwrites; `{}` clears.
    let (status, _, body) = put(None, json!({ "lessons": "blind", "recommendations": "" })).await;
    assert_eq!((status, &body["version"], &body["lessons"]), (200, &json!(3), &json!("blind")));
    let (status, etag, body) = put(Some("*"), json!({})).await;
    assert_eq!((status, etag.as_deref(), &body["lessons"], &body["recommendations"]), (200, Some("\"4\""), &json!(""), &json!("")));
    assert_eq!(put(Some("W/\"4\""), json!({})).await.0, 409, "a weak tag never matches");
    assert_eq!(put(Some("\"4\""), json!({ "version": 3 })).await.0, 422, "If-Match and version disagree");

    // Ten saves from the same version at once: one is saved, nine refused.
    let saves = (0..10).map(|i| put(Some("\"4\""), json!({ "lessons": format!("writer {i}") })));
    let statuses: Vec<u16> = futures_util::future::join_all(saves).await.into_iter().map(|(s, ..)| s).collect();
    assert_eq!((statuses.iter().filter(|s| **s == 200).count(), statuses.iter().filter(|s| **s == 409).count()), (1, 9), "{statuses:?}");
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM report_notes ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5]);

    // The page's form carries the version it showed; a save from a stale page is refused.
    let oscar = app.person("oscar", "operator").await;
    let (_, page) = text(&oscar, app.url("/status/1/report")).await;
    assert!(page.contains("<input type=\"hidden\" name=\"version\" value=\"5\">"), "{page}");
    let form =
        |version: &str| [("lessons", "from the page".to_string()), ("recommendations", String::new()), ("version", version.to_string())];
    let response = oscar.post(app.url("/status/1/report/notes")).form(&form("4")).send().await.unwrap();
    assert_eq!(response.status(), 409);
    assert!(response.text().await.unwrap().contains("from the page"), "the text written is given back");
    assert_eq!(app.get_json("/api/v1/rollouts/1/report/notes").await["version"], 5);
    let response = oscar.post(app.url("/status/1/report/notes")).form(&form("5")).send().await.unwrap();
    assert_eq!((response.status().as_u16(), response.headers()["location"].to_str().unwrap()), (303, "/status/1/report#lessons"));
    assert_eq!(app.get_json("/api/v1/rollouts/1/report/notes").await["lessons"], "from the page");

    // Who may not write is refused before the form is read: a viewer's malformed form is 403,
    // not a complaint about the form.
    let viewer = app.person("vic", "viewer").await;
    let response = viewer
        .post(app.url("/status/1/report/notes"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("version=abc&unknown=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let response = oscar
        .post(app.url("/status/1/report/notes"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("version=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
}

/// The impact per provider and per file type: each group's treatment against its own control
/// uploads. Here kimi's treatment (csv files) uses a tenth of the memory and glm's (json) the
/// same as its control, so kimi meets the memory target and glm does not — which the whole
/// stage's figure (an average of both) cannot show.
#[sqlx::test(migrations = "../migrations")]
async fn a_stage_report_shows_the_impact_per_provider_and_file_type(pool: PgPool) {
    let app = TestApp::spawn(pool.clone()).await;
    app.control_is_sampled().await;
    app.go_to_stage(2).await;
    app.advance_clock_hours(1);
    let now = app.now().millis();
    let lines: String = (0..1_600)
        .map(|i| {
            let (provider, file_type) = if i % 2 == 0 { ("kimi", "csv") } else { ("glm", "json") };
            let treated = (i / 2) % 2 == 0;
            let memory = if treated && provider == "kimi" { 1.0 } else { 10.0 } + f64::from(i % 5) * 0.1;
            let event = json!({
                "timestamp": now - 1_000 - i64::from(i), "event_id": format!("g-{i}"),
                "variant": if treated { "async" } else { "sync" }, "outcome": "success",
                "latency_ms": 150.0, "memory_mb": memory, "provider": provider, "file_type": file_type, "size_bytes": 1_000_000,
            });
            format!("{event}\n")
        })
        .collect();
    assert_eq!(app.post_events(&lines).await["accepted"], 1_600);
    // Thirteen more providers, one treatment upload each: the twelve most used providers are
    // shown one by one (kimi, glm and ten of these), the other three summed.
    let few: String = (1..=13)
        .map(|i| {
            let event = json!({
                "timestamp": now - 5_000 - i64::from(i), "event_id": format!("p-{i}"), "variant": "async", "outcome": "success",
                "latency_ms": 150.0, "memory_mb": 10.0, "provider": format!("p{i:02}"), "file_type": "text", "size_bytes": 1_000_000,
            });
            format!("{event}\n")
        })
        .collect();
    assert_eq!(app.post_events(&few).await["accepted"], 13);

    let (status, md) = text(&app.client, app.url("/status/1/report/stage/2?format=md")).await;
    assert_eq!(status, 200, "{md}");
    let section = md.split("\n### By provider and by file type").nth(1).unwrap_or_else(|| panic!("no groups:\n{md}"));
    let head = section.lines().find(|l| l.starts_with("| Group |")).unwrap();
    let memory = head.split(" | ").position(|c| c == "Memory per upload").expect("a memory column");
    let cell = |group: &str| {
        let line = row(section, group);
        assert_eq!(line.len(), 1, "{group}: {section}");
        let cells: Vec<&str> = line[0].split(" | ").collect();
        assert_eq!(cells[1], "400", "{group}'s treatment uploads: {}", line[0]);
        cells[memory].to_string()
    };
    // (1.2 MB against 10.2 MB on average: −88%.)
    for group in ["provider kimi", "file type csv"] {
        let memory = cell(group);
        assert!(memory.starts_with("−88% (") && memory.ends_with(" · met"), "{group}: {memory}");
    }
    for group in ["provider glm", "file type json"] {
        let memory = cell(group);
        assert!(memory.starts_with("+0% (") && memory.ends_with(" · not met"), "{group}: {memory}");
    }
    let providers: Vec<&str> = section.lines().filter(|l| l.starts_with("| provider ")).collect();
    assert_eq!(providers.len(), 12, "{section}");
    let others = row(section, "3 other providers");
    assert!(others.len() == 1 && others[0].starts_with("| 3 other providers | 3 |"), "{section}");
}
