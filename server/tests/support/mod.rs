//! Shared by the integration tests: the real server on a real socket, over a test's own database.

#![allow(dead_code)]

use app::domain::units::Timestamp;
use server::config::ServeConfig;
use server::startup;
use server::store::Store;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::net::TcpListener;

mod common;
pub mod process;
#[allow(unused_imports)] // not every test binary uses each
pub use common::{all_scopes_token, client_with, session_cookie};

/// The password [`TestApp::person`] gives `name`.
fn password_of(name: &str) -> String {
    format!("{name}-password-123")
}

/// The first admin's password in every test server.
pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
/// The audit name of the token the default client sends.
pub const TEST_ACTOR: &str = "token:test-suite";

/// 2026-11-22 12:00 UTC: the tests' clock starts here and moves only when told.
pub const START: i64 = 1_795_348_800_000;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub guard: server::guard::Guard,
    pub webhooks: server::webhooks::Dispatcher,
    /// The first admin's set-password path, when started without a password.
    pub setup_link: Option<String>,
    now: Arc<AtomicI64>,
    approvers: tokio::sync::OnceCell<()>,
}

impl TestApp {
    /// The server as the tests need it: a first admin, and webhooks allowed to this machine
    /// (where the tests' receivers listen).
    pub async fn spawn(pool: PgPool) -> TestApp {
        TestApp::spawn_with(pool, |config| config.webhook_allow = server::egress::Egress::parse("127.0.0.0/8").unwrap()).await
    }

    /// Like [`TestApp::spawn`] with the admin password set, and `configure` deciding the rest.
    pub async fn spawn_with(pool: PgPool, configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let now = Arc::new(AtomicI64::new(START));
        let clock = {
            let now = now.clone();
            Arc::new(move || Timestamp(now.load(Ordering::SeqCst)))
        };
        let mut config = ServeConfig {
            site_root: concat!(env!("CARGO_MANIFEST_DIR"), "/../target/site").into(),
            admin_password: Some(ADMIN_PASSWORD.to_string().into()),
            ..Default::default()
        };
        configure(&mut config);
        let app = startup::build(&config, listener, pool.clone(), clock).await.expect("the server builds");
        let base = format!("http://{}", app.local_addr());
        let guard = app.guard();
        let webhooks = app.webhooks();
        let setup_link = app.setup_link();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        // The default client is a machine holding every scope; tests about access build others.
        let secret = common::all_scopes_token(&pool, "test-suite", Timestamp(START)).await;
        let client = client_with(&[("authorization", &format!("Bearer {secret}"))]);
        TestApp { base, client, pool, guard, webhooks, setup_link, now, approvers: tokio::sync::OnceCell::new() }
    }

    /// Signs in through the form and returns a client carrying the session cookie (and an
    /// `Origin`, as a browser on Rampart's pages would send).
    pub async fn sign_in(&self, name: &str, password: &str) -> reqwest::Client {
        let session = self.session_id(name, password).await;
        client_with(&[("cookie", &format!("rampart_session={session}")), ("origin", &self.base)])
    }

    /// Signs in and returns the session id the server set.
    pub async fn session_id(&self, name: &str, password: &str) -> String {
        let response = self.sign_in_response(name, password, &self.base).await;
        let cookie = session_cookie(&response);
        assert_eq!(response.status().as_u16(), 200, "sign in as {name}: {}", response.text().await.unwrap_or_default());
        cookie.expect("a session cookie")
    }

    /// The raw answer to a JSON sign-in, sent with the given `Origin`.
    pub async fn sign_in_response(&self, name: &str, password: &str, origin: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/auth/login"))
            .header("accept", "application/json")
            .header("origin", origin)
            .form(&[("name", name), ("password", password)])
            .send()
            .await
            .expect("POST /auth/login")
    }

    /// Adds a person with `role` (through the admin API) and signs them in; a person another
    /// server over the same database made already is just signed in.
    pub async fn person(&self, name: &str, role: &str) -> reqwest::Client {
        let admin = self.sign_in("admin", ADMIN_PASSWORD).await;
        let password = password_of(name);
        let response = admin
            .post(self.url("/api/v1/users"))
            .json(&serde_json::json!({ "name": name, "role": role, "password": password }))
            .send()
            .await
            .expect("POST /api/v1/users");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert!(status == 201 || text.contains("already"), "{status} {text}");
        self.sign_in(name, &password).await
    }

    /// Moves the server's clock forward.
    pub fn advance_clock_hours(&self, hours: i64) {
        self.advance_clock_minutes(hours * 60);
    }

    pub fn advance_clock_minutes(&self, minutes: i64) {
        self.now.fetch_add(minutes * 60_000, Ordering::SeqCst);
    }

    /// Sets the server's clock (to the wall clock, for a test against a real Prometheus).
    pub fn set_clock(&self, at: Timestamp) {
        self.now.store(at.millis(), Ordering::SeqCst);
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
        self.post_as(&self.client, path, body).await
    }

    /// The same as `client` (a person signed in: sent from this server's pages).
    pub async fn post_as(&self, client: &reqwest::Client, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = client.post(self.url(path)).header("origin", &self.base).json(&body).send().await.expect("POST");
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

    /// Two people with the approver role, ana and bea (made on first use), freshly signed in
    /// (the tests' clock outruns sessions): the default plan needs one approval by somebody
    /// other than who asked.
    pub async fn approvers(&self) -> (reqwest::Client, reqwest::Client) {
        self.approvers
            .get_or_init(|| async {
                self.person("ana", "approver").await;
                self.person("bea", "approver").await;
            })
            .await;
        (self.sign_in("ana", &password_of("ana")).await, self.sign_in("bea", &password_of("bea")).await)
    }

    /// Gives a command as `client` at the current version; returns status and body.
    pub async fn command_as(&self, client: &reqwest::Client, command: serde_json::Value) -> (u16, serde_json::Value) {
        let mut body = command;
        body["version"] = self.version().await.into();
        let response = client.post(self.url("/api/v1/rollouts/1/commands")).json(&body).send().await.expect("POST a command");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Asks to advance (as ana, who may give an override reason) and has bea approve; returns
    /// the approval's status and body, or the request's when the request was refused.
    pub async fn advance(&self, override_reason: Option<&str>) -> (u16, serde_json::Value) {
        let (ana, bea) = self.approvers().await;
        let room = self.room().await;
        let last = room["plan"]["stages"].as_array().map_or(0, |s| s.len() as u64 - 1);
        let command = if room["state"]["stage"].as_u64() == Some(last) { "complete" } else { "advance" };
        let (status, body) = self.command_as(&ana, serde_json::json!({ "command": command, "override_reason": override_reason })).await;
        if status != 200 {
            return (status, body);
        }
        assert_eq!(body["status"], "awaiting_approval", "{body}");
        self.command_as(&bea, serde_json::json!({ "command": "approve" })).await
    }

    /// Sends uploads from the simulator's model at the server's current time, `treatment` of
    /// them treated (with `regressions`); returns the ingest report.
    pub async fn simulate(
        &self,
        model: &mut server::simulate::Model,
        control: usize,
        treatment: usize,
        regressions: &[server::simulate::Regression],
    ) -> serde_json::Value {
        use app::domain::event::Variant;
        let now = self.now().millis();
        let mut lines = String::new();
        for i in 0..control + treatment {
            let variant = if i < treatment { Variant::Treatment } else { Variant::Control };
            let event = model.event(Timestamp(now - 1_000 - i as i64), variant, if i < treatment { regressions } else { &[] });
            lines.push_str(&format!("{event}\n"));
        }
        self.post_events(&lines).await
    }

    /// Posts NDJSON event lines; returns the ingest report.
    pub async fn post_events(&self, lines: &str) -> serde_json::Value {
        let response = self.client.post(self.url("/api/v1/events")).body(lines.to_string()).send().await.expect("POST /api/v1/events");
        assert_eq!(response.status(), 200);
        response.json().await.expect("an ingest report")
    }

    /// Turns the plan's sample-ratio check off, as a plan whose services send only a sample of
    /// the control arm's uploads does: tests that send a few control uploads for many treated
    /// ones (a 1% stage would need 99 for each) and are about something else.
    pub async fn control_is_sampled(&self) {
        let path = "{guardrails,manual_review,on_sample_ratio_mismatch}";
        sqlx::query("UPDATE plans SET definition = jsonb_set(definition, $1::text[], 'false')")
            .bind(path)
            .execute(&self.pool)
            .await
            .expect("the plan changes");
    }

    /// Starts the rollout if it is a draft and overrides its way forward to `stage`.
    pub async fn go_to_stage(&self, stage: u64) {
        if self.room().await["state"]["status"] == "draft" {
            let (status, body) = self.command(serde_json::json!({ "command": "start" })).await;
            assert_eq!(status, 200, "{body}");
        }
        while self.room().await["state"]["stage"].as_u64().unwrap() < stage {
            let (status, body) = self.advance(Some("test set-up")).await;
            assert_eq!(status, 200, "{body}");
        }
    }
}

/// Drops and recreates database `name` on DATABASE_URL's server, migrated and holding the
/// default rollout (for tests that run many cases against one database of their own).
pub async fn fresh_database(url: &str, name: &str) -> PgPool {
    fresh_database_with(url, name, 10).await
}

/// Like [`fresh_database`], with a pool of `connections` (for tests of real contention).
pub async fn fresh_database_with(url: &str, name: &str, connections: u32) -> PgPool {
    let (pool, db_url) = common::fresh_database(url, name).await;
    pool.close().await;
    let pool = server::db::pool_options().max_connections(connections).connect(&db_url).await.unwrap();
    // The rollout events belong to, as on first start.
    let (plan, source) = startup::load_plan(None).unwrap();
    startup::ensure_rollout(&Store::new(pool.clone()), &plan, &source).await.unwrap();
    pool
}

/// A copy of the shipped plan whose guard loop looks only every 5 minutes: a test that sees a
/// rollback within seconds then proves the ingest woke the loop, not its timer. The file lives
/// as long as the returned guard.
pub fn plan_with_slow_guard() -> (std::path::PathBuf, impl Drop) {
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let source = app::domain::plan::DEFAULT_PLAN_TOML.replacen("interval = \"5s\"", "interval = \"5m\"", 1);
    assert_ne!(source, app::domain::plan::DEFAULT_PLAN_TOML, "the shipped plan sets the guard's interval");
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!("rampart-slow-guard-{}-{n}.toml", std::process::id()));
    std::fs::write(&path, source).unwrap();
    (path.clone(), Remove(path))
}

/// The value of the sample named exactly `series` (name and labels as written) on a `/metrics`
/// page, if present.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' '))).map(|v| v.parse().unwrap())
}

/// The URL of the test's own database, for a `rampart` process.
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("the tests run with DATABASE_URL");
    let database = pool.connect_options().get_database().expect("a test database").to_string();
    format!("{}/{database}", &base[..base.rfind('/').expect("a URL with a path")])
}

/// Runs the `rampart` command against the test's database: whether it succeeded, and what it
/// printed (its exit status first).
pub fn rampart(pool: &PgPool, args: &[&str]) -> (bool, String) {
    rampart_with(pool, args, &[])
}

/// Like [`rampart`], with more environment.
pub fn rampart_with(pool: &PgPool, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env("DATABASE_URL", database_url(pool))
        .envs(env.iter().copied())
        .output()
        .expect("rampart runs");
    let text = format!("{}\n{}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Ticks every checklist item of `stage`.
pub async fn tick_stage(app: &TestApp, stage: u64) {
    let room = app.room().await;
    for item in room["checklist"].as_array().unwrap().iter().filter(|i| i["stage"] == stage) {
        let (status, body) =
            app.post(&format!("/api/v1/rollouts/1/checklist/{}", item["id"]), serde_json::json!({ "checked": true })).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Reports every test suite `stage` requires as passing in full.
pub async fn report_suites(app: &TestApp, stage: u64) {
    let room = app.room().await;
    for suite in room["plan"]["stages"][stage as usize]["test_suites"].as_array().unwrap() {
        let report =
            serde_json::json!({ "suite": suite["name"], "passed": suite["tests"], "failed": 0, "url": "https://ci.example/run/1" });
        let (status, body) = app.post("/api/v1/rollouts/1/test-results", report).await;
        assert_eq!(status, 201, "{body}");
    }
}

/// `count` successful treatment uploads in the minute before `now`, spread over the plan's
/// file types, sizes and providers.
pub fn clean_uploads(now: i64, count: usize) -> String {
    let (types, sizes, providers) = (["text", "json", "csv", "markdown", "python", "binary"], [1u64, 10, 50, 100], ["kimi", "glm"]);
    (0..count)
        .map(|i| {
            let event = serde_json::json!({
                "timestamp": now - 1_000 - (i % 50_000) as i64, "event_id": format!("clean-{i}"), "variant": "async", "outcome": "success",
                "latency_ms": 150.0, "memory_mb": 10.0, "provider": providers[i % 2], "file_type": types[(i / 2) % 6],
                "size_bytes": sizes[(i / 12) % 4] * 1_000_000,
            });
            format!("{event}\n")
        })
        .collect()
}

/// A plan's soak (`48h`, `2d`, `1w`, …) in hours.
pub fn soak_hours(soak: &str) -> i64 {
    match soak {
        "24h" | "1d" => 24,
        "48h" | "2d" => 48,
        "72h" | "3d" => 72,
        "1w" | "7d" => 168,
        other => panic!("soak {other}"),
    }
}

impl TestApp {
    /// Freezes the baseline from 600 of today's (control) uploads and starts the rollout.
    pub async fn baseline_and_start(&self, model: &mut server::simulate::Model) {
        self.simulate(model, 600, 0, &[]).await;
        let now = self.now().millis();
        let (status, body) = self.post("/api/v1/rollouts/1/baseline", serde_json::json!({ "from": now - 600_000, "to": now })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(self.command(serde_json::json!({ "command": "start" })).await.0, 200);
    }

    /// Leaves `stage` as the plan means it: CI asks (a token may ask, never approve) and a
    /// person approves — ana on even stages, bea on odd ones; completes from the last stage.
    pub async fn ask_and_approve(&self, stage: u64) {
        self.ask_and_approve_saying(stage, None).await;
    }

    /// [`TestApp::ask_and_approve`]; with a `reason`, the other approver asks giving it (a reason
    /// is a person's to give: a token may not).
    pub async fn ask_and_approve_saying(&self, stage: u64, reason: Option<&str>) {
        let command = serde_json::json!({ "command": if stage == 4 { "complete" } else { "advance" }, "override_reason": reason });
        // Signed in now: the soak outlasts a session.
        let (ana, bea) = self.approvers().await;
        let (approver, other) = if stage.is_multiple_of(2) { (ana, bea) } else { (bea, ana) };
        let (status, body) = match reason {
            Some(_) => self.command_as(&other, command).await,
            None => self.command(command).await,
        };
        assert_eq!((status, body["status"].as_str()), (200, Some("awaiting_approval")), "stage {stage}: {body}");
        let (status, body) = self.command_as(&approver, serde_json::json!({ "command": "approve" })).await;
        assert_eq!(status, 200, "stage {stage}: {body}");
    }
}
