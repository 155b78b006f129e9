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
use support::{Approvers, authorized, bench_token, command, fresh_database, sized, spawn_rampart};

const CONNECTIONS: usize = 16;
/// Each endpoint gets ROUNDS rounds of ROUND_SECONDS, interleaved and in a rotating order, so a
/// minute when the shared machine is slow falls on all three alike.
const ROUNDS: usize = 5;
const ROUND_SECONDS: u64 = 1;

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

        // Unleash Edge, when installed, serving the same flag at the same 10%.
        let edge = Edge::start().await;
        let rounds = sized(ROUNDS, 1);
        println!("\n## HTTP, {CONNECTIONS} keep-alive connections, {rounds} interleaved rounds of {ROUND_SECONDS} s each\n");
        let targets = [
            ("bare axum handler, constant JSON (baseline)", Target::Get(format!("{bare}/"))),
            (
                "`GET /api/v1/flags/async_upload/evaluate`",
                Target::Get(format!("{rampart_a}/api/v1/flags/async_upload/evaluate?unit=user-{{n}}")),
            ),
            ("`POST /ofrep/v1/evaluate/flags/async_upload`", Target::Post(format!("{rampart_a}/ofrep/v1/evaluate/flags/async_upload"))),
        ];
        let bearer = format!("Bearer {token}");
        let mut targets: Vec<(&str, Target, &str)> = targets.into_iter().map(|(name, target)| (name, target, bearer.as_str())).collect();
        if let Some(edge) = &edge {
            // The frontend API's evaluation for one context (Edge answers a single flag that is
            // off for the unit with 404; this answers 200 with the flags that are on: one or none).
            let url = format!("{}/api/frontend?userId=user-{{n}}", edge.base);
            targets.push((edge.label.as_str(), Target::Get(url), EDGE_TOKEN));
        } else {
            println!("(Unleash Edge is not installed: `cargo xtask bench` installs it; this run compares with the bare handler only)\n");
        }
        let mut loads: Vec<Load> = targets.iter().map(|_| Load::default()).collect();
        for round in 0..rounds {
            for k in 0..targets.len() {
                let i = (round + k) % targets.len();
                loads[i].add(load(targets[i].1.clone(), targets[i].2).await);
            }
        }
        println!("| endpoint | requests/s | p50 | p99 | vs bare axum | rounds vs bare axum |");
        println!("|---|---:|---:|---:|---:|---:|");
        for ((name, _, _), load) in targets.iter().zip(&loads) {
            report(name, load, &loads[0]);
        }
        drop(targets);
        drop(edge);

        println!("\n## Stage change → served by another replica\n");
        propagation(&http, &approvers, &rampart_a, &rampart_b).await;
    });
    server_rt.block_on(pool.close());
}

fn in_process() {
    let flag = StageFlag { enabled: true, percentage: Percentage::new(10).unwrap() };
    let units: Vec<String> = (0..4096).map(|i| format!("user-{i}")).collect();
    let n: usize = sized(20_000_000, 200_000);
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

/// Requests answered in one or more rounds: their latencies, the time taken, and each round's rate.
#[derive(Default)]
struct Load {
    latencies: Vec<Duration>,
    elapsed: Duration,
    rounds: Vec<f64>,
}

impl Load {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn add(&mut self, round: Load) {
        self.rounds.push(round.rate());
        self.latencies.extend(round.latencies);
        self.elapsed += round.elapsed;
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
    }
}

/// One round against `target`, every request carrying `authorization` (Rampart's token, sent
/// to the bare baseline too, so both parse the same headers; Edge's own token to Edge).
async fn load(target: Target, authorization: &str) -> Load {
    let deadline = Instant::now() + Duration::from_secs(ROUND_SECONDS);
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|w| {
            let target = target.clone();
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, authorization.parse().unwrap());
            let http = reqwest::Client::builder().default_headers(headers).pool_max_idle_per_host(1).build().unwrap();
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
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    Load { latencies, elapsed: started.elapsed(), rounds: Vec::new() }
}

/// The endpoint's rate over all its rounds against the baseline's, and the range of the
/// round-by-round ratios (each round against the baseline's round next to it).
fn report(name: &str, load: &Load, baseline: &Load) {
    let rounds = if std::ptr::eq(load, baseline) {
        "—".to_string()
    } else {
        let ratios = load.rounds.iter().zip(&baseline.rounds).map(|(r, b)| r / b * 100.0);
        let (low, high) = ratios.fold((f64::MAX, f64::MIN), |(low, high), r| (low.min(r), high.max(r)));
        format!("{low:.0}–{high:.0}%")
    };
    println!(
        "| {name} | {:.0} | {:.2} ms | {:.2} ms | {:.0}% | {rounds} |",
        load.rate(),
        load.quantile(0.50).as_secs_f64() * 1e3,
        load.quantile(0.99).as_secs_f64() * 1e3,
        load.rate() / baseline.rate() * 100.0
    );
}

/// From the command that changes the flag (a rollback, or the approval of an advance) on
/// replica A until replica B serves that change: the flag's `config_version` is
/// `{rollout}.{version}`, and the wait is for the version the command produced, so neither an
/// earlier change still arriving (the request before an approval) nor any other stops it.
async fn propagation(http: &reqwest::Client, approvers: &Approvers, a: &str, b: &str) {
    let mut samples = Vec::new();
    for i in 0..sized(20, 2) {
        if i % 2 == 1 {
            approvers.ask(a).await;
        }
        let started = Instant::now();
        let version = if i % 2 == 0 {
            command(http, a, serde_json::json!({ "command": "roll_back", "target": "previous", "reason": "benchmark" })).await
        } else {
            approvers.approve(a).await
        };
        let expected = format!("1.{version}");
        loop {
            let now: serde_json::Value = http.get(format!("{b}/api/v1/flags/async_upload")).send().await.unwrap().json().await.unwrap();
            if now["config_version"] == expected.as_str() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "replica B never served {expected}: {now}");
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

/// The frontend token Edge is started with (offline mode accepts the tokens it is given).
const EDGE_TOKEN: &str = "*:development.rampart-bench";

/// Unleash Edge in offline mode (`unleash-edge offline`), one worker as Rampart has, serving
/// `async_upload` from a bootstrap file as Unleash would: a gradual rollout at 10% by user id.
/// Found at `$UNLEASH_EDGE` or `~/.cargo/bin/unleash-edge`; `None` when not installed.
struct Edge {
    child: std::process::Child,
    base: String,
    /// Its row's name in the table, with its version.
    label: String,
}

impl Edge {
    async fn start() -> Option<Edge> {
        let binary = std::env::var_os("UNLEASH_EDGE")
            .map(std::path::PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cargo/bin/unleash-edge")))
            .filter(|path| path.is_file())?;
        let bootstrap = std::env::temp_dir().join(format!("rampart-bench-edge-{}.json", std::process::id()));
        let features = serde_json::json!({ "version": 2, "features": [{
            "name": "async_upload", "enabled": true, "project": "default",
            "strategies": [{ "name": "flexibleRollout", "constraints": [],
                             "parameters": { "rollout": "10", "stickiness": "userId", "groupId": "async_upload" } }]
        }]});
        std::fs::write(&bootstrap, features.to_string()).unwrap();
        // Edge has no `--version`: xtask says which it installed.
        let version = std::env::var("UNLEASH_EDGE_VERSION").unwrap_or_else(|_| "(version not given)".into());
        let label = format!("Unleash Edge {version} (offline), `GET /api/frontend?userId=…`");
        let port = support::process::free_port();
        let child = std::process::Command::new(binary)
            .args(["--workers", "1", "--interface", "127.0.0.1", "--port", &port.to_string(), "offline", "--bootstrap-file"])
            .arg(&bootstrap)
            // Offline mode starts only with a client token too; the bench asks as a frontend.
            .args(["--client-tokens", "*:development.rampart-bench-client", "--frontend-tokens", EDGE_TOKEN])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("unleash-edge starts");
        let edge = Edge { child, base: format!("http://127.0.0.1:{port}"), label };
        let probe = reqwest::Client::new();
        let url = format!("{}/api/frontend?userId=user-1", edge.base);
        let started = Instant::now();
        while !probe.get(&url).header("authorization", EDGE_TOKEN).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(started.elapsed() < Duration::from_secs(30), "Unleash Edge did not answer at {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The same split as Rampart's: about 10% of units see the flag.
        let mut on = 0;
        for n in 0..1_000 {
            let answer: serde_json::Value = probe
                .get(format!("{}/api/frontend?userId=user-{n}", edge.base))
                .header("authorization", EDGE_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            on += answer["toggles"].as_array().map_or(0, Vec::len);
        }
        assert!((50..=150).contains(&on), "Edge serves the flag to {on} of 1,000 units, not about 10%");
        Some(edge)
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("rampart-bench-edge-{}.json", std::process::id())));
    }
}
