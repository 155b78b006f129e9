//! What the benchmarks share: a fresh database, an in-process Rampart, rollout commands.

#![allow(dead_code)]

use app::domain::units::Timestamp;
use server::config::ServeConfig;
use server::startup;
use sqlx::{Connection, PgConnection, PgPool};
use std::sync::Arc;

/// Drops and recreates database `name` on DATABASE_URL's server, migrated; returns its pool and URL.
pub async fn fresh_database(url: &str, name: &str) -> (PgPool, String) {
    let mut admin = PgConnection::connect(url).await.expect("connect to DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut admin).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
    let db_url = format!("{}/{name}", url.rsplit_once('/').expect("DATABASE_URL has a database path").0);
    let pool = PgPool::connect(&db_url).await.unwrap();
    server::db::MIGRATOR.run(&pool).await.unwrap();
    (pool, db_url)
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
    let secret = server::auth::new_secret();
    let scopes = app::domain::access::Scope::ALL;
    server::store::Store::new(pool.clone())
        .create_token("benchmark", &server::auth::digest(&secret), &scopes, "benchmark", Timestamp(chrono::Utc::now().timestamp_millis()))
        .await
        .unwrap();
    secret
}

/// A client builder that sends `token` as `Authorization: Bearer` with every request.
pub fn authorized(token: &str) -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
    reqwest::Client::builder().default_headers(headers)
}

/// Gives rollout 1 a command at its current version.
pub async fn command(http: &reqwest::Client, base: &str, mut body: serde_json::Value) {
    let room: serde_json::Value = http.get(format!("{base}/api/v1/rollouts/1")).send().await.unwrap().json().await.unwrap();
    body["version"] = room["state"]["version"].clone();
    let response = http.post(format!("{base}/api/v1/rollouts/1/commands")).json(&body).send().await.unwrap();
    assert!(response.status().is_success(), "{body}: {}", response.text().await.unwrap());
}
