//! Breach to rollback, end to end: a Rampart serving the flag at 10% receives healthy traffic,
//! then a batch in which the treatment arm fails; the time from sending that batch to the flag
//! being served off to clients (`GET /api/v1/flags/async_upload` on a second replica) is
//! measured over several rounds at the default loop interval (5 s, woken early by ingest).
//!
//!   cargo xtask bench

use app::domain::event::Variant;
use app::domain::units::Timestamp;
use server::simulate::{Model, Regression};
use std::time::{Duration, Instant};

mod support;
use support::{Approvers, authorized, bench_token, command, fresh_database, sized, spawn_rampart};

const ROUNDS: usize = 10;

fn main() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL: run through `cargo xtask bench`");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let (pool, _) = fresh_database(&url, "rampart_bench_guard").await;
        let a = spawn_rampart(pool.clone()).await;
        let b = spawn_rampart(pool.clone()).await;
        let http = authorized(&bench_token(&pool).await).build().unwrap();
        let approvers = Approvers::new(&pool, &a).await;
        let mut model = Model::new(99, 7);
        command(&http, &a, serde_json::json!({ "command": "start" })).await;
        let rounds = sized(ROUNDS, 2);
        let mut samples = Vec::new();
        for _ in 0..rounds {
            while stage(&http, &a).await < 2 {
                approvers.advance(&a).await;
            }
            wait_until(&http, &b, true).await;
            send(&http, &a, &mut model, 900, 100, &[]).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let started = Instant::now();
            // At 10% served, the spike comes with the control arm's uploads, as real traffic does.
            send(&http, &a, &mut model, 900, 100, &[Regression::ErrorRate(50.0)]).await;
            wait_until(&http, &b, false).await;
            samples.push(started.elapsed());
            // Let the bad window age out before the next round.
            tokio::time::sleep(Duration::from_millis(100)).await;
            // The deltas first, as the server's fold takes them (then the rollups): listed the
            // other way, TRUNCATE and a fold running meanwhile each held what the other waited for
            // (a deadlock seen in CI).
            sqlx::query("TRUNCATE event_rollup_deltas, event_rollups, event_rollups_by_arm, events").execute(&pool).await.unwrap();
        }
        samples.sort();
        println!("# Breach to rollback\n");
        println!(
            "{rounds} rounds, error spike sent to replica A, flag polled on replica B: median **{:.0} ms**, max {:.0} ms (target < 5 s)",
            samples[rounds / 2].as_secs_f64() * 1e3,
            samples[rounds - 1].as_secs_f64() * 1e3
        );
    });
}

async fn stage(http: &reqwest::Client, base: &str) -> u64 {
    let room: serde_json::Value = http.get(format!("{base}/api/v1/rollouts/1")).send().await.unwrap().json().await.unwrap();
    room["state"]["stage"].as_u64().unwrap()
}

async fn wait_until(http: &reqwest::Client, base: &str, enabled: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let config: serde_json::Value = http.get(format!("{base}/api/v1/flags/async_upload")).send().await.unwrap().json().await.unwrap();
        if config["enabled"] == enabled {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the flag never became enabled={enabled}");
}

async fn send(http: &reqwest::Client, base: &str, model: &mut Model, control: usize, treatment: usize, regressions: &[Regression]) {
    let now = chrono::Utc::now().timestamp_millis();
    let body: String = (0..control + treatment)
        .map(|i| {
            let variant = if i < treatment { Variant::Treatment } else { Variant::Control };
            format!("{}\n", model.event(Timestamp(now - i as i64), variant, if i < treatment { regressions } else { &[] }))
        })
        .collect();
    let response = http.post(format!("{base}/api/v1/events")).body(body).send().await.unwrap();
    assert!(response.status().is_success());
}
