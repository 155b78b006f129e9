//! Flag delivery benchmark: in-process bucketing, and HTTP evaluation (Rampart's evaluate and
//! OFREP endpoints) against a bare axum handler that returns constant JSON, measured in one run
//! on the same machine; then how long a stage change takes to be served by a second replica.
//!
//!   cargo xtask bench            (starts a private Postgres, or uses DATABASE_URL)
//!
//! Figures are ratios against the baseline measured in the same run; absolute numbers depend on
//! the machine and on the load generator sharing it.

use app::domain::bucketing;
use app::domain::plan::StageFlag;
use app::domain::units::Percentage;
use axum::Router;
use axum::routing::get;
use std::hint::black_box;

mod support;
use std::time::{Duration, Instant};
use support::{Approvers, authorized, bench_token, command, fresh_database, spawn_rampart};

const CONNECTIONS: usize = 16;
const HTTP_SECONDS: u64 = 5;

fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask bench`");
    println!("# Flag delivery benchmark ({} cores)\n", std::thread::available_parallelism().map_or(1, |n| n.get()));
    in_process();

    // Server and load generator get a runtime (and so a core) each.
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let (pool, _) = server_rt.block_on(fresh_database(&url, "rampart_bench"));
    let (rampart_a, rampart_b, bare) = server_rt.block_on(async {
        let a = spawn_rampart(pool.clone()).await;
        let b = spawn_rampart(pool.clone()).await;
        let bare = spawn_bare().await;
        (a, b, bare)
    });
    let token = server_rt.block_on(bench_token(&pool));
    client_rt.block_on(async {
        // Serve the flag at 10% so evaluation does real bucketing.
        let http = authorized(&token).build().unwrap();
        command(&http, &rampart_a, serde_json::json!({ "command": "start" })).await;
        let approvers = Approvers::new(&pool, &rampart_a).await;
        approvers.advance(&rampart_a).await;
        approvers.advance(&rampart_a).await;
        tokio::time::sleep(Duration::from_millis(200)).await;

        println!("\n## HTTP, {CONNECTIONS} keep-alive connections, {HTTP_SECONDS} s each\n");
        println!("| endpoint | requests/s | p50 | p99 | vs bare axum |");
        println!("|---|---:|---:|---:|---:|");
        let baseline = load(Target::Get(format!("{bare}/")), &token).await;
        report("bare axum handler, constant JSON (baseline)", &baseline, baseline.rate);
        let evaluate = load(Target::Get(format!("{rampart_a}/api/v1/flags/async_upload/evaluate?unit=user-{{n}}")), &token).await;
        report("`GET /api/v1/flags/async_upload/evaluate`", &evaluate, baseline.rate);
        let ofrep = load(Target::Post(format!("{rampart_a}/ofrep/v1/evaluate/flags/async_upload")), &token).await;
        report("`POST /ofrep/v1/evaluate/flags/async_upload`", &ofrep, baseline.rate);

        println!("\n## Stage change → served by another replica\n");
        propagation(&http, &approvers, &rampart_a, &rampart_b).await;
    });
    server_rt.block_on(pool.close());
}

fn in_process() {
    let flag = StageFlag { enabled: true, percentage: Percentage::new(10).unwrap() };
    let units: Vec<String> = (0..4096).map(|i| format!("user-{i}")).collect();
    let n: usize = 20_000_000;
    let started = Instant::now();
    let mut on = 0usize;
    for i in 0..n {
        on += usize::from(bucketing::evaluate(flag, black_box("async_upload"), &units[i & 4095]).enabled);
    }
    let elapsed = started.elapsed();
    black_box(on);
    println!("## In-process bucketing (one core)\n");
    println!("{n} evaluations in {elapsed:.2?}: **{:.1} M evaluations/s** (target ≥ 20 M/s)", n as f64 / elapsed.as_secs_f64() / 1e6);
}

async fn spawn_bare() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = Router::new()
        .route("/", get(|| async { axum::Json(serde_json::json!({ "flag": "async_upload", "enabled": true, "variant": "treatment" })) }));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

#[derive(Clone)]
enum Target {
    /// `{n}` in the URL becomes a running number, so each request asks about another unit.
    Get(String),
    Post(String),
}

struct Load {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

/// Every request carries the token, the bare baseline's too, so both parse the same headers.
async fn load(target: Target, token: &str) -> Load {
    let deadline = Instant::now() + Duration::from_secs(HTTP_SECONDS);
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|w| {
            let target = target.clone();
            let http = authorized(token).pool_max_idle_per_host(1).build().unwrap();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = w * 1_000_000;
                while Instant::now() < deadline {
                    n += 1;
                    let t = Instant::now();
                    let response = match &target {
                        Target::Get(url) => http.get(url.replace("{n}", &n.to_string())).send().await,
                        Target::Post(url) => {
                            let body = format!(r#"{{"context":{{"targetingKey":"user-{n}"}}}}"#);
                            http.post(url).header("content-type", "application/json").body(body).send().await
                        }
                    }
                    .expect("request");
                    assert!(response.status().is_success());
                    response.bytes().await.expect("body");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Load { rate: all.len() as f64 / elapsed.as_secs_f64(), p50: at(0.50), p99: at(0.99) }
}

fn report(name: &str, load: &Load, baseline: f64) {
    println!(
        "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.0}% |",
        load.rate,
        load.p50.as_secs_f64() * 1e3,
        load.p99.as_secs_f64() * 1e3,
        load.rate / baseline * 100.0
    );
}

/// From the command that changes the flag (a rollback, or the approval of an advance) on
/// replica A until replica B serves the change.
async fn propagation(http: &reqwest::Client, approvers: &Approvers, a: &str, b: &str) {
    let mut samples = Vec::new();
    for i in 0..20 {
        if i % 2 == 1 {
            approvers.ask(a).await;
        }
        let before: serde_json::Value = http.get(format!("{b}/api/v1/flags/async_upload")).send().await.unwrap().json().await.unwrap();
        let started = Instant::now();
        if i % 2 == 0 {
            command(http, a, serde_json::json!({ "command": "roll_back", "target": "previous", "reason": "benchmark" })).await;
        } else {
            approvers.approve(a).await;
        }
        loop {
            let now: serde_json::Value = http.get(format!("{b}/api/v1/flags/async_upload")).send().await.unwrap().json().await.unwrap();
            if now["config_version"] != before["config_version"] {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "{} stage changes through replica A, polled on replica B: median **{:.1} ms**, max {:.1} ms (target < 1 s; includes the command's own round trip)",
        samples.len(),
        samples[samples.len() / 2].as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3
    );
}
