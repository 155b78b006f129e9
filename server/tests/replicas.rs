//! Several `rampart serve` processes on one Postgres behind a real load balancer (HAProxy from
//! Debian, started here with health checks on `/readyz`), as teams run Rampart when one
//! machine is not enough: a change made through one replica is served by every replica within
//! a second; conflicting commands spread across replicas apply exactly once; a breach is rolled
//! back once, not once per replica; and when a replica is killed the others keep serving and
//! guarding without it.

mod support;

use support::process::{ADMIN_PASSWORD, Replica, free_port, get_status, now_ms, wait_until};

use serde_json::{Value, json};
use sqlx::PgPool;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// HAProxy in front of the replicas, round robin, each checked on `/readyz` every 200 ms, and
/// no retries: a request sent to a dead replica fails, so the test sees whether the health
/// checks took it out.
struct Balancer {
    child: Child,
    base: String,
}

impl Balancer {
    async fn start(replicas: &[&Replica], dir: &std::path::Path) -> Balancer {
        let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].into_iter().find(|p| std::path::Path::new(p).exists()).expect(
            "HAProxy is not installed: `cargo xtask test` installs it (Debian: apt-get install haproxy); this test needs a real load balancer",
        );
        let port = free_port();
        let servers: String =
            replicas.iter().enumerate().map(|(i, r)| format!("  server r{i} {} check\n", r.base.trim_start_matches("http://"))).collect();
        let config = format!(
            "global\n  maxconn 2000\n\
             defaults\n  mode http\n  timeout connect 1s\n  timeout client 30s\n  timeout server 30s\n  retries 0\n\
             frontend rampart\n  bind 127.0.0.1:{port}\n  default_backend replicas\n\
             backend replicas\n  balance roundrobin\n  option httpchk GET /readyz\n  default-server inter 200ms fall 2 rise 2\n{servers}"
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let child =
            Command::new(haproxy).arg("-db").arg("-f").arg(&path).stdout(Stdio::null()).stderr(log).spawn().expect("haproxy starts");
        let balancer = Balancer { child, base: format!("http://127.0.0.1:{port}") };
        wait_until(Duration::from_secs(20), || async { get_status(&format!("{}/readyz", balancer.base)).await == Some(200) }).await;
        balancer
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first admin, signed in through `base`: a client carrying the session and an `Origin`.
async fn sign_in(base: &str) -> reqwest::Client {
    let response = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .header("accept", "application/json")
        .header("origin", base)
        .form(&[("name", "admin"), ("password", ADMIN_PASSWORD)])
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
