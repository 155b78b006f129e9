//! What the benchmarks share: a fresh database, an in-process Rampart, rollout commands.

#![allow(dead_code)]

use app::domain::units::Timestamp;
use server::config::ServeConfig;
use server::startup;
use sqlx::PgPool;
use std::sync::Arc;

#[path = "../../tests/support/common.rs"]
mod common;
#[path = "../../tests/support/process.rs"]
pub mod process;
#[allow(unused_imports)] // not every bench starts a database
pub use common::fresh_database;

/// Quick mode (`RAMPART_BENCH_QUICK=1`, as `cargo xtask test` runs every bench): sizes that
/// only prove a bench runs end to end and prints its figures; the figures mean nothing then.
pub fn quick() -> bool {
    std::env::var_os("RAMPART_BENCH_QUICK").is_some()
}

/// `full`, or `small` in quick mode.
pub fn sized<T>(full: T, small: T) -> T {
    if quick() { small } else { full }
}

/// A Rampart on a free port over `pool`, with the wall clock; returns its base URL.
pub async fn spawn_rampart(pool: PgPool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clock = Arc::new(|| Timestamp(chrono::Utc::now().timestamp_millis()));
    let app = startup::build(&ServeConfig::default(), listener, pool, clock).await.unwrap();
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    url
}

/// A token with every scope, made straight in the store (the benchmarks act as one machine).
pub async fn bench_token(pool: &PgPool) -> String {
    common::all_scopes_token(pool, "benchmark", Timestamp(chrono::Utc::now().timestamp_millis())).await
}

/// A client builder that sends `token` as `Authorization: Bearer` with every request.
pub fn authorized(token: &str) -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers)
}

/// Gives rollout 1 a command at its current version.
pub async fn command(http: &reqwest::Client, base: &str, mut body: serde_json::Value) -> u64 {
    let room: serde_json::Value = http.get(format!("{base}/api/v1/rollouts/1")).send().await.unwrap().json().await.unwrap();
    body["version"] = room["state"]["version"].clone();
    let response = http.post(format!("{base}/api/v1/rollouts/1/commands")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{body}: {}", response.text().await.unwrap());
    let state: serde_json::Value = response.json().await.unwrap();
    state["version"].as_u64().expect("the command's answer holds the rollout's new version")
}

/// People who move the rollout forward: an advance takes one approver asking (with the
/// benchmark's override reason) and another approving; tokens may do neither.
pub struct Approvers {
    asker: reqwest::Client,
    approver: reqwest::Client,
}

impl Approvers {
    /// Adds two approvers straight in the store and signs them in on `base`.
    pub async fn new(pool: &PgPool, base: &str) -> Approvers {
        let store = server::store::Store::new(pool.clone());
        let mut clients = Vec::new();
        for name in ["bench-asker", "bench-approver"] {
            let password = format!("{name}-password");
            let hash = server::auth::hash_password(&password).unwrap();
            let now = Timestamp(chrono::Utc::now().timestamp_millis());
            store.create_user(name, app::domain::access::Role::Approver, &hash, "benchmark", now).await.unwrap();
            let response = reqwest::Client::new()
                .post(format!("{base}/auth/login"))
                .header("accept", "application/json")
                .header("origin", base)
                .form(&[("name", name), ("password", password.as_str())])
                .send()
                .await
                .unwrap();
            let session = common::session_cookie(&response).expect("a session cookie");
            clients.push(common::client_with(&[("cookie", &format!("rampart_session={session}")), ("origin", base)]));
        }
        let approver = clients.pop().unwrap();
        Approvers { asker: clients.pop().unwrap(), approver }
    }

    /// Asks to advance rollout 1 past whatever blocks it.
    pub async fn ask(&self, base: &str) -> u64 {
        command(&self.asker, base, serde_json::json!({ "command": "advance", "override_reason": "benchmark" })).await
    }

    /// Approves the waiting request: the stage and the served flag change here. Returns the
    /// rollout's new version.
    pub async fn approve(&self, base: &str) -> u64 {
        command(&self.approver, base, serde_json::json!({ "command": "approve" })).await
    }

    pub async fn advance(&self, base: &str) {
        self.ask(base).await;
        self.approve(base).await;
    }
}
