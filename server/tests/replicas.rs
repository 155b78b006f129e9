//! Several `rampart serve` processes on one Postgres behind a real load balancer (HAProxy from
//! Debian, started here with health checks on `/readyz`), as teams run Rampart when one
//! machine is not enough: a change made through one replica is served by every replica within
//! a second; conflicting commands spread across replicas apply exactly once; a breach is rolled
//! back once, not once per replica; when a replica is killed the others keep serving and
//! guarding without it; one frozen in the middle of a guard tick gives the guard up; and a
//! replica of this version runs on the schema of the next release, as a rolling upgrade needs.

mod support;

use support::process::{ADMIN_PASSWORD, Haproxy, Replica, free_port, get_status, now_ms, wait_until};

use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::{Duration, Instant};

/// HAProxy in front of the replicas, round robin, each checked on `/readyz` every 200 ms, and
/// no retries: a request sent to a dead replica fails, so the test sees whether the health
/// checks took it out.
struct Balancer {
    _haproxy: Haproxy,
    base: String,
}

impl Balancer {
    async fn start(replicas: &[&Replica], dir: &std::path::Path) -> Balancer {
        let port = free_port();
        let servers: String =
            replicas.iter().enumerate().map(|(i, r)| format!("  server r{i} {} check\n", r.base.trim_start_matches("http://"))).collect();
        let config = format!(
            "global\n  maxconn 2000\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  retries 0\n\
             frontend rampart\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
             backend replicas\n  balance roundrobin\n  option httpchk GET /readyz\n  default-server inter 200ms fall 2 rise 2\n{servers}"
        );
        let balancer = Balancer { _haproxy: Haproxy::start(&config, dir), base: format!("http://127.0.0.1:{port}") };
        wait_until(Duration::from_secs(20), || async { get_status(&format!("{}/readyz", balancer.base)).await == Some(200) }).await;
        balancer
    }
}

/// The first admin, signed in through `base`: a client carrying the session and an `Origin`.
async fn sign_in(base: &str) -> reqwest::Client {
    sign_in_as(base, "admin", ADMIN_PASSWORD).await
}

/// `name` signed in through `base`.
async fn sign_in_as(base: &str, name: &str, password: &str) -> reqwest::Client {
    let response = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .header("accept", "application/json")
        .header("origin", base)
        .form(&[("name", name), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = support::session_cookie(&response).expect("a session cookie");
    support::client_with(&[("cookie", &format!("rampart_session={session}")), ("origin", base)])
}

/// A client with a token holding every scope.
fn machine(secret: &str) -> reqwest::Client {
    support::client_with(&[("authorization", &format!("Bearer {secret}"))])
}

async fn room(client: &reqwest::Client, base: &str) -> Value {
    client.get(format!("{base}/api/v1/rollouts/1")).send().await.unwrap().json().await.unwrap()
}

async fn command(client: &reqwest::Client, base: &str, command: Value, version: u64) -> (u16, Value) {
    let mut body = command;
    body["version"] = version.into();
    let response = client.post(format!("{base}/api/v1/rollouts/1/commands")).json(&body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// What each replica serves for the plan's flag: (enabled, percentage).
async fn served(client: &reqwest::Client, base: &str) -> (bool, u64) {
    let flag: Value = client.get(format!("{base}/api/v1/flags/async_upload")).send().await.unwrap().json().await.unwrap();
    (flag["enabled"].as_bool().unwrap(), flag["percentage"].as_u64().unwrap())
}

/// A treated upload that failed with a critical error, now.
fn critical(id: &str) -> String {
    json!({ "timestamp": now_ms(), "event_id": id, "variant": "async", "outcome": "error", "critical": true, "latency_ms": 100.0,
            "memory_mb": 40.0, "provider": "kimi", "file_type": "csv", "size_bytes": 1000 })
    .to_string()
}

/// The sum over `replicas` of one metric.
async fn metric_sum(client: &reqwest::Client, replicas: &[&Replica], series: &str) -> f64 {
    let mut sum = 0.0;
    for replica in replicas {
        let page = client.get(format!("{}/metrics", replica.base)).send().await.unwrap().text().await.unwrap();
        sum += support::metric(&page, series).unwrap_or(0.0);
    }
    sum
}

#[sqlx::test(migrations = "../migrations")]
async fn three_replicas_behind_a_load_balancer_act_as_one(pool: PgPool) {
    let dir = std::env::temp_dir().join(format!("rampart-replicas-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = support::database_url(&pool);
    // The first start makes the admin and the rollout; the others find them.
    let first = Replica::start(&url, &dir.join("r0.log")).await;
    let (log1, log2) = (dir.join("r1.log"), dir.join("r2.log"));
    let (second, third) = tokio::join!(Replica::start(&url, &log1), Replica::start(&url, &log2));
    let mut replicas = [first, second, third];
    let balancer = Balancer::start(&replicas.iter().collect::<Vec<_>>(), &dir).await;
    let secret = support::all_scopes_token(&pool, "replicas", app::domain::units::Timestamp(now_ms())).await;
    let client = machine(&secret);

    // 1. A change made through the balancer is served by every replica within a second: the
    //    admin (a person: only people approve) starts the rollout and advances it to 1%.
    sqlx::query("UPDATE plans SET definition = jsonb_set(definition, '{approvals,allow_self_approval}', 'true')")
        .execute(&pool)
        .await
        .unwrap();
    let admin = sign_in(&balancer.base).await;
    let version = room(&client, &balancer.base).await["state"]["version"].as_u64().unwrap();
    let (status, body) = command(&admin, &balancer.base, json!({ "command": "start" }), version).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served(&client, &replicas[2].base).await, (false, 0));
    let (status, body) =
        command(&admin, &balancer.base, json!({ "command": "advance", "override_reason": "replica test" }), version + 1).await;
    assert_eq!((status, body["stage"].as_u64()), (200, Some(1)), "{body}");
    let changed = Instant::now();
    let mut slowest = Duration::ZERO;
    for replica in &replicas {
        wait_until(Duration::from_secs(1), || async { served(&client, &replica.base).await == (true, 1) }).await;
        slowest = slowest.max(changed.elapsed());
    }
    assert!(slowest < Duration::from_secs(1), "all three within a second: {slowest:?}");
    eprintln!("the advance reached all three replicas within {slowest:?}");

    // 2. A hundred conflicting commands, spread over the replicas directly: exactly one applies.
    let version = room(&client, &balancer.base).await["state"]["version"].as_u64().unwrap();
    let attempts = (0..100).map(|i| {
        let (client, base) = (client.clone(), replicas[i % 3].base.clone());
        tokio::spawn(async move { command(&client, &base, json!({ "command": "pause", "reason": format!("attempt {i}") }), version).await })
    });
    let mut outcomes = std::collections::BTreeMap::new();
    for attempt in attempts {
        let (status, _) = attempt.await.unwrap();
        *outcomes.entry(status).or_insert(0) += 1;
    }
    assert_eq!(outcomes.get(&200), Some(&1), "{outcomes:?}");
    assert_eq!(outcomes.get(&409), Some(&99), "every other one conflicts: {outcomes:?}");
    let version = room(&client, &balancer.base).await["state"]["version"].as_u64().unwrap();
    let (status, body) = command(&client, &balancer.base, json!({ "command": "resume" }), version).await;
    assert_eq!(status, 200, "{body}");

    // 3. A breach seen through any replica is rolled back once, not once per replica.
    let refs: Vec<&Replica> = replicas.iter().collect();
    let response = client.post(format!("{}/api/v1/events", balancer.base)).body(critical("breach-1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    wait_until(Duration::from_secs(10), || async { room(&client, &balancer.base).await["state"]["status"] == "rolled_back" }).await;
    tokio::time::sleep(Duration::from_secs(6)).await; // every replica has ticked since
    assert_eq!(metric_sum(&client, &refs, "rampart_guard_rollbacks_total").await, 1.0);
    let rollbacks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auto_roll_back'").fetch_one(&pool).await.unwrap();
    assert_eq!(rollbacks, 1);
    for replica in &replicas {
        assert!(!served(&client, &replica.base).await.0, "{} still serves the flag", replica.base);
    }

    // 4. Kill a replica: the balancer stops sending to it, and the others guard on (the
    //    advisory lock of a killed process ends with its connection).
    // No retries in the balancer: once its health checks (every 200 ms, two failures) have
    // marked the dead replica down, no request goes to it.
    replicas[0].kill();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let mut failures = 0;
    for _ in 0..60 {
        if get_status(&format!("{}/api/v1/me", balancer.base)).await != Some(200) {
            failures += 1;
        }
    }
    assert_eq!(failures, 0, "requests through the balancer failed after a replica died");
    let survivors: Vec<&Replica> = replicas[1..].iter().collect();
    let judged = r#"rampart_guard_ticks_total{outcome="judged"}"#;
    let before = metric_sum(&client, &survivors, judged).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(metric_sum(&client, &survivors, judged).await > before, "the survivors judge on");
    for replica in &survivors {
        let page = client.get(format!("{}/metrics", replica.base)).send().await.unwrap().text().await.unwrap();
        let age = support::metric(&page, "rampart_guard_last_tick_age_seconds").expect("the tick age");
        assert!(age < 6.0, "{}: last tick {age} s ago", replica.base);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// People and the guard acting at once through different processes (separate pools, separate
/// caches) apply in one order: two approvers approving the same version on two replicas — one
/// applies, the other is told the rollout changed and approves again, and the stage advances
/// once, on the second approval; then a person pausing on one replica while the other's guard
/// rolls back a critical error — the rollback happens once whichever came first, and the pause
/// either applied before it or was refused, never applied over it.
#[sqlx::test(migrations = "../migrations")]
async fn people_and_the_guard_racing_on_different_replicas_apply_in_one_order(pool: PgPool) {
    let dir = std::env::temp_dir().join(format!("rampart-races-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = support::database_url(&pool);
    let first = Replica::start(&url, &dir.join("r0.log")).await;
    let second = Replica::start(&url, &dir.join("r1.log")).await;
    let (a, b) = (first.base.clone(), second.base.clone());
    // Two approvals per stage, from people other than the one who asks.
    sqlx::query("UPDATE plans SET definition = jsonb_set(definition, '{approvals,required}', '2')").execute(&pool).await.unwrap();
    let admin = sign_in(&a).await;
    for name in ["ana", "bea", "cai"] {
        let made = admin
            .post(format!("{a}/api/v1/users"))
            .json(&json!({ "name": name, "role": "approver", "password": format!("{name}-password-long") }))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status(), 201, "{}", made.text().await.unwrap());
    }
    let ana = sign_in_as(&a, "ana", "ana-password-long").await;
    let bea = sign_in_as(&a, "bea", "bea-password-long").await;
    let cai = sign_in_as(&b, "cai", "cai-password-long").await;
    let version = room(&ana, &a).await["state"]["version"].as_u64().unwrap();
    assert_eq!(command(&ana, &a, json!({ "command": "start" }), version).await.0, 200);
    let (status, body) = command(&ana, &a, json!({ "command": "advance", "override_reason": "race test" }), version + 1).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("awaiting_approval")), "{body}");

    // 1. bea (through replica A) and cai (through replica B) approve the same version at once.
    let asked = version + 2;
    let (first_try, second_try) =
        tokio::join!(command(&bea, &a, json!({ "command": "approve" }), asked), command(&cai, &b, json!({ "command": "approve" }), asked));
    let mut statuses = [first_try.0, second_try.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "one applies, the other is told the rollout changed: {first_try:?} {second_try:?}");
    let (late, late_base) = if first_try.0 == 409 { (&bea, &a) } else { (&cai, &b) };
    let now = room(late, late_base).await;
    assert_eq!((now["state"]["status"].as_str(), now["state"]["stage"].as_u64()), (Some("awaiting_approval"), Some(0)), "{now}");
    let (status, body) = command(late, late_base, json!({ "command": "approve" }), now["state"]["version"].as_u64().unwrap()).await;
    assert_eq!((status, body["stage"].as_u64(), body["status"].as_str()), (200, Some(1), Some("running")), "{body}");
    let approvals: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'approve'").fetch_one(&pool).await.unwrap();
    let advances: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE summary LIKE '%advanced to stage 1%'").fetch_one(&pool).await.unwrap();
    assert_eq!((approvals, advances), (2, 1), "two approvals, one advance");

    // 2. ana pauses through replica A while a critical error arrives through replica B, whose
    //    ingest wakes the guard (whichever replica holds its lease).
    let running = room(&ana, &a).await["state"]["version"].as_u64().unwrap();
    let token = support::all_scopes_token(&pool, "races", app::domain::units::Timestamp(now_ms())).await;
    let sender = machine(&token);
    let (pause, ingest) = tokio::join!(
        command(&ana, &a, json!({ "command": "pause", "reason": "looking into a report" }), running),
        sender.post(format!("{b}/api/v1/events")).body(critical("race-1")).send()
    );
    assert_eq!(ingest.unwrap().status(), 200);
    wait_until(Duration::from_secs(10), || async { room(&ana, &b).await["state"]["status"] == "rolled_back" }).await;
    tokio::time::sleep(Duration::from_secs(6)).await; // both replicas have ticked since
    let entries: Vec<(String, i64)> = sqlx::query_as("SELECT action, version FROM audit_log WHERE version > $1 ORDER BY id")
        .bind(running as i64)
        .fetch_all(&pool)
        .await
        .unwrap();
    let actions: Vec<&str> = entries.iter().map(|(action, _)| action.as_str()).collect();
    match pause.0 {
        200 => assert_eq!(actions, ["pause", "auto_roll_back"], "paused first, then rolled back: {entries:?}"),
        409 => assert_eq!(actions, ["auto_roll_back"], "rolled back first; the pause was refused: {entries:?}"),
        other => panic!("the pause answered {other}: {pause:?}"),
    }
    // One transition per version, none applied twice.
    let versions: Vec<i64> = entries.iter().map(|(_, v)| *v).collect();
    assert_eq!(versions, (running as i64 + 1..=running as i64 + versions.len() as i64).collect::<Vec<_>>(), "{entries:?}");
    for base in [&a, &b] {
        assert!(!served(&sender, base).await.0, "{base} still serves the flag");
    }
    eprintln!("the pause answered {} in the race with the guard", pause.0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Which replica holds the guard's lease on this test's database now (its `application_name`),
/// if one does: `pg_locks` lists every database's, and other tests run replicas beside this one.
async fn lease_holder(pool: &PgPool) -> Option<String> {
    sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.classid = 7002 AND l.objid = 0 AND l.objsubid = 2 AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// A replica frozen while it holds the guard's lease (a paused VM, a long stall, a cut network:
/// its connection stays open, so Postgres never sees it leave) held the guard for every replica
/// for as long as it stayed frozen. The lease's transaction now ends when idle for
/// `GUARD_LEASE_IDLE` (30 s), and another replica takes the guard over.
#[sqlx::test(migrations = "../migrations")]
async fn a_replica_frozen_holding_the_guard_gives_it_up_to_another(pool: PgPool) {
    // Every tick waits on a Prometheus that never answers (10 s, the query's timeout), so a
    // replica holds the lease for most of each tick, and can be frozen holding it.
    let stall = axum::Router::new().route(
        "/api/v1/query",
        axum::routing::get(|| async {
            tokio::time::sleep(Duration::from_secs(120)).await;
            ""
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let prometheus = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, stall).await.unwrap() });
    let dir = std::env::temp_dir().join(format!("rampart-frozen-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = support::database_url(&pool);
    let first = Replica::start(&format!("{url}?application_name=replica-0"), &dir.join("r0.log")).await;
    let second = Replica::start(&format!("{url}?application_name=replica-1"), &dir.join("r1.log")).await;
    let replicas = [first, second];
    let section = json!({ "prometheus": prometheus, "uploads": "uploads_total" });
    sqlx::query(
        "UPDATE plans SET definition = jsonb_set(jsonb_set(definition, '{metrics_source}', $1), '{approvals,allow_self_approval}', 'true')",
    )
    .bind(&section)
    .execute(&pool)
    .await
    .unwrap();
    let admin = sign_in(&replicas[0].base).await;
    let version = room(&admin, &replicas[0].base).await["state"]["version"].as_u64().unwrap();
    assert_eq!(command(&admin, &replicas[0].base, json!({ "command": "start" }), version).await.0, 200);
    let (status, body) =
        command(&admin, &replicas[0].base, json!({ "command": "advance", "override_reason": "frozen test" }), version + 1).await;
    assert_eq!((status, body["stage"].as_u64()), (200, Some(1)), "{body}");

    // Freeze whichever replica holds the lease, while it holds it.
    let mut frozen = None;
    for _ in 0..20 {
        let started = Instant::now();
        let holder = loop {
            if let Some(holder) = lease_holder(&pool).await {
                break holder;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no replica took the guard's lease");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let index: usize = holder.trim_start_matches("replica-").parse().unwrap_or_else(|_| panic!("the lease held by {holder:?}"));
        replicas[index].signal("STOP");
        if lease_holder(&pool).await == Some(format!("replica-{index}")) {
            frozen = Some(index);
            break;
        }
        replicas[index].signal("CONT");
    }
    let frozen = frozen.expect("a replica frozen holding the lease");
    let other = format!("replica-{}", 1 - frozen);
    let since = Instant::now();
    wait_until(Duration::from_secs(60), || async { lease_holder(&pool).await.as_deref() == Some(other.as_str()) }).await;
    let took = since.elapsed();
    eprintln!("replica-{frozen} froze holding the guard; {other} took it over after {took:?}");
    assert!(took < Duration::from_secs(45), "{took:?}");
    replicas[frozen].signal("CONT");

    // Killed instead, the acting replica's connection closes and its lease with it: the other
    // takes the guard at its next tick (every 5 s).
    let mut replicas = replicas;
    let acting = 1 - frozen;
    replicas[acting].kill();
    let since = Instant::now();
    let survivor = format!("replica-{frozen}");
    wait_until(Duration::from_secs(30), || async { lease_holder(&pool).await.as_deref() == Some(survivor.as_str()) }).await;
    let took = since.elapsed();
    eprintln!("replica-{acting} was killed holding the guard; {survivor} took it over after {took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The next release's migration, applied by its first replica while this version's replicas
/// still run (and restart) during a rolling upgrade: additive, as a release's migrations are
/// unless they raise the schema's floor — a table, and a column on one this version writes to.
const NEXT_RELEASE: i64 = 90_001;

async fn migrate_as_the_next_release(pool: &PgPool) {
    for statement in ["CREATE TABLE next_release_table (id bigint PRIMARY KEY)", "ALTER TABLE audit_log ADD COLUMN next_release_note text"]
    {
        sqlx::query(statement).execute(pool).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ($1, 'next release', true, '\\x00', 1)",
    )
    .bind(NEXT_RELEASE)
    .execute(pool)
    .await
    .unwrap();
}

/// A rolling upgrade: the database is migrated by the next release while replicas of this
/// one still run. A replica of this version that (re)starts then must start, be ready, and
/// work — serve the flag, take events, apply commands, guard — on the newer schema; and once
/// a release raises the schema's floor (a migration old binaries cannot run beside), it must
/// refuse to start, saying which release it needs, without touching the database.
#[sqlx::test(migrations = "../migrations")]
async fn a_replica_runs_on_the_next_releases_schema_and_refuses_one_past_its_floor(pool: PgPool) {
    let known = server::db::newest_migration();
    migrate_as_the_next_release(&pool).await;
    // Before the fix, sqlx refused outright; then the retry waited forever on the migration lock
    // the refused run had left on its pooled connection.
    let (ok, out) = support::rampart(&pool, &["migrate"]);
    assert!(ok, "this version migrates (nothing to do) beside the next release's schema: {out}");

    let dir = std::env::temp_dir().join(format!("rampart-upgrade-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).unwrap();
    let replica = Replica::start(&support::database_url(&pool), &dir.join("r0.log")).await;
    let ready: Value = reqwest::get(format!("{}/readyz", replica.base)).await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"][1]["ok"], true, "{ready}");
    assert!(ready["checks"][1]["detail"].as_str().unwrap().contains("1 newer"), "{ready}");
    let secret = support::all_scopes_token(&pool, "upgrade", app::domain::units::Timestamp(now_ms())).await;
    let client = machine(&secret);
    sqlx::query("UPDATE plans SET definition = jsonb_set(definition, '{approvals,allow_self_approval}', 'true')")
        .execute(&pool)
        .await
        .unwrap();
    let admin = sign_in(&replica.base).await;
    let version = room(&client, &replica.base).await["state"]["version"].as_u64().unwrap();
    assert_eq!(command(&admin, &replica.base, json!({ "command": "start" }), version).await.0, 200);
    let (status, body) =
        command(&admin, &replica.base, json!({ "command": "advance", "override_reason": "upgrade test" }), version + 1).await;
    assert_eq!((status, body["stage"].as_u64()), (200, Some(1)), "{body}");
    wait_until(Duration::from_secs(1), || async { served(&client, &replica.base).await == (true, 1) }).await;
    let response = client.post(format!("{}/api/v1/events", replica.base)).body(critical("upgrade-1")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    wait_until(Duration::from_secs(10), || async { room(&client, &replica.base).await["state"]["status"] == "rolled_back" }).await;

    // The release after raises the floor: the running replica stops being ready (a balancer
    // takes it out), and a new start refuses, naming both releases.
    sqlx::query("UPDATE schema_floor SET oldest_binary = $1").bind(NEXT_RELEASE).execute(&pool).await.unwrap();
    let response = reqwest::get(format!("{}/readyz", replica.base)).await.unwrap();
    assert_eq!(response.status(), 503);
    let ready: Value = response.json().await.unwrap();
    assert_eq!(
        ready["checks"][1]["detail"],
        format!("the schema needs a binary that knows migration {NEXT_RELEASE}; this one knows up to {known}"),
        "{ready}"
    );
    drop(replica);
    let (ok, out) = support::rampart(&pool, &["migrate"]);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!(
            "needs a Rampart that knows migration {NEXT_RELEASE} or later; this one knows migrations up to {known}: upgrade"
        )),
        "{out}"
    );
    // A migration this binary does not know below its own newest (another line's build) is
    // refused whatever the floor says.
    sqlx::query("UPDATE schema_floor SET oldest_binary = $1").bind(known).execute(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (0, 'stray', true, '\\x00', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (ok, out) = support::rampart(&pool, &["migrate"]);
    assert!(!ok && out.contains("migration 0, which this binary does not know although it knows later ones"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
