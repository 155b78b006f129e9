//! Shared by the integration tests: the real server on a real socket, over a test's own database.

#![allow(dead_code)]

use app::domain::units::Timestamp;
use server::config::ServeConfig;
use server::startup;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::net::TcpListener;

/// 2026-11-22 12:00 UTC: the tests' clock starts here and moves only when told.
pub const START: i64 = 1_795_348_800_000;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub guard: server::guard::Guard,
    now: Arc<AtomicI64>,
}

impl TestApp {
    pub async fn spawn(pool: PgPool) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let now = Arc::new(AtomicI64::new(START));
        let clock = {
            let now = now.clone();
            Arc::new(move || Timestamp(now.load(Ordering::SeqCst)))
        };
        let config = ServeConfig { site_root: concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site").into(), ..Default::default() };
        let app = startup::build(&config, listener, pool.clone(), clock).await.expect("the server builds");
        let base = format!("http://{}", app.local_addr());
        let guard = app.guard();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        TestApp { base, client: reqwest::Client::new(), pool, guard, now }
    }

    /// Moves the server's clock forward.
    pub fn advance_clock_hours(&self, hours: i64) {
        self.advance_clock_minutes(hours * 60);
    }

    pub fn advance_clock_minutes(&self, minutes: i64) {
        self.now.fetch_add(minutes * 60_000, Ordering::SeqCst);
    }

    /// The server's clock now.
    pub fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.expect("JSON body")
    }

    /// POSTs JSON and returns the status and the JSON body.
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self.client.post(self.url(path)).json(&body).send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn room(&self) -> serde_json::Value {
        self.get_json("/api/v1/rollouts/1").await
    }

    pub async fn version(&self) -> u64 {
        self.room().await["state"]["version"].as_u64().expect("a version")
    }

    /// Gives a command at the current version; returns status and body.
    pub async fn command(&self, command: serde_json::Value) -> (u16, serde_json::Value) {
        let mut body = command;
        body["version"] = self.version().await.into();
        self.post("/api/v1/rollouts/1/commands", body).await
    }

    /// Starts the rollout if it is a draft and overrides its way forward to `stage`.
    pub async fn go_to_stage(&self, stage: u64) {
        if self.room().await["state"]["status"] == "draft" {
            let (status, body) = self.command(serde_json::json!({ "command": "start" })).await;
            assert_eq!(status, 200, "{body}");
        }
        while self.room().await["state"]["stage"].as_u64().unwrap() < stage {
            let (status, body) = self.command(serde_json::json!({ "command": "advance", "override_reason": "test set-up" })).await;
            assert_eq!(status, 200, "{body}");
        }
    }
}
